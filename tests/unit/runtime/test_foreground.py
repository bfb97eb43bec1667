"""The foreground runtime's signal forwarding: nothing is lost before the process is known."""

import os
import signal
import subprocess
import sys

import pytest

from dockyard.runtime import foreground as fg


@pytest.fixture
def restore_handlers():
    saved = {sig: signal.getsignal(sig) for sig in fg._FORWARDED}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_signal_before_attach_is_held_then_delivered(restore_handlers):
    fwd = fg.Forwarder().install()
    os.kill(os.getpid(), signal.SIGUSR1)  # arrives while the container is still being made
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.poll() is None
        fwd.attach(child.pid, None)
        assert child.wait(timeout=10) == -signal.SIGUSR1
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_signals_after_attach_go_to_the_process(restore_handlers):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        fg.Forwarder().install().attach(child.pid, None)
        os.kill(os.getpid(), signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_wait_exit_reports_a_signal_death_shell_style(restore_handlers):
    child = subprocess.Popen([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])
    assert fg.wait_exit(child.pid) == 128 + 9
    child.returncode = 0  # reaped by wait_exit
