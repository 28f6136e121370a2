"""The syntax of govaluate expressions: tokens, the tree, and the parser that builds it.

`tripwire.lang.expressions` compiles a tree into closures and defines what each operator does with
values; reading the text is a separate concern with its own rules (token boundaries, escapes,
precedence, associativity), so it lives here, and the tree classes are the whole interface
between the two. Precedence and associativity follow govaluate, as described in
`tripwire.lang.expressions`. Mistakes raise `errors.ExpressionError` with the 0-based position.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final, TypeAlias

from tripwire import errors

__all__ = ["Array", "Binary", "Literal", "Node", "Ternary", "Unary", "Var", "parse"]

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
                raise errors.ExpressionError(
                    "a number cannot run into a name", text=text, position=pos
                )
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
                raise errors.ExpressionError("a name cannot end with '.'", text=text, position=pos)
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
                raise errors.ExpressionError(
                    f"unexpected character {ch!r}", text=text, position=pos
                )
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
    raise errors.ExpressionError(f"unterminated {what}", text=text, position=start)


# --------------------------------------------------------------------------------------------
# Tree


@dataclasses.dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Var:
    name: str
    pos: int


@dataclasses.dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node
    pos: int


@dataclasses.dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node
    pos: int


@dataclasses.dataclass(frozen=True, slots=True)
class Ternary:
    condition: Node
    then: Node
    otherwise: Node | None  # govaluate allows `a ? b` alone: null when a is false
    pos: int


Node: TypeAlias = "Literal | Var | Array | Unary | Binary | Ternary"

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
    """Precedence climbing over the tokens; collects the variable names it reads."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.names: set[str] = set()

    def error(self, message: str, token: _Token) -> errors.ExpressionError:
        return errors.ExpressionError(message, text=self.text, position=token.pos)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Node:
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

    def expression(self, min_power: int) -> Node:
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
                otherwise: Node | None = None
                if self.peek().kind == _OP and self.peek().value == ":":
                    self.take()
                    # Right-nested: `a ? b : c ? d : e` is `a ? b : (c ? d : e)`.
                    otherwise = self.expression(_TERNARY - 1)
                left = Ternary(left, then, otherwise, token.pos)
            else:
                right = self.expression(power)
                left = Binary(token.value, left, right, token.pos)

    def prefix(self) -> Node:
        token = self.take()
        kind = token.kind
        if kind == _OP and token.value in _PREFIX:
            # Prefix operators bind tighter than every infix one, `**` included (govaluate).
            return Unary(token.value, self.prefix(), token.pos)
        if kind in (_NUM, _STR, _BOOL):
            return Literal(token.value)
        if kind == _NAME:
            self.names.add(token.value)
            return Var(token.value, token.pos)
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
            return items[0] if len(items) == 1 else Array(tuple(items))
        raise self.error(f"expected a value, found {self.describe(token)}", token)


def parse(text: str) -> tuple[Node, frozenset[str]]:
    """The tree of `text` and the names of the variables it reads."""
    parser = _Parser(text)
    tree = parser.parse()
    return tree, frozenset(parser.names)
