"""The container list's filters (engine/listfilters.py) and the shapes of list and inspect
(engine/views.py, engine/inspectshape.py), against dockerd 28's answers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.engine import inspectshape
from dockyard.engine.container import Container
from dockyard.engine.listfilters import ListFilter, descendants, parse_port_filter
from dockyard.engine.views import add_sizes, list_command


def make(**kw) -> Container:
    base = dict(id="a" * 64, name="c1", image_id="sha256:" + "b" * 64, image_ref="busybox",
                config={}, host_config={})
    base.update(kw)
    return Container(**base)


def passes(c: Container, filters: dict, **kw) -> bool:
    return ListFilter(filters, **kw).matches(c)


@pytest.mark.parametrize("value, hit", [
    ("c1", True), ("/c1", True), ("^c1$", True), ("^/c1$", True), ("c.$", True), ("1", True),
    ("C1", False), ("^c$", False), ("[", False), ("^/c1/$", False)])
def test_name_filter_is_a_regexp_on_the_name_with_and_without_its_slash(value, hit):
    assert passes(make(), {"name": [value]}) is hit


def test_an_invalid_name_pattern_matches_nothing_but_the_others_still_do():
    assert passes(make(), {"name": ["[", "c1"]})
    assert not passes(make(), {"name": ["(", "["]})


@pytest.mark.parametrize("filters, message", [
    ({"is-task": ["x"]}, "Invalid filter 'is-task=[x]'"),
    ({"is-task": ["x", "y"]}, "Invalid filter 'is-task=[x y]'"),
    ({"exited": ["x"]}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ({"status": ["sleeping"]}, "Invalid filter 'status=sleeping'"),
    ({"colour": ["red"]}, "Invalid filter 'colour'"),
    ({"health": ["x"]}, "Unrecognised filter value for health: x"),
    ({"expose": ["80:80"]}, "filter for 'expose' should not contain ':': 80:80"),
    ({"publish": ["x"]},
     'error while looking up for publish x: strconv.ParseUint: parsing "x": invalid syntax'),
])
def test_bad_values_fail_before_any_container_is_seen(filters, message):
    with pytest.raises(InvalidArgument) as err:
        ListFilter(filters)
    assert str(err.value) == message


def test_is_task():
    assert passes(make(), {"is-task": ["false"]})
    assert not passes(make(), {"is-task": ["true"]})


def test_exited_needs_a_started_container():
    c = make()
    assert not passes(c, {"exited": ["0"]})  # created, never run: ExitCode 0 but no exit
    c.state.set_running(5)
    c.state.set_exited(2)
    assert passes(c, {"exited": ["2"]}) and passes(c, {"exited": ["+2", "7"]})
    assert not passes(c, {"exited": ["0"]})


@dataclass
class Img:
    id: str
    parent: str | None = None


class Catalogue:
    """Images by reference, as ImageService.get and .images answer."""

    def __init__(self, images: list[Img], refs: dict[str, str]):
        self.by_id = {i.id: i for i in images}
        self.refs = refs

    def get(self, ref: str) -> Img:
        if ref in self.refs:
            return self.by_id[self.refs[ref]]
        found = [i for i in self.by_id if i.startswith(ref) or i.startswith("sha256:" + ref)]
        if len(found) != 1:
            raise NotFound(f"No such image: {ref}")
        return self.by_id[found[0]]

    def images(self) -> list[Img]:
        return list(self.by_id.values())


BASE, CHILD, OTHER = "sha256:" + "b" * 64, "sha256:" + "c" * 64, "sha256:" + "d" * 64
IMAGES = Catalogue([Img(BASE), Img(CHILD, BASE), Img(OTHER)],
                   {"busybox": BASE, "other:v1": BASE, "child:1": CHILD, "alpine": OTHER})


@pytest.mark.parametrize("value, ids", [
    ("busybox", {BASE, CHILD}), ("other:v1", {BASE, CHILD}), ("bbbbbb", {BASE, CHILD}),
    ("child:1", {CHILD}), ("alpine", {OTHER}), ("nosuch", set()), ("other", set())])
def test_ancestor_names_an_image_and_matches_it_and_its_descendants(value, ids):
    for image in (BASE, CHILD, OTHER):
        c = make(image_id=image, image_ref="whatever:tag")
        assert passes(c, {"ancestor": [value]}, images=IMAGES) is (image in ids)


def test_descendants_walks_down_the_parents():
    parents = {"a": None, "b": "a", "c": "b", "d": "a", "e": None}
    assert descendants(["b"], parents) == {"b", "c"}
    assert descendants(["a"], parents) == {"a", "b", "c", "d"}


def test_port_filters_read_the_listed_ports():
    c = make()
    ports = [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"PrivatePort": 53, "Type": "udp"}]
    kw = {"ports_of": lambda _: ports}
    assert passes(c, {"publish": ["8080"]}, **kw) and not passes(c, {"publish": ["80"]}, **kw)
    assert passes(c, {"expose": ["80"]}, **kw) and passes(c, {"expose": ["50-60/udp"]}, **kw)
    assert not passes(c, {"expose": ["53"]}, **kw)  # 53/tcp
    assert not passes(c, {"expose": ["80"]})         # no ports listed: no match


def test_port_filter_values():
    assert parse_port_filter("expose", ["80", "90-91/UDP"]) == {"80/tcp", "90/udp", "91/udp"}
    with pytest.raises(InvalidArgument, match="value out of range"):
        parse_port_filter("expose", ["70000"])


@pytest.mark.parametrize("args, command", [
    ([], "sh"), (["-c", "exit 2"], "sh -c 'exit 2'"), (["a", "b"], "sh a b"),
    (["it's here"], "sh 'it's here'")])
def test_list_command_quotes_arguments_with_spaces(args, command):
    assert list_command(make(path="sh", args=args)) == command


def test_sizes_are_omitted_when_zero():
    assert add_sizes({}, 0, 0) == {}
    assert add_sizes({}, 0, 100) == {"SizeRootFs": 100}
    assert add_sizes({}, 5, 100) == {"SizeRw": 5, "SizeRootFs": 105}


def test_inspect_host_config_has_every_key_of_dockerd_with_zero_values():
    hc = inspectshape.host_config({"NetworkMode": "none"}, runtime="runc")
    always = [k for k, v in inspectshape.HOST_CONFIG.items() if v is not inspectshape._EMPTY]
    assert set(always) | {"Runtime"} == set(hc)
    assert len(hc) == 63  # dockerd 20.10's 65 but KernelMemory and KernelMemoryTCP
    assert hc["Privileged"] is False and hc["Binds"] is None and hc["ConsoleSize"] == [0, 0]
    assert hc["PidsLimit"] is None and hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert hc["Runtime"] == "runc" and "KernelMemory" not in hc and "Init" not in hc
    assert list(hc).index("Runtime") == list(hc).index("Isolation") - 1


def test_inspect_host_config_keeps_what_was_stored():
    stored = {"Memory": 64 << 20, "PidsLimit": 0, "Init": False, "Tmpfs": {},
              "Sysctls": {"net.core.somaxconn": "1024"}, "KernelMemory": 0, "Runtime": "crun",
              "LogConfig": {"Type": "", "Config": {}}, "Extra": 1}
    hc = inspectshape.host_config(stored, runtime="runc")
    assert hc["Memory"] == 64 << 20 and hc["Init"] is False and hc["Runtime"] == "crun"
    assert hc["PidsLimit"] is None and "Tmpfs" not in hc and "KernelMemory" not in hc
    assert hc["Sysctls"] == {"net.core.somaxconn": "1024"} and hc["Extra"] == 1
    assert hc["LogConfig"]["Type"] == "json-file"
    assert stored["PidsLimit"] == 0 and "Privileged" not in stored  # the record is untouched


def test_inspect_config_has_dockerds_keys_and_omits_the_empty_optional_ones():
    cfg = inspectshape.config({"Hostname": "h", "Env": [], "Volumes": {}, "ExposedPorts": {},
                               "Healthcheck": None, "StopSignal": "", "Cmd": ["sh"],
                               "Image": "busybox", "NetworkDisabled": False})
    assert list(cfg) == ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                         "AttachStderr", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image",
                         "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels"]
    assert cfg["Env"] is None and cfg["Volumes"] is None and cfg["Labels"] == {}
    full = inspectshape.config({"ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGUSR1",
                                "StopTimeout": 0, "Env": ["A=1"], "Volumes": {"/d": {}}})
    assert full["ExposedPorts"] == {"80/tcp": {}} and full["StopSignal"] == "SIGUSR1"
    assert full["StopTimeout"] == 0 and full["Env"] == ["A=1"] and full["Volumes"] == {"/d": {}}
