"""Registry auth end to end with the real docker CLI: `docker login` (the daemon's POST /auth,
then the CLI's config.json), push and pull with X-Registry-Auth, `docker logout`; against our
registry with htpasswd Basic auth and with Bearer tokens, and against docker-registry's
htpasswd auth."""

from __future__ import annotations

import json
import tarfile

import pytest

from dockyard.registry.auth import bcrypt_entry
from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.registry import DistributionRegistry, DockyardRegistry

pytestmark = pytest.mark.requires("docker_cli", "busybox", "docker_registry")

USER, PASSWORD = "alice", "s3cret-pass"


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    path.write_text(bcrypt_entry(USER, PASSWORD) + "\n")
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, busybox_rootfs):
    log_path = tmp_path_factory.mktemp("dockyard") / "daemon.log"
    with DockyardDaemon(log_path=log_path) as d:
        path = tmp_path_factory.mktemp("rootfs") / "busybox.tar"
        with tarfile.open(path, "w") as tar:
            for entry in sorted(busybox_rootfs.iterdir()):
                tar.add(entry, arcname=entry.name)
        d.docker("import", str(path), "busybox:auth")
        yield d


@pytest.fixture(params=["basic", "token", "distribution"])
def registry(request, htpasswd):
    if request.param == "distribution":
        with DistributionRegistry(htpasswd=htpasswd) as reg:
            yield reg
    else:
        with DockyardRegistry(args=["--auth", request.param, "--htpasswd", str(htpasswd)]) as reg:
            yield reg


def _login(daemon, addr, password=PASSWORD):
    return daemon.docker("login", addr, "-u", USER, "--password-stdin", input=password,
                         check=False, timeout=60)


def test_login_push_pull_logout(daemon, registry):
    ref = f"{registry.addr}/private/busybox:v1"
    daemon.docker("tag", "busybox:auth", ref)
    # input="": a 401 makes the CLI offer a login prompt, which must meet EOF here
    out = daemon.docker("push", ref, check=False, timeout=60, input="")
    assert out.returncode == 1 and ("unauthorized" in out.stderr.lower()
                                    or "no basic auth credentials" in out.stderr), out.stderr

    bad = _login(daemon, registry.addr, "wrong")
    assert bad.returncode == 1 and "401" in bad.stderr, bad.stderr
    good = _login(daemon, registry.addr)
    assert good.returncode == 0 and "Login Succeeded" in good.stdout, good.stderr
    config = json.loads((daemon.base / "cli" / "config.json").read_text())
    assert registry.addr in config["auths"]

    daemon.docker("push", ref, timeout=60)
    daemon.docker("rmi", ref)
    out = daemon.docker("pull", ref, timeout=60).stdout
    assert "Digest: sha256:" in out

    daemon.docker("logout", registry.addr)
    daemon.docker("rmi", ref)
    out = daemon.docker("pull", ref, check=False, timeout=60, input="")
    assert out.returncode == 1, out.stdout
    assert "unauthorized" in out.stderr.lower() or "no basic auth" in out.stderr, out.stderr
