"""Reading a set of manifest files into validated Gateways and Sensors, all problems at once.

This is where the kinds meet the loader: `tripwire.manifests` knows YAML and error locations,
`gateways.manifest` and `sensors.manifest` know the models. `tripwire validate`, `tripwire run`
and the CRD generator all go through `load`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import pydantic

from gateways import manifest as gateway_manifest
from sensors import manifest as sensor_manifest
from tripwire import errors, manifests


@dataclasses.dataclass(frozen=True)
class Loaded:
    gateways: list[gateway_manifest.GatewayBase]
    sensors: list[sensor_manifest.SensorBase]
    # Where each object came from, for messages about relations between objects.
    origin: dict[tuple[str, str], tuple[manifests.Document, manifests.Location]]


def kinds() -> dict[str, Callable[[], type[pydantic.BaseModel]]]:
    return {"Gateway": gateway_manifest.model, "Sensor": sensor_manifest.model}


def load(paths: Iterable[str | pathlib.Path], *, check_references: bool = True) -> Loaded:
    """Validate every document; raise `ManifestError` with every problem found."""
    docs, problems = manifests.read_paths(paths)
    gateways: list[gateway_manifest.GatewayBase] = []
    sensors: list[sensor_manifest.SensorBase] = []
    origin: dict[tuple[str, str], tuple[manifests.Document, manifests.Location]] = {}
    known = kinds()
    for doc in docs:
        if not isinstance(doc.data, dict):
            problems.append(
                doc.problem((), "a manifest must be a mapping with apiVersion and kind")
            )
            continue
        api_version = doc.data.get("apiVersion")
        kind = doc.data.get("kind")
        if api_version != manifests.API_VERSION:
            problems.append(
                doc.problem(
                    ("apiVersion",), f"expected {manifests.API_VERSION}, got {api_version!r}"
                )
            )
            continue
        if kind not in known:
            problems.append(
                doc.problem(("kind",), f"expected one of {', '.join(known)}, got {kind!r}")
            )
            continue
        try:
            obj: Any = manifests.validate(doc, known[kind]())
        except errors.ManifestError as exc:
            problems.extend(exc.problems)
            continue
        key = (kind, obj.metadata.name)
        if key in origin:
            first, _ = origin[key]
            problems.append(
                doc.problem(
                    ("metadata", "name"),
                    f"{kind} {obj.metadata.name!r} is also defined in {first.file}"
                    f":{first.line(('metadata', 'name'))}",
                )
            )
            continue
        origin[key] = (doc, ())
        (gateways if kind == "Gateway" else sensors).append(obj)
    if check_references and not problems:
        problems.extend(_dangling_dependencies(gateways, sensors, origin))
    if problems:
        raise errors.ManifestError(problems)
    return Loaded(gateways=gateways, sensors=sensors, origin=origin)


def _dangling_dependencies(
    gateways: list[gateway_manifest.GatewayBase],
    sensors: list[sensor_manifest.SensorBase],
    origin: dict[tuple[str, str], tuple[manifests.Document, manifests.Location]],
) -> list[errors.Problem]:
    """A dependency on a gateway entry that none of the loaded files defines never fires."""
    entries = {
        gw.metadata.name: {name for _kind, name, _spec in gw.spec.entries()} for gw in gateways
    }
    problems = []
    for sensor in sensors:
        doc, _ = origin[("Sensor", sensor.metadata.name)]
        for i, dep in enumerate(sensor.spec.dependencies):
            names = entries.get(dep.gateway_name)
            if names is None:
                msg = f"no loaded Gateway is named {dep.gateway_name!r}"
                if entries:
                    msg += f" (loaded: {', '.join(sorted(entries))})"
                problems.append(doc.problem(("spec", "dependencies", i, "gatewayName"), msg))
            elif dep.event_name not in names:
                msg = (
                    f"Gateway {dep.gateway_name!r} has no event {dep.event_name!r}"
                    f" (it has: {', '.join(sorted(names))})"
                )
                problems.append(doc.problem(("spec", "dependencies", i, "eventName"), msg))
    return problems
