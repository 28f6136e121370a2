"""Executing one firing of a trigger: its attempts under the retryStrategy.

The sensor runner decides *when* to fire (conditions, records, acks); this module is *how*:
build a trigger kind from its manifest block, and attempt a firing — temporary errors retried
with backoff, permanent ones not, a bug in a kind caught and reported like a failure so the
sensor lives on. Trigger-level `parameters` (Argo applies them to the template before the
trigger is built) give a trigger of their own per firing, validated again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic

from sensors import manifest as sensor_manifest
from triggers import base as triggers_base
from triggers import parameters as trigger_parameters
from tripwire import backoff, errors, manifests

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A trigger (or its dlqTrigger) as built from its manifest block."""

    spec: sensor_manifest.DlqTriggerBase
    impl: triggers_base.Trigger
    context: triggers_base.TriggerContext


async def build(
    stack: contextlib.AsyncExitStack,
    spec: sensor_manifest.DlqTriggerBase,
    *,
    context: triggers_base.TriggerContext,
) -> Target:
    """The trigger kind of `spec`, started on `stack`."""
    kind, kind_spec = spec.template.kind()
    impl = triggers_base.load(kind)(spec=kind_spec, context=context)
    await impl.start(stack)
    return Target(spec=spec, impl=impl, context=context)


def log_fields(firing: triggers_base.Firing) -> dict[str, Any]:
    """Log fields of a firing (built only when a line is actually logged)."""
    return {
        "sensor": firing.sensor,
        "trigger": firing.trigger,
        "trigger_key": firing.key,
        "event_ids": [e.id for e in firing.events.values()],
    }


async def attempts(
    target: Target,
    firing: triggers_base.Firing,
    *,
    sleep: Callable[[float], Awaitable[None]],
    retried: Any,
) -> BaseException | None:
    """Attempts per the target's retryStrategy: None on success, else the last error.

    `retried` is the metric child counting retries of this trigger.
    """
    retry = target.spec.retry_strategy
    waits = None  # made on the first failure: most firings succeed at once
    for attempt in range(1, retry.steps + 1):
        try:
            await fire_once(target, firing)
        except errors.TemporaryTriggerError as exc:
            if attempt == retry.steps:
                return exc
            if waits is None:
                waits = backoff.delays(
                    duration=retry.duration, factor=retry.factor, jitter=retry.jitter
                )
            delay = max(next(waits), exc.delay or 0.0)
            retried.inc()
            log.warning(
                "trigger attempt %d/%d failed, retrying in %.2fs: %s",
                attempt, retry.steps, delay, exc, extra=log_fields(firing),
            )  # fmt: skip
            await sleep(delay)
        except errors.TriggerError as exc:
            return exc
        except Exception as exc:
            # A bug in a trigger kind must not take the sensor down with it.
            log.exception("trigger raised unexpectedly", extra=log_fields(firing))
            return exc
        else:
            return None
    raise AssertionError("retryStrategy.steps is at least 1")


def fire_once(target: Target, firing: triggers_base.Firing) -> Awaitable[Any]:
    """One attempt, with the trigger-level parameters applied to the template if any.

    Not a coroutine itself: without parameters (the common case) the attempt is the trigger's
    own `fire`, awaited by the caller with no frame in between.
    """
    if not target.spec.parameters:
        return target.impl.fire(firing)
    return _fire_with_parameters(target, firing)


async def _fire_with_parameters(target: Target, firing: triggers_base.Firing) -> None:
    params = target.spec.parameters
    template = target.spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    edited = trigger_parameters.apply_to_template(params, firing.events, template)
    try:
        rebuilt = sensor_manifest.template_model().model_validate(edited)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{manifests.format_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise errors.PermanentTriggerError(
            f"trigger {firing.trigger}: parameters made the template invalid: {problems}"
        ) from None
    kind, kind_spec = rebuilt.kind()
    impl = triggers_base.load(kind)(spec=kind_spec, context=target.context)
    async with contextlib.AsyncExitStack() as stack:
        await impl.start(stack)
        await impl.fire(firing)
