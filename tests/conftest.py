"""Test tiers, the `requires` marker, and the shared fixtures.

Tiers come from the directory: tests/unit -> `unit`, tests/integration and tests/conformance ->
`root`, tests/e2e -> `e2e`. `@pytest.mark.requires("root", "cgroup1", ...)` skips with a reason
when the machine lacks a feature. With DOCKYARD_STRICT_SKIPS=1 (CI), a skipped test whose reason
is not listed in tests/allowed_skips.txt fails the run instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dockyard.testing import features
from dockyard.testing.rootfs import make_busybox_rootfs

HERE = Path(__file__).parent
_TIERS = {"unit": "unit", "integration": "root", "conformance": "root", "e2e": "e2e"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(item.fspath).relative_to(HERE)
        tier = _TIERS.get(rel.parts[0])
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
            if tier in ("root", "e2e"):
                item.add_marker(pytest.mark.requires("root"))


def pytest_runtest_setup(item):
    wanted: list[str] = []
    for mark in item.iter_markers("requires"):
        wanted.extend(mark.args)
    missing = [f for f in dict.fromkeys(wanted) if not features.has(f)]
    if missing:
        pytest.skip(f"requires {', '.join(missing)}")


def _allowed_skips() -> list[str]:
    path = HERE / "allowed_skips.txt"
    if not path.exists():
        return []
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return [ln for ln in lines if ln]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("DOCKYARD_STRICT_SKIPS") != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(allowed in reason for allowed in _allowed_skips()):
        report.outcome = "failed"
        report.longrepr = f"skip not allowed in CI (add to tests/allowed_skips.txt if intended): {reason}"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """A busybox root filesystem, built once per session; copy it before writing into it."""
    if not features.has("busybox"):
        pytest.skip("requires busybox")
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def bundle_factory(tmp_path, busybox_rootfs):
    """Make OCI bundles with a private copy of the busybox rootfs."""
    from dockyard.testing.rootfs import make_bundle

    count = 0

    def make(args: list[str], **changes) -> Path:
        nonlocal count
        count += 1
        return make_bundle(tmp_path / f"bundle{count}", busybox_rootfs, args, **changes)

    return make
