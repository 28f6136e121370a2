"""Go text/template with the hermetic sprig functions, for `dataTemplate`, `contextTemplate`
and the data filter `template`.

Argo Events renders these with Go's `text/template` and `sprig` (`pkg/sensors/triggers/
params.go` `getValueWithTemplate`, `pkg/sensors/dependencies/filter.go`), with the template
data `{"Input": value}`. Sensors ported from Argo must render the same text, so this module
implements that language over Python JSON data. It is written from scratch on purpose: no
`eval`, no Jinja (other syntax, and its sandbox is still an eval surface). A template is parsed
once into closures (`compile`, LRU-cached) so rendering costs a few microseconds per event.

Language (Go `text/template`): text and `{{ }}` actions, `{{-`/`-}}` trim markers, comments
`{{/* */}}`; pipelines `a | f b | g`; fields `.Input.body.x`, `.`, `$`, `$x.a`, `(pipe).a`;
variables `$x := pipe`, `$x = pipe`; literals (strings "..." and `raw`, runes 'a', ints incl.
0x/0o/0b, floats, true/false/nil); `if`/`else if`/`else`/`end`, `with`/`else with`,
`range` over lists, maps (sorted keys) and ints with `$i, $v :=`, `{{ else }}`, `break`,
`continue`; builtins and/or (short-circuit), not, len, index, print, printf, println, html,
js, urlquery, eq/ne/lt/le/gt/ge. Not supported: `define`/`template`/`block`, methods, `call`.

Functions: the hermetic sprig set (`sprig.HermeticTxtFuncMap`: no env, expandenv, random,
uuid, now/date, getHostByName), minus crypto/semver/date/case-conversion helpers; see
`FUNCTIONS` (the table lives in `tripwire.lang.sprig`). Calling an unknown function, or a function
with the wrong number of arguments, is a parse error (`errors.ExpressionError` with the
position), as in Go.

Decisions where Python data meets Go semantics (each keeps Argo's output for the usual
cases and is pinned by the golden suite in `tests/unit/golden/templates`):

- A missing map key, or a JSON null, prints `<no value>` like Go with `map[string]any`.
  `render_strict` instead raises `NoValueError` when one is printed: parameters use it so that
  `x{{ .Input.absent }}` falls back to `dataKey`/`value` instead of writing `x<no value>`.
- Integers stay integers (Argo decodes every JSON number to float64 and prints 1000000 as
  `1e+06`); floats print like Go's `%v` (`3`, `0.5`, `1e+21`). Maps and lists print as
  compact JSON (Go prints `map[a:1]`, which no consumer can parse).
- eq/lt/... compare ints and floats numerically (Go refuses `eq 3 3.0`); other mixes are
  an error, as in Go. `len` counts UTF-8 bytes like Go; `trunc`/`substr`/`abbrev` count
  characters (Go slices bytes and can cut a character in half).
- printf supports %v %s %d %q %f %F %e %E %g %G %x %X %o %b %t %c %T %% with flags, width and
  precision; %s and %v accept any value, %d accepts integral floats.
- `keys` returns sorted keys (sprig: map order). `set`/`unset`/`merge*` change only dicts the
  template built (`dict`, `fromJson`, `deepCopy`, ...): event data is shared and read-only.
- Regexes are Python `re` (RE2 syntax is nearly a subset); `$1`/`${name}` expand as in Go.

Layout: `template_lexing` turns text into tokens; this module parses them into closures and
runs them; `sprig` is the function table; `govalues` holds the Go
value rules (printing, truth, comparison, coercion, printf) that the engine and the functions
share.

Render errors (wrong argument type, index out of range, `fail`) raise `RenderError`, a
ValueError naming the action and its position.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from tripwire import errors
from tripwire.lang import govalues, paths, sprig, template_lexing

__all__ = [
    "FUNCTIONS",
    "NoValueError",
    "RenderError",
    "Template",
    "compile",
    "gjson_string",
    "render_input",
]

MISSING: Final = paths.MISSING
NO_VALUE: Final = "<no value>"

FUNCTIONS: Final = sprig.FUNCTIONS
gjson_string: Final = govalues.gjson_string

# Rendering calls these once per value; aliases spare an attribute lookup on each call.
_nil: Final = govalues.nil_if_missing
_truth: Final = govalues.truth


class RenderError(errors.TripwireError, ValueError):
    """A template failed while rendering; `action` is the `{{ ... }}` text that failed and
    `position` its 0-based offset in `text`."""

    def __init__(self, message: str, *, text: str, action: str, position: int) -> None:
        self.text = text
        self.action = action
        self.position = position
        self.reason = message
        super().__init__(f"{message} in {action} at position {position}")


class NoValueError(RenderError):
    """`render_strict` printed a missing or null value (Go would print `<no value>`)."""


class _BreakError(Exception):
    pass


class _ContinueError(Exception):
    pass


def _arity(fn: Callable[..., Any]) -> tuple[int, int | None]:
    params = inspect.signature(fn).parameters.values()
    required = sum(1 for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    return required, None if variadic else required


_ARITY: Final = {name: _arity(fn) for name, fn in sprig.FUNCTIONS.items()}
_SPECIAL_FORMS: Final = frozenset({"and", "or"})

# --------------------------------------------------------------------------------------------
# Parser: tokens into closures. Variables are resolved to slots at parse time, so rendering
# indexes a list instead of searching scopes.

_Eval = Callable[[Any, "_State"], Any]
_Command = Callable[[Any, "_State", Any], Any]
_Stmt = Callable[[Any, "_State"], None]
_NOFINAL: Final = object()


class _State:
    __slots__ = ("out", "strict", "vars")

    def __init__(self, variables: list[Any], *, strict: bool) -> None:
        self.vars = variables
        self.out: list[str] = []
        self.strict = strict


class _Operand:
    __slots__ = ("fn", "kind", "name", "pos")

    def __init__(self, kind: str, fn: _Eval, pos: int, name: str = "") -> None:
        self.kind = kind  # "func", "value", "nil", "literal"
        self.fn = fn
        self.pos = pos
        self.name = name


def _field_step(value: Any, name: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, MISSING)
    if value is MISSING:
        return MISSING
    if value is None:
        raise govalues.FailureError(f"nil pointer evaluating interface {{}}.{name}")
    raise govalues.FailureError(f"can't evaluate field {name} in type {govalues.type_name(value)}")


def _chain(base: _Eval, names: tuple[str, ...]) -> _Eval:
    if len(names) == 1:
        (name,) = names

        def one(dot: Any, st: _State) -> Any:
            value = base(dot, st)
            if isinstance(value, dict):
                return value.get(name, MISSING)
            return _field_step(value, name)

        return one

    def many(dot: Any, st: _State) -> Any:
        value = base(dot, st)
        for name in names:
            if isinstance(value, dict):
                value = value.get(name, MISSING)
            else:
                value = _field_step(value, name)
        return value

    return many


def _dot(dot: Any, st: _State) -> Any:
    return dot


def _constant(value: Any) -> _Eval:
    def const(dot: Any, st: _State) -> Any:
        return value

    return const


class _Parser:
    def __init__(self, text: str, variables: tuple[str, ...]) -> None:
        self.text = text
        self.tokens = template_lexing.tokenize(text)
        self.i = 0
        self.scopes: list[dict[str, int]] = [{"$": 0}]
        for n, name in enumerate(variables, start=1):
            self.scopes[0]["$" + name] = n
        self.slots = 1 + len(variables)
        self.loops = 0

    # -- tokens -------------------------------------------------------------------------
    def error(self, message: str, position: int) -> errors.ExpressionError:
        return errors.ExpressionError(message, text=self.text, position=position)

    def peek(self, ahead: int = 0) -> template_lexing.Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> template_lexing.Token:
        tok = self.tokens[self.i]
        if tok.kind != template_lexing.EOF:
            self.i += 1
        return tok

    def expect(self, kind: str, context: str) -> template_lexing.Token:
        tok = self.next()
        if tok.kind != kind:
            raise self.error(f"unexpected {tok.describe()} in {context}", tok.pos)
        return tok

    def lookup(self, name: str, pos: int) -> int:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise self.error(f"undefined variable {name!r}", pos)

    def declare(self, name: str) -> int:
        slot = self.slots
        self.slots += 1
        self.scopes[-1][name] = slot
        return slot

    # -- lists and control structures ---------------------------------------------------
    def parse(self) -> _Stmt:
        body, end = self.statements()
        if end is not None:
            raise self.error(f"unexpected {{{{ {end.value} }}}}", end.pos)
        return body

    def statements(self) -> tuple[_Stmt, template_lexing.Token | None]:
        """Statements up to `{{ end }}`/`{{ else` (returned, rest of the action unread) or EOF."""
        stmts: list[_Stmt] = []
        while True:
            tok = self.next()
            if tok.kind == template_lexing.EOF:
                return _sequence(stmts), None
            if tok.kind == template_lexing.TEXT:
                stmts.append(_text_stmt(tok.value))
                continue
            first = self.peek()
            if first.kind == template_lexing.IDENT:
                word = first.value
                if word in ("end", "else"):
                    self.next()
                    return _sequence(stmts), first
                if word in ("if", "with", "range"):
                    self.next()
                    stmts.append(self.control(word, tok))
                    continue
                if word in ("break", "continue"):
                    self.next()
                    if not self.loops:
                        raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", first.pos)
                    self.expect(template_lexing.RIGHT, word)
                    stmts.append(_break if word == "break" else _continue)
                    continue
                if word in ("define", "template", "block"):
                    raise self.error(f"{{{{ {word} }}}} is not supported", first.pos)
            stmts.append(self.action(tok))

    def action(self, left: template_lexing.Token) -> _Stmt:
        decl, pipe = self.pipeline("command", decl_ok=True)
        right = self.tokens[self.i - 1]
        where = self.text[left.pos : right.end]
        return _action_stmt(pipe, decl=decl, text=self.text, action=where, position=left.pos)

    def body(self, *, loop: bool = False) -> tuple[_Stmt, template_lexing.Token | None]:
        self.scopes.append({})
        self.loops += loop
        try:
            return self.statements()
        finally:
            self.loops -= loop
            self.scopes.pop()

    def control(self, word: str, left: template_lexing.Token) -> _Stmt:
        branches: list[tuple[_Eval, _Stmt, str, int]] = []
        else_body: _Stmt | None = None
        range_decl: tuple[tuple[int, ...], bool] | None = None
        current_left, current_word = left, word
        self.scopes.append({})
        try:
            while True:
                decl, pipe = self.pipeline(
                    current_word, decl_ok=True, range_ok=current_word == "range"
                )
                where = self.text[current_left.pos : self.tokens[self.i - 1].end]
                if current_word == "range":
                    range_decl = decl
                else:
                    pipe = _declaring(pipe, decl)
                body, end = self.body(loop=current_word == "range")
                branches.append((pipe, body, where, current_left.pos))
                if end is None:
                    raise self.error(f"unexpected EOF: missing {{{{ end }}}} for {where}", left.pos)
                if end.value == "end":
                    self.expect(template_lexing.RIGHT, "end")
                    break
                # {{ else }}, {{ else if ... }}, {{ else with ... }}
                nxt = self.peek()
                if (
                    nxt.kind == template_lexing.IDENT
                    and nxt.value in ("if", "with")
                    and word != "range"
                ):
                    if nxt.value != word:
                        raise self.error(
                            f"{{{{ else {nxt.value} }}}} inside {{{{ {word} }}}}", nxt.pos
                        )
                    self.next()
                    current_left = self.tokens[self.i - 3]  # the "{{" of "{{ else if"
                    continue
                self.expect(template_lexing.RIGHT, "else")
                else_body, end = self.body()
                if end is None or end.value != "end":
                    at = end.pos if end is not None else left.pos
                    raise self.error(f"expected {{{{ end }}}} after {{{{ else }}}} of {word}", at)
                self.expect(template_lexing.RIGHT, "end")
                break
        finally:
            self.scopes.pop()
        if word == "if":
            return _if_stmt(branches, else_body, self.text)
        if word == "with":
            return _with_stmt(branches, else_body, self.text)
        return _range_stmt(branches[0], range_decl, else_body, self.text)

    # -- pipelines ----------------------------------------------------------------------
    def pipeline(
        self,
        context: str,
        *,
        decl_ok: bool,
        range_ok: bool = False,
        closer: str = template_lexing.RIGHT,
    ) -> tuple[tuple[tuple[int, ...], bool] | None, _Eval]:
        """(declaration, evaluator); the declaration is (slots, is_assignment)."""
        names: list[template_lexing.Token] = []
        assign = False
        first = self.peek()
        if decl_ok and first.kind == template_lexing.VAR and not first.value[1]:
            second = self.peek(1)
            if second.kind in (template_lexing.DECLARE, template_lexing.ASSIGN):
                names = [first]
                assign = second.kind == template_lexing.ASSIGN
                self.i += 2
            elif second.kind == template_lexing.COMMA and range_ok:
                third, fourth = self.peek(2), self.peek(3)
                if (
                    third.kind != template_lexing.VAR
                    or third.value[1]
                    or fourth.kind != template_lexing.DECLARE
                ):
                    raise self.error("expected $a, $b := in range", second.pos)
                names = [first, third]
                self.i += 4
        commands: list[_Command] = []
        while True:
            commands.append(self.command(len(commands), closer))
            tok = self.next()
            if tok.kind == template_lexing.PIPE:
                continue
            if tok.kind == closer:
                break
            raise self.error(f"unexpected {tok.describe()} in {context}", tok.pos)
        decl: tuple[tuple[int, ...], bool] | None = None
        if names:
            if assign:
                slots = tuple(self.lookup(t.value[0], t.pos) for t in names)
            else:
                slots = tuple(self.declare(t.value[0]) for t in names)
            decl = (slots, assign)
        return decl, _pipeline(commands)

    def command(self, stage: int, closer: str) -> _Command:
        operands: list[_Operand] = []
        while self.peek().kind not in (
            template_lexing.PIPE,
            closer,
            template_lexing.EOF,
            template_lexing.RIGHT,
        ):
            operands.append(self.operand())
        tok = self.peek()
        if not operands:
            raise self.error("missing value for command", tok.pos)
        head = operands[0]
        for n, arg in enumerate(operands[1:], start=1):
            if arg.kind == "func":
                # A function name as an argument is called with no arguments, as in Go.
                call = _niladic(self.call(arg, [], piped=False))
                operands[n] = _Operand("value", call, arg.pos)
        if head.kind == "func":
            return self.call(head, operands[1:], piped=stage > 0)
        if len(operands) > 1:
            raise self.error("can't give argument to non-function", operands[1].pos)
        if stage > 0:
            raise self.error(
                f"non executable command in pipeline stage {stage + 1}: only functions"
                " take the piped value",
                head.pos,
            )
        if head.kind == "nil":
            raise self.error("nil is not a command", head.pos)
        fn = head.fn

        def value(dot: Any, st: _State, final: Any) -> Any:
            return fn(dot, st)

        return value

    def call(self, head: _Operand, args: list[_Operand], *, piped: bool) -> _Command:
        name = head.name
        count = len(args) + piped
        low, high = _ARITY.get(name, (1, None))
        if name in _SPECIAL_FORMS:
            low, high = 1, None
        if count < low or (high is not None and count > high):
            want = (
                f"{low}" if high == low else f"at least {low}" if high is None else f"{low}-{high}"
            )
            raise self.error(f"wrong number of args for {name}: want {want} got {count}", head.pos)
        fns = [a.fn for a in args]
        if name in _SPECIAL_FORMS:
            return _logic(name, fns)
        return _call(name, sprig.FUNCTIONS[name], fns)

    def operand(self) -> _Operand:
        tok = self.next()
        kind = tok.kind
        op: _Operand
        if kind == template_lexing.FIELD:
            return _Operand("value", _chain(_dot, tok.value), tok.pos)
        if kind == template_lexing.DOT:
            op = _Operand("value", _dot, tok.pos)
        elif kind == template_lexing.VAR:
            name, names = tok.value
            slot = self.lookup(name, tok.pos)

            def variable(dot: Any, st: _State, slot: int = slot) -> Any:
                return st.vars[slot]

            return _Operand("value", _chain(variable, names) if names else variable, tok.pos)
        elif kind in (template_lexing.STRING, template_lexing.NUMBER, template_lexing.BOOL):
            op = _Operand("literal", _constant(tok.value), tok.pos)
        elif kind == template_lexing.NIL:
            op = _Operand("nil", _constant(None), tok.pos)
        elif kind == template_lexing.IDENT:
            name = tok.value
            if name not in sprig.FUNCTIONS and name not in _SPECIAL_FORMS:
                raise self.error(f'function "{name}" not defined', tok.pos)
            op = _Operand("func", _dot, tok.pos, name)
        elif kind == template_lexing.LPAREN:
            _, inner = self.pipeline(
                "parenthesized pipeline", decl_ok=False, closer=template_lexing.RPAREN
            )
            op = _Operand("value", inner, tok.pos)
        else:
            raise self.error(f"unexpected {tok.describe()} in operand", tok.pos)
        after = self.peek()
        if after.kind == template_lexing.FIELD and not after.spaced:
            self.next()
            if op.kind != "value":
                raise self.error("field access on a non-value", after.pos)
            op = _Operand("value", _chain(op.fn, after.value), op.pos)
        return op


def _niladic(command: _Command) -> _Eval:
    def call(dot: Any, st: _State) -> Any:
        return command(dot, st, _NOFINAL)

    return call


def _call(name: str, fn: Callable[..., Any], args: list[_Eval]) -> _Command:
    def call(dot: Any, st: _State, final: Any) -> Any:
        values = [_nil(a(dot, st)) for a in args]
        if final is not _NOFINAL:
            values.append(_nil(final))
        try:
            return fn(*values)
        except govalues.FailureError as exc:
            raise govalues.FailureError(f"error calling {name}: {exc}") from None
        except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise govalues.FailureError(f"error calling {name}: {exc}") from None

    return call


def _logic(name: str, args: list[_Eval]) -> _Command:
    """`and`/`or`: evaluate left to right, stop at the first false/true argument, and return
    that argument itself (Go 1.18)."""
    want = name == "or"

    def logic(dot: Any, st: _State, final: Any) -> Any:
        value: Any = None
        for arg in args:
            value = arg(dot, st)
            if _truth(value) is want:
                return value
        if final is not _NOFINAL:
            value = final
        return value

    return logic


def _pipeline(commands: list[_Command]) -> _Eval:
    if len(commands) == 1:
        (only,) = commands

        def single(dot: Any, st: _State) -> Any:
            return only(dot, st, _NOFINAL)

        return single
    first, rest = commands[0], commands[1:]

    def piped(dot: Any, st: _State) -> Any:
        value = first(dot, st, _NOFINAL)
        for command in rest:
            value = command(dot, st, value)
        return value

    return piped


def _declaring(pipe: _Eval, decl: tuple[tuple[int, ...], bool] | None) -> _Eval:
    """For if/with: the pipeline, also storing its value when it declares one variable."""
    if decl is None or len(decl[0]) != 1:
        return pipe
    slot = decl[0][0]

    def store(dot: Any, st: _State) -> Any:
        value = pipe(dot, st)
        st.vars[slot] = value
        return value

    return store


# --------------------------------------------------------------------------------------------
# Statements.


def _sequence(stmts: list[_Stmt]) -> _Stmt:
    if len(stmts) == 1:
        return stmts[0]

    def run(dot: Any, st: _State) -> None:
        for stmt in stmts:
            stmt(dot, st)

    return run


def _text_stmt(text: str) -> _Stmt:
    def run(dot: Any, st: _State) -> None:
        st.out.append(text)

    return run


def _break(dot: Any, st: _State) -> None:
    raise _BreakError


def _continue(dot: Any, st: _State) -> None:
    raise _ContinueError


def _evaluate(pipe: _Eval, dot: Any, st: _State, *, text: str, action: str, position: int) -> Any:
    try:
        return pipe(dot, st)
    except govalues.FailureError as exc:
        raise RenderError(str(exc), text=text, action=action, position=position) from None


def _action_stmt(
    pipe: _Eval,
    *,
    decl: tuple[tuple[int, ...], bool] | None,
    text: str,
    action: str,
    position: int,
) -> _Stmt:
    if decl is not None:
        slot = decl[0][0]

        def store(dot: Any, st: _State) -> None:
            st.vars[slot] = _evaluate(pipe, dot, st, text=text, action=action, position=position)

        return store

    def output(dot: Any, st: _State) -> None:
        try:
            value = pipe(dot, st)
        except govalues.FailureError as exc:
            raise RenderError(str(exc), text=text, action=action, position=position) from None
        if type(value) is str:
            st.out.append(value)
        elif value is None or value is MISSING:
            if st.strict:
                raise NoValueError(
                    "missing or null value", text=text, action=action, position=position
                )
            st.out.append(NO_VALUE)
        else:
            try:
                st.out.append(govalues.text_of(value))
            except govalues.FailureError as exc:
                raise RenderError(str(exc), text=text, action=action, position=position) from None

    return output


def _if_stmt(
    branches: list[tuple[_Eval, _Stmt, str, int]], else_body: _Stmt | None, text: str
) -> _Stmt:
    def run(dot: Any, st: _State) -> None:
        for cond, body, action, position in branches:
            if _truth(_evaluate(cond, dot, st, text=text, action=action, position=position)):
                body(dot, st)
                return
        if else_body is not None:
            else_body(dot, st)

    return run


def _with_stmt(
    branches: list[tuple[_Eval, _Stmt, str, int]], else_body: _Stmt | None, text: str
) -> _Stmt:
    def run(dot: Any, st: _State) -> None:
        for cond, body, action, position in branches:
            value = _evaluate(cond, dot, st, text=text, action=action, position=position)
            if _truth(value):
                body(value, st)
                return
        if else_body is not None:
            else_body(dot, st)

    return run


def _range_stmt(
    branch: tuple[_Eval, _Stmt, str, int],
    decl: tuple[tuple[int, ...], bool] | None,
    else_body: _Stmt | None,
    text: str,
) -> _Stmt:
    pipe, body, action, position = branch
    slots = decl[0] if decl is not None else ()

    def run(dot: Any, st: _State) -> None:
        value = _evaluate(pipe, dot, st, text=text, action=action, position=position)
        items: list[tuple[Any, Any]]
        if isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(slots) > 1:
                raise RenderError(
                    "can't use two variables when ranging over an int",
                    text=text,
                    action=action,
                    position=position,
                )
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise RenderError(
                f"range can't iterate over {govalues.format_v(value)}",
                text=text,
                action=action,
                position=position,
            )
        if not items:
            if else_body is not None:
                else_body(dot, st)
            return
        for key, element in items:
            if len(slots) == 1:
                st.vars[slots[0]] = element
            elif len(slots) == 2:
                st.vars[slots[0]], st.vars[slots[1]] = key, element
            try:
                body(element, st)
            except _ContinueError:
                continue
            except _BreakError:
                break

    return run


# --------------------------------------------------------------------------------------------
# Public API.


class Template:
    """A parsed template; `render` is safe to call concurrently."""

    __slots__ = ("_body", "_slots", "text", "variables")

    def __init__(self, text: str, variables: tuple[str, ...] = ()) -> None:
        parser = _Parser(text, variables)
        self._body = parser.parse()
        self._slots = parser.slots
        self.text = text
        self.variables = variables

    def render(self, data: Any, /, **variables: Any) -> str:
        """The text, with `data` as `.` and `$`; missing values print `<no value>` like Go.

        `variables` bind the `$name` variables declared in `compile(variables=...)`.
        Raises RenderError when an action fails.
        """
        return self._run(data, variables, strict=False)

    def render_strict(self, data: Any, /, **variables: Any) -> str:
        """Like `render`, but printing a missing or null value raises NoValueError."""
        return self._run(data, variables, strict=True)

    def _run(self, data: Any, variables: Mapping[str, Any], *, strict: bool) -> str:
        slots: list[Any] = [None] * self._slots
        slots[0] = data
        if variables or self.variables:
            unknown = set(variables) - set(self.variables)
            if unknown:
                raise TypeError(f"undeclared template variables: {sorted(unknown)}")
            for n, name in enumerate(self.variables, start=1):
                slots[n] = variables.get(name, MISSING)
        st = _State(slots, strict=strict)
        self._body(data, st)
        return "".join(st.out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


@functools.lru_cache(maxsize=1024)
def compile(text: str, *, variables: tuple[str, ...] = ()) -> Template:
    """Parse `text` once; ExpressionError (a ValueError) with the position when it is wrong.

    `variables` names extra `$name` variables that `render` binds by keyword.
    """
    return Template(text, variables)


def render_input(template: str, value: Any, *, strict: bool = False) -> str:
    """Render `template` with Argo's data, `{"Input": value}` (so `.Input` is the value)."""
    compiled = compile(template)
    data = {"Input": value}
    return compiled.render_strict(data) if strict else compiled.render(data)
