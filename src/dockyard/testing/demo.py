"""`make demo`: what dockyard can do today, shown step by step with its own commands.

Builds a busybox root filesystem from Debian's busybox-static, writes a bundle with
`dockyard-runtime spec`, runs a container in the foreground, then walks one through its
lifecycle (create, start, exec, pause, resume, kill, delete). It grows as the engine grows.
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


def main() -> int:
    if os.geteuid() != 0:
        print("the demo creates namespaces and cgroups: run it as root")
        return 1
    work = Path(tempfile.mkdtemp(prefix="dockyard-demo-"))
    root = str(work / "state")
    try:
        step("a busybox root filesystem from Debian's busybox-static")
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
