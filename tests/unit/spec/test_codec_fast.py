"""The compiled decoders of spec/codec.py give what the field-by-field path gives: the same
records (and extras) for valid JSON, the same InvalidArgument (message) for invalid JSON."""

import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as hs

from dockyard.errdefs import InvalidArgument
from dockyard.spec import codec
from dockyard.spec.codec import _from_json_slow, from_json
from dockyard.spec.image import ImageConfig, Index, Manifest
from dockyard.spec.runtime import LinuxResources, LinuxSeccomp, Spec
from dockyard.spec.runtime_defaults import default_spec_json

DATA = Path(__file__).parent / "data"


def docker_default() -> dict:
    """A spec like the engine writes for `docker run busybox true` (seccomp profile included)."""
    data = copy.deepcopy(default_spec_json())
    data["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["accept", "read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
    }
    data["linux"]["resources"] = {
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}],
        "memory": {"disableOOMKiller": False}, "cpu": {"shares": 0}, "blockIO": {"weight": 0},
    }
    data["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 2147483647"}
    data["linux"]["cgroupsPath"] = "/dockyard/abc"
    data["hooks"] = {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 3}]}
    data["annotations"] = {"a": "b"}
    data["unknownTop"] = {"x": [1, 2]}
    data["process"]["user"]["additionalGids"] = [0, 10]
    data["process"]["oomScoreAdj"] = 0
    return data


def both(cls, data, path=""):
    """(fast result or error text, slow result or error text)."""
    out = []
    for fn in (from_json, _from_json_slow):
        try:
            out.append(fn(cls, copy.deepcopy(data), path))
        except InvalidArgument as exc:
            out.append(("error", str(exc)))
    return out


def assert_same(a, b):
    assert a == b
    assert repr(a) == repr(b)
    if isinstance(a, codec.Struct):
        assert codec.to_json(a) == codec.to_json(b)
        assert a.extra == b.extra


@pytest.mark.parametrize("cls, data", [
    (Spec, default_spec_json()),
    (Spec, docker_default()),
    (LinuxResources, {"blockIO": {"weight": 300}, "memory": {"kernelTCP": 1}, "unified": {"a": "b"}}),
    (LinuxResources, {}),
    (Manifest, json.loads((DATA / "oci_manifest.json").read_text())),
    (Manifest, json.loads((DATA / "busybox_manifest_v2.json").read_text())),
    (Index, json.loads((DATA / "busybox_oci_index.json").read_text())),
    (ImageConfig, json.loads((DATA / "oci_config.json").read_text())),
    (ImageConfig, json.loads((DATA / "docker_config.json").read_text())),
])
def test_fast_decode_equals_slow(cls, data):
    fast, slow = both(cls, data)
    assert_same(fast, slow)
    assert fast != ("error",) and not isinstance(fast, tuple)


def test_the_fast_path_is_used():
    data = docker_default()
    codec._decoder(Spec)
    assert codec._decoders[Spec] is not codec._NO_FAST
    assert codec._decoders[Spec](data) == _from_json_slow(Spec, data)


@pytest.mark.parametrize("mutate", [
    lambda d: d["process"].update(args="sh"),
    lambda d: d["process"]["args"].__setitem__(0, 5),
    lambda d: d["process"].update(terminal=1),
    lambda d: d["process"]["user"].update(uid=True),
    lambda d: d["process"]["user"].update(uid=1.0),
    lambda d: d["process"]["user"]["additionalGids"].append(False),
    lambda d: d["process"].pop("cwd"),
    lambda d: d.pop("ociVersion"),
    lambda d: d.update(root=[]),
    lambda d: d.update(mounts={}),
    lambda d: d["mounts"].append("x"),
    lambda d: d["mounts"][0].pop("destination"),
    lambda d: d["linux"]["seccomp"]["syscalls"][1]["args"][0].update(index="0"),
    lambda d: d["linux"]["seccomp"]["syscalls"][0].update(names=None),
    lambda d: d["linux"]["seccomp"].update(defaultErrnoRet=True),
    lambda d: d["linux"]["resources"]["memory"].update(limit="lots"),
    lambda d: d["linux"]["resources"]["devices"][0].update(allow=0),
    lambda d: d["linux"].update(sysctl=[]),
    lambda d: d["linux"]["sysctl"].update(x=1),
    lambda d: d.update(annotations={"a": None}),
    lambda d: d["hooks"]["prestart"][0].update(timeout="3"),
    lambda d: d["linux"].update(timeOffsets={"monotonic": {"secs": "1"}}),
    lambda d: d["linux"].update(timeOffsets={"monotonic": 5}),
])
def test_fast_decode_fails_as_slow(mutate):
    data = docker_default()
    mutate(data)
    fast, slow = both(Spec, data)
    assert fast == slow
    assert isinstance(fast, tuple) and fast[0] == "error"
    with pytest.raises(InvalidArgument) as exc:
        Spec.from_json(data)
    assert str(exc.value) == fast[1]


def test_errors_name_the_given_path():
    fast, slow = both(LinuxResources, {"memory": {"limit": "x"}}, "resources")
    assert fast == slow == ("error", "resources.memory.limit: expected an integer, got 'x'")
    fast, slow = both(LinuxResources, [1], "resources")
    assert fast == slow == ("error", "resources: expected an object, got an array")


def test_null_means_absent_and_float_fields_convert():
    data = docker_default()
    data["hostname"] = None
    data["linux"]["resources"]["cpu"] = None
    data["mounts"][0]["options"] = None
    fast, slow = both(Spec, data)
    assert_same(fast, slow)
    assert fast.hostname is None


def test_seccomp_records_are_shared_for_the_same_json():
    sc = docker_default()["linux"]["seccomp"]
    a = from_json(LinuxSeccomp, copy.deepcopy(sc), "linux.seccomp")
    b = Spec.from_json(docker_default()).linux.seccomp
    assert a is b
    assert a == _from_json_slow(LinuxSeccomp, sc, "linux.seccomp")
    other = copy.deepcopy(sc)
    other["defaultErrnoRet"] = 38
    c = from_json(LinuxSeccomp, other)
    assert c is not a and c.default_errno_ret == 38
    # equal values under another JSON spelling (1.0, true == 1) are not mixed up with it
    with pytest.raises(InvalidArgument, match=r"s.defaultErrnoRet: expected an integer"):
        from_json(LinuxSeccomp, {**sc, "defaultErrnoRet": 1.0}, "s")
    with pytest.raises(InvalidArgument, match=r"linux.seccomp.defaultErrnoRet: expected an integer"):
        from_json(LinuxSeccomp, {**sc, "defaultErrnoRet": True}, "linux.seccomp")


json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=False) | hs.text(max_size=5),
    lambda c: hs.lists(c, max_size=3) | hs.dictionaries(hs.text(max_size=8), c, max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_decodes_alike(value):
    for cls in (Spec, LinuxResources, LinuxSeccomp):
        fast, slow = both(cls, value)
        assert fast == slow


@settings(max_examples=300, deadline=None)
@given(hs.sampled_from(["memory", "cpu", "pids", "blockIO", "devices", "unified",
                        "hugepageLimits"]), json_values)
def test_resources_fields_decode_alike(key, value):
    fast, slow = both(LinuxResources, {key: value}, "resources")
    assert fast == slow
