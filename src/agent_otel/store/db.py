"""The run store itself: one class over SQLite (the default) and PostgreSQL (a team database).

Both dialects share the SQL; a dialect supplies the connection, the placeholder style, and how a
timestamp and a JSON value are stored. Writes are one transaction per batch; reads return plain dicts
with ``created_at_ms``/``ended_at_ms`` (epoch milliseconds, UTC) whatever the dialect stores.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from agent_otel.store import liveness
from agent_otel.store.location import Target, home, redact_url
from agent_otel.store.schema import (
    JSON_EVENT_COLUMNS,
    META_TABLE,
    MIGRATIONS,
    SNAPSHOT_PURGE_KEY,
    SNAPSHOT_TABLES,
)

DEFAULT_BUSY_TIMEOUT_S = 5.0
INTEGRITY_CHECK_S = 10.0  # doctor's bound on SQLite's quick_check (a few GB of store on a laptop)
# The store sink's SQLite page cache: SQLite's default. 16 MB wrote ~12% faster into a large store but
# grew the outage drill's RSS past its bound (README, Performance), so memory wins.
WRITER_CACHE_MB = 2
WAL_CHECKPOINT_PAGES = 8000  # ... its automatic checkpoint, in pages of 4 KB (SQLite's default: 1,000)
WAL_LIMIT_MB = 64  # ... and the size the WAL file is truncated back to after a checkpoint
_PG_LOCK_ID = 0x6167_6F74  # "agot": serialises migrations between processes
SUMMARIES_VERSION = 6  # the schema version that added agent_run_summaries
SNAPSHOT_DATA_TABLES = (*SNAPSHOT_TABLES, "agent_snapshot_data", "agent_snapshot_packs")  # owner-only in PG
_SNAPSHOT_FIGURES = ("tool_snapshots", "snapshot_runs", "snapshot_blobs", "snapshot_bytes", "encrypted_blobs")
COUNT_EXACT_UP_TO = 200_000  # doctor counts rows exactly up to this many, estimates beyond
_SAMPLE_ROWS = 2_000
#: The bytes of stored results doctor sums exactly, per row it counts exactly (``exact_up_to``): 16 MB at
#: the default, tens of milliseconds of reading; a larger blob table is summed from a sample of its first
#: rows. Counted in rows alone, doctor summed up to 200,000 blobs of any size: the bench store's 20,000
#: results of ~2 KB (benchmarks/cli_scaling.py) are 43 MB of data, 82 MB of SQLite pages (a page each).
_EXACT_BYTES_PER_ROW = 80
_SEALED = "CASE WHEN key_id <> '' THEN {} ELSE 0 END"
#: Where doctor finds recorded snapshots: per table, its rows' tool calls, stored results/errors/inputs
#: ("items"), their bytes, and how many of those are sealed.
_SNAPSHOT_SOURCES = (
    ("agent_snapshot_blobs", f"0 AS calls, 1 AS items, size AS bytes, {_SEALED.format(1)} AS sealed"),
    ("agent_snapshot_data", f"0 AS calls, 1 AS items, length(data) AS bytes, {_SEALED.format(1)} AS sealed"),
    (
        "agent_snapshot_packs",
        f"calls, items, length(data) AS bytes, {_SEALED.format('items')} AS sealed",
    ),
    (
        "agent_snapshot_runs",
        "0 AS calls, CASE WHEN input_data IS NULL THEN 0 ELSE 1 END AS items, "
        "coalesce(length(input_data), 0) AS bytes, "
        "CASE WHEN input_key_id <> '' THEN 1 ELSE 0 END AS sealed",
    ),
)

logger = logging.getLogger("agent_otel")


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)`` without building an encoder
    per call: ``JSONEncoder.encode`` makes a new C encoder for each value (over half its time for an LLM
    request's usage), so CPython's C encoder is made once here. It is made without the circular-reference
    check (its ``markers`` state would be shared by every call): a cycle raises RecursionError instead of
    ValueError, which :meth:`Store.json_text` handles alike."""
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=str).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without json's C accelerator
        return encode
    chunks = make(None, str, json.encoder.encode_basestring, None, ": ", ", ", False, False, False)
    return lambda value: "".join(chunks(value, 0))


_json_text = _json_encoder()


class StoreError(Exception):
    """The store cannot be opened or used. ``transient`` errors (locked, unreachable, restarting) may
    pass; ``bad_data`` ones are about a record the database refuses, not about the store."""

    def __init__(
        self, message: str, transient: bool = False, bad_data: bool = False, sqlstate: str = ""
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.bad_data = bad_data
        self.sqlstate = sqlstate  # PostgreSQL's error code, when the server gave one


#: Filters of :meth:`Store.runs` beyond its named ones, as SQL with one parameter each.
RUN_FILTERS = {
    "model": "model = ?",
    "prompt_version": "prompt_version = ?",
    "conversation": "conversation_id = ?",
    "status": "status = ?",
    "min_duration_ms": "duration_ms >= ?",
    "ended_since_ms": "ended_at >= ?",
    "tool": (
        "EXISTS (SELECT 1 FROM agent_events e WHERE e.run_id = agent_runs.run_id "
        "AND e.kind = 'tool_result' AND e.tool = ?)"
    ),
}


def prefix_query(select: str, column: str, prefix: str, limit: int) -> tuple[str, list[Any]]:
    """``select`` limited to the rows whose ``column`` starts with ``prefix``, as a range of the column's
    index (a LIKE would scan the table: SQLite uses an index for LIKE only with case_sensitive_like, and
    PostgreSQL only under the C collation). The LIKE kept beside it only checks the range's rows."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    where = f"{column} >= ? AND {column} LIKE ? ESCAPE '\\'"
    params: list[Any] = [prefix, escaped + "%"]
    end = _after_prefix(prefix)
    if end is not None:
        where += f" AND {column} < ?"
        params.append(end)
    return f"{select} WHERE {where} ORDER BY {column} LIMIT {int(limit)}", params


def _after_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: there is none)."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not text
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def classify(exc: BaseException) -> StoreError:
    """A database exception as a one-line :class:`StoreError`, marked transient when retrying may help
    and bad_data when the records written, not the store, are what the database refused."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in lowered or "busy" in lowered):
        return StoreError(f"{text} (another process holds the write lock)", transient=True)
    if getattr(exc, "sqlite_errorname", None) in _SQLITE_NO_ROOM:
        return StoreError(f"{text} (is the disk or a quota full?)", transient=True)
    if type(exc).__module__.startswith("psycopg"):
        state = _pg_state(exc)
        return StoreError(
            text, transient=_pg_transient(exc, state), bad_data=_pg_bad_data(exc), sqlstate=state
        )
    return StoreError(text, bad_data=_sqlite_bad_data(exc, lowered))


# A full disk (ENOSPC) or quota or file-size limit (EDQUOT, EFBIG: SQLite's failed write) is passing: once
# log rotation, gc or an operator frees room, the store takes writes again, as PostgreSQL's class 53 does.
_SQLITE_NO_ROOM = ("SQLITE_FULL", "SQLITE_IOERR_WRITE")

# SQLSTATE classes (the first two characters): 08 connection exception, 57 operator intervention (a server
# shutting down or restarting: 57P01 admin_shutdown, 57P03 cannot_connect_now), 53 insufficient resources,
# 40 transaction rollback (serialization failure, deadlock); 22 data exception, 23 integrity constraint,
# 54 program limit exceeded (a value too large for an index or a jsonb).
_PG_TRANSIENT_CLASSES = ("08", "57", "53", "40")
# 25006 read_only_sql_transaction: after a failover the URL leads to a server that is a standby now, until
# DNS or a proxy points at the new primary; a new connection then writes again.
_PG_TRANSIENT_STATES = ("25006",)
_PG_BAD_DATA_CLASSES = ("22", "23", "54")
# A server that says who may not connect, or that the database does not exist, is not going to change its
# mind on a retry; except that a database this process was writing to and that an operator dropped may
# well be created again (the store sink then waits for it: sink.StoreSink._failed).
_PG_PERMANENT_STATES = ("28000", "28P01", "3D000")
DATABASE_MISSING = "3D000"
# psycopg gives no sqlstate for a failed connection (it is not a query's result): the server's FATAL line
# (English, the default lc_messages) is all there is. Without a match the failure counts as transient.
_PG_CONNECT_STATES = (
    ('database "', '" does not exist', DATABASE_MISSING),
    ('role "', '" does not exist', "28000"),
    ("no pg_hba.conf entry", "", "28000"),
    ("password authentication failed", "", "28P01"),
)


# ... nor does a retry mend what libpq itself refuses while setting up TLS (a wrong or missing CA, a
# certificate for another host, a server without TLS under sslmode=require), nor a pooler refusing a
# startup parameter (PgBouncer and `options=-c...`): configuration, like a wrong password.
_PG_SETUP_REFUSED = (
    "certificate verify failed",
    "root certificate file",
    "does not match host name",
    "server does not support SSL",
    "unsupported startup parameter",
)
INSUFFICIENT_PRIVILEGE = "42501"


QUERY_CANCELED = "57014"


def database_error(exc: BaseException, target: Target | None) -> str:
    """A PostgreSQL error met while a command read the store, as its one line: what failed, and for a
    statement cancelled by the server's ``statement_timeout`` (57014, a limit a DBA sets per role or
    database), how to give agent-otel's role more time."""
    error = classify(exc)
    where = f"the run store at {target.display}" if target is not None else "the run store"
    line = f"reading {where} failed ({error})"
    if error.sqlstate == QUERY_CANCELED:
        line += (
            "; a statement_timeout of the server, the database or the role cut it short: raise it for "
            "this role (ALTER ROLE ... SET statement_timeout = '5min')"
        )
    return line


def _pg_state(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None) or ""
    if state:
        return state
    text = str(exc)
    if "FATAL:" in text:
        fatal = text.split("FATAL:", 1)[1]
        for start, end, code in _PG_CONNECT_STATES:
            at = fatal.find(start)
            if at >= 0 and fatal.find(end, at + len(start)) >= 0:
                return code
    return ""


def _pg_transient(exc: BaseException, state: str) -> bool:
    """A restart, failover or network blip: psycopg raises OperationalError (AdminShutdown,
    CannotConnectNow, ConnectionTimeout, "server closed the connection unexpectedly", ...) or, for a
    connection that is already closed, InterfaceError. All of them pass."""
    if state in _PG_PERMANENT_STATES:
        return False
    if not state and any(marker in str(exc) for marker in _PG_SETUP_REFUSED):
        return False
    if state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES:
        return True
    return any(cls.__name__ in ("OperationalError", "InterfaceError") for cls in type(exc).__mro__)


def _pg_bad_data(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None) or ""
    if state[:2] in _PG_BAD_DATA_CLASSES:
        return True
    # Raised by psycopg itself, before the server sees the row (NUL in text, a value it cannot adapt).
    return any(cls.__name__ in ("DataError", "IntegrityError") for cls in type(exc).__mro__)


def _sqlite_bad_data(exc: BaseException, lowered: str) -> bool:
    """Errors of one record's values: Python refusing to encode them (a lone surrogate, an int of more
    than 64 bits), SQLite refusing to bind or to hold them ("string or blob too big")."""
    if isinstance(exc, UnicodeError | OverflowError | RecursionError | ValueError | TypeError):
        return True
    if isinstance(exc, sqlite3.InterfaceError | sqlite3.DataError | sqlite3.IntegrityError):
        return True
    if isinstance(exc, sqlite3.ProgrammingError) and "binding" in lowered:
        return True
    return isinstance(exc, sqlite3.Error) and "too big" in lowered


class Store:
    """An open run store. Not thread-safe: one thread at a time (the sink holds a lock)."""

    kind = ""
    placeholder = "?"
    nul_ok = True  # whether text and JSON may hold NUL characters (PostgreSQL's may not)
    max_params = 999  # values one statement may bind (SQLite's own limit is read when it opens)

    def __init__(self, target: Target) -> None:
        self.target = target
        self.conn: Any = None
        self.read_only = False  # opened read-only (a SQLite file this process may not write)
        self.summarized = False  # the schema has run summaries (6+): writes keep them up to date
        self._summary_runs: dict[str, tuple[int, str, bool]] = {}  # see summaries.deltas
        self._summary_orphans: dict[str, None] = {}  # runs with events but no row yet: summaries.deltas
        self._summary_rows: dict[Any, tuple[str, Any]] = {}  # summary rows this writer wrote last: _add_rows

    # --- dialect hooks -------------------------------------------------------------------------------

    def _ts(self, ms: int | None) -> Any:
        raise NotImplementedError

    def _ms(self, value: Any) -> int | None:
        raise NotImplementedError

    def _json(self, value: Any) -> Any:
        raise NotImplementedError

    def _unjson(self, value: Any) -> Any:
        return value

    # --- values the database takes -------------------------------------------------------------------

    def param(self, value: Any) -> Any:
        """``value`` made safe to bind: text through :func:`safe_text` (a lone surrogate from
        ``os.fsdecode``, NUL for PostgreSQL), ints beyond 64 bits as text. One odd value must not make a
        batch fail, and with it the store."""
        from agent_otel.hashing import safe_int, safe_text  # the write path's: readers need none of it

        kind = type(value)
        if kind is str:
            return safe_text(value, self.nul_ok)
        if kind is int:
            return safe_int(value)
        return value

    def row(self, values: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(self.param(v) for v in values)

    def json_text(self, value: Any) -> str:
        """JSON text of ``value`` that both dialects accept (jsonb refuses NaN, lone surrogates and NUL);
        the common case costs one ``json.dumps``, an odd value a :func:`json_safe` copy."""
        try:
            text = _json_text(value)
        except (ValueError, TypeError, RecursionError):  # NaN, an int beyond 4,300 digits, a cycle
            pass
        else:
            if text.isascii():
                encodable = True
            else:
                from agent_otel.hashing import safe_text  # the write path's: readers need none of it

                encodable = safe_text(text) is text
            if encodable and (self.nul_ok or "\\u0000" not in text):  # jsonb refuses an escaped NUL too
                return text
        from agent_otel.hashing import json_safe

        return json.dumps(json_safe(value, self.nul_ok), ensure_ascii=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    #: The transaction id of the last write_transaction() whose COMMIT failed (see commit_status).
    unsure_xid: int | None = None

    def write_transaction(self) -> contextlib.AbstractContextManager[None]:
        """The transaction of a write of records (:mod:`agent_otel.store.writes`): as transaction(); a
        server store also remembers, when the COMMIT itself fails, which transaction it was."""
        return self.transaction()

    def commit_status(self, xid: int) -> str | None:
        """``committed``, ``aborted``, ``in progress`` or None (not known) for ``unsure_xid``."""
        return None

    def size_bytes(self) -> int | None:
        raise NotImplementedError

    def has_table(self, name: str) -> bool:
        raise NotImplementedError

    def for_streaming_writes(self) -> None:
        """Settings for a connection that writes batch after batch (the store sink's); none by default."""

    def purge_deleted(self) -> None:
        """After gc: make what it deleted unreadable in the files too, as far as the database can."""

    def integrity(self, budget_s: float = INTEGRITY_CHECK_S) -> dict[str, Any]:
        """Whether the database's pages are sound: ``{"checked": bool, "problems": [...], "note": str}``.
        ``checked`` is False when no check ran to its end (then ``problems`` proves nothing)."""
        return {"checked": False, "problems": [], "note": "checked by the database server, not here"}

    # --- plumbing ------------------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.sql(text), tuple(params))

    def query(self, text: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.execute(text, params)
        names = [d[0] for d in cur.description or ()]
        return [dict(zip(names, row, strict=False)) for row in cur.fetchall()]

    def stream(self, text: str, params: Sequence[Any] = (), size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Rows of a query as tuples, fetched ``size`` at a time: a large result never sits in memory."""
        cur = self.execute(text, params)
        while True:
            rows = cur.fetchmany(size)
            if not rows:
                return
            yield from rows

    def in_chunks(self, template: str, values: Sequence[Any], size: int = 500) -> Iterator[tuple[Any, ...]]:
        """Rows of ``template`` (with ``{}`` for the placeholders of an ``IN (...)`` list) over ``values``,
        a chunk of ``size`` values per query."""
        for i in range(0, len(values), size):
            chunk = values[i : i + size]
            yield from self.execute(template.format(", ".join("?" for _ in chunk)), chunk).fetchall()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """One consistent snapshot for several reads (the figures of a period add up several queries)."""
        yield

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # --- schema --------------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        try:
            rows = self.query(f"SELECT value FROM {META_TABLE} WHERE key = ?", (key,))
        except Exception:
            return None
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._upsert_meta(key, value)

    def _upsert_meta(self, key: str, value: str) -> None:
        self.execute(
            f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def latest_version(self) -> int:
        """The schema version this agent-otel migrates to."""
        return max(step for step, _ in MIGRATIONS[self.kind])

    def schema_version(self) -> int:
        value = self.meta("schema_version")
        return int(value) if value else 0

    def _lock_for_migration(self) -> None:
        """Called first inside the migration transaction (PostgreSQL takes an advisory lock)."""

    def role(self) -> str:
        """The database role this store connected as ("" where there are none)."""
        return ""

    def privilege_hint(self, error: StoreError, create: bool = False) -> str:
        """What to do about a permission the database refused (PostgreSQL), "" for other errors."""
        return ""

    def migrate(self, writer: bool = True) -> int:
        """Apply missing migrations; returns the version. A newer store is refused for writing."""
        latest = self.latest_version
        version = self.schema_version()
        if version < latest and self.read_only:
            raise StoreError(
                f"its schema version {version} is older than this agent-otel's ({latest}) and it can only "
                "be opened read-only here, so it cannot be migrated; open it once where it is writable"
            )
        if version < latest:
            try:
                version = self._migrate_from(version)
            except Exception as exc:
                error = classify(exc)
                if error.transient:
                    raise error from None
                if not version:  # a fresh store: its own error says it best, with what a DBA can do
                    raise StoreError(
                        f"{error}{self.privilege_hint(error, create=True)}", sqlstate=error.sqlstate
                    ) from None
                # Opened by a role that may read and write rows but not alter tables (PostgreSQL), after
                # an upgrade: say what is needed, not only "permission denied for schema public".
                owner = (
                    f": open it once as a role that owns its tables (any agent-otel command migrates it, "
                    f"such as `agent-otel --store <the owner's URL> doctor`); this one is {self.role()}"
                    if self.kind == "postgresql"
                    else ""
                )
                raise StoreError(
                    f"its schema version {version} is older than this agent-otel's ({latest}) and migrating "
                    f"it failed ({error}); it is left as it was{owner}",
                    sqlstate=error.sqlstate,
                ) from None
        if version > latest and writer:
            raise StoreError(
                f"its schema version {version} is newer than this agent-otel supports ({latest}); "
                "upgrade agent-otel"
            )
        self.summarized = version >= SUMMARIES_VERSION
        return version

    def _migrate_from(self, version: int) -> int:
        """Apply the migrations above ``version`` in one transaction (all or none: a migration cut short,
        by an error or a killed process, leaves the store as it was, and the next open starts again)."""
        with self.transaction():
            self._lock_for_migration()
            self.execute(
                f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            version = self.schema_version()  # another process may have migrated meanwhile
            for step, statements in MIGRATIONS[self.kind]:
                if step <= version:
                    continue
                for statement in statements:
                    self.execute(statement)
                version = step
                self._upsert_meta("schema_version", str(step))
        return version

    # --- writing -------------------------------------------------------------------------------------

    def write(
        self,
        runs: Sequence[dict[str, Any]],
        events: Sequence[dict[str, Any]],
        snapshots: Sequence[dict[str, Any]] = (),
        usage: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Upsert run rows, insert events and replay snapshots, add late usage to stopped runs' rows, in
        one transaction (:mod:`agent_otel.store.writes`).

        A run's start record inserts the row with status ``running``; its end record fills it in. A row
        that has ended is never overwritten, so a duplicate or late record cannot undo a stop; only the
        usage of a request that ended after the stop (``run_usage`` records) is added to it.
        """
        from agent_otel.store import writes

        try:
            writes.write(self, runs, events, snapshots, usage)
        except Exception as exc:
            error = classify(exc)
            hint = self.privilege_hint(error)
            if not hint:
                raise
            raise StoreError(f"{error}{hint}", sqlstate=error.sqlstate) from None

    def rebuild_summaries(self) -> None:
        """Summarize every stored run again (after rows were changed by hand, or a bulk load)."""
        from agent_otel.store import summaries

        summaries.rebuild_all(self)

    # --- reading -------------------------------------------------------------------------------------

    def _run_out(self, row: dict[str, Any], now_ms: int | None = None, cache: Any = None) -> dict[str, Any]:
        """A run row as the commands show it: times in epoch ms, and ``status`` ``abandoned`` (with the
        reason in ``abandoned``) for a ``running`` row whose process is gone or whose deadline passed."""
        row["created_at_ms"] = self._ms(row.pop("created_at", None))
        row["ended_at_ms"] = self._ms(row.pop("ended_at", None))
        if row.get("status") == liveness.RUNNING:
            now_ms = int(time.time() * 1000) if now_ms is None else now_ms
            why = liveness.judge(row, now_ms, cache)
            if why is not None:
                row["status"] = liveness.ABANDONED
                row["abandoned"] = why
        return row

    def _runs_out(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now_ms, cache = int(time.time() * 1000), {}  # one judgement per writing process
        return [self._run_out(r, now_ms, cache) for r in rows]

    def _event_out(self, row: dict[str, Any]) -> dict[str, Any]:
        row.pop("id", None)
        for col in JSON_EVENT_COLUMNS:
            value = row.get(col)
            if value is not None:
                row[col] = self._unjson(value)
            elif col != "usage":  # usage is a schema field; args/result exist only when stored
                row.pop(col, None)
        if row.get("attempts") is None:
            row.pop("attempts", None)
        return row

    def runs(
        self,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        agent: str | None = None,
        stop_reason: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        newest_first: bool = True,
        replays: bool = True,
        **more: Any,
    ) -> list[dict[str, Any]]:
        """Runs matching the filters; ``replays=False`` leaves out replays of recorded runs. ``more``:
        the CLI's filters (:data:`RUN_FILTERS`: model, prompt_version, conversation, status, tool,
        min_duration_ms, ended_since_ms)."""
        where: list[str] = []
        params: list[Any] = []
        for name, value in more.items():
            if name not in RUN_FILTERS:
                raise TypeError(f"runs() got an unexpected filter {name!r}")
            if value is not None:
                where.append(RUN_FILTERS[name])
                params.append(self._ts(value) if name == "ended_since_ms" else value)
        if not replays:
            where.append("replay_of IS NULL")
        if since_ms is not None:
            where.append("created_at >= ?")
            params.append(self._ts(since_ms))
        if until_ms is not None:
            where.append("created_at < ?")
            params.append(self._ts(until_ms))
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)
        judged = stop_reason in (liveness.RUNNING, liveness.ABANDONED)  # both are `running` rows
        if stop_reason is not None:
            if judged:
                where.append("status = 'running'")
            else:
                where.append("stop_reason = ?")
                params.append(stop_reason)
        if ids is not None:
            if not ids:
                return []
            where.append(f"run_id IN ({', '.join('?' for _ in ids)})")
            params.extend(ids)
        text = "SELECT * FROM agent_runs"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += f" ORDER BY created_at {'DESC' if newest_first else 'ASC'}, run_id"
        if limit is not None and not judged:
            text += f" LIMIT {int(limit)}"
        out = self._runs_out(self.query(text, params))
        if judged:
            out = [r for r in out if r["status"] == stop_reason][:limit]
        return out

    def find_run(self, prefix: str) -> dict[str, Any]:
        """The run whose id is ``prefix`` or starts with it; StoreError if none or several match.

        A prefix is a range of the primary key (``run_id >= prefix AND run_id < prefix'``, the prefix with
        its last character incremented), which the key's index serves however large the store."""
        prefix = prefix.strip()
        if not prefix:
            raise StoreError("give a run id (or a unique prefix of one)")
        exact = self.query("SELECT * FROM agent_runs WHERE run_id = ?", (prefix,))
        if exact:
            return self._run_out(exact[0])
        rows = self.query(*prefix_query("SELECT * FROM agent_runs", "run_id", prefix, limit=6))
        if not rows and prefix.lower() != prefix:  # ids are lower-case hex; a prefix typed in capitals too
            rows = self.query(*prefix_query("SELECT * FROM agent_runs", "run_id", prefix.lower(), limit=6))
        if not rows:
            raise StoreError(f"no run matches {prefix!r} in {self.target.display}")
        if len(rows) > 1:
            shown = ", ".join(r["run_id"][:16] for r in rows[:5])
            raise StoreError(
                f"run id prefix {prefix!r} is ambiguous ({shown}{', ...' if len(rows) > 5 else ''})"
            )
        return self._run_out(rows[0])

    def children(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM agent_runs WHERE parent_run_id = ? ORDER BY created_at", (run_id,))
        return self._runs_out(rows)

    def events_for(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT * FROM agent_events WHERE run_id = ? "
            "ORDER BY CASE WHEN step_id IS NULL THEN 1 ELSE 0 END, step_id, ts_ms, id",
            (run_id,),
        )
        return [self._event_out(r) for r in rows]

    def iter_events(
        self,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        agent: str | None = None,
        kind: str | None = None,
        run_ids: Sequence[str] | None = None,
        chunk: int = 2000,
    ) -> Iterator[dict[str, Any]]:
        """Events in time order, fetched in chunks (keyset pagination on ``(ts_ms, id)``)."""
        last: tuple[int, int] | None = None
        while True:
            where: list[str] = []
            params: list[Any] = []
            if since_ms is not None:
                where.append("ts_ms >= ?")
                params.append(int(since_ms))
            if until_ms is not None:
                where.append("ts_ms < ?")
                params.append(int(until_ms))
            if agent is not None:
                where.append("agent = ?")
                params.append(agent)
            if kind is not None:
                where.append("kind = ?")
                params.append(kind)
            if run_ids is not None:
                if not run_ids:
                    return
                where.append(f"run_id IN ({', '.join('?' for _ in run_ids)})")
                params.extend(run_ids)
            if last is not None:
                where.append("(ts_ms > ? OR (ts_ms = ? AND id > ?))")
                params.extend((last[0], last[0], last[1]))
            text = "SELECT * FROM agent_events"
            if where:
                text += " WHERE " + " AND ".join(where)
            rows = self.query(text + f" ORDER BY ts_ms, id LIMIT {int(chunk)}", params)
            for row in rows:
                last = (row["ts_ms"], row["id"])
                yield self._event_out(row)
            if len(rows) < chunk:
                return

    def estimate(self, table: str) -> int | None:
        """A cheap row count of ``table``, None if the database has none to give (see the dialects)."""
        return None

    def counts(self, exact_up_to: int = COUNT_EXACT_UP_TO) -> dict[str, Any]:
        """Row counts for ``doctor``: exact for tables of up to ``exact_up_to`` rows, estimated beyond
        (:meth:`estimate`; the figures estimated are listed under ``estimated``), so that it stays quick
        at any size. The packs table is weighed by its tool calls (:meth:`_calls_per_row`); the blob table
        is counted by its rows but summed by its bytes (:meth:`_bytes_per_row`): past ``exact_up_to`` x
        ``_EXACT_BYTES_PER_ROW`` bytes its size and encrypted count come from a sample, its number of
        results stays exact. Oldest and newest run come from the ``created_at`` index."""
        estimated: list[str] = []

        def count(table: str, figure: str, exact: str, weight: float = 1.0) -> int:
            guess = self.estimate(table)
            if guess is not None and guess * weight > exact_up_to:
                estimated.append(figure)
                return guess
            return int(self.query(exact)[0]["n"] or 0)

        out: dict[str, Any] = {
            "runs": count("agent_runs", "runs", "SELECT count(*) AS n FROM agent_runs"),
            "events": count("agent_events", "events", "SELECT count(*) AS n FROM agent_events"),
        }
        hidden = [t for t in SNAPSHOT_DATA_TABLES if not self.may_read(t)]
        if hidden:  # raw tool results are owner-only: an analysts' role may well not read them
            out.update(dict.fromkeys(_SNAPSHOT_FIGURES), snapshots_hidden=hidden)
            return self._run_span(out, estimated)
        # Tool calls: a row each in agent_tool_snapshots (schemas 2 to 7), packed a run's write to a row
        # since migration 8. Results, errors and inputs: distinct large ones in the blob table, small ones in
        # agent_snapshot_data (migration 7), in packs and in the runs' own rows (migration 8). Figures of a
        # large table from a sample of its rows.
        calls = count(
            "agent_tool_snapshots", "tool_snapshots", "SELECT count(*) AS n FROM agent_tool_snapshots"
        )
        totals = {"calls": 0.0, "items": 0.0, "bytes": 0.0, "sealed": 0.0}
        for table, figures in _SNAPSHOT_SOURCES:
            if table == "agent_snapshot_packs" and not self.has_table(table):
                continue  # a store of a later schema, read-only here, may be one without it
            rows = count(table, table, f"SELECT count(*) AS n FROM {table}", self._calls_per_row(table))
            # Rows counted exactly (an index serves count(*)), but too many bytes to sum them all: the sums
            # from a sample, scaled to the exact count
            heavy = (
                table not in estimated
                and rows > _SAMPLE_ROWS
                and rows * self._bytes_per_row(table) > exact_up_to * _EXACT_BYTES_PER_ROW
            )
            sampled = table in estimated or heavy
            # A sample of a large table; else every row (as many as counted: a bound all the same)
            sample = f" LIMIT {_SAMPLE_ROWS if sampled else max(rows, exact_up_to)}"
            row = self.query(
                "SELECT count(*) AS n, coalesce(sum(calls), 0) AS calls, coalesce(sum(items), 0) AS items, "
                "coalesce(sum(bytes), 0) AS bytes, coalesce(sum(sealed), 0) AS sealed "
                f"FROM (SELECT {figures} FROM {table}{sample}) t"
            )[0]
            scale = rows / int(row["n"]) if sampled and row["n"] else 1
            for key in totals:
                totals[key] += int(row[key] or 0) * scale
            if sampled:
                # A blob row is one item: counted exactly, their number is exact; their bytes are not
                about = (
                    ["snapshot_bytes", "encrypted_blobs"]
                    if heavy
                    else ["snapshot_blobs", "snapshot_bytes", "encrypted_blobs"]
                )
                if table in estimated:
                    estimated.remove(table)
                if table == "agent_snapshot_packs":
                    about.append("tool_snapshots")
                estimated += [f for f in about if f not in estimated]
        out["tool_snapshots"] = calls + round(totals["calls"])
        if "tool_snapshots" in estimated:
            out["snapshot_runs"] = count(
                "agent_snapshot_runs", "snapshot_runs", "SELECT count(*) AS n FROM agent_snapshot_runs"
            )
        else:  # the runs with recorded tool calls, in either form
            packed = (
                " UNION SELECT run_id FROM agent_snapshot_packs"
                if self.has_table("agent_snapshot_packs")
                else ""
            )
            out["snapshot_runs"] = int(
                self.query(f"SELECT count(*) AS n FROM (SELECT run_id FROM agent_tool_snapshots{packed}) t")[
                    0
                ]["n"]
                or 0
            )
        out["snapshot_blobs"] = round(totals["items"])
        out["snapshot_bytes"] = round(totals["bytes"])
        out["encrypted_blobs"] = round(totals["sealed"])
        return self._run_span(out, estimated)

    def _calls_per_row(self, table: str) -> float:
        """How many rows of the schema-7 layout a row of ``table`` stands for, as :meth:`counts` weighs a
        table's size: a pack holds a run's tool calls (each a row of agent_tool_snapshots before migration 8)
        in a row of ~1 KB, so a packs table of 50,000 rows is as large as 350,000 rows of that table. Counted
        by rows, doctor read every pack (twice on PostgreSQL: sums, then distinct runs) up to 200,000 packs,
        where the same calls in agent_tool_snapshots were long estimated. The mean from the first rows (a
        sample, as doctor takes of a large table); 1 for other tables."""
        if table != "agent_snapshot_packs" or not self.estimate(table):
            return 1.0
        row = self.query(f"SELECT avg(calls) AS n FROM (SELECT calls FROM {table} LIMIT {_SAMPLE_ROWS}) t")[0]
        return max(float(row["n"] or 1), 1.0)

    def _bytes_per_row(self, table: str) -> float:
        """The mean stored bytes of a row of the blob table, from its first rows (those doctor's sample
        reads next), 0 for other tables: what weighs a blob table in :meth:`counts` is its bytes (a result
        is ~2 KB, a page of its own in SQLite), not its rows. ``length()`` of a blob needs the record's
        header, not the blob (SQLite; in PostgreSQL, the TOAST pointer)."""
        if table != "agent_snapshot_blobs":
            return 0.0
        row = self.query(
            f"SELECT avg(length(data)) AS n FROM (SELECT data FROM {table} LIMIT {_SAMPLE_ROWS}) t"
        )[0]
        return float(row["n"] or 0)

    def _run_span(self, out: dict[str, Any], estimated: list[str]) -> dict[str, Any]:
        oldest = self.query("SELECT min(created_at) AS t FROM agent_runs")[0]["t"]
        newest = self.query("SELECT max(created_at) AS t FROM agent_runs")[0]["t"]
        out.update(oldest_run_ms=self._ms(oldest), newest_run_ms=self._ms(newest), estimated=estimated)
        return out

    def may_read(self, table: str) -> bool:
        """Whether this connection may read ``table`` (PostgreSQL's privileges; a file store: always)."""
        return True

    # --- retention -----------------------------------------------------------------------------------

    def snapshot_purge(self) -> tuple[int, int] | None:
        """``(cutoff_ms, days)``: gc has deleted the snapshots recorded before ``cutoff_ms``; else None."""
        value = self.meta(SNAPSHOT_PURGE_KEY)
        try:
            cutoff, days = (value or "").split(":")
            return int(cutoff), int(days)
        except ValueError:
            return None

    def gc(
        self, retention_days: dict[str, int], now_ms: int | None = None, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete what is older than the retention; ``{table: rows deleted (or that would be)}``.

        ``retention_days`` maps ``logs_days``/``tool_snapshot_days`` to days; 0 or a missing key keeps
        forever. Deletes in small transactions (:mod:`agent_otel.store.retention`); a dry run counts.
        """
        from agent_otel.store import retention

        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if dry_run:
            return retention.count(self, retention_days, now_ms)
        return retention.run(self, retention_days, now_ms)


def _url_password(url: str) -> str | None:
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:  # a URL Python cannot split (`[::1` unclosed): its user info all the same
        found = _USER_INFO.match(url)
        password = found.group(2) if found else None
    return urllib.parse.unquote(password) if password else None


# `scheme://user:password@`: how libpq reads the user info of a URL Python's urlsplit refuses.
_USER_INFO = re.compile(r"[^:/?#]+://([^@/?#:]*):([^@/?#]*)@")


def _without_password(message: str, url: str) -> str:
    """``message`` (a connection error) with the URL's password masked, and nothing else.

    libpq quotes a URL it cannot parse whole (`... in IPv6 host address in URI: "postgresql://app:secret@[::1"`),
    which printed the password; it is replaced by the URL as agent-otel prints it. Elsewhere the password is
    masked where it stands as a word of its own: replacing every occurrence of it also masked the words
    that happen to contain it (a password `p` made `***ort 5432 failed`) or equal the user name (the
    docker default `postgres:postgres` read `role "***" does not exist`), which the URL shows anyway."""
    message = message.replace(url, redact_url(url))
    password = _url_password(url)
    if not password:
        return message
    try:
        user = urllib.parse.unquote(urllib.parse.urlsplit(url).username or "")
    except ValueError:
        found = _USER_INFO.match(url)
        user = urllib.parse.unquote(found.group(1)) if found else ""
    for form in {password, urllib.parse.quote(password, safe="")} - {user}:  # libpq may quote either
        message = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", "***", message)
    return message


def _cannot_write(exc: BaseException) -> bool:
    """True for the errors SQLite gives when the file or its directory is not writable by this process."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(
        marker in text
        for marker in ("readonly database", "read-only", "unable to open database file", "permission denied")
    )


def _make_parent(path: str) -> None:
    """Create the store's directory only inside the agent-otel home: elsewhere a missing directory is
    more likely a typo (``/srv/agnet/runs.db``) than a wish, and a store silently made there is lost."""
    parent = os.path.dirname(path)
    if not parent or os.path.isdir(parent):
        return
    agent_home = home()
    if os.path.commonpath([agent_home, os.path.abspath(parent)]) != agent_home:
        raise StoreError(
            f"the directory {parent} does not exist; create it first (agent-otel creates only its home "
            f"directory, {agent_home}), or check the path"
        )
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {parent}: {exc.strerror or exc}") from None


class SQLiteStore(Store):
    kind = "sqlite"
    placeholder = "?"

    def __init__(self, target: Target, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        super().__init__(target)
        self.busy_timeout_s = busy_timeout_s

    def open(self, create: bool, read_only_ok: bool = False, read_only: bool = False) -> None:
        """Connect (creating the file if ``create``) in WAL mode. With ``read_only_ok`` (the reading
        commands), a store this process cannot write (a read-only mount, a copy without write permission)
        is opened read-only instead of refused; see :meth:`_open_read_only`. ``read_only``: always, as it
        is (not switched to WAL either): a look that must change nothing (``gc --dry-run``)."""
        path = self.target.location
        if os.path.isdir(path):
            raise StoreError(
                f"{path} is a directory; the store is a file: give a file path such as "
                f"{os.path.join(path, 'agent-otel.db')}"
            )
        if not os.path.exists(path):
            if not create:
                parent = os.path.dirname(path)
                if parent and os.path.exists(parent) and not os.path.isdir(parent):
                    raise StoreError(f"no run store at {path}: {parent} is a file, not a directory")
                if parent and not os.path.isdir(parent):
                    raise StoreError(f"no run store at {path}: the directory {parent} does not exist")
                raise StoreError(
                    f"no run store at {path} yet; run an agent with agent_otel.setup() or `agent-otel demo`"
                )
            _make_parent(path)
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as exc:
                raise StoreError(f"cannot create {path}: {exc.strerror or exc}") from None
        owner_only(path)
        foreign = _foreign_files(path)
        if foreign:
            if not read_only_ok:
                raise StoreError(
                    f"{foreign} belongs to another user, who could read what the store writes into it; "
                    "remove it, or keep the store in a directory only you can write to"
                )
            self._open_read_only(sqlite3.OperationalError(f"{foreign} belongs to another user"))
            return
        if read_only:
            self._open_read_only(None)
            return
        try:
            self._open_read_write()
        except sqlite3.Error as exc:
            self.close()
            if not (read_only_ok and _cannot_write(exc)):
                raise classify(exc) from None
            self._open_read_only(exc)

    def _connect(self, uri: str | None = None) -> sqlite3.Connection:
        return sqlite3.connect(
            uri or self.target.location,
            timeout=self.busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            uri=uri is not None,
        )

    def _open_read_write(self) -> None:
        self.conn = self._connect()
        self.max_params = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        self._use_wal()
        self.conn.execute("PRAGMA synchronous = NORMAL")
        # Deleted rows overwritten with zeros, not left in free pages: gc deletes raw snapshots (tool
        # results, inputs) and they must not stay readable in the file. Debian's SQLite has this on at
        # compile time; macOS's, python.org's, conda's and uv's Pythons do not.
        self.conn.execute("PRAGMA secure_delete = ON")

    def _open_read_only(self, cause: sqlite3.Error | None) -> None:
        """Read a store that cannot be written: ``mode=ro`` first (it still sees a live writer's WAL),
        then ``immutable=1`` when even that fails because the WAL index (``-shm``) cannot be created
        next to the file. Immutable means SQLite takes no locks and assumes nobody writes meanwhile:
        right for a copy or a read-only mount, the only places this fallback is for."""
        quoted = urllib.parse.quote(os.path.abspath(self.target.location))
        error: sqlite3.Error = cause or sqlite3.OperationalError("cannot open it read-only")
        for query in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = self._connect(f"file:{quoted}?{query}")
            except sqlite3.Error as exc:
                error = exc
                continue
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file for real
            except sqlite3.Error as exc:
                error = exc
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                continue
            self.conn = conn
            self.read_only = True
            logger.debug("agent-otel: opened %s read-only (%s) after: %s", self.target.location, query, cause)
            return
        raise classify(error) from None

    def _use_wal(self) -> None:
        """Switch to WAL. SQLite answers "locked" at once, without its busy handler, while another
        connection holds the file during the switch (several processes creating one store), so wait here."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                if str(self.conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    self.conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.005 + random.random() * 0.02)

    def set_busy_timeout(self, seconds: float) -> None:
        if self.conn is not None:
            self.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def for_streaming_writes(self) -> None:
        """The store sink's connection: fewer, larger checkpoints, a page cache within the memory bound.

        Run ids and blob hashes are random keys, so each batch touches index pages all over a large
        store, and the default checkpoint every 1,000 pages copies them to the database file after nearly
        every batch. A larger cache would read them less often, at a memory cost the outage bound cannot
        afford (WRITER_CACHE_MB). Bounded: the WAL file truncated back to WAL_LIMIT_MB after a checkpoint."""
        if self.conn is not None and not self.read_only:
            self.conn.execute(f"PRAGMA cache_size = {-WRITER_CACHE_MB * 1024}")
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            self.conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_MB << 20}")
            # A statement journal (what a statement that may fail midway keeps to undo its own rows: an
            # upsert of several run rows) in memory: SQLite writes one to a temporary file once over 64 KB,
            # page by page, where the write's own pages already cost their WAL frames.
            self.conn.execute("PRAGMA temp_store = MEMORY")

    def purge_deleted(self) -> None:
        """Copy gc's zeroed pages into the database file and empty the WAL, whose older frames still hold
        the deleted rows as they were written. Without waiting: a reader in the middle of a transaction
        keeps the WAL, and its frames are overwritten as the WAL is reused (the next gc tries again)."""
        if self.conn is None or self.read_only:
            return
        before = int(self.conn.execute("PRAGMA busy_timeout").fetchone()[0])
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            with contextlib.suppress(sqlite3.Error):  # busy, or the disk: gc's deletes are done either way
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {before}")

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")  # deferred: a read snapshot from the first read on (WAL)
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    _ts_second: tuple[int, str] = (-1, "")  # the last second formatted: a batch's rows share a few

    def _ts(self, ms: int | None) -> Any:
        if ms is None:
            return None
        secs, rem = divmod(int(ms), 1000)
        last, text = self._ts_second
        if secs != last:
            text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs))
            self._ts_second = (secs, text)
        return f"{text}.{rem:03d}"

    def _ms(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            return int(value)
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return round(parsed.timestamp() * 1000)

    def _json(self, value: Any) -> Any:
        return self.json_text(value)

    def _unjson(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def size_bytes(self) -> int | None:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.target.location + suffix)
        return total

    def has_table(self, name: str) -> bool:
        rows = self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return bool(rows)

    def estimate(self, table: str) -> int | None:
        """The span of the table's rowids (two lookups at the ends of its b-tree): the count when rows
        were only ever deleted from the old end (gc), an upper bound otherwise."""
        # Two queries: SQLite reads one end of the b-tree only for a lone min() or max().
        high = self.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
        low = self.execute(f"SELECT min(rowid) FROM {table}").fetchone()[0]
        return 0 if high is None or low is None else int(high) - int(low) + 1

    def integrity(self, budget_s: float = INTEGRITY_CHECK_S) -> dict[str, Any]:
        """SQLite's ``PRAGMA quick_check`` (every page and record, without comparing indexes with their
        tables: O(size), not the O(size log size) of integrity_check), stopped after ``budget_s``.

        A store with damaged pages opens and counts its rows fine while listing them fails; this is what
        tells the two apart. A check cut short says so rather than call the store sound. (The bound is
        ``sqlite3_interrupt`` from a timer: a progress handler is not called while quick_check walks a
        table, which is one step of the statement however large the table.)
        """
        import threading

        timer = threading.Timer(budget_s, self.conn.interrupt)
        timer.daemon = True
        timer.start()
        try:
            rows = self.conn.execute("PRAGMA quick_check(5)").fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupt" not in str(exc).lower():
                return {"checked": True, "problems": [str(exc)], "note": ""}
            return {
                "checked": False,
                "problems": [],
                "note": f"quick_check did not finish within {budget_s:g} s, so the store is not checked in "
                f"full; run: agent-otel doctor --integrity (or sqlite3 {self.target.location} "
                "'PRAGMA quick_check')",
            }
        except sqlite3.DatabaseError as exc:  # "database disk image is malformed"
            return {"checked": True, "problems": [str(exc)], "note": ""}
        finally:
            timer.cancel()
        lines = [line for r in rows for line in str(r[0]).splitlines()]
        problems = [line for line in lines if line != "ok" and not line.startswith("***")]
        return {"checked": True, "problems": problems, "note": ""}


def _as_is(text: str) -> str:
    return text


# Our queries are small and index-served. On a 1M-run store the planner took a run for 95 events (it has
# 10: ANALYZE's sample under-counts distinct run ids), chose a parallel scan of agent_runs for drift's
# partial hours and JIT-compiled it: 0.31 s where the index answers in 0.01 s. No parallel workers nor JIT
# in agent-otel's session (behind a pooler: in its reading transactions); the user's other settings stay.
_PLANNER_SETTINGS = (
    "set_config('max_parallel_workers_per_gather', '0', {local}), set_config('jit', 'off', {local})"
)


# A partition that drops packets without a reset (a host gone, a firewall's state lost, a route flapping)
# left a session waiting on its socket: ~15 min of TCP retransmissions while a write was unacknowledged,
# the OS keepalive's 2 h while it waited for an answer. The store sink's thread, which also feeds the
# metrics and any event sink, waited with it. With these, such a session fails within ~30 s and the sink
# buffers and reconnects as after a refused connection; a server that is merely slow still answers the
# probes and keeps its session. A setting the URL gives wins.
_TCP_SETTINGS = {
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",  # ms; libpq 12 and later
}


def _tcp_settings(location: str) -> dict[str, str]:
    """The settings of ``_TCP_SETTINGS`` the URL does not set itself."""
    from psycopg import conninfo, pq

    try:
        given = conninfo.conninfo_to_dict(location)
    except Exception:  # a malformed URL: connect() reports it as it did
        return {}
    settings = {k: v for k, v in _TCP_SETTINGS.items() if k not in given}
    if pq.version() < 120000:
        settings.pop("tcp_user_timeout", None)
    return settings


class PostgresStore(Store):
    kind = "postgresql"
    placeholder = "%s"
    nul_ok = False
    max_params = 65_535  # the protocol's limit
    pooled = False  # connected through a pooler: no prepared statements, no session settings

    def open(self, create: bool, prepare: bool = True) -> None:
        """``prepare``: let psycopg prepare the statements it runs often (a writer's). A reader's are
        ``SELECT *``, and a prepared one fails (``cached plan must not change result type``) once another
        agent-otel's migration adds a column: `tail`, left running across an upgrade, ended with it."""
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "a postgresql:// store needs psycopg 3: pip install 'agent-otel[postgres]'"
            ) from None
        try:
            self.conn = psycopg.connect(
                self.target.location,
                autocommit=True,
                connect_timeout=5,
                application_name="agent-otel",
                **_tcp_settings(self.target.location),
            )
            # Behind a pooler (PgBouncer, pgcat, RDS Proxy) the connection announced a backend of the
            # pooler's making; in transaction pooling each transaction may run in another server session,
            # shared with other clients. A statement prepared in one is missing or, worse, named alike
            # for another statement in the next ("prepared statement "_pg3_0" already exists": the gc
            # failed, a writer's store went off), and a session setting leaks into other clients' work.
            backend = self.conn.execute("SELECT pg_backend_pid()").fetchone()
            self.pooled = backend is None or backend[0] != self.conn.info.backend_pid
            if not prepare or self.pooled:
                self.conn.prepare_threshold = None
            if not self.pooled:
                self.conn.execute(f"SELECT {_PLANNER_SETTINGS.format(local='false')}")
        except Exception as exc:
            error = classify(exc)
            masked = _without_password(str(error), self.target.location)
            if masked != str(error):
                error = StoreError(masked, error.transient, error.bad_data)
            raise error from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[None]:
        """A COMMIT whose answer never came (the connection cut by a restart, a failover or the network
        between the server's commit and its reply) may have committed: retrying the write then stored
        its events, snapshot packs and late usage twice. The transaction's id, taken just before the
        COMMIT, is kept in ``unsure_xid`` when the COMMIT fails, and the store sink asks the server
        (commit_status) before writing those records again."""
        self.unsure_xid = None
        xid: int | None = None
        track = self.conn.info.server_version >= 100000  # txid_status() came with PostgreSQL 10
        try:
            with self.conn.transaction():
                yield
                if track:
                    xid = int(self.conn.execute("SELECT txid_current()").fetchone()[0])
        except BaseException:
            self.unsure_xid = xid  # None unless the body ran to its end and the COMMIT failed
            raise

    def commit_status(self, xid: int) -> str | None:
        """What became of transaction ``xid`` (PostgreSQL's ``txid_status``): None when the server cannot
        say (an id from before a failover to another server, or too old). A lost connection raises."""
        try:
            row = self.conn.execute("SELECT txid_status(%s)", (xid,)).fetchone()
        except Exception as exc:
            err = classify(exc)
            if err.transient:
                raise err from None
            return None
        return str(row[0]) if row and row[0] is not None else None

    def _idle(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.conn.info.transaction_status == TransactionStatus.IDLE)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        if not self._idle():
            yield
            return
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if self.pooled:  # the settings open() gives a session of its own, for this transaction
                self.conn.execute(f"SELECT {_PLANNER_SETTINGS.format(local='true')}")
            yield

    def stream(self, text: str, params: Sequence[Any] = (), size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """A server-side cursor (psycopg fetches a whole result otherwise), inside a transaction."""
        if self._idle():
            with self.conn.transaction():
                yield from self._server_side(text, params, size)
        else:
            yield from self._server_side(text, params, size)

    def _server_side(self, text: str, params: Sequence[Any], size: int) -> Iterator[tuple[Any, ...]]:
        self._cursors = getattr(self, "_cursors", 0) + 1
        with self.conn.cursor(name=f"agent_otel_{self._cursors}") as cur:
            cur.itersize = size
            cur.execute(self.sql(text), tuple(params))
            yield from cur

    def _lock_for_migration(self) -> None:
        """Wait for another process migrating (workers starting at once on an empty database) however
        short a ``lock_timeout`` the DBA set: the wait lasts the other's migration, and giving up made
        every other worker warn and hold its records (lost, for a short-lived one). The DBA's value is
        back for the migration's own statements: an ALTER TABLE waiting behind a long read would hold up
        every writer queued behind it, and had better give up and be tried again."""
        kept = self.query("SELECT current_setting('lock_timeout') AS t")[0]["t"]
        self.execute("SELECT set_config('lock_timeout', '0', true), pg_advisory_xact_lock(?)", (_PG_LOCK_ID,))
        self.execute("SELECT set_config('lock_timeout', ?, true)", (kept,))

    def schema_version(self) -> int:
        """As the base class, without a failing query (an ERROR line in the server's log, once per
        process starting on an empty database) when there is no meta table yet."""
        if self.conn is not None and not self.has_table(META_TABLE):
            return 0
        return super().schema_version()

    def may_read(self, table: str) -> bool:
        rows = self.query("SELECT has_table_privilege(to_regclass(?), 'SELECT') AS ok", (table,))
        return rows[0]["ok"] is not False

    def role(self) -> str:
        try:
            return str(self.conn.info.user)
        except Exception:
            return "this role"

    def privilege_hint(self, error: StoreError, create: bool = False) -> str:
        if error.sqlstate != INSUFFICIENT_PRIVILEGE:
            return ""
        role = self.role()
        if create:
            return (
                f": the role {role} may not create the store's tables here; create them once as a role "
                "that may (`agent-otel --store <its URL> doctor` does), then grant "
                f"{role} what the README's 'PostgreSQL in production' lists"
            )
        return (
            f": the role {role} needs SELECT, INSERT, UPDATE and DELETE on the store's tables and USAGE on "
            "their sequences to write (only SELECT to read); the README's 'PostgreSQL in production' has "
            "the GRANT statements"
        )

    def _ts(self, ms: int | None) -> Any:
        if ms is None:
            return None
        return dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.UTC)

    def _ms(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return round(value.timestamp() * 1000)
        return int(value)

    def _json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(self.json_text(value), dumps=_as_is)

    def size_bytes(self) -> int | None:
        try:
            # The tables the search path finds: another application's store in another schema of the
            # same database is not this one.
            rows = self.query(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c "
                "WHERE c.oid IN (to_regclass('agent_runs'), to_regclass('agent_events'), to_regclass(?))",
                (META_TABLE,),
            )
        except Exception:
            return None
        return int(rows[0]["n"])

    def has_table(self, name: str) -> bool:
        rows = self.query("SELECT to_regclass(?) IS NOT NULL AS ok", (name,))
        return bool(rows[0]["ok"])

    def estimate(self, table: str) -> int | None:
        """The planner's row count (``pg_class.reltuples``, kept by autovacuum and ANALYZE), None
        before the table was ever analyzed."""
        rows = self.query("SELECT reltuples AS n FROM pg_class WHERE oid = to_regclass(?)", (table,))
        n = rows[0]["n"] if rows else None
        return int(n) if n is not None and n >= 0 else None


def _foreign_files(path: str) -> str | None:
    """The store file, or one SQLite writes next to it, that exists and belongs to another user.

    SQLite writes into a ``-wal`` (or ``-journal``) it finds, whoever owns it: in a directory others can
    write to (``/tmp``, a shared project directory), another user could create ``agent-otel.db-wal``
    first and read every record and raw snapshot the store then writes. Such a store is not opened for
    writing."""
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:
        return None
    uid = geteuid()
    for item in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if os.stat(item).st_uid != uid:
                return item
        except OSError:
            continue
    return None


def owner_only(path: str) -> list[str]:
    """Take group and other permissions off a SQLite store that this user owns; returns what changed.

    The store holds arguments, results and tool snapshots, and only a store agent-otel creates itself gets
    0600/0700 from the start: one created by an older agent-otel, copied in, or in a home directory made
    by hand may be readable by every user. The file and its ``-wal``/``-shm`` are tightened, and the
    directory too when it is the agent-otel home (never another directory the user chose to put the
    store in, nor the user's own home, ``/`` or a sticky directory such as ``/tmp``). Files of another
    user and failures are left alone: ``doctor`` reports what is still open.
    """
    geteuid = getattr(os, "geteuid", None)
    if geteuid is None:  # no POSIX modes to tighten
        return []
    uid = geteuid()
    candidates = [path, path + "-wal", path + "-shm"]
    parent = os.path.dirname(path)
    if parent == home() and parent not in (os.path.expanduser("~"), os.path.sep):
        candidates.append(parent)
    changed: list[str] = []
    for item in candidates:
        try:
            st = os.stat(item)
        except OSError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid != uid or not mode & 0o077 or mode & stat.S_ISVTX:
            continue
        try:
            os.chmod(item, mode & 0o700)
        except OSError:
            continue
        changed.append(f"{item} {oct(mode)} -> {oct(mode & 0o700)}")
    if changed:
        logger.info("agent-otel: made the run store owner-only (%s)", ", ".join(changed))
    return changed


def open_store(
    target: Target,
    *,
    create: bool = True,
    writer: bool = True,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    migrate: bool = True,
) -> Store:
    """Open (and, if ``create``, create) the store at ``target`` and migrate it to the latest schema.
    Without ``migrate`` (a look that must change nothing: ``gc --dry-run``) it is read as it is, whatever
    its schema, and a SQLite file read-only.

    Raises :class:`StoreError` with a one-line reason; the caller decides whether that is a warning
    (the SDK) or an error message (the CLI).
    """
    store: Store
    if target.kind == "postgresql":
        store = PostgresStore(target)
        store.open(create, prepare=writer)
    else:
        store = SQLiteStore(target, busy_timeout_s)
        # a reader may read a store it cannot write
        store.open(create, read_only_ok=not writer, read_only=not migrate)
    try:
        if not migrate:
            store.summarized = store.schema_version() >= SUMMARIES_VERSION
            return store
        store.migrate(writer=writer)
    except BaseException as exc:
        store.close()
        raise classify(exc) from None
    return store
