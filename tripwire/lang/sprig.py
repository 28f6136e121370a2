"""The functions a Go template may call: text/template's builtins and the hermetic sprig set.

Argo registers `sprig.HermeticTxtFuncMap` (no env, expandenv, random, uuid, now/date,
getHostByName) next to Go's builtins, so sensors ported from Argo call sprig by name. This module
is that table, `FUNCTIONS`, minus the crypto/semver/date/case-conversion helpers. It is kept
apart from the engine (`tripwire.lang.templates`) because it is a long list of small, independent
functions that grows by itself, while the engine changes rarely; both share the value rules in
`tripwire.lang.govalues`. A function raises `govalues.FailureError` for a wrong argument; the engine
reports it with the action's position.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import functools
import hashlib
import json
import math
import posixpath
import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from tripwire.lang import govalues

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
    for ch in govalues.as_str(s):
        if prev.isascii():
            separator = not (prev.isalnum() or prev == "_")
        else:
            separator = not (prev.isalpha() or prev.isdigit()) and prev in _GO_SPACE
        upper = ch.upper()
        out.append(upper if separator and len(upper) == 1 else ch)
        prev = ch
    return "".join(out)


def _trunc(c: Any, s: Any) -> str:
    n, text = govalues.as_int(c), govalues.as_str(s)
    if n < 0 and len(text) + n > 0:
        return text[len(text) + n :]
    if n >= 0 and len(text) > n:
        return text[:n]
    return text


def _abbrev(width: Any, s: Any) -> str:
    w, text = govalues.as_int(width), govalues.as_str(s)
    if w < 4 or len(text) <= w:
        return text
    return text[: w - 3] + "..."


def _substr(start: Any, end: Any, s: Any) -> str:
    a, b, text = govalues.as_int(start), govalues.as_int(end), govalues.as_str(s)
    if a < 0:
        return text[:b]
    if b < 0 or b > len(text):
        return text[a:]
    return text[a:b]


def _repeat(count: Any, s: Any) -> str:
    n = govalues.as_int(count)
    if n < 0:
        raise govalues.FailureError("strings: negative Repeat count")
    return govalues.as_str(s) * n


def _quote(*values: Any) -> str:
    return " ".join(
        govalues.quote(govalues.format_v(v))
        for v in values
        if govalues.nil_if_missing(v) is not None
    )


def _squote(*values: Any) -> str:
    return " ".join(
        f"'{govalues.format_v(v)}'" for v in values if govalues.nil_if_missing(v) is not None
    )


def _cat(*values: Any) -> str:
    return " ".join(govalues.format_v(v) for v in values if govalues.nil_if_missing(v) is not None)


def _indent(spaces: Any, s: Any) -> str:
    pad = " " * govalues.as_int(spaces)
    return pad + govalues.as_str(s).replace("\n", "\n" + pad)


def _nindent(spaces: Any, s: Any) -> str:
    return "\n" + _indent(spaces, s)


def _plural(one: Any, many: Any, count: Any) -> str:
    return govalues.as_str(one) if govalues.as_int(count) == 1 else govalues.as_str(many)


def _split(sep: Any, s: Any) -> govalues.OwnedDict:
    return govalues.OwnedDict({f"_{i}": part for i, part in enumerate(_split_list(sep, s))})


def _split_list(sep: Any, s: Any) -> list[Any]:
    separator, text = govalues.as_str(sep), govalues.as_str(s)
    return list(text) if separator == "" else list(text.split(separator))


def _splitn(sep: Any, n: Any, s: Any) -> govalues.OwnedDict:
    separator, count, text = govalues.as_str(sep), govalues.as_int(n), govalues.as_str(s)
    if count == 0:
        return govalues.OwnedDict()
    parts = text.split(separator, count - 1) if count > 0 else text.split(separator)
    return govalues.OwnedDict({f"_{i}": part for i, part in enumerate(parts)})


def _join(sep: Any, values: Any) -> str:
    return govalues.as_str(sep).join(govalues.strslice(values))


def _sort_alpha(values: Any) -> list[Any]:
    if isinstance(values, list | tuple):
        return sorted(govalues.strslice(values))
    return [govalues.format_v(values)]


def _regex(pattern: Any) -> re.Pattern[str]:
    try:
        return _compile_regex(govalues.as_str(pattern))
    except re.error as exc:
        raise govalues.FailureError(f"error parsing regexp: {exc}") from None


@functools.lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regex_match(pattern: Any, s: Any) -> bool:
    try:
        return _regex(pattern).search(govalues.as_str(s)) is not None
    except govalues.FailureError:
        return False  # sprig's regexMatch swallows a bad pattern; mustRegexMatch does not


def _must_regex_match(pattern: Any, s: Any) -> bool:
    return _regex(pattern).search(govalues.as_str(s)) is not None


def _regex_find(pattern: Any, s: Any) -> str:
    found = _regex(pattern).search(govalues.as_str(s))
    return found.group() if found else ""


def _regex_find_all(pattern: Any, s: Any, n: Any) -> list[Any]:
    limit = govalues.as_int(n)
    found = [m.group() for m in _regex(pattern).finditer(govalues.as_str(s))]
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
    replacement = govalues.as_str(repl)
    return _regex(pattern).sub(lambda m: _expand(replacement, m), govalues.as_str(s))


def _regex_replace_all_literal(pattern: Any, s: Any, repl: Any) -> str:
    replacement = govalues.as_str(repl)
    return _regex(pattern).sub(lambda _: replacement, govalues.as_str(s))


def _regex_split(pattern: Any, s: Any, n: Any) -> list[Any]:
    limit, text = govalues.as_int(n), govalues.as_str(s)
    if limit == 0:
        return []
    parts = _regex(pattern).split(text, maxsplit=max(limit - 1, 0))
    return list(parts)


def _regex_quote_meta(s: Any) -> str:
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", govalues.as_str(s))


def _b64dec(s: Any) -> str:
    text = govalues.as_str(s)
    try:
        return base64.b64decode(text, validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        # sprig returns the error text instead of failing; keep that (Argo users rely on it
        # being a string), with Go's wording.
        bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c in "+/=")), None)
        return f"illegal base64 data at input byte {bad if bad is not None else len(text)}"


def _b32dec(s: Any) -> str:
    text = govalues.as_str(s)
    try:
        return base64.b32decode(text).decode(errors="replace")
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c == "=")), None)
        return f"illegal base32 data at input byte {bad if bad is not None else len(text)}"


# --------------------------------------------------------------------------------------------
# sprig: numbers.


def _trunc_div(a: int, b: int) -> int:
    if b == 0:
        raise govalues.FailureError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _add(*values: Any) -> int:
    return sum(govalues.to_int64(v) for v in values)


def _mul(first: Any, *values: Any) -> int:
    result = govalues.to_int64(first)
    for v in values:
        result *= govalues.to_int64(v)
    return result


def _mod(a: Any, b: Any) -> int:
    x, y = govalues.to_int64(a), govalues.to_int64(b)
    return x - _trunc_div(x, y) * y


def _max(first: Any, *values: Any) -> int:
    return max([govalues.to_int64(first), *(govalues.to_int64(v) for v in values)])


def _min(first: Any, *values: Any) -> int:
    return min([govalues.to_int64(first), *(govalues.to_int64(v) for v in values)])


def _decimal_op(
    op: Callable[[decimal.Decimal, decimal.Decimal], decimal.Decimal],
) -> Callable[..., float]:
    def run(first: Any, *values: Any) -> float:
        result = decimal.Decimal(repr(govalues.to_float64(first)))
        for v in values:
            try:
                result = op(result, decimal.Decimal(repr(govalues.to_float64(v))))
            except decimal.DivisionByZero:
                raise govalues.FailureError("division by zero") from None
        return float(result)

    return run


def _round(value: Any, places: Any, *round_on: Any) -> float:
    threshold = govalues.to_float64(round_on[0]) if round_on else 0.5
    pow10: float = math.pow(10.0, govalues.to_float64(places))
    digit = pow10 * govalues.to_float64(value)
    fraction = math.modf(digit)[0]
    return (math.ceil(digit) if fraction >= threshold else math.floor(digit)) / pow10


def _until(n: Any) -> list[Any]:
    count = govalues.as_int(n)
    return list(range(count)) if count >= 0 else list(range(0, count, -1))


def _until_step(start: Any, stop: Any, step: Any) -> list[Any]:
    a, b, s = govalues.as_int(start), govalues.as_int(stop), govalues.as_int(step)
    if s == 0 or (s > 0 and a >= b) or (s < 0 and a <= b):
        return []
    return list(range(a, b, s))


def _atoi(s: Any) -> int:
    text = govalues.as_str(s)
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else 0


# --------------------------------------------------------------------------------------------
# sprig: defaults, JSON, reflection.


def _default(default: Any, *given: Any) -> Any:
    if not given or govalues.empty(given[0]):
        return default
    return given[0]


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if not govalues.empty(v)), None)


def _ternary(if_true: Any, if_false: Any, condition: Any) -> Any:
    return if_true if govalues.as_bool(condition) else if_false


def _from_json(s: Any) -> Any:
    try:
        return json.loads(govalues.as_str(s), object_hook=govalues.OwnedDict)
    except ValueError:
        return None


def _must_from_json(s: Any) -> Any:
    try:
        return json.loads(govalues.as_str(s), object_hook=govalues.OwnedDict)
    except ValueError as exc:
        raise govalues.FailureError(f"invalid JSON: {exc}") from None


def _to_json(value: Any) -> str:
    try:
        return govalues.marshal(value, html=True)
    except govalues.FailureError:
        return ""


def _to_pretty_json(value: Any) -> str:
    try:
        return govalues.marshal(value, html=True, indent="  ")
    except govalues.FailureError:
        return ""


def _to_raw_json(value: Any) -> str:
    try:
        return govalues.marshal(value, html=False)
    except govalues.FailureError:
        return ""


# --------------------------------------------------------------------------------------------
# sprig: dicts and lists.


def _dict(*pairs: Any) -> govalues.OwnedDict:
    result = govalues.OwnedDict()
    for i in range(0, len(pairs), 2):
        key = govalues.format_v(pairs[i])
        result[key] = pairs[i + 1] if i + 1 < len(pairs) else ""
    return result


def _get(d: Any, key: Any) -> Any:
    mapping = govalues.as_map(d)
    name = govalues.as_str(key)
    return mapping.get(name, "")


def _set(d: Any, key: Any, value: Any) -> govalues.OwnedDict:
    owned = govalues.owned(d, "set")
    owned[govalues.as_str(key)] = value
    return owned


def _unset(d: Any, key: Any) -> govalues.OwnedDict:
    owned = govalues.owned(d, "unset")
    owned.pop(govalues.as_str(key), None)
    return owned


def _has_key(d: Any, key: Any) -> bool:
    return govalues.as_str(key) in govalues.as_map(d)


def _keys(*dicts: Any) -> list[Any]:
    found: list[str] = []
    for d in dicts:
        found.extend(govalues.as_map(d))
    return sorted(found)


def _values(d: Any) -> list[Any]:
    return list(govalues.as_map(d).values())


def _pluck(key: Any, *dicts: Any) -> list[Any]:
    name = govalues.as_str(key)
    return [govalues.as_map(d)[name] for d in dicts if name in govalues.as_map(d)]


def _pick(d: Any, *keys: Any) -> govalues.OwnedDict:
    mapping = govalues.as_map(d)
    wanted = [govalues.as_str(k) for k in keys]
    return govalues.OwnedDict({k: mapping[k] for k in wanted if k in mapping})


def _omit(d: Any, *keys: Any) -> govalues.OwnedDict:
    unwanted = {govalues.as_str(k) for k in keys}
    return govalues.OwnedDict({k: v for k, v in govalues.as_map(d).items() if k not in unwanted})


def _merge_into(dst: dict[str, Any], src: Mapping[str, Any], *, overwrite: bool) -> None:
    for key, value in src.items():
        current = dst.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            if not isinstance(current, govalues.OwnedDict):
                current = dst[key] = govalues.own(current)
            _merge_into(current, value, overwrite=overwrite)
        elif key not in dst or (overwrite and not govalues.empty(value)) or govalues.empty(current):
            dst[key] = value


def _merge(dst: Any, *sources: Any) -> govalues.OwnedDict:
    owned = govalues.owned(dst, "merge")
    for src in sources:
        _merge_into(owned, govalues.as_map(src), overwrite=False)
    return owned


def _merge_overwrite(dst: Any, *sources: Any) -> govalues.OwnedDict:
    owned = govalues.owned(dst, "mergeOverwrite")
    for src in sources:
        _merge_into(owned, govalues.as_map(src), overwrite=True)
    return owned


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise govalues.FailureError("dig needs at least three arguments")
    *names, default, d = args
    current: Any = govalues.as_map(d)
    for name in names:
        if not isinstance(current, Mapping) or govalues.as_str(name) not in current:
            return default
        current = current[govalues.as_str(name)]
    return current


def _first(values: Any) -> Any:
    items = govalues.as_list(values)
    return items[0] if items else None


def _last(values: Any) -> Any:
    items = govalues.as_list(values)
    return items[-1] if items else None


def _uniq(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in govalues.as_list(values):
        if not any(_same(v, seen) for seen in out):
            out.append(v)
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _has(needle: Any, haystack: Any) -> bool:
    if govalues.nil_if_missing(haystack) is None:
        return False
    return any(_same(needle, v) for v in govalues.as_list(haystack))


def _without(values: Any, *remove: Any) -> list[Any]:
    return [v for v in govalues.as_list(values) if not any(_same(v, r) for r in remove)]


def _slice(values: Any, *indexes: Any) -> Any:
    if isinstance(values, str):
        items: Any = values
    else:
        items = govalues.as_list(values)
    start = govalues.as_int(indexes[0]) if indexes else 0
    end = govalues.as_int(indexes[1]) if len(indexes) > 1 else len(items)
    if not 0 <= start <= end <= len(items):
        raise govalues.FailureError(f"slice bounds out of range [{start}:{end}]")
    return items[start:end]


def _concat(*lists: Any) -> list[Any]:
    out: list[Any] = []
    for values in lists:
        out.extend(govalues.as_list(values))
    return out


def _chunk(size: Any, values: Any) -> list[Any]:
    n, items = govalues.as_int(size), govalues.as_list(values)
    if n <= 0:
        raise govalues.FailureError("chunk size must be positive")
    return [items[i : i + n] for i in range(0, len(items), n)]


def _fail(message: Any) -> str:
    raise govalues.FailureError(govalues.as_str(message))


def _path_clean(p: Any) -> str:
    text = govalues.as_str(p)
    if text == "":
        return "."
    cleaned = posixpath.normpath(text)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _path_base(p: Any) -> str:
    text = govalues.as_str(p)
    if text == "":
        return "."
    stripped = text.rstrip("/")
    return "/" if stripped == "" else stripped.rsplit("/", 1)[-1]


def _path_dir(p: Any) -> str:
    text = govalues.as_str(p)
    head = text[: text.rfind("/") + 1]
    return _path_clean(head)


def _path_ext(p: Any) -> str:
    text = govalues.as_str(p)
    for i in range(len(text) - 1, -1, -1):
        if text[i] == "/":
            break
        if text[i] == ".":
            return text[i:]
    return ""


FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = {
    # Go text/template builtins (`and`, `or` are special forms in the evaluator).
    "not": govalues.not_,
    "len": govalues.length,
    "index": govalues.index,
    "print": govalues.sprint,
    "printf": govalues.sprintf,
    "println": govalues.sprintln,
    "html": govalues.html_escape,
    "js": govalues.js_escape,
    "urlquery": govalues.query_escape,
    "eq": govalues.eq,
    "ne": govalues.ne,
    "lt": govalues.lt,
    "le": govalues.le,
    "gt": govalues.gt,
    "ge": govalues.ge,
    # sprig strings
    "abbrev": _abbrev,
    "trunc": _trunc,
    "trim": lambda s: govalues.as_str(s).strip(_GO_SPACE),
    "upper": lambda s: govalues.as_str(s).upper(),
    "lower": lambda s: govalues.as_str(s).lower(),
    "title": _title,
    "substr": _substr,
    "repeat": _repeat,
    "trimall": lambda cutset, s: govalues.as_str(s).strip(govalues.as_str(cutset)),
    "trimAll": lambda cutset, s: govalues.as_str(s).strip(govalues.as_str(cutset)),
    "trimSuffix": lambda suffix, s: govalues.as_str(s).removesuffix(govalues.as_str(suffix)),
    "trimPrefix": lambda prefix, s: govalues.as_str(s).removeprefix(govalues.as_str(prefix)),
    "nospace": lambda s: _GO_SPACE_RE.sub("", govalues.as_str(s)),
    "contains": lambda substr, s: govalues.as_str(substr) in govalues.as_str(s),
    "hasPrefix": lambda prefix, s: govalues.as_str(s).startswith(govalues.as_str(prefix)),
    "hasSuffix": lambda suffix, s: govalues.as_str(s).endswith(govalues.as_str(suffix)),
    "quote": _quote,
    "squote": _squote,
    "cat": _cat,
    "indent": _indent,
    "nindent": _nindent,
    "replace": lambda old, new, s: govalues.as_str(s).replace(
        govalues.as_str(old), govalues.as_str(new)
    ),
    "plural": _plural,
    "sha1sum": lambda s: hashlib.sha1(
        govalues.as_str(s).encode(), usedforsecurity=False
    ).hexdigest(),
    "sha256sum": lambda s: hashlib.sha256(govalues.as_str(s).encode()).hexdigest(),
    "adler32sum": lambda s: str(zlib.adler32(govalues.as_str(s).encode())),
    "toString": govalues.format_v,
    "toStrings": govalues.strslice,
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
    "int": govalues.to_int64,
    "int64": govalues.to_int64,
    "float64": govalues.to_float64,
    "add1": lambda a: govalues.to_int64(a) + 1,
    "add": _add,
    "sub": lambda a, b: govalues.to_int64(a) - govalues.to_int64(b),
    "div": lambda a, b: _trunc_div(govalues.to_int64(a), govalues.to_int64(b)),
    "mod": _mod,
    "mul": _mul,
    "max": _max,
    "biggest": _max,
    "min": _min,
    "maxf": lambda first, *rest: max([govalues.to_float64(first), *map(govalues.to_float64, rest)]),
    "minf": lambda first, *rest: min([govalues.to_float64(first), *map(govalues.to_float64, rest)]),
    "add1f": lambda a: _decimal_op(lambda x, y: x + y)(a, 1),
    "addf": lambda *values: _decimal_op(lambda x, y: x + y)(0.0, *values),
    "subf": _decimal_op(lambda x, y: x - y),
    "mulf": _decimal_op(lambda x, y: x * y),
    "divf": _decimal_op(lambda x, y: x / y),
    "floor": lambda a: float(math.floor(govalues.to_float64(a))),
    "ceil": lambda a: float(math.ceil(govalues.to_float64(a))),
    "round": _round,
    "until": _until,
    "untilStep": _until_step,
    # sprig defaults, flow control, JSON
    "default": _default,
    "empty": govalues.empty,
    "coalesce": _coalesce,
    "all": lambda *values: all(govalues.truth(v) for v in values),
    "any": lambda *values: any(govalues.truth(v) for v in values),
    "compact": lambda values: [v for v in govalues.as_list(values) if govalues.truth(v)],
    "mustCompact": lambda values: [v for v in govalues.as_list(values) if govalues.truth(v)],
    "ternary": _ternary,
    "fail": _fail,
    "fromJson": _from_json,
    "mustFromJson": _must_from_json,
    "toJson": _to_json,
    "mustToJson": lambda v: govalues.marshal(v, html=True),
    "toPrettyJson": _to_pretty_json,
    "mustToPrettyJson": lambda v: govalues.marshal(v, html=True, indent="  "),
    "toRawJson": _to_raw_json,
    "mustToRawJson": lambda v: govalues.marshal(v, html=False),
    "deepCopy": govalues.own,
    "mustDeepCopy": govalues.own,
    # sprig reflection
    "typeOf": govalues.type_name,
    "typeIs": lambda name, v: govalues.as_str(name) == govalues.type_name(v),
    "typeIsLike": lambda name, v: govalues.as_str(name).lstrip("*") == govalues.type_name(v),
    "kindOf": govalues.kind_name,
    "kindIs": lambda name, v: govalues.as_str(name) == govalues.kind_name(v),
    "deepEqual": lambda a, b: (
        _same(a, b) or (govalues.nil_if_missing(a) is None and govalues.nil_if_missing(b) is None)
    ),
    # sprig paths and encodings
    "base": _path_base,
    "dir": _path_dir,
    "clean": _path_clean,
    "ext": _path_ext,
    "isAbs": lambda p: govalues.as_str(p).startswith("/"),
    "b64enc": lambda s: base64.b64encode(govalues.as_str(s).encode()).decode(),
    "b64dec": _b64dec,
    "b32enc": lambda s: base64.b32encode(govalues.as_str(s).encode()).decode(),
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
    "append": lambda values, v: [*govalues.as_list(values), v],
    "push": lambda values, v: [*govalues.as_list(values), v],
    "mustAppend": lambda values, v: [*govalues.as_list(values), v],
    "mustPush": lambda values, v: [*govalues.as_list(values), v],
    "prepend": lambda values, v: [v, *govalues.as_list(values)],
    "mustPrepend": lambda values, v: [v, *govalues.as_list(values)],
    "first": _first,
    "mustFirst": _first,
    "last": _last,
    "mustLast": _last,
    "rest": lambda values: govalues.as_list(values)[1:],
    "mustRest": lambda values: govalues.as_list(values)[1:],
    "initial": lambda values: govalues.as_list(values)[:-1],
    "mustInitial": lambda values: govalues.as_list(values)[:-1],
    "reverse": lambda values: govalues.as_list(values)[::-1],
    "mustReverse": lambda values: govalues.as_list(values)[::-1],
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
