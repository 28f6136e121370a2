"""Event filters of a dependency, compiled once at load and cheap per event.

Semantics follow Argo Events so its sensors port unchanged (`pkg/sensors/dependencies/filter.go`):
a data filter reads one gjson path of the event data and passes when ANY of its values matches;
`string` values are unanchored regular expressions (with comparator `=` or `!=`), `number`
values compare as floats with `= != > >= < <=`, `bool` values compare as booleans. A path that
matches nothing fails the filter. Several data filters combine with `dataLogicalOperator`
(`and` by default).

A rejection says why (`Rejection`), for logs and for "why didn't it fire?".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Literal

import orjson
import pydantic

from tripwire import events, manifests, paths

Comparator = Literal["=", "!=", ">", ">=", "<", "<="]


class DataFilter(manifests.Model):
    path: str
    type: Literal["string", "number", "bool"]
    value: list[str] = pydantic.Field(min_length=1)
    comparator: Comparator | None = None

    @pydantic.field_validator("path")
    @classmethod
    def _path_compiles(cls, path: str) -> str:
        paths.compile(path)
        return path

    @pydantic.model_validator(mode="after")
    def _values_parse(self) -> DataFilter:
        if self.type == "string":
            if self.comparator not in (None, "=", "!="):
                raise ValueError("a string filter compares with = or != only")
            bad = []
            for i, v in enumerate(self.value):
                try:
                    re.compile(v)
                except re.error as exc:
                    bad.append((("value", i), f"{v!r} is not a valid regular expression: {exc}"))
            if bad:
                raise manifests.FieldError(bad)
        elif self.type == "number":
            bad = []
            for i, v in enumerate(self.value):
                try:
                    float(v)
                except ValueError:
                    bad.append((("value", i), f"{v!r} is not a number"))
            if bad:
                raise manifests.FieldError(bad)
        else:
            if self.comparator not in (None, "=", "!="):
                raise ValueError("a bool filter compares with = or != only")
            for v in self.value:
                if v.lower() not in ("true", "false"):
                    raise ValueError(f"value {v!r} is not true or false")
        return self


class EventFilters(manifests.Model):
    data: list[DataFilter] = pydantic.Field(default_factory=list)
    data_logical_operator: Literal["and", "or"] = "and"


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Why one filter rejected one event: which filter, what it saw."""

    filter: str
    reason: str

    def __str__(self) -> str:
        return f"{self.filter}: {self.reason}"


Check = Callable[[events.Event], Rejection | None]

_NUMBER_OPS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def _show(value: Any) -> str:
    text = _as_text(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _data_check(index: int, spec: DataFilter) -> Check:
    path = paths.compile(spec.path)
    label = f"data[{index}] {spec.path}"
    # Argo: a filter passes when ANY value satisfies the comparison; with `!=` that means
    # "differs from at least one value", for strings, numbers and bools alike.
    negate = spec.comparator == "!="
    if spec.type == "string":
        patterns = [re.compile(v) for v in spec.value]

        def matches(found: Any) -> bool:
            text = _as_text(found)
            return any((p.search(text) is None) == negate for p in patterns)

    elif spec.type == "number":
        op = _NUMBER_OPS[spec.comparator or "="]
        numbers = [float(v) for v in spec.value]

        def matches(found: Any) -> bool:
            if isinstance(found, bool):
                return False
            try:
                actual = float(found)
            except (TypeError, ValueError):
                return False
            return any(op(actual, n) for n in numbers)

    else:
        wanted = {v.lower() == "true" for v in spec.value}

        def matches(found: Any) -> bool:
            actual = found if isinstance(found, bool) else _as_text(found).lower() == "true"
            return any((w == actual) != negate for w in wanted)

    if spec.type == "string":
        expect = f"{'not ' if negate else ''}matching one of {spec.value}"
    else:
        expect = f"{spec.comparator or '='} one of {spec.value}"

    def check(event: events.Event) -> Rejection | None:
        found = path.get(event.data)
        if found is paths.MISSING:
            return Rejection(label, "path not found in event data")
        if matches(found):
            return None
        return Rejection(label, f"got {_show(found)}, want {expect}")

    return check


@dataclasses.dataclass(frozen=True, slots=True)
class CompiledFilters:
    """All filters of one dependency; `check` returns None when the event passes."""

    checks: tuple[Check, ...]
    any_of: bool

    def check(self, event: events.Event) -> Rejection | None:
        if not self.checks:
            return None
        if self.any_of:
            first: Rejection | None = None
            for check in self.checks:
                rejection = check(event)
                if rejection is None:
                    return None
                first = first or rejection
            return first
        for check in self.checks:
            rejection = check(event)
            if rejection is not None:
                return rejection
        return None


def compile_filters(spec: EventFilters | None) -> CompiledFilters:
    if spec is None:
        return CompiledFilters(checks=(), any_of=False)
    checks = tuple(_data_check(i, f) for i, f in enumerate(spec.data))
    return CompiledFilters(checks=checks, any_of=spec.data_logical_operator == "or")
