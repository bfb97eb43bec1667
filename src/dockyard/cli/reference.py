"""Image references as the docker CLI handles them (github.com/distribution/reference), pure.

``parse_reference`` validates "[domain[:port]/]path[:tag][@digest]" with distribution's grammar
and its error messages; ``familiar_name`` and ``familiar_string`` give the short forms docker
prints ("busybox" for "docker.io/library/busybox").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"((?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
                        rf"(?::({_TAG}))?(?:@({_DIGEST}))?")
DEFAULT_DOMAIN = "docker.io"


class ReferenceError(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
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


def split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in ("index.docker.io",):
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    return domain, path


def parse_reference(ref: str) -> Reference:
    """reference.ParseNormalizedNamed (plus the tag and digest)."""
    if not ref:
        raise ReferenceError("invalid reference format")
    if re.fullmatch(r"[a-f0-9]{64}", ref):
        raise ReferenceError(f"invalid repository name ({ref}), cannot specify 64-byte "
                             "hexadecimal strings")
    match = _REFERENCE.fullmatch(ref)
    if match is None:
        lowered = _REFERENCE.fullmatch(ref.lower())
        if lowered is not None:
            name = split_reference(ref)[0]
            raise ReferenceError(f"invalid reference format: repository name "
                                 f"({split_domain(name)[1]}) must be lowercase")
        raise ReferenceError("invalid reference format")
    name, tag, digest = match[1], match[2] or "", match[3] or ""
    if len(name) > 255:
        raise ReferenceError("repository name must not be more than 255 characters")
    domain, path = split_domain(name)
    return Reference(domain, path, tag, digest)


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
