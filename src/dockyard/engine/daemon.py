"""The engine: one object that owns the daemon's services and their lifetimes.

Owns wiring (the image service, the volumes, the container service, the event log, the
monitors) and the
daemon's configuration; the API layer holds one `Engine` and calls into its services. No HTTP
here. Blocking work (SQLite, file system) is done by the services; async callers use threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dockyard.engine.events import EventLog
from dockyard.image.service import ImageService

DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_SOCKET = "unix:///run/dockyard/dockyard.sock"


@dataclass
class EngineConfig:
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_SOCKET])
    default_runtime: str = "dockyard"
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> path of a runc-like binary
    snapshotter: str = "overlay"
    log_level: str = "info"
    cgroup_parent: str = "/dockyard"
    init_path: str = "/usr/bin/tini-static"
    # where volume plugins are found (Docker's places)
    plugin_socket_dirs: tuple[str, ...] = ("/run/docker/plugins",)
    plugin_spec_dirs: tuple[str, ...] = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
    plugin_timeout: float = 30.0  # seconds for one call to a volume plugin
    insecure_registries: list[str] = field(default_factory=list)  # hosts or CIDRs
    registry_mirrors: list[str] = field(default_factory=list)     # URLs, for Docker Hub
    network: object = None  # network.manager.NetworkOptions (None: the defaults)
    # hostinfo.DaemonOptions: what containers get when their request leaves it out
    # (--init, --default-ulimit, --default-shm-size, ...; None: dockerd's defaults)
    spec_options: object = None
    seccomp_profile_name: str = "builtin"  # as `docker info` shows it

    def __post_init__(self) -> None:
        import shutil

        runc = shutil.which("runc")
        if runc and "runc" not in self.runtimes:
            self.runtimes["runc"] = runc  # as Docker, runc is always offered when installed

    def runtime_path(self, name: str | None) -> str:
        """"dockyard" (the in-process library) or the path of a runc-compatible binary."""
        name = name or self.default_runtime
        if name in self.runtimes:
            return self.runtimes[name]
        if name == "dockyard":
            return "dockyard"
        from dockyard.errdefs import InvalidArgument

        raise InvalidArgument(f"unknown or invalid runtime name: {name}")


class Engine:
    def __init__(self, config: EngineConfig):
        self.config = config
        for path in (config.data_root, config.exec_root):
            os.makedirs(path, mode=0o711, exist_ok=True)
        self.events = EventLog()
        self.images = ImageService(config.data_root, snapshotter=config.snapshotter,
                                   on_event=self._image_event)
        from dockyard.engine.volumes import ContainerVolumes

        self.volumes = ContainerVolumes(self)
        from dockyard.engine.containers import ContainerService

        self.containers = ContainerService(self)
        from dockyard.engine.networks import NetworkService

        self.networks = NetworkService(self)
        from dockyard.engine.execs import ExecService

        self.execs = ExecService(self.containers)
        from dockyard.engine.distribution import Distribution

        self.distribution = Distribution(self, insecure=config.insecure_registries,
                                         mirrors=config.registry_mirrors)
        from dockyard.engine.archive import ArchiveService

        self.archive = ArchiveService(self.containers)
        from dockyard.engine.stats import StatsService

        self.stats = StatsService(self.containers)
        from dockyard.engine.health import HealthService

        self.health = HealthService(self.containers)

    def _image_event(self, action: str, image_id: str, name: str | None) -> None:
        attrs = {"name": name} if name else {}
        self.events.emit("image", action, name or image_id, attrs)

    async def start(self) -> None:
        """Reconnect to running containers (live restore) and resume restart policies."""
        await self.networks.start()
        await self.containers.restore()

    async def close(self) -> None:
        await self.containers.close()
        self.volumes.close()
        self.distribution.close()
        await self.networks.close()
        self.images.close()
