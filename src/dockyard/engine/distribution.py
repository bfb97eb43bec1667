"""The engine's side of distribution: pull, push, login and distribution inspect, with the
image events and the progress messages dockerd sends.

Owns: turning what the API was given (``fromImage``/``tag``, an image name and tag, an
X-Registry-Auth value) into references and credentials, registry mirrors for Docker Hub
(moby registry/service.go: mirrors first, then the hub), the registry client shared by every
call (connection pools), and the words of dockerd's status lines ("Digest: ...", "Status:
Downloaded newer image for ..."). Progress goes out through ``emit(message)``, a
jsonmessage without its rendered ``progress`` bar (api/ adds it). Everything here blocks; the API runs it in a thread
and sets ``cancelled`` when its client goes away.

Not here: the protocol (registry/), HTTP (api/).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dockyard.errdefs import DockyardError, Forbidden, InvalidArgument, NotFound, Unauthorized
from dockyard.registry.client import AuthConfig, Client, RegistryOptions, RegistryUnavailable
from dockyard.registry.pull import Puller
from dockyard.registry.push import Pusher
from dockyard.spec.digest import Digest
from dockyard.spec.image import parse_index
from dockyard.spec import mediatypes as mt
from dockyard.spec.platform import parse_platform
from dockyard.spec.reference import DEFAULT_DOMAIN, Reference, parse_normalized_named, parse_tag

if TYPE_CHECKING:
    from dockyard.engine.daemon import Engine

log = logging.getLogger(__name__)

Emit = Callable[[dict], None]  # one jsonmessage: status, progressDetail, id, aux


def pull_reference(image: str, tag: str | None) -> Reference:
    """``fromImage`` and ``tag`` as dockerd combines them (a tag may be a digest)."""
    image = image.removesuffix(":")
    ref = parse_normalized_named(image)
    if tag:
        if ":" in tag and not ref.digest:
            try:
                ref = ref.with_digest(str(Digest(tag)))
            except (InvalidArgument, ValueError):
                raise InvalidArgument(f"invalid reference format: {tag}") from None
        elif not ref.digest:
            ref = ref.with_tag(parse_tag(tag))
    if not ref.tag and not ref.digest:
        ref = ref.with_default_tag()
    return ref


def parse_mirror(url: str) -> str:
    """A mirror URL's host; InvalidArgument for what dockerd refuses."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise InvalidArgument(f"invalid mirror: {url!r}: expected http(s)://host[:port]")
    return parts.netloc


class Distribution:
    def __init__(self, engine: Engine, *, insecure: list[str] = (), mirrors: list[str] = ()) -> None:
        self.engine = engine
        mirror_hosts = [parse_mirror(m) for m in mirrors]
        # a mirror named with http:// is reached over plain HTTP, as dockerd's insecure mirrors
        plain = [parse_mirror(m) for m in mirrors if m.startswith("http://")]
        self.options = RegistryOptions(insecure=[*insecure, *plain], mirrors=mirror_hosts)
        self.client = Client(self.options)

    def close(self) -> None:
        self.client.close()

    # -- pull ---------------------------------------------------------------------------------

    def pull(self, image: str, tag: str | None, *, platform: str | None = None,
             auth: AuthConfig | None = None, emit: Emit, cancelled: threading.Event) -> None:
        """A pull; with neither a tag nor a digest, every tag of the repository (dockerd's
        API rule: the docker CLI always sends ``latest`` unless ``--all-tags``)."""
        bare = parse_normalized_named(image.removesuffix(":"))
        if tag or bare.tag or bare.digest:
            self._pull_one(pull_reference(image, tag), platform, auth, emit, cancelled)
            return
        session = self.client.session(bare.domain, auth)
        try:
            tags = session.tags(bare.path)
        except Unauthorized as exc:
            raise Forbidden(str(exc)) from None
        if not tags:
            raise NotFound(f"no tags in {bare.familiar_name}")
        for name in tags:
            self._pull_one(bare.with_tag(name), platform, auth, emit, cancelled, final=False)
        emit({"status": f"Status: Downloaded newer image for {bare.familiar_name}"})

    def _pull_one(self, ref: Reference, platform: str | None, auth: AuthConfig | None,
                  emit: Emit, cancelled: threading.Event, final: bool = True) -> Reference:
        want = parse_platform(platform) if platform else None
        report = _reporter(emit)
        result = None
        errors: list[Exception] = []
        for session in self._sessions(ref, auth):
            puller = Puller(self.engine.images, session, report=report, cancelled=cancelled)
            try:
                result = puller.pull(ref, want)
                break
            except Unauthorized as exc:
                # not a 401 to our client: the docker CLI would answer one with a login prompt
                # (dockerd reports these as plain failures too)
                raise Forbidden(str(exc)) from None
            except (RegistryUnavailable, NotFound) as exc:
                if session.host == self._hub_host(ref) or ref.domain != DEFAULT_DOMAIN:
                    raise
                log.info("mirror %s failed for %s: %s", session.host, ref, exc)
                errors.append(exc)
        assert result is not None
        emit({"status": f"Digest: {result.digest}"})
        shown = ref.familiar()
        if final:
            emit({"status": f"Status: {'Downloaded newer image' if result.new else 'Image is up to date'}"
                            f" for {shown}"})
        attrs = dict(result.image.labels)
        attrs["name"] = shown
        self.engine.events.emit("image", "pull", shown, attrs)
        return ref

    def _hub_host(self, ref: Reference) -> str:
        return self.client.session(ref.domain).host

    def _sessions(self, ref: Reference, auth: AuthConfig | None):
        if ref.domain == DEFAULT_DOMAIN:
            for host in self.options.mirrors:
                yield self.client.session(host, None)  # mirrors get no hub credentials
        yield self.client.session(ref.domain, auth)

    # -- push ---------------------------------------------------------------------------------

    def push(self, name: str, tag: str | None, *, auth: AuthConfig | None, emit: Emit,
             cancelled: threading.Event) -> None:
        ref = parse_normalized_named(name)
        if ref.digest:
            raise InvalidArgument("cannot push a digest reference")
        if tag:
            ref = ref.with_tag(parse_tag(tag))
        if ref.tag:
            self.engine.images.get(str(ref))  # 404 "No such image" before any output
        session = self.client.session(ref.domain, auth)
        try:
            results = Pusher(self.engine.images, session, report=_reporter(emit),
                             cancelled=cancelled).push(ref)
        except Unauthorized as exc:
            raise Forbidden(str(exc)) from None
        for r in results:
            emit({"progressDetail": {},
                  "aux": {"Tag": r.tag, "Digest": str(r.digest), "Size": r.size}})
            image = self.engine.images.get(str(ref.with_tag(r.tag)))
            attrs = dict(image.labels)
            attrs["name"] = ref.with_tag(r.tag).familiar()
            self.engine.events.emit("image", "push", ref.with_tag(r.tag).familiar(), attrs)

    # -- login, inspect -----------------------------------------------------------------------

    def login(self, auth: AuthConfig) -> dict:
        address = auth.server_address or DEFAULT_DOMAIN
        host = urlsplit(address if "://" in address else f"//{address}").netloc or address
        if host in ("index.docker.io", "registry-1.docker.io"):
            host = DEFAULT_DOMAIN
        session = self.client.session(host, auth)
        session.ping()
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    def inspect(self, name: str, auth: AuthConfig | None) -> dict:
        """``GET /distribution/{name}/json``: the descriptor the name resolves to on its
        registry, and the platforms it offers."""
        ref = parse_normalized_named(name)
        if not ref.tag and not ref.digest:
            ref = ref.with_default_tag()
        session = self.client.session(ref.domain, auth)
        desc, raw = session.get_manifest(ref.path, ref.digest or ref.tag)
        platforms = []
        if mt.is_index(desc.media_type):
            for entry in parse_index(raw, desc.media_type).manifests:
                if entry.platform is not None:
                    p = entry.platform
                    doc = {"architecture": p.architecture, "os": p.os}
                    if p.variant:
                        doc["variant"] = p.variant
                    platforms.append(doc)
        else:
            from dockyard.spec.image import parse_manifest, parse_config

            manifest = parse_manifest(raw, desc.media_type)
            resp = session.open_blob(ref.path, manifest.config.digest)
            try:
                config = parse_config(resp.read())
            finally:
                resp.release_conn()
            doc = {"architecture": config.architecture, "os": config.os}
            if getattr(config, "variant", None):
                doc["variant"] = config.variant
            platforms.append(doc)
        return {"Descriptor": {"mediaType": desc.media_type, "digest": str(desc.digest),
                               "size": desc.size}, "Platforms": platforms}


def _reporter(emit: Emit):
    """registry/'s report(ident, status, current, total) as jsonmessages: a layer's lines
    carry progressDetail (``{}`` when there is no count), as dockerd's do."""
    def report(ident, status, current, total) -> None:
        msg: dict = {"status": status}
        if ident is not None and not status.startswith("Pulling from"):
            msg["progressDetail"] = _detail(current, total)
        if ident is not None:
            msg["id"] = ident
        emit(msg)
    return report


def _detail(current: int | None, total: int | None) -> dict:
    if current is None:
        return {}
    out = {"current": current}
    if total:
        out["total"] = total
    return out


__all__ = ["AuthConfig", "Distribution", "DockyardError", "pull_reference"]
