"""A container's mount points as registerMountPoints makes them: what -v, --mount, the image's
VOLUMEs and --volumes-from give, in Docker's MountPoint terms (Mode, copy-up, names)."""

from __future__ import annotations

import pytest

from dockyard.engine.hostinfo import DaemonOptions
from dockyard.engine.specmounts import (MountPoint, collect_points, inherit_point,
                                        parse_bind, parse_volumes_from)
from dockyard.errdefs import InvalidArgument


def by_dest(points):
    return {p.destination: p for p in points}


def test_bind_and_volume_modes():
    named = parse_bind("data:/d")
    assert (named.type, named.volume, named.mode, named.copy_data, named.named) == \
        ("volume", "data", "z", True, True)
    assert named.propagation == ""
    ro = parse_bind("data:/d:ro,nocopy")
    assert (ro.mode, ro.writable, ro.copy_data) == ("ro,nocopy", False, False)
    anon = parse_bind("/d")
    assert (anon.volume, anon.mode, anon.named) == ("", "", False)
    bind = parse_bind("/srv:/s:ro,rslave")
    assert (bind.type, bind.mode, bind.propagation, bind.create_source) == \
        ("bind", "ro,rslave", "rslave", True)


def test_collect_points_orders_and_overrides(tmp_path):
    cfg = {"Volumes": {"/img": {}, "/covered": {}, "/t": {}}}
    hc = {"Binds": ["named:/covered", "/srv:/b"], "VolumeDriver": "drv",
          "Mounts": [{"Type": "volume", "Target": "/m", "Source": "mv",
                      "VolumeOptions": {"NoCopy": True, "Labels": {"k": "v"},
                                        "DriverConfig": {"Name": "other", "Options": {"o": "1"}}}},
                     {"Type": "tmpfs", "Target": "/tm"}],
          "Tmpfs": {"/t": ""}, "VolumesFrom": ["x"]}
    inherited = [MountPoint("/b", "bind", "/from-other"), MountPoint("/only", "bind", "/o")]
    points, tmpfs = collect_points(cfg, hc, DaemonOptions(), inherited)
    p = by_dest(points)
    assert set(p) == {"/covered", "/b", "/m", "/tm", "/img", "/only"}
    assert p["/b"].source == "/srv"  # a bind replaces what --volumes-from brought
    assert p["/covered"].driver == "drv" and p["/covered"].volume == "named"
    assert (p["/img"].volume, p["/img"].copy_data, p["/img"].driver) == ("", True, "drv")
    m = p["/m"]
    assert (m.driver, m.driver_opts, m.labels, m.copy_data, m.mode) == \
        ("other", {"o": "1"}, {"k": "v"}, False, "z")
    assert p["/tm"].type == "tmpfs" and [t.destination for t in tmpfs] == ["/t"]


def test_duplicates_and_volumes_from_specs():
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /x"):
        collect_points({}, {"Binds": ["a1:/x", "/srv:/x"]}, DaemonOptions())
    with pytest.raises(InvalidArgument, match="need the engine"):
        collect_points({}, {"VolumesFrom": ["c"]}, DaemonOptions())
    assert parse_volumes_from("c") == ("c", "rw")
    assert parse_volumes_from("c:ro") == ("c", "ro")
    for bad in ("c:rshared", "c:nocopy", "c:bogus"):
        with pytest.raises(InvalidArgument, match="invalid mode"):
            parse_volumes_from(bad)
    with pytest.raises(InvalidArgument, match="cannot be an empty string"):
        parse_volumes_from("")
    point = parse_bind("v1:/d")
    copy = inherit_point(point, "ro")
    assert (copy.writable, copy.copy_data, copy.volume) == (False, False, "v1")
    assert point.writable  # the original is untouched


def test_records_round_trip():
    point = parse_bind("v1:/d:ro")
    assert MountPoint.from_record(point.to_record()) == point
    assert MountPoint.from_record({**point.to_record(), "future_field": 1}) == point
