"""Filter cost per event: Tripwire's compiled filters beside the same checks written by hand.

Issue 6 sets a budget of 30 µs per event for a dependency with 10 data filters and 1 expression
on a ~6 KB GitHub push webhook. Every filter passes, so every one is evaluated (the worst case:
`and` stops at the first failure). The hand-written function does the same checks with dict
lookups, precompiled regexes and comparisons: the floor a user's own Python would reach.

    .venv/bin/python bench/filters.py [--number 20000] [--repeat 5]

Prints best and median µs/event of `repeat` timeit runs for both, and their ratio.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

import orjson

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sensors import filters  # noqa: E402 - after the path set-up, to run from a checkout
from tripwire import events  # noqa: E402

PAYLOAD = pathlib.Path(__file__).with_name("data") / "github_push.json"

FILTERS: dict[str, Any] = {
    "data": [
        {"path": "body.ref", "type": "string", "value": ["^refs/heads/main$"]},
        {"path": "header.X-Github-Event.0", "type": "string", "value": ["^push$"]},
        {"path": "body.repository.full_name", "type": "string", "value": ["^acme-ml/"]},
        {"path": "body.head_commit.message", "type": "string", "value": ["^(ci|data|model):"]},
        {
            "path": 'body.commits.#(author.username=="dana-ito").id',
            "type": "string",
            "value": ["^[0-9a-f]{40}$"],
        },
        {"path": "body.deleted", "type": "bool", "value": ["false"]},
        {"path": "body.forced", "type": "bool", "value": ["false"]},
        {"path": "body.repository.private", "type": "bool", "value": ["true"]},
        {"path": "body.commits.#", "type": "number", "value": ["0"], "comparator": ">"},
        {"path": "body.repository.size", "type": "number", "value": ["100000"], "comparator": "<"},
    ],
    "exprs": [
        {
            "expr": "repo =~ '^acme-ml/' && commits <= 20 && sender != 'dependabot[bot]'",
            "fields": [
                {"name": "repo", "path": "body.repository.full_name"},
                {"name": "commits", "path": "body.commits.#"},
                {"name": "sender", "path": "body.sender.login"},
            ],
        }
    ],
}

_REF = re.compile("^refs/heads/main$")
_EVENT = re.compile("^push$")
_ORG = re.compile("^acme-ml/")
_MESSAGE = re.compile("^(ci|data|model):")
_SHA = re.compile("^[0-9a-f]{40}$")


def hand_written(data: dict[str, Any]) -> bool:
    """The same eleven checks, as someone would write them for this one payload shape."""
    body = data["body"]
    repo = body["repository"]
    commits = body["commits"]
    if not _REF.search(body["ref"]):
        return False
    if not _EVENT.search(data["header"]["X-Github-Event"][0]):
        return False
    if not _ORG.search(repo["full_name"]):
        return False
    if not _MESSAGE.search(body["head_commit"]["message"]):
        return False
    mine = next((c for c in commits if c["author"]["username"] == "dana-ito"), None)
    if mine is None or not _SHA.search(mine["id"]):
        return False
    if body["deleted"] is not False or body["forced"] is not False:
        return False
    if repo["private"] is not True:
        return False
    if not len(commits) > 0 or not float(repo["size"]) < 100000:
        return False
    return bool(
        _ORG.search(repo["full_name"])
        and len(commits) <= 20
        and body["sender"]["login"] != "dependabot[bot]"
    )


def measure(run: Callable[[], object], *, number: int, repeat: int) -> tuple[float, float]:
    """Best and median µs per call over `repeat` runs of `number` calls."""
    runs = timeit.repeat(run, number=number, repeat=repeat)
    per_call = [seconds / number * 1e6 for seconds in runs]
    return min(per_call), statistics.median(per_call)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--number", type=int, default=20000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs")
    args = parser.parse_args(argv)

    raw = PAYLOAD.read_bytes()
    data = orjson.loads(raw)
    event = events.Event(id="1", source="ci", subject="push", type="webhook", data=data)
    spec = filters.EventFilters.model_validate(FILTERS)
    compiled = filters.compile_filters(spec)

    rejection = compiled.check(event)
    if rejection is not None or not hand_written(data):
        print(f"setup error: the filters must all pass ({rejection})", file=sys.stderr)
        return 1
    check = compiled.check
    ours = measure(lambda: check(event), number=args.number, repeat=args.repeat)
    hand = measure(lambda: hand_written(data), number=args.number, repeat=args.repeat)

    size = len(orjson.dumps(data))
    print(f"payload: {PAYLOAD.name}, {size} bytes compact JSON")
    print(f"filters: {len(spec.data)} data + {len(spec.exprs)} expression, all passing")
    print(f"{'':16}{'best µs/event':>15}{'median µs/event':>17}")
    print(f"{'tripwire':16}{ours[0]:>15.2f}{ours[1]:>17.2f}")
    print(f"{'hand-written':16}{hand[0]:>15.2f}{hand[1]:>17.2f}")
    print(f"ratio (median):  {ours[1] / hand[1]:.1f}x   target: <= 30 µs/event -> ", end="")
    print("ok" if ours[1] <= 30 else "ABOVE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
