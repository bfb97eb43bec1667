"""Flag-time value checks of ``run``/``create`` (pflag ``Value.Set`` in docker's opts), pure.

Each takes the flag's text and returns the value to store or raises ValueError with the docker
CLI's message, which flags.py wraps as ``invalid argument "x" for "--flag" flag: ...``.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from typing import Any, Mapping

_WHITESPACE = " \t"


def nano_cpus(value: str) -> int:
    """opts.NanoCPUs: a rational number of CPUs -> nanoseconds."""
    try:
        cpus = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {value} as a rational number") from None
    nano = cpus * 10 ** 9
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def validate_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """opts.ValidateEnv: "K" alone takes the value from our environment when set."""
    environ = os.environ if environ is None else environ
    key, eq, _ = value.partition("=")
    if key == "":
        raise ValueError(f"invalid environment variable: {value}")
    if eq:
        return value
    return f"{key}={environ[key]}" if key in environ else value


def validate_label(value: str) -> str:
    key = value.split("=", 1)[0].strip(_WHITESPACE)
    if key == "":
        raise ValueError(f"invalid label '{value}': empty name")
    if any(c in key for c in _WHITESPACE):
        raise ValueError(f"label '{key}' contains whitespaces")
    return value


def validate_ip(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"IP address is not correctly formatted: {value}") from None


def validate_extra_host(value: str) -> str:
    """opts.ValidateExtraHost: host:ip or host=ip; "host-gateway" allowed."""
    import ipaddress

    sep = "=" if "=" in value else ":"
    name, found, ip = value.partition(sep)
    if not found or not name:
        raise ValueError(f"bad format for add-host: {value!r}")
    ip = ip.strip("[]") if ip.startswith("[") else ip
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f'invalid IP address in add-host: "{ip}"') from None
    return f"{name}:{ip}"


_ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}


def parse_ulimit(value: str) -> dict[str, Any]:
    """units.ParseUlimit: name=soft[:hard]."""
    name, eq, limits = value.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {value}")
    if name not in _ULIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    soft_s, colon, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if colon else soft
    except ValueError:
        bad = soft_s if not re.fullmatch(r"-?\d+", soft_s) else hard_s
        raise ValueError(f'strconv.ParseInt: parsing "{bad}": invalid syntax') from None
    if colon and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
            "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def validate_sysctl(value: str) -> str:
    key = value.split("=")[0]
    if "=" in value and (key in _SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        return value
    raise ValueError(f"sysctl '{value}' is not allowed")


def validate_attach(value: str) -> str:
    lower = value.lower()
    if lower in ("stdin", "stdout", "stderr"):
        return lower
    raise ValueError("valid streams are STDIN, STDOUT and STDERR")
