"""What the embedded DNS answers for a container, from the manager's name table (pure)."""

from __future__ import annotations

from dockyard.network.sandbox import _legacy_links
from dockyard.network.views import resolve

TABLE = {
    "networks": {"n1": {"web": ["10.0.0.2"], "w": ["10.0.0.2"], "db": ["10.0.0.3"],
                        "web.front": ["10.0.0.2"]},
                 "n2": {"db": ["10.1.0.3"], "cache": ["10.1.0.4"]}},
    "containers": {"c1": {"networks": ["n1"], "links": {"store": "db"}},
                   "c2": {"networks": ["n1", "n2"], "links": {}},
                   "c3": {"networks": [], "links": {}}},
}


def test_names_aliases_and_links_on_the_containers_networks():
    assert resolve(TABLE, "c1", "web") == ["10.0.0.2"]
    assert resolve(TABLE, "c1", "W.") == ["10.0.0.2"]  # case and the final dot do not matter
    assert resolve(TABLE, "c1", "store") == ["10.0.0.3"]  # a link alias
    assert resolve(TABLE, "c1", "web.front") == ["10.0.0.2"]
    assert resolve(TABLE, "c2", "db") == ["10.0.0.3", "10.1.0.3"]


def test_other_networks_and_unknown_names_are_forwarded():
    assert resolve(TABLE, "c1", "cache") is None  # on a network c1 is not on
    assert resolve(TABLE, "c1", "example.com") is None
    assert resolve(TABLE, "c3", "web") is None
    assert resolve(TABLE, "nobody", "web") is None


def test_legacy_links():
    assert _legacy_links({"Links": ["/db:/me/store", "cache:c", "plain"]}) == {
        "store": "db", "c": "cache", "plain": "plain"}
