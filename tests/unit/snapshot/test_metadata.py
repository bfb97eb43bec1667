"""Snapshot lifecycle rules on temp directories, without mounting (no root needed).

The native snapshotter's snapshots are plain directories, so files are written straight into
``fs``; the overlay snapshotter's rules are the same code, checked here for its on-disk extras.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dockyard.errdefs import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.snapshot.base import MAX_PARENTS, Info, Kind, Snapshotter
from dockyard.snapshot.native import NativeSnapshotter
from dockyard.snapshot.overlay import OverlaySnapshotter


@pytest.fixture(params=["native", "overlay"])
def snap(request, tmp_path):
    cls = {"native": NativeSnapshotter, "overlay": OverlaySnapshotter}[request.param]
    s = cls(tmp_path / request.param, **({"options": ()} if request.param == "overlay" else {}))
    yield s
    s.close()


def fs_of(snap, key: str) -> Path:
    """Where a snapshot's own files are (for tests only)."""
    return snap._dir(snap._meta.get(key).id) / "fs"


def test_implementations_satisfy_the_protocol(snap):
    s: Snapshotter = snap  # checked statically by a type checker; by name here
    for name in ("prepare", "view", "mounts", "commit", "remove", "stat", "update", "usage",
                 "walk", "close"):
        assert callable(getattr(s, name))


def test_prepare_commit_stat_walk(snap):
    snap.prepare("base-active", labels={"a": "1"})
    info = snap.stat("base-active")
    assert (info.key, info.kind, info.parent, info.labels) == ("base-active", Kind.ACTIVE, None,
                                                              {"a": "1"})
    snap.commit("base", "base-active", labels={"b": "2"})
    with pytest.raises(NotFound):
        snap.stat("base-active")
    base = snap.stat("base")
    assert (base.kind, base.labels) == (Kind.COMMITTED, {"a": "1", "b": "2"})
    assert base.created == info.created and base.updated >= info.updated
    snap.prepare("child", "base")
    snap.view("look", "base")
    assert [(i.key, i.kind, i.parent) for i in snap.walk()] == [
        ("base", Kind.COMMITTED, None), ("child", Kind.ACTIVE, "base"), ("look", Kind.VIEW, "base")]


def test_metadata_survives_reopening(snap):
    snap.prepare("a")
    snap.commit("A", "a")
    snap.prepare("b", "A")
    snap.close()
    again = type(snap)(snap.root)
    assert [(i.key, i.kind, i.parent) for i in again.walk()] == [
        ("A", Kind.COMMITTED, None), ("b", Kind.ACTIVE, "A")]
    assert again.mounts("b")
    again.close()


def test_keys_are_one_namespace(snap):
    snap.prepare("k")
    for make in (snap.prepare, snap.view):
        with pytest.raises(AlreadyExists):
            make("k")
    snap.prepare("other")
    with pytest.raises(AlreadyExists):
        snap.commit("k", "other")
    with pytest.raises(InvalidArgument):
        snap.prepare("")


def test_parent_must_exist_and_be_committed(snap):
    with pytest.raises(NotFound):
        snap.prepare("x", "missing")
    snap.prepare("active")
    with pytest.raises(InvalidArgument, match="committed"):
        snap.prepare("x", "active")
    snap.view("v")
    with pytest.raises(InvalidArgument):
        snap.view("x", "v")
    assert [i.key for i in snap.walk()] == ["active", "v"]  # failures leave nothing behind
    assert sorted(os.listdir(snap.root / "snapshots")) == ["1", "2"]


def test_only_active_snapshots_commit(snap):
    snap.prepare("a")
    snap.commit("A", "a")
    snap.view("v", "A")
    for key in ("v", "A"):
        with pytest.raises(Conflict):
            snap.commit("new", key)
    with pytest.raises(NotFound):
        snap.commit("new", "missing")


def test_remove_rules(snap):
    snap.prepare("a")
    snap.commit("A", "a")
    snap.prepare("b", "A")
    snap.view("v", "A")
    with pytest.raises(Conflict, match="cannot remove snapshot with child"):
        snap.remove("A")
    b_dir = fs_of(snap, "b").parent
    snap.remove("b")
    assert not b_dir.exists()
    with pytest.raises(Conflict):
        snap.remove("A")  # the view is a child too
    snap.remove("v")
    snap.remove("A")
    assert list(snap.walk()) == [] and os.listdir(snap.root / "snapshots") == []
    with pytest.raises(NotFound):
        snap.remove("A")


def test_a_deferred_remove_moves_the_files_aside_for_the_caller(snap):
    snap.prepare("a")
    a_dir = fs_of(snap, "a").parent
    later: list[Path] = []
    snap.remove("a", defer=later)
    assert list(snap.walk()) == [] and not a_dir.exists()
    assert later == [a_dir.with_name(f"rm-{a_dir.name}")] and later[0].is_dir()
    snap.prepare("b")  # the store goes on; what is set aside is the caller's to delete
    snap.close()
    again = type(snap)(snap.root)  # or, after a crash, cleanup's
    assert not later[0].exists() and [i.key for i in again.walk()] == ["b"]
    again.close()


def test_mounts_only_for_active_and_views(snap):
    snap.prepare("a")
    assert snap.mounts("a")
    snap.commit("A", "a")
    with pytest.raises(Conflict):
        snap.mounts("A")
    with pytest.raises(NotFound):
        snap.mounts("a")


def test_update_replaces_labels(snap):
    snap.prepare("a", labels={"x": "1"})
    info = snap.update("a", {"y": "2"})
    assert info.labels == {"y": "2"} and snap.stat("a").labels == {"y": "2"}
    with pytest.raises(InvalidArgument):
        snap.update("a", {"y": 2})


def test_usage_counts_own_files(snap):
    snap.prepare("a")
    (fs_of(snap, "a") / "big").write_bytes(b"x" * 65536)
    (fs_of(snap, "a") / "dir").mkdir()
    os.link(fs_of(snap, "a") / "big", fs_of(snap, "a") / "dir" / "hardlink")
    usage = snap.usage("a")
    assert usage.inodes == 3  # fs, big (once, despite the hard link), dir
    assert usage.size >= 65536


def test_max_depth(snap):
    parent = None
    for i in range(MAX_PARENTS):
        snap.prepare(f"a{i}", parent)
        snap.commit(f"L{i}", f"a{i}")
        parent = f"L{i}"
    snap.prepare("top", parent)  # 127 parents: the limit
    snap.commit("L127", "top")
    with pytest.raises(InvalidArgument, match="max depth exceeded"):
        snap.prepare("too-deep", "L127")
    with pytest.raises(InvalidArgument, match="max depth exceeded"):
        snap.view("too-deep", "L127")
    assert snap.stat("L127").kind is Kind.COMMITTED


def test_cleanup_removes_what_a_crash_left(snap):
    snap.prepare("a")
    snapshots = snap.root / "snapshots"
    for leftover in ("new-abc123", "rm-7", "42"):
        (snapshots / leftover / "fs").mkdir(parents=True)
    snap.close()
    again = type(snap)(snap.root)
    assert sorted(os.listdir(snapshots)) == ["1"]
    assert [i.key for i in again.walk()] == ["a"]
    again.close()


def test_a_failed_creation_rolls_back(snap, monkeypatch):
    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(snap, "_mounts", broken)
    with pytest.raises(RuntimeError):
        snap.prepare("a")
    monkeypatch.undo()
    assert list(snap.walk()) == [] and os.listdir(snap.root / "snapshots") == []
    snap.prepare("a")  # the key is free


def test_database_is_wal(snap):
    with sqlite3.connect(snap.root / "metadata.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- native -------------------------------------------------------------------------------------


@pytest.fixture
def native(tmp_path):
    s = NativeSnapshotter(tmp_path / "native")
    yield s
    s.close()


def test_native_copies_the_parent(native):
    native.prepare("a")
    fs = fs_of(native, "a")
    (fs / "file").write_text("hello")
    (fs / "dir").mkdir(mode=0o750)
    os.symlink("file", fs / "link")
    os.link(fs / "file", fs / "dir" / "hard")
    os.chmod(fs / "file", 0o640)
    native.commit("A", "a")
    native.prepare("b", "A")
    child = fs_of(native, "b")
    assert (child / "file").read_text() == "hello"
    assert (child / "file").stat().st_mode & 0o777 == 0o640
    assert (child / "dir").stat().st_mode & 0o777 == 0o750
    assert os.readlink(child / "link") == "file"
    assert (child / "file").stat().st_ino == (child / "dir" / "hard").stat().st_ino
    assert (child / "file").stat().st_ino != (fs / "file").stat().st_ino  # a copy, not a link
    (child / "file").write_text("changed")
    assert (fs / "file").read_text() == "hello"


def test_native_mounts_are_binds(native):
    assert native.prepare("a") == [_bind(fs_of(native, "a"), "rw")]
    native.commit("A", "a")
    assert native.view("v", "A") == [_bind(fs_of(native, "A"), "ro")]  # no copy for a view
    assert native.view("empty") == [_bind(fs_of(native, "empty"), "ro")]


def _bind(path: Path, mode: str):
    from dockyard.snapshot.mounts import Mount
    return Mount("bind", str(path), ("rbind", mode))


def test_info_is_frozen():
    info = Info("k", Kind.ACTIVE, None)
    with pytest.raises(AttributeError):
        info.key = "other"  # type: ignore[misc]


def test_a_prepare_that_need_not_be_durable_commits_without_a_sync(snap):
    """A container's snapshot is made with durable=False (its own record is written at
    NORMAL): the commit runs at synchronous=NORMAL, then the store is back at FULL."""
    statements: list[str] = []
    snap._meta._conn.set_trace_callback(statements.append)
    snap.prepare("c", durable=False)
    assert "PRAGMA synchronous=NORMAL" in statements
    assert statements[-1] == "PRAGMA synchronous=FULL"
    statements.clear()
    snap.prepare("d")
    assert not any(s.startswith("PRAGMA synchronous") for s in statements)
    assert {i.key for i in snap.walk()} == {"c", "d"}
