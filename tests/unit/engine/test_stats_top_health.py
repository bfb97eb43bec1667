"""stats documents from cgroup v1/v2 samples (fake trees), top's ps parsing, health rules."""

from __future__ import annotations

import os

import pytest

from dockyard.errdefs import InvalidArgument, System
from dockyard.engine import health as H
from dockyard.engine import stats as S
from dockyard.engine.top import parse_ps_output, validate_ps_args
from dockyard.runtime.cgroups import cgroup_manager

NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0
"""


def test_net_dev_is_docker_networks_without_loopback():
    assert S.parse_net_dev(NET_DEV) == {"eth0": {
        "rx_bytes": 1500, "rx_packets": 10, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 700, "tx_packets": 5, "tx_errors": 3, "tx_dropped": 4}}


def test_proc_stat_system_usage_in_ns():
    text = "cpu  100 0 50 1000 10 0 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n"
    assert S.parse_proc_stat(text) == 1165 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _v2_tree(tmp_path):
    root = tmp_path / "cgroup"
    leaf = root / "dockyard" / "c1"
    leaf.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids")
    files = {"cgroup.procs": "1\n", "cgroup.controllers": "cpu io memory pids",
             "cpu.stat": "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 10\n"
                         "nr_throttled 2\nthrottled_usec 7\n",
             "memory.stat": "anon 8192\nfile 4096\ninactive_file 1024\n",
             "memory.current": "12288\n", "memory.max": "max\n", "memory.swap.current": "0\n",
             "memory.swap.max": "max\n", "pids.current": "3\n", "pids.max": "50\n",
             "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n"}
    for name, text in files.items():
        (leaf / name).write_text(text)
    return str(root)


def test_v2_sample_in_docker_shape(tmp_path):
    mgr = cgroup_manager(None, "c1", root=_v2_tree(tmp_path))
    doc = S.to_docker(mgr.stats(), v2=True, name="web", cid="c1", read_ns=1_700_000_000_000_000_000,
                      system_cpu=5_000_000, online_cpus=2, host_memory=1 << 30,
                      networks=S.parse_net_dev(NET_DEV))
    assert doc["name"] == "/web" and doc["read"] == "2023-11-14T22:13:20Z"
    assert doc["preread"] == S.ZERO_TIME and doc["precpu_stats"] == S.empty_cpu()
    assert doc["cpu_stats"] == {
        "cpu_usage": {"total_usage": 3_000_000, "usage_in_kernelmode": 1_000_000,
                      "usage_in_usermode": 2_000_000},
        "system_cpu_usage": 5_000_000, "online_cpus": 2,
        "throttling_data": {"periods": 10, "throttled_periods": 2, "throttled_time": 7000}}
    mem = doc["memory_stats"]
    assert mem["usage"] == 12288 and mem["limit"] == 1 << 30  # unlimited: the machine's memory
    assert mem["stats"]["inactive_file"] == 1024 and "max_usage" not in mem
    assert doc["pids_stats"] == {"current": 3, "limit": 50}
    assert doc["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096},
        {"major": 8, "minor": 0, "op": "write", "value": 8192}]
    assert doc["networks"]["eth0"]["rx_bytes"] == 1500
    assert doc["blkio_stats"]["io_queue_recursive"] is None  # v2: only what io.stat has
    later = S.to_docker(mgr.stats(), v2=True, name="web", cid="c1", read_ns=1_700_000_001_000_000_000,
                        system_cpu=6_000_000, online_cpus=2, host_memory=1 << 30, networks=None,
                        previous=doc)
    assert later["precpu_stats"] == doc["cpu_stats"] and later["preread"] == doc["read"]
    assert "networks" not in later


def test_v1_sample_keeps_percpu_and_failcnt():
    raw = {"cpu": {"usage": {"total": 30, "percpu": [10, 20], "kernel": 5, "user": 25},
                   "throttling": {}},
           "memory": {"usage": {"limit": 1 << 20, "usage": 4096, "max": 8192, "failcnt": 1},
                      "raw": {"total_inactive_file": 1}},
           "pids": {"current": 2}, "blkio": {"ioServicedRecursive": [
               {"major": 8, "op": "Read", "value": 3}]}}
    doc = S.to_docker(raw, v2=False, name="a", cid="b", read_ns=0, system_cpu=1, online_cpus=1,
                      host_memory=1 << 30, networks={})
    assert doc["cpu_stats"]["cpu_usage"]["percpu_usage"] == [10, 20]
    mem = doc["memory_stats"]
    assert (mem["usage"], mem["max_usage"], mem["failcnt"], mem["limit"]) == (4096, 8192, 1, 1 << 20)
    assert mem["stats"]["total_inactive_file"] == 1 and mem["stats"]["cache"] == 0
    assert len(mem["stats"]) == 32  # moby's fixed set of memory.stat keys
    assert doc["blkio_stats"]["io_serviced_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 3}]
    assert doc["blkio_stats"]["io_queue_recursive"] == [] and doc["pids_stats"] == {"current": 2}


PS = """UID        PID  PPID  C STIME TTY          TIME CMD
root         1     0  0 10:00 ?        00:00:01 /sbin/init
root       200     1  0 10:01 ?        00:00:00 sleep 1000
-            -     -  0 10:01 ?        00:00:00 a thread line
root       300     1  0 10:01 pts/0    00:00:00 sh -c echo  two  spaces
"""


def test_ps_output_kept_to_the_container():
    out = parse_ps_output(PS, {200, 300})
    assert out["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert out["Processes"] == [
        ["root", "200", "1", "0", "10:01", "?", "00:00:00", "sleep 1000"],
        ["-", "-", "-", "0", "10:01", "?", "00:00:00", "a thread line"],
        ["root", "300", "1", "0", "10:01", "pts/0", "00:00:00", "sh -c echo two spaces"]]
    assert parse_ps_output(PS, {999})["Processes"] is None
    with pytest.raises(System, match="PID field"):
        parse_ps_output("USER CMD\nroot x\n", {1})


def test_ps_args_may_not_rename_pid():
    validate_ps_args("-o pid=PID,comm")
    with pytest.raises(InvalidArgument, match='specifying "user=PID" is not allowed'):
        validate_ps_args("-o user=PID")


def test_health_config_defaults_and_commands():
    assert H.HealthConfig.from_config({}) is None
    assert H.HealthConfig.from_config({"Healthcheck": {"Test": ["NONE"]}}) is None
    cfg = H.HealthConfig.from_config({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f x"],
                                                      "Interval": 2_000_000_000}})
    assert (cfg.interval, cfg.timeout, cfg.retries, cfg.start_period) == (2.0, 30.0, 3, 0.0)
    assert cfg.command(None) == ["/bin/sh", "-c", "curl -f x"]
    assert cfg.command(["/bin/bash", "-ec"]) == ["/bin/bash", "-ec", "curl -f x"]
    assert H.HealthConfig(test=["CMD", "true", "x"]).command(None) == ["true", "x"]


def _result(code: int) -> dict:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": ""}


def test_health_transitions_follow_retries_and_start_period():
    cfg = H.HealthConfig(test=["CMD", "x"], retries=2)
    h = H.new_health()
    assert H.record_result(h, cfg, _result(1), in_start_period=True) == "starting"
    assert h["FailingStreak"] == 0  # not counted in the start period before a success
    assert H.record_result(h, cfg, _result(1), in_start_period=False) == "starting"
    assert H.record_result(h, cfg, _result(1), in_start_period=False) == "unhealthy"
    assert H.record_result(h, cfg, _result(0), in_start_period=False) == "healthy"
    assert h["FailingStreak"] == 0
    assert H.record_result(h, cfg, _result(1), in_start_period=True) == "healthy"
    assert h["FailingStreak"] == 1  # after a success, start-period failures count
    for _ in range(10):
        H.record_result(h, cfg, _result(0), in_start_period=False)
    assert len(h["Log"]) == H.MAX_LOG_ENTRIES


def test_health_status_in_ps():
    assert H.status_suffix(None) == ""
    assert H.status_suffix({"Status": "starting"}) == " (health: starting)"
    assert H.status_suffix({"Status": "unhealthy"}) == " (unhealthy)"
