"""Event filters of a dependency, compiled once at load and cheap per event.

Semantics follow Argo Events so its sensors port unchanged (`pkg/sensors/dependencies/filter.go`,
docs `sensors/filters/{intro,data,expr,ctx,time}.md`). Four groups, evaluated in Argo's order:

- `exprs`: govaluate expressions (`tripwire.lang.expressions`) over `fields`, each a name bound to a
  gjson path of the event data; a referenced field whose path matches nothing fails the filter,
  and so does an evaluation error or a result other than `true`. `exprLogicalOperator`.
- `data`: a gjson path of the event data passes when ANY of `value` matches; `string` values
  are unanchored regular expressions (comparator `=` or `!=`), `number` values compare as floats
  with `= != > >= < <=`, `bool` values compare as booleans. With `!=` the filter passes when the
  data differs from at least one value. A path that matches nothing fails the filter. An
  optional `template` rewrites the value (as text, `.Input`) before comparing.
  `dataLogicalOperator`.
- `context`: each attribute set (`type`, `subject`, `source`, `datacontenttype`) must equal the
  event's exactly.
- `time`: the event time, read as wall-clock time in `timezone` (default UTC), must lie in
  `[start, stop)`; when `stop` is before `start` the window wraps midnight.

`compile_filters(spec, operator=...)` combines the groups that are set with the dependency's
`filtersLogicalOperator` (`and` by default); an absent group does not count, as in Argo. The
compiled check does no validation, no pydantic and, for the common shapes, no allocation per
event beyond what the lookups return. A rejection says which filter and what it saw
(`Rejection`), for logs and for "why didn't it fire?".
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import operator as operators
import re
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import orjson
import pydantic

from tripwire import events, manifests
from tripwire.lang import expressions, paths

Comparator = Literal["=", "!=", ">", ">=", "<", "<="]


def _empty_is_and(value: object) -> object:
    # Argo: "" (empty) defaults to `and`; values are lower case only.
    return "and" if value == "" else value


LogicalOperator = Annotated[
    Literal["and", "or"],
    pydantic.BeforeValidator(_empty_is_and, json_schema_input_type=Literal["and", "or", ""]),
]
"""`and`/`or` as Argo spells them; the empty string means `and`."""


def _templates() -> Any:
    """The Go-template module, imported only by sensors that use data filter `template`."""
    return importlib.import_module("tripwire.lang.templates")


class DataFilter(manifests.Model):
    path: str
    type: Literal["string", "number", "bool"]
    value: list[str] = pydantic.Field(min_length=1)
    comparator: Comparator | None = None
    template: str | None = None

    @pydantic.field_validator("path")
    @classmethod
    def _path_compiles(cls, path: str) -> str:
        paths.compile(path)
        return path

    @pydantic.field_validator("template")
    @classmethod
    def _template_compiles(cls, template: str | None) -> str | None:
        if template is not None:
            try:
                module = _templates()
            except ModuleNotFoundError:
                raise ValueError(
                    "`template` on data filters is not supported in this version"
                ) from None
            module.compile(template)
        return template

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


class ExprField(manifests.Model):
    name: str = pydantic.Field(min_length=1)
    path: str

    @pydantic.field_validator("path")
    @classmethod
    def _path_compiles(cls, path: str) -> str:
        paths.compile(path)
        return path


class ExprFilter(manifests.Model):
    expr: str
    # Argo skips an expression without fields; requiring one makes that mistake visible.
    fields: list[ExprField] = pydantic.Field(min_length=1)

    @pydantic.field_validator("expr")
    @classmethod
    def _expr_compiles(cls, expr: str) -> str:
        expressions.compile(expr)
        return expr

    @pydantic.model_validator(mode="after")
    def _names_unique(self) -> ExprFilter:
        seen: dict[str, int] = {}
        problems: list[tuple[manifests.Location, str]] = []
        for i, field in enumerate(self.fields):
            if field.name in seen:
                problems.append(
                    (
                        ("fields", i, "name"),
                        f"field {field.name!r} is already fields[{seen[field.name]}]",
                    )
                )
            seen.setdefault(field.name, i)
        if problems:
            raise manifests.FieldError(problems)
        return self


class ContextFilter(manifests.Model):
    """CloudEvents attributes that must equal the event's (Argo's `EventContext` filter)."""

    type: str | None = None
    subject: str | None = None
    source: str | None = None
    datacontenttype: str | None = None


_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


def _seconds_of_day(text: str) -> float:
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day like 09:30:00")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a time of day like 09:30:00")
    return hours * 3600 + minutes * 60 + seconds + float(f"0.{match[4] or 0}")


class TimeFilter(manifests.Model):
    """A daily window `[start, stop)` in `timezone`; it wraps midnight when stop < start."""

    start: str
    stop: str
    timezone: str = "UTC"

    @pydantic.field_validator("start", "stop")
    @classmethod
    def _clock(cls, value: str) -> str:
        _seconds_of_day(value)
        return value

    @pydantic.field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone like Europe/Berlin") from None
        return value


class EventFilters(manifests.Model):
    exprs: list[ExprFilter] = pydantic.Field(default_factory=list)
    expr_logical_operator: LogicalOperator = "and"
    data: list[DataFilter] = pydantic.Field(default_factory=list)
    data_logical_operator: LogicalOperator = "and"
    context: ContextFilter | None = None
    time: TimeFilter | None = None
    script: str | None = None

    @pydantic.field_validator("script")
    @classmethod
    def _no_script(cls, script: str | None) -> str | None:
        if script is not None:
            raise ValueError(
                "script filters (Lua) are not supported; use exprs or data filters instead"
            )
        return script


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Why one filter rejected one event: which filter, what it saw."""

    filter: str
    reason: str

    def __str__(self) -> str:
        return f"{self.filter}: {self.reason}"


Check = Callable[[events.Event], Rejection | None]


def _as_text(value: Any) -> str:
    """The value as gjson's `String()` gives it: strings raw, everything else as JSON."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _as_text(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- data ------------------------------------------------------------------------------------

_NUMBER_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operators.eq,
    "!=": operators.ne,
    ">": operators.gt,
    ">=": operators.ge,
    "<": operators.lt,
    "<=": operators.le,
}


def _string_matcher(values: Sequence[str], *, negate: bool) -> Callable[[Any], bool]:
    searches = tuple(re.compile(v).search for v in values)
    if len(searches) == 1:
        (search,) = searches

        def one(found: Any) -> bool:
            text = found if type(found) is str else _as_text(found)
            return (search(text) is None) is negate

        return one

    def any_of(found: Any) -> bool:
        text = found if type(found) is str else _as_text(found)
        for search in searches:  # noqa: SIM110 - a loop allocates no generator per event
            if (search(text) is None) is negate:
                return True
        return False

    return any_of


def _number_matcher(values: Sequence[str], comparator: str) -> Callable[[Any], bool]:
    compare = _NUMBER_OPS[comparator]
    numbers = tuple(float(v) for v in values)

    def matches(found: Any) -> bool:
        kind = type(found)
        if kind is int or kind is float:
            actual = found
        elif kind is str:
            try:
                actual = float(found)
            except ValueError:
                return False
        else:
            return False
        for number in numbers:  # noqa: SIM110 - a loop allocates no generator per event
            if compare(actual, number):
                return True
        return False

    return matches


def _bool_matcher(values: Sequence[str], *, negate: bool) -> Callable[[Any], bool]:
    wanted = {v.lower() == "true" for v in values}
    # "differs from at least one value" is "the opposite of some value is what was found".
    accepted = frozenset(wanted if not negate else {not w for w in wanted})

    def matches(found: Any) -> bool:
        if found is True or found is False:
            return found in accepted
        return (_as_text(found).lower() == "true") in accepted

    return matches


def _data_check(index: int, spec: DataFilter) -> Check:
    path = paths.compile(spec.path)
    get = path.get
    missing = paths.MISSING
    label = f"data[{index}] {spec.path}"
    negate = spec.comparator == "!="
    matches: Callable[[Any], bool]
    if spec.type == "string":
        matches = _string_matcher(spec.value, negate=negate)
        expect = f"{'not ' if negate else ''}matching one of {spec.value}"
    elif spec.type == "number":
        matches = _number_matcher(spec.value, spec.comparator or "=")
        expect = f"{spec.comparator or '='} one of {spec.value}"
    else:
        matches = _bool_matcher(spec.value, negate=negate)
        expect = f"{spec.comparator or '='} one of {spec.value}"

    if spec.template is not None:
        return _templated_check(spec.template, get=get, matches=matches, label=label, expect=expect)

    def check(event: events.Event) -> Rejection | None:
        found = get(event.data)
        if found is missing:
            return Rejection(label, "path not found in event data")
        if matches(found):
            return None
        return Rejection(label, f"got {_show(found)}, want {expect}")

    return check


def _templated_check(
    template: str, *, get: Callable[[Any], Any], matches: Callable[[Any], bool], label: str,
    expect: str,
) -> Check:  # fmt: skip
    module = _templates()
    render = module.compile(template).render
    input_text: Callable[[Any], str] = module.gjson_string  # what Argo binds to `.Input`
    missing = paths.MISSING

    def check(event: events.Event) -> Rejection | None:
        found = get(event.data)
        if found is missing:
            return Rejection(label, "path not found in event data")
        # Argo renders the value's text as `.Input`; an empty result is a failure, not "".
        try:
            out = render({"Input": input_text(found)})
        except ValueError as exc:  # templates.RenderError: this event fails, not the sensor
            return Rejection(label, f"template failed on {_show(found)}: {exc}")
        if out in ("", "<no value>"):
            return Rejection(label, f"template gave no value for {_show(found)}")
        if matches(out):
            return None
        return Rejection(label, f"got {_show(found)}, templated {out!r}, want {expect}")

    return check


# -- exprs -----------------------------------------------------------------------------------


def _expr_check(index: int, spec: ExprFilter) -> Check:
    expression = expressions.compile(spec.expr)
    used = expression.variables
    roots = {name.partition(".")[0] for name in used}
    # Bind only the fields the expression reads, in declaration order.
    bindings = tuple(
        (field.name, paths.compile(field.path))
        for field in spec.fields
        if field.name in used or field.name in roots
    )
    evaluate = expression.evaluate
    missing = paths.MISSING
    shown = spec.expr if len(spec.expr) <= 60 else spec.expr[:57] + "..."
    label = f'exprs[{index}] "{shown}"'

    def seen(values: dict[str, Any]) -> str:
        return ", ".join(f"{name}={_show(value)}" for name, value in values.items()) or "no fields"

    def check(event: events.Event) -> Rejection | None:
        data = event.data
        values: dict[str, Any] = {}
        for name, path in bindings:
            value = path.get(data)
            if value is missing:
                return Rejection(label, f"field {name}: path {path.text!r} not found in event data")
            values[name] = value
        try:
            result = evaluate(values)
        except expressions.EvaluationError as exc:
            return Rejection(label, f"{exc.reason}; {seen(values)}")
        if result is True:
            return None
        if result is False:
            return Rejection(label, seen(values))
        return Rejection(label, f"{seen(values)}; result {_show(result)} is not true")

    return check


# -- context ---------------------------------------------------------------------------------


def _context_check(spec: ContextFilter) -> Check:
    wanted = tuple(
        (name, value)
        for name in ("type", "subject", "source", "datacontenttype")
        if (value := getattr(spec, name))  # Argo: only non-empty values are enforced
    )

    def check(event: events.Event) -> Rejection | None:
        for name, value in wanted:
            got = getattr(event, name)
            if got != value:
                return Rejection(f"context.{name}", f"got {got!r}, want {value!r}")
        return None

    return check


# -- time ------------------------------------------------------------------------------------


def _time_check(spec: TimeFilter) -> Check:
    """Wall-clock window in a zone, DST-correct by construction.

    The event time is converted to the zone and its time of day compared with `[start, stop)`,
    wrapping midnight when stop < start (start == stop passes everything, as in Argo). Argo
    instead builds start/stop instants on the event's local date; the two agree except inside
    the hour a DST change skips or repeats: here a repeated 01:30 is in a 01:00-02:00 window
    both times, and a window starting in the skipped hour starts when the clock reads it.
    """
    zone = zoneinfo.ZoneInfo(spec.timezone)
    start, stop = _seconds_of_day(spec.start), _seconds_of_day(spec.stop)
    wraps = stop <= start
    window = f"{spec.start}-{spec.stop}"
    utc = datetime.UTC

    def check(event: events.Event) -> Rejection | None:
        when = event.time
        if when.tzinfo is None:
            when = when.replace(tzinfo=utc)  # naive times in events are UTC
        local = when.astimezone(zone)
        clock = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        inside = (clock >= start or clock < stop) if wraps else start <= clock < stop
        if inside:
            return None
        return Rejection(
            "time",
            f"event at {local:%Y-%m-%d %H:%M:%S} ({spec.timezone}) outside {window}",
        )

    return check


# -- combining -------------------------------------------------------------------------------


def _all_of(checks: Sequence[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    ordered = tuple(checks)

    def check(event: events.Event) -> Rejection | None:
        for one in ordered:
            rejection = one(event)
            if rejection is not None:
                return rejection
        return None

    return check


def _any_of(checks: Sequence[Check], *, label: str) -> Check:
    if len(checks) == 1:
        return checks[0]
    ordered = tuple(checks)

    def check(event: events.Event) -> Rejection | None:
        rejections = []
        for one in ordered:
            rejection = one(event)
            if rejection is None:
                return None
            rejections.append(str(rejection))
        return Rejection(label, "none passed: " + " / ".join(rejections))

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
            rejections: list[Rejection] = []
            for check in self.checks:
                rejection = check(event)
                if rejection is None:
                    return None
                rejections.append(rejection)
            if len(rejections) == 1:
                return rejections[0]
            return Rejection("filters", "none passed: " + " / ".join(map(str, rejections)))
        for check in self.checks:
            rejection = check(event)
            if rejection is not None:
                return rejection
        return None


def compile_filters(
    spec: EventFilters | None, *, operator: Literal["and", "or"] = "and"
) -> CompiledFilters:
    """Compile once; `operator` is the dependency's `filtersLogicalOperator`."""
    if spec is None:
        return CompiledFilters(checks=(), any_of=False)
    any_of = operator == "or"
    groups: list[list[Check]] = []
    if spec.exprs:
        exprs = [_expr_check(i, f) for i, f in enumerate(spec.exprs)]
        groups.append(
            exprs if spec.expr_logical_operator == "and" else [_any_of(exprs, label="exprs")]
        )
    if spec.data:
        data = [_data_check(i, f) for i, f in enumerate(spec.data)]
        groups.append(
            data if spec.data_logical_operator == "and" else [_any_of(data, label="data")]
        )
    if spec.context is not None:
        groups.append([_context_check(spec.context)])
    if spec.time is not None:
        groups.append([_time_check(spec.time)])
    if not any_of:
        # and-of-and flattens: one loop over every check, no nested calls per event.
        return CompiledFilters(checks=tuple(c for group in groups for c in group), any_of=False)
    return CompiledFilters(checks=tuple(_all_of(group) for group in groups), any_of=True)
