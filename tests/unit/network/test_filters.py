"""Network list filters."""

from __future__ import annotations

import pytest

from dockyard.errdefs import InvalidArgument
from dockyard.network import filters


class _Mgr:
    def __init__(self, used):
        self.used = used

    def users(self, nid, active_only=False):
        return ["c"] if nid in self.used else []


NETS = [{"Id": "aaa111", "Name": "bridge", "Driver": "bridge", "Scope": "local", "Labels": {}},
        {"Id": "bbb222", "Name": "front", "Driver": "bridge", "Scope": "local", "Labels": {"team": "a"}},
        {"Id": "ccc333", "Name": "mv", "Driver": "macvlan", "Scope": "local", "Labels": {}}]


@pytest.mark.parametrize("f, names", [
    ({"driver": ["macvlan"]}, ["mv"]), ({"id": ["bbb"]}, ["front"]), ({"name": ["ro"]}, ["front"]),
    ({"label": ["team=a"]}, ["front"]), ({"type": ["builtin"]}, ["bridge"]),
    ({"type": ["custom"]}, ["front", "mv"]), ({"dangling": ["true"]}, ["mv"]),
])
def test_matches(f, names):
    filters.validate(f)
    assert [n["Name"] for n in NETS if filters.matches(n, f, _Mgr({"bbb222"}))] == names


def test_bad_filters():
    with pytest.raises(InvalidArgument):
        filters.validate({"color": ["red"]})
    with pytest.raises(InvalidArgument):
        filters.validate({"type": ["odd"]})
