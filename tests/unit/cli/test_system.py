"""info and version: docker's server sections from the daemon's JSON, line for line.

The expected texts are what docker CLI 28.2 printed for these answers of dockerd 20.10.
"""

from __future__ import annotations

from dockyard.cli.system import (VERSION_TEMPLATE, _engine_component, decode_security_options,
                                 reformat_date, server_info_lines)
from dockyard.cli.tabwriter import tabwrite
from dockyard.cli.template import Template

INFO = {
    "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
    "Images": 1, "Driver": "overlay2",
    "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                     ["Native Overlay Diff", "true"], ["userxattr", "false"]],
    "Plugins": {"Volume": ["local"],
                "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                "Authorization": None,
                "Log": ["awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local",
                        "logentries", "splunk", "syslog"]},
    "Debug": False, "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
    "CgroupVersion": "1", "KernelVersion": "6.18.44-fc-v657",
    "OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "OSType": "linux",
    "Architecture": "x86_64",
    "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": [],
                       "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [],
                                                      "Secure": True, "Official": True}}},
    "NCPU": 2, "MemTotal": 25276284928, "DockerRootDir": "/var/lib/docker", "HttpProxy": "",
    "HttpsProxy": "", "NoProxy": "", "Name": "vm", "Labels": [], "ExperimentalBuild": False,
    "ServerVersion": "20.10.24+dfsg1", "Runtimes": {"runc": {}, "runc-ref": {}},
    "DefaultRuntime": "runc", "Swarm": {"LocalNodeState": "inactive"},
    "LiveRestoreEnabled": False, "InitBinary": "docker-init",
    "ContainerdCommit": {"ID": "1.6.20~ds1-1+deb12u3"},
    "RuncCommit": {"ID": "1.1.5+ds1-1+deb12u1"}, "InitCommit": {"ID": ""},
    "SecurityOptions": ["name=seccomp,profile=default"],
}

INFO_TEXT = """\
 Containers: 0
  Running: 0
  Paused: 0
  Stopped: 0
 Images: 1
 Server Version: 20.10.24+dfsg1
 Storage Driver: overlay2
  Backing Filesystem: extfs
  Supports d_type: true
  Native Overlay Diff: true
  userxattr: false
 Logging Driver: json-file
 Cgroup Driver: cgroupfs
 Cgroup Version: 1
 Plugins:
  Volume: local
  Network: bridge host ipvlan macvlan null overlay
  Log: awslogs fluentd gcplogs gelf journald json-file local logentries splunk syslog
 Swarm: inactive
 Runtimes: runc runc-ref
 Default Runtime: runc
 Init Binary: docker-init
 containerd version: 1.6.20~ds1-1+deb12u3
 runc version: 1.1.5+ds1-1+deb12u1
 init version: \n Security Options:
  seccomp
   Profile: default
 Kernel Version: 6.18.44-fc-v657
 Operating System: Debian GNU/Linux 12 (bookworm)
 OSType: linux
 Architecture: x86_64
 CPUs: 2
 Total Memory: 23.54GiB
 Name: vm
 Docker Root Dir: /var/lib/docker
 Debug Mode: false
 Experimental: false
 Insecure Registries:
  127.0.0.0/8
 Live Restore Enabled: false"""


def test_info_server_section_matches_docker():
    assert "\n".join(server_info_lines(INFO)) == INFO_TEXT


def test_info_debug_lines_and_security_options():
    lines = server_info_lines(dict(INFO, Debug=True, NFd=5, NGoroutines=7,
                                   SystemTime="t", NEventsListener=0))
    assert "  File Descriptors: 5" in lines and "  Goroutines: 7" in lines
    assert decode_security_options(["apparmor", "name=rootless"]) == [("apparmor", []),
                                                                     ("rootless", [])]


VERSION = {
    "Platform": {"Name": ""},
    "Components": [
        {"Name": "Engine", "Version": "20.10.24+dfsg1",
         "Details": {"ApiVersion": "1.41", "Arch": "amd64",
                     "BuildTime": "2026-05-07T21:09:36.000000000+00:00", "Experimental": "false",
                     "GitCommit": "5d6db84", "GoVersion": "go1.19.8",
                     "KernelVersion": "6.18.44-fc-v657", "MinAPIVersion": "1.12", "Os": "linux"}},
        {"Name": "containerd", "Version": "1.6.20~ds1",
         "Details": {"GitCommit": "1.6.20~ds1-1+deb12u3"}},
        {"Name": "runc", "Version": "1.1.5+ds1", "Details": {"GitCommit": "1.1.5+ds1-1+deb12u1"}},
        {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": ""}}],
    "Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
}

VERSION_SERVER_TEXT = """\
Server:
 Engine:
  Version:          20.10.24+dfsg1
  API version:      1.41 (minimum version 1.12)
  Go version:       go1.19.8
  Git commit:       5d6db84
  Built:            Thu May  7 21:09:36 2026
  OS/Arch:          linux/amd64
  Experimental:     false
 containerd:
  Version:          1.6.20~ds1
  GitCommit:        1.6.20~ds1-1+deb12u3
 runc:
  Version:          1.1.5+ds1
  GitCommit:        1.1.5+ds1-1+deb12u1
 docker-init:
  Version:          0.19.0
  GitCommit:        \n"""


def _render(server):
    client = {"Platform": {"Name": "Dockyard"}, "Version": "0.1.0", "APIVersion": "1.41",
              "DefaultAPIVersion": "1.50", "PythonVersion": "3.11.7", "SDKVersion": "7.1.0",
              "Os": "linux", "Arch": "amd64", "Context": "default"}
    funcs = {"getDetailsOrder": lambda c: sorted((c.get("Details") or {}).keys())}
    text = Template(VERSION_TEMPLATE, funcs).execute({"Client": client, "Server": server})
    return tabwrite(text + "\n", 20, 1, 1, " ")


def test_version_uses_dockers_template_and_layout():
    server = {**VERSION, "Components": [dict(c, Details=dict(c["Details"]))
                                        for c in VERSION["Components"]]}
    _engine_component(server)
    text = _render(server)
    client, _, rest = text.partition("\n\n")
    assert client.splitlines()[:3] == ["Client: Dockyard", " Version:           0.1.0",
                                       " API version:       1.41 (downgraded from 1.50)"]
    assert rest == VERSION_SERVER_TEXT


def test_version_without_engine_component_and_without_server():
    server = {"Version": "1.0", "ApiVersion": "1.51", "MinAPIVersion": "1.24", "Os": "linux",
              "Arch": "amd64", "GitCommit": "x", "GoVersion": "py", "Experimental": False}
    _engine_component(server)
    assert server["Components"][0]["Details"]["MinAPIVersion"] == "1.24"
    assert " Engine:\n  Version:          1.0\n" in _render(server)
    assert "Server" not in _render(None)


def test_reformat_date():
    assert reformat_date("2026-05-07T21:09:36.000000000+00:00") == "Thu May  7 21:09:36 2026"
    assert reformat_date("not a date") == "not a date"
