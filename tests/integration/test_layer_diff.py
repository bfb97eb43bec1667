"""diff_layer and changes against the real kernel, as root: round trips through apply with every
entry kind, determinism, and the whiteouts overlayfs itself writes into an upper directory."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest
import zstandard

from dockyard.image.layer import Change, apply_layer, changes, diff_layer
from dockyard.testing.layers import T0, entry, layer  # noqa: F401


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            content = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                      for k in os.listxattr(path, follow_symlinks=False)}
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev,
                                                st.st_mtime_ns // 10**9, st.st_nlink, content, xattrs)
    return out


def diff(upper: Path, **kw) -> tuple[bytes, object]:
    out = io.BytesIO()
    result = diff_layer(str(upper), out, **kw)
    return out.getvalue(), result


def members(blob: bytes) -> list[tuple[str, str]]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return [(m.name, m.type.decode()) for m in tar.getmembers()]


RICH = layer(
    entry("etc/", "dir", mtime=T0 + 1),
    entry("etc/passwd", data=b"root:x:0:0\n", xattrs={"security.capability": b"\x01\x00\x00\x02" + bytes(16)}),
    entry("etc/owned", data=b"o" * 70_000, uid=1000, gid=2000, mode=0o4750,
          xattrs={"user.b": b"2", "user.a": b"\xff\x00", "trusted.t": b"t"}),
    entry("etc/hl", "hardlink", link="etc/owned"),
    entry("etc/sl", "symlink", link="/etc/passwd", uid=3),
    entry("dev/", "dir"), entry("dev/null", "char", mode=0o666, dev=(1, 3)),
    entry("dev/sda", "block", mode=0o660, gid=6, dev=(8, 0)), entry("fifo", "fifo"),
    entry(".wh.gone", mode=0o600, uid=1, mtime=T0 + 9),
    entry("opq/", "dir"), entry("opq/.wh..wh..opq"), entry("opq/x", data=b"x"),
    entry("n" * 120 + "/", "dir"), entry("n" * 120 + "/" + "m" * 150, data=b"long names"),
)


def test_diff_of_an_applied_layer_applies_to_the_same_tree(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    apply_layer(io.BytesIO(RICH), str(first))
    blob, result = diff(first)
    assert result.diff_id == result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    names = [n for n, _ in members(blob)]
    assert names.index("opq") + 1 == names.index("opq/.wh..wh..opq") < names.index("opq/x")
    # the first name in sorted order carries the data, later names link to it
    assert ("etc/hl", "0") in members(blob) and ("etc/owned", "1") in members(blob)
    assert (".wh.gone", "0") in members(blob)
    applied = apply_layer(io.BytesIO(blob), str(second))
    assert applied.diff_id == result.diff_id
    assert tree(second) == tree(first)
    assert diff(second)[1].diff_id == result.diff_id


def test_diff_is_deterministic_in_every_compression(tmp_path):
    apply_layer(io.BytesIO(RICH), str(tmp_path))
    seen = {}
    for compression in ("none", "gzip", "zstd", "gzip", "zstd", "none"):
        blob, result = diff(tmp_path, compression=compression)
        assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
        assert result.compressed_size == len(blob)
        assert seen.setdefault(compression, (result.diff_id, result.digest)) == (result.diff_id, result.digest)
        plain = {"none": lambda b: b, "gzip": lambda b: zlib.decompress(b, 31),
                 "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}[compression](blob)
        assert "sha256:" + hashlib.sha256(plain).hexdigest() == result.diff_id and len(plain) == result.size
    assert len({diff_id for diff_id, _ in seen.values()}) == 1


BASE = layer(entry("etc/", "dir"), entry("etc/hosts", data=b"127.0.0.1 localhost\n"), entry("etc/gone", data=b"g"),
             entry("dir/", "dir"), entry("dir/old1", data=b"1"), entry("dir/old2/", "dir"),
             entry("dir/old2/x", data=b"x"), entry("keep/", "dir"), entry("keep/k", data=b"k"))
SCRIPT = """
rm etc/gone
rm -rf dir && mkdir dir && echo new > dir/new
echo '10.0.0.1 db' >> etc/hosts
mkdir -p new/deep && echo f > new/deep/f && ln new/deep/f new/hl
"""


@pytest.fixture
def kernel_upper(tmp_path):
    """A lower tree and the upper directory overlayfs wrote while a shell changed the mount;
    also the merged tree's listing (type, mode, owner, size of every path)."""
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for path in (lower, upper, work, mnt):
        path.mkdir()
    apply_layer(io.BytesIO(BASE), str(lower), form="native")
    listing = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
         f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {mnt}; cd {mnt}; "
         f"{SCRIPT}\nfind . -mindepth 1 -printf '%p %y %m %U %G %s\\n' | sort"],
        check=True, capture_output=True, text=True).stdout
    return lower, upper, listing


@pytest.mark.requires("overlayfs")
def test_diff_of_a_kernel_written_upper(kernel_upper, tmp_path):
    lower, upper, listing = kernel_upper
    blob, _ = diff(upper)
    got = members(blob)
    assert ("etc/.wh.gone", "0") in got
    assert got.index(("dir", "5")) + 1 == got.index(("dir/.wh..wh..opq", "0"))
    assert ("new/hl", "1") in got and ("dir/new", "0") in got and ("etc/hosts", "0") in got
    assert not any(name.startswith("keep") for name, _ in got)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in tar for k in m.pax_headers)
    # the diff applied onto a copy of the lower tree gives what the mount showed
    copy = tmp_path / "copy"
    shutil.copytree(lower, copy, symlinks=True)
    apply_layer(io.BytesIO(blob), str(copy), form="native")
    mine = subprocess.run(f"cd {copy} && find . -mindepth 1 -printf '%p %y %m %U %G %s\\n' | sort",
                          shell=True, check=True, capture_output=True, text=True).stdout
    assert mine == listing


@pytest.mark.requires("overlayfs")
def test_changes_of_a_kernel_written_upper(kernel_upper):
    lower, upper, _ = kernel_upper
    assert changes(str(upper), lower=[str(lower)]) == [
        Change("C", "/dir"), Change("A", "/dir/new"), Change("D", "/dir/old1"), Change("D", "/dir/old2"),
        Change("C", "/etc"), Change("D", "/etc/gone"), Change("C", "/etc/hosts"),
        Change("A", "/new"), Change("A", "/new/deep"), Change("A", "/new/deep/f"), Change("A", "/new/hl"),
    ]


def test_changes_see_through_several_lower_layers(tmp_path):
    l1, l2, upper = tmp_path / "l1", tmp_path / "l2", tmp_path / "upper"
    for path in (l1, l2, upper):
        path.mkdir()
    apply_layer(io.BytesIO(layer(entry("a", data=b"a"), entry("d/", "dir"), entry("d/x", data=b"x"))), str(l1))
    apply_layer(io.BytesIO(layer(entry(".wh.a"), entry("d/", "dir"), entry("d/.wh..wh..opq"))), str(l2))
    # "a" and "d/x" are gone in the merged lower view: writing them again adds them
    apply_layer(io.BytesIO(layer(entry("a", data=b"again"), entry("d/", "dir"), entry("d/x", data=b"x"))), str(upper))
    assert changes(str(upper), lower=[str(l2), str(l1)]) == [
        Change("A", "/a"), Change("C", "/d"), Change("A", "/d/x")]
    assert changes(str(upper), lower=[str(l1)]) == [Change("C", "/a"), Change("C", "/d"), Change("C", "/d/x")]
