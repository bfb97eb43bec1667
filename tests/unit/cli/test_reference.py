"""Image references: validation, normalisation and the familiar forms docker prints."""

from __future__ import annotations

import pytest

from dockyard.cli.reference import (ReferenceError, familiar_name, familiar_string,
                                    parse_reference, split_reference)


@pytest.mark.parametrize("ref, full", [
    ("busybox", "docker.io/library/busybox"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/app", "docker.io/user/app"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("registry.example.com/x", "registry.example.com/x"),
    ("index.docker.io/library/alpine", "docker.io/library/alpine"),
    ("a@sha256:" + "a" * 64, "docker.io/library/a@sha256:" + "a" * 64),
])
def test_normalised(ref, full):
    assert str(parse_reference(ref)) == full


@pytest.mark.parametrize("ref, message", [
    ("Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
    ("a:b:c", "invalid reference format"),
    ("", "invalid reference format"),
    ("a" * 64 if False else "f" * 64, "cannot specify 64-byte hexadecimal strings"),
])
def test_invalid(ref, message):
    with pytest.raises(ReferenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_reference(ref)


def test_familiar_forms():
    assert familiar_name("docker.io/library/busybox") == "busybox"
    assert familiar_name("docker.io/user/app") == "user/app"
    assert familiar_name("quay.io/x/y") == "quay.io/x/y"
    assert familiar_string("docker.io/library/busybox:latest") == "busybox:latest"
    assert split_reference("localhost:5000/a:t@sha256:x") == ("localhost:5000/a", "t", "sha256:x")
