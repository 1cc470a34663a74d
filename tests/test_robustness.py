"""Telemetry never breaks or stalls the agent: dead or restarting collectors, bad plugins, concurrency."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel import conventions as c
from agent_otel import sdk
from tests.helpers import metric_points
from tests.otlp_receiver import Blackhole, OTLPReceiver, free_port


@pytest.mark.parametrize("collector", ["closed port", "accepts but never answers"])
def test_a_dead_collector_costs_bounded_memory_counted_drops_and_a_bounded_shutdown(fresh, collector, caplog):
    hole = Blackhole() if collector != "closed port" else None
    endpoint = hole.endpoint if hole else f"http://127.0.0.1:{free_port()}"
    reader = InMemoryMetricReader()
    agent_otel.setup(
        "svc",
        endpoint=endpoint,
        store=False,
        instrument=False,
        meter_provider=MeterProvider(metric_readers=[reader], shutdown_on_exit=False),
        config={
            "exporter": {
                "max_queue": 200,
                "batch_size": 50,
                "retry_buffer_mb": 0.05,
                "schedule_delay_s": 0.05,
                "timeout_s": 0.5,
            }
        },
    )
    (processor,) = sdk.installation().span_processors
    peak = 0
    try:
        with agent_otel.run("a") as run:
            for i in range(1000):
                assert run.call_tool("t", lambda i: i * 2, {"i": i}) == i * 2
                peak = max(peak, processor.pending)
        assert run.result.stop_reason == "completed"
        # queue (200) + retry buffer (0.05 MiB of ~500-byte spans) + one batch in flight
        assert peak <= 200 + 150 + 50
        time.sleep(0.3)
        dropped = {
            (a["signal"], a["reason"]): p.value for a, p in metric_points(reader).get(c.M_DROPPED.name, [])
        }
        assert sum(n for (signal, _), n in dropped.items() if signal == "spans") > 0
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            start = time.monotonic()
            agent_otel.shutdown()
            assert time.monotonic() - start < 1.6
        summaries = [r.getMessage() for r in caplog.records if "agent-otel: dropped" in r.getMessage()]
        assert len(summaries) == 1 and "spans" in summaries[0]
    finally:
        if hole:
            hole.close()


def test_a_collector_restart_loses_no_span(fresh):
    port = free_port()
    receiver = OTLPReceiver(port).start()
    agent_otel.setup(
        "svc",
        endpoint=receiver.endpoint,
        store=False,
        instrument=False,
        config={"exporter": {"schedule_delay_s": 0.1, "timeout_s": 1.0}},
    )
    expected = 0
    with agent_otel.run("a") as run:
        for i in range(50):
            run.call_tool("before", lambda i: i, {"i": i})
            expected += 1
        deadline = time.monotonic() + 10
        while receiver.count() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.count() == expected
        receiver.stop()  # the collector goes away mid-run...
        outage_end = time.monotonic() + 30  # the issue: "a collector restart of up to 30 s"
        while time.monotonic() < outage_end:
            run.call_tool("during", lambda i: i, {"i": expected})
            expected += 1
            time.sleep(0.01)
        receiver = OTLPReceiver(port).start()  # ...and comes back on the same address
        for i in range(50):
            run.call_tool("after", lambda i: i, {"i": i})
            expected += 1
    expected += 1 - 50  # plus the run span; the first 50 went to the first incarnation
    try:
        deadline = time.monotonic() + 30
        while receiver.count() < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        names = receiver.span_names()
        assert len(names) == expected
        assert names.count("execute_tool during") > 500
        assert names.count("invoke_agent a") == 1
    finally:
        receiver.stop()


def test_concurrent_asyncio_runs_keep_their_own_context(telemetry):
    async def one(i):
        async with agent_otel.run(f"agent-{i % 4}") as run:
            for step in range(5):
                await run.call_tool("step", _async_echo, {"i": i, "step": step})
                await asyncio.sleep(0)
            assert agent_otel.current_run() is run
        return run

    async def main():
        return await asyncio.gather(*(one(i) for i in range(200)))

    runs = asyncio.run(main())
    _assert_runs_are_separate(telemetry, runs, steps=5)


async def _async_echo(i, step):
    await asyncio.sleep(0)
    return (i, step)


def test_threads_of_runs_keep_their_own_context(telemetry):
    runs: list = []
    lock = threading.Lock()

    def worker(n):
        for _ in range(10):
            with agent_otel.run(f"thread-{n}") as run:
                for step in range(5):
                    run.call_tool("step", lambda s: s, {"s": step})
                    assert agent_otel.current_run() is run
            with lock:
                runs.append(run)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _assert_runs_are_separate(telemetry, runs, steps=5)


def _assert_runs_are_separate(telemetry, runs, steps):
    spans = telemetry.spans()
    roots = {s.attributes[c.RUN_ID]: s for s in spans if s.name.startswith("invoke_agent")}
    assert len(roots) == len(runs)
    by_run: dict[str, list] = {}
    for s in spans:
        if s.name.startswith("execute_tool"):
            by_run.setdefault(s.attributes[c.RUN_ID], []).append(s)
    for run in runs:
        tool_spans = by_run[run.run_id]
        assert sorted(s.attributes[c.STEP_ID] for s in tool_spans) == list(range(1, steps + 1))
        root = roots[run.run_id]
        assert all(s.parent.span_id == root.context.span_id for s in tool_spans)
        assert all(s.context.trace_id == root.context.trace_id for s in tool_spans)
        assert root.attributes[c.STEPS] == steps
        assert run.result.stop_reason == "completed"


class RaisingExporter(SpanExporter):
    def export(self, spans):
        raise RuntimeError("exporter bug")

    def shutdown(self):
        raise RuntimeError("shutdown bug")


class RaisingOnEnd(SpanProcessor):
    def on_end(self, span):
        raise RuntimeError("on_end bug")


class RaisingOnStart(SpanProcessor):
    def on_start(self, span, parent_context=None):
        raise RuntimeError("on_start bug")


class RaisingSink:
    def write(self, batch):
        raise OSError("disk full")

    def close(self):
        raise OSError("still full")


def _setup_with_bad_plugins(bad_processor):
    from opentelemetry.sdk.trace import TracerProvider

    from tests.conftest import ListSink

    good_spans, good_sink, reader = InMemorySpanExporter(), ListSink(), InMemoryMetricReader()
    provider = TracerProvider(shutdown_on_exit=False)  # the application's
    agent_otel.setup(
        "svc",
        tracer_provider=provider,
        span_exporters=[RaisingExporter(), good_spans],
        store=False,
        instrument=False,
        event_sinks=[RaisingSink(), good_sink],
        meter_provider=MeterProvider(metric_readers=[reader], shutdown_on_exit=False),
        config={"exporter": {"probe_local": False}},
    )
    # A broken processor the application adds later. (One registered *before* agent-otel's stops the
    # SDK from calling later processors at all: the agent still runs, spans are then lost to everyone.)
    provider.add_span_processor(bad_processor)
    return good_spans, good_sink, reader


def _three_runs():
    for i in range(3):
        with agent_otel.run("a") as run:
            assert run.call_tool("t", lambda i: f"result {i}", {"i": i}) == f"result {i}"
            run.record_llm(model="gpt-4o", input_tokens=1, output_tokens=1)
        assert run.result.stop_reason == "completed"


def test_raising_exporters_processors_and_sinks_never_reach_the_agent(fresh, caplog):
    good_spans, good_sink, reader = _setup_with_bad_plugins(RaisingOnEnd())
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        _three_runs()
        sdk.flush(2)
        agent_otel.shutdown()
    assert len(good_spans.get_finished_spans()) == 9  # other exporters are unaffected
    assert len(good_sink.events("stop")) == 3  # other sinks too
    assert [p.value for _, p in metric_points(reader)["agent.stop"] if p.value] == [3]
    sink_warnings = [r for r in caplog.records if "RaisingSink failed" in r.getMessage()]
    assert len(sink_warnings) == 1  # reported once, then counted


def test_a_processor_that_breaks_span_start_degrades_to_events_and_metrics(fresh, caplog):
    _, good_sink, reader = _setup_with_bad_plugins(RaisingOnStart())
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        _three_runs()
        sdk.flush(2)
        agent_otel.shutdown()
    assert [e["stop_reason"] for e in good_sink.events("stop")] == ["completed"] * 3
    assert [p.value for _, p in metric_points(reader)["agent.stop"] if p.value] == [3]
    assert sum("on_start bug" in r.getMessage() for r in caplog.records) == 3  # once per kind of span
