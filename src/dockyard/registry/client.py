"""The distribution client: one `Session` per registry host and set of credentials.

HTTP is urllib3's (docs/decisions.md): connection pooling for concurrent layer fetches, TLS
with the system's CAs (plus ``/etc/docker/certs.d/<host>/ca.crt``), streaming bodies both
ways, redirects to blob storage without leaking the Authorization header. Everything here
blocks; the engine calls it from worker threads.

Endpoints as dockerd chooses them (moby registry/service.go): HTTPS with verification; for an
insecure registry (``--insecure-registry``, and 127.0.0.0/8 always) HTTPS without
verification first, then plain HTTP. Auth follows the challenge the registry sends
(docs/spec/auth/token.md): a 401 with ``Bearer realm=,service=,scope=`` makes us fetch a token
(with Basic credentials if we have them, or the identity token as an OAuth2 refresh token) and
retry once; ``Basic`` makes us send the credentials. Tokens are cached per scope until they
expire.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from dockyard.errdefs import DockyardError, InvalidArgument, NotFound, Unauthorized, Unavailable
from dockyard.registry.auth import basic_header, parse_challenges, scope as repo_scope
from dockyard.registry.errors import RegistryError, parse_error_body
from dockyard.spec import mediatypes as mt
from dockyard.spec.digest import Digest
from dockyard.spec.image import MAX_MANIFEST_SIZE, Descriptor

log = logging.getLogger(__name__)

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST,
                             mt.DOCKER_MANIFEST])
CERTS_DIRS = ("/etc/docker/certs.d", "/etc/containers/certs.d")
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0  # a registry that sends nothing for this long has stalled
USER_AGENT = "dockyard/0.1 (distribution client)"


class RegistryUnavailable(Unavailable):
    """The registry cannot be reached, or answered something that is not the protocol."""


@dataclass(frozen=True)
class AuthConfig:
    """Credentials as the docker CLI sends them (X-Registry-Auth, POST /auth)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""

    @classmethod
    def from_json(cls, doc: Mapping) -> AuthConfig:
        get = lambda *keys: next((str(doc[k]) for k in keys if doc.get(k)), "")  # noqa: E731
        return cls(get("username", "Username"), get("password", "Password"),
                   get("identitytoken", "IdentityToken"), get("registrytoken", "RegistryToken"),
                   get("serveraddress", "ServerAddress"))

    @classmethod
    def from_header(cls, value: str | None) -> AuthConfig | None:
        """The X-Registry-Auth header: base64url JSON (padding optional, as Docker sends it)."""
        if not value:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None  # dockerd ignores an unreadable header and pulls anonymously
        return cls.from_json(doc) if isinstance(doc, dict) else None

    @property
    def empty(self) -> bool:
        return not (self.username or self.identity_token or self.registry_token)


@dataclass
class RegistryOptions:
    insecure: list[str] = field(default_factory=list)  # hosts (host:port) or CIDRs
    mirrors: list[str] = field(default_factory=list)   # URLs, for docker.io only (as dockerd)
    certs_dirs: tuple[str, ...] = CERTS_DIRS
    loopback_insecure: bool = True  # dockerd's default insecure 127.0.0.0/8

    def is_insecure(self, host: str) -> bool:
        if host in self.insecure:
            return True
        name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") \
            else host
        if name == "localhost":
            return self.loopback_insecure
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            return False
        nets = ["127.0.0.0/8", "::1/128"] if self.loopback_insecure else []
        nets += [c for c in self.insecure if "/" in c]
        for cidr in nets:
            try:
                if addr in ipaddress.ip_network(cidr, strict=False):
                    return True
            except ValueError:
                continue
        return False


def registry_host(domain: str) -> str:
    return DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain


class Client:
    """The connection pools and settings shared by every session of a daemon."""

    def __init__(self, options: RegistryOptions | None = None, *,
                 read_timeout: float = READ_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.options = options or RegistryOptions()
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self._pools: dict[tuple[str, bool], urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._schemes: dict[str, str] = {}  # host -> "https" | "http", learnt by ping

    def pool(self, host: str, verify: bool) -> urllib3.PoolManager:
        key = (host, verify)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                context = ssl.create_default_context()
                if not verify:  # an insecure registry, as configured: no warning per request
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                else:
                    for base in self.options.certs_dirs:
                        ca = os.path.join(base, host, "ca.crt")
                        if os.path.exists(ca):
                            context.load_verify_locations(ca)
                pool = urllib3.PoolManager(num_pools=4, maxsize=16, ssl_context=context,
                                           retries=False,
                                           timeout=urllib3.Timeout(connect=self.connect_timeout,
                                                                   read=self.read_timeout))
                self._pools[key] = pool
            return pool

    def session(self, domain: str, auth: AuthConfig | None = None) -> Session:
        return Session(self, registry_host(domain), auth)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.clear()
            self._pools.clear()


class Session:
    """One registry host with one set of credentials; safe to use from several threads."""

    def __init__(self, client: Client, host: str, auth: AuthConfig | None) -> None:
        self.client = client
        self.host = host
        self.auth = auth if auth is not None and not auth.empty else None
        self.insecure = client.options.is_insecure(host)
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expiry)
        self._basic = False
        self._lock = threading.Lock()

    # -- endpoints ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        scheme = self.client._schemes.get(self.host)
        if scheme is None:
            scheme = self._probe()
        return f"{scheme}://{self.host}"

    def _probe(self) -> str:
        """HTTPS, or for an insecure registry HTTPS unverified then HTTP (moby's order)."""
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            try:
                resp = self._pool(scheme).request("GET", f"{scheme}://{self.host}/v2/",
                                                  headers={"User-Agent": USER_AGENT},
                                                  redirect=False, preload_content=False)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = exc
                continue
            length = resp.headers.get("Content-Length", "")
            try:
                if length.isdigit() and int(length) <= 65536:
                    resp.drain_conn()  # a small body ("{}"): keep the connection
                    resp.release_conn()
                else:
                    resp.close()  # a probe needs no body; an odd one is not read
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = exc
                continue
            if resp.status < 500 and resp.headers.get("Docker-Distribution-API-Version") \
                    or resp.status in (200, 401):
                self.client._schemes[self.host] = scheme
                return scheme
            last = RegistryUnavailable(f"{scheme}://{self.host}/v2/ answered {resp.status}")
        raise RegistryUnavailable(f"cannot reach the registry at {self.host}: {_reason(last)}")

    def _pool(self, scheme: str) -> urllib3.PoolManager:
        return self.client.pool(self.host, verify=not (self.insecure and scheme == "https"))

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        url = urljoin(self.base_url + "/", path)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    # -- requests with auth -------------------------------------------------------------------

    def request(self, method: str, url: str, *, scope: str | None = None,
                headers: Mapping[str, str] | None = None, body=None, stream: bool = False,
                redirect: bool = True) -> urllib3.BaseHTTPResponse:
        """One request, authorised for ``scope``; after a 401 it gets the credentials the
        challenge asks for and tries once more. A ``stream`` answer is the caller's to
        release."""
        if not url.startswith(("http://", "https://")):
            url = self.url(url)
        for attempt in (0, 1):
            fields = {"User-Agent": USER_AGENT, **(headers or {})}
            if (authz := self._authorization(scope)) is not None:
                fields["Authorization"] = authz
            if hasattr(body, "seek") and attempt:
                body.seek(0)
            try:
                resp = self._pool(urlsplit(url).scheme).request(
                    method, url, headers=fields, body=body, preload_content=not stream,
                    redirect=redirect)
            except urllib3.exceptions.HTTPError as exc:
                raise RegistryUnavailable(f"{method} {url}: {_reason(exc)}") from None
            if resp.status != 401 or attempt:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            if not self._answerable(challenge):
                return resp  # nothing to answer it with: the caller reports the 401
            if stream:
                resp.drain_conn()
                resp.release_conn()
            self._answer_challenge(challenge, scope)
        raise AssertionError("unreachable")

    def _answerable(self, header: str) -> bool:
        has_user = self.auth is not None and bool(self.auth.username)
        return any((c.scheme == "bearer" and "realm" in c.params) or
                   (c.scheme == "basic" and has_user) for c in parse_challenges(header))

    def _authorization(self, scope: str | None) -> str | None:
        with self._lock:
            entry = self._tokens.get(scope or "")
            if entry is not None and entry[1] > time.time():
                return f"Bearer {entry[0]}"
            if self._basic and self.auth is not None and self.auth.username:
                return basic_header(self.auth.username, self.auth.password)
        return None

    def _answer_challenge(self, header: str, scope: str | None) -> bool:
        for challenge in parse_challenges(header):
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                self._fetch_token(challenge.params, scope)
                return True
            if challenge.scheme == "basic" and self.auth is not None and self.auth.username:
                with self._lock:
                    self._basic = True
                return True
        return False

    def _fetch_token(self, params: Mapping[str, str], scope: str | None) -> None:
        """GET the realm (token.md), or POST it with the identity token (oauth.md)."""
        scopes = [s for s in dict.fromkeys((scope or "").split(" ") + [params.get("scope", "")])
                  if s]
        query = {"service": params.get("service", "")} if params.get("service") else {}
        realm = params["realm"]
        headers = {"User-Agent": USER_AGENT}
        auth = self.auth
        pool = self.client.pool(urlsplit(realm).netloc,
                                verify=not self.client.options.is_insecure(urlsplit(realm).netloc))
        if auth is not None and auth.registry_token:
            token, expires = auth.registry_token, 60.0
        else:
            if auth is not None and auth.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": auth.identity_token,
                        "client_id": "dockyard", **query}
                if scopes:
                    form["scope"] = " ".join(scopes)
                resp = pool.request("POST", realm, headers={**headers, "Content-Type":
                                    "application/x-www-form-urlencoded"},
                                    body=urlencode(form).encode())
            else:
                if auth is not None and auth.username:
                    headers["Authorization"] = basic_header(auth.username, auth.password)
                url = realm + ("&" if "?" in realm else "?") + urlencode(
                    [*query.items(), *(("scope", s) for s in scopes)])
                try:
                    resp = pool.request("GET", url, headers=headers)
                except urllib3.exceptions.HTTPError as exc:
                    raise RegistryUnavailable(f"token service {realm}: {_reason(exc)}") from None
            if resp.status != 200:
                raise Unauthorized(f"unauthorized: {_error_text(resp.status, resp.data)} "
                                   f"(token service {realm} answered {resp.status})")
            try:
                doc = json.loads(resp.data)
                token = doc.get("token") or doc.get("access_token")
                expires = float(doc.get("expires_in") or 60)
            except (ValueError, AttributeError):
                token = None
            if not token:
                raise Unauthorized(f"the token service {realm} sent no token")
        with self._lock:
            self._tokens[scope or ""] = (token, time.time() + max(expires - 5, 1))

    # -- the protocol -------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` with the credentials (docker login): Unauthorized if they are refused."""
        resp = self.request("GET", "/v2/", scope=None)
        if resp.status == 401 or resp.status == 403:
            raise Unauthorized(f"login attempt to {self.base_url}/v2/ failed with status: "
                               f"{resp.status} {resp.reason or 'Unauthorized'}")
        if resp.status != 200:
            raise RegistryUnavailable(f"{self.base_url}/v2/ answered {resp.status}")

    def check(self, resp: urllib3.BaseHTTPResponse, what: str, ok: Iterable[int]) -> None:
        if resp.status in ok:
            return
        body = resp.data if resp.status != 416 else b""
        resp.release_conn()
        errors = parse_error_body(resp.status, body)
        text = "; ".join(f"{m or c.lower()}" for c, m in errors) or \
            (resp.reason or "") + (f": {body[:200].decode('utf-8', 'replace')}" if body else "")
        codes = {c for c, _ in errors}
        if resp.status == 401 and self.auth is None and any(
                c.scheme == "basic" for c in parse_challenges(
                    resp.headers.get("WWW-Authenticate", ""))):
            raise Unauthorized(f"{what}: no basic auth credentials")
        if resp.status == 401 or "UNAUTHORIZED" in codes:
            raise Unauthorized(f"{what}: unauthorized: {text}")
        if resp.status == 403 or "DENIED" in codes:
            raise Unauthorized(f"{what}: denied: {text}")
        if resp.status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}:
            code = next(iter(codes), "").lower().replace("_", " ")
            raise NotFound(f"{what} not found: {code + ': ' if code else ''}{text}")
        if 400 <= resp.status < 500:
            raise InvalidArgument(f"{what}: {resp.status} {text}")
        raise RegistryUnavailable(f"{what}: {resp.status} {text}")

    def get_manifest(self, name: str, reference: str) -> tuple[Descriptor, bytes]:
        """The manifest or index ``reference`` (a tag or digest) names, verified: by its
        digest when asked by digest, else against Docker-Content-Digest when sent."""
        shown = _familiar(self.host, name)
        what = f"manifest for {shown}:{reference}" if ":" not in reference \
            else f"manifest for {shown}@{reference}"
        resp = self.request("GET", f"/v2/{name}/manifests/{reference}",
                            scope=repo_scope(name, "pull"), headers={"Accept": MANIFEST_ACCEPT},
                            stream=True)
        try:
            self.check(resp, what, (200,))
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
                raise InvalidArgument(f"{what}: manifest of {length} bytes exceeds the limit of "
                                      f"{MAX_MANIFEST_SIZE}")
            raw = _read_limited(resp, MAX_MANIFEST_SIZE, what)
        finally:
            resp.release_conn()
        media_type = mt.base_media_type(resp.headers.get("Content-Type"))
        if ":" in reference:
            wanted = Digest(reference)
            if Digest.from_bytes(raw, wanted.algorithm) != wanted:
                raise InvalidArgument(f"{what}: content does not match its digest")
            digest = wanted
        else:
            digest = Digest.from_bytes(raw)
            sent = resp.headers.get("Docker-Content-Digest")
            if sent and Digest(sent).algorithm == "sha256" and sent != digest:
                raise InvalidArgument(f"{what}: content does not match the digest the registry "
                                      f"sent ({sent})")
        if media_type not in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            media_type = _sniff_media_type(raw, what)
        return Descriptor(media_type=media_type, digest=digest, size=len(raw)), raw

    def open_blob(self, name: str, digest: Digest, offset: int = 0) -> urllib3.BaseHTTPResponse:
        """A streaming GET of the blob from ``offset`` (200, or 206 for a Range)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.request("GET", f"/v2/{name}/blobs/{digest}", scope=repo_scope(name, "pull"),
                            headers=headers, stream=True)
        try:
            self.check(resp, f"blob {digest}", (200, 206))
        except DockyardError:
            resp.release_conn()
            raise
        return resp

    def blob_size(self, name: str, digest: Digest, scope: str | None = None) -> int | None:
        resp = self.request("HEAD", f"/v2/{name}/blobs/{digest}",
                            scope=scope or repo_scope(name, "pull"))
        if resp.status == 404:
            return None
        self.check(resp, f"blob {digest}", (200,))
        length = resp.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else 0

    def put_manifest(self, name: str, reference: str, media_type: str, raw: bytes) -> Digest:
        resp = self.request("PUT", f"/v2/{name}/manifests/{reference}",
                            scope=repo_scope(name, "pull,push"),
                            headers={"Content-Type": media_type}, body=raw)
        self.check(resp, f"put manifest {name}:{reference}", (200, 201, 202))
        return Digest(resp.headers.get("Docker-Content-Digest") or Digest.from_bytes(raw))

    def tags(self, name: str) -> list[str]:
        resp = self.request("GET", f"/v2/{name}/tags/list", scope=repo_scope(name, "pull"))
        self.check(resp, f"tags of {name}", (200,))
        return list(json.loads(resp.data).get("tags") or [])


def _familiar(host: str, name: str) -> str:
    if host == DOCKER_HUB_ENDPOINT:
        return name.removeprefix("library/")
    return f"{host}/{name}"


def _read_limited(resp, limit: int, what: str) -> bytes:
    parts, size = [], 0
    for chunk in resp.stream(65536):
        size += len(chunk)
        if size > limit:
            raise InvalidArgument(f"{what}: manifest exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _sniff_media_type(raw: bytes, what: str) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"{what}: the registry sent something that is not a manifest") \
            from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: the registry sent something that is not a manifest")
    if doc.get("mediaType") in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
        return doc["mediaType"]
    if doc.get("schemaVersion") == 1:
        raise InvalidArgument(f"{what}: schema 1 manifests are not supported")
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def _error_text(status: int, body: bytes) -> str:
    errors = parse_error_body(status, body)
    return "; ".join(m or c for c, m in errors) or body[:200].decode("utf-8", "replace")


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
