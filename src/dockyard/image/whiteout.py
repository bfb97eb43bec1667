"""The pure rules of layer paths and whiteouts: what a tar entry's name means, without I/O.

Owns cleaning entry names into paths that stay inside the layer root, the whiteout naming of the
OCI image spec (image-spec layer.md, "Whiteouts"), and the overlayfs encodings of the same facts
(kernel Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"). Touches no
file system: layer.py and layerdiff.py apply these rules.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument

WHITEOUT_PREFIX = ".wh."
# AUFS metadata (".wh..wh.plnk", ".wh..wh.aufs", ...): not content, skipped on apply.
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"

# overlayfs: a directory with this xattr set to "y" hides the lower directories' entries.
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# xattrs that carry overlayfs' own metadata (trusted.* as root, user.* with the userxattr
# option). A layer must never set them (a forged redirect or opaque marker would change what
# the lower layers show) and a diff must never carry them.
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


@dataclass(frozen=True)
class Whiteout:
    """``<dir>/.wh.<name>``: delete ``name`` of ``dir`` as the lower layers have it."""

    name: str


@dataclass(frozen=True)
class Opaque:
    """``<dir>/.wh..wh..opq``: the directory hides everything the lower layers have in it."""


@dataclass(frozen=True)
class Meta:
    """Another ``.wh..wh.*`` name: AUFS bookkeeping that means nothing to us."""


WhiteoutKind = Whiteout | Opaque | Meta


def clean_path(name: str) -> tuple[str, ...]:
    """The components of a tar entry name as a path relative to the layer root.

    Like Go's ``filepath.Clean`` followed by a join onto the root, which is what Docker does:
    a leading ``/`` is dropped (an absolute name is taken relative to the root, and ``..`` at
    the root of an absolute name stays at the root), ``.`` and empty components go, ``..``
    removes the previous component. A relative name whose ``..`` climbs above the root is
    refused: Docker calls that a breakout ("... is outside of ..."). The root itself is ``()``.
    """
    if "\0" in name:
        raise InvalidArgument(f"invalid layer entry name {name!r}: contains a NUL byte")
    rooted = name.startswith("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            elif not rooted:
                raise InvalidArgument(f"invalid layer entry {name!r}: path is outside of the layer root")
            continue
        parts.append(part)
    return tuple(parts)


def split_plain(name: str) -> tuple[str, ...] | None:
    """The components of ``name`` if it is already clean and names no whiteout, else None.

    A fast path for the common entry (``usr/share/doc/x``): no leading ``/`` or ``.``, no empty,
    ``.``, ``..`` or ``.*`` component (so no ``.wh.*`` either), no NUL. When it answers, the
    answer is :func:`clean_path`'s, and :func:`parse_whiteout` is None for every component.
    """
    if name.endswith("/"):
        name = name[:-1]
    if not name or name[0] in "/." or name[-1] == "/" or "/." in name or "//" in name or "\0" in name:
        return None
    return tuple(name.split("/"))


def parse_whiteout(basename: str) -> WhiteoutKind | None:
    """What a basename means as a whiteout, or None if it is an ordinary name."""
    if not basename.startswith(WHITEOUT_PREFIX):
        return None
    if basename == OPAQUE_MARKER:
        return Opaque()
    if basename.startswith(WHITEOUT_META_PREFIX):
        return Meta()
    target = basename[len(WHITEOUT_PREFIX):]
    if target in ("", ".", "..") or "/" in target or "\0" in target:
        raise InvalidArgument(f"invalid whiteout {basename!r}: it names no entry of its directory")
    return Whiteout(target)


def whiteout_name(name: str) -> str:
    """The basename that deletes ``name`` (the inverse of :func:`parse_whiteout`)."""
    if name in ("", ".", "..") or "/" in name:
        raise InvalidArgument(f"cannot white out {name!r}")
    return WHITEOUT_PREFIX + name


def check_parents(parts: tuple[str, ...]) -> None:
    """Refuse a whiteout name used as a directory (``a/.wh.b/c``), except the AUFS metadata
    directories at the top (``.wh..wh.plnk/...``), whose entries are skipped as a whole."""
    for part in parts[:-1]:
        if part.startswith(WHITEOUT_PREFIX):
            raise InvalidArgument(f"invalid layer entry {'/'.join(parts)!r}: a whiteout name is used as a directory")


def is_aufs_meta(parts: tuple[str, ...]) -> bool:
    """Entries under a top-level ``.wh..wh.*`` directory: AUFS bookkeeping, not content."""
    return len(parts) > 1 and parts[0].startswith(WHITEOUT_META_PREFIX)


def is_overlay_whiteout(mode: int, rdev: int) -> bool:
    """overlayfs writes a deletion as a character device 0/0 in the upper directory."""
    return stat.S_ISCHR(mode) and rdev == 0


def is_overlay_xattr(key: str) -> bool:
    return key.startswith(_OVERLAY_XATTR_PREFIXES)


def layer_xattrs(xattrs: dict[str, bytes]) -> dict[str, bytes]:
    """The xattrs a layer may carry: all but overlayfs' own, in a stable (sorted) order."""
    return {k: xattrs[k] for k in sorted(xattrs) if not is_overlay_xattr(k)}
