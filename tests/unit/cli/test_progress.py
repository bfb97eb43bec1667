"""The daemon's JSON message streams (load, import, pull) as the docker CLI shows them."""

from __future__ import annotations

import io

import pytest

from dockyard.cli.client import CLIError
from dockyard.cli.progress import (Bars, CountingReader, display_json_messages, file_size,
                                   json_messages)


def test_messages_split_anywhere():
    data = b'{"stream":"Loaded image: a:1\\n"}\r\n{"status":"sha256:abc"}\n{"id":"x","sta'
    chunks = [data[i:i + 5] for i in range(0, len(data), 5)] + [b'tus":"Done"}']
    assert list(json_messages(chunks)) == [{"stream": "Loaded image: a:1\n"},
                                           {"status": "sha256:abc"},
                                           {"id": "x", "status": "Done"}]


def test_display_like_a_non_terminal_docker():
    out = io.StringIO()
    display_json_messages([
        {"status": "Loading layer", "progressDetail": {"current": 5, "total": 10},
         "progress": "[==>   ]", "id": "c48f"},
        {"stream": "Loaded image: busybox:x\n"},
        {"status": "Pulling fs layer", "id": "abc"},
        {"status": "Digest: sha256:1"},
        {"aux": {"ID": "sha256:1"}},
    ], out, Bars(enabled=False))
    assert out.getvalue() == ("Loaded image: busybox:x\nabc: Pulling fs layer\n"
                              "Digest: sha256:1\n")


def test_errors_in_the_stream():
    with pytest.raises(CLIError, match="unexpected EOF"):
        display_json_messages([{"errorDetail": {"message": "unexpected EOF"},
                                "error": "unexpected EOF"}], io.StringIO())


def test_counting_reader(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    seen = []
    with open(path, "rb") as f:
        reader = CountingReader(f, seen.append, file_size(f))
        assert reader.len == 1000
        assert b"".join(reader) == b"x" * 1000
    assert sum(seen) == 1000
    assert file_size(io.BytesIO(b"")) is None
