"""Getting spans and metrics out without ever holding up the agent, and counting everything that is not.

Why not the SDK's BatchSpanProcessor and PeriodicExportingMetricReader as they are:

* ``force_flush()``/``shutdown()`` export on the *caller's* thread and the OTLP exporters retry inside
  ``export()``, so with the collector down a short script or the CLI blocks 7-40 s at exit.
* A batch whose export failed is discarded after the exporter's retries: a collector restart loses spans.
* A full queue drops spans silently (the SDK's internal metrics, which would show it, double span cost).

:class:`BufferedSpanProcessor` keeps export on its own daemon thread, bounds every wait, and keeps batches
the collector refused for now in a retry buffer bounded in bytes, resending them when it answers again.
For OTLP the buffer holds *encoded* requests (:mod:`agent_otel.otlp`), split to the collector's size limit;
a request the collector rejects for good is dropped at once, and one it keeps refusing while it takes
others is dropped after a few resends, so no batch blocks the ones behind it. Every span that does not
reach the exporter is counted (:mod:`agent_otel.drops`) by reason, including what is still queued or in
flight when the shutdown bound is reached. :class:`NonBlockingMetricExporter` gives the metric reader the
same properties. Both log one line when export starts failing and one when it recovers, instead of one per
attempt.

A fork (a pre-fork server's workers, ``multiprocessing`` with ``fork``, Celery's prefork pool) is handled
here, in one place (:func:`_before_fork` and the two after it): the parent's exports in flight are waited
for (bounded), the child starts with its own queues, locks, connections and drop counts, and gRPC is not
used in a child where it cannot work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from agent_otel import drops as drops_mod
from agent_otel import green, otlp
from agent_otel.drops import DropCounter
from agent_otel.events import ForkHold
from agent_otel.otlp import Batch, Outcome, Reply

logger = logging.getLogger("agent_otel")

THREAD_PREFIX = "agent-otel-"


# ``user:password@`` of an endpoint, as the exporters' errors quote it (gRPC's without the ``//``).
_USERINFO = re.compile(r"[^\s/@:\[\]'\"(]+:[^\s/@'\"]*@")


class _Health:
    """Logs the transition to failing and back once, instead of every failed attempt."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing = False

    def failed(self, detail: str) -> None:
        if not self.failing:
            self.failing = True
            logger.warning(
                "agent-otel: %s export is failing (%s); keeping data in memory and retrying",
                self.what,
                _USERINFO.sub("***@", detail),  # a password in the endpoint's URL is not printed
            )

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            logger.warning("agent-otel: %s export recovered", self.what)


def _run_bounded(fn: Any, timeout_s: float, name: str) -> bool:
    """Run ``fn`` on a daemon thread and wait at most ``timeout_s``; True if it finished."""
    done = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception as exc:
            logger.debug("agent-otel: %s failed: %s", name, exc)
        finally:
            done.set()

    try:
        threading.Thread(target=target, name=THREAD_PREFIX + name, daemon=True).start()
    except RuntimeError:  # at interpreter exit Python 3.12 starts no thread: run it here, unbounded
        target()
        return True
    return done.wait(max(timeout_s, 0.0))


# --- transports: how a batch is sent ---------------------------------------------------------------------


class Transport(Protocol):
    name: str

    def prepare(self, spans: list[ReadableSpan]) -> tuple[list[Batch], int]:
        """Batches ready to send, and the number of spans left out because they can never be sent."""
        ...

    def send(self, batch: Batch) -> Reply: ...

    def split(self, batch: Batch) -> tuple[list[Batch], int] | None:
        """Smaller batches after the collector refused ``batch`` as too large (None: cannot split)."""
        ...

    def estimate(self, spans: Sequence[ReadableSpan]) -> int:
        """Bytes ``spans`` would take in the retry buffer, before preparing them."""
        ...

    def shutdown(self) -> None: ...


def _span_object_bytes(span: ReadableSpan) -> int:
    """Memory a finished span object holds, estimated. Calibrated with tracemalloc on SDK 1.45: a tool
    span with ten attributes is ~2.9 KB (1.2 KB of objects whatever the span carries)."""
    size = 1200
    for key, value in (span.attributes or {}).items():
        size += 120 + len(key) + (len(value) if isinstance(value, str) else 16)
    for event in span.events:
        size += 300 + len(event.name)
        for key, value in (event.attributes or {}).items():
            size += 120 + len(key) + (len(value) if isinstance(value, str) else 16)
    return size


UNSIZED = -1  # Batch.size of span objects not estimated yet (ExporterTransport.prepare)

# Spans waiting for the exporter's thread count against the retry buffer's budget too, estimated from one
# span in SIZE_SAMPLE as it ends (sizing every span would cost the agent's thread ~2.7 us each).
SIZE_SAMPLE = 32
_TYPICAL_SPAN_BYTES = 2900.0  # a tool span with ten attributes, until spans are sampled


class ExporterTransport:
    """An exporter the application passed to ``setup(span_exporters=...)``: it takes span objects, so a
    batch it refused is kept as span objects, accounted at their estimated in-memory size."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._exporter = exporter
        self.name = type(exporter).__name__

    def prepare(self, spans: list[ReadableSpan]) -> tuple[list[Batch], int]:
        # Sized only if it has to wait in the retry buffer (BufferedSpanProcessor._retain): a batch the
        # exporter takes at once, the common case, never walks its spans' attributes for an estimate.
        return [Batch(spans, len(spans), UNSIZED)], 0

    def send(self, batch: Batch) -> Reply:
        try:
            _renew_channel(self._exporter)
            result = self._exporter.export(batch.payload)
        except Exception as exc:
            return Reply(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        if result is SpanExportResult.SUCCESS:
            return Reply(Outcome.SENT)
        return Reply(Outcome.RETRY, "exporter returned FAILURE")

    def split(self, batch: Batch) -> tuple[list[Batch], int] | None:
        return None

    def estimate(self, spans: Sequence[ReadableSpan]) -> int:
        return sum(_span_object_bytes(s) for s in spans)

    @property
    def grpc(self) -> bool:
        return _is_grpc(self._exporter)

    def forked(self, idle: bool) -> None:
        renew_connections(self._exporter, idle)

    def cancel(self) -> None:
        cancel_grpc(self._exporter)

    def shutdown(self) -> None:
        if self.grpc and otlp.grpc_blocked is not None:
            return  # closing its channel would call into gRPC (otlp.GrpcSender.forked)
        self._exporter.shutdown()


# --- the span processor ---------------------------------------------------------------------------------


# A queued span lets go of its empty event and link lists (BufferedSpanProcessor.on_end). The SDK gives each
# span two ``BoundedList``s (a list, a deque and a lock each: six of the dozen objects a finished span holds
# that the garbage collector tracks), and most spans end with both empty. A span waits in the queue long
# enough to be promoted to the collector's oldest generation, and those promotions are what trigger full
# collections, which stall every thread: halving them halves the full collections (27 -> 15 with the
# collector up, 15 -> 8 during the outage, in the 200,000-call drill). An empty tuple is what the SDK's own
# ReadableSpan holds when it has none, and ``events``, ``links`` and the dropped counts read the same; the
# live span keeps its lists. Nothing is done if the SDK's internals differ (they are private).


def _context_items() -> bool:
    """Whether a SpanContext is the tuple whose items its ``span_id`` and ``trace_flags`` properties read
    (OpenTelemetry's API since 1.0): a span's end reads them without two property calls."""
    probe = SpanContext(0x1F, 0x2E, False, TraceFlags(TraceFlags.SAMPLED))
    try:
        return isinstance(probe, tuple) and probe[1] == probe.span_id and probe[3] is probe.trace_flags
    except Exception:  # pragma: no cover - another API layout
        return False


_CONTEXT_ITEMS = _context_items()


# A batch the collector refuses (retryably) this many times while it accepts other requests is poison for
# it (too large for a proxy in front, say), not a sign of an outage: it is dropped, counted.
MAX_STRIKES = 5


class BufferedSpanProcessor(SpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter | Transport,
        drops: DropCounter,
        *,
        max_queue: int = 8192,
        batch_size: int = 512,
        schedule_delay_s: float = 1.0,
        retry_buffer_bytes: int = 32 << 20,
        shutdown_timeout_s: float = 1.0,
        name: str = "spans",
        scrub: Callable[[list[ReadableSpan]], list[ReadableSpan]] | None = None,
    ) -> None:
        # What export does to other libraries' spans first (redaction.library_span_scrubber), here on the
        # export thread, never on the agent's.
        self._scrub = scrub
        self._transport: Transport = (
            ExporterTransport(exporter) if isinstance(exporter, SpanExporter) else exporter
        )
        self._drops = drops
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay = schedule_delay_s
        self._retry_cap = retry_buffer_bytes
        self._shutdown_timeout = shutdown_timeout_s
        self._queue: deque[ReadableSpan] = deque()
        # Spans the queue may hold: max_queue, and no more than the retry buffer's free bytes hold of
        # spans as large as the ones ending lately (but always two batches). Before, 8,192 spans of any size
        # waited here outside every byte budget: 160 MB of spans with large store_args attributes while
        # the exporter's thread waited on a collector that hangs.
        self._queue_limit = max_queue
        self._span_bytes = _TYPICAL_SPAN_BYTES  # running mean, from sampled spans
        self._retry: deque[Batch] = deque()
        self._retry_bytes = 0
        self._inflight: list[Batch] = []  # taken by the worker, outcome not known yet
        # The retry buffer is full while the collector refuses: a new span would only be dropped when the
        # worker next parks the queue, so on_end drops (and counts) it at once. Held in the queue meanwhile,
        # each span is a dozen objects the garbage collector walks and promotes to its oldest generation,
        # which is what triggers the full collections that stall the agent's thread during an outage.
        self._full = False
        self._backoff_until = 0.0
        self._failures = 0
        self._last_success = 0.0
        self._last_refusal = ""
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._busy = False
        self._flush_requested = False
        self._closed = False  # shutdown started: no new spans
        self._abandoned = False  # shutdown bound reached: what was left is counted, nothing more is sent
        self._warned: set[str] = set()
        self._health = _Health(name)
        self._name = name
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.exported = 0
        self._set_queue_limit()
        # Held while a batch is encoded or sent: a fork waits for it (_before_fork), so that no thread of
        # the parent is inside the encoder, an import or the HTTP/gRPC client when the child is made.
        self._send_lock = threading.Lock()
        self._fork_hold = ForkHold()  # _send_lock taken by _before_fork
        _forkable.add(self)

    @property
    def grpc(self) -> bool:
        """Sends over gRPC (see otlp.grpc_blocked)."""
        return bool(getattr(self._transport, "grpc", False))

    def _fork_prepare(self, deadline: float) -> None:
        # Shut down, it sends nothing more: not waited for, but a send it left in flight still counts.
        wait = 0.0 if self._closed else max(deadline - time.monotonic(), 0.0)
        self._fork_hold.take(self._send_lock, wait)

    def _fork_parent(self) -> None:
        self._fork_hold.release(self._send_lock)

    def _fork_cancel(self) -> None:
        cancel = getattr(self._transport, "cancel", None)
        if cancel is not None:
            cancel()

    def _renew_locks(self) -> None:
        """New locks: in a forked child (a thread of the parent may have held them), and in one that gevent
        patched after its fork (agent_otel.green: the fork's were the OS's)."""
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._send_lock = threading.Lock()

    def _fork_child(self) -> None:
        """A forked child exports only its own spans; the queued ones, the retry buffer and the batch in
        flight are the parent's, which delivers them (the child sending them too duplicated them at the
        collector). Its worker thread did not survive the fork, and any lock it held stays held: every
        lock is a new one. It sends on connections of its own (the transport's ``forked``)."""
        idle, self._fork_hold = self._fork_hold.held(), ForkHold()
        self._queue = deque()
        self._retry = deque()
        self._retry_bytes = 0
        self._inflight = []
        self._full = False
        self._backoff_until = 0.0
        self._failures = 0
        self._renew_locks()
        self._busy = False
        self._flush_requested = False
        self._thread = None
        self._pid = os.getpid()
        self.exported = 0
        self._warned = set()
        self._health = _Health(self._name)
        self._set_queue_limit()
        forked = getattr(self._transport, "forked", None)
        if forked is not None:
            forked(idle)

    # --- SpanProcessor ----------------------------------------------------------------------------------

    # (on_start: the base class's, which does nothing and which agent_otel.sampling does not call)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if type(context) is SpanContext and _CONTEXT_ITEMS:  # its properties read these items (per span)
            flags, span_id = context[3], context[1]
        else:
            flags, span_id = context.trace_flags, context.span_id
        if self._closed or not flags & TraceFlags.SAMPLED:
            return
        if self._full:
            self._drops.add("spans", "retry_buffer_full")
            return
        # Span ids are random: one span in SIZE_SAMPLE, whatever the queue's length (a full queue stays at
        # one length, which sampled by length would size every span).
        if not span_id % SIZE_SAMPLE:
            self._sample(span)
        queue = self._queue
        queued = len(queue)
        if queued >= self._queue_limit:
            dropped = 0
            try:
                while len(queue) >= self._queue_limit:
                    queue.popleft()
                    dropped += 1
            except IndexError:
                pass
            # Beyond max_queue, or beyond the retry buffer's room: the budget that bounded them says why.
            reason = "queue_full" if self._queue_limit >= self._max_queue else "retry_buffer_full"
            self._drops.add("spans", reason, dropped)
        try:  # its empty event and link lists go (see above)
            events, links = span._events, span._links  # type: ignore[attr-defined]
            if not events._dq and not events.dropped:  # BoundedList's deque: its __len__ is Python code
                span._events = ()  # type: ignore[attr-defined]
            if not links._dq and not links.dropped:
                span._links = ()  # type: ignore[attr-defined]
        except AttributeError:
            pass
        queue.append(span)
        if self._thread is None:  # not started yet, or forked (_fork_child): no getpid() per span
            self._start()
        elif len(queue) == self._batch_size:
            self._wake.set()

    def _sample(self, span: ReadableSpan) -> None:
        try:
            size = _span_object_bytes(span)
        except Exception:  # an attribute value of an unexpected type: keep the estimate as it is
            return
        self._span_bytes += (size - self._span_bytes) / 8
        self._set_queue_limit()

    def _set_queue_limit(self) -> None:
        room = max(self._retry_cap - self._retry_bytes, 0)
        floor = 2 * self._batch_size  # a batch being filled while the worker takes the one before
        self._queue_limit = min(self._max_queue, max(floor, int(room / self._span_bytes)))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        timeout_s = (
            min(timeout_millis / 1000, self._shutdown_timeout) if timeout_millis else self._shutdown_timeout
        )
        return self._flush(timeout_s)

    def shutdown(self) -> None:
        if self._closed:
            return
        deadline = time.monotonic() + self._shutdown_timeout
        self._flush(self._shutdown_timeout)
        self._closed = True
        self.abandon()
        _run_bounded(self._transport.shutdown, deadline - time.monotonic(), f"{self._name}-exporter-shutdown")

    def abandon(self) -> int:
        """Give up on everything not yet delivered, count it (unsent at shutdown) and return how many.

        Called when the shutdown bound is reached, from whatever thread is shutting down: it never waits
        for the worker, which may be stuck in a request to a collector that does not answer.
        """
        with self._state:
            self._closed = True
            if self._abandoned:
                return 0
            self._abandoned = True
            pending = self.pending
            self._queue.clear()
            self._retry.clear()
            self._retry_bytes = 0
            self._inflight = []
            self._state.notify_all()
        self._wake.set()
        self._drops.add("spans", "unsent_at_shutdown", pending, announce=False)
        return pending

    # --- worker -----------------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._state:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name=THREAD_PREFIX + self._name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._abandoned:
            self._wake.wait(self._delay)
            self._wake.clear()
            with self._state:
                self._busy = True
            try:
                self._export_pending()
                self._set_queue_limit()  # the retry buffer's free bytes changed
            except Exception as exc:  # never let the worker die
                logger.debug("agent-otel: span export loop error: %s", exc)
            finally:
                with self._state:
                    self._busy = False
                    self._flush_requested = False
                    self._state.notify_all()

    def _export_pending(self) -> None:
        if otlp.grpc_blocked is not None and self.grpc:
            self._drop_unsendable()
            return
        if self._retry and time.monotonic() < self._backoff_until and not self._flush_requested:
            # The collector refused recently: keep queueing, but don't hammer it.
            self._park_queue()
            return
        # Resend what the collector refused before, each batch once per round, oldest first. A refused
        # batch goes to the back, and after a refusal one more batch is tried: if the collector takes it,
        # it is up and only that batch is refused, which must not hold up the others. Two refusals in a
        # row end the round (the collector is down or overloaded).
        refusals = 0
        for _ in range(len(self._retry)):
            with self._state:
                if not self._retry or self._abandoned:
                    return
                batch = self._retry.popleft()
                self._retry_bytes -= batch.size
            refusals = 0 if self._deliver(batch) else refusals + 1
            if refusals >= 2:
                break
        queue = self._queue
        while refusals < 2 and queue and not self._abandoned:
            spans = self._take(queue)
            if not spans:
                break
            batches = self._prepare(spans)
            for i, batch in enumerate(batches):
                refusals = 0 if self._deliver(batch) else refusals + 1
                if refusals >= 2:
                    for rest in batches[i + 1 :]:
                        self._retain(rest)
                    break
        if refusals and not self._abandoned:
            # The round ended on a refusal: the collector is down or overloaded (one batch refused
            # among accepted ones is that batch's problem, not an export failure worth a warning).
            self._health.failed(self._last_refusal)
            self._park_queue()

    def _drop_unsendable(self) -> None:
        """gRPC cannot be used in this forked child (otlp.grpc_blocked): what would go out is counted as
        rejected, without encoding it, and said once (_warn_grpc_blocked)."""
        with self._state:
            n = len(self._queue) + sum(b.count for b in self._retry)
            self._queue.clear()
            self._retry.clear()
            self._retry_bytes = 0
        if n:
            _warn_grpc_blocked()
            self._drops.add("spans", "rejected", n, announce=False)

    def _take(self, queue: deque[ReadableSpan]) -> list[ReadableSpan]:
        spans: list[ReadableSpan] = []
        try:
            for _ in range(self._batch_size):
                spans.append(queue.popleft())
        except IndexError:
            pass
        return spans

    def _prepare(self, spans: list[ReadableSpan]) -> list[Batch]:
        try:
            with self._send_lock:
                if self._scrub is not None:
                    spans = self._scrub(spans)
                _encoding.armed, _encoding.left_out = True, False
                try:
                    batches, too_large = self._transport.prepare(spans)
                    encoded = not _encoding.left_out
                except Exception:
                    encoded = False
                finally:
                    _encoding.armed = False
                if not encoded:
                    batches, too_large = self._transport.prepare(self._encodable(spans))
        except Exception as exc:  # a span the encoder cannot take must not stop every later one
            self._drop_once("spans", "unencodable", len(spans), f"{type(exc).__name__}: {exc}")
            return []
        if too_large:
            self._drop_once("spans", "too_large", too_large, "a span alone exceeds exporter.max_request_mb")
        return batches

    def _encodable(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        """A batch the encoder refused, or in which it left out an attribute: its spans with their text
        made encodable (otlp.encodable_span). A lone surrogate in one span's name cost the whole batch,
        every other run's spans in it too; in an attribute's value, that attribute. A span the encoder
        still refuses on its own is dropped and counted, alone."""
        try:
            copies = [otlp.encodable_span(span) for span in spans]
            self._transport.prepare(copies)
            return copies
        except Exception:
            pass
        kept: list[ReadableSpan] = []
        for span in spans:
            try:
                copy = otlp.encodable_span(span)
                self._transport.prepare([copy])
            except Exception as exc:
                self._drop_once("spans", "unencodable", 1, f"{type(exc).__name__}: {exc}")
                continue
            kept.append(copy)
        return kept

    def _park_queue(self) -> None:
        # While the collector refuses, spans wait in the retry buffer (bounded in bytes) rather than the
        # queue (bounded in count). When the buffer is full, the newest spans are dropped before they are
        # encoded: an outage then costs no CPU beyond the buffer's worth of encoding.
        while len(self._queue) >= self._batch_size and not self._abandoned:
            spans = self._take(self._queue)
            if self._retry_bytes + self._transport.estimate(spans) > self._retry_cap:
                self._full = True  # until a batch leaves the buffer (_deliver)
                self._drops.add("spans", "retry_buffer_full", len(spans))
                continue
            for batch in self._prepare(spans):
                self._retain(batch)

    def _deliver(self, batch: Batch) -> bool:
        """Send one batch and settle it; False when the collector refused and this round should stop."""
        with self._state:
            if self._abandoned:
                return False
            self._inflight = [batch]
        try:
            with self._send_lock:
                reply = self._transport.send(batch)
        except Exception as exc:  # a transport must not kill the worker
            reply = Reply(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        with self._state:
            self._inflight = []
            if self._abandoned:
                return False  # counted by abandon()
        outcome = reply.outcome
        if outcome is not Outcome.RETRY:
            self._full = False  # the collector answered and this batch is settled: room, or soon
        if outcome is Outcome.SENT:
            self.exported += batch.count - reply.rejected
            if reply.rejected:
                self._drop_once("spans", "rejected", reply.rejected, f"partial success: {reply.detail}")
            self._collector_answered(now)
            return True
        if outcome is Outcome.REJECTED:
            self._drop_once("spans", "rejected", batch.count, reply.detail)
            self._collector_answered(now)
            return True
        if outcome is Outcome.TOO_LARGE:
            parts = self._transport.split(batch)
            if parts is None:
                self._drop_once("spans", "too_large", batch.count, reply.detail)
                return True
            smaller, too_large = parts
            if too_large:
                self._drop_once("spans", "too_large", too_large, reply.detail)
            for i, part in enumerate(smaller):
                if not self._deliver(part):
                    for rest in smaller[i + 1 :]:
                        self._retain(rest)
                    return False
            return True
        if reply.detail == otlp.FORK_CANCELLED:  # not the collector's refusal: sent again, no back-off
            self._retain(batch)
            return True
        # Refused for now: back off, keep the batch, and stop this round.
        self._failures += 1
        backoff = min(0.25 * 2 ** min(self._failures, 5), 5.0)
        if reply.retry_after_s is not None:
            backoff = max(backoff, min(reply.retry_after_s, 30.0))
        self._backoff_until = now + backoff
        self._last_refusal = reply.detail
        if batch.failed_at == 0.0:
            batch.failed_at = now
        elif self._last_success > batch.failed_at:
            batch.strikes += 1
            if batch.strikes >= MAX_STRIKES:
                self._drop_once("spans", "retries_exhausted", batch.count, reply.detail)
                self._full = False  # it left the buffer
                return False
        self._retain(batch)
        return False

    def _collector_answered(self, now: float) -> None:
        self._failures = 0
        self._last_success = now
        self._health.succeeded()

    def _retain(self, batch: Batch) -> None:
        if batch.size == UNSIZED:
            batch.size = self._transport.estimate(batch.payload)
        with self._state:
            if self._abandoned:
                self._drops.add("spans", "unsent_at_shutdown", batch.count, announce=False)
                return
            if self._retry and self._retry_bytes + batch.size > self._retry_cap:
                full = self._full = True
            else:
                full = False
                self._retry.append(batch)
                self._retry_bytes += batch.size
        if full:
            self._drops.add("spans", "retry_buffer_full", batch.count)

    def _drop_once(self, signal: str, reason: str, n: int, detail: str) -> None:
        """Count a drop; the first of each reason is logged with the collector's own words."""
        if reason not in self._warned:
            self._warned.add(reason)
            logger.warning(
                "agent-otel: %s dropped %d %s (%s): %s; further drops are counted in "
                "agent_otel_telemetry_dropped_total",
                self._transport.name,
                n,
                signal,
                reason.replace("_", " "),
                detail,
            )
        self._drops.add(signal, reason, n, announce=False)

    def _flush(self, timeout_s: float) -> bool:
        if self._closed:
            return not self.pending
        if self._thread is None or not self._thread.is_alive():
            if not self._queue and not self._retry:
                return True
            self._start()
        deadline = time.monotonic() + timeout_s
        with self._state:
            self._flush_requested = True
        self._wake.set()
        with self._state:
            while self._queue or self._retry or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if not self._busy and (self._queue or self._retry):
                    self._flush_requested = True
                    self._wake.set()
                self._state.wait(min(remaining, 0.05))
                if not self._busy and self._retry and not self._queue and self._failures:
                    # Export is failing: one more attempt was made; don't spin until the deadline.
                    return False
        return True

    @property
    def pending(self) -> int:
        """Spans accepted and not yet delivered or dropped."""
        retained = sum(b.count for b in list(self._retry))
        return len(self._queue) + retained + sum(b.count for b in list(self._inflight))

    @property
    def retry_bytes(self) -> int:
        return self._retry_bytes


def _is_grpc(exporter: Any) -> bool:
    """An SDK exporter (or the application's) that sends over gRPC."""
    return ".grpc" in type(exporter).__module__ or hasattr(exporter, "_initialize_channel_and_stub")


def renew_connections(exporter: Any, idle: bool) -> None:
    """In a forked child: an SDK OTLP exporter's connections of its own. HTTP: new connection pools
    (otlp.renew_connections). gRPC: a new channel at its next export (``_renew_channel``); the parent's is
    the parent's, and gRPC closes it in the child when its fork support is on."""
    transport = getattr(getattr(exporter, "_client", None), "_transport", None)
    for client in (
        getattr(transport, "_session", None),  # the requests transport (the default)
        getattr(transport, "_pool", None),  # the urllib3 one
        getattr(exporter, "_session", None),  # SDKs before the transport layer
    ):
        if client is not None:
            otlp.renew_connections(client, idle)
    if _is_grpc(exporter) and getattr(exporter, "_channel", None) is not None:
        exporter._agent_otel_renew_channel = True


def cancel_grpc(exporter: Any) -> None:
    """Before a fork with gRPC's fork handling on (see _before_fork): end an SDK gRPC exporter's call in
    flight by closing its channel, and its retries by setting its shutdown event until the fork is over
    (resume_grpc); the batch fails and is sent again, on a new channel (_renew_channel)."""
    if not _is_grpc(exporter):
        return
    event = getattr(exporter, "_shutdown_in_progress", None)
    shut = getattr(exporter, "_shutdown", False)
    if isinstance(event, threading.Event) and not event.is_set() and not shut:
        event.set()
        exporter._agent_otel_resume = True
    channel = getattr(exporter, "_channel", None)
    if channel is not None:
        exporter._agent_otel_renew_channel = "closed"  # in the parent, closed here: freed once replaced
        with contextlib.suppress(Exception):
            channel.close()


def resume_grpc(exporter: Any) -> None:
    if getattr(exporter, "_agent_otel_resume", False):
        exporter._agent_otel_resume = False
        exporter._shutdown_in_progress.clear()


def _renew_channel(exporter: Any) -> None:
    """A new channel for an SDK gRPC exporter in a forked child, before its first export there (not in the
    fork hook: making a channel is work the fork of a child that never exports need not pay)."""
    renew = getattr(exporter, "_agent_otel_renew_channel", False)
    if not renew:
        return
    exporter._agent_otel_renew_channel = False
    if renew is True:  # the parent's, in a child: never closed nor freed (see otlp.GrpcSender.forked)
        otlp.keep_inherited(getattr(exporter, "_channel", None))
    green.prepare_grpc()  # a child gevent patched after its fork (gunicorn -k gevent --preload)
    try:
        exporter._initialize_channel_and_stub()
    except Exception as exc:
        logger.debug("agent-otel: cannot open a new gRPC channel after a fork: %s", exc)


class NonBlockingMetricExporter(MetricExporter):
    """Hands metric batches to a sender thread so readers' flush/shutdown never wait on the network.

    With cumulative temporality (the default) a newer batch holds every count of an older one, so once a
    send has failed only the newest batch is worth sending: older ones are counted as dropped and skipped.
    Sending the failed one again first delivered stale counts after an outage and, for a batch the
    collector rejects for good, held every later one up until ``max_pending`` had queued behind it. With
    delta temporality each batch holds its own increments, so batches go oldest first and only those
    beyond ``max_pending`` are dropped.
    """

    def __init__(
        self,
        exporter: MetricExporter,
        drops: DropCounter,
        *,
        max_pending: int = 8,
        shutdown_timeout_s: float = 1.0,
    ) -> None:
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
        )
        self._exporter = exporter
        self._drops = drops
        self._pending: deque[MetricsData] = deque()
        self._max_pending = max_pending
        self._shutdown_timeout = shutdown_timeout_s
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._health = _Health("metrics")
        self._failures = 0
        self._thread: threading.Thread | None = None
        self._cumulative = all(
            t is AggregationTemporality.CUMULATIVE for t in exporter._preferred_temporality.values()
        )
        # Told of each batch the reader collected (Metrics.collected: a new series is out, see there).
        self.on_export: Callable[[], None] | None = None
        self._send_lock = threading.Lock()  # held while the SDK's exporter encodes and sends: see _forkable
        self._fork_hold = ForkHold()
        self.grpc = _is_grpc(exporter)
        _forkable.add(self)

    def _fork_prepare(self, deadline: float) -> None:
        # Shut down, it sends nothing more: not waited for, but a send it left in flight still counts.
        wait = 0.0 if self._closed else max(deadline - time.monotonic(), 0.0)
        self._fork_hold.take(self._send_lock, wait)

    def _fork_parent(self) -> None:
        self._fork_hold.release(self._send_lock)
        resume_grpc(self._exporter)

    def _fork_cancel(self) -> None:
        cancel_grpc(self._exporter)

    def _renew_locks(self) -> None:
        """New locks: in a forked child, and in one gevent patched after its fork (agent_otel.green)."""
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()

    def _fork_child(self) -> None:
        """A forked child sends only its own batches; the pending ones are the parent's (its resource, its
        counts), which the parent sends. Its sender thread did not survive the fork, and may have held the
        condition's lock: the child's first export then waited for it forever (a pre-fork worker hung in
        its first collection)."""
        idle, self._fork_hold = self._fork_hold.held(), ForkHold()
        self._renew_locks()
        self._pending = deque()
        self._busy = False
        self._failures = 0
        self._thread = None
        self._health = _Health("metrics")
        resume_grpc(self._exporter)
        renew_connections(self._exporter, idle)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self.on_export is not None:
            with contextlib.suppress(Exception):
                self.on_export()
        with self._cond:
            if self._closed:
                return MetricExportResult.FAILURE
            self._pending.append(metrics_data)
            while len(self._pending) > self._max_pending:
                self._pending.popleft()
                self._drops.add("metric_batches", "collector_unavailable")
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._loop, name=THREAD_PREFIX + "metrics", daemon=True)
                try:
                    thread.start()
                    self._thread = thread
                except RuntimeError:  # interpreter exit on Python 3.12 (a forked child's first export):
                    pass  # the batch stays pending and shutdown counts it as unsent
            self._cond.notify_all()
        return MetricExportResult.SUCCESS

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait(1.0)
                if not self._pending and self._closed:
                    return
                if self._failures and self._cumulative and len(self._pending) > 1:
                    superseded = len(self._pending) - 1
                    self._pending = deque([self._pending[-1]])
                    self._drops.add("metric_batches", "collector_unavailable", superseded)
                batch = self._pending[0]
                self._busy = True
            if self.grpc and otlp.grpc_blocked is not None:
                self._drop_unsendable(batch)
                continue
            thread = threading.current_thread().name
            _last_exporter_log.pop(thread, None)
            try:
                with self._send_lock:
                    _renew_channel(self._exporter)
                    result = self._exporter.export(batch)
            except Exception as exc:
                result = MetricExportResult.FAILURE
                detail = f"{type(exc).__name__}: {exc}"
            else:
                detail = _last_exporter_log.pop(thread, None) or "exporter returned FAILURE"
            with self._cond:
                self._busy = False
                if result is MetricExportResult.SUCCESS:
                    if self._pending and self._pending[0] is batch:
                        self._pending.popleft()
                    self._failures = 0
                    self._health.succeeded()
                else:
                    self._failures += 1
                    self._health.failed(detail)
                self._cond.notify_all()
                if result is not MetricExportResult.SUCCESS:
                    self._cond.wait(min(0.25 * 2 ** min(self._failures, 5), 5.0))

    def _drop_unsendable(self, batch: MetricsData) -> None:
        """See BufferedSpanProcessor._drop_unsendable."""
        with self._cond:
            self._busy = False
            if self._pending and self._pending[0] is batch:
                self._pending.popleft()
            self._cond.notify_all()
        _warn_grpc_blocked()
        self._drops.add("metric_batches", "rejected", announce=False)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        deadline = time.monotonic() + min(timeout_millis / 1000, self._shutdown_timeout)
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._failures and not self._busy):
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        deadline = time.monotonic() + self._shutdown_timeout
        self.force_flush(self._shutdown_timeout * 1000)
        self.abandon()
        if self.grpc and otlp.grpc_blocked is not None:
            return  # closing its channel would call into gRPC (otlp.GrpcSender.forked)
        _run_bounded(self._exporter.shutdown, deadline - time.monotonic(), "metrics-exporter-shutdown")

    def abandon(self) -> int:
        """Count the batches not delivered (the one in flight included) and stop; never waits."""
        with self._cond:
            self._closed = True
            pending = len(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        self._drops.add("metric_batches", "unsent_at_shutdown", pending, announce=False)
        return pending


# The first warning an SDK exporter logged in each of our threads during an export: the only place the
# SDK's metric exporter says *why* an export failed (it returns a bare FAILURE), so _Health can say it.
_last_exporter_log: dict[str, str] = {}


class QuietExporterLogs(logging.Filter):
    """Silences the OTLP exporters' per-attempt warnings when *our* threads export; _Health reports once."""

    def filter(self, record: logging.LogRecord) -> bool:
        thread = record.threadName or ""
        if not thread.startswith(THREAD_PREFIX):
            return True
        with contextlib.suppress(Exception):  # a record whose arguments do not format
            _last_exporter_log.setdefault(thread, record.getMessage()[:500])
        return False


# Armed while a span processor encodes a batch (BufferedSpanProcessor._prepare): see EncoderLog.
_encoding = threading.local()


class EncoderLog(logging.Filter):
    """The OTLP encoder leaves out an attribute whose value it cannot encode (a lone surrogate) and logs
    the error with its traceback, for every span and export. While agent-otel encodes spans, that is
    noted instead, and the batch is encoded again with its text made encodable."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_encoding, "armed", False):
            _encoding.left_out = True
            return False
        return True


_ENCODER_LOGGER = "opentelemetry.exporter.otlp.proto.common._internal"

_QUIET_LOGGERS: Sequence[str] = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http",
)


def quiet_exporter_logs() -> None:
    for name in _QUIET_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, QuietExporterLogs) for f in log.filters):
            log.addFilter(QuietExporterLogs())
    log = logging.getLogger(_ENCODER_LOGGER)
    if not any(isinstance(f, EncoderLog) for f in log.filters):
        log.addFilter(EncoderLog())


# --- fork ------------------------------------------------------------------------------------------------

# At most this long a fork waits for the exports in flight (every span processor's and metric exporter's
# together; the run store's sink waits on its own, agent_otel.store.sink._FORK_WAIT_S).
FORK_WAIT_S = 1.0
CANCEL_WAIT_S = 0.5  # then, for gRPC calls ended because gRPC's own fork handling is on

# The span processors and metric exporters of this process, for the fork hooks below.
_forkable: weakref.WeakSet[BufferedSpanProcessor | NonBlockingMetricExporter] = weakref.WeakSet()
_grpc_warned = False


def _before_fork() -> None:
    """Take every exporter's send lock, waiting at most FORK_WAIT_S in all for the batches being encoded
    and sent. Without it the child inherited a lock or an HTTP/gRPC client a thread of the parent was
    using, copied mid-use: its exports waited on that lock or connection forever (about 1 fork in 20 of
    a busy process left a worker whose spans and metrics all went unsent), and a gRPC call in flight
    made gRPC skip its own fork handling. A send that takes longer is left running: its exporter is not
    idle, and the child does not touch what that send was using (see _after_fork_in_child)."""
    deadline = time.monotonic() + FORK_WAIT_S
    objs = list(_forkable)
    for obj in objs:
        with contextlib.suppress(Exception):  # a fork never fails because of telemetry
            obj._fork_prepare(deadline)
    stuck = [obj for obj in objs if obj.grpc and not obj._fork_hold.held()]
    if stuck and not otlp.grpc_fork_support_off():
        # A gRPC call still in flight: gRPC then skips its fork handling ("Other threads are currently
        # calling into gRPC, skipping fork() handlers") and the child cannot use gRPC at all (with
        # GRPC_ENABLE_FORK_SUPPORT=1 its own handler even waits for that call forever in the child). The
        # calls are ended now (CANCELLED: their batches are kept and sent again after the fork, so one
        # the collector had taken arrives twice) and the locks taken once they return.
        deadline = time.monotonic() + CANCEL_WAIT_S
        for obj in stuck:
            with contextlib.suppress(Exception):
                obj._fork_cancel()
        for obj in stuck:
            with contextlib.suppress(Exception):
                obj._fork_prepare(deadline)


def _after_fork_in_parent() -> None:
    for obj in list(_forkable):
        with contextlib.suppress(Exception):
            obj._fork_parent()


def _after_fork_in_child() -> None:
    """The child's own exports: gRPC blocked where it cannot work, drop counts from zero, then each
    exporter's own state (``_fork_child``)."""
    global _grpc_warned
    objs = list(_forkable)
    try:
        _grpc_warned = False
        if "grpc" in sys.modules and otlp.grpc_blocked is None:
            if otlp.grpc_fork_support_off():
                otlp.block_grpc(
                    "gRPC's fork support is off (GRPC_ENABLE_FORK_SUPPORT="
                    f"{os.environ.get('GRPC_ENABLE_FORK_SUPPORT')}) and this process was forked from one "
                    "that used gRPC"
                )
            elif any(obj.grpc and not obj._fork_hold.held() for obj in objs):
                otlp.block_grpc(
                    "this process was forked while its parent was sending over gRPC (a fork waits at most "
                    f"{FORK_WAIT_S:g} s for a send to finish)"
                )
        drops_mod.forget_in_child()
    except Exception:  # telemetry never breaks the child
        pass
    for obj in objs:
        with contextlib.suppress(Exception):
            obj._fork_child()


def _warn_grpc_blocked() -> None:
    """The one warning of a child where gRPC cannot be used; its drops are counted without another."""
    global _grpc_warned
    if _grpc_warned:
        return
    _grpc_warned = True
    logger.warning(
        "agent-otel: spans and metrics of this process are not sent: %s, and gRPC calls in such a child "
        "hang or abort. They are counted in agent_otel_telemetry_dropped_total (rejected). Export over "
        "OTLP/HTTP (exporter.protocol: http/protobuf), or leave GRPC_ENABLE_FORK_SUPPORT unset",
        otlp.grpc_blocked,
    )


def _after_patch() -> None:
    """gevent patched this child after its fork: the locks the fork made are the OS's (agent_otel.green).
    No exporter's thread runs yet (a fork leaves none); one that does keeps what it has."""
    for obj in list(_forkable):
        if obj._thread is None:
            with contextlib.suppress(Exception):
                obj._renew_locks()


green.after_patch(_after_patch)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
