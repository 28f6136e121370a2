"""The `Sensor` manifest model: dependencies, filters and triggers (Argo Events v1alpha1 shapes).

A trigger template has one optional block per registered trigger kind (`http`, `log`, `k8s`,
...); the model is built from `triggers.base.KINDS`, so a new kind needs no change here.
Cross-field rules (unique names, conditions that name real dependencies, exactly one kind per
trigger) are pydantic validators: validation is pure and runs before anything starts.
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any, Literal

import pydantic

# Aliased: the models have fields named `filters`, `conditions` and `parameters`, and pydantic
# resolves annotations in the class namespace, where a field would shadow its module.
from sensors import conditions as condition_exprs
from sensors import filters as event_filters
from sensors import transforms as event_transforms
from triggers import base as triggers_base
from triggers import parameters as trigger_parameters
from triggers import policies
from tripwire import manifests, schedules


class Dependency(manifests.Model):
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=253)
    gateway_name: str = pydantic.Field(
        validation_alias=pydantic.AliasChoices("gatewayName", "eventSourceName", "gateway_name")
    )
    event_name: str
    filters: event_filters.EventFilters | None = None
    filters_logical_operator: event_filters.LogicalOperator = "and"
    transform: event_transforms.Transform | None = None
    # Tripwire extension: an accepted event older than this (by its event time) no longer
    # satisfies the dependency, so a stale half of an AND cannot fire a trigger days later.
    max_age: manifests.Duration | None = None

    @pydantic.field_validator("max_age")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("maxAge must be longer than 0s")
        return value


class RetryStrategy(manifests.Model):
    """Argo's Backoff: `steps` attempts in all, waiting `duration * factor**n` (+ jitter)."""

    steps: int = pydantic.Field(default=1, ge=1, le=1000)
    duration: manifests.Duration = 1.0
    factor: float = pydantic.Field(default=1.0, ge=1.0)
    jitter: float = pydantic.Field(default=0.0, ge=0.0, le=1.0)


class ResetByTime(manifests.Model):
    """Argo `conditionsReset.byTime`: clear the trigger's partial state at these instants."""

    cron: str
    timezone: str = "UTC"

    @pydantic.field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        schedules.compile_cron(value)
        return value

    @pydantic.field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name)") from None
        return value

    def schedule(self) -> schedules.CronSchedule:
        return schedules.CronSchedule(expression=self.cron, zone=zoneinfo.ZoneInfo(self.timezone))


class ConditionsReset(manifests.Model):
    by_time: ResetByTime


class RateLimit(manifests.Model):
    """Argo `rateLimit`: at most `requestsPerUnit` firings in any window of one `unit`."""

    unit: Literal["Second", "Minute", "Hour"] = "Second"
    requests_per_unit: int = pydantic.Field(ge=1)

    @property
    def period(self) -> float:
        return {"Second": 1.0, "Minute": 60.0, "Hour": 3600.0}[self.unit]


class TriggerTemplateBase(manifests.Model):
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=253)
    conditions: str | None = None
    conditions_reset: list[ConditionsReset] = pydantic.Field(default_factory=list)

    def kind(self) -> tuple[str, Any]:
        """The one trigger kind this template sets, and its spec."""
        for kind in triggers_base.KINDS:
            spec = getattr(self, kind)
            if spec is not None:
                return kind, spec
        raise AssertionError("validated templates set exactly one kind")

    @pydantic.model_validator(mode="after")
    def _exactly_one_kind(self) -> TriggerTemplateBase:
        chosen = [k for k in triggers_base.KINDS if getattr(self, k) is not None]
        if len(chosen) != 1:
            kinds = ", ".join(triggers_base.KINDS)
            found = f" (found {', '.join(chosen)})" if chosen else ""
            raise ValueError(f"a trigger template sets exactly one of: {kinds}{found}")
        return self


@functools.cache
def template_model() -> type[TriggerTemplateBase]:
    fields: dict[str, Any] = {
        kind: (model | None, None) for kind, model in triggers_base.spec_models().items()
    }
    built: type[TriggerTemplateBase] = pydantic.create_model(
        "TriggerTemplate", __base__=TriggerTemplateBase, **fields
    )
    return built


class DlqTriggerBase(manifests.Model):
    """Argo `dlqTrigger`: fired with the same events when the trigger fails for good."""

    template: TriggerTemplateBase
    parameters: list[trigger_parameters.TriggerParameter] = pydantic.Field(default_factory=list)
    policy: policies.TriggerPolicy | None = None
    retry_strategy: RetryStrategy = pydantic.Field(default_factory=RetryStrategy)


class TriggerBase(DlqTriggerBase):
    rate_limit: RateLimit | None = None
    # Argo's switch between acking before and after the trigger; Tripwire always acks after
    # the outcome (at-least-once), so the field is accepted for portability and has no effect.
    at_least_once: bool = True
    dlq_trigger: DlqTriggerBase | None = None


@functools.cache
def trigger_model() -> type[TriggerBase]:
    dlq: Any = pydantic.create_model(
        "DlqTrigger", __base__=DlqTriggerBase, template=(template_model(), ...)
    )
    built: type[TriggerBase] = pydantic.create_model(
        "Trigger",
        __base__=TriggerBase,
        template=(template_model(), ...),
        dlq_trigger=(dlq | None, None),
    )
    return built


class SensorSpecBase(manifests.Model):
    dependencies: list[Dependency] = pydantic.Field(min_length=1)
    triggers: list[TriggerBase] = pydantic.Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _names_resolve(self) -> SensorSpecBase:
        problems: list[tuple[manifests.Location, str]] = []
        deps: dict[str, int] = {}
        for i, dep in enumerate(self.dependencies):
            if dep.name in deps:
                problems.append(
                    (
                        ("dependencies", i, "name"),
                        f"dependency name {dep.name!r} is already used by"
                        f" dependencies[{deps[dep.name]}]",
                    )
                )
            deps.setdefault(dep.name, i)
        triggers: dict[str, int] = {}
        for i, trigger in enumerate(self.triggers):
            name = trigger.template.name
            if name in triggers:
                problems.append(
                    (
                        ("triggers", i, "template", "name"),
                        f"trigger name {name!r} is already used by triggers[{triggers[name]}]",
                    )
                )
            triggers.setdefault(name, i)
        known = ", ".join(deps)
        for i, trigger in enumerate(self.triggers):
            try:
                condition_exprs.compile(trigger.template.conditions, names=list(deps))
            except ValueError as exc:
                problems.append((("triggers", i, "template", "conditions"), str(exc)))
            found = _parameters(trigger)
            if trigger.dlq_trigger is not None:
                found += [(("dlqTrigger", *loc), p) for loc, p in _parameters(trigger.dlq_trigger)]
            for loc, param in found:
                if param.src.dependency_name not in deps:
                    problems.append(
                        (
                            ("triggers", i, *loc, "src", "dependencyName"),
                            f"unknown dependency {param.src.dependency_name!r} (known: {known})",
                        )
                    )
        if problems:
            raise manifests.FieldError(problems)
        return self


def _parameters(
    trigger: DlqTriggerBase,
) -> list[tuple[manifests.Location, trigger_parameters.TriggerParameter]]:
    """Every parameter of a trigger, with its location below the trigger: its own, and those
    anywhere in its kind's spec (an http `payload`, a k8s `parameters`)."""
    found: list[tuple[manifests.Location, trigger_parameters.TriggerParameter]] = [
        (("parameters", i), p) for i, p in enumerate(trigger.parameters)
    ]

    def walk(value: Any, loc: manifests.Location) -> None:
        if isinstance(value, trigger_parameters.TriggerParameter):
            found.append((loc, value))
        elif isinstance(value, pydantic.BaseModel):
            for name, field in type(value).model_fields.items():
                walk(getattr(value, name), (*loc, field.alias or name))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, (*loc, i))

    kind, spec = trigger.template.kind()
    walk(spec, ("template", kind))
    return found


@functools.cache
def spec_model() -> type[SensorSpecBase]:
    triggers_type: Any = list[trigger_model()]  # type: ignore[misc]
    fields: dict[str, Any] = {"triggers": (triggers_type, pydantic.Field(min_length=1))}
    built: type[SensorSpecBase] = pydantic.create_model(
        "SensorSpec", __base__=SensorSpecBase, **fields
    )
    return built


class SensorBase(manifests.Model):
    api_version: Literal["tripwire.dev/v1alpha1"]
    kind: Literal["Sensor"]
    metadata: manifests.ObjectMeta
    spec: SensorSpecBase
    status: dict[str, Any] | None = None


@functools.cache
def model() -> type[SensorBase]:
    built: type[SensorBase] = pydantic.create_model(
        "Sensor", __base__=SensorBase, spec=(spec_model(), pydantic.Field())
    )
    return built
