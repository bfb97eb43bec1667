"""Platforms (os/architecture/variant): the OCI record, normalisation, specifiers, matching.

Owns what "this image runs here" means. The rules are containerd's platforms package, which
Docker uses to pick a manifest from a list: names are normalised (``x86_64`` -> ``amd64``,
``aarch64`` -> ``arm64``, ``armhf`` -> ``arm/v7``), and a wanted platform also accepts older
compatible ones in a fixed order of preference (``platforms.Only``):

    amd64/vN  -> amd64/vN, amd64/v(N-1) ... amd64, then 386
    arm/vN    -> arm/vN ... arm/v5
    arm64     -> arm64 (v8), then arm/v8, arm/v7, arm/v6, arm/v5
    arm64/v9.x-> v9.x ... v9, v8.(x+5) ... v8, then 32-bit arm

Pure, except that `default_platform` asks ``os.uname()`` when not told the machine. Windows
``os.version`` matching is not implemented (this engine runs Linux images only).
"""

from __future__ import annotations

import os as _os
import re
from urllib.parse import unquote

from dockyard.errdefs import InvalidArgument
from dockyard.spec.codec import F, Struct

_HOST_OS = "linux"  # what containerd substitutes for an empty os (runtime.GOOS)


class Platform(Struct):
    """The OCI ``platform`` object (image-index.md), plus Docker's manifest-list ``features``."""

    architecture: str
    os: str
    os_version: str | None = F("os.version", None)
    os_features: tuple[str, ...] = F("os.features", ())
    variant: str | None = None
    features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return format_platform(self)


# -- normalisation ---------------------------------------------------------------------------

def normalize_os(os_name: str | None) -> str:
    name = (os_name or _HOST_OS).lower()
    return "darwin" if name == "macos" else name


def normalize_arch(arch: str | None, variant: str | None) -> tuple[str, str]:
    """Canonical (architecture, variant); an empty variant is ``""`` (containerd normalizeArch)."""
    arch, variant = (arch or "").lower(), (variant or "").lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize_platform(p: Platform) -> Platform:
    arch, variant = normalize_arch(p.architecture, p.variant)
    return p.replace(os=normalize_os(p.os), architecture=arch, variant=variant or None,
                     os_features=tuple(sorted(set(p.os_features))))


def format_platform(p: Platform) -> str:
    """``linux/arm64/v8``; ``unknown`` without an os (containerd platforms.Format)."""
    if not p.os:
        return "unknown"
    return "/".join(part for part in (p.os, p.architecture, p.variant) if part)


# -- specifiers ------------------------------------------------------------------------------

_KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
    "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"})
_KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64",
    "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64",
    "s390", "s390x", "sparc", "sparc64", "wasm"})
_OS_RE = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?", re.ASCII)
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_platform(specifier: str, host: Platform | None = None) -> Platform:
    """Parse ``<os>|<arch>|<os>/<arch>[/<variant>]`` as ``docker --platform`` does.

    ``<os>`` may carry options: ``windows(10.0.17763+win32k)``. A lone os or architecture is
    completed from ``host`` (default: this machine). Messages are containerd's.
    """
    if "*" in specifier:
        raise InvalidArgument(f"{specifier!r}: wildcards not yet supported: invalid argument")
    parts = specifier.split("/", 3)
    m = _OS_RE.fullmatch(parts[0])
    if m is None:
        raise InvalidArgument(f"{parts[0]!r} is an invalid OS component of {specifier!r}: invalid argument")
    os_name = normalize_os(m.group(1))
    os_version = _decode_os_option(m.group(2) or "", specifier) or None
    features = tuple(_decode_os_option(f, specifier) for f in (m.group(3) or "+")[1:].split("+") if f)
    for part in parts[1:]:
        if not _COMPONENT_RE.fullmatch(part):
            raise InvalidArgument(f"{part!r} is an invalid component of {specifier!r}: invalid argument")
    base = Platform(os=os_name, architecture="", os_version=os_version, os_features=features)
    if len(parts) == 1:
        return _complete(base, parts[0], specifier, host or default_platform())
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return base.replace(architecture=arch, variant=variant or None)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        if arch == "arm64" and not variant:
            variant = "v8"
        return base.replace(architecture=arch, variant=variant or None)
    raise InvalidArgument(f"{specifier!r}: cannot parse platform specifier: invalid argument")


def _complete(base: Platform, word: str, specifier: str, host: Platform) -> Platform:
    """A lone word is an os (take the host's architecture) or an architecture (the host's os)."""
    if base.os in _KNOWN_OS:
        variant = host.variant if host.architecture == "arm" and host.variant != "v7" else None
        return base.replace(architecture=host.architecture, variant=variant)
    arch, variant = normalize_arch(word, "")
    if arch == "arm" and variant == "v7":
        variant = ""
    if arch in _KNOWN_ARCH:
        return base.replace(os=host.os, architecture=arch, variant=variant or None)
    raise InvalidArgument(f"{specifier!r}: unknown operating system or architecture: invalid argument")


def _decode_os_option(value: str, specifier: str) -> str:
    if "%" not in value:
        return value
    if _BAD_ESCAPE_RE.search(value):
        raise InvalidArgument(f"{specifier!r} has an invalid OS option {value!r}: invalid URL escape")
    return unquote(value)


# -- the host --------------------------------------------------------------------------------

# uname machine -> (GOARCH, variant) as Docker reports it
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"), "armv8b": ("arm64", "v8"),
    "armv8l": ("arm", "v8"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"), "armv5tejl": ("arm", "v5"),
    "i386": ("386", None), "i486": ("386", None), "i586": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "ppc64": ("ppc64", None), "s390x": ("s390x", None),
    "riscv64": ("riscv64", None), "loongarch64": ("loong64", None), "mips64": ("mips64le", None),
}


def default_platform(machine: str | None = None, system: str | None = None) -> Platform:
    """This machine's platform (``linux/amd64`` on x86_64), as containerd's DefaultSpec.

    The CPU's feature level is not probed: amd64 gets no variant (v1, matching every amd64
    image) and arm the variant its uname name implies.
    """
    if machine is None or system is None:
        uname = _os.uname()
        machine, system = machine or uname.machine, system or uname.sysname
    arch, variant = _MACHINES.get(machine.lower(), (machine.lower(), None))
    return Platform(os=system.lower(), architecture=arch, variant=variant)


# -- matching --------------------------------------------------------------------------------

_ATOI_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: optional sign and ASCII digits, nothing else."""
    return int(text) if _ATOI_RE.fullmatch(text) else None


def _compatible(arch: str, variant: str) -> list[tuple[str, str]]:
    """(arch, variant) pairs a platform runs, best first (containerd's platformVector)."""
    out = [(arch, variant)]
    if arch == "amd64":
        level = _atoi(variant.removeprefix("v"))
        if level is not None and level > 1:
            out += [("amd64", f"v{n}") for n in range(level - 1, 0, -1)]
        out.append(("386", ""))
    elif arch == "arm":
        level = _atoi(variant.removeprefix("v"))
        if level is not None and level > 5:
            out += [("arm", f"v{n}") for n in range(level - 1, 4, -1)]
    elif arch == "arm64":
        out += _arm64_compatible(variant or "v8")
    return out


def _arm64_compatible(variant: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    major_text, dot, minor_text = variant.partition(".")
    major = _atoi(major_text.removeprefix("v"))
    if major is not None and major >= 8:
        minor = 0
        if len(variant) == 4 and dot and _atoi(minor_text) is not None:
            minor = _atoi(minor_text)
        if major == 9:
            out += [("arm64", f"v9.{n}" if n else "v9") for n in range(minor - 1, -1, -1)]
            major, minor = 8, minor + 5  # v9.0 forked from v8.5: v9.x runs v8.(x+5)
            out.append(("arm64", f"v8.{minor}"))
        out += [("arm64", f"v{major}.{n}" if n else f"v{major}") for n in range(minor - 1, -1, -1)]
    if variant.startswith(("v8.", "v9.")):
        variant = "v8"
    return out + _compatible("arm", variant)


def _key(p: Platform) -> tuple[str, str, str]:
    arch, variant = normalize_arch(p.architecture, p.variant)
    return normalize_os(p.os), arch, variant


def platform_rank(want: Platform, have: Platform, *, strict: bool = False) -> int | None:
    """How well ``have`` serves ``want``: 0 is exact, higher is a less preferred fallback;
    None when it does not run at all. ``strict`` accepts only the normalised ``want`` itself
    (containerd's OnlyStrict)."""
    want_os, arch, variant = _key(want)
    have_key = _key(have)
    if have_key[0] != want_os or not set(have.os_features) <= set(want.os_features):
        return None
    candidates = [(arch, variant)] if strict else _compatible(arch, variant)
    for rank, (c_arch, c_variant) in enumerate(candidates):
        if (want_os, *normalize_arch(c_arch, c_variant)) == have_key:
            return rank
    return None


def platform_matches(want: Platform, have: Platform, *, strict: bool = False) -> bool:
    """Whether an image for ``have`` runs where ``want`` is wanted (containerd platforms.Only)."""
    return platform_rank(want, have, strict=strict) is not None


def match_order(want: Platform, candidates: list[Platform | None], *, strict: bool = False) -> list[int]:
    """Indices of the candidates that match ``want``, best first, ties in input order.

    As Docker picks from a manifest list: a candidate without a platform matches but comes
    last (containerd images.Manifest); when nothing matches an ``arm`` want, any variant of
    arm is taken (moby's fallback for lists that predate variants).
    """
    ranked = []
    for i, have in enumerate(candidates):
        rank = 1 << 30 if have is None else platform_rank(want, have, strict=strict)
        if rank is not None:
            ranked.append((rank, i))
    if not ranked and _key(want)[1] == "arm":
        want_os = normalize_os(want.os)
        ranked = [(0, i) for i, have in enumerate(candidates)
                  if have is not None and _key(have)[:2] == (want_os, "arm")]
    return [i for _, i in sorted(ranked)]
