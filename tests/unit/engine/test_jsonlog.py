"""Docker's json-file log format, line splitting, rotation and compression (tmp dirs only)."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from hypothesis import given, strategies as st

from dockyard.engine.monitor import jsonlog
from dockyard.engine.monitor.jsonlog import JSONFileWriter, LineSplitter, LogOptions
from dockyard.errdefs import InvalidArgument

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


class Clock:
    def __init__(self, start: int = T0, step: int = 1_000):
        self.now, self.step = start, step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def entries(path) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


# -- the format -------------------------------------------------------------------------------

@pytest.mark.parametrize("data, literal", [
    (b"hello\n", '"hello\\n"'),
    (b'say "hi"\\\r\n', '"say \\"hi\\"\\\\\\r\\n"'),
    (b"<a href='x'>&</a>", '"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"'),
    (b"tab\there\x00\x1b[0m\x7f", '"tab\\u0009here\\u0000\\u001b[0m\x7f"'),
    (b"\x08\x0c", '"\\u0008\\u000c"'),
    ("héllo ✓".encode(), '"héllo ✓"'),  # valid UTF-8 stays raw
    ("a\u2028b\u2029".encode(), '"a\\u2028b\\u2029"'),
    (b"bad \xff\xfe end", '"bad \\ufffd\\ufffd end"'),  # each invalid byte
    (b"cut \xe2\x82", '"cut \\ufffd\\ufffd"'),  # a truncated sequence, byte by byte as Go
])
def test_escaping_is_mobys(data, literal):
    assert jsonlog.escape(data) == literal


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_escaped_text_decodes_back(text):
    assert json.loads(jsonlog.escape(text.encode())) == text


def test_entries_are_dockers_shape():
    line = jsonlog.encode_entry(b"hi\n", "stderr", T0 + 120_000_000)
    assert line == b'{"log":"hi\\n","stream":"stderr","time":"2023-11-14T22:13:20.12Z"}\n'


@pytest.mark.parametrize("ns, text", [
    (T0, "2023-11-14T22:13:20Z"),
    (T0 + 1, "2023-11-14T22:13:20.000000001Z"),
    (T0 + 500_000_000, "2023-11-14T22:13:20.5Z"),
    (T0 + 123_456_789, "2023-11-14T22:13:20.123456789Z"),
    (T0 + 10**9 * 3600 + 100, "2023-11-14T23:13:20.0000001Z"),
])
def test_time_is_gos_rfc3339nano_in_utc(ns, text):
    assert jsonlog.format_time(ns) == text


# -- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, size", [("10m", 10_000_000), ("10MB", 10_000_000), ("1k", 1000),
                                        ("1.5k", 1500), ("300", 300), ("2g", 2 * 10**9),
                                        ("5mb", 5_000_000), ("5 MiB", 5_000_000)])
def test_sizes_are_go_units_decimal(text, size):
    assert jsonlog.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "m", "ten", "1x", "-5m", "1..5k"])
def test_bad_sizes(text):
    with pytest.raises(InvalidArgument):
        jsonlog.parse_size(text)


def test_rotation_is_on_by_default():
    assert jsonlog.parse_log_options({}) == LogOptions(10_000_000, 3, False)


def test_options():
    assert jsonlog.parse_log_options({"max-size": "1k", "max-file": "5", "compress": "true"}) == \
        LogOptions(1000, 5, True)
    assert jsonlog.parse_log_options({"max-size": "-1"}).max_size == -1
    assert jsonlog.parse_log_options({"tag": "{{.Name}}", "labels": "a"}) == LogOptions()


@pytest.mark.parametrize("opts, message", [
    ({"max-size": "0"}, "max-size must be a positive number"),
    ({"max-file": "0"}, "max-file cannot be less than 1"),
    ({"max-file": "two"}, "invalid max-file"),
    ({"compress": "maybe"}, "invalid compress"),
    ({"compress": "true", "max-file": "1"}, "compress cannot be true"),
    ({"compress": "true", "max-size": "-1"}, "compress cannot be true"),
    ({"foo": "1"}, "unknown log opt 'foo' for json-file log driver"),
])
def test_bad_options_fail_as_dockerd(opts, message):
    with pytest.raises(InvalidArgument, match=message):
        jsonlog.parse_log_options(opts)


# -- splitting --------------------------------------------------------------------------------

def test_lines_keep_their_newline_and_the_rest_waits():
    s = LineSplitter()
    assert s.feed(b"one\ntwo\nthr") == [b"one\n", b"two\n"]
    assert s.feed(b"ee\n\n") == [b"three\n", b"\n"]
    assert s.flush() == []


def test_long_lines_come_in_16k_pieces():
    s = LineSplitter()
    assert s.feed(b"x" * 16383 + b"\n") == [b"x" * 16383 + b"\n"]  # 16 KiB with its newline
    assert s.feed(b"y" * 16384 + b"\n") == [b"y" * 16384, b"\n"]
    assert s.feed(b"z" * 40000) == [b"z" * 16384, b"z" * 16384]
    assert s.feed(b"z\n") == [b"z" * (40000 - 32768 + 1) + b"\n"]


def test_flush_gives_the_unfinished_line():
    s = LineSplitter()
    assert s.feed(b"no newline") == []
    assert s.flush() == [b"no newline"]
    assert s.flush() == []


@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=500), min_size=1),
       st.integers(min_value=1, max_value=64))
def test_splitting_is_independent_of_reads(data, cuts, size):
    whole = LineSplitter(size)
    expected = whole.feed(data) + whole.flush()
    s, got, pos, i = LineSplitter(size), [], 0, 0
    while pos < len(data):
        got += s.feed(data[pos:pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    got += s.flush()
    assert got == expected
    assert b"".join(got) == data
    assert all(len(m) <= size or (len(m) == size + 1 and m.endswith(b"\n")) or m.endswith(b"\n")
               for m in got)
    assert all(len(m) <= size + 1 for m in got)


# -- the file ---------------------------------------------------------------------------------

def test_writer_logs_both_streams(tmp_path):
    path = tmp_path / "c-json.log"
    w = JSONFileWriter(str(path), clock=Clock())
    w.write("stdout", b"out 1\nout")
    w.write("stderr", b"err\n")
    w.write("stdout", b" 2\n")
    w.close()
    got = entries(path)
    assert [(e["stream"], e["log"]) for e in got] == [
        ("stdout", "out 1\n"), ("stderr", "err\n"), ("stdout", "out 2\n")]
    assert all(e["time"].startswith("2023-11-14T22:13:20.") for e in got)
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


def test_close_logs_unfinished_lines_without_newline(tmp_path):
    path = tmp_path / "log"
    w = JSONFileWriter(str(path), clock=Clock())
    w.write("stdout", b"prompt> ")
    w.close()
    w.close()
    assert [e["log"] for e in entries(path)] == ["prompt> "]


def test_writer_appends_to_an_existing_log(tmp_path):
    path = tmp_path / "log"
    for text in (b"first run\n", b"second run\n"):
        w = JSONFileWriter(str(path), clock=Clock())
        w.write("stdout", text)
        w.close()
    assert [e["log"] for e in entries(path)] == ["first run\n", "second run\n"]


def _fill(path, opts, count, line=b"0123456789\n"):
    w = JSONFileWriter(str(path), opts, clock=Clock())
    for i in range(count):
        w.write("stdout", b"%04d " % i + line)
    w.close()


def test_rotation_keeps_max_file_files(tmp_path):
    path = tmp_path / "log"
    _fill(path, LogOptions(max_size=300, max_file=3), 40)
    names = sorted(os.listdir(tmp_path))
    assert names == ["log", "log.1", "log.2"]
    for name in names:  # rotation happens before the write that would start past max-size
        assert os.path.getsize(tmp_path / name) < 300 + 100
    kept = [e["log"] for e in jsonlog.read_entries(str(path), 3)]
    numbers = [int(t.split()[0]) for t in kept]
    assert numbers == list(range(numbers[0], 40))  # oldest first, contiguous, newest last
    assert numbers[0] > 0  # the oldest file was dropped


def test_max_file_one_truncates(tmp_path):
    path = tmp_path / "log"
    _fill(path, LogOptions(max_size=200, max_file=1), 30)
    assert os.listdir(tmp_path) == ["log"]
    assert os.path.getsize(path) < 300
    assert entries(path)[-1]["log"].startswith("0029 ")


def test_no_rotation_with_max_size_minus_one(tmp_path):
    path = tmp_path / "log"
    _fill(path, LogOptions(max_size=-1, max_file=3), 200)
    assert os.listdir(tmp_path) == ["log"]
    assert len(entries(path)) == 200


def test_compressed_rotation(tmp_path):
    path = tmp_path / "log"
    _fill(path, LogOptions(max_size=300, max_file=3, compress=True), 40)
    assert sorted(os.listdir(tmp_path)) == ["log", "log.1.gz", "log.2.gz"]
    with gzip.open(tmp_path / "log.1.gz", "rb") as f:
        rotated = [json.loads(line) for line in f]
    raw = (tmp_path / "log.1.gz").read_bytes()
    assert raw[3] & 0x04  # FEXTRA: moby keeps the last entry's time there
    xlen = int.from_bytes(raw[10:12], "little")
    assert json.loads(raw[12:12 + xlen]) == {"lastTime": rotated[-1]["time"]}
    numbers = [int(e["log"].split()[0]) for e in jsonlog.read_entries(str(path), 3)]
    assert numbers == list(range(numbers[0], 40))


def test_log_files_oldest_first(tmp_path):
    path = tmp_path / "log"
    for name in ("log.2.gz", "log.1", "log"):
        (tmp_path / name).write_bytes(b"")
    assert jsonlog.log_files(str(path), 3) == [str(tmp_path / n) for n in ("log.2.gz", "log.1", "log")]


def test_a_failing_write_is_reported_and_dropped(tmp_path):
    errors = []
    w = JSONFileWriter("/dev/full", on_error=errors.append)
    w.write("stdout", b"lost\n")
    assert errors and "No space left" in errors[0]
    w.close()


def test_a_log_that_is_not_a_file_is_never_rotated():
    w = JSONFileWriter(os.devnull, LogOptions(max_size=10, max_file=2))
    for _ in range(5):
        w.write("stdout", b"discarded\n")
    w.close()
    assert os.path.exists(os.devnull) and not os.path.exists(os.devnull + ".1")
