"""Dependency `transform` with jq, as Argo Events' `applyJQTransform`: first output, an object."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from sensors import filters, transforms
from tripwire import events

pytest.importorskip("jq")

PUSH = {"body": {"ref": "refs/heads/main", "commits": [{"id": "a"}, {"id": "b"}]}}


def _event(data: Any) -> events.Event:
    return events.Event(
        id="e1", source="gw", subject="push", type="webhook", data=data, datacontenttype="x/y"
    )


def _apply(program: str, data: Any) -> events.Event | filters.Rejection:
    spec = transforms.Transform.model_validate({"jq": program})
    transform = transforms.compile_transform(spec)
    assert transform is not None
    return transform(_event(data))


def test_jq_reshapes_the_data_and_keeps_the_envelope() -> None:
    out = _apply("{ref: .body.ref, n: (.body.commits | length)}", PUSH)
    assert isinstance(out, events.Event)
    assert out.data == {"ref": "refs/heads/main", "n": 2}
    assert (out.id, out.source, out.subject, out.type) == ("e1", "gw", "push", "webhook")
    assert out.datacontenttype == "application/json"


def test_the_original_event_is_untouched() -> None:
    event = _event(PUSH)
    spec = transforms.Transform.model_validate({"jq": ".body.x = 1"})
    transform = transforms.compile_transform(spec)
    assert transform is not None
    out = transform(event)
    assert isinstance(out, events.Event)
    assert out.data["body"]["x"] == 1
    assert "x" not in PUSH["body"]
    assert event.data is PUSH


def test_only_the_first_output_counts() -> None:
    out = _apply(".body.commits[]", PUSH)
    assert isinstance(out, events.Event)
    assert out.data == {"id": "a"}


@pytest.mark.parametrize(
    ("program", "data", "reason"),
    [
        (".body.ref", PUSH, "must produce a JSON object, got a string"),
        (".body.commits", PUSH, "must produce a JSON object, got an array"),
        (".nope", PUSH, "must produce a JSON object, got null"),
        ("empty", PUSH, "produced no output"),
        (".body.ref.x", PUSH, "failed: Cannot index string"),
        (".", [1, 2], "need event data that is a JSON object"),
    ],
)
def test_failures_are_rejections(program: str, data: Any, reason: str) -> None:
    out = _apply(program, data)
    assert isinstance(out, filters.Rejection)
    assert out.filter == "transform"
    assert reason in out.reason


def test_an_event_without_data_passes_unchanged() -> None:
    event = _event(None)
    spec = transforms.Transform.model_validate({"jq": "{a: 1}"})
    transform = transforms.compile_transform(spec)
    assert transform is not None
    assert transform(event) is event


def test_nothing_to_do_compiles_to_none() -> None:
    assert transforms.compile_transform(None) is None
    assert transforms.compile_transform(transforms.Transform.model_validate({})) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"jq": "{{"}, "jq program does not compile: jq: error: syntax error"),
        ({"script": "return event"}, "script transforms \\(Lua\\) are not supported"),
        ({"jq": ".", "lua": "x"}, "lua"),
    ],
)
def test_bad_transforms_are_refused_at_load(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        transforms.Transform.model_validate(spec)
