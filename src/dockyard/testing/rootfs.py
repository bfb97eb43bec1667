"""Root filesystems for tests and the demo, made from Debian's busybox-static (no network).

Owns building a minimal busybox root filesystem and an OCI bundle around it. Used by the test
fixtures and by `make demo`; nothing here is imported by the product itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True)
    return [line for line in out.stdout.split() if line]


def make_busybox_rootfs(dest: Path, busybox: Path = BUSYBOX) -> Path:
    """Fill ``dest`` with busybox, a link per applet, and the usual top-level directories."""
    if not busybox.exists():
        raise FileNotFoundError(f"{busybox} not found: install Debian's busybox-static")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
              "var/tmp", "run", "home"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(busybox, dest / "bin/busybox")
    for applet in busybox_applets(busybox):
        link = dest / applet
        if applet == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(dest / "bin/busybox", link.parent))
    (dest / "etc/passwd").write_text(_PASSWD)
    (dest / "etc/group").write_text(_GROUP)
    (dest / "etc/hostname").write_text("busybox\n")
    return dest


def make_bundle(bundle: Path, rootfs_source: Path, args: list[str], **spec_changes: object) -> Path:
    """A bundle whose rootfs is a copy of ``rootfs_source`` and whose config runs ``args``."""
    from dockyard.spec.runtime_defaults import default_spec

    bundle.mkdir(parents=True, exist_ok=True)
    rootfs = bundle / "rootfs"
    if not rootfs.exists():
        shutil.copytree(rootfs_source, rootfs, symlinks=True)
    spec = default_spec().to_json()
    spec["process"]["args"] = list(args)
    spec["process"]["terminal"] = False
    spec.update(spec_changes)
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle


def busybox_tar(workdir: Path) -> bytes:
    """A `docker import`-able tar of a busybox root filesystem (built under ``workdir``)."""
    import io
    import tarfile

    rootfs = make_busybox_rootfs(Path(workdir) / "busybox-rootfs")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    shutil.rmtree(rootfs)
    return buf.getvalue()


def import_busybox(daemon, tag: str, workdir: Path) -> str:
    """``docker import`` a busybox image as ``tag`` into ``daemon`` (anything with a
    ``docker(*args, input=)`` method); returns the image id."""
    daemon.docker("import", "--change", 'CMD ["sh"]', "-", tag, input=busybox_tar(workdir))
    return daemon.docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
