"""Test support for the API: an engine with a real image service (native snapshotter, no root)
and a tiny double of the container service, the API served on a temporary unix socket, small
rootfs tarballs. Used by tests/unit/api; nothing in the product imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import tarfile

from dockyard.engine.daemon import EngineConfig
from dockyard.engine.events import EventLog
from dockyard.image.delete import ContainerUse
from dockyard.image.service import ImageService


def aio(fn):
    """Run an async test on uvloop, bounded to 20 s."""
    import uvloop

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return uvloop.run(asyncio.wait_for(fn(*args, **kwargs), 20))

    return wrapper


class FakeContainers:
    """What the API needs of engine.containers: image users, counts, disk usage."""

    def __init__(self) -> None:
        self.users: dict[str, list[ContainerUse]] = {}
        self.summaries: list[dict] = []

    def image_users(self, image_id: str) -> list[ContainerUse]:
        return list(self.users.get(image_id, []))

    def counts(self) -> dict:
        uses = {u.id: u.running for us in self.users.values() for u in us}
        running = sum(uses.values())
        return {"total": len(uses), "running": running, "paused": 0,
                "stopped": len(uses) - running}

    async def disk_usage(self) -> list[dict]:
        return list(self.summaries)


class FakeVolumes:
    """What the API needs of engine.volumes: the real volume service (plain local volumes
    need no root), no containers."""

    def __init__(self, data_root, events: EventLog) -> None:
        from dockyard.volume.service import VolumeService

        self.service = VolumeService(str(data_root), socket_dirs=(), spec_dirs=(),
                                     emit=lambda a, n, attrs: events.emit("volume", a, n, attrs))


class FakeEngine:
    def __init__(self, root) -> None:
        self.config = EngineConfig(data_root=str(root / "data"), exec_root=str(root / "run"),
                                   hosts=[f"unix://{root}/api.sock"])
        self.events = EventLog()
        self.images = ImageService(root / "data", snapshotter="native",
                                   on_event=self._image_event)
        self.containers = FakeContainers()
        self.volumes = FakeVolumes(root / "data", self.events)

    def _image_event(self, action, image_id, name):
        self.events.emit("image", action, str(image_id), {"name": name} if name else {})

    def close(self) -> None:
        self.volumes.service.close()
        self.images.close()


@contextlib.asynccontextmanager
async def serving(engine, tmp_path):
    from dockyard.api.server import make_server

    path = tmp_path / "api.sock"
    async with make_server(engine, [path]) as server:
        yield server, path


def layer_tar(files: dict[str, bytes] | None = None) -> bytes:
    """A small rootfs tarball: a directory and a few files."""
    files = files or {"etc/hostname": b"tiny\n", "bin/hello": b"#!/bin/sh\necho hi\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted({name.rsplit("/", 1)[0] for name in files if "/" in name}):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


async def chunks(data: bytes, size: int = 4096):
    for i in range(0, len(data), size):
        yield data[i:i + size]
