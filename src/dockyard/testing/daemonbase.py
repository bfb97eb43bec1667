"""What the two test daemon harnesses share: a private base directory with the daemon's
socket, roots and log, the docker CLI pointed at it, a `/_ping` probe, and the host helpers
their teardowns use (mounts under the base, writes that may fail).

`DockyardDaemon` (testing/daemon.py) and `RefDockerd` (testing/refdockerd.py) subclass it and
say their file names and their error class.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from pathlib import Path


class TestDaemon:
    SOCKET_NAME = "daemon.sock"
    LOG_NAME = "daemon.log"
    Error: type[Exception] = RuntimeError
    __test__ = False  # not a pytest test class

    base: Path | None = None
    _log_path: Path | None = None

    def _need_base(self) -> Path:
        if self.base is None:
            raise self.Error(f"{type(self).__name__} is not started")
        return self.base

    @property
    def socket_path(self) -> Path:
        return self._need_base() / self.SOCKET_NAME

    @property
    def data_root(self) -> Path:
        return self._need_base() / "data"

    @property
    def exec_root(self) -> Path:
        return self._need_base() / "run"

    @property
    def log_path(self) -> Path:
        return self._log_path or self._need_base() / self.LOG_NAME

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        """For the docker CLI: this daemon, a private CLI config dir, no context or TLS."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
        env["DOCKER_HOST"] = self.docker_host
        env["DOCKER_CONFIG"] = str(self._need_base() / "cli")
        return env

    def ping(self) -> bool:
        """Whether the daemon answers GET /_ping with 200."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket_path))
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
        except (OSError, self.Error):
            return False
        return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, self.Error):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def docker(self, *args: str, input: bytes | str | None = None, timeout: float = 30,
               check: bool = True) -> subprocess.CompletedProcess:
        """The docker CLI against this daemon; text output captured."""
        if isinstance(input, str):
            input = input.encode()
        proc = subprocess.run(["docker", *args], input=input, capture_output=True,
                              env=self.env, timeout=timeout)
        out = subprocess.CompletedProcess(proc.args, proc.returncode,
                                          proc.stdout.decode(errors="replace"),
                                          proc.stderr.decode(errors="replace"))
        if check and out.returncode != 0:
            raise self.Error(f"docker {' '.join(args)} exited {out.returncode}: "
                             f"{out.stderr.strip()}")
        return out

    def import_busybox(self, tag: str = "busybox:latest") -> str:
        """Make ``tag`` from a busybox rootfs with ``docker import``; returns the image id."""
        from dockyard.testing.rootfs import import_busybox

        with tempfile.TemporaryDirectory(dir=self._need_base()) as tmp:
            return import_busybox(self, tag, Path(tmp))


def write_quietly(path: Path, value: str) -> None:
    """A write to a control file that may be gone already (teardown)."""
    try:
        path.write_text(value)
    except OSError:
        pass


def unescape(path: str) -> str:
    """A path field of /proc/self/mountinfo (octal escapes for space, tab, newline, \\)."""
    return path.encode().decode("unicode_escape") if "\\" in path else path


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, from /proc/self/mountinfo."""
    prefix = str(root).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    targets = (unescape(line.split()[4]) for line in lines)
    return [t for t in targets if t == str(root) or t.startswith(prefix)]
