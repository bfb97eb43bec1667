"""Values and functions of Go templates as the docker CLI runs them, pure.

Owns how values print (Go's fmt of decoded JSON: ``map[k:v]``, ``[a b]``, ``<nil>``, floats in
strconv's 'g' form), Go's truth, and the function table: Go's builtins plus the docker CLI's
``json``, ``split``, ``join``, ``title``, ``lower``, ``upper``, ``pad`` and ``truncate`` (and the
header variants a table header is rendered with).
"""

from __future__ import annotations

import decimal
import json
import re
from typing import Any, Callable

from dockyard.cli.tmplparse import TemplateError


# -- values -------------------------------------------------------------------------------------

class _NoValue:
    """Go's invalid reflect.Value: a missing map key prints as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


def go_float(value: float) -> str:
    """Go's %v for float64 (strconv 'g', shortest): exponent form below 1e-4 or from 1e6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    dec = decimal.Decimal(repr(value))
    sign, digits, exp = dec.as_tuple()
    digs = list(digits)
    while len(digs) > 1 and digs[-1] == 0:
        digs.pop()
        exp += 1
    x = exp + len(digs) - 1
    if x < -4 or x >= 6:
        mant = str(digs[0]) + ("." + "".join(map(str, digs[1:])) if len(digs) > 1 else "")
        return f"{'-' if sign else ''}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    return format(decimal.Decimal((sign, tuple(digs), exp)), "f")


def format_value(value: Any) -> str:
    """Go's fmt.Sprint of a template value."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{format_value(k)}:{format_value(v)}" for k, v in items) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """The docker CLI's ``json`` function: compact, no HTML escaping.

    A context's own MarshalJSON goes through json.Marshal, which does escape HTML: docker
    prints ``"<none>"`` from ``docker images --format json`` as ``"\u003cnone\u003e"``.
    """
    text = json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    if hasattr(value, "to_json"):
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def _jsonable(value: Any) -> Any:
    if value is NO_VALUE:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    to_json = getattr(value, "to_json", None)
    if to_json is not None:
        return _jsonable(to_json())
    return str(value)


def truthy(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty values are false; structs are true."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def type_name(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "interface {}"
    named = getattr(value, "go_type", None)
    if named:
        return named
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
            dict: "map[string]interface {}"}.get(type(value), type(value).__name__)


# -- functions ----------------------------------------------------------------------------------

def _go_printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    argi = 0
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        m = re.match(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])", fmt[i:])
        if m is None:
            out.append(ch)
            i += 1
            continue
        flags, width, prec, verb = m.groups()
        i += m.end()
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        spec = f"%{flags}{width or ''}{'.' + prec if prec is not None else ''}"
        if verb in "dxXob" and isinstance(arg, int) and not isinstance(arg, bool):
            out.append((spec + verb) % arg if verb != "b" else format(arg, "b"))
        elif verb in "feEgG" and isinstance(arg, (int, float)):
            out.append((spec + verb) % arg)
        elif verb == "q":
            out.append(json.dumps(format_value(arg), ensure_ascii=False))
        elif verb == "t" and isinstance(arg, bool):
            out.append(format_value(arg))
        else:
            out.append((spec + "s") % format_value(arg))
    return "".join(out)


def _go_print(*args: Any) -> str:
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, NO_VALUE)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif item is None or item is NO_VALUE:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {type_name(item)}")
    return item


def _compare(op: str) -> Callable[..., bool]:
    def cmp(a: Any, *bs: Any) -> bool:
        if op == "eq":
            if not bs:
                raise TemplateError("error calling eq: missing argument for comparison")
            return any(_norm(a) == _norm(b) for b in bs)
        (b,) = bs
        a, b = _norm(a), _norm(b)
        if op == "ne":
            return a != b
        try:
            return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        except TypeError:
            raise TemplateError(f"error calling {op}: incompatible types for comparison") from None
    return cmp


def _norm(v: Any) -> Any:
    return None if v is NO_VALUE else v


def _title(s: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m[1] + m[2].upper(), s)


def _pad(source: Any, prefix: int, suffix: int) -> str:
    s = format_value(source)
    return s if s == "" else " " * prefix + s + " " * suffix


def _truncate(source: Any, length: int) -> str:
    s = format_value(source)
    return s if len(s.encode()) < length else s.encode()[:length].decode(errors="ignore")


def _join(items: Any, sep: str) -> str:
    if isinstance(items, str):
        raise TemplateError("error calling join: wrong type for value; expected []string; "
                            "got string")
    return sep.join(format_value(i) for i in (items or []))


def _len(item: Any) -> int:
    if isinstance(item, (str, list, tuple, dict)):
        return len(item.encode()) if isinstance(item, str) else len(item)
    raise TemplateError(f"error calling len: len of type {type_name(item)}")


def _slice(item: Any, *idx: int) -> Any:
    if len(idx) == 0:
        return item
    return item[idx[0]:idx[1]] if len(idx) > 1 else item[idx[0]:]


BUILTINS: dict[str, Callable[..., Any]] = {
    "not": lambda a: not truthy(a),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _go_print,
    "printf": _go_printf,
    "println": lambda *a: " ".join(format_value(x) for x in a) + "\n",
    "eq": _compare("eq"), "ne": _compare("ne"), "lt": _compare("lt"),
    "le": _compare("le"), "gt": _compare("gt"), "ge": _compare("ge"),
    "html": lambda *a: _go_print(*a).replace("&", "&amp;").replace("<", "&lt;")
                                       .replace(">", "&gt;").replace('"', "&#34;")
                                       .replace("'", "&#39;"),
    "urlquery": lambda *a: __import__("urllib.parse").parse.quote_plus(_go_print(*a)),
    "js": lambda *a: json.dumps(_go_print(*a))[1:-1],
    # the docker CLI's basic functions (templates.basicFunctions)
    "json": go_json,
    "split": lambda s, sep: format_value(s).split(sep) if sep else list(format_value(s)),
    "join": _join,
    "title": lambda s: _title(format_value(s)),
    "lower": lambda s: format_value(s).lower(),
    "upper": lambda s: format_value(s).upper(),
    "pad": _pad,
    "truncate": _truncate,
}

# Table headers are rendered with these instead, so that a header stays its plain name.
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v, "split": lambda v, _s: v, "join": lambda v, _s: v,
    "title": lambda v: v, "lower": lambda v: v, "upper": lambda v: v,
    "truncate": lambda v, _n: v,
}
