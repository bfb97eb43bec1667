"""engine/createtypes.py: a create (and exec create) body checked against Docker's Go types,
with the messages dockerd's encoding/json gives (compared with dockerd 20.10)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dockyard.engine.createtypes import parse_create_body, parse_exec_body
from dockyard.errdefs import InvalidArgument

DATA = Path(__file__).parent / "data"
HC = "Go struct field HostConfig.HostConfig"
CFG = "Go struct field ContainerConfigWrapper"


def _error(body: dict, parse=parse_create_body) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse(body)
    return str(info.value)


@pytest.mark.parametrize("body, message", [
    ({"HostConfig": {"Privileged": "false"}},
     f"json: cannot unmarshal string into {HC}.Privileged of type bool"),
    ({"HostConfig": {"ReadonlyRootfs": 0}},
     f"json: cannot unmarshal number into {HC}.ReadonlyRootfs of type bool"),
    ({"Tty": "yes"}, f"json: cannot unmarshal string into {CFG}.Tty of type bool"),
    ({"StopTimeout": "5"}, f"json: cannot unmarshal string into {CFG}.StopTimeout of type int"),
    ({"User": 5}, f"json: cannot unmarshal number into {CFG}.User of type string"),
    ({"Image": True}, f"json: cannot unmarshal bool into {CFG}.Image of type string"),
    ({"HostConfig": {"NetworkMode": 5}},
     f"json: cannot unmarshal number into {HC}.NetworkMode of type container.NetworkMode"),
    ({"HostConfig": {"PidsLimit": "10"}},
     f"json: cannot unmarshal string into {HC}.PidsLimit of type int64"),
])
def test_a_scalar_of_the_wrong_type(body, message):
    assert _error(body) == message


@pytest.mark.parametrize("value, shown", [(1.5, "number 1.5"), (1.0, "number 1.0"),
                                          (1 << 63, f"number {1 << 63}")])
def test_an_integer_must_be_an_integer_literal_in_range(value, shown):
    assert _error({"HostConfig": {"Memory": value}}) == \
        f"json: cannot unmarshal {shown} into {HC}.Memory of type int64"


def test_unsigned_and_narrow_integers():
    assert _error({"HostConfig": {"BlkioWeight": 70000}}) == \
        f"json: cannot unmarshal number 70000 into {HC}.BlkioWeight of type uint16"
    assert _error({"HostConfig": {"BlkioWeight": -1}}) == \
        f"json: cannot unmarshal number -1 into {HC}.BlkioWeight of type uint16"
    assert parse_create_body({"HostConfig": {"BlkioWeight": 65535, "Memory": -(1 << 63)}})


@pytest.mark.parametrize("body, message", [
    ({"Env": "X=1"}, f"json: cannot unmarshal string into {CFG}.Env of type []string"),
    ({"Env": [1]}, f"json: cannot unmarshal number into {CFG}.Env of type string"),
    ({"HostConfig": {"Binds": "/tmp:/x"}},
     f"json: cannot unmarshal string into {HC}.Binds of type []string"),
    ({"HostConfig": {"Dns": "1.1.1.1"}},
     f"json: cannot unmarshal string into {HC}.Dns of type []string"),
    ({"Labels": ["a"]}, f"json: cannot unmarshal array into {CFG}.Labels of type map[string]string"),
    ({"Labels": {"a": 1}}, f"json: cannot unmarshal number into {CFG}.Labels of type string"),
    ({"ExposedPorts": ["80/tcp"]},
     f"json: cannot unmarshal array into {CFG}.ExposedPorts of type nat.PortSet"),
    ({"ExposedPorts": {"80/tcp": 1}},
     f"json: cannot unmarshal number into {CFG}.ExposedPorts of type struct {{}}"),
    ({"Volumes": ["/x"]},
     f"json: cannot unmarshal array into {CFG}.Volumes of type map[string]struct {{}}"),
    ({"HostConfig": {"Tmpfs": ["/run"]}},
     f"json: cannot unmarshal array into {HC}.Tmpfs of type map[string]string"),
    ({"HostConfig": {"ConsoleSize": 5}},
     f"json: cannot unmarshal number into {HC}.ConsoleSize of type [2]uint"),
])
def test_lists_and_maps(body, message):
    assert _error(body) == message


@pytest.mark.parametrize("body, message", [
    ({"HostConfig": "x"},
     f"json: cannot unmarshal string into {CFG}.HostConfig of type container.HostConfig"),
    ({"HostConfig": {"RestartPolicy": "always"}},
     f"json: cannot unmarshal string into {HC}.RestartPolicy of type container.RestartPolicy"),
    ({"Healthcheck": "x"},
     f"json: cannot unmarshal string into {CFG}.Healthcheck of type container.HealthConfig"),
    ({"Healthcheck": {"Interval": "1s"}}, "json: cannot unmarshal string into Go struct field "
     "HealthConfig.Healthcheck.Interval of type time.Duration"),
    ({"HostConfig": {"Mounts": ["/tmp"]}},
     f"json: cannot unmarshal string into {HC}.Mounts of type mount.Mount"),
    ({"HostConfig": {"Mounts": [{"Type": 5}]}}, "json: cannot unmarshal number into Go struct "
     "field Mount.HostConfig.Mounts.Type of type mount.Type"),
    ({"HostConfig": {"Mounts": [{"TmpfsOptions": {"Mode": "x"}}]}},
     "json: cannot unmarshal string into Go struct field "
     "TmpfsOptions.HostConfig.Mounts.TmpfsOptions.Mode of type fs.FileMode"),
    ({"HostConfig": {"Mounts": [{"BindOptions": {"CreateMountpoint": "yes"}}]}},
     "json: cannot unmarshal string into Go struct field "
     "BindOptions.HostConfig.Mounts.BindOptions.CreateMountpoint of type bool"),
    ({"HostConfig": {"Ulimits": ["nofile"]}},
     f"json: cannot unmarshal string into {HC}.Ulimits of type units.Ulimit"),
    ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "1"}]}},
     "json: cannot unmarshal string into Go struct field Ulimit.HostConfig.Ulimits.Soft "
     "of type int64"),
    ({"HostConfig": {"PortBindings": {"80": 5}}},
     f"json: cannot unmarshal number into {HC}.PortBindings of type []nat.PortBinding"),
    ({"HostConfig": {"PortBindings": {"80": [5]}}},
     f"json: cannot unmarshal number into {HC}.PortBindings of type nat.PortBinding"),
    ({"HostConfig": {"PortBindings": {"80": [{"HostPort": 5}]}}},
     "json: cannot unmarshal number into Go struct field "
     "PortBinding.HostConfig.PortBindings.HostPort of type string"),
    ({"HostConfig": {"Devices": ["/dev/null"]}},
     f"json: cannot unmarshal string into {HC}.Devices of type container.DeviceMapping"),
    ({"HostConfig": {"Devices": [{"PathOnHost": 5}]}},
     "json: cannot unmarshal number into Go struct field "
     "DeviceMapping.HostConfig.Devices.PathOnHost of type string"),
    ({"HostConfig": {"DeviceRequests": [{"Capabilities": [["gpu", 5]]}]}},
     "json: cannot unmarshal number into Go struct field "
     "DeviceRequest.HostConfig.DeviceRequests.Capabilities of type string"),
    ({"HostConfig": {"BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": "x"}]}},
     "json: cannot unmarshal string into Go struct field "
     "WeightDevice.HostConfig.BlkioWeightDevice.Weight of type uint16"),
    ({"HostConfig": {"LogConfig": {"Config": {"max-size": 5}}}},
     "json: cannot unmarshal number into Go struct field "
     "LogConfig.HostConfig.LogConfig.Config of type string"),
    ({"NetworkingConfig": {"EndpointsConfig": ["x"]}},
     "json: cannot unmarshal array into Go struct field NetworkingConfig.NetworkingConfig."
     "EndpointsConfig of type map[string]*network.EndpointSettings"),
    ({"NetworkingConfig": {"EndpointsConfig": {"none": {"Aliases": "x"}}}},
     "json: cannot unmarshal string into Go struct field "
     "EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string"),
])
def test_nested_objects_name_the_innermost_struct_and_the_field_path(body, message):
    assert _error(body) == message


def test_strslice_takes_a_string_as_a_one_element_list():
    body = parse_create_body({"Cmd": "echo hi", "Entrypoint": "/bin/sh", "Shell": ["sh", "-c"],
                              "HostConfig": {"CapAdd": "NET_ADMIN", "CapDrop": None}})
    assert body["Cmd"] == ["echo hi"] and body["Entrypoint"] == ["/bin/sh"]
    assert body["Shell"] == ["sh", "-c"]
    assert body["HostConfig"] == {"CapAdd": ["NET_ADMIN"], "CapDrop": None}


@pytest.mark.parametrize("value, kind", [(5, "number"), ([1], "array"), ({"a": 1}, "object"),
                                         (True, "bool")])
def test_strslice_errors_name_the_string_it_tried_last(value, kind):
    assert _error({"Cmd": value}) == f"json: cannot unmarshal {kind} into {CFG}.Cmd of type string"
    assert _error({"HostConfig": {"CapAdd": value}}) == \
        f"json: cannot unmarshal {kind} into {HC}.CapAdd of type string"


def test_the_first_error_is_reported_but_a_strslice_error_wins():
    assert _error({"Tty": "x", "Env": 5}) == \
        f"json: cannot unmarshal string into {CFG}.Tty of type bool"
    assert _error({"Tty": "x", "Cmd": 5}) == \
        f"json: cannot unmarshal number into {CFG}.Cmd of type string"


def test_null_is_accepted_everywhere():
    hc = {k: None for k in ("Privileged", "Memory", "Binds", "RestartPolicy", "LogConfig",
                            "PortBindings", "Mounts", "Ulimits", "ConsoleSize", "PidsLimit",
                            "Init", "CapAdd")}
    body = {"Image": None, "Tty": None, "Cmd": None, "Env": None, "Labels": None,
            "Healthcheck": None, "HostConfig": hc, "NetworkingConfig": None}
    assert parse_create_body(body) == body


def test_a_null_element_of_a_list_or_map_is_its_zero_value():
    body = parse_create_body({"Env": [None], "Labels": {"a": None}, "Cmd": ["a", None],
                              "HostConfig": {"Mounts": [None], "Ulimits": [None],
                                             "ConsoleSize": [None, 3]}})
    assert body["Env"] == [""] and body["Labels"] == {"a": ""} and body["Cmd"] == ["a", ""]
    assert body["HostConfig"] == {"Mounts": [{}], "Ulimits": [None], "ConsoleSize": [0, 3]}


def test_a_fixed_array_keeps_its_size():
    assert parse_create_body({"HostConfig": {"ConsoleSize": [1, 2, 3]}})["HostConfig"] == \
        {"ConsoleSize": [1, 2]}
    assert parse_create_body({"HostConfig": {"ConsoleSize": [7]}})["HostConfig"] == \
        {"ConsoleSize": [7, 0]}


def test_field_names_match_case_insensitively_and_are_spelled_as_go_spells_them():
    assert _error({"HostConfig": {"privileged": "false"}}) == \
        f"json: cannot unmarshal string into {HC}.Privileged of type bool"
    assert _error({"tty": "x"}) == f"json: cannot unmarshal string into {CFG}.Tty of type bool"
    body = parse_create_body({"hostconfig": {"privileged": True, "PORTBINDINGS": {}}, "cmd": "x"})
    assert body == {"HostConfig": {"Privileged": True, "PortBindings": {}}, "Cmd": ["x"]}


def test_a_later_null_leaves_a_value_an_earlier_key_set():
    assert parse_create_body({"HostConfig": {"privileged": True, "Privileged": None}}) == \
        {"HostConfig": {"Privileged": True}}
    assert parse_create_body({"cmd": ["a"], "Cmd": None}) == {"Cmd": None}  # a StrSlice: nil


def test_unknown_keys_are_not_checked_and_kept():
    body = {"Image": "busybox", "Bogus": {"x": [1]}, "HostConfig": {"NotAField": "x"},
            "Labels": {"privileged": "5", "Tty": "x"}}  # map keys are not field names
    assert parse_create_body(body) == body


def test_the_body_the_docker_cli_28_sends_passes_unchanged():
    # `docker create` with most of its flags, as the CLI 28.2 sent it (API 1.51)
    body = json.loads((DATA / "cli28_create.json").read_text())
    assert parse_create_body(copy.deepcopy(body)) == body
    assert body["HostConfig"]["Mounts"] and body["Healthcheck"]["Interval"] == 5_000_000_000


def test_exec_config():
    assert _error({"Cmd": ["true"], "Privileged": "false"}, parse_exec_body) == \
        "json: cannot unmarshal string into Go struct field ExecConfig.Privileged of type bool"
    assert _error({"Cmd": "true"}, parse_exec_body) == \
        "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string"
    assert _error({"tty": "no"}, parse_exec_body) == \
        "json: cannot unmarshal string into Go struct field ExecConfig.Tty of type bool"
    body = {"AttachStdout": True, "detachKeys": "ctrl-x", "Cmd": ["sh"], "Env": None,
            "ConsoleSize": [24, 80]}
    assert parse_exec_body(body) == {"AttachStdout": True, "DetachKeys": "ctrl-x",
                                     "Cmd": ["sh"], "Env": None, "ConsoleSize": [24, 80]}
