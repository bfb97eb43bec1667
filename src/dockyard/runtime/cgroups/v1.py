"""The cgroup v1 manager: one directory per mounted hierarchy, limits written per controller.

Owns how OCI ``linux.resources`` map onto v1 files (following runc's libcontainer/cgroups/fs and
Documentation/admin-guide/cgroup-v1/), the freezer, and reading v1 statistics into runc's
``events --stats`` shape. Writes only the files a given resource value needs; None (and, as in
runc, 0 for limits) means "leave as is". Every write goes through ``self.write``.

Must not import anything but os, errno, time and dockyard modules (start-up time).
"""

from __future__ import annotations

import errno
import os

from dockyard.errdefs import DockyardError, InvalidArgument, NotFound, System, Unavailable
from dockyard.runtime.cgroups.common import (
    CgroupManager, blkio_entry, cgroup_error, empty_stats, join_path, memory_entry, parse_cpu_list,
    parse_flat, parse_uint, put_nonzero, read_pids, remove_cgroup, wait_until,
)

# Where pids(), exists() and frozen-ness look first: any joined hierarchy lists the same tasks.
_PRIMARY = ("pids", "devices", "freezer", "memory", "cpu", "cpuacct", "blkio", "cpuset")
_CLOCK_TICKS = 100  # USER_HZ; cpuacct.stat counts in these (constant on Linux)
_NS_PER_SEC = 1_000_000_000


def find_hierarchies(root: str) -> dict[str, str]:
    """``{controller: mount directory}`` for the v1 hierarchies mounted under ``root``.

    Co-mounted controllers (``cpu,cpuacct``, reached also through ``cpu`` and ``cpuacct``
    symlinks) share one directory; named hierarchies (``name=systemd``) appear by their name.
    The v2 hierarchy of a hybrid host (``unified``) is not one of them.
    """
    try:
        entries = sorted(os.listdir(root), key=lambda e: ("," not in e, e))
    except OSError as exc:
        raise cgroup_error(exc, root) from None
    found: dict[str, str] = {}
    for entry in entries:
        mount = f"{root}/{entry}"
        if entry == "unified" or not os.path.exists(mount + "/cgroup.procs"):
            continue
        for name in entry.split(","):
            found.setdefault(name, mount)
    if not found:
        raise Unavailable(f"{root}: neither cgroup v2 nor any cgroup v1 hierarchy is mounted here")
    return found


class V1Manager(CgroupManager):
    """A container's cgroup across the v1 hierarchies.

    ``paths`` maps every controller to the container's directory in its hierarchy; ``path`` is
    the cgroup path inside the hierarchies (for a relative cgroupsPath, the one in the memory
    hierarchy, as the others may differ).
    """

    version = 1

    def __init__(self, root: str, mounts: dict[str, str], path: str,
                 own: dict[str, str] | None = None) -> None:
        super().__init__()
        self.root = root
        self.mounts = mounts
        self.paths: dict[str, str] = {}
        for name, mount in mounts.items():
            base = "" if own is None else own.get(name, "/").rstrip("/")
            self.paths[name] = mount + (join_path(base, path) if own is not None else path)
        if own is not None:
            self.path = join_path(own.get("memory", own.get("", "/")), path)
        else:
            self.path = path
        self.dirs = list(dict.fromkeys(self.paths.values()))

    def __repr__(self) -> str:
        return f"V1Manager(root={self.root!r}, path={self.path!r})"

    def saved(self) -> dict:
        """What `restore` needs, for the container's state (as runc keeps its cgroup paths):
        the verbs after create then neither list the hierarchies nor read /proc/self/cgroup."""
        return {"root": self.root, "mounts": dict(self.mounts), "paths": dict(self.paths),
                "path": self.path}

    @classmethod
    def restore(cls, saved: dict) -> V1Manager:
        m = cls.__new__(cls)
        CgroupManager.__init__(m)
        m.root, m.mounts, m.paths, m.path = (saved["root"], dict(saved["mounts"]),
                                             dict(saved["paths"]), saved["path"])
        m.dirs = list(dict.fromkeys(m.paths.values()))
        return m

    def _dir(self, controller: str) -> str:
        try:
            return self.paths[controller]
        except KeyError:
            raise Unavailable(f"cgroup v1 controller {controller!r} is not mounted under "
                              f"{self.root}") from None

    def _primary(self) -> str:
        for name in _PRIMARY:
            if name in self.paths:
                return self.paths[name]
        if not self.dirs:
            raise Unavailable(f"no cgroup v1 hierarchy is mounted under {self.root}")
        return self.dirs[0]

    # -- lifecycle ------------------------------------------------------------------------

    def create(self) -> None:
        cpuset = self.paths.get("cpuset")
        for directory in self.dirs:
            if directory == cpuset:
                self._create_cpuset(self.mounts["cpuset"], directory)
                continue
            try:
                os.makedirs(directory, 0o755, exist_ok=True)
            except OSError as exc:
                raise cgroup_error(exc, directory) from None

    def _create_cpuset(self, mount: str, leaf: str) -> None:
        """mkdir each level, copying cpuset.cpus/mems down where empty: tasks cannot join a
        cpuset with no cpus or mems (ENOSPC), and a new cpuset starts with both empty."""
        current = mount
        for part in leaf[len(mount):].strip("/").split("/"):
            parent, current = current, f"{current}/{part}"
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                raise cgroup_error(exc, current) from None
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not self.get(f"{current}/{name}").strip():
                    self.put(f"{current}/{name}", self.get(f"{parent}/{name}").strip())

    def add(self, pid: int) -> None:
        for directory in self.dirs:
            self.add_pid(directory, pid)

    def add_self(self) -> None:
        """Move the calling (single-threaded) process in by writing "0" to ``tasks``.

        Migrating one thread that is `current` skips the kernel's global threadgroup rwsem,
        whose write side waits for an RCU grace period (~10 ms here) on every cgroup.procs
        write (kernel/cgroup/cgroup.c, cgroup_procs_write_start). For a single-threaded
        process the thread is the whole process.
        """
        for directory in self.dirs:
            try:
                self.write(directory + "/tasks", "0")
            except OSError as exc:
                raise cgroup_error(exc, directory + "/tasks", "0") from None

    def exists(self) -> bool:
        return bool(self.dirs) and os.path.isdir(self._primary())

    def destroy(self) -> None:
        for directory in self.dirs:
            remove_cgroup(directory)

    def pids(self) -> list[int]:
        return sorted(read_pids(self._primary(), self.read))

    # -- limits ---------------------------------------------------------------------------

    def set(self, resources) -> None:
        """Apply a LinuxResources (create and `update`); None fields are left as they are."""
        if resources is None:
            return
        if resources.unified:
            raise InvalidArgument("linux.resources.unified: needs cgroup v2; this host runs "
                                  "cgroup v1")
        cpu = resources.cpu
        if cpu is not None:
            self._set_cpuset(cpu)
        if resources.devices:
            self._set_devices(resources.devices)
        if resources.memory is not None:
            self._set_memory(resources.memory)
        if cpu is not None:
            self._set_cpu(cpu)
        if resources.pids is not None:
            limit = resources.pids.limit
            self.put(self._dir("pids") + "/pids.max", str(limit) if limit > 0 else "max")
        if resources.block_io is not None:
            self._set_blkio(resources.block_io)
        for hp in resources.hugepage_limits:
            self.put(f"{self._dir('hugetlb')}/hugetlb.{hp.page_size}.limit_in_bytes",
                     str(hp.limit))

    def _set_cpuset(self, cpu) -> None:
        if cpu.cpus:
            self.put(self._dir("cpuset") + "/cpuset.cpus", cpu.cpus)
        if cpu.mems:
            self.put(self._dir("cpuset") + "/cpuset.mems", cpu.mems)

    def _set_devices(self, rules) -> None:
        """One rule per write, in order. A leading deny-all writes "a" to devices.deny, which
        empties the exception list and makes the cgroup a whitelist (cgroup-v1/devices.rst)."""
        directory = self._dir("devices")
        for allow, line in device_writes(rules):
            self.put(f"{directory}/{'devices.allow' if allow else 'devices.deny'}", line)

    def _set_memory(self, mem) -> None:
        """memory.limit_in_bytes must never exceed memory.memsw.limit_in_bytes, so the order
        of the two writes depends on whether the limits grow or shrink (as in runc)."""
        limit, swap = mem.limit or None, mem.swap or None
        wants = (limit, swap, mem.reservation, mem.kernel_tcp, mem.swappiness, mem.use_hierarchy)
        if all(v is None for v in wants) and not mem.disable_oom_killer:
            return
        d = self._dir("memory")
        has_memsw = (limit == -1 or swap is not None) and os.path.exists(
            d + "/memory.memsw.limit_in_bytes")
        if limit == -1 and swap is None and has_memsw:
            swap = -1  # unlimited memory and no swap given: unlimited memory+swap too
        if not has_memsw:
            swap = None  # no swap accounting in this kernel: nothing to write
        if mem.check_before_update:
            self._check_usage(d + "/memory.usage_in_bytes", limit, swap)
        if limit is not None and swap is not None:
            current = parse_uint(self.get(d + "/memory.limit_in_bytes"))
            if swap == -1 or current < swap:  # growing: memsw first
                self.put(d + "/memory.memsw.limit_in_bytes", str(swap))
                self._set_limit(d, limit)
            else:  # shrinking: memory first
                self._set_limit(d, limit)
                self.put(d + "/memory.memsw.limit_in_bytes", str(swap))
        elif limit is not None:
            self._set_limit(d, limit)
        elif swap is not None:
            self.put(d + "/memory.memsw.limit_in_bytes", str(swap))
        if mem.reservation:
            self.put(d + "/memory.soft_limit_in_bytes", str(mem.reservation))
        # memory.kmem.limit_in_bytes (mem.kernel) is ignored, as runc does: the kernel
        # deprecated it in 5.4 and stopped honouring it in 6.x.
        if mem.kernel_tcp:
            self.put(d + "/memory.kmem.tcp.limit_in_bytes", str(mem.kernel_tcp))
        if mem.disable_oom_killer:
            self.put(d + "/memory.oom_control", "1")
        if mem.swappiness is not None:
            self.put(d + "/memory.swappiness", str(mem.swappiness))
        if mem.use_hierarchy is not None:
            self.put(d + "/memory.use_hierarchy", "1" if mem.use_hierarchy else "0")

    def _set_limit(self, d: str, limit: int) -> None:
        path = d + "/memory.limit_in_bytes"
        try:
            self.write(path, str(limit))
        except OSError as exc:
            err = cgroup_error(exc, path, str(limit))
            if exc.errno == errno.EBUSY:  # below what the cgroup already uses
                usage = self.get_optional(d + "/memory.usage_in_bytes")
                peak = self.get_optional(d + "/memory.max_usage_in_bytes")
                err = InvalidArgument(f"{path}: unable to set memory limit to {limit} (current "
                                      f"usage: {(usage or '?').strip()}, peak usage: "
                                      f"{(peak or '?').strip()})")
            raise err from None

    def _check_usage(self, usage_file: str, limit: int | None, swap: int | None) -> None:
        text = self.get_optional(usage_file)
        if text is None:
            return
        usage = parse_uint(text)
        for name, value in (("memory+swap limit", swap), ("memory limit", limit)):
            if value is not None and 0 < value <= usage:
                raise InvalidArgument(f"rejecting {name} {value} <= usage {usage}")

    def _set_cpu(self, cpu) -> None:
        if cpu.shares:
            self._set_shares(cpu.shares)
        # A period smaller than the current one can be refused (EINVAL) while the old quota
        # is in force; runc retries it after the quota. Same for burst.
        period_later = self._try_put("cpu", "cpu.cfs_period_us", cpu.period, cpu.quota)
        burst_later = self._try_put("cpu", "cpu.cfs_burst_us", cpu.burst, cpu.quota)
        if cpu.quota:
            self.put(self._dir("cpu") + "/cpu.cfs_quota_us", str(cpu.quota))
            if period_later:
                self.put(self._dir("cpu") + "/cpu.cfs_period_us", str(cpu.period))
            if burst_later:
                self.put(self._dir("cpu") + "/cpu.cfs_burst_us", str(cpu.burst))
        if cpu.realtime_period:
            self.put(self._dir("cpu") + "/cpu.rt_period_us", str(cpu.realtime_period))
        if cpu.realtime_runtime:
            self.put(self._dir("cpu") + "/cpu.rt_runtime_us", str(cpu.realtime_runtime))
        if cpu.idle is not None:
            self.put(self._dir("cpu") + "/cpu.idle", str(cpu.idle))

    def _try_put(self, controller: str, name: str, value: int | None, quota: int | None) -> bool:
        """Write ``value`` (period or burst); True if refused with EINVAL and worth retrying
        after the quota is written."""
        if value is None or (name == "cpu.cfs_period_us" and not value):
            return False
        path = f"{self._dir(controller)}/{name}"
        try:
            self.write(path, str(value))
            return False
        except OSError as exc:
            if exc.errno == errno.EINVAL and quota:
                return True
            raise cgroup_error(exc, path, str(value)) from None

    def _set_shares(self, shares: int) -> None:
        path = self._dir("cpu") + "/cpu.shares"
        self.put(path, str(shares))
        actual = parse_uint(self.get(path))  # the kernel clamps to [2, 262144]
        if shares > actual:
            raise InvalidArgument(f"{path}: the maximum allowed cpu-shares is {actual}")
        if shares < actual:
            raise InvalidArgument(f"{path}: the minimum allowed cpu-shares is {actual}")

    def _set_blkio(self, bio) -> None:
        if not (bio.weight or bio.leaf_weight or bio.weight_device or _throttles(bio)):
            return
        d = self._dir("blkio")
        # CFQ offers blkio.weight; without it (blk-mq) BFQ's blkio.bfq.weight is the knob.
        prefix = "blkio." if os.path.exists(d + "/blkio.weight") else "blkio.bfq."
        if bio.weight:
            self.put(f"{d}/{prefix}weight", str(bio.weight))
        if bio.leaf_weight:
            self.put(d + "/blkio.leaf_weight", str(bio.leaf_weight))
        for wd in bio.weight_device:
            if wd.weight is not None:
                self.put(f"{d}/{prefix}weight_device", f"{wd.major}:{wd.minor} {wd.weight}")
            if wd.leaf_weight is not None:
                self.put(d + "/blkio.leaf_weight_device",
                         f"{wd.major}:{wd.minor} {wd.leaf_weight}")
        for name, devices in _throttles(bio):
            for td in devices:
                self.put(f"{d}/blkio.throttle.{name}", f"{td.major}:{td.minor} {td.rate}")

    # -- freezer --------------------------------------------------------------------------

    def freeze(self, timeout: float = 10.0) -> None:
        """FROZEN, waiting until the kernel reports it. A v1 freeze can stick in FREEZING while
        tasks fork; like runc, re-request it and now and then thaw briefly. On failure the
        cgroup is thawed again rather than left half frozen."""
        state = self._dir("freezer") + "/freezer.state"
        attempts = [0]

        def reached() -> bool:
            attempts[0] += 1
            if attempts[0] % 50 == 0:
                self.put(state, "THAWED")
                self.sleep(0.01)
            self.put(state, "FROZEN")
            current = self.get(state).strip()
            if current not in ("FROZEN", "FREEZING"):
                raise System(f"{state}: unexpected state {current!r} while freezing")
            return current == "FROZEN"

        try:
            wait_until(reached, timeout, f"{state} to read FROZEN", self.sleep)
        except BaseException:
            try:
                self.put(state, "THAWED")
            except DockyardError:
                pass
            raise

    def thaw(self, timeout: float = 10.0) -> None:
        state = self._dir("freezer") + "/freezer.state"
        self.put(state, "THAWED")
        wait_until(lambda: self.get(state).strip() == "THAWED", timeout,
                   f"{state} to read THAWED", self.sleep)

    def frozen(self) -> bool:
        """Frozen by its own freezer.state (not merely through a frozen ancestor, as runc)."""
        d = self.paths.get("freezer")
        if d is None:
            return False
        path = d + "/freezer.state"
        state = (self.get_optional(path) or "").strip()
        if state == "FREEZING":  # in transition: wait briefly for a stable answer
            try:
                wait_until(lambda: (self.get_optional(path) or "").strip() != "FREEZING",
                           1.0, path, self.sleep)
            except System:
                return True  # stuck half way: its tasks do not run
            state = (self.get_optional(path) or "").strip()
        if state != "FROZEN":
            return False
        own = self.get_optional(d + "/freezer.self_freezing")
        return own is None or own.strip() == "1"

    # -- statistics -----------------------------------------------------------------------

    def oom_kill_count(self) -> int:
        if "memory" not in self.paths:
            return 0
        text = self.get_optional(self.paths["memory"] + "/memory.oom_control")
        return parse_flat(text or "").get("oom_kill", 0)

    def stats(self) -> dict:
        """runc's ``events --stats`` data object for this cgroup."""
        if not self.exists():
            raise NotFound(f"{self.path}: cgroup does not exist")
        out = empty_stats()
        self._stat_cpu(out["cpu"])
        self._stat_cpuset(out["cpuset"])
        self._stat_memory(out["memory"])
        self._stat_pids(out["pids"])
        self._stat_blkio(out["blkio"])
        self._stat_hugetlb(out["hugetlb"])
        return out

    def _file(self, controller: str, name: str) -> str | None:
        d = self.paths.get(controller)
        return None if d is None else self.get_optional(f"{d}/{name}")

    def _stat_cpu(self, cpu: dict) -> None:
        usage = cpu["usage"]
        text = self._file("cpuacct", "cpuacct.stat")
        if text is not None:
            ticks = parse_flat(text)
            usage["user"] = ticks.get("user", 0) * _NS_PER_SEC // _CLOCK_TICKS
            usage["kernel"] = ticks.get("system", 0) * _NS_PER_SEC // _CLOCK_TICKS
        total = self._file("cpuacct", "cpuacct.usage")
        put_nonzero(usage, "total", parse_uint(total) if total else 0)
        percpu = self._file("cpuacct", "cpuacct.usage_percpu")
        put_nonzero(usage, "percpu", [int(v) for v in (percpu or "").split()])
        kernel, user = _usage_all(self._file("cpuacct", "cpuacct.usage_all") or "")
        put_nonzero(usage, "percpu_kernel", kernel)
        put_nonzero(usage, "percpu_user", user)
        stat = parse_flat(self._file("cpu", "cpu.stat") or "")
        put_nonzero(cpu["throttling"], "periods", stat.get("nr_periods", 0))
        put_nonzero(cpu["throttling"], "throttledPeriods", stat.get("nr_throttled", 0))
        put_nonzero(cpu["throttling"], "throttledTime", stat.get("throttled_time", 0))

    def _stat_cpuset(self, cpuset: dict) -> None:
        if "cpuset" not in self.paths:
            return
        found = {}
        for key in _CPUSET_KEYS:
            text = self._file("cpuset", "cpuset." + key)
            if text and text.strip():
                found[key] = parse_cpu_list(text) if key in ("cpus", "mems") else int(text)
        cpuset.clear()  # refill in Go's field order: cpus and mems are omitempty
        for key in _CPUSET_KEYS:
            if key in found or key not in ("cpus", "mems"):
                cpuset[key] = found.get(key, 0)

    def _stat_memory(self, memory: dict) -> None:
        if "memory" not in self.paths:
            return
        raw = parse_flat(self._file("memory", "memory.stat") or "")
        cache = raw.get("cache", 0)
        usage = self._memory_entry("memory")
        swap = self._memory_entry("memory.memsw")
        kernel = self._memory_entry("memory.kmem")
        kernel_tcp = self._memory_entry("memory.kmem.tcp")
        memory.clear()
        put_nonzero(memory, "cache", cache)
        memory.update(usage=usage, swap=swap, kernel=kernel, kernelTCP=kernel_tcp)
        put_nonzero(memory, "raw", raw)

    def _memory_entry(self, prefix: str) -> dict:
        values = []
        for suffix in ("limit_in_bytes", "usage_in_bytes", "max_usage_in_bytes", "failcnt"):
            text = self._file("memory", f"{prefix}.{suffix}")
            values.append(parse_uint(text) if text and text.strip() else 0)
        return memory_entry(*values)

    def _stat_pids(self, pids: dict) -> None:
        current = self._file("pids", "pids.current")
        limit = self._file("pids", "pids.max")
        put_nonzero(pids, "current", parse_uint(current) if current else 0)
        if limit and limit.strip() != "max":
            put_nonzero(pids, "limit", parse_uint(limit))

    def _stat_blkio(self, blkio: dict) -> None:
        """runc's order of preference: BFQ (debug, then plain), CFQ, throttling (recursive,
        then local). The first group whose first file has entries wins."""
        if "blkio" not in self.paths:
            return
        for group in _BLKIO_GROUPS:
            first = self._blkio_file(group[0][0])
            if not first:
                continue
            blkio[group[0][1]] = first
            for name, key in group[1:]:
                entries = self._blkio_file(name)
                if entries:
                    blkio[key] = entries
            ordered = {k: blkio[k] for k in _BLKIO_KEYS if k in blkio}
            blkio.clear()
            blkio.update(ordered)
            return

    def _blkio_file(self, name: str) -> list[dict]:
        entries = []
        for line in (self._file("blkio", name) or "").splitlines():
            fields = line.replace(":", " ").split()
            if len(fields) < 3:
                continue  # "Total N"
            op = fields[2] if len(fields) == 4 else ""
            entries.append(blkio_entry(int(fields[0]), int(fields[1]), op, int(fields[-1])))
        return entries

    def _stat_hugetlb(self, hugetlb: dict) -> None:
        d = self.paths.get("hugetlb")
        if d is None:
            return
        try:
            names = os.listdir(d)
        except OSError:
            return
        for name in sorted(names):
            if not name.startswith("hugetlb.") or not name.endswith(".usage_in_bytes") \
                    or ".rsvd." in name:
                continue
            size = name[len("hugetlb."):-len(".usage_in_bytes")]
            values = [self._file("hugetlb", f"hugetlb.{size}.{s}")
                      for s in ("usage_in_bytes", "max_usage_in_bytes", "failcnt")]
            usage, peak, failcnt = (parse_uint(v) if v else 0 for v in values)
            entry: dict = {}
            put_nonzero(entry, "usage", usage)
            put_nonzero(entry, "max", peak)
            entry["failcnt"] = failcnt
            hugetlb[size] = entry


def device_writes(rules) -> list[tuple[bool, str]]:
    """(allow, line) for each rule, in order, leaving out a rule that cannot change anything:
    one written before, of the same kind for the same device, with no "a" rule (which resets
    the list) and no rule of the other kind for that device in between. The kernel keeps one
    exception per type:major:minor and merges or removes access bits on it, so such a rule
    finds its bits already there (or already gone). Docker's default rules, with runc's
    default devices appended, repeat seven of them."""
    return [(bool(rules[i].allow), line) for i, line in _needed_rules(tuple(rules))]


def _needed_rules(rules: tuple) -> list[tuple[int, str]]:
    """(index, line) of the rules `device_writes` keeps."""
    out: list[tuple[int, str]] = []
    seen: set[tuple[bool, str]] = set()
    for i, rule in enumerate(rules):
        line = device_rule(rule)
        allow = bool(rule.allow)
        if line.startswith("a "):
            seen.clear()
        elif (allow, line) in seen:
            continue
        else:
            device = line.rpartition(" ")[0]
            seen = {(a, ln) for a, ln in seen if a == allow or ln.rpartition(" ")[0] != device}
            seen.add((allow, line))
        out.append((i, line))
    return out


def device_rule(rule) -> str:
    """A devices.allow/deny line: ``c 1:3 rwm``, ``*`` for a missing major or minor, ``a``
    for all devices (cgroup-v1/devices.rst)."""
    kind = rule.type or "a"
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{kind} {major}:{minor} {rule.access or 'rwm'}"


def _throttles(bio) -> list:
    pairs = [("read_bps_device", bio.throttle_read_bps_device),
             ("write_bps_device", bio.throttle_write_bps_device),
             ("read_iops_device", bio.throttle_read_iops_device),
             ("write_iops_device", bio.throttle_write_iops_device)]
    return [(name, devices) for name, devices in pairs if devices]


def _usage_all(text: str) -> tuple[list[int], list[int]]:
    """cpuacct.usage_all: a header, then ``cpu user system`` per line (nanoseconds)."""
    kernel, user = [], []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3:
            user.append(int(fields[1]))
            kernel.append(int(fields[2]))
    return kernel, user


_CPUSET_KEYS = ("cpus", "cpu_exclusive", "mems", "mem_hardwall", "mem_exclusive",
                "memory_migrate", "memory_spread_page", "memory_spread_slab", "memory_pressure",
                "sched_load_balance", "sched_relax_domain_level")
_BLKIO_KEYS = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive",
               "ioServiceTimeRecursive", "ioWaitTimeRecursive", "ioMergedRecursive",
               "ioTimeRecursive", "sectorsRecursive")


def _cfq_group(prefix: str) -> tuple:
    return ((f"{prefix}sectors_recursive", "sectorsRecursive"),
            (f"{prefix}io_service_time_recursive", "ioServiceTimeRecursive"),
            (f"{prefix}io_wait_time_recursive", "ioWaitTimeRecursive"),
            (f"{prefix}io_merged_recursive", "ioMergedRecursive"),
            (f"{prefix}io_queued_recursive", "ioQueueRecursive"),
            (f"{prefix}time_recursive", "ioTimeRecursive"),
            (f"{prefix}io_serviced_recursive", "ioServicedRecursive"),
            (f"{prefix}io_service_bytes_recursive", "ioServiceBytesRecursive"))


_BLKIO_GROUPS = (
    _cfq_group("blkio.bfq."),
    (("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    _cfq_group("blkio."),
    (("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.throttle.io_serviced", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")),
)
