"""Go's view of JSON values: how they print, compare, convert and format, for Go templates.

Argo renders `dataTemplate`, `contextTemplate` and the data filter `template` with Go's
`text/template` over `map[string]any`, so a value must print like `%v` and encoding/json, count as
true like `isTrue`, compare like `eq`/`lt` and convert to a function's typed parameter like Go's
reflection does. Both the template engine (`tripwire.lang.templates`) and its function table
(`tripwire.lang.sprig`) need exactly these rules, so they live below both, in one place; the
decisions where Python data meets Go semantics are listed in `tripwire.lang.templates`.

A function signals a failure by raising `FailureError`; the enclosing action turns it into a
`templates.RenderError` naming the action and its position.
"""

from __future__ import annotations

import decimal
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tripwire.lang import paths

MISSING: Final = paths.MISSING


class FailureError(Exception):
    """Raised inside rendering; the enclosing action turns it into a RenderError."""


# --------------------------------------------------------------------------------------------
# Values: Go's view of JSON data.


def type_name(value: Any) -> str:
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


def kind_name(value: Any) -> str:
    if value is None or value is MISSING:
        return "invalid"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return type_name(value)


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
        raise FailureError(f"json: unsupported value: {_go_float(value)}")
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


def marshal(value: Any, *, html: bool, indent: str | None = None, level: int = 0) -> str:
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
                marshal(value[k], html=html, indent=indent, level=level + 1),
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
        parts = [marshal(v, html=html, indent=indent, level=level + 1) for v in value]
        if not parts:
            return "[]"
        if indent is None:
            return "[" + ",".join(parts) + "]"
        inner, outer = "\n" + indent * (level + 1), "\n" + indent * level
        return "[" + ",".join(inner + p for p in parts) + outer + "]"
    raise FailureError(f"json: unsupported type: {type_name(value)}")


def text_of(value: Any) -> str:
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
    return marshal(value, html=False)


def format_v(value: Any) -> str:
    """fmt's `%v` (and sprig `strval`): like `text_of`, with nil as `<nil>`."""
    if value is None or value is MISSING:
        return "<nil>"
    return text_of(value)


def gjson_string(value: Any) -> str:
    """gjson `Result.String()` of a value: what Argo's data filter binds to `.Input`.

    Strings as they are, null (or `paths.MISSING`) as "", booleans and numbers as JSON text,
    objects and arrays as compact JSON.
    """
    if value is None or value is MISSING:
        return ""
    if isinstance(value, float):
        return _json_float(value)
    return text_of(value)


def truth(value: Any) -> bool:
    """Go's `isTrue`: zero values, empty containers, nil and missing are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | Mapping | list | tuple):
        return len(value) > 0
    return True


def nil_if_missing(value: Any) -> Any:
    return None if value is MISSING else value


class OwnedDict(dict[str, Any]):
    """A dict the template built itself, which `set`/`unset`/`merge` may change."""


def own(value: Any) -> Any:
    """A deep copy the template owns (dicts become `OwnedDict`)."""
    if isinstance(value, Mapping):
        return OwnedDict({str(k): own(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return [own(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Argument coercion: Go's typed parameters, with JSON numbers accepted where an int is wanted.


def as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or value is MISSING:
        raise FailureError("invalid value; expected string")
    raise FailureError(f"wrong type for value; expected string; got {type_name(value)}")


def as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or value is MISSING:
        raise FailureError("invalid value; expected int")
    raise FailureError(f"wrong type for value; expected int; got {type_name(value)}")


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise FailureError(f"wrong type for value; expected bool; got {type_name(value)}")


def as_map(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise FailureError(
        f"wrong type for value; expected map[string]interface {{}}; got {type_name(value)}"
    )


def owned(value: Any, name: str) -> OwnedDict:
    if isinstance(value, OwnedDict):
        return value
    if isinstance(value, Mapping):
        raise FailureError(f"{name} cannot change event data; make a copy with deepCopy first")
    return OwnedDict(as_map(value))


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if value is None or value is MISSING:
        raise FailureError("cannot find slice in nil")
    raise FailureError(f"cannot find slice in {type_name(value)}")


def to_int64(value: Any) -> int:
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


def to_float64(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return 0.0
    return 0.0


def strslice(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [format_v(v) for v in value if v is not None and v is not MISSING]
    if value is None or value is MISSING:
        return []
    return [format_v(value)]


def empty(value: Any) -> bool:
    return not truth(value)


# --------------------------------------------------------------------------------------------
# Go builtins.


def _eq_one(a: Any, b: Any) -> bool:
    a, b = nil_if_missing(a), nil_if_missing(b)
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, bool) and isinstance(b, bool):
            return a == b
        raise FailureError("incompatible types for comparison")
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if type(a) is type(b) or (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return bool(a == b)
    raise FailureError("incompatible types for comparison")


def eq(a: Any, *others: Any) -> bool:
    if not others:
        raise FailureError("missing argument for comparison")
    return any(_eq_one(a, b) for b in others)


def ne(a: Any, b: Any) -> bool:
    return not _eq_one(a, b)


def _order(a: Any, b: Any) -> tuple[Any, Any]:
    a, b = nil_if_missing(a), nil_if_missing(b)
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
        raise FailureError("invalid type for comparison")
    raise FailureError("incompatible types for comparison")


def lt(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x < y)


def le(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x <= y)


def gt(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x > y)


def ge(a: Any, b: Any) -> bool:
    x, y = _order(a, b)
    return bool(x >= y)


def not_(value: Any) -> bool:
    return not truth(value)


def length(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Mapping | list | tuple):
        return len(value)
    raise FailureError(f"len of type {type_name(value)}")


def index(item: Any, *indexes: Any) -> Any:
    for idx in indexes:
        item = nil_if_missing(item)
        if item is None:
            raise FailureError("index of untyped nil")
        if isinstance(item, Mapping):
            if not isinstance(idx, str):
                raise FailureError(f"value has type {type_name(idx)}; should be string")
            item = item.get(idx)
        elif isinstance(item, list | tuple | str):
            i = as_int(idx)
            size = len(item.encode()) if isinstance(item, str) else len(item)
            if not 0 <= i < size:
                raise FailureError(f"index out of range: {i}")
            item = item.encode()[i] if isinstance(item, str) else item[i]
        else:
            raise FailureError(f"can't index item of type {type_name(item)}")
    return item


def sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_v(arg))
    return "".join(out)


def sprintln(*args: Any) -> str:
    return " ".join(format_v(a) for a in args) + "\n"


def quote(text: str) -> str:
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
    return f"%!{verb}({type_name(value)}={format_v(value)})"


def _format_one(value: Any, verb: str, flags: str, width: str, precision: str | None) -> str:
    value = nil_if_missing(value)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    spec_flags = ("+" if "+" in flags else " " if " " in flags else "") + (
        "#" if "#" in flags else ""
    )
    align = "<" if "-" in flags else ""
    zero = "0" if "0" in flags and not align and number else ""
    size = f"{align}{spec_flags}{zero}{width}"
    if verb in "vsq":
        text = format_v(value) if not isinstance(value, str) else value
        if precision is not None:
            text = text[: int(precision or 0)]
        if verb == "q":
            text = quote(text)
        return format(text, f"{'<' if align else '>'}{width}")
    if verb == "T":
        return format(type_name(value), f"{'<' if align else '>'}{width}")
    if verb == "t":
        if not isinstance(value, bool):
            return _bad_verb(verb, value)
        return format(text_of(value), f"{'<' if align else '>'}{width}")
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


def sprintf(fmt: str, *args: Any) -> str:
    fmt = as_str(fmt)
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
        extra = ", ".join(f"{type_name(a)}={format_v(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _eval_args(args: Sequence[Any]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*args)


def html_escape(*args: Any) -> str:
    text = _eval_args(args)
    return (
        text.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\x00", "\ufffd")
    )


def js_escape(*args: Any) -> str:
    out: list[str] = []
    for ch in _eval_args(args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def query_escape(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")
