"""The snapshot tables (schema migrations 2, 7 and 8): writing what the recorder sends, reading a recording
back.

``("snapshot", {...})`` records come from the replay recorder (``agent_otel.snapshots``) with ``kind`` ``run``
(a run's input and versions) or ``tool`` (one tool call's outcome). Since migration 8 a write stores:

* a run's record as a row of ``agent_snapshot_runs``, with its input in the row itself (``input_data``,
  ``input_key_id``) when it is at most :data:`INLINE_MAX_BYTES` as stored (sealed, if a key is set);
* the tool calls of one run in one write as **one** row of ``agent_snapshot_packs`` (a *pack*): ``steps``,
  JSON text, one array per call of the fields :data:`PACK_FIELDS`, and ``data``, the calls' small data
  (results and errors of at most :data:`INLINE_MAX_BYTES` as stored) one after another, each call's
  ``size`` bytes in that order. A run's calls written over several batches make several packs, read
  together in step order. One row a run instead of a row per call and per datum: the per-row and
  per-index-entry work of the database, and the pages its indexes take, were most of what recording cost
  (``benchmarks/store_throughput.py capacity``/``frames``). The calls' data is sealed one by one, as
  before, all with the key of the pack's ``key_id`` (a write whose calls were sealed with different keys
  makes a pack per key); names, hashes and step ids stay readable, as in the events.

Larger data is stored once per content hash in ``agent_snapshot_blobs``, where repeating a large result
costs nothing; each write of a known blob only refreshes its ``last_used_ms``, which is what retention
looks at, so a blob lives as long as the newest snapshot using it. A blob recorded in the clear is
re-sealed the next time it is recorded with a key, and one sealed with an older key is re-sealed with the
current one; a sealed blob is never replaced by a clear one. Data in a pack or a run's row is written once
and never re-sealed: small data recorded before a key was set stays in the clear until retention removes it
with its snapshot. ``blob_sha`` and ``input_sha`` are the content's hash in both forms (a result's is its
``result_sha``).

Snapshots recorded before migration 8 stay where they were written and replay as before: a row per call in
``agent_tool_snapshots``, small data (migration 7) in ``agent_snapshot_data`` named by ``data_id`` and
``input_data_id``, and before migration 7 everything in the blob table. :func:`load_tree` and
:func:`tool_snapshots` read every form.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
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
    "input_key_id",
    "input_data",
)
#: The fields of a call in a pack's ``steps``, in this order (a later version may append fields; a reader
#: takes those it knows). ``blob_sha``: the content hash of the call's data, as in the rows of
#: ``agent_tool_snapshots``; ``size``: the bytes of that data in the pack's ``data``, after those of the
#: calls before it (null: the data is in ``agent_snapshot_blobs`` under ``blob_sha``, or there is none).
PACK_FIELDS = (
    "step_id",
    "parent_step",
    "tool",
    "args_sha",
    "outcome",
    "result_sha",
    "error_type",
    "result_type",
    "blob_sha",
    "size",
)
PACK_COLUMNS = ("run_id", "created_at_ms", "calls", "items", "key_id", "steps", "data")
#: What a row of agent_tool_snapshots (schema 2 to 7) holds; the calls of packs are read into the same form.
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
_RUN_KEY, _RUN_DATA = RUN_COLUMNS.index("input_key_id"), RUN_COLUMNS.index("input_data")
#: The largest data (in bytes as stored: sealed, if a key is set) kept with its snapshot (in its pack, or a
#: run's row); larger data goes to agent_snapshot_blobs, once per content hash, where a large result that
#: many calls return (a 2 MB answer 100 times) is stored once. ``benchmarks/store_throughput.py frames
#: --result-bytes N --inline-max 0`` compares the two forms.
INLINE_MAX_BYTES = 4_000


def _pack_json() -> Callable[[Any], str]:
    """Compact ASCII JSON (any text is safe) of a pack's calls: ``json.JSONEncoder(separators=(",", ":"),
    check_circular=False).encode``, whose every call makes a new C encoder (a fifth of the encoding of a
    run's 8 calls); here it is made once. Anything JSON cannot encode raises TypeError, as there."""
    encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without json's C accelerator
        return encode

    def refuse(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    chunks = make(None, refuse, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda value: "".join(chunks(value, 0))


_PACK_JSON = _pack_json()
_NO_RUN = object()  # prepare's last run before the first call


@dataclass
class Prepared:
    """Snapshot records ready for one transaction: rows, and blobs already sealed."""

    #: The rows' values one after another (RUN_COLUMNS, PACK_COLUMNS), as the inserts bind them.
    runs: list[Any] = field(default_factory=list)
    packs: list[Any] = field(default_factory=list)
    blobs: dict[str, tuple[str, str, int, bytes]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.runs or self.packs)


_OUTCOME, _RESULT_SHA = PACK_FIELDS.index("outcome"), PACK_FIELDS.index("result_sha")
_BLOB_SHA, _SIZE = PACK_FIELDS.index("blob_sha"), PACK_FIELDS.index("size")


def prepare(records: Iterable[dict[str, Any]]) -> Prepared:
    """Seal the data (outside the write transaction) and pack each run's tool calls. Data that cannot be
    sealed is not stored: its tool call is recorded as ``write_failed`` (counted and warned once), never
    raised.

    The store sink's thread runs this for every tool call recorded (``benchmarks/store_throughput.py``):
    each call's fields are read straight into its list (no ``map`` over PACK_FIELDS), and consecutive calls
    of one run, the usual order, go to its pack without a key tuple and a dict lookup each."""
    out = Prepared()
    small: dict[str, tuple[str, bytes]] = {}  # this batch's small data by hash, sealed once each
    limit = INLINE_MAX_BYTES
    runs, blobs = out.runs, out.blobs
    # (run_id, key_id) -> [created_at_ms of its earliest call, its calls' fields, their data]
    packs: dict[tuple[Any, str], list[Any]] = {}
    last_run: Any = _NO_RUN
    last_kid = ""
    pack: list[Any] = []
    for rec in records:
        get = rec.get
        blob = get("blob")
        stored = here = None
        if blob is not None:
            sha = blob.sha
            here = small.get(sha)
            if here is not None or sha in blobs:
                stored = sha
            else:
                try:
                    _, kid, _, sealed_data = sealed = blob.sealed()
                    if len(sealed_data) <= limit:
                        here = small[sha] = (kid, sealed_data)
                    else:
                        blobs[sha] = sealed
                    stored = sha
                except Exception as exc:
                    warn_once("seal", "sealing a replay snapshot failed (%s: %s)", type(exc).__name__, exc)
        if get("kind") == "run":
            base = len(runs)
            runs.extend(map(get, RUN_COLUMNS))
            runs[base + _RUN_KEY], runs[base + _RUN_DATA] = here if here is not None else (None, None)
            continue
        outcome, result_sha = get("outcome"), get("result_sha")
        if blob is not None:
            if outcome == OK and result_sha is None:
                result_sha = sha  # the content address of a result is its result_sha
            if stored is None:
                outcome = WRITE_FAILED
        else:
            stored = get("blob_sha")  # no key of a record: None
        call = [
            get("step_id"),
            get("parent_step"),
            get("tool"),
            get("args_sha"),
            outcome,
            result_sha,
            get("error_type"),
            get("result_type"),
            stored,
            get("size") if here is None else len(here[1]),
        ]
        created = get("created_at_ms")
        run_id, kid = get("run_id"), here[0] if here is not None else ""
        if run_id != last_run or kid != last_kid:
            key = (run_id, kid)
            found = packs.get(key)
            if found is None:
                packs[key] = pack = [created, [], []]
            else:
                pack = found
            last_run, last_kid = run_id, kid
        if pack[1] and type(created) is int and (type(pack[0]) is not int or created < pack[0]):
            pack[0] = created  # the earliest call's: retention deletes the pack with it
        pack[1].append(call)
        if here is not None:
            pack[2].append(here[1])
    values = out.packs
    now_ms = None
    for (run_id, kid), (created, calls, data) in packs.items():
        try:
            steps = _PACK_JSON(calls)
        except (TypeError, ValueError, RecursionError):  # the recorder sends none: its text, not a lost batch
            steps = json.dumps(calls, separators=(",", ":"), default=repr)
        if type(created) is not int:
            created = now_ms = now_ms or int(time.time() * 1000)
        values += (run_id, created, len(calls), len(data), kid, steps, b"".join(data))
    return out


def write(store: Store, prepared: Prepared, now_ms: int | None = None, safe: bool = True) -> None:
    """Insert the rows and blobs; call inside the store's write transaction. ``safe=False``: the values
    as they are (see :mod:`agent_otel.store.writes`)."""
    from agent_otel.store.writes import insert

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if prepared.blobs:
        _write_blobs(store, prepared.blobs, now_ms)
    runs, packs = prepared.runs, prepared.packs
    if safe:
        runs, packs = list(map(store.param, runs)), list(map(store.param, packs))
    insert(store, "agent_snapshot_runs", RUN_COLUMNS, runs, "ON CONFLICT (run_id) DO NOTHING")
    if not packs:
        return
    if store.kind == "postgresql":  # only ever appended, as the events: one binary COPY for the batch
        # (binary: the data as it is, where text would send and parse it hex-encoded, twice its size)
        width = len(PACK_COLUMNS)
        with store.conn.cursor().copy(_PG_COPY_PACKS) as copy:
            copy.set_types(["text", "int8", "int4", "int4", "text", "text", "bytea"])
            for i in range(0, len(packs), width):
                copy.write_row(packs[i : i + width])
        return
    insert(store, "agent_snapshot_packs", PACK_COLUMNS, packs)


_PG_COPY_PACKS = f"COPY agent_snapshot_packs ({', '.join(PACK_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


class Refused(Exception):
    """The store refused the snapshots of a write for a reason of its own (their table dropped by hand, a
    PostgreSQL role without privileges on them): the write is done again without them (see
    :func:`agent_otel.store.writes.write`), so that the runs and events of the batch are not lost."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def write_checked(store: Store, prepared: Prepared, safe: bool = True) -> None:
    """:func:`write`, raising :class:`Refused` for a failure that is neither transient (a busy store fails
    the whole batch, which the sink then retries) nor the values' fault (bad_data fails it too, so that the
    sink's split finds and drops only the records holding them). No savepoint: one made every page a
    write changed after it opened go to SQLite's statement journal, a temporary file, first (1.2 pages a
    run of the loop of ``benchmarks/store_throughput.py``); the rare refusal costs the batch's transaction
    done again instead."""
    from agent_otel.store.db import classify

    try:
        write(store, prepared, safe=safe)
    except Exception as exc:
        err = classify(exc)
        if err.transient or err.bad_data:
            raise
        raise Refused(err) from None


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
    step order, and the data they use: ``{sha: (encoding, key_id, data)}``."""
    runs = [root]
    frontier = [root["run_id"]]
    seen = {root["run_id"]}
    while frontier:
        children = _in(store, "SELECT * FROM agent_snapshot_runs WHERE parent_run_id IN ({})", frontier)
        children.sort(key=lambda c: (c["created_at_ms"], c["run_id"]))
        frontier = [c["run_id"] for c in children if c["run_id"] not in seen]
        seen.update(frontier)
        runs += [c for c in children if c["run_id"] in frontier]
    blobs: dict[str, tuple[str, str, bytes]] = {}
    steps = tool_snapshots(store, [r["run_id"] for r in runs], blobs)
    for r in runs:  # a small input in the run's own row (migration 8)
        data = r.pop("input_data", None)
        if data is not None and r.get("input_sha"):
            kid = r.get("input_key_id") or ""
            blobs[r["input_sha"]] = (SEALED if kid else PLAIN, kid, bytes(data))
    # Small data of snapshots recorded under migration 7, in agent_snapshot_data; the rest in the blob table.
    named = [(r["input_data_id"], r["input_sha"]) for r in runs if r.get("input_data_id") is not None]
    named += [
        (s["data_id"], s["blob_sha"]) for rows in steps.values() for s in rows if s.get("data_id") is not None
    ]
    if named:
        found = {
            d["id"]: d
            for d in _in(
                store,
                "SELECT id, key_id, data FROM agent_snapshot_data WHERE id IN ({})",
                {i for i, _ in named},
            )
        }
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


def tool_snapshots(
    store: Store, run_ids: Sequence[str], data: dict[str, tuple[str, str, bytes]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The recorded tool calls of ``run_ids``, in step order, each as a row of ``agent_tool_snapshots``
    (:data:`TOOL_COLUMNS`) whichever form it was stored in: rows of that table (schemas 2 to 7) or packs
    (migration 8). A step recorded twice keeps its first record, as the table's primary key did. ``data``:
    if given, receives the packs' data, ``{blob_sha: (encoding, key_id, data)}``."""
    out: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    if not out:
        return out
    for row in _in(
        store, "SELECT * FROM agent_tool_snapshots WHERE run_id IN ({}) ORDER BY run_id, step_id", list(out)
    ):
        out[row["run_id"]].append(row)
    if store.has_table("agent_snapshot_packs"):
        packs = _in(
            store,
            "SELECT run_id, created_at_ms, key_id, steps, data FROM agent_snapshot_packs "
            "WHERE run_id IN ({}) ORDER BY id",
            list(out),
        )
        known = {run_id: {r["step_id"] for r in rows} for run_id, rows in out.items()}
        for pack in packs:
            out[pack["run_id"]] += _unpack(pack, known[pack["run_id"]], data)
        for rows in out.values():
            rows.sort(key=lambda r: (r["step_id"] is None, r["step_id"] or 0))
    return out


def _unpack(
    pack: dict[str, Any], known: set[Any], data: dict[str, tuple[str, str, bytes]] | None
) -> list[dict[str, Any]]:
    """The calls of one pack as rows of :data:`TOOL_COLUMNS`, less the steps in ``known``."""
    kid = pack["key_id"] or ""
    encoding = SEALED if kid else PLAIN
    blob = bytes(pack["data"])
    at = 0
    rows: list[dict[str, Any]] = []
    for values in json.loads(pack["steps"]):
        call = dict(zip(PACK_FIELDS, values, strict=False))
        size = call.pop("size", None)
        if size is not None:
            if data is not None and call.get("blob_sha"):
                data[call["blob_sha"]] = (encoding, kid, blob[at : at + size])
            at += size
        if call["step_id"] in known:
            continue
        known.add(call["step_id"])
        call.update(run_id=pack["run_id"], created_at_ms=pack["created_at_ms"], data_id=None)
        rows.append(call)
    return rows


def _in(store: Store, text: str, values: Iterable[Any]) -> list[dict[str, Any]]:
    values = list(values)
    out: list[dict[str, Any]] = []
    for i in range(0, len(values), _CHUNK):
        chunk: Sequence[Any] = values[i : i + _CHUNK]
        out += store.query(text.format(", ".join("?" for _ in chunk)), chunk)
    return out
