"""The image store and service against Docker's rules: names, rmi, prune, filters, consistency.

No root and no unpacking: images are built from parts (dockyard.testing.images) into a
private data root with the native snapshotter. Expected messages are moby's
(daemon/images/image_delete.go, image.go, api/types/filters) word for word.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from dockyard.errdefs import Conflict, InvalidArgument, NotFound, System
from dockyard.image import filters as flt
from dockyard.image.service import ContainerUse, ImageService
from dockyard.image.store import SCHEMA_VERSION, short_id
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import Descriptor, canonical_json, chain_ids
from dockyard.spec.platform import Platform, default_platform
from dockyard.testing.images import build_image, build_index, ingest_image, tar_layer

BASE = tar_layer({"etc/": None, "etc/os-release": "base\n", "bin/": None, "bin/sh": "#!\n"})
APP = tar_layer({"app/": None, "app/run": "run\n"})
OTHER = tar_layer({"other/": None, "other/x": "x\n"})


@pytest.fixture
def svc(tmp_path):
    s = ImageService(tmp_path / "root", snapshotter="native")
    yield s
    s.close()


def make(svc, layers=(BASE,), names=(), created="2024-01-01T00:00:00Z", **kw):
    config = {"created": created, **kw.pop("config", {})}
    return build_image(svc, list(layers), config, names, **kw)


def used_by(mapping):
    return lambda image_id: mapping.get(image_id, [])


def layers(img, below=0):
    """The records of the image's released layers (never unpacked here), top down, as dockerd
    lists them; ``below``: how many of its bottom layers stay (another image uses them)."""
    chains = [str(c) for c in chain_ids(list(img.diff_ids))][below:]
    return [{"Deleted": c} for c in reversed(chains)]


# -- identity and lookup -------------------------------------------------------------------------

def test_image_id_is_the_config_digest_and_names_are_normalized(svc):
    img = make(svc, names=["busybox", "example.com/team/app:1.0"])
    raw = svc.content.read(img.manifest.digest)
    assert img.id == Digest.from_bytes(img.config_raw)
    assert img.id in raw.decode()  # the manifest names that config
    assert img.names == ["docker.io/library/busybox:latest", "example.com/team/app:1.0"]
    assert img.digests == []


@pytest.mark.parametrize("how", ["full", "hex", "short", "prefix1", "name", "name:tag",
                                 "canonical", "digest-ref"])
def test_get_accepts_every_form_docker_does(svc, how):
    img = make(svc, names=["busybox:1.36"], digest_names=True)
    form = {
        "full": str(img.id), "hex": img.id.encoded, "short": img.short_id,
        "prefix1": img.id.encoded[:1], "name": "busybox:1.36", "name:tag": "library/busybox:1.36",
        "canonical": "docker.io/library/busybox:1.36",
        "digest-ref": f"busybox@{img.target.digest}",
    }[how]
    assert svc.get(form).id == img.id


def test_get_not_found_messages(svc):
    img = make(svc, names=["busybox"])
    with pytest.raises(NotFound, match=r"^No such image: nope:latest$"):
        svc.get("nope")
    with pytest.raises(NotFound, match=r"^No such image: busybox:2$"):
        svc.get("busybox:2")
    missing = "sha256:" + "0" * 64
    with pytest.raises(NotFound, match=rf"^No such image: {missing}$"):
        svc.get(missing)
    with pytest.raises(NotFound, match=r"^No such image: sha256:0000$"):
        svc.get("sha256:0000")
    assert svc.get(f"sha256:{img.id.encoded[:6]}").id == img.id


def test_ambiguous_prefix_is_not_found(svc):
    a, b = make(svc, [BASE]), make(svc, [APP])
    common = 0
    while a.id.encoded[common] == b.id.encoded[common]:
        common += 1
    if common:
        with pytest.raises(NotFound):
            svc.get(a.id.encoded[:common])
    assert svc.get(a.id.encoded[:common + 1]).id == a.id


def test_invalid_reference_is_invalid_argument(svc):
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        svc.get("BusyBox")


# -- register -------------------------------------------------------------------------------------

def manifest_json(svc, target):
    return json.loads(svc.content.read(target.digest))


def test_register_refuses_missing_layers_and_records_nothing(svc):
    target = ingest_image(svc, [BASE, APP])
    layer = manifest_json(svc, target)["layers"][1]["digest"]
    svc.content.delete(layer)
    with pytest.raises(NotFound, match=layer):
        svc.register(target, ["app"])
    assert svc.images() == []
    with pytest.raises(NotFound):
        svc.get("app")


def test_register_refuses_missing_manifest_or_config(svc):
    target = ingest_image(svc, [BASE])
    svc.content.delete(manifest_json(svc, target)["config"]["digest"])
    with pytest.raises(NotFound):
        svc.register(target, ["x"])
    absent = Descriptor.of(mt.OCI_MANIFEST, b'{"schemaVersion":2}')
    with pytest.raises(NotFound):
        svc.register(absent, ["x"])
    assert svc.images() == []


def test_register_rejects_layer_count_mismatch(svc):
    target = ingest_image(svc, [BASE])
    config = canonical_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}})
    svc.content.ingest_bytes(config)
    manifest = manifest_json(svc, target)
    manifest["config"] = Descriptor.of(mt.OCI_CONFIG, config)
    raw = canonical_json(manifest)
    svc.content.ingest_bytes(raw)
    with pytest.raises(InvalidArgument, match="1 layers but the config lists 0"):
        svc.register(Descriptor.of(mt.OCI_MANIFEST, raw))
    assert svc.images() == []


def test_register_index_picks_this_platform_and_keeps_the_index_digest(svc):
    here = default_platform()
    other = Platform(architecture="s390x", os="linux")
    mine = ingest_image(svc, [BASE])
    theirs = ingest_image(svc, [APP], platform=other)
    img = build_index(svc, [theirs.replace(platform=other), mine.replace(platform=here)],
                      ["busybox:multi"], digest_names=True)
    assert img.manifest.digest == mine.digest
    assert mt.is_index(img.target.media_type)
    assert img.digests == [f"docker.io/library/busybox@{img.target.digest}"]
    assert svc.get(f"busybox@{img.target.digest}").id == img.id


def test_registering_a_platform_manifest_again_keeps_its_index(svc):
    mine = ingest_image(svc, [BASE])
    img = build_index(svc, [mine.replace(platform=default_platform())], ["multi"])
    again = svc.register(mine, ["single"])
    assert again.id == img.id and again.target == img.target
    svc.gc()
    assert svc.content.exists(img.target.digest)


def test_registering_again_is_idempotent(svc):
    a = make(svc, names=["a"])
    b = make(svc, names=["a", "b"])
    assert a.id == b.id
    assert [i.id for i in svc.images()] == [a.id]
    assert svc.get("a").names == ["docker.io/library/a:latest", "docker.io/library/b:latest"]


# -- tag ------------------------------------------------------------------------------------------

def test_tag_adds_a_name_and_sets_last_tag_time(svc):
    img = make(svc, names=["busybox"])
    assert img.last_tag_time is None
    svc.tag("busybox", "localhost:5000/bb:v1")
    svc.tag(img.short_id, "bb", tag="v2")
    again = svc.get("bb:v2")
    assert again.id == img.id
    assert again.names == ["docker.io/library/bb:v2", "docker.io/library/busybox:latest",
                           "localhost:5000/bb:v1"]
    assert again.last_tag_time and again.last_tag_time.endswith("Z")


def test_moving_a_tag_leaves_the_old_image_dangling(svc):
    old = make(svc, [BASE], names=["app"])
    new = make(svc, [BASE, APP], names=["app"])
    assert svc.get("app").id == new.id
    dangling = svc.list(filters={"dangling": ["true"]})
    assert [i.id for i in dangling] == [old.id]
    assert svc.get(old.id).names == []


def test_tag_refuses_digests_and_the_digest_algorithm_as_a_name(svc):
    make(svc, names=["busybox"])
    with pytest.raises(InvalidArgument, match="cannot import digest reference"):
        svc.tag("busybox", "busybox@sha256:" + "a" * 64)
    with pytest.raises(InvalidArgument, match="ambiguous tag using digest algorithm"):
        svc.tag("busybox", "sha256:latest")
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        svc.tag("nope", "x")


def test_tag_events(tmp_path):
    events = []
    s = ImageService(tmp_path / "r", snapshotter="native", on_event=lambda *e: events.append(e))
    img = make(s, names=["busybox"])
    s.tag("busybox", "bb")
    s.remove("bb")
    s.remove("busybox")
    assert [e[0] for e in events] == ["tag", "untag", "untag", "delete"]
    assert events[0] == ("tag", img.id, "bb:latest")
    s.close()


# -- rmi ------------------------------------------------------------------------------------------

def test_rmi_untags_one_of_two_tags(svc):
    img = make(svc, names=["busybox", "busybox:1"])
    assert svc.remove("busybox") == [{"Untagged": "busybox:latest"}]
    assert svc.get(img.id).names == ["docker.io/library/busybox:1"]


def test_rmi_last_tag_deletes_the_image(svc):
    img = make(svc, names=["busybox"])
    assert svc.remove("busybox") == [{"Untagged": "busybox:latest"}, {"Deleted": str(img.id)},
                                     *layers(img)]
    assert svc.images() == []


def test_rmi_by_id_with_two_repositories_needs_force(svc):
    img = make(svc, names=["busybox", "alpine"])
    message = (f"conflict: unable to delete {img.short_id} (must be forced) - "
               "image is referenced in multiple repositories")
    with pytest.raises(Conflict) as err:
        svc.remove(img.short_id)
    assert str(err.value) == message
    assert svc.get(img.id).names  # nothing changed
    assert svc.remove(img.short_id, force=True) == [
        {"Untagged": "alpine:latest"}, {"Untagged": "busybox:latest"}, {"Deleted": str(img.id)},
        *layers(img)]


def test_rmi_by_id_with_two_tags_of_one_repository_also_needs_force(svc):
    img = make(svc, names=["busybox:1", "busybox:2"])
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        svc.remove(str(img.id))


def test_rmi_by_id_with_one_tag_and_its_digest_untags_both(svc):
    img = make(svc, names=["busybox"], digest_names=True)
    assert svc.remove(img.id.encoded[:4]) == [  # sorted as strings: ":" before "@"
        {"Untagged": "busybox:latest"}, {"Untagged": f"busybox@{img.target.digest}"},
        {"Deleted": str(img.id)}, *layers(img)]


def test_rmi_last_tag_of_a_repository_drops_its_digests(svc):
    img = make(svc, names=["busybox", "mirror/bb"], digest_names=True)
    records = svc.remove("busybox")
    assert records == [{"Untagged": "busybox:latest"},
                       {"Untagged": f"busybox@{img.target.digest}"}]
    assert svc.get(img.id).digests == [f"docker.io/mirror/bb@{img.target.digest}"]


def test_rmi_by_digest_reference(svc):
    img = make(svc, names=["busybox"], digest_names=True)
    ref = f"busybox@{img.target.digest}"
    assert svc.remove(ref) == [{"Untagged": ref}]
    assert svc.get("busybox").digests == []
    assert svc.remove("busybox") == [{"Untagged": "busybox:latest"}, {"Deleted": str(img.id)},
                                     *layers(img)]


def test_rmi_dangling_by_id(svc):
    old = make(svc, [BASE], names=["app"])
    make(svc, [BASE, APP], names=["app"])
    assert svc.remove(old.short_id) == [{"Deleted": str(old.id)}]


def test_rmi_unknown(svc):
    with pytest.raises(NotFound, match="No such image: ghost:latest"):
        svc.remove("ghost")


def test_rmi_by_name_while_a_container_uses_the_image(svc):
    img = make(svc, names=["busybox"])
    ctr = "c" * 64
    in_use = used_by({str(img.id): [ContainerUse(ctr, running=False)]})
    with pytest.raises(Conflict) as err:
        svc.remove("busybox", in_use=in_use)
    assert str(err.value) == (
        'conflict: unable to remove repository reference "busybox" (must force) - container '
        f"{'c' * 12} is using its referenced image {img.short_id}")
    # forced: a stopped container is a soft conflict, so the image goes too (as `rmi -f`)
    assert svc.remove("busybox", force=True, in_use=in_use) == [
        {"Untagged": "busybox:latest"}, {"Deleted": str(img.id)}]


def test_rmi_forced_by_name_with_a_running_container_only_untags(svc):
    img = make(svc, names=["busybox"])
    in_use = used_by({str(img.id): [ContainerUse("c" * 64, running=True)]})
    # the delete after the untag is quiet: the running container's hard conflict just stops it
    assert svc.remove("busybox", force=True, in_use=in_use) == [{"Untagged": "busybox:latest"}]
    assert svc.get(img.id).names == []


def test_rmi_by_name_with_other_tags_ignores_containers(svc):
    img = make(svc, names=["busybox", "busybox:1"])
    in_use = used_by({str(img.id): [ContainerUse("d" * 64, running=True)]})
    assert svc.remove("busybox:1", in_use=in_use) == [{"Untagged": "busybox:1"}]


def test_rmi_by_id_with_a_running_container_cannot_be_forced(svc):
    img = make(svc, names=["busybox"])
    in_use = used_by({str(img.id): [ContainerUse("e" * 64, running=True)]})
    message = (f"conflict: unable to delete {img.short_id} (cannot be forced) - "
               f"image is being used by running container {'e' * 12}")
    for force in (False, True):
        with pytest.raises(Conflict) as err:
            svc.remove(img.short_id, force=force, in_use=in_use)
        assert str(err.value) == message
    assert svc.get("busybox").id == img.id


def test_rmi_by_id_with_a_stopped_container_must_be_forced(svc):
    img = make(svc, names=["busybox"])
    in_use = used_by({str(img.id): ["f" * 64]})  # a bare id: a stopped container
    with pytest.raises(Conflict) as err:
        svc.remove(img.short_id, in_use=in_use)
    assert str(err.value) == (f"conflict: unable to delete {img.short_id} (must be forced) - "
                              f"image is being used by stopped container {'f' * 12}")
    assert svc.remove(img.short_id, force=True, in_use=in_use) == [
        {"Untagged": "busybox:latest"}, {"Deleted": str(img.id)}]


def test_rmi_dangling_image_used_by_stopped_container(svc):
    img = make(svc)
    in_use = used_by({str(img.id): [ContainerUse("a" * 64)]})
    with pytest.raises(Conflict, match="must be forced"):
        svc.remove(img.short_id, in_use=in_use)


def test_rmi_parent_with_child_is_a_hard_conflict_and_children_prune_parents(svc):
    parent = make(svc, [BASE])
    child = make(svc, [BASE, APP], names=["app"], parent=parent.short_id)
    assert svc.get("app").parent == parent.id
    with pytest.raises(Conflict) as err:
        svc.remove(parent.short_id, force=True)
    assert str(err.value) == (f"conflict: unable to delete {parent.short_id} (cannot be forced) - "
                              "image has dependent child images")
    assert svc.remove("app") == [{"Untagged": "app:latest"}, {"Deleted": str(child.id)},
                                 *layers(child, below=1), {"Deleted": str(parent.id)},
                                 *layers(parent)]


def test_rmi_noprune_keeps_the_parent(svc):
    parent = make(svc, [BASE])
    make(svc, [BASE, APP], names=["app"], parent=parent.short_id)
    svc.remove("app", prune_parents=False)
    assert svc.get(parent.id).id == parent.id


def test_rmi_does_not_prune_a_tagged_parent(svc):
    parent = make(svc, [BASE], names=["base"])
    child = make(svc, [BASE, APP], names=["app"], parent="base")
    records = svc.remove("app")
    assert records == [{"Untagged": "app:latest"}, {"Deleted": str(child.id)},
                       *layers(child, below=1)]
    assert svc.get("base").id == parent.id


def test_rmi_lists_every_layer_it_releases_unpacked_or_not(svc):
    """As dockerd 20.10: after the image, each layer no other image uses, top down (here none
    was ever unpacked: no snapshot exists, and the layers are released all the same)."""
    shared = make(svc, [BASE, APP], names=["shared"])
    img = make(svc, [BASE, APP, OTHER], names=["three"])
    b1, b2, b3 = [str(c) for c in chain_ids(list(img.diff_ids))]
    assert svc.remove("three") == [{"Untagged": "three:latest"}, {"Deleted": str(img.id)},
                                   {"Deleted": b3}]
    assert svc.remove("shared") == [{"Untagged": "shared:latest"}, {"Deleted": str(shared.id)},
                                    {"Deleted": b2}, {"Deleted": b1}]


def test_rmi_releases_a_layer_under_one_a_deleted_image_left_to_its_container(svc):
    """``rmi -f`` of a child a stopped container uses releases no layer (the container holds
    them); once the container is gone, ``rmi`` of the parent releases the parent's layer too,
    as dockerd's does (it released the child's layer silently with the container)."""
    base = make(svc, [BASE], names=["base"])
    child = make(svc, [BASE, APP], names=["child"], parent="base")
    c1, c2 = [str(c) for c in chain_ids(list(child.diff_ids))]
    for chain, parent in ((c1, None), (c2, c1)):  # as an unpack leaves them
        svc.snapshots.prepare("extract-" + chain, parent)
        svc.snapshots.commit(chain, "extract-" + chain)
    svc.snapshots.prepare("container", c2)
    in_use = used_by({str(child.id): ["f" * 64]})
    assert svc.remove("child", force=True, in_use=in_use) == [
        {"Untagged": "child:latest"}, {"Deleted": str(child.id)}]
    assert svc.remove("base", prune_parents=False) == [  # still held through the container
        {"Untagged": "base:latest"}, {"Deleted": str(base.id)}]
    assert {i.key for i in svc.snapshots.walk()} == {c1, c2, "container"}
    svc.snapshots.remove("container")
    again = make(svc, [BASE], names=["base"], created="2024-05-01T00:00:00Z")
    assert svc.remove("base") == [{"Untagged": "base:latest"}, {"Deleted": str(again.id)},
                                  {"Deleted": c1}]
    assert list(svc.snapshots.walk()) == []


def test_rmi_collects_blobs_no_image_references(svc):
    a = make(svc, [BASE], names=["a"])
    b = make(svc, [BASE, APP], names=["b"])
    before = set(svc.content.walk())
    svc.remove("b")
    after = set(svc.content.walk())
    gone = before - after
    assert b.id in gone and b.manifest.digest in gone
    assert a.id in after and a.manifest.digest in after
    assert len(gone) == 3  # b's config, manifest and the APP layer; BASE is shared
    svc.remove("a")
    assert list(svc.content.walk()) == []


# -- list and filters -----------------------------------------------------------------------------

@pytest.fixture
def three(svc):
    old = make(svc, [BASE], ["busybox:old"], created="2024-01-01T00:00:00Z",
               config={"config": {"Labels": {"tier": "base"}}})
    mid = make(svc, [BASE, APP], ["example.com/team/app:1", "app"], created="2024-02-01T00:00:00Z",
               config={"config": {"Labels": {"tier": "app", "team": "x"}}})
    new = make(svc, [OTHER], created="2024-03-01T00:00:00.5Z")
    return old, mid, new


def ids(images):
    return [i.id for i in images]


def test_list_is_newest_first(svc, three):
    old, mid, new = three
    assert ids(svc.list()) == [new.id, mid.id, old.id]


def test_list_dangling(svc, three):
    old, mid, new = three
    assert ids(svc.list(filters={"dangling": ["true"]})) == [new.id]
    assert ids(svc.list(filters={"dangling": {"false": True}})) == [mid.id, old.id]
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'dangling=maybe'$"):
        svc.list(filters={"dangling": ["maybe"]})


def test_list_label(svc, three):
    old, mid, _ = three
    assert ids(svc.list(filters={"label": ["tier"]})) == [mid.id, old.id]
    assert ids(svc.list(filters={"label": ["tier=app"]})) == [mid.id]
    assert ids(svc.list(filters={"label": ["tier=app", "team=y"]})) == []


def test_list_before_since_until(svc, three):
    old, mid, new = three
    assert ids(svc.list(filters={"before": ["app"]})) == [old.id]
    assert ids(svc.list(filters={"since": ["busybox:old"]})) == [new.id, mid.id]
    assert ids(svc.list(filters={"until": ["2024-02-15T00:00:00Z"]})) == [mid.id, old.id]
    with pytest.raises(NotFound):
        svc.list(filters={"before": ["ghost"]})


def test_list_reference_patterns_narrow_names(svc, three):
    old, mid, _ = three
    found = svc.list(filters={"reference": ["app"]})
    assert ids(found) == [mid.id]
    assert found[0].names == ["docker.io/library/app:latest"]
    assert ids(svc.list(filters={"reference": ["*/team/*"]})) == [mid.id]
    assert ids(svc.list(filters={"reference": ["busybox:*"]})) == [old.id]
    assert ids(svc.list(filters={"reference": ["example.com/*/app:1"]})) == [mid.id]
    assert ids(svc.list(filters={"reference": ["*"]})) == [mid.id, old.id]  # "*" stops at "/"
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        svc.list(filters={"reference": ["[a-"]})


def test_list_rejects_unknown_filters(svc):
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'colour'$"):
        svc.list(filters={"colour": ["red"]})


def test_list_hides_untagged_intermediate_images_unless_all(svc):
    parent = make(svc, [BASE])
    child = make(svc, [BASE, APP], names=["app"], parent=parent.short_id)
    assert ids(svc.list()) == [child.id]
    assert set(ids(svc.list(all=True))) == {child.id, parent.id}


def test_summaries_shape(svc, three):
    rows = svc.summaries(containers=lambda image_id: 2)
    assert [r["Containers"] for r in rows] == [2, 2, 2]
    assert rows[0]["RepoTags"] == [] and rows[0]["Labels"] is None


# -- prune ----------------------------------------------------------------------------------------

def test_prune_dangling(svc, three):
    old, mid, new = three
    report = svc.prune()
    assert report["ImagesDeleted"] == [{"Deleted": str(new.id)}, *layers(new)]
    assert report["SpaceReclaimed"] > 0
    assert ids(svc.list()) == [mid.id, old.id]


def test_prune_nothing_reports_null(svc, three):
    svc.prune()
    assert svc.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}


def test_prune_all_spares_images_in_use(svc, three):
    old, mid, new = three
    in_use = used_by({str(mid.id): [ContainerUse("1" * 64, running=True)]})
    report = svc.prune(dangling_only=False, in_use=in_use)
    deleted = [r["Deleted"] for r in report["ImagesDeleted"] if "Deleted" in r]
    assert str(old.id) in deleted and str(new.id) in deleted
    assert str(mid.id) not in deleted
    assert ids(svc.list()) == [mid.id]


def test_prune_filters(svc, three):
    old, mid, new = three
    svc.prune(filters={"dangling": ["false"], "label": ["tier=app"]})
    assert ids(svc.list(all=True)) == [new.id, old.id]
    svc.prune(filters={"dangling": ["0"], "label!": ["tier=base"]})
    assert ids(svc.list(all=True)) == [old.id]  # new has no labels: label! does not exclude it


def test_prune_until(svc, three):
    old, mid, new = three
    svc.prune(dangling_only=False, filters={"until": ["2024-01-15T00:00:00Z"]})
    assert ids(svc.list()) == [new.id, mid.id]
    with pytest.raises(InvalidArgument, match="invalid filter 'reference'"):
        svc.prune(filters={"reference": ["x"]})
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'dangling=yes'$"):
        svc.prune(filters={"dangling": ["yes"]})


def test_prune_all_lists_released_layers_after_each_image(svc):
    """``image prune -a`` as dockerd's: each image's records, then the layers it alone held;
    the layer both images share goes with the second one deleted."""
    a = make(svc, [BASE], names=["a"])
    b = make(svc, [BASE, APP], names=["b"])
    first, second = sorted([a, b], key=lambda i: i.id)  # the order prune takes them in

    def records(img, released):
        return [{"Untagged": f"{img.names[0].rsplit('/', 1)[1]}"}, {"Deleted": str(img.id)},
                *released]

    expected = (records(first, layers(b, below=1) if first is b else []) +
                records(second, layers(second)))
    assert svc.prune(dangling_only=False)["ImagesDeleted"] == expected


def test_prune_keeps_dangling_image_of_a_stopped_container(svc, three):
    _, _, new = three
    report = svc.prune(in_use=used_by({str(new.id): ["9" * 64]}))
    assert report["ImagesDeleted"] is None


# -- store -----------------------------------------------------------------------------------------

def test_tables_carry_a_schema_version(svc, tmp_path):
    conn = sqlite3.connect(tmp_path / "root" / "dockyard.db")
    assert conn.execute("SELECT version FROM image_schema").fetchall() == [(SCHEMA_VERSION,)]
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {n for n in names if not n.startswith("sqlite")} == {
        "image_schema", "image_images", "image_refs", "image_layer_sizes"}
    conn.close()


def test_a_newer_schema_is_refused(tmp_path):
    ImageService(tmp_path / "r", snapshotter="native").close()
    conn = sqlite3.connect(tmp_path / "r" / "dockyard.db")
    conn.execute("UPDATE image_schema SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(System, match="schema version"):
        ImageService(tmp_path / "r", snapshotter="native")


def test_metadata_survives_reopening(tmp_path):
    s = ImageService(tmp_path / "r", snapshotter="native")
    img = make(s, names=["busybox"], digest_names=True)
    s.tag("busybox", "bb")
    s.close()
    s = ImageService(tmp_path / "r", snapshotter="native")
    again = s.get("bb")
    assert (again.id, again.names, again.digests) == (
        img.id, ["docker.io/library/bb:latest", "docker.io/library/busybox:latest"], img.digests)
    s.close()


def test_gc_keeps_leased_blobs_of_an_import_in_progress(svc):
    make(svc, names=["keep"])
    with svc.content.lease():
        target = ingest_image(svc, [OTHER])
        svc.gc()
        assert svc.content.exists(target.digest)
        svc.register(target, ["late"])
    svc.gc()
    assert svc.get("late")


def test_short_id():
    assert short_id("sha256:" + "ab" * 32) == "abababababab"


# -- filters (pure) --------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,name,expected", [
    ("busybox", "busybox", True), ("busy*", "busybox", True), ("*", "a/b", False),
    ("*/*", "a/b", True), ("a?c", "abc", True), ("a?c", "a/c", False), ("[a-c]x", "bx", True),
    ("[^a-c]x", "bx", False), ("[^a-c]x", "dx", True), (r"a\*b", "a*b", True),
    ("*b*", "aaabaaa", True), ("a*b", "a/b", False), ("", "", True), ("", "a", False),
    ("a*", "ab/c", False),
])
def test_path_match_is_gos(pattern, name, expected):
    assert flt.path_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[", "[a-", "a[", "\\", "[]"])
def test_path_match_bad_patterns(pattern):
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        flt.path_match(pattern, "abc")


def test_parse_timestamp_forms():
    now = 1_700_000_000.0
    assert flt.parse_timestamp("1h30m", now) == now - 5400
    assert flt.parse_timestamp("10m", now) == now - 600
    assert flt.parse_timestamp("1700000000", now) == 1_700_000_000
    assert flt.parse_timestamp("1700000000.5", now) == 1_700_000_000.5
    assert flt.parse_timestamp("2024-01-01T00:00:00Z", now) == 1_704_067_200
    assert flt.parse_timestamp("2024-01-01T01:00:00+01:00", now) == 1_704_067_200
    with pytest.raises(InvalidArgument):
        flt.parse_timestamp("yesterday", now)


def test_filter_values_normalize():
    assert flt.parse_filters({"a": {"x": True, "y": False}, "b": "z", "c": ["1", "1"]}) == {
        "a": ["x"], "b": ["z"], "c": ["1"]}
    assert flt.get_bool({"d": ["1"]}, "d", False) is True
    with pytest.raises(InvalidArgument, match=r"^invalid filter 'd=true,false'$"):
        flt.get_bool({"d": ["true", "false"]}, "d", False)
