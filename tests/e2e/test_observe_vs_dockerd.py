"""Issue 5's response shapes against Debian's dockerd 20.10 in the same run: the stats
document, the archive PathStat header, top, changes, exec inspect, and container events."""

from __future__ import annotations

import base64
import json
import tarfile
import time

import docker
import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox", "runc")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("observe")
    with RefDockerd(dockyard_runtime=None, log_path=base / "dockerd.log") as ref, \
            DockyardDaemon() as ours:
        clients = {}
        try:
            for name, d in (("dockerd", ref), ("dockyard", ours)):
                d.import_busybox(BUSYBOX_TAG)
                d.docker("run", "-d", "--name", "obs", BUSYBOX_TAG, "sh", "-c",
                         "echo x > /tmp/new; rm /etc/group; sleep 600")
                c = clients[name] = docker.APIClient(base_url=d.docker_host)
                # the script has run to its end (/tmp/new made, /etc/group removed): its one
                # process is the sleep the shell became
                deadline = time.monotonic() + 10
                while [p[-1] for p in c.top("obs")["Processes"]] != ["sleep 600"]:
                    assert time.monotonic() < deadline, (name, c.top("obs"))
                    time.sleep(0.05)
            yield clients
        finally:
            for c in clients.values():
                c.close()


def keys(doc, depth=2):
    if not isinstance(doc, dict) or depth == 0:
        return type(doc).__name__
    return {k: keys(v, depth - 1) for k, v in doc.items()}


def test_stats_document_shape(pair):
    docs = {n: c.stats("obs", stream=False) for n, c in pair.items()}
    theirs, ours = docs["dockerd"], docs["dockyard"]
    assert set(ours) - {"networks"} == set(theirs) - {"networks"}  # no netns on either here
    for section in ("cpu_stats", "precpu_stats", "pids_stats", "blkio_stats"):
        assert keys(ours[section]) == keys(theirs[section]), section
    assert set(ours["memory_stats"]) == set(theirs["memory_stats"])
    assert set(ours["memory_stats"]["stats"]) == set(theirs["memory_stats"]["stats"])
    assert ours["precpu_stats"]["system_cpu_usage"] > 0  # stream=false: a real earlier sample
    assert ours["pids_stats"]["current"] == theirs["pids_stats"]["current"] == 1


def test_path_stat_header(pair):
    def stat(c, path):
        resp = c.head(c._url("/containers/obs/archive"), params={"path": path})
        return resp.status_code, json.loads(base64.b64decode(
            resp.headers["X-Docker-Container-Path-Stat"])) if resp.ok else None

    for path in ("/bin/sh", "/etc", "/etc/", "/etc/.", "/tmp/new", "/"):
        (s1, theirs), (s2, ours) = (stat(pair[n], path) for n in ("dockerd", "dockyard"))
        assert s1 == s2 == 200
        for field in ("name", "mode", "linkTarget"):
            assert ours[field] == theirs[field], (path, field)
        if path == "/bin/sh":
            assert ours["size"] == theirs["size"]
    assert stat(pair["dockyard"], "/nowhere")[0] == stat(pair["dockerd"], "/nowhere")[0] == 404


def test_archive_entry_names(pair):
    import io

    for path in ("/etc", "/etc/.", "/tmp/new", "/bin/sh"):
        names = {}
        for n, c in pair.items():
            stream, _ = c.get_archive("obs", path)
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                # dockerd's init layer has an /etc/mtab link that our runtime does not make
                names[n] = sorted(m.name for m in tar.getmembers() if not m.name.endswith("mtab"))
        assert names["dockyard"] == names["dockerd"], (path, names)


def test_top_and_changes(pair):
    tops = {n: c.top("obs") for n, c in pair.items()}
    assert tops["dockyard"]["Titles"] == tops["dockerd"]["Titles"]
    assert [p[-1] for p in tops["dockyard"]["Processes"]] == \
        [p[-1] for p in tops["dockerd"]["Processes"]]
    # dockerd's order comes from walking maps (random): compare them sorted
    changes = {n: sorted(c.diff("obs"), key=lambda ch: ch["Path"]) for n, c in pair.items()}
    assert changes["dockyard"] == changes["dockerd"], changes


def _exec_ended(c, exec_id: str) -> dict:
    """exec inspect once the exec's exit is recorded (dockerd records it after exec start's
    answer, as it handles the exit event)."""
    deadline = time.monotonic() + 10
    while (info := c.exec_inspect(exec_id))["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return info


def test_exec_inspect_and_events(pair):
    since = time.time()  # this test's events only, on either daemon
    inspected = {}
    for n, c in pair.items():
        e = c.exec_create("obs", ["sh", "-c", "exit 3"], user="0", workdir="/tmp")
        c.exec_start(e["Id"])
        inspected[n] = _exec_ended(c, e["Id"])
    assert set(inspected["dockyard"]) == set(inspected["dockerd"])
    for field in ("ExitCode", "Running", "OpenStdin", "OpenStdout", "OpenStderr"):
        assert inspected["dockyard"][field] == inspected["dockerd"][field], field
    assert inspected["dockyard"]["ProcessConfig"] == inspected["dockerd"]["ProcessConfig"]
    until = int(time.time()) + 1
    evs = {}
    for n, c in pair.items():
        evs[n] = [json.loads(line) for line in c.events(since=since, until=until,
                                                          filters={"container": "obs"})]
    def shape(e):
        return (e["Type"], e["Action"].split(":")[0], sorted(e["Actor"]["Attributes"]))

    assert [shape(e) for e in evs["dockyard"]] == [shape(e) for e in evs["dockerd"]]
