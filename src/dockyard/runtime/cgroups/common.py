"""What the v1 and v2 cgroup managers share: file I/O, errors, paths, removal, stats shapes.

Owns the one function that writes a cgroup file (`write_file`) and the one that reads one
(`read_file`); managers hold them as attributes so tests substitute recorders and run against a
fake tree under tmp_path. Also owns: how an OCI ``cgroupsPath`` becomes a path inside a hierarchy
(`resolve_path`), the mapping of OSError to error categories (`cgroup_error`), recursive rmdir
with EBUSY retries, and the skeleton of runc's ``events --stats`` JSON (runc ``types/events.go``).

Imports only os, errno, time and dockyard modules: the runtime's start-up budget is tens of
milliseconds. It must not know which controllers exist; that is v1.py's and v2.py's business.
"""

from __future__ import annotations

import errno
import os
import time

from dockyard.errdefs import Conflict, InvalidArgument, NotFound, System, Unavailable

DEFAULT_PARENT = "/dockyard"
MAX_UINT64 = (1 << 64) - 1

# errnos with which the kernel rejects a value it does not accept (not a fault of ours)
_REJECTED = frozenset((errno.EINVAL, errno.ERANGE, errno.EBUSY, errno.EOVERFLOW, errno.ENOSPC))


# -- the one writer, the one reader -------------------------------------------------------

def write_file(path: str, data: str) -> None:
    """Write ``data`` to the cgroup file ``path`` in one write(2), as cgroupfs requires.

    Never creates a file: a missing knob is an error (ENOENT), not a new regular file.
    Raises plain OSError; managers turn it into a category with `cgroup_error`.
    """
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    """The whole content of a cgroup file (they are small and read in one go)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)
    finally:
        os.close(fd)


def cgroup_error(exc: OSError, path: str, value: str | None = None) -> Exception:
    """The error category for a failed cgroup file operation, naming the file (and value)."""
    what = f"{path}: " if value is None else f"{path}: writing {value!r}: "
    msg = what + (exc.strerror or str(exc))
    if exc.errno in _REJECTED:
        return InvalidArgument(msg)
    if exc.errno == errno.ENOENT:
        directory = path.rpartition("/")[0]
        if directory and not os.path.isdir(directory):
            return NotFound(f"{directory}: cgroup does not exist")
        return Unavailable(msg + " (the kernel does not offer this cgroup file)")
    return System(msg)


# -- paths --------------------------------------------------------------------------------

def resolve_path(cgroups_path: str | None, container_id: str) -> tuple[str, bool]:
    """``(path, relative)`` for an OCI linux.cgroupsPath.

    None or "" -> ``/dockyard/<id>``; ``slice:prefix:name`` (the form dockerd's systemd cgroup
    driver passes) -> ``<expanded slice>/<prefix>-<name>.scope`` (absolute); an absolute path is
    taken from each hierarchy's root; a relative one is joined to the caller's own cgroup by
    the manager (``relative`` is True then).
    """
    if not cgroups_path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"container id {container_id!r} cannot name a cgroup")
        return f"{DEFAULT_PARENT}/{container_id}", False
    if not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
        return systemd_path(cgroups_path), False
    relative = not cgroups_path.startswith("/")
    return _clean(cgroups_path, relative), relative


def _clean(path: str, relative: bool) -> str:
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts or "\0" in path:
        raise InvalidArgument(f"linux.cgroupsPath: {path!r} must not contain '..'")
    if relative and not parts:
        raise InvalidArgument(f"linux.cgroupsPath: {path!r} names no cgroup")
    return "/".join(parts) if relative else "/" + "/".join(parts)


def systemd_path(spec: str) -> str:
    """``slice:prefix:name`` as a cgroupfs path, the way runc's systemd driver lays units out.

    A name ending in ``.slice`` is that slice itself; otherwise the unit is the scope
    ``<prefix>-<name>.scope`` inside the slice (``system.slice`` when the slice is empty).
    """
    slice_, prefix, name = spec.split(":")
    if not name:
        raise InvalidArgument(f"linux.cgroupsPath: {spec!r}: systemd form needs a name")
    if name.endswith(".slice"):
        return expand_slice(name)
    parent = expand_slice(slice_ or "system.slice")
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    if "/" in unit:
        raise InvalidArgument(f"linux.cgroupsPath: {spec!r}: unit name must not contain '/'")
    return parent.rstrip("/") + "/" + unit


def expand_slice(slice_: str) -> str:
    """systemd's slice nesting: ``a-b-c.slice`` -> ``/a.slice/a-b.slice/a-b-c.slice``."""
    suffix = ".slice"
    if not slice_.endswith(suffix) or len(slice_) <= len(suffix) or "/" in slice_:
        raise InvalidArgument(f"linux.cgroupsPath: invalid systemd slice name {slice_!r}")
    stem = slice_[: -len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for part in stem.split("-"):
        if not part:
            raise InvalidArgument(f"linux.cgroupsPath: invalid systemd slice name {slice_!r}")
        path += f"/{prefix}{part}{suffix}"
        prefix += part + "-"
    return path


def own_cgroups(proc_file: str = "/proc/self/cgroup") -> dict[str, str]:
    """This process's cgroup per controller: ``{"memory": "/a/b", "systemd": "/", "": "/"}``.

    Keys are v1 controller names (``name=systemd`` becomes ``systemd``); the v2 entry is "".
    """
    out: dict[str, str] = {}
    try:
        text = read_file(proc_file)
    except OSError as exc:
        raise cgroup_error(exc, proc_file) from None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if not parts[1]:
            out[""] = parts[2]
        for name in parts[1].split(","):
            out[name.removeprefix("name=")] = parts[2]
    return out


def join_path(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel


# -- directories --------------------------------------------------------------------------

def remove_cgroup(path: str, timeout: float = 2.0) -> None:
    """rmdir a cgroup and its sub-cgroups, retrying EBUSY (exiting tasks) until ``timeout``.

    A missing directory is success: destroy is idempotent.
    """
    try:
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
            raise cgroup_error(exc, path) from None
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    for child in children:
        remove_cgroup(child, timeout)
    _rmdir_retry(path, timeout)


def _rmdir_retry(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise cgroup_error(exc, path) from None
            if time.monotonic() >= deadline:
                raise Conflict(f"{path}: cgroup still has processes after {timeout}s") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def read_pids(directory: str, read: object = read_file) -> list[int]:
    """Every pid in the cgroup ``directory`` and its sub-cgroups (cgroup.procs, recursively)."""
    pids: list[int] = []
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            text = read(current + "/cgroup.procs")
        except FileNotFoundError:
            if current == directory:
                raise NotFound(f"{directory}: cgroup does not exist") from None
            continue
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:  # a threaded cgroup lists threads only
                raise cgroup_error(exc, current + "/cgroup.procs") from None
            text = read(current + "/cgroup.threads")
        pids.extend(int(p) for p in text.split())
        try:
            stack.extend(e.path for e in os.scandir(current) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
    return pids


def wait_until(check: object, timeout: float, what: str, sleep: object = time.sleep) -> None:
    """Poll ``check()`` until true; raise System naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() >= deadline:
            raise System(f"timed out after {timeout}s waiting for {what}")
        sleep(delay)
        delay = min(delay * 2, 0.01)


# -- parsing ------------------------------------------------------------------------------

def parse_uint(text: str) -> int:
    """A cgroup number; "max" is unlimited (runc reports it as the largest uint64)."""
    text = text.strip()
    if text == "max":
        return MAX_UINT64
    value = int(text)
    return value if value >= 0 else 0


def parse_flat(text: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` per line: memory.stat, cpu.stat, memory.events)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            try:
                out[key] = parse_uint(value)
            except ValueError:
                continue
    return out


def parse_cpu_list(text: str) -> list[int]:
    """``0-3,7`` -> ``[0, 1, 2, 3, 7]`` (cpuset.cpus / cpuset.mems)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_psi(text: str) -> dict:
    """A PSI file (cpu.pressure, ...) as runc's PSIStats: ``{"some": {...}, "full": {...}}``."""
    out: dict = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        data = {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0}
        for field in fields:
            key, _, value = field.partition("=")
            if key in data:
                data[key] = int(value) if key == "total" else float(value)
        if kind in ("some", "full"):
            out[kind] = data
    return out


# -- runc's stats JSON ---------------------------------------------------------------------
# Shapes follow runc types/events.go as encoded by Go's encoding/json: fields tagged
# `omitempty` are left out when zero or empty; untagged ones are always present.

def empty_stats() -> dict:
    return {
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "cpuset": {"cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                   "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                   "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
        "memory": {"usage": memory_entry(), "swap": memory_entry(), "kernel": memory_entry(),
                   "kernelTCP": memory_entry()},
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


def memory_entry(limit: int = 0, usage: int = 0, max_usage: int = 0, failcnt: int = 0) -> dict:
    entry = {"limit": limit}
    if usage:
        entry["usage"] = usage
    if max_usage:
        entry["max"] = max_usage
    entry["failcnt"] = failcnt
    return entry


def put_nonzero(target: dict, key: str, value: object) -> None:
    """Set ``key`` unless ``value`` is zero or empty (Go's omitempty)."""
    if value:
        target[key] = value


def blkio_entry(major: int, minor: int, op: str, value: int) -> dict:
    entry: dict = {}
    put_nonzero(entry, "major", major)
    put_nonzero(entry, "minor", minor)
    put_nonzero(entry, "op", op)
    put_nonzero(entry, "value", value)
    return entry


class CgroupManager:
    """What the runtime core calls; V1Manager and V2Manager implement it.

    ``write`` and ``read`` are the file functions every access goes through (tests replace
    them); ``sleep`` is the pause between polls of a freezer state.
    """

    path: str

    def __init__(self) -> None:
        self.write = write_file
        self.read = read_file
        self.sleep = time.sleep

    def put(self, path: str, value: str) -> None:
        """Write one value, turning an OSError into an error category naming the file."""
        try:
            self.write(path, value)
        except OSError as exc:
            raise cgroup_error(exc, path, value) from None

    def get(self, path: str) -> str:
        try:
            return self.read(path)
        except OSError as exc:
            raise cgroup_error(exc, path) from None

    def get_optional(self, path: str) -> str | None:
        """The file's content, or None when the kernel does not offer it."""
        try:
            return self.read(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENODEV:  # removed while reading
                return None
            raise cgroup_error(exc, path) from None

    def add_pid(self, directory: str, pid: int) -> None:
        """Join ``pid`` to one cgroup; EINVAL may mean the task is still TASK_NEW: retry."""
        target = directory + "/cgroup.procs"
        for attempt in range(5):
            try:
                self.write(target, str(pid))
                return
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    raise NotFound(f"{target}: process {pid} does not exist") from None
                if exc.errno != errno.EINVAL or attempt == 4:
                    raise cgroup_error(exc, target, str(pid)) from None
            self.sleep(0.01)
