"""Docker's stdout/stderr multiplexing frames: encoder and incremental decoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from dockyard.errdefs import InvalidArgument
from dockyard.http.mux import FrameDecoder, Stream, encode_frame

FRAMES = [(Stream.STDOUT, b"hello\n"), (Stream.STDERR, b"oops\n"), (Stream.STDOUT, b""),
          (Stream.SYSTEMERR, b"daemon error"), (Stream.STDIN, bytes(range(256)) * 3)]


def test_header_layout():
    assert encode_frame(Stream.STDERR, b"abc") == b"\x02\x00\x00\x00\x00\x00\x00\x03abc"
    assert encode_frame(1, b"x" * 0x10203) [:8] == b"\x01\x00\x00\x00\x00\x01\x02\x03"
    with pytest.raises(ValueError):
        encode_frame(4, b"")


def test_decode_whole_and_byte_by_byte():
    data = b"".join(encode_frame(s, p) for s, p in FRAMES)
    assert FrameDecoder().feed(data) == FRAMES
    decoder = FrameDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
        assert decoder.pending == 0 or out != FRAMES
    assert out == FRAMES
    decoder.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Stream)), st.binary(max_size=300)), max_size=12),
       st.lists(st.integers(0, 5000), max_size=20))
def test_round_trip_in_random_pieces(frames, cuts):
    data = b"".join(encode_frame(s, p) for s, p in frames)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    decoder = FrameDecoder()
    out = []
    for a, b in zip(bounds, bounds[1:]):
        out += decoder.feed(data[a:b])
    assert out == frames and decoder.pending == 0


def test_errors():
    with pytest.raises(InvalidArgument, match="Unrecognized input header: 7"):
        FrameDecoder().feed(b"\x07\x00\x00\x00\x00\x00\x00\x01x")
    with pytest.raises(InvalidArgument, match="exceeds"):
        FrameDecoder(max_payload=10).feed(b"\x01\x00\x00\x00\x00\x00\x00\x0b")
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(1, b"abc")[:5]) == []
    assert decoder.pending == 5
    with pytest.raises(InvalidArgument, match="inside a frame"):
        decoder.close()
