"""Schema validation of one parsed document against schemas/netlab.schema.json, with
netlab's own formats registered, and each jsonschema error turned into one Problem
that says where, what is wrong and what to write instead. Used by `state.loading`.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError, best_match

from netlab.state.documents import DocPath, Document
from netlab.state.errors import Problem
from netlab.state.formats import FORMATS, Explainer
from netlab.state.link_types import LINK_TYPES, types_with

SUPPORTED_VERSIONS = (1,)
SECTIONS = ("namespaces", "interfaces", "routes", "sysctls", "nat", "dns", "hosts", "checks", "match", "peer")

# What to write when a required key is missing, by (section, key); section None
# applies everywhere.
_REQUIRED_HINTS: dict[tuple[str | None, str], str] = {
    (None, "version"): "start the file with `version: 1`",
    ("interfaces", "name"): "write `name: IFNAME`",
    ("interfaces", "type"): "write `type:` " + ", ".join(name for name in LINK_TYPES if name != "veth-peer"),
    ("interfaces", "peer"): "a veth is a pair: write `peer: {name: IFNAME}` for its other end",
    ("interfaces", "parent"): "write `parent: IFNAME`, the host link it sits on",
    **{("interfaces", a.key): a.hint for t in LINK_TYPES.values() for a in t.attributes if a.hint},
    ("peer", "name"): "write `name: IFNAME` for the other end of the veth",
    ("namespaces", "name"): "write `name: NAME`",
    ("routes", "to"): "write `to: default` or a network like 10.0.0.0/24",
    ("nat", "type"): "write `type:` masquerade, snat or dnat",
    ("nat", "source"): "write `source:` the network whose traffic is rewritten, like 192.168.15.0/24",
    ("nat", "to_source"): "write `to_source:` the address to rewrite the source to",
    ("nat", "protocol"): "write `protocol:` tcp, udp or sctp",
    ("nat", "port"): 'write `port: 8080` or `port: "8000-8080"`',
    ("nat", "to"): "write `to:` where to forward, like 192.168.15.2:80",
    ("hosts", "address"): "write `address:` like 192.168.1.11",
    ("checks", "from"): "write `from:` the namespace the check runs in, or host",
    (
        "checks",
        "resolve",
    ): "`address` is what a resolved name must be: write `resolve: NAME` beside it, or remove `address`",
    ("hosts", "names"): "write `names:` like [db, db.example.com]",
}

# Why a key is refused on objects of some types, by (section, key).
_ONLY_ON: dict[tuple[str, str], str] = {
    ("nat", "source"): "a dnat rule matches on `destination` and `in_interface`",
    ("nat", "to_source"): "only an snat rule has to_source",
    ("nat", "protocol"): "only a dnat rule has a protocol",
    ("nat", "port"): "only a dnat rule has a port",
    ("nat", "to"): "only a dnat rule has `to` (snat uses to_source)",
    ("nat", "in_interface"): "masquerade and snat happen as packets leave: use out_interface",
    ("nat", "out_interface"): "dnat happens as packets arrive: use in_interface",
}

_TYPE_WORDS = {
    "object": "a mapping (key: value)",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


@functools.cache
def load_schema() -> dict[str, Any]:
    """The published schema, read from the installed package."""
    text = resources.files("netlab.schemas").joinpath("netlab.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _as_format_check(explain: Explainer) -> Any:
    def check(instance: object) -> bool:
        # a format applies to strings only; `type` reports anything else
        return not isinstance(instance, str) or explain(instance) is None

    return check


@functools.cache
def format_checker() -> FormatChecker:
    checker = FormatChecker()
    for name, explain in FORMATS.items():
        checker.checks(name)(_as_format_check(explain))
    return checker


# Objects of a list found valid before, by item schema and content: an edit of one
# object among thousands re-validates that object alone (an object's validity
# depends on nothing around it). Bounded: forgotten all at once when full.
MAX_REMEMBERED_ITEMS = 100_000
_valid_items: set[tuple[int, str]] = set()
_every_item = Draft202012Validator.VALIDATORS["items"]


def _items_remembering_valid_ones(validator: Any, items: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """jsonschema's `items`, skipping mappings that passed the same subschema before."""
    if not isinstance(items, dict) or not isinstance(instance, list) or "prefixItems" in schema:
        yield from _every_item(validator, items, instance, schema)
        return
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            yield from validator.descend(item, items, path=index)
            continue
        # repr tells 1 from True and 1.0, and dicts keep their order: same text, same item
        key = (id(items), repr(item))
        if key in _valid_items:
            continue
        valid = True
        for error in validator.descend(item, items, path=index):
            valid = False
            yield error
        if valid:
            if len(_valid_items) >= MAX_REMEMBERED_ITEMS:
                _valid_items.clear()
            _valid_items.add(key)


def forget_valid_items() -> None:
    _valid_items.clear()


# jsonschema's stubs leave `extend` untyped
_Validator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"items": _items_remembering_valid_ones}
)


@functools.cache
def validator() -> Any:
    """The one validator (the schema and the subschemas keyed by `id` stay alive with it)."""
    return _Validator(_for_netlab(load_schema()), format_checker=format_checker())


# Keywords that say something to a reader and nothing to a validator: a reference
# with only these beside it is inlined like a bare one (the use's own win).
_ANNOTATIONS = frozenset({"description", "title"})


def _for_netlab(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as netlab checks it: with each `{"$ref": "#/$defs/NAME"}` (and
    annotations beside it) replaced by the definition it names, and without the
    `pattern` next to each of netlab's formats. jsonschema resolves a reference
    through `referencing` at every use: a third of the time spent validating a
    large file. The patterns say what the formats say, for editors and CI that
    know no netlab format (see `formats.PATTERNS`): the format alone gives the
    precise message, once. A reference inside its own definition (recursion)
    stays a reference, which `$defs` (kept) still resolves."""
    definitions = schema.get("$defs", {})
    prefix = "#/$defs/"

    def inline(node: Any, expanding: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, expanding) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith(prefix) and set(node) - {"$ref"} <= _ANNOTATIONS:
            name = reference[len(prefix) :]
            if name in definitions and name not in expanding:
                annotations = {key: value for key, value in node.items() if key != "$ref"}
                return {**inline(definitions[name], (*expanding, name)), **annotations}
        return {
            key: inline(value, expanding)
            for key, value in node.items()
            if not (key == "pattern" and node.get("format") in FORMATS)
        }

    return {key: (value if key == "$defs" else inline(value, ())) for key, value in schema.items()}


@dataclass(frozen=True)
class SchemaCheck:
    """The problems of one document, and the paths jsonschema complained about (so
    that the model is built only from the parts that are valid)."""

    problems: tuple[Problem, ...]
    error_paths: frozenset[DocPath]

    def is_broken(self, path: DocPath) -> bool:
        """True when something at or below `path` is invalid."""
        return any(error[: len(path)] == path for error in self.error_paths)


def check_schema(doc: Document) -> SchemaCheck:
    """Every schema violation of the document, one Problem each."""
    problems: list[Problem] = []
    error_paths: set[DocPath] = set()
    # jsonschema does not say which key a `required` or `false` error is about:
    # remember the keys reported per object so that each is named once
    seen: set[tuple[DocPath, str]] = set()
    for error in validator().iter_errors(doc.data):
        error_paths.add(tuple(error.absolute_path))
        problems.extend(_translate(doc, error, seen))
    return SchemaCheck(tuple(problems), frozenset(error_paths))


def items_are_valid(section: str, items: list[Any]) -> bool:
    """Whether these items of a top-level list section pass the schema: an item's
    validity depends on nothing around it (the sections are plain `items` lists)."""
    return not any(True for _ in validator().iter_errors({"version": 1, section: items}))


def _section(path: DocPath) -> str | None:
    """The innermost section a path lies in (`namespaces[0].hosts[1]` → hosts)."""
    for part in reversed(path):
        if isinstance(part, str) and part in SECTIONS:
            return part
    return None


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in ("a", "e", "i", "o", "u") else f"a {word}"


def _did_you_mean(word: object, choices: list[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _translate(doc: Document, error: ValidationError, seen: set[tuple[DocPath, str]]) -> Iterator[Problem]:
    path: DocPath = tuple(error.absolute_path)
    kind = error.validator
    if "propertyNames" in error.schema_path:
        yield _key_not_of_type(doc, path, error.instance)
    elif error.schema is False:
        yield from _forbidden_key(doc, path, error.instance, seen)
    elif kind == "additionalProperties":
        yield from _unknown_keys(doc, path, error)
    elif kind == "required":
        yield _missing_key(doc, path, error, seen)
    elif kind in ("anyOf", "oneOf"):
        yield _alternatives(doc, path, error)
    else:
        owner = doc.get(path[:-1]) if path else None
        owner_type = owner.get("type") if isinstance(owner, dict) else None
        # a missing value (`interfaces:` and nothing) has no place of its own: point at its key
        yield doc.problem(path, _message(path, error, owner_type), at_key=error.instance is None)


def _forbidden_key(doc: Document, path: DocPath, instance: object, seen: set[tuple[DocPath, str]]) -> Iterator[Problem]:
    # jsonschema reports a `false` subschema at the enclosing object, without the
    # key: find the key whose value is the very object it rejected.
    parent = doc.get(path)
    if not isinstance(parent, dict):
        yield doc.problem(path, "this value is not allowed here: remove it")
        return
    keys = [key for key, value in parent.items() if value is instance and (path, key) not in seen]
    key = keys[0] if keys else next((k for k, v in parent.items() if v == instance), "?")
    seen.add((path, key))
    section = _section(path) or ""
    owner_type = parent.get("type")
    reason = _ONLY_ON.get((section, key), "it does not apply here")
    what = _a(owner_type) if isinstance(owner_type, str) else "this object"
    yield doc.problem(path + (key,), f"{key!r} is not allowed on {what}: {reason}; remove it", at_key=True)


def _key_not_of_type(doc: Document, path: DocPath, key: object) -> Problem:
    """A key that a link of this type does not have: another type's (said which),
    or a misspelling of one of its own."""
    owner = doc.get(path)
    link_type = LINK_TYPES.get(owner.get("type", "")) if isinstance(owner, dict) else None
    name = str(key)
    others = types_with(name)
    if link_type is None or not others:
        every_link = load_schema()["$defs"]["linkKey"]["enum"]  # the keys of every link
        known = sorted({*every_link, *(link_type.keys if link_type else ())})
        owner = _a(link_type.name) if link_type is not None else "a link"
        hint = _did_you_mean(name, known) or f" (the keys of {owner} are: {', '.join(known)})"
        return doc.problem(path + (name,), f"unknown key {name!r}{hint}", at_key=True)
    having = f"{', '.join(others[:-1])} and {others[-1]} links have" if len(others) > 1 else f"{_a(others[0])} has"
    return doc.problem(
        path + (name,),
        f"{name!r} is not allowed on {_a(link_type.name)}: only {having} `{name}`; remove it",
        at_key=True,
    )


def _unknown_keys(doc: Document, path: DocPath, error: ValidationError) -> Iterator[Problem]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    known = sorted(schema.get("properties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    patterns = schema.get("patternProperties", {})
    for key in instance:
        if key in known:
            continue
        if any(re.search(pattern, key) for pattern in patterns):
            continue
        if patterns:
            message = (
                f"{key!r} is not a sysctl name: sysctls here are the dotted names under "
                "`net.`, like net.ipv4.ip_forward or net.ipv6.conf.all.forwarding"
            )
            yield doc.problem(path + (key,), message, at_key=True)
            continue
        hint = _did_you_mean(key, known) or f" (the keys here are: {', '.join(known)})"
        yield doc.problem(path + (key,), f"unknown key {key!r}{hint}", at_key=True)


def _missing_key(doc: Document, path: DocPath, error: ValidationError, seen: set[tuple[DocPath, str]]) -> Problem:
    instance = error.instance if isinstance(error.instance, dict) else {}
    required = error.validator_value if isinstance(error.validator_value, list) else []
    missing = next((key for key in required if key not in instance and (path, key) not in seen), "?")
    seen.add((path, missing))
    section = _section(path)
    hint = _REQUIRED_HINTS.get((section, missing)) or _REQUIRED_HINTS.get((None, missing))
    owner_type = instance.get("type")
    if "then" in error.schema_path and isinstance(owner_type, str):
        message = f"{_a(owner_type)} needs {missing!r}"
    else:
        message = f"missing key {missing!r}"
    return doc.problem(path, f"{message}: {hint}" if hint else message)


def _alternatives(doc: Document, path: DocPath, error: ValidationError) -> Problem:
    context = list(error.context or [])
    alternatives = error.validator_value if isinstance(error.validator_value, list) else []
    if error.validator == "oneOf" and not context and all("required" in sub for sub in alternatives):
        # more than one matched: the alternatives exclude each other
        keys = [key for sub in alternatives for key in sub["required"]]
        present = [key for key in keys if isinstance(error.instance, dict) and key in error.instance]
        listed = ", ".join(f"`{key}`" for key in present)
        return doc.problem(path, f"{listed} are alternatives: write only one of them here (one per item)")
    if context and all(sub.validator == "required" for sub in context):
        keys = [key for sub in context if isinstance(sub.validator_value, list) for key in sub.validator_value]
        listed = " or ".join(f"`{key}`" for key in keys)
        if set(keys) == {"via", "dev"}:
            return doc.problem(path, "a route needs `via` (a gateway), `dev` (an interface) or both")
        return doc.problem(path, f"write at least one of {listed}")
    chosen = best_match(context) if context else None
    if chosen is None:
        return doc.problem(path, str(error.message))
    return doc.problem(tuple(chosen.absolute_path), _message(tuple(chosen.absolute_path), chosen))


def _message(path: DocPath, error: ValidationError, owner_type: object = None) -> str:
    """The message for one error; `owner_type` is the `type` of the enclosing object."""
    kind, value, instance = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "format" and isinstance(value, str) and isinstance(instance, str):
        explain = FORMATS.get(value)
        reason = explain(instance) if explain else None
        return reason or str(error.message)
    if kind == "type":
        return _type_message(path, value, instance)
    if kind == "const" and path == ("version",):
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        return f"version {instance!r} is not supported; supported versions: {supported}: write `version: 1`"
    if kind == "enum" and isinstance(value, list):
        return _enum_message(path, [str(choice) for choice in value], instance, owner_type)
    if kind in ("minimum", "maximum", "exclusiveMinimum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is None and "exclusiveMinimum" in schema:
            return f"{instance!r} is out of range: write a number above {schema['exclusiveMinimum']}, at most {high}"
        return f"{instance!r} is out of range: write a number from {low} to {high}"
    if kind == "maxItems" and path and path[-1] == "nameservers":
        count = len(instance) if isinstance(instance, list) else "more"
        return (
            f"{count} nameservers are listed, but the resolver uses only the first {value} "
            f"(MAXNS): list at most {value}"
        )
    if kind == "maxItems":
        return f"at most {value} items are allowed here"
    if kind == "minItems":
        return "the list is empty: list at least one item, or remove the key"
    if kind == "minLength":
        return "the string is empty: write a value, or remove the key"
    if kind == "not" and isinstance(value, dict) and value.get("required") == ["remote", "group"]:
        return "a vxlan has either `remote` (one other end) or `group` (multicast): remove one"
    if kind == "not" and isinstance(value, dict) and value.get("required") == ["table", "vrf"]:
        return "a route goes in one table: write `table` or `vrf` (the VRF's table), not both"
    if kind == "not" and path and path[-1] == "table":
        return f"table {instance} is one of the kernel's own (default, main, local): choose another for the VRF"
    if kind == "pattern" and path and path[-1] == "table":
        return f"{instance!r} is not a routing table: write a number from 1 to 4294967295, or main, local or default"
    return str(error.message)


_STATE_WORDS = {
    "on": "up",
    "yes": "up",
    "true": "up",
    "enabled": "up",
    "off": "down",
    "no": "down",
    "false": "down",
    "disabled": "down",
}


def _enum_message(path: DocPath, choices: list[str], instance: object, owner_type: object) -> str:
    listed = ", ".join(choices)
    field = path[-1] if path else ""
    if field == "mode" and isinstance(owner_type, str):
        return f"{instance!r} is not {_a(owner_type)} mode: write one of {listed}{_did_you_mean(instance, choices)}"
    if field == "state" and isinstance(instance, str) and instance.lower() in _STATE_WORDS:
        return f"{instance!r} is not a link state: write {_STATE_WORDS[instance.lower()]} (up or down)"
    return f"{instance!r} is not one of: {listed}{_did_you_mean(instance, choices)}"


def _type_message(path: DocPath, wanted: object, instance: object) -> str:
    names = wanted if isinstance(wanted, list) else [wanted]
    words = [_TYPE_WORDS.get(str(name), str(name)) for name in names]
    expected = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    if instance is None and path:
        return f"{path[-1]!s} has no value: write {expected} here, or remove the key"
    message = f"expected {expected}, found {_describe(instance)}"
    if isinstance(instance, bool) and path and path[-1] == "state":
        return f"{message}: write up or down"
    if isinstance(instance, str) and "integer" in names:
        return f"{message}: write the number without quotes"
    if isinstance(instance, float) and "integer" in names:
        return f"{message}: write a whole number"
    return message
