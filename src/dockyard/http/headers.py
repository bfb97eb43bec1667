"""Multi-valued maps for HTTP headers (case-insensitive) and query strings (case-sensitive).

Owns only the data structures and the query-string parsing; no framing, no I/O. Lookups follow
Go's net/http, which is what Docker clients were written against: `get` returns the first
value, `get_all` every value in arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl


class MultiDict(Mapping[str, str]):
    """An immutable ordered multi-map; `m[key]` and `get` give the first value."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)
        index: dict[str, list[str]] = {}
        for name, value in self._items:
            index.setdefault(self._key(name), []).append(value)
        self._index = index

    @staticmethod
    def _key(name: str) -> str:
        return name

    def __getitem__(self, name: str) -> str:
        return self._index[self._key(name)][0]

    def get(self, name: str, default=None):  # type: ignore[override]
        values = self._index.get(self._key(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(self._key(name), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def items_all(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in arrival order, names as they were sent."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return type(self) is type(other) and self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._items))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class Headers(MultiDict):
    """HTTP header fields; names compare case-insensitively (RFC 9110 §5.1)."""

    __slots__ = ()

    @staticmethod
    def _key(name: str) -> str:
        return name.lower()

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """From the parser's byte pairs; ISO-8859-1 keeps every octet (RFC 9110 §5.5)."""
        self = cls.__new__(cls)
        items = self._items = []
        index: dict[str, list[str]] = {}
        for n, v in raw:  # the per-request hot path: no per-field method calls
            name, value = n.decode("latin-1"), v.decode("latin-1")
            items.append((name, value))
            key = name.lower()
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)
        self._index = index
        return self


class Query(MultiDict):
    """A URL query string: `+` and percent-escapes decoded, blank values kept (Go's ParseQuery)."""

    __slots__ = ()

    @classmethod
    def parse(cls, query: str) -> Query:
        if not query:
            return EMPTY_QUERY
        return cls(parse_qsl(query, keep_blank_values=True))


EMPTY_QUERY = Query()
