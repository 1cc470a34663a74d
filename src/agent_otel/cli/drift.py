"""``agent-otel drift``: compare a recent window with the baseline before it; exit 1 on drift.

The window is the last ``--window`` (default 24h); the baseline is the ``--baseline`` (default 7d)
right before the window, so the two never overlap. Thresholds are in :mod:`agent_otel.cli.analysis`
and in the README.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from rich.text import Text

from agent_otel.cli.analysis import DEFAULT_MIN_RUNS, Signal, compare, enough_runs
from agent_otel.cli.common import (
    EXIT_DRIFT,
    EXIT_OK,
    CLIError,
    Context,
    add_agent,
    add_json,
    fmt_duration,
    fmt_mean,
    fmt_span,
    fmt_usd,
    now_ms,
    parse_duration,
    parse_when,
    plural,
    positive_int,
    print_json,
    shown,
    unknown_agent,
    utc_time,
)
from agent_otel.cli.layout import Column, print_table
from agent_otel.cli.stats import period
from agent_otel.store.summaries import ACCURACY

HELP = "compare the last window with the baseline before it; exit 1 when behaviour drifts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window",
        type=parse_duration,
        default=parse_duration("24h"),
        metavar="DURATION",
        help="recent period (default 24h)",
    )
    parser.add_argument(
        "--baseline",
        type=parse_duration,
        default=parse_duration("7d"),
        metavar="DURATION",
        help="period before the window to compare with (default 7d)",
    )
    parser.add_argument(
        "--min-runs",
        type=positive_int,
        default=DEFAULT_MIN_RUNS,
        metavar="N",
        help=f"runs needed in each period to judge (default {DEFAULT_MIN_RUNS})",
    )
    parser.add_argument(
        "--until",
        type=parse_when,
        metavar="WHEN",
        help="end the window at WHEN instead of now: a duration ago (2d) or a UTC time (2026-11-24T12:00)",
    )
    add_agent(parser)
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    end = args.until.ms if args.until else now_ms()
    start = end - args.window
    ahead = None
    if args.until is None:  # up to now: the runs a clock ahead of this one stored count too
        from agent_otel.store.periods import through_now

        end, ahead = through_now(store, end, args.agent)
    window = period(store, start, end, args.agent)
    if ahead is not None:
        window["ahead"] = ahead
    baseline = period(store, start - args.baseline, start, args.agent)
    enough = enough_runs(window, args.min_runs) and enough_runs(baseline, args.min_runs)
    if not enough and (unknown := unknown_agent(store, args.agent)):
        raise CLIError(unknown)  # exit 2, a bad option: "not enough data" would exit 0 on a typo forever
    signals = compare(window, baseline) if enough else []
    drifted = [s for s in signals if s.drift]
    result = {
        "window": {k: window[k] for k in (*_PERIOD_KEYS, "ahead") if k in window},
        "baseline": {k: baseline[k] for k in _PERIOD_KEYS},
        "enough_data": enough,
        "drift": bool(drifted),
        "signals": [s.as_dict() for s in signals],
    }
    if args.json:
        print_json(result)
    else:
        render(ctx, args, window, baseline, signals, enough)
    return EXIT_DRIFT if drifted else EXIT_OK


_PERIOD_KEYS = ("from", "to", "runs", "abandoned", "method")


def _value(s: Signal, v: float | None) -> str:
    if v is None:
        return "-"
    if s.unit == "ms":
        return fmt_duration(v)
    if s.unit == "USD":
        return fmt_usd(v)
    if s.unit == "share":
        return f"{v * 100:.1f}%"
    return fmt_mean(v)


def render(
    ctx: Context,
    args: argparse.Namespace,
    window: dict[str, Any],
    baseline: dict[str, Any],
    signals: list[Signal],
    enough: bool,
) -> None:
    console = ctx.console
    who = f" for {shown(args.agent)}" if args.agent else ""
    last = (
        f"last {fmt_span(args.window)}"
        if args.until is None
        else f"{fmt_span(args.window)} to {utc_time(args.until.ms)}"
    )
    console.print(
        f"[bold]window[/] {last}: {plural(window['runs'], 'run')}   "
        f"[bold]baseline[/] the {fmt_span(args.baseline)} before: {plural(baseline['runs'], 'run')}{who}"
    )
    if window.get("ahead"):
        verb = "starts" if window["ahead"] == 1 else "start"
        console.print(
            f"{plural(window['ahead'], 'run')} {verb} after now (a clock ahead of this host's): "
            "counted in the window"
        )
    if not enough:
        console.print(
            f"not enough data to judge drift: need at least {args.min_runs} ended or abandoned runs in both "
            "periods "
            "(for history, try `agent-otel demo`: it back-dates its runs over 14 days)"
        )
        return
    rows = []
    for s in signals:
        if s.ratio is None:
            change = "-"
        elif math.isinf(s.ratio):
            change = "new"
        else:
            change = f"{s.ratio:.2f}x"
        rows.append(
            [
                s.signal,
                _value(s, s.baseline),
                _value(s, s.window),
                change,
                s.threshold,
                Text("DRIFT", style="red bold") if s.drift else Text("ok", style="green"),
            ]
        )
    print_table(console, COLUMNS, rows)
    summarized = [
        name for name, p in (("window", window), ("baseline", baseline)) if p["method"] == "summarized"
    ]
    if summarized:
        console.print(
            f"[dim]latency p95 of the {' and '.join(summarized)} from the hourly summaries: within "
            f"{ACCURACY:.0%} of the exact value[/]"
        )
    drifted = [s.signal for s in signals if s.drift]
    if drifted:
        console.print(f"[red bold]drift[/]: {', '.join(drifted)}")
    else:
        console.print("[green]no drift[/]")


#: At 80 columns the thresholds go (the README lists them).
COLUMNS = (
    Column("SIGNAL", 0, max_width=32),
    Column("BASELINE", 1, right=True),
    Column("WINDOW", 1, right=True),
    Column("CHANGE", 2, right=True),
    Column("THRESHOLD", 3),
    Column("", 0),
)
