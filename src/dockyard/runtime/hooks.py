"""OCI lifecycle hooks: run each with the container state as JSON on stdin, within its timeout.

Owns the hook protocol of the runtime spec (config.md#posix-platform-hooks): ``path`` is
executed with ``args`` (args[0] is argv[0]) and ``env``, the state on stdin; a hook that exits
non-zero or outlives its timeout fails the lifecycle step (except poststart/poststop, whose
failures are only logged, as the spec says).
"""

from __future__ import annotations

import os
import time

from dockyard.errdefs import System
from dockyard.linux.syscalls import SYS
from dockyard.spec.jsonfast import dumps
from dockyard.spec.runtime import Hook


def run_hook(hook: Hook, state: dict, kind: str) -> None:
    argv = list(hook.args) or [hook.path]
    payload = dumps(state).encode()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: stdin from the pipe, the hook's own environment only
        try:
            os.close(wfd)
            os.dup2(rfd, 0)
            # only stdio: whatever else we hold (fds the runtime's caller passed, not
            # close-on-exec) must not reach a hook, least of all a startContainer hook,
            # which runs a program of the container's image
            SYS.close_range(3)
            os.execve(hook.path, argv, dict(e.split("=", 1) for e in hook.env))
        finally:
            os._exit(127)
    os.close(rfd)
    try:
        os.write(wfd, payload)
    except BrokenPipeError:
        pass
    finally:
        os.close(wfd)
    status = _wait(pid, hook.timeout)
    if status is None:
        raise System(f"{kind} hook {hook.path}: timed out after {hook.timeout}s")
    if status != 0:
        raise System(f"{kind} hook {hook.path}: exited with status {status}")


def _wait(pid: int, timeout: int | None) -> int | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return os.waitstatus_to_exitcode(status)
        if deadline and time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def run_hooks(hooks: tuple[Hook, ...], state: dict, kind: str, *, fatal: bool = True,
              warn=None) -> None:
    for hook in hooks:
        try:
            run_hook(hook, state, kind)
        except System as exc:
            if fatal:
                raise
            if warn is not None:
                warn(str(exc))
