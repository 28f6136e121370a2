"""gjson reads and sjson writes, checked against the examples of gjson's and sjson's READMEs."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from tripwire.errors import ExpressionError
from tripwire.lang import dests, paths

GJSON_DOC: Any = json.loads(
    """
{
  "name": {"first": "Tom", "last": "Anderson"},
  "age": 37,
  "children": ["Sara", "Alex", "Jack"],
  "fav.movie": "Deer Hunter",
  "friends": [
    {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
    {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
    {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
  ]
}
"""
)
DALE = GJSON_DOC["friends"][0]
ROGER = GJSON_DOC["friends"][1]
JANE = GJSON_DOC["friends"][2]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Basic
        ("name.last", "Anderson"),
        ("name.first", "Tom"),
        ("age", 37),
        ("children", ["Sara", "Alex", "Jack"]),
        ("children.0", "Sara"),
        ("children.1", "Alex"),
        ("friends.1", ROGER),
        ("friends.1.first", "Roger"),
        ("friends.1.last", "Craig"),
        # Wildcards: first match in document order
        ("child*.2", "Jack"),
        ("c?ildren.0", "Sara"),
        ("*.last", "Anderson"),
        ("fav?movie", "Deer Hunter"),
        # Escapes
        (r"fav\.movie", "Deer Hunter"),
        # Arrays
        ("children.#", 3),
        ("friends.#", 3),
        ("friends.#.age", [44, 68, 47]),
        ("friends.#.first", ["Dale", "Roger", "Jane"]),
        ("friends.#.nets", [["ig", "fb", "tw"], ["fb", "tw"], ["ig", "tw"]]),
        ("friends.#.nets.#", [3, 2, 2]),
        ("friends.#.nets.0", ["ig", "fb", "ig"]),
        ("friends.#.missing", []),
        ("friends.#.nets.#(x)", []),
        # Queries
        ('friends.#(last=="Murphy").first', "Dale"),
        ('friends.#(last=="Murphy")#.first', ["Dale", "Jane"]),
        ('friends.#(last="Murphy")#.first', ["Dale", "Jane"]),
        ('friends.#(last=="Murphy")#', [DALE, JANE]),
        ("friends.#(age>45)#.last", ["Craig", "Murphy"]),
        ("friends.#(age>=47)#.first", ["Roger", "Jane"]),
        ("friends.#(age<47)#.first", ["Dale"]),
        ("friends.#(age<=47)#.first", ["Dale", "Jane"]),
        ("friends.#(age!=44)#.first", ["Roger", "Jane"]),
        ("friends.#(age==68).first", "Roger"),
        ('friends.#(age=="68").first', "Roger"),
        ('friends.#(first%"D*").last', "Murphy"),
        ('friends.#(first!%"D*").last', "Craig"),
        ('friends.#(first%"?oger").last', "Craig"),
        ('friends.#(last == "Murphy").age', 44),
        ("friends.#(last==Murphy).first", "Dale"),
        ('children.#(!%"*a*")', "Alex"),
        ('children.#(%"*a*")#', ["Sara", "Jack"]),
        ('children.#(=="Jack")', "Jack"),
        ('friends.#(nets.#(=="fb"))#.first', ["Dale", "Roger"]),
        ("friends.#(nets.#>2)#.first", ["Dale"]),
        ("friends.#(nets)#.first", ["Dale", "Roger", "Jane"]),
        ('friends.#(last=="Nobody")#', []),
        ('friends.#(last=="Nobody")#.first', []),
        ("friends.#[age>45]#.last", ["Craig", "Murphy"]),
        # Dot vs pipe
        ("friends.0.first", "Dale"),
        ("friends|0.first", "Dale"),
        ("friends.0|first", "Dale"),
        ("friends|0|first", "Dale"),
        ("friends|#", 3),
        ('friends.#(last="Murphy")#.0', []),
        ('friends.#(last="Murphy")#|0', DALE),
        ('friends.#(last="Murphy")#.#', []),
        ('friends.#(last="Murphy")#|#', 2),
        # Multipaths
        (
            '{name.first,age,"the_murphys":friends.#(last="Murphy")#.first}',
            {"first": "Tom", "age": 37, "the_murphys": ["Dale", "Jane"]},
        ),
        ("[name.first,age,children.0]", ["Tom", 37, "Sara"]),
        ("[name.first,nope,age]", ["Tom", 37]),
        ("{name.first,nope}", {"first": "Tom"}),
        ("{first:name.first,friends.#}", {"first": "Tom", "_": 3}),
        (r"{fav\.movie}", {"fav.movie": "Deer Hunter"}),
        ("{name.first,age}.age", 37),
        ("[name.first,age]|1", 37),
        ("friends.0.{first,age}", {"first": "Dale", "age": 44}),
        ("friends.#.{first}", [{"first": "Dale"}, {"first": "Roger"}, {"first": "Jane"}]),
        ("[friends.#(age>45)#.last,[age]]", [["Craig", "Murphy"], [37]]),
        # Modifiers
        ("children.@reverse", ["Jack", "Alex", "Sara"]),
        ("children.@reverse.0", "Jack"),
        ("@this.age", 37),
        ("friends.#.nets|@flatten", ["ig", "fb", "tw", "fb", "tw", "ig", "tw"]),
        ("name.@keys", ["first", "last"]),
        ("name.@values", ["Tom", "Anderson"]),
        ("name.@reverse", {"last": "Anderson", "first": "Tom"}),
    ],
)
def test_gjson_examples(path: str, expected: Any) -> None:
    assert paths.get(GJSON_DOC, path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "nope",
        "name.middle",
        "age.value",
        "children.3",
        "children.-1",
        "children.x",
        "name.0",
        'friends.#(last=="Nobody").first',
        'friends.#(last="Murphy")#|first',
        "age.#",
        "z*",
        "name.#(first)",
        'children.#(first=="x")',
        "name.@nope",
    ],
)
def test_missing(path: str) -> None:
    assert paths.get(GJSON_DOC, path) is paths.MISSING


def test_null_is_not_missing() -> None:
    data = {"a": None, "b": {"c": None}, "list": [None]}
    assert paths.get(data, "a") is None
    assert paths.get(data, "b.c") is None
    assert paths.get(data, "list.0") is None
    assert paths.get(data, "a.x") is paths.MISSING
    assert paths.get(data, "b.d") is paths.MISSING


def test_missing_sentinel() -> None:
    assert not paths.MISSING
    assert repr(paths.MISSING) == "MISSING"
    assert pickle.loads(pickle.dumps(paths.MISSING)) is paths.MISSING  # noqa: S301 - own bytes
    assert copy.deepcopy(paths.MISSING) is paths.MISSING


def test_numeric_component_on_object_is_a_key() -> None:
    data = {"codes": {"1": "one", "200": "ok"}, "list": ["zero", "one"]}
    assert paths.get(data, "codes.1") == "one"
    assert paths.get(data, "codes.200") == "ok"
    assert paths.get(data, "list.1") == "one"


def test_unicode_keys_and_values() -> None:
    data = {"名前": {"姓": "山田"}, "émoji": ["🙂", "🙃"], "tags": [{"k": "ü"}]}
    assert paths.get(data, "名前.姓") == "山田"
    assert paths.get(data, "émoji.1") == "🙃"
    assert paths.get(data, "é*.#") == 2
    assert paths.get(data, 'tags.#(k=="ü").k') == "ü"
    assert paths.get(data, "名?.姓") == "山田"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (r"a\*b", "literal star"),
        (r"a\?b", "literal question"),
        ("a*b", "literal star"),
        (r"dots\.and\|pipes", "escaped"),
        (r"back\\slash", "backslash"),
    ],
)
def test_escapes(path: str, expected: str) -> None:
    data = {
        "a*b": "literal star",
        "a?b": "literal question",
        "dots.and|pipes": "escaped",
        "back\\slash": "backslash",
    }
    assert paths.get(data, path) == expected


def test_escaped_wildcard_does_not_match_other_keys() -> None:
    assert paths.get({"axb": 1}, r"a\*b") is paths.MISSING
    assert paths.get({"axb": 1}, "a*b") == 1


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("items.#(ok==true)#.id", [1]),
        ("items.#(ok==false)#.id", [2]),
        ("items.#(ok!=true)#.id", [2, 3, 4]),
        ("items.#(ok)#.id", [1, 2, 3, 4]),
        ("items.#(ok==null)#.id", [3]),
        ("items.#(ok!=null)#.id", [1, 2, 4]),
        ('items.#(ok=="1")#.id', [4]),
        ("items.#(ok>0)#.id", [4]),
        ("items.#(ok>x)#.id", []),
        ('items.#(name%"a\\\\*")#.id', [5]),
    ],
)
def test_query_typing(path: str, expected: list[int]) -> None:
    data = {
        "items": [
            {"id": 1, "ok": True},
            {"id": 2, "ok": False},
            {"id": 3, "ok": None},
            {"id": 4, "ok": 1},
            {"id": 5, "name": "a*"},
        ]
    }
    assert paths.get(data, path) == expected


def test_compile_is_cached_and_reusable() -> None:
    path = paths.compile("body.ref")
    assert path is paths.compile("body.ref")
    assert path.text == "body.ref"
    assert repr(path) == "Path('body.ref')"
    assert path.get({"body": {"ref": "main"}}) == "main"
    assert path.get({"body": "not an object"}) is paths.MISSING
    assert path.get(None) is paths.MISSING
    assert path != paths.compile("body.head")
    assert hash(path) == hash("body.ref")


def test_get_does_not_mutate() -> None:
    before = copy.deepcopy(GJSON_DOC)
    paths.get(GJSON_DOC, "children.@reverse")
    paths.get(GJSON_DOC, "name.@reverse")
    paths.get(GJSON_DOC, "friends.#.nets|@flatten")
    assert before == GJSON_DOC


@pytest.mark.parametrize(
    ("path", "message", "position"),
    [
        ("", "empty path", 0),
        ("a.", "expected a key, found end of path", 2),
        ("a..b", "expected a key, found '.'", 2),
        ("a|", "expected a key, found end of path", 2),
        ("a\\", "dangling escape at end of path", 1),
        ('friends.#(last=="Murphy"', "unterminated query, expected ')'", 8),
        ("friends.#(", "unterminated query, expected ')'", 8),
        ("friends.#(age>45", "unterminated query, expected ')'", 8),
        ("friends.#[age>45", "unterminated query, expected ']'", 8),
        ('friends.#(nets.#(=="fb")', "unterminated query, expected ')'", 8),
        ("friends.#(a=>1)", "unknown query operator '=>'", 11),
        ("friends.#(a===1)", "unknown query operator '==='", 11),
        ("friends.#(a!1)", "unknown query operator '!'", 11),
        ("friends.#(a==)", "expected a value after the query operator", 13),
        ('friends.#(a=="x)', "unterminated string in query", 13),
        ('friends.#(a=="\\q")', "invalid string in query: Invalid \\escape", 14),
        ("friends.#(a b==1)", "expected ')' to close the query", 12),
        ("friends.#(a==1)x", "unexpected 'x' after path component", 15),
        ("[a,", "unterminated multipath, expected ']'", 0),
        ("{a", "unterminated multipath, expected '}'", 0),
        ("[a,,b]", "empty path in multipath", 3),
        ("[]", "empty path in multipath", 1),
        ("[a]b", "unexpected 'b' after path component", 3),
    ],
)
def test_syntax_errors(path: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        paths.compile(path)
    assert caught.value.reason == message
    assert caught.value.position == position
    assert caught.value.text == path
    assert isinstance(caught.value, ValueError)


def test_modifier_with_trailing_text_is_a_key() -> None:
    # `@reverse!` is not a known modifier, so like gjson it names a key.
    assert paths.get({"@reverse!": 1}, "@reverse!") == 1


# --------------------------------------------------------------------------------------------
# sjson


@pytest.mark.parametrize(
    ("data", "path", "value", "expected"),
    [
        (None, "name", "Tom", {"name": "Tom"}),
        (None, "name.last", "Anderson", {"name": {"last": "Anderson"}}),
        (
            {"name": {"last": "Anderson"}},
            "name.first",
            "Sara",
            {"name": {"first": "Sara", "last": "Anderson"}},
        ),
        ({"name": {"last": "Anderson"}}, "name.last", "Smith", {"name": {"last": "Smith"}}),
        (
            {"friends": ["Andy", "Carol"]},
            "friends.2",
            "Sara",
            {"friends": ["Andy", "Carol", "Sara"]},
        ),
        ({"friends": ["Andy", "Carol"]}, "friends.1", "Sara", {"friends": ["Andy", "Sara"]}),
        (
            {"friends": ["Andy", "Carol"]},
            "friends.-1",
            "Sara",
            {"friends": ["Andy", "Carol", "Sara"]},
        ),
        (
            {"friends": ["Andy", "Carol"]},
            "friends.4",
            "Sara",
            {"friends": ["Andy", "Carol", None, None, "Sara"]},
        ),
        ({}, "a.b.c", 1, {"a": {"b": {"c": 1}}}),
        ({}, "a.0.b", 1, {"a": [{"b": 1}]}),
        ({}, "a.2", 1, {"a": [None, None, 1]}),
        ({}, "a.-1.b", 1, {"a": [{"b": 1}]}),
        ({"a": [{"b": 1}]}, "a.0.c", 2, {"a": [{"b": 1, "c": 2}]}),
        ({"a": [1]}, "a.3.b", 2, {"a": [1, None, None, {"b": 2}]}),
        ({}, r"fav\.movie", "x", {"fav.movie": "x"}),
        (
            {},
            r"metadata.annotations.example\.com/commit",
            "abc",
            {"metadata": {"annotations": {"example.com/commit": "abc"}}},
        ),
        ({}, "users.:2313.name", "Sara", {"users": {"2313": {"name": "Sara"}}}),
        ({}, r"a\:b", 1, {"a:b": 1}),
        ({"codes": {"1": "x"}}, "codes.1", "y", {"codes": {"1": "y"}}),
        ({"a": 5}, "a.b", 1, {"a": {"b": 1}}),
        ({"a": None}, "a.0", 1, {"a": [1]}),
        ({}, "key", {"nested": [1]}, {"key": {"nested": [1]}}),
        ({}, "key", None, {"key": None}),
        ([], "0", "x", ["x"]),
        ([], "-1.a", "x", [{"a": "x"}]),
        ("scalar", "a", 1, {"a": 1}),
        (None, "0", "x", ["x"]),
        ({}, "名前.姓", "山田", {"名前": {"姓": "山田"}}),
    ],
)
def test_sjson_set(data: Any, path: str, value: Any, expected: Any) -> None:
    assert dests.set_value(data, path, value) == expected


def test_set_mutates_in_place_and_returns_root() -> None:
    data: dict[str, Any] = {"metadata": {"labels": {}}}
    labels = data["metadata"]["labels"]
    result = dests.set_value(data, "metadata.labels.commit", "abc")
    assert result is data
    assert labels == {"commit": "abc"}
    dest = dests.compile_dest("metadata.labels.commit")
    assert dest is dests.compile_dest("metadata.labels.commit")
    assert repr(dest) == "DestPath('metadata.labels.commit')"
    assert dest.set(data, "def") is data
    assert data["metadata"]["labels"]["commit"] == "def"


def test_set_value_round_trips_with_get() -> None:
    data: dict[str, Any] = {}
    for path, value in [("a.b", 1), ("a.c.0", "x"), (r"d\.e", None), ("f.-1", True)]:
        dests.set_value(data, path, value)
        assert paths.get(data, path.replace("-1", "0")) == value


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        (
            {"name": {"first": "Sara", "last": "Anderson"}},
            "name.first",
            {"name": {"last": "Anderson"}},
        ),
        ({"friends": ["Andy", "Carol"]}, "friends.1", {"friends": ["Andy"]}),
        ({"friends": ["Andy", "Carol"]}, "friends.-1", {"friends": ["Andy"]}),
        ({"friends": ["Andy", "Carol"]}, "friends.0", {"friends": ["Carol"]}),
        ({"friends": ["Andy"]}, "friends.5", {"friends": ["Andy"]}),
        ({"friends": []}, "friends.-1", {"friends": []}),
        ({"a": 1}, "b.c", {"a": 1}),
        ({"a": 1}, "a.c", {"a": 1}),
        ({"a": [{"b": 1, "c": 2}]}, "a.0.b", {"a": [{"c": 2}]}),
        ({"a": [{"b": 1, "c": 2}]}, "a.-1.c", {"a": [{"b": 1}]}),
        ({"a": [{"b": 1}]}, "a.x.b", {"a": [{"b": 1}]}),
        ({"a": [{"b": 1}]}, "a.9.b", {"a": [{"b": 1}]}),
        ({"users": {"1": "x", "2": "y"}}, "users.:1", {"users": {"2": "y"}}),
        ({r"fav.movie": 1}, r"fav\.movie", {}),
    ],
)
def test_sjson_delete(data: Any, path: str, expected: Any) -> None:
    assert dests.delete(data, path) == expected


def test_set_key_on_array_is_an_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        dests.set_value({"a": [1]}, "a.x", 1)
    assert caught.value.reason == "cannot use key 'x' on an array (use an index or -1)"
    assert caught.value.position == 2
    with pytest.raises(ExpressionError) as caught:
        dests.set_value({"a": [1]}, "a.:0.b", 1)
    assert caught.value.position == 2


@pytest.mark.parametrize(
    ("path", "message", "position"),
    [
        ("", "empty path", 0),
        ("a..b", "expected a key", 2),
        ("a.", "expected a key", 2),
        (":", "expected a key", 1),
        ("a\\", "dangling escape at end of path", 1),
        ("a.b*", "wildcards are not allowed in a destination path", 3),
        ("a.?", "wildcards are not allowed in a destination path", 2),
        ("a.#", "array queries are not allowed in a destination path", 2),
        ('a.#(b=="c")', "array queries are not allowed in a destination path", 2),
    ],
)
def test_dest_syntax_errors(path: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        dests.compile_dest(path)
    assert caught.value.reason == message
    assert caught.value.position == position


def test_dest_allows_escaped_specials() -> None:
    data = dests.set_value({}, r"a\*.\#.b\?", 1)
    assert data == {"a*": {"#": {"b?": 1}}}
    assert dests.set_value({}, "a.b#c", 1) == {"a": {"b#c": 1}}
