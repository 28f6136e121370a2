"""Golden files for Go templates and trigger parameters: the observable output, pinned.

Argo Events compatibility is a promise about text: a Sensor ported from Argo must render the
same workflow names, labels and bodies. The cases live as readable YAML next to this module so
a reviewer sees input and output side by side, and a change in behaviour shows up as a diff.

Layout (each file is a YAML stream: one or more `---` documents, one case each):

- `golden/templates/*.yaml`: `{name, template, input, expected}`; `input` is bound to `.Input`
  (Argo renders with `{"Input": value}`). A case expecting a failure has `error` (a substring
  of the ExpressionError/RenderError message) instead of `expected`; `strict: true` renders
  with `render_strict` (as parameters do).
- `golden/parameters/*.yaml`: `{name, events, parameters, target, expected}`; `events` maps a
  dependency name to `{context: {id, source, subject, type, time?, ...}, data: ...}`,
  `parameters` is a list of Argo `TriggerParameter`s, `target` the object before and
  `expected` after `parameters.apply` (or `error`, a substring of the PermanentTriggerError).
  `apply_to_template: true` runs `parameters.apply_to_template` instead.

To accept new output, run with `TRIPWIRE_UPDATE_GOLDEN=1`:

    TRIPWIRE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py

which rewrites `expected` (or `error`, with the whole message) of every case from the current
code; review the diff before committing it.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest
import yaml

from triggers import parameters
from tripwire import errors, events
from tripwire.lang import templates

GOLDEN = pathlib.Path(__file__).parent / "golden"
UPDATE = os.environ.get("TRIPWIRE_UPDATE_GOLDEN") == "1"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so rewritten files stay readable."""


def _str_representer(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text and text == text.rstrip(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str_representer)


def _files(kind: str) -> list[pathlib.Path]:
    return sorted((GOLDEN / kind).glob("*.yaml"))


def _load(path: pathlib.Path) -> list[dict[str, Any]]:
    cases = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert all(isinstance(c, dict) and "name" in c for c in cases), f"{path}: cases need a name"
    return cases


def _render(case: dict[str, Any]) -> str:
    compiled = templates.compile(case["template"])
    data = {"Input": case.get("input")}
    return compiled.render_strict(data) if case.get("strict") else compiled.render(data)


def _apply(case: dict[str, Any]) -> Any:
    fired = {
        name: events.from_dict({**spec["context"], "data": spec.get("data")})
        for name, spec in (case.get("events") or {}).items()
    }
    params = [parameters.TriggerParameter.model_validate(p) for p in case["parameters"]]
    if case.get("apply_to_template"):
        return parameters.apply_to_template(params, fired, case["target"])
    return parameters.apply(params, fired, case["target"])


_RUNNERS = {"templates": _render, "parameters": _apply}
_FAILURES = (errors.ExpressionError, templates.RenderError, errors.PermanentTriggerError)


def _check(kind: str, path: pathlib.Path) -> None:
    cases = _load(path)
    run = _RUNNERS[kind]
    problems: list[str] = []
    for case in cases:
        try:
            got: Any = run(case)
            failed = None
        except _FAILURES as exc:
            failed = str(exc)
        if UPDATE:
            case.pop("expected", None)
            case.pop("error", None)
            if failed is None:
                case["expected"] = got
            else:
                case["error"] = failed
            continue
        if "error" in case:
            if failed is None:
                problems.append(f"{case['name']}: expected an error, got {got!r}")
            elif case["error"] not in failed:
                problems.append(f"{case['name']}: error {failed!r} lacks {case['error']!r}")
        elif failed is not None:
            problems.append(f"{case['name']}: unexpected error {failed}")
        elif got != case.get("expected"):
            problems.append(
                f"{case['name']}:\n  expected {case.get('expected')!r}\n  got      {got!r}"
            )
    if UPDATE:
        text = yaml.dump_all(
            cases, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10_000
        )
        path.write_text(text, encoding="utf-8")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", _files("templates"), ids=lambda p: p.name)
def test_template_golden(path: pathlib.Path) -> None:
    _check("templates", path)


@pytest.mark.parametrize("path", _files("parameters"), ids=lambda p: p.name)
def test_parameter_golden(path: pathlib.Path) -> None:
    _check("parameters", path)


def test_golden_suite_is_large_enough() -> None:
    template_cases = sum(len(_load(p)) for p in _files("templates"))
    parameter_cases = sum(len(_load(p)) for p in _files("parameters"))
    assert template_cases >= 25
    assert parameter_cases >= 15


def test_every_function_has_a_golden_case() -> None:
    """Each implemented function appears in at least one template case."""
    used = "\n".join(
        str(case.get("template", "")) for p in _files("templates") for case in _load(p)
    )
    missing = sorted(
        name
        for name in templates.FUNCTIONS
        if not name.startswith("must") and f"{name} " not in used and f"{name} }}" not in used
    )
    assert not missing, f"functions without a golden case: {missing}"
