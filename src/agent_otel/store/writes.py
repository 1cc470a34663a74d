"""The store's write path: one transaction per batch of records, as little work per record as it allows.

What makes it cheap (``benchmarks/store_throughput.py`` measures it):

* a run whose start and end are in one batch (most runs, when many run) is one insert of its ended row,
  not an insert and an update (:func:`collapse`);
* rows go in with multi-row ``INSERT ... VALUES (...), (...)`` statements, as few as the database's limit
  on bound values allows: one call into the database per statement, where ``executemany`` makes one per
  row (and the sqlite3 module releases and takes back the GIL around each, which costs up to the
  interpreter's switch interval, 5 ms, whenever the agent's threads are busy);
* rows are built straight from the records, and values are made safe for the database only when it
  refused the batch: a lone surrogate, an int beyond 64 bits, a NUL for PostgreSQL make the driver or the
  database raise, and the batch is then written again with every value through :meth:`Store.param`. What
  is still refused then is the records' fault (``bad_data``), as before;
* in PostgreSQL the events, which are only ever appended, go in with ``COPY`` (one statement for the
  batch); the other rows with psycopg's ``executemany``, which pipelines them: there, multi-row
  statements cost more than they save (psycopg parses each long statement's placeholders anew).
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from agent_otel.config import EVENT_FIELDS
from agent_otel.store import schema, summaries
from agent_otel.store.schema import EVENT_COLUMNS, JSON_EVENT_COLUMNS

if TYPE_CHECKING:
    from agent_otel.store.db import Store

_event_fields = operator.itemgetter(*EVENT_FIELDS)  # what new_event always sets, in column order
_EVENT_JSON = tuple(EVENT_COLUMNS.index(c) for c in JSON_EVENT_COLUMNS)
_EVENT_TS = EVENT_COLUMNS.index("ts_ms")
_EVENT_PLAIN = tuple(i for i in range(len(EVENT_COLUMNS)) if i not in _EVENT_JSON and i != _EVENT_TS)
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
    return list(chosen.values())


def insert(
    store: Store, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """Insert ``rows`` of ``columns`` into ``table`` (``tail``: an ``ON CONFLICT`` clause) in as few
    statements as the database allows (see :data:`SQLITE_ROWS`, :data:`PG_ROWS`)."""
    if not rows:
        return
    method = PG_ROWS if store.kind == "postgresql" else SQLITE_ROWS
    if method == "executemany":
        store.conn.cursor().executemany(store.sql(_statement(table, tuple(columns), tail, 1)), rows)
        return
    per = max(1, min(_MAX_ROWS, store.max_params // len(columns)))
    i = 0
    while i < len(rows):
        # Full statements, then the rest in powers of two: a handful of distinct statements per table,
        # which the driver's statement cache keeps compiled (one per row count would fill it).
        left = len(rows) - i
        n = per if left >= per else 1 << (left.bit_length() - 1)
        text = _statement(table, tuple(columns), tail, n)
        store.execute(text, tuple(chain.from_iterable(rows[i : i + n])))
        i += n


@functools.lru_cache(maxsize=256)
def _statement(table: str, columns: tuple[str, ...], tail: str, n: int) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...) x n tail``, built once: the same string each time
    also spares the driver's statement cache hashing a new one of a few KB per statement."""
    one = "(" + ", ".join("?" for _ in columns) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * n)} {tail}"


def write(
    store: Store,
    runs: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    snapshots: Sequence[dict[str, Any]] = (),
) -> None:
    """Upsert run rows, insert events and replay snapshots (and keep the summaries) in one transaction."""
    from agent_otel.store import snapshots as snapshot_tables
    from agent_otel.store.db import classify

    prepared = snapshot_tables.prepare(snapshots) if snapshots else None
    runs = collapse(runs)
    if not runs and not events and not prepared:
        return
    try:
        _write(store, runs, events, prepared, safe=False)
    except Exception as exc:
        if not classify(exc).bad_data:
            raise
        _write(store, runs, events, prepared, safe=True)  # what fails now is refused for good


def _write(
    store: Store, runs: list[dict[str, Any]], events: Sequence[dict[str, Any]], prepared: Any, safe: bool
) -> None:
    from agent_otel.store import snapshots as snapshot_tables

    with store.transaction():
        if prepared:
            snapshot_tables.write_isolated(store, prepared, safe=safe)
        delta = summaries.deltas(store, runs, events) if store.summarized and (runs or events) else None
        if runs:
            columns = schema.RUN_COLUMNS
            insert(store, "agent_runs", columns, run_rows(store, runs, safe), _run_conflict(columns))
        if events:
            rows = event_rows(store, events, safe)
            if store.kind == "postgresql" and PG_EVENTS == "copy":
                with store.conn.cursor().copy(_COPY_EVENTS) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                insert(store, "agent_events", EVENT_COLUMNS, rows)
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


def run_rows(store: Store, runs: Sequence[dict[str, Any]], safe: bool) -> list[tuple[Any, ...]]:
    """Rows of ``schema.RUN_COLUMNS`` (records carry times as epoch ms)."""
    keys, created, ended, status = _run_keys(schema.RUN_COLUMNS)
    ts, param, now = store._ts, store.param, int(time.time() * 1000)
    out = []
    for r in runs:
        row = list(map(r.get, keys))
        row[created] = ts(row[created] or now)
        row[ended] = ts(row[ended])
        row[status] = row[status] or "running"
        out.append(tuple(map(param, row)) if safe else tuple(row))
    return out


def event_rows(store: Store, events: Sequence[dict[str, Any]], safe: bool) -> list[tuple[Any, ...]]:
    dump, param, now = store._json, store.param, int(time.time() * 1000)
    out = []
    for e in events:
        try:
            row = [*_event_fields(e), e.get("attempts"), e.get("args"), e.get("result")]
        except KeyError:  # not made by new_event: take what there is
            row = [e.get(k) for k in EVENT_COLUMNS]
        for i in _EVENT_JSON:
            if row[i] is not None:
                row[i] = dump(row[i])
        t = row[_EVENT_TS]
        row[_EVENT_TS] = int(t) if t is not None else now
        if safe:
            for i in _EVENT_PLAIN:
                row[i] = param(row[i])
        out.append(tuple(row))
    return out
