"""Trigger parameters: Argo's value rule, operations, dest paths, and load-time errors."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pydantic
import pytest

from triggers import parameters
from tripwire import errors, events
from tripwire.lang import paths

DATA: dict[str, Any] = {
    "body": {
        "ref": "refs/heads/main",
        "after": "abc123",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "nothing": None,
        "repo": {"name": "tripwire", "tags": ["a", "b"]},
        "commits": [{"id": "c1"}, {"id": "c2"}],
    },
    "header": {"X-Kind": ["push"]},
}


def _event(event_id: str = "ev-1", data: Any = None) -> events.Event:
    return events.Event(
        id=event_id,
        source="ci",
        subject="push",
        type="webhook",
        data=DATA if data is None else data,
        time=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    )


EVENTS = {"pushed": _event()}


def _src(**fields: Any) -> parameters.TriggerParameterSource:
    return parameters.TriggerParameterSource.model_validate({"dependencyName": "pushed", **fields})


def _param(dest: str, operation: str = "overwrite", **src: Any) -> parameters.TriggerParameter:
    return parameters.TriggerParameter.model_validate(
        {"src": {"dependencyName": "pushed", **src}, "dest": dest, "operation": operation}
    )


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        pytest.param({"dataKey": "body.ref"}, "refs/heads/main", id="string"),
        pytest.param({"dataKey": "body.repo.name"}, "tripwire", id="nested"),
        pytest.param({"dataKey": "body.commits.1.id"}, "c2", id="array-index"),
        pytest.param({"dataKey": "body.commits.#.id"}, '["c1","c2"]', id="array-map-as-json"),
        pytest.param({"dataKey": "body.commits.#"}, "2", id="array-length"),
        pytest.param({"dataKey": "header.X-Kind.0"}, "push", id="dash-key"),
        pytest.param({"dataKey": "body.count"}, "3", id="number-stringified"),
        pytest.param({"dataKey": "body.ratio"}, "0.5", id="float-stringified"),
        pytest.param({"dataKey": "body.ok"}, "true", id="bool-stringified"),
        pytest.param({"dataKey": "body.nothing"}, "null", id="null-stringified"),
        pytest.param({"dataKey": "body.repo"}, '{"name":"tripwire","tags":["a","b"]}', id="obj"),
        pytest.param({"dataKey": "body.repo", "useRawData": True}, DATA["body"]["repo"], id="raw"),
        pytest.param({"dataKey": "body.count", "useRawData": True}, 3, id="raw-number"),
        pytest.param({"dataKey": "body.ok", "useRawData": True}, True, id="raw-bool"),
        pytest.param({"dataKey": "body.nothing", "useRawData": True}, None, id="raw-null"),
        pytest.param({"dataKey": "body.ref", "useRawData": True}, "refs/heads/main", id="raw-str"),
        pytest.param({"dataKey": "body.missing", "value": "dflt"}, "dflt", id="default"),
        pytest.param(
            {"dataKey": "body.missing", "value": "7", "useRawData": True}, "7", id="default-is-str"
        ),
        pytest.param({"contextKey": "id"}, "ev-1", id="context"),
        pytest.param({"contextKey": "source"}, "ci", id="context-source"),
        pytest.param({"value": "lit"}, "lit", id="value-only"),
        pytest.param({"dataKey": ""}, None, id="empty-key-is-unset"),
        pytest.param(
            {"dataTemplate": "{{ .Input.body.repo.name }}@{{.Input.body.after}}"},
            "tripwire@abc123",
            id="template",
        ),
        pytest.param({"dataTemplate": "n={{ .Input.body.count }}"}, "n=3", id="template-number"),
        pytest.param({"dataTemplate": "{{ .Input.body.ok }}"}, "true", id="template-bool"),
        pytest.param(
            {"dataTemplate": "{{ .Input.body.absent }}", "dataKey": "body.after"},
            "abc123",
            id="template-falls-back-to-key",
        ),
        pytest.param(
            {"dataTemplate": "x{{ .Input.body.absent }}", "value": "d"},
            "d",
            id="template-falls-back-to-default",
        ),
        pytest.param({"contextTemplate": "{{ .Input.subject }}"}, "push", id="context-template"),
    ],
)
def test_resolve_value(src: dict[str, Any], expected: Any) -> None:
    value = parameters.resolve_value(_src(**src), EVENTS)
    if expected is None and src.get("dataKey") == "":
        # No key at all: the whole event, as compact JSON text.
        assert value.startswith('{"specversion":"1.0","id":"ev-1"')
    else:
        assert value == expected


def test_whole_event_raw() -> None:
    value = parameters.resolve_value(_src(useRawData=True), EVENTS)
    assert value["id"] == "ev-1"
    assert value["data"] == DATA
    assert value["time"] == "2024-01-02T03:04:05+00:00"


def test_missing_dependency_uses_default_or_is_skipped() -> None:
    with_default = parameters.TriggerParameterSource(dependency_name="other", value="d")
    assert parameters.resolve_value(with_default, EVENTS) == "d"
    # Argo: not an error (`a || b` conditions leave one dependency without an event).
    without = parameters.TriggerParameterSource(dependency_name="other", data_key="body.ref")
    assert parameters.resolve_value(without, EVENTS) is paths.MISSING
    params = [
        parameters.TriggerParameter(src=without, dest="ref"),
        _param("after", dataKey="body.after"),
    ]
    assert parameters.apply(params, EVENTS, {"ref": "keep"}) == {"ref": "keep", "after": "abc123"}


def test_missing_path_without_default_names_dependency_path_and_event() -> None:
    with pytest.raises(errors.PermanentTriggerError) as caught:
        parameters.resolve_value(_src(dataKey="body.nope"), EVENTS)
    message = str(caught.value)
    assert "'pushed'" in message
    assert "body.nope" in message
    assert "ev-1" in message


def test_missing_template_reference_without_fallback() -> None:
    with pytest.raises(errors.PermanentTriggerError, match="dataTemplate"):
        parameters.resolve_value(_src(dataTemplate="{{ .Input.nope }}"), EVENTS)


@pytest.mark.parametrize(
    ("params", "template", "expected"),
    [
        pytest.param(
            [_param("metadata.labels.commit", dataKey="body.after")],
            {"metadata": {"name": "x"}},
            {"metadata": {"name": "x", "labels": {"commit": "abc123"}}},
            id="dest-creates-nested-objects",
        ),
        pytest.param(
            [_param("spec.args.0", dataKey="body.ref")],
            {},
            {"spec": {"args": ["refs/heads/main"]}},
            id="dest-creates-array",
        ),
        pytest.param(
            [_param("spec.args.-1", dataKey="body.after")],
            {"spec": {"args": ["--x"]}},
            {"spec": {"args": ["--x", "abc123"]}},
            id="dest-appends-to-array",
        ),
        pytest.param(
            [_param("name", "append", dataKey="body.after")],
            {"name": "build-"},
            {"name": "build-abc123"},
            id="append",
        ),
        pytest.param(
            [_param("name", "prepend", dataKey="body.after")],
            {"name": "-build"},
            {"name": "abc123-build"},
            id="prepend",
        ),
        pytest.param(
            [_param("name", "append", dataKey="body.after")],
            {},
            {"name": "abc123"},
            id="append-to-nothing-sets",
        ),
        pytest.param(
            [_param("n", "append", dataKey="body.count")],
            {"n": 10},
            {"n": "103"},
            id="append-non-strings-as-text",
        ),
        pytest.param(
            [_param("tags", "append", dataKey="body.repo.tags", useRawData=True)],
            {"tags": ["z"]},
            {"tags": ["z", "a", "b"]},
            id="append-arrays-concatenate",
        ),
        pytest.param(
            [_param("tags", "prepend", dataKey="body.repo.tags", useRawData=True)],
            {"tags": ["z"]},
            {"tags": ["a", "b", "z"]},
            id="prepend-arrays-concatenate",
        ),
        pytest.param(
            [_param("repo", dataKey="body.repo", useRawData=True)],
            {"repo": "old"},
            {"repo": {"name": "tripwire", "tags": ["a", "b"]}},
            id="raw-object-overwrites",
        ),
        pytest.param(
            [_param("a", value="1"), _param("a", "append", value="2")],
            {},
            {"a": "12"},
            id="parameters-apply-in-order",
        ),
    ],
)
def test_apply(
    params: list[parameters.TriggerParameter], template: dict[str, Any], expected: Any
) -> None:
    before = repr(template)
    assert parameters.apply(params, EVENTS, template) == expected
    assert repr(template) == before, "the caller's template must not change"


def test_apply_copies_even_without_parameters() -> None:
    template = {"a": {"b": 1}}
    result = parameters.apply([], EVENTS, template)
    result["a"]["b"] = 2
    assert template == {"a": {"b": 1}}


def test_apply_dest_type_mismatch_is_permanent() -> None:
    with pytest.raises(errors.PermanentTriggerError, match=re.escape("'items.name'")):
        parameters.apply([_param("items.name", value="x")], EVENTS, {"items": [1]})


@pytest.mark.parametrize(
    ("param", "field"),
    [
        pytest.param({"src": {"dependencyName": "d", "dataKey": "a.["}, "dest": "x"}, "dataKey"),
        pytest.param(
            {"src": {"dependencyName": "d", "contextKey": "#("}, "dest": "x"}, "contextKey"
        ),
        pytest.param({"src": {"dependencyName": "d"}, "dest": "a.*"}, "dest"),
        pytest.param({"src": {"dependencyName": "d"}, "dest": ""}, "dest"),
        pytest.param(
            {"src": {"dependencyName": "d"}, "dest": "x", "operation": "merge"}, "operation"
        ),
        pytest.param({"src": {"dependencyName": ""}, "dest": "x"}, "dependencyName"),
        pytest.param({"src": {"dataKey": "a"}, "dest": "x"}, "dependencyName"),
        pytest.param({"src": {"dependencyName": "d"}}, "dest"),
        pytest.param(
            {"src": {"dependencyName": "d", "dataTemplate": "{{ .Input.a | shout }}"}, "dest": "x"},
            "dataTemplate",
        ),
        pytest.param(
            {"src": {"dependencyName": "d", "dataTemplate": "{{ if .Input.a }}x"}, "dest": "x"},
            "dataTemplate",
        ),
        pytest.param(
            {"src": {"dependencyName": "d", "contextTemplate": "{{ upper }}"}, "dest": "x"},
            "contextTemplate",
        ),
        pytest.param({"src": {"dependencyName": "d", "datakey": "a"}, "dest": "x"}, "datakey"),
    ],
)
def test_invalid_parameters_are_field_errors(param: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        parameters.TriggerParameter.model_validate(param)
    locations = [err["loc"][-1] for err in caught.value.errors()]
    assert field in locations, caught.value


def test_template_error_points_at_the_unsupported_part() -> None:
    # Go templates with sprig functions are supported (issue 6); an unknown function is a
    # parse error, as in Go, located at the function name.
    with pytest.raises(pydantic.ValidationError) as caught:
        _src(dataTemplate="ok {{ .Input.a }} then {{ shout .Input.b }}")
    assert 'function "shout" not defined at position 26' in str(caught.value)


def test_context_and_data_together_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="not both"):
        _src(dataKey="a", contextKey="id")


def test_camel_case_round_trip() -> None:
    param = _param("x", "append", dataKey="body.ref", useRawData=True)
    dumped = param.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped == {
        "src": {"dependencyName": "pushed", "dataKey": "body.ref", "useRawData": True},
        "dest": "x",
        "operation": "append",
    }


# -- Go templates (issue 6) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        pytest.param({"dataTemplate": "{{ .Input.body.ref | upper }}"}, "REFS/HEADS/MAIN", id="fn"),
        pytest.param(
            {
                "dataTemplate": '{{ trimPrefix "refs/heads/" .Input.body.ref }}-'
                "{{ .Input.body.count }}"
            },
            "main-3",
            id="pipeline-and-text",
        ),
        pytest.param(
            {"dataTemplate": '{{ default "none" .Input.body.absent }}'}, "none", id="sprig-default"
        ),
        pytest.param(
            {"dataTemplate": "{{ toJson .Input.body.repo }}", "useRawData": True},
            '{"name":"tripwire","tags":["a","b"]}',
            id="template-output-is-a-string-even-raw",
        ),
        pytest.param(
            {"dataTemplate": "{{ range .Input.body.commits }}{{ .id }},{{ end }}"},
            "c1,c2,",
            id="range",
        ),
        pytest.param(
            {"dataTemplate": '{{ index .Input.header "X-Kind" 0 }}'}, "push", id="index-dash-key"
        ),
        pytest.param(
            {"dataTemplate": "{{ .Input.body.count | upper }}", "dataKey": "body.after"},
            "abc123",
            id="render-error-falls-back-to-key",
        ),
        pytest.param(
            {"dataTemplate": "{{ if .Input.body.absent }}x{{ end }}", "value": "d"},
            "d",
            id="empty-output-falls-back-to-default",
        ),
        pytest.param(
            {"contextTemplate": "{{ .Input.source }}/{{ .Input.subject | upper }}"},
            "ci/PUSH",
            id="context-template-fn",
        ),
    ],
)
def test_resolve_value_with_go_templates(src: dict[str, Any], expected: Any) -> None:
    assert parameters.resolve_value(_src(**src), EVENTS) == expected


def test_failed_template_reason_is_in_the_error() -> None:
    with pytest.raises(errors.PermanentTriggerError) as caught:
        parameters.resolve_value(_src(dataTemplate="{{ .Input.body.count | upper }}"), EVENTS)
    message = str(caught.value)
    assert "expected string; got int" in message
    assert "{{ .Input.body.count | upper }}" in message


def test_apply_to_template_edits_the_template_block() -> None:
    template = {
        "name": "notify",
        "conditions": "pushed",
        "http": {"url": "https://example.org/hooks", "method": "POST"},
    }
    params = [
        _param("http.url", "append", dataTemplate="/{{ .Input.body.repo.name }}"),
        _param("http.method", value="PUT"),
    ]
    result = parameters.apply_to_template(params, EVENTS, template)
    assert result == {
        "name": "notify",
        "conditions": "pushed",
        "http": {"url": "https://example.org/hooks/tripwire", "method": "PUT"},
    }
    assert template["http"] == {"url": "https://example.org/hooks", "method": "POST"}


def test_apply_to_template_refuses_a_rename() -> None:
    with pytest.raises(errors.PermanentTriggerError, match="rename"):
        parameters.apply_to_template([_param("name", dataKey="body.after")], EVENTS, {"name": "t"})
