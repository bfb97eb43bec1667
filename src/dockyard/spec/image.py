"""OCI and Docker image objects: descriptors, manifests, indexes, image configs, image identity.

Owns the shape of the documents a registry serves and an image store keeps (OCI image spec
v1.1: descriptor.md, manifest.md, image-index.md, config.md; Docker's image manifest v2
schema 2), the rules a document must meet before anything acts on it, manifest selection by
platform, and the IDs derived from documents (image ID, ChainIDs). Pure: bytes in, records
out; fetching, storing and unpacking live in registry/, content/ and image/.

Every parser error names the offending field, as ``layers[2].digest: ...``. Records keep the
JSON keys they do not know (``extra``), so a round trip loses nothing but explicit ``null``s
and empty objects/arrays of optional fields (the codec leaves those out, as Go's
``omitempty`` does).
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from decimal import Decimal

from dockyard.errdefs import InvalidArgument, NotFound
from dockyard.spec import mediatypes as mt
from dockyard.spec.codec import F, Struct, from_json, to_json
from dockyard.spec.digest import Digest
from dockyard.spec.platform import Platform, default_platform, format_platform, match_order

MAX_MANIFEST_SIZE = 4 << 20  # containerd and Docker refuse larger manifests and indexes
MAX_CONFIG_SIZE = 8 << 20
_MAX_SIZE = (1 << 63) - 1    # sizes are int64 on the wire


def _digest(value: object, where: str) -> Digest:
    try:
        return Digest(value)  # type: ignore[arg-type]
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def _check_size(value: int, where: str) -> None:
    if not 0 <= value <= _MAX_SIZE:
        raise InvalidArgument(f"{where}: must be between 0 and 2^63-1, got {value}")


class Descriptor(Struct):
    """A content reference (descriptor.md). ``digest`` is always a validated `Digest`."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = F(factory=dict)
    data: str | None = None
    platform: Platform | None = None
    artifact_type: str | None = None

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.__dict__["digest"] = _digest(self.digest, "digest")
        _check_size(self.size, "size")

    @classmethod
    def of(cls, media_type: str, blob: bytes, **kw: object) -> Descriptor:
        """The descriptor of ``blob``: its sha256 and length."""
        return cls(media_type=media_type, digest=Digest.from_bytes(blob), size=len(blob), **kw)

    def embedded(self) -> bytes | None:
        """The ``data`` field decoded and checked against size and digest, or None."""
        if self.data is None:
            return None
        blob = _base64(self.data, "data")
        if len(blob) != self.size or Digest.from_bytes(blob, self.digest.algorithm) != self.digest:
            raise InvalidArgument("data: does not match the descriptor's size and digest")
        return blob


class Manifest(Struct):
    """An image manifest (OCI manifest.md, or Docker schema 2)."""

    schema_version: int
    media_type: str | None = None
    artifact_type: str | None = None
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] = F(factory=dict)

    def to_json(self) -> dict[str, object]:
        return to_json(self)


class Index(Struct):
    """An image index (OCI image-index.md), or Docker's manifest list."""

    schema_version: int
    media_type: str | None = None
    artifact_type: str | None = None
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    annotations: dict[str, str] = F(factory=dict)

    def to_json(self) -> dict[str, object]:
        return to_json(self)


class HealthConfig(Struct):
    """Docker's HEALTHCHECK; durations are nanoseconds."""

    test: tuple[str, ...] = F("Test", ())
    interval: int | None = F("Interval", None)
    timeout: int | None = F("Timeout", None)
    start_period: int | None = F("StartPeriod", None)
    start_interval: int | None = F("StartInterval", None)
    retries: int | None = F("Retries", None)


class ContainerConfig(Struct):
    """The ``config`` of an image config: defaults for containers run from the image.

    Keys are Docker's PascalCase. The OCI set plus Docker's additions (Healthcheck, OnBuild,
    Shell); the rest of Docker's container.Config (Hostname, Tty, Image, ...) stays in ``extra``.
    """

    user: str | None = F("User", None)
    exposed_ports: dict[str, dict] = F("ExposedPorts", factory=dict)
    env: tuple[str, ...] = F("Env", ())
    entrypoint: tuple[str, ...] | None = F("Entrypoint", None)
    cmd: tuple[str, ...] | None = F("Cmd", None)
    volumes: dict[str, dict] = F("Volumes", factory=dict)
    working_dir: str | None = F("WorkingDir", None)
    labels: dict[str, str] = F("Labels", factory=dict)
    stop_signal: str | None = F("StopSignal", None)
    args_escaped: bool | None = F("ArgsEscaped", None)
    healthcheck: HealthConfig | None = F("Healthcheck", None)
    on_build: tuple[str, ...] = F("OnBuild", ())
    shell: tuple[str, ...] | None = F("Shell", None)


class RootFS(Struct):
    type: str
    diff_ids: tuple[str, ...] = F("diff_ids", ())

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.__dict__["diff_ids"] = tuple(
            _digest(d, f"diff_ids[{i}]") for i, d in enumerate(self.diff_ids))


class History(Struct):
    created: str | None = None
    created_by: str | None = F("created_by", None)
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = F("empty_layer", None)


class ImageConfig(Struct):
    """An image configuration (OCI config.md; Docker's image JSON is a superset of it)."""

    created: str | None = None
    author: str | None = None
    architecture: str = ""
    os: str = ""
    os_version: str | None = F("os.version", None)
    os_features: tuple[str, ...] = F("os.features", ())
    variant: str | None = None
    config: ContainerConfig | None = None
    rootfs: RootFS
    history: tuple[History, ...] = ()

    @property
    def platform(self) -> Platform:
        return Platform(architecture=self.architecture, os=self.os, os_version=self.os_version,
                        os_features=self.os_features, variant=self.variant)

    def to_json(self) -> dict[str, object]:
        return to_json(self)


EMPTY_JSON = b"{}"
EMPTY_DESCRIPTOR = Descriptor(media_type=mt.OCI_EMPTY, digest=Digest.from_bytes(EMPTY_JSON),
                              size=2, data="e30=")


# -- parsing ---------------------------------------------------------------------------------

def _load(raw: bytes | str, what: str, limit: int) -> dict:
    if len(raw) > limit:
        raise InvalidArgument(f"{what}: {len(raw)} bytes exceeds the limit of {limit} bytes")
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{what}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    return doc


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _base64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidArgument(f"{where}: not valid base64") from None


def _precheck_descriptor(raw: object, where: str) -> None:
    """Check what a Descriptor's constructor would reject, so the error carries its path."""
    if not isinstance(raw, dict):
        return  # the codec names the type error
    if isinstance(raw.get("digest"), str):
        _digest(raw["digest"], f"{where}.digest")
    if type(raw.get("size")) is int:
        _check_size(raw["size"], f"{where}.size")
    if isinstance(raw.get("data"), str):
        _base64(raw["data"], f"{where}.data")


def _precheck_descriptors(doc: dict, single: tuple[str, ...], lists: tuple[str, ...]) -> None:
    for key in single:
        _precheck_descriptor(doc.get(key), key)
    for key in lists:
        items = doc.get(key)
        if isinstance(items, list):
            for i, item in enumerate(items):
                _precheck_descriptor(item, f"{key}[{i}]")


def _check_schema(doc: dict, hint: str | None) -> None:
    version = doc.get("schemaVersion")
    if hint in mt.SCHEMA1_TYPES or version == 1 or "fsLayers" in doc:
        raise InvalidArgument("schemaVersion: Docker image manifest v2, schema 1 is not supported; "
                              "the image must be pushed as OCI or Docker schema 2")
    if type(version) is int and version != 2:
        raise InvalidArgument(f"schemaVersion: must be 2, got {version}")


def _kind(doc: dict, hint: str | None) -> str | None:
    """The media type a document declares, checked against what the caller was told."""
    body = doc.get("mediaType")
    if not isinstance(body, str) or not body:
        body = None
    if body and hint in mt.MANIFEST_TYPES | mt.INDEX_TYPES and body != hint:
        raise InvalidArgument(f"mediaType: {body!r} does not match the expected {hint!r}")
    if body:
        return body
    return hint if hint in mt.MANIFEST_TYPES | mt.INDEX_TYPES else None


def parse_manifest(raw: bytes | str, media_type: str | None = None, *,
                   limit: int = MAX_MANIFEST_SIZE, allow_artifacts: bool = False) -> Manifest:
    """Parse and validate an image manifest.

    ``media_type`` is what the registry or the referring descriptor said (parameters such as
    ``charset`` are ignored); the body's own ``mediaType`` must agree with it. Without
    ``allow_artifacts`` the config must be an image config and every layer a known layer type.
    """
    hint = mt.base_media_type(media_type)
    return _manifest_from_doc(_load(raw, "manifest", limit), hint, allow_artifacts)


def parse_index(raw: bytes | str, media_type: str | None = None, *,
                limit: int = MAX_MANIFEST_SIZE) -> Index:
    """Parse and validate an image index or manifest list."""
    hint = mt.base_media_type(media_type)
    return _index_from_doc(_load(raw, "index", limit), hint)


def parse_any(raw: bytes | str, media_type: str | None = None, *, limit: int = MAX_MANIFEST_SIZE,
              allow_artifacts: bool = False) -> Manifest | Index:
    """A manifest or an index, told apart by media type or, failing that, by content."""
    hint = mt.base_media_type(media_type)
    doc = _load(raw, "manifest", limit)
    _check_schema(doc, hint)
    kind = _kind(doc, hint)
    if kind is None:
        has_manifests = "manifests" in doc
        has_image = "config" in doc or "layers" in doc
        if has_manifests == has_image:
            raise InvalidArgument("mediaType: cannot tell whether the document is a manifest or an index")
        kind = mt.OCI_INDEX if has_manifests else mt.OCI_MANIFEST
    if kind in mt.INDEX_TYPES:
        return _index_from_doc(doc, hint)
    return _manifest_from_doc(doc, hint, allow_artifacts)


def _manifest_from_doc(doc: dict, hint: str | None, allow_artifacts: bool) -> Manifest:
    _check_schema(doc, hint)
    kind = _kind(doc, hint)
    if kind in mt.INDEX_TYPES or "manifests" in doc:
        raise InvalidArgument(f"mediaType: expected a manifest, found an index ({kind or 'manifests'})")
    if kind is not None and kind not in mt.MANIFEST_TYPES:
        raise InvalidArgument(f"mediaType: unsupported manifest media type {kind!r}")
    _precheck_descriptors(doc, ("config", "subject"), ("layers",))
    manifest = from_json(Manifest, doc)
    if not allow_artifacts:
        _check_image_manifest(manifest)
    return manifest


def _check_image_manifest(manifest: Manifest) -> None:
    if not mt.is_config(manifest.config.media_type):
        raise InvalidArgument(f"config.mediaType: {manifest.config.media_type!r} is not an image config "
                              "(an artifact, not an image)")
    for i, layer in enumerate(manifest.layers):
        if not mt.is_layer(layer.media_type):
            raise InvalidArgument(f"layers[{i}].mediaType: unsupported layer media type {layer.media_type!r}")


def _index_from_doc(doc: dict, hint: str | None) -> Index:
    _check_schema(doc, hint)
    kind = _kind(doc, hint)
    if kind in mt.MANIFEST_TYPES or "config" in doc or "layers" in doc:
        raise InvalidArgument(f"mediaType: expected an index, found a manifest ({kind or 'config/layers'})")
    if kind is not None and kind not in mt.INDEX_TYPES:
        raise InvalidArgument(f"mediaType: unsupported index media type {kind!r}")
    _precheck_descriptors(doc, ("subject",), ("manifests",))
    return from_json(Index, doc)


def parse_config(raw: bytes | str, *, limit: int = MAX_CONFIG_SIZE) -> ImageConfig:
    """Parse and validate an image config blob (Docker's or OCI's)."""
    doc = _load(raw, "config", limit)
    doc = _strslices(doc)
    rootfs = doc.get("rootfs")
    if isinstance(rootfs, dict) and isinstance(rootfs.get("diff_ids"), list):
        for i, d in enumerate(rootfs["diff_ids"]):
            if isinstance(d, str):
                _digest(d, f"rootfs.diff_ids[{i}]")
    config = from_json(ImageConfig, doc)
    if config.rootfs.type != "layers":
        raise InvalidArgument(f"rootfs.type: must be 'layers', got {config.rootfs.type!r}")
    _check_time(config.created, "created")
    for i, h in enumerate(config.history):
        _check_time(h.created, f"history[{i}].created")
    return config


def _strslices(doc: dict) -> dict:
    """Docker reads Entrypoint/Cmd/Shell given as one string as a list of one (strslice)."""
    cfg = doc.get("config")
    if not isinstance(cfg, dict) or not any(isinstance(cfg.get(k), str) for k in ("Entrypoint", "Cmd", "Shell")):
        return doc
    cfg = {k: [v] if k in ("Entrypoint", "Cmd", "Shell") and isinstance(v, str) else v for k, v in cfg.items()}
    return {**doc, "config": cfg}


_TIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:Z|[+-](\d\d):(\d\d))", re.ASCII)


def _check_time(value: str | None, where: str) -> None:
    """RFC 3339, as Go's time.Time reads it from JSON."""
    if value is None:
        return
    m = _TIME_RE.fullmatch(value)
    ok = m is not None
    if ok:
        year, month, day, hour, minute, second, tz_h, tz_m = (int(g) if g else 0 for g in m.groups())
        try:  # Go allows year 0; datetime does not: validate the day against a leap year then
            datetime.datetime(year or 2000, month, day, hour, minute, second)
        except ValueError:
            ok = False
        ok = ok and tz_h < 24 and tz_m < 60
    if not ok:
        raise InvalidArgument(f"{where}: {value!r} is not an RFC 3339 time")


# -- platform selection ----------------------------------------------------------------------

def matching_manifests(index: Index, want: Platform | None = None) -> list[Descriptor]:
    """The index's manifests (and nested indexes) that run on ``want``, best first."""
    want = want or default_platform()
    entries = [d for d in index.manifests
               if mt.is_manifest(d.media_type) or mt.is_index(d.media_type)]
    return [entries[i] for i in match_order(want, [d.platform for d in entries])]


def select_manifest(index: Index, want: Platform | None = None) -> Descriptor:
    """The best manifest for ``want`` (default: this machine), as Docker picks on pull."""
    want = want or default_platform()
    found = matching_manifests(index, want)
    if not found:
        raise NotFound(f"no matching manifest for {format_platform(want)} in the manifest list entries")
    return found[0]


# -- identity --------------------------------------------------------------------------------

def image_id(config_raw: bytes) -> Digest:
    """Docker's image ID: the digest of the config blob, byte for byte as stored."""
    return Digest.from_bytes(config_raw)


def chain_ids(diff_ids: list[str] | tuple[str, ...]) -> list[Digest]:
    """ChainIDs of a layer stack (config.md#layer-chainid).

    ChainID(L0) = DiffID(L0); ChainID(L0|...|Ln) = sha256(ChainID(L0|...|Ln-1) + " " + DiffID(Ln)).
    """
    out: list[Digest] = []
    for i, value in enumerate(diff_ids):
        diff_id = _digest(value, f"diff_ids[{i}]")
        out.append(Digest.from_bytes(f"{out[-1]} {diff_id}".encode()) if out else diff_id)
    return out


def canonical_json(obj: object) -> bytes:
    """The bytes we write for documents we create: what Go's json.Marshal writes.

    Compact (no spaces), keys in insertion order (records: field order, then unknown keys), UTF-8
    as is, except the escapes Go always makes: ``<``, ``>``, ``&``, U+2028 and U+2029 as
    ``\\u003c``-style escapes, control characters as ``\\n``-style or ``\\u00XX``. Floats use
    Go's shortest form (``1e+21``, ``1e-7``, ``100``); NaN and infinities are refused, as Go
    refuses them. Lone surrogates become U+FFFD, as Go replaces invalid UTF-8.
    """
    parts: list[str] = []
    _encode(to_json(obj) if isinstance(obj, Struct) else obj, parts)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return re.sub("[\ud800-\udfff]", "\ufffd", text).encode("utf-8")


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def _encode(value: object, out: list[str]) -> None:
    if isinstance(value, Struct):
        value = to_json(value)
    if value is None or value is True or value is False:
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, str):
        out.append(_GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], json.dumps(value, ensure_ascii=False)))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_go_float(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if not isinstance(k, str):
                raise TypeError(f"canonical_json: object key {k!r} is not a string")
            if i:
                out.append(",")
            _encode(k, out)
            out.append(":")
            _encode(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _encode(v, out)
        out.append("]")
    else:
        raise TypeError(f"canonical_json: cannot encode {type(value).__name__}")


def _go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json chooses between them."""
    if f != f or f in (float("inf"), float("-inf")):
        raise InvalidArgument(f"canonical_json: {f} is not representable in JSON")
    if f == 0 or 1e-6 <= abs(f) < 1e21:
        return format(Decimal(repr(f)).normalize(), "f")
    mantissa, _, exponent = repr(f).partition("e")  # repr is shortest; only clean the exponent
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
