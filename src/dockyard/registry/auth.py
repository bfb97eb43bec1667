"""Registry authentication, both sides: challenges, Basic credentials, htpasswd, tokens.

Sans-IO pieces (tested byte by byte): `parse_challenges` reads a ``WWW-Authenticate`` field
(RFC 9110 §11.6.1: several challenges, quoted-string params with backslash escapes), `scope`
builds distribution's ``repository:<name>:<actions>`` scopes, `basic_header` and
`parse_basic` the Basic credentials, `Htpasswd` checks bcrypt (what distribution's htpasswd
accepts) and ``{SHA}`` entries.

Server side, `BasicAuth` answers 401 with a Basic challenge; `TokenAuth` is a token service
and its verifier in one: ``GET /token?service=&scope=`` (docs/spec/auth/token.md) checks Basic
credentials against the htpasswd file and issues a short-lived HS256 JWT whose ``access``
claim lists the granted scopes, and the registry verifies that JWT on every request. An
external token service signing with RS256/ES256 certificates is not supported.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from dockyard.registry.errors import RegistryError

TOKEN_TTL = 300  # seconds; distribution's token servers commonly issue 5-minute tokens


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(value: str) -> list[Challenge]:
    """Every challenge of a WWW-Authenticate field; params names lower-cased."""
    out: list[Challenge] = []
    i, n = 0, len(value)

    def skip_ws(i: int) -> int:
        while i < n and value[i] in " \t,":
            i += 1
        return i

    def token(i: int) -> tuple[str, int]:
        start = i
        while i < n and value[i] not in " \t,=\"":
            i += 1
        return value[start:i], i

    i = skip_ws(i)
    while i < n:
        scheme, i = token(i)
        if not scheme:
            break
        challenge = Challenge(scheme.lower(), {})
        out.append(challenge)
        while True:
            j = skip_ws(i)
            name, k = token(j)
            k2 = k
            while k2 < n and value[k2] in " \t":
                k2 += 1
            if not name or k2 >= n or value[k2] != "=":
                i = j  # the next challenge's scheme (or the end)
                break
            k2 += 1
            while k2 < n and value[k2] in " \t":
                k2 += 1
            if k2 < n and value[k2] == '"':
                k2 += 1
                chars = []
                while k2 < n and value[k2] != '"':
                    if value[k2] == "\\" and k2 + 1 < n:
                        k2 += 1
                    chars.append(value[k2])
                    k2 += 1
                param, i = "".join(chars), k2 + 1
            else:
                param, i = token(k2)
            challenge.params[name.lower()] = param
    return out


def scope(name: str, actions: str) -> str:
    return f"repository:{name}:{actions}"


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Htpasswd:
    """``user:hash`` lines; bcrypt (``$2y$``/``$2b$``/``$2a$``) and ``{SHA}`` hashes."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.entries: dict[str, str] = {}
        for line in self.path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and ":" in line:
                user, _, hashed = line.partition(":")
                self.entries[user] = hashed

    def check(self, user: str, password: str) -> bool:
        hashed = self.entries.get(user)
        if hashed is None:
            return False
        if hashed.startswith("{SHA}"):
            digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
            return hmac.compare_digest(digest, hashed[5:])
        if hashed.startswith(("$2y$", "$2b$", "$2a$")):
            import bcrypt

            return bcrypt.checkpw(password.encode(), hashed.replace("$2y$", "$2b$", 1).encode())
        return False


def bcrypt_entry(user: str, password: str) -> str:
    """An htpasswd line as `htpasswd -B` writes it (distribution accepts only bcrypt)."""
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{user}:{hashed.replace('$2b$', '$2y$', 1)}"


# -- server side -------------------------------------------------------------------------------

class BasicAuth:
    """Every request needs Basic credentials from the htpasswd file."""

    def __init__(self, htpasswd: Htpasswd, realm: str = "dockyard registry") -> None:
        self.htpasswd = htpasswd
        self.realm = realm

    def authorize(self, headers, name: str | None, actions: str) -> None:
        creds = parse_basic(headers.get("authorization"))
        if creds is None or not self.htpasswd.check(*creds):
            raise RegistryError("UNAUTHORIZED", headers=[
                ("WWW-Authenticate", f'Basic realm="{self.realm}"')])


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuth:
    """The Bearer token flow with this server as its own token service (see the docstring)."""

    def __init__(self, htpasswd: Htpasswd | None, realm: str, service: str = "dockyard-registry",
                 secret: bytes | None = None, anonymous_pull: bool = False) -> None:
        self.htpasswd = htpasswd
        self.realm = realm
        self.service = service
        self.secret = secret or secrets.token_bytes(32)
        self.anonymous_pull = anonymous_pull

    def challenge(self, name: str | None, actions: str, error: str | None = None) -> str:
        value = f'Bearer realm="{self.realm}",service="{self.service}"'
        if name:
            value += f',scope="{scope(name, actions)}"'
        elif actions == "*":
            value += ',scope="registry:catalog:*"'
        if error:
            value += f',error="{error}"'
        return value

    def authorize(self, headers, name: str | None, actions: str) -> None:
        header = headers.get("authorization") or ""
        claims = self.verify(header[7:].strip()) if header[:7].lower() == "bearer " else None
        if claims is not None and self._granted(claims, name, actions):
            return
        error = "insufficient_scope" if claims is not None else None
        raise RegistryError("UNAUTHORIZED", headers=[
            ("WWW-Authenticate", self.challenge(name, actions, error))])

    @staticmethod
    def _granted(claims: dict, name: str | None, actions: str) -> bool:
        if not actions:  # GET /v2/: any valid token will do (docker login)
            return True
        for entry in claims.get("access", ()):
            if name is None:
                if entry.get("type") == "registry" and "*" in entry.get("actions", ()):
                    return True
                continue
            if entry.get("type") == "repository" and entry.get("name") == name and \
                    set(actions.split(",")) <= set(entry.get("actions", ())):
                return True
        return False

    def issue(self, headers, query_scopes: list[str], service: str | None) -> dict:
        """``GET /token``: a token for the scopes the user may have; UNAUTHORIZED without
        valid credentials (anonymous users get pull scopes only with ``anonymous_pull``)."""
        creds = parse_basic(headers.get("authorization"))
        user = None
        if creds is not None:
            if self.htpasswd is None or not self.htpasswd.check(*creds):
                raise RegistryError("UNAUTHORIZED", "invalid username or password",
                                    headers=[("WWW-Authenticate", 'Basic realm="token"')])
            user = creds[0]
        elif not self.anonymous_pull:
            raise RegistryError("UNAUTHORIZED", "authentication required",
                                headers=[("WWW-Authenticate", 'Basic realm="token"')])
        access = []
        for text in query_scopes:
            kind, _, rest = text.partition(":")
            target, _, acts = rest.rpartition(":")
            wanted = [a for a in acts.split(",") if a]
            allowed = wanted if user else [a for a in wanted if a == "pull"]
            if kind in ("repository", "registry") and target and allowed:
                access.append({"type": kind, "name": target, "actions": allowed})
        now = int(time.time())
        claims = {"iss": self.service, "sub": user or "", "aud": service or self.service,
                  "iat": now, "nbf": now - 5, "exp": now + TOKEN_TTL,
                  "jti": secrets.token_hex(8), "access": access}
        token = self.sign(claims)
        return {"token": token, "access_token": token, "expires_in": TOKEN_TTL,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}

    def sign(self, claims: dict) -> str:
        head = _b64url(orjson.dumps({"typ": "JWT", "alg": "HS256"}))
        body = _b64url(orjson.dumps(claims))
        mac = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(mac)}"

    def verify(self, token: str) -> dict | None:
        try:
            head, body, sig = token.split(".")
            mac = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64url(sig), mac):
                return None
            if orjson.loads(_unb64url(head)).get("alg") != "HS256":
                return None
            claims = orjson.loads(_unb64url(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        now = time.time()
        if not isinstance(claims, dict) or not claims.get("nbf", 0) <= now < claims.get("exp", 0):
            return None
        if claims.get("aud") != self.service:
            return None
        return claims
