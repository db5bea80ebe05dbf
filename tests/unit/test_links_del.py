"""`Netlink.links_del` without a kernel: the links go in a group of their own
and the group is deleted; cut short (a refusal, Ctrl-C), every link moved goes
back to its group and nothing is deleted."""

from __future__ import annotations

from typing import Any

import pytest
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_NEWLINK

from netlab.controller.backends.netlink import Netlink
from netlab.state.errors import KernelRefused


class FakeConnection:
    def __init__(self, links: list[tuple[str, int, int]], fail_at: int | None, error: BaseException) -> None:
        self.links, self.fail_at, self.error = links, fail_at, error
        self.requests: list[tuple[int, int, int]] = []  # (type, index, group)

    def dump(self, what: str, msg_type: int, msg: Any, convert: Any, keep: Any = None) -> tuple[list[Any], bool]:
        return list(self.links), True

    def request(self, what: str, msg_type: int, msg: Any, flags: int = 0) -> None:
        if self.fail_at is not None and len(self.requests) == self.fail_at:
            self.requests.append((-1, 0, 0))
            raise self.error
        self.requests.append((msg_type, msg["index"], msg.get_attr("IFLA_GROUP")))


def _links_del(monkeypatch: pytest.MonkeyPatch, fake: FakeConnection) -> None:
    netlink = Netlink()
    monkeypatch.setattr(netlink, "connection", lambda netns: fake)
    try:
        netlink.links_del(None, ["vh1", "vh2", "gone"])
    finally:
        netlink.close()


def _fake(fail_at: int | None = None, error: BaseException | None = None) -> FakeConnection:
    links = [("lo", 1, 0), ("vh1", 5, 0), ("vh2", 6, 3), ("other", 7, 0)]
    return FakeConnection(links, fail_at, error or RuntimeError())


def test_the_links_go_in_a_fresh_group_which_is_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake()
    _links_del(monkeypatch, fake)
    (set1, set2, delete) = fake.requests
    group = set1[2]
    assert group not in (0, 3)  # the group of no link there
    assert set1 == (RTM_NEWLINK, 5, group) and set2 == (RTM_NEWLINK, 6, group)
    assert delete == (RTM_DELLINK, 0, group)


@pytest.mark.parametrize("error", [KernelRefused("x", 1, "refused"), KeyboardInterrupt()], ids=["refused", "ctrl-c"])
def test_cut_short_every_link_moved_goes_back_to_its_group(
    monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    fake = _fake(fail_at=2, error=error)  # the group deletion refused, or Ctrl-C just before it
    with pytest.raises(type(error)):
        _links_del(monkeypatch, fake)
    assert fake.requests[2:] == [(-1, 0, 0), (RTM_NEWLINK, 5, 0), (RTM_NEWLINK, 6, 3)]
    assert not any(kind == RTM_DELLINK for kind, _, _ in fake.requests)
