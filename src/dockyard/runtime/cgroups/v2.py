"""The cgroup v2 manager: one directory in the unified hierarchy.

Owns how OCI ``linux.resources`` (written for v1) map onto v2 interface files, following
Documentation/admin-guide/cgroup-v2.rst and runc's conversions (libcontainer/cgroups/fs2);
enabling controllers down the tree through ``cgroup.subtree_control``; the v2 freezer
(``cgroup.freeze`` / ``cgroup.events``); v2 statistics in runc's ``events --stats`` shape.
Writes only the files a given resource value needs; every write goes through ``self.write``.

Device rules become an eBPF program (devices.py) that bpf.py attaches; both are imported only
when a container has device rules. Must not import anything but os, errno, time and dockyard modules (start-up time).
"""

from __future__ import annotations

import errno
import os

from dockyard.errdefs import DockyardError, InvalidArgument, NotFound, Unavailable
from dockyard.runtime.cgroups.common import (
    MAX_UINT64, CgroupManager, blkio_entry, cgroup_error, empty_stats, memory_entry,
    parse_flat, parse_psi, parse_uint, put_nonzero, read_pids, remove_cgroup, wait_until,
)

_DEFAULT_PERIOD = 100000  # cpu.max's default $PERIOD (cgroup-v2.rst, "CPU Interface Files")


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000], linearly, as runc converts."""
    return 1 + ((shares - 2) * 9999) // 262142 if shares else 0


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000], linearly, as runc converts."""
    return 1 + ((weight - 10) * 9999) // 990 if weight else 0


def swap_max(swap: int, limit: int) -> int | None:
    """OCI memory.swap counts memory+swap; v2's memory.swap.max counts swap alone.

    Returns the memory.swap.max value (-1 for "max"), or None when nothing is to be written.
    ``limit`` is the memory limit in force (-1 for unlimited). Mirrors runc's
    ConvertMemorySwapToCgroupV2Value.
    """
    if swap == 0:
        return -1 if limit == -1 else None
    if swap == -1 or limit == -1:
        return swap
    if limit == 0:
        raise InvalidArgument("linux.resources.memory.swap: cannot set a swap limit without a "
                              "memory limit")
    if limit < 0:
        raise InvalidArgument(f"linux.resources.memory.limit: invalid value {limit}")
    if swap < limit:
        raise InvalidArgument("linux.resources.memory.swap: memory+swap limit must be at least "
                              "the memory limit")
    return swap - limit


def _num(value: int) -> str:
    """-1 (v1's "no limit") is "max" in v2's .max/.low/.high files."""
    return "max" if value == -1 else str(value)


class V2Manager(CgroupManager):
    """A container's cgroup in the unified hierarchy mounted at ``root``."""

    version = 2

    def __init__(self, root: str, path: str) -> None:
        super().__init__()
        self.root = root.rstrip("/") or "/"
        self.path = path if path.startswith("/") else "/" + path
        self.dir = self.root + self.path
        self.paths = {"": self.dir}
        self.bpf = None  # the device-filter loader (bpf.DeviceFilterLoader), made when needed

    def __repr__(self) -> str:
        return f"V2Manager(root={self.root!r}, path={self.path!r})"

    # -- lifecycle ------------------------------------------------------------------------

    def create(self) -> None:
        """mkdir each level, enabling every available controller in each ancestor's
        cgroup.subtree_control (not the leaf's: a cgroup with controllers enabled for its
        children may not hold processes, the "no internal process" rule)."""
        available = self.get(self.root + "/cgroup.controllers").split()
        enable = " ".join("+" + c for c in available)
        current = self.root
        for part in self.path.strip("/").split("/"):
            if enable:
                self._enable(current, enable)
            current = f"{current}/{part}"
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                raise cgroup_error(exc, current) from None

    def _enable(self, directory: str, enable: str) -> None:
        """All at once; if one is refused (not available there), each on its own. A controller
        left disabled surfaces later as a missing file when a limit needs it."""
        target = directory + "/cgroup.subtree_control"
        try:
            self.write(target, enable)
        except OSError:
            for one in enable.split():
                try:
                    self.write(target, one)
                except OSError:
                    pass

    def add(self, pid: int) -> None:
        self.add_pid(self.dir, pid)

    def add_self(self) -> None:
        """Move the calling process in (v2 has no per-thread shortcut outside threaded trees)."""
        self.add_pid(self.dir, os.getpid())

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        remove_cgroup(self.dir)

    def pids(self) -> list[int]:
        return sorted(read_pids(self.dir, self.read))

    # -- limits ---------------------------------------------------------------------------

    def set(self, resources) -> None:
        """Apply a LinuxResources (create and `update`); None fields are left as they are.

        ``devices`` become an eBPF device program replacing any attached before. Not applied
        on v2: memory ``kernel``/``kernelTCP``/``swappiness``/``disableOOMKiller``/
        ``useHierarchy`` and blockIO ``leafWeight`` (no v2 interface files; runc ignores them
        too). Realtime CPU settings are refused: v2 has no RT group scheduling interface.
        """
        if resources is None:
            return
        if resources.pids is not None:
            limit = resources.pids.limit
            self.put(self.dir + "/pids.max", str(limit) if limit > 0 else "max")
        if resources.memory is not None:
            self._set_memory(resources.memory)
        if resources.block_io is not None:
            self._set_io(resources.block_io)
        if resources.cpu is not None:
            self._set_cpu(resources.cpu)
        if resources.devices:
            self._set_devices(resources.devices)
        for hp in resources.hugepage_limits:
            self.put(f"{self.dir}/hugetlb.{hp.page_size}.max", str(hp.limit))
        if resources.unified:
            self._set_unified(resources.unified)

    def _set_devices(self, rules) -> None:
        from dockyard.runtime.cgroups.devices import device_program

        program = device_program(rules)
        if self.bpf is None:
            from dockyard.linux.bpf import DeviceFilterLoader

            self.bpf = DeviceFilterLoader()
        self.bpf.attach(self.dir, program)

    def _set_memory(self, mem) -> None:
        limit, swap, low = mem.limit or 0, mem.swap or 0, mem.reservation or 0
        if not (limit or swap or low):
            return
        if mem.check_before_update:
            self._check_usage(limit, swap)
        if swap and not limit:  # swap alone (an update): convert against the limit in force
            current = self.get(self.dir + "/memory.max").strip()
            swap_value = swap_max(swap, -1 if current == "max" else int(current))
        else:
            swap_value = swap_max(swap, limit)
        if swap_value is not None:
            path = self.dir + "/memory.swap.max"
            try:
                self.write(path, _num(swap_value))
            except FileNotFoundError:
                pass  # no swap accounting in this kernel: nothing to limit
            except OSError as exc:
                raise cgroup_error(exc, path, _num(swap_value)) from None
        if limit:
            self.put(self.dir + "/memory.max", _num(limit))
        if low:
            self.put(self.dir + "/memory.low", _num(low))

    def _check_usage(self, limit: int, swap: int) -> None:
        text = self.get_optional(self.dir + "/memory.current")
        if text is None:
            return
        usage = parse_uint(text)
        for name, value in (("memory+swap limit", swap), ("memory limit", limit)):
            if 0 < value <= usage:
                raise InvalidArgument(f"rejecting {name} {value} <= usage {usage}")

    def _set_cpu(self, cpu) -> None:
        if cpu.realtime_runtime or cpu.realtime_period:
            raise InvalidArgument("linux.resources.cpu: realtime settings are not supported "
                                  "on cgroup v2")
        if cpu.shares:
            self.put(self.dir + "/cpu.weight", str(shares_to_weight(cpu.shares)))
        burst_later = False
        if cpu.burst is not None:
            path = self.dir + "/cpu.max.burst"
            try:
                self.write(path, str(cpu.burst))
            except OSError as exc:
                # a burst above the old quota is refused until the new quota is in place
                if exc.errno != errno.EINVAL or not cpu.quota:
                    raise cgroup_error(exc, path, str(cpu.burst)) from None
                burst_later = True
        if cpu.quota or cpu.period:
            self.put(self.dir + "/cpu.max", self._cpu_max(cpu.quota, cpu.period))
        if burst_later:
            self.put(self.dir + "/cpu.max.burst", str(cpu.burst))
        if cpu.idle is not None:
            self.put(self.dir + "/cpu.idle", str(cpu.idle))
        if cpu.cpus:
            self.put(self.dir + "/cpuset.cpus", cpu.cpus)
        if cpu.mems:
            self.put(self.dir + "/cpuset.mems", cpu.mems)

    def _cpu_max(self, quota: int | None, period: int | None) -> str:
        """cpu.max is "$MAX $PERIOD"; $MAX is required, so a period alone keeps the quota in
        force, and a quota alone keeps the period (writing only $MAX updates only it)."""
        if not quota:
            current = self.get(self.dir + "/cpu.max").split()
            return f"{current[0] if current else 'max'} {period}"
        text = "max" if quota < 0 else str(quota)
        return f"{text} {period}" if period else text

    def _set_io(self, bio) -> None:
        if bio.weight:
            self._io_weight("", bio.weight)
        for wd in bio.weight_device:
            if wd.weight:
                self._io_weight(f"{wd.major}:{wd.minor} ", wd.weight)
        for key, devices in (("rbps", bio.throttle_read_bps_device),
                             ("wbps", bio.throttle_write_bps_device),
                             ("riops", bio.throttle_read_iops_device),
                             ("wiops", bio.throttle_write_iops_device)):
            for td in devices:
                # 0 removed a v1 throttle; v2 spells "no limit" as max (0 is refused)
                rate = str(td.rate) if td.rate > 0 else "max"
                self.put(self.dir + "/io.max", f"{td.major}:{td.minor} {key}={rate}")

    def _io_weight(self, device: str, weight: int) -> None:
        """BFQ takes the v1 range [1, 1000] in io.bfq.weight; without BFQ, io.weight (iocost)
        takes [1, 10000] as "default $W" or "$MAJ:$MIN $W"."""
        path = self.dir + "/io.bfq.weight"
        try:
            self.write(path, f"{device}{weight}")
            return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise cgroup_error(exc, path, f"{device}{weight}") from None
        self.put(self.dir + "/io.weight", f"{device or 'default '}{blkio_to_io_weight(weight)}")

    def _set_unified(self, unified: dict[str, str]) -> None:
        """Raw v2 files by name, one line per write (multi-line values such as io.max)."""
        for key, value in unified.items():
            if not key or "/" in key or key in (".", ".."):
                raise InvalidArgument(f"linux.resources.unified: {key!r} must be a file name")
            path = f"{self.dir}/{key}"
            lines = value.split("\n")
            for line in lines if len(lines) == 1 else [ln for ln in lines if ln]:
                try:
                    self.write(path, line)
                except OSError as exc:
                    raise self._unified_error(key, path, line, exc) from None

    def _unified_error(self, key: str, path: str, line: str, exc: OSError) -> DockyardError:
        if exc.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
            controller = key.partition(".")[0]
            enabled = (self.get_optional(self.dir + "/cgroup.controllers") or "").split()
            if controller not in enabled and controller != "cgroup":
                return Unavailable(f"linux.resources.unified: {key!r} cannot be set: "
                                   f"controller {controller!r} is not available")
        return cgroup_error(exc, path, line)

    # -- freezer --------------------------------------------------------------------------

    def freeze(self, timeout: float = 10.0) -> None:
        """Write 1 to cgroup.freeze, then wait for cgroup.events to say "frozen 1" (the
        freeze completes asynchronously). On failure, thaw again rather than stay half frozen."""
        self.put(self.dir + "/cgroup.freeze", "1")
        try:
            wait_until(lambda: self._events().get("frozen") == 1, timeout,
                       f"{self.dir}/cgroup.events to read frozen 1", self.sleep)
        except BaseException:
            try:
                self.put(self.dir + "/cgroup.freeze", "0")
            except DockyardError:
                pass
            raise

    def thaw(self, timeout: float = 10.0) -> None:
        self.put(self.dir + "/cgroup.freeze", "0")
        wait_until(lambda: self._events().get("frozen") == 0, timeout,
                   f"{self.dir}/cgroup.events to read frozen 0", self.sleep)

    def frozen(self) -> bool:
        """Frozen by its own cgroup.freeze (not merely through a frozen ancestor, as runc)."""
        return (self.get_optional(self.dir + "/cgroup.freeze") or "").strip() == "1"

    def _events(self) -> dict[str, int]:
        return parse_flat(self.get(self.dir + "/cgroup.events"))

    # -- statistics -----------------------------------------------------------------------

    def oom_kill_count(self) -> int:
        """oom_kill in memory.events (which counts the sub-cgroups too)."""
        return parse_flat(self.get_optional(self.dir + "/memory.events") or "").get("oom_kill", 0)

    def _file(self, name: str) -> str | None:
        return self.get_optional(f"{self.dir}/{name}")

    def stats(self) -> dict:
        """runc's ``events --stats`` data object for this cgroup, v2 files mapped onto the
        v1-shaped fields as runc maps them."""
        if not self.exists():
            raise NotFound(f"{self.path}: cgroup does not exist")
        out = empty_stats()
        self._stat_cpu(out["cpu"])
        self._stat_memory(out["memory"])
        self._stat_pids(out["pids"])
        self._stat_io(out["blkio"])
        self._stat_hugetlb(out["hugetlb"])
        return out

    def _psi(self, name: str, target: dict) -> None:
        text = self._file(name)
        if text:
            target["psi"] = parse_psi(text)

    def _stat_cpu(self, cpu: dict) -> None:
        stat = parse_flat(self._file("cpu.stat") or "")
        usage = {}
        put_nonzero(usage, "total", stat.get("usage_usec", 0) * 1000)
        usage["kernel"] = stat.get("system_usec", 0) * 1000
        usage["user"] = stat.get("user_usec", 0) * 1000
        cpu["usage"] = usage
        put_nonzero(cpu["throttling"], "periods", stat.get("nr_periods", 0))
        put_nonzero(cpu["throttling"], "throttledPeriods", stat.get("nr_throttled", 0))
        put_nonzero(cpu["throttling"], "throttledTime", stat.get("throttled_usec", 0) * 1000)
        self._psi("cpu.pressure", cpu)

    def _stat_memory(self, memory: dict) -> None:
        current = self._file("memory.current")
        if current is None:
            return  # memory controller not enabled here
        raw = parse_flat(self._file("memory.stat") or "")
        usage = parse_uint(current)
        limit = self._uint("memory.max")
        swap_usage = self._uint("memory.swap.current")
        swap_limit = self._uint("memory.swap.max")
        # v1 reported swap as memory+swap; runc keeps that meaning on v2
        if swap_limit != MAX_UINT64:
            swap_limit = min(swap_limit + limit, MAX_UINT64)
        memory.clear()
        put_nonzero(memory, "cache", raw.get("file", 0))
        memory["usage"] = memory_entry(limit, usage, self._uint("memory.peak"))
        memory["swap"] = memory_entry(swap_limit, swap_usage + usage)
        memory["kernel"] = memory_entry()
        memory["kernelTCP"] = memory_entry()
        put_nonzero(memory, "raw", raw)
        self._psi("memory.pressure", memory)

    def _uint(self, name: str) -> int:
        text = self._file(name)
        return parse_uint(text) if text and text.strip() else 0

    def _stat_pids(self, pids: dict) -> None:
        current = self._file("pids.current")
        if current is None:  # pids controller not enabled: count the members instead
            put_nonzero(pids, "current", len((self._file("cgroup.procs") or "").split()))
            return
        put_nonzero(pids, "current", parse_uint(current))
        limit = (self._file("pids.max") or "max").strip()
        if limit != "max":
            put_nonzero(pids, "limit", int(limit))

    def _stat_io(self, blkio: dict) -> None:
        """io.stat's rbytes/wbytes and rios/wios as v1's io_service_bytes / io_serviced."""
        tables: dict[str, list] = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
        names = {"rbytes": ("ioServiceBytesRecursive", "Read"),
                 "wbytes": ("ioServiceBytesRecursive", "Write"),
                 "rios": ("ioServicedRecursive", "Read"), "wios": ("ioServicedRecursive", "Write")}
        for line in (self._file("io.stat") or "").splitlines():
            device, *fields = line.split()
            major, _, minor = device.partition(":")
            for field in fields:
                key, _, value = field.partition("=")
                if key in names:
                    table, op = names[key]
                    tables[table].append(blkio_entry(int(major), int(minor), op, int(value)))
        for table, entries in tables.items():
            put_nonzero(blkio, table, entries)
        self._psi("io.pressure", blkio)

    def _stat_hugetlb(self, hugetlb: dict) -> None:
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in sorted(names):
            if not name.startswith("hugetlb.") or not name.endswith(".current") \
                    or ".rsvd." in name:
                continue
            size = name[len("hugetlb."):-len(".current")]
            entry: dict = {}
            put_nonzero(entry, "usage", self._uint(name))
            events = parse_flat(self._file(f"hugetlb.{size}.events") or "")
            entry["failcnt"] = events.get("max", 0)
            hugetlb[size] = entry

