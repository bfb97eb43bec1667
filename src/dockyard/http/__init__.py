"""HTTP plumbing shared by the API server, the registry server and clients.

- protocol.py, body.py, headers.py, wire.py: sans-IO HTTP/1.1 server framing (pipelining, keep-alive,
  HEAD, 100-continue, chunked bodies, Docker's hijack and upgrade), no sockets.
- mux.py: Docker's stdout/stderr multiplexing frames, sans-IO.
- transport.py, server.py, request.py: the asyncio edge (listening sockets, one task per
  connection in a TaskGroup, handlers, streaming responses, hijacked connections).
- errors.py: the one mapping from error categories to status codes; Docker's error body.
- router.py: routes as data, with dockerd's version prefixes and not-found behaviour.
- client.py: a small asyncio client (unix or TCP), including the hijack.

Imports only the standard library, errdefs, spec/, httptools, uvloop and orjson.
Importing this package imports nothing else: a container monitor that only needs mux.py does
not pay for asyncio and the server. The names below load their module on first use.
"""

import importlib

_EXPORTS = {
    "ClientDisconnected": "errors", "HTTPError": "errors", "RequestTooLarge": "errors",
    "status_for": "errors", "MULTIPLEXED_STREAM": "protocol", "RAW_STREAM": "protocol",
    "Handler": "request", "Request": "request", "Response": "request",
    "ResponseStream": "request", "empty_response": "request", "error_response": "request",
    "json_response": "request", "text_response": "request", "Route": "router",
    "Router": "router", "HTTPServer": "server", "run": "server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
