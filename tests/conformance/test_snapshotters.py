"""One behavioural suite for every snapshotter, with real mounts on the real kernel (root).

Each test drives a snapshotter through its interface and looks at the result through the
mounts it returns, as the image layer and the engine will. Where the suite checks where a write
landed, it looks at the snapshot's own ``fs`` directory (`own_fs`), the one implementation
detail both local snapshotters share. Every mount made is unmounted at teardown, even when a
test fails, and teardown fails the test if anything is still mounted under its directory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from dockyard.errdefs import Conflict, InvalidArgument
from dockyard.linux.syscalls import MNT_DETACH
from dockyard.snapshot.base import MAX_PARENTS, Kind, LocalSnapshotter
from dockyard.snapshot.mounts import Mount, mount_all, plan_mounts, unmount_all
from dockyard.snapshot.native import NativeSnapshotter
from dockyard.snapshot.overlay import OverlaySnapshotter

IMPLEMENTATIONS = [
    pytest.param(OverlaySnapshotter, id="overlay", marks=pytest.mark.requires("overlayfs")),
    pytest.param(NativeSnapshotter, id="native"),
]


def mounted_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return points


class Mounter:
    """Mounts snapshots on fresh directories and remembers them for teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.targets: list[Path] = []
        base.mkdir()

    def mount(self, mounts: list[Mount]) -> Path:
        target = self.base / f"m{len(self.targets)}"
        target.mkdir()
        self.targets.append(target)
        mount_all(mounts, str(target))
        return target

    def unmount(self, target: Path) -> None:
        unmount_all(str(target))

    def cleanup(self) -> None:
        for target in reversed(self.targets):
            try:
                unmount_all(str(target))
            except Exception:
                unmount_all(str(target), flags=MNT_DETACH)


@pytest.fixture(params=IMPLEMENTATIONS)
def snap(request, tmp_path):
    s: LocalSnapshotter = request.param(tmp_path / "root")
    yield s
    s.close()


@pytest.fixture
def mnt(tmp_path):
    m = Mounter(tmp_path / "mnt")
    try:
        yield m
    finally:
        m.cleanup()
        leftover = mounted_under(tmp_path)
        for point in reversed(leftover):
            unmount_all(point, flags=MNT_DETACH)
        assert not leftover, f"still mounted after the test: {leftover}"


def own_fs(snap: LocalSnapshotter, key: str) -> Path:
    return snap._dir(snap._meta.get(key).id) / "fs"


def layer(snap, mnt: Mounter, name: str, parent: str | None, files: dict[str, str]) -> str:
    """A committed snapshot ``name`` on ``parent`` with ``files`` written through its mount."""
    target = mnt.mount(snap.prepare(f"{name}-active", parent))
    for rel, text in files.items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text)
    mnt.unmount(target)
    snap.commit(name, f"{name}-active")
    return name


def tree(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def test_layers_stack_and_views_are_read_only(snap, mnt):
    layer(snap, mnt, "base", None, {"a": "from base", "d/x": "deep"})
    layer(snap, mnt, "second", "base", {"b": "from second", "a": "overridden"})
    view = mnt.mount(snap.view("look", "second"))
    assert tree(view) == {"a": "overridden", "b": "from second", "d/x": "deep"}
    with pytest.raises(OSError) as exc:
        (view / "new").write_text("no")
    assert exc.value.errno == errno.EROFS
    assert snap.stat("look").kind is Kind.VIEW


def test_single_layer_view_is_read_only(snap, mnt):
    layer(snap, mnt, "base", None, {"a": "1"})
    view = mnt.mount(snap.view("v", "base"))
    assert tree(view) == {"a": "1"}
    with pytest.raises(OSError) as exc:
        (view / "a").write_text("2")
    assert exc.value.errno == errno.EROFS


def test_writes_land_in_the_active_snapshot_only(snap, mnt):
    layer(snap, mnt, "base", None, {"a": "original"})
    target = mnt.mount(snap.prepare("work", "base"))
    (target / "new").write_text("fresh")
    (target / "a").write_text("modified")
    assert (own_fs(snap, "work") / "new").read_text() == "fresh"
    assert (own_fs(snap, "work") / "a").read_text() == "modified"
    assert tree(own_fs(snap, "base")) == {"a": "original"}
    parent_view = mnt.mount(snap.view("check", "base"))
    assert tree(parent_view) == {"a": "original"}


def test_deleting_a_lower_file(snap, mnt):
    layer(snap, mnt, "base", None, {"gone": "x", "kept": "y"})
    target = mnt.mount(snap.prepare("work", "base"))
    (target / "gone").unlink()
    assert sorted(os.listdir(target)) == ["kept"]
    upper = own_fs(snap, "work") / "gone"
    if isinstance(snap, OverlaySnapshotter):  # a whiteout: char device 0/0 in the upper layer
        st = os.lstat(upper)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    else:  # a copy: the file is simply gone
        assert not os.path.lexists(upper)
    mnt.unmount(target)
    snap.commit("deleted", "work")
    assert sorted(os.listdir(mnt.mount(snap.view("after", "deleted")))) == ["kept"]


def test_special_files_survive_layering(snap, mnt):
    base = mnt.mount(snap.prepare("base-active"))
    os.mknod(base / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (base / "file").write_text("data")
    os.chown(base / "file", 1234, 5678)
    os.chmod(base / "file", 0o4750)
    os.setxattr(base / "file", "user.dockyard", b"value")
    os.link(base / "file", base / "hardlink")
    os.symlink("file", base / "symlink")
    mnt.unmount(base)
    snap.commit("base", "base-active")
    child = mnt.mount(snap.prepare("child", "base"))
    st = os.lstat(child / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    st = os.lstat(child / "file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4750)
    assert os.getxattr(child / "file", "user.dockyard") == b"value"
    assert os.lstat(child / "hardlink").st_ino == st.st_ino
    assert os.readlink(child / "symlink") == "file"


def test_mounts_can_be_asked_again(snap, mnt):
    layer(snap, mnt, "base", None, {"a": "1"})
    first = snap.prepare("work", "base")
    assert snap.mounts("work") == first
    one = mnt.mount(first)
    two = mnt.mount(snap.mounts("work"))
    (one / "b").write_text("shared")
    assert (two / "b").read_text() == "shared"


def test_remove_ordering(snap, mnt):
    layer(snap, mnt, "base", None, {"a": "1"})
    target = mnt.mount(snap.prepare("child", "base"))
    with pytest.raises(Conflict, match="cannot remove snapshot with child"):
        snap.remove("base")
    mnt.unmount(target)
    child_dir = own_fs(snap, "child").parent
    snap.remove("child")
    assert not child_dir.exists()
    base_dir = own_fs(snap, "base").parent
    snap.remove("base")
    assert not base_dir.exists()
    assert list(snap.walk()) == []


def test_usage_counts_what_was_written(snap, mnt):
    target = mnt.mount(snap.prepare("work"))
    before = snap.usage("work")
    (target / "blob").write_bytes(os.urandom(1 << 20))
    after = snap.usage("work")
    assert after.size - before.size >= 1 << 20
    assert after.inodes == before.inodes + 1


def test_apparent_size_is_file_bytes_with_hard_links_once(snap, mnt):
    target = mnt.mount(snap.prepare("work"))
    before = snap.usage("work").apparent
    (target / "d").mkdir()
    (target / "d" / "five").write_bytes(b"12345")
    os.link(target / "d" / "five", target / "again")
    (target / "link").symlink_to("d/five")  # a symlink's size is its target's length
    assert snap.usage("work").apparent - before == 5 + len("d/five")


def test_127_layers_mount_and_a_128th_is_refused(snap, mnt):
    parent = layer(snap, mnt, "L0", None, {"bottom": "from the bottom layer"})
    for i in range(1, MAX_PARENTS):
        parent = layer(snap, mnt, f"L{i}", parent, {f"layer-{i}": str(i)})
    mounts = snap.prepare("top", parent)  # 127 parents
    if isinstance(snap, OverlaySnapshotter):  # absolute lowerdirs would not fit one page
        assert plan_mounts(mounts, "/mnt")[0].cwd == str(snap.root / "l")
    cwd = os.getcwd()
    target = mnt.mount(mounts)
    assert os.getcwd() == cwd
    assert (target / "bottom").read_text() == "from the bottom layer"
    assert (target / "layer-126").read_text() == "126"
    assert len(os.listdir(target)) == MAX_PARENTS
    (target / "top").write_text("writable")
    mnt.unmount(target)
    snap.commit("L127", "top")
    with pytest.raises(InvalidArgument, match="max depth exceeded"):
        snap.prepare("too-deep", "L127")
