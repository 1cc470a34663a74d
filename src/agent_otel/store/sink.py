"""The store as an event-pipeline sink: batches of run and event records, one transaction each.

It runs on the pipeline's daemon thread, never on the agent's. Nothing here raises into the pipeline:

* a store that is corrupt, read-only, unreadable or of a newer schema is reported in **one** warning and
  then left alone for the rest of the process (the agent and OTLP export carry on);
* a store that is only busy (another process holds SQLite's write lock past the busy timeout, or the
  PostgreSQL server is unreachable or restarting) is reported once too, and the records wait in a buffer
  bounded in records (``max_pending``) and in bytes (``max_pending_bytes``: snapshot blobs can be 16 MB
  each); beyond either the oldest are dropped and counted in ``dropped``. Tries back off (0.5 s doubling
  to 30 s), also when no new records arrive, and SQLite waits only 0.1 s per try until it recovers,
  because the pipeline thread also carries the metrics;
* a record the database refuses (a value it cannot encode, a row too large) costs only that record: the
  batch is split until the refused records are found, they are dropped and counted (``rejected``, also
  in ``dropped``), one warning names the first reason, and the store stays on.

Retention (``agent-otel gc``) also runs from here, at most once per ``gc_interval_s`` per store, after a
successful write: off the hot path, and without a cron job. It runs in slices between writes (each a few
small transactions, at most ``MAINTENANCE_SLICE_S``, and maintenance at most ``MAINTENANCE_SHARE`` of the
thread's time), so that a gc of a day of a large store never holds the thread, nor the database, for long;
so does summarizing the hours of a store migrated to schema 6 (:func:`summaries.backfill_step`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from agent_otel import green
from agent_otel.events import ForkHold
from agent_otel.store import db, liveness, retention, summaries
from agent_otel.store.db import DATABASE_MISSING, Store, StoreError, classify, open_store
from agent_otel.store.location import Target

logger = logging.getLogger("agent_otel")

GC_INTERVAL_S = 86_400.0
MAX_PENDING = 50_000
MAX_PENDING_BYTES = 32 << 20  # records kept while the store is busy, in bytes (estimated)
_RECORD_BYTES = 512  # what a record costs beyond its large values: the dict, its keys, short strings
# run_usage: usage of a request that ended after its run's stop, added to the stopped run's row
_WRITTEN = ("run", "event", "snapshot", "run_usage")
# How long a write whose COMMIT failed may read "in progress" before its records are written again (see
# StoreSink._settle_unsure): a COMMIT the server received ends in milliseconds.
_UNSURE_WAIT_S = 30.0
_CLOSE_WAIT_S = 0.2  # shutdown is bounded: close() waits this long for a write in flight, then gives up
# At a normal interpreter exit, how long (from the exit's start) it waits for a PostgreSQL store that is
# still connecting or writing to take what is queued, past exporter.shutdown_timeout_s: a short-lived
# process (a script, a cron job, a task worker) ends right after its runs, often before its first
# connection and migration are done (8 scripts started at once lost runs to a 1 s bound). Not a store in
# its back-off (its server refused or is down: only close()'s last, short try), nor at SIGTERM (its own
# bound), nor SQLite (it writes in milliseconds, or is locked, which waiting here would not cure).
EXIT_WRITE_S = 5.0
_DEGRADED_BUSY_S = 0.1  # SQLite busy timeout while the store is known to be locked
GREEN_BUSY_TIMEOUT_S = 0.05  # ... and always in a gevent process (see StoreSink.__init__, agent_otel.green)
UNDEFINED_TABLE = "42P01"  # PostgreSQL: a table the write needs does not exist (dropped under the writer)
# PostgreSQL: an earlier statement of the transaction failed and was not raised (a meta read that found no
# table); what failed is unknown, so a new connection is tried at once, where it surfaces if it stays.
IN_FAILED_TRANSACTION = "25P02"
# PostgreSQL: the write waited for another writer's row (two processes updating the summary of one hour)
# longer than the DBA's lock_timeout, or lost a deadlock: that transaction is over, so at once again.
CONTENDED = ("55P03", "40P01")
RECHECK_INTERVAL_S = 600.0  # summaries.stale_hours: every ten minutes
MAINTENANCE_SLICE_S = 0.05  # gc and summary backfill: at most this long at a time (at least one batch)
MAINTENANCE_SHARE = 0.2  # ... and at most this share of the thread's time

_live: weakref.WeakSet[StoreSink] = weakref.WeakSet()


_FORK_WAIT_S = 1.0  # a fork waits this long at most for a batch being written
_inherited: list[Any] = []  # connections a child inherited open: never used, and never closed there


def _before_fork() -> None:
    """Close the store's connection before a fork (reopened at the next write): a child must not inherit
    one. SQLite keeps each file's locks and WAL index state per process, so a child's own connection would
    see the parent's connection's locks as held by someone in the same process (a write lock held at the
    fork never goes away there: "database is locked" for good), and closing an inherited psycopg
    connection in the child ends the parent's session. The sink's lock is held across the fork, so no
    batch is mid-write in it."""
    for sink in list(_live):
        if not sink._fork_hold.take(sink._lock, _FORK_WAIT_S):
            continue  # a write is stuck; the child keeps that connection untouched (_after_fork_in_child)
        if sink._store is not None and sink._pid == os.getpid():
            with contextlib.suppress(Exception):
                sink._store.close()
            sink._store = None
            sink._gc = None  # its cursor went with the connection; the next write's gc picks it up again


def _after_fork_in_parent() -> None:
    for sink in list(_live):
        sink._fork_hold.release(sink._lock)


def _after_fork_in_child() -> None:
    """A forked worker (gunicorn, multiprocessing) starts with fresh locks and its own connection."""
    for sink in list(_live):
        sink._lock = threading.Lock()
        sink._fork_hold = ForkHold()
        if sink._store is not None:
            _inherited.append(sink._store)  # the parent's connection is not the child's to use or close
        sink._store = None
        sink._pending = []  # the parent writes its own records
        sink._pending_bytes = 0
        sink._in_flight = 0
        sink._timer = None  # the parent's retry timer did not fork with it
        sink._connecting = False
        sink._gc = None  # the parent carries on with its own gc
        # The records the parent could not write are the parent's drops: the child counting them again in
        # its agent_otel_telemetry_dropped_total and exit summary counted each once per worker.
        sink.dropped = sink.rejected = 0
        sink.written = 0


def _after_patch() -> None:
    """gevent patched this child after its fork (agent_otel.green): the sinks' locks the fork made are the
    OS's, and one a greenlet holds across a PostgreSQL write (psycopg yields to gevent) would stop the OS
    thread for good when another greenlet takes it."""
    for sink in list(_live):
        if sink._timer is None:  # (a fork leaves no retry timer; one started since keeps what it has)
            sink._lock = threading.Lock()


green.after_patch(_after_patch)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


class StoreSink:
    """Pipeline sink writing ``("run", ...)`` and ``("event", ...)`` records to the run store."""

    def __init__(
        self,
        target: Target,
        retention: dict[str, int] | None = None,
        *,
        busy_timeout_s: float | None = None,
        gc_interval_s: float = GC_INTERVAL_S,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        events: bool = True,
    ) -> None:
        self.target = target
        # logging.events.enabled: false keeps unified events out of the store; run rows are still written.
        self._types = _WRITTEN if events else ("run", "snapshot", "run_usage")
        self.retention = dict(retention or {})
        if busy_timeout_s is None:
            # Under gevent, SQLite's wait for another process's write lock holds the one OS thread every
            # greenlet runs on: a store locked for 3 s (an `agent-otel gc`, another worker's transaction)
            # stopped the whole application for 3 s. A short wait there, and the records wait in the buffer
            # for the back-off's next try, as they do for a store locked longer than the usual wait.
            green_sqlite = green.patched() and target.kind == "sqlite"
            busy_timeout_s = GREEN_BUSY_TIMEOUT_S if green_sqlite else db.DEFAULT_BUSY_TIMEOUT_S
        self.busy_timeout_s = busy_timeout_s
        self.gc_interval_s = gc_interval_s
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.dropped = 0  # records that never reach the store, whatever the reason
        self.rejected = 0  # of those, records the database refused (also counted in dropped)
        self.written = 0
        self.error: StoreError | None = None  # the last error, for doctor and tests
        self._store: Store | None = None
        self._pid = os.getpid()
        self._pending: list[tuple[str, dict[str, Any], int]] = []  # (type, payload, estimated bytes)
        self._pending_bytes = 0
        self._in_flight = 0  # records of the batch being written without going through _pending
        self._timer: threading.Timer | None = None
        self._connecting = False  # the retry timer is connecting to a PostgreSQL store, without the lock
        self._warned_rejected = False
        self._disabled = False
        self._opened = False  # a connection succeeded once: the database existed
        self._closed = False
        self._warned_transient = False
        self._next_gc_ms = 0
        self._gc: Iterator[dict[str, int]] | None = None  # a gc in progress (retention.steps)
        self._gc_totals: dict[str, int] = {}
        self._backfill = True  # until the summaries cover the whole store
        self._recheck_at = 0.0  # monotonic: when to look again for hours whose summaries miss runs
        self._stale: list[int] = []  # such hours (summaries.stale_hours), summarized again one a slice
        self._maintain_at = 0.0  # monotonic: no maintenance slice before this
        self._shifts: dict[str, int] = {}
        self._retry_at = 0.0  # after a transient failure: no new try before this (monotonic) time
        # A write whose COMMIT failed, which the server may have committed all the same: (its transaction
        # id, the payloads it held, which wait in _pending, until when an "in progress" answer is waited
        # for). See _settle_unsure.
        self._unsure: tuple[int, list[dict[str, Any]], float] | None = None
        self._backoff_s = 0.0
        self._lock = threading.Lock()
        self._fork_hold = ForkHold()  # _lock held across a fork by _before_fork
        liveness.identity()  # computed now, while the process can still read what it needs
        if target.kind == "postgresql":
            _import_psycopg()
        _live.add(self)

    # --- the internal back-dating hook (used by `agent-otel demo --backdate` only) -------------------

    def shift_run(self, run_id: str, offset_ms: int) -> None:
        """Store run ``run_id`` and its events ``offset_ms`` earlier than they happened.

        Internal, not public API: the demo uses it to spread simulated runs over past days so that
        ``drift`` and the seed's SQL have a baseline. Spans and metrics exported over OTLP keep their
        real time. Register before the run starts; the entry is dropped once the run's end is stored.
        """
        with self._lock:
            self._shifts[run_id] = int(offset_ms)

    def _shifted(self, rtype: str, payload: dict[str, Any]) -> dict[str, Any]:
        offset = self._shifts.get(payload.get("run_id") or "")
        if not offset:
            return payload
        payload = dict(payload)  # other sinks see the same dict: never modify it
        keys = ("created_at_ms", "ended_at_ms") if rtype == "run" else ("ts_ms",)
        for key in keys:
            if payload.get(key) is not None:
                payload[key] = int(payload[key]) - offset
        if rtype == "run" and payload.get("status") not in (None, "running"):
            self._shifts.pop(payload["run_id"], None)
        return payload

    # --- Sink protocol -------------------------------------------------------------------------------

    def write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        with self._lock:
            if self._disabled or self._closed:
                self.dropped += sum(1 for t, _ in batch if t in self._types)
                return
            waiting = time.monotonic() < self._retry_at or self._reconnecting()
            if not self._pending and not waiting:
                self._write_batch(batch)  # the common case: nothing waits, the store takes writes
                return
            self._queue(self._records(batch))
            if waiting:
                self._trim_pending()
                return
            self._flush_pending()

    def _reconnecting(self) -> bool:
        """A PostgreSQL store failed and the retry timer owns the next connection (see _retry): a batch
        arriving meanwhile waits in the buffer instead of connecting on the pipeline's thread."""
        return self._connecting or (self._timer is not None and self.target.kind == "postgresql")

    def _records(self, batch: list[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The records of ``batch`` this sink stores, as it stores them (shifted, run rows with their
        writer's identity, so that a reader can tell a dead process's runs)."""
        types, shifts = self._types, self._shifts
        identity = liveness.identity()
        for rtype, payload in batch:
            if rtype not in types:
                continue
            if shifts:
                payload = self._shifted(rtype, payload)
            if rtype == "run":
                payload = {**payload, **identity}
            yield rtype, payload

    def _queue(self, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        append = self._pending.append
        for rtype, payload in records:
            size = _record_bytes(rtype, payload)
            append((rtype, payload, size))
            self._pending_bytes += size

    def _write_batch(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """Write ``batch`` in one transaction straight from its records, with nothing pending before it:
        no buffer entry nor size per record unless the write fails, when the records go to the buffer in
        their order, as if they had waited there (retried, split to find refused values, trimmed)."""
        runs: list[dict[str, Any]] = []
        by_type = {t: [] for t in self._types}
        by_type["run"] = runs
        shifts, identity = self._shifts, liveness.identity()
        for rtype, payload in batch:
            records = by_type.get(rtype)
            if records is None:
                continue
            if shifts:
                payload = self._shifted(rtype, payload)
            if records is runs:  # who writes it: a reader can tell a dead process's runs
                payload = {**payload, **identity}
            records.append(payload)
        n = sum(map(len, by_type.values()))
        if not n:
            return
        self._in_flight = n
        reused = self._store is not None
        try:
            store = self._open()
            store.write(runs, by_type.get("event", ()), by_type["snapshot"], by_type["run_usage"])
        except Exception as exc:
            self._in_flight = 0
            # The k-th stored record of each type in the batch is the k-th of its list.
            each = {t: iter(records) for t, records in by_type.items()}
            self._queue((rtype, next(each[rtype])) for rtype, _ in batch if rtype in each)
            self._note_unsure([p for _, p, _ in self._pending])
            err = classify(exc)
            if err.bad_data:
                self._flush_pending()  # again from the buffer, split until the refused records are found
            elif self._reconnect_at_once(err, reused):
                self._flush_pending()  # over the new connection; a failure there is the store's state
            else:
                self._failed(err)
            return
        self._in_flight = 0
        self.written += n
        self._written_ok(store)

    def close(self) -> None:
        if not self._lock.acquire(timeout=_CLOSE_WAIT_S):
            self._closed = True  # a write is stuck (locked store); it closes nothing, exit goes on
            # the batch being written is in _pending, or (nothing pending before it) in _in_flight
            self.dropped += len(self._pending) + self._in_flight
            self._lost_at_exit(len(self._pending), in_flight=True)
            return
        try:
            timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
            if self._pending and not self._disabled and self._pid == os.getpid():
                self._last_try()
            if self._pending:
                self.dropped += len(self._pending)
                self._lost_at_exit(len(self._pending), in_flight=False)
                self._pending = []
                self._pending_bytes = 0
            self._closed = True
            if self._timer is not None:  # scheduled by a failed last try
                self._timer.cancel()
            if self._store is not None and self._pid == os.getpid():
                self._store.close()
            self._store = None
        finally:
            self._lock.release()

    def exit_grace_s(self) -> float:
        """How long past the shutdown bound (from the exit's start) an exit waits for this sink's write in
        progress (:func:`agent_otel.events.exit_grace_s`): :data:`EXIT_WRITE_S` for a PostgreSQL store
        that is connecting or writing, 0 for one in its back-off, off, closed, or SQLite."""
        if self.target.kind != "postgresql" or self._disabled or self._closed:
            return 0.0
        if time.monotonic() < self._retry_at:  # refused or down a moment ago: the exit does not wait
            return 0.0
        return EXIT_WRITE_S

    def _lost_at_exit(self, pending: int, in_flight: bool) -> None:
        """Records that will never reach the store: say so, once, rather than lose runs silently."""
        if self._disabled:
            return  # already reported when the store became unusable
        what = f"{pending} records (runs, events, snapshots)"
        if in_flight:
            what = f"{what} and the batch being written" if pending else "the batch being written"
        logger.warning(
            "agent-otel: the run store at %s was busy at exit; %s of this process %s not stored. "
            "OTLP export is not affected.",
            self.target.display,
            what,
            "were" if pending else "was",
        )

    # --- internals -----------------------------------------------------------------------------------

    def _open(self) -> Store:
        if self._store is not None and self._pid != os.getpid():
            _inherited.append(self._store)  # forked: the parent's connection is not ours to use or close
            self._store = None
        if self._store is None:
            self._pid = os.getpid()
            self._store = self._connect()
            self._prepare(self._store)
        return self._store

    def _connect(self) -> Store:
        return open_store(self.target, create=True, writer=True, busy_timeout_s=self.busy_timeout_s)

    def _prepare(self, store: Store) -> None:
        """A new connection's settings for the sink's writes, and when its gc is due."""
        store.for_streaming_writes()
        self._opened = True
        last = store.meta("last_gc_ms")
        self._next_gc_ms = (int(last) if last else 0) + int(self.gc_interval_s * 1000)
        if self._next_gc_ms > time.time() * 1000 and self._gc_overdue(store):
            self._next_gc_ms = 0

    def _last_try(self) -> None:
        """One last, short try at exit: shutdown is bounded, a locked store must not hold the exit, nor
        a PostgreSQL server that does not answer (it is reconnected only if its port answers at once)."""
        if self._store is None and (self.target.kind != "postgresql" or not _answers(self.target)):
            return
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.set_busy_timeout(_CLOSE_WAIT_S)  # type: ignore[attr-defined]
        self._flush_pending()

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        reused = self._store is not None
        try:
            store = self._open()
            self._settle_unsure(store)
            self._write_front(store, len(self._pending))
        except Exception as exc:
            err = classify(exc)
            if not self._reconnect_at_once(err, reused):
                self._failed(err)
                return
            try:
                store = self._open()
                self._settle_unsure(store)
                self._write_front(store, len(self._pending))
            except Exception as again:
                self._failed(classify(again))
                return
        self._written_ok(store)

    def _reconnect_at_once(self, err: StoreError, reused: bool) -> bool:
        """Whether to try a new PostgreSQL connection at once after ``err`` on one already open: the server
        may have closed it while it sat idle (the DBA's idle_session_timeout, a proxy's idle limit), which
        is no reason to call the store unavailable; or a statement of the write's transaction failed out
        of sight (25P02); or the write lost a wait for another writer's lock (:data:`CONTENDED`). Closes the
        old connection if so."""
        retry = (err.transient or err.sqlstate == IN_FAILED_TRANSACTION) and reused
        if not ((retry or err.sqlstate in CONTENDED) and self.target.kind == "postgresql"):
            return False
        if self._store is not None:
            self._store.close()
            self._store = None
        return True

    def _written_ok(self, store: Store) -> None:
        self._backoff_s = 0.0
        if self._warned_transient:
            self._warned_transient = False
            with contextlib.suppress(Exception):
                store.set_busy_timeout(self.busy_timeout_s)  # type: ignore[attr-defined]
            logger.info("agent-otel: the run store at %s accepts writes again", self.target.display)
        self._maintain()

    def _write_front(self, store: Store, n: int) -> None:
        """Write the first ``n`` pending records in one transaction and take them off the buffer.

        If the database refuses a record's values, halve and retry each half on its own, down to the
        single records it refuses, which are dropped and counted: one bad value costs one record, not a
        batch, and never the store. Any other error propagates with what was written already removed.
        """
        records = self._pending[:n]
        by_type: dict[str, list[dict[str, Any]]] = {"run": [], "event": [], "snapshot": [], "run_usage": []}
        for t, p, _ in records:
            by_type[t].append(p)
        try:
            store.write(by_type["run"], by_type["event"], by_type["snapshot"], by_type["run_usage"])
        except Exception as exc:
            err = classify(exc)
            if not err.bad_data:
                self._note_unsure([p for _, p, _ in records])
                raise err from None
            if n > 1:
                half = n // 2
                self._write_front(store, half)
                self._write_front(store, n - half)
                return
            self._reject(records[0][0], err)
            n = 1
        else:
            self.written += n
        self._pending_bytes -= sum(size for _, _, size in self._pending[:n])
        del self._pending[:n]

    def _note_unsure(self, payloads: list[dict[str, Any]]) -> None:
        """After a failed write of ``payloads`` (now at the front of _pending): if its COMMIT failed,
        remember the transaction, to ask the server what became of it before writing them again."""
        store = self._store
        xid = store.unsure_xid if store is not None else None
        if xid is not None:
            store.unsure_xid = None
            self._unsure = (xid, payloads, time.monotonic() + _UNSURE_WAIT_S)

    def _settle_unsure(self, store: Store) -> None:
        """Before writing the buffer again over a new connection: the records of a write whose COMMIT
        failed but was committed are taken off it, counted as written, not stored a second time. Still
        ``in progress`` (the server finishing that COMMIT): the try waits, as after an outage, up to
        _UNSURE_WAIT_S; a COMMIT that never reached the server stays in progress only until the server
        notices the connection is gone and aborts it, so past that the records are written again.
        Unknown (no answer the server can give) or aborted: written again, as before."""
        if self._unsure is None:
            return
        xid, payloads, wait_until = self._unsure
        status = store.commit_status(xid)  # a lost connection raises: the next try asks again
        if status == "in progress" and time.monotonic() < wait_until:
            raise StoreError("a write whose connection was lost is still being committed", transient=True)
        self._unsure = None
        if status != "committed":
            logger.debug("agent-otel: a write whose COMMIT failed was %s; writing it again", status)
            return
        done = {id(p) for p in payloads}
        kept = []
        for record in self._pending:
            if id(record[1]) in done:
                self._pending_bytes -= record[2]
                self.written += 1
            else:
                kept.append(record)
        taken = len(self._pending) - len(kept)
        self._pending = kept
        logger.debug(
            "agent-otel: a write whose COMMIT failed was committed; %d records not written again", taken
        )

    def _reject(self, rtype: str, err: StoreError) -> None:
        self.rejected += 1
        self.dropped += 1
        self.error = err
        if not self._warned_rejected:
            self._warned_rejected = True
            logger.warning(
                "agent-otel: the run store at %s refused a %s record (%s); it is dropped and counted, the "
                "store stays in use (further refused records are counted, not logged)",
                self.target.display,
                rtype,
                err,
            )

    def _failed(self, err: StoreError) -> None:
        self.error = err
        if err.sqlstate in (DATABASE_MISSING, UNDEFINED_TABLE) and self._opened:
            # Dropped under a process that was writing to it: an operator re-creating it (empty; the
            # tables are created again on connecting) is more likely than a typo that worked before. So
            # is a table gone (42P01: a DBA restoring the schema, DROP SCHEMA ... CASCADE): the records
            # are kept, and the next try reconnects, which runs the migrations again. A table dropped
            # alone while the schema version stays (agent_otel_meta kept) is not re-created: the tries
            # go on with their back-off, and what the bounded buffer cannot keep is counted as dropped.
            err.transient = True
        if err.transient:
            self._trim_pending()
            if not self._warned_transient:
                self._warned_transient = True
                logger.warning(
                    "agent-otel: the run store at %s cannot take writes right now (%s); keeping %d records "
                    "to retry with the next batch. The agent and OTLP export are not affected.",
                    self.target.display,
                    err,
                    len(self._pending),
                )
            # The pipeline thread also carries metrics and other sinks: while the store stays busy, do
            # not block it on every batch. Wait between tries, and try SQLite with a short busy timeout.
            if self.target.kind == "postgresql":
                if self._store is not None:
                    self._store.close()  # reconnect next time
                    self._store = None
            elif self._store is not None:
                with contextlib.suppress(Exception):
                    degraded = min(_DEGRADED_BUSY_S, self.busy_timeout_s)
                    self._store.set_busy_timeout(degraded)  # type: ignore[attr-defined]
            self._backoff_s = min(max(self._backoff_s * 2, 0.5), 30.0)
            self._retry_at = time.monotonic() + self._backoff_s
            self._retry_later(self._backoff_s)
            return
        self._disabled = True
        self.dropped += len(self._pending)
        self._pending = []
        self._pending_bytes = 0
        if self._store is not None:
            self._store.close()
            self._store = None
        logger.warning(
            "agent-otel: the run store at %s cannot be used (%s); runs of this process are not stored "
            "locally. The agent and OTLP export are not affected. Check it with `agent-otel doctor`.",
            self.target.display,
            err,
        )

    def _retry_later(self, delay_s: float) -> None:
        """Try again after the back-off even if no new record arrives: a store back within a minute
        then gets the records while the process lives, not only at its exit."""
        if self._timer is not None or self._closed:
            return
        timer = threading.Timer(delay_s, self._retry)
        timer.daemon = True
        timer.name = "agent-otel-store-retry"
        self._timer = timer
        timer.start()

    def _retry(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed or self._disabled or self._pid != os.getpid():
                return
            if time.monotonic() < self._retry_at:  # a write tried (and failed) meanwhile
                self._retry_later(self._retry_at - time.monotonic())
                return
            if self.target.kind != "postgresql" or self._store is not None:
                self._flush_pending()
                return
            self._connecting = True
        # A PostgreSQL server that is gone without a word (a host down, a partition: no reset) lets a
        # connection attempt wait out its connect_timeout (5 s). Under the lock, the pipeline's thread,
        # which also feeds the metrics and every other sink, waited with it at each try of the back-off;
        # without it, its batches go to the buffer meanwhile (write(): _reconnecting).
        store: Store | None = None
        error: StoreError | None = None
        try:
            store = self._connect()
        except Exception as exc:
            error = classify(exc)
        except BaseException:
            self._connecting = False  # or no write would ever try again
            raise
        with self._lock:
            self._connecting = False
            if self._closed or self._disabled or self._store is not None or self._pid != os.getpid():
                if store is not None:
                    with contextlib.suppress(Exception):
                        store.close()
                return
            if store is None:
                assert error is not None
                self._failed(error)
                return
            self._store = store
            try:
                self._prepare(store)
            except Exception as exc:
                self._failed(classify(exc))
                return
            self._flush_pending()

    def _trim_pending(self) -> None:
        """Drop the oldest records beyond ``max_pending`` records or ``max_pending_bytes`` bytes."""
        pending = self._pending
        overflow = max(len(pending) - self.max_pending, 0)
        excess = self._pending_bytes - sum(size for _, _, size in pending[:overflow]) - self.max_pending_bytes
        while excess > 0 and overflow < len(pending):
            excess -= pending[overflow][2]
            overflow += 1
        if overflow:
            self._pending_bytes -= sum(size for _, _, size in pending[:overflow])
            del pending[:overflow]
            self.dropped += overflow

    def _maintain(self) -> None:
        """One slice of gc (once a day) or of summarizing older hours, when the thread has time for it."""
        store = self._store
        started = time.monotonic()
        if store is None or started < self._maintain_at:
            return
        try:
            deadline = started + MAINTENANCE_SLICE_S
            if self._gc is None:
                self._gc = self._start_gc(store)
            while self._gc is not None:
                totals = next(self._gc, None)
                if totals is None:  # done
                    self._gc = None
                    if any(self._gc_totals.values()):
                        logger.info("agent-otel: retention removed %s from the run store", self._gc_totals)
                    break
                self._gc_totals = totals
                if time.monotonic() > deadline:
                    break
            while self._gc is None and self._backfill and time.monotonic() <= deadline:
                self._backfill = store.summarized and summaries.backfill_step(store)
            if self._gc is None and store.summarized and started >= self._recheck_at:
                # An agent-otel from before schema 6 may still be writing (it started before the upgrade).
                back = summaries.RECHECK_MS if self._recheck_at == 0.0 else summaries.RECHECK_RECENT_MS
                self._recheck_at = started + RECHECK_INTERVAL_S
                self._stale = summaries.stale_hours(store, int(time.time() * 1000), back)
            while self._gc is None and self._stale and time.monotonic() <= deadline:
                hour = self._stale.pop()
                with store.transaction():
                    summaries.rebuild(store, hour, hour + summaries.HOUR_MS)
        except Exception as exc:  # retention and summaries can wait for the next day or `agent-otel gc`
            self._gc = None
            self._backfill = False
            self._stale = []
            logger.debug("agent-otel: run store maintenance failed: %s", exc)
        self._maintain_at = time.monotonic() + (time.monotonic() - started) / MAINTENANCE_SHARE

    def _start_gc(self, store: Store) -> Iterator[dict[str, int]] | None:
        now_ms = int(time.time() * 1000)
        if now_ms < self._next_gc_ms:
            return None
        self._next_gc_ms = now_ms + int(self.gc_interval_s * 1000)
        last = store.meta("last_gc_ms")  # another process may have done it meanwhile
        if last and now_ms - int(last) < self.gc_interval_s * 1000 and not self._gc_overdue(store):
            self._next_gc_ms = int(last) + int(self.gc_interval_s * 1000)
            return None
        return retention.steps(store, self.retention, now_ms)

    def _gc_overdue(self, store: Store) -> bool:
        """The last gc (another process's, of an older agent-otel perhaps) left rows past their retention."""
        try:
            slack_ms = int(self.gc_interval_s * 1000)
            return retention.overdue(store, self.retention, int(time.time() * 1000), slack_ms)
        except Exception:  # the gc can wait for its day
            return False


def _import_psycopg() -> None:
    """Import psycopg (and the parts the sink uses) now, on the thread that creates the sink. Its first
    import otherwise happened on the pipeline's thread, on the first connection, which at a short
    script's exit ran at the same time as the main thread's import for close()'s last try
    (:func:`_answers`): two threads importing the same package as the interpreter finalizes broke one of
    them (a module half-initialized, an import lock deadlock detected) and lost the process's runs."""
    with contextlib.suppress(ImportError):  # open() says what to install, once, on the pipeline's thread
        import psycopg
        import psycopg.conninfo
        import psycopg.pq
        import psycopg.types.json  # noqa: F401


def _answers(target: Target) -> bool:
    """Whether the PostgreSQL server of ``target`` accepts a TCP connection within the close bound."""
    import socket

    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(target.location)
    except Exception:
        return False
    host = str(info.get("hostaddr") or info.get("host") or "localhost").split(",")[0]
    if host.startswith("/"):
        return True  # a Unix socket on this machine: connecting fails or succeeds at once
    try:
        port = int(str(info.get("port") or 5432).split(",")[0])
        with socket.create_connection((host, port), timeout=_CLOSE_WAIT_S):
            return True
    except (OSError, ValueError):
        return False


def _record_bytes(rtype: str, payload: dict[str, Any]) -> int:
    """About what a record holds in memory: a snapshot's blob, an event's stored args and result."""
    get = payload.get
    if rtype == "snapshot":
        blob = get("blob")
        return _RECORD_BYTES + (len(blob.plain) if blob is not None else 0)
    args, result, detail = get("args"), get("result"), get("detail")
    if args is None and result is None and detail is None:  # most records
        return _RECORD_BYTES
    return _RECORD_BYTES + sum(_approx_bytes(v) for v in (args, result, detail) if v is not None)


def _approx_bytes(value: Any, cap: int = 1 << 24) -> int:
    """Rough JSON size of a JSON-native value; stops counting at ``cap`` (it only bounds a buffer)."""
    total = 0
    stack = [value]
    while stack and total < cap:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 8
    return total


def sink_from_config(config: Any) -> StoreSink | None:
    """The store sink ``setup()`` adds, or None when ``store: false``."""
    from agent_otel.store.location import resolve

    target = resolve(config.get("store"))
    if target is None:
        return None
    return StoreSink(target, retention_from_config(config), events=bool(config.get("logging.events.enabled")))


def retention_from_config(config: Any) -> dict[str, int]:
    return {
        "logs_days": int(config.get("retention.logs_days")),
        "tool_snapshot_days": int(config.get("retention.tool_snapshot_days")),
    }
