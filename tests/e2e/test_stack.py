"""The bundled stack, end to end, with the real binaries and no Docker.

The collector built from collector/builder-config.yaml runs collector/config.yaml and Prometheus runs
prometheus/prometheus.yml with prometheus/rules, each with only its addresses and paths changed
(environment variables for the collector, flags and scrape targets for Prometheus); every test of the
stack runs once with Debian's Prometheus 2.42 and once with the 3.x docker-compose.yml runs, its id naming
the version ([prometheus-2.42], [prometheus-3.14.0]). Tempo cannot run here,
so the collector's Tempo exporter points at a second collector (tests/e2e/sink-config.yaml) that writes
the traces it receives to a file. tests/e2e/stack_driver.py then sends agent traffic through the public
API, and the tests check what a user of the stack would see: the traces in "Tempo", the metrics, the
dashboards' queries, the alerts.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import (
    PORTS,
    PROMETHEUS_PARAMS,
    Proc,
    Stack,
    base_env,
    collector_binary,
    collector_env,
    launch_stack,
    read_spans,
    root_of,
    traces_by_id,
    wait_for,
    wait_for_runs,
    write_refusals,
)
from tests.stack import stackfiles as sf

pytestmark = pytest.mark.e2e

FAILURE_REASONS = {"loop_detected", "tool_timeout", "tool_error", "model_error", "error"}


@pytest.fixture(scope="module")
def collector_bin() -> Path:
    return collector_binary()


@pytest.fixture(scope="module", **PROMETHEUS_PARAMS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, collector_bin: Path
) -> Iterator[Stack]:
    with launch_stack(tmp_path_factory.mktemp("stack"), collector_bin, request.param) as st:
        yield st


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
            dict.fromkeys(PORTS, 12345),
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


def test_prometheus_runs_the_bundled_config_without_warnings(stack: Stack, traffic: Traffic) -> None:
    """Each version takes docker-compose.yml's flags and prometheus.yml as they are: no warning or error
    in its log (an unknown feature flag, a deprecated or renamed setting, a rule that fails to load, a
    remote write it refused), while the traffic flows."""
    log = stack.prometheus.log.read_text(errors="replace")
    assert "Server is ready to receive web requests" in log, stack.prometheus.tail()
    problems = [
        line
        for line in log.splitlines()
        if re.search(r"level=(warn|error)", line, re.IGNORECASE) or "deprecat" in line.lower()
    ]
    assert not problems, "\n".join(problems)


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
    # A completed run in which a human approved or rejected a tool call is kept whole, with its decisions.
    decided = [r for r in completed if r.get("decided")]
    assert len(decided) >= 2
    for run in decided:
        trace = kept.get(run["trace_id"].lower())
        assert trace is not None, "a completed run with a human's decision was not kept"
        root = root_of(trace)
        assert root is not None, "a kept run with a human's decision lost its run span"
        approvals = [attrs for name, attrs in root["events"] if name == "agent.approval"]
        decisions = sorted(a["agent.approval.decision"] for a in approvals)
        assert decisions == ["approved", "rejected"], root["events"]
    # Completed runs without an error or a decision are kept only by the 10% probabilistic policy: out of
    # 20 or more, some must have been dropped (all kept would happen by chance with probability 1e-20).
    completed = [r for r in completed if not r.get("decided")]
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
        # camelCase keys, and an address inside a string array (redact_all_types: the array's JSON text)
        assert a["openaiApiKey"] == "****" and a["authToken"] == "****"
        assert json.loads(a["cc_list"]) == ["****", "****"]
        assert a["redaction.masked.count"] >= 7
        assert root["resource"]["deployment.owner_email"] == "****"
        assert root["resource"]["service.name"] == "stack-e2e"
    # a tool's exception message, in its span's status message and exception event: agent-otel redacts it
    # ([EMAIL]); the collector would mask what is left (****)
    failed_lookups = [
        span
        for t in kept.values()
        for span in t
        if span["name"] == "execute_tool crm.lookup" and span["status"] == 2
    ]
    assert failed_lookups
    for span in failed_lookups:
        assert span["status_message"].startswith("LookupError: no account for "), span["status_message"]
        (exception,) = [e for name, e in span["events"] if name == "exception"]
        assert "example.net" not in span["status_message"] + exception["exception.message"]
    # a status message application code set on its own span: only the collector (transform/status) masks it
    app_spans = [span for t in kept.values() for span in t if span["name"] == "billing.charge"]
    assert app_spans
    for span in app_spans:
        assert span["status"] == 2 and span["status_message"] == "card declined for **** using ****"
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
    # (names with a colon are the recording rules' results, such as agent_otel:threshold:min_runs)
    agent_names = {n for n in have if n.startswith("agent_") and ":" not in n}
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


def _no_data_by_design() -> dict[tuple[str, str], str]:
    """Panel queries a stack minutes old cannot answer, and why."""
    why = {
        ("Tool calls per run p95 vs baseline", "2 * agent:tool_calls_per_run:p95_10m:baseline_1d"): (
            "the drift alert's line is drawn once the baseline is ready (6 hours of runs)"
        ),
    }
    sdk_source = "\n".join(p.read_text() for p in (sf.REPO / "src" / "agent_otel").rglob("*.py"))
    if "gen_ai.client.operation.duration" not in sdk_source:
        why[("LLM time vs tool time per run", "gen_ai_client_operation_duration_seconds")] = (
            "this SDK does not record the GenAI metric gen_ai.client.operation.duration yet"
        )
    return why


def test_every_dashboard_query_returns_data(stack: Stack, traffic: Traffic) -> None:
    by_design = _no_data_by_design()
    queries = [
        (name, title, expr)
        for name, d in sf.dashboards().items()
        for title, expr in sf.promql_expressions(d)
        if not any(title == t and fragment in expr for t, fragment in by_design)
    ]
    assert len(queries) >= 40
    pending = list(queries)

    def all_answered() -> bool:
        pending[:] = [q for q in pending if not _has_data(stack.query(q[2]))]
        return not pending

    # Recording rules and alerts need a few 15 s evaluation rounds after the first samples, baselines
    # a 1 m one.
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


HISTOGRAMS = (
    "agent_run_latency_ms_bucket",
    "agent_tool_calls_bucket",
    "agent_spend_per_run_usd_bucket",
    "agent_tool_duration_ms_bucket",
    "agent_tokens_per_request_bucket",
)


def test_every_exemplar_opens_a_trace_that_tempo_has(stack: Stack, traffic: Traffic) -> None:
    """Every dot on every histogram panel links to a trace the collector kept: agent-otel takes exemplars
    only from runs that did not complete, failed tool calls and exemplar runs (agent.exemplar=true, at
    most one per agent per second), and tail sampling keeps exactly those."""
    # the Grafana datasource's exemplar link reads the trace id from the trace_id label
    ds = next(d for d in sf.load_yaml(sf.GRAFANA_DATASOURCES)["datasources"] if d["uid"] == "prometheus")
    assert ds["jsonData"]["exemplarTraceIdDestinations"][0]["name"] == "trace_id"
    start = time.time() - 900

    def exemplars() -> dict[str, set[str]] | None:
        found: dict[str, set[str]] = {}
        for metric in HISTOGRAMS:
            data = stack.api("/api/v1/query_exemplars", query=metric, start=start, end=time.time() + 60)
            found[metric] = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
        return found if all(found.values()) else None

    by_metric = wait_for("exemplars on every histogram", exemplars, 90, (stack.prometheus,))
    trace_ids = set().union(*by_metric.values())
    assert all(len(t) == 32 and int(t, 16) for t in trace_ids)
    # tokens per request only get exemplars from exemplar runs (a failed LLM call reports no tokens)
    assert by_metric["agent_tokens_per_request_bucket"]
    missing: set[str] = set()

    def all_in_tempo() -> bool:
        missing.clear()
        missing.update(trace_ids - set(traces_by_id(read_spans(stack.sink_file))))
        return not missing

    try:
        wait_for("the exemplars' traces in the sink", all_in_tempo, 60, (stack.collector,))
    finally:
        assert not missing, f"{len(missing)} of {len(trace_ids)} exemplars open a trace Tempo does not have"


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
    # The same label names on every version: Prometheus 3 asks for UTF-8 names when it scrapes, and the
    # collector then sent its resource attributes as service.name, service.instance.id (service_name on
    # 2.42); a query written for one version found nothing on the other.
    labels = stack.api("/api/v1/labels", **{"match[]": ['{job="otel-collector"}']})
    assert {"service_name", "service_instance_id"} <= set(labels), labels
    assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) for label in labels), labels
    names = stack.api("/api/v1/label/__name__/values", **{"match[]": ['{job="otel-collector"}']})
    assert all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name) for name in names), names


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
    stack.start_collector()
    # Tempo comes back (a fresh file, so only what the queue delivers now counts)
    new_file = stack.sink_file.with_name("after-restart.jsonl")
    stack.sink.env = {**stack.sink.env, "SINK_FILE": str(new_file)}
    stack.sink.start()
    wait_for_runs(stack, new_file, runs, (stack.collector, stack.sink), timeout=120)


def test_a_run_in_flight_across_a_collector_restart_reaches_tempo_whole(stack: Stack) -> None:
    """A run whose first 4 tool calls end before the collector restarts and whose other 4 and the run span
    after: at shutdown tail sampling decides on what it holds, and keeps an agent trace without its run
    span (policy runs-without-their-run-span) instead of dropping those 4 spans; after the restart the
    rest is decided as usual (kept: the run ends tool_error). Tempo gets all 9."""
    driver, manifest, resume = start_driver(stack, "inflight-driver", "--in-flight", "4", "4")
    stack.procs.append(driver)
    accepted = "otelcol_receiver_accepted_spans"
    before = stack.collector_metric(accepted) or stack.collector_metric(accepted + "_total") or 0.0
    wait_for("the run's first spans", manifest.exists, 60, (driver,))
    run = json.loads(manifest.read_text())
    wait_for(
        "the collector to have the first 4 spans",
        lambda: (
            (stack.collector_metric(accepted) or stack.collector_metric(accepted + "_total") or 0)
            >= before + 4
        ),
        30,
        (stack.collector,),
    )
    stack.collector.stop()  # SIGTERM: a graceful restart
    stack.start_collector()
    resume.touch()
    wait_for("the in-flight run to end", lambda: driver.popen is not None and driver.popen.poll() == 0, 60)
    sink_file = Path(stack.sink.env["SINK_FILE"])

    def whole() -> list[dict[str, Any]] | None:
        trace = traces_by_id(read_spans(sink_file)).get(run["trace_id"].lower(), [])
        return trace if len(trace) == 9 else None

    trace = wait_for("all 9 spans of the run in Tempo", whole, 60, (stack.collector, stack.sink))
    root = root_of(trace)
    assert root is not None and root["attrs"]["agent.stop_reason"] == "tool_error"
    assert (
        sorted(s["name"] for s in trace if s is not root)
        == ["execute_tool http.get"] + ["execute_tool search"] * 7
    )


def test_prometheus_refused_no_write(stack: Stack) -> None:
    """Last in this module, after every run and restart above: not one remote write was refused (a
    refused request is lost whole) and the collector failed to send no metric point."""
    counts = write_refusals(stack)
    assert counts["accepted"] > 0, counts
    assert counts["refused"] == 0 and counts["failed_points"] == 0, counts
