"""Docker's ``local`` volume driver: ``<root>/<name>/_data``, plain or with a filesystem on it.

Options as Docker has them (volume/local): ``type``, ``device`` and ``o`` say what to mount on
``_data`` (``type=tmpfs device=tmpfs o=size=64m``, ``type=none o=bind device=/srv/x``,
``type=nfs o=addr=10.0.0.1,rw device=:/export``, any filesystem mount(2) knows); ``device``
needs ``type`` and the other way round, ``o`` needs both. Such a volume is mounted when its
first user mounts it and unmounted when its last user lets go (counted per user id). Beyond
Docker: ``uid`` and ``gid`` give the volume's root directory an owner (a plain volume's
``_data`` at create, a tmpfs through its own options, any other filesystem once mounted).
``size`` (Docker's xfs project quota) is refused: there is no quota support here.

Mounts go through `snapshot.mounts` (mount(2) through `linux.syscalls`); tests hand in a fake.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import threading

from dockyard.errdefs import Conflict, InvalidArgument, System
from dockyard.linux.syscalls import MNT_DETACH, SYS, Syscalls
from dockyard.snapshot.mounts import Mount, mount_all, unmount_all

log = logging.getLogger(__name__)

NAME = "local"
_VALID = ("type", "device", "o", "size", "uid", "gid")
_REQUIRES = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def _id_option(opts: dict[str, str], key: str) -> int | None:
    raw = opts.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32 - 1:
        raise InvalidArgument(f"invalid {key} option: {raw!r}: expected a number from 0 to "
                              "4294967294")
    return value


def validate_options(opts: dict[str, str]) -> None:
    """volume/local validateOpts, with its words; plus our uid/gid."""
    for key in opts:
        if key not in _VALID:
            raise InvalidArgument(f'invalid option: "{key}"')
    if "size" in opts:
        raise InvalidArgument("quota size requested but no quota support")
    for key, needs in _REQUIRES.items():
        if key in opts:
            for need in needs:
                if need not in opts:
                    raise InvalidArgument(f'missing required option: "{need}"')
    _id_option(opts, "uid")
    _id_option(opts, "gid")


def needs_mount(opts: dict[str, str]) -> bool:
    return bool(opts.get("type") or opts.get("device"))


def _mask_password(text: str, o: str) -> str:
    for part in o.split(","):
        if part.startswith("password="):
            text = text.replace(part, "password=********")
    return text


def _resolve_nfs_addr(o: str) -> str:
    """``addr=host`` given by name becomes an address, as the kernel needs one (Docker too)."""
    out = []
    for part in o.split(","):
        key, eq, value = part.partition("=")
        if key == "addr" and eq and value:
            try:
                socket.inet_pton(socket.AF_INET, value)
            except OSError:
                try:
                    socket.inet_pton(socket.AF_INET6, value)
                except OSError:
                    try:
                        value = socket.getaddrinfo(value, None)[0][4][0]
                    except OSError as exc:
                        raise InvalidArgument(f"error resolving passed in network volume "
                                              f"address: {exc}") from None
            part = f"addr={value}"
        out.append(part)
    return ",".join(out)


class LocalDriver:
    name = NAME

    def __init__(self, root: str, sys: Syscalls = SYS, mountinfo_path: str = "/proc/self/mountinfo"):
        self.root = root
        self.sys = sys
        self.mountinfo_path = mountinfo_path
        os.makedirs(root, mode=0o701, exist_ok=True)
        self._users: dict[str, set[str]] = {}  # volume -> ids that hold it mounted
        self._lock = threading.Lock()

    # -- paths ----------------------------------------------------------------------------------

    def volume_dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def data_path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    # -- create, remove -------------------------------------------------------------------------

    def create(self, name: str, opts: dict[str, str]) -> str:
        validate_options(opts)
        path = self.data_path(name)
        os.makedirs(self.volume_dir(name), mode=0o701, exist_ok=True)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return path
        os.chmod(path, 0o755)  # whatever the umask
        if not needs_mount(opts):
            self._chown_root(path, opts)
        return path

    def remove(self, name: str) -> None:
        """Unmount if mounted (whoever held it), then delete the volume's directory."""
        path = self.data_path(name)
        with self._lock:
            self._users.pop(name, None)
            if self.is_mounted(path):
                unmount_all(path, self.sys, MNT_DETACH)
        if self.is_mounted(path):
            raise Conflict(f"unable to remove a volume that is still mounted: {path}")
        try:
            shutil.rmtree(self.volume_dir(name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise System(f"error removing volume path '{self.volume_dir(name)}': "
                         f"{exc.strerror or exc}") from None

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.data_path(name))

    # -- mount, unmount ---------------------------------------------------------------------------

    def mount(self, name: str, opts: dict[str, str], user: str) -> str:
        """The volume's path, with its filesystem mounted there for the first user."""
        path = self.data_path(name)
        if not needs_mount(opts):
            if not os.path.isdir(path):
                raise System(f"volume {name}: its directory {path} is missing")
            return path
        with self._lock:
            users = self._users.setdefault(name, set())
            if not users and not self.is_mounted(path):
                try:
                    self._mount(name, opts, path)
                except BaseException:
                    self._users.pop(name, None)
                    raise
            users.add(user)
        return path

    def _mount(self, name: str, opts: dict[str, str], path: str) -> None:
        device, kind, o = opts.get("device", ""), opts.get("type", ""), opts.get("o", "")
        if not device:
            raise InvalidArgument("missing device in volume options")
        os.makedirs(path, mode=0o755, exist_ok=True)
        if kind == "nfs" or kind == "nfs4":
            o = _resolve_nfs_addr(o)
        if kind == "tmpfs":
            extra = [f"{k}={opts[k]}" for k in ("uid", "gid") if opts.get(k)
                     and not any(p.startswith(k + "=") for p in o.split(","))]
            o = ",".join(filter(None, [o, *extra]))
        options = tuple(p for p in o.split(",") if p)
        fstype = kind if kind and kind != "none" else "none"
        if "bind" in options or "rbind" in options:
            fstype = "none"
        try:
            mount_all([Mount(fstype, device, options)], path, self.sys)
        except Exception as exc:  # noqa: BLE001 - reworded, as dockerd words it
            text = _mask_password(str(exc), o)
            raise System(f"error while mounting volume '{path}': failed to mount local volume: "
                         f"{text}") from None
        if kind != "tmpfs":
            try:
                self._chown_root(path, opts)
            except Exception:
                unmount_all(path, self.sys, MNT_DETACH)
                raise
        log.debug("mounted volume %s (%s %s)", name, kind, device)

    def unmount(self, name: str, opts: dict[str, str], user: str) -> None:
        """Let go of ``user``'s mount; the last one out unmounts."""
        if not needs_mount(opts):
            return
        path = self.data_path(name)
        with self._lock:
            users = self._users.get(name)
            if users is None or user not in users:
                return
            users.discard(user)
            if users:
                return
            del self._users[name]
            try:
                unmount_all(path, self.sys, MNT_DETACH)
            except Exception as exc:  # noqa: BLE001 - logged; the volume stays usable
                log.warning("unmounting volume %s: %s", name, exc)
            else:
                log.debug("unmounted volume %s", name)

    def adopt(self, name: str, opts: dict[str, str], user: str) -> None:
        """After a daemon restart: ``user`` (a running container) holds the volume as mounted."""
        if needs_mount(opts):
            with self._lock:
                self._users.setdefault(name, set()).add(user)

    def release_unused(self, names: list[str]) -> None:
        """After a daemon restart: unmount local volumes that nobody holds (a crash left them)."""
        for name in names:
            path = self.data_path(name)
            with self._lock:
                if self._users.get(name) or not self.is_mounted(path):
                    continue
                try:
                    unmount_all(path, self.sys, MNT_DETACH)
                except Exception as exc:  # noqa: BLE001 - logged, retried at the next start
                    log.warning("unmounting unused volume %s: %s", name, exc)

    def mounted_users(self, name: str) -> set[str]:
        with self._lock:
            return set(self._users.get(name, ()))

    # -- helpers ----------------------------------------------------------------------------------

    def is_mounted(self, path: str) -> bool:
        try:
            with open(self.mountinfo_path) as f:
                text = f.read()
        except OSError:
            return False
        for line in text.splitlines():
            fields = line.split()
            if len(fields) > 4:
                point = fields[4]
                if "\\" in point:
                    point = point.encode().decode("unicode_escape")
                if point == path:
                    return True
        return False

    @staticmethod
    def _chown_root(path: str, opts: dict[str, str]) -> None:
        uid, gid = _id_option(opts, "uid"), _id_option(opts, "gid")
        if uid is None and gid is None:
            return
        try:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise System(f"chown {path}: {exc.strerror}") from None
