"""The kernel facade letting go of namespaces deleted by hand (`drop_namespaces`):
what it forgets, what it keeps, and which other namespaces it names as reached
by their links. No kernel: the dumps are put in by hand."""

from __future__ import annotations

from netlab.controller.backends.kernel import Kernel, Touched
from netlab.controller.backends.netlink import NetnsDump, ObservedLink
from tests.unit.fake_kernels import observed_link


def dump(*links: ObservedLink) -> NetnsDump:
    return NetnsDump(links, (), ())


def read(kernel: Kernel, dumps: dict[str | None, NetnsDump]) -> None:
    for netns, each in dumps.items():
        kernel._reads.put("dump", netns, None, each)


def known(kernel: Kernel) -> set[str | None]:
    """The namespaces whose dump the kernel would answer from, without reading."""
    return {netns for netns, _ in kernel._reads.last("dump") if kernel._reads.peek("dump", netns) is not None}


def test_only_the_dropped_namespace_is_forgotten_and_its_peers_are_named() -> None:
    with Kernel() as kernel:
        # red's eth0 (index 2) pairs with the host's vh-red (index 7); blue's
        # eth0 pairs with the host's vh-blue; green holds a veth into blue only
        read(
            kernel,
            {
                None: dump(
                    observed_link(None, "lo", 1),
                    observed_link(None, "vh-red", 7, 2, 0),
                    observed_link(None, "vh-blue", 8, 2, 1),
                ),
                "red": dump(observed_link("red", "lo", 1), observed_link("red", "eth0", 2, 7, 0)),
                "blue": dump(
                    observed_link("blue", "lo", 1),
                    observed_link("blue", "eth0", 2, 8, 0),
                    observed_link("blue", "to-green", 3, 2, 1),
                ),
                "green": dump(observed_link("green", "lo", 1), observed_link("green", "to-blue", 2, 3, 0)),
            },
        )
        kernel._reads.put("sysctls", "red", "net.ipv4.ip_forward", "1")
        kernel._reads.put("sysctls", "blue", "net.ipv4.ip_forward", "0")
        assert kernel.drop_namespaces(["red"]) == {None}
        assert kernel._reads.last_of("dump", "red") is None
        assert kernel.sysctl("blue", "net.ipv4.ip_forward") == "0"  # kept: not read again
        assert known(kernel) == {None, "blue", "green"}  # true until the old red is destroyed
        assert "red" not in kernel._reads._fresh["sysctls"] and "red" not in kernel._reads._stale.get("sysctls", {})


def test_a_dropped_namespace_never_read_names_every_namespace_with_links_elsewhere() -> None:
    with Kernel() as kernel:
        read(
            kernel,
            {
                None: dump(observed_link(None, "lo", 1), observed_link(None, "vh-blue", 8, 2, 1)),
                "blue": dump(observed_link("blue", "lo", 1), observed_link("blue", "eth0", 2, 8, 0)),
                "white": dump(observed_link("white", "lo", 1)),
            },
        )
        assert kernel.drop_namespaces(["red"]) == {None, "blue"}


def test_deleting_a_link_reaches_the_namespaces_pointing_at_it() -> None:
    """What a pass forgets after deleting a link (and so reads again to verify):
    the namespaces holding its veth peer, or links on it as their parent; not
    everything, unless the link read is not the one deleted."""
    with Kernel() as kernel:
        read(
            kernel,
            {
                None: dump(
                    observed_link(None, "lo", 1),
                    observed_link(None, "vh-red", 7, 2, 0),
                    observed_link(None, "eth-out", 9),
                ),
                "red": dump(observed_link("red", "lo", 1), observed_link("red", "eth0", 2, 7, 0)),
                "blue": dump(
                    observed_link("blue", "lo", 1), observed_link("blue", "mv0", 3, 9, 0)
                ),  # a macvlan on host/eth-out
                "white": dump(observed_link("white", "lo", 1)),
            },
        )
        assert kernel._reached_by_deleting(None, [("vh-red", 7)]) == {"red"}
        assert kernel._reached_by_deleting("red", [("eth0", 2)]) == {None}
        assert kernel._reached_by_deleting(None, [("eth-out", 9)]) == {"blue"}
        assert kernel._reached_by_deleting("blue", [("mv0", 3)]) == set()  # its parent stays
        assert kernel._reached_by_deleting(None, [("vh-red", 11)]) is None  # replaced since it was read
        assert kernel._reached_by_deleting("green", [("eth0", 2)]) is None  # never read
        # deleted at once: the namespaces each deletion reaches
        assert kernel._reached_by_deleting(None, [("vh-red", 7), ("eth-out", 9)]) == {"red", "blue"}
        assert kernel._reached_by_deleting(None, [("vh-red", 7), ("eth-out", 12)]) is None


def test_what_a_write_made_stale_still_tells_who_points_at_whom() -> None:
    """A pass that wrote to a namespace before deleting a link in it (a route
    removed first) still knows the link's peers: the dump is stale for reading,
    and kept as the last reading of its links."""
    with Kernel() as kernel:
        read(
            kernel,
            {
                None: dump(observed_link(None, "lo", 1), observed_link(None, "vh-red", 7, 2, 0)),
                "red": dump(observed_link("red", "lo", 1), observed_link("red", "eth0", 2, 7, 0)),
            },
        )
        kernel._reads.touch(Touched.by_netlink({None}))
        assert known(kernel) == {"red"}
        assert kernel._reached_by_deleting(None, [("vh-red", 7)]) == {"red"}
        assert kernel.drop_namespaces(["red"]) == {None}
