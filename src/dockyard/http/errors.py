"""The one mapping from error categories to HTTP status codes, and Docker's error body.

Handlers raise `dockyard.errdefs` categories; `status_for` is the only place that turns one into
a status (STYLE.md habit 5). The body is Docker's `{"message": "..."}` (moby
api/types ErrorResponse, written by Go's json.Encoder: hence the trailing newline).
"""

from __future__ import annotations

import orjson

from dockyard import errdefs


class HTTPError(errdefs.DockyardError):
    """An answer with an explicit status, for protocols whose codes are not categories
    (a registry's 401 with its challenge, say). Prefer an errdefs category where one fits."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


class RequestTooLarge(errdefs.InvalidArgument):
    """The request body is larger than the handler accepts (413)."""


class ClientDisconnected(ConnectionError):
    """The client went away (or stalled past a deadline); nothing more can be sent."""


def status_for(exc: BaseException) -> int:
    match exc:
        case HTTPError():
            return exc.status
        case RequestTooLarge():
            return 413
        case errdefs.InvalidArgument():
            return 400
        case errdefs.NotFound():
            return 404
        case errdefs.Conflict():  # AlreadyExists is a Conflict
            return 409
        case errdefs.NotModified():
            return 304
        case errdefs.Unsupported():
            return 501
        case errdefs.Forbidden():
            return 403
        case errdefs.Unauthorized():
            return 401
        case errdefs.Unavailable():
            return 503
        case _:
            return 500  # the server logs these once, with the traceback


def message_for(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def error_body(message: str) -> bytes:
    return orjson.dumps({"message": message}, option=orjson.OPT_APPEND_NEWLINE)
