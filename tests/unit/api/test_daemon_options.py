"""`dockyard daemon` options: dockerd's flags, the config file, listeners, the pid file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from dockyard import daemon
from dockyard.daemon import ConfigError, PidFile, parse_host, parse_options
from dockyard.testing.apifakes import aio


def opts(*argv: str, config: dict | None = None, tmp_path=None):
    args = list(argv)
    if config is not None:
        path = tmp_path / "daemon.json"
        path.write_text(json.dumps(config))
        args += ["--config-file", str(path)]
    return parse_options(args)


def test_defaults(monkeypatch):
    monkeypatch.setattr(daemon, "DEFAULT_CONFIG_FILE", "/nonexistent/daemon.json")
    o = parse_options([])
    assert o.hosts == ["unix:///run/dockyard/dockyard.sock"]
    assert (o.data_root, o.exec_root) == ("/var/lib/dockyard", "/run/dockyard")
    assert o.pidfile == "/run/dockyard/dockyard.pid" and o.log_level == "info"
    assert o.default_runtime == "dockyard" and o.runtimes == {}


def test_flags(tmp_path):
    o = opts("-H", "unix:///a.sock", "--host", "unix:///b.sock", "--data-root", str(tmp_path),
             "--exec-root", "rel/run", "-l", "debug", "--add-runtime", "crun=/usr/bin/crun",
             "--add-runtime", "runc2=/usr/sbin/runc", "--default-runtime", "crun",
             "-p", "/tmp/x.pid", "-s", "native", "--cgroup-parent", "/mine")
    assert o.hosts == ["unix:///a.sock", "unix:///b.sock"]
    assert o.data_root == str(tmp_path) and o.exec_root == os.path.abspath("rel/run")
    assert o.runtimes == {"crun": "/usr/bin/crun", "runc2": "/usr/sbin/runc"}
    assert (o.default_runtime, o.log_level, o.pidfile) == ("crun", "debug", "/tmp/x.pid")
    assert (o.storage_driver, o.cgroup_parent) == ("native", "/mine")
    assert opts("-D").log_level == "debug"


def test_config_file(tmp_path):
    o = opts("--add-runtime", "a=/bin/a", tmp_path=tmp_path, config={
        "hosts": ["unix:///c.sock"], "data-root": str(tmp_path / "d"), "log-level": "warn",
        "runtimes": {"b": {"path": "/bin/b", "runtimeArgs": []}}, "default-runtime": "b"})
    assert o.hosts == ["unix:///c.sock"] and o.data_root == str(tmp_path / "d")
    assert o.runtimes == {"a": "/bin/a", "b": "/bin/b"} and o.default_runtime == "b"
    assert o.log_level == "warn"


@pytest.mark.parametrize("argv, config, message", [
    (["-H", "unix:///x.sock"], {"hosts": ["unix:///y.sock"]},
     "the following directives are specified both as a flag and in the configuration file: "
     "hosts: (from flag: [unix:///x.sock], from file: [unix:///y.sock])"),
    (["--add-runtime", "a=/x"], {"runtimes": {"a": {"path": "/y"}}}, "runtimes: a"),
    ([], {"storage-opts": []}, "the following directives don't match any configuration "
                               "option: storage-opts"),
    ([], {"runtimes": {"a": {}}}, "runtimes: a: a path is required"),
    ([], {"hosts": "unix:///x"}, "hosts: expected a list of strings"),
    ([], {"log-level": "loud"}, "unable to parse logging level: loud"),
    (["--add-runtime", "nopath"], None, "invalid --add-runtime 'nopath'"),
    (["--add-runtime", "dockyard=/x"], None, "runtime name 'dockyard' is reserved"),
])
def test_config_errors(tmp_path, argv, config, message):
    with pytest.raises(ConfigError) as err:
        opts(*argv, config=config, tmp_path=tmp_path)
    assert message in str(err.value)


def test_unreadable_config_file(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="unable to configure the daemon with file"):
        parse_options(["--config-file", str(tmp_path / "bad.json")])
    with pytest.raises(ConfigError, match="unable to read the configuration file"):
        parse_options(["--config-file", str(tmp_path / "missing.json")])


@pytest.mark.parametrize("spec, expected", [
    ("unix:///run/d.sock", "/run/d.sock"), ("tcp://0.0.0.0:2376", ("0.0.0.0", 2376)),
    ("tcp://127.0.0.1", ("127.0.0.1", 2376)), ("tcp://[::1]:3000", ("::1", 3000)),
    ("tcp://:2376", ("", 2376)),
])
def test_parse_host(spec, expected):
    assert parse_host(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("/run/d.sock", "expected unix:///path or tcp://host:port"),
    ("unix://rel.sock", "must be absolute"), ("fd://", "fd:// socket activation is not"),
    ("ssh://host", "only unix:// and tcp://"), ("tcp://h:port", "bad port"),
])
def test_parse_host_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_host(spec)


def test_tcp_requires_tls_verification(tmp_path):
    o = opts("-H", "tcp://127.0.0.1:2376")
    with pytest.raises(ConfigError, match="requires TLS client verification"):
        daemon.listeners(o)
    o = opts("-H", "tcp://127.0.0.1:2376", "--tlsverify", "--tlscert", "/x")
    with pytest.raises(ConfigError, match="missing --tlscacert, --tlskey"):
        daemon.listeners(o)
    o = opts("-H", "tcp://127.0.0.1:2376", "--tlsverify", "--tlscacert", str(tmp_path / "ca"),
             "--tlscert", str(tmp_path / "c"), "--tlskey", str(tmp_path / "k"))
    with pytest.raises(ConfigError, match="could not load the TLS files"):
        daemon.listeners(o)
    assert daemon.listeners(opts("-H", "unix:///x.sock")) == (["/x.sock"], None)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(d) -> None:
    """A CA, and a server and a client certificate it signed."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
             "/CN=dockyard-test-ca", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
                 str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1", "-out",
                 str(d / f"{name}.pem"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="requires openssl")
@aio
async def test_tls_listener_requires_a_client_certificate(engine, tmp_path):
    import asyncio
    import ssl

    from dockyard.api.server import make_server

    _certificates(tmp_path)
    o = opts("-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscacert", str(tmp_path / "ca.pem"),
             "--tlscert", str(tmp_path / "server.pem"), "--tlskey", str(tmp_path / "server.key"))
    specs, ctx = daemon.listeners(o)
    assert specs == [("127.0.0.1", 0)] and ctx.verify_mode == ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client.check_hostname = False
    async with make_server(engine, specs, ssl_context=ctx) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises((ssl.SSLError, ConnectionError)):  # no client certificate
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            writer.write(b"GET /_ping HTTP/1.0\r\n\r\n")
            await writer.drain()
            if not await reader.read():
                raise ConnectionResetError("closed")
        client.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"GET /_ping HTTP/1.0\r\n\r\n")
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nOK")


def test_pid_file(tmp_path):
    path = tmp_path / "run" / "d.pid"
    with PidFile(str(path)):
        assert path.read_text() == str(os.getpid())
    assert not path.exists()
    path.parent.mkdir(exist_ok=True)
    path.write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(ConfigError, match=f"process with PID {os.getppid()} is still running"):
        PidFile(str(path)).__enter__()
    path.write_text("999999999")  # a stale one is taken over
    with PidFile(str(path)):
        assert path.read_text() == str(os.getpid())


def test_main_refuses_bad_options_with_status_1(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dockyard.daemon", "-H", "tcp://0.0.0.0:2375",
                           "--data-root", str(tmp_path / "d"), "--exec-root",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "requires TLS client verification" in proc.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "r").exists()  # nothing made


def test_registry_options_as_flags_or_in_the_file(tmp_path):
    o = opts("--insecure-registry", "myreg:5000", "--insecure-registry", "10.0.0.0/8",
             "--registry-mirror", "http://127.0.0.1:5001", "--registry-listen", "127.0.0.1:5002")
    assert o.insecure_registries == ["myreg:5000", "10.0.0.0/8"]
    assert o.registry_mirrors == ["http://127.0.0.1:5001"]
    assert o.registry_listen == "127.0.0.1:5002"
    cfg = daemon.engine_config(o)
    assert cfg.insecure_registries == ["myreg:5000", "10.0.0.0/8"]
    assert cfg.registry_mirrors == ["http://127.0.0.1:5001"]
    o = opts(config={"insecure-registries": ["a:1"], "registry-mirrors": ["https://m"]},
             tmp_path=tmp_path)
    assert (o.insecure_registries, o.registry_mirrors) == (["a:1"], ["https://m"])
    with pytest.raises(ConfigError, match="insecure-registries"):
        opts("--insecure-registry", "b:2", config={"insecure-registries": ["a:1"]},
             tmp_path=tmp_path)
    with pytest.raises(ConfigError, match="invalid mirror"):
        daemon.engine_config(opts("--registry-mirror", "ftp://nope"))


# -- what containers get when their request leaves it out -----------------------------------------

def test_container_defaults_as_flags_or_in_the_file(tmp_path):
    from dockyard.daemon import spec_options

    profile = tmp_path / "seccomp.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    o = opts("--init", "--no-new-privileges", "--default-ulimit", "nofile=1024:2048",
             "--default-ulimit", "nproc=512", "--default-shm-size", "128m",
             "--default-ipc-mode", "shareable", "--default-cgroupns-mode", "private",
             "--seccomp-profile", str(profile))
    spec = spec_options(o)
    assert spec.init and spec.no_new_privileges
    assert spec.default_ulimits == ({"Name": "nofile", "Soft": 1024, "Hard": 2048},
                                    {"Name": "nproc", "Soft": 512, "Hard": 512})
    assert (spec.shm_size, spec.ipc_mode, spec.cgroupns_mode) == (128 << 20, "shareable",
                                                                  "private")
    assert spec.seccomp_profile == profile.read_text()  # read once, at the start
    filed = spec_options(opts(tmp_path=tmp_path, config={
        "init": True, "no-new-privileges": True, "default-shm-size": "128M",
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048},
                            "nproc": {"Name": "nproc", "Soft": 512, "Hard": 512}},
        "default-ipc-mode": "shareable", "default-cgroupns-mode": "private",
        "seccomp-profile": str(profile)}))
    assert filed == spec
    plain = spec_options(opts())
    assert not plain.init and not plain.no_new_privileges and plain.default_ulimits == ()
    assert (plain.shm_size, plain.ipc_mode, plain.cgroupns_mode, plain.seccomp_profile) == \
        (64 << 20, "private", None, None)
    assert spec_options(opts("--seccomp-profile", "unconfined")).seccomp_profile == "unconfined"


@pytest.mark.parametrize("argv, config, message", [
    (["--default-ulimit", "nofile"], None, "invalid ulimit argument: nofile"),
    (["--default-ulimit", "bogus=1"], None, "invalid ulimit type: bogus"),
    (["--default-ulimit", "nofile=10:5"], None, "soft limit must be less than or equal"),
    (["--default-shm-size", "lots"], None, "invalid default-shm-size: lots"),
    (["--default-shm-size", "0"], None, "invalid default-shm-size: 0"),
    (["--default-ipc-mode", "host"], None, "invalid default-ipc-mode: host"),
    (["--default-cgroupns-mode", "x"], None, "invalid default-cgroupns-mode: x"),
    (["--seccomp-profile", "/nonexistent/p.json"], None, "opening seccomp profile"),
    ([], {"default-ulimits": ["nofile=1"]}, "default-ulimits: expected"),
    ([], {"default-ulimits": {"nofile": {"Soft": "1"}}}, "Soft and Hard numbers are required"),
    ([], {"init": "yes"}, "init: expected true or false"),
    (["--init"], {"init": True}, "specified both as a flag and in the configuration file: init"),
])
def test_container_defaults_errors(tmp_path, argv, config, message):
    from dockyard.daemon import spec_options

    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        spec_options(opts(*argv, config=config, tmp_path=tmp_path))


def test_a_seccomp_profile_that_is_not_json_is_refused(tmp_path):
    from dockyard.daemon import spec_options

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="Decoding seccomp profile failed"):
        spec_options(opts("--seccomp-profile", str(bad)))
