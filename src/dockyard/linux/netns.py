"""Network namespaces as files, made and entered without forking.

Owns the three kernel interactions the network layer needs around namespaces: making a new
network namespace and pinning it as an nsfs bind mount at a path (``create_netns``), running
the calling *thread* inside one (``in_netns``), and removing a pinned one (``remove_netns``).

Network namespaces are per task, so a thread may ``unshare(CLONE_NEWNET)`` or ``setns`` and
come back without touching the rest of the process (setns(2), unshare(2)); the daemon never
forks (DESIGN.md). Callers run these from worker threads, never on the event loop's thread.
A thread that cannot return to its namespace is a broken process: that raises SystemExit-like
``NetnsLeak`` instead of quietly going on in the wrong namespace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from dockyard.linux.syscalls import CLONE_NEWNET, SYS

MS_BIND = 0x1000
MNT_DETACH = 0x2


class NetnsLeak(BaseException):
    """A thread could not return to the namespace it started in."""


@contextlib.contextmanager
def in_netns(path: str | None) -> Iterator[None]:
    """Run the body in the network namespace pinned at ``path`` (this thread only).
    ``None`` runs it where the thread is."""
    if path is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            SYS.setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            yield
        finally:
            try:
                SYS.setns(home, CLONE_NEWNET)
            except OSError as exc:  # pragma: no cover - the kernel refused to take us back
                raise NetnsLeak(f"cannot return to the daemon's network namespace: {exc}") from exc
    finally:
        os.close(home)


def create_netns(path: str) -> None:
    """A new network namespace, pinned at ``path`` (a bind mount of its nsfs file)."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            SYS.unshare(CLONE_NEWNET)
            try:
                SYS.mount("/proc/thread-self/ns/net", path, None, MS_BIND)
            finally:
                try:
                    SYS.setns(home, CLONE_NEWNET)
                except OSError as exc:  # pragma: no cover
                    raise NetnsLeak(f"cannot return to the daemon's network namespace: {exc}") \
                        from exc
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
    finally:
        os.close(home)


def remove_netns(path: str) -> None:
    """Unpin and remove ``path``; the namespace dies with its last process. Missing is fine."""
    try:
        SYS.umount(path, MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (22, 2):  # EINVAL: not a mount point; ENOENT
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def is_pinned(path: str) -> bool:
    """Whether ``path`` is a pinned namespace (an nsfs mount), not an empty leftover file."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_dev != os.stat(os.path.dirname(path)).st_dev
