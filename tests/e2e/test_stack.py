"""The bundled stack, end to end, with the real binaries and no Docker.

The collector built from collector/builder-config.yaml runs collector/config.yaml and Debian's Prometheus
runs prometheus/prometheus.yml with prometheus/rules, each with only its addresses and paths changed
(environment variables for the collector, flags and scrape targets for Prometheus). Tempo cannot run here,
so the collector's Tempo exporter points at a second collector (tests/e2e/sink-config.yaml) that writes
the traces it receives to a file. tests/e2e/stack_driver.py then sends agent traffic through the public
API, and the tests check what a user of the stack would see: the traces in "Tempo", the metrics, the
dashboards' queries, the alerts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import missing_prerequisite, require_binary
from tests.stack import stackfiles as sf

pytestmark = pytest.mark.e2e

FAILURE_REASONS = {"loop_detected", "tool_timeout", "tool_error", "model_error", "error"}


# --- processes --------------------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (bound together, then released for the processes to take)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=sf.REPO,
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: tuple[Proc, ...] = ()) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` and the processes' logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                pytest.fail(f"{p.name} exited while waiting for {what}:\n{p.tail()}", pytrace=False)
        try:
            last = check()
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{logs}", pytrace=False)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def healthy(url: str) -> Callable[[], bool]:
    return lambda: http_get(url, timeout=2)[0] == 200


# --- the stack --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    collector_bin: Path
    ports: dict[str, int]
    collector: Proc
    sink: Proc
    prometheus: Proc
    sink_file: Path
    procs: list[Proc] = field(default_factory=list)

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_grpc']}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url, timeout=10)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", f"{expr}: {status} {body[:300]!r}"
        return data["data"]["result"]

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(f"{self.prom_url}{path}?{query}", timeout=10)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", f"{path}: {status} {body[:300]!r}"
        return data["data"]

    def collector_metric(self, name: str, **labels: str) -> float | None:
        """A sample of the collector's own telemetry, read from its /metrics endpoint."""
        status, body = http_get(f"http://127.0.0.1:{self.ports['collector_telemetry']}/metrics")
        if status != 200:
            return None
        total = None
        for line in body.decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total


def collector_env(tmp: Path, ports: dict[str, int]) -> dict[str, str]:
    """The bundled collector config's variables: every one is an address or a path, and every one is set."""
    values = {
        "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{ports['collector_health']}",
        "OTELCOL_STORAGE_DIR": str(tmp / "collector" / "file_storage"),
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "TEMPO_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['sink_grpc']}",
        "PROMETHEUS_REMOTE_WRITE_URL": f"http://127.0.0.1:{ports['prometheus']}/api/v1/write",
        "OTELCOL_PRW_WAL_DIR": str(tmp / "collector" / "prometheus_wal"),
        "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
        "OTELCOL_TELEMETRY_PORT": str(ports["collector_telemetry"]),
    }
    assert set(values) == set(sf.env_vars(sf.COLLECTOR_CONFIG, sf.COLLECTOR_ENV)), (
        "collector/config.yaml refers to variables this test does not set (or no longer refers to some)"
    )
    return values


def prometheus_argv(prometheus: str, config: Path, data: Path, port: int) -> list[str]:
    """docker-compose.yml's Prometheus command, with the config path, data path and listen address changed."""
    command = sf.load_yaml(sf.COMPOSE)["services"]["prometheus"]["command"]
    argv = [prometheus]
    for arg in command:
        if arg.startswith("--config.file="):
            argv.append(f"--config.file={config}")
        elif arg.startswith("--storage.tsdb.path="):
            argv.append(f"--storage.tsdb.path={data}")
        else:
            argv.append(arg)
    argv.append(f"--web.listen-address=127.0.0.1:{port}")
    return argv


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    return env


@pytest.fixture(scope="module")
def collector_bin() -> Path:
    binary = sf.collector_binary()
    if not binary.is_file():
        missing_prerequisite(
            f"the collector built from collector/builder-config.yaml ({binary})",
            "make prereqs  (scripts/prereqs.d/30-collector.sh)",
        )
    return binary


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, collector_bin: Path) -> Iterator[Stack]:
    prometheus = require_binary("prometheus", "make prereqs  (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("stack")
    names = [
        "otlp_grpc",
        "otlp_http",
        "collector_health",
        "collector_telemetry",
        "prometheus",
        "sink_grpc",
        "sink_health",
        "tempo_unused",
    ]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    (tmp / "collector").mkdir()

    sink_file = tmp / "sink" / "traces.jsonl"
    sink_file.parent.mkdir()
    sink = Proc(
        "trace sink (stands in for Tempo)",
        [str(collector_bin), f"--config={sf.SINK_CONFIG}"],
        {
            **base_env(),
            "SINK_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['sink_grpc']}",
            "SINK_HEALTH_ENDPOINT": f"127.0.0.1:{ports['sink_health']}",
            "SINK_FILE": str(sink_file),
        },
        tmp / "sink.log",
    )

    prom_config = tmp / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            sf.prometheus_config_for(
                {
                    "localhost:9090": f"127.0.0.1:{ports['prometheus']}",
                    "collector:8888": f"127.0.0.1:{ports['collector_telemetry']}",
                    # Tempo's own metrics: nothing listens there, so this target is simply down.
                    "tempo:3200": f"127.0.0.1:{ports['tempo_unused']}",
                }
            )
        )
    )
    prom = Proc(
        "prometheus",
        prometheus_argv(prometheus, prom_config, tmp / "prometheus-data", ports["prometheus"]),
        base_env(),
        tmp / "prometheus.log",
    )

    collector = Proc(
        "collector",
        [str(collector_bin), f"--config={sf.COLLECTOR_CONFIG}"],
        {**base_env(), **collector_env(tmp, ports)},
        tmp / "collector.log",
    )

    st = Stack(tmp, collector_bin, ports, collector, sink, prom, sink_file)
    try:
        for proc in (sink, prom, collector):
            st.procs.append(proc.start())
        wait_for(
            "the trace sink to be healthy", healthy(f"http://127.0.0.1:{ports['sink_health']}/"), 60, (sink,)
        )
        wait_for("Prometheus to be ready", healthy(f"{st.prom_url}/-/ready"), 90, (prom,))
        wait_for(
            "the collector to be healthy",
            healthy(f"http://127.0.0.1:{ports['collector_health']}/"),
            60,
            (collector,),
        )
        yield st
    finally:
        for proc in reversed(st.procs):
            proc.stop()


@dataclass
class Traffic:
    driver: Proc
    manifest: dict[str, Any]
    stop_file: Path
    scripted_until_ns: int  # when the scripted runs were all over (the manifest's mtime)

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.manifest["runs"]

    def stop(self) -> None:
        self.stop_file.touch()
        if self.driver.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.driver.popen.wait(30)
        self.driver.stop()


def start_driver(stack: Stack, name: str, *args: str) -> tuple[Proc, Path, Path]:
    manifest = stack.tmp / f"{name}.json"
    stop_file = stack.tmp / f"{name}.stop"
    env = {
        **base_env(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_endpoint,
        # export metrics every second instead of every 10 s, so the test needs seconds, not minutes
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "AGENT_OTEL_HOME": str(stack.tmp / f"{name}-home"),
        "PYTHONPATH": str(sf.REPO),
    }
    proc = Proc(
        name,
        [sys.executable, "-m", "tests.e2e.stack_driver", str(manifest), str(stop_file), *args],
        env,
        stack.tmp / f"{name}.log",
    ).start()
    return proc, manifest, stop_file


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Iterator[Traffic]:
    driver, manifest, stop_file = start_driver(stack, "driver", "--max-seconds", "420")
    stack.procs.append(driver)
    try:
        wait_for("the driver's scripted runs", manifest.exists, 120, (driver,))
        yield Traffic(driver, json.loads(manifest.read_text()), stop_file, manifest.stat().st_mtime_ns)
    finally:
        stop_file.touch()
        driver.stop(30)


# --- reading the traces the sink received -----------------------------------------------------------------


def _value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return v


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span in the sink's file (complete lines only: the sink may be writing the last one)."""
    if not path.exists():
        return []
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n") or not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            resource = _attrs(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    spans.append(
                        {
                            "trace_id": s["traceId"].lower(),
                            "span_id": s["spanId"],
                            "parent": s.get("parentSpanId", ""),
                            "name": s["name"],
                            "attrs": _attrs(s.get("attributes")),
                            "events": [(e["name"], _attrs(e.get("attributes"))) for e in s.get("events", [])],
                            "status": s.get("status", {}).get("code", 0),
                            "status_message": s.get("status", {}).get("message", ""),
                            "start_ns": int(s["startTimeUnixNano"]),
                            "resource": resource,
                        }
                    )
    return spans


def traces_by_id(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        out.setdefault(s["trace_id"], []).append(s)
    return out


def root_of(trace: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((s for s in trace if s["name"].startswith("invoke_agent ")), None)


def wait_for_runs(
    stack: Stack, path: Path, runs: list[dict[str, Any]], procs: tuple[Proc, ...], timeout: float = 90
) -> dict[str, list[dict[str, Any]]]:
    """Wait until the sink holds the root span of every run in ``runs``; return the traces by id."""
    wanted = {r["trace_id"].lower() for r in runs}

    def arrived() -> dict[str, list[dict[str, Any]]] | None:
        traces = traces_by_id(read_spans(path))
        missing = [t for t in wanted if t not in traces or root_of(traces[t]) is None]
        return None if missing else traces

    return wait_for(f"{len(wanted)} runs' traces in the sink", arrived, timeout, procs)


@pytest.fixture(scope="module")
def kept(stack: Stack, traffic: Traffic) -> dict[str, list[dict[str, Any]]]:
    """The traces in the sink once every scripted run has been decided on.

    Every run that did not complete must arrive. The sampler decides in the order root spans arrive, so
    once a run of the steady traffic that started after the scripted ones is in the sink, the decisions
    on all scripted runs, completed ones included, have been made and exported.
    """
    not_completed = [r for r in traffic.runs if r["stop_reason"] != "completed"]
    wait_for_runs(stack, stack.sink_file, not_completed, (stack.collector, stack.sink), timeout=120)

    def later_run_arrived() -> bool:
        return any(
            s["name"].startswith("invoke_agent ")
            and s["start_ns"] > traffic.scripted_until_ns
            and s["attrs"].get("agent.stop_reason") != "completed"
            for s in read_spans(stack.sink_file)
        )

    wait_for(
        "a run started after the scripted ones", later_run_arrived, 60, (stack.collector, traffic.driver)
    )
    return traces_by_id(read_spans(stack.sink_file))


# --- the tests ----------------------------------------------------------------------------------------------


def test_bundled_collector_config_validates(collector_bin: Path, tmp_path: Path) -> None:
    for env in (
        {},
        collector_env(
            tmp_path,
            dict.fromkeys(
                [
                    "otlp_grpc",
                    "otlp_http",
                    "collector_health",
                    "collector_telemetry",
                    "prometheus",
                    "sink_grpc",
                ],
                12345,
            ),
        ),
    ):
        proc = subprocess.run(
            [str(collector_bin), "validate", f"--config={sf.COLLECTOR_CONFIG}"],
            env={**base_env(), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr


def test_collector_binary_has_exactly_the_components_the_configs_use(collector_bin: Path) -> None:
    out = subprocess.run(
        [str(collector_bin), "components"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = yaml.safe_load(out)
    assert built["buildinfo"]["version"] == sf.collector_version()
    used: dict[str, set[str]] = {}
    for path in (sf.COLLECTOR_CONFIG, sf.SINK_CONFIG):
        config = sf.load_with_defaults(path, sf.COLLECTOR_ENV)
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors"):
            used.setdefault(kind, set()).update(name.split("/")[0] for name in config.get(kind) or {})
    for kind, names in used.items():
        have = {c["name"] for c in built.get(kind) or []}
        assert have == names, f"{kind}: built {sorted(have)}, configs use {sorted(names)}"
        for c in built.get(kind) or []:
            assert c["module"].endswith(f" v{sf.collector_version()}"), c


def test_collector_runs_without_deprecation_warnings(stack: Stack, traffic: Traffic) -> None:
    log = stack.collector.log.read_text(errors="replace")
    assert "Everything is ready" in log, stack.collector.tail()
    deprecated = [line for line in log.splitlines() if "deprecat" in line.lower()]
    assert not deprecated, "\n".join(deprecated)


def test_traces_reach_tempo_with_the_design_attributes(traffic: Traffic, kept: dict[str, Any]) -> None:
    by_reason = {}
    for run in traffic.runs:
        by_reason.setdefault(run["stop_reason"], run)
    assert {"kill_switch", "tool_error", "tool_timeout", "loop_detected", "max_steps"} <= set(by_reason)
    for reason, run in by_reason.items():
        trace = kept.get(run["trace_id"].lower())
        if trace is None:  # a completed run the sampler dropped
            assert reason == "completed"
            continue
        root = root_of(trace)
        assert root is not None and root["parent"] == ""
        agent = run["agent"]
        assert root["name"] == f"invoke_agent {agent}"
        a = root["attrs"]
        assert a["gen_ai.operation.name"] == "invoke_agent"
        assert a["gen_ai.agent.name"] == agent
        assert a["agent.run_id"] == run["run_id"]
        assert a["agent.stop_reason"] == reason
        assert a["gen_ai.request.model"] == "gpt-4o"
        assert isinstance(a["agent.tool_calls"], int) and isinstance(a["agent.steps"], int)
        assert len(a["agent.input_sha"]) == 24
        assert any(name == "agent.stop" for name, _ in root["events"])
        # span status: ERROR with the stop reason for failures, UNSET for limits, OK for completed
        expected_status = 2 if reason in FAILURE_REASONS else (1 if reason == "completed" else 0)
        assert root["status"] == expected_status, (reason, root["status"])
        if expected_status == 2:
            assert root["status_message"] == reason

        tools = [s for s in trace if s["name"].startswith("execute_tool ")]
        assert tools, reason
        for step, span in enumerate(sorted(tools, key=lambda s: s["attrs"]["agent.step_id"]), 1):
            t = span["attrs"]
            assert span["name"] == f"execute_tool {t['gen_ai.tool.name']}"
            assert t["gen_ai.operation.name"] == "execute_tool"
            assert t["agent.run_id"] == run["run_id"]
            assert t["agent.step_id"] >= step
            assert len(t["agent.tool.args_sha"]) == 24 and int(t["agent.tool.args_sha"], 16) >= 0
            assert t["agent.tool.status"] in ("ok", "error")
            assert t["agent.tool.attempts"] >= 1
            if t["agent.tool.status"] == "ok":
                assert len(t["agent.tool.result_sha"]) == 24
            else:
                assert t["error.type"] and span["status"] == 2
        if reason == "tool_timeout":
            assert tools[-1]["attrs"]["error.type"] == "TimeoutError"
        for span in trace:
            if span["name"].startswith("chat "):
                c = span["attrs"]
                assert c["gen_ai.operation.name"] == "chat" and c["agent.run_id"] == run["run_id"]
                assert c["gen_ai.usage.input_tokens"] > 0 and c["gen_ai.usage.output_tokens"] > 0
                assert "agent.step_id" in c and "agent.cost_usd" in c


def test_tail_sampling_keeps_every_run_not_completed_and_a_share_of_the_rest(
    traffic: Traffic, kept: dict[str, Any]
) -> None:
    not_completed = [r for r in traffic.runs if r["stop_reason"] != "completed"]
    completed = [r for r in traffic.runs if r["stop_reason"] == "completed"]
    assert len(not_completed) >= 10 and len(completed) >= 20
    for run in not_completed:
        trace = kept.get(run["trace_id"].lower())
        assert trace is not None and root_of(trace) is not None, f"{run['stop_reason']} run was not kept"
    # Completed runs without an error are kept only by the 10% probabilistic policy: out of 20 or more,
    # some must have been dropped (all kept would happen by chance with probability 1e-20).
    clean = [r for r in completed if not any(s["status"] == 2 for s in kept.get(r["trace_id"].lower(), []))]
    dropped = [r for r in clean if r["trace_id"].lower() not in kept]
    assert dropped, f"all {len(clean)} completed runs were kept: the probabilistic share is not applied"


def test_nothing_secret_or_personal_survives_redaction(
    stack: Stack, traffic: Traffic, kept: dict[str, Any]
) -> None:
    text = stack.sink_file.read_text(encoding="utf-8")
    for secret in traffic.manifest["secrets"]:
        assert secret not in text, f"{secret!r} reached Tempo"
    planted = [r for r in traffic.runs if r["planted"] and r["stop_reason"] == "kill_switch"]
    assert planted
    for run in planted:
        root = root_of(kept[run["trace_id"].lower()])
        assert root is not None
        a = root["attrs"]
        # set on the span by application code: only the collector's redaction processor could mask these
        assert a["user.email"] == "****" and a["api_key"] == "****"
        assert a["http.request.header.authorization"] == "****"
        assert "****" in a["note"] and "escalate to" in a["note"]
        assert a["redaction.masked.count"] >= 4
        assert root["resource"]["deployment.owner_email"] == "****"
        assert root["resource"]["service.name"] == "stack-e2e"
    # tool arguments were redacted by agent-otel before they left the process (store_args: true)
    args = [
        s["attrs"]["gen_ai.tool.call.arguments"]
        for t in kept.values()
        for s in t
        if "gen_ai.tool.call.arguments" in s["attrs"]
    ]
    assert args and all("[EMAIL]" in a for a in args if "example.test" in a)
    # and nothing personal in Prometheus either (resource attributes become target_info labels)
    series = wait_for(
        "the driver's metrics in Prometheus",
        lambda: stack.api("/api/v1/series", **{"match[]": ['{job="stack-e2e"}']}),
        90,
        (stack.collector, stack.prometheus),
    )
    dumped = json.dumps(series)
    for secret in traffic.manifest["secrets"]:
        assert secret not in dumped


def test_metric_names_in_prometheus_are_the_design_names(stack: Stack, traffic: Traffic) -> None:
    expected = set(sf.DESIGN_METRICS) - {"agent_otel_telemetry_dropped_total"}  # only exists after a drop

    def names() -> set[str] | None:
        have = set(stack.api("/api/v1/label/__name__/values"))
        return have if expected <= have else None

    have = wait_for(
        "the DESIGN.md metric names in Prometheus", names, 90, (stack.collector, stack.prometheus)
    )
    agent_names = {n for n in have if n.startswith("agent_")}
    assert agent_names <= set(sf.DESIGN_METRICS), (
        f"unexpected names: {sorted(agent_names - set(sf.DESIGN_METRICS))}"
    )
    labels = {
        "agent_stop_total": {"agent", "stop_reason"},
        "agent_run_latency_ms_bucket": {"agent", "stop_reason", "le"},
        "agent_tool_calls_bucket": {"agent", "le"},
        "agent_tokens_per_request_bucket": {"agent", "model", "le"},
        "agent_spend_per_run_usd_bucket": {"agent", "le"},
        "agent_tool_duration_ms_bucket": {"agent", "tool", "status", "le"},
        "agent_tool_invocations_total": {"agent", "tool", "status"},
        "agent_tool_retries_total": {"agent", "tool"},
        "agent_guard_triggers_total": {"agent", "guard"},
    }
    for name, want in labels.items():
        series = stack.api("/api/v1/series", **{"match[]": [name]})
        assert series and all(want <= set(s) for s in series), (name, series[:2])


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(r["value"][1])) for r in result)


def test_seed_queries_return_data(stack: Stack, traffic: Traffic) -> None:
    for expr in sf.SEED_QUERIES:
        wait_for(
            f"data for {expr}",
            lambda e=expr: _has_data(stack.query(e)),
            90,
            (stack.collector, stack.prometheus, traffic.driver),
        )


def test_every_dashboard_query_returns_data(stack: Stack, traffic: Traffic) -> None:
    queries = [
        (name, title, expr) for name, d in sf.dashboards().items() for title, expr in sf.promql_expressions(d)
    ]
    assert len(queries) >= 20
    pending = list(queries)

    def all_answered() -> bool:
        pending[:] = [q for q in pending if not _has_data(stack.query(q[2]))]
        return not pending

    # Recording rules (baselines) and alerts need a few 15 s evaluation rounds after the first samples.
    try:
        wait_for(
            "every dashboard query to return data",
            all_answered,
            180,
            (stack.collector, stack.prometheus, traffic.driver),
        )
    finally:
        assert not pending, "no data for:\n" + "\n".join(f"{n} / {t}: {e}" for n, t, e in pending)
    for name, d in sf.dashboards().items():
        for var, selector, label in sf.label_values_queries(d):
            values = stack.api(f"/api/v1/label/{label}/values", **{"match[]": [selector]})
            assert values, f"{name}: variable {var} has no values"


def test_traces_to_metrics_queries_return_data(stack: Stack, traffic: Traffic) -> None:
    ds = next(d for d in sf.load_yaml(sf.GRAFANA_DATASOURCES)["datasources"] if d["uid"] == "tempo")
    t2m = ds["jsonData"]["tracesToMetrics"]
    (tag,) = t2m["tags"]
    # what Grafana runs from a span of support-agent's run: $__tags -> agent="support-agent"
    selector = f'{tag["value"]}="support-agent"'
    for q in t2m["queries"]:
        expr = q["query"].replace("$$__tags", selector)
        wait_for(f"data for {expr}", lambda e=expr: stack.query(e), 60, (stack.prometheus,))


def test_alert_rules_are_loaded_and_the_kill_switch_alert_fires(stack: Stack, traffic: Traffic) -> None:
    groups = stack.api("/api/v1/rules")["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    expected = {
        r.get("alert") or r.get("record")
        for f in sf.RULE_FILES
        for g in sf.load_yaml(f)["groups"]
        for r in g["rules"]
    }
    assert expected <= set(rules), f"not loaded: {sorted(expected - set(rules))}"
    for name in expected:
        assert rules[name]["health"] in ("ok", "unknown"), (name, rules[name].get("lastError"))

    def firing() -> list[dict[str, Any]]:
        alerts = stack.api("/api/v1/alerts")["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == "AgentKillSwitchStop" and a["state"] == "firing"
        ]

    alerts = wait_for("AgentKillSwitchStop to fire", firing, 120, (stack.prometheus,))
    assert {a["labels"]["agent"] for a in alerts} == {"support-agent", "research-agent"}
    assert all(a["labels"]["severity"] == "critical" for a in alerts)


def test_exemplars_link_metrics_to_the_traces(stack: Stack, traffic: Traffic) -> None:
    """A dot on the run-latency graph of a run that did not complete opens a trace that Tempo has."""
    # the Grafana datasource's exemplar link reads the trace id from the trace_id label
    ds = next(d for d in sf.load_yaml(sf.GRAFANA_DATASOURCES)["datasources"] if d["uid"] == "prometheus")
    assert ds["jsonData"]["exemplarTraceIdDestinations"][0]["name"] == "trace_id"
    start = time.time() - 900

    def not_completed_exemplars() -> set[str]:
        data = stack.api(
            "/api/v1/query_exemplars",
            query='agent_run_latency_ms_bucket{stop_reason!="completed"}',
            start=start,
            end=time.time() + 60,
        )
        return {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}

    trace_ids = wait_for(
        "exemplars on agent_run_latency_ms_bucket", not_completed_exemplars, 60, (stack.prometheus,)
    )
    assert all(len(t) == 32 and int(t, 16) for t in trace_ids)
    # those runs are all kept by tail sampling, so each exemplar resolves to a trace in "Tempo"
    wait_for(
        "the exemplars' traces in the sink",
        lambda: trace_ids <= set(traces_by_id(read_spans(stack.sink_file))),
        60,
        (stack.collector,),
    )


def test_prometheus_scrapes_the_collectors_own_metrics(stack: Stack, traffic: Traffic) -> None:
    result = wait_for(
        "the collector's own metrics",
        lambda: stack.query('up{job="otel-collector"} == 1'),
        60,
        (stack.prometheus, stack.collector),
    )
    assert result
    # the counter is otelcol_receiver_accepted_spans or ..._total depending on the exposition format
    wait_for(
        "otelcol accepted-span counters",
        lambda: stack.query('{__name__=~"otelcol_receiver_accepted_spans(_total)?"} > 0'),
        60,
        (stack.prometheus,),
    )


EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def test_agent_otel_demo_against_the_stack(stack: Stack, traffic: Traffic) -> None:
    """`agent-otel demo` pointed at the stack: every run counted in Prometheus, its traces in Tempo."""
    cli = Path(sys.executable).with_name("agent-otel")
    if not cli.exists():
        missing_prerequisite("the agent-otel command", "make install-dev")
    store = stack.tmp / "demo" / "runs.db"
    store.parent.mkdir()
    env = {
        **base_env(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_endpoint,
        "AGENT_OTEL_HOME": str(store.parent / "home"),
    }
    demo = subprocess.run(
        # seed 1 is one whose normal runs include CRM timeouts, so some runs end other than completed
        [str(cli), "demo", "--runs", "40", "--seed", "1", "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    said = " ".join(demo.stdout.split())
    assert "to OTLP" in said and stack.otlp_endpoint in said, demo.stdout
    listed = subprocess.run(
        [str(cli), "runs", "--json", "--last", "1000", "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    runs = json.loads(listed.stdout)
    assert len(runs) == 40
    service = runs[0]["service"]

    # the metrics count every run, sampled or not: Prometheus agrees with the run store
    def counted() -> bool:
        result = stack.query(f'sum(agent_stop_total{{job="{service}"}})')
        return bool(result) and float(result[0]["value"][1]) == len(runs)

    wait_for(
        f"all {len(runs)} demo runs in agent_stop_total", counted, 120, (stack.collector, stack.prometheus)
    )
    retries = sum(r["retries"] for r in runs)
    result = stack.query(f'sum(agent_tool_retries_total{{job="{service}"}})')
    assert retries and result and float(result[0]["value"][1]) == retries
    # its runs that did not complete are all in Tempo, with the run id on the root span
    not_completed = [r for r in runs if r["stop_reason"] != "completed"]
    assert not_completed, "the demo (seed 1) should have runs that did not complete"
    traces = wait_for_runs(stack, stack.sink_file, not_completed, (stack.collector, stack.sink))
    for r in not_completed:
        root = root_of(traces[r["trace_id"].lower()])
        assert root is not None and root["attrs"]["agent.run_id"] == r["run_id"]
    demo_traces = [t for t in traces.values() if any(s["resource"].get("service.name") == service for s in t)]
    assert demo_traces
    # and no e-mail address of any kind made it into a trace (the demo's tools take addresses as arguments)
    leaked = EMAIL.findall(stack.sink_file.read_text(encoding="utf-8"))
    assert not leaked, leaked[:5]


def test_persistent_queue_keeps_traces_through_tempo_and_collector_restarts(
    stack: Stack, traffic: Traffic, kept: dict[str, Any]
) -> None:
    """Tempo down, agents keep running, the collector restarts: nothing is lost once Tempo is back."""
    traffic.stop()
    stack.sink.stop()
    driver, manifest, _ = start_driver(
        stack, "outage-driver", "--rounds", "1", "--completed-per-round", "1", "--max-seconds", "0"
    )
    stack.procs.append(driver)
    wait_for("the outage driver to finish", lambda: driver.popen is not None and driver.popen.poll() == 0, 90)
    runs = [r for r in json.loads(manifest.read_text())["runs"] if r["stop_reason"] != "completed"]
    # tail sampling decides, then the exporter cannot reach Tempo: the batches wait in the file-backed queue
    wait_for(
        "spans queued for Tempo",
        lambda: (stack.collector_metric("otelcol_exporter_queue_size", exporter="otlp_grpc/tempo") or 0) > 0,
        60,
        (stack.collector,),
    )
    stack.collector.stop()
    assert list((stack.tmp / "collector" / "file_storage").iterdir()), "the queue left nothing on disk"
    stack.collector.start()
    wait_for(
        "the restarted collector",
        healthy(f"http://127.0.0.1:{stack.ports['collector_health']}/"),
        60,
        (stack.collector,),
    )
    # Tempo comes back (a fresh file, so only what the queue delivers now counts)
    new_file = stack.sink_file.with_name("after-restart.jsonl")
    stack.sink.env = {**stack.sink.env, "SINK_FILE": str(new_file)}
    stack.sink.start()
    wait_for_runs(stack, new_file, runs, (stack.collector, stack.sink), timeout=120)
