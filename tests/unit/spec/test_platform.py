"""Platforms: normalisation, specifiers, the host default and containerd's matching order."""

import pytest
from hypothesis import given, strategies as hs

from dockyard.errdefs import InvalidArgument
from dockyard.spec.codec import from_json, to_json
from dockyard.spec.platform import (
    Platform, default_platform, format_platform, match_order, normalize_arch, normalize_platform,
    parse_platform, platform_matches, platform_rank,
)


def P(spec: str, **kw) -> Platform:
    """linux/arm/v7 -> Platform, without any normalisation."""
    os_, arch, *variant = spec.split("/")
    return Platform(os=os_, architecture=arch, variant=variant[0] if variant else None, **kw)


def test_platform_json_uses_dotted_keys():
    data = {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5820",
            "os.features": ["win32k"], "variant": "v3", "features": ["sse4"], "x-extra": 1}
    p = from_json(Platform, data)
    assert (p.os_version, p.os_features, p.features, p.extra) == (
        "10.0.17763.5820", ("win32k",), ("sse4",), {"x-extra": 1})
    assert to_json(p) == data
    assert str(p) == "windows/amd64/v3"


@pytest.mark.parametrize("arch, variant, expected", [
    ("x86_64", None, ("amd64", "")), ("x86-64", "", ("amd64", "")), ("AMD64", "V1", ("amd64", "")),
    ("amd64", "v3", ("amd64", "v3")), ("i386", "x", ("386", "")), ("aarch64", None, ("arm64", "")),
    ("arm64", "8", ("arm64", "")), ("arm64", "v8", ("arm64", "")), ("arm64", "v8.2", ("arm64", "v8.2")),
    ("armhf", None, ("arm", "v7")), ("armel", None, ("arm", "v6")), ("arm", None, ("arm", "v7")),
    ("arm", "7", ("arm", "v7")), ("arm", "6", ("arm", "v6")), ("arm", "5", ("arm", "v5")),
    ("arm", "8", ("arm", "v8")), ("ppc64le", None, ("ppc64le", "")), ("riscv64", "rva22", ("riscv64", "rva22")),
])
def test_normalize_arch(arch, variant, expected):
    assert normalize_arch(arch, variant) == expected


def test_normalize_platform():
    p = normalize_platform(Platform(os="MacOS", architecture="aarch64", variant="v8",
                                    os_features=("b", "a", "b")))
    assert (p.os, p.architecture, p.variant, p.os_features) == ("darwin", "arm64", None, ("a", "b"))


@pytest.mark.parametrize("p, text", [
    (P("linux/amd64"), "linux/amd64"), (P("linux/arm/v7"), "linux/arm/v7"),
    (P("linux/arm64/v8"), "linux/arm64/v8"), (Platform(os="", architecture="amd64"), "unknown"),
])
def test_format_platform(p, text):
    assert format_platform(p) == text


HOST = P("linux/amd64")


@pytest.mark.parametrize("spec, expected", [
    ("linux/amd64", P("linux/amd64")),
    ("linux/x86_64", P("linux/amd64")),
    ("linux/arm64", P("linux/arm64")),
    ("linux/arm64/v8", P("linux/arm64/v8")),
    ("linux/aarch64/8", P("linux/arm64/v8")),
    ("linux/arm", P("linux/arm")),
    ("linux/armhf", P("linux/arm")),
    ("linux/armel", P("linux/arm/v6")),
    ("linux/arm/v7", P("linux/arm/v7")),
    ("linux/arm/6", P("linux/arm/v6")),
    ("Linux/AMD64", P("linux/amd64")),
    ("linux", P("linux/amd64")),           # the host's architecture
    ("arm64", P("linux/arm64")),           # the host's os
    ("armhf", P("linux/arm")),
    ("i386", P("linux/386")),
    ("windows(10.0.17763)/amd64", P("windows/amd64", os_version="10.0.17763")),
    ("windows(10.0.17763+win32k+x%2By)/amd64", P("windows/amd64", os_version="10.0.17763", os_features=("win32k", "x+y"))),
])
def test_parse_platform(spec, expected):
    assert parse_platform(spec, host=HOST) == expected


def test_parse_platform_lone_os_on_an_arm_host_keeps_the_variant():
    assert parse_platform("linux", host=P("linux/arm/v6")) == P("linux/arm/v6")
    assert parse_platform("linux", host=P("linux/arm/v7")) == P("linux/arm")


@pytest.mark.parametrize("spec, message", [
    ("linux/*", "wildcards not yet supported"),
    ("nonsense", "unknown operating system or architecture"),
    ("linux/amd64/v1/extra", "cannot parse platform specifier"),
    ("linux/am d64", "invalid component"),
    ("", "invalid OS component"),
    ("lin ux/amd64", "invalid OS component"),
    ("windows(10%zz)/amd64", "invalid URL escape"),
])
def test_parse_platform_errors(spec, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        parse_platform(spec, host=HOST)


@pytest.mark.parametrize("machine, expected", [
    ("x86_64", "linux/amd64"), ("aarch64", "linux/arm64/v8"), ("armv7l", "linux/arm/v7"),
    ("armv6l", "linux/arm/v6"), ("i686", "linux/386"), ("ppc64le", "linux/ppc64le"),
    ("s390x", "linux/s390x"), ("riscv64", "linux/riscv64"), ("loongarch64", "linux/loong64"),
    ("sparc64", "linux/sparc64"),
])
def test_default_platform(machine, expected):
    assert format_platform(default_platform(machine, "Linux")) == expected


def test_default_platform_of_this_machine():
    import os
    assert default_platform() == default_platform(os.uname().machine, os.uname().sysname)
    if os.uname().machine == "x86_64":
        assert default_platform() == P("linux/amd64")


# want, have, rank (None: no match). Rank 0 is an exact match; each step down is a fallback.
MATCHES = [
    ("linux/amd64", "linux/amd64", 0),
    ("linux/amd64", "linux/x86_64", 0),
    ("linux/amd64", "linux/amd64/v1", 0),
    ("linux/amd64", "linux/386", 1),
    ("linux/amd64", "linux/amd64/v2", None),   # needs a newer CPU than asked for
    ("linux/amd64/v3", "linux/amd64/v3", 0),
    ("linux/amd64/v3", "linux/amd64/v2", 1),
    ("linux/amd64/v3", "linux/amd64", 2),
    ("linux/amd64/v3", "linux/386", 3),
    ("linux/amd64/v3", "linux/amd64/v4", None),
    ("linux/arm64", "linux/arm64", 0),
    ("linux/arm64", "linux/arm64/v8", 0),
    ("linux/arm64/v8", "linux/aarch64", 0),
    ("linux/arm64", "linux/arm/v8", 1),
    ("linux/arm64", "linux/arm/v7", 2),
    ("linux/arm64", "linux/arm", 2),
    ("linux/arm64", "linux/arm/v6", 3),
    ("linux/arm64", "linux/arm/v5", 4),
    ("linux/arm64", "linux/arm64/v8.1", None),
    ("linux/arm64/v8.2", "linux/arm64/v8.1", 1),
    ("linux/arm64/v8.2", "linux/arm64", 2),
    ("linux/arm64/v9.1", "linux/arm64/v9", 1),
    ("linux/arm64/v9.1", "linux/arm64/v8.6", 2),
    ("linux/arm64/v9.1", "linux/arm64/v8.5", 3),
    ("linux/arm64/v9.1", "linux/arm64", 8),
    ("linux/arm/v7", "linux/arm/v7", 0),
    ("linux/arm/v7", "linux/armhf", 0),
    ("linux/arm/v7", "linux/arm", 0),
    ("linux/arm/v7", "linux/arm/v6", 1),
    ("linux/arm/v7", "linux/arm/v5", 2),
    ("linux/arm/v7", "linux/arm/v8", None),
    ("linux/arm/v7", "linux/arm64", None),
    ("linux/arm/v6", "linux/armel", 0),
    ("linux/arm/v5", "linux/arm/v6", None),
    ("linux/amd64", "windows/amd64", None),
    ("linux/amd64", "unknown/unknown", None),
    ("linux/ppc64le", "linux/ppc64le", 0),
    ("Linux/AMD64", "linux/amd64", 0),
    ("linux/amd64", "/amd64", 0),              # an empty os means the host's, as in containerd
]


@pytest.mark.parametrize("want, have, rank", MATCHES)
def test_platform_rank(want, have, rank):
    assert platform_rank(P(want), P(have)) == rank
    assert platform_matches(P(want), P(have)) == (rank is not None)
    assert platform_matches(P(want), P(have), strict=True) == (rank == 0)


def test_os_features_of_the_image_must_be_wanted():
    want = P("windows/amd64", os_features=("win32k",))
    assert platform_matches(want, P("windows/amd64"))
    assert platform_matches(want, P("windows/amd64", os_features=("win32k",)))
    assert not platform_matches(P("windows/amd64"), P("windows/amd64", os_features=("win32k",)))


def test_match_order_prefers_exact_then_fallbacks_then_unplatformed():
    have = [None, P("linux/386"), P("linux/amd64/v2"), P("linux/amd64"), P("linux/amd64"), P("linux/arm64")]
    assert match_order(P("linux/amd64/v3"), have) == [2, 3, 4, 1, 0]
    assert match_order(P("linux/amd64"), have) == [3, 4, 1, 0]
    assert match_order(P("linux/amd64"), have, strict=True) == [3, 4, 0]
    assert match_order(P("linux/s390x"), have) == [0]
    assert match_order(P("linux/s390x"), [P("linux/amd64")]) == []


def test_arm_falls_back_to_any_variant_as_moby_does():
    have = [P("linux/amd64"), P("linux/arm/v7"), P("linux/arm/v6")]
    assert match_order(P("linux/arm/v5"), have) == [1, 2]
    assert match_order(P("linux/arm/v6"), have) == [2]


_names = hs.sampled_from(["amd64", "x86_64", "386", "i386", "arm", "armhf", "armel", "arm64",
                          "aarch64", "ppc64le", "s390x", "riscv64"])
_variants = hs.sampled_from([None, "", "v1", "v2", "v3", "v4", "5", "v5", "v6", "v7", "v8", "8",
                             "v8.1", "v8.9", "v9", "v9.3", "vx", "-1"])
_platforms = hs.builds(Platform, os=hs.sampled_from(["linux", "Linux", "windows"]),
                       architecture=_names, variant=_variants)


@given(_platforms, _platforms)
def test_matching_properties(want, have):
    rank = platform_rank(want, have)
    assert platform_rank(want, want) == 0
    if platform_matches(want, have, strict=True):
        assert rank == 0
    assert rank == platform_rank(normalize_platform(want), normalize_platform(have))
