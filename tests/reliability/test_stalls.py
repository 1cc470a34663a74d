"""What agent-otel holds during an outage stays out of the garbage collector's way.

A full collection walks every object the collector tracks, with every thread stopped: in the 200,000-call
outage drill (``benchmarks/reliability.py``) the records and spans agent-otel held were a third of what it
walked, and their promotions to the oldest generation triggered twice the full collections. A dict whose
values are all plain (str, int, float, None, bytes) is not tracked; one holding an object is.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from typing import Any

import agent_otel
from agent_otel import sdk
from agent_otel.store import Target, open_store
from agent_otel.store.snapshots import tool_snapshots
from tests.helpers import attached_span_processor
from tests.otlp_receiver import OTLPReceiver, free_port
from tests.reliability.conftest import tool_calls


class GatedSink:
    """Holds the pipeline until the gate opens (a slow store), and keeps what it was handed."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.records: list[tuple[str, dict[str, Any]]] = []

    def write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        self.entered.set()
        self.gate.wait(60)
        self.records.extend(batch)

    def close(self) -> None:
        self.gate.set()


def test_records_waiting_in_the_event_queue_are_not_tracked_and_sinks_still_get_blobs(rig, tmp_path):
    sink = GatedSink()
    db = tmp_path / "runs.db"
    rig.setup(None, {}, store=str(db), event_sinks=[sink])
    with agent_otel.run("warm") as run:
        run.call_tool("fetch", lambda i: i, {"i": -1})
    assert sink.entered.wait(10)  # the first batch holds the pipeline: what follows waits in its queue
    with agent_otel.run("agent", input={"ticket": 7}) as run:
        for i in range(50):
            run.call_tool("fetch", lambda i: {"row": i, "text": "r" * 100}, {"i": i})
    pipeline = sdk.installation().pipeline
    # (The warm run's own stop may still wait too: the first batch can have left without it.)
    queued = [(t, p) for t, p in pipeline.queued() if p.get("run_id") == run.run_id]
    snapshots = [p for t, p in queued if t == "snapshot"]
    assert len(snapshots) == 51  # the run's input and 50 results, each carrying its bytes
    # Every record of the 50 calls (the tool's event and its snapshot) and the run's own: only the run's
    # stop event, whose usage is a dict, is tracked.
    assert [(t, p["kind"]) for t, p in queued if gc.is_tracked(p)] == [("event", "stop")]

    sink.gate.set()
    assert sdk.flush(10)
    # The sinks get what they always did: a blob object that prints as its size, never the bytes.
    handed = [p for t, p in sink.records if t == "snapshot" and p["run_id"] == run.run_id]
    blobs = [p["blob"] for p in handed if p["kind"] == "tool"]
    assert len(blobs) == 50 and all("bytes>" in repr(b) for b in blobs)
    assert not any(k.startswith("_blob") for _, p in sink.records for k in p)
    agent_otel.shutdown()
    with sqlite3.connect(db) as conn:
        # Small data is stored with its snapshot (the calls' in their run's packs, the input in the run's
        # row), larger data in the blob table.
        (inputs,) = conn.execute(
            "SELECT count(*) FROM agent_snapshot_runs r WHERE r.run_id = ? AND (r.input_data IS NOT NULL OR "
            "EXISTS (SELECT 1 FROM agent_snapshot_blobs b WHERE b.sha = r.input_sha))",
            (run.run_id,),
        ).fetchone()
    store = open_store(Target("sqlite", str(db)), writer=False)
    try:
        data: dict = {}
        calls = tool_snapshots(store, [run.run_id], data)[run.run_id]
        blobs = {r["sha"] for r in store.query("SELECT sha FROM agent_snapshot_blobs")}
    finally:
        store.close()
    stored = [c for c in calls if c["blob_sha"] in data or c["blob_sha"] in blobs]
    assert (len(calls), len(stored), inputs) == (50, 50, 1)


def test_spans_ending_while_the_retry_buffer_is_full_are_dropped_at_once_not_held(rig):
    port = free_port()
    rig.setup(
        f"http://127.0.0.1:{port}",  # refused: every batch goes to the retry buffer
        {"exporter": {"retry_buffer_mb": 0.05, "batch_size": 64, "schedule_delay_s": 0.05, "timeout_s": 0.5}},
    )
    processor = rig.processor
    deadline = time.monotonic() + 30
    while not rig.counted().get(("spans", "retry_buffer_full")) and time.monotonic() < deadline:
        tool_calls("a", "lookup", 200, "n" * 200)
        time.sleep(0.1)
    before = rig.counted()[("spans", "retry_buffer_full")]
    queued = len(processor._queue)  # spans that ended before the buffer was full may wait there
    made = tool_calls("a", "lookup", 300, "n" * 200)
    # Counted as each span ended, none kept in the queue for the worker to drop later.
    assert rig.counted()[("spans", "retry_buffer_full")] - before == made
    assert len(processor._queue) <= queued

    # The collector comes back: the buffer drains and new spans are queued and delivered again.
    receiver = OTLPReceiver(port).start()
    try:
        deadline = time.monotonic() + 30
        while processor.pending and time.monotonic() < deadline:  # queued, buffered or in flight
            time.sleep(0.05)
        assert processor.pending == 0 and processor.retry_bytes == 0
        # OTLP is at least once: under load a request can outlive the 0.5 s timeout at the client yet be
        # taken by the receiver, and its resend then arrives too (a total count raced with that). What
        # must hold: every span made now arrives, once each.
        made = tool_calls("a", "after", 10)
        assert sdk.flush(5)

        def after() -> list[Any]:
            with receiver._lock:
                return [s for s in receiver.spans if s.name == "execute_tool after"]

        deadline = time.monotonic() + 20
        while len(after()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len({s.span_id for s in after()}) == made - 1  # the tool spans (made counts the run's too)
    finally:
        receiver.stop()


def test_queued_spans_do_not_keep_their_empty_event_and_link_lists(rig):
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.util import BoundedList

    seen: list[Any] = []

    class After(SpanProcessor):  # an application's processor, after agent-otel's
        def on_end(self, span: Any) -> None:
            seen.append((span.name, span.events, span.links, span.dropped_events, span.dropped_links))

    rig.setup(f"http://127.0.0.1:{free_port()}", {"exporter": {"batch_size": 4096, "schedule_delay_s": 60}})
    with attached_span_processor(sdk.installation().tracer_provider, After()):
        tool_calls("a", "lookup", 5)
    queued = list(rig.processor._queue)
    tools = [s for s in queued if s.name == "execute_tool lookup"]
    (run,) = [s for s in queued if s not in tools]
    assert len(tools) == 5
    for span in tools:  # no events, no links: nothing left of the lists for the garbage collector
        assert not any(isinstance(r, BoundedList) for r in gc.get_referents(span))
        assert (span.events, span.links, span.dropped_events, span.dropped_links) == ((), (), 0, 0)
    assert [e.name for e in run.events] == ["agent.stop"]  # a span with events keeps them
    assert seen == [(s.name, s.events, s.links, 0, 0) for s in queued]
