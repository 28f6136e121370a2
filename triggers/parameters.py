"""Trigger parameters: values taken from events and written into a trigger's template.

This is Argo Events' `TriggerParameter` (`pkg/sensors/triggers/params.go`) over Python data
instead of JSON bytes: `src` picks a value out of the latest event of one dependency (a gjson
`contextKey`/`dataKey`, a `{{ .Input.x }}` template, or the `value` default), `dest` is an
sjson path in the template, `operation` overwrites, appends or prepends. The module is pure (no
I/O) so every trigger kind shares it, and paths are compiled when the manifest is validated:
a bad path is a manifest error at load time, never a surprise at the first firing.

Value rule (Argo `ResolveParamValue` + `getValueByKey` + `ApplyParams`):

- the dependency has no event in this firing: the `value` default if set, otherwise the
  parameter is skipped (`resolve_value` returns `paths.MISSING`, `apply` leaves `dest` as it
  is). Argo does the same on purpose: with `a || b` conditions one of them is normally absent.
- no key and no template: the `value` default if set, otherwise the whole event.
- a template is tried first, then the key; if neither yields a value, the `value` default;
  otherwise `PermanentTriggerError` naming the dependency, the path and the event.
- a string found at the key is used as is. Any other JSON value (object, array, number,
  bool, null) is written as its compact JSON text (`{"a":1}`, `42`, `true`, `null`), unless
  `useRawData: true`, which keeps the JSON value itself. The `value` default is always a
  string (Argo types it `String`, even with `useRawData`).
- the whole event is `{"specversion", "id", ..., "data"}` (CloudEvents structured form, JSON
  text unless `useRawData`); Argo marshals its Go struct, which base64-encodes `data` — a quirk
  that nobody can use, so it is not copied.

`dataTemplate`/`contextTemplate`: until Go templates land (issue 6) only text with
`{{ .Input }}` / `{{ .Input.a.b }}` references is accepted; anything else is rejected when the
manifest is validated. A reference that is absent (or null) fails the template (Argo would
print `<no value>` into the text), then the key and the default are tried as in Argo. Objects
render as JSON text (Go would print `map[...]`), integers in decimal (Go prints float64, so
`1e+08`).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import orjson
import pydantic

from tripwire import errors, events, manifests, paths

Operation = Literal["overwrite", "append", "prepend"]


class TriggerParameterSource(manifests.Model):
    """Where a parameter's value comes from (Argo `TriggerParameterSource`)."""

    dependency_name: str = pydantic.Field(min_length=1)
    context_key: str | None = None
    context_template: str | None = None
    data_key: str | None = None
    data_template: str | None = None
    value: str | None = None
    use_raw_data: bool = False

    @pydantic.field_validator("context_key", "data_key")
    @classmethod
    def _path(cls, key: str | None) -> str | None:
        # Argo treats "" as "not set"; so do we, rather than failing on an empty path.
        if not key:
            return None
        paths.compile(key)  # ExpressionError is a ValueError: pydantic keeps the field path
        return key

    @pydantic.field_validator("context_template", "data_template")
    @classmethod
    def _template(cls, text: str | None) -> str | None:
        if not text:
            return None
        _compile_template(text)
        return text

    @pydantic.model_validator(mode="after")
    def _one_part(self) -> TriggerParameterSource:
        # Argo silently lets the data part win when both are set; an explicit error is kinder.
        uses_context = self.context_key is not None or self.context_template is not None
        uses_data = self.data_key is not None or self.data_template is not None
        if uses_context and uses_data:
            raise ValueError(
                "use either contextKey/contextTemplate or dataKey/dataTemplate, not both"
            )
        return self


class TriggerParameter(manifests.Model):
    """One value written into a template (Argo `TriggerParameter`)."""

    src: TriggerParameterSource
    dest: str
    operation: Operation = "overwrite"

    @pydantic.field_validator("dest")
    @classmethod
    def _dest(cls, dest: str) -> str:
        paths.compile_dest(dest)
        return dest

    @pydantic.field_validator("operation")
    @classmethod
    def _readable_dest(cls, operation: Operation, info: pydantic.ValidationInfo) -> Operation:
        # append/prepend read the current value at `dest` with a gjson path, as Argo does.
        dest = info.data.get("dest")
        if operation != "overwrite" and isinstance(dest, str):
            paths.compile(dest)
        return operation

    @property
    def dest_path(self) -> paths.DestPath:
        # `compile_dest` is LRU-cached and was called by the validator: this is a dict lookup.
        return paths.compile_dest(self.dest)


def resolve_value(src: TriggerParameterSource, events: Mapping[str, events.Event]) -> Any:
    """The value of `src` for this firing, or `paths.MISSING` when its dependency did not
    contribute an event and there is no default (see the module docstring for the rule)."""
    event = events.get(src.dependency_name)
    if event is None:
        return src.value if src.value is not None else paths.MISSING

    if src.context_key is not None or src.context_template is not None:
        part, key, template = "context", src.context_key, src.context_template
        payload: Any = event.context()
    elif src.data_key is not None or src.data_template is not None:
        part, key, template = "data", src.data_key, src.data_template
        payload = event.data
    else:
        if src.value is not None:
            return src.value
        whole = event.to_dict()
        return whole if src.use_raw_data else _json_text(whole)

    if template is not None:
        rendered = _compile_template(template).render(payload)
        if rendered is not None:
            return rendered
    if key is not None:
        found = paths.compile(key).get(payload)
        if found is not paths.MISSING:
            if isinstance(found, str) or src.use_raw_data:
                return found
            return _json_text(found)
    if src.value is not None:
        return src.value
    what = f"{part}Key {key!r}" if key is not None else f"{part}Template {template!r}"
    raise errors.PermanentTriggerError(
        f"parameter from dependency {src.dependency_name!r}: {what} matches nothing in"
        f" event {event.id} and no default value is set"
    )


def apply(
    params: Sequence[TriggerParameter], events: Mapping[str, events.Event], target: Any
) -> Any:
    """A copy of `target` with every parameter applied in order; `target` is not changed.

    The template belongs to the (frozen, shared) manifest, so it is deep-copied once per
    firing and then mutated in place by the sjson setters. Templates are small (a Workflow,
    a request body), so one copy costs microseconds.

    append/prepend: when `dest` holds nothing, the value is set. When both sides are arrays
    (a raw array value onto an array), they are concatenated as arrays. Otherwise, like Argo,
    both sides are joined as text — a string as is, anything else as compact JSON text, null
    as "" (gjson's `String()`) — and the result is a string.
    """
    result = copy.deepcopy(target)
    for param in params:
        value = resolve_value(param.src, events)
        if value is paths.MISSING:
            continue
        if param.operation != "overwrite":
            current = paths.compile(param.dest).get(result)
            value = _combine(current, value, append=param.operation == "append")
        try:
            result = param.dest_path.set(result, value)
        except errors.ExpressionError as exc:
            raise errors.PermanentTriggerError(
                f"parameter dest {param.dest!r}: {exc.reason} in this template"
            ) from None
    return result


def _combine(current: Any, value: Any, *, append: bool) -> Any:
    if current is paths.MISSING:
        return value
    if isinstance(current, list) and isinstance(value, list):
        return current + value if append else value + current
    before, after = (_text(current), _text(value)) if append else (_text(value), _text(current))
    return before + after


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return _json_text(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers past 64 bits; the standard library does not.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


# --------------------------------------------------------------------------------------------
# The `{{ .Input.a.b }}` subset of Go templates, until issue 6 brings the real thing.

_REFERENCE = re.compile(r"\{\{\s*\.Input((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")


class _Template:
    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[str | tuple[str, ...]]) -> None:
        # str: literal text; tuple: the field names after `.Input`.
        self.parts = tuple(parts)

    def render(self, data: Any) -> str | None:
        """The rendered text, or None when a reference is absent or the result is empty."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = data
            for name in part:
                if not isinstance(value, dict) or name not in value:
                    return None
                value = value[name]
            if value is None:
                return None
            out.append(_text(value) if not isinstance(value, bool) else str(value).lower())
        text = "".join(out)
        return text or None


@functools.lru_cache(maxsize=1024)
def _compile_template(text: str) -> _Template:
    parts: list[str | tuple[str, ...]] = []
    pos = 0
    for match in _REFERENCE.finditer(text):
        parts.append(_literal(text, pos, match.start()))
        fields = match.group(1)
        parts.append(tuple(fields[1:].split(".")) if fields else ())
        pos = match.end()
    parts.append(_literal(text, pos, len(text)))
    return _Template([p for p in parts if p != ""])


def _literal(text: str, start: int, end: int) -> str:
    """Text between references; a brace pair left in it is template syntax we do not run."""
    segment = text[start:end]
    found = [i for i in (segment.find("{{"), segment.find("}}")) if i >= 0]
    if found:
        raise errors.ExpressionError(
            "only {{ .Input }} and {{ .Input.field.field }} references are supported"
            " in templates until Go templates are implemented",
            text=text,
            position=start + min(found),
        )
    return segment


__all__ = [
    "Operation",
    "TriggerParameter",
    "TriggerParameterSource",
    "apply",
    "resolve_value",
]
