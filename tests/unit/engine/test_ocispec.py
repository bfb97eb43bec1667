"""The OCI spec of Docker create requests, option by option, against what dockerd writes.

Expected values come from moby's sources (daemon/oci_linux.go, oci/defaults.go, oci/caps,
moby/profiles) and from config.json files that dockerd 20.10 wrote for the same requests (see
tests/e2e/test_ocispec_vs_dockerd.py, which compares the two live). No root needed: the host is a
hand-made `HostInfo`.
"""

from __future__ import annotations

import json
import os

import pytest

from dockyard.engine import hostconfig, ocispec, specmounts, specsecurity
from dockyard.engine.hostinfo import DaemonOptions, HostInfo
from dockyard.errdefs import InvalidArgument
from dockyard.linux.capabilities import CAPABILITIES
from dockyard.spec.image import parse_config
from dockyard.spec.runtime import Spec

CID = "c0ffee" + "0" * 58
ETC = {"/etc/hosts": "/data/c/hosts", "/etc/resolv.conf": "/data/c/resolv.conf",
       "/etc/hostname": "/data/c/hostname"}
MOUNTINFO = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
DEVICES = (
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0},
    {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6},
)
# A cgroup v1 host like the reference dockerd's, without CAP_SYS_RESOURCE (as in our CI VM).
HOST = HostInfo(capabilities=tuple(c for c in CAPABILITIES if c != "CAP_SYS_RESOURCE"),
                kernel=(6, 1), arch="amd64", cgroup2=False, ncpu=4, cpus="0-3", mems="0",
                mountinfo=MOUNTINFO, devices=DEVICES)
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc/group").write_text("root:x:0:\ntty:x:5:app\napp:x:1000:\nusers:x:100:app\n"
                                    "nogroup:x:65534:\n")
    return str(root)


@pytest.fixture
def spec(rootfs, tmp_path):
    def build(config=None, host_config=None, **kw):
        cfg = {"Cmd": ["sh"], **(config or {})}
        args = dict(container_id=CID, config=cfg, host_config=host_config or {}, image=None,
                    rootfs=rootfs, container_dir=str(tmp_path / "cdir"), hostname="c0ffee000000",
                    etc_files=ETC, host=HOST)
        args.update(kw)
        return ocispec.container_spec(**args)
    return build


def mount(s, dest):
    return next(m for m in s["mounts"] if m["destination"] == dest)


def dests(s):
    return [m["destination"] for m in s["mounts"]]


# -- the default container ---------------------------------------------------------------------

def test_default_container_matches_dockerd(spec, rootfs):
    s = spec()
    Spec.from_json(s)
    assert s["process"] == {
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=c0ffee000000"],
        "cwd": "/",
        "capabilities": {"bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS,
                         "permitted": DEFAULT_CAPS},
        "oomScoreAdj": 0,
    }
    assert s["root"] == {"path": rootfs}
    assert s["hostname"] == "c0ffee000000"
    assert dests(s) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                        "/dev/shm", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]
    assert mount(s, "/dev/shm")["options"] == ["nosuid", "noexec", "nodev", "mode=1777",
                                               "size=67108864"]
    assert mount(s, "/etc/hosts") == {"destination": "/etc/hosts", "type": "bind",
                                      "source": "/data/c/hosts", "options": ["rbind", "rprivate"]}
    linux = s["linux"]
    assert linux["namespaces"] == [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")]
    assert linux["cgroupsPath"] == f"/dockyard/{CID}"
    assert linux["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                               "net.ipv4.ip_unprivileged_port_start": "0"}
    assert linux["resources"] == {
        "devices": ocispec.default_device_rules(), "memory": {"disableOOMKiller": False},
        "cpu": {"shares": 0}, "blockIO": {"weight": 0}}
    assert linux["maskedPaths"] == list(ocispec.MASKED_PATHS)
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"]
    assert "devices" not in linux and "rootfsPropagation" not in linux
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


def test_default_capability_list_is_dockers_fourteen():
    assert list(ocispec.DEFAULT_CAPABILITIES) == DEFAULT_CAPS


def test_default_device_rules():
    rules = ocispec.default_device_rules()
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert [(r["major"], r["minor"]) for r in rules[1:]] == [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0),
                                                             (5, 1), (10, 229)]
    assert rules[-1]["allow"] is False  # /dev/net/tun


def test_cgroup_parent(spec):
    assert spec(cgroup_parent="refdockerd-1")["linux"]["cgroupsPath"] == f"refdockerd-1/{CID}"
    s = spec(host_config={"CgroupParent": "/custom/"})
    assert s["linux"]["cgroupsPath"] == f"/custom/{CID}"


# -- process -----------------------------------------------------------------------------------

def test_tty_sets_terminal_term_and_console_size(spec):
    s = spec({"Tty": True}, {"ConsoleSize": [24, 80]})
    assert s["process"]["terminal"] is True
    assert s["process"]["env"][-1] == "TERM=xterm"
    assert s["process"]["consoleSize"] == {"height": 24, "width": 80}
    assert "consoleSize" not in spec({"Tty": True})["process"]


def test_env_replaces_defaults_and_appends(spec):
    s = spec({"Env": ["FOO=bar", "PATH=/bin", "HOSTNAME=me", "TERM=dumb"], "Tty": True})
    assert s["process"]["env"] == ["PATH=/bin", "HOSTNAME=me", "TERM=dumb", "FOO=bar"]
    # NAME without '=' removes a default
    assert spec({"Env": ["HOSTNAME"]})["process"]["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_working_dir(spec):
    assert spec({"WorkingDir": "/srv//app/"})["process"]["cwd"] == "/srv/app"
    with pytest.raises(InvalidArgument) as exc:
        spec({"WorkingDir": "rel"})
    assert str(exc.value) == "the working directory 'rel' is invalid, it needs to be an absolute path"


def _image(config: dict):
    doc = {"architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": []}}
    return parse_config(json.dumps(doc))


IMG = _image({"Env": ["PATH=/img/bin", "LANG=C", "LANG=dup"], "Cmd": ["/bin/sh", "-c", "serve"],
              "Entrypoint": ["/entry"], "WorkingDir": "/app", "User": "app",
              "Labels": {"a": "1"}, "Volumes": {"/vol": {}}, "StopSignal": "SIGINT"})


@pytest.mark.parametrize("config,args", [
    ({}, ["/entry", "/bin/sh", "-c", "serve"]),
    ({"Cmd": ["x"]}, ["/entry", "x"]),
    ({"Entrypoint": ["/other"]}, ["/other"]),          # an entrypoint drops the image's Cmd
    ({"Entrypoint": ["/other"], "Cmd": ["y"]}, ["/other", "y"]),
    ({"Entrypoint": "/str", "Cmd": "z"}, ["/str", "z"]),
    ({"Entrypoint": [""], "Cmd": ["ls"]}, ["ls"]),     # --entrypoint "" resets it
    ({"Entrypoint": []}, ["/bin/sh", "-c", "serve"]),  # explicit empty: image Cmd, no entrypoint
])
def test_entrypoint_and_cmd_precedence(config, args):
    assert ocispec.resolve_process(config, IMG)[0] == args


def test_no_command_specified():
    with pytest.raises(InvalidArgument) as exc:
        ocispec.resolve_process({"Entrypoint": [""]}, IMG)
    assert str(exc.value) == "No command specified"
    with pytest.raises(InvalidArgument, match="No command specified"):
        ocispec.resolve_process({}, None)


def test_merge_config_with_image():
    cfg = ocispec.merge_config({"Env": ["LANG=en", "X=1"], "Labels": {"b": "2"}}, IMG)
    assert cfg["Env"] == ["LANG=en", "X=1", "PATH=/img/bin"]  # request first, then image
    assert ocispec.merge_config({}, IMG)["Env"] == ["PATH=/img/bin", "LANG=C", "LANG=dup"]
    assert cfg["Labels"] == {"a": "1", "b": "2"}
    assert cfg["User"] == "app" and cfg["WorkingDir"] == "/app" and cfg["StopSignal"] == "SIGINT"
    assert ocispec.merge_config({"Env": ["A=1"]}, _image({"Env": ["B=1", "B=2"]}))["Env"] == \
        ["A=1", "B=1"]
    args, env, cwd = ocispec.resolve_process({"Env": ["X=1"]}, IMG, hostname="h")
    assert env == ["PATH=/img/bin", "HOSTNAME=h", "X=1", "LANG=C"]
    assert cwd == "/app"


def test_image_user_and_volumes_reach_the_spec(spec, rootfs):
    with pytest.raises(InvalidArgument, match="an anonymous volume at /vol has no host path"):
        spec({}, image=IMG)  # the image's VOLUME /vol needs the volume layer
    s = spec({}, image=IMG, volumes={"/vol": "/var/lib/dockyard/volumes/x/_data"})
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 5, 100]}
    assert mount(s, "/vol")["options"] == ["rbind"]  # volumes carry no propagation (dockerd)


# -- users -------------------------------------------------------------------------------------

def test_non_root_user_gets_only_the_bounding_set(spec):
    s = spec({"User": "nobody"})
    assert s["process"]["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534]}
    assert s["process"]["capabilities"] == {"bounding": DEFAULT_CAPS}


@pytest.mark.parametrize("user,group_add,expected", [
    ("app", [], (1000, 1000, [1000, 5, 100])),
    ("app:users", [], (1000, 100, [100])),
    ("1000:5", [], (1000, 5, [5])),
    ("4242", [], (4242, 0, [0])),
    ("", ["tty", "777", "users"], (0, 0, [0, 5, 777, 100])),
])
def test_resolve_user(rootfs, user, group_add, expected):
    uid, gid, gids = ocispec.resolve_user(user, rootfs, group_add=group_add)
    assert (uid, gid, gids) == expected


def test_resolve_user_errors(rootfs):
    with pytest.raises(InvalidArgument) as exc:
        ocispec.resolve_user("x", rootfs)
    assert str(exc.value) == "unable to find user x: no matching entries in passwd file"
    with pytest.raises(InvalidArgument, match="Unable to find group wheel"):
        ocispec.resolve_user("", rootfs, group_add=["wheel"])


def test_resolve_user_never_reads_outside_the_rootfs(tmp_path):
    root = tmp_path / "evil"
    (root / "etc").mkdir(parents=True)
    outside = tmp_path / "outside-passwd"
    outside.write_text("mallory:x:4321:4321::/:/bin/sh\n")
    (root / "etc/passwd").symlink_to(outside)  # absolute: resolved inside the rootfs
    with pytest.raises(InvalidArgument, match="unable to find user mallory"):
        ocispec.resolve_user("mallory", str(root))
    os.unlink(root / "etc/passwd")
    (root / "etc/passwd").symlink_to("../../../../../../.." + str(outside))
    with pytest.raises(InvalidArgument, match="unable to find user mallory"):
        ocispec.resolve_user("mallory", str(root))


def test_missing_passwd_allows_numeric_users(tmp_path):
    assert ocispec.resolve_user("12:34", str(tmp_path)) == (12, 34, [34])


# -- capabilities ------------------------------------------------------------------------------

@pytest.mark.parametrize("add,drop,expected", [
    (["NET_ADMIN"], [], DEFAULT_CAPS + ["CAP_NET_ADMIN"]),
    (["cap_net_admin", "sys_time"], [], DEFAULT_CAPS + ["CAP_NET_ADMIN", "CAP_SYS_TIME"]),
    ([], ["CHOWN", "cap_kill"], [c for c in DEFAULT_CAPS if c not in ("CAP_CHOWN", "CAP_KILL")]),
    (["SYS_ADMIN"], ["ALL"], ["CAP_SYS_ADMIN"]),
    ([], ["all"], []),
    (["ALL"], ["NET_RAW"], [c for c in HOST.capabilities if c != "CAP_NET_RAW"]),
    (["CHOWN"], [], DEFAULT_CAPS + ["CAP_CHOWN"]),  # Docker keeps the duplicate
])
def test_cap_add_and_drop(spec, add, drop, expected):
    caps = spec(host_config={"CapAdd": add, "CapDrop": drop})["process"]["capabilities"]
    assert caps["bounding"] == expected and caps["effective"] == expected
    assert "inheritable" not in caps


def test_unknown_and_unavailable_capabilities(spec):
    with pytest.raises(InvalidArgument) as exc:
        spec(host_config={"CapAdd": ["FOO"]})
    assert str(exc.value) == 'invalid CapAdd: unknown capability: "CAP_FOO"'
    with pytest.raises(InvalidArgument) as exc:
        spec(host_config={"CapDrop": ["SYS_RESOURCE"]})
    assert str(exc.value) == ("invalid CapDrop: capability not supported by your kernel or not "
                              'available in the current environment: "CAP_SYS_RESOURCE"')


# -- privileged --------------------------------------------------------------------------------

def test_privileged(spec):
    s = spec(host_config={"Privileged": True, "Devices": [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}]})
    assert s["process"]["capabilities"]["bounding"] == list(HOST.capabilities)
    linux = s["linux"]
    assert "seccomp" not in linux and "maskedPaths" not in linux and "readonlyPaths" not in linux
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert [d["path"] for d in linux["devices"]] == ["/dev/null", "/dev/sda", "/dev/mynull"]
    assert mount(s, "/sys")["options"] == ["nosuid", "noexec", "nodev"]
    assert mount(s, "/sys/fs/cgroup")["options"] == ["nosuid", "noexec", "nodev"]
    # cgroup v1: the host's cgroup namespace; v2 unshares even for privileged containers
    assert {"type": "cgroup"} not in linux["namespaces"]
    s2 = spec(host_config={"Privileged": True}, host=HostInfo(cgroup2=True, devices=()))
    assert {"type": "cgroup"} in s2["linux"]["namespaces"]


def test_privileged_with_explicit_masked_paths(spec):
    s = spec(host_config={"Privileged": True, "MaskedPaths": ["/proc/kcore"]})
    assert s["linux"]["maskedPaths"] == ["/proc/kcore"] and "readonlyPaths" not in s["linux"]


def test_masked_and_readonly_paths_override(spec):
    s = spec(host_config={"MaskedPaths": [], "ReadonlyPaths": ["/proc/sys"]})
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == ["/proc/sys"]


def test_host_devices_walk(tmp_path):
    from dockyard.engine.hostinfo import host_devices

    (tmp_path / "pts").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "regular").write_text("")
    os.mkfifo(tmp_path / "sub" / "fifo")
    os.symlink("/dev/null", tmp_path / "null-link")
    assert host_devices(str(tmp_path)) == []  # links, files and fifos are not devices
    devs = host_devices("/dev")
    null = next(d for d in devs if d["path"] == "/dev/null")
    assert (null["type"], null["major"], null["minor"], null["fileMode"]) == ("c", 1, 3, 0o666)
    assert not any(d["path"].startswith(("/dev/pts/", "/dev/shm/")) for d in devs)
    assert "/dev/console" not in [d["path"] for d in devs]


# -- security options and seccomp --------------------------------------------------------------

def _allowed(profile):
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
            for n in r["names"]}


def test_default_seccomp_for_default_caps(spec):
    sc = spec()["linux"]["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(sc)
    assert {"read", "ptrace", "arch_prctl", "modify_ldt", "chroot"} <= allowed
    assert not {"mount", "unshare", "reboot", "bpf", "io_uring_setup", "kexec_load"} & allowed
    clone = [r for r in sc["syscalls"] if r["names"] == ["clone"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in sc["syscalls"]
    socket = [r["args"][0] for r in sc["syscalls"] if r["names"] == ["socket"]]
    assert socket[0] == {"index": 0, "value": 12, "op": "SCMP_CMP_LT"} and len(socket) == 26
    assert not any("includes" in r or "excludes" in r or "comment" in r for r in sc["syscalls"])


def test_seccomp_follows_capabilities(spec):
    sc = spec(host_config={"CapAdd": ["SYS_ADMIN", "SYS_PTRACE", "BPF"],
                           "CapDrop": ["SYS_CHROOT"]})["linux"]["seccomp"]
    allowed = _allowed(sc)
    assert {"mount", "unshare", "setns", "clone3", "kcmp", "bpf"} <= allowed
    assert "chroot" not in allowed
    assert not any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO"
                   for r in sc["syscalls"])


def test_seccomp_follows_arch_and_kernel(spec):
    sc = spec(host=HostInfo(arch="arm64", kernel=(4, 4), cgroup2=False))["linux"]["seccomp"]
    assert sc["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    allowed = _allowed(sc)
    assert {"set_tls", "cacheflush"} <= allowed
    assert not {"arch_prctl", "modify_ldt", "ptrace"} & allowed  # ptrace needs kernel >= 4.8


def test_seccomp_unconfined_and_no_new_privileges(spec):
    s = spec(host_config={"SecurityOpt": ["seccomp=unconfined", "no-new-privileges"]})
    assert "seccomp" not in s["linux"] and s["process"]["noNewPrivileges"] is True
    s = spec(host_config={"SecurityOpt": ["no-new-privileges=false", "apparmor=x",
                                          "label=disable", "seccomp:unconfined"]})
    assert "noNewPrivileges" not in s["process"] and "seccomp" not in s["linux"]
    assert spec(daemon=DaemonOptions(no_new_privileges=True))["process"]["noNewPrivileges"]
    assert "seccomp" not in spec(daemon=DaemonOptions(seccomp_profile="unconfined"))["linux"]


@pytest.mark.parametrize("opt,message", [
    ("foo", 'invalid --security-opt 1: "foo"'),
    ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
])
def test_bad_security_opts(spec, opt, message):
    with pytest.raises(InvalidArgument) as exc:
        spec(host_config={"SecurityOpt": [opt]})
    assert str(exc.value) == message


def test_custom_seccomp_profile_from_the_cli(spec):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 1, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]}
    s = spec(host_config={"SecurityOpt": ["seccomp=" + json.dumps(profile)]})
    assert s["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                     {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}
    builtin = spec(host_config={"SecurityOpt": ["seccomp=builtin"]})["linux"]["seccomp"]
    assert builtin == spec()["linux"]["seccomp"]
    assert "seccomp" not in spec(host_config={"SecurityOpt": ["seccomp={}"]})["linux"]


@pytest.mark.parametrize("profile,message", [
    ("{nope", "Decoding seccomp profile failed"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": '
     '[{"architecture": "SCMP_ARCH_X86", "subArchitectures": []}]}',
     "both 'architectures' and 'archMap' are specified in the seccomp profile"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], '
     '"action": "SCMP_ACT_ALLOW"}]}', "both 'name' and 'names' are specified"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], '
     '"action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}]}',
     'invalid kernel version: "4", expected "<kernel>.<major>"'),
])
def test_custom_seccomp_profile_errors(spec, profile, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        spec(host_config={"SecurityOpt": ["seccomp=" + profile]})


def test_default_profile_data_is_mobys():
    profile = ocispec.default_seccomp_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert len(profile["syscalls"][0]["names"]) == 361
    assert [a["architecture"] for a in profile["archMap"]][:2] == ["SCMP_ARCH_X86_64",
                                                                  "SCMP_ARCH_AARCH64"]
    assert not {"io_uring_setup", "io_uring_enter"} & set(profile["syscalls"][0]["names"])


def test_writable_cgroups(spec):
    s = spec(host_config={"SecurityOpt": ["writable-cgroups=true"]})
    assert mount(s, "/sys/fs/cgroup")["options"] == ["nosuid", "noexec", "nodev"]


# -- mounts ------------------------------------------------------------------------------------

def test_binds(spec):
    s = spec(host_config={"Binds": ["/srv/a:/a", "/srv/b:/b:ro", "/srv/c:/deep/c:rw,z",
                                    "/srv/d/:/d/:ro,private"]})
    assert mount(s, "/a") == {"destination": "/a", "type": "bind", "source": "/srv/a",
                              "options": ["rbind", "rprivate"]}
    assert mount(s, "/b")["options"] == ["rbind", "ro", "rprivate"]
    assert mount(s, "/deep/c")["options"] == ["rbind", "rprivate"]
    assert mount(s, "/d") == {"destination": "/d", "type": "bind", "source": "/srv/d",
                              "options": ["rbind", "ro", "private"]}
    user = dests(s)[dests(s).index("/a"):]
    assert user == ["/a", "/b", "/d", "/deep/c", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]


def test_bind_propagation_needs_shared_sources(spec, tmp_path):
    (tmp_path / "shared" / "x").mkdir(parents=True)
    (tmp_path / "slave").mkdir()
    host = HostInfo(cgroup2=False, mountinfo=(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"42 27 254:0 /a {tmp_path}/shared rw,relatime shared:1 - ext4 /dev/vda rw\n"
        f"43 27 254:0 /b {tmp_path}/slave rw,relatime master:1 - ext4 /dev/vda rw\n"))
    s = spec(host_config={"Binds": [f"{tmp_path}/shared/x:/x:rshared"]}, host=host)
    assert mount(s, "/x")["options"] == ["rbind", "rshared"]
    assert s["linux"]["rootfsPropagation"] == "shared"
    s = spec(host_config={"Binds": [f"{tmp_path}/slave:/x:rslave"]}, host=host)
    assert s["linux"]["rootfsPropagation"] == "rslave"
    with pytest.raises(InvalidArgument, match="lstat /nonexistent-src: no such file or directory"):
        spec(host_config={"Binds": ["/nonexistent-src:/x:rshared"]})
    with pytest.raises(InvalidArgument, match="is mounted on / but it is not a shared mount"):
        spec(host_config={"Binds": ["/tmp:/x:shared"]})
    with pytest.raises(InvalidArgument, match="but it is not a shared or slave mount"):
        spec(host_config={"Binds": ["/tmp:/x:slave"]})


def test_binds_within_the_data_root_become_rslave(spec):
    daemon = DaemonOptions(data_root="/tmp/dockyard-data")
    s = spec(host_config={"Binds": ["/tmp:/t:ro"]}, daemon=daemon)
    assert mount(s, "/t")["options"] == ["rbind", "ro", "rslave"]
    assert "rootfsPropagation" not in s["linux"]  # /tmp is private: Docker falls back
    with pytest.raises(InvalidArgument, match='must use either propagation mode "rslave" or "rshared"'):
        spec(host_config={"Binds": ["/tmp/dockyard-data/x:/t:private"]}, daemon=daemon)
    assert mount(spec(host_config={"Binds": ["/srv:/t"]}, daemon=daemon), "/t")["options"] == \
        ["rbind", "rprivate"]


@pytest.mark.parametrize("bind,message", [
    ("", "invalid volume specification: ''"),
    (":/x", "invalid volume specification: ':/x'"),
    ("/x:ro", "invalid volume specification: '/x:ro'"),
    ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
    ("/a:/b:bogus", "invalid mode: bogus"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": "
             "invalid specification: destination can't be '/'"),
    ("/a:rel", "invalid volume specification: '/a:rel': invalid mount config for type \"bind\": "
               "invalid mount path: 'rel' mount path must be absolute"),
    ("/a:/b:nocopy", "invalid volume specification: '/a:/b:nocopy': invalid mount config for "
                     "type \"bind\": field VolumeOptions must not be specified"),
    ("myvol:/data", "volume 'myvol' at /data has no host path"),
    ("/data", "an anonymous volume at /data has no host path"),
])
def test_bad_binds(spec, bind, message):
    with pytest.raises(InvalidArgument) as exc:
        spec(host_config={"Binds": [bind]})
    assert str(exc.value).startswith(message)


def test_duplicate_mount_point(spec, tmp_path):
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        spec(host_config={"Binds": ["/a:/x"], "Mounts": [
            {"Type": "bind", "Source": str(tmp_path), "Target": "/x/"}]})


def test_api_mounts(spec, tmp_path):
    s = spec(host_config={"Mounts": [
        {"Type": "bind", "Source": str(tmp_path), "Target": "/b", "ReadOnly": True,
         "BindOptions": {"NonRecursive": True}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1700,
                                                            "Options": [["exec"]]}},
        {"Type": "tmpfs", "Target": "/t2", "TmpfsOptions": {"SizeBytes": 1000}, "ReadOnly": True},
    ]})
    assert mount(s, "/b") == {"destination": "/b", "type": "bind", "source": str(tmp_path),
                              "options": ["bind", "ro", "rprivate"]}
    assert mount(s, "/t") == {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                              "options": ["nosuid", "nodev", "rprivate", "mode=1700", "size=1m",
                                          "exec"]}
    assert mount(s, "/t2")["options"] == ["noexec", "nosuid", "nodev", "rprivate", "ro",
                                          "size=1000"]


@pytest.mark.parametrize("m,message", [
    ({"Type": "bind", "Source": "/nonexistent-xyz", "Target": "/x"},
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-xyz'),
    ({"Type": "bind", "Target": "/x"}, 'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "/tmp"}, 'invalid mount config for type "bind": field Target must not be empty'),
    ({"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"Propagation": "up"}},
     'invalid mount config for type "bind": invalid propagation mode: up'),
    ({"Type": "tmpfs", "Source": "x", "Target": "/x"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Options": [["nosuid"]]}},
     'invalid mount config for type "tmpfs": invalid option: nosuid'),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True},
     'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'),
    ({"Type": "volume", "Source": "v", "Target": "/x"}, "volume 'v' at /x has no host path"),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"Subpath": "a"}},
     'invalid mount config for type "volume": must not set Subpath when using anonymous volumes'),
    ({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": "../a"}},
     'invalid mount config for type "volume": subpath must be a relative path within the volume'),
    ({"Type": "npipe", "Target": "/x"}, 'invalid mount config for type "npipe": mount type unknown'),
])
def test_bad_api_mounts(spec, m, message):
    with pytest.raises(InvalidArgument) as exc:
        spec(host_config={"Mounts": [m]})
    assert str(exc.value).startswith(message)


def test_tmpfs_map(spec):
    s = spec(host_config={"Tmpfs": {"/run": "size=10m", "/x": "rw,exec,mode=700,size=1g"}})
    assert mount(s, "/run")["options"] == ["noexec", "nosuid", "nodev", "rprivate", "size=10m"]
    assert mount(s, "/x")["options"] == ["nosuid", "nodev", "rprivate", "rw", "exec", "mode=700",
                                         "size=1g"]
    with pytest.raises(InvalidArgument, match=r'Invalid tmpfs option \["bogus"\]'):
        spec(host_config={"Tmpfs": {"/y": "bogus"}})
    with pytest.raises(InvalidArgument, match="destination can't be '/'"):
        spec(host_config={"Tmpfs": {"/": ""}})


def test_merge_tmpfs_options_later_wins():
    assert specmounts.merge_tmpfs_options(
        ["noexec", "rprivate", "size=1m", "defaults", "exec", "shared", "size=2m"]) == \
        ["exec", "shared", "size=2m"]


def test_tmpfs_wins_over_a_bind_and_a_volume_at_the_same_place(spec):
    s = spec({"Volumes": {"/run": {}}}, {"Binds": ["/srv:/run"], "Tmpfs": {"/run": ""}})
    assert mount(s, "/run")["type"] == "tmpfs" and dests(s).count("/run") == 1


def test_readonly_rootfs(spec):
    s = spec(host_config={"ReadonlyRootfs": True, "Binds": ["/srv:/srv"], "Tmpfs": {"/run": ""}})
    assert s["root"]["readonly"] is True
    assert mount(s, "/etc/hosts")["options"] == ["rbind", "ro", "rprivate"]
    assert mount(s, "/srv")["options"] == ["rbind", "rprivate"]      # user mounts stay as asked
    assert "ro" not in mount(s, "/run")["options"]
    assert mount(s, "/dev/shm")["options"][-1] == "size=67108864"      # no ro on /dev/*
    assert "ro" not in mount(s, "/proc")["options"]


def test_user_file_replaces_a_network_file(spec):
    s = spec(host_config={"Binds": ["/srv/myhosts:/etc/hosts:ro"]})
    assert dests(s).count("/etc/hosts") == 1
    assert mount(s, "/etc/hosts") == {"destination": "/etc/hosts", "type": "bind",
                                      "source": "/srv/myhosts", "options": ["rbind", "ro", "rprivate"]}


def test_user_dev_mount_drops_the_default_dev_mounts(spec):
    s = spec(host_config={"Binds": ["/dev:/dev"]})
    assert [d for d in dests(s) if d.startswith("/dev")] == ["/dev"]
    assert mount(s, "/dev")["type"] == "bind"


@pytest.mark.parametrize("ipc,expected", [
    ("private", {"type": "tmpfs", "source": "shm"}),
    ("", {"type": "tmpfs", "source": "shm"}),
    ("host", {"type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]}),
    ("shareable", {"type": "bind", "options": ["rbind", "rprivate"]}),
])
def test_ipc_modes_and_dev_shm(spec, tmp_path, ipc, expected):
    s = spec(host_config={"IpcMode": ipc, "ShmSize": 1 << 20})
    shm = mount(s, "/dev/shm")
    assert {k: shm[k] for k in expected} == expected
    if ipc == "shareable":
        assert shm["source"] == str(tmp_path / "cdir" / "mounts" / "shm")
    has_ipc_ns = {"type": "ipc"} in s["linux"]["namespaces"]
    assert has_ipc_ns == (ipc != "host")
    if expected["type"] == "tmpfs":
        assert shm["options"][-1] == "size=1048576"


def test_ipc_none_has_no_dev_shm(spec):
    s = spec(host_config={"IpcMode": "none"})
    assert "/dev/shm" not in dests(s) and {"type": "ipc"} in s["linux"]["namespaces"]


def test_ipc_of_another_container(spec):
    with pytest.raises(InvalidArgument, match="needs its path"):
        spec(host_config={"IpcMode": "container:abc"})
    s = spec(host_config={"IpcMode": "container:abc"}, namespace_paths={"ipc": "/proc/9/ns/ipc"},
             shm_path="/data/abc/mounts/shm")
    assert {"type": "ipc", "path": "/proc/9/ns/ipc"} in s["linux"]["namespaces"]
    assert mount(s, "/dev/shm")["source"] == "/data/abc/mounts/shm"


# -- init --------------------------------------------------------------------------------------

def test_init(spec):
    s = spec(host_config={"Init": True}, init_path="/usr/bin/tini-static")
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert mount(s, "/sbin/docker-init") == {"destination": "/sbin/docker-init", "type": "bind",
                                             "source": "/usr/bin/tini-static",
                                             "options": ["bind", "ro"]}
    assert dests(s).index("/sbin/docker-init") == 7  # right after the defaults
    assert spec(daemon=DaemonOptions(init=True))["process"]["args"][0] == "/sbin/docker-init"
    assert spec(host_config={"Init": False}, daemon=DaemonOptions(init=True))["process"]["args"] == ["sh"]
    # no init where there is an init already: the host's or another container's pid namespace
    assert spec(host_config={"Init": True, "PidMode": "host"})["process"]["args"] == ["sh"]


# -- namespaces and sysctls --------------------------------------------------------------------

def _ns(s):
    return {n["type"]: n.get("path") for n in s["linux"]["namespaces"]}


def test_network_modes(spec):
    assert "network" not in _ns(spec(host_config={"NetworkMode": "host"}))
    assert _ns(spec(host_config={"NetworkMode": "none"}))["network"] is None
    assert _ns(spec(host_config={"NetworkMode": "bridge"}, netns_path="/run/netns/x"))["network"] \
        == "/run/netns/x"
    s = spec(host_config={"NetworkMode": "container:abc"},
             namespace_paths={"network": "/proc/7/ns/net"})
    assert _ns(s)["network"] == "/proc/7/ns/net" and "sysctl" not in s["linux"]
    with pytest.raises(InvalidArgument, match="needs its path"):
        spec(host_config={"NetworkMode": "container:abc"})


def test_host_network_has_no_default_sysctls(spec):
    s = spec(host_config={"NetworkMode": "host"})
    assert "sysctl" not in s["linux"]
    with pytest.raises(InvalidArgument, match='sysctl "net.ipv4.ip_forward" is not allowed'):
        spec(host_config={"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}})


def test_pid_uts_cgroup_modes(spec):
    s = spec(host_config={"PidMode": "host", "UTSMode": "host", "CgroupnsMode": "private"})
    assert _ns(s) == {"mount": None, "network": None, "ipc": None, "cgroup": None}
    assert "hostname" not in s
    s = spec(host_config={"PidMode": "container:x"}, namespace_paths={"pid": "/proc/3/ns/pid"})
    assert _ns(s)["pid"] == "/proc/3/ns/pid"


def test_sysctls(spec):
    s = spec({"Domainname": "example.com"}, {"Sysctls": {
        "net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20",
        "net.ipv4.ip_unprivileged_port_start": "80"}})
    assert s["linux"]["sysctl"] == {
        "kernel.domainname": "example.com", "net.ipv4.ping_group_range": "0 2147483647",
        "net.ipv4.ip_unprivileged_port_start": "80", "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"}
    with pytest.raises(InvalidArgument) as exc:
        spec(host_config={"Sysctls": {"kernel.panic": "1"}})
    assert str(exc.value) == 'sysctl "kernel.panic" is not in a separate kernel namespace'
    with pytest.raises(InvalidArgument, match="host's IPC namespace"):
        spec(host_config={"IpcMode": "host", "Sysctls": {"kernel.sem": "1 2 3 4"}})


def test_default_sysctls_depend_on_the_host(spec):
    s = spec(host=HostInfo(cgroup2=False, in_userns=True,
                           sysctls=frozenset({"net.ipv4.ip_unprivileged_port_start"})))
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert "sysctl" not in spec(host=HostInfo(sysctls=frozenset()))["linux"]


# -- resources ---------------------------------------------------------------------------------

def test_memory(spec):
    res = spec(host_config={"Memory": 64 << 20, "MemoryReservation": 32 << 20,
                            "MemorySwappiness": 10, "OomKillDisable": True})["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                             "swappiness": 10, "disableOOMKiller": True}
    mem = spec(host_config={"Memory": 64 << 20, "MemorySwap": -1})["linux"]["resources"]["memory"]
    assert mem == {"limit": 64 << 20, "disableOOMKiller": False}  # -1: unlimited swap
    mem = spec(host_config={"Memory": 64 << 20, "MemorySwap": 100 << 20})["linux"]["resources"]["memory"]
    assert mem["swap"] == 100 << 20
    nosw = HostInfo(cgroup2=False, swap_limit=False)
    assert "swap" not in spec(host_config={"Memory": 64 << 20}, host=nosw)["linux"]["resources"]["memory"]
    mem = spec(host_config={"MemorySwappiness": -1})["linux"]["resources"]["memory"]
    assert "swappiness" not in mem


def test_cpu(spec):
    cpu = spec(host_config={"NanoCpus": 1_500_000_000, "CpuShares": 512})["linux"]["resources"]["cpu"]
    assert cpu == {"shares": 512, "period": 100000, "quota": 150000}
    cpu = spec(host_config={"CpuPeriod": 50000, "CpuQuota": 20000, "CpusetCpus": "0-1",
                            "CpusetMems": "0"})["linux"]["resources"]["cpu"]
    assert cpu == {"shares": 0, "period": 50000, "quota": 20000, "cpus": "0-1", "mems": "0"}


def test_pids_and_blkio(spec):
    res = spec(host_config={"PidsLimit": 50, "BlkioWeight": 300,
                            "BlkioWeightDevice": [{"Path": "/dev/null", "Weight": 200}],
                            "BlkioDeviceReadBps": [{"Path": "/dev/zero", "Rate": 1024}]})["linux"]["resources"]
    assert res["pids"] == {"limit": 50}
    assert res["blockIO"] == {"weight": 300,
                              "weightDevice": [{"major": 1, "minor": 3, "weight": 200}],
                              "throttleReadBpsDevice": [{"major": 1, "minor": 5, "rate": 1024}]}
    assert spec(host_config={"PidsLimit": 0})["linux"]["resources"]["pids"] == {"limit": -1}
    assert spec(host_config={"PidsLimit": -1})["linux"]["resources"]["pids"] == {"limit": -1}
    with pytest.raises(InvalidArgument, match="stat /nonexistent: no such file or directory"):
        spec(host_config={"BlkioDeviceWriteIOps": [{"Path": "/nonexistent", "Rate": 1}]})


def test_devices_and_cgroup_rules(spec):
    s = spec(host_config={
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                     "CgroupPermissions": "r"}],
        "DeviceCgroupRules": ["c 42:* rmw", "b *:7 r"]})
    dev = s["linux"]["devices"][0]
    assert (dev["path"], dev["type"], dev["major"], dev["minor"]) == ("/dev/mynull", "c", 1, 3)
    assert dev["fileMode"] == 0o666
    rules = s["linux"]["resources"]["devices"]
    assert rules[:8] == ocispec.default_device_rules()
    assert rules[8:] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 42, "minor": -1, "access": "rmw"},
        {"allow": True, "type": "b", "major": -1, "minor": 7, "access": "r"}]
    with pytest.raises(InvalidArgument, match='adding custom device "/dev/nope": lstat /dev/nope'):
        spec(host_config={"Devices": [{"PathOnHost": "/dev/nope", "PathInContainer": "/x",
                                       "CgroupPermissions": "rwm"}]})


def test_device_directory_mapping():
    parent = next((p for p in ("/dev/cpu", "/dev/input", "/dev/snd", "/dev/dri", "/dev/vfio")
                   if os.path.isdir(p) and specmounts._walk_devices(p)), None)
    if parent is None:
        pytest.skip("no directory of device nodes under /dev")
    devs, rules = specmounts.devices_from_path(parent, "/dev/mine", "rw")
    assert devs and all(d["path"].startswith("/dev/mine/") for d in devs)
    assert [r["access"] for r in rules] == ["rw"] * len(devs)
    with pytest.raises(InvalidArgument, match='custom device "/etc": not a device node'):
        specmounts.devices_from_path("/etc", "/x", "rwm")


@pytest.mark.parametrize("rules,expected", [
    (["a"], [{"allow": True, "type": "a", "major": -1, "minor": -1, "access": "rwm"}]),
    (["a *:* rwm", "c 1:1 r"], [{"allow": True, "type": "a", "major": -1, "minor": -1, "access": "rwm"}]),
    (["c 1:2 m"], [{"allow": True, "type": "c", "major": 1, "minor": 2, "access": "m"}]),
])
def test_device_cgroup_rules(rules, expected):
    assert specmounts.device_cgroup_rules(rules) == expected


@pytest.mark.parametrize("rule,message", [
    ("x 1:1 r", "invalid device cgroup rule format: 'x 1:1 r'"),
    ("c 1:1 rwx", "invalid device cgroup rule format: 'c 1:1 rwx'"),
    ("a 1:3 m", "although this cgroup rule is technically correct"),
    ("c 4096:1 r", "invalid major value in device cgroup rule format: 'c 4096:1 r'"),
    ("c 1:999999 r", "invalid minor value in device cgroup rule format: 'c 1:999999 r'"),
])
def test_bad_device_cgroup_rules(rule, message):
    with pytest.raises(InvalidArgument, match=message):
        specmounts.device_cgroup_rules([rule])


def test_ulimits(spec):
    s = spec(host_config={"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}]},
             daemon=DaemonOptions(default_ulimits=({"Name": "nofile", "Soft": 1, "Hard": 1},
                                                   {"Name": "nproc", "Soft": 5, "Hard": 6})))
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
                                       {"type": "RLIMIT_NPROC", "hard": 6, "soft": 5}]
    assert "rlimits" not in spec()["process"]  # dockerd sets none by default
    with pytest.raises(InvalidArgument, match="ulimit soft limit must be less than or equal to hard limit"):
        spec(host_config={"Ulimits": [{"Name": "nofile", "Soft": 300, "Hard": 200}]})


def test_oom_score_adj_and_annotations(spec):
    s = spec({"Labels": {"l": "1"}}, {"OomScoreAdj": -500, "Annotations": {"a.b": "c"}})
    assert s["process"]["oomScoreAdj"] == -500
    assert s["annotations"] == {"a.b": "c"}  # annotations come from HostConfig, never labels
    assert "annotations" not in spec({"Labels": {"l": "1"}})


def test_container_resources_for_update():
    res = ocispec.container_resources({"Memory": 64 << 20, "MemorySwap": 128 << 20,
                                       "CpuShares": 100, "PidsLimit": 10})
    assert res == {"memory": {"limit": 64 << 20, "swap": 128 << 20}, "cpu": {"shares": 100},
                   "pids": {"limit": 10}, "blockIO": {"weight": 0}}


# -- validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("hc,message", [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 32 << 20}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"MemoryReservation": 1024}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 8 << 20, "MemoryReservation": 16 << 20},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**9, "CpuQuota": 100000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"NanoCpus": 5 * 10**9}, "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"),
    ({"CpuPeriod": 999}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"CpuShares": -1}, "shares: invalid argument"),
    ({"CpusetCpus": "0-7"}, "Requested CPUs are not available - requested 0-7, available: 0-3"),
    ({"CpusetMems": "1"}, "Requested memory nodes are not available - requested 1, available: 0"),
    ({"CpusetCpus": "a"}, "Invalid value a for cpuset cpus: invalid format: a"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"OomScoreAdj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    ({"RestartPolicy": {"Name": "sometimes"}},
     "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"RestartPolicy": {"Name": "no", "MaximumRetryCount": -2}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
     "invalid restart policy: maximum retry count cannot be negative"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
     "can't create 'AutoRemove' container with restart policy"),
    ({"IpcMode": "weird"}, "invalid IPC mode: weird"),
    ({"PidMode": "weird"}, "invalid PID mode: weird"),
    ({"UTSMode": "container:x"}, "invalid UTS mode: container:x"),
    ({"CgroupnsMode": "weird"}, "invalid cgroup namespace mode: weird"),
    ({"Isolation": "hyperv"}, "invalid isolation 'hyperv' on linux"),
    ({"Annotations": {"": "x"}}, "invalid Annotations: the empty string is not permitted as an annotation key"),
    ({"ExtraHosts": ["bad"]}, 'bad format for add-host: "bad"'),
    ({"Tmpfs": {"rel": ""}}, "invalid mount path: 'rel' mount path must be absolute"),
    ({"PortBindings": {"bogus/tcp": [{"HostPort": "80"}]}}, 'invalid port specification: "bogus"'),
    ({"PortBindings": {"80-82/tcp": []}}, 'invalid port specification: "80-82"'),
    ({"PortBindings": {"+80": None}}, 'invalid port specification: "+80"'),
    ({"PortBindings": {"80/tcp": [{"HostPort": "notaport"}]}},
     'invalid port specification: "notaport"'),
    ({"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}}, 'invalid port specification: "70000"'),
    ({"PortBindings": {"80/tcp": [{"HostPort": "82-80"}]}}, 'invalid port specification: "82-80"'),
])
def test_validate_host_config(hc, message):
    with pytest.raises(InvalidArgument) as exc:
        ocispec.validate_host_config(hc, host=HOST)
    assert str(exc.value) == message


def test_validate_host_config_accepts_dockers_stored_form():
    ocispec.validate_host_config({"Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 10**9,
                                  "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
                                  "CpusetCpus": "0,2-3", "Isolation": "", "MemorySwappiness": -1},
                                 host=HOST)
    ocispec.validate_host_config({"MemorySwap": 32 << 20}, host=HOST, update=True)
    # what dockerd 20.10 takes too: a range of host ports, no port, an unknown protocol
    ocispec.validate_host_config({"PortBindings": {
        "80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}], "53/udp": [{"HostPort": ""}],
        "81/bogus": [{"HostPort": "81/udp"}], "": [{"HostPort": "/x"}], "82": None, "83": [None],
    }}, host=HOST)


@pytest.mark.parametrize("link, parsed", [("db:alias", ("db", "alias")), ("db", ("db", "db")),
                                          ("/db:/me/alias", ("db", "alias"))])
def test_parse_link(link, parsed):
    assert hostconfig.parse_link(link) == parsed


def test_parse_link_refuses_more_than_two_parts():
    with pytest.raises(InvalidArgument, match="^bad format for links: a:b:c$"):
        hostconfig.parse_link("a:b:c")


@pytest.mark.parametrize("cfg,hc,message", [
    ({"Hostname": "h"}, {"NetworkMode": "container:x"}, "conflicting options: hostname and the network mode"),
    ({}, {"NetworkMode": "container:x", "Dns": ["1.1.1.1"]}, "conflicting options: dns and the network mode"),
    ({}, {"NetworkMode": "container:"}, "Invalid network mode: invalid container format container:<name|id>"),
    ({"Hostname": "h"}, {"UTSMode": "host"}, "conflicting options: hostname and the UTS mode"),
    ({"ExposedPorts": {"80/tcp": {}}}, {"NetworkMode": "container:x"},
     "conflicting options: port exposing and the container type network mode"),
])
def test_network_mode_conflicts(cfg, hc, message):
    with pytest.raises(InvalidArgument) as exc:
        ocispec.validate_host_config(hc, cfg, host=HOST)
    assert str(exc.value) == message


@pytest.mark.parametrize("cfg,message", [
    ({"WorkingDir": "x"}, "the working directory 'x' is invalid, it needs to be an absolute path"),
    ({"Env": ["=foo"]}, "invalid environment variable: =foo"),
    ({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"StopSignal": "0"}, "Invalid signal: 0"),
    ({"Healthcheck": {"Interval": 1000}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
])
def test_validate_config(cfg, message):
    with pytest.raises(InvalidArgument) as exc:
        ocispec.validate_config(cfg)
    assert str(exc.value) == message


def test_validate_config_accepts_signals():
    for sig in ("SIGTERM", "term", "9", "RTMIN+3", "SIGRTMAX-1"):
        ocispec.validate_config({"StopSignal": sig})


def test_apply_create_defaults():
    hc = ocispec.apply_create_defaults({"Memory": 64 << 20}, host=HOST)
    assert hc["MemorySwap"] == 128 << 20 and hc["ShmSize"] == 64 << 20
    assert hc["IpcMode"] == "private" and hc["CgroupnsMode"] == "host"
    assert hc["OomKillDisable"] is False and hc["NetworkMode"] == "default"
    assert hc["MaskedPaths"] == list(ocispec.MASKED_PATHS)
    assert hc["ReadonlyPaths"] == list(ocispec.READONLY_PATHS)
    v2 = ocispec.apply_create_defaults({}, host=HostInfo(cgroup2=True))
    assert v2["CgroupnsMode"] == "private"
    priv = ocispec.apply_create_defaults({"Privileged": True}, host=HOST)
    assert priv["CgroupnsMode"] == "host" and "MaskedPaths" not in priv
    custom = ocispec.apply_create_defaults({}, host=HOST, daemon=DaemonOptions(
        shm_size=1 << 20, ipc_mode="shareable", cgroupns_mode="private"))
    assert (custom["ShmSize"], custom["IpcMode"], custom["CgroupnsMode"]) == (1 << 20, "shareable", "private")
    assert ocispec.apply_create_defaults({"MemorySwap": -1, "Memory": 8 << 20}, host=HOST)["MemorySwap"] == -1
    # the daemon's ulimits join the stored ones for the names not given (mergeUlimits)
    daemon = DaemonOptions(default_ulimits=({"Name": "nofile", "Hard": 20, "Soft": 10},
                                            {"Name": "nproc", "Hard": 7, "Soft": 7}))
    own = {"Name": "nofile", "Hard": 5, "Soft": 5}
    merged = ocispec.apply_create_defaults({"Ulimits": [own]}, host=HOST, daemon=daemon)
    assert merged["Ulimits"] == [own, {"Name": "nproc", "Hard": 7, "Soft": 7}]
    assert ocispec.apply_create_defaults(merged, host=HOST, daemon=daemon)["Ulimits"] == \
        merged["Ulimits"]  # applied again (at each start): the same


def test_host_probe_is_sane():
    host = HostInfo.probe()
    assert set(host.capabilities) <= set(CAPABILITIES)
    assert host.kernel >= (3, 0) and host.ncpu >= 1
    assert hostconfig.LINUX_MIN_MEMORY == 6 << 20
    assert specsecurity.normalize_capabilities(["chown"], host) == ["CAP_CHOWN"] or \
        "CAP_CHOWN" not in host.capabilities
