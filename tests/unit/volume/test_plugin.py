"""The volume plugin client against a plugin on a unix socket (the test plugin, in a thread):
discovery as Docker does it, the calls, and a plugin that answers garbage or is gone."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.testing import volume_plugin
from dockyard.volume import plugin as vp


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(name="tp", misbehave=None, sock_dir=None):
        sock_dir = sock_dir or tmp_path / "sockets"
        sock_dir.mkdir(exist_ok=True)
        path = sock_dir / f"{name}.sock"
        p = volume_plugin.Plugin(str(tmp_path / name), dict(misbehave or {}))
        server = volume_plugin._Server(str(path), volume_plugin._handler(p))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, p))
        return sock_dir, p

    yield start
    for s, p in servers:
        s.shutdown()
        s.server_close()
        p.close()


def test_discovery_order_and_spec_files(tmp_path):
    socks, specs = tmp_path / "run", tmp_path / "etc"
    (socks / "nested").mkdir(parents=True)
    specs.mkdir()
    for path in (socks / "a.sock", socks / "nested" / "nested.sock"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    (socks / "notsock.sock").write_text("")
    (specs / "b.spec").write_text("unix:///some/where.sock\n")
    (specs / "c.json").write_text(json.dumps({"Name": "c", "Addr": "tcp://127.0.0.1:9"}))
    (specs / "d.spec").write_text("ftp://x\n")
    find = lambda n: vp.discover(n, [str(socks)], [str(specs)])  # noqa: E731
    assert find("a") == f"unix://{socks}/a.sock"
    assert find("nested") == f"unix://{socks}/nested/nested.sock"
    assert find("b") == "unix:///some/where.sock"
    assert find("c") == "tcp://127.0.0.1:9"
    with pytest.raises(vp.PluginError, match="unsupported protocol"):
        find("d")
    with pytest.raises(NotFound, match='error looking up volume plugin notsock: plugin "notsock" '
                                       "not found"):
        find("notsock")
    for bad in ("../a", "a/b", ""):
        with pytest.raises(InvalidArgument):
            find(bad)


def test_activate_and_calls(serve, tmp_path):
    socks, p = serve()
    drv = vp.PluginDriver.activate("tp", socket_dirs=[str(socks)], spec_dirs=[])
    assert drv.scope == "local"
    drv.create("v1", {"a": "b"})
    point = drv.mount("v1", "cid")
    assert point == os.path.join(p.root, "volumes", "v1")
    assert drv.path("v1") == point
    assert drv.get("v1")["Status"] == {"mounts": 1}
    assert [v["Name"] for v in drv.list()] == ["v1"]
    drv.unmount("v1", "cid")
    drv.remove("v1")
    assert drv.get("v1") is None
    with pytest.raises(vp.PluginError, match="VolumeDriver.Mount: no such volume: v1"):
        drv.mount("v1", "cid")
    with open(os.path.join(p.root, "calls.jsonl")) as f:
        methods = [json.loads(line)["method"] for line in f]
    assert methods[:3] == ["Plugin.Activate", "VolumeDriver.Capabilities", "VolumeDriver.Create"]


@pytest.mark.parametrize("how,message", [
    ("garbage", "the answer is not a JSON object"),
    ("error", "VolumeDriver.Mount: VolumeDriver.Mount refused by the test"),
])
def test_misbehaving_plugins(serve, how, message):
    socks, _ = serve(misbehave={"VolumeDriver.Mount": how})
    drv = vp.PluginDriver.activate("tp", socket_dirs=[str(socks)], spec_dirs=[])
    drv.create("v", {})
    with pytest.raises(vp.PluginError, match=message):
        drv.mount("v", "id")


def test_a_plugin_that_is_gone_fails_fast(tmp_path):
    path = tmp_path / "gone.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the socket file stays, nobody listens
    client = vp.PluginClient("gone", f"unix://{path}", connect_retry=0.2)
    start = time.monotonic()
    with pytest.raises(vp.PluginError, match="cannot connect"):
        client.call("Plugin.Activate")
    assert time.monotonic() - start < 2


def test_a_plugin_that_hangs_times_out(tmp_path):
    path = tmp_path / "slow.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()
    try:
        client = vp.PluginClient("slow", f"unix://{path}", timeout=0.3)
        with pytest.raises(vp.PluginError, match="no answer within 0.3s"):
            client.call("VolumeDriver.Mount", {"Name": "x"})
    finally:
        srv.close()


def test_a_plugin_that_is_no_volume_driver(serve, tmp_path):
    socks, p = serve()
    p.handle = lambda method, args: {"Implements": ["NetworkDriver"]}
    with pytest.raises(vp.PluginError, match="does not implement VolumeDriver"):
        vp.PluginDriver.activate("tp", socket_dirs=[str(socks)], spec_dirs=[])
