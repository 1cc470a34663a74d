"""Retention (``agent-otel gc``, and the store sink once a day): deleting what is older than the retention
in small transactions, and counting it for a dry run.

Each transaction deletes at most :data:`BATCH_RUNS` runs with their events, or :data:`BATCH_ROWS` rows of
another table, so that other writers (the store sinks of running agents) get the database between two:
a store of a million runs is never locked for the seconds a single ``DELETE`` takes. The store sink goes
further and runs the batches of one gc a few at a time between its writes (:func:`steps`).

A dry run counts with the same conditions over the same indexes (``created_at``, ``ts_ms``,
``created_at_ms``, ``last_used_ms``, and ``agent_events (run_id, step_id)`` for the events of the runs that
go), and deletes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_otel.store import summaries
from agent_otel.store.schema import SNAPSHOT_PURGE_KEY

if TYPE_CHECKING:
    from agent_otel.store.db import Store

DAY_MS = 86_400_000
BATCH_RUNS = 1_000  # runs (and their events) deleted per transaction
BATCH_ROWS = 10_000  # rows of the other tables deleted per transaction


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """``gc`` deletes rows of ``table`` whose ``column`` is older than config ``retention.<days_key>``.

    ``column`` holds epoch milliseconds when ``epoch_ms`` is true, else a store timestamp. Rules whose
    table does not exist are skipped, so a later migration can add its table and its rule together.
    ``key``: the columns that identify a row (batches are chosen by them).
    """

    table: str
    column: str
    days_key: str
    epoch_ms: bool = False
    key: str = "rowid"
    since: int = 1  # the schema version that added the table


RETENTION_RULES: list[RetentionRule] = [
    # Runs first, with their events: a gc cut short (a time budget, the process ending) never leaves old
    # runs whose events are gone (``stats`` would count them without their tool calls and tokens). The
    # events rule then takes what has no run left (events of runs that were never stored).
    RetentionRule("agent_runs", "created_at", "logs_days", key="run_id"),
    RetentionRule("agent_events", "ts_ms", "logs_days", epoch_ms=True, key="id"),
    # Replay snapshots (migration 2). A blob's last_used_ms is the time of the newest snapshot using it.
    RetentionRule(
        "agent_tool_snapshots", "created_at_ms", "tool_snapshot_days", epoch_ms=True, key="run_id, step_id"
    ),
    RetentionRule("agent_snapshot_runs", "created_at_ms", "tool_snapshot_days", epoch_ms=True, key="run_id"),
    RetentionRule("agent_snapshot_blobs", "last_used_ms", "tool_snapshot_days", epoch_ms=True, key="sha"),
    # Small snapshot data (migration 7): its snapshot's created_at_ms, so the two go together.
    RetentionRule(
        "agent_snapshot_data", "created_at_ms", "tool_snapshot_days", epoch_ms=True, key="id", since=7
    ),
    # The tool calls of a run recorded in one write, with their small data (migration 8): the earliest
    # call's created_at_ms.
    RetentionRule(
        "agent_snapshot_packs", "created_at_ms", "tool_snapshot_days", epoch_ms=True, key="id", since=8
    ),
]


def _rules(store: Store, retention: dict[str, int], now_ms: int) -> Iterator[tuple[RetentionRule, int, Any]]:
    """The rules in force: ``(rule, cutoff_ms, cutoff as the column stores it)``."""
    for rule in RETENTION_RULES:
        days = retention.get(rule.days_key) or 0
        if days <= 0 or not store.has_table(rule.table):
            continue
        cutoff_ms = now_ms - int(days) * DAY_MS
        yield rule, cutoff_ms, cutoff_ms if rule.epoch_ms else store._ts(cutoff_ms)


def count(store: Store, retention: dict[str, int], now_ms: int) -> dict[str, int]:
    """What :func:`steps` would delete now: ``{table: rows}``, counted over the indexes, nothing deleted."""
    out: dict[str, int] = {}
    with store.reading():
        for rule, cutoff_ms, cutoff in _rules(store, retention, now_ms):
            n = _one(store, f"SELECT count(*) AS n FROM {rule.table} WHERE {rule.column} < ?", (cutoff,))
            out[rule.table] = out.get(rule.table, 0) + n
            if rule.table == "agent_runs":
                # The events of those runs that happened after the cutoff go with their run. (``+ts_ms``:
                # SQLite walks the old runs and their events, never the recent events.)
                recent = "+ts_ms" if store.kind == "sqlite" else "ts_ms"
                out["agent_events"] = out.get("agent_events", 0) + _one(
                    store,
                    f"SELECT count(*) AS n FROM agent_events WHERE {recent} >= ? AND run_id IN "
                    "(SELECT run_id FROM agent_runs WHERE created_at < ?)",
                    (cutoff_ms, cutoff),
                )
    return out


# Every agent-otel with a gc deletes from the tables of schemas 1 and 2 (runs, events, replay snapshots).
_KNOWN_TO_EVERY_GC = 2


def overdue(store: Store, retention: dict[str, int], now_ms: int, slack_ms: int) -> bool:
    """Whether a table added after schema 2 holds a row older than its retention by over ``slack_ms`` (the
    gc interval): the gc ``last_gc_ms`` records did not know the table. An agent-otel of an older schema
    still running after the upgrade does the day's gc without the tables added since
    (``agent_snapshot_data``), and would otherwise keep this version's gc from them for as long as it wins
    the day's gc. One indexed look-up per such table."""
    for rule, _, cutoff in _rules(store, retention, now_ms - slack_ms):
        if rule.since <= _KNOWN_TO_EVERY_GC:
            continue
        if store.query(f"SELECT 1 AS x FROM {rule.table} WHERE {rule.column} < ? LIMIT 1", (cutoff,)):
            return True
    return False


def _one(store: Store, text: str, params: tuple[Any, ...]) -> int:
    return int(store.query(text, params)[0]["n"] or 0)


def steps(store: Store, retention: dict[str, int], now_ms: int) -> Iterator[dict[str, int]]:
    """Delete in batches, one transaction each, yielding the running totals after each; the last
    transaction records ``last_gc_ms`` (a gc cut short starts again next time, and just goes on)."""
    out: dict[str, int] = {}
    snapshot_cutoff: tuple[int, int] | None = None
    for rule, cutoff_ms, cutoff in _rules(store, retention, now_ms):
        if rule.table == "agent_runs":
            yield from _runs(store, cutoff, out, store.summarized)
            if store.summarized:
                with store.transaction():
                    summaries.forget_before(store, cutoff_ms)
            continue
        limit = BATCH_ROWS
        while True:
            with store.transaction():
                cur = store.execute(
                    f"DELETE FROM {rule.table} WHERE ({rule.key}) IN (SELECT {rule.key} FROM {rule.table} "
                    f"WHERE {rule.column} < ? LIMIT {limit})",
                    (cutoff,),
                )
                deleted = max(int(cur.rowcount or 0), 0)
            out[rule.table] = out.get(rule.table, 0) + deleted
            yield out
            if deleted < limit:
                break
        if rule.table == "agent_snapshot_runs":
            snapshot_cutoff = (cutoff_ms, int(retention[rule.days_key]))
    with store.transaction():
        store._upsert_meta("last_gc_ms", str(now_ms))
        if snapshot_cutoff is not None:
            _note_snapshot_purge(store, *snapshot_cutoff)
    if any(out.values()):
        store.purge_deleted()
    yield out


def _runs(store: Store, cutoff: Any, out: dict[str, int], summarized: bool) -> Iterator[dict[str, int]]:
    """Runs started before the cutoff, oldest first, with their events, a batch of runs per transaction.

    ``summarized``: each batch also takes its runs out of the summaries (those of the hours it emptied go,
    the hour it ends in is summarized again), so that a gc cut short between two batches leaves summaries
    that agree with the runs left."""
    out.setdefault("agent_runs", 0)
    out.setdefault("agent_events", 0)
    while True:
        with store.transaction():
            rows = store.execute(
                f"SELECT run_id, created_at FROM agent_runs WHERE created_at < ? ORDER BY created_at "
                f"LIMIT {BATCH_RUNS}",
                (cutoff,),
            ).fetchall()
            ids = [r[0] for r in rows]
            if ids:
                marks = ", ".join("?" for _ in ids)
                cur = store.execute(f"DELETE FROM agent_events WHERE run_id IN ({marks})", ids)
                out["agent_events"] += max(int(cur.rowcount or 0), 0)
                cur = store.execute(f"DELETE FROM agent_runs WHERE run_id IN ({marks})", ids)
                out["agent_runs"] += max(int(cur.rowcount or 0), 0)
                last = store._ms(rows[-1][1])
                if summarized and last is not None:  # every run started before `last` is gone now
                    summaries.forget_before(store, last)
        yield out
        if len(ids) < BATCH_RUNS:
            return


def run(
    store: Store, retention: dict[str, int], now_ms: int, budget_s: float | None = None
) -> dict[str, int]:
    """All of :func:`steps`; with ``budget_s``, stop after that long (what is left goes next time)."""
    totals: dict[str, int] = {}
    deadline = None if budget_s is None else time.monotonic() + budget_s
    for totals in steps(store, retention, now_ms):  # noqa: B007 (the last totals are the result)
        if deadline is not None and time.monotonic() > deadline:
            break
    return totals


def _note_snapshot_purge(store: Store, cutoff_ms: int, days: int) -> None:
    """Remember how far back gc has deleted replay snapshots (the latest cutoff and its retention).

    Without it, ``replay`` of a run whose snapshots gc deleted under a shorter retention than the one
    in force now could only say the run has none, as if it had been recorded without replay.
    """
    known = store.meta(SNAPSHOT_PURGE_KEY)
    if known and int(known.split(":")[0]) >= cutoff_ms:
        return
    store._upsert_meta(SNAPSHOT_PURGE_KEY, f"{cutoff_ms}:{days}")
