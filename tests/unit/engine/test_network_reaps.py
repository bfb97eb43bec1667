"""A container that claims a fixed host port or address waits for the exited containers'
teardowns still finishing (they give ports and addresses back just after their answer)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from dockyard.engine.networks import NetworkService


def _service(sandboxes=None) -> NetworkService:
    svc = NetworkService.__new__(NetworkService)  # no manager: _after_reaps reads records only
    svc._reaps = set()
    svc.manager = SimpleNamespace(sandboxes=sandboxes or {})
    return svc


def _container(cid="c1", **hc):
    return SimpleNamespace(id=cid, host_config=hc)


def _waits(svc, c) -> bool:
    """Whether svc._after_reaps(c) waits for a reap in progress."""
    async def go():
        release = asyncio.Event()

        async def reap():
            await release.wait()

        task = asyncio.ensure_future(reap())
        svc._reaps.add(task)
        task.add_done_callback(svc._reaps.discard)
        waiter = asyncio.ensure_future(svc._after_reaps(c))
        await asyncio.sleep(0.01)
        waited = not waiter.done()
        release.set()
        await asyncio.wait_for(waiter, 1)
        assert task.done() and not svc._reaps
        return waited

    return asyncio.run(go())


def test_a_fixed_host_port_waits_for_the_reaps_in_progress():
    c = _container(PortBindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
    assert _waits(_service(), c)


def test_a_static_address_waits_for_the_reaps_in_progress():
    sandboxes = {"c1": {"endpoints": {"n1": {"IPAMConfig": {"IPv4Address": "172.30.0.9"}}}}}
    assert _waits(_service(sandboxes), _container())


def test_random_ports_and_dynamic_addresses_do_not_wait():
    c = _container(PortBindings={"80/tcp": [{"HostIp": "", "HostPort": ""}]},
                   PublishAllPorts=True)
    sandboxes = {"c1": {"endpoints": {"n1": {"IPAMConfig": None}}}}
    assert not _waits(_service(sandboxes), c)
    assert not _waits(_service(), _container())


def test_nothing_in_progress_returns_at_once():
    svc = _service()
    c = _container(PortBindings={"80/tcp": [{"HostPort": "8080"}]})
    asyncio.run(asyncio.wait_for(svc._after_reaps(c), 0.5))
