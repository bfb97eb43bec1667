"""Fixtures shared by e2e modules: one dockyard daemon per module with busybox imported, and
a docker SDK client on it. A module that needs another daemon defines its own ``daemon``."""

from __future__ import annotations

import pytest

from dockyard.testing.daemon import DockyardDaemon


@pytest.fixture(scope="module")
def daemon():
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        yield d


@pytest.fixture
def client(daemon):
    c = daemon.client()
    yield c
    c.close()
