"""Loading user manifests: YAML with line numbers, and pydantic errors turned into problems.

Users write YAML by hand; when it is wrong they need `file:line: field.path: what was expected`,
every problem at once, never a traceback. This module knows nothing of the kinds: the caller
hands it the model per `kind` (see `tripwire.app.documents`). It also holds the model base class
and the Kubernetes-style metadata every manifest shares.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import pydantic
import yaml
from pydantic import alias_generators

from tripwire import errors

API_VERSION = "tripwire.dev/v1alpha1"
GROUP = "tripwire.dev"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

Location = tuple[str | int, ...]


def _camel(name: str) -> str:
    """`retry_strategy` -> `retryStrategy`; names without `_` stay as written (`k8s`, not `k8S`)."""
    return alias_generators.to_camel(name) if "_" in name else name


class Model(pydantic.BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields are errors, immutable."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=_camel,
        frozen=True,
        str_strip_whitespace=False,
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from a Go duration string (`1m30s`, `250ms`) or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 1m30s or 250ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration like 30s, 1m30s or 250ms")
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration like 30s, 1m30s or 250ms")
    return total


Duration = Annotated[
    float, pydantic.BeforeValidator(parse_duration, json_schema_input_type=int | str)
]
"""Seconds; accepts Go duration strings as Argo Events does (`10s`, `1m30s`)."""


class ObjectMeta(Model):
    name: str = pydantic.Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
    # Set by the apiserver; accepted so objects read back from Kubernetes validate too.
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    managed_fields: list[dict[str, Any]] | None = None
    finalizers: list[str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of one file, with the line of every node in it."""

    file: str
    index: int
    data: Any
    lines: Mapping[Location, int]

    def line(self, loc: Location) -> int | None:
        """Line of the deepest node on `loc` that exists (1-based)."""
        for end in range(len(loc), -1, -1):
            found = self.lines.get(loc[:end])
            if found is not None:
                return found
        return None

    def problem(self, loc: Location, message: str) -> errors.Problem:
        return errors.Problem(
            file=self.file, line=self.line(loc), path=format_loc(loc), message=message
        )


def format_loc(loc: Iterable[str | int]) -> str:
    """`("spec", "triggers", 0, "template")` -> `spec.triggers[0].template`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _LineLoader(yaml.SafeLoader):
    """The safe loader; `_construct` walks its nodes to keep lines and refuse duplicate keys."""


def _construct(
    node: yaml.Node, loc: Location, lines: dict[Location, int], ctx: tuple[yaml.SafeLoader, str]
) -> Any:
    loader, file = ctx
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise errors.ManifestError(
                    [
                        errors.Problem(
                            file=file,
                            line=key_node.start_mark.line + 1,
                            path=format_loc(loc),
                            message="mapping keys must be strings",
                        )
                    ]
                )
            key = str(key) if not isinstance(key, str) else key
            if key in out:
                raise errors.ManifestError(
                    [
                        errors.Problem(
                            file=file,
                            line=key_node.start_mark.line + 1,
                            path=format_loc((*loc, key)),
                            message="duplicate key",
                        )
                    ]
                )
            # A field's line is the line of its key, not of its (maybe multi-line) value.
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*loc, key), lines, ctx)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines, ctx) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse(text: str, *, file: str) -> list[Document]:
    """Parse multi-document YAML (JSON is YAML) into documents with line maps.

    Empty documents (a trailing `---`) are skipped. A syntax error is one problem at its line.
    """
    docs: list[Document] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=_LineLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context and exc.context_mark is not None:
            # "got '<stream end>'" alone points past the end; say what was left open, where.
            reason += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise errors.ManifestError(
            [errors.Problem(file=file, line=line, path="", message=f"invalid YAML: {reason}")]
        ) from None
    except yaml.YAMLError as exc:
        raise errors.ManifestError(
            [errors.Problem(file=file, line=None, path="", message=f"invalid YAML: {exc}")]
        ) from None
    loader = _LineLoader("")
    for index, node in enumerate(nodes):
        lines: dict[Location, int] = {}
        data = _construct(node, (), lines, (loader, file))
        if data is None:
            continue
        docs.append(Document(file=file, index=index, data=data, lines=lines))
    return docs


def read_paths(
    paths: Iterable[str | pathlib.Path],
) -> tuple[list[Document], list[errors.Problem]]:
    """Documents of the given files and of the manifest files directly in given directories.

    Returns the documents that parsed and a problem for every file that did not, so the caller
    can still validate the rest and report everything at once.
    """
    problems: list[errors.Problem] = []
    docs: list[Document] = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES)
            if not files:
                problems.append(
                    errors.Problem(
                        file=str(path),
                        line=None,
                        path="",
                        message=f"directory has no {', '.join(MANIFEST_SUFFIXES)} files",
                    )
                )
        else:
            files = [path]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except FileNotFoundError:
                problems.append(errors.Problem(str(file), None, "", "no such file"))
                continue
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(errors.Problem(str(file), None, "", f"cannot read: {exc}"))
                continue
            try:
                docs.extend(parse(text, file=str(file)))
            except errors.ManifestError as exc:
                problems.extend(exc.problems)
    return docs, problems


M = TypeVar("M", bound=pydantic.BaseModel)


class FieldError(ValueError):
    """Problems a validator found in fields below its model, each `(loc relative to it, text)`.

    pydantic locates a model validator's ValueError at the model itself; cross-field rules
    (unique names, conditions that name dependencies) know which field is wrong, and may find
    several problems at once.
    """

    def __init__(self, problems: Sequence[tuple[Location, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(message for _loc, message in problems))


def _message(err: Mapping[str, Any]) -> str:
    """pydantic's error as a short sentence a YAML author understands: what was expected, got.

    pydantic speaks Python ("a valid dictionary or instance of GatewaySpec", "unable to parse
    string as an integer"); users wrote YAML, so they read mapping, list, integer, true/false.
    Error kinds not listed keep pydantic's text.
    """
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    if isinstance(value, dict):
        got = "a mapping"
    elif isinstance(value, list):
        got = "a list"
    elif value is None:
        got = "null"
    elif isinstance(value, bool):
        got = "true" if value else "false"
    elif isinstance(value, str):
        got = repr(value if len(value) <= 60 else value[:57] + "...")
    else:
        got = str(value)
    expected = {
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "a string",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "list_type": "a list",
        "tuple_type": "a list",
        "set_type": "a list",
        "none_required": "null",
        "literal_error": f"one of {ctx.get('expected')}",
        "enum": f"one of {ctx.get('expected')}",
        "greater_than": f"a number > {ctx.get('gt')}",
        "greater_than_equal": f"a number >= {ctx.get('ge')}",
        "less_than": f"a number < {ctx.get('lt')}",
        "less_than_equal": f"a number <= {ctx.get('le')}",
        "string_pattern_mismatch": f"text matching {ctx.get('pattern')}",
        "string_too_short": f"at least {ctx.get('min_length')} character(s)",
        "string_too_long": f"at most {ctx.get('max_length')} character(s)",
    }
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"expected {bound} {limit} item(s), got {ctx.get('actual_length')}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in expected:
        return f"expected {expected[kind]}, got {got}"
    msg = str(err.get("msg", "invalid value"))
    # pydantic prefixes messages of ValueErrors raised by validators; the prefix is noise.
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validate(doc: Document, model: type[M]) -> M:
    """Validate one document against `model`; every error becomes a located problem."""
    try:
        return model.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):
                for sub_loc, message in cause.problems:
                    problems.append(doc.problem(_user_loc(doc, (*loc, *sub_loc)), message))
                continue
            # Tagged/union branches add the branch name to loc; keep the user's path only.
            problems.append(doc.problem(_user_loc(doc, loc), _message(err)))
        raise errors.ManifestError(problems) from None


def _user_loc(doc: Document, loc: Location) -> Location:
    """Drop path parts pydantic invents (union branch names) that are not keys in the input."""
    out: list[str | int] = []
    node: Any = doc.data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            out.append(part)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            out.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif node is None or not isinstance(node, dict | list):
            # Past the input (a missing field, or a scalar's validator): keep the name.
            out.append(part)
            node = None
        # else: an invented part (e.g. a union tag) — skip it.
    return tuple(out)
