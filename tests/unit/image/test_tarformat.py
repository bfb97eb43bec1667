"""Tar headers and layer streams: image/tarformat.py and image/tarstream.py, without a file system."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
import zlib

import pytest
import zstandard
from hypothesis import given, settings, strategies as st

from dockyard.errdefs import InvalidArgument
from dockyard.image import tarformat as tf
from dockyard.image.tarstream import (LayerSink, LayerSource, TarReader, detect_compression,
                                      open_decompressed)


def make_tar(infos: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for info, data in infos:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, kind=tarfile.REGTYPE, data: bytes = b"", **fields) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = kind, fields.pop("mode", 0o644), fields.pop("mtime", 1_700_000_000)
    for key, value in fields.items():
        setattr(ti, key, value)
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        return ti, data
    return ti, None


def read_all(blob: bytes, compression="auto", chunk: int | None = None) -> tuple[list[tuple[tf.Header, bytes]], str]:
    """Every entry with its data, and the DiffID."""
    stream = _Chunked(blob, chunk) if chunk else io.BytesIO(blob)
    out = []
    with LayerSource(open_decompressed(stream, compression), bufsize=4096) as src:
        reader = TarReader(src)
        for hdr in reader:
            with tempfile.TemporaryFile() as f:
                if hdr.data_size:
                    reader.copy_data(f.fileno())
                f.seek(0)
                out.append((hdr, f.read()))
    return out, src.digest()


class _Chunked(io.RawIOBase):
    """A stream that hands out at most ``n`` bytes per read, as a socket may."""

    def __init__(self, data: bytes, n: int) -> None:
        self._data, self._n, self._pos = data, n, 0

    def readable(self):
        return True

    def readinto(self, buf):
        piece = self._data[self._pos:self._pos + min(self._n, len(buf))]
        buf[:len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- numbers, PAX records, headers -----------------------------------------------------------

@pytest.mark.parametrize("raw, value", [
    (b"0000644\0", 0o644), (b"     644 ", 0o644), (b"\0\0\0\0\0\0\0\0", 0), (b"", 0),
    (b"\x80\0\0\0\0\0\0\x01\0\0\0\0", 1 << 32), (b"\xff" * 7 + b"\xfe", -2),
])
def test_parse_number(raw, value):
    assert tf.parse_number(raw) == value


@pytest.mark.parametrize("raw", [b"0000648\0", b"-000001\0", b"00_0644\0", b"12 34\0"])
def test_parse_number_refuses_non_octal(raw):
    with pytest.raises(InvalidArgument):
        tf.parse_number(raw)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode() + body) != n:
        n += 1
    return str(n).encode() + body


def test_parse_pax_records():
    data = pax_record(b"path", b"a/very/long/name/here" * 10) + pax_record(b"SCHILY.xattr.a", b"b")
    data += pax_record(b"uid", b"4294967296")
    assert tf.parse_pax(data) == {"path": b"a/very/long/name/here" * 10, "SCHILY.xattr.a": b"b",
                                  "uid": b"4294967296"}
    assert tf.parse_pax(pax_record(b"k", b"a\nb=c")) == {"k": b"a\nb=c"}  # the length decides
    assert tf.parse_pax(pax_record(b"k", b"abc") + b"\0\0\0") == {"k": b"abc"}


@pytest.mark.parametrize("data", [b"x path=a\n", b"99 path=a\n", b"8 path=a\n", b"9 patha\n\n",
                                  b"5 =ab\n", b"9 path=a\n\0junk"])
def test_parse_pax_refuses_malformed_records(data):
    with pytest.raises(InvalidArgument):
        tf.parse_pax(data)


@pytest.mark.parametrize("value, ns", [(b"10", 10 * 10**9), (b"1.5", 1_500_000_000),
                                       (b"-1.25", -1_250_000_000), (b"1.0000000019", 1_000_000_001)])
def test_parse_pax_time(value, ns):
    assert tf.parse_pax_time(value) == ns


@pytest.mark.parametrize("value", [b"", b".5", b"a", b"1.2.3", b"--1", b"1.-2"])
def test_parse_pax_time_refuses_garbage(value):
    with pytest.raises(InvalidArgument):
        tf.parse_pax_time(value)


def test_header_checksum_is_checked():
    ti, _ = info("a")
    block = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    tf.parse_header(bytes(block))
    block[0] ^= 1
    with pytest.raises(InvalidArgument, match="checksum"):
        tf.parse_header(bytes(block))


_NAME = st.text(alphabet=st.characters(blacklist_characters="\0/", blacklist_categories=("Cs",)),
                min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(_NAME, min_size=1, max_size=6), mode=st.integers(0, 0o7777),
       uid=st.integers(0, 2**32 - 1), gid=st.integers(0, 2**21), mtime=st.integers(0, 2**33),
       data=st.binary(max_size=1500), fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
def test_reader_agrees_with_tarfile(parts, mode, uid, gid, mtime, data, fmt):
    name = "/".join(parts)
    ti, payload = info(name, data=data, mode=mode, uid=uid, gid=gid, mtime=mtime)
    link, _ = info(name + "-link", tarfile.SYMTYPE, linkname="../" + name, mode=0o777)
    [(hdr, got), (lhdr, _)], _ = read_all(make_tar([(ti, payload), (link, None)], fmt))
    assert (hdr.name, hdr.type, hdr.mode, hdr.uid, hdr.gid, hdr.mtime_ns, got) == (
        name, tf.REG, mode, uid, gid, mtime * 10**9, data)
    assert (lhdr.name, lhdr.type, lhdr.linkname) == (name + "-link", tf.SYMLINK, "../" + name)


def test_reader_reads_every_kind_and_extension():
    blob = make_tar([
        info("d", tarfile.DIRTYPE, mode=0o755),
        info("d/" + "x" * 150, data=b"long"),
        info("dev", tarfile.CHRTYPE, devmajor=1, devminor=3),
        info("blk", tarfile.BLKTYPE, devmajor=7, devminor=1),
        info("p", tarfile.FIFOTYPE),
        info("h", tarfile.LNKTYPE, linkname="d/" + "x" * 150),
        info("caf\udce9", data=b"latin-1 name"),
    ])
    entries, digest = read_all(blob)
    assert [(h.name, h.type) for h, _ in entries] == [
        ("d/", tf.DIR), ("d/" + "x" * 150, tf.REG), ("dev", tf.CHAR), ("blk", tf.BLOCKDEV),
        ("p", tf.FIFO), ("h", tf.LINK), ("caf\udce9", tf.REG)]
    assert (entries[2][0].devmajor, entries[2][0].devminor) == (1, 3)
    assert entries[5][0].linkname == "d/" + "x" * 150
    assert digest == sha(blob)


def test_reader_takes_xattrs_and_times_from_pax():
    ti, data = info("f", data=b"x")
    ti.pax_headers = {"SCHILY.xattr.user.a": "1", "SCHILY.xattr.security.capability": "\x01\udcff",
                      "atime": "12.5", "mtime": "1700000000.25"}
    [(hdr, _)], _ = read_all(make_tar([(ti, data)]))
    assert hdr.xattrs == {"user.a": b"1", "security.capability": b"\x01\xff"}
    assert (hdr.atime_ns, hdr.mtime_ns) == (12_500_000_000, 1_700_000_000_250_000_000)


def test_header_only_types_carry_no_data():
    ti, _ = info("d", tarfile.DIRTYPE)
    block = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    block[124:136] = b"00000001000\0"  # a directory claiming 512 bytes of data
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)
    after, _ = info("f", data=b"hi")
    blob = bytes(block) + after.tobuf(tarfile.USTAR_FORMAT) + b"hi".ljust(512, b"\0") + bytes(1024)
    entries, _ = read_all(blob)
    assert [(h.name, d) for h, d in entries] == [("d/", b""), ("f", b"hi")]


@given(chunk=st.integers(1, 700))
@settings(max_examples=25, deadline=None)
def test_reader_does_not_care_how_the_stream_is_cut(chunk):
    blob = make_tar([info("a", data=b"A" * 3000), info("b/" * 60 + "c", data=b"C" * 10)])
    entries, digest = read_all(blob, chunk=chunk)
    assert [(h.name, d) for h, d in entries] == [("a", b"A" * 3000), ("b/" * 60 + "c", b"C" * 10)]
    assert digest == sha(blob)


def test_empty_layer_and_lone_zero_block():
    assert read_all(b"") == ([], sha(b""))
    one = make_tar([info("a", data=b"1")])
    entries, _ = read_all(one[:1024 + 512])  # header, data, one zero block
    assert [h.name for h, _ in entries] == ["a"]


@pytest.mark.parametrize("cut", [100, 512, 600, 1024])
def test_truncated_tar_is_an_unexpected_end(cut):
    blob = make_tar([info("a", data=b"x" * 600)])
    with pytest.raises(InvalidArgument, match="unexpected end of layer"):
        read_all(blob[:cut])


def test_absurd_extended_header_is_refused():
    ti, _ = info("././@PaxHeader", tarfile.XHDTYPE)
    ti.size = 1 << 40
    with pytest.raises(InvalidArgument, match="extended header"):
        read_all(ti.tobuf(tarfile.GNU_FORMAT) + bytes(4096))


def test_garbage_is_not_a_tar():
    with pytest.raises(InvalidArgument):
        read_all(b"this is not a tar stream at all" * 40)


def test_sparse_entries_are_refused():
    ti, _ = info("s", data=b"")
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(InvalidArgument, match="sparse"):
        read_all(make_tar([(ti, b"")]))


def _readers() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "layer-reader"]


def test_the_reader_thread_ends_with_its_source():
    import gc
    import time

    blob = make_tar([info(f"f{i}", data=b"x" * 5000) for i in range(50)])
    with LayerSource(open_decompressed(io.BytesIO(blob)), bufsize=1024) as src:
        assert TarReader(src).next().name == "f0"
    assert not _readers()
    src = LayerSource(open_decompressed(io.BytesIO(blob)), bufsize=1024)
    TarReader(src).next()
    del src
    gc.collect()
    deadline = time.monotonic() + 5
    while _readers() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _readers()


# -- compression ----------------------------------------------------------------------------

def test_detect_compression():
    assert detect_compression(gzip.compress(b"x")) == "gzip"
    assert detect_compression(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert detect_compression(b"usr/") == "none"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_layers_hash_their_uncompressed_bytes(compression):
    blob = make_tar([info("a", data=b"a" * 100_000)])
    packed = gzip.compress(blob) if compression == "gzip" else zstandard.ZstdCompressor().compress(blob)
    for mode in ("auto", compression):
        entries, digest = read_all(packed, mode)
        assert entries[0][1] == b"a" * 100_000 and digest == sha(blob)


def test_multi_member_gzip_and_multi_frame_zstd():
    blob = make_tar([info("a", data=b"a" * 5000)])
    half = len(blob) // 2
    assert read_all(gzip.compress(blob[:half]) + gzip.compress(blob[half:]))[1] == sha(blob)
    zc = zstandard.ZstdCompressor()
    assert read_all(zc.compress(blob[:half]) + zc.compress(blob[half:]))[1] == sha(blob)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("where", [0.5, 0.999])
def test_truncated_compressed_layer_is_an_unexpected_end(compression, where):
    blob = make_tar([info("a", data=bytes(range(256)) * 400)])
    packed = gzip.compress(blob) if compression == "gzip" else zstandard.ZstdCompressor().compress(blob)
    with pytest.raises(InvalidArgument, match="unexpected end of layer"):
        read_all(packed[:int(len(packed) * where)])


def test_corrupt_compressed_layers_are_invalid():
    blob = make_tar([info("a", data=b"a" * 5000)])
    with pytest.raises(InvalidArgument):
        read_all(zstandard.ZstdCompressor().compress(blob) + b"trailing junk")
    bad = bytearray(gzip.compress(blob))
    bad[-6] ^= 0xFF  # the CRC
    with pytest.raises(InvalidArgument):
        read_all(bytes(bad))


def test_unknown_compression_is_refused():
    with pytest.raises(InvalidArgument):
        open_decompressed(io.BytesIO(b""), "xz")
    with pytest.raises(InvalidArgument):
        LayerSink(io.BytesIO(), "xz")


# -- the writer side ------------------------------------------------------------------------

def test_encoded_headers_are_normalized_and_read_back():
    hdr = tf.Header("dir/" + "n" * 120, tf.REG, size=3, mode=0o4755, uid=1000, gid=1000,
                    mtime_ns=1_700_000_000_999_999_999, atime_ns=5,
                    xattrs={"user.b": b"2", "security.capability": b"\x01\x00\xff"})
    raw = tf.encode_header(hdr)
    assert raw == tf.encode_header(hdr)
    [(back, data)], _ = read_all(raw + b"abc".ljust(512, b"\0") + bytes(1024))
    assert (back.name, back.mode, back.uid, back.mtime_ns, back.atime_ns, data) == (
        hdr.name, 0o4755, 1000, 1_700_000_000 * 10**9, None, b"abc")
    assert back.xattrs == hdr.xattrs
    assert b"atime" not in raw and b"ctime" not in raw
    plain = tf.encode_header(tf.Header("f", tf.REG))
    assert plain[265:297] == bytes(32) and plain[297:329] == bytes(32)  # uname, gname
    assert plain[329:345].strip(b"\0") == b""  # no device numbers


def _tarfile_bytes(hdr: tf.Header) -> bytes:
    ti = tarfile.TarInfo(hdr.name)
    ti.type, ti.mode, ti.uid, ti.gid = hdr.type.encode("latin-1"), hdr.mode, hdr.uid, hdr.gid
    ti.mtime, ti.linkname, ti.uname, ti.gname = hdr.mtime_ns // 10**9, hdr.linkname, "", ""
    ti.size = hdr.size if hdr.type == tf.REG else 0
    if hdr.type in (tf.CHAR, tf.BLOCKDEV):
        ti.devmajor, ti.devminor = hdr.devmajor, hdr.devminor
    ti.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in sorted(hdr.xattrs.items())}
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@settings(max_examples=200, deadline=None)
@given(name=st.one_of(st.text(alphabet="abc/._-", min_size=1, max_size=110), _NAME),
       kind=st.sampled_from([tf.REG, tf.DIR, tf.SYMLINK, tf.LINK, tf.CHAR, tf.BLOCKDEV, tf.FIFO]),
       size=st.one_of(st.integers(0, 10**6), st.just(8**11)), mode=st.integers(0, 0o7777),
       uid=st.one_of(st.integers(0, 70_000), st.integers(0, 2**32)), gid=st.integers(0, 70_000),
       mtime=st.one_of(st.integers(0, 2**33), st.integers(8**11 - 2, 8**11 + 2)),
       link=st.one_of(st.just(""), st.text(alphabet="xy/", max_size=120)),
       dev=st.tuples(st.integers(0, 4095), st.integers(0, 2**20)),
       xattrs=st.dictionaries(st.sampled_from(["user.a", "trusted.b"]), st.binary(max_size=5), max_size=1))
def test_encoded_headers_are_tarfiles_pax_headers(name, kind, size, mode, uid, gid, mtime, link, dev, xattrs):
    hdr = tf.Header(name, kind, size=size, mode=mode, uid=uid, gid=gid, mtime_ns=mtime * 10**9,
                    linkname=link, devmajor=dev[0], devminor=dev[1], xattrs=xattrs)
    assert tf.encode_header(hdr) == _tarfile_bytes(hdr)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_sink_is_deterministic(compression):
    def write() -> tuple[bytes, LayerSink]:
        out = io.BytesIO()
        sink = LayerSink(out, compression)
        for piece in (b"a" * 1000, b"b" * 70_000, b""):
            sink.write(piece)
        sink.close()
        return out.getvalue(), sink

    (first, sink), (second, _) = write(), write()
    assert first == second
    plain = b"a" * 1000 + b"b" * 70_000
    assert sink.diff_id == sha(plain) and sink.size == len(plain)
    assert sink.digest == sha(first) and sink.compressed_size == len(first)
    if compression == "gzip":
        assert zlib.decompress(first, 31) == plain
        assert first[4:8] == bytes(4) and not first[3] & 0x08  # mtime 0, no file name
    elif compression == "zstd":
        assert zstandard.ZstdDecompressor().decompressobj().decompress(first) == plain
