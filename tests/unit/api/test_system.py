"""/_ping, /version, /info, /system/df: dockerd's headers and Docker's v1.51 shapes."""

from __future__ import annotations

import re

import pytest

from dockyard.engine import sysinfo
from dockyard.http.client import HTTPClient
from dockyard.image.delete import ContainerUse
from dockyard.testing.apifakes import aio, chunks, layer_tar, serving

# system.Info of moby 28 (api/types/system/info.go) for API 1.51: every field without
# omitempty, in the struct's order (docs.docker.com/reference/api/engine/version/v1.51,
# schema SystemInfo).
INFO_FIELDS = [
    "ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images",
    "Driver", "DriverStatus", "Plugins", "MemoryLimit", "SwapLimit", "CpuCfsPeriod",
    "CpuCfsQuota", "CPUShares", "CPUSet", "PidsLimit", "IPv4Forwarding", "Debug", "NFd",
    "OomKillDisable", "NGoroutines", "SystemTime", "LoggingDriver", "CgroupDriver",
    "NEventsListener", "KernelVersion", "OperatingSystem", "OSVersion", "OSType",
    "Architecture", "IndexServerAddress", "RegistryConfig", "NCPU", "MemTotal",
    "GenericResources", "DockerRootDir", "HttpProxy", "HttpsProxy", "NoProxy", "Name", "Labels",
    "ExperimentalBuild", "ServerVersion", "Runtimes", "DefaultRuntime", "Swarm",
    "LiveRestoreEnabled", "Isolation", "InitBinary", "ContainerdCommit", "RuncCommit",
    "InitCommit", "SecurityOptions", "CDISpecDirs", "Warnings",
]
INFO_OPTIONAL = {"SystemStatus", "KernelMemory", "KernelMemoryTCP", "CgroupVersion",
                 "ProductLicense", "DefaultAddressPools", "FirewallBackend", "Containerd"}
VERSION_FIELDS = ["Platform", "Components", "Version", "ApiVersion", "MinAPIVersion",
                  "GitCommit", "GoVersion", "Os", "Arch", "KernelVersion", "BuildTime"]
ENGINE_DETAILS = ["ApiVersion", "Arch", "BuildTime", "Experimental", "GitCommit", "GoVersion",
                  "KernelVersion", "MinAPIVersion", "Os"]


async def get(path, target: str, method: str = "GET"):
    async with await HTTPClient.connect(path) as client:
        resp = await client.request(method, target)
        body = await resp.read()
    return resp, body


@aio
async def test_ping_as_dockerd(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path):
        head, head_body = await get(path, "/_ping", "HEAD")
        got, body = await get(path, "/v1.51/_ping")
    assert (head.status, head_body, got.status, body) == (200, b"", 200, b"OK")
    for resp in (head, got):
        h = resp.headers
        assert h["Api-Version"] == "1.51" and h["Ostype"] == "linux"
        assert h["Docker-Experimental"] == "false" and h["Builder-Version"] == "1"
        assert h["Swarm"] == "inactive" and h["Pragma"] == "no-cache"
        assert h["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert h["Content-Type"] == "text/plain; charset=utf-8"
        assert re.fullmatch(r"Docker/28\.3\.0-dockyard\.\S+ \(linux\)", h["Server"])
    assert head.headers["Content-Length"] == "0"


@aio
async def test_version_shape(engine, tmp_path):
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            doc = await (await client.request("GET", "/v1.44/version")).json()
    assert list(doc) == VERSION_FIELDS
    assert doc["ApiVersion"] == "1.51" and doc["MinAPIVersion"] == "1.24"
    assert doc["Os"] == "linux" and doc["Arch"] in ("amd64", "arm64", "arm", "ppc64le", "s390x",
                                                     "riscv64", "386")
    engine_component = doc["Components"][0]
    assert engine_component["Name"] == "Engine"
    assert sorted(engine_component["Details"]) == ENGINE_DETAILS
    assert engine_component["Details"]["Experimental"] == "false"
    assert engine_component["Version"] == doc["Version"]
    assert all(isinstance(v, str) for c in doc["Components"] for v in c["Details"].values())


@aio
async def test_info_shape_and_counts(engine, tmp_path):
    engine.containers.users["sha256:x"] = [ContainerUse("c1", True), ContainerUse("c2")]
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request("POST", "/images/create?fromSrc=-&repo=tiny",
                                        body=chunks(layer_tar()))
            assert resp.status == 200, await resp.read()
            await resp.read()
            info = await (await client.request("GET", "/info")).json()
            again = await (await client.request("GET", "/info")).json()
    keys = list(info)
    assert [k for k in keys if k not in INFO_OPTIONAL] == INFO_FIELDS
    assert set(keys) - set(INFO_FIELDS) <= INFO_OPTIONAL
    assert (info["Containers"], info["ContainersRunning"], info["ContainersStopped"]) == (2, 1, 1)
    assert info["Images"] == 1 and info["Driver"] == "native"
    assert info["ID"] == again["ID"] and len(info["ID"]) == 36  # a stable UUID
    assert info["DockerRootDir"] == engine.config.data_root
    assert info["OSType"] == "linux" and info["CgroupVersion"] in ("1", "2")
    assert info["LoggingDriver"] == "json-file" and info["CgroupDriver"] == "cgroupfs"
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["LiveRestoreEnabled"] is True and info["Isolation"] == ""
    assert "dockyard" in info["Runtimes"] and info["DefaultRuntime"] == "dockyard"
    assert all(set(r) == {"path"} for r in info["Runtimes"].values())
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0 and info["NFd"] > 0
    assert info["RegistryConfig"]["IndexConfigs"]["docker.io"]["Official"] is True
    assert set(info["RuncCommit"]) == {"ID"}
    for key in ("MemoryLimit", "SwapLimit", "CpuCfsPeriod", "CPUShares", "IPv4Forwarding"):
        assert isinstance(info[key], bool)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
                        info["SystemTime"])


@pytest.mark.parametrize("version, present, absent", [
    ("1.24", {"ExecutionDriver", "BridgeNfIptables"}, set()),
    ("1.41", {"BridgeNfIptables", "BridgeNfIp6tables"}, {"ExecutionDriver"}),
    ("1.50", set(), {"BridgeNfIptables", "ExecutionDriver"}),
])
@aio
async def test_info_on_older_versions(engine, tmp_path, version, present, absent):
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            info = await (await client.request("GET", f"/v{version}/info")).json()
    assert present <= set(info) and not absent & set(info)
    if version < "1.49":
        assert info["RuncCommit"]["Expected"] == info["RuncCommit"]["ID"]
    if version == "1.24":
        assert all("," not in o and "=" not in o for o in info["SecurityOptions"])


@aio
async def test_system_df(engine, tmp_path):
    engine.containers.summaries = [{"Id": "c1", "SizeRw": 5, "SizeRootFs": 10}]
    async with serving(engine, tmp_path) as (_, path):
        async with await HTTPClient.connect(path) as client:
            resp = await client.request("POST", "/images/create?fromSrc=-&repo=tiny",
                                        body=chunks(layer_tar()))
            image_id = (await resp.json())["status"]
            engine.containers.users[image_id] = [ContainerUse("c1", False)]
            df = await (await client.request("GET", "/system/df")).json()
            only = await (await client.request("GET", "/system/df?type=image")).json()
            bad = await client.request("GET", "/system/df?type=bogus")
            bad_body = await bad.json()
    assert list(df) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache"]
    (image,) = df["Images"]
    assert image["Id"] == image_id and image["Containers"] == 1 and image["SharedSize"] == 0
    assert df["LayersSize"] == image["Size"] > 0
    assert df["Containers"] == engine.containers.summaries
    assert df["Volumes"] == [] and df["BuildCache"] == []
    assert only["Images"] and only["Containers"] is None and only["BuildCache"] is None
    assert bad.status == 400 and bad_body == {"message": "unknown object type: bogus"}


# -- host probes ---------------------------------------------------------------------------------

def _touch(root, *names):
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")


def test_probe_cgroup_v1(tmp_path):
    _touch(tmp_path, "memory/memory.limit_in_bytes", "memory/memory.oom_control",
           "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "cpu/cpu.shares",
           "cpuset/cpuset.cpus", "pids/pids.max")
    cg = sysinfo.probe_cgroups(tmp_path)
    assert cg.version == "1" and cg.memory_limit and not cg.swap_limit
    assert cg.oom_kill_disable and not cg.kernel_memory_tcp
    assert cg.cpu_cfs and cg.cpu_shares and cg.cpuset and cg.pids_limit


def test_probe_cgroup_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    _touch(tmp_path, "user.slice/memory.swap.max")
    proc = tmp_path / "self-cgroup"
    proc.write_text("0::/user.slice\n")
    cg = sysinfo.probe_cgroups(tmp_path, proc)
    assert cg.version == "2" and cg.memory_limit and cg.swap_limit and cg.cpu_cfs
    assert not cg.oom_kill_disable and not cg.kernel_memory_tcp
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    assert not sysinfo.probe_cgroups(tmp_path, proc).cpu_cfs


def test_os_release_meminfo_mounts(tmp_path):
    _touch(tmp_path, "etc/os-release")
    (tmp_path / "etc/os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n')
    assert sysinfo.operating_system(tmp_path) == ("Debian GNU/Linux 12 (bookworm)", "12")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16318412 kB\nMemFree:  1 kB\n")
    assert sysinfo.mem_total(meminfo) == 16318412 * 1024
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "30 22 0:5 / /var/lib/dock\\040yard rw - xfs /dev/sdb rw\n"
        "31 22 0:6 / /var/lib/dock rw - tmpfs tmpfs rw\n")
    assert sysinfo.backing_filesystem("/var/lib/dock yard/x", mountinfo) == "xfs"
    assert sysinfo.backing_filesystem("/var/lib/dockyard", mountinfo) == "extfs"
    assert sysinfo.backing_filesystem("/var/lib/dock/a", mountinfo) == "tmpfs"


def test_engine_id_is_stable(tmp_path):
    first = sysinfo.engine_id(tmp_path)
    assert first == sysinfo.engine_id(tmp_path) and len(first) == 36
    (tmp_path / "other").mkdir()
    assert sysinfo.engine_id(tmp_path / "other") != first  # side-by-side daemons differ


def test_binary_version_of_a_script(tmp_path):
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho 'tini version 0.19.0 - git.de40ad0'\n")
    tool.chmod(0o755)
    assert sysinfo.binary_version(str(tool)) == "0.19.0"
    assert sysinfo.binary_version(str(tmp_path / "missing")) == ""
