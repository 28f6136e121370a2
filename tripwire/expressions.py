"""govaluate-compatible expressions, for the `exprs` filters of a dependency.

Argo Events evaluates `exprs[].expr` with Knetic/govaluate over the values its `fields` bind from
the event data, so sensors ported from it carry govaluate text. This module reads that language
with a real tokenizer and a precedence-climbing parser (never `eval`), and compiles the tree once
into nested closures: evaluating an expression per event is a few Python calls, no tree walk.

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

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from tripwire.errors import ExpressionError

__all__ = ["EvaluationError", "Expression", "compile", "go_format"]

Run: TypeAlias = Callable[[Mapping[str, Any]], Any]


class EvaluationError(ExpressionError):
    """An expression failed on the values it was given (wrong type, unbound variable)."""


# --------------------------------------------------------------------------------------------
# Tokens

_NUM, _STR, _NAME, _BOOL, _OP, _LPAREN, _RPAREN, _COMMA, _END = range(9)

_OPERATORS: Final = (
    # Longest first, so that `**` is not read as two `*`.
    "**", "==", "!=", ">=", "<=", "=~", "!~", "&&", "||", "??", "<<", ">>",
    "+", "-", "*", "/", "%", ">", "<", "!", "~", "&", "|", "^", "?", ":",
)  # fmt: skip
_NAME_CHARS: Final = re.compile(r"\w+")  # letters, digits and `_` (Unicode aware)
_NUMBER: Final = re.compile(r"[0-9]*\.?[0-9]*")


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    kind: int
    value: Any
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, end = 0, len(text)
    while pos < end:
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        start = pos
        if ch.isdigit() or (ch == "." and text[pos + 1 : pos + 2].isdigit()):
            match = _NUMBER.match(text, pos)
            assert match is not None
            pos = match.end()
            if pos < end and (text[pos].isalpha() or text[pos] == "_"):
                raise ExpressionError("a number cannot run into a name", text=text, position=pos)
            tokens.append(_Token(_NUM, float(match.group()), start))
        elif ch in "'\"":
            value, pos = _read_until(text, pos + 1, ch, what="string literal", start=start)
            tokens.append(_Token(_STR, value, start))
        elif ch == "[":
            value, pos = _read_until(text, pos + 1, "]", what="[escaped name]", start=start)
            tokens.append(_Token(_NAME, value, start))
        elif ch.isalpha() or ch == "_":
            match = _NAME_CHARS.match(text, pos)
            assert match is not None
            pos = match.end()
            while pos < end and text[pos] == "." and _NAME_CHARS.match(text, pos + 1):
                match = _NAME_CHARS.match(text, pos + 1)
                assert match is not None
                pos = match.end()
            word = text[start:pos]
            if pos < end and text[pos] == ".":
                raise ExpressionError("a name cannot end with '.'", text=text, position=pos)
            if word in ("true", "false"):
                tokens.append(_Token(_BOOL, word == "true", start))
            elif word in ("in", "IN"):
                tokens.append(_Token(_OP, "in", start))
            else:
                tokens.append(_Token(_NAME, word, start))
        elif ch == "(":
            tokens.append(_Token(_LPAREN, ch, start))
            pos += 1
        elif ch == ")":
            tokens.append(_Token(_RPAREN, ch, start))
            pos += 1
        elif ch == ",":
            tokens.append(_Token(_COMMA, ch, start))
            pos += 1
        else:
            for op in _OPERATORS:
                if text.startswith(op, pos):
                    tokens.append(_Token(_OP, op, start))
                    pos += len(op)
                    break
            else:
                raise ExpressionError(f"unexpected character {ch!r}", text=text, position=pos)
    tokens.append(_Token(_END, None, end))
    return tokens


def _read_until(text: str, pos: int, closer: str, *, what: str, start: int) -> tuple[str, int]:
    """Characters up to `closer` (a backslash escapes any character), and the position after."""
    out: list[str] = []
    end = len(text)
    while pos < end:
        ch = text[pos]
        if ch == "\\" and pos + 1 < end:
            out.append(text[pos + 1])
            pos += 2
        elif ch == closer:
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    raise ExpressionError(f"unterminated {what}", text=text, position=start)


# --------------------------------------------------------------------------------------------
# Tree


@dataclasses.dataclass(frozen=True, slots=True)
class _Literal:
    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class _Var:
    name: str
    pos: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Array:
    items: tuple[_Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Unary:
    op: str
    operand: _Node
    pos: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node
    pos: int


@dataclasses.dataclass(frozen=True, slots=True)
class _Ternary:
    condition: _Node
    then: _Node
    otherwise: _Node | None  # govaluate allows `a ? b` alone: null when a is false
    pos: int


_Node: TypeAlias = "_Literal | _Var | _Array | _Unary | _Binary | _Ternary"

# Binding power of each infix operator; higher binds tighter.
_TERNARY: Final = 1
_INFIX: Final[dict[str, int]] = {
    "?": _TERNARY,
    "??": _TERNARY,
    "||": 2,
    "&&": 3,
    **dict.fromkeys(("==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"), 4),
    **dict.fromkeys(("&", "|", "^"), 5),
    **dict.fromkeys(("<<", ">>"), 6),
    **dict.fromkeys(("+", "-"), 7),
    **dict.fromkeys(("*", "/", "%"), 8),
    "**": 9,
}
_PREFIX: Final = frozenset({"!", "-", "~"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.names: set[str] = set()

    def error(self, message: str, token: _Token) -> ExpressionError:
        return ExpressionError(message, text=self.text, position=token.pos)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> _Node:
        if self.peek().kind == _END:
            raise self.error("empty expression", self.peek())
        node = self.expression(0)
        token = self.peek()
        if token.kind != _END:
            raise self.error(f"unexpected {self.describe(token)}", token)
        return node

    @staticmethod
    def describe(token: _Token) -> str:
        if token.kind == _END:
            return "end of expression"
        if token.kind == _STR:
            return f"string {token.value!r}"
        if token.kind == _NUM:
            return "number"
        if token.kind == _NAME:
            return f"name {token.value!r}"
        if token.kind == _BOOL:
            return "true" if token.value else "false"
        return repr(token.value)

    def expression(self, min_power: int) -> _Node:
        left = self.prefix()
        while True:
            token = self.peek()
            if token.kind != _OP or token.value not in _INFIX:
                return left
            power = _INFIX[token.value]
            if power <= min_power:
                return left
            self.take()
            if token.value == "?":
                then = self.expression(0)
                otherwise: _Node | None = None
                if self.peek().kind == _OP and self.peek().value == ":":
                    self.take()
                    # Right-nested: `a ? b : c ? d : e` is `a ? b : (c ? d : e)`.
                    otherwise = self.expression(_TERNARY - 1)
                left = _Ternary(left, then, otherwise, token.pos)
            else:
                right = self.expression(power)
                left = _Binary(token.value, left, right, token.pos)

    def prefix(self) -> _Node:
        token = self.take()
        kind = token.kind
        if kind == _OP and token.value in _PREFIX:
            # Prefix operators bind tighter than every infix one, `**` included (govaluate).
            return _Unary(token.value, self.prefix(), token.pos)
        if kind in (_NUM, _STR, _BOOL):
            return _Literal(token.value)
        if kind == _NAME:
            self.names.add(token.value)
            return _Var(token.value, token.pos)
        if kind == _LPAREN:
            items = [self.expression(0)]
            while self.peek().kind == _COMMA:
                self.take()
                items.append(self.expression(0))
            closer = self.peek()
            if closer.kind != _RPAREN:
                raise self.error(
                    f"expected ')' to close '(' at position {token.pos},"
                    f" found {self.describe(closer)}",
                    closer,
                )
            self.take()
            return items[0] if len(items) == 1 else _Array(tuple(items))
        raise self.error(f"expected a value, found {self.describe(token)}", token)


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

    def node(self, node: _Node) -> Run:
        if isinstance(node, _Literal):
            value = node.value
            return lambda variables: value
        if isinstance(node, _Var):
            return self.var(node)
        if isinstance(node, _Array):
            items = tuple(self.node(item) for item in node.items)
            return lambda variables: [item(variables) for item in items]
        if isinstance(node, _Unary):
            return self.unary(node)
        if isinstance(node, _Ternary):
            return self.ternary(node)
        return self.binary(node)

    def var(self, node: _Var) -> Run:
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

    def unary(self, node: _Unary) -> Run:
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

    def ternary(self, node: _Ternary) -> Run:
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

    def binary(self, node: _Binary) -> Run:
        op, pos, fail = node.op, node.pos, self.fail
        left = self.node(node.left)
        if op in ("=~", "!~") and isinstance(node.right, _Literal):
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

    def regex(self, node: _Binary, left: Run) -> Run:
        assert isinstance(node.right, _Literal)
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
    parser = _Parser(text)
    tree = parser.parse()
    run = _Compiler(text).node(tree)
    return Expression(text, evaluate=run, variables=frozenset(parser.names))
