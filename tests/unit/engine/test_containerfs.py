"""Docker's `cp` path rules and tar streams over a directory standing in for a container's root
(no root privileges needed: openat2 RESOLVE_IN_ROOT works for any user)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile

import pytest

from dockyard.errdefs import Forbidden, InvalidArgument, NotFound
from dockyard.engine import archivetar, containerfs as cfs
from dockyard.engine.archive import without_init_paths


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "data" / "sub").mkdir(parents=True)
    (r / "data" / "f").write_text("hi\n")
    os.link(r / "data" / "f", r / "data" / "hard")
    os.symlink("/etc", r / "data" / "etclink")
    os.symlink("../../../../../../..", r / "data" / "up")
    os.mkfifo(r / "data" / "fifo")
    # a file outside the root with the same name as one inside: reaching it would be an escape
    (tmp_path / "secret").write_text("host\n")
    (r / "secret").write_text("container\n")
    return r


@pytest.fixture
def fs(root):
    with cfs.ContainerFS.of_directory(str(root), "c" * 64) as f:
        yield f


def test_abs_path_keeps_trailing_dot_and_slash():
    assert cfs.abs_path("data") == "/data"
    assert cfs.abs_path("/data/") == "/data/"
    assert cfs.abs_path("/data/.") == "/data/."
    assert cfs.abs_path("/../../data/../etc") == "/etc"
    assert cfs.abs_path("/") == "/"


def test_go_file_mode_matches_go_bits():
    assert cfs.go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert cfs.go_file_mode(stat.S_IFLNK | 0o777) == 134218239  # what dockerd reports for a link
    assert cfs.go_file_mode(stat.S_IFREG | 0o4755) == (1 << 23) | 0o755
    assert cfs.go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666


def test_rfc3339_nano_drops_trailing_zeros():
    assert cfs.rfc3339_nano(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert cfs.rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_pseudo_mounts_from_mountinfo():
    text = ("100 99 0:50 / / rw - overlay overlay rw\n"
            "101 100 0:51 / /proc rw,nosuid - proc proc rw\n"
            "102 100 0:52 / /dev rw - tmpfs tmpfs rw\n"
            "103 102 0:53 / /dev/pts rw - devpts devpts rw\n"
            "104 100 0:54 / /sys ro - sysfs sysfs ro\n")
    assert cfs.pseudo_mount_ids(text) == {101, 103, 104}


@pytest.mark.parametrize("path", ["/data/up/secret", "/data/up/../../secret", "/../../secret",
                                  "/data/up/data/up/secret"])
def test_paths_resolve_inside_the_root(fs, path):
    doc, fd, base, st = fs.path_stat(path)
    os.close(fd)
    assert doc["name"] == "secret" and doc["size"] == len("container\n")


def test_path_stat_of_symlink_is_not_followed_and_names_its_target(fs):
    doc, fd, _base, _st = fs.path_stat("/data/etclink")
    os.close(fd)
    assert doc["linkTarget"] == "/etc" and doc["mode"] & cfs.GO_MODE_SYMLINK
    doc, fd, _base, _st = fs.path_stat("/data/etclink/")  # a trailing slash follows it
    os.close(fd)
    assert doc["name"] == "etclink" and doc["mode"] & cfs.GO_MODE_DIR and doc["linkTarget"] == ""
    doc, fd, _base, _st = fs.path_stat("/data/up")
    os.close(fd)
    assert doc["linkTarget"] == "/"


def test_missing_paths_are_not_found(fs):
    with pytest.raises(NotFound, match="Could not find the file /nope"):
        fs.path_stat("/nope")
    with pytest.raises(NotFound):
        fs.path_stat("/data/f/below")
    with pytest.raises(NotFound):  # cleaned as text first (Go's filepath.Join): /data/secret
        fs.path_stat("/data/etclink/../secret")


def _tar_names(path: str, fs) -> tuple[dict, list[tarfile.TarInfo]]:
    out = io.BytesIO()
    doc = archivetar.write_path(fs, path, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return doc, tar.getmembers()


def test_archive_names_are_rebased_as_dockerd_does(fs):
    doc, members = _tar_names("/data", fs)
    names = [m.name for m in members]
    assert names[0] == "data" and "data/sub" in names and "data/f" in names
    by_name = {m.name: m for m in members}
    assert by_name["data/hard"].islnk() and by_name["data/hard"].linkname == "data/f"
    assert by_name["data/etclink"].issym() and by_name["data/etclink"].linkname == "/etc"
    assert by_name["data/fifo"].isfifo()
    _doc, members = _tar_names("/data/.", fs)
    assert members[0].name == "." and "./f" in [m.name for m in members]
    _doc, members = _tar_names("/data/etclink/", fs)  # followed, named as asked
    assert [m.name for m in members] == ["etclink", "etclink/passwd"]
    doc, members = _tar_names("/data/up/secret", fs)
    assert [m.name for m in members] == ["secret"]
    assert members[0].size == len("container\n")


def _tar(*entries) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for ti, data in entries:
            ti.uid, ti.gid = os.getuid(), os.getgid()
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return out


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), 0o640
    return ti, data


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, target
    return ti, None


def test_extract_writes_files_with_their_modes(fs, root):
    archivetar.extract_to(fs, "/data/sub", _tar(_file("a/b/c.txt", b"hello")), chown=None,
                          no_overwrite_dir_non_dir=True, readonly_rootfs=False)
    target = root / "data" / "sub" / "a" / "b" / "c.txt"
    assert target.read_bytes() == b"hello" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_extract_cannot_leave_the_destination(fs, root, tmp_path):
    evil = _tar(_link("esc", "/"), _file("esc/secret", b"pwned"),
                _link("up", "../../../.."), _file("up/secret2", b"pwned"),
                _file("../../../../secret3", b"pwned"),
                _link("hl", "../../../../secret", tarfile.LNKTYPE))
    archivetar.extract_to(fs, "/data/sub", evil, chown=None, no_overwrite_dir_non_dir=False,
                          readonly_rootfs=False)
    assert (tmp_path / "secret").read_text() == "host\n"
    assert (root / "secret").read_text() == "container\n"
    assert not (tmp_path / "secret2").exists() and not (tmp_path / "secret3").exists()
    # what landed, landed inside the destination (which is the root for the archive's names)
    assert (root / "data" / "sub" / "secret").read_bytes() == b"pwned"
    assert (root / "data" / "sub" / "secret3").read_bytes() == b"pwned"
    assert os.path.samefile(root / "data" / "sub" / "hl", root / "data" / "sub" / "secret")


def test_extract_through_symlinked_destination_stays_in_the_container(fs, root, tmp_path):
    os.symlink("/", root / "data" / "hostroot")
    archivetar.extract_to(fs, "/data/hostroot/../..", _tar(_file("secret", b"new")), chown=None,
                          no_overwrite_dir_non_dir=True, readonly_rootfs=False)
    assert (tmp_path / "secret").read_text() == "host\n"
    assert (root / "secret").read_bytes() == b"new"


def test_extract_refuses_dir_non_dir_swaps_when_asked(fs, root):
    with pytest.raises(InvalidArgument, match="cannot overwrite non-directory"):
        archivetar.extract_to(fs, "/data", _tar(_dir("f")),
                              chown=None, no_overwrite_dir_non_dir=True, readonly_rootfs=False)
    with pytest.raises(InvalidArgument, match="cannot overwrite directory"):
        archivetar.extract_to(fs, "/data", _tar(_file("sub")), chown=None,
                              no_overwrite_dir_non_dir=True, readonly_rootfs=False)
    archivetar.extract_to(fs, "/data", _tar(_file("sub", b"now a file")), chown=None,
                          no_overwrite_dir_non_dir=False, readonly_rootfs=False)
    assert (root / "data" / "sub").read_bytes() == b"now a file"


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    return ti, None


def test_extract_point_must_be_a_directory_and_rootfs_writable(fs):
    with pytest.raises(InvalidArgument, match="extraction point is not a directory"):
        archivetar.extract_to(fs, "/data/f", _tar(_file("x")), chown=None,
                              no_overwrite_dir_non_dir=True, readonly_rootfs=False)
    with pytest.raises(NotFound):
        archivetar.extract_to(fs, "/nowhere", _tar(_file("x")), chown=None,
                              no_overwrite_dir_non_dir=True, readonly_rootfs=False)
    with pytest.raises(Forbidden, match="read-only"):
        archivetar.extract_to(fs, "/data", _tar(_file("x")), chown=None,
                              no_overwrite_dir_non_dir=True, readonly_rootfs=True)


def test_path_stat_header_is_base64_json():
    value = cfs.encode_path_stat({"name": "f", "size": 3, "mode": 420, "mtime": "x", "linkTarget": ""})
    assert json.loads(base64.b64decode(value)) == {"name": "f", "size": 3, "mode": 420,
                                                   "mtime": "x", "linkTarget": ""}


def test_diff_leaves_out_the_init_paths():
    found = [("A", "/data"), ("C", "/etc"), ("A", "/etc/hosts"), ("A", "/etc/resolv.conf"),
             ("C", "/tmp"), ("A", "/tmp/x"), ("C", "/dev"), ("A", "/dev/console")]
    assert without_init_paths(found) == [("A", "/data"), ("C", "/tmp"), ("A", "/tmp/x")]
    assert without_init_paths([("C", "/etc"), ("A", "/etc/hosts"), ("A", "/etc/new")]) == [
        ("C", "/etc"), ("A", "/etc/new")]
