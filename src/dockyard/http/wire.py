"""Response heads on the wire: status lines with Go's reason phrases, header fields, and Go's
answer to an unparsable request. Pure functions; protocol.py decides what to send.
"""

from __future__ import annotations

# Go's http.StatusText: Docker clients see these phrases from dockerd.
REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted",
    203: "Non-Authoritative Information", 204: "No Content", 205: "Reset Content",
    206: "Partial Content", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request URI Too Long", 415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable", 417: "Expectation Failed", 422: "Unprocessable Entity",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def reason_for(status: int) -> str:
    return REASONS.get(status) or f"status code {status}"


_STATUS_LINES: dict[int, str] = {}


def _status_line(status: int, reason: str | None) -> str:
    if reason is not None:
        return f"HTTP/1.1 {status} {reason}\r\n"
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid status code {status}")
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason_for(status)}\r\n"
    return line


def encode_fields(headers) -> str:
    """Header field lines; refuses a CR or LF that would inject fields or a body."""
    lines = []
    for name, value in headers:
        if "\n" in value or "\r" in value or "\n" in name or ":" in name or "\r" in name:
            raise ValueError(f"invalid header field {name!r}: {value[:80]!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def encode_head(status: int, headers, reason: str | None = None, fixed: str = "") -> bytes:
    """A response head: status line, `fixed` (pre-encoded fields), header fields, empty line."""
    return (_status_line(status, reason) + fixed + encode_fields(headers) + "\r\n").encode("latin-1")


def error_head(status: int) -> bytes:
    """Go's answer to an unparsable request: plain text, then the connection is closed."""
    text = f"{status} {reason_for(status)}"
    return encode_head(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Connection", "close")]) + text.encode()
