"""Tar layers built entry by entry, for the layer apply/diff tests: every entry kind, owners,
modes, mtimes and xattrs (as PAX `SCHILY.xattr.*` records)."""

from __future__ import annotations

import io
import tarfile

T0 = 1_600_000_000
KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
         "fifo": tarfile.FIFOTYPE}


def entry(name: str, kind: str = "file", data: bytes = b"", *, mode: int | None = None, uid: int = 0,
          gid: int = 0, mtime: int = T0, link: str = "", dev: tuple[int, int] = (0, 0),
          xattrs: dict[str, bytes] | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = KINDS[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid, info.gid, info.mtime, info.linkname = uid, gid, mtime, link
    info.devmajor, info.devminor = dev
    info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                        for k, v in (xattrs or {}).items()}
    if kind == "file":
        info.size = len(data)
        return info, data
    return info, None


def layer(*entries) -> bytes:
    """An uncompressed PAX tar of ``entries`` (pairs from `entry`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()
