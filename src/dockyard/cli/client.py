"""The CLI's connection to a Docker-API daemon, through the docker SDK's low-level APIClient.

Owns: where the daemon is (-H, $DOCKER_HOST, the dockyard default), API version negotiation
(``HEAD /_ping`` as the docker CLI does, then the lower of ours and the daemon's), the CLI's
config file (psFormat, imagesFormat, detachKeys) and turning SDK/connection errors into the
docker CLI's messages. Must not import anything of the daemon's side (engine/, api/, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
CLIENT_VERSION = "0.1.0"
MAX_API_VERSION = "1.50"     # what docker CLI 28.2 speaks; negotiated down per daemon
MIN_API_VERSION = "1.24"


class CLIError(Exception):
    """A failure to report on stderr (``message``, may be empty) and exit with ``status``."""

    def __init__(self, message: str = "", status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def negotiate(server: str | None) -> str:
    """The API version to speak: the daemon's if lower than ours (docker's NegotiateAPIVersion)."""
    server = server or MIN_API_VERSION
    return server if version_tuple(server) < version_tuple(MAX_API_VERSION) else MAX_API_VERSION


def resolve_host(flag_hosts: list[str] | None, environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    if flag_hosts:
        if len(flag_hosts) > 1:
            raise CLIError("Specify only one -H")
        return flag_hosts[0]
    return environ.get("DOCKER_HOST") or DEFAULT_HOST


def error_message(exc: BaseException) -> str:
    """The docker CLI's wording for an SDK error."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode(errors="replace")
        if not explanation and exc.response is not None:
            explanation = exc.response.reason or str(exc.response.status_code)
        return f"Error response from daemon: {explanation}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ""  # the caller knows the host; see Daemon.connection_error
    return str(exc)


@dataclass
class CLIConfig:
    """The parts of the docker CLI's config.json that change what we print or send."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, config_dir: str | None) -> CLIConfig:
        base = Path(config_dir or os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
        path = base / "config.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        return cls(path, data if isinstance(data, dict) else {})

    @property
    def ps_format(self) -> str:
        return self.data.get("psFormat", "")

    @property
    def images_format(self) -> str:
        return self.data.get("imagesFormat", "")

    @property
    def detach_keys(self) -> str:
        return self.data.get("detachKeys", "")


class Daemon:
    """A lazily connected, version-negotiated docker.APIClient plus raw requests on it."""

    def __init__(self, host: str, config: CLIConfig, debug: bool = False) -> None:
        self.host = host
        self.config = config
        self.debug = debug
        self._api: Any = None
        self.server_api_version: str | None = None

    def connection_error(self) -> CLIError:
        return CLIError(f"Cannot connect to the Docker daemon at {self.host}. "
                        "Is the docker daemon running?")

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = self._connect()
        return self._api

    def _client(self, version: str) -> Any:
        import docker
        from docker.errors import DockerException

        tls: Any = False
        if os.environ.get("DOCKER_TLS_VERIFY") and self.host.startswith("tcp://"):
            cert = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
            tls = docker.tls.TLSConfig(client_cert=(str(cert / "cert.pem"), str(cert / "key.pem")),
                                       ca_cert=str(cert / "ca.pem"), verify=True)
        try:
            return docker.APIClient(base_url=self.host, version=version, timeout=None, tls=tls,
                                    user_agent=f"Dockyard-Client/{CLIENT_VERSION} (linux)")
        except DockerException as exc:
            raise CLIError(str(exc)) from None

    def _connect(self) -> Any:
        import requests.exceptions

        if self.host.startswith("unix://") and not os.path.exists(self.host[len("unix://"):]):
            raise self.connection_error()  # and no half-made socket left behind by the SDK
        probe = self._client(MAX_API_VERSION)
        try:
            resp = probe.head(probe.base_url + "/_ping")
            if resp.status_code >= 400 and resp.status_code != 404:
                resp = probe.get(probe.base_url + "/_ping")
        except requests.exceptions.ConnectionError:
            probe.close()
            raise self.connection_error() from None
        self.server_api_version = resp.headers.get("Api-Version")
        version = negotiate(self.server_api_version)
        if version == MAX_API_VERSION:
            return probe
        probe.close()
        return self._client(version)

    @property
    def api_version(self) -> str:
        return self.api.api_version

    def url(self, path: str, versioned: bool = True) -> str:
        api = self.api
        return f"{api.base_url}/v{api.api_version}{path}" if versioned else f"{api.base_url}{path}"

    def request(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> Any:
        """A raw request on the SDK's session; HTTP errors become docker.errors.APIError."""
        import requests.exceptions
        from docker.errors import create_api_error_from_http_exception

        if "json" in kwargs:  # compact, as Go's encoder writes it
            body = kwargs.pop("json")
            kwargs["data"] = json.dumps(body, separators=(",", ":"))
            kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
        try:
            resp = self.api.request(method, self.url(path), stream=stream, **kwargs)
        except requests.exceptions.ConnectionError:
            raise self.connection_error() from None
        try:
            resp.raise_for_status()
        except requests.exceptions.HTTPError as exc:
            create_api_error_from_http_exception(exc)
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        return resp.json() if resp.content else None

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
