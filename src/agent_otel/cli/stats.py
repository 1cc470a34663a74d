"""``agent-otel stats``: what runs looked like over a period."""

from __future__ import annotations

import argparse
from typing import Any

from agent_otel.cli.analysis import summarize
from agent_otel.cli.common import (
    Context,
    add_agent,
    add_json,
    fmt_duration,
    fmt_num,
    fmt_span,
    fmt_usd,
    iso,
    now_ms,
    parse_duration,
    print_json,
)
from agent_otel.store import Store

HELP = "runs, latency, tool calls, tokens, spend, stop reasons and failing tools over a period"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=parse_duration,
        default=parse_duration("24h"),
        metavar="DURATION",
        help="period (default 24h)",
    )
    add_agent(parser)
    add_json(parser)


def period(store: Store, since_ms: int, until_ms: int, agent: str | None) -> dict[str, Any]:
    """Summary of runs *started* in [since_ms, until_ms), with the events of exactly those runs.

    Replays are left out: they re-run recorded traffic to test a fix, and counting them would make
    the replay of a fix look like drift.
    """
    runs = store.runs(since_ms=since_ms, until_ms=until_ms, agent=agent, newest_first=False, replays=False)
    ids = [r["run_id"] for r in runs]
    events: list[dict[str, Any]] = []
    for i in range(0, len(ids), 500):
        events.extend(store.iter_events(run_ids=ids[i : i + 500]))
    summary = summarize(runs, events)
    summary["from"] = iso(since_ms)
    summary["to"] = iso(until_ms)
    summary["agent"] = agent
    return summary


def run(args: argparse.Namespace, ctx: Context) -> int:
    end = now_ms()
    s = period(ctx.store(), end - args.since, end, args.agent)
    if args.json:
        print_json(s)
        return 0
    render(ctx.console, s, fmt_span(args.since))
    return 0


def render(console: Any, s: dict[str, Any], label: str) -> None:
    from rich import box
    from rich.table import Table

    who = f" of {s['agent']}" if s.get("agent") else ""
    others = [f"{s['running']} still running"] if s["running"] else []
    if s.get("abandoned"):
        others.append(f"{s['abandoned']} abandoned: no stop recorded, process gone")
    running = f" ({', '.join(others)})" if others else ""
    console.print(f"[bold]{s['runs']} runs{who} in the last {label}[/]{running}")
    if not s["runs"]:
        return
    t = Table(box=box.SIMPLE_HEAD, show_header=True, pad_edge=False)
    t.add_column("FIGURE", no_wrap=True)
    t.add_column("VALUE", no_wrap=True)
    lat, tc, tok, spend = (
        s["latency_ms"],
        s["tool_calls_per_run"],
        s["tokens_per_request"],
        s["spend_per_run_usd"],
    )
    t.add_row("latency p50 / p95", f"{fmt_duration(lat['p50'])} / {fmt_duration(lat['p95'])}")
    t.add_row(
        "tool calls per run p50 / p95",
        f"{fmt_num(tc['p50'])} / {fmt_num(tc['p95'])}   (mean {fmt_num(tc['mean'])})",
    )
    t.add_row(
        "tokens per request p50 / p95",
        f"{fmt_num(tok['p50'], 0)} / {fmt_num(tok['p95'], 0)}   "
        f"(mean {fmt_num(tok['mean'], 0)}, {tok['requests']:,} requests)",
    )
    t.add_row(
        "spend per run mean / p95",
        f"{fmt_usd(spend['mean'])} / {fmt_usd(spend['p95'])}   (total {fmt_usd(spend['total'])})",
    )
    t.add_row(
        "retries per run (mean)",
        f"{fmt_num(s['retries_per_run']['mean'], 2)}   ({s['retries_per_run']['total']:,} in total)",
    )
    console.print(t)
    mix = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="stop reasons", title_justify="left")
    for name, justify in (("STOP REASON", "left"), ("CLASS", "left"), ("RUNS", "right"), ("SHARE", "right")):
        mix.add_column(name, justify=justify)  # type: ignore[arg-type]
    for m in s["stop_reasons"]:
        mix.add_row(m["stop_reason"], m["class"], f"{m['runs']:,}", f"{m['share'] * 100:.1f}%")
    console.print(mix)
    if s["failing_tools"]:
        ft = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="top failing tools", title_justify="left")
        for name, justify in (
            ("TOOL", "left"),
            ("ERROR", "left"),
            ("FAILURES", "right"),
            ("CALLS", "right"),
            ("ERROR RATE", "right"),
        ):
            ft.add_column(name, justify=justify)  # type: ignore[arg-type]
        for f in s["failing_tools"]:
            ft.add_row(
                f["tool"],
                f["error"],
                f"{f['failures']:,}",
                f"{f['calls']:,}",
                f"{f['error_rate'] * 100:.1f}%",
            )
        console.print(ft)
