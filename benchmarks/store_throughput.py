"""How many runs per second the run store takes, SQLite and PostgreSQL, before it drops anything.

The loop of issue 17: one run = an LLM call, 8 tool calls with ~1 KB of arguments and ~2 KB results, an LLM
call; replay snapshots on (the default), so each tool call is an event and a snapshot with its own result.

* ``capacity``: the records of such runs, as the real SDK emits them (captured from ``agent_otel.run`` and
  ``@tool`` once, then cloned with fresh run ids and distinct results), handed to a ``StoreSink`` in the
  batches the event pipeline delivers (2,048 records). The figure is runs per CPU-second of the writing
  thread: what one core can take. Beyond it records queue up and the pipeline drops the oldest. Into an
  empty store by default; ``--base STORE`` starts each round from a copy of a large SQLite store (say
  benchmarks/cli_scaling.py's), where each batch touches more pages of the indexes.
* ``methods``: the same, for each way the write path can put rows in (``agent_otel.store.writes``):
  multi-row ``INSERT ... VALUES``, ``executemany`` (psycopg pipelines it), and ``COPY`` for PostgreSQL's
  events; the defaults are the fastest of these.
* ``frames``: SQLite only: the WAL frames (pages written) per run, by the table or index each belongs to
  (``--base`` as for ``capacity``): where the write path's I/O goes. ``--result-bytes N`` makes the tool
  results about N bytes instead of ~2 KB, ``--inline-max 0`` stores every result in the blob table (the
  form before schema migration 7): what the store's INLINE_MAX_BYTES is chosen by. Both apply to
  ``capacity`` too.
* ``drill``: the real thing: agent threads run the loop at ``--rate`` runs/s through ``setup()`` (pipeline,
  metrics, store sink) for ``--seconds``; prints what the pipeline and the store sink dropped.

PostgreSQL runs on a throwaway server (tests/store/pg.py). Run from the repository root:
``python benchmarks/store_throughput.py capacity`` (``--runs``, ``--dialects``, ``--json``); to measure
another version of agent-otel, put its ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # tests.store.pg, after an explicit PYTHONPATH

import agent_otel  # noqa: E402
from agent_otel import sdk  # noqa: E402

QUIET = {"exporter": {"probe_local": False}}
BATCH = 2048  # what the event pipeline hands a sink at most per call
ARGS = {"query": "x" * 900, "filters": {"lang": "en", "limit": 20}}  # ~1 KB of arguments


TEXT = 80  # characters of each of a result's 18 hits: ~2 KB a result (--result-bytes changes it)


def _result(i: int) -> dict[str, Any]:
    """~2 KB, distinct per call (a snapshot blob each, as real results mostly are)."""
    return {"id": i, "hits": [{"doc": f"kb-{i}-{k}", "text": "y" * TEXT} for k in range(18)]}


_SCRATCH: tempfile.TemporaryDirectory[str] | None = None


def _scratch() -> str:
    """One directory for every store this process makes, removed when it exits (even on an error)."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.TemporaryDirectory(prefix="agent-otel-bench-")
    return _SCRATCH.name


def realistic_run(search: Any, i: int) -> None:
    with agent_otel.run("bench-agent", model="gpt-4o", prompt_version="v1", input={"q": i}) as run:
        run.record_llm(model="gpt-4o", input_tokens=800, output_tokens=60)
        for k in range(8):
            search(ARGS, i * 8 + k)
        run.record_llm(model="gpt-4o", input_tokens=1200, output_tokens=90)


def capture_one_run() -> list[tuple[str, dict[str, Any]]]:
    """The records of one realistic run, as the SDK with its default configuration emits them."""
    home = tempfile.mkdtemp(dir=_scratch())
    os.environ["AGENT_OTEL_HOME"] = home
    agent_otel.setup("bench", store=os.path.join(home, "capture.db"), instrument=False, config=QUIET)
    from tests.conftest import ListSink  # keeps every record (the pipeline hands all sinks the same)

    capture = ListSink()
    sdk.installation().pipeline.add_sink(capture)

    @agent_otel.tool(name="search")
    def search(args: dict[str, Any], i: int) -> dict[str, Any]:
        return _result(i)

    realistic_run(search, 0)
    sdk.flush(10)
    agent_otel.shutdown()
    return capture.records


_LAST_NUMBER = re.compile(rb":\d+}$")
_distinct = itertools.count(1)  # every cloned blob is new to the store, as real results mostly are


def clone(template: list[tuple[str, dict[str, Any]]], n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` runs like ``template``, each with its own run id and distinct results (new blobs)."""
    from agent_otel.hashing import sha_bytes
    from agent_otel.snapshots import Blob

    out: list[tuple[str, dict[str, Any]]] = []
    now = int(time.time() * 1000)
    for i in range(n):
        run_id = uuid.uuid4().hex
        for rtype, payload in template:
            p = dict(payload)
            if "run_id" in p:
                p["run_id"] = run_id
            for key in ("created_at_ms", "ts_ms", "ended_at_ms"):
                if p.get(key) is not None:
                    p[key] = now + i
            blob = p.get("blob")
            if blob is not None:  # {"q":0} and {"hits":[...],"id":k}: a number of the process's own
                plain, n = _LAST_NUMBER.subn(b":%d}" % next(_distinct), blob.plain, count=1)
                assert n == 1, blob.plain[-40:]
                # Hashed here, as the SDK hashes a result (its result_sha) and a run's input on the
                # agent's thread: the store sink gets them with their sha, as in the real pipeline.
                sha = sha_bytes(plain)
                p["blob"] = Blob(sha, plain, blob.sealer)
                p["input_sha" if p.get("kind") == "run" else "result_sha"] = sha
            out.append((rtype, p))
    return out


def capacity(
    location: str, runs: int, template: list[tuple[str, dict[str, Any]]], base: str | None = None
) -> dict[str, Any]:
    """``base``: a SQLite store to start from (copied), e.g. one of benchmarks/cli_scaling.py's; its
    daily gc is held off, so that what is measured is the writes alone."""
    from agent_otel.store import StoreSink, Target

    kind = "postgresql" if location.startswith("postgresql://") else "sqlite"
    if base is not None and kind == "sqlite":
        shutil.copyfile(base, location)
    elif base is not None:
        location = _pg_copy(base, location)
    # gc_interval_s: the next gc is due that long after the store's last one (or after 1970 in a store
    # never collected): 1e12 s holds it off.
    retention = {"logs_days": 30, "tool_snapshot_days": 14}
    sink = StoreSink(Target(kind, location), retention, gc_interval_s=1e12)
    warm = clone(template, 200)
    sink.write(warm[:BATCH])  # opens, migrates
    records = clone(template, runs)
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for i in range(0, len(records), BATCH):
        sink.write(records[i : i + BATCH])
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    assert sink.error is None and not sink.dropped, (sink.error, sink.dropped)
    sink.close()
    return {
        "runs": runs,
        "records": len(records),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "runs_per_cpu_s": round(runs / cpu),
        "records_per_cpu_s": round(len(records) / cpu),
    }


def _pg_copy(base: str, location: str) -> str:
    """A copy of the PostgreSQL database ``base`` (a URL) on its server, named as ``location``'s."""
    import psycopg

    name = location.rsplit("/", 1)[1]
    server, template = base.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    _PG_COPIES.append((f"{server}/postgres", name))
    return f"{server}/{name}"


_PG_COPIES: list[tuple[str, str]] = []


def _drop_pg_copies() -> None:
    import psycopg

    while _PG_COPIES:
        admin, name = _PG_COPIES.pop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")


def frames(
    location: str, runs: int, template: list[tuple[str, dict[str, Any]]], base: str | None
) -> dict[str, Any]:
    """SQLite: the WAL frames (4 KB pages written) per run, by the table or index (B-tree) each page
    belongs to. Checkpoints are held off for the round, so every frame a commit writes stays in the WAL;
    each is then written to the database file again by a checkpoint (and read back first)."""
    import sqlite3
    import struct

    from agent_otel.store import StoreSink, Target, db

    if base is not None:
        shutil.copyfile(base, location)
    saved = db.WAL_CHECKPOINT_PAGES
    db.WAL_CHECKPOINT_PAGES = 1 << 30
    try:
        sink = StoreSink(
            Target("sqlite", location), {"logs_days": 30, "tool_snapshot_days": 14}, gc_interval_s=1e12
        )
        sink.write(clone(template, 200)[:BATCH])  # opens, migrates
        assert sink._store is not None
        sink._store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        records = clone(template, runs)
        for i in range(0, len(records), BATCH):
            sink.write(records[i : i + BATCH])
        assert sink.error is None and not sink.dropped, (sink.error, sink.dropped)
        with open(location + "-wal", "rb") as f:
            wal = f.read()
        page_size = struct.unpack(">I", wal[8:12])[0]
        pages = [
            struct.unpack(">I", wal[o : o + 4])[0] for o in range(32, len(wal) - page_size, 24 + page_size)
        ]
        conn = sqlite3.connect(location)
        try:  # dbstat: SQLite's own page map (the sqlite3 of most builds has it)
            owner = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
        finally:
            conn.close()
        sink.close()
    finally:
        db.WAL_CHECKPOINT_PAGES = saved
    by: dict[str, int] = {}
    for page in pages:
        name = owner.get(page, "(free or new)")
        by[name] = by.get(name, 0) + 1
    return {
        "runs": runs,
        "frames_per_run": round(len(pages) / runs, 2),
        "by_btree": {k: round(v / runs, 2) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
    }


def _sizes(template: list[tuple[str, dict[str, Any]]]) -> str:
    """The tool results' size, and where the store keeps results of that size."""
    from agent_otel.store import snapshots

    sizes = [len(p["blob"].plain) for _, p in template if p.get("kind") == "tool" and p.get("blob")]
    limit = getattr(snapshots, "INLINE_MAX_BYTES", None)  # None: a version with every result a blob
    where = "every result a blob" if limit is None else f"INLINE_MAX_BYTES {limit:,}"
    return f" (tool results {min(sizes):,} to {max(sizes):,} bytes; {where})"


def _timed(write: Any, name: str, acc: dict[str, float]) -> Any:
    def timed(batch: list[tuple[str, dict[str, Any]]]) -> None:
        t0 = time.thread_time()
        try:
            write(batch)
        finally:
            acc[name] = acc.get(name, 0.0) + time.thread_time() - t0

    return timed


#: (label, SQLite rows, PostgreSQL rows, PostgreSQL events) as agent_otel.store.writes names them.
METHODS = (
    ("multi-row VALUES", "values", "values", "values"),
    ("executemany", "executemany", "executemany", "executemany"),
    ("executemany, COPY for events", None, "executemany", "copy"),
)


def methods(dialect: str, location: Any, runs: int, repeat: int, template: Any) -> dict[str, Any]:
    from agent_otel.store import writes

    saved = (writes.SQLITE_ROWS, writes.PG_ROWS, writes.PG_EVENTS)
    out: dict[str, Any] = {}
    try:
        for label, sqlite_rows, pg_rows, pg_events in METHODS:
            if dialect == "sqlite" and sqlite_rows is None:
                continue
            writes.SQLITE_ROWS = sqlite_rows or saved[0]
            writes.PG_ROWS, writes.PG_EVENTS = pg_rows, pg_events
            rounds = [capacity(location(), runs, template) for _ in range(repeat)]
            out[label] = {
                "runs_per_cpu_s": round(statistics.median(r["runs_per_cpu_s"] for r in rounds)),
                "wall_s": statistics.median(r["wall_s"] for r in rounds),
            }
    finally:
        writes.SQLITE_ROWS, writes.PG_ROWS, writes.PG_EVENTS = saved
    return out


def drill(location: str, rate: float, seconds: float, threads: int) -> dict[str, Any]:
    agent_otel.setup("drill", store=location, instrument=False, config=QUIET)
    inst = sdk.installation()
    store_sink = next(s for s in inst.pipeline.sinks() if type(s).__name__ == "StoreSink")
    sink_cpu: dict[str, float] = {}
    for sink in inst.pipeline.sinks():  # CPU time of each sink's writes, on the pipeline's thread
        sink.write = _timed(sink.write, type(sink).__name__, sink_cpu)  # type: ignore[method-assign]

    @agent_otel.tool(name="search")
    def search(args: dict[str, Any], i: int) -> dict[str, Any]:
        return _result(i)

    made = [0] * threads
    stop = threading.Event()

    def agent(t: int) -> None:
        interval = threads / rate
        next_at = time.perf_counter()
        i = t
        while not stop.is_set():
            realistic_run(search, i)
            made[t] += 1
            i += threads
            next_at += interval
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    workers = [threading.Thread(target=agent, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    sdk.flush(60)
    out = {
        "offered_runs_per_s": rate,
        "made_runs": sum(made),
        "achieved_runs_per_s": round(sum(made) / elapsed),
        "pipeline_dropped": inst.pipeline.dropped,
        "store_dropped": store_sink.dropped,
        "sink_cpu_us_per_run": {k: round(v * 1e6 / max(sum(made), 1)) for k, v in sink_cpu.items()},
    }
    agent_otel.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("capacity", "methods", "drill", "frames"))
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=3000, help="capacity: runs written")
    parser.add_argument("--repeat", type=int, default=3, help="capacity: rounds (median)")
    parser.add_argument(
        "--base", help="capacity: start each SQLite round from a copy of this store (default: empty)"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="drill: runs per second offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="drill: how long")
    parser.add_argument("--threads", type=int, default=4, help="drill: agent threads")
    parser.add_argument(
        "--pg-base",
        help="capacity: start each PostgreSQL round from a copy (CREATE DATABASE ... TEMPLATE) of this "
        "database, a postgresql:// URL of a running server (say benchmarks/cli_scaling.py's)",
    )
    parser.add_argument(
        "--result-bytes",
        type=int,
        help="capacity, frames: tool results of about this many bytes of JSON (default ~2 KB: the issue's)",
    )
    parser.add_argument(
        "--inline-max",
        type=int,
        help="capacity, frames: the store's INLINE_MAX_BYTES for the round (0: every result a blob)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.result_bytes is not None:
        global TEXT
        TEXT = max(1, (args.result_bytes - 40) // 18 - 30)  # each hit: {"doc":"kb-0-0","text":"..."},
    if args.inline_max is not None:
        from agent_otel.store import snapshots as store_snapshots

        store_snapshots.INLINE_MAX_BYTES = args.inline_max
    results: dict[str, Any] = {}
    server = None
    template = capture_one_run() if args.what != "drill" else []
    try:
        for dialect in args.dialects.split(","):

            def location(dialect: str = dialect) -> str:
                nonlocal server
                if dialect == "sqlite":
                    return os.path.join(tempfile.mkdtemp(dir=_scratch()), "store.db")
                if args.pg_base:  # a name for the copy, on the base's server (capacity makes it)
                    return f"{args.pg_base.rsplit('/', 1)[0]}/bench_{uuid.uuid4().hex[:12]}"
                if server is None:
                    from tests.store.pg import PostgresServer

                    server = PostgresServer()
                    server.start()
                return server.new_database()

            if args.what == "capacity":
                base = args.pg_base if dialect == "postgresql" else args.base
                rounds = []
                for _ in range(args.repeat):
                    rounds.append(capacity(location(), args.runs, template, base))
                    _drop_pg_copies()  # a large copy each round: not all at once on the disk
                best = statistics.median(r["runs_per_cpu_s"] for r in rounds)
                results[dialect] = {**rounds[0], "runs_per_cpu_s": round(best), "rounds": rounds}
                results[dialect]["wall_s"] = statistics.median(r["wall_s"] for r in rounds)
                results[dialect]["records_per_cpu_s"] = round(
                    statistics.median(r["records_per_cpu_s"] for r in rounds)
                )
            elif args.what == "frames":
                if dialect == "sqlite":
                    results[dialect] = frames(location(), args.runs, template, args.base)
            elif args.what == "methods":
                results[dialect] = methods(dialect, location, args.runs, args.repeat, template)
            else:
                results[dialect] = drill(location(), args.rate, args.seconds, args.threads)
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    if args.what == "capacity":
        start = f", into a copy of {args.base}" if args.base else ", into an empty store"
        if args.pg_base:
            start += f" (PostgreSQL: into a copy of {args.pg_base})"
        print(
            f"store sink capacity: the realistic run ({len(template)} records), {args.runs:,} runs{start}"
            + _sizes(template)
        )
        print("| store | runs per CPU-second | records per CPU-second | wall s for the runs (median) |")
        print("|---|---|---|---|")
        for dialect, r in results.items():
            print(f"| {dialect} | {r['runs_per_cpu_s']:,} | {r['records_per_cpu_s']:,} | {r['wall_s']} |")
    elif args.what == "methods":
        print(f"rows in by each method: {args.runs:,} realistic runs a round, median of {args.repeat}")
        print("| store | method | runs per CPU-second | wall s |")
        print("|---|---|---|---|")
        for dialect, by in results.items():
            for label, r in by.items():
                print(f"| {dialect} | {label} | {r['runs_per_cpu_s']:,} | {r['wall_s']} |")
    elif args.what == "frames":
        for r in results.values():
            start = f"into a copy of {args.base}" if args.base else "into an empty store"
            sizes = _sizes(template)
            print(f"SQLite WAL frames per run, {args.runs:,} runs {start}{sizes}: {r['frames_per_run']}")
            print("| table or index | frames per run |")
            print("|---|---|")
            for name, n in r["by_btree"].items():
                if n >= 0.01:
                    print(f"| {name} | {n} |")
    else:
        for dialect, r in results.items():
            print(dialect, r)


if __name__ == "__main__":
    main()
