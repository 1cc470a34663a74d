"""`agent-otel demo`, run as the README's "Local stack" section says, against the bundled stack.

A stack of its own (collector, Prometheus with the bundled rules, the trace sink), so that everything in
Prometheus comes from these processes: each demo is its own short-lived process (a few seconds, less than
the SDK's default metric interval), run three times; then one more process adds runs of the demo's agent
that pause for a human (stop reason ``interrupted``, which the demo does not make), each longer than any
demo run. Then every dashboard panel's query, for all agents and for the demo's agent selected, and the
seed's three queries are compared with what the processes wrote to their run store: the true counts, not
"some data", with the paused runs counted as runs but never as failures or finished runs.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_otel import conventions as c
from tests.e2e.harness import (
    PROMETHEUS_PARAMS,
    Stack,
    base_env,
    collector_binary,
    launch_stack,
    read_spans,
    traces_by_id,
    wait_for,
    write_refusals,
)
from tests.helpers import missing_prerequisite
from tests.stack import stackfiles as sf

pytestmark = pytest.mark.e2e

DEMOS = 3
PROCESSES = DEMOS + 1  # and the one making paused runs
# Paused runs: more than 5% of all runs, so that a p95 that counted them would land among them.
PAUSED = 8
FAILURES = {"loop_detected", "tool_timeout", "tool_error", "model_error", "error"}
GUARDED = {"loop_detected", "max_steps", "budget_exceeded", "policy_denied", "kill_switch"}
# The panels' windows ($__range, $__interval, $__rate_interval and the rules' fixed 10m) all cover the
# demos when the test evaluates them: three demos take well under a minute.
WINDOW = "10m"
ABSENT: dict[frozenset[tuple[str, str]], float] = {}


# --- what the README says to run --------------------------------------------------------------------------


def readme_demo_commands() -> tuple[dict[str, str], list[str]]:
    """The environment and the command of the README's Local stack block that runs the demo."""
    text = (sf.REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Local stack", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if "agent-otel demo" not in block:
            continue
        env: dict[str, str] = {}
        command: list[str] = []
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("export "):
                name, value = line.removeprefix("export ").split("=", 1)
                env[name] = value
            elif line:
                command = shlex.split(line)
        assert command[:2] == ["agent-otel", "demo"], block
        return env, command
    raise AssertionError("the README's Local stack section has no block running `agent-otel demo`")


@dataclass
class Demos:
    runs: list[dict[str, Any]]
    events: list[dict[str, Any]]
    outputs: list[str] = field(default_factory=list)
    endpoint: str = ""

    def tools(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == c.KIND_TOOL_RESULT]

    def llm(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == c.KIND_LLM_RESULT]


@pytest.fixture(scope="module", **PROMETHEUS_PARAMS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with launch_stack(tmp_path_factory.mktemp("demo-stack"), collector_binary(), request.param) as st:
        yield st


@pytest.fixture(scope="module")
def demos(stack: Stack) -> Demos:
    cli = Path(sys.executable).with_name("agent-otel")
    if not cli.exists():
        missing_prerequisite("the agent-otel command", "make install-dev")
    readme_env, command = readme_demo_commands()
    # the README's collector address, on this test's ports (4317 OTLP gRPC, 4318 OTLP HTTP)
    local = {
        "localhost:4317": f"127.0.0.1:{stack.ports['otlp_grpc']}",
        "localhost:4318": f"127.0.0.1:{stack.ports['otlp_http']}",
    }
    endpoint = readme_env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    for readme_address, address in local.items():
        endpoint = endpoint.replace(readme_address, address)
    assert endpoint != readme_env["OTEL_EXPORTER_OTLP_ENDPOINT"], endpoint
    # the protocol the SDK infers from the README's port (4318: http/protobuf, 4317: grpc), which it
    # cannot infer from this test's port
    protocol = "http/protobuf" if "localhost:4318" in readme_env["OTEL_EXPORTER_OTLP_ENDPOINT"] else "grpc"
    env = {
        **base_env(),
        **readme_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "AGENT_OTEL_HOME": str(stack.tmp / "demo-home"),  # the default store, in a place of its own
        "COLUMNS": "200",
    }
    outputs = []
    for _ in range(DEMOS):
        proc = subprocess.run(
            [str(cli), *command[1:]], env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)

    def cli_out(*args: str) -> str:
        return subprocess.run(
            [str(cli), *args], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout

    demo_runs = json.loads(cli_out("runs", "--json", "--last", "100000"))
    # Runs of the demo's agent that pause for a human, each waiting past the run-latency bucket that
    # holds the longest demo run: counted as finished, they would move its p95 (see the check below).
    longest = max(r["duration_ms"] for r in demo_runs)
    wait_s = next(b for b in c.M_RUN_LATENCY.buckets if b > longest) / 1000 + 0.1
    (agent,) = {r["agent"] for r in demo_runs}
    manifest = stack.tmp / "paused.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.e2e.stack_driver",
            str(manifest),
            "--paused",
            agent,
            str(PAUSED),
            str(wait_s),
        ],
        env=env,
        cwd=sf.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["stop_reason"] for r in json.loads(manifest.read_text())["runs"]} == {"interrupted"}

    runs = json.loads(cli_out("runs", "--json", "--last", "100000"))
    assert len(runs) == len(demo_runs) + PAUSED
    # (the store may hold the runs back-dated: every event of the last year)
    events = [json.loads(line) for line in cli_out("export", "--since", "52w").splitlines() if line.strip()]
    return Demos(runs, events, outputs, endpoint)


@pytest.fixture(scope="module")
def settled(stack: Stack, demos: Demos) -> Demos:
    """Once Prometheus holds every demo's last sample and the rules have counted all its runs."""
    n = len(demos.runs)
    assert n - PAUSED > 0 and (n - PAUSED) % DEMOS == 0  # every demo stored the same number of runs
    procs = (stack.collector, stack.prometheus)

    def total(expr: str) -> float | None:
        result = stack.query(expr)
        return float(result[0]["value"][1]) if result else None

    wait_for(
        "every demo run in Prometheus",
        lambda: total(f"sum(last_over_time(agent_stop_total[{WINDOW}]))") == n,
        60,
        procs,
    )
    wait_for(
        "the recording rules to count every run",
        lambda: total("sum(agent:runs_all:count_10m)") == n,
        60,
        procs,
    )
    # (ready reads the thresholds group too, whose first evaluation can come after the baseline group's:
    # on Prometheus 3.14 the Baseline panel was empty at times for that first minute)
    baselines = (
        "agent:baseline:history_hours",
        "agent:baseline:ready",
        "agent:tool_calls_per_run:p95_10m:baseline_1d",
    )
    for baseline in baselines:
        wait_for(f"{baseline} (evaluated once a minute)", lambda b=baseline: stack.query(b), 150, procs)
    return demos


# --- the truth, from the run store ------------------------------------------------------------------------


def prom_quantile(q: float, bounds: Sequence[float], values: Sequence[float]) -> float:
    """histogram_quantile() of Prometheus over a histogram with these bucket bounds holding these values."""
    uppers = [*bounds, math.inf]
    cumulative = [sum(1 for v in values if v <= b) for b in uppers]
    total = cumulative[-1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, n in enumerate(cumulative) if n >= rank)
    if b == len(uppers) - 1:
        return uppers[-2]
    start, count = (0.0, cumulative[0]) if b == 0 else (uppers[b - 1], cumulative[b] - cumulative[b - 1])
    below = 0 if b == 0 else cumulative[b - 1]
    return start + (uppers[b] - start) * ((rank - below) / count)


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def expected_panels(demos: Demos, firing: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """(panel title, refId) -> the true result, as {labels: value} (or a check function)."""
    runs, tools, llm = demos.runs, demos.tools(), demos.llm()
    n = len(runs)
    agent = {r["agent"] for r in runs}
    assert agent == {"support-agent"}
    a = "support-agent"
    reasons = Counter(r["stop_reason"] for r in runs)
    finished = n - reasons["interrupted"]
    calls = Counter(e["tool"] for e in tools)
    errors = Counter((e["tool"], e["error"]) for e in tools if e["status"] == c.STATUS_ERROR)
    errors_by_tool = Counter(e["tool"] for e in tools if e["status"] == c.STATUS_ERROR)
    retries = Counter()
    for e in tools:
        retries[e["tool"]] += (e.get("attempts") or 1) - 1
    assert sum(retries.values()) == sum(r["retries"] for r in runs)
    failed_attempts = {t: retries[t] + errors_by_tool[t] for t in calls}
    durations: dict[str, list[float]] = defaultdict(list)
    for e in tools:
        durations[e["tool"]].append(e["duration_ms"])
    tokens: dict[str, list[float]] = defaultdict(list)
    for e in llm:
        usage = e["usage"] or {}
        total = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
        if total:
            tokens[usage.get("model") or "unknown"].append(total)
    cost = sum(r["cost_usd"] or 0 for r in runs)
    guarded = sum(v for r, v in reasons.items() if r in GUARDED)

    def positive(counter: Counter[Any], label: str) -> dict[frozenset[tuple[str, str]], float]:
        return {key(**{label: k}): v for k, v in counter.items() if v > 0}

    def by_tool(values: dict[str, float]) -> dict[frozenset[tuple[str, str]], float]:
        return {key(tool=t): v for t, v in values.items()}

    not_completed = Counter({r: v for r, v in reasons.items() if r != "completed"})
    run_ms = [r["duration_ms"] for r in runs if r["stop_reason"] != "interrupted"]
    # the paused runs matter: a p95 over every run (and a failure share of every run) is another number
    every_ms = [r["duration_ms"] for r in runs]
    assert prom_quantile(0.95, c.M_RUN_LATENCY.buckets, every_ms) > prom_quantile(
        0.95, c.M_RUN_LATENCY.buckets, run_ms
    )
    tool_p95 = {t: prom_quantile(0.95, c.M_TOOL_DURATION.buckets, d) for t, d in durations.items()}
    exp: dict[tuple[str, str], Any] = {
        # Agent overview
        ("Runs", "A"): {key(): n},
        ("Runs failed or stopped by a limit", "A"): {key(): (finished - reasons["completed"]) / finished},
        ("Spend", "A"): {key(): cost},
        ("Alerts firing", "A"): {key(): len(firing)},
        ("Baseline", "A"): {key(agent=a): 0},  # not ready: the stack is minutes old
        ("Baseline", "B"): lambda r: set(r) == {key(agent=a)} and 0 < r[key(agent=a)] <= 0.1,
        ("Runs by stop reason", "A"): positive(reasons, "stop_reason"),
        ("Stop-reason distribution", "A"): positive(reasons, "stop_reason"),
        ("p95 run latency", "A"): {key(agent=a): prom_quantile(0.95, c.M_RUN_LATENCY.buckets, run_ms)},
        ("p95 run latency", "B"): lambda r: set(r) == {key(agent=a)},
        ("Tool calls per run p95 vs baseline", "A"): {
            key(agent=a): prom_quantile(0.95, c.M_TOOL_CALLS.buckets, [r["tool_calls"] for r in runs])
        },
        ("Tool calls per run p95 vs baseline", "B"): lambda r: set(r) == {key(agent=a)},
        ("Tool calls per run p95 vs baseline", "C"): ABSENT,  # the drift line waits for a ready baseline
        ("Tool calls per run p95 vs baseline", "D"): {key(): 10},
        ("Retries per run", "A"): {key(agent=a): sum(retries.values()) / n},
        ("Retries per run", "B"): {key(): 1},
        ("Tool calls per run by tool", "A"): by_tool({t: v / n for t, v in calls.items()}),
        ("Failed attempts by error class", "A"): lambda r: (
            sum(r.values()) == sum(failed_attempts.values())
            and all(r.get(key(error_type=e), 0) >= v for (_, e), v in errors.items())
        ),
        # every model request's duration (the GenAI metric gen_ai.client.operation.duration, chat)
        ("LLM time vs tool time per run", "A"): {key(): sum(e["duration_ms"] for e in llm) / 1000 / n},
        ("LLM time vs tool time per run", "B"): {key(): sum(sum(d) for d in durations.values()) / 1000 / n},
        ("Tokens per request", "A"): {
            key(model=m): prom_quantile(0.95, c.M_TOKENS_PER_REQUEST.buckets, v) for m, v in tokens.items()
        },
        ("Tokens per request", "B"): {
            key(model=m): prom_quantile(0.5, c.M_TOKENS_PER_REQUEST.buckets, v) for m, v in tokens.items()
        },
        ("Spend per run", "A"): {key(agent=a): cost / n},
        ("Spend per run", "B"): lambda r: set(r) == {key(agent=a)},
        ("Spend per run", "C"): {
            key(agent=a): prom_quantile(0.95, c.M_SPEND_PER_RUN.buckets, [r["cost_usd"] or 0 for r in runs])
        },
        ("Spend per run", "D"): {key(): 0.5},
        ("loop_detected and tool_timeout share vs baseline", "A"): {
            key(agent=a): reasons["loop_detected"] / finished
        },
        ("loop_detected and tool_timeout share vs baseline", "B"): lambda r: set(r) == {key(agent=a)},
        ("loop_detected and tool_timeout share vs baseline", "C"): {
            key(agent=a): reasons["tool_timeout"] / finished
        },
        ("loop_detected and tool_timeout share vs baseline", "D"): lambda r: set(r) == {key(agent=a)},
        ("Guard triggers", "A"): lambda r: sum(r.values()) >= guarded and (bool(r) or guarded == 0),
        ("Firing alerts", "A"): lambda r: (
            {dict(k)["alertname"] for k in r} == {a["labels"]["alertname"] for a in firing}
        ),
        # Tools
        ("Tool calls by tool", "A"): by_tool(dict(calls)),
        ("Error rate by tool", "A"): by_tool({t: errors_by_tool[t] / v for t, v in calls.items()}),
        ("Failed attempts by tool and error class", "A"): lambda r: (
            {t: sum(v for k, v in r.items() if dict(k)["tool"] == t) for t in calls if failed_attempts[t]}
            == {t: v for t, v in failed_attempts.items() if v}
        ),
        ("Errors by tool and error class", "A"): {
            key(tool=t, error_type=e): v for (t, e), v in errors.items()
        },
        ("p95 duration by tool", "A"): by_tool(tool_p95),
        ("p95 duration by tool", "B"): {key(): 10000},
        ("Retries by tool", "A"): by_tool({t: v for t, v in retries.items() if v}),
        ("Tools over the time range", "A"): by_tool(dict(calls)),
        ("Tools over the time range", "B"): by_tool({t: errors_by_tool[t] / v for t, v in calls.items()}),
        ("Tools over the time range", "C"): by_tool({t: retries[t] for t in calls}),
        ("Tools over the time range", "D"): by_tool({t: v for t, v in failed_attempts.items() if v}),
        ("Tools over the time range", "E"): by_tool(tool_p95),
        # Runs
        ("Runs not completed, by stop reason", "A"): positive(not_completed, "stop_reason"),
    }
    return exp


def panel_queries(agent: str | None = None) -> list[tuple[str, str, str, str]]:
    """(dashboard, panel title, refId, PromQL) with every window set to WINDOW, all agents or ``agent``."""
    out = []
    for name, d in sf.dashboards().items():
        values = {
            **sf.default_variable_values(d),
            "__range": WINDOW,
            "__interval": WINDOW,
            "__rate_interval": WINDOW,
        }
        if agent is not None:
            values["agent"] = agent  # as Grafana writes one selected value (no regex character to escape)
        for panel, target in sf.targets(d):
            if sf.datasource_uid(panel, target) == "prometheus" and target.get("expr"):
                out.append((name, panel["title"], target["refId"], sf.interpolate(target["expr"], values)))
    return out


def as_map(result: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], float]:
    out = {}
    for r in result:
        labels = {k: v for k, v in r["metric"].items() if k != "__name__"}
        value = float(r["value"][1])
        if not math.isnan(value):
            out[frozenset(labels.items())] = value
    return out


def close(a: dict[Any, float], b: dict[Any, float]) -> bool:
    return set(a) == set(b) and all(math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9) for k in a)


# --- the tests ----------------------------------------------------------------------------------------------


def test_the_demo_exports_to_the_collector_the_readme_points_at(demos: Demos, stack: Stack) -> None:
    for out in demos.outputs:
        said = " ".join(out.split())
        assert (
            f"to OTLP http/protobuf {demos.endpoint}" in said or f"to OTLP grpc {demos.endpoint}" in said
        ), out
        assert "not delivered" not in said and "nothing reached" not in said, out


@pytest.mark.parametrize("selected", ["all agents", "the demo's agent"])
def test_every_dashboard_query_shows_the_true_counts(stack: Stack, settled: Demos, selected: str) -> None:
    """Each panel query of the three dashboards against what the demos stored: run counts by stop
    reason, tool calls, errors, retries and failed attempts by tool, spend, LLM and tool time, and the
    p95s Prometheus interpolates from the same buckets. A query whose truth is "none" must return nothing.
    With the demo's agent selected the same (every metric a panel reads carries the agent's label, the
    GenAI metric's gen_ai_agent_name included; "All" would also match series without it)."""
    firing = [a for a in stack.api("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
    expected = expected_panels(settled, firing)
    (agent,) = {r["agent"] for r in settled.runs}
    queries = panel_queries(agent if selected != "all agents" else None)
    assert {(t, ref) for _, t, ref, _ in queries} == set(expected), "a panel without an expectation"
    wrong = []
    for name, title, ref, expr in queries:
        got = as_map(stack.query(expr))
        want = expected[(title, ref)]
        ok = want(got) if callable(want) else close(got, want)
        if not ok:
            wrong.append(f"{name} / {title} / {ref}: got {got}, want {want}\n  {expr}")
    assert not wrong, "\n".join(wrong)


def test_rate_counts_every_run_of_a_short_lived_process(stack: Stack, settled: Demos) -> None:
    """rate() and increase() count a series' changes, not its first value. Each demo process creates its
    agent's stop series at 0 and exports them as its first run starts, so the first sample of every
    series is 0 and the changes add up to the true counts; the seed's stop-reason query sees every run."""
    reasons = Counter(r["stop_reason"] for r in settled.runs)
    series = stack.query(f"agent_stop_total[{WINDOW}]")
    assert len({s["metric"]["instance"] for s in series}) == PROCESSES  # one instance per process
    counted: Counter[str] = Counter()
    for s in series:
        values = [float(v) for _, v in s["values"]]
        assert values[0] == 0, f"{s['metric']} starts at {values[0]}"
        counted[s["metric"]["stop_reason"]] += values[-1] - values[0]
    assert +counted == reasons
    # the seed's query: rate() extrapolates a little past a series' last sample, never below the truth
    seed = as_map(stack.query("sum(rate(agent_stop_total[10m])) by (stop_reason)"))
    for reason, count in reasons.items():
        assert seed[key(stop_reason=reason)] * 600 >= count * 0.999, (reason, seed, count)
    # the README's figures (pytest -rP prints them)
    print("runs by stop reason:", dict(reasons))
    print("seed query x 600 s:", {dict(k)["stop_reason"]: round(v * 600, 1) for k, v in seed.items()})


def test_the_seed_histogram_queries_count_nearly_every_run(stack: Stack, settled: Demos) -> None:
    """The seed's two histogram_quantile(rate()) queries. A histogram series cannot start at 0, so each
    process exports a new series as soon as it has its first value: rate() then misses that first
    measurement (or the few that ended at the same moment), not the whole first interval. The
    dashboards, which count every sample, miss nothing."""
    n = len(settled.runs)
    for metric in ("agent_tool_calls_count", "agent_run_latency_ms_count"):
        seen = sum(
            float(s["values"][-1][1]) - float(s["values"][0][1]) for s in stack.query(f"{metric}[{WINDOW}]")
        )
        # first values: one run per demo, or a few; the paused runs all end at once
        assert n - 3 * DEMOS - PAUSED <= seen < n, (metric, seen, n)
    tool_calls = [r["tool_calls"] for r in settled.runs]
    latency = [r["duration_ms"] for r in settled.runs]
    for expr, values, bounds in (
        (sf.SEED_QUERIES[0], tool_calls, c.M_TOOL_CALLS.buckets),
        (sf.SEED_QUERIES[2], latency, c.M_RUN_LATENCY.buckets),
    ):
        (value,) = as_map(stack.query(expr)).values()
        lower = max([0, *[b for b in bounds if b < min(values)]])
        upper = min([math.inf, *[b for b in bounds if b >= max(values)]])
        assert lower <= value <= upper, (expr, value, lower, upper)


def test_the_retry_storm_alert_goes_off_on_day_one(stack: Stack, settled: Demos) -> None:
    """The demo's incident (429/503 retried without jitter) on a stack minutes old: the day-1 alert on
    retries per run is pending at once (it fires after 5 minutes of it); no drift alert, whose
    baseline is not ready."""
    retries_per_run = sum(r["retries"] for r in settled.runs) / len(settled.runs)
    assert retries_per_run > 1

    def pending() -> set[str]:
        alerts = stack.api("/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] in ("pending", "firing")}

    states = wait_for(
        "AgentRetriesPerRunHigh to be pending",
        lambda: "AgentRetriesPerRunHigh" in pending() and pending(),
        60,
        (stack.prometheus,),
    )
    assert not {s for s in states if s.endswith(("Drift", "AboveBaseline", "Spike"))}, states
    for series in ("agent:retries_per_run:ratio_10m", "agent:tool_calls_per_run:p95_10m"):
        print(series, as_map(stack.query(series)))  # the README's figures (pytest -rP prints them)


def test_every_demo_exemplar_opens_a_kept_trace(stack: Stack, settled: Demos) -> None:
    start = time.time() - 900
    trace_ids: set[str] = set()
    for metric in (
        "agent_run_latency_ms_bucket",
        "agent_tool_duration_ms_bucket",
        "agent_tokens_per_request_bucket",
    ):
        data = stack.api("/api/v1/query_exemplars", query=metric, start=start, end=time.time() + 60)
        trace_ids |= {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
    assert trace_ids
    wait_for(
        "the demo exemplars' traces in the sink",
        lambda: trace_ids <= set(traces_by_id(read_spans(stack.sink_file))),
        60,
        (stack.collector, stack.sink),
    )


def test_prometheus_refused_no_demo_write(stack: Stack, settled: Demos) -> None:
    counts = write_refusals(stack)
    assert counts["accepted"] > 0 and counts["refused"] == 0 and counts["failed_points"] == 0, counts
    print("remote writes:", counts)  # the README's figures (pytest -rP prints them)
