"""Registries for tests, on loopback: ours (`DockyardRegistry`, `dockyard registry serve` as a
process) and Debian's distribution 2.8 (`DistributionRegistry`, the ``docker-registry``
package) with a temporary config; and OCI image layouts made from parts, for skopeo to push.

Every process is started on a free port of 127.0.0.1 and stopped (killed if it must be) on
exit; temporary directories go with them.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import canonical_json
from dockyard.spec.platform import Platform
from dockyard.testing.images import image_config

DOCKER_REGISTRY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Process:
    def __init__(self, base: Path | None) -> None:
        self._own_base = base is None
        self.base = Path(tempfile.mkdtemp(prefix="dockyard-reg-")) if base is None else base
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.base / "registry.log"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def _spawn(self, cmd: list[str], ready_line: str | None = None) -> None:
        """Start ``cmd``; ready once the port answers (or, for a process in another network
        namespace, once ``ready_line`` is in its log)."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {self.log_tail()}")
            if ready_line is not None:
                with open(self.log_path, "rb") as f:
                    f.seek(start)
                    if ready_line.encode() in f.read():
                        return
                time.sleep(0.05)
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"registry did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        self.stop()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DockyardRegistry(_Process):
    """`dockyard registry serve` on a free port; extra CLI args (auth, TLS) as given."""

    def __init__(self, base: Path | None = None, args: Sequence[str] = (), *,
                 netns: str | None = None, root: Path | None = None) -> None:
        super().__init__(base)
        self.root = root or self.base / "root"
        self.args = list(args)
        self.netns = netns  # serve inside this network namespace (a RefDockerd's)
        self.start()

    def start(self) -> DockyardRegistry:
        cmd = [sys.executable, "-m", "dockyard.registry.cli", "serve", "--root",
               str(self.root), "--addr", self.addr, *self.args]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self._spawn(cmd, ready_line=f"listening on {self.addr}")
        return self

    def stats(self) -> dict:
        """The server's counters (``GET /debug/stats``: blob bytes sent, requests)."""
        with urllib.request.urlopen(f"{self.url}/debug/stats", timeout=10) as r:
            return json.loads(r.read())


class DistributionRegistry(_Process):
    """Debian's docker-registry (distribution 2.8) with a temporary filesystem store."""

    def __init__(self, base: Path | None = None, htpasswd: Path | None = None) -> None:
        super().__init__(base)
        config = {
            "version": 0.1, "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.base / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.addr, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "basic-realm", "path": str(htpasswd)}}
        path = self.base / "config.yml"
        path.write_text(json.dumps(config))  # YAML is a superset of JSON
        self._spawn([DOCKER_REGISTRY, "serve", str(path)])


def write_oci_layout(path: Path, layers: Sequence[bytes], *, tag: str = "latest",
                     config: dict | None = None, platform: Platform | None = None,
                     compress: bool = True) -> Digest:
    """An OCI image layout with one image of ``layers`` (uncompressed tars) under ``tag``;
    returns the manifest digest."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict:
        digest = Digest.from_bytes(data)
        (blobs / digest.encoded).write_bytes(data)
        return {"digest": str(digest), "size": len(data)}

    descs, diff_ids = [], []
    for tar in layers:
        diff_ids.append(Digest.from_bytes(tar))
        blob = gzip.compress(tar, compresslevel=1, mtime=0) if compress else tar
        descs.append({"mediaType": mt.OCI_LAYER_GZIP if compress else mt.OCI_LAYER, **put(blob)})
    config_raw = canonical_json(image_config(diff_ids, config, platform))
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, **put(config_raw)}, "layers": descs}
    manifest_raw = canonical_json(manifest)
    mdesc = {"mediaType": mt.OCI_MANIFEST, **put(manifest_raw),
             "annotations": {"org.opencontainers.image.ref.name": tag}}
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))
    return Digest(mdesc["digest"])


def random_layer(size: int, seed: int = 0, name: str = "data.bin") -> bytes:
    """An uncompressed layer tar holding one file of ``size`` incompressible bytes."""
    import io
    import random
    import tarfile

    rng = random.Random(seed)
    data = rng.randbytes(size)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HOME": tempfile.gettempdir()})


class ServedRegistry:
    """Our registry server in this process, on its own event loop thread, on a free port
    (``with ServedRegistry(root) as reg: reg.url``); `handler` gives its counters."""

    def __init__(self, root: Path, *, auth=None, rate_limit: int | None = None) -> None:
        from dockyard.registry.storage import RegistryStorage

        self.storage = RegistryStorage(root)
        self.auth = auth
        self.rate_limit = rate_limit
        self.port = free_port()
        self.handler = None
        self._loop = None
        self._thread = None
        self._stop = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def __enter__(self) -> ServedRegistry:
        import asyncio
        import threading

        from dockyard.http.server import new_event_loop
        from dockyard.registry.server import make_registry_server

        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            server, self.handler = make_registry_server(
                self.storage, [("127.0.0.1", self.port)], auth=self.auth,
                rate_limit=self.rate_limit, shutdown_timeout=2)
            self._stop = asyncio.Event()
            async with server:
                ready.set()
                await self._stop.wait()
                server.close()

        def run() -> None:
            loop = self._loop = new_event_loop()
            try:
                loop.run_until_complete(main())
            except BaseException as exc:  # reported by __enter__ when it failed to start
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="registry", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
