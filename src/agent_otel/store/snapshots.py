"""The snapshot tables (schema migrations 2 and 7): writing what the recorder sends, reading a recording back.

``("snapshot", {...})`` records come from the replay recorder (``agent_otel.snapshots``) with ``kind`` ``run``
(a run's input and versions) or ``tool`` (one tool call's outcome). The data (a result, error or input)
of at most :data:`INLINE_MAX_BYTES` as stored (sealed, if a key is set) gets a row of its own in
``agent_snapshot_data``, named by the snapshot's ``data_id`` (a run's ``input_data_id``): appended under
an increasing integer key, and deleted by retention with its snapshot (they share ``created_at_ms``).
Larger data is stored once per content hash in ``agent_snapshot_blobs``, where repeating a large result
costs nothing; each write of a known blob only refreshes its ``last_used_ms``, which is what retention
looks at, so a blob lives as long as the newest snapshot using it. A blob recorded in the clear is
re-sealed the next time it is recorded with a key, and one sealed with an older key is re-sealed with the
current one; a sealed blob is never replaced by a clear one. Rows of ``agent_snapshot_data`` are
written once and never re-sealed: small data recorded before a key was set stays in the clear until
retention removes it with its snapshot. ``blob_sha`` and ``input_sha`` are the
content's hash in both forms (a result's is its ``result_sha``); snapshots recorded before migration 7
have their data in the blob table, and :func:`load_tree` reads both.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from agent_otel.snapshot_outcomes import OK, PLAIN, SEALED, WRITE_FAILED, warn_once

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
    "input_data_id",
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
    "data_id",
)
_CHUNK = 500
_BLOB_SHA, _OUTCOME, _RESULT_SHA = (TOOL_COLUMNS.index(c) for c in ("blob_sha", "outcome", "result_sha"))
_DATA_ID, _RUN_DATA_ID = TOOL_COLUMNS.index("data_id"), RUN_COLUMNS.index("input_data_id")
_RUN_CREATED, _TOOL_CREATED = RUN_COLUMNS.index("created_at_ms"), TOOL_COLUMNS.index("created_at_ms")
#: The largest data (in bytes as stored: sealed, if a key is set) stored in agent_snapshot_data; larger
#: data goes to agent_snapshot_blobs, once per content hash. Up to this size a data row (the data and
#: 20 to 40 bytes more) fits one 4 KB SQLite page (a table leaf holds at most 4,061 bytes of a row before it
#: continues on overflow pages), and storing a repeated result again costs at most that page.
#: ``benchmarks/store_throughput.py frames --result-bytes N --inline-max 0`` compares the two forms.
INLINE_MAX_BYTES = 4_000


@dataclass
class Prepared:
    """Snapshot records ready for one transaction: rows, and blobs already sealed."""

    #: The rows' values one after another (RUN_COLUMNS, TOOL_COLUMNS), as the inserts bind them.
    runs: list[Any] = field(default_factory=list)
    tools: list[Any] = field(default_factory=list)
    blobs: dict[str, tuple[str, str, int, bytes]] = field(default_factory=dict)
    #: Small data for agent_snapshot_data: (whether a run's, where its row starts in runs or tools, key
    #: id, data).
    data: list[tuple[bool, int, str, bytes]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.tools)


def prepare(records: Iterable[dict[str, Any]]) -> Prepared:
    """Seal the blobs (outside the write transaction). A blob that cannot be sealed is not stored: its
    tool call is recorded as ``write_failed`` (counted and warned once), never raised."""
    out = Prepared()
    small: dict[str, tuple[str, bytes]] = {}  # this batch's small data by hash, sealed once each
    limit = INLINE_MAX_BYTES
    runs, tools, data = out.runs, out.tools, out.data
    for rec in records:
        blob = rec.get("blob")
        stored = sha = here = None
        if blob is not None:
            sha = blob.sha
            if sha in out.blobs:
                stored = sha
            elif sha in small:
                stored, here = sha, small[sha]
            else:
                try:
                    _, kid, _, sealed_data = sealed = blob.sealed()
                    if len(sealed_data) <= limit:
                        here = small[sha] = (kid, sealed_data)
                    else:
                        out.blobs[sha] = sealed
                    stored = sha
                except Exception as exc:
                    warn_once("seal", "sealing a replay snapshot failed (%s: %s)", type(exc).__name__, exc)
        get = rec.get
        if get("kind") == "run":
            base = len(runs)
            runs.extend(map(get, RUN_COLUMNS))
            if here is not None:
                data.append((True, base, *here))
            continue
        base = len(tools)
        tools.extend(map(get, TOOL_COLUMNS))
        tools[base + _BLOB_SHA] = stored
        if blob is not None:
            if tools[base + _OUTCOME] == OK and tools[base + _RESULT_SHA] is None:
                tools[base + _RESULT_SHA] = sha  # the content address of a result is its result_sha
            if stored is None:
                tools[base + _OUTCOME] = WRITE_FAILED
        if here is not None:
            data.append((False, base, *here))
    return out


def write(store: Store, prepared: Prepared, now_ms: int | None = None, safe: bool = True) -> None:
    """Insert the rows and blobs; call inside the store's write transaction. ``safe=False``: the values
    as they are (see :mod:`agent_otel.store.writes`)."""
    from agent_otel.store.writes import insert

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if prepared.blobs:
        _write_blobs(store, prepared.blobs, now_ms)
    if prepared.data:
        _write_data(store, prepared, now_ms)
    runs, tools = prepared.runs, prepared.tools
    if safe:
        runs, tools = list(map(store.param, runs)), list(map(store.param, tools))
    insert(store, "agent_snapshot_runs", RUN_COLUMNS, runs, "ON CONFLICT (run_id) DO NOTHING")
    insert(store, "agent_tool_snapshots", TOOL_COLUMNS, tools, "ON CONFLICT (run_id, step_id) DO NOTHING")


def write_isolated(store: Store, prepared: Prepared, safe: bool = True) -> None:
    """:func:`write` inside a savepoint of the store's transaction: a snapshot that cannot be written is
    dropped (counted, warned once) without losing the runs and events of the same batch. A store that is
    busy (transient) fails the whole batch, which the sink then retries; values the database refuses
    (bad_data) fail it too, so that the sink's split finds and drops only the records holding them."""
    from agent_otel.store.db import classify

    store.execute("SAVEPOINT agent_otel_snapshots")
    try:
        write(store, prepared, safe=safe)
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
    from agent_otel.store.writes import insert

    existing: dict[str, str] = {}
    for sha, kid in store.in_chunks(
        "SELECT sha, key_id FROM agent_snapshot_blobs WHERE sha IN ({})", list(blobs)
    ):
        existing[sha] = kid
    upsert: list[tuple[Any, ...]] = []
    refresh: list[str] = []
    for sha, (encoding, kid, size, data) in blobs.items():
        old = existing.get(sha)
        if old is None or (kid and old != kid):
            upsert.append((sha, encoding, kid, size, data, now_ms))
        else:
            refresh.append(sha)
    for i in range(0, len(refresh), _CHUNK):
        chunk = refresh[i : i + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        cur = store.execute(
            f"UPDATE agent_snapshot_blobs SET last_used_ms = ? WHERE sha IN ({marks})", [now_ms, *chunk]
        )
        if cur.rowcount < len(chunk):  # removed by a concurrent gc since the SELECT (PostgreSQL)
            kept = {
                r[0] for r in store.in_chunks("SELECT sha FROM agent_snapshot_blobs WHERE sha IN ({})", chunk)
            }
            upsert += [(sha, *blobs[sha], now_ms) for sha in chunk if sha not in kept]
    # In the order of the sha index: its leaves are spread over the whole store, and a batch's 2 KB
    # results push them out of SQLite's small page cache between two inserts into the same leaf. Once
    # spilled to the WAL and changed again, SQLite re-reads and re-checksums every frame written after
    # it at commit: a third of the syscalls of a batch into a 100,000-run store. In order, each leaf is
    # changed once per batch. (The blobs' rowids are hidden; nothing reads them in insert order.)
    upsert.sort()
    insert(
        store,
        "agent_snapshot_blobs",
        ("sha", "encoding", "key_id", "size", "data", "last_used_ms"),
        list(chain.from_iterable(upsert)),
        "ON CONFLICT (sha) DO UPDATE SET encoding = excluded.encoding, key_id = excluded.key_id, "
        "size = excluded.size, data = excluded.data, last_used_ms = excluded.last_used_ms",
    )


_PG_NEXT_IDS = (
    "SELECT nextval(pg_get_serial_sequence('agent_snapshot_data', 'id')) FROM generate_series(1, ?)"
)


_DATA_COLUMNS = ("id", "created_at_ms", "key_id", "data")
_PG_COPY_DATA = f"COPY agent_snapshot_data ({', '.join(_DATA_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def _write_data(store: Store, prepared: Prepared, now_ms: int) -> None:
    """Append the small data with new ids, and name each in its snapshot's row (``data_id``)."""
    from agent_otel.store.writes import insert

    n = len(prepared.data)
    if store.kind == "postgresql":  # other writers take ids at the same time: from the sequence
        ids = [r[0] for r in store.execute(_PG_NEXT_IDS, (n,)).fetchall()]
    else:  # the transaction holds SQLite's write lock: nobody else appends meanwhile
        top = store.execute("SELECT coalesce(max(id), 0) FROM agent_snapshot_data").fetchone()[0]
        ids = list(range(top + 1, top + 1 + n))
    values: list[Any] = []
    for new_id, (is_run, base, kid, data) in zip(ids, prepared.data, strict=True):
        if is_run:
            prepared.runs[base + _RUN_DATA_ID] = new_id
            created = prepared.runs[base + _RUN_CREATED]
        else:
            prepared.tools[base + _DATA_ID] = new_id
            created = prepared.tools[base + _TOOL_CREATED]
        values += (new_id, int(created) if created is not None else now_ms, kid, data)
    if store.kind == "postgresql":  # only ever appended, as the events: one binary COPY for the batch
        # (binary: the data as it is, where text would send and parse it hex-encoded, twice its size)
        with store.conn.cursor().copy(_PG_COPY_DATA) as copy:
            copy.set_types(["int8", "int8", "text", "bytea"])
            for i in range(0, len(values), 4):
                copy.write_row(values[i : i + 4])
        return
    insert(store, "agent_snapshot_data", _DATA_COLUMNS, values)


# --- reading -----------------------------------------------------------------------------------------


def find_run(store: Store, prefix: str) -> dict[str, Any] | None:
    """The recorded run whose id is ``prefix`` or uniquely starts with it (None if none; ambiguous raises)."""
    from agent_otel.store.db import StoreError, prefix_query

    exact = store.query("SELECT * FROM agent_snapshot_runs WHERE run_id = ?", (prefix,))
    if exact:
        return exact[0]
    rows = store.query(*prefix_query("SELECT * FROM agent_snapshot_runs", "run_id", prefix, limit=6))
    if not rows and prefix.lower() != prefix:
        # Ids are lower-case hex, and a prefix typed in capitals finds its run (Store.find_run): here
        # it did not, so `replay` said the run had no snapshots, recorded with replay.record: false.
        rows = store.query(
            *prefix_query("SELECT * FROM agent_snapshot_runs", "run_id", prefix.lower(), limit=6)
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
    # Small data from agent_snapshot_data (migration 7), the rest from the blob table.
    named = [(r["input_data_id"], r["input_sha"]) for r in runs if r.get("input_data_id") is not None]
    named += [
        (s["data_id"], s["blob_sha"]) for rows in steps.values() for s in rows if s.get("data_id") is not None
    ]
    found = {
        d["id"]: d
        for d in _in(
            store, "SELECT id, key_id, data FROM agent_snapshot_data WHERE id IN ({})", {i for i, _ in named}
        )
    }
    blobs: dict[str, tuple[str, str, bytes]] = {}
    for data_id, sha in named:
        d = found.get(data_id)
        if d is not None and sha:
            blobs[sha] = (SEALED if d["key_id"] else PLAIN, d["key_id"], bytes(d["data"]))
    wanted = {r["input_sha"] for r in runs if r.get("input_sha")}
    wanted |= {s["blob_sha"] for rows in steps.values() for s in rows if s.get("blob_sha")}
    rows_found = _in(
        store,
        "SELECT sha, encoding, key_id, data FROM agent_snapshot_blobs WHERE sha IN ({})",
        wanted.difference(blobs),
    )
    blobs.update((b["sha"], (b["encoding"], b["key_id"], bytes(b["data"]))) for b in rows_found)
    return runs, steps, blobs


def _in(store: Store, text: str, values: Iterable[Any]) -> list[dict[str, Any]]:
    values = list(values)
    out: list[dict[str, Any]] = []
    for i in range(0, len(values), _CHUNK):
        chunk: Sequence[Any] = values[i : i + _CHUNK]
        out += store.query(text.format(", ".join("?" for _ in chunk)), chunk)
    return out
