"""Every example directory validates, so the README never points at a broken manifest.

What the examples do is tested where it can run: the quickstart end to end in
tests/e2e/test_run.py, the Kubernetes examples against the real apiserver in
tests/integration/test_k8s_triggers.py.
"""

from __future__ import annotations

import pathlib

import pytest

from tripwire.app import documents

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "directory", sorted(p for p in EXAMPLES.iterdir() if p.is_dir()), ids=lambda p: p.name
)
def test_example_validates(directory: pathlib.Path) -> None:
    loaded = documents.load([directory])
    assert loaded.gateways or loaded.sensors
