"""Applying and diffing layers in the native form, into temp dirs, without privileges.

Entries carry the test's own uid/gid, so nothing here needs root; devices, other owners,
trusted.* xattrs and the overlay form are tested in tests/integration.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.errdefs import InvalidArgument
from dockyard.image.layer import Change, apply_layer, changes, diff_layer

UID, GID = os.getuid(), os.getgid()
T0 = 1_600_000_000


def entry(name: str, kind: str = "file", data: bytes = b"", *, mode: int | None = None,
          mtime: int = T0, link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE}[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid, info.mtime, info.linkname = UID, GID, mtime, link
    if kind == "file":
        info.size = len(data)
        return info, data
    return info, None


def layer(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def apply(blob: bytes, target: Path, **kw):
    return apply_layer(io.BytesIO(blob), str(target), form="native", **kw)


def tree(root: Path) -> dict[str, tuple]:
    """What a tree holds, for comparisons: type, mode, mtime and content of every path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and os.access(path, os.R_OK):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = None
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                                st.st_uid, st.st_gid, st.st_mtime_ns, what)
    return out


def names(blob: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


@pytest.fixture
def dirs(tmp_path):
    """target/ with a canary/ next to it that nothing may touch."""
    target, canary = tmp_path / "target", tmp_path / "canary"
    target.mkdir()
    canary.mkdir()
    (canary / "secret").write_text("secret")
    before = tree(canary)
    yield target, canary
    assert tree(canary) == before, "something outside the target changed"


# -- apply ----------------------------------------------------------------------------------

def test_apply_files_dirs_symlinks_hardlinks(dirs):
    target, _ = dirs
    blob = layer(entry("etc/", "dir", mode=0o750, mtime=T0 + 1),
                 entry("etc/passwd", data=b"root:x:0:0\n", mode=0o644, mtime=T0 + 2),
                 entry("etc/shadow", data=b"", mode=0o000),
                 entry("etc/motd", "symlink", link="../usr/share/motd", mtime=T0 + 3),
                 entry("etc/pw-link", "hardlink", link="etc/passwd"),
                 entry("bin/", "dir"),
                 entry("bin/tool", data=b"\x7fELF" * 1000, mode=0o4755),
                 entry("ro/", "dir", mode=0o555),
                 entry("ro/inside", data=b"written before ro/ became read-only"),
                 entry("pipe", "fifo", mode=0o640))
    result = apply(blob, target)
    assert result.diff_id == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert result.size == 11 + 4000 + len(b"written before ro/ became read-only")
    got = tree(target)
    assert got["etc"][1:] == (0o750, UID, GID, (T0 + 1) * 10**9, None)  # dir mtime after its contents
    assert got["etc/passwd"][1] == 0o644 and got["etc/passwd"][4] == (T0 + 2) * 10**9
    assert got["etc/shadow"][1] == 0o000
    assert got["etc/motd"][5] == "../usr/share/motd" and got["etc/motd"][4] == (T0 + 3) * 10**9
    assert os.stat(target / "etc/pw-link").st_ino == os.stat(target / "etc/passwd").st_ino
    assert got["bin/tool"][1] == 0o4755
    assert got["ro"][1] == 0o555 and (target / "ro/inside").exists()
    assert stat.S_ISFIFO(got["pipe"][0]) and got["pipe"][1] == 0o640


def test_apply_checks_the_expected_diff_id(dirs):
    target, _ = dirs
    blob = layer(entry("a", data=b"a"))
    apply(blob, target, expected_diff_id="sha256:" + hashlib.sha256(blob).hexdigest())
    with pytest.raises(InvalidArgument, match="diff ID mismatch"):
        apply(blob, target, expected_diff_id="sha256:" + "0" * 64)
    with pytest.raises(InvalidArgument):
        apply(blob, target, expected_diff_id="sha256:nothex")


def test_later_entries_replace_earlier_ones(dirs):
    target, _ = dirs
    apply(layer(entry("d/", "dir"), entry("d/old", data=b"old"), entry("f", data=b"file"),
                entry("same", data=b"first"), entry("link", "hardlink", link="same"),
                entry("d", data=b"a file over a directory"),
                entry("f/", "dir"), entry("f/new", data=b"a directory over a file"),
                entry("same", data=b"second")), target)
    assert (target / "d").read_bytes() == b"a file over a directory"
    assert (target / "f/new").exists()
    assert (target / "same").read_bytes() == b"second"
    assert (target / "link").read_bytes() == b"first"  # tar semantics: the old inode stays linked


def test_a_directory_entry_merges_with_the_lower_one(dirs):
    target, _ = dirs
    (target / "d").mkdir()
    (target / "d/lower").write_text("lower")
    apply(layer(entry("d/", "dir", mode=0o700), entry("d/upper", data=b"upper")), target)
    assert sorted(os.listdir(target / "d")) == ["lower", "upper"]
    assert stat.S_IMODE((target / "d").stat().st_mode) == 0o700


def test_parents_are_made_when_the_layer_omits_them(dirs):
    target, _ = dirs
    apply(layer(entry("a/b/c/file", data=b"x")), target)
    assert (target / "a/b/c/file").read_bytes() == b"x"
    assert stat.S_IMODE((target / "a/b").stat().st_mode) == 0o755


def test_native_whiteouts_delete_lower_entries(dirs):
    target, _ = dirs
    apply(layer(entry("keep", data=b"k"), entry("gone", data=b"g"), entry("dir/", "dir"),
                entry("dir/x", data=b"x"), entry("opq/", "dir"), entry("opq/lower1", data=b"1"),
                entry("opq/sub/", "dir"), entry("opq/sub/lower2", data=b"2")), target)
    apply(layer(entry(".wh.gone"), entry(".wh.dir"), entry(".wh.never-was"),
                entry("missing/.wh.x"),  # nothing to delete: no-op, no directory made
                entry("opq/", "dir"), entry("opq/.wh..wh..opq"), entry("opq/sub/", "dir"),
                entry("opq/sub/new", data=b"n"), entry("opq/top", data=b"t")), target)
    assert sorted(os.listdir(target)) == ["keep", "opq"]
    assert sorted(os.listdir(target / "opq")) == ["sub", "top"]
    assert os.listdir(target / "opq/sub") == ["new"]


def test_a_whiteout_does_not_delete_its_own_layers_entry(dirs):
    # OCI layer.md: whiteouts apply to lower layers; an entry of the same layer stays
    target, _ = dirs
    (target / "d").mkdir()
    (target / "d/lower").write_text("lower")
    apply(layer(entry("f", data=b"mine"), entry(".wh.f"),
                entry("d/", "dir"), entry("d/mine", data=b"m"), entry(".wh.d")), target)
    assert (target / "f").read_bytes() == b"mine"
    assert os.listdir(target / "d") == ["mine"]  # over its own directory a whiteout is opacity


def test_aufs_metadata_is_skipped(dirs):
    target, _ = dirs
    apply(layer(entry(".wh..wh.plnk/", "dir"), entry(".wh..wh.plnk/123.4", data=b"x"),
                entry(".wh..wh.aufs", data=b"")), target)
    assert os.listdir(target) == []


def test_the_root_entry_sets_the_roots_metadata(dirs):
    target, _ = dirs
    apply(layer(entry("./", "dir", mode=0o711, mtime=T0), entry("./a", data=b"a")), target)
    st = target.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o711, T0 * 10**9)
    with pytest.raises(InvalidArgument):
        apply(layer(entry(".", data=b"not a dir")), target)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_many_directories_and_no_leaked_descriptors(dirs):
    target, _ = dirs
    entries = []
    for i in range(400):  # more directories than the descriptor cache holds
        entries += [entry(f"d{i}/", "dir", mode=0o750, mtime=T0 + i), entry(f"d{i}/sub/", "dir", mtime=T0),
                    entry(f"d{i}/sub/f", data=b"f")]
    before = _open_fds()
    apply(layer(*entries), target)
    with pytest.raises(InvalidArgument):
        apply(layer(entry("x/", "dir"), entry("x/y", data=b"y"), entry("../escape", data=b"")), target)
    assert _open_fds() == before
    for i in (0, 199, 399):
        st = (target / f"d{i}").stat()
        assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o750, (T0 + i) * 10**9)


# -- hostile names, unprivileged ----------------------------------------------------------

@pytest.mark.parametrize("attack", [
    [entry("../canary/secret", data=b"pwned")],
    [entry("a/../../canary/secret", data=b"pwned")],
    [entry("x", "hardlink", link="../canary/secret")],
    [entry(".wh...")],
    [entry("sub/.wh...")],
    [entry("../.wh.canary")],
    [entry("a/.wh.b/c", data=b"")],
])
def test_breakouts_are_refused(dirs, attack):
    target, _ = dirs
    with pytest.raises(InvalidArgument):
        apply(layer(*attack), target)


def test_absolute_names_and_symlinked_parents_stay_inside(dirs):
    target, canary = dirs
    apply(layer(entry("/abs", data=b"inside"),
                entry("up", "symlink", link="../canary"),
                entry("up/secret", data=b"through a relative symlink"),
                entry("abs-link", "symlink", link=str(canary)),
                entry("abs-link/secret", data=b"through an absolute symlink"),
                entry("to-secret", "symlink", link=str(canary / "secret")),
                entry("to-secret", data=b"replaces the symlink, not its target"),
                entry("hl", "hardlink", link="up/secret")), target)
    assert (target / "abs").read_bytes() == b"inside"
    assert (target / "canary/secret").read_bytes() == b"through a relative symlink"
    assert (target / str(canary).lstrip("/") / "secret").read_bytes() == b"through an absolute symlink"
    assert not (target / "to-secret").is_symlink()
    assert os.stat(target / "hl").st_ino == os.stat(target / "canary/secret").st_ino


def test_devices_can_be_refused(dirs):
    target, _ = dirs
    with pytest.raises(InvalidArgument, match="device"):
        apply(layer(entry("null", "char")), target, allow_devices=False)


def test_bad_arguments():
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(b""), "/nonexistent", form="aufs")
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(b""), "/nonexistent", compression="xz")
    with pytest.raises(InvalidArgument):
        diff_layer("/nonexistent", io.BytesIO(), form="aufs")
    with pytest.raises(InvalidArgument):
        diff_layer("/nonexistent", io.BytesIO(), form="native", lower=["/a", "/b"])


# -- diff and changes -----------------------------------------------------------------------

@pytest.fixture
def lower_upper(tmp_path):
    """A lower tree and an upper copy of it with some changes made."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    apply(layer(entry("etc/", "dir"), entry("etc/hosts", data=b"127.0.0.1 localhost\n"),
                entry("etc/same-size", data=b"aaaa"), entry("etc/untouched", data=b"u"),
                entry("var/", "dir"), entry("var/cache/", "dir"), entry("var/cache/x", data=b"x"),
                entry("usr/", "dir"), entry("usr/bin/", "dir"), entry("usr/bin/sh", data=b"sh"),
                entry("usr/bin/sh-link", "symlink", link="sh")), lower.mkdir() or lower)
    shutil.copytree(lower, upper, symlinks=True)  # keeps modes and mtimes, as a native snapshot does
    (upper / "etc/hosts").write_text("127.0.0.1 localhost\n10.0.0.1 db\n")
    (upper / "etc/same-size").write_bytes(b"bbbb")  # same size, mtime put back: only content differs
    os.utime(upper / "etc/same-size", ns=(T0 * 10**9, T0 * 10**9))
    shutil.rmtree(upper / "var/cache")
    (upper / "usr/bin/sh-link").unlink()
    (upper / "usr/bin/sh-link").symlink_to("other")
    (upper / "new/deep").mkdir(parents=True)
    (upper / "new/deep/file").write_text("new")
    return lower, upper


def test_native_diff_carries_only_the_changes(lower_upper):
    lower, upper = lower_upper
    out = io.BytesIO()
    result = diff_layer(str(upper), out, lower=[str(lower)], form="native")
    blob = out.getvalue()
    assert names(blob) == ["etc/", "etc/hosts", "etc/same-size", "new/", "new/deep/", "new/deep/file",
                           "usr/", "usr/bin/", "usr/bin/sh-link", "var/", "var/.wh.cache"]
    assert result.diff_id == result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert result.size == result.compressed_size == len(blob)


def test_native_diff_applied_to_the_lower_tree_gives_the_upper_tree(lower_upper, tmp_path):
    lower, upper = lower_upper
    out = io.BytesIO()
    diff_layer(str(upper), out, lower=[str(lower)], form="native", compression="gzip")
    copy = tmp_path / "copy"
    shutil.copytree(lower, copy, symlinks=True)
    apply_layer(io.BytesIO(out.getvalue()), str(copy), form="native")
    want, got = tree(upper), tree(copy)
    # a directory's mtime is whole seconds in a tar (as in Docker's)
    strip = lambda t: {k: v[:4] + (v[4] // 10**9, v[5]) for k, v in t.items()}  # noqa: E731
    assert strip(got) == strip(want)


def test_diff_is_deterministic(lower_upper):
    lower, upper = lower_upper
    digests = set()
    for _ in range(2):
        for compression in ("none", "gzip", "zstd"):
            r = diff_layer(str(upper), io.BytesIO(), lower=[str(lower)], form="native", compression=compression)
            digests.add((compression, r.diff_id, r.digest))
    assert len(digests) == 3 and len({d[1] for d in digests}) == 1


def test_a_base_layer_diff_has_everything(lower_upper):
    lower, _ = lower_upper
    out = io.BytesIO()
    diff_layer(str(lower), out, form="native")
    assert "usr/bin/sh-link" in names(out.getvalue()) and len(names(out.getvalue())) == 11


def test_native_changes(lower_upper):
    lower, upper = lower_upper
    assert changes(str(upper), lower=[str(lower)], form="native") == [
        Change("C", "/etc"), Change("C", "/etc/hosts"), Change("C", "/etc/same-size"),
        Change("A", "/new"), Change("A", "/new/deep"), Change("A", "/new/deep/file"),
        Change("C", "/usr"), Change("C", "/usr/bin"), Change("C", "/usr/bin/sh-link"),
        Change("C", "/var"), Change("D", "/var/cache"),
    ]


def test_a_file_named_like_a_whiteout_cannot_be_diffed(tmp_path):
    (tmp_path / ".wh.x").write_text("")
    with pytest.raises(InvalidArgument):
        diff_layer(str(tmp_path), io.BytesIO(), form="native")
