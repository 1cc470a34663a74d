"""``agent-otel drift``: compare a recent window with the baseline before it; exit 1 on drift.

The window is the last ``--window`` (default 24h); the baseline is the ``--baseline`` (default 7d)
right before the window, so the two never overlap. Thresholds are in :mod:`agent_otel.cli.analysis`
and in the README.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from agent_otel.cli.analysis import DEFAULT_MIN_RUNS, Signal, compare
from agent_otel.cli.common import (
    EXIT_DRIFT,
    EXIT_OK,
    Context,
    add_agent,
    add_json,
    fmt_duration,
    fmt_num,
    fmt_span,
    fmt_usd,
    now_ms,
    parse_duration,
    positive_int,
    print_json,
)
from agent_otel.cli.stats import period

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
    add_agent(parser)
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    end = now_ms()
    start = end - args.window
    window = period(store, start, end, args.agent)
    baseline = period(store, start - args.baseline, start, args.agent)
    enough = window["runs"] >= args.min_runs and baseline["runs"] >= args.min_runs
    signals = compare(window, baseline) if enough else []
    drifted = [s for s in signals if s.drift]
    result = {
        "window": {k: window[k] for k in ("from", "to", "runs", "abandoned")},
        "baseline": {k: baseline[k] for k in ("from", "to", "runs", "abandoned")},
        "enough_data": enough,
        "drift": bool(drifted),
        "signals": [s.as_dict() for s in signals],
    }
    if args.json:
        print_json(result)
    else:
        render(ctx, args, window, baseline, signals, enough)
    return EXIT_DRIFT if drifted else EXIT_OK


def _value(s: Signal, v: float | None) -> str:
    if v is None:
        return "-"
    if s.unit == "ms":
        return fmt_duration(v)
    if s.unit == "USD":
        return fmt_usd(v)
    if s.unit == "share":
        return f"{v * 100:.1f}%"
    return fmt_num(v, 1)


def render(
    ctx: Context,
    args: argparse.Namespace,
    window: dict[str, Any],
    baseline: dict[str, Any],
    signals: list[Signal],
    enough: bool,
) -> None:
    from rich import box
    from rich.table import Table

    console = ctx.console
    who = f" for {args.agent}" if args.agent else ""
    console.print(
        f"[bold]window[/] last {fmt_span(args.window)}: {window['runs']} runs   "
        f"[bold]baseline[/] the {fmt_span(args.baseline)} before: {baseline['runs']} runs{who}"
    )
    if not enough:
        console.print(
            f"not enough data to judge drift: need at least {args.min_runs} ended runs in both periods "
            "(for history, try `agent-otel demo --backdate`)"
        )
        return
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (
        ("SIGNAL", "left"),
        ("BASELINE", "right"),
        ("WINDOW", "right"),
        ("CHANGE", "right"),
        ("THRESHOLD", "left"),
        ("", "left"),
    ):
        t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for s in signals:
        if s.ratio is None:
            change = "-"
        elif math.isinf(s.ratio):
            change = "new"
        else:
            change = f"{s.ratio:.2f}x"
        t.add_row(
            s.signal,
            _value(s, s.baseline),
            _value(s, s.window),
            change,
            s.threshold,
            "[red bold]DRIFT[/]" if s.drift else "[green]ok[/]",
        )
    console.print(t)
    drifted = [s.signal for s in signals if s.drift]
    if drifted:
        console.print(f"[red bold]drift[/]: {', '.join(drifted)}")
    else:
        console.print("[green]no drift[/]")
