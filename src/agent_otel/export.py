"""Getting spans and metrics out without ever holding up the agent.

Why not the SDK's BatchSpanProcessor and PeriodicExportingMetricReader as they are:

* ``force_flush()``/``shutdown()`` export on the *caller's* thread and the OTLP exporters retry inside
  ``export()``, so with the collector down a short script or the CLI blocks 7-40 s at exit.
* A batch whose export failed is discarded after the exporter's retries: a collector restart loses spans.
* A full queue drops spans silently (the SDK's internal metrics, which would show it, double span cost).

:class:`BufferedSpanProcessor` keeps export on its own daemon thread, bounds every wait, keeps failed
batches in a byte-bounded retry buffer and resends them when the collector answers again, and counts
every span it drops. :class:`NonBlockingMetricExporter` gives the metric reader the same properties.
Both log one line when export starts failing and one when it recovers, instead of one per attempt.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agent_otel.events import after_fork_in_child

logger = logging.getLogger("agent_otel")

THREAD_PREFIX = "agent-otel-"


class DropCounter:
    """Counts of telemetry dropped, by (signal, reason); read by the agent_otel_telemetry_dropped metric."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._announced: set[tuple[str, str]] = set()

    def add(self, signal: str, reason: str, n: int = 1, announce: bool = True) -> None:
        """Count ``n`` dropped items; the first drop of a kind is logged once (unless at shutdown, where
        the summary line says it)."""
        key = (signal, reason)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n
            first = key not in self._announced
            self._announced.add(key)
        if first and announce:
            logger.warning(
                "agent-otel: dropping %s (%s); counted in agent_otel_telemetry_dropped_total, "
                "summary at shutdown",
                signal,
                reason.replace("_", " "),
            )

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def summary(self) -> str | None:
        counts = self.snapshot()
        if not counts:
            return None
        parts = ", ".join(
            f"{n} {signal} ({reason.replace('_', ' ')})" for (signal, reason), n in counts.items()
        )
        return f"agent-otel: dropped {parts}"


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
                detail,
            )

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            logger.warning("agent-otel: %s export recovered", self.what)


def _estimate_bytes(span: ReadableSpan) -> int:
    size = 300
    for key, value in (span.attributes or {}).items():
        size += len(key) + (len(value) if isinstance(value, str) else 16)
    for event in span.events:
        size += 64 + len(event.name)
        for key, value in (event.attributes or {}).items():
            size += len(key) + (len(value) if isinstance(value, str) else 16)
    return size


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

    threading.Thread(target=target, name=THREAD_PREFIX + name, daemon=True).start()
    return done.wait(max(timeout_s, 0.0))


class BufferedSpanProcessor(SpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter,
        drops: DropCounter,
        *,
        max_queue: int = 8192,
        batch_size: int = 512,
        schedule_delay_s: float = 1.0,
        retry_buffer_bytes: int = 32 << 20,
        shutdown_timeout_s: float = 1.0,
        name: str = "spans",
    ) -> None:
        self._exporter = exporter
        self._drops = drops
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay = schedule_delay_s
        self._retry_cap = retry_buffer_bytes
        self._shutdown_timeout = shutdown_timeout_s
        self._queue: deque[ReadableSpan] = deque()
        self._retry: deque[tuple[list[ReadableSpan], int]] = deque()
        self._retry_bytes = 0
        self._backoff_until = 0.0
        self._failures = 0
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._busy = False
        self._flush_requested = False
        self._shutdown = False
        self._health = _Health(name)
        self._name = name
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.exported = 0
        after_fork_in_child(self, "_after_fork")

    def _after_fork(self) -> None:
        """A forked child exports only its own spans; the queued ones are the parent's."""
        self._queue = deque()
        self._retry = deque()
        self._retry_bytes = 0
        self._wake = threading.Event()
        self._state = threading.Condition()
        self._busy = False
        self._thread = None
        self._pid = os.getpid()

    # --- SpanProcessor ----------------------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self._shutdown or not span.context.trace_flags.sampled:
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            try:
                queue.popleft()
            except IndexError:
                pass
            else:
                self._drops.add("spans", "queue_full")
        queue.append(span)
        if self._thread is None or self._pid != os.getpid():
            self._start()
        elif len(queue) == self._batch_size:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        timeout_s = (
            min(timeout_millis / 1000, self._shutdown_timeout) if timeout_millis else self._shutdown_timeout
        )
        return self._flush(timeout_s)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        deadline = time.monotonic() + self._shutdown_timeout
        self._flush(self._shutdown_timeout)
        self._shutdown = True
        self._wake.set()
        pending = len(self._queue) + sum(len(b) for b, _ in self._retry)
        if pending:
            self._drops.add("spans", "unsent_at_shutdown", pending, announce=False)
        _run_bounded(self._exporter.shutdown, deadline - time.monotonic(), f"{self._name}-exporter-shutdown")

    # --- worker -----------------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._state:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name=THREAD_PREFIX + self._name, daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._shutdown:
            self._wake.wait(self._delay)
            self._wake.clear()
            with self._state:
                self._busy = True
            try:
                self._export_pending()
            except Exception as exc:  # never let the worker die
                logger.debug("agent-otel: span export loop error: %s", exc)
            finally:
                with self._state:
                    self._busy = False
                    self._flush_requested = False
                    self._state.notify_all()

    def _export_pending(self) -> None:
        if self._retry and time.monotonic() < self._backoff_until and not self._flush_requested:
            # Collector known to be down: keep queueing, but don't hammer it.
            self._move_queue_to_retry_if_full()
            return
        while self._retry:
            batch, size = self._retry[0]
            if not self._send(batch):
                self._move_queue_to_retry_if_full()
                return
            self._retry.popleft()
            self._retry_bytes -= size
        queue = self._queue
        while queue:
            batch: list[ReadableSpan] = []
            try:
                for _ in range(self._batch_size):
                    batch.append(queue.popleft())
            except IndexError:
                pass
            if not self._send(batch):
                self._keep_for_retry(batch)
                self._move_queue_to_retry_if_full()
                return

    def _move_queue_to_retry_if_full(self) -> None:
        # While the collector is down, spans wait in the retry buffer (byte-bounded) rather than the
        # count-bounded queue, so a long outage costs memory up to retry_buffer_mb, not dropped spans.
        while len(self._queue) >= self._batch_size:
            batch = [self._queue.popleft() for _ in range(self._batch_size)]
            self._keep_for_retry(batch)

    def _send(self, batch: list[ReadableSpan]) -> bool:
        try:
            result = self._exporter.export(batch)
        except Exception as exc:
            result = SpanExportResult.FAILURE
            detail = f"{type(exc).__name__}: {exc}"
        else:
            detail = "exporter returned FAILURE"
        if result is SpanExportResult.SUCCESS:
            self.exported += len(batch)
            self._failures = 0
            self._health.succeeded()
            return True
        self._failures += 1
        self._backoff_until = time.monotonic() + min(0.25 * 2 ** min(self._failures, 5), 5.0)
        self._health.failed(detail)
        return False

    def _keep_for_retry(self, batch: list[ReadableSpan]) -> None:
        size = sum(_estimate_bytes(s) for s in batch)
        self._retry.append((batch, size))
        self._retry_bytes += size
        while self._retry_bytes > self._retry_cap and len(self._retry) > 1:
            dropped, dropped_size = self._retry.popleft()
            self._retry_bytes -= dropped_size
            self._drops.add("spans", "retry_buffer_full", len(dropped))

    def _flush(self, timeout_s: float) -> bool:
        if self._shutdown:
            return True
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
        return len(self._queue) + sum(len(b) for b, _ in self._retry)


class NonBlockingMetricExporter(MetricExporter):
    """Hands metric batches to a sender thread so readers' flush/shutdown never wait on the network.

    Cumulative temporality (the default) means a newer batch supersedes an older one, so while the
    collector is down only the newest few batches are kept and older ones are counted as dropped.
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

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        with self._cond:
            if self._closed:
                return MetricExportResult.FAILURE
            self._pending.append(metrics_data)
            while len(self._pending) > self._max_pending:
                self._pending.popleft()
                self._drops.add("metric_batches", "collector_unavailable")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name=THREAD_PREFIX + "metrics", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return MetricExportResult.SUCCESS

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait(1.0)
                if not self._pending and self._closed:
                    return
                batch = self._pending[0]
                self._busy = True
            try:
                result = self._exporter.export(batch)
            except Exception as exc:
                result = MetricExportResult.FAILURE
                detail = f"{type(exc).__name__}: {exc}"
            else:
                detail = "exporter returned FAILURE"
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
        with self._cond:
            self._closed = True
            if self._pending:
                self._drops.add("metric_batches", "unsent_at_shutdown", len(self._pending), announce=False)
                self._pending.clear()
            self._cond.notify_all()
        _run_bounded(self._exporter.shutdown, deadline - time.monotonic(), "metrics-exporter-shutdown")


class QuietExporterLogs(logging.Filter):
    """Silences the OTLP exporters' per-attempt warnings when *our* threads export; _Health reports once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(THREAD_PREFIX)


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
