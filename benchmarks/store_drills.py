"""Drills for the run store and the redaction path, with the figures the README's Reliability section quotes.

Each drill drives a real agent (``agent_otel.run`` and ``@tool``) in this process and reports what reached
its destination; none asserts a timing (tests/ asserts the behaviour, this measures it):

* ``pg-restart``: a real PostgreSQL server (tests/store/pg.py starts one on a free loopback port) is
  restarted with ``pg_ctl restart -m fast`` (or stopped and kept down ``--down`` seconds) while an agent
  makes tool calls at ``--rate`` runs per second; the agent keeps going for ``--seconds``, then the drill
  waits up to a minute for the store to catch up and counts runs and tool-call events stored against
  those made.
* ``store-args``: one tool call with a ``--mb`` MB string argument and result, ``store_args`` off and on;
  wall time of the call on the agent's thread, and the size of what reached the event sink.
* ``store-outage``: PostgreSQL unreachable, ``--calls`` tool calls each returning a distinct 768 kB result
  (each one a replay snapshot); RSS growth of the process and what the store sink holds and dropped.
* ``quick-check``: how long doctor's integrity check takes on a store of ``--runs`` runs.

Run from the repository root: ``python benchmarks/store_drills.py pg-restart`` (``--json`` for machine-
readable output). To measure another version of agent-otel, put its ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # tests.store.pg, after an explicit PYTHONPATH

import agent_otel  # noqa: E402
from agent_otel import sdk  # noqa: E402

QUIET = {"exporter": {"probe_local": False}}


def _store_sink() -> Any:
    inst = sdk.installation()
    return next(s for s in inst.pipeline.sinks() if type(s).__name__ == "StoreSink")


def pg_restart(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from tests.store.pg import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        url = server.new_database()
        agent_otel.setup("drill", store=url, instrument=False, config=QUIET)

        @agent_otel.tool(name="search")
        def search(q: int) -> list[int]:
            return [q]

        made = {"runs": 0, "calls": 0}
        stop = threading.Event()

        def agent() -> None:
            while not stop.is_set():
                with agent_otel.run("drill-agent"):
                    for i in range(args.calls_per_run):
                        search(i)
                        made["calls"] += 1
                made["runs"] += 1
                time.sleep(1 / args.rate)

        worker = threading.Thread(target=agent)
        worker.start()
        time.sleep(args.restart_at)
        started = time.monotonic()
        if args.down:  # stopped, kept down, started again
            server.halt()
            time.sleep(args.down)
            server.resume()
        else:
            server.restart()
        restart_s = time.monotonic() - started
        time.sleep(max(args.seconds - args.restart_at - restart_s, 0))
        stop.set()
        worker.join()
        deadline = time.monotonic() + 60
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                runs = conn.execute("SELECT count(*) FROM agent_runs WHERE status <> 'running'").fetchone()[0]
                calls = conn.execute("SELECT count(*) FROM agent_events WHERE kind = 'tool_result'")
                calls = calls.fetchone()[0]
                if (runs, calls) == (made["runs"], made["calls"]) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        sink = _store_sink()
        out = {
            "store_down_s": round(restart_s, 2),
            "runs_made": made["runs"],
            "runs_stored": runs,
            "calls_made": made["calls"],
            "calls_stored": calls,
            "calls_lost": made["calls"] - calls,
            "sink_dropped": sink.dropped,
        }
    finally:
        agent_otel.shutdown()
        server.stop()
    return out


class _ListSink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        for kind, payload in batch:
            if kind == "event":
                for key in ("args", "result"):
                    if key in payload:
                        self.bytes += len(json.dumps(payload[key], default=str))

    def close(self) -> None:
        pass


def store_args(args: argparse.Namespace) -> dict[str, Any]:
    value = "x" * int(args.mb * 1_000_000)
    out: dict[str, Any] = {"mb": args.mb}
    for on in (False, True):
        sink = _ListSink()
        config = {**QUIET, "logging": {"events": {"store_args": on}}}
        agent_otel.setup("drill", store=False, instrument=False, event_sinks=[sink], config=config)
        try:
            with agent_otel.run("drill-agent") as run:
                started = time.perf_counter()
                run.call_tool("echo", lambda body: body, {"body": value})
                elapsed = time.perf_counter() - started
            sdk.flush(30)
        finally:
            agent_otel.shutdown()
        key = "on" if on else "off"
        out[f"call_ms_store_args_{key}"] = round(elapsed * 1000, 1)
        out[f"sink_bytes_store_args_{key}"] = sink.bytes
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _malloc_trim() -> None:
    """Give freed heap pages back (glibc keeps them after many 768 kB strings come and go): what is
    left is what is still held, not allocator fragmentation."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def store_outage(args: argparse.Namespace) -> dict[str, Any]:
    agent_otel.setup("drill", store="postgresql://drill@127.0.0.1:1/down", instrument=False, config=QUIET)
    try:

        @agent_otel.tool(name="fetch")
        def fetch(i: int) -> str:
            return f"{i:08d}" + "r" * 768_000

        with agent_otel.run("warm-up"):  # the sink's first try imports psycopg: not part of the growth
            fetch(-1)
        sdk.flush(30)
        gc.collect()
        _malloc_trim()
        before = _rss_mb()
        with agent_otel.run("drill-agent"):
            for i in range(args.calls):
                fetch(i)
        sdk.flush(30)
        gc.collect()
        after = _rss_mb()
        _malloc_trim()
        trimmed = _rss_mb()
        sink = _store_sink()
        pending = getattr(sink, "_pending", [])
        held = sum(len(rec[1]["blob"].plain) for rec in pending if rec[1].get("blob") is not None)
        return {
            "calls": args.calls,
            "rss_growth_mb": round(after - before, 1),
            "rss_growth_after_malloc_trim_mb": round(trimmed - before, 1),
            "snapshot_mb_held": round(held / 2**20, 1),
            "sink_dropped": sink.dropped,
        }
    finally:
        agent_otel.shutdown()


def quick_check(args: argparse.Namespace) -> dict[str, Any]:
    from tests.store import seed

    from agent_otel.store import StoreSink, Target, open_store

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "big.db")
        sink = StoreSink(Target("sqlite", path), {"logs_days": 0, "tool_snapshot_days": 0})
        now = seed.now_ms()
        for start in range(0, args.runs, 1000):
            batch: list[tuple[str, dict[str, Any]]] = []
            for i in range(start, min(start + 1000, args.runs)):
                batch += seed.run_records(now - i * 1000)
            sink.write(batch)
        sink.close()
        store = open_store(Target("sqlite", path), create=False)
        try:
            size = store.size_bytes() or 0
            started = time.perf_counter()
            result = store.integrity()
            elapsed = time.perf_counter() - started
        finally:
            store.close()
    return {
        "runs": args.runs,
        "store_mb": round(size / 2**20, 1),
        "quick_check_s": round(elapsed, 2),
        "checked": result["checked"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="drill", required=True)
    p = sub.add_parser("pg-restart")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--restart-at", type=float, default=2.0)
    p.add_argument("--rate", type=float, default=100.0, help="runs per second")
    p.add_argument("--calls-per-run", type=int, default=5)
    p.add_argument("--down", type=float, default=0.0, help="keep the server down this long (s)")
    p = sub.add_parser("store-args")
    p.add_argument("--mb", type=float, default=50.0)
    p = sub.add_parser("store-outage")
    p.add_argument("--calls", type=int, default=400)
    p = sub.add_parser("quick-check")
    p.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    drill = {"pg-restart": pg_restart, "store-args": store_args, "store-outage": store_outage}
    drill["quick-check"] = quick_check
    out = {"drill": args.drill, "agent_otel": os.path.dirname(agent_otel.__file__), **drill[args.drill](args)}
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>28}  {value}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
