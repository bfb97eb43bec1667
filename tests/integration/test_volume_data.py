"""Data into and out of volumes on the real file system: copy-up from an image directory, and
export/import as tar streams (a hostile archive stays inside the volume)."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from dockyard.volume.copyup import copy_up
from dockyard.volume.service import VolumeService


def test_copy_up_keeps_everything_and_only_fills_empty_volumes(tmp_path):
    src, dst = tmp_path / "image" / "data", tmp_path / "vol"
    (src / "dir").mkdir(parents=True)
    dst.mkdir()
    (src / "dir" / "file").write_text("content")
    os.chown(src / "dir" / "file", 1001, 1002)
    os.chmod(src / "dir" / "file", 0o4750)
    os.link(src / "dir" / "file", src / "hard")
    (src / "link").symlink_to("/etc/passwd")  # copied as a link, never followed
    os.mkfifo(src / "fifo")
    os.chown(src, 33, 33)
    os.chmod(src, 0o710)
    assert copy_up(str(src), str(dst))
    st = os.stat(dst / "dir" / "file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1001, 1002, 0o4750)
    assert os.stat(dst / "hard").st_ino == st.st_ino
    assert os.readlink(dst / "link") == "/etc/passwd"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    root = os.stat(dst)
    assert (root.st_uid, stat.S_IMODE(root.st_mode)) == (33, 0o710)
    (src / "later").write_text("x")
    assert not copy_up(str(src), str(dst))  # not empty any more
    assert not (dst / "later").exists()
    assert not copy_up(str(tmp_path / "nothing"), str(dst))
    other = tmp_path / "keep"
    other.mkdir()
    os.chown(other, 5, 6)
    assert copy_up(str(src), str(other), keep_dest_owner=True)
    assert (os.stat(other).st_uid, os.stat(other).st_gid) == (5, 6)


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name, kind=tarfile.REGTYPE, size=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


@pytest.fixture
def svc(tmp_path):
    s = VolumeService(str(tmp_path / "root"), socket_dirs=(), spec_dirs=())
    yield s
    s.close()


def test_export_import_round_trip(svc, tmp_path):
    svc.create("src")
    data = tmp_path / "root" / "volumes" / "src" / "_data"
    (data / "d").mkdir()
    (data / "d" / "f").write_text("hello")
    os.chown(data / "d" / "f", 7, 8)
    (data / "l").symlink_to("d/f")
    out = io.BytesIO()
    svc.export("src", out)
    out.seek(0)
    rec = svc.import_tar("dst", out)
    assert rec.name == "dst" and rec.driver == "local"
    copy = tmp_path / "root" / "volumes" / "dst" / "_data"
    assert (copy / "d" / "f").read_text() == "hello"
    assert (os.stat(copy / "d" / "f").st_uid, os.stat(copy / "d" / "f").st_gid) == (7, 8)
    assert os.readlink(copy / "l") == "d/f"
    assert svc.mounted_by("src") == svc.mounted_by("dst") == set()


def test_a_hostile_archive_stays_inside(svc, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _tar([
        (_info("../escape", size=1), b"x"),
        (_info("/abs", size=1), b"y"),
        (_info("out", tarfile.SYMTYPE, linkname=str(outside)), None),
        (_info("out/through", size=1), b"z"),
        (_info("hl", tarfile.LNKTYPE, linkname="../../../../etc/passwd"), None),
    ])
    try:
        svc.import_tar("evil", io.BytesIO(archive))
    except Exception:  # noqa: BLE001 - refusing is fine too; nothing may land outside
        pass
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "root" / "volumes" / "escape").exists()
    assert not (tmp_path / "root" / "escape").exists()
