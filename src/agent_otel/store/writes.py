"""The store's write path: one transaction per batch of records, as little work per record as it allows.

What makes it cheap (``benchmarks/store_throughput.py`` measures it):

* a run whose start and end are in one batch (most runs, when many run) is one insert of its ended row,
  not an insert and an update (:func:`collapse`);
* rows go in with multi-row ``INSERT ... VALUES (...), (...)`` statements, as few as the database's limit
  on bound values allows: one call into the database per statement, where ``executemany`` makes one per
  row (and the sqlite3 module releases and takes back the GIL around each, which costs up to the
  interpreter's switch interval, 5 ms, whenever the agent's threads are busy);
* rows are built straight from the records into one flat list of values per table, in the order the
  multi-row statements bind them (no tuple or list per row: fewer objects for the garbage collector,
  whose collections also run on the agent's threads), and values are made safe for the database only
  when it refused the batch: a lone surrogate, an int beyond 64 bits, a NUL for PostgreSQL make the
  driver or the database raise, and the batch is then written again with every value through
  :meth:`Store.param`. What is still refused then is the records' fault (``bad_data``), as before;
* in PostgreSQL the events, which are only ever appended, go in with ``COPY`` (one statement for the
  batch); the other rows with psycopg's ``executemany``, which pipelines them: there, multi-row
  statements cost more than they save (psycopg parses each long statement's placeholders anew).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from itertools import compress, cycle
from typing import TYPE_CHECKING, Any

from agent_otel.store import schema, summaries
from agent_otel.store.schema import EVENT_COLUMNS, JSON_EVENT_COLUMNS

if TYPE_CHECKING:
    from agent_otel.store.db import Store

_EVENT_JSON = tuple(EVENT_COLUMNS.index(c) for c in JSON_EVENT_COLUMNS)
_EVENT_TS = EVENT_COLUMNS.index("ts_ms")
_EVENT_PLAIN = tuple(i for i in range(len(EVENT_COLUMNS)) if i not in _EVENT_JSON and i != _EVENT_TS)
# Where a row's usage, args, result and ts_ms are, counted from the end of the values (its last row).
_LAST_USAGE, _LAST_ARGS, _LAST_RESULT, _LAST_TS = (
    EVENT_COLUMNS.index(c) - len(EVENT_COLUMNS) for c in ("usage", "args", "result", "ts_ms")
)
#: How rows go in (``benchmarks/store_throughput.py --methods`` compares them): ``values`` (multi-row
#: ``INSERT ... VALUES``), ``executemany`` (a statement per row; psycopg pipelines them into a few round
#: trips), and for PostgreSQL's events ``copy``. The defaults are the fastest measured.
SQLITE_ROWS = "values"
PG_ROWS = "executemany"
PG_EVENTS = "copy"
#: Rows per statement at most. SQLite compiles each row of a multi-row INSERT into its program, and the
#: sqlite3 module keeps up to 128 compiled statements: at 1,000 rows, a few MB each, the reliability drill's
#: process grew by 52 MiB instead of 13. At 64 the statements stay small and still save most calls.
_MAX_ROWS = 64
_COPY_EVENTS = f"COPY agent_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"


def collapse(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per run: its first end record if the batch has one (the row an end leaves is never
    overwritten, so later records change nothing), else its last start record (each start record
    replaced the row of the one before). The row left is the one the records in turn would leave, and
    one statement may then upsert them all (PostgreSQL refuses to touch a row twice in one)."""
    chosen: dict[str, dict[str, Any]] = {}
    for r in runs:
        run_id = r.get("run_id") or ""
        kept = chosen.get(run_id)
        if kept is None or (kept.get("status") or "running") == "running":
            chosen[run_id] = r
    return [_finite(r) for r in chosen.values()]


def _finite(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` with a NaN or infinite number as None (unknown): ``record_llm`` cleans the figures it is
    given, but an end record can be built from a framework's usage dict, and such a value failed the
    summaries and the timestamps (SQLite stores NaN as NULL anyway; PostgreSQL would keep it), so the
    store refused the run's end and the run read abandoned for ever. The record itself is not changed:
    other sinks hold it too."""
    bad = [k for k, v in run.items() if type(v) is float and not math.isfinite(v)]
    if not bad:
        return run
    return {**run, **dict.fromkeys(bad)}


def insert(store: Store, table: str, columns: Sequence[str], values: list[Any], tail: str = "") -> None:
    """Insert rows of ``columns`` into ``table`` (``tail``: an ``ON CONFLICT`` clause) in as few
    statements as the database allows (see :data:`SQLITE_ROWS`, :data:`PG_ROWS`). ``values``: the rows'
    values one after another, flat, as a multi-row statement binds them: no tuple per row is built, nor
    kept alive for the garbage collector to scan while the batch is written."""
    if not values:
        return
    width = len(columns)
    method = PG_ROWS if store.kind == "postgresql" else SQLITE_ROWS
    if method == "executemany":
        rows = [values[i : i + width] for i in range(0, len(values), width)]
        store.conn.cursor().executemany(store.sql(_statement(table, tuple(columns), tail, 1)), rows)
        return
    total = len(values) // width
    columns, width, values = _without_nulls(columns, width, total, values, store.kind == "sqlite")
    per = max(1, min(_MAX_ROWS, store.max_params // width))
    # SQLite: a statement of several rows that may fail a constraint midway (ABORT, the default) keeps a
    # copy of every page it changes in a statement journal, to undo its own rows: a temporary file once
    # over 64 KB, 7 pages a run of the loop. OR FAIL keeps the rows it wrote, and the write's
    # transaction is rolled back whole on any error anyway.
    conflict = "OR FAIL " if store.kind == "sqlite" else ""
    execute = store.conn.execute
    i = 0
    while i < total:
        # Full statements, then the rest in powers of two: a handful of distinct statements per table,
        # which the driver's statement cache keeps compiled (one per row count would fill it).
        left = total - i
        n = per if left >= per else 1 << (left.bit_length() - 1)
        text = store.sql(_statement(table, tuple(columns), tail, n, conflict))
        execute(text, values if n == total else values[i * width : (i + n) * width])
        i += n


def _without_nulls(
    columns: Sequence[str], width: int, rows: int, values: list[Any], nan_for_null: bool = False
) -> tuple[Sequence[str], int, list[Any]]:
    """``columns`` less those NULL in every row, and the values without them: an omitted column gets
    NULL (no column the store writes has a default), but the sqlite3 module binds None about ten times
    slower than an int or a short string (None is not one of the types it binds directly: it looks up an
    adapter for it, then asks the protocol type for ``__adapt__``, an AttributeError each time).
    Most rows leave the same columns empty (an event's error, raw args and result; a run's parent,
    replay and conversation), so a batch drops them for all its rows and the statements stay few.

    ``nan_for_null`` (SQLite): the None values left (a column empty in some rows only: an LLM request's
    tool, a tool call's usage, every event's stop reason but the stop's) are bound as a float NaN, which
    the sqlite3 module binds directly and SQLite stores as NULL (``sqlite3_bind_double`` makes a NaN a
    NULL, in any column): the same row, without the adapter lookup, ~1/3 of a None's binding cost. Never
    for PostgreSQL, which would store the NaN."""
    nulls = [values[c::width].count(None) for c in range(width)]
    empty = [c for c in range(width) if nulls[c] == rows]
    out = values
    if empty and len(empty) < width:
        keep = [c not in empty for c in range(width)]
        columns = tuple(c for c, k in zip(columns, keep, strict=True) if k)
        nulls = [n for n, k in zip(nulls, keep, strict=True) if k]
        width, out = len(columns), list(compress(values, cycle(keep)))
    if nan_for_null and any(0 < n < rows for n in nulls):
        out = out.copy() if out is values else out  # the caller's list stays as it was (a retry reads it)
        for c, n in enumerate(nulls):
            if 0 < n < rows:
                out[c::width] = [_NAN if v is None else v for v in out[c::width]]
    return columns, width, out


_NAN = math.nan  # one object: the list scans (count, index) of later code compare it by identity


@functools.lru_cache(maxsize=256)
def _statement(table: str, columns: tuple[str, ...], tail: str, n: int, conflict: str = "") -> str:
    """``INSERT INTO table (columns) VALUES (?, ...) x n tail``, built once: the same string each time
    also spares the driver's statement cache hashing a new one of a few KB per statement."""
    one = "(" + ", ".join("?" for _ in columns) + ")"
    return f"INSERT {conflict}INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * n)} {tail}"


def write(
    store: Store,
    runs: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    snapshots: Sequence[dict[str, Any]] = (),
    usage: Sequence[dict[str, Any]] = (),
) -> None:
    """Upsert run rows, insert events and replay snapshots, add late usage to the rows of stopped runs
    (and keep the summaries) in one transaction."""
    from agent_otel.snapshot_outcomes import warn_once
    from agent_otel.store import snapshots as snapshot_tables
    from agent_otel.store.db import classify

    prepared = snapshot_tables.prepare(snapshots) if snapshots else None
    runs = collapse(runs)
    added = late_usage(usage) if usage else {}
    requests = late_requests(usage) if usage else []
    if not runs and not events and not prepared and not added and not requests:
        return
    late = (added, requests)
    safe = False
    # summaries.deltas takes a run whose events came before its row off the waiting list as it computes a
    # write's deltas; a write rolled back adopted nothing, so its second try must find the list as it was.
    waiting = store._summary_orphans
    kept = dict(waiting)
    while True:
        try:
            _write(store, runs, events, prepared, safe=safe, late=late)
            return
        except snapshot_tables.Refused as refused:  # the batch again, without its snapshots
            _restore(waiting, kept)
            warn_once(
                "write", "writing replay snapshots to the run store failed (%s); they are dropped", refused
            )
            prepared = None
        except BaseException as exc:
            _restore(waiting, kept)
            if safe or not isinstance(exc, Exception) or not classify(exc).bad_data:
                raise  # with safe values, what fails is refused for good
            safe = True


def _restore(table: dict[str, None], kept: dict[str, None]) -> None:
    table.clear()
    table.update(kept)


def late_usage(records: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int, float]]:
    """``run_usage`` records summed per run: ``{run_id: (input tokens, output tokens, spend)}``. Values
    that are not numbers count as 0 (a record must not cost the batch)."""
    out: dict[str, tuple[int, int, float]] = {}
    for r in records:
        run_id = r.get("run_id")
        if not run_id:
            continue
        i, o, usd = out.get(run_id, (0, 0, 0.0))
        out[run_id] = (
            i + _int(r.get("input_tokens")),
            o + _int(r.get("output_tokens")),
            usd + _float(r.get("cost_usd")),
        )
    return out


def late_requests(records: Sequence[dict[str, Any]]) -> list[tuple[str, int, dict[str, Any]]]:
    """``(run_id, step_id, usage)`` of the requests whose final usage came after their run's stop ended
    them (a stream read on to its end): their stored event takes that usage."""
    return [
        (r["run_id"], r["step_id"], r["usage"])
        for r in records
        if r.get("run_id") and type(r.get("step_id")) is int and isinstance(r.get("usage"), dict)
    ]


def _int(value: Any) -> int:
    return value if type(value) is int and -(1 << 62) < value < (1 << 62) else 0


def _float(value: Any) -> float:
    return float(value) if type(value) in (int, float) and math.isfinite(value) and abs(value) < 1e15 else 0.0


def _add_usage(store: Store, added: dict[str, tuple[int, int, float]]) -> None:
    """Add late usage to the rows of stopped runs (a row not written, or dropped, takes nothing)."""
    rows = [(i, o, usd, run_id) for run_id, (i, o, usd) in added.items()]
    store.conn.cursor().executemany(
        store.sql(
            "UPDATE agent_runs SET input_tokens = coalesce(input_tokens, 0) + ?, "
            "output_tokens = coalesce(output_tokens, 0) + ?, cost_usd = coalesce(cost_usd, 0) + ? "
            "WHERE run_id = ?"
        ),
        rows,
    )


def _set_request_usage(store: Store, requests: list[tuple[str, int, dict[str, Any]]], safe: bool) -> None:
    """The stored ``llm_result`` event of each request takes its final usage."""
    rows = [
        (store.param(store._json(usage)) if safe else store._json(usage), run_id, step_id)
        for run_id, step_id, usage in requests
    ]
    store.conn.cursor().executemany(
        store.sql(
            "UPDATE agent_events SET usage = ? WHERE run_id = ? AND step_id = ? AND kind = 'llm_result'"
        ),
        rows,
    )


def _write(
    store: Store,
    runs: list[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    prepared: Any,
    safe: bool,
    late: tuple[dict[str, tuple[int, int, float]], list[tuple[str, int, dict[str, Any]]]] = ({}, []),
) -> None:
    from agent_otel.store import snapshots as snapshot_tables

    with store.write_transaction():
        if prepared:
            snapshot_tables.write_checked(store, prepared, safe=safe)
        delta = summaries.deltas(store, runs, events) if store.summarized and (runs or events) else None
        if runs:
            columns = schema.RUN_COLUMNS
            insert(store, "agent_runs", columns, run_values(store, runs, safe), _run_conflict(columns))
        if events:
            values = event_values(store, events, safe)
            if store.kind == "postgresql" and PG_EVENTS == "copy":
                width = len(EVENT_COLUMNS)
                with store.conn.cursor().copy(_COPY_EVENTS) as copy:
                    for i in range(0, len(values), width):
                        copy.write_row(values[i : i + width])
            else:
                insert(store, "agent_events", EVENT_COLUMNS, values)
        added, requests = late
        if added or requests:  # after the batch's own rows: a run's end and its late usage may share one
            if store.summarized:
                delta = summaries.usage_deltas(store, added, requests, delta)
            if added:
                _add_usage(store, added)
            if requests:
                _set_request_usage(store, requests, safe)
        if delta is not None:
            summaries.apply(store, delta)


@functools.lru_cache(maxsize=4)
def _run_conflict(columns: tuple[str, ...]) -> str:
    """A run's end record fills in the row its start inserted; an ended row is never overwritten."""
    return (
        "ON CONFLICT (run_id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns if c != "run_id")
        + " WHERE agent_runs.status = 'running'"
    )


@functools.lru_cache(maxsize=4)
def _run_keys(columns: tuple[str, ...]) -> tuple[tuple[str, ...], int, int, int]:
    """What run_rows reads from a run record for ``columns`` (records carry times as epoch ms), and where
    the created, ended and status columns are."""
    keys = tuple({"created_at": "created_at_ms", "ended_at": "ended_at_ms"}.get(c, c) for c in columns)
    created, ended, status = (columns.index(c) for c in ("created_at", "ended_at", "status"))
    return keys, created, ended, status


def run_values(store: Store, runs: Sequence[dict[str, Any]], safe: bool) -> list[Any]:
    """The values of rows of ``schema.RUN_COLUMNS``, one row after another (records carry times as epoch
    ms)."""
    keys, created, ended, status = _run_keys(schema.RUN_COLUMNS)
    ts, now = store._ts, int(time.time() * 1000)
    out: list[Any] = []
    extend = out.extend
    for r in runs:
        base = len(out)
        extend(map(r.get, keys))
        out[base + created] = ts(out[base + created] or now)
        out[base + ended] = ts(out[base + ended])
        out[base + status] = out[base + status] or "running"
    if safe:
        out = list(map(store.param, out))
    return out


def event_values(store: Store, events: Sequence[dict[str, Any]], safe: bool) -> list[Any]:
    """The values of rows of ``EVENT_COLUMNS``, one row after another; the JSON columns as JSON text."""
    dump, param, now = store._json, store.param, int(time.time() * 1000)
    width = len(EVENT_COLUMNS)
    out: list[Any] = []
    extend = out.extend
    for e in events:
        extend(map(e.get, EVENT_COLUMNS))
        # Most events hold no JSON value (an LLM request's usage is one) and their time is an int: read
        # from the row just added (a list index, where the record would take a dict lookup each).
        plain = out[_LAST_USAGE] is None and out[_LAST_ARGS] is None and out[_LAST_RESULT] is None
        if plain and type(out[_LAST_TS]) is int:
            if safe:
                base = len(out) - width
                for i in _EVENT_PLAIN:
                    out[base + i] = param(out[base + i])
            continue
        base = len(out) - width
        for i in _EVENT_JSON:
            if out[base + i] is not None:
                out[base + i] = dump(out[base + i])
        t = out[base + _EVENT_TS]
        out[base + _EVENT_TS] = int(t) if t is not None else now
        if safe:
            for i in _EVENT_PLAIN:
                out[base + i] = param(out[base + i])
    return out
