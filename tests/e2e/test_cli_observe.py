"""The dockyard CLI's exec, attach, cp, top, stats, events, diff and export, each next to the
real docker CLI 28 on the same dockyard daemon: same output, same files, same exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.ptyproc import PtyProcess

pytestmark = pytest.mark.requires("docker_cli", "busybox")
DOCKYARD = [sys.executable, "-m", "dockyard.cli"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with DockyardDaemon() as d:
        d.import_busybox("busybox:latest")
        d.docker("run", "-d", "--name", "box", "busybox", "sh", "-c",
                 "mkdir -p /data/sub && echo hi > /data/f && ln -s /etc /data/l && sleep 600")
        client = d.client()
        try:  # the script has run to its end: its one process is the sleep the shell became
            deadline = time.monotonic() + 10
            while [p[-1] for p in client.api.top("box")["Processes"]] != ["sleep 600"]:
                assert time.monotonic() < deadline, client.api.top("box")
                time.sleep(0.05)
        finally:
            client.close()
        yield d


def both(d, *args, input=None):
    """(docker's, dockyard's) CompletedProcess for the same arguments."""
    out = []
    for prog in (["docker"], DOCKYARD):
        out.append(subprocess.run([*prog, *args], env=d.env, input=input, capture_output=True,
                                  timeout=60))
    return out


def test_exec_output_and_status(daemon):
    docker, ours = both(daemon, "exec", "-e", "X=1", "-w", "/data", "box", "sh", "-c",
                        "echo $X $(pwd); echo err >&2; exit 4")
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (docker.returncode, docker.stdout, docker.stderr) == (4, b"1 /data\n", b"err\n")
    docker, ours = both(daemon, "exec", "-i", "box", "tr", "a-z", "A-Z", input=b"shout\n")
    assert ours.stdout == docker.stdout == b"SHOUT\n"
    docker, ours = both(daemon, "exec", "nosuch", "true")
    assert ours.returncode == docker.returncode != 0
    assert ours.stderr.replace(b"dockyard", b"docker") == docker.stderr


def _stty_size(p: PtyProcess) -> tuple[int, int] | str:
    """What `stty size` reports: rows and columns, or its error for a size still 0x0."""
    p.send("stty size\r")
    got = p.expect(rb"(?:(\d+) (\d+)|stty: [^\r\n]*)\r\n")
    return (int(got[1]), int(got[2])) if got[1] else got[0].decode().strip()


def test_exec_it_on_a_terminal(daemon):
    with PtyProcess([*DOCKYARD, "exec", "-it", "box", "sh"], env=daemon.env) as p:
        p.expect(r"# ")
        p.send("echo $((3*4))\r")
        p.expect(r"12\r\n")
        assert _stty_size(p) == (24, 80)  # the terminal's size from the start (ConsoleSize)
        p.resize(33, 90)
        # SIGWINCH -> the CLI -> POST /resize -> the daemon sets the pty's size: later
        deadline = time.monotonic() + 5
        while (got := _stty_size(p)) != (33, 90):
            assert time.monotonic() < deadline, f"stty size still {got}, not (33, 90)"
            time.sleep(0.1)
        p.send("exit 6\r")
        assert p.wait() == 6


def test_attach_and_detach(daemon):
    daemon.docker("run", "-dit", "--name", "att", "busybox", "sh")
    try:
        with PtyProcess([*DOCKYARD, "attach", "att"], env=daemon.env) as p:
            p.send("echo attached-$((1+1))\r")
            p.expect(r"attached-2\r\n")
            p.send(b"\x10\x11")
            p.wait()
        assert daemon.docker("inspect", "-f", "{{.State.Running}}", "att").stdout.strip() == "true"
        res = subprocess.run([*DOCKYARD, "attach", "nosuch"], env=daemon.env, capture_output=True)
        assert res.returncode != 0
    finally:
        daemon.docker("rm", "-f", "att", check=False)


def test_top_and_diff_print_the_same(daemon):
    docker, ours = both(daemon, "top", "box")
    assert ours.stdout == docker.stdout and ours.returncode == 0
    docker, ours = both(daemon, "top", "box", "-o", "pid,comm")
    assert ours.stdout == docker.stdout
    docker, ours = both(daemon, "diff", "box")
    assert ours.stdout == docker.stdout and b"A /data/f" in ours.stdout


def _tree(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            out[rel] = os.readlink(p) if os.path.islink(p) else (
                "dir" if os.path.isdir(p) else Path(p).read_bytes())
    return out


@pytest.mark.parametrize("src", ["box:/data", "box:/data/.", "box:/data/f", "box:/data/l"])
def test_cp_out_lands_where_dockers_does(daemon, tmp_path, src):
    for prog, name in ((["docker"], "docker"), (DOCKYARD, "ours")):
        (tmp_path / name).mkdir()
        for dest in ("existing", "new"):
            if dest == "existing":
                (tmp_path / name / dest).mkdir()
            subprocess.run([*prog, "cp", src, str(tmp_path / name / dest)], env=daemon.env,
                           check=True, capture_output=True)
    assert _tree(tmp_path / "ours") == _tree(tmp_path / "docker")


def test_cp_in_and_from_stdin(daemon, tmp_path):
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "x.txt").write_text("payload\n")
    for prog, dest in ((["docker"], "/in-docker"), (DOCKYARD, "/in-ours")):
        daemon.docker("exec", "box", "mkdir", "-p", dest)
        subprocess.run([*prog, "cp", str(src), f"box:{dest}/"], env=daemon.env, check=True)
        subprocess.run([*prog, "cp", str(src / "deep" / "x.txt"), f"box:{dest}/renamed"],
                       env=daemon.env, check=True)
    def listing(d):
        return daemon.docker("exec", "box", "sh", "-c", f"cd {d} && find . | sort").stdout

    assert listing("/in-ours") == listing("/in-docker") == \
        ".\n./renamed\n./src\n./src/deep\n./src/deep/x.txt\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"from stdin\n"
        ti = tarfile.TarInfo("stdin.txt")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    subprocess.run([*DOCKYARD, "cp", "-", "box:/tmp"], env=daemon.env, input=buf.getvalue(),
                   check=True)
    assert daemon.docker("exec", "box", "cat", "/tmp/stdin.txt").stdout == "from stdin\n"
    res = subprocess.run([*DOCKYARD, "cp", "box:/nowhere", str(tmp_path)], env=daemon.env,
                         capture_output=True)
    assert res.returncode == 1 and b"Could not find the file /nowhere" in res.stderr


def test_stats_events_and_export(daemon, tmp_path):
    fmt = "{{.Name}} {{.PIDs}}"
    docker, ours = both(daemon, "stats", "--no-stream", "--format", fmt, "box")
    assert ours.stdout == docker.stdout == b"box 1\n"
    until = str(int(time.time()) + 1)
    docker, ours = both(daemon, "events", "--since", "0", "--until", until, "--filter",
                        "container=box")
    assert ours.stdout == docker.stdout and b"container start" in ours.stdout
    docker, ours = both(daemon, "events", "--since", "0", "--until", until, "--filter",
                        "event=create", "--format", "{{.Actor.Attributes.name}}")
    assert ours.stdout == docker.stdout
    out = tmp_path / "box.tar"
    subprocess.run([*DOCKYARD, "export", "-o", str(out), "box"], env=daemon.env, check=True)
    with tarfile.open(out) as tar:
        ours = sorted(tar.getnames())
    raw = subprocess.run(["docker", "export", "box"], env=daemon.env, capture_output=True,
                         check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert sorted(tar.getnames()) == ours
