"""The committed CRDs are current, structural, and accept what the loader accepts.

kube-apiserver refuses a CRD whose schema is not structural, and prunes or rejects fields the
schema does not list; either way a manifest that `tripwire validate` accepts would fail with
`kubectl apply`. These tests catch both without a cluster (the real apiserver check comes with
the integration suite).
"""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import yaml

from tripwire import manifests
from tripwire.app import cli, crdgen

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart" / "quickstart.yaml"
Schema = dict[str, Any]

# Keywords a node may carry; anything else (`$ref`, `const`, `title`, `oneOf`...) is not
# structural or not OpenAPI v3.0.
STRUCTURAL_KEYS = {
    "type",
    "description",
    "format",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "nullable",
    "anyOf",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
}


def openapi(kind: str) -> Schema:
    text = (REPO / "crds" / f"{kind.lower()}.yaml").read_text(encoding="utf-8")
    crd = yaml.safe_load(text)
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def structural_problems(node: Any, path: str = "") -> Iterator[str]:
    """Every way `node` breaks the apiserver's structural-schema rules (subset we rely on)."""
    if not isinstance(node, dict):
        yield f"{path}: not a mapping"
        return
    for key in sorted(set(node) - STRUCTURAL_KEYS):
        yield f"{path}: keyword {key!r}"
    free = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
        "x-kubernetes-int-or-string"
    )
    if "type" not in node and not free:
        yield f"{path}: no type"
    if node.get("type") == "null":
        yield f"{path}: type null"
    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        yield f"{path}: exclusiveMinimum must be a boolean in OpenAPI v3.0"
    extra = node.get("additionalProperties")
    if extra is False:
        yield f"{path}: additionalProperties: false"
    if extra is not None and "properties" in node:
        yield f"{path}: both properties and additionalProperties"
    for branch in node.get("anyOf", []):
        # The only anyOf we emit: alternatives of required names (aliases).
        if set(branch) != {"required"}:
            yield f"{path}: anyOf branch sets {sorted(branch)}"
    for name, sub in node.get("properties", {}).items():
        yield from structural_problems(sub, f"{path}.{name}")
    if isinstance(extra, dict):
        yield from structural_problems(extra, f"{path}.*")
    if "items" in node:
        yield from structural_problems(node["items"], f"{path}[]")


def as_json_schema(node: Schema) -> Schema:
    """OpenAPI v3.0 + Kubernetes extensions -> JSON Schema, strict like `--validate=strict`."""
    out: Schema = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(limit)
        elif out.get(bound) is False:
            del out[bound]
    if "properties" in out:
        out["properties"] = {k: as_json_schema(v) for k, v in out["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = as_json_schema(out["additionalProperties"])
    if "items" in out:
        out["items"] = as_json_schema(out["items"])
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [
                *([out["type"]] if isinstance(out["type"], str) else out["type"]),
                "null",
            ]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def check_against_crd(doc: Any) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(as_json_schema(openapi(doc["kind"])))
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    )


# --------------------------------------------------------------------------------------------
# The committed files


@pytest.mark.parametrize("name", sorted(crdgen.generate()))
def test_committed_crd_is_current(name: str) -> None:
    committed = REPO / "crds" / name
    assert committed.exists(), f"crds/{name} is missing: run `tripwire crds`"
    assert committed.read_text(encoding="utf-8") == crdgen.generate()[name], (
        f"crds/{name} is stale: the models changed; run `tripwire crds` and commit the result"
    )


@pytest.mark.parametrize("kind", ["Gateway", "Sensor"])
def test_crd_header_names_and_printer_columns(kind: str) -> None:
    text = (REPO / "crds" / f"{kind.lower()}.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Generated by: tripwire crds — do not edit.\n")
    crd = yaml.safe_load(text)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.tripwire.dev"
    assert spec["group"] == "tripwire.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["categories"] == ["tripwire"]
    assert spec["names"]["shortNames"] == [{"Gateway": "gw", "Sensor": "sn"}[kind]]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    last = ("Last Event", ".status.lastEventTime")
    if kind == "Sensor":
        last = ("Last Fired", ".status.lastFiredTime")
    assert columns == [
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        (last[0], "date", last[1]),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


@pytest.mark.parametrize("kind", ["Gateway", "Sensor"])
def test_schema_is_structural(kind: str) -> None:
    schema = openapi(kind)
    assert list(structural_problems(schema)) == []
    props = schema["properties"]
    assert schema["required"] == ["spec"]
    assert props["metadata"] == {"type": "object"}
    assert props["status"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "$ref" not in (REPO / "crds" / f"{kind.lower()}.yaml").read_text(encoding="utf-8")


def test_structural_checker_catches_what_the_apiserver_refuses() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "c": {"type": "object", "properties": {}, "additionalProperties": False},
            "d": {"const": "x", "type": "string", "title": "D"},
            "e": {
                "type": "object",
                "properties": {"x": {"type": "string"}},
                "additionalProperties": {},
            },
        },
    }
    problems = list(structural_problems(bad))
    assert ".a: keyword '$ref'" in problems
    assert ".a: no type" in problems
    assert ".b: no type" in problems
    assert ".b: anyOf branch sets ['type']" in problems
    assert ".c: additionalProperties: false" in problems
    assert ".d: keyword 'const'" in problems
    assert ".d: keyword 'title'" in problems
    assert ".e: both properties and additionalProperties" in problems


# --------------------------------------------------------------------------------------------
# What the CRD accepts


def test_quickstart_objects_validate_against_the_crds() -> None:
    docs = [d.data for d in manifests.parse(QUICKSTART.read_text(), file=str(QUICKSTART))]
    assert [d["kind"] for d in docs] == ["Gateway", "Sensor", "Sensor"]
    for doc in docs:
        assert check_against_crd(doc) == [], doc["metadata"]["name"]


SENSOR: dict[str, Any] = {
    "apiVersion": "tripwire.dev/v1alpha1",
    "kind": "Sensor",
    "metadata": {"name": "s"},
    "spec": {
        "dependencies": [{"name": "d", "gatewayName": "g", "eventName": "e"}],
        "triggers": [{"template": {"name": "t", "log": {}}, "retryStrategy": {"duration": 5}}],
    },
}


def test_argo_alias_and_status_are_accepted() -> None:
    doc = copy.deepcopy(SENSOR)
    dep = doc["spec"]["dependencies"][0]
    dep["eventSourceName"] = dep.pop("gatewayName")
    doc["status"] = {"conditions": [{"type": "Ready", "status": "True"}], "anything": 1}
    assert check_against_crd(doc) == []


def test_crd_refuses_what_the_loader_refuses() -> None:
    doc = copy.deepcopy(SENSOR)
    spec = doc["spec"]
    del spec["dependencies"][0]["gatewayName"]
    spec["triggers"][0]["template"]["lgo"] = {}
    spec["triggers"][0]["retryStrategy"]["duration"] = 1.5
    assert check_against_crd(doc) == [
        # Neither gatewayName nor its alias eventSourceName.
        "spec.dependencies.0: {'name': 'd', 'eventName': 'e'} is not valid under any of the"
        " given schemas",
        "spec.triggers.0.retryStrategy.duration: 1.5 is not of type 'integer', 'string'",
        "spec.triggers.0.template: Additional properties are not allowed ('lgo' was unexpected)",
    ]


# --------------------------------------------------------------------------------------------
# The conversion, on small models


class _Inner(manifests.Model):
    """Inner docs."""

    x: int = pydantic.Field(default=1, gt=0)


class _Spec(manifests.Model):
    number_or_text: int | str
    anything: Any = None
    free: dict[str, Any] = pydantic.Field(default_factory=dict)
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    inner: _Inner | None = pydantic.Field(default=None, description="Field docs.")
    shape: _Inner | list[int] | None = None
    wait: manifests.Duration = 1.0
    tags: set[str] = pydantic.Field(default_factory=set)


class _Doc(manifests.Model):
    spec: _Spec


def test_conversion_rules() -> None:
    schema = crdgen.openapi_schema(_Doc, description="d")
    props = schema["properties"]["spec"]["properties"]
    assert props["numberOrText"] == {"x-kubernetes-int-or-string": True}
    assert props["anything"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert props["free"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["inner"] == {
        "description": "Field docs.",
        "nullable": True,
        "type": "object",
        "properties": {"x": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}},
    }
    assert props["shape"] == {"nullable": True, "x-kubernetes-preserve-unknown-fields": True}
    assert props["wait"]["x-kubernetes-int-or-string"] is True
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "x-kubernetes-list-type": "set",
    }
    assert list(structural_problems(schema)) == []


class _Node(manifests.Model):
    children: list[_Node] = pydantic.Field(default_factory=list)


class _Tree(manifests.Model):
    spec: _Node


def test_recursive_models_are_refused_clearly() -> None:
    with pytest.raises(crdgen.CrdError, match="recursive"):
        crdgen.openapi_schema(_Tree, description="d")


# --------------------------------------------------------------------------------------------
# The command


def test_crds_command_writes_then_checks(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crds"
    assert cli.main(["crds", "--check", "--out", str(out)]) == 1
    assert f"{out / 'gateway.yaml'} is stale or missing: run `tripwire crds`" in (
        capsys.readouterr().err
    )
    assert cli.main(["crds", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gateway.yaml", "sensor.yaml"]
    assert cli.main(["crds", "--check", "--out", str(out)]) == 0
    capsys.readouterr()
    (out / "sensor.yaml").write_text("# edited\n", encoding="utf-8")
    assert cli.main(["crds", "--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'sensor.yaml'} is stale or missing: run `tripwire crds`" in err
    assert "gateway.yaml" not in err
