import copy

import pytest
from hypothesis import given, strategies as hs

from dockyard.errdefs import InvalidArgument
from dockyard.spec.codec import from_json, to_json
from dockyard.spec.runtime import LinuxResources, Spec, load_spec, parse_resources
from dockyard.spec.runtime_defaults import default_spec, default_spec_json


def base() -> dict:
    return copy.deepcopy(default_spec_json())


def test_default_spec_round_trips():
    data = base()
    spec = Spec.from_json(data)
    assert spec.to_json() == data
    assert spec.process.args == ("sh",)
    assert spec.linux.namespace("pid") is not None
    assert spec.root.readonly is True


def test_unknown_fields_survive_a_round_trip():
    data = base()
    data["vm"] = {"hypervisor": {"path": "/x"}}
    data["process"]["scheduler"] = {"policy": "SCHED_OTHER"}
    data["linux"]["intelRdt"] = {"closID": "a"}
    assert Spec.from_json(data).to_json() == data


def test_irregular_json_names():
    res = parse_resources({"blockIO": {"weight": 300, "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 5}]},
                           "memory": {"kernelTCP": 1, "disableOOMKiller": True}})
    assert res.block_io.weight == 300
    assert res.block_io.throttle_read_iops_device[0].rate == 5
    assert res.memory.disable_oom_killer is True
    assert to_json(res)["memory"] == {"kernelTCP": 1, "disableOOMKiller": True}


def test_records_are_frozen_and_compare_by_value():
    a, b = default_spec(), default_spec()
    assert a == b
    with pytest.raises(AttributeError):
        a.hostname = "x"
    assert a.replace(hostname="x").hostname == "x" and a.hostname == "dockyard"


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(ociVersion="2.0.0"), "ociVersion: unsupported major version 2"),
    (lambda d: d.update(ociVersion="one"), "ociVersion"),
    (lambda d: d.pop("root"), "root"),
    (lambda d: d["process"].update(cwd="relative"), "process.cwd"),
    (lambda d: d["process"].update(args=[]), "process.args"),
    (lambda d: d["process"].update(args="sh"), "process.args: expected an array"),
    (lambda d: d["process"]["args"].__setitem__(0, 5), "process.args[0]"),
    (lambda d: d["mounts"][2].update(destination="dev/pts"), "mounts[2].destination"),
    (lambda d: d["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
    (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "given twice"),
    (lambda d: d["linux"]["namespaces"][0].update(path="proc/1/ns/pid"), "linux.namespaces[0].path"),
    (lambda d: d["linux"].update(uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]), "linux.uidMappings"),
    (lambda d: d["linux"].update(devices=[{"type": "x", "path": "/dev/x"}]), "linux.devices[0].type"),
    (lambda d: d["linux"].update(devices=[{"type": "c", "path": "/dev/x"}]), "linux.devices[0]"),
    (lambda d: d["linux"].update(sysctl={"kernel.panic": "1"}), "linux.sysctl.kernel.panic"),
    (lambda d: d["linux"].update(maskedPaths=["proc/kcore"]), "linux.maskedPaths[0]"),
    (lambda d: d["linux"].update(rootfsPropagation="sideways"), "linux.rootfsPropagation"),
    (lambda d: d["linux"].update(seccomp={"defaultAction": "SCMP_ACT_NOPE"}), "linux.seccomp.defaultAction"),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]), "process.rlimits[0].type"),
    (lambda d: d["process"]["capabilities"].update(bounding=["NET_ADMIN"]), "process.capabilities.bounding[0]"),
    (lambda d: d.update(hooks={"prestart": [{"path": "relative"}]}), "hooks.prestart[0].path"),
    (lambda d: d["linux"]["resources"].update(memory={"limit": "lots"}), "linux.resources.memory.limit"),
])
def test_invalid_configs_name_the_field(mutate, field):
    data = base()
    mutate(data)
    with pytest.raises(InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")):
        Spec.from_json(data)


def test_hostname_needs_uts_namespace():
    data = base()
    data["linux"]["namespaces"] = [{"type": "mount"}]
    with pytest.raises(InvalidArgument, match="hostname"):
        Spec.from_json(data)


def test_load_spec_errors(tmp_path):
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_spec(str(tmp_path / "config.json"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        load_spec(str(tmp_path / "config.json"))


@given(hs.recursive(hs.none() | hs.booleans() | hs.integers() | hs.text(max_size=5),
                    lambda c: hs.lists(c, max_size=3) | hs.dictionaries(hs.text(max_size=5), c, max_size=3),
                    max_leaves=10))
def test_arbitrary_json_never_crashes_the_decoder(value):
    for cls in (Spec, LinuxResources):
        try:
            from_json(cls, value)
        except InvalidArgument:
            pass


def test_jsonfast_reports_syntax_errors_as_valueerror_without_json_imported():
    import subprocess
    import sys

    code = ("from dockyard.spec.jsonfast import loads\n"
            "try:\n    loads('{ not json')\nexcept ValueError as e:\n    print('ValueError')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ValueError", out.stderr
