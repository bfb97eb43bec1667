"""`read_without_mount` against the kernel: every answer it gives is what a real overlay mount
of the same layers shows; where it cannot be sure it says so (NeedsMount)."""

from __future__ import annotations

import os

import pytest

from dockyard.snapshot.mounts import Mount, NeedsMount, mount_all, read_without_mount, unmount_all


def _whiteout(path) -> None:
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


@pytest.fixture
def layers(tmp_path):
    low2, low1, upper = (tmp_path / n for n in ("low2", "low1", "upper"))
    for d in (low2, low1, upper, tmp_path / "work"):
        d.mkdir()
    # the oldest layer
    (low2 / "etc").mkdir()
    (low2 / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (low2 / "etc" / "group").write_text("root:x:0:\n")
    (low2 / "etc" / "hidden").write_text("old\n")
    (low2 / "opq").mkdir()
    (low2 / "opq" / "gone").write_text("below an opaque directory\n")
    (low2 / "kept").mkdir()
    (low2 / "kept" / "file").write_text("from low2\n")
    (low2 / "dir-then-file").mkdir()
    (low2 / "dir-then-file" / "x").write_text("x\n")
    (low2 / "link").symlink_to("etc/passwd")
    # a newer layer: replaces group, deletes hidden, makes opq opaque
    (low1 / "etc").mkdir()
    (low1 / "etc" / "group").write_text("root:x:0:\nwheel:x:10:root\n")
    _whiteout(low1 / "etc" / "hidden")
    (low1 / "opq").mkdir()
    os.setxattr(low1 / "opq", "trusted.overlay.opaque", b"y")
    (low1 / "opq" / "new").write_text("in the opaque directory\n")
    (low1 / "dir-then-file").write_text("now a file\n")
    # the container's own changes
    (upper / "etc").mkdir()
    (upper / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nme:x:1000:1000::/:/bin/sh\n")
    mount = Mount("overlay", "overlay", (f"lowerdir={low1}:{low2}", f"upperdir={upper}",
                                         f"workdir={tmp_path / 'work'}"))
    return tmp_path, mount


PATHS = ["/etc/passwd", "/etc/group", "/etc/hidden", "/etc/missing", "/opq/gone", "/opq/new",
         "/kept/file", "/dir-then-file", "/dir-then-file/x", "/etc", "/nothing/at/all"]


def test_every_answer_matches_a_real_overlay_mount(layers):
    tmp, mount = layers
    without = {p: read_without_mount([mount], p) for p in PATHS}
    target = tmp / "mnt"
    target.mkdir()
    mount_all([mount], str(target))
    try:
        real = {}
        for p in PATHS:
            full = target / p.lstrip("/")
            real[p] = full.read_bytes() if full.is_file() else None
    finally:
        unmount_all(str(target))
    assert without == real
    assert without["/etc/passwd"].endswith(b"me:x:1000:1000::/:/bin/sh\n")  # upper wins
    assert without["/etc/hidden"] is None and without["/opq/gone"] is None


def test_what_only_the_kernel_can_resolve_needs_a_mount(layers, tmp_path):
    tmp, mount = layers
    with pytest.raises(NeedsMount):
        read_without_mount([mount], "/link")  # symlinks resolve inside the mounted root
    with pytest.raises(NeedsMount):
        read_without_mount([mount, mount], "/etc/passwd")
    relative = Mount("overlay", "overlay", ("lowerdir=a:b",))
    with pytest.raises(NeedsMount):
        read_without_mount([relative], "/etc/passwd")
    with pytest.raises(NeedsMount):
        read_without_mount([Mount("tmpfs", "tmpfs")], "/etc/passwd")
    with pytest.raises(NeedsMount):
        read_without_mount([mount], "/etc/passwd", limit=8)


def test_a_bind_mount_reads_its_source(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    bind = Mount("bind", str(tmp_path), ("rbind", "rw"))
    assert read_without_mount([bind], "/etc/passwd") == b"root:x:0:0::/:/bin/sh\n"
    assert read_without_mount([bind], "/etc/group") is None
