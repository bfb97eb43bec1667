"""The userland proxy: published ports the kernel cannot carry, relayed by the daemon's loop.

The kernel carries every published IPv4 port (firewall.py). It cannot carry two cases, which
this proxy does, as docker-proxy does for dockerd: a port published on an IPv6 host address
to an IPv4-only container (no NAT46 in netfilter), and every port when the daemon manages no
firewall (``--iptables=false``). TCP: the reserved socket listens and each connection is
spliced to the container's address; UDP: each client gets a connected socket to the
container, dropped after a minute idle. The proxy uses a duplicate of the reservation socket,
so the manager's reservation and the proxy each close their own. Runs on the event loop; no
process per port (the daemon never forks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

log = logging.getLogger(__name__)

UDP_IDLE = 60.0
CHUNK = 1 << 16


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class _UdpRelay(asyncio.DatagramProtocol):
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[tuple, tuple[asyncio.DatagramTransport, list[float]]] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        entry = self.clients.get(addr)
        if entry is not None:
            entry[1][0] = time.monotonic()
            entry[0].sendto(data)
            return
        asyncio.get_running_loop().create_task(self._open(addr, data))

    async def _open(self, addr, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        seen = [time.monotonic()]
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _addr) -> None:
                seen[0] = time.monotonic()
                if relay.transport is not None and not relay.transport.is_closing():
                    relay.transport.sendto(data, addr)

        try:
            transport, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        except OSError as exc:
            log.debug("udp proxy to %s: %s", self.target, exc)
            return
        self.clients[addr] = (transport, seen)
        transport.sendto(first)

    def expire(self) -> None:
        now = time.monotonic()
        for addr, (transport, seen) in list(self.clients.items()):
            if now - seen[0] > UDP_IDLE:
                transport.close()
                del self.clients[addr]

    def close(self) -> None:
        for transport, _ in self.clients.values():
            transport.close()
        self.clients.clear()
        if self.transport is not None:
            self.transport.close()


class Proxies:
    """The proxies of every container, by container id."""

    def __init__(self) -> None:
        self._running: dict[str, list] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self, owner: str, items: list[tuple[str, socket.socket, str, int]]) -> None:
        """``items``: (protocol, reserved socket, container address, container port)."""
        loop = asyncio.get_running_loop()
        running = self._running.setdefault(owner, [])
        for proto, sock, ip, port in items:
            dup = sock.dup()
            dup.setblocking(False)
            try:
                if proto == "tcp":
                    dup.listen(128)
                    server = await asyncio.start_server(
                        lambda r, w, t=(ip, port): self._tcp(r, w, t), sock=dup)
                    running.append(server)
                elif proto == "udp":
                    _, relay = await loop.create_datagram_endpoint(lambda t=(ip, port): _UdpRelay(t),
                                                                   sock=dup)
                    running.append(relay)
                    self._spawn(self._expire(relay))
                else:
                    dup.close()
            except BaseException:
                dup.close()
                raise

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _expire(self, relay: _UdpRelay) -> None:
        while relay.transport is not None and not relay.transport.is_closing():
            await asyncio.sleep(UDP_IDLE / 4)
            relay.expire()

    async def _tcp(self, reader, writer, target: tuple[str, int]) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 10)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("tcp proxy to %s: %s", target, exc)
            writer.close()
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pump(reader, up_writer))
                tg.create_task(_pump(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    async def stop(self, owner: str) -> None:
        for item in self._running.pop(owner, []):
            item.close()
            if isinstance(item, asyncio.AbstractServer):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(item.wait_closed(), 1)

    async def close(self) -> None:
        for owner in list(self._running):
            await self.stop(owner)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
