"""The overlay snapshotter's mounts as data, its short layer links, and their repair."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dockyard.snapshot.base import Kind
from dockyard.snapshot.mounts import Mount, plan_mounts
from dockyard.snapshot.overlay import (INIT_LABEL, INIT_LINK, LINK_LENGTH, OverlaySnapshotter,
                                       overlay_options)

OPTS = ("index=off", "redirect_dir=off", "metacopy=off")


@pytest.fixture
def ov(tmp_path):
    s = OverlaySnapshotter(tmp_path / "ov", options=OPTS)
    yield s
    s.close()


def chain(ov: OverlaySnapshotter, n: int) -> str:
    parent = None
    for i in range(n):
        ov.prepare(f"a{i}", parent)
        ov.commit(f"L{i}", f"a{i}")
        parent = f"L{i}"
    return parent  # type: ignore[return-value]


def snap_dir(ov: OverlaySnapshotter, key: str) -> Path:
    return ov._dir(ov._meta.get(key).id)


def option(m: Mount, name: str) -> str:
    return next(o.split("=", 1)[1] for o in m.options if o.startswith(f"{name}="))


def test_active_without_parent_is_a_rw_bind(ov):
    assert ov.prepare("a") == [Mount("bind", str(snap_dir(ov, "a") / "fs"), ("rbind", "rw"))]


def test_view_without_parent_is_a_ro_bind(ov):
    assert ov.view("v") == [Mount("bind", str(snap_dir(ov, "v") / "fs"), ("rbind", "ro"))]


def test_view_of_one_layer_binds_that_layer(ov):
    top = chain(ov, 1)
    assert ov.view("v", top) == [Mount("bind", str(snap_dir(ov, "L0") / "fs"), ("rbind", "ro"))]


def test_active_on_layers_lists_short_links_newest_first(ov):
    top = chain(ov, 3)
    (m,) = ov.prepare("c", top)
    assert (m.type, m.source) == ("overlay", "overlay")
    assert m.options[:3] == OPTS
    lowers = option(m, "lowerdir").split(":")
    assert [os.path.dirname(p) for p in lowers] == [str(ov.root / "l")] * 3
    assert all(re.fullmatch(f"[A-Z2-7]{{{LINK_LENGTH}}}", os.path.basename(p)) for p in lowers)
    # each link resolves to its layer's fs, and the newest layer comes first
    assert [os.path.realpath(p) for p in lowers] == [
        str(snap_dir(ov, k) / "fs") for k in ("L2", "L1", "L0")]
    assert option(m, "upperdir") == str(snap_dir(ov, "c") / "fs")
    assert option(m, "workdir") == str(snap_dir(ov, "c") / "work")
    assert ov.mounts("c") == [m]


def test_view_of_layers_has_no_upper(ov):
    top = chain(ov, 2)
    (m,) = ov.view("v", top)
    assert not any(o.startswith(("upperdir=", "workdir=")) for o in m.options)
    assert len(option(m, "lowerdir").split(":")) == 2
    assert not (snap_dir(ov, "v") / "work").exists()


def test_127_layers_fit_one_page_once_relative(ov):
    top = chain(ov, 127)
    (m,) = ov.prepare("top", top)
    (call,) = plan_mounts([m], "/mnt", page=4096)
    assert call.cwd == str(ov.root / "l")
    lowers = option(Mount("x", "x", tuple(call.data.split(","))), "lowerdir").split(":")
    assert len(lowers) == 127 and all(len(p) == LINK_LENGTH for p in lowers)
    assert len(call.data) < 4096
    assert os.path.realpath(ov.root / "l" / lowers[-1]) == str(snap_dir(ov, "L0") / "fs")


def test_links_are_removed_with_their_layer(ov):
    ov.prepare("a")
    link = (snap_dir(ov, "a") / "link").read_text()
    assert (ov.root / "l" / link).is_symlink()
    ov.remove("a")
    assert os.listdir(ov.root / "l") == [INIT_LINK]  # the shared init layer's alone


def test_open_repairs_links(ov):
    top = chain(ov, 2)
    lost = (snap_dir(ov, "L0") / "link").read_text()
    (ov.root / "l" / lost).unlink()
    os.symlink("../snapshots/99/fs", ov.root / "l" / ("Z" * LINK_LENGTH))
    ov.close()
    again = OverlaySnapshotter(ov.root, options=OPTS)
    assert sorted(os.listdir(ov.root / "l")) == sorted(
        [INIT_LINK, *((snap_dir(again, k) / "link").read_text() for k in ("L0", "L1"))])
    assert os.path.realpath(ov.root / "l" / lost) == str(snap_dir(again, "L0") / "fs")
    assert again.stat(top).kind is Kind.COMMITTED
    again.close()


def test_overlay_options_follow_the_kernel_parameters(tmp_path):
    assert overlay_options(tmp_path) == ()
    (tmp_path / "index").write_text("N")
    (tmp_path / "metacopy").write_text("N")
    assert overlay_options(tmp_path) == ("index=off", "metacopy=off")


def test_a_labelled_snapshot_gets_the_shared_init_layer_on_top(ov):
    top = chain(ov, 2)
    plain = ov.prepare("plain", top)
    boxed = ov.prepare("boxed", top, labels={INIT_LABEL: "true"})
    lower = lambda mounts: next(o for o in mounts[0].options  # noqa: E731
                                if o.startswith("lowerdir=")).split("=", 1)[1].split(":")
    assert lower(boxed) == [str(ov.root / "l" / INIT_LINK), *lower(plain)]
    init = Path(os.path.realpath(ov.root / "l" / INIT_LINK))
    assert (init / ".dockerenv").is_file() and (init / ".dockerenv").stat().st_size == 0
    assert os.readlink(init / "etc" / "mtab") == "/proc/mounts"
    assert all((init / f).is_file() for f in ("etc/hosts", "etc/hostname", "etc/resolv.conf"))
    assert all((init / d).is_dir() for d in ("proc", "sys", "dev/pts", "dev/shm"))
    alone = ov.prepare("alone", labels={INIT_LABEL: "true"})  # no image layer: still overlay
    assert alone[0].type == "overlay" and lower(alone) == [str(ov.root / "l" / INIT_LINK)]
    assert ov.mounts("boxed") == boxed  # from the record's label, at every mount
