"""Docker's human units, as the docker CLI prints and parses them (github.com/docker/go-units).

Owns sizes ("1.99MB", decimal, N significant digits), byte sizes with binary multipliers for
flags ("64m" -> 67108864, RAMInBytes), humanized durations ("About a minute", "Up 5 seconds" is
built by the daemon from the same function) and Go's ``time.Time.String()`` layout. Pure: no I/O.
"""

from __future__ import annotations

from dockyard.spec.humanize import human_duration  # noqa: F401  (re-exported)

import datetime as _dt
import math
import re

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_UNIT_PREFIXES = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def go_g(value: float, precision: int) -> str:
    """Go's ``fmt.Sprintf("%.*g", precision, value)`` (Python's %g matches it for finite values)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return "%.*g" % (precision, value)


def _size_and_unit(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(abbrs) - 1:
        size /= base
        i += 1
    return size, abbrs[i]


def human_size_with_precision(size: float, precision: int) -> str:
    """units.HumanSizeWithPrecision: decimal (1000) multiples, ``precision`` significant digits."""
    value, unit = _size_and_unit(float(size), 1000.0, _DECIMAL_ABBRS)
    return go_g(value, precision) + unit


def human_size(size: float) -> str:
    """units.HumanSize: four significant digits ("1.986MB")."""
    return human_size_with_precision(size, 4)


def bytes_size(size: float) -> str:
    """units.BytesSize: binary (1024) multiples, four significant digits ("23.54GiB")."""
    value, unit = _size_and_unit(float(size), 1024.0, _BINARY_ABBRS)
    return go_g(value, 4) + unit


def _parse_size(text: str, base: int) -> int:
    """go-units parseSize: a number, an optional space, then b, or k/m/g/t/p with b or ib."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{text}'")
    cut = sep + 1 if text[sep] != " " else sep
    num, sfx = text[:cut], text[sep + 1:]
    try:
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", num):
            raise ValueError
        size = float(num)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{num}": invalid syntax') from None
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not sfx:
        return int(size)
    bad = ValueError(f"invalid suffix: '{sfx}'")
    if len(sfx) > 3:
        raise bad
    sfx = sfx.lower()
    bad = ValueError(f"invalid suffix: '{sfx}'")
    if sfx[0] == "b":
        if len(sfx) > 1:
            raise bad
        return int(size)
    if sfx[0] not in _UNIT_PREFIXES:
        raise bad
    size *= base ** _UNIT_PREFIXES[sfx[0]]
    if (len(sfx) == 2 and sfx[1] != "b") or (len(sfx) == 3 and sfx[1:] != "ib"):
        raise bad
    return int(size)


def ram_in_bytes(text: str) -> int:
    """units.RAMInBytes: "64m" -> 67108864 (k/m/g/t/p are binary multiples here)."""
    return _parse_size(text, 1024)


def from_human_size(text: str) -> int:
    """units.FromHumanSize: "1k" -> 1000 (decimal multiples)."""
    return _parse_size(text, 1000)


def mem_bytes(text: str) -> int:
    """opts.MemBytes: RAMInBytes, for -m, --shm-size, --memory-reservation."""
    return ram_in_bytes(text)


def mem_swap_bytes(text: str) -> int:
    """opts.MemSwapBytes: like MemBytes but "-1" means unlimited swap."""
    return -1 if text == "-1" else ram_in_bytes(text)


def go_time_string(unix_seconds: int, tz: _dt.tzinfo | None = None) -> str:
    """``time.Unix(s, 0).String()`` in local time: "2006-01-02 15:04:05 -0700 MST"."""
    when = _dt.datetime.fromtimestamp(unix_seconds, tz or _dt.timezone.utc)
    if tz is None:
        when = when.astimezone()
    offset = when.strftime("%z")
    name = when.tzname() or offset
    if name.startswith(("UTC+", "UTC-")) or name == "UTC" and offset != "+0000":
        name = offset
    return f"{when:%Y-%m-%d %H:%M:%S} {offset} {name}"


def parse_rfc3339(text: str) -> _dt.datetime | None:
    """Parse Docker's RFC 3339 timestamps (nanoseconds allowed); None for Go's zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return None
    frac = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return _dt.datetime.fromisoformat(f"{match[1]}.{frac}{zone}")


def go_duration(text: str) -> float:
    """Go's time.ParseDuration ("1m30s", "500ms") in seconds; a bare number is seconds."""
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    sign = -1.0 if text.startswith("-") else 1.0
    if not parts or "".join(a + b for a, b in parts) != text.lstrip("+-"):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * sum(float(n) * units[u] for n, u in parts)
