"""`docker stats`: Docker's stats document from the container's cgroup and network namespace.

Owns sampling (the runtime's cgroup managers read v1 or v2 into runc's stats shape; the host's
/proc/stat gives system CPU time; /proc/<init pid>/net/dev the container's interfaces) and
turning a sample into moby's StatsResponse (daemon/stats_unix.go statsV1 / statsV2): the
shapes the docker CLI computes CPU % and memory usage from. Pure conversion (`to_docker`,
`parse_net_dev`, `parse_proc_stat`) is apart from reading, and tested on fake trees.

Streams tick once a second, as dockerd's collector does; a one-shot answer without
``one-shot`` waits one tick so that ``precpu_stats`` is a real earlier sample.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator

from dockyard.engine.containerfs import rfc3339_nano

INTERVAL = 1.0
ZERO_TIME = "0001-01-01T00:00:00Z"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_NS = 1_000_000_000


def parse_proc_stat(text: str) -> int:
    """System CPU time in ns: the first ``cpu`` line's user..steal (moby getSystemCPUUsage)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = sum(int(v) for v in fields[1:8])
            return ticks * _NS // _CLK_TCK
    return 0


def parse_net_dev(text: str, skip: tuple[str, ...] = ("lo",)) -> dict:
    """/proc/net/dev as Docker's ``networks`` map (loopback left out, as libnetwork does)."""
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or name in skip:
            continue
        v = [int(x) for x in rest.split()]
        if len(v) < 12:
            continue
        out[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                     "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return out


def _blkio_list(entries, v2: bool) -> list | None:
    """v1: every list present (empty when the file is), as moby's copyBlkioEntry makes them;
    v2: only what io.stat gives, lower-case ops, null otherwise (moby statsV2)."""
    if v2 and not entries:
        return None
    return [{"major": e.get("major", 0), "minor": e.get("minor", 0),
             "op": e.get("op", "").lower() if v2 else e.get("op", ""), "value": e.get("value", 0)}
            for e in entries or ()]


_BLKIO_KEYS = (("io_service_bytes_recursive", "ioServiceBytesRecursive"),
               ("io_serviced_recursive", "ioServicedRecursive"),
               ("io_queue_recursive", "ioQueueRecursive"),
               ("io_service_time_recursive", "ioServiceTimeRecursive"),
               ("io_wait_time_recursive", "ioWaitTimeRecursive"),
               ("io_merged_recursive", "ioMergedRecursive"),
               ("io_time_recursive", "ioTimeRecursive"),
               ("sectors_recursive", "sectorsRecursive"))


def empty_cpu() -> dict:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def cpu_stats(raw: dict, *, v2: bool, system_cpu: int, online_cpus: int) -> dict:
    cpu = raw.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    cpu_usage = {"total_usage": usage.get("total", 0)}
    if not v2 and usage.get("percpu"):
        cpu_usage["percpu_usage"] = usage["percpu"]
    cpu_usage["usage_in_kernelmode"] = usage.get("kernel", 0)
    cpu_usage["usage_in_usermode"] = usage.get("user", 0)
    return {"cpu_usage": cpu_usage, "system_cpu_usage": system_cpu, "online_cpus": online_cpus,
            "throttling_data": {"periods": throttling.get("periods", 0),
                                "throttled_periods": throttling.get("throttledPeriods", 0),
                                "throttled_time": throttling.get("throttledTime", 0)}}


# the memory.stat keys moby reports (containerd's MemoryStat fields), in its order
_V1_MEMORY_KEYS = tuple(
    f"{prefix}{k}" for prefix in ("", "total_") for k in (
        "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
        "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
        "unevictable") + (("hierarchical_memory_limit", "hierarchical_memsw_limit") if not prefix
                          else ()))
_V2_MEMORY_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault",
    "workingset_refault", "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan",
    "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc",
    "thp_collapse_alloc")


def memory_stats(raw: dict, *, v2: bool, host_memory: int) -> dict:
    mem = raw.get("memory") or {}
    usage = mem.get("usage") or {}
    limit = usage.get("limit", 0)
    if host_memory and (limit == 0 or limit > host_memory):
        limit = host_memory  # no limit set: the machine's memory, as dockerd reports
    # every field is omitempty in moby's MemoryStats; v2 has no max_usage nor failcnt
    out: dict = {}
    for key, value in (("usage", usage.get("usage", 0)),
                       ("max_usage", 0 if v2 else usage.get("max", 0)),
                       ("stats", {k: (mem.get("raw") or {}).get(k, 0)
                                  for k in (_V2_MEMORY_KEYS if v2 else _V1_MEMORY_KEYS)}),
                       ("failcnt", 0 if v2 else usage.get("failcnt", 0)), ("limit", limit)):
        if value:
            out[key] = value
    return out


def to_docker(raw: dict, *, v2: bool, name: str, cid: str, read_ns: int, system_cpu: int,
              online_cpus: int, host_memory: int, networks: dict | None,
              previous: dict | None = None) -> dict:
    """moby's StatsResponse for one sample; ``previous`` is the last document of the stream
    (its cpu_stats and read time become precpu_stats and preread)."""
    pids = raw.get("pids") or {}
    pids_stats = {"current": pids.get("current", 0)}
    if pids.get("limit"):
        pids_stats["limit"] = pids["limit"]
    blkio = raw.get("blkio") or {}
    doc = {
        "name": "/" + name, "id": cid,
        "read": rfc3339_nano(read_ns),
        "preread": previous["read"] if previous else ZERO_TIME,
        "pids_stats": pids_stats,
        "blkio_stats": {ours: _blkio_list(blkio.get(theirs), v2) for ours, theirs in _BLKIO_KEYS},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu_stats(raw, v2=v2, system_cpu=system_cpu, online_cpus=online_cpus),
        "precpu_stats": previous["cpu_stats"] if previous else empty_cpu(),
        "memory_stats": memory_stats(raw, v2=v2, host_memory=host_memory),
    }
    if networks is not None:
        doc["networks"] = networks
    return doc


def empty_document(name: str, cid: str) -> dict:
    """What dockerd answers for a container that is not running: everything zero."""
    return {"name": "/" + name, "id": cid, "read": ZERO_TIME, "preread": ZERO_TIME,
            "pids_stats": {}, "blkio_stats": {k: None for k, _ in _BLKIO_KEYS}, "num_procs": 0,
            "storage_stats": {}, "cpu_stats": empty_cpu(), "precpu_stats": empty_cpu(),
            "memory_stats": {}}


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def host_memory() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def container_cgroup(containers, c):
    """The runtime's cgroup manager for a running container (its bundle's cgroupsPath)."""
    from dockyard.runtime.cgroups import cgroup_manager

    with open(os.path.join(containers.exec_dir, c.id, "config.json")) as f:
        path = (json.load(f).get("linux") or {}).get("cgroupsPath")
    return cgroup_manager(path, c.id)


class StatsService:
    def __init__(self, containers) -> None:
        self.containers = containers
        self._host_memory = host_memory()
        self._online = os.cpu_count() or 1

    def sample(self, c, previous: dict | None) -> dict:
        """One document (thread side). NotFound when the cgroup is gone (it just exited)."""
        mgr = container_cgroup(self.containers, c)
        raw = mgr.stats()
        networks = None
        if (c.host_config.get("NetworkMode") or "") not in ("host", "none"):
            # the container's own namespace (host mode would show the host's interfaces;
            # dockerd reports none for host and none)
            try:
                networks = parse_net_dev(_read(f"/proc/{c.state.Pid}/net/dev"))
            except OSError:
                networks = None
        return to_docker(raw, v2=type(mgr).__name__ == "V2Manager", name=c.name, cid=c.id,
                         read_ns=time.time_ns(), system_cpu=parse_proc_stat(_read("/proc/stat")),
                         online_cpus=self._online, host_memory=self._host_memory,
                         networks=networks, previous=previous)

    async def stream(self, ref: str, *, stream: bool, one_shot: bool) -> AsyncIterator[dict]:
        from dockyard.errdefs import NotFound

        c = self.containers.get(ref)
        if not c.state.Running:
            yield empty_document(c.name, c.id)
            return
        previous = None
        first = True
        while c.state.Running:
            try:
                doc = await asyncio.to_thread(self.sample, c, previous)
            except (NotFound, FileNotFoundError):
                break  # it exited between the check and the read
            if stream or one_shot or not first:
                yield doc
                if not stream:
                    return
            previous, first = doc, False
            await asyncio.sleep(INTERVAL)
        if first or stream is False:
            yield empty_document(c.name, c.id)
