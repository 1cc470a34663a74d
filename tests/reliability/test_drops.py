"""Every span, event and store record that does not reach its destination is counted, and said once.

Counted while the process lives in ``agent_otel_telemetry_dropped_total{signal, reason}`` and summed up at
exit in one WARNING line that reads as a sentence.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading

from agent_otel import sdk
from tests.conftest import ListSink
from tests.otlp_receiver import Blackhole, free_port
from tests.reliability.conftest import tool_calls
from tests.store import seed

SUMMARY = re.compile(r"^agent-otel: dropped (?P<items>.+); counted in agent_otel_telemetry_dropped_total$")
ITEM = re.compile(r"(?P<n>[\d,]+) (?P<noun>[a-z ]+?) \((?P<why>[^)]*)\)")


def summaries(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("agent-otel: dropped")]


def parse_summary(line: str) -> dict[str, int]:
    """{noun: total} from the exit line; fails unless the line is exactly the documented sentence:
    ``agent-otel: dropped 1,234 spans (1,000 unsent at shutdown, 234 queue full) and 5 events (queue
    full); counted in agent_otel_telemetry_dropped_total``."""
    match = SUMMARY.match(line)
    assert match, line
    items = ITEM.findall(match["items"])
    parts = [f"{n} {noun} ({why})" for n, noun, why in items]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    assert match["items"] == listed, line
    return {noun: int(n.replace(",", "")) for n, noun, _ in items}


def records(calls: int) -> int:
    """Pipeline records of a run of ``calls`` tool calls without a store: its row when it starts and
    ends, one event per call and the stop event."""
    return calls + 3


def test_with_the_collector_down_every_span_is_counted_at_exit(rig, tmp_path, caplog):
    """The issue: 10,000 calls, collector refusing, default store: the summary said 1,496 spans of 10,001."""
    port = free_port()  # nothing listens there: connection refused
    rig.setup(f"http://127.0.0.1:{port}", {"exporter.max_queue": 2048}, store=str(tmp_path / "runs.db"))
    produced = sum(tool_calls("a", "t", 999) for _ in range(5))
    while_running = rig.dropped()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sdk.shutdown()
    (line,) = summaries(caplog)
    totals = parse_summary(line)
    assert totals["spans"] == produced, line
    # While the process lived, the metric already counted what was dropped then (nothing is counted twice).
    assert sum(n for (signal, _), n in while_running.items() if signal == "spans") <= produced


def test_a_collector_that_never_answers_cannot_hide_the_batch_in_flight(rig, caplog):
    """The request waiting on a hung collector at exit is counted too, though its worker never returns."""
    hole = Blackhole()
    try:
        rig.setup(hole.endpoint, {"exporter.timeout_s": 30, "exporter.schedule_delay_s": 0.05})
        produced = tool_calls("a", "t", 50)
        assert _poll(lambda: rig.processor._inflight)  # the worker is stuck in the request
        produced += tool_calls("a", "t", 10)
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            sdk.shutdown()
        (line,) = summaries(caplog)
        assert parse_summary(line)["spans"] == produced
    finally:
        hole.close()


class SlowSink(ListSink):
    """A sink that takes its time (a slow disk, a remote store): the queue fills up."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, batch):
        self.gate.wait(30)
        super().write(batch)


def test_event_records_dropped_from_a_full_queue_add_up_and_the_summary_is_a_sentence(rig, caplog):
    """Today: `agent-otel: dropped, 2368 events (queue full)`."""
    sink = SlowSink()
    rig.setup(None, {}, event_sinks=[sink])
    tool_calls("a", "t", 1)  # the first record goes out at once and the sink holds the pipeline
    produced = records(1)
    for _ in range(18):  # beyond the queue's 16,384 records
        tool_calls("b", "t", 999)
        produced += records(999)
    while_running = rig.dropped()
    assert while_running.get(("events", "queue_full"), 0) > 0
    sink.gate.set()
    assert sdk.flush(10)
    dropped = rig.counted()[("events", "queue_full")]
    assert len(sink.records) + dropped == produced
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sdk.shutdown()
    (line,) = summaries(caplog)
    assert parse_summary(line) == {"events": dropped}
    expected = (
        f"agent-otel: dropped {dropped:,} events (queue full); counted in agent_otel_telemetry_dropped_total"
    )
    assert line == expected


def test_records_the_store_cannot_write_are_counted_while_running_and_at_exit(rig, tmp_path, caplog):
    path = str(tmp_path / "newer.db")
    seed.write(path, seed.run_records(seed.now_ms()))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE agent_otel_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    everything = ListSink()
    rig.setup(None, {}, store=path, event_sinks=[everything])
    for _ in range(3):
        tool_calls("a", "t", 10)
    assert sdk.flush(5)
    stored_kinds = [t for t, _ in everything.records if t in ("run", "event", "snapshot")]
    assert rig.dropped() == {("store_records", "store_unavailable"): len(stored_kinds)}
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sdk.shutdown()
    (line,) = summaries(caplog)
    assert parse_summary(line) == {"store records": len(stored_kinds)}


class BrokenSink:
    def write(self, batch):
        raise OSError(28, "No space left on device")

    def close(self):
        pass


def test_records_a_sink_fails_to_write_are_counted(rig):
    rig.setup(None, {}, event_sinks=[BrokenSink()])
    tool_calls("a", "t", 5)
    produced = records(5)
    assert sdk.flush(5)
    assert rig.dropped() == {("events", "sink_error"): produced}


def test_a_record_is_either_delivered_or_counted_never_both(rig):
    """A batch one sink fails on is counted as dropped and not also as delivered (the drill found
    delivered + dropped exceeding what was produced when a sink failed under load)."""
    ok = ListSink()
    rig.setup(None, {}, event_sinks=[ok, BrokenSink()])
    tool_calls("a", "t", 5)
    produced = records(5)
    assert sdk.flush(5)
    pipeline = sdk.installation().pipeline
    assert len(ok.records) == produced  # the working sink still got everything
    assert pipeline.delivered + pipeline.dropped == produced
    assert rig.dropped() == {("events", "sink_error"): produced}


def _poll(check, timeout_s: float = 10.0):
    import time

    deadline = time.monotonic() + timeout_s
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result
