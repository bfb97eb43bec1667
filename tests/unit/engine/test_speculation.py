"""Speculations' bookkeeping (engine/speculation.py) with a spawn that records what happens to
it; the real monitor spawn is exercised end to end in tests/e2e/test_speculation.py."""

from __future__ import annotations

import asyncio

from dockyard.engine.speculation import Speculations, Withdrawn


class Spawns:
    """A spawn function that waits in ``prepare`` as a monitor client's does."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def __call__(self, req, prepare, decide, connection):
        try:
            await prepare()
            start, _attach = await decide()
        except Withdrawn:
            self.outcomes.append(f"withdrawn {req['container_id']}")
            raise
        self.outcomes.append(f"{'started' if start else 'created'} {req['container_id']}")
        return req["container_id"]


def run(coro):
    return asyncio.run(coro)


def test_reservations_and_speculations_share_the_limit():
    async def scenario():
        spawns = Spawns()
        specs = Speculations(spawns, limit=2, timeout=10)
        assert specs.reserve() and specs.reserve() and not specs.reserve()
        assert specs.begin("a", {"container_id": "a"}, reserved=True) is not None
        specs.release()  # the second create did not speculate after all
        assert specs.begin("b", {"container_id": "b"}) is not None
        assert specs.begin("c", {"container_id": "c"}) is None and not specs.reserve()
        await specs.withdraw("a")
        assert specs.reserve()
        specs.release()
        await specs.close()
        assert sorted(spawns.outcomes) == ["withdrawn a", "withdrawn b"]
        assert not specs.reserve()  # closed

    run(scenario())


def test_a_start_takes_a_speculation_made_with_its_request_only():
    async def scenario():
        spawns = Spawns()
        specs = Speculations(spawns, limit=2, timeout=10)
        specs.begin("a", {"container_id": "a", "log": 1})
        specs.begin("b", {"container_id": "b"})
        assert await specs.take("a", {"container_id": "a", "log": 2}) is None  # renamed since
        spawn = await specs.take("b", {"container_id": "b"})

        async def prepare():
            pass

        async def decide():
            return True, None

        assert await spawn.proceed(prepare, decide) == "b"
        assert await specs.take("b", {"container_id": "b"}) is None  # taken once
        assert spawns.outcomes == ["withdrawn a", "started b"]
        assert len(specs) == 0

    run(scenario())


def test_one_no_start_takes_in_time_is_withdrawn():
    async def scenario():
        spawns = Spawns()
        specs = Speculations(spawns, limit=2, timeout=0.05)
        specs.begin("a", {"container_id": "a"})
        await asyncio.sleep(0.2)
        assert spawns.outcomes == ["withdrawn a"] and len(specs) == 0
        assert await specs.take("a", {"container_id": "a"}) is None
        await specs.close()

    run(scenario())
