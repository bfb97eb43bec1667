"""Fixtures of the API tests (the fakes live in dockyard.testing.apifakes)."""

from __future__ import annotations

import pytest

from dockyard.testing.apifakes import FakeEngine


@pytest.fixture
def engine(tmp_path):
    e = FakeEngine(tmp_path)
    yield e
    e.close()
