"""The runtime command's log: runc's --log / --log-format / --debug, without `logging`.

Engines that drive runc (containerd's shim, go-runc) read the last "error" entry of the --log
file to report why a command failed, so errors go there in runc's shape (text: logrus-style
``time=... level=error msg="..."``; json: ``{"level":"error","msg":"...","time":"..."}``) as
well as to stderr. The `logging` package costs ~6 ms to import, a sixth of a container start,
so this is a small writer of its own.
"""

from __future__ import annotations

import os
import sys
import time

from dockyard.spec.jsonfast import dumps

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class RuntimeLog:
    def __init__(self, path: str | None = None, fmt: str = "text", debug: bool = False):
        self.path, self.fmt = path, fmt
        self.threshold = _LEVELS["debug" if debug else "warning"]

    def __call__(self, level: str, msg: str) -> None:
        if _LEVELS.get(level, 40) < self.threshold:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        if self.fmt == "json":
            line = dumps({"level": level, "msg": msg, "time": stamp})
        else:
            line = f"time={dumps(stamp)} level={level} msg={dumps(msg)}"
        if self.path:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    os.write(fd, (line + "\n").encode())
                finally:
                    os.close(fd)
            except OSError:
                pass
        if level == "error" or not self.path:
            sys.stderr.write(f"dockyard-runtime: {msg}\n" if level == "error" else line + "\n")
            sys.stderr.flush()
