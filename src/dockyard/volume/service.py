"""The volume service: create, get, list, remove, prune; references; mounts; export/import.

Owns the rules of moby's volume/service: a name is unique across drivers (creating an existing
volume returns it, unless another driver was asked for); a volume referenced by a container
cannot be removed (409, the containers named), ``force`` only ignores a missing volume or a
driver that fails to remove; an unnamed volume gets a random 64-hex name and the
``com.docker.volume.anonymous`` label (which prune of API >= 1.42 removes by default). Mounts
are counted per (volume, user): mounting twice for one user is one mount, so a restart or a
live restore never leaks a count. Errors carry Docker's ``<op> <name>: <cause>`` words.

Blocking (SQLite, the file system, plugin sockets): async callers use threads. Thread-safe: one
lock for the tables in memory, one per volume name around driver calls.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import BinaryIO

from dockyard.errdefs import Conflict, DockyardError, InvalidArgument, NotFound, System
from dockyard.volume import local as localdrv
from dockyard.volume.local import LocalDriver
from dockyard.volume.plugin import SOCKET_DIRS, SPEC_DIRS, PluginDriver
from dockyard.volume.store import ANONYMOUS_LABEL, VolumeRecord, VolumeStore, check_name

log = logging.getLogger(__name__)

LIST_FILTERS = ("dangling", "name", "driver", "label", "label!")
PRUNE_FILTERS = ("label", "label!", "all")

Emit = Callable[[str, str, dict], None]  # (action, volume name, attributes)


def _reword(op: str, name: str, exc: DockyardError) -> DockyardError:
    """The same kind of error, as ``<op> <name>: <message>`` (moby's OpErr)."""
    text = str(exc)
    prefix = f"{op} {name}: "
    if text.startswith(prefix):
        return exc
    out = type(exc)(prefix + text)
    return out


def dir_size(path: str) -> int:
    """Bytes of the regular files under ``path``, each inode once (moby directory.Size)."""
    total, seen = 0, set()
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            it = os.scandir(current)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if st.st_dev == dev:
                        stack.append(entry.path)
                    continue
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class VolumeService:
    def __init__(self, data_root: str, *, emit: Emit | None = None,
                 socket_dirs: Iterable[str] = SOCKET_DIRS, spec_dirs: Iterable[str] = SPEC_DIRS,
                 plugin_timeout: float = 30.0, local: LocalDriver | None = None):
        os.makedirs(data_root, mode=0o711, exist_ok=True)
        self.store = VolumeStore(os.path.join(data_root, "dockyard.db"))
        self.local = local or LocalDriver(os.path.join(data_root, "volumes"))
        self.socket_dirs = tuple(socket_dirs)
        self.spec_dirs = tuple(spec_dirs)
        self.plugin_timeout = plugin_timeout
        self._emit = emit or (lambda action, name, attrs: None)
        self._plugins: dict[str, PluginDriver] = {}
        self._refs: dict[str, set[str]] = {}
        self._mounts: dict[str, dict[str, str]] = {}  # volume -> user -> path
        self._lock = threading.RLock()
        self._name_locks: dict[str, threading.Lock] = {}

    def close(self) -> None:
        self.store.close()

    def _name_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._name_locks.setdefault(name, threading.Lock())

    # -- drivers ----------------------------------------------------------------------------------

    def driver(self, name: str):
        """The local driver, or the plugin of that name (activated on first use)."""
        if name in ("", localdrv.NAME):
            return self.local
        with self._lock:
            plugin = self._plugins.get(name)
        if plugin is not None:
            return plugin
        plugin = PluginDriver.activate(name, socket_dirs=self.socket_dirs,
                                       spec_dirs=self.spec_dirs, timeout=self.plugin_timeout)
        with self._lock:
            return self._plugins.setdefault(name, plugin)

    def _forget_plugin(self, name: str) -> None:
        """A plugin that failed: activate it afresh next time (it may have restarted)."""
        with self._lock:
            self._plugins.pop(name, None)

    def driver_names(self) -> list[str]:
        with self._lock:
            return [localdrv.NAME, *sorted(self._plugins)]

    # -- create, get --------------------------------------------------------------------------------

    def create(self, name: str | None = None, driver: str = "", opts: dict | None = None,
               labels: dict | None = None, *, ref: str | None = None) -> VolumeRecord:
        """Create the volume, or return the one of that name (moby VolumesService.Create)."""
        opts = {str(k): str(v) for k, v in (opts or {}).items()}
        labels = {str(k): str(v) for k, v in (labels or {}).items()}
        if not name:
            name = secrets.token_hex(32)
            labels[ANONYMOUS_LABEL] = ""
            driver = driver or localdrv.NAME
        try:
            check_name(name, local=driver in ("", localdrv.NAME))
        except InvalidArgument as exc:
            raise _reword("create", name, exc) from None
        with self._name_lock(name):
            existing = self.store.get(name)
            if existing is not None:
                if driver not in ("", localdrv.NAME, existing.driver):
                    try:
                        self.driver(driver)
                    except DockyardError as exc:
                        raise _reword("create", name, exc) from None
                if driver and driver != existing.driver:
                    raise Conflict(f"create {name}: driver '{existing.driver}' already has volume "
                                   f"'{name}': volume name must be unique")
                if ref:
                    self.add_ref(name, ref)
                return existing
            try:
                drv = self.driver(driver)
                if drv is self.local:
                    drv.create(name, opts)
                    scope = "local"
                else:
                    drv.create(name, opts)
                    scope = drv.scope
            except DockyardError as exc:
                if driver not in ("", localdrv.NAME):
                    self._forget_plugin(driver)
                raise _reword("create", name, exc) from None
            except OSError as exc:
                raise System(f"create {name}: {exc.strerror or exc}") from None
            rec = VolumeRecord(name, driver or localdrv.NAME, labels=labels, options=opts,
                               scope=scope)
            self.store.add(rec)
            if ref:
                self.add_ref(name, ref)
        self._emit("create", name, {"driver": rec.driver})
        return rec

    def get(self, name: str) -> VolumeRecord:
        rec = self.store.get(name) if name else None
        if rec is None:
            raise NotFound(f"get {name}: no such volume")
        return rec

    def mountpoint(self, rec: VolumeRecord) -> str:
        """Where the volume is on the host (a plugin's: where it was last mounted, else "")."""
        if rec.driver == localdrv.NAME:
            return self.local.data_path(rec.name)
        with self._lock:
            paths = list(self._mounts.get(rec.name, {}).values())
        return paths[0] if paths else ""

    def to_json(self, rec: VolumeRecord, *, status: dict | None = None,
                mountpoint: str | None = None, usage: dict | None = None) -> dict:
        """Docker's volume.Volume (its field order; empty Labels and Options are null)."""
        doc = {"CreatedAt": rec.created, "Driver": rec.driver, "Labels": rec.labels or None,
               "Mountpoint": self.mountpoint(rec) if mountpoint is None else mountpoint,
               "Name": rec.name, "Options": rec.options or None, "Scope": rec.scope}
        if status:
            doc["Status"] = status
        if usage is not None:
            doc["UsageData"] = usage
        return doc

    def inspect(self, name: str) -> dict:
        rec = self.get(name)
        if rec.driver == localdrv.NAME:
            return self.to_json(rec)
        try:
            found = self.driver(rec.driver).get(name)
        except DockyardError as exc:
            self._forget_plugin(rec.driver)
            raise _reword("get", name, exc) from None
        if found is None:
            raise NotFound(f"get {name}: no such volume (the plugin {rec.driver} has no such "
                           "volume any more)")
        point = found.get("Mountpoint") if isinstance(found.get("Mountpoint"), str) else None
        status = found.get("Status") if isinstance(found.get("Status"), dict) else None
        return self.to_json(rec, status=status, mountpoint=point or self.mountpoint(rec))

    # -- list, remove, prune ------------------------------------------------------------------------

    def list(self, filters: dict[str, list[str]] | None = None) -> tuple[list[dict], list[str]]:
        """(volumes, warnings) for GET /volumes with Docker's filters."""
        filters = filters or {}
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidArgument(f"Invalid filter '{key}'")
        dangling = None
        if "dangling" in filters:
            values = set(filters["dangling"])
            if values - {"true", "1", "false", "0"} or not values:
                raise InvalidArgument(f"Invalid filter 'dangling={','.join(filters['dangling'])}'")
            dangling = bool(values & {"true", "1"})
        from dockyard.image.filters import match_labels

        out, warnings = [], []
        records = self.store.all()
        known = {r.name for r in records}
        with self._lock:
            plugins = list(self._plugins.values())
        for plugin in plugins:  # volumes a plugin has that we have no record of
            try:
                for v in plugin.list():
                    if v["Name"] not in known:
                        records.append(VolumeRecord(v["Name"], plugin.name, scope=plugin.scope))
                        known.add(v["Name"])
            except DockyardError as exc:
                warnings.append(f"volume plugin {plugin.name}: {exc}")
        for rec in records:
            if dangling is not None and bool(self.refs(rec.name)) == dangling:
                continue
            if "driver" in filters and rec.driver not in filters["driver"]:
                continue
            if "name" in filters and not any(_search(v, rec.name) for v in filters["name"]):
                continue
            if not match_labels(filters, rec.labels):
                continue
            out.append(self.to_json(rec))
        return out, warnings

    def remove(self, name: str, *, force: bool = False) -> None:
        """DELETE /volumes/{name}: 409 while containers use it; with force, a missing volume
        or a plugin that cannot remove it is no error (the record goes)."""
        with self._name_lock(name):
            rec = self.store.get(name)
            if rec is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            refs = self.refs(name)
            if refs:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(sorted(refs))}]")
            try:
                if rec.driver == localdrv.NAME:
                    self.local.remove(name)
                else:
                    self.driver(rec.driver).remove(name)
            except DockyardError as exc:
                if rec.driver != localdrv.NAME:
                    self._forget_plugin(rec.driver)
                if not force:
                    raise _reword("remove", name, exc) from None
                log.warning("removing volume %s with force: %s", name, exc)
            self.store.remove(name)
            with self._lock:
                self._mounts.pop(name, None)
                self._refs.pop(name, None)
        self._emit("destroy", name, {"driver": rec.driver})

    def prune(self, filters: dict[str, list[str]] | None = None, *,
              all_volumes: bool = False) -> dict:
        """POST /volumes/prune: unused local volumes (only anonymous ones unless all=true)."""
        from dockyard.image.filters import get_bool, match_labels, validate

        filters = dict(filters or {})
        validate(filters, PRUNE_FILTERS)
        all_volumes = get_bool(filters, "all", all_volumes)
        deleted, reclaimed = [], 0
        for rec in self.store.all():
            if rec.driver != localdrv.NAME or self.refs(rec.name):
                continue
            if not all_volumes and not rec.anonymous:
                continue
            if not match_labels(filters, rec.labels):
                continue
            size = 0 if localdrv.needs_mount(rec.options) else \
                dir_size(self.local.data_path(rec.name))
            try:
                self.remove(rec.name)
            except (Conflict, NotFound):
                continue  # taken, or removed meanwhile
            except DockyardError as exc:
                log.warning("prune: %s", exc)
                continue
            deleted.append(rec.name)
            reclaimed += size
        self._emit("prune", "", {"reclaimed": str(reclaimed)})
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- references ---------------------------------------------------------------------------------

    def add_ref(self, name: str, ref: str) -> None:
        with self._lock:
            self._refs.setdefault(name, set()).add(ref)

    def release(self, name: str, ref: str) -> None:
        with self._lock:
            refs = self._refs.get(name)
            if refs is not None:
                refs.discard(ref)
                if not refs:
                    del self._refs[name]

    def refs(self, name: str) -> set[str]:
        with self._lock:
            return set(self._refs.get(name, ()))

    # -- mounts ---------------------------------------------------------------------------------------

    def mount(self, name: str, user: str) -> str:
        """Mount the volume for ``user`` (a container id); its host path. Idempotent per user."""
        with self._name_lock(name):
            rec = self.get(name)
            with self._lock:
                held = self._mounts.get(name, {}).get(user)
            if held is not None:
                return held
            try:
                if rec.driver == localdrv.NAME:
                    path = self.local.mount(name, rec.options, user)
                else:
                    path = self.driver(rec.driver).mount(name, user)
            except DockyardError as exc:
                if rec.driver != localdrv.NAME:
                    self._forget_plugin(rec.driver)
                raise _reword("mount", name, exc) from None
            except OSError as exc:
                raise System(f"mount {name}: {exc.strerror or exc}") from None
            with self._lock:
                self._mounts.setdefault(name, {})[user] = path
            return path

    def unmount(self, name: str, user: str) -> None:
        """Let go of ``user``'s mount (no error if it held none); failures are logged."""
        with self._name_lock(name):
            with self._lock:
                held = self._mounts.get(name, {})
                if user not in held:
                    return
                del held[user]
                if not held:
                    self._mounts.pop(name, None)
            rec = self.store.get(name)
            if rec is None:
                return
            try:
                if rec.driver == localdrv.NAME:
                    self.local.unmount(name, rec.options, user)
                else:
                    self.driver(rec.driver).unmount(name, user)
            except DockyardError as exc:
                if rec.driver != localdrv.NAME:
                    self._forget_plugin(rec.driver)
                log.warning("unmount volume %s for %s: %s", name, user, exc)

    def mounted_by(self, name: str) -> set[str]:
        with self._lock:
            return set(self._mounts.get(name, {}))

    def restore(self, held: dict[str, set[str]]) -> None:
        """After a daemon restart: the running containers (``held``: volume -> ids) keep their
        volumes mounted; local volumes that nobody holds are unmounted."""
        for name, users in held.items():
            rec = self.store.get(name)
            if rec is None:
                continue
            for user in users:
                if rec.driver == localdrv.NAME:
                    self.local.adopt(name, rec.options, user)
                    with self._lock:
                        self._mounts.setdefault(name, {})[user] = self.local.data_path(name)
                else:
                    try:
                        self.mount(name, user)  # plugins count mounts by id themselves
                    except DockyardError as exc:
                        log.warning("restoring the mount of volume %s for %s: %s", name, user, exc)
        self.local.release_unused([r.name for r in self.store.all()
                                   if r.driver == localdrv.NAME and localdrv.needs_mount(r.options)])

    # -- sizes, export, import ---------------------------------------------------------------------

    def usage(self) -> list[dict]:
        """The volumes of ``system df``: local ones without mount options, with their sizes and
        reference counts (moby LocalVolumesSize)."""
        out = []
        for rec in self.store.all():
            if rec.driver != localdrv.NAME or localdrv.needs_mount(rec.options):
                continue
            size = dir_size(self.local.data_path(rec.name))
            out.append(self.to_json(rec, usage={"RefCount": len(self.refs(rec.name)),
                                                "Size": size}))
        return out

    def _borrow(self, name: str) -> tuple[str, str]:
        user = "dockyard-transfer-" + secrets.token_hex(8)
        return self.mount(name, user), user

    def check_export(self, name: str) -> None:
        self.get(name)

    def export(self, name: str, out: BinaryIO) -> None:
        """The volume's content as a plain tar on ``out`` (mounted for the time it takes)."""
        from dockyard.image.importer import export_rootfs

        path, user = self._borrow(name)
        try:
            export_rootfs(path, out)
        finally:
            self.unmount(name, user)

    def import_tar(self, name: str, stream: BinaryIO, *, create: bool = True) -> VolumeRecord:
        """Unpack a tar stream into the volume (created, local, if it does not exist): entries
        land inside the volume whatever their names or links say (image/layer.py's rules)."""
        from dockyard.image.layer import apply_layer

        try:
            rec = self.get(name)
        except NotFound:
            if not create:
                raise
            rec = self.create(name)
        path, user = self._borrow(name)
        try:
            apply_layer(stream, path, form="native", compression="auto")
        finally:
            self.unmount(name, user)
        return rec


def _search(pattern: str, text: str) -> bool:
    """filters.Match: the value as a regular expression searched in the name."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


__all__ = ["VolumeService", "dir_size", "ANONYMOUS_LABEL"]
