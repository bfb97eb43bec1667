"""What the engine makes of pull/push parameters, and the shape of its progress messages."""

from __future__ import annotations

import pytest

from dockyard.engine.distribution import _reporter, parse_mirror, pull_reference
from dockyard.errdefs import InvalidArgument


@pytest.mark.parametrize("image,tag,expected", [
    ("busybox", "", "docker.io/library/busybox:latest"),
    ("busybox", "1.36", "docker.io/library/busybox:1.36"),
    ("busybox:", "", "docker.io/library/busybox:latest"),
    ("127.0.0.1:5000/a/b", "v1", "127.0.0.1:5000/a/b:v1"),
    ("127.0.0.1:5000/a/b", "sha256:" + "a" * 64, "127.0.0.1:5000/a/b@sha256:" + "a" * 64),
    ("a/b@sha256:" + "b" * 64, "", "docker.io/a/b@sha256:" + "b" * 64),
])
def test_pull_reference(image, tag, expected):
    assert str(pull_reference(image, tag)) == expected


def test_pull_reference_refuses_bad_input():
    with pytest.raises(InvalidArgument):
        pull_reference("library/UPPER", "")
    with pytest.raises(InvalidArgument):
        pull_reference("busybox", "sha256:nothex")
    with pytest.raises(InvalidArgument):
        pull_reference("busybox", "bad tag!")


def test_mirrors():
    assert parse_mirror("https://mirror.example:5000") == "mirror.example:5000"
    assert parse_mirror("http://127.0.0.1:5000/") == "127.0.0.1:5000"
    for bad in ("ftp://x", "https://x/path", "https://"):
        with pytest.raises(InvalidArgument):
            parse_mirror(bad)


def test_messages_have_dockerds_fields():
    out = []
    report = _reporter(out.append)
    report("latest", "Pulling from library/busybox", None, None)
    report("abc", "Pulling fs layer", None, None)
    report("abc", "Downloading", 10, 100)
    report(None, "The push refers to repository [x]", None, None)
    assert out == [
        {"status": "Pulling from library/busybox", "id": "latest"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"},
        {"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "id": "abc"},
        {"status": "The push refers to repository [x]"},
    ]
