"""Unified events and the pipeline that carries them (and run records) off the agent's thread.

Every tool result, LLM result and stop becomes one event in the schema of DESIGN.md. The agent's thread
only builds a dict and appends it to a bounded deque; a daemon thread hands batches to the sinks (the
JSON-lines sink here, the local run store, snapshot recording). A sink that raises or blocks cannot reach
the agent: errors are counted and reported once per sink, and a full queue drops the oldest record and
counts it instead of growing without bound.

Records are ``(type, payload)`` tuples so sinks can ignore types they do not handle:
``("event", {...unified event...})`` and ``("run", {...run row...})``.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from typing import IO, Any, Protocol

import orjson

from agent_otel import green
from agent_otel.config import EVENT_FIELDS
from agent_otel.hashing import json_safe

logger = logging.getLogger("agent_otel")

Record = tuple[str, dict[str, Any]]
_MAX_GRACE_S = 10.0  # an exit waits for no sink's write past this, whatever it asks (see exit_grace_s)

# Written for every event whatever ``include`` says: they identify the event and join it to traces.
ENVELOPE_FIELDS = ("kind", "ts_ms", "run_id", "agent", "trace_id", "span_id")


class Sink(Protocol):
    """Receives batches on the pipeline's thread. Must not assume it runs on the agent's thread."""

    def write(self, batch: list[Record]) -> None: ...

    def close(self) -> None: ...


def exit_grace_s(sink: Sink) -> float:
    """How long past the shutdown bound an exit may wait for ``sink`` to finish the write it is doing:
    a sink may define ``exit_grace_s()`` (the PostgreSQL run store, still connecting or writing as a
    short-lived process ends); 0 for the others."""
    grace = getattr(sink, "exit_grace_s", None)
    if grace is None:
        return 0.0
    try:
        return max(float(grace()), 0.0)
    except Exception:
        return 0.0


def new_event(
    kind: str,
    run_id: str,
    agent: str,
    trace_id: str,
    span_id: str,
    step_id: int | None = None,
    tool: str | None = None,
    args_sha: str | None = None,
    result_sha: str | None = None,
    duration_ms: float | None = None,
    status: str | None = None,
    error: str | None = None,
    stop_reason: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One unified event; every schema field is present (None when it does not apply)."""
    return {
        "run_id": run_id,
        "kind": kind,
        "ts_ms": int(time.time() * 1000),
        "step_id": step_id,
        "tool": tool,
        "args_sha": args_sha,
        "result_sha": result_sha,
        "duration_ms": duration_ms,
        "status": status,
        "error": error,
        "stop_reason": stop_reason,
        "usage": usage,
        "trace_id": trace_id,
        "span_id": span_id,
        "agent": agent,
    }


class JsonLinesSink:
    """Writes unified events as JSON lines to a file (appending, mode 0600) or stdout/stderr.

    ``include`` selects schema fields beyond the envelope; ``store_args_hash`` adds the two hashes;
    redacted raw args/results are present only when the event carries them (``store_args: true``).
    """

    def __init__(self, target: str, include: Iterable[str], store_args_hash: bool = True) -> None:
        fields = [f for f in ENVELOPE_FIELDS]
        for name in include:
            if name not in fields:
                fields.append(name)
        if store_args_hash:
            fields += [f for f in ("args_sha", "result_sha") if f not in fields]
        self._fields = tuple(f for f in fields if f in EVENT_FIELDS)
        self._target = target
        self._owned = False
        self._stream: IO[bytes]
        if target in ("stdout", "-"):
            self._stream = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else io.BytesIO()
        elif target == "stderr":
            self._stream = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else io.BytesIO()
        else:
            path = os.path.expanduser(target)
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:  # O_CREAT's mode is for a new file; one that exists keeps its own, as `export` knows
                mode = os.fstat(fd).st_mode
                if stat.S_ISREG(mode) and stat.S_IMODE(mode) != 0o600:
                    os.fchmod(fd, 0o600)
            except OSError:
                os.close(fd)
                raise
            self._stream = os.fdopen(fd, "ab")
            self._owned = True
        # Held while the stream is written (see _before_fork): a fork while the pipeline's thread is in
        # the stream's write leaves the child a stream whose internal lock nobody will ever release.
        self._lock = threading.Lock()
        self._fork_hold = ForkHold()
        _json_sinks.add(self)

    def write(self, batch: list[Record]) -> None:
        fields = self._fields
        lines = []
        for rtype, payload in batch:
            if rtype != "event":
                continue
            line = {f: payload[f] for f in fields if payload.get(f) is not None}
            for extra in ("args", "result"):
                if extra in payload:
                    line[extra] = payload[extra]
            try:
                lines.append(orjson.dumps(line, default=str))
            except TypeError:  # an int beyond 64 bits, a non-string key, a lone surrogate: this line only
                lines.append(orjson.dumps(json_safe(line)))
        if lines:
            with self._lock:
                self._stream.write(b"\n".join(lines) + b"\n")
                self._stream.flush()

    def close(self) -> None:
        if self._owned:
            self._stream.close()


_json_sinks: weakref.WeakSet[JsonLinesSink] = weakref.WeakSet()
_FORK_WAIT_S = 1.0  # how long a fork waits for a JSON lines write in progress (then forks regardless)


def _before_fork() -> None:
    """A fork waits for a write in progress to finish, so that no stream is mid-write in the child: its
    buffered writer's lock would stay taken there, and the child's first event write (or its exit's
    close) would wait for it forever."""
    deadline = time.monotonic() + _FORK_WAIT_S
    for sink in list(_json_sinks):
        sink._fork_hold.take(sink._lock, max(deadline - time.monotonic(), 0.0))


def _after_fork_in_parent() -> None:
    for sink in list(_json_sinks):
        sink._fork_hold.release(sink._lock)


def _after_fork_in_child() -> None:
    for sink in list(_json_sinks):
        sink._lock = threading.Lock()
        sink._fork_hold = ForkHold()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


class ForkHold:
    """Which thread's fork holds a lock that a fork's hook takes, so that no thread of the parent is
    mid-use of what it guards when the child is made.

    Two threads may fork at once, and each one's hook waits for the lock until its deadline. The one that
    timed out wrote "not taken" over the other's "taken", and that fork then never gave the lock back: an
    exporter, the JSON-lines sink or the run store waited for it for the life of the process (two threads
    forking 0.2 s apart while the collector took 3 s over a request: in 1 run of 6, no span nor metric of
    the process was sent again). The lock's holder is a thread id, which the child keeps too (the forking
    thread is the child's only one)."""

    __slots__ = ("_holder",)

    def __init__(self) -> None:
        self._holder: int | None = None

    def take(self, lock: threading.Lock, wait_s: float) -> bool:
        """Take ``lock`` for this thread's fork, waiting at most ``wait_s``; whether this fork holds it."""
        me = threading.get_ident()
        if self._holder != me and (lock.acquire(timeout=wait_s) if wait_s > 0 else lock.acquire(False)):
            self._holder = me
        return self._holder == me

    def held(self) -> bool:
        """Whether this thread's fork holds the lock (in the parent, or in the child it made)."""
        return self._holder == threading.get_ident()

    def release(self, lock: threading.Lock) -> None:
        """In the parent after this thread's fork: give ``lock`` back if this fork took it."""
        if self._holder == threading.get_ident():
            self._holder = None
            lock.release()


def after_fork_in_child(obj: object, method: str) -> None:
    """Call ``obj.<method>()`` in a forked child, without keeping ``obj`` alive."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.ref(obj)

    def hook() -> None:
        target = ref()
        if target is not None:
            getattr(target, method)()

    os.register_at_fork(after_in_child=hook)


# Where a record waiting in the queue keeps its snapshot bytes when its producer queues it in a form the
# garbage collector does not track (see Pipeline.on_take): plain bytes, turned into a blob object on the
# pipeline's thread.
QUEUED_BLOB = "_blob"

# What a queued record costs beyond its large values, in bytes: the record dict and its small values
# (measured as RSS: ~2.6 KB per record for a tool call's event and snapshot records, Python 3.11).
RECORD_OVERHEAD = 2560
_SIZE_WALK_LIMIT = 2000  # nodes looked at when sizing raw args/results (store_args); the rest is guessed


def record_size(payload: dict[str, Any]) -> int:
    """Bytes a queued record holds, estimated in O(1) for ordinary records: the constant overhead plus
    its snapshot blob (``blob``) and raw ``args``/``result`` (present only with ``store_args``)."""
    size = RECORD_OVERHEAD
    blob = payload.get(QUEUED_BLOB)  # a queued snapshot's bytes (the producers' form), else a Blob
    if blob is None:
        blob = payload.get("blob")
    if blob is not None:
        if type(blob) is bytes:  # (getattr with a default would raise and catch an AttributeError)
            size += len(blob)
        else:
            plain = getattr(blob, "plain", blob)
            size += len(plain) if isinstance(plain, (bytes, bytearray, str)) else 0
    if "args" in payload or "result" in payload:  # raw values: only with store_args
        for key in ("args", "result"):
            value = payload.get(key)
            if value is not None:
                size += _value_size(value)
    return size


def _value_size(value: Any) -> int:
    size = 0
    stack = [value]
    seen = 0
    while stack and seen < _SIZE_WALK_LIMIT:
        item = stack.pop()
        seen += 1
        if isinstance(item, (str, bytes, bytearray)):
            size += 50 + len(item)
        elif isinstance(item, dict):
            size += 100 + 40 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            size += 60 + 8 * len(item)
            stack.extend(item)
        else:
            size += 32
    if stack:  # beyond the walk limit: assume the rest looks like what was seen
        size += size // seen * len(stack)
    return size


class Pipeline:
    """Bounded queue plus one daemon thread delivering batches to sinks.

    The queue is bounded twice: ``max_queue`` records and ``max_bytes`` of them (see :func:`record_size`),
    because one record may carry a 16 MB snapshot. Beyond either, the oldest records are dropped and
    counted (``events``/``queue_full``).

    Delivery is prompt: a record arriving at an idle pipeline is delivered at once, and the records that
    arrive while a batch is being written go out together, at most one batch per ``interval_s``. A short
    script, or one killed soon after its runs, therefore still has its first runs in the store.
    """

    def __init__(
        self,
        sinks: Iterable[Sink] = (),
        max_queue: int = 16384,
        batch_size: int = 2048,
        interval_s: float = 0.05,
        *,
        max_bytes: int = 32 << 20,
        drops: Any = None,
    ) -> None:
        self._sinks: list[Sink] = list(sinks)
        # In-memory sinks (the metrics; see add_sink) and what feed_fast needs to give them a batch once.
        self._fast: list[Sink] = []
        self._ahead = 0  # records at the queue's front the fast sinks already have (feed_fast)
        self._fast_lock = threading.Lock()
        self._current: list[Record] = []  # of the batch being written, the records the fast sinks need
        self._current_fed = True  # ... and whether they have had them (claimed by one thread only)
        # Three parallel deques (changed together under _lock) rather than one of tuples: a queued record
        # is then its payload only, which the garbage collector does not track when its values are plain
        # (tool events; snapshot records, see on_take), so full collections, which stall every thread,
        # walk no more objects while the queue is long.
        self._queue: deque[dict[str, Any]] = deque()
        self._types: deque[str] = deque()
        self._sizes: deque[int] = deque()
        # Bytes of the records queued *and* of the batch the sinks are writing: a batch taken from the
        # queue holds its records until every sink is done with it, so it counts against max_bytes
        # until then (it did not: the queue filled again behind it, holding up to twice its budget).
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._max_queue = max_queue
        self._max_bytes = max_bytes
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._flush_requested = False
        self._closed = False
        self._writing: Sink | None = None  # the sink the pipeline's thread is writing to now (exit_grace_s)
        self._thread: threading.Thread | None = None
        self._failed_sinks: set[int] = set()
        self._on_take: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._drops = drops
        self.dropped = 0
        self.delivered = 0
        self.sink_errors = 0
        self._pid = os.getpid()
        after_fork_in_child(self, "_after_fork")
        green.after_patch(self._after_patch)

    def _renew_locks(self) -> None:
        """New locks: in a forked child (a thread of the parent may have held them), and in one gevent
        patched after its fork (agent_otel.green: the fork's were the OS's)."""
        self._fast_lock = threading.Lock()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition()

    def _after_patch(self) -> None:
        if self._thread is None:  # (a fork leaves none; one started since keeps what it has)
            self._renew_locks()

    def _after_fork(self) -> None:
        """A forked child starts empty: the queued records are the parent's, which will write them."""
        self._queue = deque()
        self._types = deque()
        self._sizes = deque()
        self._queued_bytes = 0
        self._ahead = 0
        self._current, self._current_fed = [], True
        self._renew_locks()
        self._busy = False
        self._writing = None
        self._thread = None
        self._pid = os.getpid()

    @property
    def active(self) -> bool:
        return bool(self._sinks) and not self._closed

    @property
    def queued_bytes(self) -> int:
        """Bytes of the records queued or being written by the sinks (estimated, :func:`record_size`)."""
        return self._queued_bytes

    def queued(self) -> list[Record]:
        """The records waiting in the queue, oldest first (for tests and diagnostics)."""
        with self._lock:
            return list(zip(self._types, self._queue, strict=True))

    def add_sink(self, sink: Sink, *, fast: bool = False) -> None:
        """Add ``sink``. ``fast`` is for a sink that only records in memory (the metrics): at shutdown,
        when a slow sink (a run store another process keeps locked) holds the queue up, it is given what
        is queued and the batch being written ahead of the others (feed_fast), so its last export need not
        wait for them. It sees records as they were queued: not those of a type with an on_take hook."""
        self._sinks.append(sink)
        if fast:
            self._fast.append(sink)

    def sinks(self) -> list[Sink]:
        return list(self._sinks)

    def on_take(self, rtype: str, hook: Callable[[dict[str, Any]], None]) -> None:
        """Run ``hook(payload)`` on the pipeline's thread as each ``rtype`` record leaves the queue, before
        any sink sees it.

        Why: a dict whose values are all atomic (str, int, float, bool, None, bytes) is not tracked by
        CPython's cyclic garbage collector, one holding an object is. A producer queues its records in
        the atomic form and the hook hands sinks the richer one, so a long queue (an outage: a slow or
        unavailable store) adds nothing that full collections, which stall every thread, have to walk,
        nor the promotions to the oldest generation that trigger them.
        """
        self._on_take[rtype] = hook

    def _drop(self, reason: str, n: int, announce: bool = True) -> None:
        if n <= 0:
            return
        self.dropped += n
        if self._drops is not None:
            self._drops.add("events", reason, n, announce=announce)

    def emit(self, rtype: str, payload: dict[str, Any], *more: Any) -> None:
        """Queue one record, or several in one go (``emit(type, payload, type2, payload2, ...)``: a step's
        event and its snapshot); O(1) for ordinary records, never blocks, never raises."""
        if not self._sinks or self._closed:
            return
        if "blob" in payload or QUEUED_BLOB in payload or "args" in payload or "result" in payload:
            size = record_size(payload)
        else:  # an event without raw values, a run row: what record_size gives them (this runs per record)
            size = RECORD_OVERHEAD
        queue = self._queue
        if len(more) == 2:  # a step's event and its snapshot (per tool call): sized before the lock
            extra = record_size(more[1])
            with self._lock:
                queue.append(payload)
                queue.append(more[1])
                types = self._types
                types.append(rtype)
                types.append(more[0])
                sizes = self._sizes
                sizes.append(size)
                sizes.append(extra)
                queued_bytes = self._queued_bytes = self._queued_bytes + size + extra
                queued = len(queue)
                if (
                    queued > self._max_queue or queued_bytes > self._max_bytes
                ):  # over a bound: shed the oldest
                    dropped = self._shed()
                    queued = len(queue)
                else:
                    dropped = 0
            n = 2
        else:
            with self._lock:
                queue.append(payload)
                self._types.append(rtype)
                self._sizes.append(size)
                for i in range(0, len(more), 2):
                    extra = record_size(more[i + 1])
                    queue.append(more[i + 1])
                    self._types.append(more[i])
                    self._sizes.append(extra)
                    size += extra
                queued_bytes = self._queued_bytes = self._queued_bytes + size
                queued = len(queue)
                if (
                    queued > self._max_queue or queued_bytes > self._max_bytes
                ):  # over a bound: shed the oldest
                    dropped = self._shed()
                    queued = len(queue)
                else:
                    dropped = 0
            n = 1 + len(more) // 2
        if dropped:
            self._drop("queue_full", dropped)
        if self._thread is None:  # not started yet, or forked (_after_fork): no getpid() per record
            self._start()
        elif queued == n or queued - n < self._batch_size <= queued:  # into an empty queue, or a full batch
            self._wake.set()

    def _shed(self) -> int:
        """Drop the oldest records until the queue is within its bounds (keeping the newest); the number
        dropped. Called with the lock held."""
        queue, sizes = self._queue, self._sizes
        dropped = 0
        while len(queue) > 1 and (len(queue) > self._max_queue or self._queued_bytes > self._max_bytes):
            queue.popleft()
            self._types.popleft()
            self._queued_bytes -= sizes.popleft()
            dropped += 1
            if self._ahead:
                self._ahead -= 1
        return dropped

    def _start(self) -> None:
        with self._idle:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="agent-otel-events", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last = -self._interval_s
        while True:
            if not self._queue and not self._closed:
                self._wake.wait(1.0)  # idle: the first record into the empty queue wakes us at once
            self._wake.clear()
            wait = last + self._interval_s - time.monotonic()
            hurry = self._flush_requested or self._closed or len(self._queue) >= self._batch_size
            if wait > 0 and not hurry:
                self._wake.wait(wait)  # batch what arrives meanwhile; a flush or a full batch cuts it short
                self._wake.clear()
            last = time.monotonic()
            self._drain()
            if self._closed and not self._queue:
                return

    def _take(self) -> tuple[list[Record], int, int]:
        """The next batch, its bytes (which stay in queued_bytes until the sinks are done with it), and how
        many of its first records the fast sinks already have (feed_fast)."""
        with self._lock:
            queue, types, sizes = self._queue, self._types, self._sizes
            if len(queue) <= self._batch_size:  # all of it (nearly always): in bulk, ~3x cheaper a record
                batch = list(zip(types, queue, strict=True))
                taken = sum(sizes)
                queue.clear()
                types.clear()
                sizes.clear()
            else:
                batch = []
                taken = 0
                for _ in range(self._batch_size):
                    batch.append((types.popleft(), queue.popleft()))
                    taken += sizes.popleft()
            had = min(self._ahead, len(batch))
            self._ahead -= had
        self._prepare(batch)
        return batch, taken, had

    def _prepare(self, batch: list[Record]) -> None:
        hooks = self._on_take
        if hooks:
            for rtype, payload in batch:
                hook = hooks.get(rtype)
                if hook is not None:
                    try:
                        hook(payload)
                    except Exception as exc:  # the record goes on as it was queued
                        logger.debug("agent-otel: preparing a %s record failed: %s", rtype, exc)

    def _drain(self) -> None:
        with self._idle:
            self._busy = True
            self._flush_requested = False
        try:
            while True:
                batch, taken, had = self._take()
                if not batch:
                    break
                if self._fast:
                    with self._fast_lock:
                        self._current, self._current_fed = batch[had:], False
                fed: list[Record] | None = None
                failed = False
                for sink in self._sinks:
                    records = batch
                    if self._fast and sink in self._fast:
                        if fed is None:
                            fed = self._claim_current()
                        records = fed
                        if not records:
                            continue
                    self._writing = sink
                    try:
                        sink.write(records)
                    except Exception as exc:  # a sink must never take the pipeline down
                        self.sink_errors += 1
                        failed = True
                        if id(sink) not in self._failed_sinks:
                            self._failed_sinks.add(id(sink))
                            logger.warning(
                                "agent-otel: event sink %s failed (%s: %s); its records are dropped and "
                                "counted (agent_otel_telemetry_dropped_total), further failures not logged",
                                type(sink).__name__,
                                type(exc).__name__,
                                exc,
                                exc_info=logger.isEnabledFor(logging.DEBUG),
                            )
                self._writing = None
                # A batch a sink failed on is counted once, as dropped, not also as delivered: every record
                # is either delivered to all sinks or counted (the drill checks the two add up).
                if failed:
                    self._drop("sink_error", len(batch), announce=False)
                else:
                    self.delivered += len(batch)
                with self._lock:
                    self._queued_bytes -= taken  # every sink is done with the batch
                    queued = len(self._queue)
                # What arrived while the batch was written waits for the interval (_run), unless a flush or
                # the close asks for it or a full batch is there: taken at once, it was a second, small
                # batch after nearly every batch, a transaction of the run store each.
                if queued < self._batch_size and not (self._flush_requested or self._closed):
                    break
        finally:
            self._writing = None
            with self._idle:
                self._busy = False
                self._idle.notify_all()

    def flush(self, timeout_s: float = 1.0, *, grace_from: float | None = None) -> bool:
        """Deliver everything queued so far; returns False if that did not finish within the timeout.

        ``grace_from`` (a monotonic time: when the process's exit began): past the timeout, go on waiting
        while the sink being written asks for it (:func:`exit_grace_s`), up to ``grace_from`` plus what
        it asks. A short-lived process's last runs are then in a PostgreSQL store that was still
        connecting when the bound ran out, rather than lost; a sink that asks for nothing (a store in
        its back-off, a file) is waited for only within the timeout."""
        if self._thread is None or not self._thread.is_alive():
            if self._queue and not self._closed:
                self._start()
            elif not self._queue:
                return True
        deadline = time.monotonic() + timeout_s
        granted = 0.0
        with self._idle:
            self._flush_requested = True
        self._wake.set()
        with self._idle:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    granted = self._grace_until(grace_from, granted)
                    remaining = granted - time.monotonic()
                    if remaining <= 0:
                        return False
                self._idle.wait(min(remaining, 0.05))
                self._flush_requested = True
                self._wake.set()
        return True

    def _grace_until(self, grace_from: float | None, granted: float) -> float:
        """Until when the exit may wait for the pipeline past its timeout (see flush): ``grace_from`` plus
        what the sink being written asks for; between two sinks or batches, what an earlier one was
        granted (``granted``); 0 for no wait."""
        if grace_from is None:
            return 0.0
        sink = self._writing
        if sink is None:
            return granted if self._busy or self._queue else 0.0
        grace = exit_grace_s(sink)
        return grace_from + min(grace, _MAX_GRACE_S) if grace > 0 else 0.0

    def close(self, timeout_s: float = 1.0) -> bool:
        """Flush within ``timeout_s``, count what is still queued then as unsent, close the sinks."""
        done = self.stop(timeout_s)
        self.close_sinks()
        return done

    def stop(self, timeout_s: float = 1.0, *, grace_from: float | None = None) -> bool:
        """Flush within ``timeout_s`` (and the exit's grace, see flush) and take no more records; what is
        still queued then is counted as unsent (the fast sinks still get it). The sinks stay open: see
        close_sinks()."""
        done = self.flush(timeout_s, grace_from=grace_from)
        self._closed = True
        self._wake.set()
        with self._lock:
            left = len(self._queue)
            fresh = self._queued_from(self._ahead)
            self._ahead = 0
            self._queue.clear()
            self._types.clear()
            self._queued_bytes -= sum(self._sizes)  # a batch being written counts until it is written
            self._sizes.clear()
        # The sinks are still busy with an earlier batch (a locked run store): the fast sinks take the rest
        # here, so the metrics count every run.
        if self._fast:
            self._write_fast((self._claim_current() or []) + fresh)
        self._drop("unsent_at_shutdown", left, announce=False)
        return done

    def feed_fast(self) -> None:
        """Give the fast sinks (add_sink) the batch being written and what is queued now, ahead of the
        other sinks, which go on with them: at shutdown, the metrics need not wait for a slow sink."""
        if not self._fast:
            return
        with self._lock:
            fresh = self._queued_from(self._ahead)
            self._ahead = len(self._queue)
        self._write_fast((self._claim_current() or []) + fresh)

    def _queued_from(self, index: int) -> list[Record]:
        """The queued records from ``index`` on (called with the lock held)."""
        return list(zip(islice(self._types, index, None), islice(self._queue, index, None), strict=True))

    def _claim_current(self) -> list[Record] | None:
        """What the fast sinks need of the batch being written, for the first thread to ask only."""
        with self._fast_lock:
            if self._current_fed:
                return None
            self._current_fed = True
            return self._current

    def _write_fast(self, records: list[Record]) -> None:
        hooked = self._on_take
        records = [r for r in records if r[0] not in hooked]
        if not records:
            return
        for sink in self._fast:
            try:
                sink.write(records)
            except Exception as exc:
                logger.debug("agent-otel: event sink %s failed at shutdown: %s", type(sink).__name__, exc)

    def close_sinks(self) -> None:
        """Close every sink (a run store makes its last, short try at the records it still holds)."""
        for sink in self._sinks:
            try:
                sink.close()
            except Exception as exc:
                log = logger.debug if id(sink) in self._failed_sinks else logger.warning
                log("agent-otel: closing event sink %s failed: %s", type(sink).__name__, exc)
