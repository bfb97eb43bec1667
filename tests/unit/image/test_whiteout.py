"""The pure path and whiteout rules of image/whiteout.py."""

from __future__ import annotations

import posixpath
import stat

import pytest
from hypothesis import given, strategies as st

from dockyard.errdefs import InvalidArgument
from dockyard.image import whiteout as wh

# names made of the characters that matter to path cleaning, plus anything else
_PATHY = st.text(alphabet=st.sampled_from(["/", ".", "a", "b", "w", "h", "\0", "é", " "]), max_size=30)
_NAMES = st.one_of(_PATHY, st.text(max_size=40))


@pytest.mark.parametrize("name, parts", [
    ("etc/passwd", ("etc", "passwd")),
    ("/etc/passwd", ("etc", "passwd")),
    ("./usr//bin/./sh", ("usr", "bin", "sh")),
    ("usr/bin/../lib/", ("usr", "lib")),
    ("/../../etc/shadow", ("etc", "shadow")),  # ".." at the root of an absolute name stays there
    ("", ()),
    (".", ()),
    ("./", ()),
    ("/", ()),
    ("a/..", ()),
])
def test_clean_path(name, parts):
    assert wh.clean_path(name) == parts


@pytest.mark.parametrize("name", ["..", "../etc", "a/../../etc/passwd", "./../x", "a/\0b"])
def test_clean_path_refuses_breakout_and_nul(name):
    with pytest.raises(InvalidArgument):
        wh.clean_path(name)


@given(_NAMES)
def test_cleaned_path_is_always_inside(name):
    climbs = not name.startswith("/") and posixpath.normpath(name or ".").split("/")[0] == ".."
    if "\0" in name or climbs:
        with pytest.raises(InvalidArgument):
            wh.clean_path(name)
        return
    parts = wh.clean_path(name)
    for part in parts:
        assert part not in ("", ".", "..") and "/" not in part
    joined = posixpath.normpath(posixpath.join("/root", *parts))
    assert joined == "/root" or joined.startswith("/root/")
    # the same answer as Go's filepath.Clean of the name joined onto the root
    assert parts == tuple(p for p in posixpath.normpath("/" + name).split("/") if p)


@given(_NAMES)
def test_split_plain_agrees_with_clean_path(name):
    parts = wh.split_plain(name)
    if parts is None:
        return
    assert parts == wh.clean_path(name)
    assert all(wh.parse_whiteout(p) is None and not p.startswith(".") for p in parts)


def test_split_plain_takes_the_common_case():
    assert wh.split_plain("usr/share/doc/") == ("usr", "share", "doc")
    assert wh.split_plain("usr/.wh.doc") is None
    assert wh.split_plain("/etc") is None
    assert wh.split_plain("./etc") is None


@pytest.mark.parametrize("basename, kind", [
    ("passwd", None),
    (".profile", None),
    (".wh.passwd", wh.Whiteout("passwd")),
    (".wh..profile", wh.Whiteout(".profile")),
    (".wh..wh..opq", wh.Opaque()),
    (".wh..wh.plnk", wh.Meta()),
    (".wh..wh.aufs", wh.Meta()),
])
def test_parse_whiteout(basename, kind):
    assert wh.parse_whiteout(basename) == kind


@pytest.mark.parametrize("basename", [".wh.", ".wh..", ".wh...", ".wh.a\0b"])
def test_whiteout_must_name_an_entry_of_its_directory(basename):
    with pytest.raises(InvalidArgument):
        wh.parse_whiteout(basename)


_COMPONENT = st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and "\0" not in s and s not in (".", ".."))


@given(_COMPONENT)
def test_whiteout_name_round_trips(name):
    kind = wh.parse_whiteout(wh.whiteout_name(name))
    if name.startswith(".wh."):  # ".wh..wh.x" is AUFS metadata whatever follows
        assert kind in (wh.Whiteout(name), wh.Meta(), wh.Opaque())
    else:
        assert kind == wh.Whiteout(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_whiteout_name_refuses_non_names(name):
    with pytest.raises(InvalidArgument):
        wh.whiteout_name(name)


def test_whiteout_names_cannot_be_directories():
    wh.check_parents(("a", "b", ".wh.c"))
    with pytest.raises(InvalidArgument):
        wh.check_parents(("a", ".wh.b", "c"))
    assert wh.is_aufs_meta((".wh..wh.plnk", "123.456"))
    assert not wh.is_aufs_meta((".wh..wh.plnk",))
    assert not wh.is_aufs_meta(("a", ".wh..wh.plnk", "x"))


def test_overlay_encodings():
    assert wh.is_overlay_whiteout(stat.S_IFCHR | 0o600, 0)
    assert not wh.is_overlay_whiteout(stat.S_IFCHR | 0o600, 0x103)
    assert not wh.is_overlay_whiteout(stat.S_IFBLK, 0)
    assert not wh.is_overlay_whiteout(stat.S_IFREG, 0)


def test_layer_xattrs_drop_overlay_metadata_and_sort():
    xattrs = {"user.b": b"2", "trusted.overlay.opaque": b"y", "user.overlay.redirect": b"/x",
              "security.capability": b"\x01", "trusted.x": b"1"}
    assert list(wh.layer_xattrs(xattrs).items()) == [
        ("security.capability", b"\x01"), ("trusted.x", b"1"), ("user.b", b"2")]
