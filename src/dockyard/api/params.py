"""Query parameters as dockerd reads them: booleans, filters JSON, timestamps, repo/tag pairs.

Owns the parsing of request parameters into plain values (moby api/server/httputils: BoolValue,
BoolValueOrDefault, RepoTagReference; api/types/filters FromJSON; api/types/time
ParseTimestamps), with dockerd's error words. Pure: no engine, no I/O; every failure is an
InvalidArgument (400).
"""

from __future__ import annotations

import math
import re

import orjson

from dockyard.errdefs import InvalidArgument
from dockyard.http.headers import Query
from dockyard.spec.reference import Reference, parse_normalized_named, parse_tag

Filters = dict[str, list[str]]

_FALSE = ("", "0", "no", "false", "none")


def bool_value(query: Query, key: str) -> bool:
    """httputils.BoolValue: anything but "", 0, no, false, none (any case) is true."""
    return (query.get(key) or "").strip().lower() not in _FALSE


def bool_or_default(query: Query, key: str, default: bool) -> bool:
    """httputils.BoolValueOrDefault: `default` when the key is absent, else `bool_value`."""
    return default if key not in query else bool_value(query, key)


def int_value(query: Query, key: str, default: int | None = None) -> int | None:
    raw = (query.get(key) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"invalid value for {key}: {raw!r}: not an integer") from None


def parse_filters_json(text: str | None) -> Filters:
    """filters.FromJSON: ``{"key": {"value": true}}`` or the legacy ``{"key": ["value"]}``.

    Values keep their order, duplicates dropped. Anything else is Docker's "invalid filter".
    """
    if not text:
        return {}
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidArgument("invalid filter") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid filter")
    as_maps = _decode(doc, dict)
    if as_maps is not None:
        return as_maps
    as_lists = _decode(doc, list)
    if as_lists is not None:
        return as_lists
    raise InvalidArgument("invalid filter")


def _decode(doc: dict, kind: type) -> Filters | None:
    """Every value a `kind` (dict of value -> bool, or list of strings), or None."""
    out: Filters = {}
    for key, value in doc.items():
        if value is None:
            out[key] = []
            continue
        if not isinstance(value, kind):
            return None
        if kind is dict:
            if not all(isinstance(v, bool) for v in value.values()):
                return None
            items = list(value)
        else:
            if not all(isinstance(v, str) for v in value):
                return None
            items = value
        out[key] = list(dict.fromkeys(items))
    return out


_TIMESTAMP = re.compile(r"([+-]?\d+)(?:\.(\d*))?")


def parse_timestamp(value: str | None) -> int | None:
    """timetypes.ParseTimestamps as /events reads `since`/`until`: ``seconds[.nanoseconds]``
    (what the CLI sends after resolving durations and dates itself) -> nanoseconds since the
    epoch; None for an empty value."""
    if value is None or value == "":
        return None
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        raise InvalidArgument(f"invalid timestamp {value!r}: expected seconds[.nanoseconds] "
                              "since the epoch")
    seconds = int(m[1])
    frac = m[2] or ""
    nanos = 0
    if frac:
        # As moby: the digits are scaled to nanoseconds whatever their number.
        nanos = int(int(frac) * math.pow(10, 9 - len(frac)))
    sign = -1 if m[1].startswith("-") else 1
    return seconds * 1_000_000_000 + sign * nanos


def repo_tag_reference(repo: str | None, tag: str | None) -> Reference | None:
    """httputils.RepoTagReference: ``repo`` (which may carry a tag) and ``tag`` (which wins)
    as a tagged reference; None when ``repo`` is empty."""
    if not repo:
        return None
    ref = parse_normalized_named(repo)
    if ref.digest is not None:
        raise InvalidArgument("cannot import digest reference")
    if tag:
        return ref.with_tag(parse_tag(tag))
    return ref.with_default_tag()
