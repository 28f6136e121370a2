"""gjson-style paths to read event data.

Argo Events addresses event data with tidwall/gjson paths (filter `path`, parameter `dataKey`).
Manifests ported from Argo Events must keep working unchanged, so this module implements the
same path language over Python data as produced by `json.loads` (dict, list, str, int, float,
bool, None) instead of over JSON text.

These run for every event at thousands of events per second, so a path is parsed once into a
`Path` whose `get` walks the data without re-reading the text; the module-level `compile` is
LRU-cached. A path made only of plain keys and indexes (the common case, `body.ref`) takes a
dedicated loop with no per-step dispatch.

Reading returns the `MISSING` sentinel when nothing matches, so that a JSON `null` that is
present (returned as None) can be told apart from an absent value.

Supported gjson syntax: dotted keys, backslash escapes, `*`/`?` key wildcards, array indexes,
`#` (length), `#.path` (map over an array), queries `#(path op value)` and `#(...)#` with
`== = != < <= > >= % !%` (also the older `#[...]` brackets), nested queries, multipaths `[..]`
and `{..}`, the `|` pipe, and the modifiers `@this @reverse @flatten @keys @values`.
Not supported: modifier arguments, other modifiers, `..` JSON lines, `!` literals.

Writing parameters into trigger templates uses sjson paths, a different language: see
`tripwire.lang.dests`.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

from tripwire.errors import ExpressionError

__all__ = [
    "MISSING",
    "Path",
    "compile",
    "get",
]


class _Missing:
    """Type of `MISSING`; a singleton that is falsy and prints as MISSING."""

    _instance: ClassVar[_Missing | None] = None
    __slots__ = ()

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""Returned by `Path.get` when the path matches nothing (a present JSON null returns None)."""

_OPERATORS: Final = frozenset({"==", "=", "!=", "<", "<=", ">", ">=", "%", "!%"})
_OPERATOR_CHARS: Final = "!=<>%"
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_MODIFIERS: Final = frozenset({"this", "reverse", "flatten", "keys", "values"})
_NOT_SIMPLE_NAME: Final = frozenset("[]{}()#|!")


# --------------------------------------------------------------------------------------------
# Steps: one per path component. `apply` maps the current value to the next one (or MISSING);
# a `fanout` step instead selects a list whose elements each run the rest of the segment.


class _Step:
    __slots__ = ()
    fanout: ClassVar[bool] = False

    def apply(self, value: Any) -> Any:
        raise NotImplementedError

    def select(self, value: Any) -> list[Any] | _Missing:
        raise NotImplementedError


class _Key(_Step):
    """A literal key; an all-digit key also indexes arrays."""

    __slots__ = ("index", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.index = int(name) if name.isascii() and name.isdigit() else None

    def apply(self, value: Any) -> Any:
        if isinstance(value, dict):
            return value.get(self.name, MISSING)
        index = self.index
        if index is not None and isinstance(value, list) and index < len(value):
            return value[index]
        return MISSING


class _Wildcard(_Step):
    """A key with `*` or `?`: the first matching key of an object, in document order."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def apply(self, value: Any) -> Any:
        if isinstance(value, dict):
            match = self.pattern.fullmatch
            for key, item in value.items():
                if isinstance(key, str) and match(key):
                    return item
        return MISSING


class _Count(_Step):
    """`#` as the last component of a segment: the length of an array."""

    __slots__ = ()

    def apply(self, value: Any) -> Any:
        if isinstance(value, list):
            return len(value)
        if isinstance(value, dict):
            return value.get("#", MISSING)
        return MISSING


class _MapAll(_Step):
    """`#` followed by more components: the rest of the segment runs on every element."""

    __slots__ = ()
    fanout = True

    def select(self, value: Any) -> list[Any] | _Missing:
        return value if isinstance(value, list) else MISSING


class _Query(_Step):
    """`#(path op value)`: the first matching element, or with `#(...)#` all of them."""

    __slots__ = ("path", "test")

    def __init__(self, path: Path | None, test: Callable[[Any], bool]) -> None:
        self.path = path
        self.test = test

    def matches(self, element: Any) -> bool:
        if self.path is None:
            return self.test(element)
        if not isinstance(element, dict | list):
            return False
        found = self.path.get(element)
        return found is not MISSING and self.test(found)

    def apply(self, value: Any) -> Any:
        if isinstance(value, list):
            for element in value:
                if self.matches(element):
                    return element
        return MISSING

    def select(self, value: Any) -> list[Any] | _Missing:
        if not isinstance(value, list):
            return MISSING
        return [element for element in value if self.matches(element)]


class _QueryAll(_Query):
    __slots__ = ()
    fanout = True


class _Multipath(_Step):
    """`[a,b]` builds a list, `{a,"x":b}` an object, from sub-paths of the current value."""

    __slots__ = ("as_object", "items")

    def __init__(self, items: Sequence[tuple[str, Path]], *, as_object: bool) -> None:
        self.items = tuple(items)
        self.as_object = as_object

    def apply(self, value: Any) -> Any:
        if self.as_object:
            built: dict[str, Any] = {}
            for name, path in self.items:
                found = path.get(value)
                if found is not MISSING:
                    built[name] = found
            return built
        return [found for _, path in self.items if (found := path.get(value)) is not MISSING]


class _Modifier(_Step):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def apply(self, value: Any) -> Any:
        name = self.name
        if name == "this":
            return value
        if name == "reverse":
            if isinstance(value, list):
                return value[::-1]
            if isinstance(value, dict):
                return dict(reversed(value.items()))
            return value
        if name == "flatten":
            if not isinstance(value, list):
                return value
            flat: list[Any] = []
            for item in value:
                if isinstance(item, list):
                    flat.extend(item)
                else:
                    flat.append(item)
            return flat
        if not isinstance(value, dict):
            return MISSING
        return list(value) if name == "keys" else list(value.values())


def _run(steps: tuple[_Step, ...], start: int, value: Any) -> Any:
    last = len(steps) - 1
    for i in range(start, last + 1):
        step = steps[i]
        if step.fanout:
            selected = step.select(value)
            if isinstance(selected, _Missing) or i == last:
                return selected
            out = []
            for element in selected:
                found = _run(steps, i + 1, element)
                if found is not MISSING:
                    out.append(found)
            return out
        value = step.apply(value)
        if value is MISSING:
            return MISSING
    return value


class Path:
    """A compiled gjson path; `get` is safe to call concurrently and never raises."""

    __slots__ = ("_segments", "_simple", "text")

    def __init__(self, text: str, segments: Sequence[Sequence[_Step]]) -> None:
        self.text = text
        self._segments = tuple(tuple(segment) for segment in segments)
        only = self._segments[0] if len(self._segments) == 1 else ()
        simple = bool(only) and all(type(step) is _Key for step in only)
        self._simple: tuple[tuple[str, int | None], ...] | None = (
            tuple((step.name, step.index) for step in only if isinstance(step, _Key))
            if simple
            else None
        )

    def get(self, data: Any) -> Any:
        """The value at this path in `data`, or `MISSING` when nothing matches."""
        simple = self._simple
        if simple is not None:
            # Plain keys/indexes: inline loop, no per-step method call (the hot path).
            for name, index in simple:
                if isinstance(data, dict):
                    data = data.get(name, MISSING)
                    if data is MISSING:
                        return MISSING
                elif index is not None and isinstance(data, list) and index < len(data):
                    data = data[index]
                else:
                    return MISSING
            return data
        for segment in self._segments:
            data = _run(segment, 0, data)
            if data is MISSING:
                return MISSING
        return data

    def __repr__(self) -> str:
        return f"Path({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


# --------------------------------------------------------------------------------------------
# Query tests, built once per query so that matching is a few comparisons.

_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _like(pattern: str) -> re.Pattern[str]:
    """gjson's match syntax: `*` any run, `?` any one character, backslash escapes."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _make_test(op: str | None, rhs: str, *, quoted: bool) -> Callable[[Any], bool]:
    """Compare like gjson: the type of the value found decides how `rhs` is read.

    Strings compare as strings, numbers as numbers (a non-numeric `rhs` never matches), booleans
    against `true`/`false`. Extension: a JSON null matches `==null` and `!=` anything else.
    """
    if op is None:
        return lambda found: True
    rhs_num = float(rhs) if _JSON_NUMBER.fullmatch(rhs) else None
    rhs_bool = {"true": 1, "false": 0}.get(rhs)
    rhs_null = not quoted and rhs == "null"
    if op in ("%", "!%"):
        like = _like(rhs).fullmatch
        negate = op == "!%"

        def test_like(found: Any) -> bool:
            return type(found) is str and (like(found) is None) == negate

        return test_like
    compare = _ORDER[op]

    def test(found: Any) -> bool:
        kind = type(found)
        if kind is str:
            return compare(found, rhs)
        if kind is int or kind is float:
            return compare(found, rhs_num) if rhs_num is not None else op == "!="
        if kind is bool:
            if rhs_bool is None:
                return op == "!="
            return compare(int(found), rhs_bool)
        if found is None:
            return (op in ("==", "=") and rhs_null) or (op == "!=" and not rhs_null)
        return False

    return test


# --------------------------------------------------------------------------------------------
# Parser: recursive descent over the whole text so that errors carry absolute positions.


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)

    def error(self, message: str, position: int) -> ExpressionError:
        return ExpressionError(message, text=self.text, position=position)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def parse(self) -> Path:
        if not self.text:
            raise self.error("empty path", 0)
        path = self.path(stops="")
        if self.pos < self.end:  # only reachable through a stray closing character
            raise self.error(f"unexpected {self.peek()!r}", self.pos)
        return path

    def path(self, *, stops: str) -> Path:
        """Segments separated by `|`, up to the end of text or an unconsumed char in `stops`."""
        start = self.pos
        segments = [self.segment(stops=stops)]
        while self.peek() == "|":
            self.pos += 1
            segments.append(self.segment(stops=stops))
        return Path(self.text[start : self.pos], segments)

    def segment(self, *, stops: str) -> list[_Step]:
        steps: list[_Step] = []
        while True:
            steps.append(self.component(stops=stops))
            if self.peek() != ".":
                break
            self.pos += 1
        # `#` is a length at the end of a segment and a map over the array before more steps.
        return [
            _MapAll() if isinstance(step, _Count) and i < len(steps) - 1 else step
            for i, step in enumerate(steps)
        ]

    def after_component(self, stops: str) -> None:
        ch = self.peek()
        if ch and ch not in ".|" and ch not in stops:
            raise self.error(f"unexpected {ch!r} after path component", self.pos)

    def component(self, *, stops: str) -> _Step:
        start = self.pos
        ch = self.peek()
        if ch in ("[", "{"):
            step: _Step = self.multipath()
        elif ch == "#" and self.text[start + 1 : start + 2] in ("(", "["):
            step = self.query()
        elif ch == "#" and self.is_boundary(start + 1, stops):
            self.pos += 1
            step = _Count()
        elif ch == "@" and (name := self.modifier_name(stops)) is not None:
            self.pos += 1 + len(name)
            step = _Modifier(name)
        else:
            return self.key(stops=stops)
        self.after_component(stops)
        return step

    def is_boundary(self, position: int, stops: str) -> bool:
        return position >= self.end or self.text[position] in ".|" or self.text[position] in stops

    def modifier_name(self, stops: str) -> str | None:
        end = self.pos + 1
        while not self.is_boundary(end, stops):
            end += 1
        name = self.text[self.pos + 1 : end]
        return name if name in _MODIFIERS else None

    def key(self, *, stops: str) -> _Step:
        start = self.pos
        literal: list[str] = []
        regex: list[str] = []
        wild = False
        text, end = self.text, self.end
        pos = start
        while pos < end:
            ch = text[pos]
            if ch == "\\":
                if pos + 1 >= end:
                    raise self.error("dangling escape at end of path", pos)
                literal.append(text[pos + 1])
                regex.append(re.escape(text[pos + 1]))
                pos += 2
                continue
            if ch in ".|" or ch in stops:
                break
            if ch in "*?":
                wild = True
                regex.append(".*" if ch == "*" else ".")
            else:
                regex.append(re.escape(ch))
            literal.append(ch)
            pos += 1
        if pos == start:
            found = f"{text[pos]!r}" if pos < end else "end of path"
            raise self.error(f"expected a key, found {found}", pos)
        self.pos = pos
        if wild:
            return _Wildcard(re.compile("".join(regex), re.DOTALL))
        return _Key("".join(literal))

    def skip_spaces(self) -> None:
        while self.pos < self.end and self.text[self.pos] in " \t":
            self.pos += 1

    def query(self) -> _Step:
        start = self.pos
        closer = ")" if self.text[start + 1] == "(" else "]"
        self.pos += 2
        unterminated = f"unterminated query, expected {closer!r}"
        self.skip_spaces()
        path: Path | None = None
        if not self.peek():
            raise self.error(unterminated, start)
        if self.peek() not in _OPERATOR_CHARS + closer:
            # Spaces end a key here so that `#(last == "Murphy")` reads like gjson's trim.
            path = self.path(stops=_OPERATOR_CHARS + closer + " \t")
            self.skip_spaces()
        op: str | None = None
        rhs, quoted = "", False
        if self.peek() and self.peek() in _OPERATOR_CHARS:
            op_start = self.pos
            while self.peek() and self.peek() in _OPERATOR_CHARS:
                self.pos += 1
            op = self.text[op_start : self.pos]
            if op not in _OPERATORS:
                raise self.error(f"unknown query operator {op!r}", op_start)
            self.skip_spaces()
            rhs, quoted = self.query_value(closer, query_start=start)
        self.skip_spaces()
        if not self.peek():
            raise self.error(unterminated, start)
        if self.peek() != closer:
            raise self.error(f"expected {closer!r} to close the query", self.pos)
        self.pos += 1
        test = _make_test(op, rhs, quoted=quoted)
        if self.peek() == "#":
            self.pos += 1
            return _QueryAll(path, test)
        return _Query(path, test)

    def query_value(self, closer: str, *, query_start: int) -> tuple[str, bool]:
        start = self.pos
        text = self.text
        if self.peek() == '"':
            pos = start + 1
            while pos < self.end and text[pos] != '"':
                pos += 2 if text[pos] == "\\" else 1
            if pos >= self.end:
                raise self.error("unterminated string in query", start)
            self.pos = pos + 1
            try:
                return str(json.loads(text[start : self.pos])), True
            except json.JSONDecodeError as exc:
                raise self.error(f"invalid string in query: {exc.msg}", start + exc.pos) from None
        pos = start
        while pos < self.end and text[pos] != closer:
            pos += 1
        value = text[start:pos].rstrip(" \t")
        if not value:
            if pos >= self.end:
                raise self.error(f"unterminated query, expected {closer!r}", query_start)
            raise self.error("expected a value after the query operator", start)
        self.pos = start + len(value)
        return value, False

    def multipath(self) -> _Step:
        start = self.pos
        opener = self.peek()
        closer = "]" if opener == "[" else "}"
        as_object = opener == "{"
        self.pos += 1
        items: list[tuple[str, Path]] = []
        while True:
            self.skip_spaces()
            item_start = self.pos
            name = self.multipath_name(closer) if as_object else None
            if self.peek() in (",", closer):
                raise self.error("empty path in multipath", self.pos)
            if not self.peek():
                raise self.error(f"unterminated multipath, expected {closer!r}", start)
            path = self.path(stops="," + closer)
            if name is None:
                name = self.default_name(self.text[item_start : self.pos])
            items.append((name, path))
            ch = self.peek()
            if not ch:
                raise self.error(f"unterminated multipath, expected {closer!r}", start)
            self.pos += 1
            if ch == closer:
                return _Multipath(items, as_object=as_object)

    def multipath_name(self, closer: str) -> str | None:
        """An explicit `"name":` or `name:` before a sub-path of an object multipath."""
        text = self.text
        if self.peek() == '"':
            pos = self.pos + 1
            while pos < self.end and text[pos] != '"':
                pos += 2 if text[pos] == "\\" else 1
            if pos < self.end and text[pos + 1 : pos + 2] == ":":
                try:
                    name = str(json.loads(text[self.pos : pos + 1]))
                except json.JSONDecodeError as exc:
                    raise self.error(f"invalid name: {exc.msg}", self.pos + exc.pos) from None
                self.pos = pos + 2
                return name
            return None
        pos = self.pos
        while pos < self.end and text[pos] not in ",:" + closer + '[]{}()#|\\"':
            pos += 1
        if pos < self.end and text[pos] == ":" and pos > self.pos:
            name = text[self.pos : pos]
            self.pos = pos + 1
            return name
        return None

    @staticmethod
    def default_name(raw: str) -> str:
        """gjson names an unnamed object member after the last component, or `_`."""
        last = re.split(r"(?<!\\)[.|]", raw)[-1]
        if any(ch in _NOT_SIMPLE_NAME or ch < " " for ch in last):
            return "_"
        return re.sub(r"\\(.)", r"\1", last)


@functools.lru_cache(maxsize=4096)
def compile(path: str) -> Path:
    """Parse a gjson path once; raises ExpressionError with the failing position."""
    return _Parser(path).parse()


def get(data: Any, path: str) -> Any:
    """The value at gjson `path` in `data`, or `MISSING`; the path is compiled once and cached."""
    return compile(path).get(data)
