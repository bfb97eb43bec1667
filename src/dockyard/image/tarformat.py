"""Tar headers as bytes: parsing 512-byte blocks and PAX records, and encoding them. Pure.

Owns the parts of the tar format (POSIX.1-2001 pax, ustar, the GNU long-name extensions and
v7) that image layers use. Parsing is done here rather than by `tarfile` because tarfile's
stream mode copies its whole read buffer on every small read and parses a header in ~12 µs;
applying layers with tens of thousands of small files needs both to be cheap. Encoding uses
`tarfile.TarInfo.tobuf` in PAX format, which is exact and well tested. No I/O here:
tarstream.py moves the bytes.
"""

from __future__ import annotations

import struct
import tarfile
from dataclasses import dataclass, field

from dockyard.errdefs import InvalidArgument

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

REG, AREG, LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO, CONT = "0", "\0", "1", "2", "3", "4", "5", "6", "7"
PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK, GNU_SPARSE = "x", "g", "L", "K", "S"
# Entries that carry a name and no data, whatever their size field says (Go's archive/tar and
# Python's tarfile read them the same way).
HEADER_ONLY = frozenset((LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO))
META = frozenset((PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK))
# Long names, links and PAX records larger than this are an attack, not a layer.
MAX_META_SIZE = 1 << 20

_POSIX_MAGIC = b"ustar\x00"
_GNU_MAGIC = b"ustar "
_XATTR = "SCHILY.xattr."
_NS = 1_000_000_000


@dataclass(slots=True)
class Header:
    """One entry, after its PAX records and GNU long names have been applied."""

    name: str
    type: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    atime_ns: int | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def data_size(self) -> int:
        """Bytes of data that follow the header (before padding to a block)."""
        return 0 if self.type in HEADER_ONLY else self.size


def padding(size: int) -> int:
    return -size % BLOCK


def _text(raw: bytes) -> str:
    if not raw or not raw[0]:
        return ""
    return raw.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _octal(raw: bytes, what: str) -> int:
    if raw and raw[0] & 0x80:  # GNU base-256: 0x80 positive, 0xff negative
        if raw[0] == 0xFF:
            return int.from_bytes(raw, "big", signed=True)
        return int.from_bytes(bytes((raw[0] & 0x7F,)) + raw[1:], "big")
    digits = raw.partition(b"\0")[0].strip(b" ")
    if not digits:
        return 0
    if digits.isdigit():  # ASCII digits only; int() refuses 8 and 9 in base 8
        try:
            return int(digits, 8)
        except ValueError:
            pass
    raise InvalidArgument(f"invalid tar header: bad {what} field {raw!r}")


# Modes, owners and times repeat from entry to entry: parsing each distinct field once is
# a measurable share of applying a layer of small files.
_NUMBERS: dict[bytes, int] = {}


def parse_number(raw: bytes, what: str = "number") -> int:
    """A numeric header field: octal digits (NUL/space terminated) or GNU base-256."""
    value = _NUMBERS.get(raw)
    if value is None:
        value = _octal(raw, what)
        if len(_NUMBERS) < 4096:
            _NUMBERS[raw] = value
    return value


# name mode uid gid size mtime chksum type linkname magic version uname gname devmajor devminor prefix
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")


def parse_header(block: bytes) -> Header:
    """The fields of one 512-byte header block (before PAX/GNU extensions are applied)."""
    if len(block) != BLOCK:
        raise InvalidArgument("unexpected end of layer")
    (name, mode, uid, gid, size, mtime, chksum, kind, linkname, magic, _version, _uname, _gname,
     devmajor, devminor, prefix) = _USTAR.unpack(block)
    stored = _octal(chksum, "checksum")
    unsigned = sum(block) - sum(chksum) + 8 * 32
    # (some old tars summed signed chars)
    if stored != unsigned and stored != unsigned - 256 * sum(1 for b in block if b > 127):
        raise InvalidArgument("invalid tar header: checksum mismatch (not a tar stream, or corrupt)")
    path = _text(name)
    if magic == _POSIX_MAGIC and prefix[0]:
        path = f"{_text(prefix)}/{path}"
    kind = chr(kind[0])
    if kind == AREG and path.endswith("/"):
        kind = DIR  # the v7 convention for directories
    if kind == GNU_SPARSE:
        raise InvalidArgument(f"unsupported layer entry {path!r}: sparse files")
    hdr = Header(path, kind, _octal(size, "size"), parse_number(mode, "mode") & 0o7777,
                 parse_number(uid, "uid"), parse_number(gid, "gid"), parse_number(mtime, "mtime") * _NS,
                 None, _text(linkname))
    if kind in (CHAR, BLOCKDEV) and magic in (_POSIX_MAGIC, _GNU_MAGIC):
        hdr.devmajor = parse_number(devmajor, "devmajor")
        hdr.devminor = parse_number(devminor, "devminor")
    if hdr.size < 0:
        raise InvalidArgument(f"invalid tar header for {path!r}: negative size")
    return hdr


def parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX extended header records (``"<len> <key>=<value>\\n"``, POSIX.1-2001 pax)."""
    records: dict[str, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0:  # some writers pad the record area with NULs
            if data[pos:].strip(b"\0"):
                raise InvalidArgument("invalid PAX header: data after NUL padding")
            break
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        if not digits or not digits.isdigit():
            raise InvalidArgument("invalid PAX header: bad record length")
        length = int(digits)
        record = data[pos:pos + length]
        if length <= len(digits) + 1 or len(record) != length or not record.endswith(b"\n"):
            raise InvalidArgument("invalid PAX header: truncated record")
        key, eq, value = record[len(digits) + 1:-1].partition(b"=")
        if not eq or not key:
            raise InvalidArgument("invalid PAX header: record without keyword")
        records[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return records


def _pax_int(value: bytes, key: str) -> int:
    if not value.isdigit():
        raise InvalidArgument(f"invalid PAX header: bad {key} {value!r}")
    return int(value)


def parse_pax_time(value: bytes) -> int:
    """A PAX time (``[-]seconds[.fraction]``) in nanoseconds."""
    negative = value.startswith(b"-")
    sec, _, frac = (value[1:] if negative else value).partition(b".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise InvalidArgument(f"invalid PAX header: bad time {value!r}")
    ns = int(sec) * _NS + int(frac[:9].ljust(9, b"0") or b"0")
    return -ns if negative else ns


def apply_extensions(hdr: Header, pax: dict[str, bytes], longname: bytes | None,
                     longlink: bytes | None) -> Header:
    """Fold GNU long names and PAX records into ``hdr`` (PAX wins, as in GNU tar and Go)."""
    if longname is not None:
        hdr.name = _text(longname)
    if longlink is not None:
        hdr.linkname = _text(longlink)
    for key, value in pax.items():
        if not value:
            continue  # an empty value removes the keyword: the header field stands
        if key == "path":
            hdr.name = value.decode("utf-8", "surrogateescape")
        elif key == "linkpath":
            hdr.linkname = value.decode("utf-8", "surrogateescape")
        elif key in ("size", "uid", "gid"):
            setattr(hdr, key, _pax_int(value, key))
        elif key == "mtime":
            hdr.mtime_ns = parse_pax_time(value)
        elif key == "atime":
            hdr.atime_ns = parse_pax_time(value)
        elif key == "SCHILY.devmajor":
            hdr.devmajor = _pax_int(value, key)
        elif key == "SCHILY.devminor":
            hdr.devminor = _pax_int(value, key)
        elif key.startswith(_XATTR):
            hdr.xattrs[key[len(_XATTR):]] = value
        elif key.startswith("GNU.sparse."):
            raise InvalidArgument(f"unsupported layer entry {hdr.name!r}: sparse files")
    return hdr


def encode_header(hdr: Header) -> bytes:
    """The header blocks of ``hdr`` in PAX format, normalized so equal entries give equal bytes.

    uname/gname stay empty, only the seconds of mtime are written (as Docker does) and no
    atime/ctime; device numbers only for devices; xattrs as ``SCHILY.xattr.*`` records in
    sorted order. Names with non-UTF-8 bytes are written with ``hdrcharset=BINARY``. Exactly
    the bytes of `tarfile.TarInfo.tobuf` in PAX format; a header that needs no PAX record (the
    common case) is built here directly, which is several times faster.
    """
    size = hdr.size if hdr.type in (REG, AREG, CONT) else 0
    mtime = hdr.mtime_ns // _NS
    fast = _plain_header(hdr, size, mtime)
    if fast is not None:
        return fast
    info = tarfile.TarInfo(hdr.name)
    info.type = hdr.type.encode("latin-1")
    info.mode = hdr.mode & 0o7777
    info.uid, info.gid = hdr.uid, hdr.gid
    info.uname = info.gname = ""
    info.mtime = mtime
    info.size = size
    info.linkname = hdr.linkname
    if hdr.type in (CHAR, BLOCKDEV):
        info.devmajor, info.devminor = hdr.devmajor, hdr.devminor
    info.pax_headers = {
        _XATTR + key: hdr.xattrs[key].decode("utf-8", "surrogateescape") for key in sorted(hdr.xattrs)
    }
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


_LIMIT7, _LIMIT11 = 8**7, 8**11
_NO_DEVICE = bytes(8)


def _itn(value: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, value)


def _plain_header(hdr: Header, size: int, mtime: int) -> bytes | None:
    """One ustar block, as tarfile writes it in PAX format when no PAX record is needed; None
    when one is (a long or non-ASCII name, a number out of the octal range, xattrs)."""
    if hdr.xattrs or not hdr.name.isascii() or not hdr.linkname.isascii():
        return None
    name, link = hdr.name.encode("ascii"), hdr.linkname.encode("ascii")
    if hdr.type == DIR and not name.endswith(b"/"):
        name += b"/"
    device = hdr.type in (CHAR, BLOCKDEV)
    if (len(name) > 100 or len(link) > 100 or not (0 <= hdr.uid < _LIMIT7 and 0 <= hdr.gid < _LIMIT7)
            or not (0 <= size < _LIMIT11 and 0 <= mtime < _LIMIT11)
            or (device and not (0 <= hdr.devmajor < _LIMIT7 and 0 <= hdr.devminor < _LIMIT7))):
        return None
    block = b"".join((
        name.ljust(100, b"\0"), _itn(hdr.mode & 0o7777, 8), _itn(hdr.uid, 8), _itn(hdr.gid, 8),
        _itn(size, 12), _itn(mtime, 12), b"        ", hdr.type.encode("latin-1"), link.ljust(100, b"\0"),
        b"ustar\x0000", bytes(64),
        _itn(hdr.devmajor, 8) if device else _NO_DEVICE, _itn(hdr.devminor, 8) if device else _NO_DEVICE,
    )).ljust(BLOCK, b"\0")
    return b"%s%06o\0 %s" % (block[:148], sum(block), block[156:])
