"""Operations on a container that exists: pause, resume, ps, update, events.

Owns the runtime verbs that act through the container's cgroup rather than its processes'
lifecycle. A mixin of `Runtime` (container.py), which provides `_load`, `_status`, `_cgroup`.
"""

from __future__ import annotations

import time

from dockyard.errdefs import Conflict
from dockyard.runtime import plan, state as st
from dockyard.spec.codec import to_json
from dockyard.spec.jsonfast import dumps
from dockyard.spec.runtime import LinuxResources, Spec


def _merge(old: dict, new: dict) -> dict:
    out = dict(old)
    for key, value in new.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class ControlMixin:
    def _running_cgroup(self, container_id: str, verb: str):
        cdir, state = self._load(container_id)
        status = self._status(state)
        if status == st.STOPPED:
            raise Conflict(f"cannot {verb} a container that is not running")
        return cdir, state, status, self._state_cgroup(state)

    def pause(self, container_id: str) -> None:
        _, _, status, cg = self._running_cgroup(container_id, "pause")
        if status not in (st.RUNNING, st.CREATED):
            raise Conflict(f"cannot pause a container in state {status}")
        cg.freeze()

    def resume(self, container_id: str) -> None:
        _, _, status, cg = self._running_cgroup(container_id, "resume")
        if status != st.PAUSED:
            raise Conflict("container not paused")
        cg.thaw()

    def pids(self, container_id: str) -> list[int]:
        _, state = self._load(container_id)
        return self._state_cgroup(state).pids()

    def update(self, container_id: str, resources: LinuxResources) -> None:
        cdir, state, _status, cg = self._running_cgroup(container_id, "update")
        cdir.lock()
        try:
            spec_json = state["spec"]
            linux = spec_json["linux"] = spec_json.get("linux") or {}  # null in config.json
            linux["resources"] = _merge(linux.get("resources") or {}, to_json(resources))
            spec = Spec.from_json(spec_json)
            res = spec.linux.resources
            cg.set(res.replace(devices=plan.device_rules(spec)) if resources.devices else res.replace(devices=()))
            state["spec"] = spec.to_json()
            cdir.save(state)
        finally:
            cdir.unlock()

    def stats(self, container_id: str) -> dict:
        _, state = self._load(container_id)
        if self._status(state) == st.STOPPED:
            raise Conflict(f"container with id {container_id} is not running")
        cg = self._state_cgroup(state)
        return {"type": "stats", "id": container_id, "data": cg.stats()}

    def events(self, container_id: str, interval: float, out, stats_once: bool = False) -> None:
        """Write JSON lines: stats every ``interval``, "oom" when the kernel OOM-kills inside."""
        if stats_once:
            out.write(dumps(self.stats(container_id)) + "\n")
            out.flush()
            return
        _, state = self._load(container_id)
        if self._status(state) == st.STOPPED:  # runc: an error, not an empty stream
            raise Conflict(f"container with id {container_id} is not running")
        cg = self._state_cgroup(state)
        ooms = cg.oom_kill_count()
        while self._status(state) != st.STOPPED:
            now = cg.oom_kill_count()
            if now > ooms:
                out.write(dumps({"type": "oom", "id": container_id}) + "\n")
                ooms = now
            out.write(dumps({"type": "stats", "id": container_id, "data": cg.stats()}) + "\n")
            out.flush()
            time.sleep(interval)
