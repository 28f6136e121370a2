"""Turn a py-spy `--format raw` profile into the few numbers that decide what to optimize.

A flame graph is for exploring; a benchmark report needs a table: which share of the busy
samples goes to the journal commit, logging, aiohttp's server and client, the sensor path, the
event loop. Each sample is charged to the component of its innermost recognizable frame
(scanning from the leaf), so components add up to 100 %; separately, the inclusive share of
a few key functions shows what each stage costs with everything it calls. py-spy omits idle
samples (a thread waiting in epoll or on a lock) unless run with `--idle`; it does count the
event loop in `select` and the journal thread waiting for work, which are set apart here. A
busy sample is a thread on the CPU or inside a system call (e.g. a socket write).

    python bench/profile_summary.py /tmp/tripwire-bench-*/profile/py-spy.txt
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
from typing import Any

# (component, substrings of a frame); the first match scanning from the leaf wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sqlite commit (journal thread)", ("commit (tripwire/bus/embedded/journal.py", "sqlite3")),
    ("logging", ("logging/", "(tripwire/app/cli.py")),
    ("metrics", ("prometheus_client",)),
    ("pydantic", ("pydantic",)),
    ("orjson", ("orjson",)),
    ("json paths + parameters", ("tripwire/lang/paths.py", "triggers/parameters.py")),
    ("sensor filters/conditions", ("sensors/filters.py", "sensors/conditions.py")),
    ("aiohttp client (trigger request)", ("aiohttp/client", "aiohttp/connector", "multidict")),
    (
        "aiohttp server (parse, respond)",
        ("aiohttp/web", "aiohttp/http_", "aiohttp/streams", "aiohttp/base_protocol"),
    ),
    ("aiohttp other", ("aiohttp/",)),
    ("http trigger", ("triggers/",)),
    ("webhook gateway", ("gateways/",)),
    ("sensor runtime", ("sensors/running.py",)),
    ("bus (publish, route, ack)", ("tripwire/bus/",)),
    ("events (serialize, ids)", ("tripwire/events.py", "uuid.py", "hashlib")),
    (
        "socket syscalls (send/recv, self-pipe)",
        ("Transport.write (", "_read_ready__", "_write_to_self", "_read_from_self"),
    ),
    ("asyncio event loop", ("asyncio/", "selectors.py", "socket.py")),
    ("concurrent.futures / threading", ("concurrent/", "threading.py", "queue.py")),
)

# (label, substring of a frame): inclusive share, i.e. the stage and everything under it.
KEY_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("webhook handler (WebhookSource._handle)", "_handle (gateways/webhook.py"),
    ("bus publish (EmbeddedBus.publish)", "publish (tripwire/bus/embedded/bus.py"),
    ("journal writer loop side (_write_loop)", "_write_loop (tripwire/bus/embedded/bus.py"),
    ("journal commit (Journal.commit)", "commit (tripwire/bus/embedded/journal.py"),
    ("sensor decision (SensorRunner._handle)", "_handle (sensors/running.py"),
    ("sensor settle: record write + ack", "_settle (sensors/running.py"),
    ("sensor ack + record delete (_ack_after)", "_ack_after (sensors/running.py"),
    ("trigger firing (SensorRunner._execute)", "_execute (sensors/running.py"),
    ("http trigger apply_parameters", "apply_parameters (triggers/http.py"),
    ("http trigger execute (client request)", "execute (triggers/http.py"),
    ("logging (any)", "logging/__init__.py"),
    ("event to_bytes / to_dict", "to_dict (tripwire/events.py"),
    ("metrics (prometheus_client)", "prometheus_client"),
    ("aiohttp server protocol (web_protocol)", "aiohttp/web_protocol.py"),
)

# Leaf frames of a thread that waits: the event loop in epoll, the journal thread on its queue.
# py-spy's own idle detection misses these two, so they are set apart here.
IDLE_LEAVES = ("EpollSelector.select (selectors.py", "_worker (concurrent/futures/thread.py")

_LINE = re.compile(r"^(.*) (\d+)$")
_LINENO = re.compile(r":\d+\)$")


def _function(frame: str) -> str:
    return _LINENO.sub(")", frame.strip())


def summarize(path: pathlib.Path) -> dict[str, Any]:
    """Component shares, key functions' inclusive shares, top self frames, per-thread shares."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return {"error": f"no profile: {exc}"}
    total = busy = idle = 0
    components: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            continue
        frames, count = match.group(1).split(";"), int(match.group(2))
        total += count
        if frames and frames[0].startswith(("thread ", "process ")):
            thread, frames = frames[0], frames[1:]
        else:
            thread = "all"
        # With --native, C frames follow the Python frame that called them: judge idleness
        # by the innermost Python frame.
        py_leaf = next((f for f in reversed(frames) if ".py:" in f), "")
        if py_leaf.startswith(IDLE_LEAVES):
            idle += count
            continue
        busy += count
        threads[thread] += count
        stack = ";".join(frames)
        for label, needle in KEY_FUNCTIONS:
            if needle in stack:
                inclusive[label] += count
        if frames:
            leaves[_function(frames[-1])] += count
        component = "other"
        for frame in reversed(frames):
            component = next(
                (c for c, needles in COMPONENTS if any(n in frame for n in needles)), ""
            )
            if component:
                break
        components[component or "other"] += count
    if not busy:
        return {"error": "empty profile", "samples": total}

    def pct(counter: collections.Counter[str], top: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / busy, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "busy": busy,
        "idle": idle,
        "threads": pct(threads, 8),
        "components": pct(components, 30),
        "inclusive": [
            (label, round(100 * inclusive[label] / busy, 1)) for label, _ in KEY_FUNCTIONS
        ],
        "top_self": pct(leaves, 25),
    }


def render(summary: dict[str, Any], *, indent: str = "") -> str:
    if "error" in summary:
        return f"{indent}{summary['error']}"
    out = [
        f"{indent}{summary['busy']} busy samples of {summary['samples']}"
        f" ({summary['idle']} idle: loop in epoll, journal thread waiting); shares of busy"
    ]
    sections = (
        ("per thread", "threads"),
        ("by component (innermost frame)", "components"),
        ("inclusive", "inclusive"),
        ("top self frames", "top_self"),
    )
    for title, key in sections:
        if summary.get(key):
            out.append(f"{indent}{title}:")
            out += [f"{indent}  {share:5.1f}%  {name}" for name, share in summary[key]]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=pathlib.Path, help="py-spy record --format raw output")
    print(render(summarize(parser.parse_args().raw)))


if __name__ == "__main__":
    main()
