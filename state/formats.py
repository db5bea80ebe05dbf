"""The value formats of the file format (addresses, names, MACs, ports): each is a
function that returns None for a good value, else what is wrong and what to write.
Registered as JSON Schema formats by `state.validating`; reused by `state.building`.
`PATTERNS` says the same in regular expressions, for the schema's readers that
know no netlab format (editors, check-jsonschema).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable

# A function of this type explains why a string is not of its format, or returns None.
Explainer = Callable[[str], "str | None"]

IFNAME_MAX_BYTES = 15  # IFNAMSIZ - 1: the kernel refuses longer names
NETNS_NAME_MAX = 64
HOSTNAME_MAX = 253
LABEL_MAX = 63

_PREFIX_LENGTH = re.compile(r"/[0-9]{1,3}\Z")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}\Z")
_NETNS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\Z")
_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?\Z")
_RESOLVER_OPTION = re.compile(r"[A-Za-z0-9_-]+(:[0-9]+)?\Z")


# The same addresses are parsed on every load (by the schema's formats, by building
# and by the checks); ipaddress objects are immutable, so the parses are kept.
_remembered = functools.lru_cache(maxsize=65_536)


@_remembered
def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address without prefix, or None. Refuses scope ids (`fe80::1%eth0`): the
    file says which link with `dev` instead."""
    if "%" in text or "/" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@_remembered
def parse_interface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """`addr/len` with a numeric prefix length, or None (netmask spellings refused)."""
    if not _PREFIX_LENGTH.search(text) or "%" in text:
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A network with prefix, or a single address (which means /32 or /128); host
    bits are allowed here and refused later with the corrected value."""
    if "/" in text:
        interface = parse_interface(text)
        return None if interface is None else interface.network
    address = parse_ip(text)
    return None if address is None else ipaddress.ip_network(address)


def explain_ip_address(text: str) -> str | None:
    if parse_ip(text) is not None:
        return None
    if "/" in text:
        return f"{text!r} has a prefix length, but only an address goes here: write it like 192.168.15.1"
    return f"{text!r} is not an IPv4/IPv6 address: write it like 192.168.15.1 or 2001:db8::1"


def explain_ip_interface(text: str) -> str | None:
    if parse_interface(text) is not None:
        return None
    return f"{text!r} is not an IPv4/IPv6 address with prefix length: write it like 192.168.15.1/24 or 2001:db8::1/64"


def explain_ip_network(text: str) -> str | None:
    if parse_network(text) is not None:
        return None
    return f"{text!r} is not a network or address: write it like 192.168.15.0/24, 2001:db8::/64 or 192.168.15.2"


def explain_route_destination(text: str) -> str | None:
    if text == "default" or parse_network(text) is not None:
        return None
    return (
        f"{text!r} is not a route destination: write `default`, a network like "
        "10.244.2.0/24 or 2001:db8::/64, or a single address like 10.0.0.3"
    )


def explain_mac(text: str) -> str | None:
    if not _MAC.match(text):
        return f"{text!r} is not a MAC address: write six hex pairs separated by colons, like 02:00:00:00:00:01"
    first = int(text[:2], 16)
    if first & 1:
        return (
            f"{text!r} is a multicast MAC address (the first byte is odd), which a link cannot "
            "have: use a unicast one, like 02:00:00:00:00:01 (locally administered)"
        )
    if int(text.replace(":", ""), 16) == 0:
        return f"{text!r} is the all-zero MAC address: use a real one, like 02:00:00:00:00:01"
    return None


def explain_ifname(text: str) -> str | None:
    if text == "":
        return "an interface name cannot be empty"
    if text in (".", ".."):
        return f"{text!r} is not allowed as an interface name: choose another name"
    length = len(text.encode("utf-8"))
    if length > IFNAME_MAX_BYTES:
        return (
            f"interface name {text!r} is {length} bytes long, but the kernel allows at most "
            f"{IFNAME_MAX_BYTES}: shorten it"
        )
    for bad, what in (("/", "'/'"), (":", "':'")):
        if bad in text:
            return f"interface name {text!r} contains {what}, which the kernel refuses: remove it"
    if any(ch.isspace() for ch in text):
        return f"interface name {text!r} contains whitespace, which the kernel refuses: remove it"
    if not text.isprintable():
        return f"interface name {text!r} contains a control character: remove it"
    return None


def explain_netns_name(text: str) -> str | None:
    if text == "":
        return "a namespace name cannot be empty"
    if len(text) > NETNS_NAME_MAX:
        return (
            f"namespace name {text!r} is {len(text)} characters long; at most {NETNS_NAME_MAX} are allowed: shorten it"
        )
    if not _NETNS_NAME.match(text):
        return (
            f"namespace name {text!r} must be safe as a file name under /run/netns and "
            "/etc/netns: use letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        )
    return None


def explain_hostname(text: str) -> str | None:
    if not text:
        return "a host name cannot be empty"
    if len(text) > HOSTNAME_MAX:
        return f"host name {text!r} is longer than {HOSTNAME_MAX} characters: shorten it"
    for label in text.split("."):
        if len(label) > LABEL_MAX:
            return f"{text!r}: the label {label!r} is longer than {LABEL_MAX} characters"
        if not _LABEL.match(label):
            return (
                f"{text!r} is not a valid host name (RFC 1123): use labels of letters, digits "
                "and '-' (not at either end), separated by single dots, like db.example.com"
            )
    return None


def explain_port_range(text: str) -> str | None:
    match = _PORT_RANGE.match(text)
    hint = "write a port like 8080 or a range like 8000-8080 (1..65535, first <= last)"
    if not match:
        return f"{text!r} is not a port or port range: {hint}"
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        return f"{text!r} is out of range: {hint}"
    if first > last:
        return f"{text!r} runs backwards: write {last}-{first}"
    return None


def split_dnat_target(text: str) -> tuple[str, int | None] | None:
    """`addr`, `addr:port` or `[v6addr]:port` → (address, port), or None."""
    if parse_ip(text) is not None:
        return text, None
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or not isinstance(parse_ip(host), ipaddress.IPv6Address):
            return None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not isinstance(parse_ip(host), ipaddress.IPv4Address):
            return None
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def explain_dnat_target(text: str) -> str | None:
    if split_dnat_target(text) is not None:
        return None
    return (
        f"{text!r} is not a DNAT target: write an address with an optional port (1..65535), "
        "like 192.168.15.2, 192.168.15.2:80 or [2001:db8::2]:80"
    )


def explain_resolver_option(text: str) -> str | None:
    if _RESOLVER_OPTION.match(text):
        return None
    return (
        f"{text!r} is not a resolv.conf option: write a word, optionally with a number "
        "after a colon, like rotate, edns0 or ndots:2"
    )


# Every format name the schema uses, and what checks it. A format name missing here
# would pass silently (JSON Schema ignores unknown formats): a test pins that.
FORMATS: dict[str, Explainer] = {
    "ip-address": explain_ip_address,
    "ip-interface": explain_ip_interface,
    "ip-network": explain_ip_network,
    "route-destination": explain_route_destination,
    "mac": explain_mac,
    "ifname": explain_ifname,
    "netns-name": explain_netns_name,
    "hostname-rfc1123": explain_hostname,
    "port-range": explain_port_range,
    "dnat-target": explain_dnat_target,
    "resolver-option": explain_resolver_option,
}


# The same formats as `pattern`s, which every JSON Schema validator enforces
# (editors and CI ignore the formats above). Each is as strict as its format or
# looser where a regular expression cannot say it (a port range's order, a byte
# count): never stricter, so a pattern never refuses a valid file. The schema
# carries each next to its format (a test pins the text); netlab itself checks the
# formats and ignores these, so that it reports its own messages, once.
# Written in the subset of regular expressions that ECMAScript and Python share.
def _ipv6(v4: str) -> str:
    group = "[0-9A-Fa-f]{1,4}"

    def groups(low: int, high: int) -> str:  # low..high groups, each followed by ':'
        if high == 0:
            return ""
        count = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        return f"{group}:" if (low, high) == (1, 1) else f"(?:{group}:){count}"

    forms = [f"{groups(7, 7)}{group}", f"{groups(6, 6)}{v4}"]
    # `::` stands for one group or more: at most 7 are written around it (an
    # IPv4 tail counts two)
    for before in range(8):
        head = f"{groups(before - 1, before - 1)}{group}" if before else ""
        tails = []
        if before <= 6:
            tails.append(f"{groups(0, 6 - before)}{group}")
        if before <= 5:
            tails.append(f"{groups(0, 5 - before)}{v4}")
        forms.append(f"{head}::" + (f"(?:{'|'.join(tails)})?" if tails else ""))
    return "(?:" + "|".join(forms) + ")"


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_V6 = _ipv6(_V4)
_V4_LENGTH = "/(?:0{0,2}[0-9]|0?[12][0-9]|0?3[0-2])"  # 0..32 in at most 3 digits
_V6_LENGTH = "/(?:0{0,2}[0-9]|0?[1-9][0-9]|1[01][0-9]|12[0-8])"  # 0..128
_HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

PATTERNS: dict[str, str] = {
    "ip-address": f"^(?:{_V4}|{_V6})$",
    "ip-interface": f"^(?:{_V4}{_V4_LENGTH}|{_V6}{_V6_LENGTH})$",
    "ip-network": f"^(?:{_V4}(?:{_V4_LENGTH})?|{_V6}(?:{_V6_LENGTH})?)$",
    "route-destination": f"^(?:default|{_V4}(?:{_V4_LENGTH})?|{_V6}(?:{_V6_LENGTH})?)$",
    "mac": "^(?!00(?::00){5}$)[0-9A-Fa-f][02468AaCcEe](?::[0-9A-Fa-f]{2}){5}$",
    # characters, not bytes: a name of non-ASCII letters may pass and be refused by netlab
    "ifname": rf"^(?!\.\.?$)[^/:\s\x00-\x1f\x7f-\x9f]{{1,{IFNAME_MAX_BYTES}}}$",
    "netns-name": f"^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{NETNS_NAME_MAX - 1}}}$",
    "hostname-rfc1123": rf"^(?=.{{1,{HOSTNAME_MAX}}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*$",
    "port-range": "^[0-9]{1,5}(?:-[0-9]{1,5})?$",
    "dnat-target": rf"^(?:{_V4}(?::0*[1-9][0-9]{{0,4}})?|{_V6}|\[{_V6}\]:0*[1-9][0-9]{{0,4}})$",
    "resolver-option": "^[A-Za-z0-9_-]+(?::[0-9]+)?$",
}
