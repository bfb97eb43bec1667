"""Volumes and Mounts in Docker's shapes: the same requests to the reference dockerd 20.10 and
to dockyard, through the real docker CLI, compared field by field (data roots, anonymous names
and container ids normalised; dockyard's anonymous volumes carry Docker 23's label, which 20.10
does not have)."""

from __future__ import annotations

import json
import re
import tarfile

import pytest

from dockyard.testing.daemon import DockyardDaemon
from dockyard.testing.refdockerd import BUSYBOX_TAG, RefDockerd
from dockyard.testing.rootfs import make_busybox_rootfs

pytestmark = pytest.mark.requires("dockerd", "docker_cli", "busybox")

ANON = re.compile(r"\b[0-9a-f]{64}\b")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("volpair")
    rootfs = make_busybox_rootfs(base / "rootfs")
    (rootfs / "data").mkdir()
    (rootfs / "data" / "f").write_text("x\n")
    tar_path = base / "img.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    bind_src = base / "bindsrc"
    bind_src.mkdir()
    with RefDockerd(dockyard_runtime=None, log_path=base / "dockerd.log") as ref, \
            DockyardDaemon(log_path=base / "dockyard.log") as ours:
        for d in (ref, ours):
            d.docker("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /data", str(tar_path),
                     BUSYBOX_TAG)
        yield ref, ours, bind_src


def norm(text: str, d) -> str:
    return ANON.sub("<id>", text.replace(str(d.data_root), "<root>"))


def both(pair, *args):
    ref, ours, _ = pair
    r, o = ref.docker(*args, check=False), ours.docker(*args, check=False)
    return (r.returncode, norm(r.stdout, ref), norm(r.stderr, ref)), \
        (o.returncode, norm(o.stdout, ours), norm(o.stderr, ours))


def test_volume_documents(pair):
    for args in (("volume", "create", "plain"),
                 ("volume", "create", "--label", "a=b", "-o", "type=tmpfs", "-o", "device=tmpfs",
                  "-o", "o=size=1m", "opts")):
        theirs, ours = both(pair, *args)
        assert ours == theirs
    theirs, ours = both(pair, "volume", "inspect", "plain", "opts")
    strip = lambda t: re.sub(r'"CreatedAt": "[^"]+"', '"CreatedAt": "T"', t[1])  # noqa: E731
    assert strip(ours) == strip(theirs)
    assert both(pair, "volume", "ls")[0] == both(pair, "volume", "ls")[1]
    for args in (("volume", "create", "a/b"), ("volume", "create", "x"),
                 ("volume", "create", "-o", "nope=1", "v3"),
                 ("volume", "create", "-o", "type=tmpfs", "v3"),
                 ("volume", "rm", "nosuch"), ("volume", "rm", "-f", "nosuch"),
                 ("volume", "inspect", "nosuch")):
        theirs, ours = both(pair, *args)
        assert ours == theirs, args


def test_mounts_in_inspect(pair):
    ref, ours, src = pair
    run = ("create", "--name", "shapes", "-v", "named:/named", "-v", "/anon",
           "-v", f"{src}:/bind:ro", "-v", "rovol:/rovol:ro,nocopy",
           "--mount", "type=volume,src=mvol,dst=/mvol",
           "--mount", f"type=bind,src={src},dst=/mbind,readonly",
           "--mount", "type=tmpfs,dst=/tmpfs,tmpfs-size=1m", "--tmpfs", "/tt", BUSYBOX_TAG, "true")
    for d in (ref, ours):
        d.docker(*run)
    theirs, mine = both(pair, "inspect", "-f", "{{json .Mounts}}", "shapes")
    by_dest = lambda t: sorted(json.loads(t[1]), key=lambda m: m["Destination"])  # noqa: E731
    assert by_dest(mine) == by_dest(theirs)
    theirs, mine = both(pair, "ps", "-a", "--filter", "name=shapes", "--format",
                        "{{.LocalVolumes}}")
    assert mine == theirs
    theirs, mine = both(pair, "volume", "rm", "named")
    assert (mine[0], mine[2].split(" - ")[0]) == (theirs[0], theirs[2].split(" - ")[0])
    assert mine[0] == 1 and "volume is in use" in mine[2]
    for d in (ref, ours):
        d.docker("rm", "-v", "shapes")
    theirs, mine = both(pair, "volume", "ls", "-q")
    assert mine == theirs  # the anonymous ones went, the named ones stayed
