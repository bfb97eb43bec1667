"""inspect's JSON layout, filters and log timestamps: the small conversions commands make."""

from __future__ import annotations

import argparse

from dockyard.cli.container import get_timestamp, parse_filters, update_body
from dockyard.cli.inspect import go_json_indent


def test_inspect_json_is_indented_like_go_without_html_escapes():
    text = go_json_indent([{"Id": "x", "Args": [], "Labels": {}, "Cmd": ["a<b>&c"],
                            "N": None, "Ok": True}])
    assert text == ('[\n    {\n        "Id": "x",\n        "Args": [],\n        "Labels": {},\n'
                    '        "Cmd": [\n            "a<b>&c"\n        ],\n'
                    '        "N": null,\n        "Ok": true\n    }\n]')
    assert go_json_indent([]) == "[]"


def test_filters_become_the_api_map():
    assert parse_filters(["status=exited", "name=x", "status=created", "label=a=b"]) == {
        "status": {"exited": True, "created": True}, "name": {"x": True},
        "label": {"a=b": True}}


def test_log_timestamps():
    assert get_timestamp("10m", now=1000.0) == "400"
    assert get_timestamp("1700000000", now=0) == "1700000000"
    assert get_timestamp("2026-11-28T01:25:11Z") == "1795829111.000000000"


def test_update_body_shape():
    ns = argparse.Namespace(cpu_shares=100, memory=0, cpus=0, blkio_weight=0, cpu_period=0,
                            cpu_quota=0, cpu_rt_period=0, cpu_rt_runtime=0, cpuset_cpus="",
                            cpuset_mems="", memory_reservation=0, memory_swap=0, pids_limit=None)
    body = update_body(ns, {"Name": "", "MaximumRetryCount": 0})
    assert list(body)[:3] == ["CpuShares", "Memory", "NanoCpus"]
    assert body["PidsLimit"] is None and body["MemorySwappiness"] is None
    assert body["RestartPolicy"] == {"Name": "", "MaximumRetryCount": 0}
