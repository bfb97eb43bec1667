"""The wire format between the daemon, the monitor factory and the monitors; pure (sans-IO).

Owns the names of the files a monitor keeps in its state directory, the newline-delimited JSON
messages on the factory's and the monitors' unix sockets, the 8-byte frames of a non-TTY
attach stream (Docker's stdcopy: stream id, three zero bytes, big-endian uint32 length), the
spawn request and exit status records, and the rules that turn a failed start into Docker's
exit codes (127 command not found, 126 not executable). Nothing here touches a socket or a
file: `client.py` and `monitor.py` do, with these encoders and decoders.

A control connection carries requests ``{"op": ...}`` and replies ``{"ok": true, ...}`` or
``{"error": message, "kind": category}``; after an ``attach`` reply it becomes a raw stream.
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass, field

from dockyard.errdefs import (
    AlreadyExists, Conflict, DockyardError, InvalidArgument, NotFound, NotModified, System,
)
from dockyard.spec import jsonfast

PROTOCOL_VERSION = 3  # 2: spares answer spawns; config_follows. 3: keep_mounted, decides_start

# under the exec root
FACTORY_SOCKET = "monitor-factory.sock"
FACTORY_LOCK = "monitor-factory.lock"
FACTORY_PID = "monitor-factory.pid"
FACTORY_LOG = "monitor-factory.log"
# under a container's state directory
CONTROL_SOCKET = "monitor.sock"
CONSOLE_SOCKET = "console.sock"
EXIT_FILE = "exit.json"
RUNTIME_LOG = "runtime.log"

MAX_LINE = 1 << 20  # a request or reply longer than this is a protocol error

STDIN, STDOUT, STDERR = 0, 1, 2
_FRAME = struct.Struct(">B3xI")
FRAME_HEADER = _FRAME.size


class Status(enum.StrEnum):
    CREATED = "created"  # spawned with start=False; waiting for {"op": "start"}
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"  # the init exited; the monitor is cleaning up


class StartKind(enum.StrEnum):
    """Why a container did not start, in the categories Docker's daemon tells apart."""

    NOT_FOUND = "not_found"  # the command does not exist: exit code 127
    PERMISSION_DENIED = "permission_denied"  # it cannot be executed: 126
    NOT_A_DIRECTORY = "not_a_directory"  # a file mounted on a directory or vice versa: 127
    CONFLICT = "conflict"  # a monitor for this container is running already
    LOGGING = "logging"  # the log driver did not initialize: its message is the answer (500)
    FAILED = "failed"  # anything else: the daemon's 500 (and exit code)


_START_EXIT_CODES = {StartKind.NOT_FOUND: 127, StartKind.PERMISSION_DENIED: 126,
                     StartKind.NOT_A_DIRECTORY: 127}


def start_exit_code(kind: StartKind) -> int | None:
    """The exit code Docker records for a container that failed to start this way."""
    return _START_EXIT_CODES.get(kind)


def classify_start_error(message: str, cmd: str) -> StartKind:
    """The category of a runtime's start error, by the rules of moby's
    ``translateContainerdStartErr`` (daemon/errors.go): the runtime reports these only as
    text, so this is the one place that reads it. Later rules win, as there."""
    text = message.lower()
    kind = StartKind.FAILED
    if cmd in text and ("executable file not found" in text or "no such file or directory" in text):
        kind = StartKind.NOT_FOUND
    if "permission denied" in text:
        kind = StartKind.PERMISSION_DENIED
    if "not a directory" in text:
        kind = StartKind.NOT_A_DIRECTORY
    return kind


def exit_code_of(wait_status: int) -> int:
    """A waitpid(2) status as a shell reports it: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


# -- messages ---------------------------------------------------------------------------------

def encode(message: dict) -> bytes:
    return jsonfast.dumps(message).encode() + b"\n"


class LineDecoder:
    """Feed bytes in any pieces; get whole JSON objects back. After a message that switches
    the connection to raw bytes (attach), `take_rest` returns what followed it."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = b""

    def feed(self, data: bytes) -> list[dict]:
        buf = self._buf + data if self._buf else data
        out = []
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            out.append(parse_message(buf[start:end]))
            start = end + 1
        self._buf = buf[start:]
        if len(self._buf) > self.max_line:
            raise InvalidArgument(f"message longer than {self.max_line} bytes")
        return out

    def next(self, data: bytes = b"") -> dict | None:
        """One message at most (the rest stays buffered): for a stream that may switch mode."""
        self._buf += data
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > self.max_line:
                raise InvalidArgument(f"message longer than {self.max_line} bytes")
            return None
        line, self._buf = self._buf[:end], self._buf[end + 1:]
        return parse_message(line)

    def take_rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest


def parse_message(line: bytes) -> dict:
    try:  # decoded first: bytes would go through the utf-8-sig codec, Python code
        message = jsonfast.loads(line.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"invalid message: {exc}") from None
    if not isinstance(message, dict):
        raise InvalidArgument("invalid message: not a JSON object")
    return message


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame (payloads here are single reads, far below the 4 GiB limit)."""
    return _FRAME.pack(stream, len(data)) + data


def parse_frame_header(header: bytes) -> tuple[int, int]:
    """(stream id, payload length) of an 8-byte frame header."""
    return _FRAME.unpack(header)


# -- error replies ----------------------------------------------------------------------------

_KINDS: tuple[tuple[type[DockyardError], str], ...] = (
    (NotFound, "not_found"), (AlreadyExists, "already_exists"), (Conflict, "conflict"),
    (InvalidArgument, "invalid"), (NotModified, "not_modified"),
)
_ERRORS = {kind: cls for cls, kind in _KINDS} | {"system": System}


def error_reply(exc: BaseException) -> dict:
    for cls, kind in _KINDS:
        if isinstance(exc, cls):
            return {"error": str(exc), "kind": kind}
    return {"error": str(exc) or type(exc).__name__, "kind": "system"}


def raise_for(reply: dict) -> dict:
    """``reply`` itself, or the error category it carries raised."""
    if "error" in reply:
        raise _ERRORS.get(reply.get("kind", ""), System)(reply["error"])
    return reply


# -- records ----------------------------------------------------------------------------------

def _str(data: dict, key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise InvalidArgument(f"spawn request: {key} must be a string")
    return value


def _bool(data: dict, key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"spawn request: {key} must be a boolean")
    return value


@dataclass(frozen=True)
class SpawnRequest:
    """What a monitor needs to run one container.

    ``rootfs_mounts``: `dockyard.snapshot.mounts.Mount` objects as JSON, mounted in order on
    ``<bundle>/rootfs`` before create and unmounted after the exit (empty: the bundle's rootfs
    directory is used as it is). ``log_opts``: json-file options as Docker takes them
    (``max-size``, ``max-file``, ``compress``); ``log_path`` "" keeps no log (driver none);
    ``log_attrs``: the extra attributes written with every entry. ``remote_log``: for the syslog,
    gelf and fluentd drivers, where and how the monitor sends each line too (``driver`` names
    the module's writer: remotelog.py); ``log_path`` is then its local cache (or "":
    ``cache-disabled``). ``runtime``: "dockyard" for the runtime
    library (run by the monitor's helpers, no runtime binary), or the absolute path of a
    runc-compatible binary. ``runtime_root``: its state root; empty: the client's.
    ``start``: False to stop at "created" (attach, set up networking, then
    `MonitorHandle.start`), as dockerd creates a task before it starts it.
    ``config_follows``: the bundle's config.json is still being written: the monitor gets
    ready (and its helper mounts the rootfs) meanwhile, and goes on at the line
    ``{"go": true}`` on the spawn connection; the connection's end instead withdraws the
    start (`GO`). ``attach``: ``{"stdin", "stdout", "stderr"}``: after its outcome, the spawn
    connection is an attach stream, as after an ``attach`` request (no connection and round
    trip of its own for `docker run`'s attach). ``keep_mounted``: the teardown after the
    exit leaves the rootfs mounted, for the daemon to unmount: a --rm container, whose removal
    follows its exit. An overlay's unmount syncs the upper filesystem, and on ext4 that stalls
    every other writer there (the removal's renames and database commits) until the journal
    commits; the daemon unmounts after the removal has been answered instead.
    ``decides_start`` (with ``config_follows``): after the go-ahead, the daemon sends one more
    line, once the rest of its part is done (the network's, while the runtime creates the
    container): `decision` ``{"start": bool, "attach": flags or null}``. The monitor reads it
    once the container is created and, told to, starts it at once (the outcome is "started"),
    with ``attach`` as the spawn's attach when the request had none: no start request and no
    attach connection of their own.
    """

    container_id: str
    bundle: str
    state_dir: str
    rootfs_mounts: list[dict]
    log_path: str
    log_opts: dict = field(default_factory=dict)
    log_attrs: dict = field(default_factory=dict)
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    runtime: str = "dockyard"
    runtime_root: str = ""
    start: bool = True
    config_follows: bool = False
    attach: dict | None = None
    keep_mounted: bool = False
    decides_start: bool = False
    remote_log: dict | None = None

    def to_json(self) -> dict:
        return {"container_id": self.container_id, "bundle": self.bundle,
                "state_dir": self.state_dir, "rootfs_mounts": list(self.rootfs_mounts),
                "log_path": self.log_path, "log_opts": dict(self.log_opts),
                "log_attrs": dict(self.log_attrs), "tty": self.tty,
                "open_stdin": self.open_stdin, "stdin_once": self.stdin_once,
                "runtime": self.runtime, "runtime_root": self.runtime_root, "start": self.start,
                "config_follows": self.config_follows, "attach": self.attach,
                "keep_mounted": self.keep_mounted, "decides_start": self.decides_start,
                "remote_log": self.remote_log}

    @classmethod
    def from_json(cls, data: object) -> "SpawnRequest":
        """Parse and validate; every path must be absolute (``runtime_root`` filled in)."""
        if not isinstance(data, dict):
            raise InvalidArgument("spawn request: not a JSON object")
        mounts = data.get("rootfs_mounts") or []
        opts = data.get("log_opts") or {}
        attrs = data.get("log_attrs") or {}
        if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
            raise InvalidArgument("spawn request: rootfs_mounts must be a list of objects")
        if not isinstance(opts, dict):
            raise InvalidArgument("spawn request: log_opts must be an object")
        if not isinstance(attrs, dict):
            raise InvalidArgument("spawn request: log_attrs must be an object")
        remote = data.get("remote_log")
        if remote is not None and (not isinstance(remote, dict) or remote.get("driver") not in
                                   ("syslog", "gelf", "fluentd")):
            raise InvalidArgument("spawn request: remote_log must be an object naming a driver")
        req = cls(container_id=_str(data, "container_id"), bundle=_str(data, "bundle"),
                  state_dir=_str(data, "state_dir"), rootfs_mounts=mounts,
                  log_path=_str(data, "log_path", ""),
                  log_opts={str(k): str(v) for k, v in opts.items()},
                  log_attrs={str(k): str(v) for k, v in attrs.items()},
                  tty=_bool(data, "tty"), open_stdin=_bool(data, "open_stdin"),
                  stdin_once=_bool(data, "stdin_once"),
                  runtime=_str(data, "runtime", "dockyard"),
                  runtime_root=_str(data, "runtime_root", ""),
                  start=data.get("start", True) is not False,
                  config_follows=data.get("config_follows") is True,
                  attach=_attach_flags(data.get("attach")),
                  keep_mounted=data.get("keep_mounted") is True,
                  decides_start=data.get("decides_start") is True,
                  remote_log=remote)
        for key in ("bundle", "state_dir", "log_path", "runtime_root"):
            if not getattr(req, key).startswith("/") and (key != "log_path" or req.log_path):
                raise InvalidArgument(f"spawn request: {key} must be an absolute path")
        return req


GO = {"go": True}  # SpawnRequest.config_follows: config.json is written


def decision(start: bool, attach: dict | None = None) -> dict:
    """SpawnRequest.decides_start: the line after the go-ahead."""
    return {"start": bool(start), "attach": attach}


def parse_decision(msg: object) -> tuple[bool, dict | None]:
    if not isinstance(msg, dict) or not isinstance(msg.get("start"), bool):
        raise InvalidArgument(f"spawn: not a start decision: {msg!r}")
    return msg["start"], _attach_flags(msg.get("attach"))


def _attach_flags(value: object) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument("spawn request: attach must be an object")
    return {k: value.get(k) is True for k in ("stdin", "stdout", "stderr")}


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended, as the monitor recorded it in ``exit.json``.

    ``error`` is set when no monitor saw the exit (it died first): the daemon then records
    ``exit_code`` 255 and the error, as dockerd does for a container lost while it was down.
    """

    exit_code: int
    oom_killed: bool = False
    started_at: str = ""
    finished_at: str = ""
    pid: int = 0
    error: str = ""

    def to_json(self) -> dict:
        out = {"exit_code": self.exit_code, "oom_killed": self.oom_killed,
               "started_at": self.started_at, "finished_at": self.finished_at, "pid": self.pid}
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict) -> "ExitStatus":
        try:
            return cls(int(data["exit_code"]), bool(data.get("oom_killed", False)),
                       str(data.get("started_at", "")), str(data.get("finished_at", "")),
                       int(data.get("pid", 0)), str(data.get("error", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"invalid exit status {data!r}: {exc}") from None
