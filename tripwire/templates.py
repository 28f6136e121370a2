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
`FUNCTIONS`. Calling an unknown function, or a function with the wrong number of arguments,
is a parse error (`errors.ExpressionError` with the position), as in Go.

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

Render errors (wrong argument type, index out of range, `fail`) raise `RenderError`, a
ValueError naming the action and its position.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import functools
import hashlib
import inspect
import json
import math
import posixpath
import re
import urllib.parse
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from tripwire import errors, paths

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


class _FailureError(Exception):
    """Raised inside rendering; the enclosing action turns it into a RenderError."""


class _BreakError(Exception):
    pass


class _ContinueError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Values: Go's view of JSON data.


def _go_type(value: Any) -> str:
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def _kind(value: Any) -> str:
    if value is None or value is MISSING:
        return "invalid"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return _go_type(value)


def _digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of abs(value) and the decimal point position."""
    dec = decimal.Decimal(repr(abs(value))).normalize()
    _, digit_tuple, exponent = dec.as_tuple()
    digits = "".join(map(str, digit_tuple)) or "0"
    assert isinstance(exponent, int)
    if digits == "0":
        return "0", 1
    return digits, len(digits) + exponent


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exponent(digits: str, point: int, *, min_digits: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    sign = "-" if exp < 0 else "+"
    return f"{mantissa}e{sign}{abs(exp):0{min_digits}d}"


def _go_float(value: float) -> str:
    """Go's `%v` of a float64: shortest digits, exponent form below 1e-4 or from 1e+06."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    digits, point = _digits(value)
    sign = "-" if math.copysign(1.0, value) < 0 and value != 0 else ""
    if digits == "0":
        return "0"
    exp = point - 1
    # strconv's 'g' with the shortest precision switches to %e from exponent 6 (1e+06).
    if exp < -4 or exp >= 6:
        return sign + _exponent(digits, point, min_digits=2)
    return sign + _fixed(digits, point)


def _json_float(value: float) -> str:
    """encoding/json's float64: %f, or %e below 1e-6 and from 1e21, exponent without zeros."""
    if math.isnan(value) or math.isinf(value):
        raise _FailureError(f"json: unsupported value: {_go_float(value)}")
    digits, point = _digits(value)
    sign = "-" if value < 0 else ""
    if digits == "0":
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        return sign + _exponent(digits, point, min_digits=1)
    return sign + _fixed(digits, point)


_JSON_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_HTML_ESCAPES: Final = {**_JSON_ESCAPES, "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_JSON_SPECIAL: Final = re.compile(r'["\\\x00-\x1f\u2028\u2029\ud800-\udfff]')
_JSON_SPECIAL_HTML: Final = re.compile(r'["\\\x00-\x1f\u2028\u2029<>&\ud800-\udfff]')


def _json_string(text: str, *, html: bool) -> str:
    table = _JSON_HTML_ESCAPES if html else _JSON_ESCAPES

    def escape(match: re.Match[str]) -> str:
        ch = match.group()
        if ch in table:
            return table[ch]
        if "\ud800" <= ch <= "\udfff":
            return "\ufffd"  # Go writes invalid UTF-8 as the replacement character
        return f"\\u{ord(ch):04x}"

    pattern = _JSON_SPECIAL_HTML if html else _JSON_SPECIAL
    return '"' + pattern.sub(escape, text) + '"'


def _go_json(value: Any, *, html: bool, indent: str | None = None, level: int = 0) -> str:
    """encoding/json `Marshal` (sorted keys, HTML-safe when `html`) or `MarshalIndent`."""
    if value is None or value is MISSING:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value, html=html)
    if isinstance(value, Mapping):
        items = [
            (
                _json_string(str(k), html=html),
                _go_json(value[k], html=html, indent=indent, level=level + 1),
            )
            for k in sorted(value, key=str)
        ]
        if not items:
            return "{}"
        if indent is None:
            return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
        inner, outer = "\n" + indent * (level + 1), "\n" + indent * level
        return "{" + ",".join(f"{inner}{k}: {v}" for k, v in items) + outer + "}"
    if isinstance(value, list | tuple):
        parts = [_go_json(v, html=html, indent=indent, level=level + 1) for v in value]
        if not parts:
            return "[]"
        if indent is None:
            return "[" + ",".join(parts) + "]"
        inner, outer = "\n" + indent * (level + 1), "\n" + indent * level
        return "[" + ",".join(inner + p for p in parts) + outer + "]"
    raise _FailureError(f"json: unsupported type: {_go_type(value)}")


def _text(value: Any) -> str:
    """How an action prints a value (None/MISSING are handled by the caller)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    return _go_json(value, html=False)


def _fmt_v(value: Any) -> str:
    """fmt's `%v` (and sprig `strval`): like `_text`, with nil as `<nil>`."""
    if value is None or value is MISSING:
        return "<nil>"
    return _text(value)


def gjson_string(value: Any) -> str:
    """gjson `Result.String()` of a value: what Argo's data filter binds to `.Input`.

    Strings as they are, null (or `paths.MISSING`) as "", booleans and numbers as JSON text,
    objects and arrays as compact JSON.
    """
    if value is None or value is MISSING:
        return ""
    if isinstance(value, float):
        return _json_float(value)
    return _text(value)


def _truth(value: Any) -> bool:
    """Go's `isTrue`: zero values, empty containers, nil and missing are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | Mapping | list | tuple):
        return len(value) > 0
    return True


def _nil(value: Any) -> Any:
    return None if value is MISSING else value


class _Dict(dict[str, Any]):
    """A dict the template built itself, which `set`/`unset`/`merge` may change."""


def _own(value: Any) -> Any:
    """A deep copy the template owns (dicts become `_Dict`)."""
    if isinstance(value, Mapping):
        return _Dict({str(k): _own(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [_own(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Argument coercion: Go's typed parameters, with JSON numbers accepted where an int is wanted.


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        raise _FailureError("invalid value; expected string")
    raise _FailureError(f"wrong type for value; expected string; got {_go_type(value)}")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or value is MISSING:
        raise _FailureError("invalid value; expected int")
    raise _FailureError(f"wrong type for value; expected int; got {_go_type(value)}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _FailureError(f"wrong type for value; expected bool; got {_go_type(value)}")


def _map(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise _FailureError(
        f"wrong type for value; expected map[string]interface {{}}; got {_go_type(value)}"
    )


def _owned(value: Any, name: str) -> _Dict:
    if isinstance(value, _Dict):
        return value
    if isinstance(value, Mapping):
        raise _FailureError(f"{name} cannot change event data; make a copy with deepCopy first")
    return _Dict(_map(value))


def _list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if value is None or value is MISSING:
        raise _FailureError("cannot find slice in nil")
    raise _FailureError(f"cannot find slice in {_go_type(value)}")


def _to_int64(value: Any) -> int:
    """sprig `toInt64` (spf13/cast): lenient, 0 when it cannot convert."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return 0 if math.isnan(value) or math.isinf(value) else int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+\.0*", text):
            text = text.split(".")[0]
        try:
            return int(text, 0) if not re.fullmatch(r"[+-]?0\d+", text) else int(text, 8)
        except ValueError:
            return 0
    return 0


def _to_float64(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return 0.0
    return 0.0


def _strslice(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [_fmt_v(v) for v in value if v is not None and v is not MISSING]
    if value is None or value is MISSING:
        return []
    return [_fmt_v(value)]


def _empty(value: Any) -> bool:
    return not _truth(value)


# --------------------------------------------------------------------------------------------
# Go builtins.


def _eq_one(a: Any, b: Any) -> bool:
    a, b = _nil(a), _nil(b)
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, bool) and isinstance(b, bool):
            return a == b
        raise _FailureError("incompatible types for comparison")
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if type(a) is type(b) or (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return bool(a == b)
    raise _FailureError("incompatible types for comparison")


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _FailureError("missing argument for comparison")
    return any(_eq_one(a, b) for b in others)


def _ne(a: Any, b: Any) -> bool:
    return not _eq_one(a, b)


def _order(a: Any, b: Any) -> tuple[Any, Any]:
    a, b = _nil(a), _nil(b)
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and (not isinstance(b, bool))
    ):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if (
        a is None
        or b is None
        or isinstance(a, bool | Mapping | list)
        or isinstance(b, bool | Mapping | list)
    ):
        raise _FailureError("invalid type for comparison")
    raise _FailureError("incompatible types for comparison")


def _lt(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x < y)


def _le(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x <= y)


def _gt(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x > y)


def _ge(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x >= y)


def _not(value: Any) -> bool:
    return not _truth(value)


def _len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    raise _FailureError(f"len of type {_go_type(value)}")


def _index(item: Any, *indexes: Any) -> Any:
    for idx in indexes:
        item = _nil(item)
        if item is None:
            raise _FailureError("index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(idx, str):
                raise _FailureError(f"value has type {_go_type(idx)}; should be string")
            item = item.get(idx)
        elif isinstance(item, list | tuple | str):
            i = _int(idx)
            size = len(item.encode()) if isinstance(item, str) else len(item)
            if not 0 <= i < size:
                raise _FailureError(f"index out of range: {i}")
            item = item.encode()[i] if isinstance(item, str) else item[i]
        else:
            raise _FailureError(f"can't index item of type {_go_type(item)}")
    return item


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_fmt_v(arg))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(_fmt_v(a) for a in args) + "\n"


def _go_quote(text: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_SHORT_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
_VERB: Final = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?([a-zA-Z%])")


def _bad_verb(verb: str, value: Any) -> str:
    return f"%!{verb}({_go_type(value)}={_fmt_v(value)})"


def _format_one(value: Any, verb: str, flags: str, width: str, precision: str | None) -> str:
    value = _nil(value)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    spec_flags = ("+" if "+" in flags else " " if " " in flags else "") + (
        "#" if "#" in flags else ""
    )
    align = "<" if "-" in flags else ""
    zero = "0" if "0" in flags and not align and number else ""
    size = f"{align}{spec_flags}{zero}{width}"
    if verb in "vsq":
        text = _fmt_v(value) if not isinstance(value, str) else value
        if precision is not None:
            text = text[: int(precision or 0)]
        if verb == "q":
            text = _go_quote(text)
        return format(text, f"{'<' if align else '>'}{width}")
    if verb == "T":
        return format(_go_type(value), f"{'<' if align else '>'}{width}")
    if verb == "t":
        if not isinstance(value, bool):
            return _bad_verb(verb, value)
        return format(_text(value), f"{'<' if align else '>'}{width}")
    if verb in "dxXobc":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if verb in "xX" and isinstance(value, str):
            return format(
                value.encode().hex().upper() if verb == "X" else value.encode().hex(),
                f"{'<' if align else '>'}{width}",
            )
        if not isinstance(value, int) or isinstance(value, bool):
            return _bad_verb(verb, value)
        if verb == "c":
            return chr(value)
        return format(value, f"{size}{'d' if verb == 'd' else verb}")
    if verb in "fFeEgG":
        if not number:
            return _bad_verb(verb, value)
        if verb in "gG" and precision is None:
            text = _go_float(float(value))
            return format(text, f"{'<' if align else '>'}{width}")
        prec = "6" if precision is None else (precision or "0")
        return format(float(value), f"{size}.{prec}{verb}")
    return _bad_verb(verb, value)


def _sprintf(fmt: str, *args: Any) -> str:
    fmt = _str(fmt)
    out: list[str] = []
    pos = 0
    used = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(args[used], verb, flags, width or "", precision))
        used += 1
    out.append(fmt[pos:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={_fmt_v(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _eval_args(args: Sequence[Any]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*args)


def _html(*args: Any) -> str:
    text = _eval_args(args)
    return (
        text.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\x00", "\ufffd")
    )


def _js(*args: Any) -> str:
    out: list[str] = []
    for ch in _eval_args(args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")


# --------------------------------------------------------------------------------------------
# sprig: strings.

_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE_RE: Final = re.compile(f"[{_GO_SPACE}]")


def _title(s: Any) -> str:
    """strings.Title: upper-case the first letter of each word, leave the rest."""
    out: list[str] = []
    prev = " "
    for ch in _str(s):
        if prev.isascii():
            separator = not (prev.isalnum() or prev == "_")
        else:
            separator = not (prev.isalpha() or prev.isdigit()) and prev in _GO_SPACE
        upper = ch.upper()
        out.append(upper if separator and len(upper) == 1 else ch)
        prev = ch
    return "".join(out)


def _trunc(c: Any, s: Any) -> str:
    n, text = _int(c), _str(s)
    if n < 0 and len(text) + n > 0:
        return text[len(text) + n :]
    if n >= 0 and len(text) > n:
        return text[:n]
    return text


def _abbrev(width: Any, s: Any) -> str:
    w, text = _int(width), _str(s)
    if w < 4 or len(text) <= w:
        return text
    return text[: w - 3] + "..."


def _substr(start: Any, end: Any, s: Any) -> str:
    a, b, text = _int(start), _int(end), _str(s)
    if a < 0:
        return text[:b]
    if b < 0 or b > len(text):
        return text[a:]
    return text[a:b]


def _repeat(count: Any, s: Any) -> str:
    n = _int(count)
    if n < 0:
        raise _FailureError("strings: negative Repeat count")
    return _str(s) * n


def _quote(*values: Any) -> str:
    return " ".join(_go_quote(_fmt_v(v)) for v in values if _nil(v) is not None)


def _squote(*values: Any) -> str:
    return " ".join(f"'{_fmt_v(v)}'" for v in values if _nil(v) is not None)


def _cat(*values: Any) -> str:
    return " ".join(_fmt_v(v) for v in values if _nil(v) is not None)


def _indent(spaces: Any, s: Any) -> str:
    pad = " " * _int(spaces)
    return pad + _str(s).replace("\n", "\n" + pad)


def _nindent(spaces: Any, s: Any) -> str:
    return "\n" + _indent(spaces, s)


def _plural(one: Any, many: Any, count: Any) -> str:
    return _str(one) if _int(count) == 1 else _str(many)


def _split(sep: Any, s: Any) -> _Dict:
    return _Dict({f"_{i}": part for i, part in enumerate(_split_list(sep, s))})


def _split_list(sep: Any, s: Any) -> list[Any]:
    separator, text = _str(sep), _str(s)
    return list(text) if separator == "" else list(text.split(separator))


def _splitn(sep: Any, n: Any, s: Any) -> _Dict:
    separator, count, text = _str(sep), _int(n), _str(s)
    if count == 0:
        return _Dict()
    parts = text.split(separator, count - 1) if count > 0 else text.split(separator)
    return _Dict({f"_{i}": part for i, part in enumerate(parts)})


def _join(sep: Any, values: Any) -> str:
    return _str(sep).join(_strslice(values))


def _sort_alpha(values: Any) -> list[Any]:
    if isinstance(values, list | tuple):
        return sorted(_strslice(values))
    return [_fmt_v(values)]


def _regex(pattern: Any) -> re.Pattern[str]:
    try:
        return _compile_regex(_str(pattern))
    except re.error as exc:
        raise _FailureError(f"error parsing regexp: {exc}") from None


@functools.lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regex_match(pattern: Any, s: Any) -> bool:
    try:
        return _regex(pattern).search(_str(s)) is not None
    except _FailureError:
        return False  # sprig's regexMatch swallows a bad pattern; mustRegexMatch does not


def _must_regex_match(pattern: Any, s: Any) -> bool:
    return _regex(pattern).search(_str(s)) is not None


def _regex_find(pattern: Any, s: Any) -> str:
    found = _regex(pattern).search(_str(s))
    return found.group() if found else ""


def _regex_find_all(pattern: Any, s: Any, n: Any) -> list[Any]:
    limit = _int(n)
    found = [m.group() for m in _regex(pattern).finditer(_str(s))]
    return found if limit < 0 else found[:limit]


_EXPAND: Final = re.compile(r"\$(?:\{(\w+)\}|(\w+)|(\$))")


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown names are ""."""

    def one(ref: re.Match[str]) -> str:
        if ref.group(3):
            return "$"
        name = ref.group(1) or ref.group(2)
        try:
            group = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:  # no such group
            return ""
        return group or ""

    return _EXPAND.sub(one, template)


def _regex_replace_all(pattern: Any, s: Any, repl: Any) -> str:
    replacement = _str(repl)
    return _regex(pattern).sub(lambda m: _expand(replacement, m), _str(s))


def _regex_replace_all_literal(pattern: Any, s: Any, repl: Any) -> str:
    replacement = _str(repl)
    return _regex(pattern).sub(lambda _: replacement, _str(s))


def _regex_split(pattern: Any, s: Any, n: Any) -> list[Any]:
    limit, text = _int(n), _str(s)
    if limit == 0:
        return []
    parts = _regex(pattern).split(text, maxsplit=max(limit - 1, 0))
    return list(parts)


def _regex_quote_meta(s: Any) -> str:
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", _str(s))


def _b64dec(s: Any) -> str:
    text = _str(s)
    try:
        return base64.b64decode(text, validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        # sprig returns the error text instead of failing; keep that (Argo users rely on it
        # being a string), with Go's wording.
        bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c in "+/=")), None)
        return f"illegal base64 data at input byte {bad if bad is not None else len(text)}"


def _b32dec(s: Any) -> str:
    text = _str(s)
    try:
        return base64.b32decode(text).decode(errors="replace")
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c == "=")), None)
        return f"illegal base32 data at input byte {bad if bad is not None else len(text)}"


# --------------------------------------------------------------------------------------------
# sprig: numbers.


def _trunc_div(a: int, b: int) -> int:
    if b == 0:
        raise _FailureError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _add(*values: Any) -> int:
    return sum(_to_int64(v) for v in values)


def _mul(first: Any, *values: Any) -> int:
    result = _to_int64(first)
    for v in values:
        result *= _to_int64(v)
    return result


def _mod(a: Any, b: Any) -> int:
    x, y = _to_int64(a), _to_int64(b)
    return x - _trunc_div(x, y) * y


def _max(first: Any, *values: Any) -> int:
    return max([_to_int64(first), *(_to_int64(v) for v in values)])


def _min(first: Any, *values: Any) -> int:
    return min([_to_int64(first), *(_to_int64(v) for v in values)])


def _decimal_op(
    op: Callable[[decimal.Decimal, decimal.Decimal], decimal.Decimal],
) -> Callable[..., float]:
    def run(first: Any, *values: Any) -> float:
        result = decimal.Decimal(repr(_to_float64(first)))
        for v in values:
            try:
                result = op(result, decimal.Decimal(repr(_to_float64(v))))
            except decimal.DivisionByZero:
                raise _FailureError("division by zero") from None
        return float(result)

    return run


def _round(value: Any, places: Any, *round_on: Any) -> float:
    threshold = _to_float64(round_on[0]) if round_on else 0.5
    pow10: float = math.pow(10.0, _to_float64(places))
    digit = pow10 * _to_float64(value)
    fraction = math.modf(digit)[0]
    return (math.ceil(digit) if fraction >= threshold else math.floor(digit)) / pow10


def _until(n: Any) -> list[Any]:
    count = _int(n)
    return list(range(count)) if count >= 0 else list(range(0, count, -1))


def _until_step(start: Any, stop: Any, step: Any) -> list[Any]:
    a, b, s = _int(start), _int(stop), _int(step)
    if s == 0 or (s > 0 and a >= b) or (s < 0 and a <= b):
        return []
    return list(range(a, b, s))


def _atoi(s: Any) -> int:
    text = _str(s)
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else 0


# --------------------------------------------------------------------------------------------
# sprig: defaults, JSON, reflection.


def _default(default: Any, *given: Any) -> Any:
    if not given or _empty(given[0]):
        return default
    return given[0]


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if not _empty(v)), None)


def _ternary(if_true: Any, if_false: Any, condition: Any) -> Any:
    return if_true if _bool(condition) else if_false


def _from_json(s: Any) -> Any:
    try:
        return json.loads(_str(s), object_hook=_Dict)
    except ValueError:
        return None


def _must_from_json(s: Any) -> Any:
    try:
        return json.loads(_str(s), object_hook=_Dict)
    except ValueError as exc:
        raise _FailureError(f"invalid JSON: {exc}") from None


def _to_json(value: Any) -> str:
    try:
        return _go_json(value, html=True)
    except _FailureError:
        return ""


def _to_pretty_json(value: Any) -> str:
    try:
        return _go_json(value, html=True, indent="  ")
    except _FailureError:
        return ""


def _to_raw_json(value: Any) -> str:
    try:
        return _go_json(value, html=False)
    except _FailureError:
        return ""


# --------------------------------------------------------------------------------------------
# sprig: dicts and lists.


def _dict(*pairs: Any) -> _Dict:
    result = _Dict()
    for i in range(0, len(pairs), 2):
        key = _fmt_v(pairs[i])
        result[key] = pairs[i + 1] if i + 1 < len(pairs) else ""
    return result


def _get(d: Any, key: Any) -> Any:
    mapping = _map(d)
    name = _str(key)
    return mapping.get(name, "")


def _set(d: Any, key: Any, value: Any) -> _Dict:
    owned = _owned(d, "set")
    owned[_str(key)] = value
    return owned


def _unset(d: Any, key: Any) -> _Dict:
    owned = _owned(d, "unset")
    owned.pop(_str(key), None)
    return owned


def _has_key(d: Any, key: Any) -> bool:
    return _str(key) in _map(d)


def _keys(*dicts: Any) -> list[Any]:
    found: list[str] = []
    for d in dicts:
        found.extend(_map(d))
    return sorted(found)


def _values(d: Any) -> list[Any]:
    return list(_map(d).values())


def _pluck(key: Any, *dicts: Any) -> list[Any]:
    name = _str(key)
    return [_map(d)[name] for d in dicts if name in _map(d)]


def _pick(d: Any, *keys: Any) -> _Dict:
    mapping = _map(d)
    wanted = [_str(k) for k in keys]
    return _Dict({k: mapping[k] for k in wanted if k in mapping})


def _omit(d: Any, *keys: Any) -> _Dict:
    unwanted = {_str(k) for k in keys}
    return _Dict({k: v for k, v in _map(d).items() if k not in unwanted})


def _merge_into(dst: dict[str, Any], src: Mapping[str, Any], *, overwrite: bool) -> None:
    for key, value in src.items():
        current = dst.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            if not isinstance(current, _Dict):
                current = dst[key] = _own(current)
            _merge_into(current, value, overwrite=overwrite)
        elif key not in dst or (overwrite and not _empty(value)) or _empty(current):
            dst[key] = value


def _merge(dst: Any, *sources: Any) -> _Dict:
    owned = _owned(dst, "merge")
    for src in sources:
        _merge_into(owned, _map(src), overwrite=False)
    return owned


def _merge_overwrite(dst: Any, *sources: Any) -> _Dict:
    owned = _owned(dst, "mergeOverwrite")
    for src in sources:
        _merge_into(owned, _map(src), overwrite=True)
    return owned


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise _FailureError("dig needs at least three arguments")
    *names, default, d = args
    current: Any = _map(d)
    for name in names:
        if not isinstance(current, Mapping) or _str(name) not in current:
            return default
        current = current[_str(name)]
    return current


def _first(values: Any) -> Any:
    items = _list(values)
    return items[0] if items else None


def _last(values: Any) -> Any:
    items = _list(values)
    return items[-1] if items else None


def _uniq(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in _list(values):
        if not any(_same(v, seen) for seen in out):
            out.append(v)
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _has(needle: Any, haystack: Any) -> bool:
    if _nil(haystack) is None:
        return False
    return any(_same(needle, v) for v in _list(haystack))


def _without(values: Any, *remove: Any) -> list[Any]:
    return [v for v in _list(values) if not any(_same(v, r) for r in remove)]


def _slice(values: Any, *indexes: Any) -> Any:
    if isinstance(values, str):
        items: Any = values
    else:
        items = _list(values)
    start = _int(indexes[0]) if indexes else 0
    end = _int(indexes[1]) if len(indexes) > 1 else len(items)
    if not 0 <= start <= end <= len(items):
        raise _FailureError(f"slice bounds out of range [{start}:{end}]")
    return items[start:end]


def _concat(*lists: Any) -> list[Any]:
    out: list[Any] = []
    for values in lists:
        out.extend(_list(values))
    return out


def _chunk(size: Any, values: Any) -> list[Any]:
    n, items = _int(size), _list(values)
    if n <= 0:
        raise _FailureError("chunk size must be positive")
    return [items[i : i + n] for i in range(0, len(items), n)]


def _fail(message: Any) -> str:
    raise _FailureError(_str(message))


def _path_clean(p: Any) -> str:
    text = _str(p)
    if text == "":
        return "."
    cleaned = posixpath.normpath(text)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _path_base(p: Any) -> str:
    text = _str(p)
    if text == "":
        return "."
    stripped = text.rstrip("/")
    return "/" if stripped == "" else stripped.rsplit("/", 1)[-1]


def _path_dir(p: Any) -> str:
    text = _str(p)
    head = text[: text.rfind("/") + 1]
    return _path_clean(head)


def _path_ext(p: Any) -> str:
    text = _str(p)
    for i in range(len(text) - 1, -1, -1):
        if text[i] == "/":
            break
        if text[i] == ".":
            return text[i:]
    return ""


FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = {
    # Go text/template builtins (`and`, `or` are special forms in the evaluator).
    "not": _not,
    "len": _len,
    "index": _index,
    "print": _sprint,
    "printf": _sprintf,
    "println": _sprintln,
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    # sprig strings
    "abbrev": _abbrev,
    "trunc": _trunc,
    "trim": lambda s: _str(s).strip(_GO_SPACE),
    "upper": lambda s: _str(s).upper(),
    "lower": lambda s: _str(s).lower(),
    "title": _title,
    "substr": _substr,
    "repeat": _repeat,
    "trimall": lambda cutset, s: _str(s).strip(_str(cutset)),
    "trimAll": lambda cutset, s: _str(s).strip(_str(cutset)),
    "trimSuffix": lambda suffix, s: _str(s).removesuffix(_str(suffix)),
    "trimPrefix": lambda prefix, s: _str(s).removeprefix(_str(prefix)),
    "nospace": lambda s: _GO_SPACE_RE.sub("", _str(s)),
    "contains": lambda substr, s: _str(substr) in _str(s),
    "hasPrefix": lambda prefix, s: _str(s).startswith(_str(prefix)),
    "hasSuffix": lambda suffix, s: _str(s).endswith(_str(suffix)),
    "quote": _quote,
    "squote": _squote,
    "cat": _cat,
    "indent": _indent,
    "nindent": _nindent,
    "replace": lambda old, new, s: _str(s).replace(_str(old), _str(new)),
    "plural": _plural,
    "sha1sum": lambda s: hashlib.sha1(_str(s).encode(), usedforsecurity=False).hexdigest(),
    "sha256sum": lambda s: hashlib.sha256(_str(s).encode()).hexdigest(),
    "adler32sum": lambda s: str(zlib.adler32(_str(s).encode())),
    "toString": _fmt_v,
    "toStrings": _strslice,
    "split": _split,
    "splitList": _split_list,
    "splitn": _splitn,
    "join": _join,
    "sortAlpha": _sort_alpha,
    # sprig regex
    "regexMatch": _regex_match,
    "mustRegexMatch": _must_regex_match,
    "regexFind": _regex_find,
    "mustRegexFind": _regex_find,
    "regexFindAll": _regex_find_all,
    "mustRegexFindAll": _regex_find_all,
    "regexReplaceAll": _regex_replace_all,
    "mustRegexReplaceAll": _regex_replace_all,
    "regexReplaceAllLiteral": _regex_replace_all_literal,
    "mustRegexReplaceAllLiteral": _regex_replace_all_literal,
    "regexSplit": _regex_split,
    "mustRegexSplit": _regex_split,
    "regexQuoteMeta": _regex_quote_meta,
    # sprig conversions and numbers
    "atoi": _atoi,
    "int": _to_int64,
    "int64": _to_int64,
    "float64": _to_float64,
    "add1": lambda a: _to_int64(a) + 1,
    "add": _add,
    "sub": lambda a, b: _to_int64(a) - _to_int64(b),
    "div": lambda a, b: _trunc_div(_to_int64(a), _to_int64(b)),
    "mod": _mod,
    "mul": _mul,
    "max": _max,
    "biggest": _max,
    "min": _min,
    "maxf": lambda first, *rest: max([_to_float64(first), *map(_to_float64, rest)]),
    "minf": lambda first, *rest: min([_to_float64(first), *map(_to_float64, rest)]),
    "add1f": lambda a: _decimal_op(lambda x, y: x + y)(a, 1),
    "addf": lambda *values: _decimal_op(lambda x, y: x + y)(0.0, *values),
    "subf": _decimal_op(lambda x, y: x - y),
    "mulf": _decimal_op(lambda x, y: x * y),
    "divf": _decimal_op(lambda x, y: x / y),
    "floor": lambda a: float(math.floor(_to_float64(a))),
    "ceil": lambda a: float(math.ceil(_to_float64(a))),
    "round": _round,
    "until": _until,
    "untilStep": _until_step,
    # sprig defaults, flow control, JSON
    "default": _default,
    "empty": _empty,
    "coalesce": _coalesce,
    "all": lambda *values: all(_truth(v) for v in values),
    "any": lambda *values: any(_truth(v) for v in values),
    "compact": lambda values: [v for v in _list(values) if _truth(v)],
    "mustCompact": lambda values: [v for v in _list(values) if _truth(v)],
    "ternary": _ternary,
    "fail": _fail,
    "fromJson": _from_json,
    "mustFromJson": _must_from_json,
    "toJson": _to_json,
    "mustToJson": lambda v: _go_json(v, html=True),
    "toPrettyJson": _to_pretty_json,
    "mustToPrettyJson": lambda v: _go_json(v, html=True, indent="  "),
    "toRawJson": _to_raw_json,
    "mustToRawJson": lambda v: _go_json(v, html=False),
    "deepCopy": _own,
    "mustDeepCopy": _own,
    # sprig reflection
    "typeOf": _go_type,
    "typeIs": lambda name, v: _str(name) == _go_type(v),
    "typeIsLike": lambda name, v: _str(name).lstrip("*") == _go_type(v),
    "kindOf": _kind,
    "kindIs": lambda name, v: _str(name) == _kind(v),
    "deepEqual": lambda a, b: _same(a, b) or (_nil(a) is None and _nil(b) is None),
    # sprig paths and encodings
    "base": _path_base,
    "dir": _path_dir,
    "clean": _path_clean,
    "ext": _path_ext,
    "isAbs": lambda p: _str(p).startswith("/"),
    "b64enc": lambda s: base64.b64encode(_str(s).encode()).decode(),
    "b64dec": _b64dec,
    "b32enc": lambda s: base64.b32encode(_str(s).encode()).decode(),
    "b32dec": _b32dec,
    # sprig dicts and lists
    "list": lambda *values: list(values),
    "tuple": lambda *values: list(values),
    "dict": _dict,
    "get": _get,
    "set": _set,
    "unset": _unset,
    "hasKey": _has_key,
    "keys": _keys,
    "values": _values,
    "pluck": _pluck,
    "pick": _pick,
    "omit": _omit,
    "merge": _merge,
    "mustMerge": _merge,
    "mergeOverwrite": _merge_overwrite,
    "mustMergeOverwrite": _merge_overwrite,
    "dig": _dig,
    "append": lambda values, v: [*_list(values), v],
    "push": lambda values, v: [*_list(values), v],
    "mustAppend": lambda values, v: [*_list(values), v],
    "mustPush": lambda values, v: [*_list(values), v],
    "prepend": lambda values, v: [v, *_list(values)],
    "mustPrepend": lambda values, v: [v, *_list(values)],
    "first": _first,
    "mustFirst": _first,
    "last": _last,
    "mustLast": _last,
    "rest": lambda values: _list(values)[1:],
    "mustRest": lambda values: _list(values)[1:],
    "initial": lambda values: _list(values)[:-1],
    "mustInitial": lambda values: _list(values)[:-1],
    "reverse": lambda values: _list(values)[::-1],
    "mustReverse": lambda values: _list(values)[::-1],
    "uniq": _uniq,
    "mustUniq": _uniq,
    "without": _without,
    "mustWithout": _without,
    "has": _has,
    "mustHas": _has,
    "slice": _slice,
    "mustSlice": _slice,
    "concat": _concat,
    "chunk": _chunk,
    "mustChunk": _chunk,
}
"""Every function a template may call, by name (plus the special forms `and` and `or`)."""


def _arity(fn: Callable[..., Any]) -> tuple[int, int | None]:
    params = inspect.signature(fn).parameters.values()
    required = sum(1 for p in params if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    return required, None if variadic else required


_ARITY: Final = {name: _arity(fn) for name, fn in FUNCTIONS.items()}
_SPECIAL_FORMS: Final = frozenset({"and", "or"})

# --------------------------------------------------------------------------------------------
# Lexer: text and actions into tokens. Inside an action, `spaced` records whether whitespace
# preceded a token, so `.a.b` (one chain) differs from `.a .b` (two operands).

_EOF, _TEXT, _LEFT, _RIGHT = "EOF", "text", "{{", "}}"
_FIELD, _VAR, _IDENT, _STRING, _NUMBER = "field", "variable", "identifier", "string", "number"
_BOOL, _NIL, _DOT, _PIPE, _LPAREN, _RPAREN = "bool", "nil", ".", "|", "(", ")"
_DECLARE, _ASSIGN, _COMMA = ":=", "=", ","
_SPACE_CHARS: Final = " \t\r\n"
_NUMBER_RE: Final = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
    r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)"
)
_NAME_RE: Final = re.compile(r"\w+")


class _Token:
    __slots__ = ("end", "kind", "pos", "spaced", "value")

    def __init__(self, kind: str, value: Any, pos: int, end: int, *, spaced: bool = False) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos
        self.end = end
        self.spaced = spaced

    def describe(self) -> str:
        if self.kind == _EOF:
            return "end of template"
        if self.value is None or self.kind in (_LEFT, _RIGHT):
            return f'"{self.kind}"'
        return f"{self.kind} {self.value!r}"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[_Token] = []

    def error(self, message: str, position: int) -> errors.ExpressionError:
        return errors.ExpressionError(message, text=self.text, position=position)

    def run(self) -> list[_Token]:
        text = self.text
        pos, trim = 0, False
        while True:
            start = text.find("{{", pos)
            segment = text[pos:] if start < 0 else text[pos:start]
            if trim:
                segment = segment.lstrip(_SPACE_CHARS)
            if start < 0:
                if segment:
                    self.tokens.append(_Token(_TEXT, segment, pos, len(text)))
                break
            inner = start + 2
            if text.startswith("-", inner) and text[inner + 1 : inner + 2] in tuple(_SPACE_CHARS):
                segment = segment.rstrip(_SPACE_CHARS)
                inner += 2
            if segment:
                self.tokens.append(_Token(_TEXT, segment, pos, start))
            if text.startswith("/*", inner):
                pos, trim = self.comment(start, inner)
                continue
            self.tokens.append(_Token(_LEFT, None, start, inner))
            pos, trim = self.action(start, inner)
        self.tokens.append(_Token(_EOF, None, len(text), len(text)))
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
                self.tokens.append(_Token(_RIGHT, None, pos, closing[0]))
                return closing
            ch = text[pos]
            if ch in _SPACE_CHARS:
                pos += 1
                spaced = True
                continue
            tok = self.token(start, pos)
            tok.spaced = spaced
            spaced = False
            if tok.kind == _LPAREN:
                depth += 1
            elif tok.kind == _RPAREN:
                depth -= 1
                if depth < 0:
                    raise self.error("unexpected right paren", pos)
            self.tokens.append(tok)
            pos = tok.end

    def token(self, start: int, pos: int) -> _Token:
        text = self.text
        ch = text[pos]
        simple = {"|": _PIPE, "(": _LPAREN, ")": _RPAREN, ",": _COMMA, "=": _ASSIGN}
        if ch in simple:
            return _Token(simple[ch], None, pos, pos + 1)
        if text.startswith(":=", pos):
            return _Token(_DECLARE, None, pos, pos + 2)
        if ch == '"':
            return self.quoted(pos)
        if ch == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise self.error("unterminated raw quoted string", pos)
            return _Token(_STRING, text[pos + 1 : end].replace("\r", ""), pos, end + 1)
        if ch == "'":
            return self.rune(pos)
        if ch == "$":
            match = _NAME_RE.match(text, pos + 1)
            name_end = match.end() if match else pos + 1
            names, end = self.chain(name_end)
            return _Token(_VAR, (text[pos:name_end], names), pos, end)
        if ch == "." and not text[pos + 1 : pos + 2].isdigit():
            names, end = self.chain(pos)
            if not names:
                return _Token(_DOT, None, pos, pos + 1)
            return _Token(_FIELD, names, pos, end)
        if ch.isdigit() or ch in "+-.":
            return self.number(pos)
        match = _NAME_RE.match(text, pos)
        if match:
            word = match.group()
            if word in ("true", "false"):
                return _Token(_BOOL, word == "true", pos, match.end())
            if word == "nil":
                return _Token(_NIL, None, pos, match.end())
            return _Token(_IDENT, word, pos, match.end())
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

    def quoted(self, pos: int) -> _Token:
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
                return _Token(_STRING, self.unquote(text[pos + 1 : i], pos), pos, i + 1)
            i += 1
        raise self.error("unterminated quoted string", pos)

    def rune(self, pos: int) -> _Token:
        text = self.text
        i = pos + 1
        while i < len(text) and text[i] != "'":
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            raise self.error("unterminated character constant", pos)
        value = self.unquote(text[pos + 1 : i], pos, quote="'")
        if len(value) != 1:
            raise self.error("malformed character constant", pos)
        return _Token(_NUMBER, ord(value), pos, i + 1)

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

    def number(self, pos: int) -> _Token:
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
        return _Token(_NUMBER, sign * value, pos, end)


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
        raise _FailureError(f"nil pointer evaluating interface {{}}.{name}")
    raise _FailureError(f"can't evaluate field {name} in type {_go_type(value)}")


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
        self.tokens = _Lexer(text).run()
        self.i = 0
        self.scopes: list[dict[str, int]] = [{"$": 0}]
        for n, name in enumerate(variables, start=1):
            self.scopes[0]["$" + name] = n
        self.slots = 1 + len(variables)
        self.loops = 0

    # -- tokens -------------------------------------------------------------------------
    def error(self, message: str, position: int) -> errors.ExpressionError:
        return errors.ExpressionError(message, text=self.text, position=position)

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != _EOF:
            self.i += 1
        return tok

    def expect(self, kind: str, context: str) -> _Token:
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

    def statements(self) -> tuple[_Stmt, _Token | None]:
        """Statements up to `{{ end }}`/`{{ else` (returned, rest of the action unread) or EOF."""
        stmts: list[_Stmt] = []
        while True:
            tok = self.next()
            if tok.kind == _EOF:
                return _sequence(stmts), None
            if tok.kind == _TEXT:
                stmts.append(_text_stmt(tok.value))
                continue
            first = self.peek()
            if first.kind == _IDENT:
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
                    self.expect(_RIGHT, word)
                    stmts.append(_break if word == "break" else _continue)
                    continue
                if word in ("define", "template", "block"):
                    raise self.error(f"{{{{ {word} }}}} is not supported", first.pos)
            stmts.append(self.action(tok))

    def action(self, left: _Token) -> _Stmt:
        decl, pipe = self.pipeline("command", decl_ok=True)
        right = self.tokens[self.i - 1]
        where = self.text[left.pos : right.end]
        return _action_stmt(pipe, decl=decl, text=self.text, action=where, position=left.pos)

    def body(self, *, loop: bool = False) -> tuple[_Stmt, _Token | None]:
        self.scopes.append({})
        self.loops += loop
        try:
            return self.statements()
        finally:
            self.loops -= loop
            self.scopes.pop()

    def control(self, word: str, left: _Token) -> _Stmt:
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
                    self.expect(_RIGHT, "end")
                    break
                # {{ else }}, {{ else if ... }}, {{ else with ... }}
                nxt = self.peek()
                if nxt.kind == _IDENT and nxt.value in ("if", "with") and word != "range":
                    if nxt.value != word:
                        raise self.error(
                            f"{{{{ else {nxt.value} }}}} inside {{{{ {word} }}}}", nxt.pos
                        )
                    self.next()
                    current_left = self.tokens[self.i - 3]  # the "{{" of "{{ else if"
                    continue
                self.expect(_RIGHT, "else")
                else_body, end = self.body()
                if end is None or end.value != "end":
                    at = end.pos if end is not None else left.pos
                    raise self.error(f"expected {{{{ end }}}} after {{{{ else }}}} of {word}", at)
                self.expect(_RIGHT, "end")
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
        self, context: str, *, decl_ok: bool, range_ok: bool = False, closer: str = _RIGHT
    ) -> tuple[tuple[tuple[int, ...], bool] | None, _Eval]:
        """(declaration, evaluator); the declaration is (slots, is_assignment)."""
        names: list[_Token] = []
        assign = False
        first = self.peek()
        if decl_ok and first.kind == _VAR and not first.value[1]:
            second = self.peek(1)
            if second.kind in (_DECLARE, _ASSIGN):
                names = [first]
                assign = second.kind == _ASSIGN
                self.i += 2
            elif second.kind == _COMMA and range_ok:
                third, fourth = self.peek(2), self.peek(3)
                if third.kind != _VAR or third.value[1] or fourth.kind != _DECLARE:
                    raise self.error("expected $a, $b := in range", second.pos)
                names = [first, third]
                self.i += 4
        commands: list[_Command] = []
        while True:
            commands.append(self.command(len(commands), closer))
            tok = self.next()
            if tok.kind == _PIPE:
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
        while self.peek().kind not in (_PIPE, closer, _EOF, _RIGHT):
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
        return _call(name, FUNCTIONS[name], fns)

    def operand(self) -> _Operand:
        tok = self.next()
        kind = tok.kind
        op: _Operand
        if kind == _FIELD:
            return _Operand("value", _chain(_dot, tok.value), tok.pos)
        if kind == _DOT:
            op = _Operand("value", _dot, tok.pos)
        elif kind == _VAR:
            name, names = tok.value
            slot = self.lookup(name, tok.pos)

            def variable(dot: Any, st: _State, slot: int = slot) -> Any:
                return st.vars[slot]

            return _Operand("value", _chain(variable, names) if names else variable, tok.pos)
        elif kind in (_STRING, _NUMBER, _BOOL):
            op = _Operand("literal", _constant(tok.value), tok.pos)
        elif kind == _NIL:
            op = _Operand("nil", _constant(None), tok.pos)
        elif kind == _IDENT:
            name = tok.value
            if name not in FUNCTIONS and name not in _SPECIAL_FORMS:
                raise self.error(f'function "{name}" not defined', tok.pos)
            op = _Operand("func", _dot, tok.pos, name)
        elif kind == _LPAREN:
            _, inner = self.pipeline("parenthesized pipeline", decl_ok=False, closer=_RPAREN)
            op = _Operand("value", inner, tok.pos)
        else:
            raise self.error(f"unexpected {tok.describe()} in operand", tok.pos)
        after = self.peek()
        if after.kind == _FIELD and not after.spaced:
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
        except _FailureError as exc:
            raise _FailureError(f"error calling {name}: {exc}") from None
        except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise _FailureError(f"error calling {name}: {exc}") from None

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
    except _FailureError as exc:
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
        except _FailureError as exc:
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
                st.out.append(_text(value))
            except _FailureError as exc:
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
                f"range can't iterate over {_fmt_v(value)}",
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
