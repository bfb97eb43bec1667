"""The dockyard CLI's cp planning, stats rows and event lines, against the docker CLI's rules."""

from __future__ import annotations

import pytest

from dockyard.cli.client import CLIError
from dockyard.cli.cp import plan_copy, rebase_name, split_arg
from dockyard.cli.observe import format_event, stats_entry


def test_split_arg():
    assert split_arg("c1:/etc") == ("c1", "/etc")
    assert split_arg("/tmp/a:b") == ("", "/tmp/a:b")
    assert split_arg("./x:y") == ("", "./x:y")
    assert split_arg("file") == ("", "file")


@pytest.mark.parametrize("src,is_dir,dst,exists,dst_dir,want", [
    ("/data", True, "/out", True, True, ("/out", None)),          # into an existing directory
    ("/data/.", True, "/out", True, True, ("/out", None)),        # its contents into it
    ("/data", True, "/new", False, False, ("/", ("data", "new"))),  # a new directory's name
    ("/data/.", True, "/new", False, False, ("/", (".", "new"))),
    ("/f", False, "/g", True, False, ("/", ("f", "g"))),          # a file over a file
    ("/f", False, "/g", False, False, ("/", ("f", "g"))),
])
def test_plan_copy_matches_prepare_archive_copy(src, is_dir, dst, exists, dst_dir, want):
    assert plan_copy(src, is_dir, "", dst, exists, dst_dir) == want


def test_plan_copy_errors():
    with pytest.raises(CLIError, match="cannot copy a directory to a file"):
        plan_copy("/data", True, "", "/g", True, False)
    with pytest.raises(CLIError, match="does not exist"):
        plan_copy("/f", False, "", "/nodir/", False, False)


def test_rebase_name():
    assert rebase_name("data/x/y", ("data", "new")) == "new/x/y"
    assert rebase_name("data", ("data", "new")) == "new"
    assert rebase_name("./x", (".", "new")) == "new/x"
    assert rebase_name("other/x", ("data", "new")) == "other/x"
    assert rebase_name("data/", ("data", "new")) == "new/"


def test_stats_row_as_the_docker_cli_computes_it():
    doc = {"id": "a" * 64, "name": "/web",
           "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
           "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
           "memory_stats": {"usage": 10 << 20, "limit": 100 << 20,
                            "stats": {"total_inactive_file": 2 << 20}},
           "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}},
           "blkio_stats": {"io_service_bytes_recursive": [
               {"op": "Read", "value": 4096}, {"op": "Write", "value": 8192}]},
           "pids_stats": {"current": 3}}
    row = stats_entry(doc, "web")
    assert row["ID"] == "a" * 12 and row["Name"] == "web"
    assert row["CPUPerc"] == "40.00%"  # 200 / 1000 * 2 cpus
    assert row["MemUsage"] == "8MiB / 100MiB" and row["MemPerc"] == "8.00%"
    assert row["NetIO"] == "1.5kB / 500B" and row["BlockIO"] == "4.1kB / 8.19kB"
    assert row["PIDs"] == "3"


def test_event_line():
    ev = {"Type": "container", "Action": "die", "timeNano": 1_700_000_000_123_456_789,
          "Actor": {"ID": "abc", "Attributes": {"name": "web", "exitCode": "2", "image": "bb"}}}
    line = format_event(ev)
    assert line.endswith(" container die abc (exitCode=2, image=bb, name=web)")
    assert ".123456789" in line
