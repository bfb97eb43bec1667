"""`docker logs -f` keeps the log open: a log removed (docker rm) or rotated while followed is
read to its end (the SDK's containers.run lost its output ~1 run in 60 without this)."""

from __future__ import annotations

import asyncio
import json
import os
import types

from dockyard.engine import logs


def _line(text: str) -> bytes:
    return json.dumps({"log": text, "stream": "stdout", "time": "2026-01-01T00:00:00Z"}).encode() + b"\n"


def _container(path: str):
    c = types.SimpleNamespace(id="c1", log_path=path, host_config={}, config={},
                              state=types.SimpleNamespace(Running=True))
    svc = types.SimpleNamespace(_containers={"c1": c})
    return svc, c


def test_follow_reads_a_removed_log_to_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL", 0.01)
    path = tmp_path / "c1-json.log"
    path.write_bytes(_line("one\n"))
    svc, c = _container(str(path))

    async def main():
        gen = logs.read_logs(svc, c, follow=True)
        got = [await anext(gen)]
        with open(path, "ab") as f:
            f.write(_line("two\n"))
        os.unlink(path)  # docker rm, before the follower looked again
        c.state.Running = False
        got += [x async for x in gen]
        return got

    assert asyncio.run(main()) == [("stdout", b"one\n"), ("stdout", b"two\n")]


def test_follow_goes_on_in_the_new_file_after_a_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL", 0.01)
    path = tmp_path / "c1-json.log"
    path.write_bytes(_line("a\n"))
    svc, c = _container(str(path))

    async def main():
        gen = logs.read_logs(svc, c, follow=True)
        got = [await anext(gen)]
        with open(path, "ab") as f:
            f.write(_line("b\n"))
        os.rename(path, str(path) + ".1")  # the monitor rotates
        path.write_bytes(_line("c\n"))
        got.append(await anext(gen))
        got.append(await anext(gen))
        c.state.Running = False
        got += [x async for x in gen]
        return got

    assert [d for _s, d in asyncio.run(main())] == [b"a\n", b"b\n", b"c\n"]
