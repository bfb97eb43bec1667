"""Relaying a client's hijacked attach connection to the container's monitor.

Owns the plumbing between the two byte streams: the monitor already frames the output as
the client expects (stdcopy frames without a TTY, raw bytes with one), so bytes are copied
both ways until the container's output ends; a client EOF ends the container's stdin. An
attach to a container that has not started yet waits for its next start (how `docker run`
sees every byte of output). Detach keys (ctrl-p ctrl-q) on a TTY's stdin end the relay
without touching the container.
"""

from __future__ import annotations

import asyncio
import contextlib

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
_CHUNK = 64 * 1024


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's --detach-keys: comma-separated `ctrl-<c>` or single characters."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            ch = key[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch)
            out.append(code if code is not None else (ord(ch.lower()) - ord("a") + 1) & 0x1F)
        elif len(key) == 1:
            out.append(ord(key))
        else:
            from dockyard.errdefs import InvalidArgument

            raise InvalidArgument(f"Unknown character: '{key}'")
    return bytes(out)


async def relay(svc, c, reader, writer, *, stdin: bool, stdout: bool, stderr: bool,
                detach_keys: str | None = None) -> None:
    handle = svc._handles.get(c.id) if c.state.Running else None
    connected = None
    svc._emit(c, "attach")  # when it is asked for, as dockerd: before a start it waits for
    if handle is None:
        fut, connected = svc.wait_for_start(
            c, {"stdin": stdin, "stdout": stdout, "stderr": stderr})
        try:
            handle = await fut
        except Exception:  # noqa: BLE001 - the start failed; its caller reports why
            writer.close()
            return
    try:
        m_reader, m_writer = await handle.attach(stdin=stdin, stdout=stdout, stderr=stderr)
    finally:
        if connected is not None:
            connected.set()
    keys = parse_detach_keys(detach_keys) if c.config.get("Tty") else b""
    out = asyncio.create_task(_pump_out(m_reader, writer))
    inp = asyncio.create_task(_pump_in(reader, m_writer, keys, out)) if stdin else None
    try:
        # the output ends with the container (or is cancelled by the detach keys); the input
        # side lives only as long as the output does
        await asyncio.wait({out})
        if inp is not None and inp.done() and not inp.cancelled() and inp.exception() is None \
                and inp.result():
            svc._emit(c, "detach")
    finally:
        for task in (out, inp):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (out, inp) if t is not None), return_exceptions=True)
        m_writer.close()
        with contextlib.suppress(Exception):
            await m_writer.wait_closed()


async def _pump_out(src: asyncio.StreamReader, dst) -> None:
    while True:
        data = await src.read(_CHUNK)
        if not data:
            break
        dst.write(data)
        await dst.drain()
    with contextlib.suppress(Exception):
        if dst.can_write_eof():
            dst.write_eof()


class DetachMatcher:
    """moby's term.EscapeProxy on the daemon side: bytes pass through until the detach
    sequence is typed; a partial match is held back (and released if it breaks off)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the whole sequence was seen)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            if b == self.keys[len(self.held)]:
                self.held += bytes((b,))
                if len(self.held) == len(self.keys):
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held
            self.held = b""
            if b == self.keys[0]:
                self.held = bytes((b,))
            else:
                out.append(b)
        return bytes(out), False


async def _pump_in(src, dst: asyncio.StreamWriter, keys: bytes, out_task: asyncio.Task) -> bool:
    """Client to container until EOF; True when the detach keys ended it."""
    matcher = DetachMatcher(keys)
    while not out_task.done():
        data = await src.read(_CHUNK)
        if not data:
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()
            return False
        data, detached = matcher.feed(data)
        if data:
            dst.write(data)
        if detached:
            out_task.cancel()  # detached: the container keeps running
            return True
        await dst.drain()
    return False
