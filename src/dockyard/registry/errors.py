"""The OCI distribution spec's error codes (spec.md "Error Codes"), as an exception the server
answers with and the client raises when a registry sends one.

The wire form is ``{"errors": [{"code": "BLOB_UNKNOWN", "message": "...", "detail": ...}]}``.
"""

from __future__ import annotations

import orjson

from dockyard import errdefs

# code -> (HTTP status, default message), as distribution's registry/api/errcode and v2 errors
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "RANGE_INVALID": (416, "invalid content range"),
    "UNKNOWN": (500, "unknown error"),
}


class RegistryError(errdefs.DockyardError):
    """One spec error: ``code`` names it, ``status`` is its HTTP status."""

    def __init__(self, code: str, message: str | None = None, detail: object = None, *,
                 status: int | None = None, headers: list[tuple[str, str]] = ()) -> None:
        default_status, default_message = CODES.get(code, (500, code.lower()))
        super().__init__(message or default_message)
        self.code = code
        self.message = message or default_message
        self.detail = detail
        self.status = status or default_status
        self.headers = list(headers)

    def body(self) -> bytes:
        entry: dict = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return orjson.dumps({"errors": [entry]})


def parse_error_body(status: int, body: bytes) -> list[tuple[str, str]]:
    """The (code, message) pairs of a registry's error answer; [] if it sent none we can read."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return []
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append((str(e.get("code") or "UNKNOWN"), str(e.get("message") or "")))
    return out
