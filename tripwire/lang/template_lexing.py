"""The tokens of a Go template, for the parser in `tripwire.lang.templates`.

Go's `text/template` lexes text and `{{ }}` actions (with `{{-`/`-}}` trim markers and
`{{/* */}}` comments) before it parses; this module does the same, so the parser reads a flat
list of tokens instead of characters. Inside an action, `Token.spaced` records whether
whitespace preceded a token, so `.a.b` (one chain) differs from `.a .b` (two operands). Lexing
errors raise `errors.ExpressionError` with the position, like parse errors.
"""

from __future__ import annotations

import re
from typing import Any, Final

from tripwire import errors

__all__ = ["Token", "tokenize"]

EOF, TEXT, LEFT, RIGHT = "EOF", "text", "{{", "}}"
FIELD, VAR, IDENT, STRING, NUMBER = "field", "variable", "identifier", "string", "number"
BOOL, NIL, DOT, PIPE, LPAREN, RPAREN = "bool", "nil", ".", "|", "(", ")"
DECLARE, ASSIGN, COMMA = ":=", "=", ","
_SPACE_CHARS: Final = " \t\r\n"
_NUMBER_RE: Final = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
    r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)"
)
_NAME_RE: Final = re.compile(r"\w+")


class Token:
    __slots__ = ("end", "kind", "pos", "spaced", "value")

    def __init__(self, kind: str, value: Any, pos: int, end: int, *, spaced: bool = False) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos
        self.end = end
        self.spaced = spaced

    def describe(self) -> str:
        if self.kind == EOF:
            return "end of template"
        if self.value is None or self.kind in (LEFT, RIGHT):
            return f'"{self.kind}"'
        return f"{self.kind} {self.value!r}"


class _Lexer:
    """Text and actions into tokens, for one template."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []

    def error(self, message: str, position: int) -> errors.ExpressionError:
        return errors.ExpressionError(message, text=self.text, position=position)

    def run(self) -> list[Token]:
        text = self.text
        pos, trim = 0, False
        while True:
            start = text.find("{{", pos)
            segment = text[pos:] if start < 0 else text[pos:start]
            if trim:
                segment = segment.lstrip(_SPACE_CHARS)
            if start < 0:
                if segment:
                    self.tokens.append(Token(TEXT, segment, pos, len(text)))
                break
            inner = start + 2
            if text.startswith("-", inner) and text[inner + 1 : inner + 2] in tuple(_SPACE_CHARS):
                segment = segment.rstrip(_SPACE_CHARS)
                inner += 2
            if segment:
                self.tokens.append(Token(TEXT, segment, pos, start))
            if text.startswith("/*", inner):
                pos, trim = self.comment(start, inner)
                continue
            self.tokens.append(Token(LEFT, None, start, inner))
            pos, trim = self.action(start, inner)
        self.tokens.append(Token(EOF, None, len(text), len(text)))
        return self.tokens

    def right_delim(self, pos: int) -> tuple[int, bool] | None:
        """(end, trim) when a closing delimiter starts at pos (with its trim marker)."""
        text = self.text
        if text.startswith("}}", pos):
            return pos + 2, False
        if text[pos : pos + 1] in tuple(_SPACE_CHARS) and text.startswith("-}}", pos + 1):
            return pos + 4, True
        return None

    def comment(self, start: int, inner: int) -> tuple[int, bool]:
        end = self.text.find("*/", inner + 2)
        if end < 0:
            raise self.error("unclosed comment", start)
        closing = self.right_delim(end + 2)
        if closing is None:
            raise self.error("comment ends before closing delimiter", end + 2)
        return closing

    def action(self, start: int, pos: int) -> tuple[int, bool]:
        text, n = self.text, len(self.text)
        spaced = True
        depth = 0
        while True:
            if pos >= n:
                raise self.error("unclosed action", start)
            closing = self.right_delim(pos)
            if closing is not None:
                if depth:
                    raise self.error("unclosed left paren", pos)
                self.tokens.append(Token(RIGHT, None, pos, closing[0]))
                return closing
            ch = text[pos]
            if ch in _SPACE_CHARS:
                pos += 1
                spaced = True
                continue
            tok = self.token(start, pos)
            tok.spaced = spaced
            spaced = False
            if tok.kind == LPAREN:
                depth += 1
            elif tok.kind == RPAREN:
                depth -= 1
                if depth < 0:
                    raise self.error("unexpected right paren", pos)
            self.tokens.append(tok)
            pos = tok.end

    def token(self, start: int, pos: int) -> Token:
        text = self.text
        ch = text[pos]
        simple = {"|": PIPE, "(": LPAREN, ")": RPAREN, ",": COMMA, "=": ASSIGN}
        if ch in simple:
            return Token(simple[ch], None, pos, pos + 1)
        if text.startswith(":=", pos):
            return Token(DECLARE, None, pos, pos + 2)
        if ch == '"':
            return self.quoted(pos)
        if ch == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise self.error("unterminated raw quoted string", pos)
            return Token(STRING, text[pos + 1 : end].replace("\r", ""), pos, end + 1)
        if ch == "'":
            return self.rune(pos)
        if ch == "$":
            match = _NAME_RE.match(text, pos + 1)
            name_end = match.end() if match else pos + 1
            names, end = self.chain(name_end)
            return Token(VAR, (text[pos:name_end], names), pos, end)
        if ch == "." and not text[pos + 1 : pos + 2].isdigit():
            names, end = self.chain(pos)
            if not names:
                return Token(DOT, None, pos, pos + 1)
            return Token(FIELD, names, pos, end)
        if ch.isdigit() or ch in "+-.":
            return self.number(pos)
        match = _NAME_RE.match(text, pos)
        if match:
            word = match.group()
            if word in ("true", "false"):
                return Token(BOOL, word == "true", pos, match.end())
            if word == "nil":
                return Token(NIL, None, pos, match.end())
            return Token(IDENT, word, pos, match.end())
        raise self.error(f"unrecognized character in action: {ch!r}", pos)

    def chain(self, pos: int) -> tuple[tuple[str, ...], int]:
        """Field names `.a.b` starting at pos (none when there is no `.name`)."""
        names: list[str] = []
        text = self.text
        while text.startswith(".", pos):
            match = _NAME_RE.match(text, pos + 1)
            if not match:
                break
            names.append(match.group())
            pos = match.end()
        return tuple(names), pos

    def quoted(self, pos: int) -> Token:
        text = self.text
        i = pos + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == "\n":
                break
            if ch == '"':
                return Token(STRING, self.unquote(text[pos + 1 : i], pos), pos, i + 1)
            i += 1
        raise self.error("unterminated quoted string", pos)

    def rune(self, pos: int) -> Token:
        text = self.text
        i = pos + 1
        while i < len(text) and text[i] != "'":
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            raise self.error("unterminated character constant", pos)
        value = self.unquote(text[pos + 1 : i], pos, quote="'")
        if len(value) != 1:
            raise self.error("malformed character constant", pos)
        return Token(NUMBER, ord(value), pos, i + 1)

    def unquote(self, body: str, pos: int, quote: str = '"') -> str:
        """Go's interpreted string escapes."""
        if "\\" not in body:
            return body
        out: list[str] = []
        i = 0
        singles = {
            "a": "\a",
            "b": "\b",
            "f": "\f",
            "n": "\n",
            "r": "\r",
            "t": "\t",
            "v": "\v",
            "\\": "\\",
            quote: quote,
        }
        while i < len(body):
            ch = body[i]
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            esc = body[i + 1 : i + 2]
            widths = {"x": 2, "u": 4, "U": 8}
            if esc in singles:
                out.append(singles[esc])
                i += 2
            elif esc in widths:
                digits = body[i + 2 : i + 2 + widths[esc]]
                if len(digits) != widths[esc] or not all(
                    c in "0123456789abcdefABCDEF" for c in digits
                ):
                    raise self.error("invalid escape in quoted string", pos + 1 + i)
                out.append(chr(int(digits, 16)))
                i += 2 + widths[esc]
            elif esc and esc in "01234567":
                digits = body[i + 1 : i + 4]
                if len(digits) != 3 or not all(c in "01234567" for c in digits):
                    raise self.error("invalid escape in quoted string", pos + 1 + i)
                out.append(chr(int(digits, 8)))
                i += 4
            else:
                raise self.error("invalid escape in quoted string", pos + 1 + i)
        return "".join(out)

    def number(self, pos: int) -> Token:
        text = self.text
        match = _NUMBER_RE.match(text, pos)
        end = match.end() if match else pos + 1
        if not match or (end < len(text) and (text[end].isalnum() or text[end] in "._")):
            raise self.error("bad number syntax", pos)
        literal = match.group().replace("_", "")
        body = literal.lstrip("+-")
        sign = -1 if literal.startswith("-") else 1
        value: int | float
        try:
            if body[:2].lower() in ("0x", "0o", "0b"):
                value = int(body, 0)
            elif re.fullmatch(r"0\d+", body):
                value = int(body, 8)  # Go: a leading 0 means octal
            elif re.fullmatch(r"\d+", body):
                value = int(body)
            else:
                value = float(body)
        except ValueError:
            raise self.error("bad number syntax", pos) from None
        return Token(NUMBER, sign * value, pos, end)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `EOF` token."""
    return _Lexer(text).run()
