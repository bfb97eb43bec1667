"""Image documents: parsing and validation, round trips, selection, identity, canonical JSON."""

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as hs

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import (
    EMPTY_DESCRIPTOR, MAX_MANIFEST_SIZE, Descriptor, ImageConfig, Index, Manifest, canonical_json,
    chain_ids, image_id, matching_manifests, parse_any, parse_config, parse_index, parse_manifest,
    select_manifest,
)
from dockyard.spec.platform import Platform, default_platform

DATA = Path(__file__).parent / "data"
SHA = "sha256:" + "a" * 64


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def doc(name: str) -> dict:
    return json.loads(raw(name))


def dumps(d: dict) -> bytes:
    return json.dumps(d).encode()


def P(spec: str) -> Platform:
    os_, arch, *variant = spec.split("/")
    return Platform(os=os_, architecture=arch, variant=variant[0] if variant else None)


# -- round trips of real-world shapes --------------------------------------------------------

@pytest.mark.parametrize("name, parse, cls", [
    ("busybox_manifest_list.json", parse_index, Index),
    ("busybox_oci_index.json", parse_index, Index),
    ("busybox_manifest_v2.json", parse_manifest, Manifest),
    ("oci_manifest.json", parse_manifest, Manifest),
    ("oci_config.json", parse_config, ImageConfig),
])
def test_documents_round_trip_exactly(name, parse, cls):
    obj = parse(raw(name))
    assert type(obj) is cls
    assert obj.to_json() == doc(name)
    assert parse(canonical_json(obj)) == obj


def test_docker_manifest_list():
    index = parse_index(raw("busybox_manifest_list.json"), mt.DOCKER_MANIFEST_LIST)
    assert index.media_type == mt.DOCKER_MANIFEST_LIST and len(index.manifests) == 10
    arm7 = index.manifests[3]
    assert (arm7.platform.architecture, arm7.platform.variant) == ("arm", "v7")
    assert isinstance(arm7.digest, Digest) and arm7.digest.algorithm == "sha256"


def test_docker_schema2_manifest():
    m = parse_manifest(raw("busybox_manifest_v2.json"), "application/vnd.docker.distribution.manifest.v2+json")
    assert m.config.media_type == mt.DOCKER_CONFIG
    assert [mt.layer_compression(layer.media_type) for layer in m.layers] == ["gzip"]
    assert m.layers[0].size == 2152262


def test_oci_manifest_layers_and_annotations():
    m = parse_manifest(raw("oci_manifest.json"), f"{mt.OCI_MANIFEST}; charset=utf-8")
    assert [mt.layer_compression(layer.media_type) for layer in m.layers] == ["gzip", "zstd", "none"]
    assert m.annotations["org.opencontainers.image.base.name"] == "docker.io/library/alpine:3.20"
    assert m.layers[1].annotations == {"io.containerd.image.layer.uncompressed": "x"}


def test_oci_config_fields():
    c = parse_config(raw("oci_config.json"))
    assert c.platform == P("linux/arm64/v8")
    cc = c.config
    assert (cc.user, cc.entrypoint, cc.cmd, cc.working_dir) == ("65534:65534", ("/app",), ("--serve",), "/srv")
    assert cc.exposed_ports == {"8080/tcp": {}, "8443/tcp": {}} and cc.volumes == {"/data": {}}
    assert cc.healthcheck.test == ("CMD", "/app", "health") and cc.healthcheck.interval == 30_000_000_000
    assert cc.healthcheck.start_interval == 500_000_000 and cc.healthcheck.retries == 3
    assert cc.shell == ("/bin/sh", "-c") and cc.on_build == ("RUN echo child",) and cc.args_escaped is True
    assert [h.empty_layer for h in c.history] == [None, None, True]
    assert c.rootfs.diff_ids[0].algorithm == "sha256"
    assert c.extra == {"moby.buildkit.buildinfo.v1": "eyJmcm9udGVuZCI6ImRvY2tlcmZpbGUudjAifQ=="}


def test_docker_config_keeps_unknown_fields_and_drops_only_nulls():
    original = doc("docker_config.json")
    c = parse_config(raw("docker_config.json"))
    assert c.config.entrypoint == ("/docker-entrypoint.sh",) and c.config.stop_signal == "SIGQUIT"
    assert c.config.extra["Hostname"] == "" and c.config.extra["Image"].startswith("sha256:")
    assert set(c.extra) == {"container", "container_config", "docker_version"}
    assert c.history[1].empty_layer is True and c.history[3].comment == "buildkit.dockerfile.v0"
    # A round trip loses only the explicit nulls (Volumes, OnBuild): the codec omits None.
    expected = copy.deepcopy(original)
    for key in ("Volumes", "OnBuild"):
        assert expected["config"].pop(key) is None
    assert c.to_json() == expected
    assert parse_config(canonical_json(c)) == c


def test_artifact_manifest_needs_the_flag():
    with pytest.raises(InvalidArgument, match=r"config.mediaType: 'application/vnd.oci.empty.v1\+json' is not an image config"):
        parse_manifest(raw("artifact_manifest.json"))
    m = parse_manifest(raw("artifact_manifest.json"), allow_artifacts=True)
    assert m.artifact_type == "application/spdx+json"
    assert m.subject.media_type == mt.OCI_MANIFEST
    assert m.config == EMPTY_DESCRIPTOR and m.config.embedded() == b"{}"
    assert m.to_json() == doc("artifact_manifest.json")


# -- parse_any: telling manifests from indexes -----------------------------------------------

def test_parse_any_by_media_type_field():
    assert isinstance(parse_any(raw("busybox_oci_index.json")), Index)
    assert isinstance(parse_any(raw("busybox_manifest_v2.json")), Manifest)


def test_parse_any_by_content_type_and_by_content():
    index = doc("busybox_oci_index.json")
    del index["mediaType"]
    assert isinstance(parse_any(dumps(index)), Index)
    assert isinstance(parse_any(dumps(index), mt.OCI_INDEX), Index)
    manifest = doc("oci_manifest.json")
    del manifest["mediaType"]
    assert isinstance(parse_any(dumps(manifest)), Manifest)
    assert isinstance(parse_any(dumps(manifest), "application/json"), Manifest)  # a vague type is no hint


@pytest.mark.parametrize("body, media_type, message", [
    ({"schemaVersion": 2}, None, "cannot tell whether the document is a manifest or an index"),
    ({"schemaVersion": 2, "manifests": [], "layers": []}, None, "cannot tell"),
    ({"schemaVersion": 2, "mediaType": "application/x-foo", "layers": []}, None,
     "unsupported manifest media type 'application/x-foo'"),
    ({"schemaVersion": 2, "manifests": []}, mt.OCI_MANIFEST, "expected a manifest, found an index"),
])
def test_parse_any_errors(body, media_type, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_any(dumps(body), media_type)


# -- errors name the field -------------------------------------------------------------------

def _set(path):
    def mutate(d):
        *parents, last = path[0]
        for key in parents:
            d = d[key]
        d[last] = path[1]
    return mutate


MANIFEST_ERRORS = [
    (_set((["schemaVersion"], 1)), "schemaVersion: Docker image manifest v2, schema 1 is not supported"),
    (_set((["schemaVersion"], 3)), "schemaVersion: must be 2, got 3"),
    (_set((["schemaVersion"], "2")), "schemaVersion: expected an integer"),
    (lambda d: d.pop("schemaVersion"), "schemaVersion: required field is missing"),
    (lambda d: d.pop("config"), "config: required field is missing"),
    (lambda d: d.pop("layers"), "layers: required field is missing"),
    (_set((["layers"], {})), "layers: expected an array"),
    (_set((["layers", 1, "digest"], "sha256:abc")), r"layers\[1\].digest: invalid digest"),
    (_set((["layers", 0, "digest"], "md5:" + "a" * 32)), r"layers\[0\].digest: invalid digest"),
    (_set((["layers", 0, "digest"], 5)), r"layers\[0\].digest: expected a string"),
    (_set((["layers", 0, "size"], -1)), r"layers\[0\].size: must be between 0 and 2\^63-1, got -1"),
    (_set((["layers", 0, "size"], 1 << 63)), r"layers\[0\].size: must be between"),
    (_set((["layers", 0, "size"], "12")), r"layers\[0\].size: expected an integer"),
    (_set((["layers", 0, "size"], 1.5)), r"layers\[0\].size: expected an integer"),
    (lambda d: d["layers"][2].pop("mediaType"), r"layers\[2\].mediaType: required field is missing"),
    (_set((["layers", 2, "mediaType"], "application/x-tar")),
     r"layers\[2\].mediaType: unsupported layer media type 'application/x-tar'"),
    (_set((["layers", 1, "mediaType"], mt.OCI_LAYER_GZIP + "+encrypted")),
     r"layers\[1\].mediaType: unsupported layer media type"),
    (_set((["layers", 0, "urls"], "http://x")), r"layers\[0\].urls: expected an array"),
    (_set((["layers", 0, "annotations"], {"a": 1})), r"layers\[0\].annotations.a: expected a string"),
    (_set((["layers", 0, "data"], "not base64!")), r"layers\[0\].data: not valid base64"),
    (_set((["config", "digest"], "sha256:" + "A" * 64)), "config.digest: invalid digest"),
    (_set((["config", "mediaType"], "application/vnd.cncf.helm.config.v1+json")), "config.mediaType: .* is not an image config"),
    (_set((["subject"], {"mediaType": mt.OCI_MANIFEST, "digest": "x", "size": 1})), "subject.digest: invalid digest"),
    (_set((["annotations"], [])), "annotations: expected an object"),
    (_set((["mediaType"], mt.OCI_INDEX)), "mediaType: expected a manifest, found an index"),
    (_set((["manifests"], [])), "mediaType: expected a manifest, found an index"),
]


@pytest.mark.parametrize("mutate, message", MANIFEST_ERRORS)
def test_manifest_errors_name_the_field(mutate, message):
    d = doc("oci_manifest.json")
    mutate(d)
    with pytest.raises(InvalidArgument, match=message):
        parse_manifest(dumps(d))


def test_body_media_type_must_agree_with_the_callers():
    with pytest.raises(InvalidArgument) as exc:
        parse_manifest(raw("oci_manifest.json"), mt.DOCKER_MANIFEST)
    assert str(exc.value) == (f"mediaType: {mt.OCI_MANIFEST!r} does not match the expected {mt.DOCKER_MANIFEST!r}")
    with pytest.raises(InvalidArgument, match="does not match"):
        parse_any(raw("busybox_oci_index.json"), mt.DOCKER_MANIFEST_LIST)


INDEX_ERRORS = [
    (_set((["manifests", 3, "digest"], "sha256:1")), r"manifests\[3\].digest: invalid digest"),
    (_set((["manifests", 0, "size"], -5)), r"manifests\[0\].size: must be between"),
    (lambda d: d["manifests"][2]["platform"].pop("os"), r"manifests\[2\].platform.os: required field is missing"),
    (_set((["manifests", 1, "platform", "variant"], 6)), r"manifests\[1\].platform.variant: expected a string"),
    (_set((["manifests", 1, "platform", "os.features"], "x")), r"manifests\[1\].platform.os.features: expected an array"),
    (lambda d: d.pop("manifests"), "manifests: required field is missing"),
    (_set((["manifests"], None)), "manifests: required field is missing"),
    (_set((["config"], {})), "mediaType: expected an index, found a manifest"),
    (_set((["mediaType"], mt.DOCKER_MANIFEST)), "mediaType: expected an index, found a manifest"),
    (_set((["mediaType"], "application/json")), "mediaType: unsupported index media type 'application/json'"),
    (_set((["schemaVersion"], 1)), "schemaVersion: Docker image manifest v2, schema 1"),
]


@pytest.mark.parametrize("mutate, message", INDEX_ERRORS)
def test_index_errors_name_the_field(mutate, message):
    d = doc("busybox_manifest_list.json")
    mutate(d)
    with pytest.raises(InvalidArgument, match=message):
        parse_index(dumps(d))


CONFIG_ERRORS = [
    (lambda d: d.pop("rootfs"), "rootfs: required field is missing"),
    (_set((["rootfs", "type"], "layers+base")), "rootfs.type: must be 'layers', got 'layers\\+base'"),
    (_set((["rootfs", "diff_ids"], ["sha256:1"])), r"rootfs.diff_ids\[0\]: invalid digest"),
    (_set((["rootfs", "diff_ids"], [SHA, 7])), r"rootfs.diff_ids\[1\]: expected a string"),
    (_set((["created"], "yesterday")), "created: 'yesterday' is not an RFC 3339 time"),
    (_set((["created"], "2024-02-30T00:00:00Z")), "created: .* is not an RFC 3339 time"),
    (_set((["created"], "2024-01-01 00:00:00Z")), "created: .* is not an RFC 3339 time"),
    (_set((["created"], "2024-01-01T00:00:00+24:00")), "created: .* is not an RFC 3339 time"),
    (_set((["created"], "")), "created: '' is not an RFC 3339 time"),
    (_set((["history", 2, "created"], "2024-09-26T25:00:00Z")), r"history\[2\].created: .* is not an RFC 3339 time"),
    (_set((["history", 0, "empty_layer"], "yes")), r"history\[0\].empty_layer: expected a boolean"),
    (_set((["config", "Env"], "PATH=/bin")), "config.Env: expected an array"),
    (_set((["config", "Labels"], {"a": "x", "b": 2})), "config.Labels.b: expected a string"),
    (_set((["config", "Healthcheck", "Retries"], "3")), "config.Healthcheck.Retries: expected an integer"),
    (_set((["config", "ExposedPorts"], ["80/tcp"])), "config.ExposedPorts: expected an object"),
    (_set((["architecture"], 64)), "architecture: expected a string"),
]


@pytest.mark.parametrize("mutate, message", CONFIG_ERRORS)
def test_config_errors_name_the_field(mutate, message):
    d = doc("oci_config.json")
    mutate(d)
    with pytest.raises(InvalidArgument, match=message):
        parse_config(dumps(d))


def test_config_accepts_go_times_and_docker_strslices():
    d = doc("oci_config.json")
    d["created"] = "0001-01-01T00:00:00Z"  # Go's zero time
    d["history"][0]["created"] = "2024-02-29T23:59:59.123456789-07:30"
    d["config"].update(Cmd="echo hi", Entrypoint="/bin/sh -c", Shell=None)
    c = parse_config(dumps(d))
    assert c.config.cmd == ("echo hi",) and c.config.entrypoint == ("/bin/sh -c",) and c.config.shell is None


@pytest.mark.parametrize("body, message", [
    (b"", "manifest: not valid JSON"),
    (b"{", "manifest: not valid JSON"),
    (b"\xff\xfe", "manifest: not valid JSON"),
    (b"[]", "manifest: expected a JSON object"),
    (b'"manifest"', "manifest: expected a JSON object"),
    (b'{"schemaVersion": NaN}', "manifest: not valid JSON"),
    (b"{}" + b" " * MAX_MANIFEST_SIZE, "manifest: 4194306 bytes exceeds the limit of 4194304 bytes"),
    (b"[" * 100000 + b"]" * 100000, "manifest: not valid JSON"),
])
def test_bodies_that_are_not_documents(body, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_manifest(body)


def test_limits_are_configurable():
    body = raw("busybox_manifest_list.json")
    with pytest.raises(InvalidArgument, match=f"index: {len(body)} bytes exceeds the limit of 100 bytes"):
        parse_index(body, limit=100)
    with pytest.raises(InvalidArgument, match="config: .* exceeds the limit of 10 bytes"):
        parse_config(raw("oci_config.json"), limit=10)
    big = doc("oci_manifest.json")
    big["annotations"]["padding"] = "x" * MAX_MANIFEST_SIZE
    assert parse_manifest(dumps(big), limit=2 * MAX_MANIFEST_SIZE).annotations["padding"]


def test_schema1_by_media_type_is_refused():
    with pytest.raises(InvalidArgument, match="schema 1 is not supported"):
        parse_any(b'{"schemaVersion": 1, "fsLayers": []}')
    with pytest.raises(InvalidArgument, match="schema 1 is not supported"):
        parse_manifest(raw("oci_manifest.json"), mt.DOCKER_MANIFEST_V1_SIGNED)


def test_allow_artifacts_lets_other_layer_types_through():
    d = doc("oci_manifest.json")
    d["layers"][0]["mediaType"] = "application/vnd.in-toto+json"
    with pytest.raises(InvalidArgument, match=r"layers\[0\].mediaType"):
        parse_manifest(dumps(d))
    assert parse_manifest(dumps(d), allow_artifacts=True).layers[0].media_type == "application/vnd.in-toto+json"
    d["layers"][0]["digest"] = "bogus"  # descriptors are still checked
    with pytest.raises(InvalidArgument, match=r"layers\[0\].digest"):
        parse_manifest(dumps(d), allow_artifacts=True)


# -- descriptors -----------------------------------------------------------------------------

def test_descriptor_is_validated_and_frozen():
    with pytest.raises(InvalidArgument, match="digest: invalid digest"):
        Descriptor(media_type=mt.OCI_LAYER, digest="sha256:xyz", size=1)
    with pytest.raises(InvalidArgument, match="size: must be between"):
        Descriptor(media_type=mt.OCI_LAYER, digest=SHA, size=-1)
    d = Descriptor.of(mt.OCI_LAYER, b"hello", annotations={"a": "b"})
    assert d.digest == Digest("sha256:" + hashlib.sha256(b"hello").hexdigest()) and d.size == 5
    with pytest.raises(AttributeError):
        d.size = 6
    assert d.replace(size=6).size == 6
    with pytest.raises(InvalidArgument):
        d.replace(digest="nope")


def test_embedded_data_is_verified():
    assert EMPTY_DESCRIPTOR.embedded() == b"{}"
    assert EMPTY_DESCRIPTOR.digest == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert Descriptor.of(mt.OCI_LAYER, b"x").embedded() is None
    with pytest.raises(InvalidArgument, match="data: does not match"):
        EMPTY_DESCRIPTOR.replace(data="e30K").embedded()
    with pytest.raises(InvalidArgument, match="data: not valid base64"):
        EMPTY_DESCRIPTOR.replace(data="???").embedded()


# -- media types -----------------------------------------------------------------------------

@pytest.mark.parametrize("media_type, compression", [
    (mt.OCI_LAYER, "none"), (mt.OCI_LAYER_GZIP, "gzip"), (mt.OCI_LAYER_ZSTD, "zstd"),
    (mt.OCI_LAYER_NONDIST, "none"), (mt.OCI_LAYER_NONDIST_GZIP, "gzip"), (mt.OCI_LAYER_NONDIST_ZSTD, "zstd"),
    (mt.DOCKER_LAYER, "none"), (mt.DOCKER_LAYER_GZIP, "gzip"), (mt.DOCKER_LAYER_ZSTD, "zstd"),
    (mt.DOCKER_FOREIGN_LAYER, "none"), (mt.DOCKER_FOREIGN_LAYER_GZIP, "gzip"),
])
def test_layer_compression(media_type, compression):
    assert mt.layer_compression(media_type) == compression
    assert mt.is_layer(media_type)
    assert mt.layer_compression(mt.uncompressed_layer_type(media_type)) == "none"
    assert mt.is_nondistributable(media_type) == mt.is_nondistributable(mt.uncompressed_layer_type(media_type))


@pytest.mark.parametrize("media_type", [mt.OCI_CONFIG, mt.OCI_MANIFEST, "application/x-tar", "", None,
                                        mt.OCI_LAYER_GZIP + "+encrypted"])
def test_layer_compression_of_non_layers(media_type):
    with pytest.raises(InvalidArgument, match="unsupported layer media type"):
        mt.layer_compression(media_type)


def test_media_type_classes():
    assert mt.is_manifest(mt.DOCKER_MANIFEST) and mt.is_manifest(mt.OCI_MANIFEST)
    assert mt.is_index(mt.DOCKER_MANIFEST_LIST) and mt.is_index(mt.OCI_INDEX)
    assert mt.is_config(mt.DOCKER_CONFIG) and mt.is_config(mt.OCI_CONFIG) and not mt.is_config(mt.OCI_EMPTY)
    assert mt.DOCKER_CONFIG == "application/vnd.docker.container.image.v1+json"
    assert mt.base_media_type(" Application/Vnd.OCI.Image.Index.v1+json ; charset=utf-8") == mt.OCI_INDEX
    assert mt.base_media_type("") is None and mt.base_media_type(None) is None


# -- manifest selection ----------------------------------------------------------------------

@pytest.mark.parametrize("want, arch, variant", [
    ("linux/amd64", "amd64", None),
    ("linux/arm64", "arm64", "v8"),
    ("linux/arm64/v8", "arm64", "v8"),
    ("linux/arm/v7", "arm", "v7"),
    ("linux/arm", "arm", "v7"),
    ("linux/arm/v6", "arm", "v6"),
    ("linux/arm/v5", "arm", "v5"),
    ("linux/arm/v8", "arm", "v7"),
    ("linux/386", "386", None),
    ("linux/ppc64le", "ppc64le", None),
    ("linux/amd64/v3", "amd64", None),
])
def test_select_manifest_from_busybox_list(want, arch, variant):
    index = parse_index(raw("busybox_manifest_list.json"))
    chosen = select_manifest(index, P(want))
    assert (chosen.platform.architecture, chosen.platform.variant) == (arch, variant)


def test_select_manifest_fallbacks():
    index = parse_index(raw("busybox_manifest_list.json"))
    without = index.replace(manifests=tuple(m for m in index.manifests if m.platform.architecture != "arm64"))
    assert select_manifest(without, P("linux/arm64")).platform == P("linux/arm/v7")
    only_386 = index.replace(manifests=tuple(m for m in index.manifests if m.platform.architecture == "386"))
    assert select_manifest(only_386, P("linux/amd64")).platform.architecture == "386"


@pytest.mark.parametrize("want, message", [
    ("windows/amd64", "no matching manifest for windows/amd64 in the manifest list entries"),
    ("linux/arm64/v9", None),  # v9 runs v8: found
    ("linux/mips", "no matching manifest for linux/mips in the manifest list entries"),
])
def test_select_manifest_not_found(want, message):
    index = parse_index(raw("busybox_manifest_list.json"))
    if message is None:
        assert select_manifest(index, P(want)).platform.architecture == "arm64"
        return
    with pytest.raises(NotFound) as exc:
        select_manifest(index, P(want))
    assert str(exc.value) == message


def test_attestations_and_artifacts_are_never_selected():
    index = parse_index(raw("busybox_oci_index.json"))
    assert [d.platform.architecture for d in matching_manifests(index, P("linux/amd64"))] == ["amd64"]
    att = {"vnd.docker.reference.type": "attestation-manifest"}
    assert all(d.annotations.get("vnd.docker.reference.type") != att["vnd.docker.reference.type"]
               for d in matching_manifests(index, P("linux/arm64")))
    sbom = Descriptor.of("application/spdx+json", b"{}", platform=P("linux/amd64"))
    only_sbom = index.replace(manifests=(sbom,))
    with pytest.raises(NotFound, match="no matching manifest for linux/amd64"):
        select_manifest(only_sbom, P("linux/amd64"))


def test_entries_without_platform_match_last():
    bare = Descriptor.of(mt.OCI_MANIFEST, b"bare")
    amd = Descriptor.of(mt.OCI_MANIFEST, b"amd", platform=P("linux/amd64"))
    index = Index(schema_version=2, media_type=mt.OCI_INDEX, manifests=(bare, amd))
    assert matching_manifests(index, P("linux/amd64")) == [amd, bare]
    assert select_manifest(index, P("linux/s390x")) == bare


def test_select_manifest_defaults_to_this_machine():
    index = parse_index(raw("busybox_manifest_list.json"))
    host = default_platform()
    try:
        expected = select_manifest(index, host)
    except NotFound:
        with pytest.raises(NotFound):
            select_manifest(index)
    else:
        assert select_manifest(index) == expected


# -- identity --------------------------------------------------------------------------------

def test_image_id_is_the_digest_of_the_stored_bytes():
    body = raw("docker_config.json")
    assert image_id(body) == "sha256:" + hashlib.sha256(body).hexdigest()
    assert image_id(body + b"\n") != image_id(body)  # the bytes, not the meaning


def test_chain_ids():
    a, b, c = (Digest.from_bytes(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == [] and chain_ids([a]) == [a]
    assert all(isinstance(x, Digest) for x in chain_ids((str(a), str(b))))
    with pytest.raises(InvalidArgument, match=r"diff_ids\[1\]: invalid digest"):
        chain_ids([a, "sha256:zz"])


# -- canonical JSON --------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ({"b": 1, "a": [True, False, None]}, b'{"b":1,"a":[true,false,null]}'),
    ("<script>&</script>", b'"\\u003cscript\\u003e\\u0026\\u003c/script\\u003e"'),
    ("caf\u00e9 \u2603 \U0001f433", "\"caf\u00e9 \u2603 \U0001f433\"".encode()),
    ("\u2028\u2029", b'"\\u2028\\u2029"'),
    ("\n\t\r\b\f\x00\x1f\x7f\"\\/", b'"\\n\\t\\r\\b\\f\\u0000\\u001f\x7f\\"\\\\/"'),
    ("\ud800x", '"\ufffdx"'.encode()),
    ((1, 2), b"[1,2]"),
    ({}, b"{}"),
    ([1.0, 0.5, -0.0, 1e21, 1e20, 1.5e-7, 0.000001, 123456789.125, 3e-300],
     b"[1,0.5,-0,1e+21,100000000000000000000,1.5e-7,0.000001,123456789.125,3e-300]"),
    (2**70, b"1180591620717411303424"),
])
def test_canonical_json_matches_go(value, expected):
    assert canonical_json(value) == expected


def test_canonical_json_of_records():
    m = parse_manifest(raw("busybox_manifest_v2.json"))
    out = canonical_json(m)
    assert out.startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType"')
    assert b" " not in out and json.loads(out) == doc("busybox_manifest_v2.json")
    assert canonical_json(EMPTY_DESCRIPTOR) == (b'{"mediaType":"application/vnd.oci.empty.v1+json","digest":'
                                                b'"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",'
                                                b'"size":2,"data":"e30="}')


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_canonical_json_refuses_what_go_refuses(value):
    with pytest.raises(InvalidArgument):
        canonical_json(value)


def test_canonical_json_refuses_non_json_types():
    with pytest.raises(TypeError):
        canonical_json({1: "a"})
    with pytest.raises(TypeError):
        canonical_json({"a": object()})


_json_scalars = hs.none() | hs.booleans() | hs.integers() | hs.floats(allow_nan=False, allow_infinity=False) | hs.text()
_json = hs.recursive(_json_scalars, lambda c: hs.lists(c, max_size=4) | hs.dictionaries(hs.text(max_size=8), c, max_size=4),
                     max_leaves=20)


def _go_text(text: str) -> str:
    return re.sub("[\ud800-\udfff]", "\ufffd", text)  # Go writes invalid UTF-8 as U+FFFD


def _same(decoded, value) -> bool:
    """Equal as JSON values: Go prints a float like 1e16 as an integer literal, which reads back as int."""
    if isinstance(value, float):
        return isinstance(decoded, (int, float)) and float(decoded) == value
    if isinstance(value, dict):
        value = {_go_text(k): v for k, v in value.items()}
        return isinstance(decoded, dict) and decoded.keys() == value.keys() and all(_same(decoded[k], v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return isinstance(decoded, list) and len(decoded) == len(value) and all(map(_same, decoded, value))
    if isinstance(value, str):
        return decoded == _go_text(value)
    return decoded == value and type(decoded) is type(value)


@given(_json)
def test_canonical_json_is_json_with_the_same_meaning(value):
    out = canonical_json(value)
    assert _same(json.loads(out), value)
    assert b"<" not in out and b">" not in out and b"&" not in out


# -- hypothesis: decoders never crash, generated documents round-trip -------------------------

_json_without_floats = hs.recursive(hs.none() | hs.booleans() | hs.integers() | hs.text(),
                                    lambda c: hs.lists(c, max_size=3) | hs.dictionaries(hs.text(max_size=8), c, max_size=3),
                                    max_leaves=10)
_digests = hs.binary(max_size=4).map(Digest.from_bytes)
_annotations = hs.dictionaries(hs.text(max_size=6), hs.text(max_size=6), max_size=3)
_layer_types = hs.sampled_from(sorted(mt.LAYER_TYPES))


@hs.composite
def descriptors(draw, media_type):
    d = {"mediaType": draw(media_type), "digest": draw(_digests), "size": draw(hs.integers(0, 1 << 40))}
    if draw(hs.booleans()):
        d["annotations"] = draw(_annotations.filter(bool))
    if draw(hs.booleans()):
        d["urls"] = draw(hs.lists(hs.text(min_size=1, max_size=10), min_size=1, max_size=2))
    return d


@hs.composite
def manifests(draw):
    d = {"schemaVersion": 2, "mediaType": draw(hs.sampled_from(sorted(mt.MANIFEST_TYPES))),
         "config": draw(descriptors(hs.sampled_from(sorted(mt.CONFIG_TYPES)))),
         "layers": draw(hs.lists(descriptors(_layer_types), max_size=4))}
    if draw(hs.booleans()):
        d["annotations"] = draw(_annotations.filter(bool))
    if draw(hs.booleans()):
        d["x-unknown"] = draw(_json_without_floats)  # floats may come back as ints, as in Go
    return d


@given(manifests())
def test_generated_manifests_round_trip(d):
    m = parse_manifest(canonical_json(d))
    assert m.to_json() == d
    assert parse_any(canonical_json(m)) == m


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(value, path, new):
    if not path:
        return new
    value = copy.copy(value)
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


_SAMPLES = [doc(n) for n in ("busybox_manifest_list.json", "busybox_oci_index.json", "busybox_manifest_v2.json",
                             "oci_manifest.json", "artifact_manifest.json", "oci_config.json", "docker_config.json")]


@hs.composite
def mutated_documents(draw):
    base = draw(hs.sampled_from(_SAMPLES))
    for _ in range(draw(hs.integers(1, 3))):
        path = draw(hs.sampled_from(list(_paths(base))))
        base = _replace(base, path, draw(_json))
    return base


@given(mutated_documents())
def test_mutated_documents_only_raise_invalid_argument(d):
    body = json.dumps(d).encode()
    for parse in (parse_any, parse_manifest, parse_index, parse_config):
        try:
            parse(body)
        except InvalidArgument:
            pass
    try:
        parse_any(body, allow_artifacts=True)
    except InvalidArgument:
        pass


@given(hs.binary(max_size=200))
def test_arbitrary_bytes_only_raise_invalid_argument(body):
    for parse in (parse_any, parse_manifest, parse_index, parse_config):
        try:
            parse(body)
        except InvalidArgument:
            pass
