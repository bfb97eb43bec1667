"""DNS messages, sans-IO (RFC 1035 §4): the question of a query, and the answers the embedded
DNS gives for names it owns. Bytes in, bytes out; nothing here opens a socket."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument

TYPE_A, TYPE_AAAA, TYPE_PTR = 1, 28, 12
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    end: int   # offset just past the question section


def parse_query(data: bytes) -> Question:
    """The first question of a query; InvalidArgument for anything malformed."""
    if len(data) < 12:
        raise InvalidArgument("dns: short header")
    ident, flags, qdcount = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or qdcount < 1:
        raise InvalidArgument("dns: not a query")
    labels, pos = [], 12
    while True:
        if pos >= len(data):
            raise InvalidArgument("dns: truncated name")
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0:
            raise InvalidArgument("dns: compressed question name")
        if pos + n > len(data):
            raise InvalidArgument("dns: truncated label")
        labels.append(data[pos:pos + n].decode("ascii", "replace"))
        pos += n
        if pos > 12 + 255:
            raise InvalidArgument("dns: name too long")
    if pos + 4 > len(data):
        raise InvalidArgument("dns: truncated question")
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    return Question(ident, flags, ".".join(labels), qtype, qclass, pos + 4)


def _header(q: Question, rcode: int, ancount: int) -> bytes:
    rd = q.flags & 0x0100
    flags = 0x8000 | (q.flags & 0x7800) | 0x0400 | rd | 0x0080 | rcode  # QR, opcode, AA, RD, RA
    return struct.pack("!HHHHHH", q.id, flags, 1, ancount, 0, 0)


def answer(query: bytes, q: Question, addresses: list[str], ttl: int = 600) -> bytes:
    """A response to ``q`` with A records for the IPv4 ``addresses`` (none for other types:
    the name exists, without records of that type)."""
    records = b""
    count = 0
    if q.qtype == TYPE_A and q.qclass == CLASS_IN:
        for a in addresses:
            addr = ipaddress.ip_address(a)
            if addr.version == 4:
                records += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4) + addr.packed
                count += 1
    return _header(q, NOERROR, count) + query[12:q.end] + records


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\0"


def answer_ptr(query: bytes, q: Question, names: list[str], ttl: int = 600) -> bytes:
    """A response to a PTR query with ``names``."""
    records = b""
    for name in names:
        rdata = encode_name(name)
        records += struct.pack("!HHHIH", 0xC00C, TYPE_PTR, CLASS_IN, ttl, len(rdata)) + rdata
    return _header(q, NOERROR, len(names)) + query[12:q.end] + records


def reverse_address(name: str) -> str | None:
    """``4.3.2.1.in-addr.arpa`` -> ``1.2.3.4`` (None for anything else)."""
    name = name.lower().rstrip(".")
    if not name.endswith(".in-addr.arpa"):
        return None
    parts = name[: -len(".in-addr.arpa")].split(".")
    if len(parts) != 4:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(parts))))
    except ValueError:
        return None


def error(query: bytes, q: Question, rcode: int) -> bytes:
    return _header(q, rcode, 0) + query[12:q.end]


def error_for_raw(query: bytes, rcode: int) -> bytes:
    """An error response to bytes that did not parse (FORMERR), when the id can be read."""
    ident = struct.unpack("!H", query[:2])[0] if len(query) >= 2 else 0
    return struct.pack("!HHHHHH", ident, 0x8000 | rcode, 0, 0, 0, 0)


def query(name: str, qtype: int = TYPE_A, ident: int = 0x1234) -> bytes:
    """A query for ``name`` (for tests and probes)."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p)
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + b"\0" + \
        struct.pack("!HH", qtype, CLASS_IN)


def parse_answers(data: bytes) -> tuple[int, list[str]]:
    """(rcode, IPv4 addresses of the A records) of a response whose answers point at the
    question (as ours and most servers' do)."""
    rcode = struct.unpack("!H", data[2:4])[0] & 0xF
    ancount = struct.unpack("!H", data[6:8])[0]
    pos = 12
    while data[pos] != 0:
        pos += data[pos] + 1
    pos += 5
    out = []
    for _ in range(ancount):
        if data[pos] & 0xC0:
            pos += 2
        else:
            while data[pos] != 0:
                pos += data[pos] + 1
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == TYPE_A and rdlen == 4:
            out.append(str(ipaddress.IPv4Address(data[pos:pos + 4])))
        pos += rdlen
    return rcode, out
