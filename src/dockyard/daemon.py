"""`dockyard daemon`: the composition root that wires the engine and the API server.

Owns the daemon's options (dockerd's flags and a daemon.json-like config file, with dockerd's
rule that a directive may not be given both ways), its pidfile, logging to stderr, and the
process lifetime: the engine starts (live restore) before the API listens; SIGTERM or SIGINT
stops listening, cancels the connections, then closes the engine. Containers keep running:
their monitors are not ours (DESIGN.md). Runs on uvloop.

Listeners: ``unix:///path`` (several allowed); ``tcp://host:port`` only with TLS client
verification (--tlsverify, --tlscacert, --tlscert, --tlskey): an API that starts containers is
root on the host, so it is never offered to unauthenticated network clients.

    python -m dockyard.daemon -H unix:///tmp/d.sock --data-root /tmp/d/data --exec-root /tmp/d/run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dockyard import errdefs

log = logging.getLogger("dockyard.daemon")

DEFAULT_CONFIG_FILE = "/etc/dockyard/daemon.json"
DEFAULT_TLS_PORT = 2376
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
              "panic": logging.CRITICAL}
STOCK_RUNTIMES = ("dockyard",)


class ConfigError(Exception):
    """The daemon cannot start with these options (exit status 1, the message on stderr)."""


@dataclass
class DaemonOptions:
    hosts: list[str] = field(default_factory=list)
    data_root: str = ""
    exec_root: str = ""
    log_level: str = "info"
    default_runtime: str = "dockyard"
    runtimes: dict[str, str] = field(default_factory=dict)
    pidfile: str = ""
    storage_driver: str = "overlay"
    cgroup_parent: str = ""
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    registry_listen: str = ""  # HOST:PORT: also serve our registry (<data-root>/registry)
    # networking (dockerd's flags)
    bridge: str = ""
    bip: str = ""
    iptables: bool = True
    ip_forward: bool = True
    ip_masq: bool = True
    userland_proxy: bool = False
    default_address_pools: list[str] = field(default_factory=list)
    mtu: int = 0
    # what containers get when their request leaves it out (dockerd's flags)
    init: bool = False
    no_new_privileges: bool = False
    default_ulimits: list[str] = field(default_factory=list)  # NAME=SOFT[:HARD]
    default_shm_size: str = ""
    default_ipc_mode: str = ""
    default_cgroupns_mode: str = ""
    seccomp_profile: str = ""  # a JSON file, "unconfined" or "builtin"


# -- options -------------------------------------------------------------------------------------

# config-file key -> (attribute, the flag that sets it)
_KEYS = {
    "hosts": ("hosts", "-H/--host"), "data-root": ("data_root", "--data-root"),
    "exec-root": ("exec_root", "--exec-root"), "log-level": ("log_level", "--log-level"),
    "default-runtime": ("default_runtime", "--default-runtime"),
    "runtimes": ("runtimes", "--add-runtime"), "pidfile": ("pidfile", "--pidfile"),
    "storage-driver": ("storage_driver", "--storage-driver"),
    "cgroup-parent": ("cgroup_parent", "--cgroup-parent"),
    "tlsverify": ("tlsverify", "--tlsverify"), "tlscacert": ("tlscacert", "--tlscacert"),
    "tlscert": ("tlscert", "--tlscert"), "tlskey": ("tlskey", "--tlskey"),
    "debug": ("log_level", "-D/--debug"),
    "insecure-registries": ("insecure_registries", "--insecure-registry"),
    "registry-mirrors": ("registry_mirrors", "--registry-mirror"),
    "registry-listen": ("registry_listen", "--registry-listen"),
    "bridge": ("bridge", "-b/--bridge"), "bip": ("bip", "--bip"),
    "iptables": ("iptables", "--iptables"), "ip-forward": ("ip_forward", "--ip-forward"),
    "ip-masq": ("ip_masq", "--ip-masq"), "userland-proxy": ("userland_proxy", "--userland-proxy"),
    "default-address-pools": ("default_address_pools", "--default-address-pool"),
    "mtu": ("mtu", "--mtu"),
    "init": ("init", "--init"), "no-new-privileges": ("no_new_privileges", "--no-new-privileges"),
    "default-ulimits": ("default_ulimits", "--default-ulimit"),
    "default-shm-size": ("default_shm_size", "--default-shm-size"),
    "default-ipc-mode": ("default_ipc_mode", "--default-ipc-mode"),
    "default-cgroupns-mode": ("default_cgroupns_mode", "--default-cgroupns-mode"),
    "seccomp-profile": ("seccomp_profile", "--seccomp-profile"),
}
_NET_BOOLS = ("iptables", "ip_forward", "ip_masq", "userland_proxy")


def _go_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def argument_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard daemon",
                                description="Serve the Docker Engine API (dockyard).")
    p.add_argument("-H", "--host", dest="hosts", action="append", metavar="HOST",
                   help="socket to listen on: unix:///path, or tcp://host:port with --tlsverify "
                        "(repeatable)")
    p.add_argument("--data-root", help="root of persistent state (default /var/lib/dockyard)")
    p.add_argument("--exec-root", help="root of runtime state (default /run/dockyard)")
    p.add_argument("-l", "--log-level", choices=sorted(LOG_LEVELS), help="default info")
    p.add_argument("-D", "--debug", action="store_true", help="log level debug")
    p.add_argument("--default-runtime", help="runtime of containers that name none")
    p.add_argument("--add-runtime", dest="runtimes", action="append", metavar="NAME=PATH",
                   help="a runc-compatible runtime (repeatable)")
    p.add_argument("--config-file", help=f"daemon.json-like file (default {DEFAULT_CONFIG_FILE}"
                                         " if it exists)")
    p.add_argument("-p", "--pidfile", help="path of the pid file (default <exec-root>/"
                                           "dockyard.pid)")
    p.add_argument("-s", "--storage-driver", help="snapshotter: overlay (default) or native")
    p.add_argument("--cgroup-parent", help="parent cgroup of containers (default /dockyard)")
    p.add_argument("--tlsverify", action="store_true", default=None,
                   help="require TLS client certificates signed by --tlscacert")
    p.add_argument("--tlscacert", help="CA of the client certificates")
    p.add_argument("--tlscert", help="the server's certificate")
    p.add_argument("--tlskey", help="the server's key")
    p.add_argument("--insecure-registry", dest="insecure_registries", action="append",
                   metavar="HOST", help="registry (host:port or CIDR) reached without TLS "
                   "verification, or over plain HTTP (may be repeated)")
    p.add_argument("--registry-mirror", dest="registry_mirrors", action="append",
                   metavar="URL", help="preferred mirror of Docker Hub (may be repeated)")
    p.add_argument("--registry-listen", metavar="HOST:PORT",
                   help="also serve a registry (OCI distribution API) on HOST:PORT, stored "
                        "under <data-root>/registry")
    p.add_argument("-b", "--bridge", help="the default bridge's interface (default dockyard0; "
                                          "none: no default bridge)")
    p.add_argument("--bip", help="the default bridge's address and prefix (CIDR)")
    for flag in ("iptables", "ip-forward", "ip-masq", "userland-proxy"):
        p.add_argument(f"--{flag}", type=_go_bool, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--default-address-pool", dest="default_address_pools", action="append",
                   metavar="base=CIDR,size=N", help="a pool of subnets for networks (repeatable)")
    p.add_argument("--mtu", type=int, help="MTU of the default bridge's containers")
    # container defaults
    p.add_argument("--init", action="store_true", default=None,
                   help="run an init (tini) in containers that do not say otherwise")
    p.add_argument("--no-new-privileges", action="store_true", default=None,
                   help="set no-new-privileges in new containers")
    p.add_argument("--default-ulimit", dest="default_ulimits", action="append",
                   metavar="NAME=SOFT[:HARD]", help="a ulimit of containers (repeatable)")
    p.add_argument("--default-shm-size", metavar="SIZE", help="/dev/shm size (default 64M)")
    p.add_argument("--default-ipc-mode", metavar="MODE",
                   help='IPC mode of containers: "private" (default) or "shareable"')
    p.add_argument("--default-cgroupns-mode", metavar="MODE",
                   help='cgroup namespace of containers: "host" or "private"')
    p.add_argument("--seccomp-profile", metavar="PATH",
                   help='seccomp profile of containers: a JSON file, "unconfined" or "builtin"')
    return p


def _flag_values(ns: argparse.Namespace) -> dict[str, object]:
    """The options given as flags, by attribute (absent ones left out)."""
    out: dict[str, object] = {}
    for attr in ("hosts", "data_root", "exec_root", "log_level", "default_runtime", "pidfile",
                 "storage_driver", "cgroup_parent", "tlsverify", "tlscacert", "tlscert",
                 "tlskey", "insecure_registries", "registry_mirrors", "registry_listen",
                 "bridge", "bip", *_NET_BOOLS, "default_address_pools", "mtu", "init",
                 "no_new_privileges", "default_ulimits", "default_shm_size", "default_ipc_mode",
                 "default_cgroupns_mode", "seccomp_profile"):
        value = getattr(ns, attr, None)
        if value is not None:
            out[attr] = value
    if ns.debug:
        out["log_level"] = "debug"
    if ns.runtimes:
        out["runtimes"] = dict(parse_runtime_flag(v) for v in ns.runtimes)
    return out


def parse_runtime_flag(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise ConfigError(f"invalid --add-runtime {value!r}: expected NAME=PATH")
    return name, path


def load_config_file(path: str) -> dict[str, object]:
    """daemon.json: the keys of _KEYS only; anything else is refused, as dockerd does."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"unable to read the configuration file {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"unable to configure the daemon with file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"unable to configure the daemon with file {path}: not a JSON object")
    unknown = sorted(set(doc) - set(_KEYS))
    if unknown:
        raise ConfigError("the following directives don't match any configuration option: "
                          + ", ".join(unknown))
    out: dict[str, object] = {}
    for key, value in doc.items():
        attr = _KEYS[key][0]
        if key == "debug":
            if value:
                out["log_level"] = "debug"
            continue
        if key == "runtimes":
            value = _file_runtimes(value)
        elif key in ("hosts", "insecure-registries", "registry-mirrors"):
            if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
                raise ConfigError(f"{key}: expected a list of strings")
        elif key == "default-ulimits":  # {"nofile": {"Name": "nofile", "Soft": n, "Hard": n}}
            value = _file_ulimits(value)
        elif key in ("tlsverify", "iptables", "ip-forward", "ip-masq", "userland-proxy", "init",
                     "no-new-privileges"):
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: expected true or false")
        elif key == "mtu":
            if not isinstance(value, int):
                raise ConfigError("mtu: expected a number")
        elif key == "default-address-pools":
            if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
                raise ConfigError('default-address-pools: expected [{"base": ..., "size": ...}]')
            value = [f"base={p.get('base')},size={p.get('size')}" for p in value]
        elif not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string")
        out[attr] = value
    return out


def _file_ulimits(value: object) -> list[str]:
    if not isinstance(value, dict):
        raise ConfigError('default-ulimits: expected {"name": {"Name": ..., "Soft": n, '
                          '"Hard": n}}')
    out = []
    for name, limit in value.items():
        if not isinstance(limit, dict) or not all(
                isinstance(limit.get(k), int) for k in ("Soft", "Hard")):
            raise ConfigError(f"default-ulimits: {name}: Soft and Hard numbers are required")
        out.append(f"{limit.get('Name') or name}={limit['Soft']}:{limit['Hard']}")
    return out


def spec_options(opts: DaemonOptions):
    """What containers get when their request leaves it out (engine/hostinfo.DaemonOptions):
    the flags checked and parsed here, the seccomp profile read once, as dockerd does at its
    start; ConfigError for a value it could not run with."""
    from dockyard.cli.flagvalues import parse_ulimit
    from dockyard.cli.units import ram_in_bytes
    from dockyard.engine.hostinfo import DEFAULT_SHM_SIZE
    from dockyard.engine.hostinfo import DaemonOptions as SpecOptions
    from dockyard.engine.specsecurity import load_seccomp_profile

    try:
        ulimits = tuple(parse_ulimit(u) for u in opts.default_ulimits)
    except ValueError as exc:
        raise ConfigError(f"default-ulimits: {exc}") from None
    shm = DEFAULT_SHM_SIZE
    if opts.default_shm_size:
        try:
            shm = ram_in_bytes(opts.default_shm_size)
        except ValueError:
            shm = -1
        if shm <= 0:
            raise ConfigError(f"invalid default-shm-size: {opts.default_shm_size}")
    if opts.default_ipc_mode not in ("", "private", "shareable"):
        raise ConfigError(f"invalid default-ipc-mode: {opts.default_ipc_mode} (expected "
                          "private or shareable)")
    if opts.default_cgroupns_mode not in ("", "host", "private"):
        raise ConfigError(f"invalid default-cgroupns-mode: {opts.default_cgroupns_mode} "
                          "(expected host or private)")
    profile = opts.seccomp_profile or None
    if profile not in (None, "builtin", "unconfined"):
        try:
            text = Path(profile).read_text()
            load_seccomp_profile(text)
        except OSError as exc:
            raise ConfigError(f"opening seccomp profile ({profile}) failed: "
                              f"{exc.strerror}") from None
        except errdefs.InvalidArgument as exc:
            raise ConfigError(f"{profile}: {exc}") from None
        profile = text
    return SpecOptions(init=opts.init, no_new_privileges=opts.no_new_privileges,
                       default_ulimits=ulimits, shm_size=shm,
                       ipc_mode=opts.default_ipc_mode or "private",
                       cgroupns_mode=opts.default_cgroupns_mode or None,
                       seccomp_profile=profile, data_root=opts.data_root)


def _file_runtimes(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError('runtimes: expected {"name": {"path": "..."}}')
    out = {}
    for name, spec in value.items():
        path = spec.get("path") if isinstance(spec, dict) else None
        if not isinstance(path, str) or not path:
            raise ConfigError(f"runtimes: {name}: a path is required")
        out[name] = path
    return out


def _conflicts(flags: dict[str, object], file: dict[str, object]) -> list[str]:
    """dockerd's rule: a directive set both as a flag and in the file is an error; a runtime
    is one only when the same name is given both ways."""
    out = []
    for attr, value in flags.items():
        if attr not in file:
            continue
        if attr == "runtimes":
            same = sorted(set(value) & set(file[attr]))  # type: ignore[arg-type]
            if same:
                out.append(f"runtimes: {', '.join(same)}")
            continue
        key = next(k for k, (a, _) in _KEYS.items() if a == attr and k != "debug")
        out.append(f"{key}: (from flag: {_show(value)}, from file: {_show(file[attr])})")
    return out


def _show(value: object) -> str:
    return f"[{' '.join(value)}]" if isinstance(value, list) else str(value)


def parse_options(argv: list[str]) -> DaemonOptions:
    """Flags, then the config file; ConfigError for anything the daemon cannot run with."""
    ns = argument_parser().parse_args(argv)
    flags = _flag_values(ns)
    config_file = ns.config_file or (DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE)
                                     else None)
    file = load_config_file(config_file) if config_file else {}
    if conflicts := _conflicts(flags, file):
        raise ConfigError("the following directives are specified both as a flag and in the "
                          "configuration file: " + ", ".join(conflicts))
    merged = {**file, **flags}
    if "runtimes" in file and "runtimes" in flags:
        merged["runtimes"] = {**file["runtimes"], **flags["runtimes"]}  # type: ignore[dict-item]
    opts = DaemonOptions(**merged)  # type: ignore[arg-type]
    return _with_defaults(opts)


def _with_defaults(opts: DaemonOptions) -> DaemonOptions:
    from dockyard.engine.daemon import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT, DEFAULT_SOCKET

    opts.data_root = os.path.abspath(opts.data_root or DEFAULT_DATA_ROOT)
    opts.exec_root = os.path.abspath(opts.exec_root or DEFAULT_EXEC_ROOT)
    opts.hosts = opts.hosts or [DEFAULT_SOCKET]
    opts.pidfile = opts.pidfile or os.path.join(opts.exec_root, "dockyard.pid")
    if opts.log_level not in LOG_LEVELS:
        raise ConfigError(f"unable to parse logging level: {opts.log_level}")
    for name in opts.runtimes:
        if name in STOCK_RUNTIMES:
            raise ConfigError(f"runtime name '{name}' is reserved")
    return opts


# -- listeners -----------------------------------------------------------------------------------

def parse_host(spec: str) -> str | tuple[str, int]:
    """``unix:///path`` -> the path; ``tcp://host:port`` -> (host, port)."""
    if "://" not in spec:
        raise ConfigError(f"invalid host {spec!r}: expected unix:///path or tcp://host:port")
    scheme, _, rest = spec.partition("://")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise ConfigError(f"invalid host {spec!r}: the socket path must be absolute")
        return rest
    if scheme == "tcp":
        parts = urlsplit(spec)
        try:
            port = parts.port if parts.port is not None else DEFAULT_TLS_PORT
        except ValueError:
            raise ConfigError(f"invalid host {spec!r}: bad port") from None
        if parts.path not in ("", "/"):
            raise ConfigError(f"invalid host {spec!r}: a TCP address has no path")
        return parts.hostname or "", port
    raise ConfigError(f"invalid host {spec!r}: only unix:// and tcp:// (with TLS) are supported"
                      + (" (fd:// socket activation is not)" if scheme == "fd" else ""))


def listeners(opts: DaemonOptions) -> tuple[list[str | tuple[str, int]], ssl.SSLContext | None]:
    specs = [parse_host(h) for h in opts.hosts]
    tcp = [h for h, s in zip(opts.hosts, specs) if isinstance(s, tuple)]
    if not tcp:
        return specs, None
    missing = [f"--{n}" for n in ("tlscacert", "tlscert", "tlskey") if not getattr(opts, n)]
    if not opts.tlsverify or missing:
        raise ConfigError(
            f"refusing to listen on {', '.join(tcp)}: a TCP listener requires TLS client "
            "verification (--tlsverify --tlscacert CA --tlscert CERT --tlskey KEY)"
            + (f"; missing {', '.join(missing)}" if opts.tlsverify and missing else ""))
    return specs, tls_context(opts)


def tls_context(opts: DaemonOptions) -> ssl.SSLContext:
    """TLS 1.2+, the server's certificate, and client certificates required (tlsverify)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(opts.tlscert, opts.tlskey)
        ctx.load_verify_locations(cafile=opts.tlscacert)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"could not load the TLS files: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# -- the pid file --------------------------------------------------------------------------------

class PidFile:
    """Holds ``path`` with our pid while the daemon runs; refuses if a live process has it."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def __enter__(self) -> PidFile:
        try:
            other = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            other = 0
        if other and other != os.getpid() and _alive(other):
            raise ConfigError(f"process with PID {other} is still running (pid file "
                              f"{self.path}); is another daemon using these roots?")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(f"{os.getpid()}")
        os.replace(tmp, self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(self.path.read_text().strip()) == os.getpid():
                self.path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- running -------------------------------------------------------------------------------------

def engine_config(opts: DaemonOptions):
    from dockyard.engine.daemon import EngineConfig

    cfg = EngineConfig(data_root=opts.data_root, exec_root=opts.exec_root,
                       hosts=list(opts.hosts), default_runtime=opts.default_runtime,
                       runtimes=dict(opts.runtimes), snapshotter=opts.storage_driver,
                       log_level=opts.log_level,
                       insecure_registries=list(opts.insecure_registries),
                       registry_mirrors=list(opts.registry_mirrors))
    if opts.cgroup_parent:
        cfg.cgroup_parent = opts.cgroup_parent
    cfg.network = network_options(opts)
    cfg.spec_options = spec_options(opts)
    cfg.seccomp_profile_name = opts.seccomp_profile or "builtin"
    try:
        cfg.runtime_path(cfg.default_runtime)
        from dockyard.engine.distribution import parse_mirror

        for mirror in cfg.registry_mirrors:
            parse_mirror(mirror)
    except errdefs.InvalidArgument as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def network_options(opts: DaemonOptions):
    from dockyard.network.ipam import DEFAULT_POOLS, parse_network, parse_pool
    from dockyard.network.manager import NetworkOptions

    try:
        pools = [parse_pool(p) for p in opts.default_address_pools] or list(DEFAULT_POOLS)
        if opts.bip:
            parse_network(opts.bip, "--bip")
    except errdefs.InvalidArgument as exc:
        raise ConfigError(str(exc)) from None
    return NetworkOptions(bridge=opts.bridge or "dockyard0", bip=opts.bip,
                          iptables=opts.iptables, ip_forward=opts.ip_forward,
                          ip_masq=opts.ip_masq, userland_proxy=opts.userland_proxy, pools=pools,
                          mtu=opts.mtu)


async def serve(opts: DaemonOptions, ready: asyncio.Event | None = None) -> None:
    """Run the daemon until SIGTERM/SIGINT; `ready` is set once the API listens."""
    from dockyard.api.server import make_server
    from dockyard.engine.daemon import Engine

    sockets, ssl_context = listeners(opts)
    config = engine_config(opts)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stopping)
    try:
        engine = Engine(config)  # opens the stores: brief, before serving
        try:
            await engine.start()
            async with make_server(engine, sockets, ssl_context=ssl_context) as server, \
                    _registry_server(opts):
                for host in opts.hosts:
                    log.info("API listen on %s", host)
                log.info("daemon has completed initialization")
                if ready is not None:
                    ready.set()
                await stopping.wait()
                log.info("stopping: closing the API listeners and connections")
                server.close()
        finally:
            await engine.close()
            log.info("daemon shut down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _registry_server(opts: DaemonOptions):
    """Our registry server beside the API when --registry-listen asks for it."""
    if not opts.registry_listen:
        return contextlib.nullcontext()
    from dockyard.registry.cli import daemon_registry

    return daemon_registry(os.path.join(opts.data_root, "registry"), opts.registry_listen)


def _on_signal(sig: int, stopping: asyncio.Event) -> None:
    log.info("received %s", signal.Signals(sig).name)
    stopping.set()


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LOG_LEVELS[level])


def main(argv: list[str] | None = None) -> int:
    """`dockyard daemon [flags]`: 0 after a clean shutdown, 1 when it cannot start."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = parse_options(argv)
        listeners(opts)  # refuse bad listeners and TLS files before touching anything
        engine_config(opts)
    except ConfigError as exc:
        print(f"dockyard daemon: {exc}", file=sys.stderr)
        return 1
    setup_logging(opts.log_level)
    if os.geteuid() != 0:
        log.warning("not running as root: containers will not start")
    from dockyard.http.server import run

    try:
        with PidFile(opts.pidfile):
            run(serve(opts))
    except ConfigError as exc:
        log.error("%s", exc)
        return 1
    except errdefs.DockyardError as exc:
        log.error("cannot start the daemon: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
