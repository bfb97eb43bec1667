"""The OCI `linux.seccomp` object as a compiled seccomp filter, and its installation.

Owns the meaning of the spec's seccomp names (actions, operators, architectures, flags) and
runc's rules for turning them into libseccomp rules; `plan_seccomp` does that as pure data
(no library needed), `compile_seccomp` feeds the plan to libseccomp and keeps the BPF program.
The container process installs it with `SeccompFilter.load`, right before execve.
All libseccomp and system calls go through `dockyard.linux.seccomp`; nothing else here touches
the kernel, except the unix socket that hands a SCMP_ACT_NOTIFY listener to its agent.

Behaviour borrowed from runc (libcontainer/seccomp/seccomp_linux.go), since Docker profiles are
written against it:
- a syscall name this libseccomp does not know is skipped, not an error (Docker's profile lists
  calls of newer kernels and other architectures);
- a rule whose action equals the default action is dropped (libseccomp refuses it);
- when a rule has two conditions on the same argument, each condition becomes a rule of its own
  (so they are ORed); libseccomp cannot AND two comparisons of one argument;
- SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD; ERRNO and TRACE default to EPERM;
- no_new_privs is left to the runtime (SCMP_FLTATR_CTL_NNP = 0).
Not done: runc's patchbpf stub that answers ENOSYS (instead of the default errno) for syscalls
newer than the profile.
"""

from __future__ import annotations

import errno
import os

from dockyard.errdefs import InvalidArgument, System, Unavailable
from dockyard.linux import seccomp as scmp
from dockyard.spec.runtime import LinuxSeccomp, LinuxSeccompArg

_FIELD = "linux.seccomp"

# action name -> (libseccomp action without data, takes errnoRet)
ACTIONS = {
    "SCMP_ACT_KILL": (scmp.ACT_KILL_THREAD, False),
    "SCMP_ACT_KILL_THREAD": (scmp.ACT_KILL_THREAD, False),
    "SCMP_ACT_KILL_PROCESS": (scmp.ACT_KILL_PROCESS, False),
    "SCMP_ACT_TRAP": (scmp.ACT_TRAP, False),
    "SCMP_ACT_ERRNO": (scmp.ACT_ERRNO, True),
    "SCMP_ACT_TRACE": (scmp.ACT_TRACE, True),
    "SCMP_ACT_ALLOW": (scmp.ACT_ALLOW, False),
    "SCMP_ACT_LOG": (scmp.ACT_LOG, False),
    "SCMP_ACT_NOTIFY": (scmp.ACT_NOTIFY, False),
}

OPERATORS = {
    "SCMP_CMP_NE": scmp.CMP_NE,
    "SCMP_CMP_LT": scmp.CMP_LT,
    "SCMP_CMP_LE": scmp.CMP_LE,
    "SCMP_CMP_EQ": scmp.CMP_EQ,
    "SCMP_CMP_GE": scmp.CMP_GE,
    "SCMP_CMP_GT": scmp.CMP_GT,
    "SCMP_CMP_MASKED_EQ": scmp.CMP_MASKED_EQ,
}

# spec architecture -> libseccomp's name for seccomp_arch_resolve_name
ARCHITECTURES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
    "SCMP_ARCH_M68K": "m68k",
    "SCMP_ARCH_SH": "sh",
    "SCMP_ARCH_SHEB": "sheb",
}

# spec flag -> (libseccomp attribute or None, seccomp(2) flag). The attribute is set so that
# libseccomp checks its API level (kernel support) at compile time; the flag is what we load with.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (scmp.ATTR_CTL_TSYNC, scmp.FILTER_FLAG_TSYNC),
    "SECCOMP_FILTER_FLAG_LOG": (scmp.ATTR_CTL_LOG, scmp.FILTER_FLAG_LOG),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (scmp.ATTR_CTL_SSB, scmp.FILTER_FLAG_SPEC_ALLOW),
    # libseccomp 2.5 has no attribute for it; the kernel (>= 5.19) checks it at load.
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (None, scmp.FILTER_FLAG_WAIT_KILLABLE_RECV),
}

# After loading a NOTIFY filter the container process hands the listener to the runtime with
# sendmsg (or, runc-style, writes its number): a notified call there would wait for an agent that
# has not got the listener yet, forever.
NOTIFY_FORBIDDEN = ("write", "sendmsg")

_MAX_U64 = (1 << 64) - 1
_OPTIMIZE_ABOVE = 32  # rules; libseccomp <= 2.5.4 misbehaves with the binary tree and no rules


class SeccompRule:
    """One libseccomp rule: `action` for syscall `name` when every condition holds.

    A condition is (argument index, scmp.CMP_*, datum_a, datum_b); `where` names the spec entry.
    """

    __slots__ = ("where", "name", "action", "conditions")

    def __init__(self, where: str, name: str, action: int,
                 conditions: tuple[tuple[int, int, int, int], ...] = ()) -> None:
        self.where, self.name, self.action, self.conditions = where, name, action, conditions

    def _key(self) -> tuple:
        return (self.where, self.name, self.action, self.conditions)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeccompRule) and self._key() == other._key()

    def __repr__(self) -> str:
        return (f"SeccompRule({self.where!r}, {self.name!r}, {self.action:#x}, "
                f"{self.conditions!r})")


class SeccompPlan:
    """What to ask of libseccomp, as data: the result of `plan_seccomp`."""

    __slots__ = ("default_action", "arches", "attrs", "load_flags", "rules", "needs_notify_fd")

    def __init__(self, default_action: int, arches: tuple[tuple[str, str], ...],
                 attrs: tuple[tuple[str, int], ...], load_flags: int,
                 rules: tuple[SeccompRule, ...], needs_notify_fd: bool) -> None:
        self.default_action = default_action
        self.arches = arches            # (field, libseccomp architecture name)
        self.attrs = attrs              # (field, scmp.ATTR_*) to set to 1
        self.load_flags = load_flags    # seccomp(2) flags
        self.rules = rules
        self.needs_notify_fd = needs_notify_fd


def parse_action(name: str, errno_ret: int | None, where: str, errno_where: str) -> int:
    """The libseccomp action for a spec action and its optional errnoRet."""
    try:
        base, takes_errno = ACTIONS[name]
    except KeyError:
        raise InvalidArgument(f"{where}: unknown seccomp action {name!r}") from None
    if not takes_errno:
        if errno_ret is not None:
            # runtime-spec config-linux.md#seccomp: "When the action doesn't support an errno,
            # the runtime MUST print and error and fail."
            raise InvalidArgument(f"{errno_where}: {name} takes no errno")
        return base
    code = errno.EPERM if errno_ret is None else errno_ret
    if not isinstance(code, int) or not 0 <= code <= scmp.ACT_DATA_MASK:
        raise InvalidArgument(f"{errno_where}: {code!r} is not an errno (0 to 65535)")
    return base | code


def parse_condition(arg: LinuxSeccompArg, where: str) -> tuple[int, int, int, int]:
    """(index, op, datum_a, datum_b) of one spec argument; for MASKED_EQ `value` is the mask."""
    try:
        op = OPERATORS[arg.op]
    except KeyError:
        raise InvalidArgument(f"{where}.op: unknown seccomp operator {arg.op!r}") from None
    if not 0 <= arg.index <= 5:
        raise InvalidArgument(f"{where}.index: {arg.index} is not between 0 and 5")
    for field, value in (("value", arg.value), ("valueTwo", arg.value_two)):
        if not 0 <= value <= _MAX_U64:
            raise InvalidArgument(f"{where}.{field}: {value} does not fit in 64 bits unsigned")
    return (arg.index, op, arg.value, arg.value_two)


def split_conditions(conds: list[tuple[int, int, int, int]]) -> list[tuple]:
    """The condition sets of the rules for one spec entry: all together (ANDed), or, when two
    compare the same argument, one rule per condition (ORed), as runc does."""
    indexes = [c[0] for c in conds]
    if len(set(indexes)) < len(indexes):
        return [(c,) for c in conds]
    return [tuple(conds)]


def _parse_flags(flags: tuple[str, ...]) -> tuple[tuple[tuple[str, int], ...], int]:
    attrs, load_flags = [], 0
    for i, flag in enumerate(flags):
        where = f"{_FIELD}.flags[{i}]"
        try:
            attr, bit = FLAGS[flag]
        except KeyError:
            raise InvalidArgument(f"{where}: unknown seccomp flag {flag!r}") from None
        if attr is not None:
            attrs.append((where, attr))
        load_flags |= bit
    return tuple(attrs), load_flags


def _parse_rules(sc: LinuxSeccomp, default: int) -> list[SeccompRule]:
    rules = []
    for i, call in enumerate(sc.syscalls):
        where = f"{_FIELD}.syscalls[{i}]"
        action = parse_action(call.action, call.errno_ret, f"{where}.action", f"{where}.errnoRet")
        conds = [parse_condition(a, f"{where}.args[{j}]") for j, a in enumerate(call.args)]
        if not call.names:
            raise InvalidArgument(f"{where}.names: at least one syscall name is required")
        for j, name in enumerate(call.names):
            if not name:
                raise InvalidArgument(f"{where}.names[{j}]: empty syscall name")
            if action == scmp.ACT_NOTIFY and name in NOTIFY_FORBIDDEN:
                raise InvalidArgument(f"{where}.action: SCMP_ACT_NOTIFY cannot be used for {name}")
        if action == default:
            continue  # redundant, and libseccomp rejects it (EACCES)
        for name in call.names:
            rules.extend(SeccompRule(where, name, action, g) for g in split_conditions(conds))
    return rules


def plan_seccomp(sc: LinuxSeccomp) -> SeccompPlan:
    """Check a LinuxSeccomp and turn it into libseccomp requests. Pure; raises InvalidArgument
    naming the field."""
    default = parse_action(sc.default_action, sc.default_errno_ret,
                           f"{_FIELD}.defaultAction", f"{_FIELD}.defaultErrnoRet")
    if default == scmp.ACT_NOTIFY:
        raise InvalidArgument(f"{_FIELD}.defaultAction: SCMP_ACT_NOTIFY cannot be the default")
    arches = []
    for i, arch in enumerate(sc.architectures):
        if arch not in ARCHITECTURES:
            raise InvalidArgument(f"{_FIELD}.architectures[{i}]: unknown architecture {arch!r}")
        arches.append((f"{_FIELD}.architectures[{i}]", ARCHITECTURES[arch]))
    attrs, load_flags = _parse_flags(sc.flags)
    rules = _parse_rules(sc, default)
    notify = any(r.action == scmp.ACT_NOTIFY for r in rules)
    if notify:
        load_flags |= scmp.FILTER_FLAG_NEW_LISTENER
        if load_flags & scmp.FILTER_FLAG_TSYNC:
            # With a listener the return value is the fd, so a TSYNC failure must be an errno.
            load_flags |= scmp.FILTER_FLAG_TSYNC_ESRCH
    elif load_flags & scmp.FILTER_FLAG_WAIT_KILLABLE_RECV:
        raise InvalidArgument(f"{_FIELD}.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a "
                              "rule with SCMP_ACT_NOTIFY")
    if notify and not sc.listener_path:
        raise InvalidArgument(f"{_FIELD}.listenerPath: required when a rule uses SCMP_ACT_NOTIFY")
    return SeccompPlan(default, tuple(arches), attrs, load_flags, tuple(rules), notify)


class SeccompFilter:
    """A compiled filter: the BPF program and how to load it. Made before the container process
    is forked; the container process installs it, last thing before execve, with `load` (or,
    when `needs_notify_fd`, with `load_seccomp_with_notify`). Immutable, so it can be shared."""

    __slots__ = ("needs_notify_fd", "skipped_syscalls", "_program")

    def __init__(self, program: bytes, load_flags: int, needs_notify_fd: bool,
                 skipped_syscalls: tuple[str, ...] = ()) -> None:
        self._program = scmp.BpfProgram(program, load_flags)
        self.needs_notify_fd = needs_notify_fd
        self.skipped_syscalls = skipped_syscalls  # names libseccomp did not know (for a debug log)

    @property
    def load_flags(self) -> int:
        """The seccomp(2) SECCOMP_FILTER_FLAG_* bits `load` passes."""
        return self._program.flags

    def export_bpf(self) -> bytes:
        """The program: struct sock_filter instructions (8 bytes each), native byte order."""
        return self._program.program

    def load(self) -> None:
        """Install the filter in this process. Needs no_new_privs or CAP_SYS_ADMIN. Raises System.

        A filter with SCMP_ACT_NOTIFY rules is refused here, before anything is installed: its
        listener fd must go to the agent, never stay in the container (see
        `load_seccomp_with_notify`)."""
        if self.needs_notify_fd:
            raise System("seccomp: the filter has SCMP_ACT_NOTIFY rules; load it with "
                         "load_seccomp_with_notify")
        self._load()

    def load_with_listener(self) -> int:
        """Install a filter with SCMP_ACT_NOTIFY rules; return its listener fd (the caller's)."""
        if not self.needs_notify_fd:
            raise System("seccomp: the filter has no SCMP_ACT_NOTIFY rule, so no listener")
        return self._load()

    def _load(self) -> int:
        try:
            return self._program.load()
        except OSError as exc:
            hint = " (needs no_new_privs or CAP_SYS_ADMIN)" if exc.errno == errno.EACCES else ""
            raise System(f"seccomp: cannot load the filter: {exc.strerror}{hint}") from exc

    def release(self) -> None:
        """Nothing to free: the libseccomp context is released as soon as the program is made."""


def _apply_plan(plan: SeccompPlan, ctx: scmp.Filter) -> list[str]:
    ctx.attr_set(scmp.ATTR_CTL_NNP, 0)
    try:
        ctx.attr_set(scmp.ATTR_API_SYSRAWRC, 1)  # report the kernel's errno, not -ECANCELED
    except OSError:
        pass
    for where, name in plan.arches:
        token = scmp.arch_resolve_name(name)
        if not token:
            raise InvalidArgument(f"{where}: libseccomp {scmp.version_string()} does not "
                                  f"support architecture {name}")
        try:
            ctx.arch_add(token)
        except OSError as exc:
            if exc.errno != errno.EEXIST:  # the native one is there from the start
                raise InvalidArgument(f"{where}: {exc.strerror}") from None
    for where, attr in plan.attrs:
        try:
            ctx.attr_set(attr, 1)
        except OSError as exc:
            raise Unavailable(f"{where}: not supported by this kernel and libseccomp "
                              f"{scmp.version_string()} (API level {scmp.api_level()}): "
                              f"{exc.strerror}") from None
    if len(plan.rules) > _OPTIMIZE_ABOVE:
        try:
            ctx.attr_set(scmp.ATTR_CTL_OPTIMIZE, 2)  # binary search over syscall numbers
        except OSError:
            pass
    return _add_rules(plan.rules, ctx)


def _add_rules(rules: tuple[SeccompRule, ...], ctx: scmp.Filter) -> list[str]:
    skipped, numbers = [], {}
    for rule in rules:
        nr = numbers.get(rule.name)
        if nr is None:
            nr = numbers[rule.name] = scmp.syscall_resolve_name(rule.name)
        if nr == scmp.NR_SCMP_ERROR:
            if rule.name not in skipped:
                skipped.append(rule.name)
            continue
        try:
            ctx.rule_add(rule.action, nr, rule.conditions)
        except OSError as exc:
            raise InvalidArgument(f"{rule.where}: cannot add a rule for {rule.name}: "
                                  f"{exc.strerror}") from None
    return skipped


def _check_notify_support() -> None:
    level = scmp.api_level()
    if level < 5:
        raise Unavailable(f"{_FIELD}: SCMP_ACT_NOTIFY needs libseccomp >= 2.5 and Linux >= 5.0 "
                          f"(API level 5, have {level})")


_cache: dict[tuple, SeccompFilter] = {}
_CACHE_SIZE = 8
_by_object: list[tuple[LinuxSeccomp, SeccompFilter]] = []


def _plan_key(plan: SeccompPlan) -> tuple:
    return (plan.default_action, plan.arches, plan.attrs, plan.load_flags,
            tuple(r._key() for r in plan.rules))


def compile_seccomp(sc: LinuxSeccomp) -> SeccompFilter:
    """Compile a LinuxSeccomp with libseccomp. Raises InvalidArgument naming the field, or
    Unavailable when libseccomp or the kernel lacks something the config asks for.

    Generating the program for Docker's profile on x86_64 (three architectures) takes libseccomp
    ~10 ms, so a process that starts many containers (the engine) reuses the last few results;
    the very same (frozen) LinuxSeccomp, which the codec hands out again for the same JSON, is
    not even planned again."""
    for seen, flt in _by_object:
        if seen is sc:
            return flt
    plan = plan_seccomp(sc)
    key = _plan_key(plan)
    flt = _cache.get(key)
    if flt is None:
        flt = _compile(plan)
        if len(_cache) >= _CACHE_SIZE:
            del _cache[next(iter(_cache))]
        _cache[key] = flt
    if len(_by_object) >= _CACHE_SIZE:
        del _by_object[0]
    _by_object.append((sc, flt))  # holds sc: its id is not reused while it is here
    return flt


def filter_key(seccomp_json: dict) -> str:
    """What a compiled filter depends on: the digest of the config's linux.seccomp."""
    import hashlib

    from dockyard.spec.jsonfast import dumps

    return hashlib.sha256(dumps(seccomp_json).encode()).hexdigest()


def save_filter(path: str, key: str, flt: SeccompFilter) -> None:
    """Keep a compiled filter next to the container's state (atomically), so that each
    `exec` loads it instead of compiling the profile again (~30 ms in libseccomp here)."""
    import base64

    from dockyard.spec.jsonfast import dumps

    data = {"key": key, "program": base64.b64encode(flt.export_bpf()).decode(),
            "flags": flt.load_flags, "notify": flt.needs_notify_fd,
            "skipped": list(flt.skipped_syscalls)}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(dumps(data))
    os.rename(tmp, path)


def load_filter(path: str, key: str) -> SeccompFilter | None:
    """The filter `save_filter` kept for this ``key``, or None (missing, stale, unreadable)."""
    import base64

    from dockyard.spec.jsonfast import loads

    try:
        with open(path) as f:
            data = loads(f.read())
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        return SeccompFilter(base64.b64decode(data["program"]), int(data["flags"]),
                             bool(data["notify"]), tuple(data.get("skipped") or ()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _compile(plan: SeccompPlan) -> SeccompFilter:
    if plan.needs_notify_fd:
        _check_notify_support()
    try:
        ctx = scmp.Filter(plan.default_action)
    except OSError as exc:
        raise InvalidArgument(f"{_FIELD}.defaultAction: {exc.strerror}") from None
    with ctx:
        skipped = _apply_plan(plan, ctx)
        try:
            program = ctx.export_bpf()
        except OSError as exc:
            raise System(f"seccomp: cannot generate the filter: {exc.strerror}") from exc
    return SeccompFilter(program, plan.load_flags, plan.needs_notify_fd, tuple(skipped))


# --- SCMP_ACT_NOTIFY: hand the listener to the agent at listenerPath -----------------------------

SECCOMP_FD_NAME = "seccompFd"


def seccomp_state_message(state: dict, pid: int, metadata: str | None = None,
                          oci_version: str | None = None) -> bytes:
    """The "Seccomp State" (runtime-spec runtime.md#state, ContainerProcessState) sent with the
    listener fd: `state` is the container's state object (status "creating"), `pid` the
    container process as seen by the runtime, `metadata` the spec's listenerMetadata."""
    import json

    msg = {
        "ociVersion": oci_version or state.get("ociVersion", ""),
        "fds": [SECCOMP_FD_NAME],
        "pid": pid,
        "metadata": metadata or "",
        "state": state,
    }
    return json.dumps(msg, separators=(",", ":")).encode()


def connect_listener(path: str) -> int:
    """A connected unix stream socket to the agent at `path` (the spec's listenerPath); the fd is
    the caller's. Connect before pivot_root when the container process sends the fd itself."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise System(f"{_FIELD}.listenerPath: cannot connect to {path}: {exc.strerror}") from exc
    return sock.detach()


def send_seccomp_state(sock_fd: int, message: bytes, listener_fd: int) -> None:
    """Send `message` with `listener_fd` attached (SCM_RIGHTS) in one sendmsg on `sock_fd`."""
    import array
    import socket

    # Family, type and protocol given: socket() then makes no system call of its own.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=sock_fd)
    try:
        fds = array.array("i", [listener_fd])
        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    except OSError as exc:
        raise System(f"seccomp: cannot send the listener fd: {exc.strerror}") from exc
    finally:
        sock.detach()


def load_seccomp_with_notify(flt: SeccompFilter, listener: str | int, message: bytes) -> None:
    """In the container process, in place of `flt.load()` when `flt.needs_notify_fd`: install the
    filter, send its listener fd with `message` (from `seccomp_state_message`) to the agent, and
    close the listener here so the container cannot answer its own notifications.

    `listener` is the agent's socket path (listenerPath; only reachable before pivot_root) or a
    connected socket fd (from `connect_listener` before pivot_root, or a socketpair to the runtime,
    which forwards message and fd). Everything that may make a system call (imports, connect) is
    done before the filter is installed: after it, a notified call would wait for an agent that
    has not got the listener yet."""
    import array  # noqa: F401  (imported before the load: an import runs system calls)
    import socket  # noqa: F401

    if not flt.needs_notify_fd:
        flt.load()
        return
    sock_fd = connect_listener(listener) if isinstance(listener, str) else listener
    try:
        fd = flt.load_with_listener()
        try:
            send_seccomp_state(sock_fd, message, fd)
        finally:
            os.close(fd)
    finally:
        if isinstance(listener, str):
            os.close(sock_fd)
