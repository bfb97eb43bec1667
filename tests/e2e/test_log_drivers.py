"""Log drivers and log attributes, dockyard against the reference dockerd 20.10.

The same `docker run` with ``--log-opt labels=/env=/tag=`` on both daemons: the json-file
lines must carry the same ``attrs`` (byte for byte but for ids), and ``docker logs --details``
must print the same prefix. The ``none`` and ``local`` drivers and an unknown driver answer as
dockerd's do.
"""

from __future__ import annotations

import glob
import json
import re

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import RefDockerd

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox")

IMAGE = "busybox:latest"
RUN = ["--label", "a=1", "--label", "b<x>=&2", "-e", "E=x y", "-e", "F=2", "-e", "G=3",
       "--log-opt", "labels=a,b<x>,nosuch", "--log-opt", "env=E,nosuch",
       "--log-opt", "env-regex=^G$",
       "--log-opt", "tag={{.Name}}/{{.ImageName}}/{{.DaemonName}}/{{ .Command }}",
       IMAGE, "sh", "-c", "echo out; echo err >&2"]


@pytest.fixture(scope="module")
def daemons():
    with RefDockerd(dockyard_runtime=None) as ref, DockyardDaemon() as ours:
        ref.import_busybox(IMAGE)
        ours.import_busybox(IMAGE)
        yield ours, ref


def _log_lines(daemon, name: str) -> list[str]:
    path = daemon.docker("inspect", "-f", "{{.LogPath}}", name).stdout.strip()
    with open(path) as f:
        return [re.sub(r'"time":"[^"]+"', '"time":"T"', line) for line in f]


def test_attrs_in_the_file_and_in_logs_details_match_dockerd(daemons):
    ours, ref = daemons
    for d in daemons:
        d.docker("run", "--name", "attrs", *RUN)
    theirs = sorted(_log_lines(ref, "attrs"))  # the two streams may interleave either way
    assert sorted(_log_lines(ours, "attrs")) == theirs
    assert json.loads(theirs[0])["attrs"]["tag"] == "attrs/busybox:latest/docker/sh -c echo out; echo err >&2"
    try:
        ours_details = ours.docker("logs", "--details", "attrs")
        ref_details = ref.docker("logs", "--details", "attrs")
        assert (ours_details.stdout, ours_details.stderr) == \
            (ref_details.stdout, ref_details.stderr)
        assert ours_details.stdout.startswith("E=x+y,G=3,a=1,b%3Cx%3E=%262,tag=attrs%2F")
    finally:
        for d in daemons:
            d.docker("rm", "attrs")


def test_details_without_attributes(daemons):
    outs = []
    for d in daemons:
        d.docker("run", "--name", "plain", IMAGE, "echo", "hi")
        outs.append(d.docker("logs", "--details", "plain").stdout)
        d.docker("rm", "plain")
    assert outs[0] == outs[1]


def test_none_keeps_nothing_and_logs_answers_501(daemons):
    for d in daemons:
        cid = d.docker("create", "--log-driver", "none", IMAGE, "echo", "hi").stdout.strip()
        assert d.docker("start", "-a", cid).stdout == "hi\n"  # attached clients still see it
        res = d.docker("logs", cid, check=False)
        assert res.returncode == 1
        assert "configured logging driver does not support reading" in res.stderr
        assert d.docker("inspect", "-f", "{{.LogPath}}", cid).stdout.strip() == ""
        if isinstance(d, DockyardDaemon):
            assert not glob.glob(f"{d.data_root}/containers/{cid}/*.log")
        d.docker("rm", cid)


def test_local_driver_rotates_and_reads_back(daemons):
    ours, ref = daemons
    for d in daemons:
        cid = d.docker("run", "-d", "--log-driver", "local", "--log-opt", "max-size=1k",
                       IMAGE, "sh", "-c", "seq 1 400").stdout.strip()
        d.docker("wait", cid)
        lines = d.docker("logs", cid).stdout.splitlines()
        # rotation keeps the newest files only: the last line is there, the first is gone
        assert lines[-1] == "400" and lines[0] != "1"
        assert d.docker("inspect", "-f", "{{.LogPath}}", cid).stdout.strip() == ""
        d.docker("rm", cid)


@pytest.mark.parametrize("args, message", [
    (["--log-driver", "nosuch"], 'error looking up logging plugin nosuch: plugin "nosuch" not found'),
    (["--log-driver", "local", "--log-opt", "bad=1"], "unknown log opt 'bad' for log driver local"),
    (["--log-opt", "mode=x"], "logger: logging mode not supported: x"),
    (["--log-opt", "max-buffer-size=4m"],
     "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
    (["--log-opt", "foo=1"], "unknown log opt 'foo' for json-file log driver"),
])
def test_bad_drivers_and_options_are_refused_at_create(daemons, args, message):
    for d in daemons:
        res = d.docker("create", *args, IMAGE, "true", check=False)
        assert res.returncode != 0 and message in res.stderr, (d, res.stderr)


def test_mode_non_blocking_is_accepted(daemons):
    for d in daemons:
        out = d.docker("run", "--rm", "--log-opt", "mode=non-blocking", "--log-opt",
                       "max-buffer-size=4m", IMAGE, "echo", "hi").stdout
        assert out == "hi\n"


def test_a_bad_tag_template_fails_the_start_not_the_create(daemons):
    for d in daemons:
        cid = d.docker("create", "--log-opt", "tag={{.Foo}}", IMAGE, "true").stdout.strip()
        res = d.docker("start", cid, check=False)
        assert res.returncode == 1
        assert "failed to initialize logging driver" in res.stderr and "Foo" in res.stderr
        d.docker("rm", cid)
