"""Docker's list/prune filters as the image store applies them: arguments, matching, times.

Owns the pieces of Docker's ``filters.Args`` (api/types/filters/parse.go) that image queries
need, with its error words: normalising the wire forms (``{"dangling": ["true"]}`` and the
legacy ``{"dangling": {"true": true}}``), rejecting unknown keys, the boolean and key=value
matchers, Go's ``path.Match`` (which ``reference=`` patterns use, through distribution's
``FamiliarMatch``), and ``until=`` timestamps (moby's api/types/time GetTimestamp). Pure: the
current time is passed in where it matters.

Not here: what a filter means for images (image/service.py decides that).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Mapping

from dockyard.errdefs import InvalidArgument

Filters = dict[str, list[str]]


def invalid_filter(key: str, values: list[str] | None = None) -> InvalidArgument:
    """Docker's ``invalidFilter`` error: ``invalid filter 'key=v1,v2'``."""
    text = "invalid filter"
    if key:
        text += f" '{key}" + (f"={','.join(values)}" if values is not None else "") + "'"
    return InvalidArgument(text)


def parse_filters(raw: Mapping[str, object] | None) -> Filters:
    """Normalise filters to ``{key: [values...]}`` (order kept, duplicates dropped).

    Accepts what the API decodes: a list of values, the legacy map of value -> true, a single
    string, or any iterable of strings.
    """
    out: Filters = {}
    for key, value in (raw or {}).items():
        if not isinstance(key, str):
            raise InvalidArgument(f"invalid filter key {key!r}")
        if isinstance(value, str):
            values: Iterable[object] = [value]
        elif isinstance(value, Mapping):
            values = [k for k, v in value.items() if v]
        elif isinstance(value, Iterable):
            values = value
        else:
            raise invalid_filter(key)
        items = list(dict.fromkeys(values))
        if not all(isinstance(v, str) for v in items):
            raise invalid_filter(key)
        out[key] = items  # type: ignore[assignment]
    return out


def validate(filters: Filters, accepted: Iterable[str]) -> None:
    """InvalidArgument for the first key not in ``accepted`` (Args.Validate)."""
    allowed = set(accepted)
    for key in filters:
        if key not in allowed:
            raise invalid_filter(key)


def get_bool(filters: Filters, key: str, default: bool) -> bool:
    """Args.GetBoolOrDefault: ``true``/``1`` or ``false``/``0``; both or neither is invalid."""
    if key not in filters:
        return default
    values = set(filters[key])
    if not values:
        raise invalid_filter(key)
    is_false = bool(values & {"0", "false"})
    is_true = bool(values & {"1", "true"})
    if is_false == is_true:
        raise invalid_filter(key, filters[key])
    return is_true


def match_kv_list(filters: Filters, key: str, sources: Mapping[str, str] | None) -> bool:
    """Args.MatchKVList: every ``k`` or ``k=v`` of ``key`` is in ``sources``.

    No values for ``key``: True. Values but no sources: False.
    """
    wanted = filters.get(key)
    if not wanted:
        return True
    if not sources:
        return False
    for value in wanted:
        k, sep, v = value.partition("=")
        if k not in sources or (sep and sources[k] != v):
            return False
    return True


def match_labels(filters: Filters, labels: Mapping[str, str] | None) -> bool:
    """``label=`` must all match and, if given, ``label!=`` must not all match (prune's
    matchLabels: ``label!`` excludes only when every one of its values matches)."""
    if not match_kv_list(filters, "label", labels):
        return False
    if "label!" in filters and match_kv_list(filters, "label!", labels):
        return False
    return True


# -- Go's path.Match ---------------------------------------------------------------------------

ERR_BAD_PATTERN = "syntax error in pattern"


def path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` (not across ``/``), ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes;
    InvalidArgument "syntax error in pattern" for a malformed pattern."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name  # a trailing * matches the rest unless it has a /
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            matched = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok and not (not pattern and rest):
                    name, matched = rest, True
                    break
                i += 1
            if matched:
                continue
        while pattern:  # fail, but only after checking the rest of the pattern is well formed
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern, star = pattern[1:], True
    in_range, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            match, nrange = False, 0
            while True:
                if chunk.startswith("]") and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                if not failed and lo <= r <= hi:
                    match = True
                nrange += 1
            if match == negated:
                failed = True
        elif c == "?":
            if not failed:
                failed = s[0] == "/"
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise InvalidArgument(ERR_BAD_PATTERN)
            if not failed:
                failed = chunk[0] != s[0]
                s = s[1:]
            chunk = chunk[1:]
    return ("", False) if failed else (s, True)


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise InvalidArgument(ERR_BAD_PATTERN)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise InvalidArgument(ERR_BAD_PATTERN)
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise InvalidArgument(ERR_BAD_PATTERN)
    return r, rest


# -- timestamps ----------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+", re.ASCII)
_DURATION_PART_RE = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}
_DATE_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(\.\d+)?)?)?)?"
    r"(Z|[+-]\d\d:\d\d)?", re.ASCII)
_UNIX_RE = re.compile(r"-?\d+(?:\.\d{1,9})?", re.ASCII)


def parse_go_duration(value: str) -> float | None:
    """Seconds of a Go duration (``90m``, ``1h30m``, ``1.5s``, ``0``), or None if it is not one."""
    if value == "0":
        return 0.0
    if not _DURATION_RE.fullmatch(value):
        return None
    sign = -1.0 if value.startswith("-") else 1.0
    total = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART_RE.findall(value))
    return sign * total


def parse_timestamp(value: str, now: float | None = None) -> float:
    """Seconds since the epoch for a filter time (moby GetTimestamp): a Go duration before
    ``now``, an RFC 3339 date or date-time (local time without a zone), or unix seconds."""
    now = time.time() if now is None else now
    if value == "":
        raise InvalidArgument("invalid filter time: empty value")
    duration = parse_go_duration(value)
    if duration is not None:
        return now - duration
    m = _DATE_RE.fullmatch(value)
    if m and not (m.group(4) is None and m.group(8)):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        hour, minute, sec = (int(m.group(i) or 0) for i in (4, 5, 6))
        frac = float(m.group(7)) if m.group(7) else 0.0
        fields = (year, month, day, hour, minute, sec, 0, 0, -1)
        try:
            if m.group(8) is None:
                base = time.mktime(fields)  # no zone: local time, as Docker parses it
            else:
                base = calendar.timegm(fields)
                tz = m.group(8)
                if tz != "Z":
                    offset = int(tz[1:3]) * 3600 + int(tz[4:6]) * 60
                    base -= offset if tz[0] == "+" else -offset
        except (OverflowError, ValueError):
            raise InvalidArgument(f"invalid filter time {value!r}") from None
        return base + frac
    if _UNIX_RE.fullmatch(value):
        return float(value)
    raise InvalidArgument(f"failed to parse value as time or duration: {value!r}")
