"""Webhook → Tripwire → HTTP trigger, end to end, against a naive baseline on the same machine.

Why: DESIGN.md promises "thousands of events per second instead of tens" with at-least-once
delivery and exactly-once effects. This measures what that costs over the least a hand-written
relay could do (`naive_baseline.py`), with every process real and separate:

    loadgen.py ──POST──▶ tripwire run (gateway → embedded bus → sensor → http trigger) ──▶ sink.py
    loadgen.py ──POST──▶ naive_baseline.py (handler → queue → workers) ─────────────────▶ sink.py

Phases (all by default): closed-loop throughput for Tripwire durable, ephemeral and the
baseline (plus durable with `--log-level warning` as a side figure); open-loop latency at a
fixed rate for Tripwire durable, ephemeral and the baseline. `--profile` adds a py-spy
profile of Tripwire under the throughput load. Every phase starts its targets afresh, warms
them up, and waits for readiness by polling, never by sleeping. The sink is the judge of
delivered, duplicated and lost events.

Rounds: this machine's speed drifts by tens of percent over minutes (a shared VM), so one
pass of phases in a row can put Tripwire and the baseline in different weather. Every phase
runs `--rounds` times (3), the order rotated each round; a ratio is taken within a round and
the reported figure is the median over rounds, with every round's value beside it.

    .venv/bin/python bench/webhook_to_http.py            # ~5 minutes
    .venv/bin/python bench/webhook_to_http.py --quick    # ~20 s smoke run (one round)

The last line of output is `BENCH_JSON {...}` with every figure. The exit code is 0 when
the run completed and no event was lost; the targets are reported, not enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import profile_summary

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_SEQ = 1_000_000_000  # warm-up seqs live apart from measured ones
PHASES = (
    "durable",
    "ephemeral",
    "baseline",
    "durable-warning",
    "latency-durable",
    "latency-ephemeral",
    "latency-baseline",
)
OPTIONAL_PHASES = ("profile", "profile-ephemeral", "profile-latency")
# Targets the project has set for this 2-core machine (reported, not enforced).
TARGETS = {
    "durable_ratio": 0.5,
    "ephemeral_ratio": 0.9,
    "latency_p50_ms": 1.0,
    "latency_p99_ms": 5.0,
}


class BenchError(Exception):
    """A target did not start, died, or the run could not complete."""


# --- processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Children get SIGTERM if the orchestrator dies without cleaning up (Linux prctl).

    Also restores SIGINT: a shell starts background jobs with SIGINT ignored, children inherit
    that, and a Python child then never installs its KeyboardInterrupt handler, so the
    graceful stop (SIGINT) would fall through to SIGKILL after the timeout.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: pathlib.Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Procs:
    """Every child process; `close` stops whichever are still running."""

    def __init__(self, workdir: pathlib.Path) -> None:
        self.workdir = workdir
        self.running: list[Proc] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, **(env or {})},
                # Own session: a Ctrl-C reaches only the orchestrator, which then stops the
                # children in order (and they die with it anyway, see _die_with_parent).
                start_new_session=True,
                preexec_fn=_die_with_parent,  # no threads here: safe
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, *, timeout: float = 15.0) -> float:
        """SIGINT (graceful: Tripwire drains), then SIGKILL; returns seconds to exit."""
        began = time.perf_counter()
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGINT)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        if proc in self.running:
            self.running.remove(proc)
        return time.perf_counter() - began

    def close(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc, timeout=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, *, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
        body: bytes = response.read()
        return body


def wait_ready(url: str, proc: Proc, *, timeout: float = 30.0) -> float:
    """Poll `url` until it answers 200; fail early if the process exits. Returns seconds."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if proc.popen.poll() is not None:
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        with contextlib.suppress(OSError):
            http_get(url, timeout=1.0)
            return time.perf_counter() - began
        time.sleep(0.01)  # poll interval, not a readiness guess
    raise BenchError(f"{proc.name} not ready at {url} after {timeout:g} s:\n{proc.tail()}")


def cpu_seconds(pid: int) -> dict[str, float]:
    """utime+stime of the process and of its main thread, from /proc (0 when gone)."""

    def read(path: str) -> float:
        try:
            with open(path, encoding="ascii") as f:  # noqa: PTH123
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    return {"total": read(f"/proc/{pid}/stat"), "main": read(f"/proc/{pid}/task/{pid}/stat")}


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:  # noqa: PTH123
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    # guest time is already part of user; do not count it twice
    busy = sum(fields[:8]) - idle - steal
    return busy / CLK_TCK, steal / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:  # noqa: PTH123
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- the sink ----------------------------------------------------------------------------


class SinkClient:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.deliver_url = f"{self.base}/deliver"

    def get(self, path: str) -> Any:
        return orjson.loads(http_get(self.base + path, timeout=30.0))

    def reset(self) -> None:
        self.get("/reset")

    def drain(self, expected: int, timeout: float) -> float:
        """Wait until `expected` unique events arrived or `timeout` passed; seconds waited."""
        began = time.perf_counter()
        while time.perf_counter() - began < timeout:
            if self.get("/stats")["delivered"] >= expected:
                break
            time.sleep(0.02)
        return time.perf_counter() - began


# --- manifests ---------------------------------------------------------------------------


def write_manifests(directory: pathlib.Path, *, port: int, sink_url: str, filtered: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data_filter = (
        "      filters:\n        data:\n"
        '          - {path: body.kind, type: string, value: ["^bench$"]}\n'
        if filtered
        else ""
    )
    (directory / "bench.yaml").write_text(
        f"""\
apiVersion: tripwire.dev/v1alpha1
kind: Gateway
metadata: {{name: bench}}
spec:
  webhook:
    hook: {{port: {port}, endpoint: /hook, method: POST, host: 127.0.0.1}}
---
apiVersion: tripwire.dev/v1alpha1
kind: Sensor
metadata: {{name: bench}}
spec:
  dependencies:
    - name: d
      gatewayName: bench
      eventName: hook
{data_filter}  triggers:
    - template:
        name: sink
        http:
          url: {sink_url}
          method: POST
          payload:
            - {{src: {{dependencyName: d, dataKey: body.seq}}, dest: seq}}
            - {{src: {{dependencyName: d, dataKey: body.sent}}, dest: sent}}
"""
    )


# --- phases ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    target: str  # "tripwire" | "baseline"
    ephemeral: bool = False
    log_level: str = "info"
    rate: float = 0.0  # 0: closed loop
    profiled: bool = False
    round_no: int = 1

    @property
    def tag(self) -> str:
        """Names this run's files: the phase and its round."""
        return f"{self.name}-{self.round_no}"


def phase_plan(name: str, log_level: str) -> Phase:
    plans = {
        "durable": Phase(name, "tripwire", log_level=log_level),
        "ephemeral": Phase(name, "tripwire", ephemeral=True, log_level=log_level),
        "baseline": Phase(name, "baseline"),
        "durable-warning": Phase(name, "tripwire", log_level="warning"),
        "latency-durable": Phase(name, "tripwire", log_level=log_level, rate=-1),
        "latency-ephemeral": Phase(name, "tripwire", ephemeral=True, log_level=log_level, rate=-1),
        "latency-baseline": Phase(name, "baseline", rate=-1),
        "profile": Phase(name, "tripwire", log_level=log_level, profiled=True),
        "profile-ephemeral": Phase(
            name, "tripwire", ephemeral=True, log_level=log_level, profiled=True
        ),
        "profile-latency": Phase(name, "tripwire", log_level=log_level, rate=-1, profiled=True),
    }
    return plans[name]


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: pathlib.Path, procs: Procs) -> None:
        self.args = args
        self.workdir = workdir
        self.procs = procs
        self.python = sys.executable
        self.sink_proc: Proc | None = None
        self.sink: SinkClient | None = None

    def start_sink(self) -> None:
        port = free_port()
        self.sink_proc = self.procs.spawn(
            "sink", [self.python, str(HERE / "sink.py"), "--port", str(port)]
        )
        wait_ready(f"http://127.0.0.1:{port}/healthz", self.sink_proc)
        self.sink = SinkClient(port)

    @contextlib.contextmanager
    def target(self, phase: Phase) -> Iterator[tuple[Proc, str]]:
        assert self.sink is not None
        port = free_port()
        workdir = self.workdir / phase.tag
        workdir.mkdir()
        env: dict[str, str] = {}
        if phase.target == "baseline":
            argv = [self.python, str(HERE / "naive_baseline.py"), "--port", str(port)]
            argv += ["--sink", self.sink.deliver_url, "--workers", str(self.args.baseline_workers)]
        else:
            write_manifests(
                workdir / "manifests",
                port=port,
                sink_url=self.sink.deliver_url,
                filtered=not self.args.no_filter,
            )
            argv = [self.python, "-m", "tripwire.app.cli", "run", str(workdir / "manifests")]
            argv += ["--ephemeral"] if phase.ephemeral else ["--state-dir", str(workdir / "state")]
            argv += ["--metrics-port", "0", "--log-level", phase.log_level, "--grace", "5"]
        proc = self.procs.spawn(f"{phase.tag}-{phase.target}", argv, env)
        try:
            wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
            yield proc, f"http://127.0.0.1:{port}/hook"
        finally:
            self.procs.stop(proc)

    def load(self, url: str, *, n: int = 0, rate: float = 0.0, first_seq: int = 0) -> Any:
        argv = [self.python, str(HERE / "loadgen.py"), "--url", url]
        argv += ["--concurrency", str(self.args.concurrency), "--first-seq", str(first_seq)]
        argv += ["--pad-bytes", str(self.args.pad_bytes), "--client", self.args.loadgen_client]
        if rate:
            argv += ["--rate", str(rate), "--duration", str(n / rate)]
        else:
            argv += ["--n", str(n)]
        done = subprocess.run(argv, capture_output=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise BenchError(f"loadgen failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        return orjson.loads(done.stdout.splitlines()[-1])

    def run_phase(self, phase: Phase, round_no: int) -> dict[str, Any]:
        phase = dataclasses.replace(phase, round_no=round_no)
        assert self.sink is not None and self.sink_proc is not None
        args = self.args
        rate = args.rate if phase.rate else 0.0
        n = round(rate * args.duration) if rate else args.n
        print(f"  {phase.name + ' #' + str(round_no):<20} ", end="", flush=True)
        with self.target(phase) as (proc, url):
            warm = self.load(url, n=args.warmup, first_seq=WARMUP_SEQ)
            self.sink.drain(warm["ok"], args.drain_timeout)
            self.sink.reset()
            cpu_target0, cpu_sink0 = cpu_seconds(proc.pid), cpu_seconds(self.sink_proc.pid)
            machine0 = machine_cpu()
            spy = self._start_spy(proc, phase) if phase.profiled else None
            sent = self.load(url, n=n, rate=rate)
            drained = self.sink.drain(sent["ok"], args.drain_timeout)
            # The active window: load generation (its own clock, without its interpreter's
            # start-up, when the targets idle) plus the drain.
            wall = sent["wall_s"] + drained
            cpu_target1, cpu_sink1 = cpu_seconds(proc.pid), cpu_seconds(self.sink_proc.pid)
            machine1 = machine_cpu()
            if spy is not None:
                self.procs.stop(spy, timeout=30.0)
            report = self.sink.get("/report?records=1")
            rss = peak_rss_mb(proc.pid)
        records: list[list[int]] = report.pop("records", [])
        delivered_seqs = {r[0] for r in records}
        lost = [s for s in sent["ok_seqs"] if s not in delivered_seqs]
        target_cpu = cpu_target1["total"] - cpu_target0["total"]
        sink_cpu = cpu_sink1["total"] - cpu_sink0["total"]
        # Everything else on the machine in that window (other users' builds and tests, py-spy):
        # the noise indicator. The loadgen's CPU includes its start-up, outside the window.
        ours = target_cpu + sink_cpu + sent["cpu_s"]
        machine_busy = machine1[0] - machine0[0]
        result: dict[str, Any] = {
            "phase": phase.name,
            "round": round_no,
            "target": phase.target,
            "mode": f"open {rate:g}/s" if rate else f"closed C={args.concurrency}",
            "sent": sent["sent"],
            "ok": sent["ok"],
            "errors": sent["errors"],
            "lost": len(lost),
            "lost_sample": lost[:10],
            "drain_s": drained,
            "wall_s": wall,
            "loadgen_ok_per_s": sent["ok_per_s"],
            "ack_p50_ms": sent["ack_p50_ms"],
            "ack_p99_ms": sent["ack_p99_ms"],
            "worst_send_lag_ms": sent["worst_send_lag_ms"],
            "peak_rss_mb": rss,
            "cpu": {
                "target_s": target_cpu,
                "target_main_thread_s": cpu_target1["main"] - cpu_target0["main"],
                "sink_s": sink_cpu,
                "loadgen_s": sent["cpu_s"],
                "other_s": max(0.0, machine_busy - ours),
                "steal_s": machine1[1] - machine0[1],
                "wall_s": wall,
            },
            **{k: v for k, v in report.items() if k not in ("first_ns", "last_ns", "cpu_s")},
        }
        if report.get("delivered"):
            result["target_cpu_us_per_event"] = target_cpu / report["delivered"] * 1e6
        if spy is not None:
            result["profile"] = profile_summary.summarize(spy_output(self.workdir, phase))
        print(summary_line(result), flush=True)
        return result

    def _start_spy(self, proc: Proc, phase: Phase) -> Proc:
        spy_bin = shutil.which("py-spy", path=str(pathlib.Path(self.python).parent))
        if spy_bin is None:
            raise BenchError("py-spy not found next to the interpreter: pip install py-spy")
        argv = [spy_bin, "record", "--pid", str(proc.pid), "--format", "raw", "--threads"]
        argv += [
            "--rate",
            str(self.args.spy_rate),
            "--output",
            str(spy_output(self.workdir, phase)),
        ]
        if self.args.native:
            argv.append("--native")
        spy = self.procs.spawn(f"{phase.tag}-py-spy", argv)
        # py-spy attaches within a few ms; wait until it says so rather than guessing.
        deadline = time.perf_counter() + 10.0
        while "Sampling process" not in spy.tail(5) and time.perf_counter() < deadline:
            if spy.popen.poll() is not None:
                raise BenchError(f"py-spy exited: {spy.tail()}")
            time.sleep(0.01)
        return spy


def spy_output(workdir: pathlib.Path, phase: Phase) -> pathlib.Path:
    return workdir / phase.tag / "py-spy.txt"


def summary_line(r: dict[str, Any]) -> str:
    cpu = r["cpu"]
    wall = cpu["wall_s"] or 1.0
    return (
        f"{r.get('throughput', 0):8.0f} ev/s  p50 {r.get('p50_ms', 0):7.2f} ms"
        f"  p99 {r.get('p99_ms', 0):7.2f} ms  lost {r['lost']}  errors {sum(r['errors'].values())}"
        f"  cpu% target {100 * cpu['target_s'] / wall:.0f} sink {100 * cpu['sink_s'] / wall:.0f}"
        f" loadgen {100 * cpu['loadgen_s'] / wall:.0f} other {100 * cpu['other_s'] / wall:.0f}"
    )


# --- reporting ---------------------------------------------------------------------------


Results = dict[str, list[dict[str, Any]]]  # phase -> one result per round


def print_report(results: Results, figures: dict[str, Any]) -> None:
    print()
    header = (
        f"{'phase':<20} {'mode':<14} {'ok/sent':>13} {'lost':>5} {'dup':>4} {'ev/s':>7}"
        f" {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'ack p99':>7} {'RSS MB':>7}"
        f" {'cpu% tw/bl':>10} {'sink':>5} {'load':>5} {'other':>5} {'us/ev':>6}"
    )
    print(header)
    print("-" * len(header))
    for rounds in results.values():
        for r in rounds:
            cpu = r["cpu"]
            wall = cpu["wall_s"] or 1.0
            dup = r.get("duplicates", 0) + r.get("duplicate_seqs", 0)
            label = f"{r['phase']} #{r['round']}"
            print(
                f"{label:<20} {r['mode']:<14} {r['ok']:>6}/{r['sent']:<6} {r['lost']:>5}"
                f" {dup:>4} {r.get('throughput', 0):>7.0f} {r.get('p50_ms', 0):>7.2f}"
                f" {r.get('p99_ms', 0):>7.2f} {r.get('max_ms', 0):>7.1f} {r['ack_p99_ms']:>7.2f}"
                f" {r['peak_rss_mb']:>7.1f} {100 * cpu['target_s'] / wall:>10.0f}"
                f" {100 * cpu['sink_s'] / wall:>5.0f} {100 * cpu['loadgen_s'] / wall:>5.0f}"
                f" {100 * cpu['other_s'] / wall:>5.0f} {r.get('target_cpu_us_per_event', 0):>6.0f}"
            )
    print(
        "  ev/s: sink receipts/s first→last; p50/p99/max: sink receipt - loadgen stamp;"
        " ack: loadgen-side 200 round trip;\n  cpu%: of one core over load+drain"
        " (2 cores = 200%); other: the rest of the machine (noise);\n"
        "  us/ev: target CPU per delivered event. #N: the round."
    )
    if figures.get("ratios"):
        print("\n  medians over rounds (each ratio within one round; rounds in brackets):")
        for name, value in figures["ratios"].items():
            goal = TARGETS.get(name)
            verdict = "" if goal is None else ("  ok" if value >= goal else f"  BELOW {goal}")
            each = ", ".join(f"{v:.2f}" for v in figures["ratio_rounds"][name])
            print(f"  {name:<28} {value:6.2f}{verdict}  [{each}]")
    if figures.get("cpu_ratios"):
        print("  by CPU per event (baseline us/ev over Tripwire's; steadier on a noisy host):")
        for name, value in figures["cpu_ratios"].items():
            each = ", ".join(f"{v:.2f}" for v in figures["cpu_ratio_rounds"][name])
            print(f"  {name:<28} {value:6.2f}  [{each}]")
    for phase, verdicts in figures.get("latency_targets", {}).items():
        print(f"  {phase:<28} " + ", ".join(verdicts))
    for rounds in results.values():
        for r in rounds:
            if "profile" in r:
                print(f"\n  profile ({r['phase']} #{r['round']}):")
                print(profile_summary.render(r["profile"], indent="    "))


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _round_ratios(results: Results, top: str, bottom: str) -> list[float]:
    """`top` over `bottom` throughput, per round in which both ran (same machine state)."""
    ratios = []
    for a, b in zip(results.get(top, []), results.get(bottom, []), strict=False):
        if a.get("throughput") and b.get("throughput"):
            ratios.append(a["throughput"] / b["throughput"])
    return ratios


def _round_cpu_ratios(results: Results, top: str, bottom: str) -> list[float]:
    """`bottom`'s CPU per event over `top`'s, per round: >1 means `top` is cheaper.

    A closed-loop target is CPU-bound, so its throughput is the inverse of this cost while it
    has a core to itself; unlike throughput, the cost does not fall when the other processes
    take CPU time from the target, which makes it the steadier comparison.
    """
    ratios = []
    for a, b in zip(results.get(top, []), results.get(bottom, []), strict=False):
        if a.get("target_cpu_us_per_event") and b.get("target_cpu_us_per_event"):
            ratios.append(b["target_cpu_us_per_event"] / a["target_cpu_us_per_event"])
    return ratios


def derive_figures(results: Results) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "ratios": {},
        "ratio_rounds": {},
        "cpu_ratios": {},
        "cpu_ratio_rounds": {},
        "latency_targets": {},
    }
    for top, bottom, key in (
        ("durable", "baseline", "durable_ratio"),
        ("ephemeral", "baseline", "ephemeral_ratio"),
        ("durable-warning", "durable", "log_warning_over_info"),
    ):
        ratios = _round_ratios(results, top, bottom)
        if ratios:
            figures["ratios"][key] = _median(ratios)
            figures["ratio_rounds"][key] = ratios
        cpu = _round_cpu_ratios(results, top, bottom)
        if cpu and key != "log_warning_over_info":
            figures["cpu_ratios"][f"{key}_by_cpu"] = _median(cpu)
            figures["cpu_ratio_rounds"][f"{key}_by_cpu"] = cpu
    for phase in ("latency-durable", "latency-ephemeral", "latency-baseline"):
        rounds = [r for r in results.get(phase, []) if "p50_ms" in r]
        if not rounds:
            continue
        p50 = _median([r["p50_ms"] for r in rounds])
        p99 = _median([r["p99_ms"] for r in rounds])
        figures.setdefault("latency", {})[phase] = {
            "p50_ms": p50,
            "p99_ms": p99,
            "p50_rounds": [r["p50_ms"] for r in rounds],
            "p99_rounds": [r["p99_ms"] for r in rounds],
        }
        if phase == "latency-baseline":
            continue
        each50 = ", ".join(f"{r['p50_ms']:.2f}" for r in rounds)
        each99 = ", ".join(f"{r['p99_ms']:.2f}" for r in rounds)
        figures["latency_targets"][phase] = [
            f"p50 {p50:.2f} ms "
            + ("ok" if p50 <= TARGETS["latency_p50_ms"] else "ABOVE 1 ms")
            + f" [{each50}]",
            f"p99 {p99:.2f} ms "
            + ("ok" if p99 <= TARGETS["latency_p99_ms"] else "ABOVE 5 ms")
            + f" [{each99}]",
        ]
    figures["lost_total"] = sum(r["lost"] for rounds in results.values() for r in rounds)
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20000, help="events per throughput phase")
    parser.add_argument("--concurrency", type=int, default=64, help="load generator connections")
    parser.add_argument("--rate", type=float, default=200.0, help="latency phases: events/s")
    parser.add_argument("--duration", type=float, default=10.0, help="latency phases: seconds")
    parser.add_argument("--warmup", type=int, default=1000, help="events sent before measuring")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--pad-bytes", type=int, default=64, help="extra bytes per body")
    parser.add_argument("--baseline-workers", type=int, default=64)
    parser.add_argument(
        "--loadgen-client",
        choices=("raw", "aiohttp"),
        default="raw",
        help="load generator's HTTP client (see loadgen.py): raw stamps as the request leaves",
    )
    parser.add_argument("--log-level", default="info", help="tripwire phases (users' default)")
    parser.add_argument("--no-filter", action="store_true", help="no data filter on the sensor")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated, from {', '.join(PHASES + OPTIONAL_PHASES)}",
    )
    parser.add_argument("--profile", action="store_true", help="add the py-spy profile phases")
    parser.add_argument("--spy-rate", type=int, default=200, help="py-spy samples/s")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run every phase this many times, interleaved; figures are medians of rounds",
    )
    parser.add_argument("--quick", action="store_true", help="~20 s smoke run (one round)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, traces)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.warmup, args.duration, args.rounds = 2000, 200, 3.0, 1
    names = [p.strip() for p in args.phases.split(",") if p.strip()]
    if args.profile:
        names += [p for p in ("profile", "profile-latency") if p not in names]
    unknown = set(names) - set(PHASES + OPTIONAL_PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    args.phase_names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="tripwire-bench-"))
    procs = Procs(workdir)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Even when started with SIGINT ignored (a background job), Ctrl-C / kill -INT stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: Results = {}
    began = time.perf_counter()
    try:
        bench = Bench(args, workdir, procs)
        bench.start_sink()
        print(
            f"tripwire bench: {os.cpu_count()} CPUs, N={args.n} C={args.concurrency},"
            f" latency {args.rate:g}/s x {args.duration:g} s, workdir {workdir}"
        )
        names = args.phase_names
        for index in range(args.rounds):
            # Rotated each round, so that no phase always runs first (or right after another):
            # this machine's speed drifts over minutes, and a ratio is taken within a round.
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                result = bench.run_phase(phase_plan(name, args.log_level), index + 1)
                results.setdefault(name, []).append(result)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping processes", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"\nbench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = derive_figures(results)
    print_report(results, figures)
    doc = {
        "config": {
            k: v for k, v in vars(args).items() if k not in ("phase_names",) and v is not None
        },
        "cpus": os.cpu_count(),
        "elapsed_s": time.perf_counter() - began,
        "figures": figures,
        "results": results,
    }
    print("BENCH_JSON " + orjson.dumps(doc).decode())
    return 0 if figures["lost_total"] == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
