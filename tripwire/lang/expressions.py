"""govaluate-compatible expressions, for the `exprs` filters of a dependency.

Argo Events evaluates `exprs[].expr` with Knetic/govaluate over the values its `fields` bind from
the event data, so sensors ported from it carry govaluate text. The language is read with a real
tokenizer and a precedence-climbing parser (`tripwire.lang.expression_parsing`, never `eval`); this
module gives the operators their meaning and compiles the tree once into nested closures:
evaluating an expression per event is a few Python calls, no tree walk.

Semantics follow govaluate, which Argo uses:

- Values are numbers (float semantics; ints from JSON are accepted as numbers, bools are not),
  strings, booleans, null, arrays and objects. Literals: `1`, `2.5`, `'text'`, `"text"` (a
  backslash escapes the next character), `true`, `false`, and `(1, 2, 3)` arrays for `in`.
- Variables are names of letters, digits and `_`; `[any name]` escapes other characters. A dotted
  name `a.b` reads the variable `a.b`, else (an extension; govaluate reads struct fields) key `b`
  of the object bound to `a`. An unbound variable is an error when evaluation reaches it.
- Precedence, lowest first: `?:` and `??`; `||`; `&&`; `== != > >= < <= =~ !~ in`;
  `& | ^`; `<< >>`; `+ -`; `* / %`; `**`; prefix `! - ~`. Operators of one level associate to
  the left (govaluate reorders its right-recursive plan the same way), so `2 ** 3 ** 2` is 64
  and `-2 ** 2` is 4; a nested `a ? b : c ? d : e` reads as `a ? b : (c ? d : e)`.
- `+` adds numbers, or concatenates when either side is a string (numbers printed like Go's
  `%v`: `"v" + 1` is `"v1"`). `- * / % **` and the bitwise operators need numbers; division by
  zero gives ±Inf or NaN as in Go, not an error. `> >= < <=` compare two numbers or two strings.
  `==`/`!=` never fail: values of different types are unequal (`1 == "1"` is false).
  `&& || !` and the ternary condition need booleans; `&&`/`||` short-circuit. `=~`/`!~` search a
  string with an unanchored regular expression (compiled once when it is a literal). `a ?? b` is
  `b` when `a` is null. `x in (1, 2)` or `x in list` tests membership with `==`.
- Not supported: functions (Argo registers none), and govaluate's reading of date-like string
  literals as Unix timestamps (they stay strings here).

Parse errors raise `ExpressionError` with the 0-based position; evaluation errors (a type that an
operator refuses, an unbound variable) raise `EvaluationError`, a subclass, pointing at the
operator.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from tripwire.errors import ExpressionError
from tripwire.lang import expression_parsing

__all__ = ["EvaluationError", "Expression", "compile", "go_format"]

Run: TypeAlias = Callable[[Mapping[str, Any]], Any]


class EvaluationError(ExpressionError):
    """An expression failed on the values it was given (wrong type, unbound variable)."""


# --------------------------------------------------------------------------------------------
# Values


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def _equal(a: Any, b: Any) -> bool:
    """govaluate's `==` (reflect.DeepEqual over JSON values): same type and equal; every JSON
    number is a float64 there, so an int equals the same float, but never a bool."""
    ta, tb = type(a), type(b)
    if ta is tb:
        return bool(a == b)
    return (ta is int or ta is float) and (tb is int or tb is float) and a == b


def _go_float(number: float) -> str:
    """`number` as Go's `%v` prints a float64: shortest digits, exponent from 1e+06 and below
    1e-04 (so `"v" + 1` is `"v1"`, and `"v" + 1000000` is `"v1e+06"`, as in Argo)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    sign = "-" if number < 0 else ""
    mantissa, _, exp_text = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exp_text or 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_format(value: Any) -> str:
    """`value` as Go's `%v` prints the JSON value govaluate holds (for string concatenation)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "<nil>"
    if isinstance(value, int | float):
        try:
            return _go_float(float(value))
        except OverflowError:
            return str(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{k}:{go_format(v)}" for k, v in items) + "]"
    return str(value)


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else go_format(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _divide(a: float, b: float) -> float:
    if b:
        return a / b
    # IEEE 754 as in Go: x/0 is ±Inf, 0/0 is NaN.
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _modulo(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)  # Go's math.Mod: the sign follows the dividend
    except ValueError:
        return math.nan


def _power(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


_MASK64: Final = (1 << 64) - 1


def _to_int(value: float) -> int:
    try:
        return int(value)
    except (OverflowError, ValueError):
        return 0


def _shift_left(a: float, b: float) -> float:
    count = _to_int(b)
    return float(((_to_int(a) & _MASK64) << count) & _MASK64) if 0 <= count < 64 else 0.0


def _shift_right(a: float, b: float) -> float:
    count = _to_int(b)
    return float((_to_int(a) & _MASK64) >> count) if 0 <= count < 64 else 0.0


_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
    "%": _modulo,
    "**": _power,
    "&": lambda a, b: float(_to_int(a) & _to_int(b)),
    "|": lambda a, b: float(_to_int(a) | _to_int(b)),
    "^": lambda a, b: float(_to_int(a) ^ _to_int(b)),
    "<<": _shift_left,
    ">>": _shift_right,
}
_ORDERING: Final[dict[str, Callable[[Any, Any], bool]]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


# --------------------------------------------------------------------------------------------
# Compilation: each node becomes a closure over its children's closures.


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, message: str, pos: int) -> EvaluationError:
        return EvaluationError(message, text=self.text, position=pos)

    def node(self, node: expression_parsing.Node) -> Run:
        if isinstance(node, expression_parsing.Literal):
            value = node.value
            return lambda variables: value
        if isinstance(node, expression_parsing.Var):
            return self.var(node)
        if isinstance(node, expression_parsing.Array):
            items = tuple(self.node(item) for item in node.items)
            return lambda variables: [item(variables) for item in items]
        if isinstance(node, expression_parsing.Unary):
            return self.unary(node)
        if isinstance(node, expression_parsing.Ternary):
            return self.ternary(node)
        return self.binary(node)

    def var(self, node: expression_parsing.Var) -> Run:
        name = node.name
        head, dot, rest = name.partition(".")
        keys = tuple(rest.split(".")) if dot else ()
        fail = self.fail

        def lookup(variables: Mapping[str, Any]) -> Any:
            try:
                return variables[name]
            except KeyError:
                pass
            if keys and head in variables:
                value = variables[head]
                for key in keys:
                    if not isinstance(value, dict) or key not in value:
                        raise fail(f"{head!r} has no field {rest!r}", node.pos)
                    value = value[key]
                return value
            raise fail(f"no value for {name!r}", node.pos)

        return lookup

    def unary(self, node: expression_parsing.Unary) -> Run:
        operand = self.node(node.operand)
        fail, op, pos = self.fail, node.op, node.pos
        if op == "!":

            def invert(variables: Mapping[str, Any]) -> Any:
                value = operand(variables)
                if value is True:
                    return False
                if value is False:
                    return True
                raise fail(f"'!' needs true or false, got {_show(value)}", pos)

            return invert

        def numeric(variables: Mapping[str, Any]) -> Any:
            value = operand(variables)
            if not _is_number(value):
                raise fail(f"{op!r} needs a number, got {_show(value)}", pos)
            return -value if op == "-" else float(~_to_int(value))

        return numeric

    def ternary(self, node: expression_parsing.Ternary) -> Run:
        condition, then = self.node(node.condition), self.node(node.then)
        otherwise = self.node(node.otherwise) if node.otherwise is not None else None
        fail, pos = self.fail, node.pos

        def choose(variables: Mapping[str, Any]) -> Any:
            test = condition(variables)
            if test is True:
                return then(variables)
            if test is not False:
                raise fail(f"'?' needs a true or false condition, got {_show(test)}", pos)
            return None if otherwise is None else otherwise(variables)

        return choose

    def binary(self, node: expression_parsing.Binary) -> Run:
        op, pos, fail = node.op, node.pos, self.fail
        left = self.node(node.left)
        if op in ("=~", "!~") and isinstance(node.right, expression_parsing.Literal):
            return self.regex(node, left)
        right = self.node(node.right)

        if op == "&&" or op == "||":
            stop = op == "||"  # the left value that decides alone
            go_on = not stop

            def logical(variables: Mapping[str, Any]) -> Any:
                a = left(variables)
                if a is stop:
                    return stop
                if a is not go_on:
                    raise fail(f"{op!r} needs true or false, got {_show(a)}", pos)
                b = right(variables)
                if b is True or b is False:
                    return b
                raise fail(f"{op!r} needs true or false, got {_show(b)}", pos)

            return logical
        if op == "??":

            def coalesce(variables: Mapping[str, Any]) -> Any:
                a = left(variables)
                return right(variables) if a is None else a

            return coalesce
        if op == "==":
            return lambda variables: _equal(left(variables), right(variables))
        if op == "!=":
            return lambda variables: not _equal(left(variables), right(variables))
        if op == "in":

            def member(variables: Mapping[str, Any]) -> Any:
                a, b = left(variables), right(variables)
                if not isinstance(b, list):
                    raise fail(f"'in' needs an array on its right, got {_show(b)}", pos)
                return any(_equal(a, item) for item in b)

            return member
        if op in _ORDERING:
            order = _ORDERING[op]

            def compare(variables: Mapping[str, Any]) -> Any:
                a, b = left(variables), right(variables)
                if (_is_number(a) and _is_number(b)) or (type(a) is str and type(b) is str):
                    return order(a, b)
                raise fail(
                    f"{op!r} compares two numbers or two strings, got {_show(a)} and {_show(b)}",
                    pos,
                )

            return compare
        if op in ("=~", "!~"):
            negate = op == "!~"

            def dynamic_regex(variables: Mapping[str, Any]) -> Any:
                a, b = left(variables), right(variables)
                if type(a) is not str or type(b) is not str:
                    raise fail(f"{op!r} needs two strings, got {_show(a)} and {_show(b)}", pos)
                try:
                    pattern = re.compile(b)  # the re module keeps a cache of compiled patterns
                except re.error as exc:
                    raise fail(f"{b!r} is not a valid regular expression: {exc}", pos) from None
                return (pattern.search(a) is None) is negate

            return dynamic_regex
        if op == "+":

            def add(variables: Mapping[str, Any]) -> Any:
                a, b = left(variables), right(variables)
                if _is_number(a) and _is_number(b):
                    return a + b
                if type(a) is str or type(b) is str:
                    return go_format(a) + go_format(b)
                raise fail(f"'+' needs numbers or a string, got {_show(a)} and {_show(b)}", pos)

            return add
        arithmetic = _ARITHMETIC[op]

        def calculate(variables: Mapping[str, Any]) -> Any:
            a, b = left(variables), right(variables)
            if _is_number(a) and _is_number(b):
                return arithmetic(a, b)
            raise fail(f"{op!r} needs two numbers, got {_show(a)} and {_show(b)}", pos)

        return calculate

    def regex(self, node: expression_parsing.Binary, left: Run) -> Run:
        assert isinstance(node.right, expression_parsing.Literal)
        source = node.right.value
        op, pos, fail = node.op, node.pos, self.fail
        if type(source) is not str:
            raise ExpressionError(f"{op!r} needs a string pattern", text=self.text, position=pos)
        try:
            search = re.compile(source).search
        except re.error as exc:
            raise ExpressionError(
                f"{source!r} is not a valid regular expression: {exc}",
                text=self.text,
                position=pos,
            ) from None
        negate = op == "!~"

        def matches(variables: Mapping[str, Any]) -> Any:
            a = left(variables)
            if type(a) is not str:
                raise fail(f"{op!r} needs a string on its left, got {_show(a)}", pos)
            return (search(a) is None) is negate

        return matches


class Expression:
    """A compiled expression; `evaluate(variables)` runs it (and raises `EvaluationError`)."""

    __slots__ = ("evaluate", "text", "variables")

    evaluate: Run
    text: str
    variables: frozenset[str]

    def __init__(self, text: str, *, evaluate: Run, variables: frozenset[str]) -> None:
        self.text = text
        self.evaluate = evaluate
        self.variables = variables

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


@functools.lru_cache(maxsize=1024)
def compile(text: str) -> Expression:
    """Parse and compile `text` once; raises `ExpressionError` with the position of a mistake."""
    tree, names = expression_parsing.parse(text)
    run = _Compiler(text).node(tree)
    return Expression(text, evaluate=run, variables=names)
