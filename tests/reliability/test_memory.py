"""Buffers are bounded by the bytes they really hold, measured with tracemalloc.

The span retry buffer was bounded by an estimate ~8x below what its live span objects held (274 MB of RSS
for a nominal 32 MiB); the event queue by a count, while one record can carry a 16 MB snapshot blob.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from tests.otlp_receiver import free_port

MB = 1 << 20


@pytest.fixture
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


def held_since(baseline: int) -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - baseline


def test_spans_kept_for_a_refusing_collector_hold_no_more_than_the_retry_budget(rig, traced):
    rig.setup(
        f"http://127.0.0.1:{free_port()}",  # refused: every batch goes to the retry buffer
        {"exporter": {"retry_buffer_mb": 2.0, "batch_size": 256, "schedule_delay_s": 0.05, "timeout_s": 0.5}},
    )
    processor = rig.processor
    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    for _ in range(40):
        with __import__("agent_otel").run("a") as run:
            for i in range(500):
                run.call_tool("lookup", lambda i, note: i, {"i": i, "note": "n" * 200})
    deadline = time.monotonic() + 30
    while len(processor._queue) >= 256 and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker parks full batches in the retry buffer
    dropped = rig.counted().get(("spans", "retry_buffer_full"), 0)
    assert dropped > 0  # the budget was reached
    held = held_since(baseline)
    # The retry buffer (2 MiB of encoded requests) plus at most one batch of live spans still queued
    # (256 x ~3 KB) plus the SDK's and the metrics' own growth: well under 4 MiB. Kept as span objects,
    # the same budget held ~8x more.
    assert processor.retry_bytes <= 2 * MB
    assert held < 4 * MB, f"{held / MB:.1f} MiB held"


EVENT_QUEUE_CHILD = """
import gc, json, sys, threading
import psutil
import agent_otel
from agent_otel import sdk

MB = 1 << 20


class GatedSink:
    # Holds the pipeline until the gate opens: the store or a sink is slow.
    def __init__(self):
        self.gate = threading.Event()
        self.records = 0

    def write(self, batch):
        self.gate.wait(60)
        self.records += len(batch)

    def close(self):
        pass


sink = GatedSink()
config = {"exporter.probe_local": False}
agent_otel.setup("svc", instrument=False, store=sys.argv[1], event_sinks=[sink], config=config)
with agent_otel.run("warm") as run:
    run.call_tool("fetch", lambda i: "w" * MB, {"i": -1})  # the first batch: now the sink holds the pipeline
gc.collect()
proc = psutil.Process()
base = proc.memory_info().rss
with agent_otel.run("a") as run:
    for i in range(60):
        run.call_tool("fetch", lambda i: f"{i:04d}" + "r" * MB, {"i": i})  # replay records each result
gc.collect()
held = proc.memory_info().rss - base
inst = sdk.installation()
queued = inst.pipeline.queued_bytes
dropped = sdk._all_drops(inst).get(("events", "queue_full"), 0)
sink.gate.set()
sdk.flush(30)
print(json.dumps({"held": held, "queued": queued, "dropped": dropped, "delivered": sink.records}))
"""


def test_the_event_queue_is_bounded_in_bytes_when_records_carry_big_snapshots(tmp_path):
    """60 tool results of 1 MB wait for a stuck sink: the queue keeps its 32 MiB (default), not 60 MB+.

    Measured as the RSS of a fresh process (tracemalloc misreads orjson's large buffers).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env["AGENT_OTEL_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", EVENT_QUEUE_CHILD, str(tmp_path / "runs.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["queued"] <= 32 * MB
    # The queue's 32 MiB, the one result being recorded, and the allocator's slack.
    assert result["held"] < 48 * MB, f"{result['held'] / MB:.1f} MiB held"
    assert result["dropped"] >= 20  # the oldest big records went, and were counted
    # warm-up run (4 records + 2 for its call), then the run's 4 and 2 per call: delivered + dropped
    assert result["delivered"] + result["dropped"] == 6 + 4 + 60 * 2


class SteppedSink:
    """Writes one batch per permit (a slow store), keeping nothing once it is done."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.batches: list[int] = []

    def write(self, batch: list) -> None:
        self.batches.append(len(batch))
        self.permits.acquire(timeout=60)

    def close(self) -> None:
        pass


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_batch_being_written_counts_against_the_event_queues_bytes(traced):
    """Records the sinks are still writing hold their memory: the queue must not fill again behind them.

    Before, a batch left the byte count when it was taken, so a slow sink held a whole budget's worth of
    records while the queue took another: twice ``logging.events.queue_mb``.
    """
    from agent_otel.drops import DropCounter
    from agent_otel.events import Pipeline

    drops = DropCounter()
    sink = SteppedSink()
    pipeline = Pipeline([sink], max_bytes=8 * MB, drops=drops)

    def big(i: int) -> dict:
        return {"kind": "tool", "n": i, "blob": bytes([i]) * MB}  # a 1 MB snapshot

    gc.collect()
    baseline = tracemalloc.get_traced_memory()[0]
    pipeline.emit("snapshot", big(0))
    wait_for(lambda: sink.batches == [1])  # the sink holds the pipeline
    for i in range(1, 7):
        pipeline.emit("snapshot", big(i))
    sink.permits.release()
    wait_for(lambda: sink.batches == [1, 6])  # 6 MB being written
    for i in range(7, 13):
        pipeline.emit("snapshot", big(i))
    held = held_since(baseline)
    assert pipeline.queued_bytes <= 8 * MB + 3000  # the newest record is always kept
    assert held < 9 * MB, f"{held / MB:.1f} MiB held for a budget of 8 MiB"
    assert drops.snapshot() == {("events", "queue_full"): 5}
    for _ in range(3):
        sink.permits.release()
    assert pipeline.flush(10)
    assert sink.batches == [1, 6, 1] and pipeline.delivered + pipeline.dropped == 13
    assert pipeline.queued_bytes == 0
    pipeline.close()


def test_spans_waiting_for_a_collector_that_hangs_hold_no_more_than_the_retry_budget(rig, traced):
    """While the exporter's thread waits on a collector that never answers, spans queue up: they count
    against ``exporter.retry_buffer_mb`` too. Before, the queue held 8,192 spans of any size."""
    from agent_otel import sdk
    from tests.otlp_receiver import Blackhole

    hole = Blackhole()
    try:
        exporter = {"retry_buffer_mb": 2.0, "batch_size": 64, "schedule_delay_s": 0.05, "timeout_s": 10}
        rig.setup(hole.endpoint, {"exporter": exporter})
        tracer = sdk.installation().tracer_provider.get_tracer("app")
        gc.collect()
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(3000):  # an application's spans with a 10 KB attribute each (distinct values)
            tracer.start_span("work", attributes={"payload": f"{i:05d}" + "x" * 10_000}).end()
        held = held_since(baseline)
        processor = rig.processor
        dropped = rig.counted().get(("spans", "retry_buffer_full"), 0)
        assert held < 4 * MB, f"{held / MB:.1f} MiB held for a budget of 2 MiB"
        assert dropped > 2000  # the oldest went, counted
        assert processor.exported + processor.pending + dropped == 3000
    finally:
        hole.close()
