"""The monitor wire format: messages, attach frames, records, start-error categories."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, strategies as st

from dockyard.engine.monitor import protocol as P
from dockyard.engine.monitor.protocol import ExitStatus, SpawnRequest, StartKind
from dockyard.errdefs import (
    AlreadyExists, Conflict, InvalidArgument, NotFound, NotModified, System,
)

REQ = SpawnRequest("c1", "/b/c1", "/run/dy/containers/c1",
                   [{"type": "bind", "source": "/x", "options": ["rbind"]}],
                   "/var/lib/dy/c1/c1-json.log", log_opts={"max-size": "1m"}, tty=True, open_stdin=True, stdin_once=True,
                   runtime="/usr/sbin/runc", runtime_root="/run/dy/runc", start=False,
                   keep_mounted=True, decides_start=True)


# -- messages ---------------------------------------------------------------------------------

def test_message_round_trip():
    line = P.encode({"op": "kill", "signal": 9, "all": True})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert P.LineDecoder().feed(line) == [{"op": "kill", "signal": 9, "all": True}]


def test_decoder_takes_bytes_one_at_a_time():
    data = P.encode({"op": "state"}) + P.encode({"op": "wait", "x": "é\n"})
    decoder = P.LineDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
    assert out == [{"op": "state"}, {"op": "wait", "x": "é\n"}]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=20),
                                max_size=4), max_size=5),
       st.lists(st.integers(min_value=1, max_value=7), min_size=1))
def test_decoder_is_independent_of_chunking(messages, cuts):
    data = b"".join(P.encode(m) for m in messages)
    decoder, out, pos, i = P.LineDecoder(), [], 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += decoder.feed(data[pos:pos + step])
        pos, i = pos + step, i + 1
    assert out == messages


def test_attach_switches_the_connection_to_raw_bytes():
    decoder = P.LineDecoder()
    assert decoder.next(b'{"op": "attach", "stdin": true}\nraw stdin {"op": "kill"}\n') == {
        "op": "attach", "stdin": True}
    assert decoder.take_rest() == b'raw stdin {"op": "kill"}\n'
    assert decoder.next() is None


@pytest.mark.parametrize("line", [b"[1, 2]\n", b"not json\n", b'"a string"\n', b"\xff\xfe\n"])
def test_a_message_must_be_a_json_object(line):
    with pytest.raises(InvalidArgument):
        P.LineDecoder().feed(line)


def test_a_line_without_end_is_bounded():
    decoder = P.LineDecoder(max_line=16)
    decoder.feed(b'{"op": "st')
    with pytest.raises(InvalidArgument):
        decoder.feed(b"x" * 20)


# -- frames -----------------------------------------------------------------------------------

def test_frames_are_dockers_stdcopy_format():
    frame = P.frame(P.STDERR, b"oops\n")
    assert frame == b"\x02\x00\x00\x00\x00\x00\x00\x05oops\n"
    assert P.parse_frame_header(frame[:8]) == (2, 5)
    assert P.frame(P.STDOUT, b"")[:8] == struct.pack(">B3xI", 1, 0)


@given(st.lists(st.tuples(st.sampled_from([P.STDOUT, P.STDERR]), st.binary(max_size=300))))
def test_frames_decode_back(chunks):
    data = b"".join(P.frame(s, d) for s, d in chunks)
    out, pos = [], 0
    while pos < len(data):
        stream, size = P.parse_frame_header(data[pos:pos + 8])
        out.append((stream, data[pos + 8:pos + 8 + size]))
        pos += 8 + size
    assert out == chunks


# -- start errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("message, cmd, kind", [
    ('exec: "nosuch": executable file not found in $PATH', "nosuch", StartKind.NOT_FOUND),
    ('exec: "/bin/nosuch": stat /bin/nosuch: no such file or directory', "/bin/nosuch",
     StartKind.NOT_FOUND),
    ('runc create failed: unable to start container process: exec: "nosuch": executable '
     'file not found in $PATH', "nosuch", StartKind.NOT_FOUND),
    ('exec: "/etc": permission denied', "/etc", StartKind.PERMISSION_DENIED),
    ("error mounting \"/srv/f\" to rootfs at \"/etc/hosts\": not a directory", "sh",
     StartKind.NOT_A_DIRECTORY),
    # moby requires the command in the message for 127: a missing mount source is not that
    ("mount /srv/data: no such file or directory", "sh", StartKind.FAILED),
    ("cgroup: cannot write memory.limit_in_bytes: device or resource busy", "sh", StartKind.FAILED),
])
def test_start_errors_are_classified_as_moby_does(message, cmd, kind):
    assert P.classify_start_error(message, cmd) is kind


def test_start_exit_codes():
    assert P.start_exit_code(StartKind.NOT_FOUND) == 127
    assert P.start_exit_code(StartKind.PERMISSION_DENIED) == 126
    assert P.start_exit_code(StartKind.NOT_A_DIRECTORY) == 127
    assert P.start_exit_code(StartKind.FAILED) is None


def test_exit_codes_of_wait_statuses():
    assert P.exit_code_of(0) == 0
    assert P.exit_code_of(3 << 8) == 3
    assert P.exit_code_of(9) == 137  # killed by SIGKILL
    assert P.exit_code_of(15 | 0x80) == 143  # SIGTERM, core dumped
    if hasattr(os, "waitstatus_to_exitcode"):
        assert P.exit_code_of(255 << 8) == os.waitstatus_to_exitcode(255 << 8)


# -- error replies ----------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [NotFound("x"), AlreadyExists("y"), Conflict("z"),
                                 InvalidArgument("w"), NotModified("v"), System("u")])
def test_error_replies_carry_the_category(exc):
    reply = P.error_reply(exc)
    assert reply["error"] == str(exc)
    with pytest.raises(type(exc)) as info:
        P.raise_for(reply)
    assert type(info.value) is type(exc)


def test_unexpected_errors_are_system_errors():
    assert P.error_reply(OSError(5, "Input/output error"))["kind"] == "system"
    with pytest.raises(System):
        P.raise_for({"error": "?", "kind": "nonsense"})
    assert P.raise_for({"ok": True, "pid": 3}) == {"ok": True, "pid": 3}


# -- records ----------------------------------------------------------------------------------

def test_spawn_request_round_trip():
    assert SpawnRequest.from_json(P.parse_message(P.encode(REQ.to_json())[:-1])) == REQ


def test_spawn_request_defaults():
    req = SpawnRequest.from_json({"container_id": "c", "bundle": "/b", "state_dir": "/s",
                                  "log_path": "/l", "runtime_root": "/r"})
    assert (req.tty, req.open_stdin, req.runtime, req.start, req.rootfs_mounts) == (
        False, False, "dockyard", True, [])


def test_spawn_request_needs_its_runtime_root_filled_in():
    with pytest.raises(InvalidArgument, match="runtime_root"):
        SpawnRequest.from_json({"container_id": "c", "bundle": "/b", "state_dir": "/s",
                                "log_path": "/l"})


@pytest.mark.parametrize("change", [
    {"bundle": "relative/bundle"}, {"state_dir": 3}, {"tty": "yes"},
    {"rootfs_mounts": {"type": "bind"}}, {"log_opts": ["max-size"]}, {"container_id": None},
])
def test_spawn_request_rejects_bad_fields(change):
    with pytest.raises(InvalidArgument):
        SpawnRequest.from_json({**REQ.to_json(), **change})


def test_exit_status_round_trip():
    status = ExitStatus(137, True, "2024-01-01T00:00:00.5Z", "2024-01-01T00:00:01Z", 42)
    assert ExitStatus.from_json(status.to_json()) == status
    assert "error" not in status.to_json()
    lost = ExitStatus(255, error="monitor died")
    assert ExitStatus.from_json(lost.to_json()) == lost
    with pytest.raises(InvalidArgument):
        ExitStatus.from_json({"oom_killed": False})


def test_start_decisions():
    flags = {"stdin": False, "stdout": True, "stderr": True}
    assert P.parse_decision(P.parse_message(P.encode(P.decision(True, flags))[:-1])) == (True, flags)
    assert P.parse_decision(P.decision(False)) == (False, None)
    for bad in ({"start": 1}, {"attach": flags}, ["start"], {"start": True, "attach": "all"}):
        with pytest.raises(InvalidArgument):
            P.parse_decision(bad)
