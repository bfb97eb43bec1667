"""The dockyard CLI against the real docker CLI 28, both talking to the reference dockerd 20.10.

Each test runs the same operation through both clients and compares what they print, what
they print on stderr (``dockyard`` read as ``docker``) and how they exit; where an operation
changes state, each client works on its own objects and the results are compared through
``inspect``. One isolated dockerd serves the module (dockyard.testing.refdockerd).
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox")

_TIME = re.compile(r"(Less than a second|About a minute|About an hour|\d+ (seconds?|minutes?|"
                   r"hours?|days?|weeks?|months?|years?))")


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("refdockerd") / "dockerd.log"
    with RefDockerd(dockyard_runtime=None, log_path=log_path) as daemon:
        daemon.import_busybox()
        yield daemon


def _run(argv: list[str], env: dict[str, str], input: bytes | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, env=env, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def docker(dockerd):
    return lambda *args, **kw: _run(["docker", *args], dockerd.env, **kw)


@pytest.fixture(scope="module")
def dockyard(dockerd):
    return lambda *args, **kw: _run([sys.executable, "-m", "dockyard.cli", *args], dockerd.env,
                                    **kw)


def as_docker(text: str) -> str:
    """Our program name where docker prints its own (not inside "busybox:dockyard-test")."""
    return re.sub(r"(?<![\w:-])dockyard(?=[ :'])", "docker", text)


def same(ours: subprocess.CompletedProcess, theirs: subprocess.CompletedProcess) -> None:
    assert (ours.returncode, ours.stdout, as_docker(ours.stderr)) == \
        (theirs.returncode, theirs.stdout, theirs.stderr), f"{ours.args} vs {theirs.args}"


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args} -> {proc.returncode}: {proc.stderr}"
    return proc.stdout


def same_modulo_time(docker, dockyard, *args: str) -> None:
    """Equal to docker's output just before or just after ours; else equal once times go."""
    before = docker(*args)
    ours = dockyard(*args)
    after = docker(*args)
    if ours.stdout in (before.stdout, after.stdout):
        assert ours.returncode == before.returncode
        return

    def norm(text: str) -> list[list[str]]:
        return [re.split(r"\s{2,}", _TIME.sub("T", line)) for line in text.splitlines()]

    mine, theirs = norm(ours.stdout), norm(after.stdout)
    if mine != theirs and mine[:1] == theirs[:1] and sorted(mine[1:]) == sorted(theirs[1:]):
        # the same rows in another order: rows that tie in docker's sort (the tags of one
        # image share its creation time) have no order of their own; seen once in CI
        return
    assert mine == theirs


# -- run ------------------------------------------------------------------------------------------

def test_run_foreground_prints_and_removes(docker, dockyard):
    count = len(ok(docker("ps", "-aq")).split())
    out = dockyard("run", "--rm", BUSYBOX_TAG, "echo", "hi")
    assert (out.returncode, out.stdout, out.stderr) == (0, "hi\n", "")
    mixed = dockyard("run", "--rm", BUSYBOX_TAG, "sh", "-c", "echo out; echo err >&2; exit 3")
    same(mixed, docker("run", "--rm", BUSYBOX_TAG, "sh", "-c", "echo out; echo err >&2; exit 3"))
    assert mixed.returncode == 3
    piped = dockyard("run", "-i", "--rm", BUSYBOX_TAG, "cat", input=b"through stdin\n")
    assert (piped.returncode, piped.stdout) == (0, "through stdin\n")
    assert len(ok(docker("ps", "-aq")).split()) == count


@pytest.mark.parametrize("args", [
    ["run", "--rm", BUSYBOX_TAG, "nosuchcmd"],                 # 127
    ["run", "--rm", BUSYBOX_TAG, "/etc"],                      # 126
    ["run", "nosuch-image:latest"],                            # pull fails: 125
    ["run", "--rm", "--restart", "always", BUSYBOX_TAG],
    ["run", "-m", "10x", BUSYBOX_TAG], ["run", "-p", "abc", BUSYBOX_TAG],
    ["run", "--badflag", BUSYBOX_TAG], ["run", "--cpus", "abc", BUSYBOX_TAG],
    ["run", "--ulimit", "foo=1", BUSYBOX_TAG], ["run"], ["run", "--name"],
])
def test_run_errors_and_exit_codes(docker, dockyard, args):
    same(dockyard(*args), docker(*args))


def test_interactive_tty(dockerd):
    argv = [sys.executable, "-m", "dockyard.cli", "run", "-it", "--rm", BUSYBOX_TAG, "sh"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, dockerd.env)
    output, typed = b"", False
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                output += data
            if not typed and b"# " in output:
                os.write(fd, b"echo hi; exit 3\r")
                typed = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert typed, output
    assert b"\r\nhi\r\n" in output
    assert os.waitstatus_to_exitcode(status) == 3


# -- lifecycle ------------------------------------------------------------------------------------

LIFECYCLE = [
    ["run", "-d", "--name", "{n}", "-l", "k=v", BUSYBOX_TAG, "sleep", "300"],
    ["pause", "{n}"], ["unpause", "{n}"], ["stop", "-t", "1", "{n}"], ["start", "{n}"],
    ["restart", "-t", "0", "{n}"], ["kill", "-s", "KILL", "{n}"], ["wait", "{n}"],
    ["rename", "{n}", "{n}2"],
    ["update", "--cpus", "0.5", "--cpu-shares", "100", "--restart", "on-failure:2", "{n}2"],
    ["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.NanoCpus}} "
     "{{.HostConfig.CpuShares}} {{.HostConfig.RestartPolicy.Name}} {{json .Config.Labels}}",
     "{n}2"],
    ["logs", "{n}2"], ["rm", "{n}2"], ["rm", "-f", "{n}2"],
]


def test_lifecycle_matches_docker(docker, dockyard):
    for step in LIFECYCLE:
        ours = dockyard(*(a.format(n="yardc") for a in step))
        theirs = docker(*(a.format(n="dockc") for a in step))
        if step[0] == "run":
            assert re.fullmatch(r"[0-9a-f]{64}\n", ours.stdout), ours
            continue
        ours.stdout = ours.stdout.replace("yardc", "dockc")
        ours.stderr = ours.stderr.replace("yardc", "dockc")
        same(ours, theirs)


@pytest.mark.parametrize("args", [
    ["rm", "nosuch"], ["rm", "nosuch1", "nosuch2"], ["stop", "nosuch"], ["start", "nosuch"],
    ["kill", "nosuch"], ["pause", "nosuch"], ["wait", "nosuch"], ["rename", "nosuch", "x2"],
    ["update", "--memory", "10m", "nosuch"], ["commit", "nosuch"], ["logs", "nosuch"],
    ["inspect", "nosuch"], ["inspect", "-f", "{{.Id}}", "nosuch"], ["container", "inspect", "x"],
    ["image", "inspect", "nosuch"], ["inspect", "--type", "foo", "x"], ["rmi", "nosuch"],
    ["tag", "nosuch", "foo"], ["load", "-i", "/nonexistent"],
    ["save", "-o", "/nonexistent/x.tar", BUSYBOX_TAG], ["stop"], ["ps", "extra"],
    ["ps", "-f", "bad"], ["ps", "--format", "{{.Foo}}"], ["update", "x"], ["rename", "a"],
    ["commit"], ["logs"],
])
def test_errors_match_docker(docker, dockyard, args):
    same(dockyard(*args), docker(*args))


# -- listing and inspecting ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def listed(docker):
    """A running, an exited and a created container, for ps and inspect."""
    ok(docker("run", "-d", "--name", "web", "-l", "a=b", "-e", "X=1", BUSYBOX_TAG, "sleep",
              "300"))
    ok(docker("run", "--name", "done", BUSYBOX_TAG, "sh", "-c", "echo out; echo err >&2"))
    ok(docker("create", "--name", "fresh", "-v", "/data", "--tmpfs", "/run", BUSYBOX_TAG))
    yield
    docker("rm", "-f", "-v", "web", "done", "fresh")


@pytest.mark.parametrize("args", [
    ["ps"], ["ps", "-a"], ["ps", "-a", "--no-trunc"], ["ps", "-s"], ["ps", "-a", "-n", "2"],
    ["ps", "-l"], ["ps", "-a", "--format", "json"], ["ps", "-a", "--format", "raw"],
    ["ps", "-a", "--format", "table {{.Names}}\t{{.Status}}"], ["container", "ls", "-a"],
    ["system", "df", "-v"],
])
def test_listings_match_docker_modulo_times(docker, dockyard, listed, args):
    same_modulo_time(docker, dockyard, *args)


@pytest.mark.parametrize("args", [
    ["ps", "-aq"], ["ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Labels}} {{.Mounts}}"],
    ["ps", "-a", "-f", "name=web", "-f", "status=running", "--format", "{{.Names}}"],
    ["ps", "-a", "--format", "{{.Names}} {{.Label \"a\"}} {{.Size}} {{.Command}}"],
    ["images", "-q"], ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"],
    ["inspect", "fresh"], ["inspect", "done", "fresh"], ["container", "inspect", "done"],
    ["image", "inspect", BUSYBOX_TAG], ["inspect", "--type", "image", BUSYBOX_TAG],
    ["inspect", "-f", "{{.State.Status}} {{.Config.Cmd}} {{json .Config.Env}}", "web", "fresh"],
    ["inspect", "-f", "{{range .Mounts}}{{.Destination}}{{end}} {{.HostConfig.Tmpfs}}", "fresh"],
    ["inspect", "-f", "{{.Id}}", "nosuch", "web"], ["logs", "done"], ["logs", "-t", "done"],
    ["logs", "--tail", "1", "done"], ["system", "df"], ["system", "df", "--format", "json"],
])
def test_stable_outputs_match_docker_exactly(docker, dockyard, listed, args):
    same(dockyard(*args), docker(*args))


def test_images_tag_rmi(docker, dockyard):
    for tool, tag in ((dockyard, "yard:1"), (docker, "dock:1")):
        assert ok(tool("tag", BUSYBOX_TAG, tag)) == ""
    same_modulo_time(docker, dockyard, "images")
    same_modulo_time(docker, dockyard, "images", "--digests")
    same_modulo_time(docker, dockyard, "images", "--no-trunc", "busybox")
    same_modulo_time(docker, dockyard, "images", "--format", "json", "busybox")
    assert ok(dockyard("rmi", "yard:1")) == "Untagged: yard:1\n"
    assert ok(docker("rmi", "dock:1")) == "Untagged: dock:1\n"


def test_info_and_version_server_sections_match(docker, dockyard):
    ours, theirs = ok(dockyard("version")), ok(docker("version"))
    assert ours.startswith("Client: Dockyard\n")
    assert ours[ours.index("\nServer:"):] == theirs[theirs.index("\nServer:"):]
    same(dockyard("version", "--format", "{{.Server.Version}}"),
         docker("version", "--format", "{{.Server.Version}}"))
    ours, theirs = ok(dockyard("info")), ok(docker("info"))

    def server(text: str) -> list[str]:
        lines = text[text.index("\nServer:"):].splitlines()
        return [" ".join(sorted(ln.split())) if ln.startswith(" Runtimes:") else ln
                for ln in lines]

    assert server(ours) == server(theirs)


def test_create_flags_reach_the_daemon_as_dockers_do(docker, dockyard, tmp_path):
    (tmp_path / "env").write_text("FROMFILE=1\n")
    flags = ["-e", "A=1", "--env-file", str(tmp_path / "env"), "-v", "/tmp:/mnt:ro",
             "-v", "/anon", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "-p", "8080:80",
             "-p", "127.0.0.1:90:91/udp", "--expose", "5000", "-w", "/tmp", "-u", "1000",
             "--entrypoint", "/bin/sh", "--restart", "on-failure:3", "-m", "64m",
             "--memory-swap", "128m", "--cpus", "1.5", "--cpu-shares", "512",
             "--cpuset-cpus", "0", "--pids-limit", "100", "--cap-add", "net_admin",
             "--cap-drop", "MKNOD", "--security-opt", "no-new-privileges", "--read-only",
             "--tmpfs", "/run:size=1m", "--dns", "8.8.8.8", "--add-host", "foo:1.2.3.4",
             "--init", "--ulimit", "nofile=1024:2048", "--shm-size", "32m",
             "--sysctl", "net.ipv4.ip_forward=1", "--pid", "host", "--ipc", "host",
             "-l", "k=v", "--log-opt", "max-size=1m", "--stop-signal", "SIGUSR1",
             "--stop-timeout", "5", "--runtime", "runc", "--hostname", "h", "-t", "-i",
             BUSYBOX_TAG, "sleep", "100"]
    ours = ok(dockyard("create", "--name", "flags-yard", *flags)).strip()
    theirs = ok(docker("create", "--name", "flags-dock", *flags)).strip()
    try:
        a, b = (json.loads(ok(docker("inspect", c)))[0] for c in (ours, theirs))
        for key in ("Config", "HostConfig"):
            assert a[key] == b[key], key
    finally:
        docker("rm", "-f", "-v", ours, theirs)


# -- archives and new images ------------------------------------------------------------------------

def test_save_load_round_trip(dockerd, docker, dockyard, tmp_path):
    ok(dockyard("tag", BUSYBOX_TAG, "trip:1"))
    ok(dockyard("save", "-o", str(tmp_path / "ours.tar"), "trip:1"))
    ok(docker("save", "-o", str(tmp_path / "theirs.tar"), "trip:1"))
    assert (tmp_path / "ours.tar").read_bytes() == (tmp_path / "theirs.tar").read_bytes()
    assert ok(dockyard("rmi", "trip:1")) == "Untagged: trip:1\n"
    assert ok(dockyard("load", "-i", str(tmp_path / "ours.tar"))) == "Loaded image: trip:1\n"
    ok(dockyard("rmi", "trip:1"))
    piped = dockyard("load", input=(tmp_path / "ours.tar").read_bytes())
    assert ok(piped) == "Loaded image: trip:1\n"
    to_stdout = subprocess.run([sys.executable, "-m", "dockyard.cli", "save", "trip:1"],
                               capture_output=True, env=dockerd.env, timeout=30)
    assert to_stdout.stdout == (tmp_path / "ours.tar").read_bytes()
    ok(dockyard("rmi", "trip:1"))


def _rootfs_tar(docker, tmp_path: Path) -> Path:
    """The busybox image's single layer: a rootfs tarball for import."""
    archive = tmp_path / "image.tar"
    ok(docker("save", "-o", str(archive), BUSYBOX_TAG))
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()
    path = tmp_path / "rootfs.tar"
    path.write_bytes(layer)
    return path


def test_import_and_commit(docker, dockyard, tmp_path):
    rootfs = _rootfs_tar(docker, tmp_path)
    image_id = ok(dockyard("import", "-c", 'CMD ["sh"]', "-m", "from file", str(rootfs),
                           "imported:1")).strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    ok(docker("import", "-c", 'CMD ["sh"]', "-m", "from file", str(rootfs), "imported:2"))
    fmt = "{{json .Config.Cmd}} {{.Comment}} {{.Size}}"
    assert ok(dockyard("inspect", "-f", fmt, "imported:1")) == \
        ok(docker("inspect", "-f", fmt, "imported:2"))
    piped = dockyard("import", "-", "imported:3", input=rootfs.read_bytes())
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", ok(piped))
    assert ok(dockyard("run", "--rm", "imported:3", "echo", "imported")) == "imported\n"
    url = dockyard("import", "https://example.com/x.tar")
    assert url.returncode == 1 and "does not support URLs" in url.stderr

    ok(dockyard("run", "--name", "tocommit", BUSYBOX_TAG, "sh", "-c", "echo data > /f"))
    committed = ok(dockyard("commit", "-c", 'CMD ["cat", "/f"]', "-m", "msg", "-a", "me",
                            "tocommit", "committed:1")).strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", committed)
    assert ok(dockyard("run", "--rm", "committed:1")) == "data\n"
    assert ok(dockyard("inspect", "-f", "{{.Author}} {{.Comment}}", "committed:1")) == "me msg\n"
    ok(dockyard("rm", "tocommit"))
    out = ok(dockyard("rmi", "committed:1", "imported:1", "imported:2", "imported:3"))
    assert out.count("Untagged:") == 4


def test_prune_matches_docker(docker, dockyard):
    ok(docker("create", "--name", "prune-me", "-l", "prune=yes", BUSYBOX_TAG))
    cid = ok(docker("inspect", "-f", "{{.Id}}", "prune-me")).strip()
    out = ok(dockyard("container", "prune", "-f", "--filter", "label=prune=yes"))
    assert out.startswith(f"Deleted Containers:\n{cid}\n\nTotal reclaimed space: ")
    same(dockyard("image", "prune", "-f"), docker("image", "prune", "-f"))
    declined = dockyard("system", "prune", input=b"n\n")
    assert declined.returncode == 0 and declined.stdout.endswith("[y/N] ")
    assert "  - all dangling images\n" in declined.stdout


# -- volumes ----------------------------------------------------------------------------------------

def test_volume_commands_match_docker(docker, dockyard):
    for tool, name in ((dockyard, "yardvol"), (docker, "dockvol")):
        assert ok(tool("volume", "create", "--label", "k=v", "-o", "type=tmpfs", "-o",
                       "device=tmpfs", name)) == f"{name}\n"
    for args in (["volume", "ls"], ["volume", "ls", "-q"], ["volume", "list", "-f", "label=k"],
                 ["volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}} {{.Scope}} "
                                             "{{.Mountpoint}} {{.Label \"k\"}}"],
                 ["volume", "ls", "--format", "json"], ["volume", "ls", "--format", "raw"],
                 ["volume", "ls", "-f", "dangling=true", "-f", "name=vol"],
                 ["volume", "inspect", "yardvol", "dockvol"],
                 ["volume", "inspect", "-f", "{{.Name}} {{.Options}}", "yardvol"],
                 ["volume", "inspect", "nosuch"], ["volume", "inspect", "nosuch", "yardvol"],
                 ["volume", "rm", "nosuch"], ["volume", "create", "a/b"],
                 ["volume", "ls", "-f", "bogus=1"], ["volume", "create", "--name", "x2", "x3"],
                 ["volume", "inspect"], ["volume", "rm"], ["volume", "ls", "extra"]):
        same(dockyard(*args), docker(*args))
    assert ok(dockyard("volume", "rm", "yardvol", "dockvol")) == "yardvol\ndockvol\n"
    declined = dockyard("volume", "prune", input=b"n\n")
    assert declined.returncode == 0 and declined.stdout == docker(
        "volume", "prune", input=b"n\n").stdout
    ok(docker("volume", "create", "prunable"))
    out = ok(dockyard("volume", "prune", "-f"))  # API 1.41: every unused volume goes
    assert out.startswith("Deleted Volumes:\n") and "prunable\n" in out
    same(dockyard("volume", "prune", "-f"), docker("volume", "prune", "-f"))
    same(dockyard("volume", "prune", "-a", "-f"), docker("volume", "prune", "-a", "-f"))
