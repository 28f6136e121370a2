"""The status subresource the controller writes: conditions, times, and only-when-changed."""

from __future__ import annotations

from typing import Any

from tripwire.app.controller import reconciling, status

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def gateway(**observed: Any) -> status.Observed:
    return status.Observed(
        ready=observed.pop("ready", True),
        entries=observed.pop("entries", {"push": status.EntryState(kind="webhook", ready=True)}),
        **observed,
    )


def test_running_gateway_is_ready_with_entries_and_last_event_time() -> None:
    built = status.build(
        kind="Gateway",
        generation=3,
        observed=gateway(last_event=T0 + 1.7),
        problems=[],
        previous=None,
        now=T0 + 2,
    )
    assert built == {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Running",
                "message": "1 entry ready",
                "lastTransitionTime": "2027-01-15T08:00:02Z",
                "observedGeneration": 3,
            }
        ],
        "entries": {"push": {"kind": "webhook", "ready": True}},
        "lastEventTime": "2027-01-15T08:00:01Z",
    }


def test_entry_not_ready_names_the_entry_and_its_error() -> None:
    observed = gateway(
        ready=False,
        entries={
            "push": status.EntryState(kind="webhook", ready=False, error="port 80 in use"),
            "ok": status.EntryState(kind="webhook", ready=True),
        },
    )
    built = status.build(
        kind="Gateway", generation=1, observed=observed, problems=[], previous=None, now=T0
    )
    cond = built["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "NotReady")
    assert "push (webhook): port 80 in use" in cond["message"]
    assert built["entries"]["push"] == {
        "kind": "webhook",
        "ready": False,
        "message": "port 80 in use",
    }


def test_invalid_spec_says_which_fields() -> None:
    built = status.build(
        kind="Sensor",
        generation=2,
        observed=None,
        problems=["spec.dependencies: expected a list, got 'x'"],
        previous=None,
        now=T0,
    )
    cond = built["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert "spec.dependencies" in cond["message"]
    assert built["observedGeneration"] == 2


def test_start_failure_and_pending() -> None:
    failed = status.Observed(ready=False, error="TriggerError: no kind Workflow")
    for observed, reason in ((failed, "StartFailed"), (None, "Pending")):
        built = status.build(
            kind="Sensor", generation=1, observed=observed, problems=[], previous=None, now=T0
        )
        assert built["conditions"][0]["reason"] == reason


def test_transition_time_moves_only_when_ready_flips() -> None:
    first = status.build(
        kind="Sensor",
        generation=1,
        observed=status.Observed(ready=True, last_fired=None),
        problems=[],
        previous=None,
        now=T0,
    )
    later = status.build(
        kind="Sensor",
        generation=1,
        observed=status.Observed(ready=True, last_fired=T0 + 50),
        problems=[],
        previous=first,
        now=T0 + 60,
    )
    assert later["conditions"][0]["lastTransitionTime"] == "2027-01-15T08:00:00Z"
    assert later["lastFiredTime"] == "2027-01-15T08:00:50Z"
    flipped = status.build(
        kind="Sensor",
        generation=1,
        observed=status.Observed(ready=False),
        problems=[],
        previous=later,
        now=T0 + 70,
    )
    assert flipped["conditions"][0]["lastTransitionTime"] == "2027-01-15T08:01:10Z"
    # A restarted runtime has no firing yet: the stored time stays.
    assert flipped["lastFiredTime"] == "2027-01-15T08:00:50Z"


def test_unchanged_status_is_an_empty_patch_and_changes_are_minimal() -> None:
    def build(last_event: float) -> dict[str, Any]:
        return status.build(
            kind="Gateway",
            generation=1,
            observed=gateway(last_event=last_event),
            problems=[],
            previous=None,
            now=T0,
        )

    current = build(T0 + 1.2)
    # Events within the same second do not change the status: no write per event.
    assert status.merge_patch(current, build(T0 + 1.9)) == {}
    assert status.merge_patch(current, build(T0 + 2.1)) == {"lastEventTime": "2027-01-15T08:00:02Z"}
    gone = {**current, "entries": {}}
    assert status.merge_patch(current, gone) == {"entries": {"push": None}}
    assert status.merge_patch({"stale": 1}, {}) == {"stale": None}


def test_validation_of_a_custom_resource_names_field_paths_and_ignores_server_metadata() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "tripwire.dev/v1alpha1",
        "kind": "Sensor",
        "metadata": {
            "name": "s",
            "namespace": "ns",
            "uid": "u",
            "generation": 1,
            "ownerReferences": [{"kind": "X"}],
            "deletionGracePeriodSeconds": 0,
        },
        "spec": {
            "dependencies": [{"name": "d", "gatewayName": "nowhere", "eventName": "e"}],
            "triggers": [{"template": {"name": "t", "log": {}}}],
        },
        "status": {"conditions": []},
    }
    model, problems = reconciling.validate("Sensor", obj)
    # A dependency on a Gateway that does not exist (yet) is fine: it may come later.
    assert problems == [] and model is not None
    obj["spec"]["triggers"] = [{"template": {"name": "t", "log": {}, "http": {}}}]
    obj["spec"]["dependencies"][0]["bogus"] = 1
    model, problems = reconciling.validate("Sensor", obj)
    assert model is None
    assert any(p.startswith("spec.dependencies[0].bogus: unknown field") for p in problems)
    assert any(p.startswith("spec.triggers[0]") for p in problems), problems
