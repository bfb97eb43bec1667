"""A resumable pull (docker/cli#7166, moby#25866): a 100 MB layer, the daemon killed in the
middle of it, restarted, and the pull picks up where it stopped. The bytes are counted at our
registry, which serves blobs at a limited rate here so that the kill lands mid-layer."""

from __future__ import annotations

import subprocess
import time

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.registry import DockyardRegistry, random_layer, skopeo, write_oci_layout

pytestmark = pytest.mark.requires("docker_cli", "skopeo")

LAYER = 100 * 1000 * 1000
RATE = 40 * 1000 * 1000  # bytes/s


def _ingested(daemon: DockyardDaemon) -> int:
    return sum(p.stat().st_size for p in (daemon.data_root / "content" / "ingest").glob("*/data"))


def test_pull_killed_mid_layer_resumes_after_restart(tmp_path):
    layout = tmp_path / "oci"
    write_oci_layout(layout, [random_layer(LAYER, 11)], compress=False)
    with DockyardRegistry(args=["--rate-limit", str(RATE)]) as reg, \
            DockyardDaemon(log_path=tmp_path / "daemon.log") as daemon:
        ref = f"{reg.addr}/big/layer:v1"
        out = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{ref}")
        assert out.returncode == 0, out.stderr
        before = reg.stats()["blob_bytes_sent"]
        pull = subprocess.Popen(["docker", "pull", ref], env=daemon.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while _ingested(daemon) < LAYER * 0.3 and time.monotonic() < deadline:
                time.sleep(0.01)
            daemon.kill()
            _, err = pull.communicate(timeout=30)
        finally:
            if pull.poll() is None:
                pull.kill()
                pull.communicate()
        assert pull.returncode != 0
        partial = _ingested(daemon)
        assert LAYER * 0.3 <= partial < LAYER, partial
        first = reg.stats()["blob_bytes_sent"] - before
        assert first >= partial

        daemon.start()
        out = daemon.docker("pull", ref, timeout=60).stdout
        assert "Downloaded newer image" in out
        second = reg.stats()["blob_bytes_sent"] - before - first
        # the rest of the layer (and the small config), not the whole layer again
        assert second <= LAYER - partial + 4096 + 10_000, (partial, second)
        assert _ingested(daemon) == 0
        inspect = daemon.docker("image", "inspect", "-f", "{{.Size}}", ref).stdout.strip()
        assert int(inspect) == LAYER
