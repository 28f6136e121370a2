"""Data filters against Argo Events' documented semantics (any value matches; regex unanchored)."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

import pydantic
import pytest

from sensors import filters
from tripwire import events


def _event(data: Any) -> events.Event:
    return events.Event(id="e1", source="gw", subject="push", type="webhook", data=data)


def _check(data: Any, *specs: dict[str, Any], operator: str = "and") -> str | None:
    model = filters.EventFilters.model_validate(
        {"data": list(specs), "dataLogicalOperator": operator}
    )
    rejection = filters.compile_filters(model).check(_event(data))
    return None if rejection is None else str(rejection)


PUSH = {"body": {"ref": "refs/heads/main", "size": 3, "forced": False, "tags": ["a", "b"]}}


@pytest.mark.parametrize(
    ("spec", "passes"),
    [
        ({"path": "body.ref", "type": "string", "value": ["refs/heads/main"]}, True),
        ({"path": "body.ref", "type": "string", "value": ["main"]}, True),  # unanchored
        ({"path": "body.ref", "type": "string", "value": ["^main$"]}, False),
        ({"path": "body.ref", "type": "string", "value": ["dev", "ma.n"]}, True),  # any value
        ({"path": "body.ref", "type": "string", "value": ["main"], "comparator": "!="}, False),
        ({"path": "body.ref", "type": "string", "value": ["dev"], "comparator": "!="}, True),
        ({"path": "body.size", "type": "number", "value": ["3"]}, True),
        ({"path": "body.size", "type": "number", "value": ["3.0"], "comparator": "="}, True),
        ({"path": "body.size", "type": "number", "value": ["2"], "comparator": ">"}, True),
        ({"path": "body.size", "type": "number", "value": ["3"], "comparator": ">"}, False),
        ({"path": "body.size", "type": "number", "value": ["3"], "comparator": ">="}, True),
        ({"path": "body.size", "type": "number", "value": ["3"], "comparator": "<"}, False),
        ({"path": "body.size", "type": "number", "value": ["4"], "comparator": "<="}, True),
        ({"path": "body.size", "type": "number", "value": ["3"], "comparator": "!="}, False),
        ({"path": "body.size", "type": "number", "value": ["1", "9"], "comparator": ">"}, True),
        ({"path": "body.ref", "type": "number", "value": ["3"]}, False),  # not a number
        ({"path": "body.forced", "type": "bool", "value": ["false"]}, True),
        ({"path": "body.forced", "type": "bool", "value": ["true"]}, False),
        ({"path": "body.forced", "type": "bool", "value": ["true"], "comparator": "!="}, True),
        ({"path": "body.tags.1", "type": "string", "value": ["^b$"]}, True),
        ({"path": "body.tags.#", "type": "number", "value": ["2"]}, True),
        ({"path": "body.missing", "type": "string", "value": [".*"]}, False),
    ],
)
def test_one_data_filter(spec: dict[str, Any], passes: bool) -> None:
    assert (_check(PUSH, spec) is None) is passes


def test_numeric_strings_compare_as_numbers() -> None:
    spec = {"path": "body.n", "type": "number", "value": ["10"], "comparator": ">"}
    assert _check({"body": {"n": "11.5"}}, spec) is None


def test_filters_combine_with_and_by_default_and_or_on_request() -> None:
    good = {"path": "body.ref", "type": "string", "value": ["main"]}
    bad = {"path": "body.size", "type": "number", "value": ["100"]}
    assert _check(PUSH, good, bad) is not None
    assert _check(PUSH, good, bad, operator="or") is None
    assert _check(PUSH, bad, bad, operator="or") is not None


def test_rejection_names_the_filter_and_what_it_saw() -> None:
    spec = {"path": "body.ref", "type": "string", "value": ["^refs/heads/dev$"]}
    assert _check(PUSH, spec) == (
        "data[0] body.ref: got 'refs/heads/main', want matching one of ['^refs/heads/dev$']"
    )
    missing = {"path": "body.nope", "type": "string", "value": ["x"]}
    assert _check(PUSH, missing) == "data[0] body.nope: path not found in event data"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"path": "body.ref", "type": "string", "value": ["("]}, "not a valid regular expression"),
        ({"path": "a", "type": "number", "value": ["ten"]}, "'ten' is not a number"),
        ({"path": "a", "type": "bool", "value": ["yes"]}, "'yes' is not true or false"),
        ({"path": "a", "type": "string", "value": ["x"], "comparator": ">"}, "= or != only"),
        ({"path": "a.#(", "type": "string", "value": ["x"]}, "a.#("),
        ({"path": "a", "type": "string", "value": []}, "at least 1"),
    ],
)
def test_bad_filters_are_refused_at_load(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("(", r"\(")):
        filters.EventFilters.model_validate({"data": [spec]})


# ---------------------------------------------------------------------------------------------
# Truth tables from Argo Events' documented semantics (docs/sensors/filters/*.md, filter.go).

UTC = datetime.UTC


def _full_event(
    data: Any = None,
    *,
    when: datetime.datetime | None = None,
    type: str = "webhook",
    subject: str = "push",
    source: str = "gw",
    datacontenttype: str = "application/json",
) -> events.Event:
    return events.Event(
        id="e1",
        source=source,
        subject=subject,
        type=type,
        data=PUSH if data is None else data,
        time=when or datetime.datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        datacontenttype=datacontenttype,
    )


def _run(spec: dict[str, Any], event: events.Event, *, operator: str = "and") -> str | None:
    model = filters.EventFilters.model_validate(spec)
    compiled = filters.compile_filters(model, operator=operator)  # type: ignore[arg-type]
    rejection = compiled.check(event)
    return None if rejection is None else str(rejection)


DATA = {
    "body": {
        "action": "opened",
        "labels": [{"id": "1234", "name": "Webhook"}, {"id": "5678", "name": "Approved"}],
        "n": -2.5,
        "none": None,
        "obj": {"k": 1},
        "flag": True,
        "sflag": "true",
    }
}


@pytest.mark.parametrize(
    ("spec", "passes"),
    [
        # string: unanchored regex, any value; `!=` passes when ANY value does not match
        ({"path": "body.action", "type": "string", "value": ["open"]}, True),
        ({"path": "body.action", "type": "string", "value": ["^closed$", "^opened$"]}, True),
        (
            {"path": "body.action", "type": "string", "value": ["opened", "x"], "comparator": "!="},
            True,
        ),
        (
            {"path": "body.action", "type": "string", "value": ["open", "ed$"], "comparator": "!="},
            False,
        ),
        ({"path": "body.action", "type": "string", "value": ["OPENED"]}, False),  # case matters
        ({"path": "body.action", "type": "string", "value": ["(?i)OPENED"]}, True),
        # non-string data is matched through its JSON text, as gjson's String()
        ({"path": "body.obj", "type": "string", "value": ['^\\{"k":1\\}$']}, True),
        ({"path": "body.none", "type": "string", "value": ["^null$"]}, True),
        ({"path": "body.n", "type": "string", "value": ["^-2.5$"]}, True),
        # Argo's documented multipath example
        (
            {
                "path": 'body.action,body.labels.#(name=="Webhook").name',
                "type": "string",
                "value": ['"opened","Webhook"'],
            },
            False,  # gjson multipaths without brackets are not supported: path is one key
        ),
        (
            {
                "path": '[body.action,body.labels.#(name=="Webhook").name]',
                "type": "string",
                "value": ['"opened","Webhook"'],
            },
            True,
        ),
        ({"path": "body.labels.#.name", "type": "string", "value": ["Approved"]}, True),
        ({"path": 'body.labels.#(id=="5678").name', "type": "string", "value": ["^Appr"]}, True),
        # number: float comparison with each comparator, any value
        ({"path": "body.n", "type": "number", "value": ["-2.5"]}, True),
        ({"path": "body.n", "type": "number", "value": ["-2.50"], "comparator": "="}, True),
        ({"path": "body.n", "type": "number", "value": ["-2.5"], "comparator": "!="}, False),
        ({"path": "body.n", "type": "number", "value": ["-2.5", "1"], "comparator": "!="}, True),
        ({"path": "body.n", "type": "number", "value": ["-3"], "comparator": ">"}, True),
        ({"path": "body.n", "type": "number", "value": ["-2.5"], "comparator": ">"}, False),
        ({"path": "body.n", "type": "number", "value": ["-2.5"], "comparator": ">="}, True),
        ({"path": "body.n", "type": "number", "value": ["-2.5"], "comparator": "<"}, False),
        ({"path": "body.n", "type": "number", "value": ["-2"], "comparator": "<"}, True),
        ({"path": "body.n", "type": "number", "value": ["-2.5"], "comparator": "<="}, True),
        ({"path": "body.labels.#", "type": "number", "value": ["1"], "comparator": ">"}, True),
        ({"path": "body.labels.0.id", "type": "number", "value": ["1234"]}, True),  # "1234"
        ({"path": "body.flag", "type": "number", "value": ["1"]}, False),  # a bool is no number
        ({"path": "body.none", "type": "number", "value": ["0"]}, False),
        # bool: compared as booleans; a string "true" reads as true
        ({"path": "body.flag", "type": "bool", "value": ["true"]}, True),
        ({"path": "body.flag", "type": "bool", "value": ["True"]}, True),
        ({"path": "body.flag", "type": "bool", "value": ["false"]}, False),
        ({"path": "body.flag", "type": "bool", "value": ["false", "true"]}, True),
        ({"path": "body.flag", "type": "bool", "value": ["false"], "comparator": "!="}, True),
        ({"path": "body.sflag", "type": "bool", "value": ["true"]}, True),
        ({"path": "body.action", "type": "bool", "value": ["false"]}, True),
        # a path that matches nothing fails whatever the comparator
        ({"path": "body.nope", "type": "string", "value": ["x"], "comparator": "!="}, False),
        ({"path": "body.nope", "type": "number", "value": ["1"], "comparator": "!="}, False),
        ({"path": "body.labels.9", "type": "bool", "value": ["false"]}, False),
    ],
)
def test_data_truth_table(spec: dict[str, Any], passes: bool) -> None:
    assert (_run({"data": [spec]}, _full_event(DATA)) is None) is passes


@pytest.mark.parametrize(
    ("results", "operator", "passes"),
    [
        ((True, True), "and", True),
        ((True, False), "and", False),
        ((False, True), "and", False),
        ((False, False), "and", False),
        ((True, True), "or", True),
        ((True, False), "or", True),
        ((False, True), "or", True),
        ((False, False), "or", False),
        ((False, False, True), "or", True),
        ((True, True, False), "", False),  # Argo: empty means `and`
        ((True,), "or", True),
        ((False,), "or", False),
    ],
)
def test_data_logical_operator(results: tuple[bool, ...], operator: str, passes: bool) -> None:
    specs = [
        {"path": "body.action", "type": "string", "value": ["opened" if ok else "closed"]}
        for ok in results
    ]
    spec = {"data": specs, "dataLogicalOperator": operator}
    assert (_run(spec, _full_event(DATA)) is None) is passes


def test_data_or_rejection_lists_every_filter() -> None:
    spec = {
        "dataLogicalOperator": "or",
        "data": [
            {"path": "body.action", "type": "string", "value": ["closed"]},
            {"path": "body.nope", "type": "number", "value": ["1"]},
        ],
    }
    assert _run(spec, _full_event(DATA)) == (
        "data: none passed: data[0] body.action: got 'opened', want matching one of ['closed']"
        " / data[1] body.nope: path not found in event data"
    )


def _expr(expr: str, **fields: str) -> dict[str, Any]:
    return {"expr": expr, "fields": [{"name": n, "path": p} for n, p in fields.items()]}


EXPR_DATA = {"a": {"b": "x", "c": {"d": True}, "e": 2, "n": 7, "tags": ["bug", "ui"]}}


@pytest.mark.parametrize(
    ("expr", "passes"),
    [
        # Argo's filter_expr_test cases
        (_expr('b == "x"', b="a.b"), True),
        (_expr('b != "b"', b="a.b"), True),
        (_expr('b == "b"', b="a.b"), False),
        (_expr("e == 2", e="a.e"), True),
        (_expr("e < 1", e="a.e"), False),
        (_expr('b =~ "^x"', b="a.b"), True),
        (_expr('b !~ "x"', b="a.b"), False),
        (_expr('b != "b" && d == true', b="a.b", d="a.c.d"), True),
        (_expr('b != "b" && d == true', b="a.b", d="a.d"), False),  # missing path fails
        (_expr('b == "b" || d == true', b="a.b", d="a.c.d"), True),
        (_expr('b == "x" || (d == true && e == 2)', b="a.b", d="a.c.d"), True),  # e unbound
        # beyond Argo's tests: arithmetic, ternary, membership, objects
        (_expr("n % 2 == 1 && n * 2 > 10", n="a.n"), True),
        (_expr("(n > 5 ? 'big' : 'small') == 'big'", n="a.n"), True),
        (_expr("'bug' in tags", tags="a.tags"), True),
        (_expr("a.e + 1 == 3", a="a"), True),  # a dotted name reads into a bound object
        (_expr("n > 'x'", n="a.n"), False),  # a type error fails the filter
        (_expr("n + 1", n="a.n"), False),  # a result that is not `true` fails it
        (_expr("n > 1", n="a.n", unused="a.nope"), True),  # only referenced fields are read
    ],
)
def test_expr_truth_table(expr: dict[str, Any], passes: bool) -> None:
    assert (_run({"exprs": [expr]}, _full_event(EXPR_DATA)) is None) is passes


@pytest.mark.parametrize(
    ("results", "operator", "passes"),
    [
        ((True, True), "and", True),
        ((True, False), "and", False),
        ((False, True), "or", True),
        ((False, False), "or", False),
        ((False, None), "or", False),  # None: the field's path is missing
        ((None, True), "or", True),
        ((True, None), "and", False),
    ],
)
def test_expr_logical_operator(
    results: tuple[bool | None, ...], operator: str, passes: bool
) -> None:
    exprs = [
        _expr('b == "x"', b="a.b")
        if ok
        else (_expr('b == "y"', b="a.b") if ok is False else _expr("z", z="a.z"))
        for ok in results
    ]
    spec = {"exprs": exprs, "exprLogicalOperator": operator}
    assert (_run(spec, _full_event(EXPR_DATA)) is None) is passes


def test_expr_rejection_shows_the_expression_and_the_values() -> None:
    spec = {"exprs": [_expr("a > 5 && b == 'x'", a="v.a", b="v.b")]}
    event = _full_event({"v": {"a": 3, "b": "x"}})
    assert _run(spec, event) == "exprs[0] \"a > 5 && b == 'x'\": a=3, b='x'"
    missing = _full_event({"v": {"b": "x"}})
    assert _run(spec, missing) == (
        "exprs[0] \"a > 5 && b == 'x'\": field a: path 'v.a' not found in event data"
    )
    typed = _full_event({"v": {"a": "three", "b": "x"}})
    assert _run(spec, typed) == (
        "exprs[0] \"a > 5 && b == 'x'\": '>' compares two numbers or two strings,"
        " got 'three' and 5; a='three', b='x'"
    )
    unbound = {"exprs": [_expr("a > 1 && zz == 2", a="v.a")]}
    assert _run(unbound, event) == "exprs[0] \"a > 1 && zz == 2\": no value for 'zz'; a=3"
    odd = {"exprs": [_expr("a + 1", a="v.a")]}
    assert _run(odd, event) == 'exprs[0] "a + 1": a=3; result 4.0 is not true'


@pytest.mark.parametrize(
    ("context", "passes"),
    [
        ({}, True),
        ({"type": "webhook"}, True),
        ({"type": "calendar"}, False),
        ({"type": "web.*"}, False),  # exact, not a regex
        ({"type": "Webhook"}, False),
        ({"subject": "push"}, True),
        ({"subject": "pull"}, False),
        ({"source": "gw"}, True),
        ({"source": "other"}, False),
        ({"datacontenttype": "application/json"}, True),
        ({"datacontenttype": "text/plain"}, False),
        ({"type": "webhook", "subject": "push", "source": "gw"}, True),
        ({"type": "webhook", "subject": "pull", "source": "gw"}, False),
        ({"type": "", "subject": "push"}, True),  # an empty value is not enforced
    ],
)
def test_context_truth_table(context: dict[str, str], passes: bool) -> None:
    assert (_run({"context": context}, _full_event()) is None) is passes


def test_context_rejection_names_the_attribute() -> None:
    spec = {"context": {"source": "gw", "subject": "pull"}}
    assert _run(spec, _full_event()) == "context.subject: got 'push', want 'pull'"


def _at(zone: str, *parts: int) -> datetime.datetime:
    """A wall-clock time in `zone` (fold=0: the first of a repeated time)."""
    return _utc(*parts).replace(tzinfo=zoneinfo.ZoneInfo(zone))


def _utc(year: int, month: int, day: int, *clock: int) -> datetime.datetime:
    hour, minute, second = (*clock, 0, 0, 0)[:3]
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "when", "passes"),
    [
        # start < stop: [start, stop), UTC by default
        (("09:00:00", "17:00:00"), _utc(2024, 6, 1, 8, 59, 59), False),
        (("09:00:00", "17:00:00"), _utc(2024, 6, 1, 9, 0, 0), True),
        (("09:00:00", "17:00:00"), _utc(2024, 6, 1, 16, 59, 59), True),
        (("09:00:00", "17:00:00"), _utc(2024, 6, 1, 17, 0, 0), False),
        (("9:00:00", "17:00:00"), _utc(2024, 6, 1, 9, 30), True),  # one-digit hour, as Go
        (("09:00:00.5", "17:00:00"), _utc(2024, 6, 1, 9, 0, 0), False),
        # stop < start: wraps midnight, [start, 24:00) or [00:00, stop)
        (("22:00:00", "02:00:00"), _utc(2024, 6, 1, 21, 59, 59), False),
        (("22:00:00", "02:00:00"), _utc(2024, 6, 1, 22, 0, 0), True),
        (("22:00:00", "02:00:00"), _utc(2024, 6, 1, 23, 59, 59), True),
        (("22:00:00", "02:00:00"), _utc(2024, 6, 2, 0, 0, 0), True),
        (("22:00:00", "02:00:00"), _utc(2024, 6, 2, 1, 59, 59), True),
        (("22:00:00", "02:00:00"), _utc(2024, 6, 2, 2, 0, 0), False),
        (("22:00:00", "02:00:00"), _utc(2024, 6, 2, 12, 0, 0), False),
        # start == stop: Argo passes everything
        (("05:00:00", "05:00:00"), _utc(2024, 6, 1, 12, 0, 0), True),
        # in a zone: Tokyo has no DST, UTC+9
        (("09:00:00", "17:00:00", "Asia/Tokyo"), _utc(2024, 6, 1, 0, 30), True),
        (("09:00:00", "17:00:00", "Asia/Tokyo"), _utc(2024, 6, 1, 8, 30), False),
        (("22:00:00", "06:00:00", "Asia/Tokyo"), _utc(2024, 6, 1, 14, 0), True),  # 23:00 JST
        (("22:00:00", "06:00:00", "Asia/Tokyo"), _utc(2024, 6, 1, 20, 59), True),  # 05:59 JST
        (("22:00:00", "06:00:00", "Asia/Tokyo"), _utc(2024, 6, 1, 21, 0), False),  # 06:00 JST
        # a naive event time is UTC
        (("09:00:00", "17:00:00"), datetime.datetime(2024, 6, 1, 10, 0), True),
    ],
)
def test_time_window(window: tuple[str, ...], when: datetime.datetime, passes: bool) -> None:
    spec = {"start": window[0], "stop": window[1]}
    if len(window) > 2:
        spec["timezone"] = window[2]
    assert (_run({"time": spec}, _full_event(when=when)) is None) is passes


NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("zone", "window", "when", "passes"),
    [
        # New York, spring forward 2024-03-10: 02:00 EST -> 03:00 EDT (07:00 UTC).
        # 09:00-17:00 local moves by an hour in UTC across the change.
        (NEW_YORK, ("09:00:00", "17:00:00"), _utc(2024, 3, 9, 13, 30), False),  # 08:30 EST
        (NEW_YORK, ("09:00:00", "17:00:00"), _utc(2024, 3, 10, 13, 30), True),  # 09:30 EDT
        (NEW_YORK, ("09:00:00", "17:00:00"), _utc(2024, 3, 10, 21, 0), False),  # 17:00 EDT
        (NEW_YORK, ("01:00:00", "03:30:00"), _utc(2024, 3, 10, 6, 59), True),  # 01:59 EST
        (NEW_YORK, ("01:00:00", "03:30:00"), _utc(2024, 3, 10, 7, 0), True),  # 03:00 EDT
        (NEW_YORK, ("01:00:00", "03:30:00"), _utc(2024, 3, 10, 7, 30), False),  # 03:30 EDT
        # a window starting in the skipped hour starts when the clock reads it
        (NEW_YORK, ("02:30:00", "04:00:00"), _at(NEW_YORK, 2024, 3, 10, 1, 45), False),
        (NEW_YORK, ("02:30:00", "04:00:00"), _at(NEW_YORK, 2024, 3, 10, 3, 0), True),
        # wrapping midnight over the change
        (NEW_YORK, ("22:00:00", "06:00:00"), _at(NEW_YORK, 2024, 3, 9, 23, 0), True),
        (NEW_YORK, ("22:00:00", "06:00:00"), _utc(2024, 3, 10, 9, 59), True),  # 05:59 EDT
        (NEW_YORK, ("22:00:00", "06:00:00"), _utc(2024, 3, 10, 10, 0), False),  # 06:00 EDT
        # New York, fall back 2024-11-03: 02:00 EDT -> 01:00 EST (06:00 UTC); 01:xx twice.
        (NEW_YORK, ("01:00:00", "02:00:00"), _utc(2024, 11, 3, 4, 59), False),  # 00:59 EDT
        (NEW_YORK, ("01:00:00", "02:00:00"), _utc(2024, 11, 3, 5, 30), True),  # 01:30 EDT
        (NEW_YORK, ("01:00:00", "02:00:00"), _utc(2024, 11, 3, 6, 30), True),  # 01:30 EST
        (NEW_YORK, ("01:00:00", "02:00:00"), _utc(2024, 11, 3, 7, 0), False),  # 02:00 EST
        (NEW_YORK, ("09:00:00", "17:00:00"), _utc(2024, 11, 3, 13, 30), False),  # 08:30 EST
        (NEW_YORK, ("09:00:00", "17:00:00"), _utc(2024, 11, 2, 13, 30), True),  # 09:30 EDT
        # Berlin, spring forward 2024-03-31: 02:00 CET -> 03:00 CEST (01:00 UTC).
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 3, 30, 21, 30), True),  # 22:30 CET
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 3, 31, 0, 59), True),  # 01:59 CET
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 3, 31, 1, 0), True),  # 03:00 CEST
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 3, 31, 3, 59), True),  # 05:59 CEST
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 3, 31, 4, 0), False),  # 06:00 CEST
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 3, 30, 4, 0), True),  # 05:00 CET
        # Berlin, fall back 2024-10-27: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:xx twice.
        (BERLIN, ("02:00:00", "03:00:00"), _utc(2024, 10, 27, 0, 30), True),  # 02:30 CEST
        (BERLIN, ("02:00:00", "03:00:00"), _utc(2024, 10, 27, 1, 30), True),  # 02:30 CET
        (BERLIN, ("02:00:00", "03:00:00"), _utc(2024, 10, 27, 2, 0), False),  # 03:00 CET
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 10, 27, 4, 59), True),  # 05:59 CET
        (BERLIN, ("22:00:00", "06:00:00"), _utc(2024, 10, 27, 5, 0), False),  # 06:00 CET
    ],
)
def test_time_window_across_dst(
    zone: str, window: tuple[str, str], when: datetime.datetime, passes: bool
) -> None:
    spec = {"time": {"start": window[0], "stop": window[1], "timezone": zone}}
    assert (_run(spec, _full_event(when=when)) is None) is passes


def test_time_rejection_shows_the_local_time() -> None:
    spec = {"time": {"start": "09:00:00", "stop": "17:00:00", "timezone": "Asia/Tokyo"}}
    event = _full_event(when=_utc(2024, 6, 1, 14, 10))
    assert _run(spec, event) == (
        "time: event at 2024-06-01 23:10:00 (Asia/Tokyo) outside 09:00:00-17:00:00"
    )


# The four groups, each set to pass or fail, combined with filtersLogicalOperator.
GROUPS_PASS: dict[str, Any] = {
    "exprs": [_expr("e == 2", e="a.e")],
    "data": [{"path": "a.b", "type": "string", "value": ["x"]}],
    "context": {"type": "webhook"},
    "time": {"start": "00:00:00", "stop": "23:59:59"},
}
GROUPS_FAIL: dict[str, Any] = {
    "exprs": [_expr("e == 3", e="a.e")],
    "data": [{"path": "a.b", "type": "string", "value": ["y"]}],
    "context": {"type": "calendar"},
    "time": {"start": "13:00:00", "stop": "14:00:00"},
}


@pytest.mark.parametrize("operator", ["and", "or"])
@pytest.mark.parametrize(
    "outcome",
    [
        dict(zip(("exprs", "data", "context", "time"), bits, strict=True))
        for bits in [
            (True, True, True, True),
            (False, True, True, True),
            (True, False, True, True),
            (True, True, False, True),
            (True, True, True, False),
            (False, False, False, True),
            (False, False, True, False),
            (False, True, False, False),
            (True, False, False, False),
            (False, False, False, False),
            (None, True, None, None),
            (None, False, None, True),
            (None, None, None, False),
        ]
    ],
)
def test_filters_logical_operator(operator: str, outcome: dict[str, bool | None]) -> None:
    spec = {
        group: (GROUPS_PASS if ok else GROUPS_FAIL)[group]
        for group, ok in outcome.items()
        if ok is not None  # an absent group does not count either way
    }
    results = [ok for ok in outcome.values() if ok is not None]
    expected = all(results) if operator == "and" else any(results)
    event = _full_event(EXPR_DATA)
    assert (_run(spec, event, operator=operator) is None) is expected


def test_group_operators_nest() -> None:
    # (data[0] or data[1]) and (exprs[0] or exprs[1]), then or with a failing context group.
    spec = {
        "dataLogicalOperator": "or",
        "data": [GROUPS_FAIL["data"][0], GROUPS_PASS["data"][0]],
        "exprLogicalOperator": "or",
        "exprs": [GROUPS_PASS["exprs"][0], GROUPS_FAIL["exprs"][0]],
        "context": GROUPS_FAIL["context"],
    }
    event = _full_event(EXPR_DATA)
    assert _run(spec, event, operator="or") is None
    assert _run(spec, event, operator="and") == "context.type: got 'webhook', want 'calendar'"
    failing = {**spec, "data": [GROUPS_FAIL["data"][0]], "exprs": [GROUPS_FAIL["exprs"][0]]}
    assert _run(failing, event, operator="or") == (
        'filters: none passed: exprs[0] "e == 3": e=2'
        " / data[0] a.b: got 'x', want matching one of ['y']"
        " / context.type: got 'webhook', want 'calendar'"
    )


def test_no_filters_pass_everything() -> None:
    assert _run({}, _full_event(), operator="or") is None
    assert filters.compile_filters(None, operator="or").check(_full_event()) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"exprs": [{"expr": "a >", "fields": [{"name": "a", "path": "x"}]}]}, "position 3"),
        ({"exprs": [{"expr": "a", "fields": []}]}, "at least 1"),
        ({"exprs": [{"expr": "a", "fields": [{"name": "a", "path": "#("}]}]}, "#\\("),
        (
            {"exprs": [_expr("a", a="x") | {"fields": [{"name": "a", "path": "x"}] * 2}]},
            "field 'a' is already fields\\[0\\]",
        ),
        ({"context": {"kind": "webhook"}}, "kind"),
        ({"time": {"start": "9:00", "stop": "10:00:00"}}, "'9:00' is not a time of day"),
        ({"time": {"start": "24:00:00", "stop": "10:00:00"}}, "not a time of day"),
        ({"time": {"start": "09:00:00"}}, "stop"),
        ({"time": {"start": "09:00:00", "stop": "10:00:00", "timezone": "Mars/Base"}}, "IANA"),
        ({"script": "return true"}, "script filters \\(Lua\\) are not supported"),
        ({"dataLogicalOperator": "AND"}, "'and' or 'or'"),  # lower case only, as Argo
        ({"exprLogicalOperator": "xor"}, "'and' or 'or'"),
    ],
)
def test_bad_filter_groups_are_refused_at_load(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        filters.EventFilters.model_validate(spec)


@pytest.mark.parametrize(
    ("spec", "result"),
    [
        # Argo's documented example: the value is decoded before matching
        (
            {"path": "body.message", "type": "string", "value": ["hello world"]},
            None,
        ),
        (
            {"path": "body.message", "type": "string", "value": ["^bye"]},
            "data[0] body.message: got 'aGVsbG8gd29ybGQ=', templated 'hello world',"
            " want matching one of ['^bye']",
        ),
    ],
)
def test_data_template_docs_example(spec: dict[str, Any], result: str | None) -> None:
    spec = {**spec, "template": "{{ b64dec .Input }}"}
    event = _full_event({"body": {"message": "aGVsbG8gd29ybGQ="}})
    assert _run({"data": [spec]}, event) == result


@pytest.mark.parametrize(
    ("spec", "result"),
    [
        # the templated text is then read as the filter's type
        (
            {"path": "body.ref", "type": "number", "value": ["15"], "template": "{{ len .Input }}"},
            None,
        ),
        (
            {
                "path": "body.size",
                "type": "bool",
                "value": ["true"],
                "template": "{{ gt (atoi .Input) 2 }}",
            },
            None,
        ),
        (
            {"path": "body.ref", "type": "string", "value": ["x"], "template": "{{ .Nope }}"},
            "data[0] body.ref: template gave no value for 'refs/heads/main'",
        ),
        (
            {
                "path": "body.ref",
                "type": "string",
                "value": [".*"],
                "template": "{{ if false }}x{{ end }}",
            },
            "data[0] body.ref: template gave no value for 'refs/heads/main'",
        ),
        (
            {
                "path": "body.ref",
                "type": "string",
                "value": [".*"],
                "template": "{{ fail .Input }}",
            },
            "data[0] body.ref: template failed on 'refs/heads/main': ",
        ),
    ],
)
def test_data_template(spec: dict[str, Any], result: str | None) -> None:
    got = _run({"data": [spec]}, _full_event())
    if result is None or got is None:
        assert got == result
    else:
        assert got.startswith(result)


def test_bad_data_template_is_refused_at_load() -> None:
    spec = {"path": "body.ref", "type": "string", "value": ["x"], "template": "{{ .Input "}
    with pytest.raises(pydantic.ValidationError, match="template"):
        filters.EventFilters.model_validate({"data": [spec]})
