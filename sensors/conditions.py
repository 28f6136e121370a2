"""The trigger `conditions` language: which dependencies must be satisfied before a trigger fires.

Argo Events lets a trigger say `conditions: "pushed && (nightly || manual)"` over the names of
the sensor's dependencies, and fires when the expression becomes true; with no conditions it
waits for all of them. This module parses that text once (a small recursive-descent parser over
`||`, `&&`, `!` and parentheses, never `eval`) into a `Condition` that the sensor evaluates on
every event, and that the explanation API renders with each name's truth value to answer
"why didn't it fire?".

Grammar (`&&` binds tighter than `||`, `!` tightest):

    expr    := and ("||" and)*
    and     := unary ("&&" unary)*
    unary   := "!" unary | primary
    primary := NAME | "(" expr ")"
    NAME    := (letter | digit | "_" | "-" | ".")+
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Final, TypeAlias

from tripwire.errors import ExpressionError

__all__ = ["Condition", "compile"]

_TRUE_MARK: Final = "✓"
_FALSE_MARK: Final = "✗"

# Precedence levels used to decide where the canonical text needs parentheses.
_OR: Final = 1
_AND: Final = 2
_NOT: Final = 3


@dataclasses.dataclass(frozen=True, slots=True)
class _Name:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Not:
    operand: _Node


@dataclasses.dataclass(frozen=True, slots=True)
class _And:
    operands: tuple[_Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Or:
    operands: tuple[_Node, ...]


_Node: TypeAlias = "_Name | _Not | _And | _Or"
_Predicate: TypeAlias = Callable[[Collection[str]], bool]


def _render(node: _Node, label: Callable[[str], str], parent: int = 0) -> str:
    """Text with the fewest parentheses that keep the tree's meaning."""
    if isinstance(node, _Name):
        return label(node.name)
    if isinstance(node, _Not):
        return "!" + _render(node.operand, label, _NOT)
    level, joiner = (_AND, " && ") if isinstance(node, _And) else (_OR, " || ")
    text = joiner.join(_render(operand, label, level) for operand in node.operands)
    return f"({text})" if parent > level else text


def _predicate(node: _Node) -> _Predicate:
    """Closures over the tree: evaluation is a few set lookups, no tree walk per call."""
    if isinstance(node, _Name):
        name = node.name
        return lambda satisfied: name in satisfied
    if isinstance(node, _Not):
        inner = _predicate(node.operand)
        return lambda satisfied: not inner(satisfied)
    operands = node.operands
    if all(isinstance(operand, _Name) for operand in operands):
        names = frozenset(operand.name for operand in operands if isinstance(operand, _Name))
        if isinstance(node, _And):
            return names.issubset
        return lambda satisfied: not names.isdisjoint(satisfied)
    parts = tuple(_predicate(operand) for operand in operands)
    want = isinstance(node, _Or)  # the operand value that decides the result early

    def combined(satisfied: Collection[str]) -> bool:
        for part in parts:
            if part(satisfied) is want:
                return want
        return not want

    return combined


def _referenced(node: _Node) -> frozenset[str]:
    if isinstance(node, _Name):
        return frozenset((node.name,))
    if isinstance(node, _Not):
        return _referenced(node.operand)
    return frozenset().union(*(_referenced(operand) for operand in node.operands))


_AS_IS: tuple[type, ...] = (set, frozenset, type({}.keys()))


def _as_set(satisfied: Collection[str] | Mapping[str, bool]) -> Collection[str]:
    # Predicates only test membership and pass the collection to frozenset methods, which
    # take any iterable: a dict's keys (the sensor's state) need no copy.
    if type(satisfied) in _AS_IS:
        return satisfied
    if isinstance(satisfied, Mapping):
        return {name for name, value in satisfied.items() if value}
    return set(satisfied)


class Condition:
    """A compiled condition over dependency names; immutable and safe to share."""

    __slots__ = ("_predicate", "_tree", "names", "text")

    def __init__(self, tree: _Node) -> None:
        self._tree = tree
        self._predicate = _predicate(tree)
        self.names: frozenset[str] = _referenced(tree)
        self.text: str = _render(tree, str)

    def evaluate(self, satisfied: Collection[str] | Mapping[str, bool]) -> bool:
        """True when the condition holds, given the satisfied names (or a name -> bool map)."""
        return self._predicate(_as_set(satisfied))

    def contributing(self, satisfied: Collection[str] | Mapping[str, bool]) -> frozenset[str]:
        """Referenced names that are satisfied: whose latest events the firing carries."""
        return self.names.intersection(_as_set(satisfied))

    def explain(self, satisfied: Collection[str] | Mapping[str, bool]) -> str:
        """The canonical text with each name's truth value: `a(✓) && (b(✗) || c(✗))`."""
        truth = _as_set(satisfied)
        return _render(
            self._tree, lambda name: f"{name}({_TRUE_MARK if name in truth else _FALSE_MARK})"
        )

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other._tree == self._tree

    def __hash__(self) -> int:
        return hash(self._tree)


def _join(kind: type[_And] | type[_Or], operands: list[_Node]) -> _Node:
    """One n-ary node; `(a || b) || c` flattens so equal meanings get equal trees and texts."""
    if len(operands) == 1:
        return operands[0]
    flat: list[_Node] = []
    for operand in operands:
        if isinstance(operand, kind):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return kind(tuple(flat))


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_-."


class _Parser:
    def __init__(self, text: str, known: Sequence[str]) -> None:
        self.text = text
        self.known = known
        self.known_set = frozenset(known)
        self.pos = 0
        self.end = len(text)
        self.last_operator = ""  # for "after '&&'" in the message about a missing operand

    def error(self, message: str, position: int) -> ExpressionError:
        return ExpressionError(message, text=self.text, position=position)

    def skip_spaces(self) -> None:
        while self.pos < self.end and self.text[self.pos].isspace():
            self.pos += 1

    def describe_here(self) -> str:
        if self.pos >= self.end:
            return "end of condition"
        end = self.pos + 1
        if _is_name_char(self.text[self.pos]):
            while end < self.end and _is_name_char(self.text[end]):
                end += 1
        return repr(self.text[self.pos : end])

    def parse(self) -> _Node:
        node = self.expr()
        self.skip_spaces()
        if self.pos < self.end:
            if self.text[self.pos] == ")":
                raise self.error("unbalanced ')' without a matching '('", self.pos)
            raise self.error(f"expected '&&' or '||', found {self.describe_here()}", self.pos)
        return node

    def operator(self, symbol: str) -> bool:
        """Consume `symbol` (`&&` or `||`) if next; a lone `&` or `|` is an error."""
        self.skip_spaces()
        if self.text.startswith(symbol, self.pos):
            self.pos += 2
            self.last_operator = symbol
            return True
        if self.text.startswith(symbol[0], self.pos):
            raise self.error(f"expected {symbol!r}, found a single {symbol[0]!r}", self.pos)
        return False

    def expr(self) -> _Node:
        operands = [self.conjunction()]
        while self.operator("||"):
            operands.append(self.conjunction())
        return _join(_Or, operands)

    def conjunction(self) -> _Node:
        operands = [self.unary()]
        while self.operator("&&"):
            operands.append(self.unary())
        return _join(_And, operands)

    def unary(self) -> _Node:
        self.skip_spaces()
        if self.pos < self.end and self.text[self.pos] == "!":
            self.pos += 1
            self.last_operator = "!"
            return _Not(self.unary())
        return self.primary()

    def primary(self) -> _Node:
        self.skip_spaces()
        start = self.pos
        expected = "expected a dependency name or '('"
        if self.last_operator:
            expected += f" after {self.last_operator!r}"
        if start >= self.end:
            raise self.error(f"{expected}, found end of condition", start)
        ch = self.text[start]
        if ch == "(":
            self.pos += 1
            self.last_operator = "("
            node = self.expr()
            self.skip_spaces()
            if self.pos >= self.end:
                raise self.error("unbalanced '(' is never closed", start)
            if self.text[self.pos] != ")":
                raise self.error(f"expected ')', found {self.describe_here()}", self.pos)
            self.pos += 1
            return node
        if not _is_name_char(ch):
            raise self.error(f"{expected}, found {ch!r}", start)
        self.last_operator = ""
        while self.pos < self.end and _is_name_char(self.text[self.pos]):
            self.pos += 1
        name = self.text[start : self.pos]
        if name not in self.known_set:
            known = ", ".join(self.known) if self.known else "(none)"
            raise self.error(f"unknown dependency {name!r} (known: {known})", start)
        return _Name(name)


@functools.lru_cache(maxsize=1024)
def _compile(text: str | None, names: tuple[str, ...]) -> Condition:
    if text is None or not text.strip():
        if not names:
            raise ExpressionError(
                "the condition is empty and there are no dependencies", text=text or ""
            )
        unique = tuple(dict.fromkeys(names))
        tree: _Node = _Name(unique[0]) if len(unique) == 1 else _And(tuple(map(_Name, unique)))
        return Condition(tree)
    return Condition(_Parser(text, names).parse())


def compile(text: str | None, *, names: Collection[str]) -> Condition:
    """Parse a trigger's `conditions` against the sensor's dependency `names` (cached).

    None or blank text means all `names`, in order, joined by `&&`. Unknown names and syntax
    errors raise ExpressionError with the 0-based position of the problem.
    """
    return _compile(text, tuple(names))
