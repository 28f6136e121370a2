"""A dependency's `transform`: reshape the event data with jq before the filters see it.

Argo Events lets a dependency rewrite the event data before filtering
(`pkg/sensors/dependencies/transform.go`): `transform.jq` runs a jq program over the data and
keeps its first output, which must be a JSON object; `transform.script` runs Lua. Tripwire runs
jq with the `jq` package (libjq bindings, imported only by sensors that use it, an optional
extra) and compiles the program once at load. Lua scripts are refused at validation: running
user Lua would need an embedded interpreter, and `exprs` cover what scripts are mostly used for.

The compiled transform returns the new event, or a `filters.Rejection` saying why the event
cannot be transformed, so the runner reports it like any filter rejection.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import orjson
import pydantic

from sensors import filters
from tripwire import events, manifests

Transformer = Callable[[events.Event], events.Event | filters.Rejection]


_JSON_KINDS = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
}


def _jq() -> Any:
    try:
        return importlib.import_module("jq")
    except ModuleNotFoundError:
        raise ValueError(
            "a jq transform needs the `jq` package (pip install 'tripwire[jq]')"
        ) from None


class Transform(manifests.Model):
    jq: str | None = None
    script: str | None = None

    @pydantic.field_validator("jq")
    @classmethod
    def _jq_compiles(cls, program: str | None) -> str | None:
        if program is not None:
            try:
                _jq().compile(program)
            except ValueError as exc:
                # libjq's message ends with "jq: 1 compile error"; the first line says what.
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
                raise ValueError(f"jq program does not compile: {first}") from None
        return program

    @pydantic.field_validator("script")
    @classmethod
    def _no_script(cls, script: str | None) -> str | None:
        if script is not None:
            raise ValueError("script transforms (Lua) are not supported; use jq instead")
        return script


def compile_transform(spec: Transform | None) -> Transformer | None:
    """The dependency's transform, compiled once; None when there is nothing to do."""
    if spec is None or spec.jq is None:
        return None
    text = spec.jq
    program = _jq().compile(text)
    label = "transform"
    shown = text if len(text) <= 60 else text[:57] + "..."

    def apply(event: events.Event) -> events.Event | filters.Rejection:
        data = event.data
        if data is None:
            return event  # Argo leaves an event without data as it is
        if not isinstance(data, dict):
            return filters.Rejection(label, "jq transforms need event data that is a JSON object")
        try:
            out = program.input_text(orjson.dumps(data).decode()).first()
        except StopIteration:
            return filters.Rejection(label, f"jq {shown!r} produced no output")
        except ValueError as exc:
            return filters.Rejection(label, f"jq {shown!r} failed: {exc}")
        if not isinstance(out, dict):
            kind = _JSON_KINDS.get(type(out), type(out).__name__)
            return filters.Rejection(label, f"jq {shown!r} must produce a JSON object, got {kind}")
        return dataclasses.replace(event, data=out, datacontenttype="application/json")

    return apply
