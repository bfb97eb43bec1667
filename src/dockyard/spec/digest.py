"""Content digests as the OCI image spec defines them (descriptor.md#digests).

Owns parsing and validating ``algorithm:encoded`` strings and computing them. Only sha256 and
sha512 are registered algorithms; their encoded part is lowercase hex of fixed length.
"""

from __future__ import annotations

import hashlib

from dockyard.errdefs import InvalidArgument

_HEX = frozenset("0123456789abcdef")
ALGORITHMS = {"sha256": 64, "sha512": 128}


class Digest(str):
    """A validated digest string, e.g. ``sha256:e3b0...``; compares and hashes as a str."""

    __slots__ = ()

    def __new__(cls, value: str) -> "Digest":
        if isinstance(value, Digest):
            return value
        if not isinstance(value, str):
            raise InvalidArgument(f"invalid digest: {value!r}")
        algo, sep, encoded = value.partition(":")
        if not sep or algo not in ALGORITHMS:
            raise InvalidArgument(f"invalid digest {value!r}: unsupported or missing algorithm")
        if len(encoded) != ALGORITHMS[algo] or not set(encoded) <= _HEX:
            raise InvalidArgument(f"invalid digest {value!r}: {algo} needs {ALGORITHMS[algo]} lowercase hex digits")
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def encoded(self) -> str:
        return self.partition(":")[2]

    @property
    def hex(self) -> str:
        return self.encoded

    def hasher(self):
        return hashlib.new(self.algorithm)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> "Digest":
        return cls(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")

    @classmethod
    def from_hasher(cls, hasher) -> "Digest":
        return cls(f"{hasher.name}:{hasher.hexdigest()}")


def parse_digest(value: str) -> Digest:
    return Digest(value)


def is_digest(value: str) -> bool:
    try:
        Digest(value)
        return True
    except InvalidArgument:
        return False
