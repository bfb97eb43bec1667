"""apply_layer against the real kernel, as root: every entry kind, owners, devices, xattrs,
whiteouts in both forms (and an overlay mount of the result), and hostile layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
from pathlib import Path

import pytest
import zstandard

from dockyard.errdefs import InvalidArgument
from dockyard.image.layer import apply_layer
from dockyard.testing.layers import T0, entry, layer  # noqa: F401

# security.capability, VFS_CAP_REVISION_2 with the effective flag, permitting CAP_NET_BIND_SERVICE
CAP_NET_BIND = b"\x01\x00\x00\x02" + (1 << 10).to_bytes(4, "little") + bytes(12)


def xattrs(path: Path) -> dict[str, bytes]:
    return {k: os.getxattr(path, k, follow_symlinks=False) for k in os.listxattr(path, follow_symlinks=False)}


def tree(root: Path) -> dict[str, tuple]:
    """Everything about every path under ``root`` (not following symlinks)."""
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
            out[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev,
                                                st.st_mtime_ns, content, xattrs(path))
    return out


def apply(blob: bytes, target: Path, form: str = "overlay", **kw):
    return apply_layer(io.BytesIO(blob), str(target), form=form, **kw)


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "target"
    path.mkdir()
    return path


@pytest.fixture
def canary(tmp_path):
    """A directory next to the target that no layer may change."""
    path = tmp_path / "canary"
    path.mkdir()
    (path / "secret").write_text("secret")
    os.setxattr(path / "secret", "user.mark", b"canary")
    (path / "sub").mkdir()
    before = tree(path)
    yield path
    assert tree(path) == before, "a layer changed something outside its target"


def test_every_entry_kind_with_owners_modes_times_and_xattrs(target):
    big = os.urandom(3 << 20)
    long_name = "deep/" * 60 + "file"
    blob = layer(
        entry("usr/", "dir", mode=0o755, mtime=T0 + 10),
        entry("usr/big", data=big, mode=0o640, uid=1000, gid=2000, mtime=T0 + 1,
              xattrs={"user.comment": b"hi", "trusted.note": b"\x00\xff", "security.capability": CAP_NET_BIND}),
        entry("usr/suid", data=b"s", mode=0o4755, uid=0, gid=0),
        entry("usr/sgid", data=b"g", mode=0o2711, uid=1000, gid=2000),
        entry("tmp/", "dir", mode=0o1777),
        entry("usr/link", "symlink", link="big", uid=1000, gid=2000, mtime=T0 + 2),
        entry("usr/hard", "hardlink", link="usr/big"),
        entry("dev/", "dir"),
        entry("dev/null", "char", mode=0o666, dev=(1, 3)),
        entry("dev/loop7", "block", mode=0o660, gid=6, dev=(7, 7)),
        entry("run/fifo", "fifo", mode=0o620, uid=5),
        entry(long_name, data=b"long"),
        entry("caf\udce9", data=b"not utf-8"),
        entry("usr/emptydir/", "dir", mode=0o700, uid=1000, gid=2000, mtime=T0 + 3,
              xattrs={"trusted.dir": b"1"}),
    )
    result = apply(blob, target)
    assert result.diff_id == "sha256:" + hashlib.sha256(blob).hexdigest()
    got = tree(target)
    mode, uid, gid, _, mtime, content, xa = got["usr/big"]
    assert (stat.S_IMODE(mode), uid, gid, mtime, content) == (
        0o640, 1000, 2000, (T0 + 1) * 10**9, hashlib.sha256(big).hexdigest())
    assert xa == {"user.comment": b"hi", "trusted.note": b"\x00\xff", "security.capability": CAP_NET_BIND}
    assert stat.S_IMODE(got["usr/suid"][0]) == 0o4755
    assert stat.S_IMODE(got["usr/sgid"][0]) == 0o2711 and got["usr/sgid"][1:3] == (1000, 2000)
    assert stat.S_IMODE(got["tmp"][0]) == 0o1777
    assert got["usr/link"][1:3] == (1000, 2000) and got["usr/link"][4:6] == ((T0 + 2) * 10**9, "big")
    assert (target / "usr/hard").stat().st_ino == (target / "usr/big").stat().st_ino
    assert stat.S_ISCHR(got["dev/null"][0]) and got["dev/null"][3] == os.makedev(1, 3)
    assert stat.S_IMODE(got["dev/null"][0]) == 0o666
    assert stat.S_ISBLK(got["dev/loop7"][0]) and got["dev/loop7"][2:4] == (6, os.makedev(7, 7))
    assert stat.S_ISFIFO(got["run/fifo"][0]) and got["run/fifo"][1] == 5
    assert (target / long_name).read_bytes() == b"long"
    assert os.path.exists(os.fsencode(target) + b"/caf\xe9")
    assert got["usr"][4] == (T0 + 10) * 10**9  # set after its contents were written
    assert got["usr/emptydir"][1:3] == (1000, 2000) and got["usr/emptydir"][6] == {"trusted.dir": b"1"}
    assert result.size == len(big) + 1 + 1 + 4 + len(b"not utf-8")


def test_overlay_form_encodes_whiteouts_for_overlayfs(target):
    apply(layer(entry(".wh.gone", mode=0o600, uid=7, gid=8, mtime=T0 + 5),
                entry("opq/", "dir"), entry("opq/.wh..wh..opq"), entry("opq/mine", data=b"m"),
                entry(".wh.again"), entry("again/", "dir"),
                entry("sub/.wh.x"),  # the parent is made to hold the whiteout
                entry("f", data=b"x", xattrs={"trusted.overlay.redirect": b"/etc", "user.ok": b"1"}),
                entry("own", data=b"o"), entry(".wh.own")), target)
    st = (target / "gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (7, 8, (T0 + 5) * 10**9)
    assert os.getxattr(target / "opq", "trusted.overlay.opaque") == b"y"
    assert os.listdir(target / "opq") == ["mine"]
    # a directory over this layer's own whiteout must hide the lower directory too
    assert (target / "again").is_dir() and os.getxattr(target / "again", "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR((target / "sub/x").lstat().st_mode)
    assert xattrs(target / "f") == {"user.ok": b"1"}  # overlayfs' own xattrs never come from a layer
    assert (target / "own").read_bytes() == b"o"


LOWER = layer(entry("a", data=b"a"), entry("b", data=b"b"), entry("d/", "dir"), entry("d/1", data=b"1"),
              entry("d/2", data=b"2"), entry("e/", "dir"), entry("e/keep", data=b"k"),
              entry("e/sub/", "dir"), entry("e/sub/deep", data=b"deep"))
UPPER = layer(entry(".wh.a"), entry("d/", "dir"), entry("d/.wh..wh..opq"), entry("d/3", data=b"3"),
              entry("e/", "dir"), entry("e/.wh.sub"), entry("e/new", data=b"n"))
VISIBLE = {"b", "d", "d/3", "e", "e/keep", "e/new"}


@pytest.mark.requires("overlayfs")
def test_overlay_layers_mounted_show_the_merged_tree(tmp_path):
    lower, upper, mnt = tmp_path / "l1", tmp_path / "l2", tmp_path / "mnt"
    for path in (lower, upper, mnt):
        path.mkdir()
    apply(LOWER, lower)
    apply(UPPER, upper)
    # a private mount namespace: the mount goes away with the shell
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
         f"mount -t overlay overlay -o lowerdir={upper}:{lower} {mnt}; cd {mnt}; find . -mindepth 1"],
        check=True, capture_output=True, text=True).stdout
    assert {line[2:] for line in out.split()} == VISIBLE


def test_native_form_gives_the_same_tree(target):
    apply(LOWER, target, form="native")
    apply(UPPER, target, form="native")
    assert set(tree(target)) == VISIBLE


# -- hostile layers -----------------------------------------------------------------------

def _attacks(canary: Path) -> dict[str, tuple[list, str | None]]:
    """name -> (entries, the path inside the target that the attack's write lands on, or None
    if the layer must be refused)."""
    c = str(canary)
    inside = c.lstrip("/")
    return {
        "dotdot": ([entry("../canary/secret", data=b"pwned")], None),
        "dotdot-deep": ([entry("x/../../canary/secret", data=b"pwned")], None),
        "absolute": ([entry(c + "/secret", data=b"pwned")], inside + "/secret"),
        "relative-symlink-parent": ([entry("esc", "symlink", link="../../../canary"),
                                     entry("esc/secret", data=b"pwned")], "canary/secret"),
        "absolute-symlink-parent": ([entry("esc", "symlink", link=c), entry("esc/secret", data=b"pwned")],
                                    inside + "/secret"),
        "symlink-chain": ([entry("a", "symlink", link="b"), entry("b", "symlink", link=c + "/sub"),
                           entry("a/new", data=b"pwned")], inside + "/sub/new"),
        "symlink-loop": ([entry("a", "symlink", link="b"), entry("b", "symlink", link="a"),
                          entry("a/x", data=b"pwned")], None),
        "dir-replaced-by-symlink": ([entry("d/", "dir"), entry("d/f", data=b"f"), entry("d", "symlink", link=c),
                                     entry("d/secret", data=b"pwned")], inside + "/secret"),
        "file-over-symlink": ([entry("s", "symlink", link=c + "/secret"), entry("s", data=b"pwned")], "s"),
        "dir-over-symlink": ([entry("s", "symlink", link=c), entry("s/", "dir", mode=0o777),
                              entry("s/secret", data=b"pwned")], "s/secret"),
        "metadata-through-symlink": ([entry("s", "symlink", link=c + "/secret", uid=1234, mode=0o777,
                                            xattrs={"trusted.x": b"1"})], "s"),
        "hardlink-dotdot": ([entry("h", "hardlink", link="../canary/secret")], None),
        "hardlink-through-symlink-parent": ([entry("p", "symlink", link=c), entry("h", "hardlink", link="p/secret")],
                                            None),
        "hardlink-to-outside-symlink": ([entry("s", "symlink", link=c + "/secret"), entry("h", "hardlink", link="s"),
                                         entry("h", data=b"pwned")], "h"),
        "whiteout-dotdot": ([entry(".wh...")], None),
        "whiteout-escape": ([entry("../.wh.canary")], None),
        "whiteout-through-symlink": ([entry("p", "symlink", link=c), entry("p/.wh.secret")], None),
        "opaque-through-symlink": ([entry("p", "symlink", link=c), entry("p/.wh..wh..opq")], None),
    }


ATTACKS = sorted(_attacks(Path("/c")))


@pytest.mark.parametrize("form", ["overlay", "native"])
@pytest.mark.parametrize("name", ATTACKS)
def test_hostile_layers_change_nothing_outside(target, canary, name, form):
    entries, lands = _attacks(canary)[name]
    blob = layer(*entries)
    if lands is None and not name.startswith(("whiteout-through", "opaque-through")):
        with pytest.raises(InvalidArgument):
            apply(blob, target, form=form)
        return
    apply(blob, target, form=form)
    if lands is not None:
        assert (target / lands).exists() or (target / lands).is_symlink()
    # (the canary fixture checks that nothing outside changed)


def test_devices_can_be_refused(target):
    with pytest.raises(InvalidArgument, match="device"):
        apply(layer(entry("dev/sda", "block", dev=(8, 0))), target, allow_devices=False)
    assert not (target / "dev/sda").exists()
    apply(layer(entry(".wh.x"), entry("fifo", "fifo")), target, allow_devices=False)  # whiteouts and fifos are fine


def test_every_overlay_xattr_is_dropped(target):
    apply(layer(entry("d/", "dir", xattrs={"trusted.overlay.opaque": b"y", "trusted.overlay.redirect": b"/x",
                                          "user.overlay.opaque": b"y", "trusted.keep": b"k"})), target)
    assert xattrs(target / "d") == {"trusted.keep": b"k"}


# -- compression and truncation -------------------------------------------------------------

BLOB = layer(entry("a", data=os.urandom(200_000)), entry("b/", "dir"), entry("b/c", data=b"c" * 10_000))


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress], ids=["gzip", "zstd"])
def test_compressed_layers(target, compress):
    packed = compress(BLOB)
    want = "sha256:" + hashlib.sha256(BLOB).hexdigest()
    assert apply(packed, target, expected_diff_id=want).diff_id == want
    assert (target / "b/c").read_bytes() == b"c" * 10_000


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.ZstdCompressor().compress, lambda b: b],
                         ids=["gzip", "zstd", "none"])
@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_layers(target, compress, fraction):
    packed = compress(BLOB)
    with pytest.raises(InvalidArgument, match="unexpected end of layer"):
        apply(packed[:int(len(packed) * fraction)], target)
