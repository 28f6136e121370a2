"""The project's shape: packages come from this checkout, layers are declared, kinds resolve.

STYLE's pitfall: a test directory or an installed copy could shadow `gateways`, `sensors` or
`triggers`; and a module missing from the import-linter layers escapes the DESIGN's layering.
"""

from __future__ import annotations

import importlib
import pathlib
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ["tripwire", "tripwire.bus", "tripwire.net.kube", "gateways", "sensors", "triggers"]


@pytest.mark.parametrize("name", PACKAGES)
def test_packages_are_this_checkout_and_typed(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    path = pathlib.Path(module.__file__).resolve()
    assert path.is_relative_to(REPO), f"{name} imported from {path}, not from {REPO}"
    assert (path.parent / "py.typed").exists()
    assert module.__doc__, f"{name} needs a docstring saying why it exists"


def test_every_core_module_is_in_a_declared_layer() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    declared = {part.strip() for layer in layers for part in layer.replace("|", ":").split(":")}
    core = REPO / "tripwire"
    modules = {f"tripwire.{p.stem}" for p in core.glob("*.py") if p.stem != "__init__"}
    modules |= {f"tripwire.{p.name}" for p in core.iterdir() if (p / "__init__.py").exists()}
    missing = sorted(m for m in modules if m not in declared)
    assert not missing, f"add to the import-linter layers in pyproject.toml: {missing}"


def test_registered_kinds_resolve_to_classes_with_spec_models() -> None:
    from gateways import base as gateways_base
    from triggers import base as triggers_base

    for kind in gateways_base.KINDS:
        cls = gateways_base.load(kind)
        assert cls.spec_model is not None, kind
    for kind in triggers_base.KINDS:
        cls_t = triggers_base.load(kind)
        assert cls_t.spec_model is not None, kind
