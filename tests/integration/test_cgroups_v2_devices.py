"""cgroup v2 device rules against the real kernel: the eBPF filter decides what a process opens.

Runs on any cgroup2 mount: /sys/fs/cgroup on a v2 host, /sys/fs/cgroup/unified on a hybrid
one (a device program needs no enabled controller). The v1 devices controller, if any, still
applies too; the test cgroup there is the root, which allows everything.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from dockyard.runtime.cgroups.v2 import V2Manager
from dockyard.spec.runtime import parse_resources

PROBE = """import sys
sys.stdin.readline()
for dev, mode in [("/dev/null", "w"), ("/dev/zero", "r"), ("/dev/zero", "w"), ("/dev/full", "r")]:
    try:
        open(dev, mode).close()
        print(dev, mode, "ok")
    except OSError as exc:
        print(dev, mode, exc.strerror)
"""


def cgroup2_mount() -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            _, target, fstype, *_ = line.split()
            if fstype == "cgroup2":
                return target
    return None


@pytest.fixture
def mgr():
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("requires a cgroup2 mount")
    m = V2Manager(mount, f"/dockyard-itest-{uuid.uuid4().hex[:12]}")
    m.create()
    yield m
    m.destroy()
    assert not m.exists()


def probe(m: V2Manager) -> dict[tuple[str, str], str]:
    proc = subprocess.Popen([sys.executable, "-c", PROBE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        m.add(proc.pid)
        out, _ = proc.communicate("go\n", timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {tuple(line.split()[:2]): line.split(None, 2)[2] for line in out.splitlines()}


def test_device_filter_allows_only_listed_devices_and_is_replaced_on_update(mgr):
    mgr.set(parse_resources({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]}))
    assert mgr.bpf.attached_count(mgr.dir) == 1
    assert probe(mgr) == {("/dev/null", "w"): "ok", ("/dev/zero", "r"): "ok",
                          ("/dev/zero", "w"): "Operation not permitted",
                          ("/dev/full", "r"): "Operation not permitted"}

    mgr.set(parse_resources({"devices": [{"allow": True, "access": "rwm"},
                                         {"allow": False, "type": "c", "major": 1, "minor": 3}]}))
    assert mgr.bpf.attached_count(mgr.dir) == 1  # replaced, not stacked
    assert probe(mgr) == {("/dev/null", "w"): "Operation not permitted",
                          ("/dev/zero", "r"): "ok", ("/dev/zero", "w"): "ok",
                          ("/dev/full", "r"): "ok"}
