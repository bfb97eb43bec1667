"""Typed, frozen records for spec objects, and their JSON conversion.

Owns one thing: turning decoded JSON into typed, frozen objects and back, naming the exact field
(``process.args[0]``) when a value has the wrong type. It knows nothing of any one spec; models
declare fields as annotations, and every record keeps unknown JSON keys so that a round trip
loses nothing.

Why not dataclasses: the runtime builds these on every `dockyard-runtime run`, whose whole budget
is a few tens of milliseconds. Creating ~40 dataclasses costs ~14 ms at import (each one `exec`s
generated methods) and `typing` ~3 ms more; `Struct` costs microseconds and resolves annotations
lazily, on first decode, with plain `eval` of builtin generics (``tuple[str, ...]``, ``int | None``).

Field names are snake_case; the JSON key is their camelCase form unless the default is an
``F("jsonKey", ...)`` (OCI spells some keys irregularly: ``blockIO``, ``kernelTCP``).
"""

from __future__ import annotations

import sys
import types
from dockyard.errdefs import InvalidArgument

# No `typing` import: annotations stay strings (PEP 563) and only record fields are ever
# evaluated, so the hot path of the runtime does not pay for the module.

_MISSING = object()


class F:
    """A field default with an explicit JSON key and/or a factory for mutable defaults."""

    __slots__ = ("key", "default", "factory")

    def __init__(self, key: str | None = None, default: object = _MISSING, factory: object = None):
        self.key, self.default, self.factory = key, default, factory


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class Struct:
    """Base of spec records: keyword construction, frozen, equality by fields, JSON codec."""

    # (attr, json key, default or _MISSING, factory) in declaration order, per subclass
    _fields: tuple[tuple[str, str, object, object], ...] = ()
    _types: dict[str, object] | None = None

    def __init_subclass__(cls) -> None:
        rows = []
        for base in reversed(cls.__mro__[1:]):
            rows.extend(getattr(base, "_fields", ()) if base is not Struct else ())
        for attr in cls.__dict__.get("__annotations__", {}):
            if attr.startswith("_"):
                continue
            default = cls.__dict__.get(attr, _MISSING)
            key, factory = _camel(attr), None
            if isinstance(default, F):
                key, factory, default = default.key or key, default.factory, default.default
            if attr in cls.__dict__:
                delattr(cls, attr)  # instances carry the value; no class attribute shadows it
            rows.append((attr, key, default, factory))
        cls._fields = tuple(rows)
        cls._types = None

    def __init__(self, **kw: object) -> None:
        d = self.__dict__
        for attr, key, default, factory in self._fields:
            if attr in kw:
                d[attr] = kw.pop(attr)
            elif factory is not None:
                d[attr] = factory()
            elif default is not _MISSING:
                d[attr] = default
            else:
                raise TypeError(f"{type(self).__name__}: missing field {attr!r}")
        d["_extra"] = kw.pop("_extra", None) or {}
        if kw:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(kw)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    __delattr__ = __setattr__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, a) == getattr(other, a) for a, *_ in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = ", ".join(f"{a}={getattr(self, a)!r}" for a, *_ in self._fields)
        return f"{type(self).__name__}({parts})"

    def replace(self, **changes: object) -> object:
        """A copy with some fields changed."""
        kw = {a: getattr(self, a) for a, *_ in self._fields}
        kw.update(changes)
        return type(self)(_extra=self._extra, **kw)

    @property
    def extra(self) -> dict[str, object]:
        """JSON keys this model does not know, kept for the round trip."""
        return self.__dict__["_extra"]

    @classmethod
    def field_types(cls) -> dict[str, object]:
        if cls._types is None:
            ns = vars(sys.modules[cls.__module__])
            types_: dict[str, object] = {}
            for klass in reversed(cls.__mro__):
                for attr, ann in klass.__dict__.get("__annotations__", {}).items():
                    if not attr.startswith("_"):
                        types_[attr] = eval(ann, ns) if isinstance(ann, str) else ann  # noqa: S307
            cls._types = types_
        return cls._types


def decode(tp: object, value: object, path: str) -> object:
    """Convert decoded JSON ``value`` to type ``tp``; raise InvalidArgument naming ``path``."""
    if isinstance(tp, types.UnionType):  # X | None
        if value is None:
            return None
        return decode(next(a for a in tp.__args__ if a is not type(None)), value, path)
    if isinstance(tp, types.GenericAlias):
        origin, args = tp.__origin__, tp.__args__
        if origin is tuple:
            if not isinstance(value, list):
                raise InvalidArgument(f"{path}: expected an array, got {_kind(value)}")
            return tuple(decode(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if origin is dict:
            if not isinstance(value, dict):
                raise InvalidArgument(f"{path}: expected an object, got {_kind(value)}")
            return {k: decode(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Struct):
        return _from_json_slow(tp, value, path)
    if tp is object or tp is dict:
        return value
    if tp is int:
        if type(value) is not int:
            raise InvalidArgument(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool or tp is str:
        if type(value) is not tp:
            raise InvalidArgument(f"{path}: expected a {_kind_name(tp)}, got {value!r}")
        return value
    if tp is float:
        if type(value) not in (int, float):
            raise InvalidArgument(f"{path}: expected a number, got {value!r}")
        return float(value)
    raise TypeError(f"codec cannot decode {tp!r}")


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), repr(value))


def _kind_name(tp: type) -> str:
    return {bool: "boolean", str: "string"}[tp]


def from_json(cls: type[Struct], data: object, path: str = "") -> object:
    """Build record ``cls`` from a JSON object; unknown keys are kept in ``extra``.

    Runs the class's compiled decoder (`_decoder`), which checks types without naming paths;
    on the first value it does not accept, the whole object is decoded again by the
    field-by-field path that names the offending field (the same result, the same error)."""
    fast = _decoders.get(cls)
    if fast is None:
        fast = _decoder(cls)
    if fast is not _NO_FAST:
        try:
            return fast(data)
        except _Slow:
            pass
    return _from_json_slow(cls, data, path)


def _from_json_slow(cls: type[Struct], data: object, path: str = "") -> object:
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path or cls.__name__}: expected an object, got {_kind(data)}")
    hints = cls.field_types()
    kw: dict[str, object] = {}
    known = set()
    for attr, key, default, factory in cls._fields:
        known.add(key)
        value = data.get(key)
        sub = f"{path}.{key}" if path else key
        if value is not None:
            kw[attr] = decode(hints[attr], value, sub)
        elif default is _MISSING and factory is None:
            raise InvalidArgument(f"{sub}: required field is missing")
    kw["_extra"] = {k: v for k, v in data.items() if k not in known}
    return cls(**kw)


# -- compiled decoders ------------------------------------------------------------------------
#
# One closure per type, built once from the field tables: no isinstance chains, no path strings,
# records made without keyword unpacking. They accept exactly what `decode` accepts and build
# the same values; anything else raises _Slow, and `from_json` decodes again the slow way for
# its error (or, should a decoder be stricter than `decode`, for the value).


class _Slow(Exception):
    """A compiled decoder met a value it does not accept."""


def _NO_FAST(value: object) -> object:  # marks a type with no compiled decoder
    raise _Slow


_decoders: dict[object, object] = {}

# Records decoded from the very same JSON text are shared (they are frozen): Docker's default
# seccomp profile, hundreds of rules, is decoded once per process, not once per container.
_MEMO_SIZE = 8


def _decoder(tp: object):
    """The compiled decoder for ``tp`` (_NO_FAST when the codec cannot compile it)."""
    fn = _decoders.get(tp)
    if fn is None:
        try:
            fn = _compile(tp)
        except Exception:  # noqa: BLE001 - a type only `decode` knows how to refuse
            fn = _NO_FAST
        _decoders[tp] = fn
    return fn


def _compile(tp: object):
    if isinstance(tp, types.UnionType):  # X | None
        args = [a for a in tp.__args__ if a is not type(None)]
        inner = _decoder(args[0])
        if inner is _NO_FAST:
            return _NO_FAST

        def optional(v):
            return None if v is None else inner(v)
        return optional
    if isinstance(tp, types.GenericAlias):
        origin, args = tp.__origin__, tp.__args__
        if origin is tuple:
            item = args[0]
            if item is str or item is int or item is bool:
                def scalars(v, t=item):
                    if type(v) is not list:
                        raise _Slow
                    for x in v:
                        if type(x) is not t:
                            raise _Slow
                    return tuple(v)
                return scalars
            inner = _decoder(item)
            if inner is _NO_FAST:
                return _NO_FAST

            def array(v):
                if type(v) is not list:
                    raise _Slow
                return tuple([inner(x) for x in v])
            return array
        if origin is dict:
            inner = _decoder(args[1])
            if inner is _NO_FAST:
                return _NO_FAST

            def mapping(v):
                if type(v) is not dict:
                    raise _Slow
                return {k: inner(x) for k, x in v.items()}
            return mapping
        return _NO_FAST
    if isinstance(tp, type) and issubclass(tp, Struct):
        return _compile_struct(tp)
    if tp is object or tp is dict:
        return lambda v: v
    if tp is int or tp is bool or tp is str:
        def scalar(v, t=tp):
            if type(v) is not t:
                raise _Slow
            return v
        return scalar
    if tp is float:
        def number(v):
            if type(v) is not int and type(v) is not float:
                raise _Slow
            return float(v)
        return number
    return _NO_FAST


def _compile_struct(cls: type[Struct]):
    rows: list = []

    def record(v):
        if type(v) is not dict:
            raise _Slow
        if memo is not None:
            key = _memo_key(v)
            hit = memo.get(key)
            if hit is not None:
                return hit
        d = {}
        for attr, key_, dec, default, factory in rows:
            x = v.get(key_)
            if x is not None:
                d[attr] = dec(x)
            elif factory is not None:
                d[attr] = factory()
            elif default is not _MISSING:
                d[attr] = default
            else:
                raise _Slow  # required field missing
        d["_extra"] = {} if v.keys() <= known else {k: x for k, x in v.items() if k not in known}
        if plain:
            obj = new(cls)
            obj.__dict__.update(d)
        else:
            extra = d.pop("_extra")
            obj = cls(_extra=extra, **d)
        if memo is not None:
            if len(memo) >= _MEMO_SIZE:
                del memo[next(iter(memo))]
            memo[key] = obj
        return obj

    _decoders[cls] = record  # before the fields: a record type may contain itself
    hints = cls.field_types()
    for attr, key, default, factory in cls._fields:
        dec = _decoder(hints[attr])
        if dec is _NO_FAST:
            raise TypeError(f"codec cannot compile {hints[attr]!r}")
        rows.append((attr, key, dec, default, factory))
    known = frozenset(key for _, key, *_ in cls._fields)
    plain = cls.__init__ is Struct.__init__
    new = object.__new__
    memo: dict[str, Struct] | None = {} if getattr(cls, "_memo", False) else None
    return record


def _memo_key(value: dict) -> str:
    from dockyard.spec.jsonfast import dumps

    return dumps(value)


def encode(value: object) -> object:
    if isinstance(value, Struct):
        return to_json(value)
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def to_json(obj: Struct) -> dict[str, object]:
    """The JSON object for a record; None and empty optional collections are left out."""
    out: dict[str, object] = {}
    for attr, key, default, factory in obj._fields:
        value = getattr(obj, attr)
        required = default is _MISSING and factory is None
        if value is None or (not required and isinstance(value, (tuple, dict)) and not value):
            continue
        out[key] = encode(value)
    out.update(obj.extra)
    return out
