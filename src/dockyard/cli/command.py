"""What every command gets: the daemon connection, the CLI config, our output streams.

Also the docker CLI's pattern for commands over several objects (stop, rm, kill, ...): print
each name that succeeded on stdout, each failure on stderr, and exit 1 if anything failed.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TextIO

from dockyard.cli.client import CLIConfig, CLIError, Daemon, error_message


@dataclass
class Ctx:
    daemon: Daemon
    config: CLIConfig
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    debug: bool = False

    @property
    def api(self) -> Any:
        return self.daemon.api

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def eprint(self, text: str) -> None:
        self.err.write(text + "\n")

    def stdin_is_tty(self) -> bool:
        return _isatty(sys.stdin)

    def stdout_is_tty(self) -> bool:
        return _isatty(self.out)


def _isatty(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def describe(exc: BaseException) -> str:
    """The docker CLI's wording for an error from the SDK or from us."""
    if isinstance(exc, CLIError):
        return exc.message
    return error_message(exc)


def api_errors() -> tuple[type[BaseException], ...]:
    import docker.errors

    return (docker.errors.APIError, docker.errors.DockerException, CLIError)


def for_each(ctx: Ctx, names: Iterable[str], action: Callable[[str], Any],
             echo: Callable[[str, Any], str | None] | None = None) -> int:
    """Run ``action`` on each name; print the name (or ``echo``) or the error; 1 on any error."""
    errors = []
    for name in names:
        try:
            result = action(name)
        except api_errors() as exc:
            errors.append(describe(exc))
            continue
        line = name if echo is None else echo(name, result)
        if line is not None:
            ctx.print(line)
            ctx.out.flush()
    if errors:
        raise CLIError("\n".join(errors))
    return 0
