"""run/create flags -> the Engine API create body, byte for byte what docker CLI 28.2 sends."""

from __future__ import annotations

import json

import pytest

from dockyard.cli.client import CLIError
from dockyard.cli.containeropts import OptionsError, parse_container_options, read_kv_file
from dockyard.cli.mountopts import parse_mount
from dockyard.cli.ports import parse_port_specs
from dockyard.cli.run import container_parser, start_error_status

DOCKER_28_BODY = (
    '{"Hostname":"h","Domainname":"d","User":"1000:1000","AttachStdin":true,"AttachStdout":tr'
    'ue,"AttachStderr":false,"ExposedPorts":{"5000/tcp":{},"7000/tcp":{},"7001/tcp":{},"80/tc'
    'p":{},"91/udp":{}},"Tty":true,"OpenStdin":true,"StdinOnce":true,"Env":["FROMFILE=1","PAS'
    'S_ME=passed","A=1"],"Cmd":["sleep","100"],"Healthcheck":{"Test":["CMD-SHELL","true"],"In'
    'terval":5000000000,"Retries":2},"Image":"busybox:dockyard-test","Volumes":{"/anon":{}},"'
    'WorkingDir":"/tmp","Entrypoint":["/bin/sh"],"OnBuild":null,"Labels":{"k":"v","k2":"","lf'
    '":"1"},"StopSignal":"SIGUSR1","StopTimeout":5,"HostConfig":{"Binds":["/tmp:/mnt:ro"],"Co'
    'ntainerIDFile":"","LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}},"NetworkMo'
    'de":"default","PortBindings":{"7000/tcp":[{"HostIp":"","HostPort":"7000"}],"7001/tcp":[{'
    '"HostIp":"","HostPort":"7001"}],"80/tcp":[{"HostIp":"","HostPort":"8080"}],"91/udp":[{"H'
    'ostIp":"127.0.0.1","HostPort":"90"}]},"RestartPolicy":{"Name":"on-failure","MaximumRetry'
    'Count":3},"AutoRemove":false,"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"C'
    'apAdd":["CAP_NET_ADMIN","CAP_SYS_TIME"],"CapDrop":["CAP_MKNOD"],"CgroupnsMode":"","Dns":'
    '["8.8.8.8"],"DnsOptions":["ndots:2"],"DnsSearch":["ex.com"],"ExtraHosts":["foo:1.2.3.4"]'
    ',"GroupAdd":["10"],"IpcMode":"host","Cgroup":"","Links":null,"OomScoreAdj":10,"PidMode":'
    '"host","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":true,"SecurityOpt":["'
    'no-new-privileges","label=disable"],"Tmpfs":{"/run":"size=1m","/tmp2":""},"UTSMode":"","'
    'UsernsMode":"","ShmSize":33554432,"Sysctls":{"net.ipv4.ip_forward":"1"},"Runtime":"runc"'
    ',"Isolation":"","CpuShares":512,"Memory":67108864,"NanoCpus":1500000000,"CgroupParent":"'
    '","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":['
    '],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":50000,"Cpu'
    'RealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"0","CpusetMems":"","Devices":[{"P'
    'athOnHost":"/dev/null","PathInContainer":"/dev/xnull","CgroupPermissions":"rw"}],"Device'
    'CgroupRules":null,"DeviceRequests":null,"MemoryReservation":33554432,"MemorySwap":134217'
    '728,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":100,"Ulimits":[{"Name":"nof'
    'ile","Hard":2048,"Soft":1024}],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumB'
    'andwidth":0,"Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}'
    '},{"Type":"volume","Source":"vol","Target":"/v","VolumeOptions":{"NoCopy":true,"Labels":'
    '{"x":"y"},"DriverConfig":{}}},{"Type":"bind","Source":"/tmp","Target":"/b","ReadOnly":tr'
    'ue,"BindOptions":{"Propagation":"rslave"}}],"MaskedPaths":null,"ReadonlyPaths":null,"Ini'
    't":true},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":nul'
    'l,"Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"","Endpoi'
    'ntID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address'
    '":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}'
)

FLAGS = (
    "-e A=1 --env-file {envfile} -v /tmp:/mnt:ro -v /anon "
    "--mount type=tmpfs,target=/t,tmpfs-size=1m "
    "--mount type=volume,source=vol,target=/v,volume-label=x=y,volume-nocopy "
    "--mount type=bind,source=/tmp,target=/b,readonly,bind-propagation=rslave "
    "-p 8080:80 -p 127.0.0.1:90:91/udp -p 7000-7001:7000-7001 --expose 5000 -w /tmp "
    "-u 1000:1000 --entrypoint /bin/sh --hostname h --domainname d --restart on-failure:3 "
    "-m 64m --memory-swap 128m --memory-reservation 32m --cpus 1.5 --cpu-shares 512 "
    "--cpu-quota 50000 --cpuset-cpus 0 --pids-limit 100 --cap-add net_admin --cap-add SYS_TIME "
    "--cap-drop MKNOD --security-opt no-new-privileges --security-opt label=disable --read-only "
    "--tmpfs /run:size=1m --tmpfs /tmp2 --dns 8.8.8.8 --dns-search ex.com --dns-option ndots:2 "
    "--add-host foo:1.2.3.4 --init --ulimit nofile=1024:2048 --device /dev/null:/dev/xnull:rw "
    "--shm-size 32m --sysctl net.ipv4.ip_forward=1 --pid host --ipc host -l k=v -l k2 "
    "--label-file {labelfile} --log-driver json-file --log-opt max-size=1m "
    "--stop-signal SIGUSR1 --stop-timeout 5 --runtime runc --oom-score-adj 10 --group-add 10 "
    "--health-cmd true --health-interval 5s --health-retries 2 -i -t -a stdout "
    "busybox:dockyard-test sleep 100")


def body(argv: list[str], command: str = "create", **kw) -> dict:
    ns = container_parser(command, "", command == "run").parse(argv)
    return parse_container_options(ns, ns.image, ns.args, **kw).body()


def test_full_flag_set_matches_docker_28_byte_for_byte(tmp_path, monkeypatch):
    (tmp_path / "envfile").write_text("FROMFILE=1\n# comment\nPASS_ME\nNOT_SET\n")
    (tmp_path / "labelfile").write_text("lf=1\n")
    monkeypatch.setenv("PASS_ME", "passed")
    monkeypatch.delenv("NOT_SET", raising=False)
    argv = FLAGS.format(envfile=tmp_path / "envfile", labelfile=tmp_path / "labelfile").split()
    ours = json.dumps(body(argv, environ={"PASS_ME": "passed"}), separators=(",", ":"))
    assert ours == DOCKER_28_BODY


def test_defaults_match_docker():
    b = body(["busybox"])
    assert b["AttachStdout"] and b["AttachStderr"] and not b["AttachStdin"]
    assert b["Env"] is None and b["Cmd"] is None and b["Entrypoint"] is None
    hc = b["HostConfig"]
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["NetworkMode"] == "default" and hc["PortBindings"] == {}
    assert hc["MemorySwappiness"] == -1 and hc["PidsLimit"] == 0 and "Init" not in hc
    assert list(b["NetworkingConfig"]["EndpointsConfig"]) == ["default"]
    assert "StopSignal" not in b and "StopTimeout" not in b


def test_network_endpoints():
    assert body(["--network", "none", "busybox"])["NetworkingConfig"] == {"EndpointsConfig": {}}
    b = body(["--network", "mynet", "--network-alias", "web", "--ip", "10.0.0.2", "busybox"])
    ep = b["NetworkingConfig"]["EndpointsConfig"]["mynet"]
    assert ep["Aliases"] == ["web"] and ep["IPAMConfig"]["IPv4Address"] == "10.0.0.2"
    assert b["HostConfig"]["NetworkMode"] == "mynet"


def test_entrypoint_reset_and_interactive_attach():
    assert body(["--entrypoint=", "busybox"])["Entrypoint"] == [""]
    b = body(["-i", "busybox"])
    assert b["AttachStdin"] and b["OpenStdin"] and b["StdinOnce"]
    b = body(["-a", "STDERR", "busybox"])
    assert (b["AttachStdin"], b["AttachStdout"], b["AttachStderr"]) == (False, False, True)


def test_caps_are_normalised_sorted_and_not_cancelled():
    hc = body(["--cap-add", "b", "--cap-add", "a", "--cap-add", "a", "--cap-drop", "A",
               "busybox"])["HostConfig"]
    assert hc["CapAdd"] == ["CAP_A", "CAP_B"] and hc["CapDrop"] == ["CAP_A"]
    hc = body(["--cap-add", "all", "--cap-drop", "ALL", "busybox"])["HostConfig"]
    assert hc["CapAdd"] == ["ALL"] and hc["CapDrop"] == ["ALL"]


def test_resources():
    hc = body(["--cpus", "0.5", "-m", "1g", "--memory-swap", "-1", "--shm-size", "64m",
               "--ulimit", "nproc=5", "--init=false", "busybox"])["HostConfig"]
    assert hc["NanoCpus"] == 500_000_000 and hc["Memory"] == 1 << 30
    assert hc["MemorySwap"] == -1 and hc["ShmSize"] == 64 << 20
    assert hc["Ulimits"] == [{"Name": "nproc", "Hard": 5, "Soft": 5}]
    assert hc["Init"] is False


@pytest.mark.parametrize("argv, message", [
    (["--rm", "--restart", "always", "busybox"],
     "conflicting options: cannot specify both --restart and --rm"),
    (["--restart", "on-failure:x", "busybox"],
     "invalid restart policy format: maximum retry count must be an integer"),
    (["-p", "abc", "busybox"], "invalid containerPort: abc"),
    (["-p", "1.2.3:80:80", "busybox"], "invalid IP address: 1.2.3"),
    (["--expose", "1:2", "busybox"], "invalid port format for --expose: 1:2"),
    (["--pid", "bogus", "busybox"], "--pid: invalid PID mode"),
    (["--security-opt", "bogus", "busybox"], 'Invalid --security-opt: "bogus"'),
    (["--device", "/dev/x:rel", "busybox"], "rel is not an absolute path"),
    (["--no-healthcheck", "--health-cmd", "x", "busybox"],
     "--no-healthcheck conflicts with --health-* options"),
    (["--memory-swappiness", "101", "busybox"],
     "invalid value: 101. Valid memory swappiness range is 0-100"),
])
def test_option_errors(argv, message):
    with pytest.raises(OptionsError, match=message.replace("*", r"\*").replace(".", r"\.")):
        body(argv)


@pytest.mark.parametrize("argv, first_line", [
    (["-m", "10x", "busybox"], 'invalid argument "10x" for "-m, --memory" flag: invalid suffix: \'x\''),
    (["--cpus", "abc", "busybox"],
     'invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number'),
    (["--cpus", "0.0000000001", "busybox"],
     'invalid argument "0.0000000001" for "--cpus" flag: value is too precise'),
    (["--ulimit", "foo=1", "busybox"],
     'invalid argument "foo=1" for "--ulimit" flag: invalid ulimit type: foo'),
    (["--mount", "type=tmpfs", "busybox"],
     'invalid argument "type=tmpfs" for "--mount" flag: target is required'),
    (["--dns", "x", "busybox"],
     'invalid argument "x" for "--dns" flag: IP address is not correctly formatted: x'),
    (["--pids-limit", "x", "busybox"],
     'invalid argument "x" for "--pids-limit" flag: strconv.ParseInt: parsing "x": invalid syntax'),
    (["--sysctl", "kernel.foo=1", "busybox"],
     'invalid argument "kernel.foo=1" for "--sysctl" flag: sysctl \'kernel.foo=1\' is not allowed'),
    (["-a", "bogus", "busybox"],
     'invalid argument "bogus" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'),
    (["--badflag", "busybox"], "unknown flag: --badflag"),
    (["-z", "busybox"], "unknown shorthand flag: 'z' in -z"),
    (["--name"], "flag needs an argument: --name"),
    (["--rm=maybe", "busybox"],
     'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
])
def test_flag_errors_read_like_pflag_and_exit_125(argv, first_line):
    with pytest.raises(CLIError) as exc:
        body(argv, "run")
    assert exc.value.status == 125
    assert exc.value.message.splitlines()[0] == first_line
    assert exc.value.message.endswith("Run 'dockyard run --help' for more information")


def test_missing_image_is_an_argument_count_error():
    with pytest.raises(CLIError) as exc:
        body([], "run")
    assert exc.value.status == 1
    assert exc.value.message.startswith("dockyard: 'dockyard run' requires at least 1 argument")


def test_command_after_image_is_not_parsed_and_bools_take_go_values():
    ns = container_parser("run", "", True).parse(
        ["--rm=true", "-d=false", "--sig-proxy=false", "-it", "busybox", "sh", "-c", "ls -l",
         "--rm"])
    assert ns.rm and not ns.detach and not ns.sig_proxy and ns.interactive and ns.tty
    assert ns.image == "busybox" and ns.args == ["sh", "-c", "ls -l", "--rm"]


@pytest.mark.parametrize("specs, exposed, bindings", [
    (["80"], ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    (["8080:80/udp"], ["80/udp"], {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}),
    (["127.0.0.1::80"], ["80/tcp"], {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    (["[::1]:80:80"], ["80/tcp"], {"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}),
    (["8000-8001:80-81"], ["80/tcp", "81/tcp"],
     {"80/tcp": [{"HostIp": "", "HostPort": "8000"}], "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
    (["8000-8010:80"], ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}),
    (["published=8080,target=80,protocol=udp"], ["80/udp"],
     {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}),
    (["80", "0.0.0.0:81:80"], ["80/tcp"],
     {"80/tcp": [{"HostIp": "", "HostPort": ""}, {"HostIp": "0.0.0.0", "HostPort": "81"}]}),
])
def test_port_specs(specs, exposed, bindings):
    got_exposed, got_bindings = parse_port_specs(specs)
    assert sorted(got_exposed) == exposed and got_bindings == bindings


@pytest.mark.parametrize("spec, message", [
    ("80-70", "invalid containerPort: 80-70"), ("80/xyz", "invalid proto: xyz"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("x:80", "invalid hostPort: x"),
])
def test_port_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_port_specs([spec])


def test_mounts():
    assert parse_mount("type=bind,src=/a,dst=/b,ro") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True}
    assert parse_mount("target=/v,volume-driver=local,volume-opt=o=1") == {
        "Type": "volume", "Target": "/v",
        "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"o": "1"}}}}
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-mode=1770") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": 0o1770}}
    for spec, message in [("type=bind,dst=/x,volume-nocopy", "cannot mix 'volume-*' options"),
                          ("dst=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
                          ("dst=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
                          ("type=tmpfs,dst=/x,tmpfs-size=x", "invalid value for tmpfs-size: x")]:
        with pytest.raises(ValueError, match=message.replace("*", r"\*")):
            parse_mount(spec)


def test_env_file_rules(tmp_path):
    path = tmp_path / "env"
    path.write_text("\ufeffA=1\n  B=2 \n#x\n\nC\nD\n")
    assert read_kv_file(str(path), True, {"C": "c"}) == ["A=1", "B=2 ", "C=c"]
    path.write_text("BAD KEY=1\n")
    with pytest.raises(OptionsError, match="variable 'BAD KEY' contains whitespaces"):
        read_kv_file(str(path), True, {})


@pytest.mark.parametrize("message, status", [
    ('exec: "nosuchcmd": executable file not found in $PATH: unknown', 127),
    ("open /x: no such file or directory", 127),
    ('exec: "/etc": permission denied: unknown', 126),
    ("something else", 125),
])
def test_start_error_statuses(message, status):
    assert start_error_status(message) == status
