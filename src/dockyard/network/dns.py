"""The embedded DNS server: 127.0.0.11:53 inside each container on a user-defined network.

Owns the sockets and the serving: for each such container, a worker thread enters its network
namespace, opens UDP and TCP sockets on 127.0.0.11:53 there and comes back (a socket stays in
the namespace it was made in); the daemon's event loop serves them. Names of containers,
aliases and links on the container's networks are answered from the engine's table
(``resolve``); every other name is forwarded to the container's upstream servers (its
``--dns``, else the host's), from the host's namespace. Never forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable

from dockyard.errdefs import InvalidArgument
from dockyard.network import dnsmsg

log = logging.getLogger(__name__)

ADDRESS = "127.0.0.11"
FORWARD_TIMEOUT = 3.0


def _open_sockets(netns: str) -> tuple[socket.socket, socket.socket]:
    from dockyard.linux.netns import in_netns

    with in_netns(netns):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((ADDRESS, 53))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((ADDRESS, 53))
            tcp.listen(64)
        except BaseException:
            udp.close()
            tcp.close()
            raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServers, cid: str) -> None:
        self.server, self.cid = server, cid
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.server._spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr) -> None:
        out = await self.server.answer(self.cid, data)
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)


class DnsServers:
    def __init__(self, resolve: Callable[[str, str], list[str] | None],
                 upstreams: Callable[[str], list[tuple[str, int]]]) -> None:
        self.resolve = resolve
        self.upstreams = upstreams
        self._serving: dict[str, tuple[asyncio.BaseTransport, asyncio.AbstractServer]] = {}
        self._tasks: set[asyncio.Task] = set()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self, cid: str, netns: str) -> None:
        if cid in self._serving:
            return
        udp, tcp = await asyncio.to_thread(_open_sockets, netns)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, cid), sock=udp)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        try:
            server = await asyncio.start_server(lambda r, w: self._tcp(cid, r, w), sock=tcp)
        except BaseException:
            transport.close()
            tcp.close()
            raise
        self._serving[cid] = (transport, server)
        log.debug("embedded DNS for %s on %s:53", cid[:12], ADDRESS)

    async def stop(self, cid: str) -> None:
        found = self._serving.pop(cid, None)
        if found is None:
            return
        transport, server = found
        transport.close()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)

    async def close(self) -> None:
        for cid in list(self._serving):
            await self.stop(cid)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _tcp(self, cid: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), 10)
                data = await reader.readexactly(struct.unpack("!H", head)[0])
                out = await self.answer(cid, data)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, cid: str, data: bytes) -> bytes | None:
        """The response to one query from container ``cid``."""
        try:
            q = dnsmsg.parse_query(data)
        except InvalidArgument:
            return dnsmsg.error_for_raw(data, dnsmsg.FORMERR) if len(data) >= 2 else None
        if q.qtype == dnsmsg.TYPE_PTR and (ip := dnsmsg.reverse_address(q.name)) is not None:
            names = self.resolve(cid, "ptr:" + ip)
            if names is not None:
                return dnsmsg.answer_ptr(data, q, names)
        found = self.resolve(cid, q.name)
        if found is not None:
            return dnsmsg.answer(data, q, found)
        return await self._forward(cid, data, q)

    async def _forward(self, cid: str, data: bytes, q: dnsmsg.Question) -> bytes:
        loop = asyncio.get_running_loop()
        for host, port in self.upstreams(cid):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                try:
                    await loop.sock_connect(s, (host, port))
                    await loop.sock_sendall(s, data)
                    reply = await asyncio.wait_for(loop.sock_recv(s, 65535), FORWARD_TIMEOUT)
                except (OSError, asyncio.TimeoutError) as exc:
                    log.debug("forwarding %s to %s:%s failed: %s", q.name, host, port, exc)
                    continue
                if len(reply) >= 2 and reply[:2] == data[:2]:
                    return reply
        return dnsmsg.error(data, q, dnsmsg.SERVFAIL)
