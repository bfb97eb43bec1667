"""Signal names and numbers for x86_64 Linux, as `kill` takes them (KILL, SIGKILL, 9).

A table rather than the `signal` module, whose import (through `enum`) costs ~3 ms.
"""

from __future__ import annotations

from dockyard.errdefs import InvalidArgument

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
    "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
    "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29,
    "POLL": 29, "PWR": 30, "SYS": 31,
}
SIGRTMIN, SIGRTMAX = 34, 64


def parse_signal(text: str) -> int:
    """``9``, ``KILL``, ``SIGKILL``, ``kill``, ``RTMIN+3`` -> the signal number."""
    raw = text.strip()
    if raw.isdigit():
        num = int(raw)
        if 0 < num <= SIGRTMAX:
            return num
        raise InvalidArgument(f"invalid signal: {text}")
    name = raw.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return SIGNALS[name]
    for base, value, sign in (("RTMIN", SIGRTMIN, 1), ("RTMAX", SIGRTMAX, -1)):
        if name == base:
            return value
        if name.startswith(base + ("+" if sign > 0 else "-")) and name[len(base) + 1:].isdigit():
            num = value + sign * int(name[len(base) + 1:])
            if SIGRTMIN <= num <= SIGRTMAX:
                return num
    raise InvalidArgument(f"unknown signal {text!r}")
