"""Speculative spawns: a container's monitor asked for at its create, ready at its start.

`docker run` creates a container and starts it a few milliseconds later (the CLI attaches and
waits in between); most of a start's time before the runtime can create the container is the
monitor getting ready: a spare of the factory accepting the spawn, preparing the container's
stdio and log, its helper mounting the rootfs. So at the end of a create the engine asks for
the container's monitor already, with ``config_follows``: the monitor gets ready, then waits
for the go-ahead. A start that finds the speculation waiting, for the same spawn request, only
sets up the network and writes config.json before the go (`ContainerService._start`).

Nothing of a speculation shows through the API: the container stays "created", no event is
emitted, no network is set up. Whatever needs the container's files first (a removal, a
mount of the stopped container for cp or export: `ContainerService.settled`) withdraws it:
the monitor unmounts the rootfs, removes what it made, and exits, and the caller goes on once
it has. A speculation no start takes within ``timeout`` is withdrawn as well, and at most
``limit`` wait at once (a burst of `docker create` takes the factory's spares only so far).

Owns the speculations only; the engine decides what to speculate on and what a start does.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

LIMIT = 2  # waiting at once: as many as the factory keeps spares
TIMEOUT_S = 2.0  # without a start: withdrawn


class Withdrawn(Exception):
    """A speculative spawn's go-ahead that will not come."""


class Spawn:
    """One speculative spawn: ``req`` (the SpawnRequest's fields), ``task`` (the monitor
    client's spawn, waiting in ``prepare`` until the start hands over its own)."""

    def __init__(self, req: dict) -> None:
        self.req = req
        self.data: dict = {}  # the engine's, made with it (a config.json computed ahead)
        self.go: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.ahead = None  # `create_ahead`'s prepare
        self.on_withdrawn: list = []  # called once a withdrawal is over

    def create_ahead(self, prepare) -> None:
        """Before the spawn reaches its ``prepare``: go on with ``prepare`` (writing the
        complete config.json) instead of waiting for the start's, so the runtime creates the
        container now; the start's own ``prepare`` (the network's setup) then runs before
        its decision."""
        self.ahead = prepare

    async def prepare(self) -> None:
        """The spawn's ``prepare``: what the start gives it (`proceed`), run when it does;
        or, created ahead, the speculation's own."""
        if self.ahead is not None:
            await self.ahead()
            if self.go.done() and self.go.exception() is not None:
                raise Withdrawn()  # meanwhile: before the runtime creates anything
            return
        prepare, _decide = await self.go
        await prepare()

    async def decide(self):
        """The spawn's ``decide``: the start's, once it has come (after ``prepare``; created
        ahead, after the start's ``prepare`` too)."""
        prepare, decide = await self.go
        if self.ahead is not None:
            await prepare()
        return await decide()

    def proceed(self, prepare, decide):
        """Hand the start's ``prepare`` and ``decide`` over; returns the spawn's task."""
        self.go.set_result((prepare, decide))
        return self.task

    async def withdraw(self) -> None:
        for value in self.data.values():  # work started with it, for the start
            if isinstance(value, asyncio.Future):
                await asyncio.gather(value, return_exceptions=True)
        if self.timer is not None:
            self.timer.cancel()
        if not self.go.done():
            self.go.set_exception(Withdrawn())
        if self.task is not None:
            result = (await asyncio.gather(self.task, return_exceptions=True))[0]
            if not isinstance(result, BaseException):  # the start came first after all
                log.warning("a withdrawn speculative spawn of %s went on", self.req.get("container_id"))
            elif not isinstance(result, (Withdrawn, asyncio.CancelledError)):
                log.debug("speculative spawn of %s: %s", self.req.get("container_id"), result)
        for callback in self.on_withdrawn:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one cleanup's failure must not stop the others
                log.warning("after withdrawing %s", self.req.get("container_id"), exc_info=True)


class Speculations:
    def __init__(self, spawn, limit: int = LIMIT, timeout: float = TIMEOUT_S) -> None:
        """``spawn(req: dict, prepare, decide, connection)``: the monitor client's spawn of
        a created container (`MonitorClient.spawn`)."""
        self._spawn = spawn
        self.limit, self.timeout = limit, timeout
        self._spawns: dict[str, Spawn] = {}
        self._withdrawing: set[asyncio.Task] = set()
        self._reserved = 0  # creates that opened a factory connection for one (reserve)
        self._closed = False

    def __len__(self) -> int:
        return len(self._spawns)

    def reserve(self) -> bool:
        """A place for a speculation to begin later (`begin` with ``reserved``, or
        `release`): a create takes one before it opens a factory connection for it, so that
        a burst of creates opens no more connections than can be used."""
        if self._closed or len(self._spawns) + self._reserved >= self.limit:
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved -= 1

    def begin(self, cid: str, req: dict, connection=None, reserved: bool = False) -> Spawn | None:
        """Ask for ``cid``'s monitor now (None: not, at the limit or closed), on
        ``connection`` (a factory connection opened ahead, or None) if given; ``reserved``:
        in the place `reserve` gave."""
        if reserved:
            self.release()
        if self._closed or cid in self._spawns or len(self._spawns) + self._reserved >= self.limit:
            return None
        spawn = Spawn(req)
        loop = asyncio.get_running_loop()
        spawn.task = loop.create_task(self._spawn(req, spawn.prepare, spawn.decide, connection))
        spawn.timer = loop.call_later(self.timeout, self._expire, cid, spawn)
        self._spawns[cid] = spawn
        return spawn

    async def take(self, cid: str, req: dict) -> Spawn | None:
        """For a start: ``cid``'s speculation if it still waits and was made with ``req``;
        None otherwise (one that does not fit is withdrawn first)."""
        spawn = self._spawns.pop(cid, None)
        if spawn is None:
            return None
        spawn.timer.cancel()
        if spawn.task.done() or spawn.go.done() or spawn.req != req:
            await spawn.withdraw()
            return None
        return spawn

    async def withdraw(self, cid: str) -> None:
        """Before anything that needs ``cid``'s files: its speculation gone, if any."""
        spawn = self._spawns.pop(cid, None)
        if spawn is not None:
            await spawn.withdraw()

    def _expire(self, cid: str, spawn: Spawn) -> None:
        if self._spawns.get(cid) is spawn:
            del self._spawns[cid]
            task = asyncio.get_running_loop().create_task(spawn.withdraw())
            self._withdrawing.add(task)
            task.add_done_callback(self._withdrawing.discard)

    async def close(self) -> None:
        self._closed = True
        spawns, self._spawns = list(self._spawns.values()), {}
        await asyncio.gather(*(s.withdraw() for s in spawns), *self._withdrawing,
                             return_exceptions=True)
