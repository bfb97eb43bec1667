"""DNS messages, sans-IO: queries parsed, answers built, malformed input refused."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from dockyard.errdefs import InvalidArgument
from dockyard.network import dnsmsg


def test_answer_round_trip():
    q = dnsmsg.query("web.example", ident=0xBEEF)
    parsed = dnsmsg.parse_query(q)
    assert (parsed.id, parsed.name, parsed.qtype) == (0xBEEF, "web.example", dnsmsg.TYPE_A)
    out = dnsmsg.answer(q, parsed, ["10.0.0.2", "10.0.0.3"])
    assert out[:2] == b"\xbe\xef"
    assert dnsmsg.parse_answers(out) == (0, ["10.0.0.2", "10.0.0.3"])


def test_other_types_get_no_records_and_errors_keep_the_question():
    q = dnsmsg.query("web", dnsmsg.TYPE_AAAA)
    parsed = dnsmsg.parse_query(q)
    assert dnsmsg.parse_answers(dnsmsg.answer(q, parsed, ["10.0.0.2"])) == (0, [])
    assert dnsmsg.parse_answers(dnsmsg.error(q, parsed, dnsmsg.NXDOMAIN)) == (3, [])


@pytest.mark.parametrize("data", [b"", b"\0" * 11, b"\x12\x34\x81\x00" + b"\0" * 8,
                                  dnsmsg.query("a.b")[:-3], b"\0\0\1\0\0\1\0\0\0\0\0\0\x05ab"])
def test_malformed(data):
    with pytest.raises(InvalidArgument):
        dnsmsg.parse_query(data)


@given(st.binary(max_size=80))
def test_parser_never_crashes(data):
    try:
        dnsmsg.parse_query(data)
    except InvalidArgument:
        pass


def test_ptr():
    assert dnsmsg.reverse_address("2.0.17.172.in-addr.arpa.") == "172.17.0.2"
    assert dnsmsg.reverse_address("example.com") is None
    assert dnsmsg.reverse_address("1.2.in-addr.arpa") is None
    q = dnsmsg.query("2.0.17.172.in-addr.arpa", dnsmsg.TYPE_PTR)
    out = dnsmsg.answer_ptr(q, dnsmsg.parse_query(q), ["web.front"])
    assert out.endswith(b"\x03web\x05front\x00") and out[6:8] == b"\x00\x01"
