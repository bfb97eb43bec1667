"""`make demo`: what dockyard can do today, shown step by step.

Part 1, the engine: starts a dockyard daemon on a private socket and drives it with the real
docker CLI: import a busybox image, run it detached, ps, stop, start, pause, unpause,
restart, exec, logs, commit, save, rm, rmi, load. Part 2, the runtime alone: a bundle written by
`dockyard-runtime spec`, run in the foreground and walked through its lifecycle. It grows as
the engine grows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dockyard.testing.rootfs import make_busybox_rootfs

RUNTIME = str(Path(sys.executable).with_name("dockyard-runtime"))


def step(title: str) -> None:
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def rt(root: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [RUNTIME, "--root", root, *args]
    print("$ dockyard-runtime " + " ".join(args), flush=True)
    # stdio is inherited, not piped: a created container keeps the stdio it was given
    proc = subprocess.run(cmd, timeout=60)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo failed: {' '.join(args)} exited {proc.returncode}")
    return proc


def write_config(bundle: Path, args: list[str]) -> None:
    path = bundle / "config.json"
    spec = json.loads(path.read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"]["readonly"] = False
    spec["linux"]["resources"] = {**spec["linux"].get("resources", {}),
                                  "memory": {"limit": 64 << 20}, "pids": {"limit": 64}}
    path.write_text(json.dumps(spec, indent=2))


def docker(env: dict, *args: str) -> None:
    print("$ docker " + " ".join(args), flush=True)
    proc = subprocess.run(["docker", *args], env=env, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"demo failed: docker {' '.join(args)} exited {proc.returncode}")


def engine_demo(work: Path) -> None:
    import tarfile

    from dockyard.testing.daemon import DockyardDaemon

    step("the engine: a dockyard daemon, driven by the real docker CLI")
    rootfs = make_busybox_rootfs(work / "image-rootfs")
    tar_path = work / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    registry = f"127.0.0.1:{_free_port()}"
    with DockyardDaemon(extra_args=["--registry-listen", registry]) as daemon:
        env = daemon.env
        print(f"(export DOCKER_HOST={daemon.docker_host} to use it from another shell)")
        docker(env, "version", "--format", "client {{.Client.Version}}, server {{.Server.Version}} "
               "(API {{.Server.APIVersion}})")
        docker(env, "import", "-c", 'CMD ["sh"]', str(tar_path), "busybox:latest")
        docker(env, "images")
        docker(env, "run", "-d", "--name", "web", "busybox", "sh", "-c",
               "echo serving; while true; do sleep 1; done")
        docker(env, "ps")
        page_demo(env)
        docker(env, "stop", "-t", "1", "web")
        docker(env, "start", "web")
        docker(env, "pause", "web")
        docker(env, "ps", "--format", "{{.Names}}: {{.Status}}")
        docker(env, "unpause", "web")
        docker(env, "restart", "-t", "1", "web")
        docker(env, "exec", "web", "sh", "-c", "echo 'a page changed by exec' > /page; cat /page")
        docker(env, "logs", "web")
        docker(env, "commit", "-c", 'CMD ["cat", "/page"]', "web", "web:v2")
        docker(env, "run", "--rm", "web:v2")
        docker(env, "save", "-o", str(work / "web.tar"), "web:v2")
        docker(env, "rm", "-f", "web")
        docker(env, "rmi", "web:v2")
        docker(env, "load", "-i", str(work / "web.tar"))
        docker(env, "images")
        docker(env, "run", "--rm", "web:v2")
        step("a named volume outlives its containers")
        docker(env, "volume", "create", "notes")
        docker(env, "run", "--rm", "-v", "notes:/notes", "busybox", "sh", "-c",
               "echo 'written by the first container' > /notes/a")
        docker(env, "run", "--rm", "-v", "notes:/notes:ro", "busybox", "cat", "/notes/a")
        docker(env, "volume", "rm", "notes")
        step(f"push to a registry (the daemon serves one on {registry}), pull it back")
        docker(env, "tag", "web:v2", f"{registry}/demo/web:v2")
        docker(env, "push", f"{registry}/demo/web:v2")
        docker(env, "rmi", "web:v2", f"{registry}/demo/web:v2")
        docker(env, "pull", f"{registry}/demo/web:v2")
        docker(env, "run", "--rm", f"{registry}/demo/web:v2")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page_demo(env: dict[str, str]) -> None:
    """A page served from a container on a published port, opened from the host."""
    import time
    import urllib.request

    docker(env, "run", "-d", "--name", "page", "-p", "127.0.0.1:8080:80", "busybox", "sh", "-c",
           "mkdir -p /www && echo 'hello from a container' > /www/index.html && "
           "exec httpd -f -p 80 -h /www")
    docker(env, "port", "page")
    for _ in range(50):
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=2) as resp:
                print(f"GET http://127.0.0.1:8080/ -> {resp.read().decode().strip()}")
            break
        except OSError:
            time.sleep(0.1)
    docker(env, "rm", "-f", "page")


def main() -> int:
    if os.geteuid() != 0:
        print("the demo creates namespaces and cgroups: run it as root")
        return 1
    work = Path(tempfile.mkdtemp(prefix="dockyard-demo-"))
    root = str(work / "state")
    try:
        engine_demo(work)
        step("the runtime alone: a busybox root filesystem from Debian's busybox-static")
        bundle = work / "bundle"
        make_busybox_rootfs(bundle / "rootfs")
        print(f"{bundle}/rootfs: {sum(1 for _ in (bundle / 'rootfs').rglob('*'))} entries")

        step("an OCI bundle: `dockyard-runtime spec` writes the default config.json")
        subprocess.run([RUNTIME, "spec", "--bundle", str(bundle)], check=True)
        probe = ("echo \"hello from $(hostname), I am pid $$\"; echo 'processes I can see:'; ps; "
                 "echo 'my limits:'; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
                 "|| cat /sys/fs/cgroup/memory.max; grep -E '^Cap(Eff|Bnd)' /proc/self/status")
        write_config(bundle, ["sh", "-c", probe])

        step("run a container in the foreground")
        rt(root, "run", "--bundle", str(bundle), "demo-run")

        step("the lifecycle: create, start, exec, pause, resume, kill, delete")
        write_config(bundle, ["sleep", "300"])
        rt(root, "create", "--bundle", str(bundle), "demo")
        rt(root, "list")
        rt(root, "start", "demo")
        rt(root, "exec", "demo", "sh", "-c", "echo exec sees: $(ps | wc -l) lines of ps; hostname")
        rt(root, "pause", "demo")
        rt(root, "list")
        rt(root, "resume", "demo")
        rt(root, "ps", "demo")
        rt(root, "kill", "demo", "KILL")
        rt(root, "delete", "demo")
        rt(root, "list")
        step("done")
        return 0
    finally:
        for cid in ("demo", "demo-run"):
            subprocess.run([RUNTIME, "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
