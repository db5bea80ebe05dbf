"""The table of link types (state/link_types.py) and the schema's part of each
type agree: the same types, each part allowing exactly the keys of its entry,
requiring a hint for what it requires, and each value the kernel reports read
back as the file wrote it."""

from __future__ import annotations

from typing import Any

import pytest

from netlab.state.link_types import LINK_TYPES, TYPE_OF_KIND, kernel_module
from netlab.state.model import Link, Origin
from netlab.state.validating import load_schema

HERE = Origin("t.yaml", 1)
FILE_TYPES = [name for name in LINK_TYPES if name != "veth-peer"]


def _part(name: str) -> dict[str, Any]:
    schema = load_schema()
    interface = schema["$defs"]["interface"]
    (branch,) = [b for b in interface["allOf"] if b["if"]["properties"]["type"]["const"] == name]
    part: dict[str, Any] = schema["$defs"][branch["then"]["$ref"].split("/")[-1]]
    return part


def _own_keys(part: dict[str, Any]) -> set[str]:
    names = part["propertyNames"]
    alternatives = names.get("anyOf", [names])
    return {key for alternative in alternatives for key in alternative.get("enum", [])}


def test_the_schema_has_the_types_of_the_table_in_its_order() -> None:
    enum = load_schema()["$defs"]["interface"]["properties"]["type"]["enum"]
    assert sorted(enum) == sorted(FILE_TYPES)


@pytest.mark.parametrize("name", FILE_TYPES)
def test_each_part_allows_the_keys_of_its_entry_and_no_other(name: str) -> None:
    part = _part(name)
    assert _own_keys(part) == set(LINK_TYPES[name].keys)
    assert set(part.get("properties", {})) == set(LINK_TYPES[name].keys)


@pytest.mark.parametrize("name", FILE_TYPES)
def test_what_a_part_requires_has_a_hint_beside_its_attribute(name: str) -> None:
    attributes = {attribute.key: attribute for attribute in LINK_TYPES[name].attributes}
    for key in _part(name).get("required", []):
        if key in attributes:
            assert attributes[key].hint.startswith(f"write `{key}: "), (name, key)


@pytest.mark.parametrize("name", [name for name in FILE_TYPES if LINK_TYPES[name].attributes])
def test_every_declared_value_reads_back_from_the_kernel_as_written(name: str) -> None:
    """A value the schema allows goes to the kernel and comes back the same."""
    link_type = LINK_TYPES[name]
    properties = _part(name)["properties"]
    for attribute in link_type.attributes:
        schema = properties[attribute.key]
        if "$ref" in schema:
            schema = {**load_schema()["$defs"][schema["$ref"].split("/")[-1]], **schema}
        choices = schema.get("enum") or ([False, True] if schema.get("type") == "boolean" else None)
        examples = choices or [schema.get("minimum", 1), schema.get("maximum", 30)]
        if attribute.key in ("local", "remote"):
            examples = ["10.0.0.2"]
        elif attribute.key == "group":
            examples = ["239.1.1.1"]
        for value in examples:
            link = Link(None, "x0", name, HERE, options=((attribute.key, value),))
            sent = link_type.kernel_data(link)[attribute.kernel]
            assert attribute.from_kernel(sent) == value, (name, attribute.key, value)


def test_kinds_name_their_types_and_modules() -> None:
    assert TYPE_OF_KIND["veth"] == "veth" and TYPE_OF_KIND["vxlan"] == "vxlan"
    assert [kernel_module(kind) for kind in ("vlan", "bond", "vrf")] == ["8021q", "bonding", "vrf"]


def _not_the_default(name: str, key: str) -> Any:
    """A value the schema allows for a type's key that is not its default."""
    schema = _part(name)["properties"][key]
    if "$ref" in schema:
        schema = {**load_schema()["$defs"][schema["$ref"].split("/")[-1]], **schema}
    default = next(a.default for a in LINK_TYPES[name].attributes if a.key == key)
    choices = schema.get("enum") or ([False, True] if schema.get("type") == "boolean" else None)
    if choices is None:
        choices = {"local": ["10.0.0.2"], "remote": ["10.0.0.3"], "group": ["239.1.1.1"]}.get(key)
    return next(v for v in choices if v != default) if choices else schema.get("maximum", 30)


@pytest.mark.parametrize("name", [name for name in FILE_TYPES if LINK_TYPES[name].attributes])
def test_each_type_s_attributes_encode_and_decode_through_pyroute2(name: str) -> None:
    """Every attribute, at a value that is not its default, goes into a netlink
    message and reads back the same (pyroute2 lacks some kinds' classes,
    ipvtap's: the backend lends them)."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    import netlab.controller.backends.netlink  # noqa: F401  (lends pyroute2 the classes it lacks)

    link_type = LINK_TYPES[name]
    keys = [a.key for a in link_type.attributes if a.key != "group"]  # a vxlan has remote or group
    options = tuple((key, _not_the_default(name, key)) for key in keys)
    data = link_type.kernel_data(Link(None, "x0", name, HERE, options=options))
    info = [("IFLA_INFO_KIND", link_type.kind), ("IFLA_INFO_DATA", {"attrs": list(data.items())})]
    sent = ifinfmsg()
    sent["attrs"] = [("IFLA_IFNAME", "x0"), ("IFLA_LINKINFO", {"attrs": info})]
    sent.encode()
    received = ifinfmsg(sent.data)
    received.decode()
    decoded = received.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    checked = [a for a in link_type.attributes if a.key in keys]
    assert len(data) == len(checked), f"{name}: not every attribute was sent: {data}"
    for attribute in checked:  # as the file says it, both ways
        back = attribute.from_kernel(decoded.get_attr(attribute.kernel))
        assert back == dict(options)[attribute.key], (name, attribute.key)
