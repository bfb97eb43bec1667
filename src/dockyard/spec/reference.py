"""Image references (``docker.io/library/busybox:latest@sha256:...``) as Docker parses them.

Owns the reference grammar and Docker's normalisation, as github.com/distribution/reference
defines them (regexp.go, reference.go, normalize.go): ``parse_reference`` is its ``Parse``
(syntax only, no defaults), ``parse_normalized_named`` its ``ParseNormalizedNamed`` (``busybox``
-> ``docker.io/library/busybox``), ``parse_docker_ref`` its ``ParseDockerRef``. Error messages
are that package's words, because Docker clients show them verbatim. Pure: no I/O, no registry
knowledge beyond Docker Hub's names.

Grammar (distribution/reference, reference.go)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] remote-name
    domain           := host [':' port-number]
    host             := domain-name | IPv4address | \\[ IPv6address \\]
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name      := path-component ['/' path-component]*
    path-component   := /[a-z0-9]+/ [separator /[a-z0-9]+/]*
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex      ; hex at least 32 digits
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errdefs import InvalidArgument
from dockyard.spec.digest import ALGORITHMS, Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
# distribution/reference checks this against the path (the name without its domain).
NAME_TOTAL_LENGTH_MAX = 255

# The building blocks of regexp.go. re.ASCII: Go's \w is [0-9A-Za-z_], Python's is Unicode.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

# Always used with fullmatch: Go's `$` never matches before a trailing newline, Python's does.
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_HEX_RE = re.compile(r"[a-f0-9]+", re.ASCII)

# Messages of distribution/reference (reference.go) and opencontainers/go-digest.
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_NAME_NOT_CANONICAL = "repository name must be canonical"


@dataclass(frozen=True, slots=True)
class Reference:
    """A named reference: ``domain/path[:tag][@digest]``; ``domain`` may be empty (unnormalised)."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """``domain/path``, or just the path when there is no domain."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as the Docker UI shows it: ``busybox``, ``user/repo``, ``localhost:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        # Only strip "library/" when no nested namespace follows (normalize.go, familiarizeName).
        return rest if self.path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in rest else self.path

    def __str__(self) -> str:
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The familiar form with tag and digest: ``busybox:latest``."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str) -> Reference:
        """This reference with ``tag`` (a digest, if any, is kept, as WithTag does)."""
        return Reference(self.domain, self.path, parse_tag(tag), self.digest)

    def with_digest(self, digest: str) -> Reference:
        """This reference with ``digest`` (a tag, if any, is kept, as WithDigest does)."""
        return Reference(self.domain, self.path, self.tag, _parse_digest(digest))

    def with_default_tag(self) -> Reference:
        """Add ``:latest`` when there is neither a tag nor a digest (TagNameOnly)."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, DEFAULT_TAG, None)

    def trimmed(self) -> Reference:
        """The name alone, without tag or digest (TrimNamed)."""
        return Reference(self.domain, self.path)

    @property
    def is_name_only(self) -> bool:
        return not self.tag and not self.digest


def parse_reference(s: str) -> Reference:
    """Parse ``s`` by the grammar alone (distribution's ``Parse``): no defaults are added.

    ``library/busybox`` parses with domain ``library``: only normalisation knows Docker Hub.
    """
    if not isinstance(s, str):
        raise InvalidArgument(ERR_REFERENCE_INVALID_FORMAT)
    if s == "":
        raise InvalidArgument(ERR_NAME_EMPTY)
    m = _REFERENCE_RE.fullmatch(s)
    if m is None:
        lower = s.lower()
        if lower != s and _REFERENCE_RE.fullmatch(lower):
            raise InvalidArgument(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidArgument(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = m.groups()
    domain, path = _split_name(name)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(ERR_NAME_TOO_LONG)
    return Reference(domain, path, tag or None, _parse_digest(digest) if digest else None)


def _split_name(name: str) -> tuple[str, str]:
    m = _NAME_RE.fullmatch(name)
    if m is None:  # cannot happen for a name the reference pattern matched
        return "", name
    return m.group(1) or "", m.group(2)


def parse_normalized_named(s: str) -> Reference:
    """Parse a name as the Docker UI takes it (ParseNormalizedNamed).

    ``busybox`` -> ``docker.io/library/busybox``; ``user/repo`` -> ``docker.io/user/repo``;
    ``index.docker.io/x`` -> ``docker.io/library/x``; a first component with a ``.`` or ``:``,
    or ``localhost``, or any uppercase letter, is a registry host. No default tag is added.
    """
    if not isinstance(s, str):
        raise InvalidArgument(ERR_REFERENCE_INVALID_FORMAT)
    if is_image_id(s):
        raise InvalidArgument(f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(s)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidArgument(f"invalid reference format: repository name ({remote}) must be lowercase")
    return parse_reference(f"{domain}/{remainder}")


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Split off the registry host the way Docker guesses it (normalize.go, splitDockerDomain)."""
    first, slash, rest = name.partition("/")
    if not slash:
        # A single component ("ubuntu", "ubuntu:22.04") is always an official image.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        # localhost, something like a host name or address, or uppercase (never a namespace)
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_docker_ref(s: str) -> Reference:
    """Normalise as Docker does before resolving (ParseDockerRef).

    A reference with both a tag and a digest keeps only the digest; one with neither gets
    ``:latest``.
    """
    ref = parse_normalized_named(s)
    if ref.tag and ref.digest:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.with_default_tag()


def parse_named(s: str) -> Reference:
    """Accept only a reference already in canonical form (ParseNamed)."""
    ref = parse_normalized_named(s)
    if str(ref) != s:
        raise InvalidArgument(ERR_NAME_NOT_CANONICAL)
    return ref


def parse_any_reference(s: str) -> Reference | Digest:
    """An image ID (64 hex -> ``sha256:<id>``), a digest, or a normalised name (ParseAnyReference)."""
    if is_image_id(s):
        return Digest(f"sha256:{s}")
    try:
        return Digest(s)
    except InvalidArgument:
        return parse_normalized_named(s)


def is_image_id(s: str) -> bool:
    """True when ``s`` is a full 64-hex image ID, which Docker never reads as a repository name."""
    return isinstance(s, str) and _IDENTIFIER_RE.fullmatch(s) is not None


def parse_tag(tag: str) -> str:
    """Validate a tag: ``[\\w][\\w.-]{0,127}``."""
    if not isinstance(tag, str) or _TAG_RE.fullmatch(tag) is None:
        raise InvalidArgument(ERR_TAG_INVALID_FORMAT)
    return tag


def _parse_digest(value: str) -> Digest:
    """Validate the digest part with go-digest's checks and messages (digest.Parse)."""
    if not isinstance(value, str):
        raise InvalidArgument("invalid checksum digest format")
    algo, sep, encoded = value.partition(":")
    if not sep or not algo or not encoded:
        raise InvalidArgument("invalid checksum digest format")
    if algo not in ALGORITHMS:
        raise InvalidArgument("unsupported digest algorithm")
    if len(encoded) != ALGORITHMS[algo]:
        raise InvalidArgument("invalid checksum digest length")
    if _HEX_RE.fullmatch(encoded) is None:
        raise InvalidArgument("invalid checksum digest format")
    return Digest(value)
