"""Image references as the docker CLI handles them (github.com/distribution/reference), pure.

``parse_reference`` validates "[domain[:port]/]path[:tag][@digest]" with distribution's grammar
and its error messages; ``familiar_name`` and ``familiar_string`` give the short forms docker
prints ("busybox" for "docker.io/library/busybox").
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument
from dockyard.spec import reference as _ref

DEFAULT_DOMAIN = _ref.DEFAULT_DOMAIN


class ReferenceError(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    """The parts of a reference as the CLI prints them ("" for an absent tag or digest)."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def parse_reference(ref: str) -> Reference:
    """reference.ParseNormalizedNamed (plus the tag and digest), from spec.reference."""
    try:
        r = _ref.parse_normalized_named(ref)
    except InvalidArgument as exc:
        raise ReferenceError(str(exc)) from None
    return Reference(r.domain, r.path, r.tag or "", str(r.digest) if r.digest else "")


def split_reference(ref: str) -> tuple[str, str, str]:
    """(name, tag, digest) without validation; empty strings when absent."""
    name, _, digest = ref.partition("@")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def familiar_name(name: str) -> str:
    """reference.FamiliarName: "docker.io/library/busybox" -> "busybox"."""
    first, sep, rest = name.partition("/")
    if sep and first in (DEFAULT_DOMAIN, "index.docker.io"):
        name = rest
        if name.startswith("library/") and name.count("/") == 1:
            name = name[len("library/"):]
    return name


def familiar_string(ref: str) -> str:
    name, tag, digest = split_reference(ref)
    out = familiar_name(name)
    if tag:
        out += ":" + tag
    if digest:
        out += "@" + digest
    return out
