"""Metrics of many processes of one service, as Prometheus receives them: each process (its
service.instance.id, Prometheus's ``instance``) reports its own runs, a pre-fork server's workers included.

The processes are real (a subprocess that forks), and they export over real OTLP/HTTP to a receiver in the
test; the series each process exported are read back per ``service.instance.id``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest

import agent_otel
from agent_otel import conventions as c
from tests.otlp_receiver import HTTPReceiver

# A pre-fork server (gunicorn's model): setup() and some runs in the parent, then workers forked from it
# that each make their own runs; the parent makes one more after its workers exited.
_PRE_FORK = """
import os, sys, agent_otel
from agent_otel import sdk
agent_otel.setup("prefork", endpoint=sys.argv[1], store=False, instrument=False,
                 config={"exporter": {"metric_interval_s": 60, "protocol": "http/protobuf",
                                      "shutdown_timeout_s": 30}})  # (a busy machine: not 1 s)

def runs(n):
    for _ in range(n):
        with agent_otel.run("worker") as run:
            run.call_tool("search", lambda q: [q], {"q": "x"})

runs(5)
assert sdk.flush(10)  # the parent's runs recorded and exported, its threads idle, before it forks
workers = []
for k in range(2):
    pid = os.fork()
    if pid == 0:
        runs(2 + k)
        agent_otel.shutdown()
        os._exit(0)
    workers.append(pid)
for pid in workers:
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
runs(1)
agent_otel.shutdown()
"""


def _points(receiver: HTTPReceiver) -> dict[str, list[tuple[str, dict[str, str], Any]]]:
    """service.instance.id -> (metric name, attributes, point) of each point it exported, in order."""
    out: dict[str, list[tuple[str, dict[str, str], Any]]] = defaultdict(list)
    for request in receiver.metric_batches:
        for rm in request.resource_metrics:
            instance = {a.key: a.value.string_value for a in rm.resource.attributes}["service.instance.id"]
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    data = metric.sum if metric.HasField("sum") else metric.histogram
                    for point in getattr(data, "data_points", ()):
                        attributes = {a.key: a.value.string_value for a in point.attributes}
                        out[instance].append((metric.name, attributes, point))
    return out


def _totals(points: list[tuple[str, dict[str, str], Any]], delta: bool) -> dict[str, float]:
    """A process's totals of the worker agent: the last cumulative point, or the sum of delta points."""
    totals: dict[str, float] = defaultdict(float)
    for name, attributes, point in points:
        if attributes.get("agent") != "worker" or attributes.get("stop_reason", "completed") != "completed":
            continue
        value = point.count if hasattr(point, "bucket_counts") else point.as_int
        totals[name] = totals[name] + value if delta else value
    return dict(totals)


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_each_forked_worker_reports_its_own_runs_and_not_its_parents(tmp_path, temporality):
    """Each forked worker gets its own service.instance.id from the SDK, but it inherited the parent's
    counts: every worker reported the parent's 5 runs again as its own (workers of 2 and 3 runs exported
    7 and 8, so Prometheus summed 21 runs for 11), over the master's own HTTP connection."""
    receiver = HTTPReceiver(keep_alive=True)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        env.update(AGENT_OTEL_HOME=str(tmp_path), AGENT_OTEL_PROBE_LOCAL="false")
        env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] = temporality
        proc = subprocess.run(
            [sys.executable, "-c", _PRE_FORK, receiver.endpoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        receiver.stop()
    per_process = {
        instance: _totals(points, temporality == "delta") for instance, points in _points(receiver).items()
    }
    # Each process on connections of its own: a worker that wrote on the master's kept-alive connection
    # read the master's reply or none, and the master lost its last batches to read timeouts.
    senders: dict[tuple[str, int], set[str]] = defaultdict(set)
    for connection, batch in zip(receiver.connections, receiver.metric_batches, strict=True):
        for rm in batch.resource_metrics:
            senders[connection] |= {
                a.value.string_value for a in rm.resource.attributes if a.key == "service.instance.id"
            }
    shared = {connection: ids for connection, ids in senders.items() if len(ids) > 1}
    assert not shared, shared
    runs = sorted(totals.get(c.M_STOP.name, 0) for totals in per_process.values())
    assert runs == [2, 3, 6], (per_process, proc.stderr)  # the parent's 5 + 1, each worker its own
    for totals in per_process.values():
        n = totals[c.M_STOP.name]
        assert totals[c.M_RUN_LATENCY.name] == n, per_process  # a run's histograms: its own runs too
        assert totals[c.M_TOOL_CALLS.name] == n, per_process
        assert totals[c.M_TOOL_INVOCATIONS.name] == n, per_process
        assert totals[c.M_TOOL_DURATION.name] == n, per_process


def test_tool_names_from_outside_keep_the_counters_bounded_and_their_totals_exact(telemetry, monkeypatch):
    """An MCP server listing hundreds of tools, tool names holding an id: each name was a counter series
    kept for the life of the process, and handed to the SDK at every collection. Past the bound, the
    counts go to the SDK's overflow series (``otel.metric.overflow``), so the total stays exact."""
    from agent_otel import metrics

    monkeypatch.setattr(metrics, "MAX_COUNTER_SERIES", 40, raising=False)  # 10,000 by default
    with agent_otel.run("mcp-client") as run:
        for i in range(60):
            run.call_tool(f"mcp__files__tool_{i}", lambda: "ok")
    points = telemetry.metrics()[c.M_TOOL_INVOCATIONS.name]
    assert len(points) == 41, len(points)  # 40 series and the overflow one
    overflow = [p.value for a, p in points if a.get("otel.metric.overflow") is True]
    assert overflow == [20]
    assert sum(p.value for _, p in points) == 60
    named = {a["tool"] for a, _ in points if "tool" in a}
    assert named == {f"mcp__files__tool_{i}" for i in range(40)}
