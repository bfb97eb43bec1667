"""Query parameters as dockerd reads them (httputils, filters.FromJSON, ParseTimestamps)."""

from __future__ import annotations

import pytest

from dockyard.api import params
from dockyard.errdefs import InvalidArgument
from dockyard.http.headers import Query


@pytest.mark.parametrize("raw, expected", [
    ("", False), ("0", False), ("no", False), ("false", False), ("FALSE", False),
    ("none", False), (" 0 ", False), ("1", True), ("true", True), ("yes", True), ("x", True),
])
def test_bool_value(raw, expected):
    assert params.bool_value(Query.parse(f"all={raw}"), "all") is expected


def test_bool_value_absent_and_default():
    q = Query.parse("other=1")
    assert params.bool_value(q, "all") is False
    assert params.bool_or_default(q, "quiet", True) is True
    assert params.bool_or_default(Query.parse("quiet=0"), "quiet", True) is False
    assert params.bool_or_default(Query.parse("quiet="), "quiet", True) is False  # present


def test_int_value():
    assert params.int_value(Query.parse("t=10"), "t") == 10
    assert params.int_value(Query.parse(""), "t", 5) == 5
    with pytest.raises(InvalidArgument, match="invalid value for t"):
        params.int_value(Query.parse("t=ten"), "t")


@pytest.mark.parametrize("text, expected", [
    (None, {}), ("", {}), ("null", {}), ("{}", {}),
    ('{"dangling":{"true":true}}', {"dangling": ["true"]}),
    ('{"label":{"a=1":true,"b":true}}', {"label": ["a=1", "b"]}),
    ('{"dangling":["true"]}', {"dangling": ["true"]}),          # the legacy form (docker-py)
    ('{"reference":["a","b","a"]}', {"reference": ["a", "b"]}),
    ('{"type":null}', {"type": []}),
])
def test_filters_json(text, expected):
    assert params.parse_filters_json(text) == expected


@pytest.mark.parametrize("text", [
    "{", "[]", '"x"', "1", '{"a":"b"}', '{"a":{"b":"c"}}', '{"a":[1]}',
    '{"a":{"x":true},"b":["y"]}',  # mixed forms: neither decoding takes it, as in Go
])
def test_filters_json_invalid(text):
    with pytest.raises(InvalidArgument, match="^invalid filter$"):
        params.parse_filters_json(text)


@pytest.mark.parametrize("text, ns", [
    (None, None), ("", None), ("10", 10_000_000_000), ("10.5", 10_500_000_000),
    ("10.000000001", 10_000_000_001), ("1700000000.123456789", 1700000000_123456789),
    ("0", 0), ("-1", -1_000_000_000),
])
def test_timestamps(text, ns):
    assert params.parse_timestamp(text) == ns


@pytest.mark.parametrize("text", ["abc", "10m", "2024-01-01", "1.2.3", " 1"])
def test_timestamps_invalid(text):
    with pytest.raises(InvalidArgument, match="invalid timestamp"):
        params.parse_timestamp(text)


@pytest.mark.parametrize("repo, tag, expected", [
    ("busybox", "", "docker.io/library/busybox:latest"),
    ("busybox", "1.36", "docker.io/library/busybox:1.36"),
    ("busybox:old", "new", "docker.io/library/busybox:new"),     # the tag parameter wins
    ("busybox:old", "", "docker.io/library/busybox:old"),
    ("localhost:5000/a/b", "", "localhost:5000/a/b:latest"),
])
def test_repo_tag_reference(repo, tag, expected):
    assert str(params.repo_tag_reference(repo, tag)) == expected


def test_repo_tag_reference_errors():
    assert params.repo_tag_reference("", "x") is None
    assert params.repo_tag_reference(None, None) is None
    with pytest.raises(InvalidArgument, match="cannot import digest reference"):
        params.repo_tag_reference("busybox@sha256:" + "a" * 64, "")
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        params.repo_tag_reference("busybox", "bad tag")
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        params.repo_tag_reference("BusyBox", "")
