"""Our OCI specs against the config.json that Debian's dockerd 20.10 writes for the same requests.

Each case creates a container with the docker CLI, starts it under a "capture" runtime (a shell
script that copies the bundle's config.json aside, then execs runc: the config is caught even
when runc then refuses it), reads the request back with ``docker inspect`` and builds our spec
from it with `ocispec.container_spec`. The two are compared field by field; every difference
must be one of the intended ones listed below, and each of those must actually show up.

Intended differences (dockyard follows current Docker, 28.x, where it moved on from 20.10):
- maskedPaths gained /proc/interrupts and /sys/devices/virtual/powercap (Docker >= 25).
- the seccomp profile is moby/profiles' current one (SECCOMP_ADDED / SECCOMP_REMOVED below, the
  socket(2) address-family rules, defaultErrnoRet 1, the ptrace rule's wider name list).
- ``--privileged`` and ``--cap-add ALL`` get the capabilities the daemon holds (Docker >= 23);
  20.10 lists every capability up to CAP_AUDIT_READ whether it holds it or not (which is why
  runc refuses its privileged configs here: this VM has no CAP_SYS_RESOURCE).
- ``--network host``: dockerd joins <exec-root>/netns/default, a bind of its own namespace;
  we leave the network namespace out, which joins the engine's own namespace too.
- ociVersion, the bundle's root.path, ``hooks`` (dockerd's libnetwork-setkey prestart hook) and
  apparmor/selinux fields are not compared: they are dockerd's plumbing, not the container's.
The request is replayed as dockerd received it: the MaskedPaths/ReadonlyPaths that 20.10 fills
into HostConfig at create are removed again so that our defaults are exercised.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.engine import ocispec
from dockyard.engine.hostinfo import DaemonOptions, HostInfo
from dockyard.linux.capabilities import CAPABILITIES
from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd
from dockyard.testing.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox", "runc")

USERS_TAG = "dockyard-users:test"
# 20.10's masked paths, which it also stores into HostConfig.MaskedPaths at create.
MASKED_2010 = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
               "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
               "/sys/firmware"]
READONLY_2010 = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Syscalls moby/profiles allows that 20.10.24 did not, and the other way round (io_uring_* were
# blocked in Docker 25; socket became a list of allowed address families, without AF_VSOCK).
SECCOMP_ADDED = {"cachestat", "fchmodat2", "futex_requeue", "futex_wait", "futex_wake",
                 "getxattrat", "listmount", "listxattrat", "map_shadow_stack", "mseal",
                 "name_to_handle_at", "pkey_alloc", "pkey_free", "pkey_mprotect",
                 "process_vm_readv", "process_vm_writev", "removexattrat", "riscv_hwprobe",
                 "setxattrat", "statmount", "uretprobe", "ptrace",
                 "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr"}  # CAP_SYS_ADMIN
SECCOMP_REMOVED = {"io_uring_enter", "io_uring_register", "io_uring_setup", "socket"}
CAPS_UNKNOWN_TO_2010 = {"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("ocispec")
    dump = base / "dump"
    dump.mkdir()
    script = base / "capture-runtime"
    runc = shutil.which("runc") or "/usr/sbin/runc"
    script.write_text(
        "#!/bin/sh\n"
        'prev=""\n'
        'for a in "$@"; do\n'
        '  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then\n'
        f'    cp "$a/config.json" "{dump}/$(basename "$a").json"\n'
        "  fi\n"
        '  prev="$a"\n'
        "done\n"
        f'exec {runc} "$@"\n')
    script.chmod(0o755)
    plain = make_busybox_rootfs(base / "busybox")  # what import_busybox imports
    rootfs = make_busybox_rootfs(base / "rootfs")
    with open(rootfs / "etc/passwd", "a") as f:
        f.write("app:x:1000:1000:app:/home/app:/bin/sh\n")
    with open(rootfs / "etc/group", "a") as f:
        f.write("app:x:1000:\nusers:x:100:app\nwheel:x:10:app,root\n")
    (base / "bindsrc").mkdir()
    with RefDockerd({"capture": str(script)}, dockyard_runtime=None,
                    log_path=base / "dockerd.log") as d:
        d.import_busybox()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for entry in sorted(rootfs.iterdir()):
                tar.add(entry, arcname=entry.name)
        d.docker("import", "--change", 'CMD ["sh"]', "--change", "ENV LANG=C.UTF-8", "-",
                 USERS_TAG, input=buf.getvalue())
        yield {"d": d, "dump": dump, "base": base,
               "rootfs": {BUSYBOX_TAG: plain, USERS_TAG: rootfs}}


def run_case(env, *args: str) -> tuple[dict, dict, dict]:
    """(dockerd's config.json, ours, the inspected container) for ``docker create args``."""
    d = env["d"]
    cid = d.docker("create", "--runtime", "capture", *args).stdout.strip()
    d.docker("start", cid, check=False, timeout=30)
    path = env["dump"] / f"{cid}.json"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    theirs = json.loads(path.read_text())
    info = json.loads(d.docker("inspect", cid).stdout)[0]
    return theirs, our_spec(env, info, theirs), info  # dockerd's teardown removes the container


def our_spec(env, info: dict, theirs: dict) -> dict:
    d = env["d"]
    hc = dict(info["HostConfig"])
    if not hc.get("Privileged"):  # as POSTed: 20.10 stores its defaults into these at create
        if hc.get("MaskedPaths") == MASKED_2010:
            hc["MaskedPaths"] = None
        if hc.get("ReadonlyPaths") == READONLY_2010:
            hc["ReadonlyPaths"] = None
    by_dest = {m["destination"]: m["source"] for m in theirs["mounts"]}
    etc = {p: by_dest[p] for p in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")}
    volumes = {m["Destination"]: m["Source"] for m in info["Mounts"] if m["Type"] == "volume"}
    return ocispec.container_spec(
        container_id=info["Id"], config=info["Config"], host_config=hc, image=None,
        rootfs=str(env["rootfs"][info["Config"]["Image"]]),
        container_dir=str(d.data_root / "containers" / info["Id"]),
        cgroup_parent=d.cgroup_parent, hostname=info["Config"]["Hostname"], etc_files=etc,
        init_path=by_dest.get("/sbin/docker-init", "/usr/bin/docker-init"), volumes=volumes,
        daemon=DaemonOptions(data_root=str(d.data_root)), host=dockerd_host(d))


def dockerd_host(d: RefDockerd) -> HostInfo:
    """This host as dockerd sees it: its mount namespace decides bind propagation (dockerd makes
    its data root a shared mount there)."""
    assert d.proc is not None
    mountinfo = Path(f"/proc/{d.proc.pid}/mountinfo").read_text()
    return dataclasses.replace(HostInfo.probe(), mountinfo=mountinfo)


def allowed(profile: dict) -> set[str]:
    return {n for r in profile.get("syscalls", []) if r["action"] == "SCMP_ACT_ALLOW"
            for n in r["names"]}


def differences(theirs: dict, ours: dict, group_add: int = 0) -> list[str]:
    """Every field where the two configs differ, as short labels."""
    out = []
    tp = _sorted_group_add(theirs["process"], group_add)
    op = _sorted_group_add(ours["process"], group_add)
    for key in ("terminal", "consoleSize", "user", "args", "env", "cwd", "rlimits",
                "noNewPrivileges", "oomScoreAdj"):
        if tp.get(key) != op.get(key):
            out.append(f"process.{key}: {tp.get(key)!r} != {op.get(key)!r}")
    tc, oc = tp.get("capabilities", {}), op.get("capabilities", {})
    for kind in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        if tc.get(kind) != oc.get(kind):
            out.append(f"process.capabilities.{kind}")
    if theirs["root"].get("readonly", False) != ours["root"].get("readonly", False):
        out.append("root.readonly")
    if theirs.get("hostname") != ours.get("hostname"):
        out.append("hostname")
    if theirs["mounts"] != ours["mounts"]:
        out.append(f"mounts: {theirs['mounts']} != {ours['mounts']}")
    tl, ol = theirs["linux"], ours["linux"]
    for key in ("sysctl", "resources", "cgroupsPath", "namespaces", "devices", "readonlyPaths",
                "maskedPaths", "rootfsPropagation"):
        if tl.get(key) != ol.get(key):
            out.append(f"linux.{key}" if key in ("maskedPaths", "namespaces", "devices")
                       else f"linux.{key}: {tl.get(key)!r} != {ol.get(key)!r}")
    ts, os_ = tl.get("seccomp"), ol.get("seccomp")
    if (ts is None) != (os_ is None):
        out.append("linux.seccomp presence")
    elif ts is not None:
        for key in ("defaultAction", "architectures", "flags"):
            if ts.get(key) != os_.get(key):
                out.append(f"linux.seccomp.{key}")
        if allowed(ts) != allowed(os_):
            out.append("linux.seccomp.allowed")
        t_err = [r for r in ts["syscalls"] if r["action"] != "SCMP_ACT_ALLOW"]
        o_err = [r for r in os_["syscalls"] if r["action"] != "SCMP_ACT_ALLOW"]
        if t_err != o_err:
            out.append("linux.seccomp.errno-rules")
    return out


def _sorted_group_add(process: dict, group_add: int) -> dict:
    """runc returns the --group-add gids from a Go map, in random order: compare them sorted.
    (The gids before them, the primary and the user's groups from /etc/group, keep theirs.)"""
    user = dict(process["user"])
    gids = user.get("additionalGids", [])
    cut = len(gids) - group_add
    user["additionalGids"] = gids[:cut] + sorted(gids[cut:])
    return {**process, "user": user}


def check_seccomp_versions(theirs: dict, ours: dict) -> None:
    """The allow-lists differ by exactly the syscalls Docker changed since 20.10."""
    t, o = allowed(theirs["linux"]["seccomp"]), allowed(ours["linux"]["seccomp"])
    assert o - t <= SECCOMP_ADDED, sorted(o - t - SECCOMP_ADDED)
    assert t - o <= SECCOMP_REMOVED, sorted(t - o - SECCOMP_REMOVED)
    assert "io_uring_setup" in t - o and "mseal" in o - t
    assert ours["linux"]["seccomp"]["defaultErrnoRet"] == 1


def check(case: tuple[dict, dict, dict], expected: set[str]) -> None:
    theirs, ours, info = case
    diffs = differences(theirs, ours, len(info["HostConfig"].get("GroupAdd") or []))
    assert set(diffs) == expected, "\n".join(diffs)
    if "linux.seccomp.allowed" in expected:
        check_seccomp_versions(theirs, ours)
    if "linux.maskedPaths" in expected:
        assert theirs["linux"]["maskedPaths"] == MASKED_2010
        assert ours["linux"]["maskedPaths"] == list(ocispec.MASKED_PATHS)


NEWER_DOCKER = {"linux.maskedPaths", "linux.seccomp.allowed"}
ALL_CAPS = {"process.capabilities.bounding", "process.capabilities.effective",
            "process.capabilities.permitted"}


def test_default_container(env):
    check(run_case(env, BUSYBOX_TAG, "sh"), NEWER_DOCKER)


def test_many_options(env):
    src = env["base"] / "bindsrc"
    case = run_case(
        env, "--cap-add", "NET_ADMIN", "--cap-drop", "chown", "--memory", "64m",
        "--memory-reservation", "32m", "--pids-limit", "50", "--read-only",
        "--tmpfs", "/run:size=10m", "-v", f"{src}:/data:ro", "--ulimit", "nofile=100:200",
        "--sysctl", "net.ipv4.ip_forward=1", "--hostname", "h1", "--domainname", "example.com",
        "-t", "-e", "FOO=bar", "-w", "/tmp", "--cpus", "1.5", "--cpu-shares", "512",
        "--oom-score-adj", "100", "--blkio-weight", "300", "--shm-size", "1m",
        BUSYBOX_TAG, "sh")
    check(case, NEWER_DOCKER)
    assert case[1]["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}]


def test_user_groups_devices_caps(env):
    case = run_case(
        env, "--user", "app", "--group-add", "users", "--group-add", "777",
        "--device", "/dev/null:/dev/mynull:r", "--device-cgroup-rule", "c 42:* rmw",
        "--cap-drop", "ALL", "--cap-add", "sys_admin", "--cap-add", "NET_BIND_SERVICE",
        USERS_TAG, "id")
    check(case, NEWER_DOCKER)
    ours = case[1]["process"]
    # the primary gid, the groups listing "app" in file order, then --group-add in request order
    assert ours["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 100, 10, 100, 777]}
    assert ours["env"][-1] == "LANG=C.UTF-8"  # the image's ENV


def test_numeric_user_and_workdir(env):
    check(run_case(env, "--user", "1234:5678", "-w", "/srv/app", USERS_TAG, "sh"), NEWER_DOCKER)


def test_init(env):
    case = run_case(env, "--init", BUSYBOX_TAG, "sleep", "1")
    check(case, NEWER_DOCKER)
    assert case[1]["process"]["args"][:2] == ["/sbin/docker-init", "--"]


def test_privileged_host_namespaces(env):
    case = run_case(env, "--privileged", "--network", "host", "--ipc", "host", "--pid", "host",
                    "--uts", "host", BUSYBOX_TAG, "sh")
    check(case, ALL_CAPS | {"linux.namespaces"})
    theirs, ours, _ = case
    host = HostInfo.probe()
    assert ours["process"]["capabilities"]["bounding"] == list(host.capabilities)
    delta = set(theirs["process"]["capabilities"]["bounding"]) ^ set(host.capabilities)
    assert delta <= CAPS_UNKNOWN_TO_2010 | {c for c in CAPABILITIES if c not in host.capabilities}
    assert theirs["linux"]["namespaces"][1]["path"].endswith("/netns/default")
    assert [n for n in theirs["linux"]["namespaces"] if n["type"] != "network"] == \
        ours["linux"]["namespaces"] == [{"type": "mount"}]
    assert theirs["linux"]["devices"] == ours["linux"]["devices"]  # the host's /dev, walked


def test_network_none_unconfined_nnp_shareable_ipc(env):
    case = run_case(env, "--network", "none", "--security-opt", "seccomp=unconfined",
                    "--security-opt", "no-new-privileges", "--ipc", "shareable",
                    BUSYBOX_TAG, "sh")
    check(case, {"linux.maskedPaths"})


def test_custom_seccomp_profile_and_cap_all(env, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                             "excludes": {"caps": ["CAP_NET_RAW"]}}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    case = run_case(env, "--security-opt", f"seccomp={path}", "--cap-add", "ALL",
                    "--cap-drop", "NET_RAW", BUSYBOX_TAG, "sh")
    check(case, {"linux.maskedPaths"} | ALL_CAPS)
    theirs, ours, _ = case
    assert ours["linux"]["seccomp"]["syscalls"] == theirs["linux"]["seccomp"]["syscalls"]


def test_mounts_resources_entrypoint(env):
    src = env["base"] / "bindsrc"
    in_root = env["d"].data_root / "image"  # within dockerd's root: rslave, as dockerd makes it
    case = run_case(
        env, "--mount", "type=tmpfs,dst=/t,tmpfs-size=1000000,tmpfs-mode=1700",
        "--mount", f"type=bind,src={src},dst=/b/c,readonly", "-v", f"{in_root}:/inroot",
        "--memory", "32m", "--memory-swap", "-1", "--memory-swappiness", "10",
        "--oom-kill-disable", "--cpu-period", "50000", "--cpu-quota", "20000",
        "--cpuset-cpus", "0", "--cpuset-mems", "0", "--ipc", "none",
        "--entrypoint", "/bin/echo", BUSYBOX_TAG, "hi", "there")
    check(case, NEWER_DOCKER)
    ours = case[1]
    assert ours["process"]["args"] == ["/bin/echo", "hi", "there"]
    assert ours["linux"]["rootfsPropagation"] == "rslave"
    assert next(m for m in ours["mounts"] if m["destination"] == "/inroot")["options"] == \
        ["rbind", "rslave"]


def test_volume_mounts(env):
    """Named, anonymous and read-only volumes (one per depth: dockerd's sort is not stable)."""
    case = run_case(env, "-v", "ocivol:/a", "-v", "/b/anon", "-v", "ocivol2:/c/d/ro:ro",
                    "--mount", "type=volume,dst=/e/f/g/h", BUSYBOX_TAG, "true")
    check(case, NEWER_DOCKER)
    ours = case[1]
    options = {m["destination"]: m["options"] for m in ours["mounts"]}
    assert options["/a"] == ["rbind"] and options["/c/d/ro"] == ["rbind", "ro"]


@pytest.mark.parametrize("args", [
    ["--network", "none"],
    ["--add-host", "db:10.0.0.2", "--dns", "9.9.9.9", "--dns-search", "corp.example",
     "--dns-option", "ndots:2", "--hostname", "web", "--domainname", "example.com"],
    ["--network", "host"],
], ids=["none", "dns-options", "host"])
def test_etc_files_match_dockerd(env, args):
    """hosts, resolv.conf and hostname as dockerd wrote them. (The host's resolv.conf here has
    no loopback nameserver; the filtering is covered by the unit tests.)"""
    theirs, _, info = run_case(env, *args, BUSYBOX_TAG, "sh")
    by_dest = {m["destination"]: m["source"] for m in theirs["mounts"]}
    hc, cfg = info["HostConfig"], info["Config"]
    hosts = ocispec.hosts_file(cfg["Hostname"], cfg["Domainname"], hc["ExtraHosts"],
                               hc["NetworkMode"], host_hosts=Path("/etc/hosts").read_text())
    resolv = ocispec.resolv_conf(hc["Dns"], hc["DnsSearch"], hc["DnsOptions"],
                                 Path("/etc/resolv.conf").read_text(),
                                 network_mode=hc["NetworkMode"])
    assert Path(by_dest["/etc/hosts"]).read_text() == hosts
    assert Path(by_dest["/etc/resolv.conf"]).read_text() == resolv
    assert Path(by_dest["/etc/hostname"]).read_text() == ocispec.hostname_file(cfg["Hostname"])
