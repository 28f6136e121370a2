"""Data filters against Argo Events' documented semantics (any value matches; regex unanchored)."""

from __future__ import annotations

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
