"""The trigger conditions language: truth tables, precedence, rendering and error positions."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from sensors import conditions
from tripwire.errors import ExpressionError

ABC = ("a", "b", "c")


def _assignments(names: tuple[str, ...]) -> list[dict[str, bool]]:
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product((False, True), repeat=len(names))
    ]


@pytest.mark.parametrize(
    ("text", "truth"),
    [
        ("a && b", lambda a, b, c: a and b),
        ("a || b", lambda a, b, c: a or b),
        ("a && (b || c)", lambda a, b, c: a and (b or c)),
        ("(a && b) || c", lambda a, b, c: (a and b) or c),
        ("!a && b", lambda a, b, c: (not a) and b),
        ("!(a && b)", lambda a, b, c: not (a and b)),
        ("!!a", lambda a, b, c: a),
        ("a || b && c", lambda a, b, c: a or (b and c)),
        ("a && b || c", lambda a, b, c: (a and b) or c),
        ("a || !b && c", lambda a, b, c: a or ((not b) and c)),
        ("a&&b||!c", lambda a, b, c: (a and b) or not c),
        ("((a))", lambda a, b, c: a),
        ("a && b && c", lambda a, b, c: a and b and c),
        ("a || b || c", lambda a, b, c: a or b or c),
        ("(a || b) && (b || c)", lambda a, b, c: (a or b) and (b or c)),
    ],
)
def test_truth_tables(text: str, truth: Callable[[bool, bool, bool], bool]) -> None:
    condition = conditions.compile(text, names=ABC)
    for row in _assignments(ABC):
        expected = truth(row["a"], row["b"], row["c"])
        satisfied = {name for name, value in row.items() if value}
        assert condition.evaluate(row) is expected, row
        assert condition.evaluate(satisfied) is expected, row
        assert condition.evaluate(frozenset(satisfied)) is expected, row
        assert condition.evaluate(sorted(satisfied)) is expected, row


def test_names_with_dashes_dots_underscores_and_digits() -> None:
    names = ["dep-1", "web.hook", "ci_push", "2nd", "データ"]
    condition = conditions.compile("dep-1 && (web.hook || ci_push) && !2nd && データ", names=names)
    assert condition.names == frozenset(names)
    assert condition.evaluate({"dep-1", "web.hook", "データ"})
    assert not condition.evaluate({"dep-1", "web.hook", "2nd", "データ"})
    assert not condition.evaluate({"dep-1", "データ"})


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_default_is_and_of_all_names_in_order(text: str | None) -> None:
    condition = conditions.compile(text, names=["pushed", "nightly", "manual"])
    assert condition.text == "pushed && nightly && manual"
    assert condition.names == {"pushed", "nightly", "manual"}
    assert condition.evaluate({"pushed", "nightly", "manual", "other"})
    assert not condition.evaluate({"pushed", "nightly"})


def test_default_single_name_and_duplicates() -> None:
    assert conditions.compile(None, names=["only"]).text == "only"
    assert conditions.compile(None, names=["a", "b", "a"]).text == "a && b"


def test_default_without_names_is_an_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        conditions.compile(None, names=[])
    assert caught.value.reason == "the condition is empty and there are no dependencies"


def test_mapping_false_values_are_unsatisfied() -> None:
    condition = conditions.compile("a && b", names=ABC)
    assert not condition.evaluate({"a": True, "b": False})
    assert condition.evaluate({"a": True, "b": True, "c": False})
    assert not condition.evaluate({})


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a&&b", "a && b"),
        ("  a ||b  ", "a || b"),
        ("a && (b || c)", "a && (b || c)"),
        ("(a && b) || c", "a && b || c"),
        ("a || (b && c)", "a || b && c"),
        ("a || (b || c)", "a || b || c"),
        ("(a || b) && c", "(a || b) && c"),
        ("!(a || b)", "!(a || b)"),
        ("!(a && b)", "!(a && b)"),
        ("!(a)", "!a"),
        ("! ! a", "!!a"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    condition = conditions.compile(text, names=ABC)
    assert condition.text == canonical
    assert repr(condition) == f"Condition({canonical!r})"
    # The canonical text means the same thing.
    again = conditions.compile(canonical, names=ABC)
    assert again == condition
    assert hash(again) == hash(condition)
    for row in _assignments(ABC):
        assert again.evaluate(row) is condition.evaluate(row)


def test_explain() -> None:
    names = ["pushed", "nightly", "manual"]
    condition = conditions.compile("pushed && (nightly || manual)", names=names)
    assert condition.explain({"pushed"}) == "pushed(✓) && (nightly(✗) || manual(✗))"
    assert condition.explain({"pushed": True, "manual": True}) == (
        "pushed(✓) && (nightly(✗) || manual(✓))"
    )
    assert conditions.compile("!a", names=ABC).explain(set()) == "!a(✗)"


def test_contributing() -> None:
    condition = conditions.compile("a && (b || c)", names=[*ABC, "d"])
    assert condition.names == {"a", "b", "c"}
    assert condition.contributing({"a", "b", "d"}) == {"a", "b"}
    assert condition.contributing({"a": True, "b": False, "c": True}) == {"a", "c"}
    assert condition.contributing(set()) == frozenset()


def test_compile_is_cached() -> None:
    first = conditions.compile("a && b", names=["a", "b"])
    assert conditions.compile("a && b", names=("a", "b")) is first


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        (
            "a && zz",
            "unknown dependency 'zz' (known: a, b, c)",
            5,
        ),
        ("(b || dep-9)", "unknown dependency 'dep-9' (known: a, b, c)", 6),
        ("a &", "expected '&&', found a single '&'", 2),
        ("a & b", "expected '&&', found a single '&'", 2),
        ("a | b", "expected '||', found a single '|'", 2),
        ("a &&", "expected a dependency name or '(' after '&&', found end of condition", 4),
        ("a || ", "expected a dependency name or '(' after '||', found end of condition", 5),
        ("!", "expected a dependency name or '(' after '!', found end of condition", 1),
        ("&& a", "expected a dependency name or '(', found '&'", 0),
        ("|| a", "expected a dependency name or '(', found '|'", 0),
        ("()", "expected a dependency name or '(' after '(', found ')'", 1),
        ("a && ()", "expected a dependency name or '(' after '(', found ')'", 6),
        ("(a && b", "unbalanced '(' is never closed", 0),
        ("a && ((b || c)", "unbalanced '(' is never closed", 5),
        ("a && b)", "unbalanced ')' without a matching '('", 6),
        ("(a b)", "expected ')', found 'b'", 3),
        ("a b", "expected '&&' or '||', found 'b'", 2),
        ("a $ b", "expected '&&' or '||', found '$'", 2),
        ("a && $", "expected a dependency name or '(' after '&&', found '$'", 5),
        ("a and b", "expected '&&' or '||', found 'and'", 2),
    ],
)
def test_errors(text: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        conditions.compile(text, names=ABC)
    assert caught.value.reason == message
    assert caught.value.position == position
    assert caught.value.text == text


def test_unknown_with_no_known_names() -> None:
    with pytest.raises(ExpressionError) as caught:
        conditions.compile("a", names=[])
    assert caught.value.reason == "unknown dependency 'a' (known: (none))"
