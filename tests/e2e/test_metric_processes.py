"""Metrics as Prometheus shows them for the ways services really run: a platform team's delta temporality,
a pre-fork server's workers, a process started again, through the bundled collector and Prometheus.

A stack of its own (collector, Prometheus with the bundled rules, the trace sink). Each scenario is its
own agent, run by real processes with the standard OTEL_* variables; the rules' own expressions for "runs
in the last 10 minutes" and "tool calls in the last 10 minutes" must give the number of runs the processes
made, as the dashboards draw them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.e2e.harness import (
    PROMETHEUS_PARAMS,
    Stack,
    base_env,
    collector_binary,
    launch_stack,
    write_refusals,
)
from tests.stack import stackfiles as sf

pytestmark = pytest.mark.e2e

# RUNS [FORK_WORKER_RUNS...]: RUNS runs of AGENT (each with one tool call, to a tool of its own with
# SCENARIO_TOOLS set); with worker runs, half of RUNS before forking one worker per number (gunicorn's
# model: setup() in the master) and the rest after they exited.
_AGENT = """
import os, sys, agent_otel
from agent_otel import sdk
# the last values of 2,050 series can take longer than shutdown()'s 1 s on a busy machine
agent_otel.setup(os.environ["SCENARIO_SERVICE"], store=False, instrument=False,
                 config={"exporter.shutdown_timeout_s": 30})
agent = os.environ["SCENARIO_AGENT"]
tools = int(os.environ.get("SCENARIO_TOOLS", "0"))  # a tool name of its own for each run
runs, workers = int(sys.argv[1]), [int(n) for n in sys.argv[2:]]
made = 0

def make(n):
    global made
    for _ in range(n):
        made += 1
        with agent_otel.run(agent) as run:
            run.call_tool(f"mcp__files__tool_{made}" if tools else "search", lambda q: [q], {"q": "x"})
            run.record_llm(input_tokens=100, output_tokens=10)

make(runs // 2 if workers else runs)
if workers:
    assert sdk.flush(10)
    pids = []
    for n in workers:
        pid = os.fork()
        if pid == 0:
            make(n)
            agent_otel.shutdown()
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    make(runs - runs // 2)
agent_otel.shutdown()
"""


def _rule(record: str) -> str:
    for group in sf.load_yaml(sf.RULE_FILES[0])["groups"]:
        for rule in group["rules"]:
            if rule.get("record") == record:
                return str(rule["expr"])
    raise AssertionError(f"no recording rule {record}")


@pytest.fixture(scope="module", **PROMETHEUS_PARAMS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with launch_stack(tmp_path_factory.mktemp("stack"), collector_binary(), request.param) as st:
        yield st


def _run(stack: Stack, agent: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **base_env(),
        # OTLP/HTTP: gRPC's channels do not survive a fork with other threads calling into gRPC
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{stack.ports['otlp_http']}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "AGENT_OTEL_HOME": str(stack.tmp / f"{agent}-home"),
        "AGENT_OTEL_PROBE_LOCAL": "false",
        "PYTHONPATH": os.pathsep.join((str(sf.REPO / "src"), str(sf.REPO))),
        "SCENARIO_SERVICE": "edge-service",
        "SCENARIO_AGENT": agent,
        **env,
    }
    log = (stack.tmp / f"{agent}.log").open("ab")
    return subprocess.Popen([sys.executable, "-c", _AGENT, *args], env=environment, stdout=log, stderr=log)


# agent -> (what it stands for, runs its processes made, how many processes (instances) reported)
EXPECTED = {
    "edge-delta": ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta", 6, 1),
    "edge-lowmemory": ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=lowmemory", 6, 1),
    "edge-prefork": ("a master's 6 runs and workers forked from it with 2 and 3", 11, 3),
    "edge-restarted": ("one process of 3 runs, then another of 4", 7, 2),
}


def test_runs_count_right_with_delta_temporality_forked_workers_and_restarts(stack: Stack) -> None:
    procs = [
        _run(stack, "edge-delta", ["6"], OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta"),
        _run(stack, "edge-lowmemory", ["6"], OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="lowmemory"),
        _run(stack, "edge-prefork", ["6", "2", "3"]),
    ]
    first = _run(stack, "edge-restarted", ["3"])
    assert first.wait(120) == 0, (stack.tmp / "edge-restarted.log").read_text()
    procs.append(_run(stack, "edge-restarted", ["4"]))
    for proc, agent in zip(
        procs, ["edge-delta", "edge-lowmemory", "edge-prefork", "edge-restarted"], strict=True
    ):
        assert proc.wait(120) == 0, (stack.tmp / f"{agent}.log").read_text()

    runs_expr = _rule("agent:runs:count_10m")
    calls_expr = _rule("agent_tool:calls:count_10m")
    selector = '{agent=~"edge-.*"}'

    def counts() -> dict[str, tuple[float, float, int]]:
        runs = {
            r["metric"]["agent"]: float(r["value"][1]) for r in stack.query(f"sum by (agent) ({runs_expr})")
        }
        calls = {r["metric"]["agent"]: float(r["value"][1]) for r in stack.query(calls_expr)}
        instances = {
            r["metric"]["agent"]: int(float(r["value"][1]))
            for r in stack.query(
                f"count by (agent) (count by (agent, instance) (agent_stop_total{selector}))"
            )
        }
        return {a: (runs.get(a, 0), calls.get(a, 0), instances.get(a, 0)) for a in EXPECTED}

    expected = {agent: (float(n), float(n), processes) for agent, (_, n, processes) in EXPECTED.items()}
    seen: dict[str, tuple[float, float, int]] = {}

    def right() -> bool:
        seen.update(counts())
        return seen == expected

    # (no process in the check: the trace sink, say, is not what this waits for)
    deadline = time.monotonic() + 60
    while not right() and time.monotonic() < deadline:
        time.sleep(0.5)
    wrong = {a: (EXPECTED[a][0], seen.get(a), expected[a]) for a in EXPECTED if seen.get(a) != expected[a]}
    assert not wrong, f"(runs, tool calls, instances) in Prometheus vs made: {wrong}"
    refusals = write_refusals(stack)
    assert refusals["refused"] == 0 and refusals["failed_points"] == 0, refusals


def test_tool_names_past_the_sdks_limit_are_summed_in_the_overflow_series_and_alerted(stack: Stack) -> None:
    """2,050 tools, one call each, in one process: 2,000 series of agent_tool_invocations_total per tool
    and one otel_metric_overflow="true" series with the other 50 (no agent or tool label), so the totals
    stay right, the per-agent count misses those 50, and AgentOtelSeriesOverflow names the metric."""
    proc = _run(stack, "edge-overflow", ["2050"], SCENARIO_SERVICE="edge-overflow", SCENARIO_TOOLS="1")
    assert proc.wait(180) == 0, (stack.tmp / "edge-overflow.log").read_text()
    alert = next(
        r["expr"]
        for g in sf.load_yaml(sf.RULE_FILES[0])["groups"]
        for r in g["rules"]
        if r.get("alert") == "AgentOtelSeriesOverflow"
    )
    selector = '{job="edge-overflow"}'
    queries = {
        "total": f"sum(agent_tool_invocations_total{selector})",
        "series": f"count(agent_tool_invocations_total{selector})",
        "overflow": 'sum(agent_tool_invocations_total{job="edge-overflow", otel_metric_overflow="true"})',
        "per agent": 'sum(agent_tool_invocations_total{job="edge-overflow", agent="edge-overflow"})',
        "runs": 'sum(agent_stop_total{job="edge-overflow", agent="edge-overflow"})',
    }
    expected = {"total": 2050.0, "series": 2001.0, "overflow": 50.0, "per agent": 2000.0, "runs": 2050.0}
    seen: dict[str, float] = {}

    def right() -> bool:
        for name, query in queries.items():
            result = stack.query(query)
            seen[name] = float(result[0]["value"][1]) if result else 0.0
        return seen == expected

    deadline = time.monotonic() + 60
    while not right() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert seen == expected
    alerting = {(r["metric"]["job"], r["metric"]["metric"]) for r in stack.query(alert)}
    assert ("edge-overflow", "agent_tool_invocations_total") in alerting, alerting
    assert ("edge-overflow", "agent_stop_total") not in alerting, alerting  # 13 stop reasons: far from it
