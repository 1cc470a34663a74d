"""What an instrumented tool call costs, measured side by side in one process.

Prints ratios, not absolute pass/fail figures: the machine decides the microseconds, the ratio says what
agent-otel adds. Three numbers per case:

* ``hot path``: CPU of the calling thread only (what the agent waits for),
* ``total``: CPU of the whole process including agent-otel's background threads (span export batching,
  event pipeline), measured up to a flush, so work moved off the hot path is still counted,
* the ratio of our instrumented tool call to a bare OpenTelemetry SDK span with the same attributes,
  both going through the same TracerProvider and processor.

Run: ``make bench`` (or ``python benchmarks/overhead.py --calls 20000``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import agent_otel
from agent_otel import sdk
from agent_otel.hashing import sha


class DiscardExporter(SpanExporter):
    """Accepts and drops spans: we measure instrumentation, not a network."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class DiscardSink:
    def write(self, batch: Any) -> None:
        pass

    def close(self) -> None:
        pass


def payload(size: int) -> dict[str, Any]:
    """A realistic args dict of about ``size`` bytes of canonical JSON."""
    item = {"id": 12345, "title": "Refund request for order", "price": 19.99, "tags": ["billing", "vip"]}
    per_item = len(json.dumps(item, separators=(",", ":")))
    return {
        "query": "customer refund policy",
        "items": [dict(item, id=i) for i in range(max(1, size // per_item))],
    }


def measure(
    fn: Callable[[], None], calls: int, flush: Callable[[], None], repeats: int
) -> tuple[float, float]:
    """Median (hot-path us, total us) per call over ``repeats`` rounds of ``calls`` calls."""
    hot, total = [], []
    for _ in range(repeats):
        gc.collect()
        t_proc, t_thread = time.process_time(), time.thread_time()
        for _ in range(calls):
            fn()
        thread_cpu = time.thread_time() - t_thread
        flush()
        proc_cpu = time.process_time() - t_proc
        hot.append(thread_cpu / calls * 1e6)
        total.append(proc_cpu / calls * 1e6)
    return statistics.median(hot), statistics.median(total)


def seed_sha(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()[:24]


def hashing_table(repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    for label, size in (("1 KB", 1_000), ("100 KB", 100_000), ("1 MB", 1_000_000)):
        obj = payload(size)
        n = max(3, 2_000_000 // size)
        ours = min(_timeit(lambda o=obj: sha(o), n) for _ in range(repeats))
        seed = min(_timeit(lambda o=obj: seed_sha(o), n) for _ in range(repeats))
        assert sha(obj) == seed_sha(obj)
        rows.append((label, ours, seed))
    return rows


def _timeit(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    provider = TracerProvider(shutdown_on_exit=False)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    agent_otel.setup(
        "bench",
        store=False,
        instrument=False,
        tracer_provider=provider,
        meter_provider=meters,
        span_exporters=[DiscardExporter()],
        event_sinks=[DiscardSink()],
        config={"exporter": {"probe_local": False}, "guards": {"loop": {"enabled": False}}},
    )
    tracer = provider.get_tracer("bench")
    args_1k = payload(1_000)
    result = {"status": 200, "body": "ok"}

    def tool(**kwargs: Any) -> dict[str, Any]:
        return result

    counter = iter(range(10**9))

    def bare() -> None:
        step = next(counter)
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "http.get",
            "agent.run_id": "r" * 32,
            "agent.step_id": step,
            "agent.tool.args_sha": "a" * 24,
            "agent.tool.result_sha": "b" * 24,
            "agent.tool.status": "ok",
            "agent.tool.attempts": 1,
        }
        with tracer.start_as_current_span("execute_tool http.get", attributes=attributes):
            tool(**args_1k)

    run = agent_otel.run("bench-agent")
    run.__enter__()

    def ours() -> None:
        run.call_tool("http.get", tool, args_1k)

    def flush() -> None:
        sdk.flush(10)

    for fn in (bare, ours):  # warm up caches and lazily created threads
        measure(fn, 500, flush, 1)
    bare_hot, bare_total = measure(bare, args.calls, flush, args.repeats)
    ours_hot, ours_total = measure(ours, args.calls, flush, args.repeats)
    run.__exit__(None, None, None)
    agent_otel.shutdown()

    print(
        f"agent-otel {agent_otel.__version__}, Python {sys.version.split()[0]}, "
        f"{args.calls} calls x {args.repeats} rounds (median), 1 KB args"
    )
    print()
    print(f"{'case':<58}{'hot path':>12}{'total':>12}")
    print(f"{'bare OpenTelemetry SDK span, same 8 attributes':<58}{bare_hot:>10.1f}us{bare_total:>10.1f}us")
    print(f"{'agent-otel tool call (hash+span+metrics+event)':<58}{ours_hot:>10.1f}us{ours_total:>10.1f}us")
    print(f"{'ratio (target <= 2.0)':<58}{ours_hot / bare_hot:>11.2f}x{ours_total / bare_total:>11.2f}x")
    print()
    print(f"{'canonical JSON + sha256':<20}{'agent-otel':>14}{'json.dumps (seed)':>20}{'speed-up':>10}")
    for label, ours_us, seed_us in hashing_table(args.repeats):
        print(f"{label:<20}{ours_us:>12.1f}us{seed_us:>18.1f}us{seed_us / ours_us:>9.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
