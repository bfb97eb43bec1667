"""Network shapes against the reference dockerd 20.10: network inspect/list and a container's
NetworkSettings (same keys, same kinds of values), and the dockyard CLI's ``network`` and
``port`` commands printing what the docker CLI prints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox")

# fields newer than API 1.41 (dockerd 20.10) that API 1.51 has
NEWER = {"EnableIPv4", "DNSNames", "GwPriority"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("netshapes")
    with RefDockerd(dockyard_runtime=None, log_path=base / "dockerd.log") as ref, \
            DockyardDaemon() as ours:
        for d in (ref, ours):
            d.import_busybox(BUSYBOX_TAG)
        yield ref, ours


def _cli(argv, env, check=True):
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv}: {proc.stderr}")
    return proc


def _keys(doc, prefix=""):
    out = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in NEWER:
                continue
            path = f"{prefix}.{k}"
            out.add(path)
            if k not in ("Containers", "Options", "Labels", "Networks", "Ports"):
                out |= _keys(v, path)
    return out


def test_network_and_network_settings_shapes(pair):
    ref, ours = pair
    docs = {}
    for name, d in (("ref", ref), ("ours", ours)):
        _cli(["docker", "network", "create", "--subnet", "10.187.0.0/24", "--label", "x=y",
              "shapes"], d.env)
        _cli(["docker", "run", "-d", "--name", "shaped", "--network", "shapes",
              "--network-alias", "al", "-p", "18555:80", BUSYBOX_TAG, "sleep", "60"], d.env)
        try:
            net = json.loads(_cli(["docker", "network", "inspect", "shapes"], d.env).stdout)[0]
            ctr = json.loads(_cli(["docker", "inspect", "shaped"], d.env).stdout)[0]
            listed = json.loads(_cli(["docker", "network", "ls", "--format", "{{json .}}",
                                      "--filter", "name=shapes"], d.env).stdout)
            docs[name] = (net, ctr["NetworkSettings"], listed)
        finally:
            _cli(["docker", "rm", "-f", "shaped"], d.env, check=False)
            _cli(["docker", "network", "rm", "shapes"], d.env, check=False)
    (rnet, rns, rls), (onet, ons, ols) = docs["ref"], docs["ours"]
    assert _keys(onet) == _keys(rnet)
    assert onet["IPAM"]["Config"] == rnet["IPAM"]["Config"] == [{"Subnet": "10.187.0.0/24"}]
    assert set(ons) - NEWER == set(rns) - NEWER
    rep, oep = rns["Networks"]["shapes"], ons["Networks"]["shapes"]
    assert set(oep) - NEWER == set(rep) - NEWER
    assert oep["IPAddress"].startswith("10.187.0.") and oep["IPPrefixLen"] == 24
    assert oep["Gateway"] == rep["Gateway"] == "10.187.0.1"
    assert "al" in oep["Aliases"]
    assert ons["Ports"]["80/tcp"] == rns["Ports"]["80/tcp"]
    assert set(ols) == set(rls)


def test_dockyard_cli_network_commands_print_as_docker(pair):
    ref, _ = pair
    docker = lambda *a: _cli(["docker", *a], ref.env, check=False)  # noqa: E731
    dockyard = lambda *a: _cli([sys.executable, "-m", "dockyard.cli", *a], ref.env, check=False)  # noqa: E731
    docker("network", "create", "--label", "k=v", "clinet")
    try:
        for args in (["network", "ls"], ["network", "ls", "-q"], ["network", "ls", "--no-trunc"],
                     ["network", "ls", "--filter", "label=k=v", "--format", "{{.Name}} {{.Driver}}"],
                     ["network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", "clinet"],
                     ["network", "inspect", "nosuch"]):
            a, b = docker(*args), dockyard(*args)
            assert (a.returncode, a.stdout) == (b.returncode, b.stdout), args
        docker("run", "-d", "--name", "ported", "--network", "clinet", "-p", "18556:80",
               "-p", "127.0.0.1:18557:81/udp", BUSYBOX_TAG, "sleep", "60")
        for args in (["port", "ported"], ["port", "ported", "80"], ["port", "ported", "81/udp"],
                     ["port", "ported", "82"]):
            a, b = docker(*args), dockyard(*args)
            assert (a.returncode, a.stdout) == (b.returncode, b.stdout), args
        for client in (docker, dockyard):  # prune's report, each client on its own network
            client("network", "create", "prunable")
            res = client("network", "prune", "-f")
            assert res.stdout == "Deleted Networks:\nprunable\n\n", res.stdout
        res = dockyard("network", "create", "dy-made")
        assert res.returncode == 0 and len(res.stdout.strip()) == 64
        assert dockyard("network", "connect", "dy-made", "ported").returncode == 0
        nets = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", "ported").stdout)
        assert set(nets) == {"clinet", "dy-made"}
        assert dockyard("network", "disconnect", "dy-made", "ported").returncode == 0
        assert dockyard("network", "rm", "dy-made").stdout == "dy-made\n"
    finally:
        docker("rm", "-f", "ported")
        docker("network", "rm", "clinet", "dy-made")
