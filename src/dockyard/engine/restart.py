"""Restart policies as Docker has them: no, always, unless-stopped, on-failure[:N], with
Docker's back-off (100 ms doubling up to 1 minute, reset after 10 s of running)."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument

INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0
NAMES = ("", "no", "always", "unless-stopped", "on-failure")


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def parse(cls, value: dict | None, auto_remove: bool | None = False) -> "RestartPolicy":
        value = value or {}
        if not isinstance(value, dict):
            raise InvalidArgument("RestartPolicy: expected an object")
        name = value.get("Name") or "no"
        retries = value.get("MaximumRetryCount") or 0
        if name not in NAMES:
            raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                                  "'no', 'always', 'on-failure', or 'unless-stopped'")
        if not isinstance(retries, int) or retries < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
        if retries and name != "on-failure":
            raise InvalidArgument("invalid restart policy: maximum retry count can only be used "
                                  "with 'on-failure'")
        if auto_remove and name not in ("no", ""):
            raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
        return cls(name, retries)

    def should_restart(self, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
        if manually_stopped:
            return False
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name == "on-failure":
            return exit_code != 0 and (self.maximum_retry_count == 0
                                       or restart_count < self.maximum_retry_count)
        return False

    @staticmethod
    def next_delay(previous: float | None, ran_for: float) -> float:
        if previous is None or ran_for >= RESET_AFTER:
            return INITIAL_DELAY
        return min(previous * 2, MAX_DELAY)
