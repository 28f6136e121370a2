"""Go templates: the API contract (parse once, errors with positions, strict mode, variables).

Per-function and per-construct outputs live in the golden files (`golden/templates/*.yaml`,
run by test_golden.py); this module tests what a golden case cannot express.
"""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest

from tripwire import errors
from tripwire.lang import paths, templates

DATA: dict[str, Any] = {"Input": {"body": {"ref": "refs/heads/main", "n": 3, "tags": ["a"]}}}


def test_compile_is_cached_and_render_is_repeatable() -> None:
    first = templates.compile("{{ .Input.body.ref | upper }}")
    assert templates.compile("{{ .Input.body.ref | upper }}") is first
    assert first.render(DATA) == first.render(DATA) == "REFS/HEADS/MAIN"


def test_render_input_binds_input() -> None:
    assert templates.render_input("{{ .Input.x }}-{{ .Input.y }}", {"x": 1, "y": "b"}) == "1-b"
    assert templates.render_input("[{{ .Input.absent }}]", {}) == "[<no value>]"
    with pytest.raises(templates.NoValueError):
        templates.render_input("[{{ .Input.absent }}]", {}, strict=True)


def test_render_does_not_change_the_data() -> None:
    data = copy.deepcopy(DATA)
    text = (
        '{{ $c := deepCopy .Input.body }}{{ $_ := set $c "ref" "x" }}'
        '{{ $l := append .Input.body.tags "b" }}{{ $c.ref }}{{ len $l }}'
    )
    assert templates.compile(text).render(data) == "x2"
    assert data == DATA


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        pytest.param("ab {{ nope 1 }}", 6, 'function "nope" not defined', id="unknown-function"),
        pytest.param("{{ upper 1 2 }}", 3, "wrong number of args for upper", id="arity"),
        pytest.param("x {{ .a", 2, "unclosed action", id="unclosed"),
        pytest.param('{{ "abc }}', 3, "unterminated quoted string", id="string"),
        pytest.param("{{ (print 1 }}", 12, "unclosed left paren", id="paren"),
        pytest.param("{{ if 1 }}a", 0, "missing {{ end }}", id="missing-end"),
        pytest.param("{{ end }}", 3, "unexpected {{ end }}", id="stray-end"),
        pytest.param("{{ 09 }}", 3, "bad number syntax", id="bad-octal"),
        pytest.param("{{ $x }}", 3, "undefined variable '$x'", id="undefined-variable"),
        pytest.param("{{ continue }}", 3, "outside {{range}}", id="continue-outside-range"),
        pytest.param("{{ .a | 1 }}", 8, "non executable command", id="literal-stage"),
        pytest.param("{{ .a 1 }}", 6, "can't give argument to non-function", id="field-args"),
        pytest.param("{{ nil }}", 3, "nil is not a command", id="nil-command"),
        pytest.param('{{ template "x" }}', 3, "not supported", id="template"),
        pytest.param("{{ /* c */ }}", 3, "unrecognized character", id="comment-needs-no-space"),
        pytest.param("{{ @ }}", 3, "unrecognized character", id="bad-char"),
        pytest.param('{{ "\\q" }}', 4, "invalid escape", id="bad-escape"),
    ],
)
def test_parse_errors_point_at_the_problem(text: str, position: int, message: str) -> None:
    with pytest.raises(errors.ExpressionError) as caught:
        templates.compile(text)
    assert caught.value.position == position, caught.value
    assert message in caught.value.reason
    assert caught.value.text == text


def test_parse_errors_are_value_errors_for_pydantic() -> None:
    class Spec(pydantic.BaseModel):
        template: str

        @pydantic.field_validator("template")
        @classmethod
        def _check(cls, text: str) -> str:
            templates.compile(text)
            return text

    with pytest.raises(pydantic.ValidationError) as caught:
        Spec(template="{{ shout }}")
    assert caught.value.errors()[0]["loc"] == ("template",)


def test_render_errors_name_the_action() -> None:
    template = templates.compile("ok {{ .Input.body.ref }} {{ .Input.body.n | upper }}")
    with pytest.raises(templates.RenderError) as caught:
        template.render(DATA)
    exc = caught.value
    assert isinstance(exc, ValueError)
    assert exc.action == "{{ .Input.body.n | upper }}"
    assert exc.position == 25
    assert "expected string; got int" in exc.reason
    assert "{{ .Input.body.n | upper }}" in str(exc)


def test_errors_in_control_actions_name_that_action() -> None:
    template = templates.compile("{{ range .Input.body.tags }}{{ if lt . 1 }}x{{ end }}{{ end }}")
    with pytest.raises(templates.RenderError) as caught:
        template.render(DATA)
    assert caught.value.action == "{{ if lt . 1 }}"


def test_strict_mode_only_affects_printing() -> None:
    template = templates.compile('{{ default "d" .Input.absent }}|{{ .Input.absent }}')
    assert template.render({"Input": {}}) == "d|<no value>"
    with pytest.raises(templates.NoValueError) as caught:
        template.render_strict({"Input": {}})
    assert caught.value.action == "{{ .Input.absent }}"
    assert templates.compile("{{ if .Input.x }}{{ end }}ok").render_strict({"Input": {}}) == "ok"


def test_declared_variables_are_bound_by_keyword() -> None:
    template = templates.compile("{{ $name }}-{{ .x }}", variables=("name",))
    assert template.render({"x": 1}, name="a") == "a-1"
    assert template.render({"x": 1}) == "<no value>-1"
    with pytest.raises(TypeError, match="undeclared"):
        template.render({"x": 1}, other=2)


def test_dot_never_reaches_python_attributes() -> None:
    # Fields are map lookups only: no attribute access, so no way out to Python objects.
    template = templates.compile("{{ .__class__ }}|{{ .Input.__len__ }}")
    assert template.render({"Input": {}}) == "<no value>|<no value>"
    with pytest.raises(templates.RenderError, match="can't evaluate field upper"):
        templates.compile("{{ .Input.upper }}").render({"Input": "text"})


def test_trim_marker_needs_a_space() -> None:
    assert templates.compile("a {{-3}} b").render(None) == "a -3 b"
    assert templates.compile("a {{- 3 -}} b").render(None) == "a3b"


def test_nested_range_and_root() -> None:
    text = "{{ range $k, $v := .m }}{{ range $v }}{{ $k }}{{ . }}{{ $.sep }}{{ end }}{{ end }}"
    data = {"m": {"b": [1], "a": [2, 3]}, "sep": ";"}
    assert templates.compile(text).render(data) == "a2;a3;b1;"


def test_gjson_string_matches_argo_filter_input() -> None:
    assert templates.gjson_string("x") == "x"
    assert templates.gjson_string(None) == ""
    assert templates.gjson_string(paths.MISSING) == ""
    assert templates.gjson_string(True) == "true"
    assert templates.gjson_string(3) == "3"
    assert templates.gjson_string(2.5) == "2.5"
    assert templates.gjson_string(1e21) == "1e+21"
    assert templates.gjson_string({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'


def test_functions_table_is_hermetic() -> None:
    for name in ("env", "expandenv", "now", "date", "randAlphaNum", "uuidv4", "getHostByName"):
        assert name not in templates.FUNCTIONS
        with pytest.raises(errors.ExpressionError, match="not defined"):
            templates.compile(f"{{{{ {name} }}}}")


def test_large_integers_and_floats_print_exactly() -> None:
    data = {"Input": {"big": 2**70, "f": 1e21, "neg": -0.000001}}
    assert templates.render_input("{{ .Input.big }}", data["Input"]) == str(2**70)
    assert templates.compile("{{ .Input.f }} {{ .Input.neg }}").render(data) == "1e+21 -1e-06"
    assert templates.compile("{{ toJson .Input }}").render(data) == (
        '{"big":1180591620717411303424,"f":1e+21,"neg":-0.000001}'
    )
