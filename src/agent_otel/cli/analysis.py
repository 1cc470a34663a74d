"""Drift signals over the figures of two periods (:mod:`agent_otel.store.periods` computes those, in the
database), and the plain percentile and mean the demo's own summary uses: a percentile is the linearly
interpolated one (as numpy's default and PostgreSQL's ``percentile_cont``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent_otel.stop import StopReason

# Drift thresholds (README "drift"): a signal drifts when window >= ratio * baseline.
TOOL_CALLS_RATIO = 2.0  # the seed's alert: average tool calls per run above twice the baseline
LATENCY_P95_RATIO = 1.5
TOKENS_PER_REQUEST_RATIO = 1.5
SPEND_PER_RUN_RATIO = 1.5
# A stop reason other than `completed` drifts when its share of runs rises by at least this many
# percentage points *and* at least doubles, and at least STOP_MIN_RUNS runs in the window ended with it.
STOP_SHARE_POINTS = 0.05
STOP_SHARE_RATIO = 2.0
STOP_MIN_RUNS = 2
DEFAULT_MIN_RUNS = 5
# A pause (``interrupted``: the agent waits for a human) is not a failure: it never drifts, and the shares
# of the other stop reasons are taken over the runs that did not pause, so that more (or fewer) human
# approvals neither raise nor hide a drift of failures.
PAUSE = "pause"


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi:
        return float(ordered[lo])
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(slots=True)
class Signal:
    signal: str
    baseline: float | None
    window: float | None
    threshold: str
    drift: bool
    ratio: float | None = None
    unit: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio_signal(name: str, base: float | None, win: float | None, ratio: float, unit: str) -> Signal:
    threshold = f">= {ratio:g}x baseline"
    if base is None or win is None:
        return Signal(name, base, win, threshold, False, None, unit)
    if base == 0:
        r = None if win == 0 else math.inf
        return Signal(name, base, win, threshold, win > 0, r, unit)
    r = win / base
    return Signal(name, base, win, threshold, r >= ratio, r, unit)


#: The ratio signals of :func:`compare`: (signal, summary key, statistic, drift ratio, unit).
_RATIO_SIGNALS = (
    ("tool_calls_per_run", "tool_calls_per_run", "mean", TOOL_CALLS_RATIO, "calls"),
    ("latency_p95_ms", "latency_ms", "p95", LATENCY_P95_RATIO, "ms"),
    ("tokens_per_request", "tokens_per_request", "mean", TOKENS_PER_REQUEST_RATIO, "tokens"),
    ("spend_per_run_usd", "spend_per_run_usd", "mean", SPEND_PER_RUN_RATIO, "USD"),
)


def compare(window: dict[str, Any], baseline: dict[str, Any]) -> list[Signal]:
    """The drift signals of ``window`` against ``baseline`` (both from ``periods.period``)."""
    signals = [
        _ratio_signal(name, baseline[key][stat], window[key][stat], ratio, unit)
        for name, key, stat, ratio, unit in _RATIO_SIGNALS
    ]
    base_mix = _settled_shares(baseline["stop_reasons"])
    win_mix = _settled_shares(window["stop_reasons"])
    for reason in sorted(set(base_mix) | set(win_mix)):
        if reason == StopReason.COMPLETED.value:
            continue
        b = base_mix.get(reason, {"share": 0.0, "runs": 0})
        w = win_mix.get(reason, {"share": 0.0, "runs": 0})
        signals.append(_share_signal(f"stop_reason:{reason}", b["share"], w["share"], w["runs"]))
    # Processes killed mid-run (the OOM killer, a crash loop) leave no stop reason to drift: their runs'
    # share among the runs that ended or were abandoned is a signal of its own.
    b_share, w_share = _abandoned_share(baseline), _abandoned_share(window)
    signals.append(_share_signal("abandoned", b_share, w_share, window["abandoned"]))
    return signals


def enough_runs(period: dict[str, Any], min_runs: int) -> bool:
    """Whether a period has runs enough to judge: ended and abandoned ones, so that a window where most
    processes were killed is judged (its abandoned share drifts) instead of hidden as "not enough data"."""
    return period["runs"] + period["abandoned"] >= min_runs


def _abandoned_share(period: dict[str, Any]) -> float:
    settled = sum(m["runs"] for m in period["stop_reasons"] if m["class"] != PAUSE)
    total = settled + period["abandoned"]
    return period["abandoned"] / total if total else 0.0


_SHARE_THRESHOLD = f"+{STOP_SHARE_POINTS * 100:g} pts and >= {STOP_SHARE_RATIO:g}x, >= {STOP_MIN_RUNS} runs"


def _share_signal(name: str, base: float, win: float, win_runs: int) -> Signal:
    drifted = (
        win - base >= STOP_SHARE_POINTS - 1e-12
        and win >= STOP_SHARE_RATIO * base
        and win_runs >= STOP_MIN_RUNS
    )
    ratio = None if base == 0 else win / base
    if base == 0 and win > 0:
        ratio = math.inf
    return Signal(name, base, win, _SHARE_THRESHOLD, drifted, ratio, "share")


def _settled_shares(mix: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Stop reasons other than pauses, each with its share of the runs that did not pause."""
    settled = [m for m in mix if m["class"] != PAUSE]
    total = sum(m["runs"] for m in settled)
    return {m["stop_reason"]: {**m, "share": m["runs"] / total if total else 0.0} for m in settled}
