"""The snapshot tables (schema migration 2): writing what the recorder sends, reading a recording back.

``("snapshot", {...})`` records come from the replay recorder (``agent_otel.snapshots``) with ``kind`` ``run``
(a run's input and versions) or ``tool`` (one tool call's outcome). Blobs (results, errors, inputs) are
stored once per content hash in ``agent_snapshot_blobs``; each write of a known blob only refreshes its
``last_used_ms``, which is what retention looks at, so a blob lives as long as the newest snapshot using
it. A blob recorded in the clear is re-sealed the next time it is recorded with a key, and one sealed
with an older key is re-sealed with the current one; a sealed blob is never replaced by a clear one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_otel.snapshot_outcomes import OK, WRITE_FAILED, warn_once

if TYPE_CHECKING:
    from agent_otel.store.db import Store

RUN_COLUMNS = (
    "run_id",
    "parent_run_id",
    "parent_step",
    "agent",
    "model",
    "prompt_version",
    "tools_version",
    "input_sha",
    "created_at_ms",
    "input_type",
)
TOOL_COLUMNS = (
    "run_id",
    "step_id",
    "parent_step",
    "tool",
    "args_sha",
    "outcome",
    "result_sha",
    "blob_sha",
    "error_type",
    "result_type",
    "created_at_ms",
)
_CHUNK = 500


@dataclass
class Prepared:
    """Snapshot records ready for one transaction: rows, and blobs already sealed."""

    runs: list[tuple[Any, ...]] = field(default_factory=list)
    tools: list[tuple[Any, ...]] = field(default_factory=list)
    blobs: dict[str, tuple[str, str, int, bytes]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.runs or self.tools)


def prepare(records: Iterable[dict[str, Any]]) -> Prepared:
    """Seal the blobs (outside the write transaction). A blob that cannot be sealed is not stored: its
    tool call is recorded as ``write_failed`` (counted and warned once), never raised."""
    out = Prepared()
    for rec in records:
        blob = rec.get("blob")
        stored = None
        if blob is not None:
            if blob.sha in out.blobs:
                stored = blob.sha
            else:
                try:
                    out.blobs[blob.sha] = blob.sealed()
                    stored = blob.sha
                except Exception as exc:
                    warn_once("seal", "sealing a replay snapshot failed (%s: %s)", type(exc).__name__, exc)
        if rec.get("kind") == "run":
            out.runs.append(tuple(rec.get(c) for c in RUN_COLUMNS))
            continue
        row = dict(rec, blob_sha=stored)
        if blob is not None and row["outcome"] == OK:
            row["result_sha"] = blob.sha  # the content address of a result is its result_sha
        if blob is not None and stored is None:
            row["outcome"] = WRITE_FAILED
        out.tools.append(tuple(row.get(c) for c in TOOL_COLUMNS))
    return out


def write(store: Store, prepared: Prepared, now_ms: int | None = None) -> None:
    """Insert the rows and blobs; call inside the store's write transaction."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if prepared.blobs:
        _write_blobs(store, prepared.blobs, now_ms)
    cursor = store.conn.cursor()
    if prepared.runs:
        cols = ", ".join(RUN_COLUMNS)
        marks = ", ".join("?" for _ in RUN_COLUMNS)
        cursor.executemany(
            store.sql(
                f"INSERT INTO agent_snapshot_runs ({cols}) VALUES ({marks}) ON CONFLICT (run_id) DO NOTHING"
            ),
            [store.row(r) for r in prepared.runs],
        )
    if prepared.tools:
        cols = ", ".join(TOOL_COLUMNS)
        marks = ", ".join("?" for _ in TOOL_COLUMNS)
        cursor.executemany(
            store.sql(
                f"INSERT INTO agent_tool_snapshots ({cols}) VALUES ({marks}) "
                "ON CONFLICT (run_id, step_id) DO NOTHING"
            ),
            [store.row(r) for r in prepared.tools],
        )


def write_isolated(store: Store, prepared: Prepared) -> None:
    """:func:`write` inside a savepoint of the store's transaction: a snapshot that cannot be written is
    dropped (counted, warned once) without losing the runs and events of the same batch. A store that is
    busy (transient) fails the whole batch, which the sink then retries; values the database refuses
    (bad_data) fail it too, so that the sink's split finds and drops only the records holding them."""
    from agent_otel.store.db import classify

    store.execute("SAVEPOINT agent_otel_snapshots")
    try:
        write(store, prepared)
    except Exception as exc:
        err = classify(exc)
        store.execute("ROLLBACK TO SAVEPOINT agent_otel_snapshots")
        store.execute("RELEASE SAVEPOINT agent_otel_snapshots")
        if err.transient or err.bad_data:
            raise
        warn_once("write", "writing replay snapshots to the run store failed (%s); they are dropped", err)
        return
    store.execute("RELEASE SAVEPOINT agent_otel_snapshots")


def _write_blobs(store: Store, blobs: dict[str, tuple[str, str, int, bytes]], now_ms: int) -> None:
    existing: dict[str, str] = {}
    shas = list(blobs)
    for i in range(0, len(shas), _CHUNK):
        chunk = shas[i : i + _CHUNK]
        rows = store.query(
            f"SELECT sha, key_id FROM agent_snapshot_blobs WHERE sha IN ({', '.join('?' for _ in chunk)})",
            chunk,
        )
        existing.update((r["sha"], r["key_id"]) for r in rows)
    upsert: list[tuple[Any, ...]] = []
    for sha, (encoding, kid, size, data) in blobs.items():
        old = existing.get(sha)
        if old is None or (kid and old != kid):
            upsert.append((sha, encoding, kid, size, data, now_ms))
            continue
        cur = store.execute("UPDATE agent_snapshot_blobs SET last_used_ms = ? WHERE sha = ?", (now_ms, sha))
        if not cur.rowcount:  # removed by a concurrent gc since the SELECT (PostgreSQL)
            upsert.append((sha, encoding, kid, size, data, now_ms))
    if upsert:
        store.conn.cursor().executemany(
            store.sql(
                "INSERT INTO agent_snapshot_blobs (sha, encoding, key_id, size, data, last_used_ms) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha) DO UPDATE SET encoding = excluded.encoding, "
                "key_id = excluded.key_id, size = excluded.size, data = excluded.data, "
                "last_used_ms = excluded.last_used_ms"
            ),
            upsert,
        )


# --- reading -----------------------------------------------------------------------------------------


def find_run(store: Store, prefix: str) -> dict[str, Any] | None:
    """The recorded run whose id is ``prefix`` or uniquely starts with it (None if none; ambiguous raises)."""
    from agent_otel.store.db import StoreError

    exact = store.query("SELECT * FROM agent_snapshot_runs WHERE run_id = ?", (prefix,))
    if exact:
        return exact[0]
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = store.query(
        "SELECT * FROM agent_snapshot_runs WHERE run_id LIKE ? ESCAPE '\\' "
        "ORDER BY created_at_ms DESC LIMIT 6",
        (escaped + "%",),
    )
    if len(rows) > 1:
        shown = ", ".join(r["run_id"][:16] for r in rows[:5])
        raise StoreError(f"run id prefix {prefix!r} is ambiguous ({shown}{', ...' if len(rows) > 5 else ''})")
    return rows[0] if rows else None


def load_tree(
    store: Store, root: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, tuple[str, str, bytes]]]:
    """The recorded run ``root`` and its recorded sub-agent runs (root first), their tool snapshots in
    step order, and the blobs they use: ``{sha: (encoding, key_id, data)}``."""
    runs = [root]
    frontier = [root["run_id"]]
    seen = {root["run_id"]}
    while frontier:
        children = _in(store, "SELECT * FROM agent_snapshot_runs WHERE parent_run_id IN ({})", frontier)
        children.sort(key=lambda c: (c["created_at_ms"], c["run_id"]))
        frontier = [c["run_id"] for c in children if c["run_id"] not in seen]
        seen.update(frontier)
        runs += [c for c in children if c["run_id"] in frontier]
    steps: dict[str, list[dict[str, Any]]] = {r["run_id"]: [] for r in runs}
    for row in _in(
        store, "SELECT * FROM agent_tool_snapshots WHERE run_id IN ({}) ORDER BY run_id, step_id", list(steps)
    ):
        steps[row["run_id"]].append(row)
    wanted = {r["input_sha"] for r in runs if r.get("input_sha")}
    wanted |= {s["blob_sha"] for rows in steps.values() for s in rows if s.get("blob_sha")}
    found = _in(
        store, "SELECT sha, encoding, key_id, data FROM agent_snapshot_blobs WHERE sha IN ({})", wanted
    )
    blobs = {b["sha"]: (b["encoding"], b["key_id"], bytes(b["data"])) for b in found}
    return runs, steps, blobs


def _in(store: Store, text: str, values: Iterable[Any]) -> list[dict[str, Any]]:
    values = list(values)
    out: list[dict[str, Any]] = []
    for i in range(0, len(values), _CHUNK):
        chunk: Sequence[Any] = values[i : i + _CHUNK]
        out += store.query(text.format(", ".join("?" for _ in chunk)), chunk)
    return out
