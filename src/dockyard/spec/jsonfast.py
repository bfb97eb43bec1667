"""JSON without `re`: the C scanner and encoder of the standard library, driven directly.

`import json` costs ~5 ms, four of them for `re` and `enum`, which `json.decoder` and
`json.encoder` pull in for their pure-Python fallbacks. The runtime parses config.json and
writes its state on every container start, so it uses `_json` (the same C code `json` uses)
with a few lines of glue. Output is compact; `json` itself is still the choice for indented
output off the start path.
"""

from __future__ import annotations

import _json

_WS = " \t\n\r"


class _Context:
    """What `_json.make_scanner` reads off a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())
_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False,
                             False, True)


def loads(data: bytes | str) -> object:
    """Parse one JSON document; ValueError (json.JSONDecodeError) when it is not one."""
    text = data.decode("utf-8-sig") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_WS))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value at char {exc.value}") from None
    except SystemError:
        # _json reports syntax errors with json.decoder.JSONDecodeError, which it finds only
        # when json.decoder is imported; import it (errors only) and scan again
        import json.decoder  # noqa: F401

        value, end = _scan(text, start)
    rest = text[end:]
    if rest.strip(_WS):
        raise ValueError(f"Extra data at char {end}")
    return value


def dumps(value: object) -> str:
    """Compact JSON, ASCII-escaped, as json.dumps(value, separators=(",", ":"))."""
    return "".join(_encode(value, 0))
