"""What a user sees for a wrong manifest: one located line per problem, exit 2, no traceback.

DESIGN.md promises `file:line: field.path: what was expected` for every problem at once, and
that nothing starts. Each case here is a mistake people make when writing Gateways and Sensors
by hand, run through the real `tripwire validate` entry point; the expected lines are the
messages we want users to read, not whatever the code happens to print.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

from triggers import base as triggers_base
from tripwire.app import cli

# Every registered trigger kind, in registry order, as the message lists them.
KINDS = ", ".join(triggers_base.KINDS)

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart" / "quickstart.yaml"

GATEWAY = """\
apiVersion: tripwire.dev/v1alpha1
kind: Gateway
metadata:
  name: ci
spec:
  webhook:
    push:
      port: 12000
      endpoint: /push
"""

SENSOR = """\
apiVersion: tripwire.dev/v1alpha1
kind: Sensor
metadata:
  name: deploy
spec:
  dependencies:
    - name: pushed
      gatewayName: ci
      eventName: push
  triggers:
    - template:
        name: notify
        log: {}
"""


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def with_dependency_lines(extra: str) -> str:
    """SENSOR with `extra` (dedented, indented under the first dependency) after line 9."""
    lines = SENSOR.splitlines(keepends=True)
    return "".join([*lines[:9], textwrap.indent(yaml_text(extra), " " * 6), *lines[9:]])


@dataclasses.dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return self.err.splitlines()


def validate(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], *paths: pathlib.Path | str
) -> Run:
    code = cli.main(["validate", *map(str, paths)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return Run(code, captured.out, captured.err)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    text: str
    # `{f}` is the file's path.
    expected: list[str]


CASES = [
    # ---- unknown fields
    Case(
        "unknown-top-level-field",
        GATEWAY.replace("kind: Gateway\n", "kind: Gateway\nspecc: {}\n"),
        ["{f}:3: specc: unknown field"],
    ),
    Case(
        "unknown-spec-field", GATEWAY + "  webhooks: {}\n", ["{f}:10: spec.webhooks: unknown field"]
    ),
    Case(
        "unknown-webhook-field",
        GATEWAY + "      metod: POST\n",
        ["{f}:10: spec.webhook.push.metod: unknown field"],
    ),
    Case(
        "unknown-trigger-template-field",
        SENSOR + "        lgo: {}\n",
        ["{f}:14: spec.triggers[0].template.lgo: unknown field"],
    ),
    # ---- types and required fields
    Case(
        "port-not-an-integer",
        GATEWAY.replace("port: 12000", 'port: "abc"'),
        ["{f}:8: spec.webhook.push.port: expected an integer, got 'abc'"],
    ),
    Case(
        "port-out-of-range",
        GATEWAY.replace("port: 12000", "port: 70000"),
        ["{f}:8: spec.webhook.push.port: expected a number <= 65535, got 70000"],
    ),
    Case(
        "spec-not-a-mapping",
        GATEWAY.split("spec:")[0] + "spec: [webhook]\n",
        ["{f}:5: spec: expected a mapping, got a list"],
    ),
    Case(
        "missing-endpoint",
        GATEWAY.replace("      endpoint: /push\n", ""),
        ["{f}:7: spec.webhook.push.endpoint: required field is missing"],
    ),
    Case(
        "missing-dependencies",
        SENSOR.replace(SENSOR[SENSOR.index("  dependencies:") : SENSOR.index("  triggers:")], ""),
        ["{f}:5: spec.dependencies: required field is missing"],
    ),
    Case(
        "empty-dependencies",
        SENSOR.replace(
            SENSOR[SENSOR.index("  dependencies:") : SENSOR.index("  triggers:")],
            "  dependencies: []\n",
        ),
        ["{f}:6: spec.dependencies: expected at least 1 item(s), got 0"],
    ),
    Case(
        "bad-metadata-name",
        GATEWAY.replace("name: ci", "name: CI_Gateway"),
        [
            "{f}:4: metadata.name: expected text matching ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$,"
            " got 'CI_Gateway'"
        ],
    ),
    Case(
        "bad-filter-type",
        with_dependency_lines("filters: {data: [{path: body.ref, type: text, value: [main]}]}\n"),
        [
            "{f}:10: spec.dependencies[0].filters.data[0].type: expected one of 'string',"
            " 'number' or 'bool', got 'text'"
        ],
    ),
    # ---- YAML itself
    Case(
        "yaml-tab-indentation",
        "apiVersion: tripwire.dev/v1alpha1\nkind: Gateway\nmetadata:\n\tname: ci\n",
        ["{f}:4: invalid YAML: found character '\\t' that cannot start any token"],
    ),
    Case(
        "yaml-unclosed-flow-mapping",
        GATEWAY.split("    push:")[0] + "    push: {port: 12000, endpoint: /push\n",
        [
            "{f}:8: invalid YAML: expected ',' or '}}', but got '<stream end>'"
            " (while parsing a flow mapping at line 7)"
        ],
    ),
    Case(
        "duplicate-key",
        GATEWAY + "      port: 12001\n",
        ["{f}:10: spec.webhook.push.port: duplicate key"],
    ),
    # ---- the document as a whole
    Case(
        "wrong-api-version",
        GATEWAY.replace("tripwire.dev/v1alpha1", "argoproj.io/v1alpha1"),
        ["{f}:1: apiVersion: expected tripwire.dev/v1alpha1, got 'argoproj.io/v1alpha1'"],
    ),
    Case(
        "unknown-kind",
        GATEWAY.replace("kind: Gateway", "kind: EventSource"),
        ["{f}:2: kind: expected one of Gateway, Sensor, got 'EventSource'"],
    ),
    Case(
        "document-not-a-mapping",
        GATEWAY + "---\n- webhook\n- calendar\n",
        ["{f}:11: a manifest must be a mapping with apiVersion and kind"],
    ),
    # ---- filters
    Case(
        "filter-bad-regex",
        with_dependency_lines(
            """
            filters:
              data:
                - path: body.ref
                  type: string
                  value: ["(main"]
            """
        ),
        [
            "{f}:14: spec.dependencies[0].filters.data[0].value[0]: '(main' is not a valid"
            " regular expression: missing ), unterminated subpattern at position 0"
        ],
    ),
    Case(
        "filter-bad-gjson-path",
        with_dependency_lines(
            """
            filters:
              data:
                - path: body.[ref
                  type: string
                  value: [main]
            """
        ),
        [
            "{f}:12: spec.dependencies[0].filters.data[0].path: unterminated multipath,"
            " expected ']' at position 5 in 'body.[ref'"
        ],
    ),
    Case(
        "filter-number-not-a-number",
        with_dependency_lines(
            """
            filters:
              data:
                - path: body.count
                  type: number
                  value: ["ten"]
            """
        ),
        ["{f}:14: spec.dependencies[0].filters.data[0].value[0]: 'ten' is not a number"],
    ),
    # ---- conditions, trigger kinds, parameters, names
    Case(
        "conditions-unknown-dependency",
        SENSOR.replace(
            "        name: notify\n", "        name: notify\n        conditions: pushed && merged\n"
        ),
        [
            "{f}:13: spec.triggers[0].template.conditions: unknown dependency 'merged'"
            " (known: pushed) at position 10 in 'pushed && merged'"
        ],
    ),
    Case(
        "conditions-syntax-error",
        SENSOR.replace(
            "        name: notify\n", "        name: notify\n        conditions: pushed &&\n"
        ),
        [
            "{f}:13: spec.triggers[0].template.conditions: expected a dependency name or '('"
            " after '&&', found end of condition at position 9 in 'pushed &&'"
        ],
    ),
    Case(
        "trigger-template-without-kind",
        SENSOR.replace("        log: {}\n", ""),
        [f"{{f}}:11: spec.triggers[0].template: a trigger template sets exactly one of: {KINDS}"],
    ),
    Case(
        "trigger-template-with-two-kinds",
        SENSOR + "        http: {url: 'http://127.0.0.1:8080/'}\n",
        [
            "{f}:11: spec.triggers[0].template: a trigger template sets exactly one of:"
            f" {KINDS} (found log, http)"
        ],
    ),
    Case(
        "parameter-unknown-dependency",
        SENSOR.replace("        log: {}\n", "        http: {url: 'http://127.0.0.1:8080/'}\n")
        + "      parameters:\n        - src: {dependencyName: pushd, dataKey: body}\n"
        "          dest: url\n",
        [
            "{f}:15: spec.triggers[0].parameters[0].src.dependencyName: unknown dependency"
            " 'pushd' (known: pushed)"
        ],
    ),
    Case(
        "duplicate-dependency-names",
        SENSOR.replace(
            "  triggers:\n",
            "    - name: pushed\n      gatewayName: ci\n      eventName: push\n  triggers:\n",
        ),
        [
            "{f}:10: spec.dependencies[1].name: dependency name 'pushed' is already used by"
            " dependencies[0]"
        ],
    ),
    Case(
        "duplicate-trigger-names",
        SENSOR + "    - template:\n        name: notify\n        log: {}\n",
        [
            "{f}:15: spec.triggers[1].template.name: trigger name 'notify' is already used by"
            " triggers[0]"
        ],
    ),
    Case(
        "entry-name-with-a-dot",
        GATEWAY.replace("    push:", "    pu.sh:"),
        [
            "{f}:7: spec.webhook.pu.sh: webhook entry name 'pu.sh' may only use letters,"
            " digits, '-' and '_'"
        ],
    ),
    Case(
        "bad-duration",
        SENSOR + "      retryStrategy:\n        duration: 5x\n",
        [
            "{f}:15: spec.triggers[0].retryStrategy.duration: '5x' is not a duration like 30s,"
            " 1m30s or 250ms"
        ],
    ),
    # ---- references between objects
    Case(
        "dependency-on-unknown-event",
        GATEWAY + "---\n" + SENSOR.replace("eventName: push", "eventName: pull"),
        ["{f}:19: spec.dependencies[0].eventName: Gateway 'ci' has no event 'pull' (it has: push)"],
    ),
    Case(
        "dependency-on-unknown-gateway",
        GATEWAY + "---\n" + SENSOR.replace("gatewayName: ci", "gatewayName: cd"),
        ["{f}:18: spec.dependencies[0].gatewayName: no loaded Gateway is named 'cd' (loaded: ci)"],
    ),
]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            id=c.id,
        )
        for c in CASES
    ],
)
def test_bad_manifest(
    case: Case, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(case.text, encoding="utf-8")
    run = validate(tmp_path, capsys, path)
    assert run.code == 2
    assert run.out == ""
    assert run.errors == [f"error: {line.format(f=path)}" for line in case.expected]


def test_every_problem_of_a_file_is_reported_in_one_run(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "many.yaml"
    text = (
        GATEWAY.replace("port: 12000", "port: high").replace("      endpoint: /push\n", "")
        + "      metod: POST\n"
        + "---\n"
        + SENSOR.replace("gatewayName: ci", "gatewayNam: ci")
        + "      retryStrategy: {duration: 5x, steps: 0}\n"
        + "---\n"
        + GATEWAY.replace("kind: Gateway", "kind: Gateways")
    )
    path.write_text(text, encoding="utf-8")
    run = validate(tmp_path, capsys, path)
    assert run.code == 2
    assert run.errors == [
        f"error: {path}:7: spec.webhook.push.endpoint: required field is missing",
        f"error: {path}:8: spec.webhook.push.port: expected an integer, got 'high'",
        f"error: {path}:9: spec.webhook.push.metod: unknown field",
        f"error: {path}:17: spec.dependencies[0].gatewayName: required field is missing",
        f"error: {path}:18: spec.dependencies[0].gatewayNam: unknown field",
        f"error: {path}:24: spec.triggers[0].retryStrategy.steps: expected a number >= 1, got 0",
        f"error: {path}:24: spec.triggers[0].retryStrategy.duration: '5x' is not a duration"
        " like 30s, 1m30s or 250ms",
        f"error: {path}:27: kind: expected one of Gateway, Sensor, got 'Gateways'",
    ]


def test_duplicate_sensor_names_across_files_name_both_places(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "gateway.yaml").write_text(GATEWAY, encoding="utf-8")
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(SENSOR, encoding="utf-8")
    second.write_text("# the same sensor, copied\n" + SENSOR, encoding="utf-8")
    run = validate(tmp_path, capsys, tmp_path)
    assert run.code == 2
    assert run.errors == [
        f"error: {second}:5: metadata.name: Sensor 'deploy' is also defined in {first}:4"
    ]


def test_directory_without_manifests(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a manifest", encoding="utf-8")
    run = validate(tmp_path, capsys, tmp_path)
    assert run.code == 2
    assert run.errors == [f"error: {tmp_path}: directory has no .yaml, .yml, .json files"]


def test_missing_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "gateway.yaml").write_text(GATEWAY, encoding="utf-8")
    missing = tmp_path / "sensor.yaml"
    run = validate(tmp_path, capsys, tmp_path / "gateway.yaml", missing)
    assert run.code == 2
    assert run.errors == [f"error: {missing}: no such file"]


# --------------------------------------------------------------------------------------------
# Valid manifests


def test_quickstart_is_valid(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = validate(tmp_path, capsys, QUICKSTART)
    assert (run.code, run.out, run.err) == (0, "ok: 1 gateway(s), 2 sensor(s)\n", "")


def test_argo_event_source_name_alias_is_accepted(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "argo.yaml"
    path.write_text(GATEWAY + "---\n" + SENSOR.replace("gatewayName:", "eventSourceName:"))
    run = validate(tmp_path, capsys, path)
    assert (run.code, run.out, run.err) == (0, "ok: 1 gateway(s), 1 sensor(s)\n", "")


# --------------------------------------------------------------------------------------------
# `tripwire run` starts nothing when a manifest is bad


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_run_with_a_bad_manifest_starts_nothing(tmp_path: pathlib.Path) -> None:
    port = _free_port()
    path = tmp_path / "bad.yaml"
    # A valid gateway next to a broken sensor: the gateway must not start either.
    path.write_text(
        GATEWAY.replace("port: 12000", f"port: {port}\n      host: 127.0.0.1")
        + "---\n"
        + SENSOR.replace("log: {}", "lgo: {}"),
        encoding="utf-8",
    )
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "tripwire.app.cli", "run", str(path), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {path}:24: spec.triggers[0].template.lgo: unknown field"
    ]
    assert not state.exists()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing listened there
