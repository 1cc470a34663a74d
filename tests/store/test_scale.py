"""The store at scale, checked at small scale: every query of the reading commands is served by an index,
gc works in small transactions and counts without deleting, summaries of a migrated store are filled in
the background, the write path leaves the rows the records say, and the CLI starts without the SDK.

Nothing here is timed (benchmarks/cli_scaling.py and benchmarks/store_throughput.py measure).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from agent_otel.store import (
    StoreSink,
    Target,
    open_store,
    periods,
    retention,
    schema,
    sink,
    summaries,
    writes,
)
from tests.store import seed
from tests.store.test_periods import assert_agrees, generated, reference, target, write_through_sink

HOUR, DAY = seed.HOUR_MS, seed.DAY_MS
BIG_TABLES = (
    "agent_runs",
    "agent_events",
    "agent_tool_snapshots",
    "agent_snapshot_runs",
    "agent_snapshot_blobs",
)


# --- every query the reading commands make is served by an index ----------------------------------------


class Traced:
    """The statements a store runs, with their values (SQLite's expanded SQL)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.sql: list[str] = []

    def __enter__(self) -> Traced:
        self.store.conn.set_trace_callback(self.sql.append)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.store.conn.set_trace_callback(None)

    def plans(self) -> dict[str, list[str]]:
        """EXPLAIN QUERY PLAN of each query (not of BEGIN, COMMIT, PRAGMA, ...)."""
        out = {}
        for text in self.sql:
            if re.match(r"\s*(SELECT|DELETE|UPDATE|WITH)\b", text, re.I):
                rows = self.store.conn.execute("EXPLAIN QUERY PLAN " + text).fetchall()
                out[text] = [r[3] for r in rows]
        return out


def full_scans(plans: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Steps that read a whole large table (``SCAN agent_events``; ``SCAN ... USING INDEX`` walks an index
    in order and stops at the query's LIMIT, a ``SEARCH`` reads a range, and a sample is LIMITed)."""
    bad = []
    for text, steps in plans.items():
        if " LIMIT " in text and "count(" in text:  # doctor's sample of a large table
            continue
        for step in steps:
            m = re.match(r"SCAN (\w+)( AS \w+)?$", step)
            if m and m.group(1) in BIG_TABLES:
                bad.append((text[:160], step))
    return bad


@pytest.fixture
def busy_store(tmp_path: Any) -> Iterator[Any]:
    """A SQLite store with 900 runs over three days (written through the sink), a few of them 40 days
    old, and replay snapshots."""
    path = str(tmp_path / "agent-otel.db")
    now = seed.now_ms()
    records = generated(now)
    for i in range(30):
        records += seed.run_records(now - 40 * DAY - i * HOUR)
    write_through_sink(path, records)
    store = open_store(Target("sqlite", path))
    store.execute(
        "INSERT INTO agent_tool_snapshots (run_id, step_id, tool, args_sha, outcome, created_at_ms) "
        "SELECT run_id, step_id, tool, coalesce(args_sha, ''), 'ok', ts_ms FROM agent_events "
        "WHERE kind = 'tool_result'"
    )
    store.execute(
        "INSERT INTO agent_snapshot_blobs (sha, encoding, key_id, size, data, last_used_ms) "
        "SELECT run_id || step_id, 'plain', '', 100, x'00', created_at_ms FROM agent_tool_snapshots"
    )
    yield store
    store.close()


def test_the_reading_commands_queries_are_served_by_indexes(busy_store):
    store = busy_store
    now = seed.now_ms()
    some = store.query("SELECT run_id FROM agent_runs ORDER BY run_id LIMIT 1")[0]["run_id"]
    with Traced(store) as traced:
        store.runs(limit=20)  # runs
        store.runs(limit=20, agent="triage-agent", since_ms=now - DAY)
        store.runs(stop_reason="abandoned")
        row = store.find_run(some[:10])  # show
        store.events_for(row["run_id"])
        store.children(row["run_id"])
        list(store.iter_events(since_ms=now - HOUR))  # export --since 1h
        for method in (periods.EXACT, periods.SUMMARIZED):  # stats, drift
            periods.period(store, now - 30 * DAY, now, None, method=method)
            periods.period(store, now - 7 * DAY - 1234, now - DAY, "support-agent", method=method)
        store.gc({"logs_days": 30, "tool_snapshot_days": 14}, dry_run=True)  # gc --dry-run
        store.counts(exact_up_to=10)  # doctor, estimating
    plans = traced.plans()
    assert plans and not full_scans(plans), full_scans(plans)
    joined = {step for steps in plans.values() for step in steps}
    for expected in (
        "SEARCH agent_runs USING INDEX sqlite_autoindex_agent_runs_1 (run_id>? AND run_id<?)",  # prefix
        "SEARCH agent_run_summaries USING PRIMARY KEY (span_ms=? AND bucket_ms>? AND bucket_ms<?)",
        "SEARCH agent_runs USING INDEX agent_runs_agent_created_at "
        "(agent=? AND created_at>? AND created_at<?)",
        "SEARCH agent_events USING INDEX agent_events_run (run_id=?)",  # a period's events, run by run
        "SEARCH agent_events USING INDEX agent_events_ts (ts_ms>?)",  # export --since
        "SEARCH agent_events USING COVERING INDEX agent_events_ts (ts_ms<?)",  # gc --dry-run
    ):
        assert expected in joined, (expected, sorted(joined))
    assert any("agent_runs_running" in step for step in joined)  # running and abandoned rows


@pytest.mark.e2e
def test_postgresql_can_serve_the_period_queries_from_indexes(request):
    """With sequential scans off, PostgreSQL finds an index for the period's runs and events (on a small
    table it may rightly prefer to scan; the point is that the indexes exist and fit the queries)."""
    server = request.getfixturevalue("postgres")
    url = server.new_database()
    now = seed.now_ms()
    write_through_sink(url, generated(now, n=200))
    store = open_store(Target("postgresql", url))
    try:
        store.execute("SET enable_seqscan = off")
        where, params = periods._where(store, now - 2 * DAY, now, "support-agent")
        for text in (
            f"SELECT count(*) FROM agent_runs WHERE {where} AND status <> 'running'",
            f"SELECT count(*) FROM agent_events WHERE kind = 'llm_result' AND run_id IN "
            f"(SELECT run_id FROM agent_runs WHERE {where})",
            f"SELECT count(*) FROM agent_runs WHERE {where} AND status = 'running'",
            "SELECT data FROM agent_run_summaries WHERE span_ms = ? AND bucket_ms >= ? AND bucket_ms < ?",
        ):
            args = params if "agent_runs" in text else [HOUR, now - DAY, now]
            plan = "\n".join(r[0] for r in store.conn.execute("EXPLAIN " + store.sql(text), args).fetchall())
            assert "Seq Scan" not in plan and "Index" in plan, plan
    finally:
        store.close()


@pytest.mark.e2e
def test_postgresql_reads_are_not_fanned_out_to_parallel_workers(request):
    """On a 1M-run store the planner, misjudging how many events a run has, sent drift's partial-hour
    query to a parallel scan of agent_runs (JIT-compiled): 0.31 s where the index takes 0.01 s. Here a
    database whose settings make parallel plans look free (and indexes costly): the store's sessions still
    plan without parallel workers."""
    import psycopg

    server = request.getfixturevalue("postgres")
    url = server.new_database()
    now = seed.now_ms()
    write_through_sink(url, generated(now, n=200))
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        for setting in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size"):
            admin.execute(f"ALTER DATABASE {name} SET {setting} = 0")
        for setting in ("enable_indexscan", "enable_bitmapscan"):  # a small table's index is cheap
            admin.execute(f"ALTER DATABASE {name} SET {setting} = off")
        admin.execute(f"ALTER DATABASE {name} SET max_parallel_workers_per_gather = 4")
    store = open_store(Target("postgresql", url))
    try:
        where, params = summaries.range_where(store, now - DAY, now, None, "r")
        text = (
            f"SELECT r.agent, e.usage FROM agent_runs r JOIN agent_events e ON e.run_id = r.run_id "
            f"WHERE {where} AND e.kind = 'llm_result'"
        )
        with psycopg.connect(url) as plain:  # what the database's settings plan on their own
            plan = "\n".join(r[0] for r in plain.execute("EXPLAIN " + store.sql(text), params))
        assert "Parallel" in plan, plan
        plan = "\n".join(r[0] for r in store.conn.execute("EXPLAIN " + store.sql(text), params).fetchall())
        assert "Parallel" not in plan and "Gather" not in plan, plan
        assert store.conn.execute("SHOW jit").fetchone()[0] == "off"
    finally:
        store.close()


# --- gc: small transactions, a dry run that counts ------------------------------------------------------


def test_gc_deletes_in_small_transactions_and_its_dry_run_counts_exactly_what_it_deletes(
    busy_store, monkeypatch
):
    store = busy_store
    keep = {"logs_days": 30, "tool_snapshot_days": 14}
    now = seed.now_ms()
    counted = store.gc(keep, now_ms=now, dry_run=True)
    assert counted["agent_runs"] == 30 and counted["agent_events"] == 30 * 7  # 4 tools, 2 LLM calls, stop
    assert counted["agent_tool_snapshots"] > 0
    assert store.query("SELECT count(*) AS n FROM agent_runs")[0]["n"] == 900 + 30  # nothing deleted

    monkeypatch.setattr(retention, "BATCH_RUNS", 7)
    monkeypatch.setattr(retention, "BATCH_ROWS", 50)
    other = open_store(store.target)  # another writer gets the database between two batches
    steps = 0
    try:
        for _ in retention.steps(store, keep, now):
            steps += 1
            other.write([seed.run_records(now)[0][1]], [])
    finally:
        other.close()
    assert steps > 30 / 7 + counted["agent_tool_snapshots"] / 50
    deleted = store.gc(keep, now_ms=now)  # nothing left: the totals of the steps are the dry run's
    assert not any(deleted.values())
    assert (
        store.query(
            "SELECT count(*) AS n FROM agent_runs WHERE created_at < ?", (store._ts(now - 30 * DAY),)
        )[0]["n"]
        == 0
    )


def test_gc_leaves_the_summaries_of_what_is_left(tmp_path):
    path = str(tmp_path / "agent-otel.db")
    now = seed.now_ms()
    write_through_sink(path, generated(now, days=6.0))
    store = open_store(Target("sqlite", path))
    try:
        cutoff = now - 3 * DAY - 17 * 60_000  # mid-hour: the hour it falls in is rebuilt
        store.gc({"logs_days": 3}, now_ms=now - 17 * 60_000)
        want = reference(store, cutoff - DAY, now + HOUR, None)
        got = periods.period(store, cutoff - DAY, now + HOUR, None, method=periods.SUMMARIZED)
        assert_agrees(got, want, rel=summaries.ACCURACY)
        assert not store.query(
            "SELECT 1 FROM agent_run_summaries WHERE span_ms = ? AND bucket_ms < ?",
            (HOUR, summaries.floor_to(cutoff, HOUR)),
        )
    finally:
        store.close()


def test_the_sinks_daily_gc_goes_a_batch_at_a_time_between_writes(busy_store, monkeypatch):
    """The gc the store sink starts once a day runs in slices (here one batch per write), so a large gc
    never holds the thread that writes the agent's records; it records its end once it is done."""
    target = busy_store.target
    busy_store.set_meta("last_gc_ms", str(seed.now_ms() - 2 * DAY))
    monkeypatch.setattr(retention, "BATCH_RUNS", 4)
    monkeypatch.setattr(sink, "MAINTENANCE_SLICE_S", 0.0)  # a slice is then one batch
    monkeypatch.setattr(sink, "MAINTENANCE_SHARE", 1e9)  # and every write may have one
    s = StoreSink(target, {"logs_days": 30, "tool_snapshot_days": 0})
    left = []
    try:
        record = seed.run_records(seed.now_ms())[:1]
        for _ in range(20):
            s.write(record)
            left.append(
                busy_store.query(
                    "SELECT count(*) AS n FROM agent_runs WHERE created_at < ?",
                    (busy_store._ts(seed.now_ms() - 30 * DAY),),
                )[0]["n"]
            )
            if busy_store.meta("last_gc_ms") and int(busy_store.meta("last_gc_ms")) > seed.now_ms() - DAY:
                break
    finally:
        s.close()
    assert left[0] in (30, 26)  # the first slice is the events rule or the first batch of runs
    assert left[:9] == sorted(left[:9], reverse=True) and left[-1] == 0
    assert len(left) > 30 // 4  # one batch per write, and the end recorded only when done
    assert int(busy_store.meta("last_gc_ms")) > seed.now_ms() - DAY


# --- summaries of a store migrated to schema 6 ---------------------------------------------------------


def test_a_migrated_store_is_summarized_in_the_background_and_reads_right_meanwhile(tmp_path, monkeypatch):
    path = str(tmp_path / "old.db")
    now = seed.now_ms()
    records = generated(now, n=400, days=2.0)
    with monkeypatch.context() as m:  # written by an agent-otel of schema 5
        m.setitem(schema.MIGRATIONS, "sqlite", [s for s in schema.MIGRATIONS["sqlite"] if s[0] < 6])
        write_through_sink(path, records)
    store = open_store(Target("sqlite", path))  # migrates to 6
    try:
        covered = summaries.covered_from(store)
        assert covered is not None and covered > now and covered % HOUR == 0
        since, until = now - 2 * DAY - HOUR, now + HOUR
        want = reference(store, since, until, None)
        # Before the background fill: the raw tables answer (exactly, for a period this small).
        assert_agrees(periods.period(store, since, until, None), want, rel=1e-9)
        assert_agrees(
            periods.period(store, since, until, None, method=periods.SUMMARIZED), want, rel=summaries.ACCURACY
        )
        steps = 0
        while summaries.backfill_step(store, hours=5):
            steps += 1
        assert steps >= 9 and summaries.covered_from(store) == 0
        assert_agrees(
            periods.period(store, since, until, None, method=periods.SUMMARIZED), want, rel=summaries.ACCURACY
        )
        # New runs after the backfill are summarized as they are written.
        write_through_sink(path, seed.run_records(now - 5 * 60_000, tool_calls=40))
        want = reference(store, since, until, None)
        assert_agrees(
            periods.period(store, since, until, None, method=periods.SUMMARIZED), want, rel=summaries.ACCURACY
        )
    finally:
        store.close()


def test_the_sink_fills_in_the_summaries_of_a_migrated_store(tmp_path, monkeypatch):
    path = str(tmp_path / "old.db")
    now = seed.now_ms()
    with monkeypatch.context() as m:
        m.setitem(schema.MIGRATIONS, "sqlite", [s for s in schema.MIGRATIONS["sqlite"] if s[0] < 6])
        write_through_sink(path, generated(now, n=200, days=1.0))
    monkeypatch.setattr(sink, "MAINTENANCE_SHARE", 1e9)
    s = StoreSink(Target("sqlite", path), {})
    try:
        for _ in range(100):
            s.write(seed.run_records(now)[:1])
            store = open_store(Target("sqlite", path))
            covered = summaries.covered_from(store)
            store.close()
            if covered == 0:
                break
    finally:
        s.close()
    assert covered == 0


# --- the write path -------------------------------------------------------------------------------------


def test_a_run_that_starts_and_ends_in_one_batch_is_one_row_as_its_end_says(tmp_path):
    path = str(tmp_path / "agent-otel.db")
    records = seed.run_records(seed.now_ms(), tool_calls=3)
    late_start = next(r for r in records if r[0] == "run")
    write_through_sink(path, [*records, late_start])  # a start record after the end changes nothing
    store = open_store(Target("sqlite", path), create=False)
    try:
        (run,) = store.runs()
        assert (run["status"], run["stop_reason"], run["tool_calls"]) == ("success", "completed", 3)
        assert len(store.events_for(run["run_id"])) == 3 + 2 + 1
    finally:
        store.close()


def test_run_times_in_one_batch_are_stored_to_the_millisecond_whatever_second_they_fall_in(tmp_path):
    """The write path formats a batch's shared seconds once: runs alternating between two seconds (and a
    day apart) each keep their own time in the SQLite text SQLite's date functions read."""
    path = str(tmp_path / "agent-otel.db")
    base_ms = (seed.now_ms() // 1000) * 1000 - 3_600_000
    starts = [
        base_ms + 999,
        base_ms + 1000,
        base_ms + 1,
        base_ms + 1999,
        base_ms - 86_400_000 + 5,
        base_ms + 999,
    ]
    records = [
        r for i, ms in enumerate(starts) for r in seed.run_records(ms, run_id=f"{i:032x}", tool_calls=1)
    ]
    write_through_sink(path, records)
    got = dict(sqlite3.connect(path).execute("SELECT run_id, created_at FROM agent_runs").fetchall())
    for i, ms in enumerate(starts):
        want = (
            sqlite3.connect(":memory:")
            .execute("SELECT strftime('%Y-%m-%d %H:%M:%f', ? / 1000.0, 'unixepoch')", (ms,))
            .fetchone()[0]
        )
        assert got[f"{i:032x}"] == want, (ms, got[f"{i:032x}"], want)


def test_a_value_the_database_refuses_costs_the_batch_a_second_try_and_is_stored_escaped(tmp_path):
    path = str(tmp_path / "agent-otel.db")
    records = seed.run_records(seed.now_ms())
    records[0][1]["prompt_version"] = "v\udcff"  # os.fsdecode(b"v\xff")
    records[-1][1]["prompt_version"] = "v\udcff"
    write_through_sink(path, records)
    rows = sqlite3.connect(path).execute("SELECT prompt_version FROM agent_runs").fetchall()
    assert rows == [("v\\udcff",)]


def _rows(location: str) -> dict[str, list[str]]:
    store = open_store(target(location), create=False)
    try:
        return {
            table: sorted(repr(tuple(r)) for r in store.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("agent_runs", "agent_events", "agent_run_summaries")
        }
    finally:
        store.close()


@pytest.mark.parametrize(
    ("rows", "events"),
    [
        ("executemany", None),
        pytest.param("values", "values", marks=pytest.mark.e2e),
        pytest.param("executemany", "executemany", marks=pytest.mark.e2e),
    ],
)
def test_every_write_method_the_benchmark_compares_leaves_the_rows_of_the_default(
    request, tmp_path, monkeypatch, rows, events
):
    """benchmarks/store_throughput.py methods switches how rows go in; each leaves what the default does."""
    server = request.getfixturevalue("postgres") if events else None

    def new(name: str) -> str:
        return server.new_database() if server else str(tmp_path / f"{name}.db")

    records = generated(seed.now_ms(), n=120)
    default, other = new("default"), new("other")
    write_through_sink(default, records, batch=90)
    with monkeypatch.context() as m:
        m.setattr(writes, "PG_ROWS" if events else "SQLITE_ROWS", rows)
        if events:
            m.setattr(writes, "PG_EVENTS", events)
        write_through_sink(other, records, batch=90)
    want, got = _rows(default), _rows(other)
    assert len(want["agent_runs"]) == 120 and len(want["agent_events"]) > 120
    assert got == want


# --- doctor, show ---------------------------------------------------------------------------------------


def test_doctor_counts_exactly_when_small_and_estimates_large_tables(busy_store):
    exact = busy_store.counts()
    assert not exact["estimated"] and exact["runs"] == 930
    estimated = busy_store.counts(exact_up_to=10)
    assert {"runs", "events"} <= set(estimated["estimated"])
    assert estimated["runs"] == 930 and estimated["events"] == exact["events"]  # no holes in the row ids


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_doctor_weighs_a_packs_table_by_its_tool_calls(request, tmp_path, kind):
    """Since migration 8 a run's tool calls are one row of agent_snapshot_packs: 300 packs of 7 calls are
    the 2,100 rows of agent_tool_snapshots schema 7 wrote, and doctor estimates them as it estimated those,
    from a sample, instead of reading every pack (it did, up to ``exact_up_to`` packs)."""
    if kind == "sqlite":
        location = str(tmp_path / "agent-otel.db")
    else:
        location = request.getfixturevalue("postgres").new_database()
    store = open_store(Target(kind, location), create=True, writer=True)
    now = seed.now_ms()
    steps = json.dumps([[i + 1, None, "search", f"{i:024x}", "ok"] for i in range(7)])
    with store.transaction():
        for i in range(300):
            store.execute(
                "INSERT INTO agent_snapshot_packs (run_id, created_at_ms, calls, items, key_id, steps, data) "
                "VALUES (?, ?, 7, 0, '', ?, ?)",
                (f"{i:032x}", now - i * HOUR, steps, b""),
            )
            store.execute(
                "INSERT INTO agent_snapshot_runs (run_id, agent, created_at_ms) VALUES (?, 'a', ?)",
                (f"{i:032x}", now - i * HOUR),
            )
    try:
        if kind == "postgresql":
            store.execute("ANALYZE")  # the planner's row counts, which autovacuum keeps on a live store
        exact = store.counts()
        assert not exact["estimated"]
        assert (exact["tool_snapshots"], exact["snapshot_runs"]) == (2100, 300)
        # 300 packs are fewer rows than 1,000 but hold 2,100 calls: estimated, from the first 2,000 packs
        # (here all of them: the estimate is exact), as 2,100 rows of agent_tool_snapshots were
        queries: list[str] = []
        query = store.query

        def traced(text: str, params: Any = ()) -> Any:
            queries.append(text)
            return query(text, params)

        store.query = traced  # type: ignore[method-assign]
        try:
            estimated = store.counts(exact_up_to=1000)
        finally:
            del store.query
        assert "tool_snapshots" in estimated["estimated"]
        assert (estimated["tool_snapshots"], estimated["snapshot_runs"]) == (2100, 300)
        reads = [t for t in queries if "agent_snapshot_packs" in t and "LIMIT" not in t]
        assert not [t for t in reads if "count(*)" in t or "UNION" in t], reads  # no pack read in full
        # A small table of packs is still counted exactly
        assert not store.counts(exact_up_to=2100)["estimated"]
    finally:
        store.close()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_doctor_sums_a_blob_table_of_many_bytes_from_a_sample_and_counts_its_rows_exactly(
    tmp_path, request, dialect
):
    """A stored result is ~2 KB: doctor summed every blob up to ``exact_up_to`` rows, 43 MB (82 MB of
    pages) for the bench store's 20,000. Now a blob table of more than ``exact_up_to`` x 80 bytes is summed
    from its first 2,000 rows, its size and encrypted count marked as estimates; its number of results
    (count(*), an index) stays exact, and a small table is summed exactly as before."""
    if dialect == "postgresql":
        where = Target("postgresql", request.getfixturevalue("postgres").new_database())
    else:
        where = Target("sqlite", str(tmp_path / "agent-otel.db"))
    store = open_store(where, create=True, writer=True)
    now = seed.now_ms()
    with store.transaction():
        for i in range(2500):
            store.execute(
                "INSERT INTO agent_snapshot_blobs (sha, encoding, key_id, size, data, last_used_ms) "
                "VALUES (?, 'json', ?, 1000, ?, ?)",
                (f"{i:064x}", "k1" if i % 5 == 0 else "", b"x" * 1000, now - i),
            )
    try:
        exact = store.counts()  # 2.5 MB: summed exactly
        assert not exact["estimated"]
        figures = (exact["snapshot_blobs"], exact["snapshot_bytes"], exact["encrypted_blobs"])
        assert figures == (2500, 2_500_000, 500)
        with Traced(store) if dialect == "sqlite" else contextlib.nullcontext() as traced:
            sampled = store.counts(exact_up_to=10_000)  # 800 KB of results at most: a sample
        assert set(sampled["estimated"]) == {"snapshot_bytes", "encrypted_blobs"}
        # here a uniform table: the sample's figures, scaled to the exact count, are the exact ones
        assert (sampled["snapshot_blobs"], sampled["snapshot_bytes"], sampled["encrypted_blobs"]) == figures
        if traced is None:
            return
        reads = [t for t in traced.sql if "FROM agent_snapshot_blobs" in t and ("sum(" in t or "avg(" in t)]
        assert reads and all("LIMIT 2000" in t for t in reads), reads  # no blob read in full
    finally:
        store.close()


def test_a_run_id_prefix_finds_the_run_case_aside_and_says_when_it_is_ambiguous(busy_store):
    store = busy_store
    ids = [r["run_id"] for r in store.query("SELECT run_id FROM agent_runs ORDER BY run_id")]
    target = ids[len(ids) // 2]
    unique = next(n for n in range(4, 32) if sum(i.startswith(target[:n]) for i in ids) == 1)
    assert store.find_run(target[:unique])["run_id"] == target
    assert store.find_run(target[:unique].upper())["run_id"] == target
    with pytest.raises(Exception, match="ambiguous"):
        store.find_run(target[:1])
    with pytest.raises(Exception, match="no run matches"):
        store.find_run("zz")


# --- the CLI starts without the SDK ----------------------------------------------------------------------


def test_reading_commands_import_neither_the_sdk_nor_the_write_path(busy_store):
    code = (
        "import sys, json; from agent_otel.cli import main; main(sys.argv[2:]); "
        "mods = [m for m in sys.modules if m.split('.')[0] in "
        "('agent_otel', 'opentelemetry', 'rich', 'psycopg', 'orjson', 'yaml')]; "
        "print(json.dumps(mods), file=sys.stderr)"
    )
    for argv in (["--version"], ["runs", "--store", busy_store.target.location]):
        proc = subprocess.run(
            [sys.executable, "-c", code, "x", *argv], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
        assert not {m for m in loaded if m.startswith("opentelemetry")}, loaded
        assert not loaded & {
            "agent_otel.sdk",
            "agent_otel.run",
            "agent_otel.store.sink",
            "agent_otel.hashing",
        }
        # psycopg alone takes ~100 ms to import: only a postgresql:// store loads it; nor does a SQLite
        # store's table need the JSON or YAML libraries.
        assert not loaded & {"psycopg", "orjson", "yaml"}, loaded
        if argv == ["--version"]:  # answered before the parser, the config, the store or rich are loaded
            assert loaded == {"agent_otel", "agent_otel._version", "agent_otel.cli"}, loaded


def test_the_public_names_are_the_api_whatever_was_imported_first():
    code = (
        "import agent_otel.run, agent_otel.replay, agent_otel; "
        "assert callable(agent_otel.run) and agent_otel.run.__module__ == 'agent_otel.run'; "
        "assert agent_otel.replay.__name__ == 'replay' and callable(agent_otel.replay); "
        "assert set(agent_otel.__all__) <= set(dir(agent_otel)); "
        "from agent_otel import Budget, setup, config; print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_events_stored_before_their_run_are_summarized_when_the_runs_write_is_tried_again(tmp_path):
    """A run's events written before its row (its start record dropped or late) are added to the summaries
    when the row comes. Before, a write of that row that the database refused once (a value it could not
    encode, then stored escaped) forgot them on its second try: the first try had already taken the run
    off the list of runs waiting for their row, and `stats` over the summaries missed its events."""
    path = str(tmp_path / "agent-otel.db")
    _start, *events, end = seed.run_records(seed.now_ms() - 3 * HOUR)
    end[1]["prompt_version"] = "v\udcff"  # refused by sqlite3 (a lone surrogate), then stored escaped
    sink = StoreSink(target(path), {"logs_days": 0, "tool_snapshot_days": 0})
    try:
        sink.write(events)
        assert sink.error is None, sink.error
        sink.write([end])
        assert sink.error is None, sink.error
    finally:
        sink.close()
    db = sqlite3.connect(path)
    stored = db.execute("SELECT count(*) FROM agent_events").fetchone()[0]
    assert stored == len(events)
    summarized = db.execute(
        "SELECT sum(runs), sum(events) FROM agent_run_summaries WHERE span_ms = ?", (HOUR,)
    )
    assert summarized.fetchone() == (1, stored)
