"""dockyard-runtime as an alternative runtime of Debian's dockerd, driven by the real docker CLI.

Every test runs once with runc (registered as `runc-ref`, to validate the harness and the test
itself) and once with `dockyard`. One isolated dockerd serves the whole module (see
dockyard.testing.refdockerd).
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time

import pytest

from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox")

RUNC = shutil.which("runc") or "/usr/sbin/runc"
RUNTIMES = [pytest.param("runc-ref", marks=pytest.mark.requires("runc")), "dockyard"]


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("refdockerd") / "dockerd.log"
    with RefDockerd({"runc-ref": RUNC}, log_path=log_path) as daemon:
        daemon.import_busybox()
        yield daemon


@pytest.fixture(scope="module")
def hung() -> dict[str, str]:
    """Runtimes that hung a docker command, and which: their later tests fail at once."""
    return {}


@pytest.fixture(params=RUNTIMES)
def runtime(request, hung) -> str:
    if request.param in hung:
        pytest.fail(f"{request.param} hung earlier ({hung[request.param]}); not waiting again")
    return request.param


@pytest.fixture
def docker(dockerd, runtime, hung):
    """The docker CLI against the module's daemon; a timeout marks the runtime as hung."""

    def run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
        try:
            return dockerd.docker(*args, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            hung[runtime] = f"docker {' '.join(args)}: no answer in {timeout}s"
            raise

    return run


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{' '.join(proc.args)} -> {proc.returncode}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def container(docker, runtime):
    """A detached busybox `sleep 300` under the runtime; removed afterwards."""
    cid = ok(docker("run", "-d", "--runtime", runtime, BUSYBOX_TAG, "sleep", "300")).strip()
    yield cid
    docker("rm", "-f", cid)


@pytest.fixture
def status(docker):
    return lambda cid: ok(docker("inspect", "-f", "{{.State.Status}}", cid)).strip()


def test_run_prints(docker, runtime):
    out = ok(docker("run", "--rm", "--runtime", runtime, BUSYBOX_TAG, "echo", "hello"))
    assert out == "hello\n"


def test_exit_code_propagates(docker, runtime):
    proc = docker("run", "--rm", "--runtime", runtime, BUSYBOX_TAG, "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc.stderr


def test_exec_sees_pid1(docker, status, container):
    assert status(container) == "running"
    out = ok(docker("exec", container, "cat", "/proc/1/cmdline"))
    assert out == "sleep\x00300\x00"


def test_pause_unpause(docker, status, container):
    ok(docker("pause", container))
    assert status(container) == "paused"
    ok(docker("unpause", container))
    assert status(container) == "running"
    assert ok(docker("exec", container, "echo", "awake")) == "awake\n"


def test_top(docker, container):
    out = ok(docker("top", container))
    assert "sleep 300" in out, out


def test_stats(docker, container):
    out = ok(docker("stats", "--no-stream", "--format", "{{.ID}} {{.PIDs}}", container))
    assert out.split() == [container[:12], "1"], out


def test_stop_then_rm(docker, status, container):
    ok(docker("stop", "-t", "1", container))
    assert status(container) == "exited"
    ok(docker("rm", container))
    assert docker("inspect", container).returncode != 0


def test_interactive_tty(dockerd, runtime, hung):
    cmd = ["docker", "run", "-it", "--rm", "--runtime", runtime, BUSYBOX_TAG, "sh"]
    rc, out = run_in_pty(cmd, dockerd.env, b"echo hi; exit 5\r", prompt=b"# ", timeout=20)
    if rc is None:
        hung[runtime] = "docker run -it: no exit in 20s"
        pytest.fail(f"docker run -it did not exit in 20s; output: {out!r}")
    assert re.search(rb"(^|\n)hi\r?\n", out), out
    assert rc == 5, out


def run_in_pty(cmd: list[str], env: dict[str, str], feed: bytes, *, prompt: bytes,
               timeout: float) -> tuple[int | None, bytes]:
    """Run ``cmd`` on a new pseudo-terminal; type ``feed`` once ``prompt`` shows (or after 5 s).

    Returns the exit status (None if it had to be killed at the timeout) and all output.
    """
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                                start_new_session=True)
    finally:
        os.close(slave)
    out, fed = b"", False
    start = time.monotonic()
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave end is closed, the CLI is gone
                    break
                if not chunk:
                    break
                out += chunk
            if not fed and (prompt in out or time.monotonic() - start > 5):
                os.write(master, feed)
                fed = True
        else:
            proc.kill()
            proc.wait()
            return None, out
        return proc.wait(5), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
