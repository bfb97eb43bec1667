"""The registry server's storage: repositories, tags and upload sessions over the content store.

Owns the directory ``<root>``::

    content/                                 a ContentStore: every blob and manifest, once
    repositories/<name>/_layers/<algo>/<hex>            the repository may serve this blob
    repositories/<name>/_manifests/revisions/<algo>/<hex>  a manifest of the repository; holds
                                                        its media type
    repositories/<name>/_manifests/tags/<tag>           holds the digest the tag points at
    repositories/<name>/_referrers/<algo>/<hex>/<algo>-<hex>  a manifest whose subject is <hex>
    uploads/<uuid>.json                      an upload session (repository, start time); its
                                             bytes are the content store's ingest "upload-<uuid>"

Link files are written atomically (temp, fsync, rename), and only after the blob they name is
committed, so a crash never leaves a tag or link to missing content (distribution's own layout
is the model: registry/storage/paths.go). Blobs are shared between repositories; a repository
sees only those linked to it. Upload sessions outlive a restart, and stale ones are removed by
`purge_uploads`.

Nothing here speaks HTTP: the server (server.py) maps these calls and their RegistryErrors to
the wire.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from dockyard.content.store import ContentStore, Writer, write_atomic
from dockyard.errdefs import AlreadyExists, Conflict, InvalidArgument, NotFound
from dockyard.registry.errors import RegistryError
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import MAX_MANIFEST_SIZE, Index, Manifest, parse_any

log = logging.getLogger(__name__)

# distribution/reference's path grammar, the spec's <name> (spec.md "Pulling manifests")
NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)"
                     r"[a-z0-9]+)*)*", re.ASCII)
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
NAME_MAX = 255
UPLOAD_TTL = 7 * 24 * 3600.0  # distribution's default upload purging age


def check_name(name: str) -> str:
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def check_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise RegistryError("TAG_INVALID", detail={"tag": tag})
    return tag


def parse_digest(value: str, code: str = "DIGEST_INVALID") -> Digest:
    try:
        return Digest(value)
    except (InvalidArgument, ValueError):
        raise RegistryError(code, f"invalid digest {value!r}", {"digest": value}) from None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


@dataclass(frozen=True)
class Upload:
    uuid: str
    name: str
    started: float


class RegistryStorage:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).absolute()
        self.content = ContentStore(self.root / "content")
        (self.root / "repositories").mkdir(parents=True, exist_ok=True)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)

    # -- paths --------------------------------------------------------------------------------

    def _repo(self, name: str) -> Path:
        return self.root / "repositories" / check_name(name)

    def _layer_link(self, name: str, digest: Digest) -> Path:
        return self._repo(name) / "_layers" / digest.algorithm / digest.encoded

    def _revision(self, name: str, digest: Digest) -> Path:
        return self._repo(name) / "_manifests" / "revisions" / digest.algorithm / digest.encoded

    def _tag_path(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_manifests" / "tags" / check_tag(tag)

    def repo_exists(self, name: str) -> bool:
        return self._repo(name).is_dir()

    # -- blobs --------------------------------------------------------------------------------

    def blob_size(self, name: str, digest: Digest) -> int:
        """The size of a blob the repository may serve; BLOB_UNKNOWN otherwise."""
        if not self._layer_link(name, digest).exists() and not self._revision(name, digest).exists():
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)})
        try:
            return self.content.info(digest).size
        except NotFound:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)}) from None

    def open_blob(self, name: str, digest: Digest):
        self.blob_size(name, digest)
        try:
            return self.content.open(digest)
        except NotFound:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)}) from None

    def link_blob(self, name: str, digest: Digest) -> None:
        path = self._layer_link(name, digest)
        if not path.exists():
            _write_atomic(path, str(digest).encode())

    def delete_blob(self, name: str, digest: Digest) -> None:
        self.blob_size(name, digest)
        self._layer_link(name, digest).unlink(missing_ok=True)

    def mount_blob(self, name: str, digest: Digest, source: str) -> bool:
        """Cross-repository mount: link ``digest`` into ``name`` if ``source`` has it."""
        try:
            check_name(source)
            self.blob_size(source, digest)
        except RegistryError:
            return False
        self.link_blob(name, digest)
        return True

    # -- uploads ------------------------------------------------------------------------------

    def _upload_meta(self, upload_id: str) -> Path:
        try:
            parsed = uuidlib.UUID(upload_id)
        except ValueError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None
        return self.root / "uploads" / f"{parsed}.json"

    def start_upload(self, name: str) -> Upload:
        check_name(name)
        upload = Upload(str(uuidlib.uuid4()), name, time.time())
        _write_atomic(self._upload_meta(upload.uuid),
                      json.dumps({"name": name, "started": upload.started}).encode())
        return upload

    def get_upload(self, name: str, upload_id: str) -> Upload:
        try:
            meta = json.loads(self._upload_meta(upload_id).read_bytes())
        except (FileNotFoundError, ValueError):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None
        if meta.get("name") != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        return Upload(upload_id, name, meta["started"])

    def upload_writer(self, upload: Upload) -> Writer:
        try:
            return self.content.writer(f"upload-{upload.uuid}")
        except Conflict:
            raise RegistryError("BLOB_UPLOAD_INVALID", "another request is writing this upload",
                                status=409) from None

    def upload_offset(self, upload: Upload) -> int:
        try:
            return self.content.status(f"upload-{upload.uuid}").offset
        except NotFound:
            return 0

    def finish_upload(self, upload: Upload, writer: Writer, digest: Digest,
                      size: int | None = None) -> Digest:
        """Verify and commit the upload's bytes as ``digest`` and link it; the session ends
        either way (a digest that does not match is DIGEST_INVALID and nothing is kept)."""
        try:
            if size is not None and size != writer.offset:
                writer.abort()
                raise RegistryError("SIZE_INVALID", detail={"size": writer.offset})
            try:
                writer.commit(digest)
            except InvalidArgument as exc:
                raise RegistryError("DIGEST_INVALID", str(exc), {"digest": str(digest)}) from None
        finally:
            self._upload_meta(upload.uuid).unlink(missing_ok=True)
        self.link_blob(upload.name, digest)
        return digest

    def cancel_upload(self, upload: Upload) -> None:
        self._upload_meta(upload.uuid).unlink(missing_ok=True)
        try:
            self.content.abort(f"upload-{upload.uuid}")
        except NotFound:
            pass
        except Conflict:
            raise RegistryError("BLOB_UPLOAD_INVALID", "the upload is being written",
                                status=409) from None

    def mono_writer(self, digest: Digest) -> Writer | None:
        """A writer for a monolithic upload (POST with ``digest``); None if the registry has
        the blob already (the body is then only read and dropped)."""
        try:
            return self.content.writer(f"mono-{secrets.token_hex(8)}", digest)
        except AlreadyExists:
            return None

    def commit_mono(self, name: str, writer: Writer | None, digest: Digest) -> Digest:
        if writer is not None:
            try:
                writer.commit(digest)
            except InvalidArgument as exc:
                raise RegistryError("DIGEST_INVALID", str(exc), {"digest": str(digest)}) from None
            finally:
                writer.abort()
        self.link_blob(name, digest)
        return digest

    def purge_uploads(self, older_than: float = UPLOAD_TTL) -> list[str]:
        cutoff, purged = time.time() - older_than, []
        for meta in (self.root / "uploads").glob("*.json"):
            try:
                started = json.loads(meta.read_bytes())["started"]
            except (OSError, ValueError, KeyError):
                started = 0.0
            if started < cutoff:
                upload_id = meta.stem
                meta.unlink(missing_ok=True)
                try:
                    self.content.abort(f"upload-{upload_id}")
                except (NotFound, Conflict):
                    pass
                purged.append(upload_id)
        return purged

    # -- manifests ----------------------------------------------------------------------------

    def resolve(self, name: str, reference: str) -> Digest:
        if not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        if ":" in reference:
            digest = parse_digest(reference)
            if not self._revision(name, digest).exists():
                raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": reference})
            return digest
        try:
            return Digest(self._tag_path(name, reference).read_text().strip())
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: tag {reference} not found",
                                {"tag": reference}) from None

    def get_manifest(self, name: str, reference: str) -> tuple[Digest, str, bytes]:
        """(digest, media type, bytes) of a manifest by tag or digest."""
        digest = self.resolve(name, reference)
        media_type = self._revision(name, digest).read_text().strip()
        try:
            return digest, media_type, self.content.read(digest, MAX_MANIFEST_SIZE)
        except NotFound:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": str(digest)}) from None

    def put_manifest(self, name: str, reference: str, content_type: str | None,
                     raw: bytes) -> Digest:
        """Check a manifest (parse, size, every blob or manifest it names is in the repository)
        then store it and point the tag at it."""
        check_name(name)
        if len(raw) > MAX_MANIFEST_SIZE:
            raise RegistryError("MANIFEST_INVALID", f"manifest exceeds {MAX_MANIFEST_SIZE} bytes",
                                status=413)
        digest = Digest.from_bytes(raw)
        if ":" in reference:
            wanted = parse_digest(reference)
            if Digest.from_bytes(raw, wanted.algorithm) != wanted:
                raise RegistryError("DIGEST_INVALID", detail={"digest": reference})
            digest = wanted
        else:
            check_tag(reference)
        media_type = mt.base_media_type(content_type) or None
        try:
            doc = parse_any(raw, media_type if media_type in mt.MANIFEST_TYPES | mt.INDEX_TYPES
                            else None, allow_artifacts=True)
        except InvalidArgument as exc:
            raise RegistryError("MANIFEST_INVALID", str(exc)) from None
        media_type = doc.media_type or media_type or (
            mt.OCI_INDEX if isinstance(doc, Index) else mt.OCI_MANIFEST)
        self._check_references(name, doc)
        deadline = time.monotonic() + 30
        while True:  # the same manifest put by two clients at once: one writes, one waits
            try:
                self.content.ingest_bytes(raw, digest)
                break
            except Conflict:
                if self.content.exists(digest):
                    break
                if time.monotonic() > deadline:
                    raise RegistryError("UNKNOWN", "the manifest is being written") from None
                time.sleep(0.02)
        _write_atomic(self._revision(name, digest), media_type.encode())
        if doc.subject is not None:
            link = (self._repo(name) / "_referrers" / doc.subject.digest.algorithm
                    / doc.subject.digest.encoded / f"{digest.algorithm}-{digest.encoded}")
            _write_atomic(link, json.dumps({"mediaType": media_type}).encode())
        if ":" not in reference:
            _write_atomic(self._tag_path(name, reference), str(digest).encode())
        return digest

    def _check_references(self, name: str, doc: Manifest | Index) -> None:
        if isinstance(doc, Index):
            missing = [d for d in doc.manifests if not self._revision(name, d.digest).exists()]
        else:
            missing = [d for d in (doc.config, *doc.layers)
                       if d.media_type != mt.OCI_EMPTY or d.data is None
                       if not (self._layer_link(name, d.digest).exists()
                               and self.content.exists(d.digest))]
            missing = [d for d in missing if not d.urls]  # foreign layers live elsewhere
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"digest": str(missing[0].digest)})

    def delete_manifest(self, name: str, reference: str) -> None:
        if ":" not in reference:  # distribution deletes tags with the manifest's digest only
            raise RegistryError("UNSUPPORTED", "delete by tag is not supported; delete the digest")
        digest = self.resolve(name, reference)
        tags = self._repo(name) / "_manifests" / "tags"
        if tags.is_dir():
            for tag in tags.iterdir():
                if tag.read_text().strip() == str(digest):
                    tag.unlink(missing_ok=True)
        self._revision(name, digest).unlink(missing_ok=True)

    def tags(self, name: str) -> list[str]:
        if not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        tags = self._repo(name) / "_manifests" / "tags"
        return sorted(p.name for p in tags.iterdir() if not p.name.startswith(".")) \
            if tags.is_dir() else []

    def catalog(self) -> list[str]:
        base = self.root / "repositories"
        out = []
        for dirpath, dirnames, _ in os.walk(base):
            if "_manifests" in dirnames or "_layers" in dirnames:
                out.append(os.path.relpath(dirpath, base))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(out)

    def referrers(self, name: str, digest: Digest,
                  artifact_type: str | None = None) -> list[dict]:
        """Descriptors of the repository's manifests whose subject is ``digest``."""
        check_name(name)
        base = self._repo(name) / "_referrers" / digest.algorithm / digest.encoded
        out = []
        for link in sorted(base.iterdir()) if base.is_dir() else ():
            algo, _, encoded = link.name.partition("-")
            ref = Digest(f"{algo}:{encoded}")
            if not self._revision(name, ref).exists():
                continue
            raw = self.content.read(ref, MAX_MANIFEST_SIZE)
            doc = json.loads(raw)
            desc = {"mediaType": json.loads(link.read_bytes())["mediaType"], "digest": str(ref),
                    "size": len(raw)}
            kind = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if kind:
                desc["artifactType"] = kind
            if doc.get("annotations"):
                desc["annotations"] = doc["annotations"]
            if artifact_type is None or desc.get("artifactType") == artifact_type:
                out.append(desc)
        return out

    # -- garbage collection -------------------------------------------------------------------

    def gc(self, dry_run: bool = False) -> list[Digest]:
        """Delete blobs no repository's manifests reach (distribution's mark and sweep);
        layer links to removed blobs are dropped too. Run with the server stopped or idle."""
        roots: set[Digest] = set()
        repos = self.root / "repositories"
        for name in self.catalog():
            rev = repos / name / "_manifests" / "revisions"
            for algo_dir in rev.iterdir() if rev.is_dir() else ():
                for entry in algo_dir.iterdir():
                    roots.add(Digest(f"{algo_dir.name}:{entry.name}"))

        def refs(digest: Digest) -> list[Digest]:
            try:
                raw = self.content.read(digest, MAX_MANIFEST_SIZE)
                doc = parse_any(raw, allow_artifacts=True)
            except (InvalidArgument, NotFound, ValueError):
                return []
            if isinstance(doc, Index):
                return [d.digest for d in doc.manifests]
            return [d.digest for d in (doc.config, *doc.layers)]

        if dry_run:
            live: set[Digest] = set()
            todo = list(roots)
            while todo:
                d = todo.pop()
                if d not in live:
                    live.add(d)
                    todo.extend(refs(d))
            return [d for d in self.content.walk() if d not in live]
        removed = self.content.gc(roots, refs)
        gone = set(removed)
        for name in self.catalog():
            layers = repos / name / "_layers"
            for algo_dir in layers.iterdir() if layers.is_dir() else ():
                for entry in list(algo_dir.iterdir()):
                    if Digest(f"{algo_dir.name}:{entry.name}") in gone:
                        entry.unlink(missing_ok=True)
        return removed

    def remove_repository(self, name: str) -> None:
        shutil.rmtree(self._repo(name), ignore_errors=True)
