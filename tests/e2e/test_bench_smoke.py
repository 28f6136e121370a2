"""The benchmarks still run: each one in its smallest form, checking that it completes and
loses nothing — never its timings (figures are measured by running bench/, not in tests).

A refactor that breaks a benchmark script would otherwise only show when someone next needs
the figure.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import orjson
import pytest

from tests import servers

REPO = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(240)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=200, check=False
    )


def test_webhook_to_http_quick_run_completes_without_loss() -> None:
    done = _run("bench/webhook_to_http.py", "--quick", "--phases", "durable,ephemeral,baseline")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH_JSON ")
    report = orjson.loads(last.removeprefix("BENCH_JSON "))
    assert report["figures"]["lost_total"] == 0
    assert set(report["results"]) == {"durable", "ephemeral", "baseline"}
    by_cpu = report["figures"]["cpu_ratios"]
    assert set(by_cpu) == {"durable_ratio_by_cpu", "ephemeral_ratio_by_cpu"}
    assert all(value > 0 for value in by_cpu.values())


def test_routing_and_filter_benchmarks_run() -> None:
    routing = _run("bench/routing.py", "--events", "300", "--sensors", "20", "--repeat", "1")
    # 3 means "ran, target not met": a timing verdict, which this test does not judge.
    assert routing.returncode in (0, 3), routing.stdout[-2000:] + routing.stderr[-2000:]
    assert "ratio 20/1" in routing.stdout
    filters = _run("bench/filters.py", "--number", "200", "--repeat", "1")
    assert filters.returncode == 0, filters.stdout[-2000:] + filters.stderr[-2000:]
    assert "tripwire" in filters.stdout and "hand-written" in filters.stdout


@pytest.mark.integration
@pytest.mark.k8s
def test_k8s_creates_benchmark_runs(kube: servers.KubeEndpoint) -> None:
    done = _run("bench/k8s_creates.py", "--n", "40", "--concurrency", "8")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ratio ours/official" in done.stdout and "cleaned up namespace" in done.stdout


@pytest.mark.integration
@pytest.mark.minio
def test_s3_notify_benchmark_runs(s3: servers.S3Endpoint) -> None:
    done = _run("bench/s3_notify.py", "--n", "40", "--concurrency", "8")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "put -> event on bus" in done.stdout
