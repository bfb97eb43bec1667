"""System routes of the Docker Engine API: ``/_ping``, ``/version``, ``/info``, ``/system/df``.

Owns the wire shapes of moby's api/types (system.Info, types.Version, types.DiskUsage) and
what changes with the API version (moby api/server/router/system/system_routes.go). The facts
come from the engine (counts, sizes, its configuration) and from the host probes of
engine/sysinfo.py: real values, nothing made up. ``/events`` is in api/events.py.
"""

from __future__ import annotations

import asyncio
import os
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dockyard
from dockyard import __version__
from dockyard.api.params import parse_filters_json
from dockyard.api.version import (API_VERSION, ENGINE_VERSION, LANGUAGE_VERSION,
                                  MIN_API_VERSION_TEXT, PLATFORM_NAME)
from dockyard.engine import sysinfo
from dockyard.engine.imageops import ImageOps
from dockyard.errdefs import InvalidArgument
from dockyard.http.request import Request, Response, json_response
from dockyard.http.router import Route
from dockyard.spec.platform import default_platform

PING_HEADERS = [("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"),
                # The classic builder's version: BuildKit ("2") would need /session and /grpc.
                ("Builder-Version", "1"), ("Swarm", "inactive")]
INDEX_SERVER = "https://index.docker.io/v1/"
# The drivers this engine has; extend these as volume/network/log drivers land.
PLUGINS = {"Volume": ["local"], "Network": ["bridge", "host", "macvlan", "null"], "Authorization": None,
           "Log": ["fluentd", "gelf", "json-file", "local", "syslog"]}
DF_TYPES = ("container", "image", "volume", "build-cache")
_BUILD_PRUNE_FILTERS = ("until", "id", "parent", "type", "description", "inuse", "shared",
                        "private", "label", "label!")


# -- small facts --------------------------------------------------------------------------------

def go_time_now() -> str:
    """time.Now().Format(time.RFC3339Nano): local time, nanoseconds without trailing zeros."""
    ns = time.time_ns()
    t = time.localtime(ns // 1_000_000_000)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    offset = t.tm_gmtoff or 0
    zone = "Z" if offset == 0 else (f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:"
                                    f"{abs(offset) % 3600 // 60:02d}")
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + (f".{frac}" if frac else "") + zone


def mask_proxy(url: str) -> str:
    """dockerd's maskCredentials: the password of a proxy URL shown as xxxxx."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username}:xxxxx@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _proxy(name: str) -> str:
    return mask_proxy(os.environ.get(name.upper()) or os.environ.get(name.lower()) or "")


def _package_dir() -> Path:
    return Path(dockyard.__file__).resolve().parent


def git_commit() -> str:
    """The commit of a source checkout this package runs from (read from .git, no git
    command); "" for an installed package."""
    git = _package_dir().parents[1] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:7]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:7]
    except OSError:
        pass
    return ""


def build_time() -> str:
    """When this package's files were written (installed or built), as RFC 3339."""
    try:
        mtime = (_package_dir() / "__init__.py").stat().st_mtime
    except OSError:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00", time.gmtime(mtime))


def runtime_binary() -> str:
    """Where the dockyard-runtime command is (the engine runs the same code in-process)."""
    path = Path(sysconfig.get_path("scripts")) / "dockyard-runtime"
    return str(path) if path.exists() else "dockyard-runtime"


# -- the documents --------------------------------------------------------------------------------

def version_doc(config) -> dict:
    """``GET /version`` (types.Version); blocking the first time (helpers' --version)."""
    uname = os.uname()
    arch = default_platform().architecture
    commit = git_commit()
    built = build_time()
    details = {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": built,
               "Experimental": "false", "GitCommit": commit, "GoVersion": LANGUAGE_VERSION,
               "KernelVersion": uname.release, "MinAPIVersion": MIN_API_VERSION_TEXT,
               "Os": "linux"}
    components = [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
                  {"Name": "dockyard-runtime", "Version": __version__,
                   "Details": {"GitCommit": commit}}]
    for name, path in sorted(config.runtimes.items()):
        if version := sysinfo.binary_version(path):
            components.append({"Name": name, "Version": version, "Details": {"GitCommit": ""}})
    if os.path.exists(config.init_path) and (tini := sysinfo.binary_version(config.init_path)):
        components.append({"Name": "docker-init", "Version": tini, "Details": {"GitCommit": ""}})
    return {"Platform": {"Name": PLATFORM_NAME}, "Components": components,
            "Version": ENGINE_VERSION, "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION_TEXT, "GitCommit": commit,
            "GoVersion": LANGUAGE_VERSION, "Os": "linux", "Arch": arch,
            "KernelVersion": uname.release, "BuildTime": built}


def _warnings(cg: sysinfo.CgroupInfo, forwarding: bool) -> list[str]:
    """dockerd's warnings (daemon/info_unix.go, info.go), word for word."""
    out = []
    checks = [(cg.memory_limit, "WARNING: No memory limit support"),
              (cg.swap_limit, "WARNING: No swap limit support"),
              (cg.kernel_memory_tcp or cg.version != "1",
               "WARNING: No kernel memory TCP limit support"),
              (cg.oom_kill_disable or cg.version != "1", "WARNING: No oom kill disable support"),
              (cg.cpu_cfs, "WARNING: No cpu cfs quota support"),
              (cg.cpu_cfs, "WARNING: No cpu cfs period support"),
              (cg.cpu_shares, "WARNING: No cpu shares support"),
              (cg.cpuset, "WARNING: No cpuset support"),
              (forwarding, "WARNING: IPv4 forwarding is disabled")]
    # (dockerd also warns of TCP listeners without TLS; this daemon refuses to have any)
    out += [text for ok, text in checks if not ok]
    return out


def _commit(ident: str, api_version: tuple[int, int]) -> dict:
    return {"ID": ident, "Expected": ident} if api_version < (1, 49) else {"ID": ident}


def info_doc(engine, counts: dict, images: int, listeners: int,
             api_version: tuple[int, int]) -> dict:
    """``GET /info`` (system.Info, in its field order); blocking (reads /proc and /sys)."""
    cfg = engine.config
    cg = sysinfo.probe_cgroups()
    forwarding = sysinfo.ipv4_forwarding()
    os_name, os_version = sysinfo.operating_system()
    uname = os.uname()
    runtimes = {"dockyard": {"path": runtime_binary()}}
    runtimes.update({name: {"path": path} for name, path in sorted(cfg.runtimes.items())})
    default_rt = cfg.default_runtime
    rt_version = (__version__ if default_rt == "dockyard"
                  else sysinfo.binary_version(cfg.runtimes.get(default_rt, default_rt)))
    init_version = sysinfo.binary_version(cfg.init_path) if os.path.exists(cfg.init_path) else ""
    driver = engine.images.driver
    driver_status = ([["Backing Filesystem", sysinfo.backing_filesystem(cfg.data_root)]]
                     if driver == "overlayfs" else None)
    security = []
    if sysinfo.seccomp_available():
        security.append(f"name=seccomp,profile={cfg.seccomp_profile_name}")
    if cg.version == "2":
        security.append("name=cgroupns")
    if getattr(cfg.spec_options, "no_new_privileges", False):
        security.append("name=no-new-privileges")
    doc = {
        "ID": sysinfo.engine_id(cfg.data_root),
        "Containers": counts.get("total", 0), "ContainersRunning": counts.get("running", 0),
        "ContainersPaused": counts.get("paused", 0),
        "ContainersStopped": counts.get("stopped", 0),
        "Images": images, "Driver": driver, "DriverStatus": driver_status,
        "Plugins": {**PLUGINS, "Volume": _volume_drivers(engine)},
        "MemoryLimit": cg.memory_limit, "SwapLimit": cg.swap_limit,
    }
    if cg.kernel_memory_tcp:
        doc["KernelMemoryTCP"] = True
    doc.update({
        "CpuCfsPeriod": cg.cpu_cfs, "CpuCfsQuota": cg.cpu_cfs, "CPUShares": cg.cpu_shares,
        "CPUSet": cg.cpuset, "PidsLimit": cg.pids_limit, "IPv4Forwarding": forwarding,
    })
    if api_version < (1, 50):  # dropped in 1.50; always false since 1.48
        doc.update({"BridgeNfIptables": False, "BridgeNfIp6tables": False})
    doc.update({
        "Debug": cfg.log_level == "debug", "NFd": sysinfo.open_fds(),
        "OomKillDisable": cg.oom_kill_disable,
        "NGoroutines": threading.active_count() + _task_count(),
        "SystemTime": go_time_now(), "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg.version, "NEventsListener": listeners,
        "KernelVersion": uname.release, "OperatingSystem": os_name, "OSVersion": os_version,
        "OSType": "linux", "Architecture": uname.machine, "IndexServerAddress": INDEX_SERVER,
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True,
                                           "Official": True}},
            "Mirrors": None,
        },
        "NCPU": sysinfo.ncpu(), "MemTotal": sysinfo.mem_total(), "GenericResources": None,
        "DockerRootDir": os.path.abspath(cfg.data_root), "HttpProxy": _proxy("http_proxy"),
        "HttpsProxy": _proxy("https_proxy"), "NoProxy": _proxy("no_proxy"),
        "Name": uname.nodename, "Labels": [], "ExperimentalBuild": False,
        "ServerVersion": ENGINE_VERSION, "Runtimes": runtimes, "DefaultRuntime": default_rt,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": cfg.init_path,
        "ContainerdCommit": _commit("N/A", api_version),
        "RuncCommit": _commit(rt_version or "N/A", api_version),
        "InitCommit": _commit(init_version or "N/A", api_version),
        "SecurityOptions": security, "CDISpecDirs": [],
        "Warnings": _warnings(cg, forwarding) or None,  # a nil slice when there are none
    })
    if api_version < (1, 39):
        doc["KernelVersion"] = doc["KernelVersion"] or "<unknown>"
        doc["OperatingSystem"] = doc["OperatingSystem"] or "<unknown>"
    if api_version < (1, 25):
        doc["ExecutionDriver"] = "<not supported>"
        doc["SecurityOptions"] = [o.split(",", 1)[0].removeprefix("name=") for o in security]
    return doc


def _volume_drivers(engine) -> list[str]:
    """local, then the volume plugins activated so far (dockerd's GetDriverList)."""
    volumes = getattr(engine, "volumes", None)
    return volumes.service.driver_names() if volumes is not None else list(PLUGINS["Volume"])


def _task_count() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # not on the loop's thread
        return 0


# -- the routes -----------------------------------------------------------------------------------

class SystemRoutes:
    def __init__(self, engine, listeners: Callable[[], int] = lambda: 0) -> None:
        self.engine = engine
        self.listeners = listeners
        self._version: dict | None = None
        self._ops: ImageOps | None = None

    @property
    def ops(self) -> ImageOps:
        if self._ops is None:
            self._ops = ImageOps(self.engine)
        return self._ops

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/_ping", self.ping),
            Route("HEAD", "/_ping", self.ping),
            Route("GET", "/version", self.version),
            Route("GET", "/info", self.info),
            Route("GET", "/system/df", self.disk_usage),
            Route("POST", "/build/prune", self.build_prune),
        ]

    async def build_prune(self, req: Request) -> Response:
        """``docker builder prune`` (and the last step of ``docker system prune``): this
        engine keeps no build cache yet, so there is nothing to delete; the filters are
        checked as dockerd checks them."""
        for key in parse_filters_json(req.query.get("filters")):
            if key not in _BUILD_PRUNE_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})

    async def ping(self, req: Request) -> Response:
        """As dockerd's pingHandler: "OK", or for HEAD no body and Content-Length 0."""
        if req.method == "HEAD":
            return Response(200, b"", "text/plain; charset=utf-8", list(PING_HEADERS),
                            content_length=0)
        return Response(200, b"OK", "text/plain; charset=utf-8", list(PING_HEADERS))

    async def version(self, req: Request) -> Response:
        if self._version is None:
            self._version = await asyncio.to_thread(version_doc, self.engine.config)
        return json_response(self._version)

    async def info(self, req: Request) -> Response:
        counts = self.engine.containers.counts()
        listeners = self.listeners()
        images = await asyncio.to_thread(lambda: len(self.engine.images.images()))
        doc = await asyncio.to_thread(info_doc, self.engine, counts, images, listeners,
                                      req.api_version)
        doc["NGoroutines"] += _task_count()
        return json_response(doc)

    async def disk_usage(self, req: Request) -> Response:
        wanted = set(DF_TYPES)
        if req.api_version >= (1, 42) and "type" in req.query:
            wanted = set()
            for kind in req.query.get_all("type"):
                if kind not in DF_TYPES:
                    raise InvalidArgument(f"unknown object type: {kind}")
                wanted.add(kind)
        doc: dict = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None,
                     "BuildCache": None}
        if "image" in wanted:
            doc["LayersSize"], doc["Images"] = await asyncio.to_thread(self.ops.disk_usage)
        if "container" in wanted:
            doc["Containers"] = await self.engine.containers.disk_usage()
        if "volume" in wanted:
            doc["Volumes"] = await asyncio.to_thread(self.engine.volumes.service.usage)
        if "build-cache" in wanted:
            doc["BuildCache"] = []
        if req.api_version < (1, 42):
            doc["BuilderSize"] = 0  # the legacy builder's cache, which this engine has not
        return json_response(doc)


def routes(engine) -> list[Route]:
    return SystemRoutes(engine).routes()
