"""Attached I/O: frame demultiplexing, stdin half-close, detach keys, over a socketpair."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.cli.streams import Demuxer, EscapeProxy, Streamer, detach_key_bytes


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(payload)) + payload


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=50)), max_size=8),
       st.integers(min_value=1, max_value=7))
def test_demuxer_handles_any_split(frames, step):
    out, err = bytearray(), bytearray()
    demux = Demuxer(out.extend, err.extend)
    data = b"".join(frame(k, p) for k, p in frames)
    for i in range(0, len(data), step):
        demux.feed(data[i:i + step])
    assert bytes(out) == b"".join(p for k, p in frames if k == 1)
    assert bytes(err) == b"".join(p for k, p in frames if k == 2)


def test_demuxer_rejects_unknown_stream():
    with pytest.raises(ValueError, match="Unrecognized input header: 9"):
        Demuxer(print, print).feed(frame(9, b"x"))


def test_detach_key_parsing():
    assert detach_key_bytes("ctrl-p,ctrl-q") == b"\x10\x11"
    assert detach_key_bytes("ctrl-a,x,ctrl-@,ctrl-[") == b"\x01x\x00\x1b"
    with pytest.raises(ValueError):
        detach_key_bytes("ctrl-1")
    with pytest.raises(ValueError):
        detach_key_bytes("abc")


def test_escape_proxy_holds_partial_matches():
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"ab\x10") == (b"ab", False)
    assert proxy.feed(b"c") == (b"\x10c", False)
    assert proxy.feed(b"\x10\x10") == (b"\x10", False)
    assert proxy.feed(b"\x11rest") == (b"", True)


def _pipes():
    """(our end of the fake daemon connection, the daemon's end, stdin r/w, stdout r/w, stderr)"""
    ours, theirs = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return ours, theirs, (stdin_r, stdin_w), (out_r, out_w), (err_r, err_w)


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return data


def test_non_tty_stream_demuxes_and_half_closes_stdin():
    ours, theirs, (in_r, in_w), (out_r, out_w), (err_r, err_w) = _pipes()
    os.write(in_w, b"input")
    os.close(in_w)

    def daemon() -> None:
        received = b""
        while chunk := theirs.recv(100):  # ends when the client half-closes
            received += chunk
        theirs.sendall(frame(1, b"echo:" + received) + frame(2, b"warn"))
        theirs.close()

    t = threading.Thread(target=daemon)
    t.start()
    detached = Streamer(ours, tty=False, stdin=True, stdin_fd=in_r, stdout_fd=out_w,
                        stderr_fd=err_w).run()
    t.join(5)
    for fd in (out_w, err_w, in_r):
        os.close(fd)
    ours.close()
    assert not detached
    assert _read_all(out_r) == b"echo:input"
    assert _read_all(err_r) == b"warn"
    os.close(out_r)
    os.close(err_r)


def test_tty_stream_detaches_on_key_sequence():
    ours, theirs, (in_r, in_w), (out_r, out_w), (_err_r, err_w) = _pipes()
    got = bytearray()

    def daemon() -> None:
        theirs.sendall(b"prompt# ")
        while chunk := theirs.recv(100):
            got.extend(chunk)

    t = threading.Thread(target=daemon, daemon=True)
    t.start()
    os.write(in_w, b"ls\x10\x11ignored")
    detached = Streamer(ours, tty=True, stdin=True, detach_keys="ctrl-p,ctrl-q",
                        stdin_fd=in_r, stdout_fd=out_w, stderr_fd=err_w).run()
    t.join(5)
    theirs.close()
    ours.close()
    for fd in (out_w, err_w, in_r, in_w):
        os.close(fd)
    assert detached
    assert bytes(got) == b"ls"
    assert _read_all(out_r) == b"prompt# "
    os.close(out_r)
