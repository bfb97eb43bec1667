"""The volume service's rules with plain local volumes (no mounts, no root)."""

from __future__ import annotations

import pytest

from dockyard.errdefs import Conflict, InvalidArgument, NotFound
from dockyard.volume.service import ANONYMOUS_LABEL, VolumeService


@pytest.fixture
def svc(tmp_path):
    events = []
    s = VolumeService(str(tmp_path), socket_dirs=(), spec_dirs=(),
                      emit=lambda action, name, attrs: events.append((action, name, attrs)))
    s.events = events
    yield s
    s.close()


def test_create_is_get_or_create(svc, tmp_path):
    v = svc.create("data", labels={"a": "b"})
    assert svc.create("data", "local").created == v.created
    doc = svc.to_json(v)
    assert list(doc) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                         "Scope"]
    assert doc["Mountpoint"] == str(tmp_path / "volumes" / "data" / "_data")
    assert (doc["Labels"], doc["Options"]) == ({"a": "b"}, None)
    assert svc.events == [("create", "data", {"driver": "local"})]
    with pytest.raises(NotFound, match='create data: error looking up volume plugin other'):
        svc.create("data", "other")


def test_names(svc):
    with pytest.raises(InvalidArgument, match=r'^create a/b: "a/b" includes invalid characters'):
        svc.create("a/b")
    with pytest.raises(InvalidArgument, match="^create x: volume name is too short"):
        svc.create("x")
    for bad in ("..", "a..b", "-x"):
        with pytest.raises(InvalidArgument):
            svc.create(bad)
    anon = svc.create()
    assert len(anon.name) == 64 and anon.labels == {ANONYMOUS_LABEL: ""}


def test_references_block_removal(svc):
    svc.create("used", ref="c1")
    svc.add_ref("used", "c2")
    with pytest.raises(Conflict, match=r"^remove used: volume is in use - \[c1, c2\]$"):
        svc.remove("used", force=True)
    svc.release("used", "c1")
    svc.release("used", "c2")
    svc.remove("used")
    with pytest.raises(NotFound, match="^get used: no such volume$"):
        svc.remove("used")
    svc.remove("used", force=True)
    assert svc.events[-1] == ("destroy", "used", {"driver": "local"})


def test_list_filters(svc):
    svc.create("alpha", labels={"tier": "db"})
    svc.create("beta", ref="c1")
    anon = svc.create().name
    names = lambda f: sorted(v["Name"] for v in svc.list(f)[0])  # noqa: E731
    assert names({}) == sorted(["alpha", "beta", anon])
    assert names({"dangling": ["true"]}) == sorted(["alpha", anon])
    assert names({"dangling": ["0"]}) == ["beta"]
    assert names({"name": ["^al"]}) == ["alpha"]
    assert names({"label": ["tier=db"]}) == ["alpha"]
    assert names({"label": [ANONYMOUS_LABEL]}) == [anon]
    assert names({"driver": ["local"], "name": ["et"]}) == ["beta"]
    with pytest.raises(InvalidArgument, match="^Invalid filter 'bogus'$"):
        svc.list({"bogus": ["x"]})
    with pytest.raises(InvalidArgument, match="dangling"):
        svc.list({"dangling": ["maybe"]})


def test_prune_takes_unused_anonymous_volumes_unless_all(svc, tmp_path):
    svc.create("named")
    anon = svc.create().name
    used = svc.create(ref="c1").name
    (tmp_path / "volumes" / anon / "_data" / "f").write_bytes(b"12345")
    report = svc.prune({})
    assert report == {"VolumesDeleted": [anon], "SpaceReclaimed": 5}
    assert svc.prune({"all": ["true"]})["VolumesDeleted"] == ["named"]
    assert svc.prune({}, all_volumes=True)["VolumesDeleted"] is None
    assert {v["Name"] for v in svc.list()[0]} == {used}
    with pytest.raises(InvalidArgument, match="invalid filter 'until'"):
        svc.prune({"until": ["1h"]})


def test_mounts_are_per_user_and_usage_counts(svc, tmp_path):
    svc.create("mm", ref="c1")
    path = svc.mount("mm", "c1")
    assert svc.mount("mm", "c1") == path and svc.mounted_by("mm") == {"c1"}
    svc.unmount("mm", "c1")
    svc.unmount("mm", "c1")
    assert svc.mounted_by("mm") == set()
    (tmp_path / "volumes" / "mm" / "_data" / "f").write_bytes(b"x" * 10)
    (usage,) = svc.usage()
    assert usage["UsageData"] == {"RefCount": 1, "Size": 10}
