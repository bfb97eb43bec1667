"""A container's volumes: its mount points resolved at create, mounted at start, let go at
exit, released (and its anonymous volumes removed if asked) at remove.

Owns what moby's daemon/volumes.go and create_unix.go do around the volume service:
- create (registerMountPoints, createContainerOSSpecificSettings): VolumesFrom copies the other
  containers' mount points, Binds and Mounts name or create volumes, the image's VOLUMEs not
  covered by anything else become anonymous volumes; every volume gets a reference from the
  container, so it cannot be removed while the container exists. A create that fails drops
  its references and removes the anonymous volumes it made.
- start: each volume is mounted for the container (a local volume with options, or a plugin's,
  is mounted then), an empty one gets the image's content at the mount point (copy-up, unless
  ``nocopy``; once, at the first start), a ``-v`` bind's missing host directory is made; events
  ``mount``. Anything that fails unmounts what was mounted: the container does not start.
- exit: unmount (events ``unmount``). remove: the references go; with ``v=1`` (and for
  ``--rm``) the anonymous volumes too, unless another container still uses them.
- daemon start: references rebuilt from the container records, running containers' mounts
  adopted, stale mounts of local volumes undone.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from dockyard.engine.container import Container
from dockyard.engine.hostinfo import DaemonOptions
from dockyard.engine.specmounts import (MountPoint, collect_points, inherit_point,
                                        parse_volumes_from)
from dockyard.errdefs import Conflict, DockyardError, InvalidArgument, NotFound, System
from dockyard.runtime.rootfs import secure_join
from dockyard.volume.copyup import copy_up
from dockyard.volume.service import VolumeService

log = logging.getLogger(__name__)


def points_of(c: Container) -> list[MountPoint]:
    return [MountPoint.from_record(r) for r in c.mount_points or []]


def has_volumes(c: Container) -> bool:
    """Whether ``c`` has volumes to mount, unmount or release (binds and tmpfs are not)."""
    return any(r.get("volume") is not None for r in c.mount_points or [])


class ContainerVolumes:
    def __init__(self, engine):
        self.engine = engine
        cfg = engine.config
        self.daemon_options = dataclasses.replace(cfg.spec_options or DaemonOptions(),
                                                  data_root=os.path.abspath(cfg.data_root))
        self.service = VolumeService(cfg.data_root, emit=self._emit_volume,
                                     socket_dirs=cfg.plugin_socket_dirs,
                                     spec_dirs=cfg.plugin_spec_dirs,
                                     plugin_timeout=cfg.plugin_timeout)

    def _emit_volume(self, action: str, name: str, attrs: dict) -> None:
        self.engine.events.emit("volume", action, name, attrs)

    def close(self) -> None:
        self.service.close()

    # -- create ---------------------------------------------------------------------------------

    def inherited(self, host_config: dict) -> list[MountPoint]:
        """The mount points --volumes-from copies (on the loop: reads other containers)."""
        out: list[MountPoint] = []
        for spec in host_config.get("VolumesFrom") or []:
            ident, mode = parse_volumes_from(spec)
            other = self.engine.containers.get(ident)
            if other.mount_points is None:
                raise InvalidArgument(f"container {other.name} predates volumes: its mount "
                                      "points cannot be shared")
            out += [inherit_point(p, mode) for p in points_of(other)]
        return out

    def prepare(self, c: Container, inherited: list[MountPoint]) -> None:
        """Resolve ``c``'s mount points and take its volumes (blocking; at create)."""
        points, _tmpfs = collect_points(c.config, c.host_config, self.daemon_options, inherited)
        svc = self.service
        taken: list[str] = []
        made: list[str] = []
        try:
            for p in points:
                if p.volume is None:
                    continue
                if p.volume and any(p is q for q in inherited):
                    rec = svc.get(p.volume)  # it must still exist
                    svc.add_ref(p.volume, c.id)
                else:
                    rec = svc.create(p.volume or None, p.driver, p.driver_opts, p.labels,
                                     ref=c.id)
                    if not p.volume:
                        made.append(rec.name)
                taken.append(rec.name)
                p.volume, p.driver = rec.name, rec.driver
                p.source = svc.mountpoint(rec)
        except BaseException:
            self._undo(c.id, taken, made)
            raise
        c.mount_points = [p.to_record() for p in sorted(points, key=lambda p: p.destination)]

    def _undo(self, cid: str, taken: list[str], made: list[str]) -> None:
        for name in taken:
            self.service.release(name, cid)
        for name in made:
            try:
                self.service.remove(name)
            except DockyardError as exc:
                log.warning("removing volume %s of a failed create: %s", name, exc)

    def abandon(self, c: Container) -> None:
        """A create that failed after `prepare`: give everything back."""
        for error in self.release(c, remove_anonymous=True):
            log.warning("undoing the volumes of a failed create: %s", error)

    # -- start, exit ----------------------------------------------------------------------------

    def mount(self, c: Container, rootfs: str) -> list[MountPoint]:
        """Mount ``c``'s volumes (blocking; at start, ``rootfs`` mounted for copy-up); the mount
        points with their host sources. On failure nothing stays mounted."""
        points = points_of(c)
        mounted: list[MountPoint] = []
        svc = self.service
        try:
            for p in points:
                if p.volume is None:
                    if p.kind == "bind" and p.create_source and not os.path.exists(p.source):
                        try:
                            os.makedirs(p.source, 0o755)
                        except OSError as exc:
                            raise System(f"error while creating mount source path "
                                         f"'{p.source}': mkdir {p.source}: {exc.strerror}") from None
                    continue
                path = svc.mount(p.volume, c.id)
                mounted.append(p)
                if p.copy_data:
                    self._copy_up(rootfs, p, path)
                    p.copy_data = False
                p.source = self._subpath(p, path) if p.subpath else path
                self._emit_volume("mount", p.volume, {
                    "container": c.id, "destination": p.destination, "driver": p.driver,
                    "propagation": p.propagation, "read/write": str(p.writable).lower()})
        except BaseException:
            for p in mounted:
                svc.unmount(p.volume, c.id)
            raise
        c.mount_points = [p.to_record() for p in points]
        return points

    def _copy_up(self, rootfs: str, p: MountPoint, path: str) -> None:
        rec = self.service.store.get(p.volume)
        keep = bool(rec and (rec.options.get("uid") or rec.options.get("gid")))
        if copy_up(secure_join(rootfs, p.destination), path, keep_dest_owner=keep):
            log.debug("copied the image's %s into volume %s", p.destination, p.volume)

    @staticmethod
    def _subpath(p: MountPoint, path: str) -> str:
        target = secure_join(path, p.subpath)
        if not os.path.exists(target):
            raise InvalidArgument(f"cannot access path {target}: no such file or directory "
                                  f"(subpath {p.subpath!r} of volume {p.volume})")
        return target

    def unmount(self, c: Container) -> None:
        """Let go of ``c``'s mounts (blocking; at exit, or after a failed start)."""
        for p in points_of(c):
            if p.volume and c.id in self.service.mounted_by(p.volume):
                self.service.unmount(p.volume, c.id)
                self._emit_volume("unmount", p.volume, {"container": c.id, "driver": p.driver})

    # -- remove ---------------------------------------------------------------------------------

    def release(self, c: Container, *, remove_anonymous: bool) -> list[str]:
        """Drop ``c``'s references (blocking; at remove); with ``remove_anonymous`` remove the
        volumes it did not name, unless still used. Returns the errors, as dockerd logs them."""
        self.unmount(c)
        errors = []
        for p in points_of(c):
            if not p.volume:
                continue
            self.service.release(p.volume, c.id)
            if not remove_anonymous or p.named:
                continue
            try:
                self.service.remove(p.volume)
            except (Conflict, NotFound):
                pass  # used by another container: an implementation detail, as dockerd says
            except DockyardError as exc:
                errors.append(str(exc))
        return errors

    # -- daemon start ---------------------------------------------------------------------------

    def restore(self, containers: list[Container]) -> None:
        """References from every container; mounts of the running ones kept (blocking)."""
        held: dict[str, set[str]] = {}
        for c in containers:
            for p in points_of(c):
                if not p.volume:
                    continue
                self.service.add_ref(p.volume, c.id)
                if c.state.Running:
                    held.setdefault(p.volume, set()).add(c.id)
        self.service.restore(held)

    # -- views ----------------------------------------------------------------------------------

    @staticmethod
    def inspect_mounts(c: Container) -> list[dict] | None:
        """Docker's MountPoint list of inspect and of the container list, or None for a record
        from before volumes (the caller derives it from HostConfig)."""
        if c.mount_points is None:
            return None
        out = []
        for p in points_of(c):
            doc: dict = {"Type": p.type}
            if p.volume:
                doc["Name"] = p.volume
            doc["Source"] = p.source if p.kind == "bind" else ""
            doc["Destination"] = p.destination
            if p.volume is not None and p.driver:
                doc["Driver"] = p.driver
            doc |= {"Mode": p.mode, "RW": p.writable, "Propagation": p.propagation}
            out.append(doc)
        return out
