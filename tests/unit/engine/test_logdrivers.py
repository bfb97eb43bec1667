"""Log drivers' options and the extra attributes of every entry (dockerd's loginfo.go)."""

import json

import pytest

from dockyard.engine import logdrivers as ld
from dockyard.engine.monitor import jsonlog
from dockyard.errdefs import InvalidArgument, System, Unsupported

INFO = ld.tag_info(container_id="c" * 64, name="/web", image_id="sha256:" + "d" * 64,
                   image_name="busybox:latest", command="sh -c true")


@pytest.mark.parametrize("config, message", [
    ({"Type": "splunk"}, 'plugin "splunk" not found'),
    ({"Type": "gelf"}, "gelf-address is a required parameter"),
    ({"Type": "local", "Config": {"labels": "a"}}, "unknown log opt 'labels' for log driver local"),
    ({"Type": "json-file", "Config": {"max-file": "0"}}, "max-file cannot be less than 1"),
    ({"Config": {"mode": "sometimes"}}, "logging mode not supported: sometimes"),
    ({"Config": {"max-buffer-size": "1m"}}, "only supported with 'mode=non-blocking'"),
    ({"Config": {"mode": "non-blocking", "max-buffer-size": "lots"}}, "max-buffer-size"),
    ({"Config": {"max-size": 5}}, "expected an object of strings"),
])
def test_bad_configs_are_refused(config, message):
    with pytest.raises(InvalidArgument, match=message):
        ld.validate(config)


@pytest.mark.parametrize("config", [
    None, {}, {"Type": "json-file", "Config": {"max-size": "1m", "labels": "a", "tag": "x"}},
    {"Type": "local", "Config": {"max-size": "1m"}}, {"Type": "none", "Config": {"any": "thing"}},
    {"Config": {"mode": "non-blocking", "max-buffer-size": "4m"}},
])
def test_good_configs_pass(config):
    ld.validate(config)


def test_where_each_driver_keeps_its_file_and_what_the_monitor_is_told():
    assert ld.log_file("json-file", "/c", "id").endswith("/c/id-json.log")
    assert ld.log_file("local", "/c", "id") == "/c/local-logs/container.log"
    assert ld.log_file("none", "/c", "id") == ""
    assert ld.monitor_options({"Type": "local", "Config": {"max-file": "2"}}) == \
        {"max-size": "20m", "max-file": "2", "compress": "true"}
    assert ld.monitor_options({"Config": {"mode": "non-blocking", "max-size": "1k"}}) == \
        {"max-size": "1k"}
    with pytest.raises(Unsupported):
        ld.reading_options({"Type": "none"})


def test_attributes_from_labels_env_and_the_tag():
    attrs = ld.attributes(
        {"labels": "a,missing", "labels-regex": "^z", "env": "E,NOPE", "env-regex": "^G",
         "tag": "{{.Name}}/{{.ID}}/{{ .ImageID }}/{{.DaemonName}}"},
        labels={"a": "1", "b": "2", "zz": "3"}, env=["E=x=y", "G1=g", "H=h", "bad"],
        tag_info=INFO)
    assert attrs == {"a": "1", "zz": "3", "E": "x=y", "G1": "g",
                     "tag": "web/" + "c" * 12 + "/sha256:ddddd/docker"}


@pytest.mark.parametrize("opts, message", [
    ({"tag": "{{.Nope}}"}, "can't evaluate field Nope"),
    ({"tag": "{{.Name | printf \"%s\"}}"}, "only {{.Field}} references"),
    ({"labels-regex": "("}, "error parsing regexp"),
])
def test_bad_templates_and_regexps_fail_the_start(opts, message):
    with pytest.raises(System, match=message):
        ld.attributes(opts, labels={}, env=[], tag_info=INFO)


def test_details_prefix_is_sorted_and_query_escaped():
    assert ld.details_prefix({"b<x>": "&2", "E": "x y"}) == b"E=x+y,b%3Cx%3E=%262 "
    assert ld.details_prefix({}) == b" "


def test_entries_carry_attrs_as_go_marshals_a_map():
    attrs = jsonlog.encode_attrs({"tag": "a>b", "E": "x y", "b<x>": "&2"})
    assert attrs == '{"E":"x y","b\\u003cx\\u003e":"\\u00262","tag":"a\\u003eb"}'
    line = jsonlog.encode_entry(b"hi\n", "stdout", 1_700_000_000_000_000_000, attrs)
    assert line.startswith(b'{"log":"hi\\n","stream":"stdout","attrs":{"E"')
    assert json.loads(line)["attrs"]["b<x>"] == "&2"
    assert jsonlog.encode_entry(b"hi\n", "stdout", 0, "") == \
        b'{"log":"hi\\n","stream":"stdout","time":"1970-01-01T00:00:00Z"}\n'
