"""Counting what agent-otel drops, and saying it once.

Every span, metric batch, event-pipeline record and store record that does not reach its destination is
counted here by ``(signal, reason)``: the ``agent_otel_telemetry_dropped_total`` metric reads the counts
while the process lives, and ``shutdown()`` sums them up in one WARNING line at exit.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping

logger = logging.getLogger("agent_otel")

# How the exit summary names each signal of agent_otel_telemetry_dropped_total (singular, plural).
_NOUNS = {
    "spans": ("span", "spans"),
    "metric_batches": ("metric batch", "metric batches"),
    "events": ("event", "events"),
    "store_records": ("store record", "store records"),
}


class DropCounter:
    """Counts of telemetry dropped, by (signal, reason); read by the agent_otel_telemetry_dropped metric."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._announced: set[tuple[str, str]] = set()
        _live.add(self)

    def forget(self) -> None:
        """Start again from nothing, in a forked child (see :func:`forget_in_child`)."""
        self._counts = {}
        self._announced = set()
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork

    def add(self, signal: str, reason: str, n: int = 1, announce: bool = True) -> None:
        """Count ``n`` dropped items; the first drop of a kind is logged once (unless at shutdown, where
        the summary line says it)."""
        if n <= 0:
            return
        key = (signal, reason)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n
            first = key not in self._announced
            self._announced.add(key)
        if first and announce:
            logger.warning(
                "agent-otel: dropping %s (%s); counted in agent_otel_telemetry_dropped_total, "
                "summary at shutdown",
                signal.replace("_", " "),
                reason.replace("_", " "),
            )

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def summary(self) -> str | None:
        return drop_summary(self.snapshot())


_live: weakref.WeakSet[DropCounter] = weakref.WeakSet()


def forget_in_child() -> None:
    """Called in a forked child (by agent_otel.export's fork hook). The drops counted so far are the
    parent's: a child reporting them again in its own ``agent_otel_telemetry_dropped_total`` series and
    exit summary counted every one of them once per worker. Its first drop of a kind is announced
    again: the warning the parent logged is not the child's."""
    for counter in list(_live):
        counter.forget()


def drop_summary(counts: Mapping[tuple[str, str], int]) -> str | None:
    """The one exit line: ``agent-otel: dropped 10,200 spans (8,704 unsent at shutdown, 1,496 queue
    full) and 2,368 events (queue full); ...``. None when nothing was dropped."""
    by_signal: dict[str, list[tuple[str, int]]] = {}
    for (signal, reason), n in counts.items():
        if n > 0:
            by_signal.setdefault(signal, []).append((reason.replace("_", " "), n))
    if not by_signal:
        return None
    parts = []
    for signal, reasons in sorted(by_signal.items(), key=lambda item: -sum(n for _, n in item[1])):
        total = sum(n for _, n in reasons)
        one, many = _NOUNS.get(signal, (signal.replace("_", " "),) * 2)
        reasons.sort(key=lambda item: -item[1])
        why = reasons[0][0] if len(reasons) == 1 else ", ".join(f"{n:,} {reason}" for reason, n in reasons)
        parts.append(f"{total:,} {one if total == 1 else many} ({why})")
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"agent-otel: dropped {listed}; counted in agent_otel_telemetry_dropped_total"
