"""The store as an event-pipeline sink: batches of run and event records, one transaction each.

It runs on the pipeline's daemon thread, never on the agent's. Nothing here raises into the pipeline:

* a store that is corrupt, read-only, unreadable or of a newer schema is reported in **one** warning and
  then left alone for the rest of the process (the agent and OTLP export carry on);
* a store that is only busy (another process holds SQLite's write lock past the busy timeout, or the
  PostgreSQL server is unreachable) is reported once too, and the records wait in a bounded buffer;
  beyond ``max_pending`` the oldest are dropped and counted. Tries back off (0.5 s doubling to 30 s) and
  SQLite waits only 0.1 s per try until it recovers, because the pipeline thread also carries the metrics.

Retention (``agent-otel gc``) also runs from here, at most once per ``gc_interval_s`` per store, after a
successful write: off the hot path, and without a cron job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from typing import Any

from agent_otel.store import db
from agent_otel.store.db import Store, StoreError, classify, open_store
from agent_otel.store.location import Target

logger = logging.getLogger("agent_otel")

GC_INTERVAL_S = 86_400.0
_WRITTEN = ("run", "event", "snapshot")
_CLOSE_WAIT_S = 0.2  # shutdown is bounded: close() waits this long for a write in flight, then gives up
_DEGRADED_BUSY_S = 0.1  # SQLite busy timeout while the store is known to be locked

_live: weakref.WeakSet[StoreSink] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked worker (gunicorn, multiprocessing) starts with fresh locks and its own connection."""
    for sink in list(_live):
        sink._lock = threading.Lock()
        sink._store = None  # the parent's connection is not the child's to use or close
        sink._pending = []  # the parent writes its own records


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class StoreSink:
    """Pipeline sink writing ``("run", ...)`` and ``("event", ...)`` records to the run store."""

    def __init__(
        self,
        target: Target,
        retention: dict[str, int] | None = None,
        *,
        busy_timeout_s: float | None = None,
        gc_interval_s: float = GC_INTERVAL_S,
        max_pending: int = 50_000,
        events: bool = True,
    ) -> None:
        self.target = target
        # logging.events.enabled: false keeps unified events out of the store; run rows are still written.
        self._types = _WRITTEN if events else ("run", "snapshot")
        self.retention = dict(retention or {})
        self.busy_timeout_s = db.DEFAULT_BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.gc_interval_s = gc_interval_s
        self.max_pending = max_pending
        self.dropped = 0
        self.written = 0
        self.error: StoreError | None = None  # the last error, for doctor and tests
        self._store: Store | None = None
        self._pid = os.getpid()
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._disabled = False
        self._closed = False
        self._warned_transient = False
        self._next_gc_ms = 0
        self._shifts: dict[str, int] = {}
        self._retry_at = 0.0  # after a transient failure: no new try before this (monotonic) time
        self._backoff_s = 0.0
        self._lock = threading.Lock()
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
            self._pending.extend((t, self._shifted(t, p)) for t, p in batch if t in self._types)
            if time.monotonic() < self._retry_at:
                self._trim_pending()
                return
            self._flush_pending()

    def close(self) -> None:
        if not self._lock.acquire(timeout=_CLOSE_WAIT_S):
            self._closed = True  # a write is stuck (locked store); it closes nothing, exit goes on
            self.dropped += len(self._pending)  # the batch being written is still in _pending: counted
            self._lost_at_exit(len(self._pending), in_flight=True)
            return
        try:
            if self._pending and not self._disabled and self._store is not None:
                # One last, short try: shutdown is bounded, a locked store must not hold the exit.
                with contextlib.suppress(Exception):
                    self._store.set_busy_timeout(_CLOSE_WAIT_S)  # type: ignore[attr-defined]
                self._flush_pending()
            if self._pending:
                self.dropped += len(self._pending)
                self._lost_at_exit(len(self._pending), in_flight=False)
                self._pending = []
            self._closed = True
            if self._store is not None and self._pid == os.getpid():
                self._store.close()
            self._store = None
        finally:
            self._lock.release()

    def _lost_at_exit(self, pending: int, in_flight: bool) -> None:
        """Records that will never reach the store: say so, once, rather than lose runs silently."""
        if self._disabled:
            return  # already reported when the store became unusable
        what = f"{pending} records (runs, events, snapshots)"
        if in_flight:
            what = f"{what} and the batch being written" if pending else "the batch being written"
        logger.warning(
            "agent-otel: the run store at %s was busy at exit; %s of this process were not stored. "
            "OTLP export is not affected.",
            self.target.display,
            what,
        )

    # --- internals -----------------------------------------------------------------------------------

    def _open(self) -> Store:
        if self._store is not None and self._pid != os.getpid():
            self._store = None  # forked: the parent's connection is not ours to use or close
        if self._store is None:
            self._pid = os.getpid()
            self._store = open_store(
                self.target, create=True, writer=True, busy_timeout_s=self.busy_timeout_s
            )
            last = self._store.meta("last_gc_ms")
            self._next_gc_ms = (int(last) if last else 0) + int(self.gc_interval_s * 1000)
        return self._store

    def _flush_pending(self) -> None:
        records = self._pending
        if not records:
            return
        runs = [p for t, p in records if t == "run"]
        events = [p for t, p in records if t == "event"]
        snapshots = [p for t, p in records if t == "snapshot"]
        try:
            store = self._open()
            store.write(runs, events, snapshots)
        except Exception as exc:
            self._failed(classify(exc))
            return
        self.written += len(records)
        self._pending = []
        self._backoff_s = 0.0
        if self._warned_transient:
            self._warned_transient = False
            with contextlib.suppress(Exception):
                store.set_busy_timeout(self.busy_timeout_s)  # type: ignore[attr-defined]
            logger.info("agent-otel: the run store at %s accepts writes again", self.target.display)
        self._maybe_gc()

    def _failed(self, err: StoreError) -> None:
        self.error = err
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
                    self._store.set_busy_timeout(_DEGRADED_BUSY_S)  # type: ignore[attr-defined]
            self._backoff_s = min(max(self._backoff_s * 2, 0.5), 30.0)
            self._retry_at = time.monotonic() + self._backoff_s
            return
        self._disabled = True
        self.dropped += len(self._pending)
        self._pending = []
        if self._store is not None:
            self._store.close()
            self._store = None
        logger.warning(
            "agent-otel: the run store at %s cannot be used (%s); runs of this process are not stored "
            "locally. The agent and OTLP export are not affected. Check it with `agent-otel doctor`.",
            self.target.display,
            err,
        )

    def _trim_pending(self) -> None:
        overflow = len(self._pending) - self.max_pending
        if overflow > 0:
            del self._pending[:overflow]
            self.dropped += overflow

    def _maybe_gc(self) -> None:
        now_ms = int(time.time() * 1000)
        if now_ms < self._next_gc_ms or self._store is None:
            return
        self._next_gc_ms = now_ms + int(self.gc_interval_s * 1000)
        try:
            last = self._store.meta("last_gc_ms")  # another process may have done it meanwhile
            if last and now_ms - int(last) < self.gc_interval_s * 1000:
                self._next_gc_ms = int(last) + int(self.gc_interval_s * 1000)
                return
            deleted = self._store.gc(self.retention, now_ms)
            if any(deleted.values()):
                logger.info("agent-otel: retention removed %s from the run store", deleted)
        except Exception as exc:  # retention can wait for the next day or `agent-otel gc`
            logger.debug("agent-otel: automatic gc of the run store failed: %s", exc)


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
