"""Diffing a writable layer back into a layer tar, and listing its changes for `docker diff`.

Owns walking a layer directory in a fixed order and writing what changed as a deterministic tar:
entries sorted by name bytes, headers normalized (tarformat.encode_header), hardlinks within the
layer as tar hardlinks, xattrs as PAX records without overlayfs' own. Two forms, as in layer.py:
"overlay" reads an overlay upper directory (0/0 character devices are deletions, the
``trusted.overlay.opaque`` xattr is opacity; redirects and metacopy are not used by our
snapshots), "native" compares a full tree with the full tree of its parent (Docker's naive diff:
type, mode, owner, mtime, size, symlink target, device number, xattrs, and for regular files
that agree on all of those, their content).

Reads only; the layer directory should not change while it is diffed (a stopped container).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterator, NamedTuple

from dockyard.errdefs import InvalidArgument, System
from dockyard.image import tarformat as tf
from dockyard.image import whiteout as wh
from dockyard.image.tarstream import BUFSIZE, LayerSink
from dockyard.spec.digest import Digest

_FORMS = ("overlay", "native")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class DiffResult:
    diff_id: Digest  # sha256 of the uncompressed tar
    digest: Digest  # sha256 of the bytes written to ``out`` (== diff_id when uncompressed)
    size: int  # bytes of the uncompressed tar
    compressed_size: int  # bytes written to ``out``


class Change(NamedTuple):
    """One line of `docker diff`: kind "A" (added), "C" (changed) or "D" (deleted)."""

    kind: str
    path: str


@dataclass(slots=True)
class _Item:
    """One thing a diff carries: an entry, a deletion (``.wh.<name>``) or an opaque marker."""

    what: str  # "entry" | "whiteout" | "opaque"
    rel: str  # the entry's path in the layer (for a whiteout: the deleted path)
    path: str | None  # where it is on disk (None for native deletions)
    st: os.stat_result | None
    change: str | None = None  # for changes(): "A", "C", "D", or None (only a parent)


def _scandir(path: str) -> dict[str, os.DirEntry]:
    with os.scandir(path) as it:
        return {e.name: e for e in it}


def _sorted(names) -> list[str]:
    return sorted(names, key=os.fsencode)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, wh.OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _check_name(rel: str, name: str) -> None:
    if wh.parse_whiteout(name) is not None:
        raise InvalidArgument(f"cannot diff {rel!r}: a file named .wh.* would read as a whiteout")


def read_xattrs(path: str) -> dict[str, bytes]:
    """The xattrs a layer carries for ``path`` (not following a symlink), sorted."""
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    values = {}
    for key in keys:
        if wh.is_overlay_xattr(key):
            continue
        try:
            values[key] = os.getxattr(path, key, follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile, or not readable by us (trusted.* without root)
    return wh.layer_xattrs(values)


# -- walking -------------------------------------------------------------------------------


def _overlay_items(upper: str) -> Iterator[_Item]:
    """An overlay upper directory, pre-order, siblings sorted by name bytes."""

    def walk(path: str, prefix: str) -> Iterator[_Item]:
        entries = _scandir(path)
        for name in _sorted(entries):
            entry, rel = entries[name], _join(prefix, name)
            _check_name(rel, name)
            st = entry.stat(follow_symlinks=False)
            if wh.is_overlay_whiteout(st.st_mode, st.st_rdev):
                yield _Item("whiteout", rel, entry.path, st, "D")
                continue
            yield _Item("entry", rel, entry.path, st)
            if stat.S_ISDIR(st.st_mode):
                if _is_opaque(entry.path):
                    yield _Item("opaque", rel, entry.path, st)
                yield from walk(entry.path, rel)

    yield from walk(upper, "")


def _differs(upath: str, ust: os.stat_result, lpath: str, lst: os.stat_result) -> bool:
    if (ust.st_mode, ust.st_uid, ust.st_gid, ust.st_mtime_ns) != (lst.st_mode, lst.st_uid, lst.st_gid, lst.st_mtime_ns):
        return True
    mode = ust.st_mode
    if stat.S_ISREG(mode) and ust.st_size != lst.st_size:
        return True
    if stat.S_ISLNK(mode) and os.readlink(upath) != os.readlink(lpath):
        return True
    if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and ust.st_rdev != lst.st_rdev:
        return True
    if read_xattrs(upath) != read_xattrs(lpath):
        return True
    if stat.S_ISREG(mode) and (ust.st_dev, ust.st_ino) != (lst.st_dev, lst.st_ino):
        return not _same_content(upath, lpath)
    return False


def _same_content(a: str, b: str) -> bool:
    with open(os.open(a, _READ_FLAGS), "rb", buffering=0) as fa, open(os.open(b, _READ_FLAGS), "rb", buffering=0) as fb:
        while True:
            x, y = fa.read(BUFSIZE), fb.read(BUFSIZE)
            if x != y:
                return False
            if not x:
                return True


def _native_items(upper: str, lower: str | None) -> list[_Item]:
    """A full tree against its parent's full tree (or against nothing: all of it is new)."""
    items: list[_Item] = []

    def walk(prefix: str, up: str, low: str | None) -> None:
        ups = _scandir(up)
        lows = _scandir(low) if low is not None else {}
        for name in _sorted(ups.keys() | lows.keys()):
            rel = _join(prefix, name)
            if name not in ups:
                items.append(_Item("whiteout", rel, None, None, "D"))
                continue
            _check_name(rel, name)
            entry = ups[name]
            ust = entry.stat(follow_symlinks=False)
            lentry = lows.get(name)
            lst = lentry.stat(follow_symlinks=False) if lentry is not None else None
            changed = lst is None or _differs(entry.path, ust, lentry.path, lst)
            kind = ("A" if lst is None else "C") if changed else None
            if stat.S_ISDIR(ust.st_mode):
                mark = len(items)
                items.append(_Item("entry", rel, entry.path, ust, kind))
                merged = lentry.path if lst is not None and stat.S_ISDIR(lst.st_mode) else None
                walk(rel, entry.path, merged)
                if not changed and len(items) == mark + 1:
                    items.pop()  # the same directory with nothing changed inside
            elif changed:
                items.append(_Item("entry", rel, entry.path, ust, kind))

    walk("", upper, lower)
    return items


class _LowerView:
    """The lower directories of an overlay mount (topmost first) merged as overlayfs does:
    the topmost entry of a name wins, a 0/0 device hides the name below it, directories merge
    down to the first non-directory or opaque directory."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = list(layers)

    def child(self, dirs: list[str], rel: str) -> tuple[os.stat_result | None, list[str]]:
        """``rel`` as seen through the layers ``dirs`` that make up its parent: its stat (None if
        absent) and, for a directory, the layers that make it up."""
        top = None
        merged: list[str] = []
        for root in dirs:
            path = os.path.join(root, rel)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if wh.is_overlay_whiteout(st.st_mode, st.st_rdev):
                break
            top = top or st
            if not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(top.st_mode)):
                break
            merged.append(root)
            if _is_opaque(path):
                break
        return top, merged

    def names(self, dirs: list[str], rel: str) -> set[str]:
        seen: set[str] = set()
        visible: set[str] = set()
        for root in dirs:
            path = os.path.join(root, rel) if rel else root
            for name, entry in _scandir(path).items():
                if name in seen:
                    continue
                seen.add(name)
                st = entry.stat(follow_symlinks=False)
                if not wh.is_overlay_whiteout(st.st_mode, st.st_rdev):
                    visible.add(name)
        return visible


def _overlay_changes(upper: str, lower: list[str]) -> list[_Item]:
    view = _LowerView(lower)
    out: list[_Item] = []

    def walk(path: str, prefix: str, dirs: list[str]) -> None:
        entries = _scandir(path)
        for name in _sorted(entries):
            entry, rel = entries[name], _join(prefix, name)
            st = entry.stat(follow_symlinks=False)
            lst, merged = view.child(dirs, rel)
            if wh.is_overlay_whiteout(st.st_mode, st.st_rdev):
                out.append(_Item("whiteout", rel, entry.path, st, "D"))
                continue
            same_dir = (lst is not None and stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(lst.st_mode)
                        and (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
                        == (lst.st_mode, lst.st_uid, lst.st_gid, lst.st_mtime_ns))
            out.append(_Item("entry", rel, entry.path, st, None if same_dir else ("C" if lst else "A")))
            if not stat.S_ISDIR(st.st_mode):
                continue
            if lst is not None and stat.S_ISDIR(lst.st_mode) and _is_opaque(entry.path):
                out[-1].change = "C"
                for gone in view.names(merged, rel) - entries_of(entry.path):
                    out.append(_Item("whiteout", _join(rel, gone), None, None, "D"))
                merged = []
            walk(entry.path, rel, merged if lst is not None and stat.S_ISDIR(lst.st_mode) else [])

    def entries_of(path: str) -> set[str]:
        return set(_scandir(path))

    walk(upper, "", view.layers)
    return out


# -- writing -------------------------------------------------------------------------------


class _TarWriter:
    def __init__(self, sink: LayerSink) -> None:
        self.sink = sink
        self.links: dict[tuple[int, int], str] = {}
        self.buf = bytearray(BUFSIZE)

    def header(self, hdr: tf.Header) -> None:
        self.sink.write(tf.encode_header(hdr))

    def item(self, item: _Item) -> None:
        if item.what == "whiteout":
            self.whiteout(item)
        elif item.what == "opaque":
            st = item.st
            self.header(tf.Header(_join(item.rel, wh.OPAQUE_MARKER), tf.REG, mode=stat.S_IMODE(st.st_mode),
                                  uid=st.st_uid, gid=st.st_gid))
        else:
            self.entry(item.rel, item.path, item.st)

    def whiteout(self, item: _Item) -> None:
        parent, _, name = item.rel.rpartition("/")
        hdr = tf.Header(_join(parent, wh.whiteout_name(name)), tf.REG, mode=0o600)
        if item.st is not None:  # an overlay whiteout: keep the device's owner, mode and time
            st = item.st
            hdr.mode, hdr.uid, hdr.gid, hdr.mtime_ns = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns
        self.header(hdr)

    def entry(self, rel: str, path: str, st: os.stat_result) -> None:
        mode = st.st_mode
        hdr = tf.Header(rel, tf.DIR, mode=stat.S_IMODE(mode), uid=st.st_uid, gid=st.st_gid,
                        mtime_ns=st.st_mtime_ns, xattrs=read_xattrs(path))
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                hdr.type, hdr.linkname = tf.LINK, self.links[key]
                return self.header(hdr)
            if st.st_nlink > 1:
                self.links[key] = rel
            return self.file(hdr, path)
        if stat.S_ISDIR(mode):
            pass
        elif stat.S_ISLNK(mode):
            hdr.type, hdr.linkname = tf.SYMLINK, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            hdr.type = tf.CHAR if stat.S_ISCHR(mode) else tf.BLOCKDEV
            hdr.devmajor, hdr.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            hdr.type = tf.FIFO
        else:
            return None  # sockets have no tar form (Go's archive/tar refuses them too)
        self.header(hdr)

    def file(self, hdr: tf.Header, path: str) -> None:
        with open(os.open(path, _READ_FLAGS), "rb", buffering=0) as f:
            hdr.type, hdr.size = tf.REG, os.fstat(f.fileno()).st_size
            self.header(hdr)
            view, left = memoryview(self.buf), hdr.size
            while left:
                n = f.readinto(view[:min(left, len(view))])
                if not n:
                    raise System(f"diff layer: {hdr.name!r} shrank while it was read")
                self.sink.write(view[:n])
                left -= n
        if pad := tf.padding(hdr.size):
            self.sink.write(bytes(pad))

    def close(self) -> None:
        self.sink.write(bytes(2 * tf.BLOCK))  # the end-of-archive marker
        self.sink.close()


def _check_form(form: str, lower: list[str] | None) -> None:
    if form not in _FORMS:
        raise InvalidArgument(f"unknown layer form {form!r}; expected one of {', '.join(_FORMS)}")
    if form == "native" and lower is not None and len(lower) > 1:
        raise InvalidArgument("native form takes one lower directory: the parent's full tree")


def diff_layer(upper: str, out: BinaryIO, *, lower: list[str] | None = None, form: str = "overlay",
               compression: str = "none") -> DiffResult:
    """Write the changes in ``upper`` to ``out`` as a layer tar (compressed if asked).

    overlay: ``upper`` is an overlay upper directory (``lower`` is not needed). native: ``upper``
    is a full tree, compared with ``lower[0]`` (the parent's full tree; no lower: a base layer).
    The same change always gives the same tar, so the same DiffID.
    """
    _check_form(form, lower)
    sink = LayerSink(out, compression)
    writer = _TarWriter(sink)
    if form == "overlay":
        items: Iterator[_Item] | list[_Item] = _overlay_items(upper)
    else:
        items = _native_items(upper, lower[0] if lower else None)
    for item in items:
        writer.item(item)
    writer.close()
    return DiffResult(sink.diff_id, sink.digest, sink.size, sink.compressed_size)


def changes(upper: str, *, lower: list[str] | None = None, form: str = "overlay") -> list[Change]:
    """What `docker diff` lists: "A" for a path that the lower layers do not have, "C" for one
    they have that was changed, "D" for a deletion; every parent directory of a change is "C".

    overlay: ``lower`` are the overlay's lower directories, topmost first (as in lowerdir=); a
    directory made opaque over a lower one also lists the lower entries it hides as deleted.
    native: ``lower`` is ``[parent's full tree]``. Sorted by path.
    """
    _check_form(form, lower)
    if form == "overlay":
        items = _overlay_changes(upper, lower or [])
    else:
        items = _native_items(upper, lower[0] if lower else None)
    found: dict[str, str] = {}
    for item in items:
        if item.change is None:
            continue
        found.setdefault("/" + item.rel, item.change)
        parent = item.rel.rpartition("/")[0]
        while parent and ("/" + parent) not in found:
            found["/" + parent] = "C"
            parent = parent.rpartition("/")[0]
    return [Change(kind, path) for path, kind in sorted(found.items(), key=lambda kv: os.fsencode(kv[0]))]
