"""Volumes and mounts (issue 7) through a real dockyard daemon, driven by the real docker CLI.

Named and anonymous volumes, copy-up, --rm and rm -v, in-use refusals, --mount options, tmpfs
limits, bind propagation, --volumes-from, the local driver's mount options and our uid/gid,
export/import, events, live restore, and a volume plugin of our own (its own process on a unix
socket under /run/docker/plugins) that behaves, answers garbage, or dies.
"""

from __future__ import annotations

import json
from contextlib import closing
import os
import secrets
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.requires("docker_cli", "busybox")

PLUGIN_DIR = Path("/run/docker/plugins")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("volumes")
    rootfs = make_busybox_rootfs(base / "rootfs")
    plain = base / "busybox.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(rootfs, arcname=".")
    data = rootfs / "data"
    (data / "sub").mkdir(parents=True)
    (data / "f").write_text("image content\n")
    (data / "link").symlink_to("f")
    for p in (data, data / "sub", data / "f"):
        os.lchown(p, 1000, 1000)
    os.lchown(data / "link", 1000, 1000)
    with_volume = base / "volimg.tar"
    with tarfile.open(with_volume, "w") as tar:
        tar.add(rootfs, arcname=".")
    with DockyardDaemon() as d:
        d.docker("import", "-c", 'CMD ["sh"]', str(plain), "busybox:latest")
        d.docker("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /data", str(with_volume), "volimg")
        yield d


def dk(d, *args, check=True, **kw):
    return d.docker(*args, check=check, **kw)


def volumes(d) -> set[str]:
    return set(dk(d, "volume", "ls", "-q").stdout.split())


def mounted(path: str | Path) -> bool:
    path = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def data_path(d, name: str) -> Path:
    return d.data_root / "volumes" / name / "_data"


# -- named volumes ------------------------------------------------------------------------------

def test_named_volume_outlives_its_container(daemon):
    dk(daemon, "volume", "create", "--label", "team=a", "keep")
    dk(daemon, "run", "--name", "writer", "-v", "keep:/data", "busybox", "sh", "-c",
       "echo persisted > /data/file")
    dk(daemon, "rm", "writer")
    assert dk(daemon, "run", "--rm", "-v", "keep:/data", "busybox", "cat",
              "/data/file").stdout == "persisted\n"
    doc = json.loads(dk(daemon, "volume", "inspect", "keep").stdout)[0]
    assert doc["Name"] == "keep" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"team": "a"} and doc["Options"] is None
    assert doc["Mountpoint"] == str(data_path(daemon, "keep"))
    assert (data_path(daemon, "keep") / "file").read_text() == "persisted\n"
    # run -v with a name that does not exist creates it
    dk(daemon, "run", "--rm", "-v", "made-by-run:/x", "busybox", "true")
    assert "made-by-run" in volumes(daemon)
    dk(daemon, "volume", "rm", "keep", "made-by-run")


def test_readonly_is_enforced(daemon):
    dk(daemon, "volume", "create", "ro-vol")
    res = dk(daemon, "run", "--rm", "-v", "ro-vol:/data:ro", "busybox", "sh", "-c",
             "touch /data/x", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    res = dk(daemon, "run", "--rm", "--mount", "type=volume,src=ro-vol,dst=/data,readonly",
             "busybox", "touch", "/data/x", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    assert dk(daemon, "run", "--rm", "-v", "ro-vol:/data", "busybox", "touch", "/data/x")
    dk(daemon, "volume", "rm", "ro-vol")


def test_volume_in_use_cannot_be_removed(daemon):
    cid = dk(daemon, "create", "-v", "busy:/data", "busybox", "true").stdout.strip()
    res = dk(daemon, "volume", "rm", "busy", check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == f"Error response from daemon: remove busy: volume is in use - [{cid}]"
    res = dk(daemon, "volume", "rm", "-f", "busy", check=False)
    assert res.returncode == 1 and "volume is in use" in res.stderr
    assert "busy" in volumes(daemon)
    assert data_path(daemon, "busy").is_dir()
    with closing(daemon.client()) as client:
        import docker.errors

        with pytest.raises(docker.errors.APIError) as exc:
            client.api.remove_volume("busy")
        assert exc.value.status_code == 409
    dk(daemon, "rm", cid)
    dk(daemon, "volume", "rm", "busy")
    assert not data_path(daemon, "busy").parent.exists()


def test_bad_names_are_refused(daemon):
    for name in ("a/b", "..", "../x", "x"):
        res = dk(daemon, "volume", "create", name, check=False)
        assert res.returncode == 1, name
        assert res.stderr.startswith(f"Error response from daemon: create {name}: "), res.stderr
    assert not (daemon.data_root / "x").exists()
    res = dk(daemon, "volume", "rm", "nosuch", check=False)
    assert res.stderr.strip() == "Error response from daemon: get nosuch: no such volume"
    assert dk(daemon, "volume", "rm", "-f", "nosuch").stdout == "nosuch\n"


# -- anonymous volumes, copy-up --------------------------------------------------------------------

def test_image_volume_is_anonymous_and_copied_up(daemon):
    before = volumes(daemon)
    out = dk(daemon, "run", "--name", "anon", "volimg", "sh", "-c",
             "ls -ln /data | sed 1d | awk '{print $1, $3, $4, $NF}'; cat /data/f").stdout
    assert out.splitlines() == ["-rw-r--r-- 1000 1000 f", "lrwxrwxrwx 1000 1000 f",
                                "drwxr-xr-x 1000 1000 sub", "image content"]
    (name,) = volumes(daemon) - before
    assert len(name) == 64
    doc = json.loads(dk(daemon, "volume", "inspect", name).stdout)[0]
    assert doc["Labels"] == {"com.docker.volume.anonymous": ""}
    st = data_path(daemon, name).stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)  # the directory's owner comes along
    mounts = json.loads(dk(daemon, "inspect", "-f", "{{json .Mounts}}", "anon").stdout)
    assert mounts == [{"Type": "volume", "Name": name, "Source": str(data_path(daemon, name)),
                       "Destination": "/data", "Driver": "local", "Mode": "", "RW": True,
                       "Propagation": ""}]
    dk(daemon, "rm", "-v", "anon")
    assert name not in volumes(daemon)


def test_copy_up_into_named_volumes_and_nocopy(daemon):
    assert dk(daemon, "run", "--rm", "-v", "filled:/data", "volimg", "cat",
              "/data/f").stdout == "image content\n"
    # not empty any more: a second container's image content does not go in again
    dk(daemon, "run", "--rm", "-v", "filled:/data", "volimg", "sh", "-c", "echo mine > /data/f")
    assert dk(daemon, "run", "--rm", "-v", "filled:/data", "volimg", "cat",
              "/data/f").stdout == "mine\n"
    assert dk(daemon, "run", "--rm", "-v", "empty:/data:nocopy", "volimg", "ls",
              "/data").stdout == ""
    assert dk(daemon, "run", "--rm", "--mount", "type=volume,src=empty2,dst=/data,volume-nocopy",
              "volimg", "ls", "/data").stdout == ""
    dk(daemon, "volume", "rm", "filled", "empty", "empty2")


def test_rm_removes_anonymous_volumes_and_keeps_named_ones(daemon):
    before = volumes(daemon)
    dk(daemon, "run", "--rm", "-v", "/anon", "-v", "stays:/named", "volimg", "true")
    assert volumes(daemon) - before == {"stays"}  # --rm removed the two anonymous ones
    cid = dk(daemon, "create", "-v", "/anon", "-v", "stays:/named", "volimg", "true").stdout.strip()
    made = volumes(daemon) - before - {"stays"}
    assert len(made) == 2
    dk(daemon, "rm", cid)  # without -v they stay, unused
    assert made <= volumes(daemon)
    dangling = set(dk(daemon, "volume", "ls", "-q", "-f", "dangling=true").stdout.split())
    assert made | {"stays"} <= dangling
    out = dk(daemon, "volume", "prune", "-f").stdout
    assert all(n in out for n in made) and "stays" not in out
    assert "stays" in volumes(daemon)
    dk(daemon, "volume", "rm", "stays")


# -- --mount, tmpfs, binds, propagation, volumes-from ------------------------------------------------

def test_mount_options_and_tmpfs(daemon):
    out = dk(daemon, "run", "--rm", "--mount",
             "type=volume,src=labelled,dst=/v,volume-label=k=v,volume-opt=uid=4242",
             "busybox", "stat", "-c", "%u", "/v").stdout
    assert out == "4242\n"
    doc = json.loads(dk(daemon, "volume", "inspect", "labelled").stdout)[0]
    assert doc["Labels"] == {"k": "v"} and doc["Options"] == {"uid": "4242"}
    dk(daemon, "volume", "rm", "labelled")
    res = dk(daemon, "run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
             "busybox", "sh", "-c",
             "stat -c %a /t; dd if=/dev/zero of=/t/big bs=1k count=2048 2>/dev/null; "
             "echo $?; du -k /t/big | cut -f1", check=False)
    mode, code, size = res.stdout.split()
    assert mode == "1770" and code != "0" and int(size) <= 1024
    out = dk(daemon, "run", "--rm", "--tmpfs", "/run:size=512k", "busybox", "df", "-k", "/run").stdout
    assert out.splitlines()[1].split()[1] == "512"


def test_volume_subpath(daemon):
    dk(daemon, "run", "--rm", "-v", "withsub:/d", "busybox", "mkdir", "-p", "/d/sub/inner")
    assert dk(daemon, "run", "--rm", "--mount", "type=volume,src=withsub,dst=/s,volume-subpath=sub",
              "busybox", "ls", "/s").stdout == "inner\n"
    res = dk(daemon, "run", "--rm", "--mount",
             "type=volume,src=withsub,dst=/s,volume-subpath=nosuch", "busybox", "true",
             check=False)
    assert res.returncode != 0 and "cannot access path" in res.stderr
    dk(daemon, "volume", "rm", "withsub")


def test_binds_create_missing_host_dirs_but_mounts_do_not(daemon, tmp_path):
    missing = tmp_path / "made" / "by" / "run"
    dk(daemon, "run", "--rm", "-v", f"{missing}:/x", "busybox", "touch", "/x/here")
    assert (missing / "here").exists()
    gone = tmp_path / "gone"
    res = dk(daemon, "run", "--rm", "--mount", f"type=bind,src={gone},dst=/x", "busybox", "true",
             check=False)
    assert res.returncode == 125
    assert (f'invalid mount config for type "bind": bind source path does not exist: {gone}'
            in res.stderr)
    assert not gone.exists()
    out = dk(daemon, "run", "--rm", "--mount", f"type=bind,src={missing},dst=/x,readonly",
             "busybox", "sh", "-c", "ls /x; touch /x/no", check=False)
    assert out.stdout == "here\n" and "Read-only file system" in out.stderr


def test_bind_propagation(daemon, tmp_path):
    src = tmp_path / "shared"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "dyv-prop", str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        dk(daemon, "run", "-d", "--name", "prop-shared", "-v", f"{src}:/m:rshared", "busybox",
           "sleep", "300")
        dk(daemon, "run", "-d", "--name", "prop-private", "-v", f"{src}:/m", "busybox",
           "sleep", "300")
        (src / "sub").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "dyv-prop-sub", str(src / "sub")], check=True)
        (src / "sub" / "f").write_text("propagated\n")
        assert dk(daemon, "exec", "prop-shared", "cat", "/m/sub/f").stdout == "propagated\n"
        res = dk(daemon, "exec", "prop-private", "cat", "/m/sub/f", check=False)
        assert res.returncode != 0
        mounts = json.loads(dk(daemon, "inspect", "-f", "{{json .Mounts}}", "prop-shared").stdout)
        assert mounts == [{"Type": "bind", "Source": str(src), "Destination": "/m",
                           "Mode": "rshared", "RW": True, "Propagation": "rshared"}]
        # a private source cannot be bound rshared
        res = dk(daemon, "run", "--rm", "-v", f"{tmp_path}:/m:rshared", "busybox", "true",
                 check=False)
        assert res.returncode != 0 and "not a shared mount" in res.stderr
    finally:
        dk(daemon, "rm", "-f", "prop-shared", "prop-private", check=False)
        subprocess.run(["umount", "-R", str(src)], check=False)


def test_volumes_from(daemon):
    dk(daemon, "create", "--name", "source-c", "-v", "vf-named:/named", "-v", "/anon",
       "busybox", "true")
    dk(daemon, "run", "--rm", "-v", "vf-named:/named", "busybox", "sh", "-c",
       "echo shared > /named/f")
    out = dk(daemon, "run", "--rm", "--volumes-from", "source-c", "busybox", "sh", "-c",
             "cat /named/f; touch /anon/rw && echo rw").stdout
    assert out == "shared\nrw\n"
    res = dk(daemon, "run", "--rm", "--volumes-from", "source-c:ro", "busybox", "touch",
             "/named/x", check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    # a 404, as dockerd answers (the CLI then tries to pull the image, as it does there)
    with closing(daemon.client()) as client:
        import docker.errors

        with pytest.raises(docker.errors.NotFound, match="No such container: nosuch-c"):
            client.api.create_container("busybox", "true", host_config=client.api.create_host_config(
                volumes_from=["nosuch-c"]))
    dk(daemon, "rm", "-v", "source-c")
    assert "vf-named" in volumes(daemon)
    dk(daemon, "volume", "rm", "vf-named")


# -- local driver options, uid/gid -----------------------------------------------------------------

def test_tmpfs_volume_is_mounted_while_used(daemon):
    dk(daemon, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
       "--opt", "o=size=1m,mode=0770", "--opt", "uid=1000", "--opt", "gid=1000", "tv")
    path = data_path(daemon, "tv")
    assert not mounted(path)
    dk(daemon, "run", "-d", "--name", "tv-user", "-v", "tv:/t", "volimg", "sleep", "300")
    try:
        assert mounted(path)
        # a second user sees the first one's data: the same tmpfs
        dk(daemon, "exec", "tv-user", "sh", "-c", "echo in-tmpfs > /t/f")
        out = dk(daemon, "run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c",
                 "cat /t/f; stat -c '%u:%g %a' /t; df -k /t | tail -1").stdout.splitlines()
        assert out[0] == "in-tmpfs" and out[1] == "1000:1000 770"
        assert out[2].split()[1] == "1024"
        assert mounted(path)  # still used by tv-user
    finally:
        dk(daemon, "rm", "-f", "tv-user")
    assert not mounted(path)
    dk(daemon, "volume", "rm", "tv")


def test_bind_device_volume_and_uid_gid(daemon, tmp_path):
    host = tmp_path / "device"
    host.mkdir()
    (host / "f").write_text("from the host\n")
    dk(daemon, "volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt",
       f"device={host}", "bound")
    assert dk(daemon, "run", "--rm", "-v", "bound:/b", "busybox", "sh", "-c",
              "cat /b/f; echo back > /b/g").stdout == "from the host\n"
    assert (host / "g").read_text() == "back\n"
    assert not mounted(data_path(daemon, "bound"))
    dk(daemon, "volume", "rm", "bound")
    assert (host / "f").exists()  # removing the volume leaves the device alone

    dk(daemon, "volume", "create", "--opt", "uid=1234", "--opt", "gid=2345", "owned")
    assert dk(daemon, "run", "--rm", "-v", "owned:/data", "volimg", "stat", "-c", "%u:%g",
              "/data", "/data/f").stdout == "1234:2345\n1000:1000\n"  # copy-up keeps the owner
    dk(daemon, "volume", "rm", "owned")
    for opts, message in ((["-o", "type=tmpfs"], 'missing required option: "device"'),
                          (["-o", "bogus=1"], 'invalid option: "bogus"'),
                          (["-o", "uid=x"], "invalid uid option")):
        res = dk(daemon, "volume", "create", *opts, "badopts", check=False)
        assert res.returncode == 1 and message in res.stderr, res.stderr
    assert "badopts" not in volumes(daemon)


def test_failed_mount_leaves_nothing(daemon):
    dk(daemon, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "okt")
    dk(daemon, "volume", "create", "--opt", "type=nosuchfs", "--opt", "device=x", "badfs")
    res = dk(daemon, "run", "--name", "badmount", "-v", "okt:/a", "-v", "badfs:/b", "busybox",
             "true", check=False)
    assert res.returncode != 0 and "error while mounting volume" in res.stderr
    assert not mounted(data_path(daemon, "okt")) and not mounted(data_path(daemon, "badfs"))
    state = dk(daemon, "inspect", "-f", "{{.State.Status}}", "badmount").stdout.strip()
    assert state == "created"
    dk(daemon, "rm", "badmount")
    dk(daemon, "volume", "rm", "okt", "badfs")


# -- export, import, df, events -----------------------------------------------------------------------

def test_export_and_import(daemon, tmp_path):
    dk(daemon, "run", "--rm", "-v", "src-vol:/d", "busybox", "sh", "-c",
       "mkdir /d/dir && echo one > /d/dir/one && ln -s dir/one /d/link && chown 7:8 /d/dir/one")
    archive = tmp_path / "vol.tar"
    cli = [sys.executable, "-m", "dockyard.cli"]
    subprocess.run([*cli, "volume", "export", "-o", str(archive), "src-vol"], env=daemon.env,
                   check=True, capture_output=True)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert {"dir", "dir/one", "link"} <= {n.strip("./") for n in names}
    res = subprocess.run([*cli, "volume", "import", "copy-vol", str(archive)], env=daemon.env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    out = dk(daemon, "run", "--rm", "-v", "copy-vol:/d", "busybox", "sh", "-c",
             "cat /d/link; stat -c %u:%g /d/dir/one").stdout
    assert out == "one\n7:8\n"
    # through the API, with the SDK's raw session
    with closing(daemon.client()) as client:
        api = client.api
        resp = api.get(api._url("/volumes/{0}/export", "copy-vol"), stream=True)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/x-tar"
        data = resp.raw.read()
        resp = api.post(api._url("/volumes/{0}/import", "api-vol"), data=data)
        assert resp.status_code == 200 and resp.json()["Name"] == "api-vol"
        resp = api.get(api._url("/volumes/{0}/export", "nosuch"))
        assert resp.status_code == 404
    assert (data_path(daemon, "api-vol") / "dir" / "one").read_text() == "one\n"
    dk(daemon, "volume", "rm", "src-vol", "copy-vol", "api-vol")


def test_system_df_counts_volumes(daemon):
    dk(daemon, "run", "--name", "df-user", "-v", "df-vol:/d", "busybox", "sh", "-c",
       "head -c 3000 /dev/zero > /d/f")
    with closing(daemon.client()) as client:
        df = client.api.df()
    (vol,) = [v for v in df["Volumes"] if v["Name"] == "df-vol"]
    assert vol["UsageData"] == {"RefCount": 1, "Size": 3000}
    out = dk(daemon, "system", "df", "-v").stdout
    assert any(line.split()[:2] == ["df-vol", "1"] for line in out.splitlines())
    dk(daemon, "rm", "df-user")
    dk(daemon, "volume", "rm", "df-vol")


def test_volume_events(daemon):
    since = str(time.time())
    dk(daemon, "run", "--rm", "-v", "ev-vol:/d", "busybox", "true")
    dk(daemon, "volume", "rm", "ev-vol")
    until = str(time.time() + 1)
    out = dk(daemon, "events", "--since", since, "--until", until, "--filter", "type=volume",
             "--format", "{{.Action}} {{.Actor.ID}}").stdout
    assert out.splitlines() == ["create ev-vol", "mount ev-vol", "unmount ev-vol",
                                "destroy ev-vol"]


# -- a volume plugin --------------------------------------------------------------------------------

class PluginProcess:
    def __init__(self, root: Path, *misbehave: str):
        self.name = f"dyv-{os.getpid()}-{secrets.token_hex(3)}"
        self.socket = PLUGIN_DIR / f"{self.name}.sock"
        self.root = root
        self.misbehave = misbehave
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> PluginProcess:
        argv = [sys.executable, "-m", "dockyard.testing.volume_plugin", "--socket",
                str(self.socket), "--root", str(self.root)]
        for m in self.misbehave:
            argv += ["--misbehave", m]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout.readline() == b"ready\n"
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __exit__(self, *exc) -> None:
        self.kill()
        if self.proc:
            self.proc.stdout.close()
        try:
            self.socket.unlink()
        except FileNotFoundError:
            pass

    def calls(self) -> list[tuple[str, dict]]:
        path = self.root / "calls.jsonl"
        return [(c["method"], c["args"]) for c in map(json.loads, path.read_text().splitlines())]


def test_plugin_serves_create_mount_unmount_remove(daemon, tmp_path):
    with PluginProcess(tmp_path / "plugin") as plugin:
        dk(daemon, "volume", "create", "-d", plugin.name, "-o", "speed=fast", "pv")
        doc = json.loads(dk(daemon, "volume", "inspect", "pv").stdout)[0]
        vol_dir = str(plugin.root / "volumes" / "pv")
        assert doc["Driver"] == plugin.name and doc["Mountpoint"] == vol_dir
        assert doc["Options"] == {"speed": "fast"} and doc["Status"] == {"mounts": 0}
        cid = dk(daemon, "run", "-d", "-v", "pv:/p", "busybox", "sh", "-c",
                 "echo remote > /p/f; sleep 300").stdout.strip()
        try:
            deadline = time.monotonic() + 10
            while not (Path(vol_dir) / "f").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (Path(vol_dir) / "f").read_text() == "remote\n"
            mounts = json.loads(dk(daemon, "inspect", "-f", "{{json .Mounts}}", cid).stdout)
            assert mounts == [{"Type": "volume", "Name": "pv", "Source": vol_dir,
                               "Destination": "/p", "Driver": plugin.name, "Mode": "z",
                               "RW": True, "Propagation": ""}]
            assert "pv" in volumes(daemon)
        finally:
            dk(daemon, "rm", "-f", cid)
        # an anonymous volume through --volume-driver, removed by --rm
        dk(daemon, "run", "--rm", "--volume-driver", plugin.name, "-v", "/anon", "busybox",
           "true")
        dk(daemon, "volume", "rm", "pv")
        calls = plugin.calls()
        methods = [m for m, _ in calls]
        assert methods[0] == "Plugin.Activate"
        assert ("VolumeDriver.Create", {"Name": "pv", "Opts": {"speed": "fast"}}) in calls
        mount = [a for m, a in calls if m == "VolumeDriver.Mount" and a["Name"] == "pv"]
        unmount = [a for m, a in calls if m == "VolumeDriver.Unmount" and a["Name"] == "pv"]
        assert mount == unmount == [{"Name": "pv", "ID": cid}]
        assert ("VolumeDriver.Remove", {"Name": "pv"}) in calls
        anon = [a["Name"] for m, a in calls if m == "VolumeDriver.Create" and a["Name"] != "pv"]
        assert len(anon) == 1 and ("VolumeDriver.Remove", {"Name": anon[0]}) in calls
        assert not os.path.exists(vol_dir)


def test_a_plugin_that_answers_garbage_or_dies(daemon, tmp_path):
    dk(daemon, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "beside")
    with PluginProcess(tmp_path / "bad", "VolumeDriver.Mount=garbage") as plugin:
        dk(daemon, "volume", "create", "-d", plugin.name, "garbled")
        res = dk(daemon, "run", "--name", "garbage-c", "-v", "beside:/a", "-v", "garbled:/b",
                 "busybox", "true", check=False)
        assert res.returncode != 0
        assert "VolumeDriver.Mount" in res.stderr and "not a JSON object" in res.stderr
        assert dk(daemon, "inspect", "-f", "{{.State.Status}}",
                  "garbage-c").stdout.strip() == "created"
        assert not mounted(data_path(daemon, "beside"))
        dk(daemon, "rm", "garbage-c")
    with PluginProcess(tmp_path / "dying") as plugin:
        dk(daemon, "volume", "create", "-d", plugin.name, "doomed")
        plugin.kill()
        start = time.monotonic()
        res = dk(daemon, "run", "--rm", "-v", "beside:/a", "-v", "doomed:/b", "busybox", "true",
                 check=False)
        assert res.returncode != 0 and "cannot connect" in res.stderr, res.stderr
        assert time.monotonic() - start < 15
        assert not mounted(data_path(daemon, "beside"))
        res = dk(daemon, "volume", "rm", "doomed", check=False)
        assert res.returncode == 1 and "cannot connect" in res.stderr
        dk(daemon, "volume", "rm", "-f", "doomed")
    with PluginProcess(tmp_path / "refusing", "VolumeDriver.Create=error") as plugin:
        res = dk(daemon, "volume", "create", "-d", plugin.name, "refused", check=False)
        assert res.returncode == 1
        assert "create refused: VolumeDriver.Create: VolumeDriver.Create refused by the test" \
            in res.stderr
    assert {"garbled", "doomed", "refused"}.isdisjoint(volumes(daemon)) or \
        "garbled" in volumes(daemon)
    dk(daemon, "volume", "rm", "-f", "garbled", "beside")
    res = dk(daemon, "volume", "create", "-d", "nosuch-plugin", "x1", check=False)
    assert res.stderr.strip() == ("Error response from daemon: create x1: error looking up "
                                  'volume plugin nosuch-plugin: plugin "nosuch-plugin" not found')


# -- the daemon restarts ----------------------------------------------------------------------------

def test_live_restore_keeps_volume_mounts_and_references(daemon):
    dk(daemon, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "lr")
    dk(daemon, "run", "-d", "--name", "lr-user", "-v", "lr:/t", "busybox", "sh", "-c",
       "echo before > /t/f; sleep 300")
    try:
        path = data_path(daemon, "lr")
        assert mounted(path)
        daemon.kill()
        daemon.start()
        assert mounted(path)
        res = dk(daemon, "volume", "rm", "lr", check=False)
        assert res.returncode == 1 and "volume is in use" in res.stderr
        assert dk(daemon, "run", "--rm", "-v", "lr:/t", "busybox", "cat",
                  "/t/f").stdout == "before\n"
        assert mounted(path)
    finally:
        dk(daemon, "rm", "-f", "lr-user")
    assert not mounted(data_path(daemon, "lr"))
    dk(daemon, "volume", "rm", "lr")


@pytest.mark.requires("loop_ext4")
def test_a_block_device_filesystem_volume(daemon, tmp_path):
    """type/device/o with a real filesystem: ext4 on a loop device, mounted on first use."""
    image = tmp_path / "ext4.img"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    try:
        dk(daemon, "volume", "create", "--opt", "type=ext4", "--opt", f"device={loop}",
           "--opt", "o=noatime", "--opt", "uid=1000", "blockvol")
        path = data_path(daemon, "blockvol")
        dk(daemon, "run", "--rm", "-v", "blockvol:/b", "busybox", "sh", "-c",
           "echo on-ext4 > /b/f; grep ' /b ' /proc/mounts | cut -d' ' -f3")
        assert not mounted(path)
        out = dk(daemon, "run", "--rm", "-v", "blockvol:/b", "busybox", "sh", "-c",
                 "cat /b/f; stat -c %u /b; grep ' /b ' /proc/mounts | cut -d' ' -f3,4").stdout
        lines = out.splitlines()
        assert lines[:2] == ["on-ext4", "1000"]
        assert lines[2].startswith("ext4 ") and "noatime" in lines[2]
        assert not mounted(path)
        dk(daemon, "volume", "rm", "blockvol")
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def test_a_failed_create_gives_its_volumes_back(daemon):
    before = volumes(daemon)
    with closing(daemon.client()) as client:
        import docker.errors

        hc = client.api.create_host_config(binds=["/anon-first"], mounts=[
            {"Type": "volume", "Source": "never", "Target": "/b",
             "VolumeOptions": {"DriverConfig": {"Name": "nosuch-driver"}}}])
        with pytest.raises(docker.errors.NotFound, match="error looking up volume plugin"):
            client.api.create_container("busybox", "true", host_config=hc, name="nocreate")
    assert volumes(daemon) == before  # the anonymous volume made for /anon-first went again
    assert dk(daemon, "ps", "-aq", "-f", "name=nocreate").stdout == ""
