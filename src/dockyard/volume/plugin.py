"""Docker's volume plugin protocol (the "v1" plugins): discovery, activation, the calls.

Discovery as moby pkg/plugins: a socket ``<name>.sock`` or ``<name>/<name>.sock`` under
/run/docker/plugins, else a spec file ``<name>.spec`` (one line: ``unix:///path`` or
``tcp://host:port``) or ``<name>.json`` (``{"Name", "Addr", "TLSConfig"}``) under
/etc/docker/plugins or /usr/lib/docker/plugins. Every call is a POST of JSON with
``Accept: application/vnd.docker.plugins.v1.2+json``; the answer is JSON with an ``Err`` field
that, when set, is the plugin's error. ``Plugin.Activate`` must list ``VolumeDriver``.

A plugin that is gone, hangs past the timeout, or answers something that is not the protocol
raises `PluginError` (a System error: 500) naming the plugin and the call; nothing here retries
for long (Docker backs off for 30 s; a dead plugin should fail a start quickly).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import stat
import threading
import time
from urllib.parse import urlsplit

from dockyard.errdefs import InvalidArgument, NotFound, System

log = logging.getLogger(__name__)

SOCKET_DIRS = ("/run/docker/plugins",)
SPEC_DIRS = ("/etc/docker/plugins", "/usr/lib/docker/plugins")
MIME = "application/vnd.docker.plugins.v1.2+json"
VOLUME_DRIVER = "VolumeDriver"


class PluginError(System):
    """The plugin failed, is unreachable, or does not speak the protocol."""


class PluginNotFound(NotFound):
    pass


def check_plugin_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or ".." in name or "\0" in name:
        raise InvalidArgument(f"invalid volume plugin name: {name!r}")


def discover(name: str, socket_dirs=SOCKET_DIRS, spec_dirs=SPEC_DIRS) -> str:
    """The plugin's address: ``unix:///path`` or ``tcp://host:port``."""
    check_plugin_name(name)
    for base in socket_dirs:
        for path in (os.path.join(base, name + ".sock"), os.path.join(base, name, name + ".sock")):
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    return "unix://" + path
            except OSError:
                continue
    for base in spec_dirs:
        for ext in (".spec", ".json"):
            for path in (os.path.join(base, name + ext), os.path.join(base, name, name + ext)):
                if not os.path.exists(path):
                    continue
                try:
                    with open(path) as f:
                        text = f.read()
                except OSError as exc:
                    raise PluginError(f"reading plugin spec {path}: {exc.strerror}") from None
                if ext == ".json":
                    try:
                        addr = str(json.loads(text).get("Addr") or "")
                    except (ValueError, AttributeError):
                        raise PluginError(f"plugin spec {path}: not a JSON object") from None
                else:
                    addr = text.strip()
                if not addr:
                    raise PluginError(f"plugin spec {path}: no address")
                scheme = urlsplit(addr).scheme
                if scheme not in ("unix", "tcp", "http"):
                    raise PluginError(f"plugin spec {path}: unsupported protocol {scheme!r}")
                return addr
    raise PluginNotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("plugin", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class PluginClient:
    """Calls to one plugin. ``timeout``: seconds for one call; ``connect_retry``: seconds to
    keep trying a socket that refuses (a plugin that is starting)."""

    def __init__(self, name: str, addr: str, *, timeout: float = 30.0,
                 connect_retry: float = 1.0):
        self.name = name
        self.addr = addr
        self.timeout = timeout
        self.connect_retry = connect_retry

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.addr)
        if parts.scheme == "unix":
            return _UnixConnection(parts.path, self.timeout)
        return http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                          timeout=self.timeout)

    def call(self, method: str, args: dict | None = None) -> dict:
        """POST /<method> with ``args``; the answer's JSON object (its Err raised)."""
        body = json.dumps(args if args is not None else {}).encode()
        deadline = time.monotonic() + self.connect_retry
        while True:
            conn = self._connection()
            try:
                conn.request("POST", "/" + method, body,
                             {"Accept": MIME, "Content-Type": MIME, "Host": "plugin"})
                resp = conn.getresponse()
                status, data = resp.status, resp.read()
                break
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise PluginError(f"volume plugin {self.name}: {method}: cannot connect to "
                                  f"{self.addr}: {exc.strerror or exc}") from None
            except socket.timeout:
                raise PluginError(f"volume plugin {self.name}: {method}: no answer within "
                                  f"{self.timeout:g}s") from None
            except (OSError, http.client.HTTPException) as exc:
                raise PluginError(f"volume plugin {self.name}: {method}: "
                                  f"{getattr(exc, 'strerror', None) or exc or type(exc).__name__}"
                                  ) from None
            finally:
                conn.close()
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = None
        if status != 200:
            err = doc.get("Err") if isinstance(doc, dict) else None
            text = err or data.decode(errors="replace").strip() or f"HTTP {status}"
            exc = PluginError(f"{method}: {text}")
            exc.status = status  # type: ignore[attr-defined]
            raise exc
        if not isinstance(doc, dict):
            raise PluginError(f"volume plugin {self.name}: {method}: the answer is not a JSON "
                              f"object: {data[:200]!r}")
        if doc.get("Err"):
            raise PluginError(f"{method}: {doc['Err']}")
        return doc


class PluginDriver:
    """A volume driver served by a plugin (moby volume/drivers/proxy.go + adapter.go)."""

    def __init__(self, name: str, client: PluginClient):
        self.name = name
        self.client = client
        self._scope: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def activate(cls, name: str, *, socket_dirs=SOCKET_DIRS, spec_dirs=SPEC_DIRS,
                 timeout: float = 30.0) -> "PluginDriver":
        client = PluginClient(name, discover(name, socket_dirs, spec_dirs), timeout=timeout)
        doc = client.call("Plugin.Activate")
        implements = doc.get("Implements")
        if not isinstance(implements, list) or VOLUME_DRIVER not in implements:
            raise PluginError(f"volume plugin {name} does not implement {VOLUME_DRIVER} "
                              f"(it implements {implements!r})")
        return cls(name, client)

    @property
    def scope(self) -> str:
        if self._scope is None:
            try:
                doc = self.client.call("VolumeDriver.Capabilities")
                scope = (doc.get("Capabilities") or {}).get("Scope") or "local"
            except PluginError as exc:
                if getattr(exc, "status", None) != 404:
                    log.warning("volume plugin %s: capabilities: %s", self.name, exc)
                scope = "local"
            self._scope = scope if scope in ("local", "global") else "local"
        return self._scope

    def create(self, name: str, opts: dict[str, str]) -> None:
        self.client.call("VolumeDriver.Create", {"Name": name, "Opts": opts or {}})

    def remove(self, name: str) -> None:
        self.client.call("VolumeDriver.Remove", {"Name": name})

    def mount(self, name: str, user: str) -> str:
        doc = self.client.call("VolumeDriver.Mount", {"Name": name, "ID": user})
        return self._mountpoint(doc, "VolumeDriver.Mount")

    def unmount(self, name: str, user: str) -> None:
        self.client.call("VolumeDriver.Unmount", {"Name": name, "ID": user})

    def path(self, name: str) -> str:
        doc = self.client.call("VolumeDriver.Path", {"Name": name})
        return self._mountpoint(doc, "VolumeDriver.Path", allow_empty=True)

    def get(self, name: str) -> dict | None:
        """The plugin's record of the volume (Name, Mountpoint, Status, CreatedAt), or None."""
        try:
            doc = self.client.call("VolumeDriver.Get", {"Name": name})
        except PluginError as exc:
            if "no such volume" in str(exc).lower() or "not found" in str(exc).lower():
                return None
            raise
        vol = doc.get("Volume")
        if not isinstance(vol, dict):
            raise PluginError(f"volume plugin {self.name}: VolumeDriver.Get: no Volume in the "
                              "answer")
        return vol

    def list(self) -> list[dict]:
        doc = self.client.call("VolumeDriver.List")
        vols = doc.get("Volumes") or []
        if not isinstance(vols, list) or not all(isinstance(v, dict) and isinstance(
                v.get("Name"), str) for v in vols):
            raise PluginError(f"volume plugin {self.name}: VolumeDriver.List: malformed Volumes")
        return vols

    def _mountpoint(self, doc: dict, method: str, allow_empty: bool = False) -> str:
        point = doc.get("Mountpoint")
        if point in (None, "") and allow_empty:
            return ""
        if not isinstance(point, str) or not point.startswith("/"):
            raise PluginError(f"volume plugin {self.name}: {method}: the Mountpoint "
                              f"{point!r} is not an absolute path")
        return os.path.normpath(point)
