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
- a template's output is always a string, even with `useRawData` (Argo types it `String`).
- a string found at the key is used as is. Any other JSON value (object, array, number,
  bool, null) is written as its compact JSON text (`{"a":1}`, `42`, `true`, `null`), unless
  `useRawData: true`, which keeps the JSON value itself. The `value` default is always a
  string (Argo types it `String`, even with `useRawData`).
- the whole event is `{"specversion", "id", ..., "data"}` (CloudEvents structured form, JSON
  text unless `useRawData`); Argo marshals its Go struct, which base64-encodes `data` — a quirk
  that nobody can use, so it is not copied.

`dataTemplate`/`contextTemplate` are Go templates with sprig functions (`tripwire.lang.templates`),
rendered over `{"Input": <event data or context>}` and parsed when the manifest is validated,
so a syntax error or an unknown function is a load-time field error. As in Argo
(`getValueWithTemplate`), a template that fails to render or renders "" fails, and the key and
then the default are tried. One rule is stricter than Argo: printing an absent (or null) value
fails the template (`render_strict`) instead of writing `<no value>` into the text, so
`build-{{ .Input.absent }}` falls back rather than naming a workflow `build-<no value>`.
Objects render as JSON text (Go would print `map[...]`), integers in decimal (Go prints
float64, so `1e+08`).

Trigger-level `parameters` (Argo `ApplyTemplateParameters`) edit the trigger template itself:
`apply_to_template` takes the template's camelCase JSON form, so `dest` reads `http.url` or
`k8s.source.resource.metadata.name`, exactly as in an Argo Sensor.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import orjson
import pydantic

from tripwire import errors, events, manifests
from tripwire.lang import dests, paths, templates

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
        templates.compile(text)  # ExpressionError (a ValueError) with the position
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
        dests.compile_dest(dest)
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
    def dest_path(self) -> dests.DestPath:
        # `compile_dest` is LRU-cached and was called by the validator: this is a dict lookup.
        return dests.compile_dest(self.dest)


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

    failure = ""
    if template is not None:
        try:
            rendered = templates.compile(template).render_strict({"Input": payload})
        except templates.RenderError as exc:
            failure = f" ({part}Template failed: {exc.reason} in {exc.action})"
        else:
            if rendered:
                return rendered
            failure = f" ({part}Template rendered nothing)"
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
        f" event {event.id} and no default value is set{failure}"
    )


def apply(
    params: Sequence[TriggerParameter], events: Mapping[str, events.Event], target: Any
) -> Any:
    """A copy of `target` with every parameter applied in order; `target` is not changed.

    For parameters applied at every firing, build a `Compiled` once instead.
    """
    return Compiled(params).apply(events, target)


Resolve = Callable[[Mapping[str, events.Event]], Any]


class Compiled:
    """Parameters prepared once for many firings: the HTTP trigger's payload is applied to
    every event, so paths, dests and the choice of source are looked up here, not per firing.

    `apply` is `apply()` (the rules in the module docstring, in the same order): a key-only
    source is resolved inline, any other source by `resolve_value`, which also words every
    error, so the two cannot drift apart.
    """

    __slots__ = ("_steps",)

    def __init__(self, params: Sequence[TriggerParameter]) -> None:
        self._steps = tuple(
            (_resolver(p.src), p, p.dest_path, p.dest_path.single_key) for p in params
        )

    def apply(self, events: Mapping[str, events.Event], target: Any) -> Any:
        """A copy of `target` with every parameter applied in order; `target` is not changed.

        The template belongs to the (frozen, shared) manifest, so it is deep-copied once per
        firing (`_json_copy`) and then mutated in place by the sjson setters.

        append/prepend: when `dest` holds nothing, the value is set. When both sides are
        arrays (a raw array value onto an array), they are concatenated as arrays. Otherwise,
        like Argo, both sides are joined as text — a string as is, anything else as compact
        JSON text, null as "" (gjson's `String()`) — and the result is a string.
        """
        result = _json_copy(target)
        for resolve, param, dest, key in self._steps:
            value = resolve(events)
            if value is paths.MISSING:
                continue
            if param.operation != "overwrite":
                current = paths.compile(param.dest).get(result)
                value = _combine(current, value, append=param.operation == "append")
            if key is not None and type(result) is dict:
                result[key] = value  # `dest` is one object key: what `set` would do
                continue
            try:
                result = dest.set(result, value)
            except errors.ExpressionError as exc:
                raise errors.PermanentTriggerError(
                    f"parameter dest {param.dest!r}: {exc.reason} in this template"
                ) from None
        return result


def _resolver(src: TriggerParameterSource) -> Resolve:
    """`resolve_value` for `src`, inlined for the common source: one key, no template."""
    if src.context_template is not None or src.data_template is not None:
        return functools.partial(resolve_value, src)
    if src.data_key is not None:
        key, in_context = src.data_key, False
    elif src.context_key is not None:
        key, in_context = src.context_key, True
    else:
        return functools.partial(resolve_value, src)
    path = paths.compile(key)
    dependency, default, raw = src.dependency_name, src.value, src.use_raw_data
    missing = paths.MISSING

    def resolve(events: Mapping[str, events.Event]) -> Any:
        event = events.get(dependency)
        if event is None:
            return default if default is not None else missing
        found = path.get(event.context() if in_context else event.data)
        if found is missing:
            # The default, or the error: worded in one place.
            return resolve_value(src, events)
        if raw or isinstance(found, str):
            return found
        return _json_text(found)

    return resolve


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): what templates are.

    Several times faster than `copy.deepcopy`, which pays for memo tables and arbitrary types
    on every firing; scalars are immutable, so they are shared.
    """
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    return value


def apply_to_template(
    params: Sequence[TriggerParameter],
    events: Mapping[str, events.Event],
    template: Mapping[str, Any],
) -> dict[str, Any]:
    """Trigger-level `parameters` applied to the trigger template (Argo
    `ApplyTemplateParameters`): a new dict, `template` is not changed.

    `template` is the template block in its camelCase JSON form
    (`model_dump(mode="json", by_alias=True)`), so `dest` paths read as in the manifest:
    `http.url`, `k8s.source.resource.spec.arguments`, `log.intervalSeconds`. The caller
    validates the result against the template model again (a parameter must not smuggle in
    an invalid spec). Renaming the trigger is refused: its name keys trigger state and
    idempotency records.
    """
    result = apply(params, events, template)
    if not isinstance(result, dict):
        raise errors.PermanentTriggerError("trigger parameters replaced the whole template")
    if result.get("name") != template.get("name"):
        raise errors.PermanentTriggerError(
            f"trigger parameters may not rename trigger {template.get('name')!r}"
        )
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


__all__ = [
    "Compiled",
    "Operation",
    "TriggerParameter",
    "TriggerParameterSource",
    "apply",
    "apply_to_template",
    "resolve_value",
]
