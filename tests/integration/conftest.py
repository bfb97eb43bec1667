"""Fixtures for driving the real `dockyard-runtime` command on busybox bundles.

`rt`: the runtime's CLI (`dockyard.testing.runtimectl.RuntimeCLI`) with a private --root;
at teardown it force-deletes every container and fails the test if anything had leaked
(a state directory, a process or a cgroup that `delete --force` did not remove).
`bundle(*args, edit=fn, **changes)`: a bundle with a private copy of the busybox rootfs whose
config.json runs ``args``; ``edit`` receives the config as a dict and changes it in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.testing.runtimectl import RuntimeCLI


@pytest.fixture
def rt(tmp_path):
    cli = RuntimeCLI(tmp_path / "runtime-root")
    yield cli
    leaks = cli.cleanup()
    assert not leaks, f"left behind after delete --force: {leaks}"


@pytest.fixture
def bundle(bundle_factory):
    def make(*args: str, edit=None, **changes) -> Path:
        b = bundle_factory(list(args), **changes)
        if edit is not None:
            path = b / "config.json"
            config = json.loads(path.read_text())
            edit(config)
            path.write_text(json.dumps(config, indent=2))
        return b

    return make
