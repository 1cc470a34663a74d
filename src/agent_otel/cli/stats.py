"""``agent-otel stats``: what runs looked like over a period."""

from __future__ import annotations

import argparse
from typing import Any

from agent_otel.cli.common import (
    Context,
    When,
    add_agent,
    add_json,
    add_time_range,
    fmt_duration,
    fmt_mean,
    fmt_num,
    fmt_span,
    fmt_usd,
    iso,
    note_unknown_agent,
    now_ms,
    parse_duration,
    plural,
    print_json,
    shown,
    time_range,
    utc_time,
)
from agent_otel.cli.layout import Column, print_table
from agent_otel.store import Store
from agent_otel.store.summaries import ACCURACY

HELP = "runs, latency, tool calls, tokens, spend, stop reasons and failing tools over a period"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_time_range(parser, since="24h")
    parser.set_defaults(since=None)  # the 24h before --until (or now): see run()
    add_agent(parser)
    add_json(parser)


def period(store: Store, since_ms: int, until_ms: int, agent: str | None) -> dict[str, Any]:
    """Summary of runs *started* in [since_ms, until_ms), with the events of exactly those runs,
    aggregated in the database (:mod:`agent_otel.store.periods`).

    Replays are left out: they re-run recorded traffic to test a fix, and counting them would make
    the replay of a fix look like drift.
    """
    from agent_otel.store.periods import period as figures

    summary = figures(store, since_ms, until_ms, agent)
    summary["from"] = iso(since_ms)
    summary["to"] = iso(until_ms)
    summary["agent"] = agent
    return summary


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.since is None:  # the default period is the 24h before --until, not the last 24h (then empty)
        end = args.until.ms if args.until is not None else now_ms()
        args.since = When(end - DEFAULT_MS, "24h", DEFAULT_MS if args.until is None else None)
    since, until = time_range(args)
    store = ctx.store()
    if until is None:  # up to now: the runs a clock ahead of this one stored count too
        from agent_otel.store.periods import through_now

        end, ahead = through_now(store, now_ms(), args.agent)
    else:
        end, ahead = until, None
    s = period(store, since or 0, end, args.agent)
    if ahead is not None:
        s["ahead"] = ahead
    if not s["runs"] and not s["running"] and not s.get("abandoned"):
        note_unknown_agent(store, args.agent)
    if args.json:
        print_json(s)
        return 0
    render(ctx.console, s, period_label(args.since, until))
    return 0


DEFAULT_MS = parse_duration("24h")


def period_label(since: Any, until: int | None) -> str:
    """``in the last 24h`` for a duration up to now, else ``from ... to ...`` in UTC."""
    if since.ago_ms is not None and until is None:
        return f"in the last {fmt_span(since.ago_ms)}"
    return f"from {utc_time(since.ms)} to {utc_time(until) if until is not None else 'now'}"


#: The columns of the stop-reason and failing-tool tables.
MIX_COLUMNS = (
    Column("STOP REASON", 0),
    Column("CLASS", 2),
    Column("RUNS", 1, right=True),
    Column("SHARE", 1, right=True),
)
FAILING_COLUMNS = (
    Column("TOOL", 0, max_width=30),
    Column("ERROR", 0, max_width=30),
    Column("FAILURES", 1, right=True),
    Column("CALLS", 2, right=True),
    Column("ERROR RATE", 1, right=True, short="RATE"),
)


def render(console: Any, s: dict[str, Any], label: str) -> None:
    who = f" of {shown(s['agent'])}" if s.get("agent") else ""
    others = [f"{s['running']} still running"] if s["running"] else []
    if s.get("abandoned"):
        others.append(f"{s['abandoned']} abandoned: no stop recorded, process gone")
    running = f" ({', '.join(others)})" if others else ""
    console.print(f"[bold]{plural(s['runs'], 'run')}{who} {label}[/]{running}")
    if s.get("ahead"):
        verb = "starts" if s["ahead"] == 1 else "start"
        console.print(
            f"{plural(s['ahead'], 'run')} {verb} after now (a clock ahead of this host's): "
            "counted in this period"
        )
    if not s["runs"]:
        return
    lat, tc, tok, spend = (
        s["latency_ms"],
        s["tool_calls_per_run"],
        s["tokens_per_request"],
        s["spend_per_run_usd"],
    )
    figures = [
        ["latency p50 / p95", f"{fmt_duration(lat['p50'])} / {fmt_duration(lat['p95'])}"],
        [
            "tool calls per run p50 / p95",
            f"{fmt_num(tc['p50'])} / {fmt_num(tc['p95'])}   (mean {fmt_mean(tc['mean'])})",
        ],
        [
            "tokens per request p50 / p95",
            f"{fmt_num(tok['p50'], 0)} / {fmt_num(tok['p95'], 0)}   "
            f"(mean {fmt_num(tok['mean'], 0)}, {plural(tok['requests'], 'request')}"
            + (f", {tok['without_usage']:,} without usage)" if tok.get("without_usage") else ")"),
        ],
        [
            "spend per run mean / p95",
            f"{fmt_usd(spend['mean'])} / {fmt_usd(spend['p95'])}   (total {fmt_usd(spend['total'])})",
        ],
        [
            "retries per run (mean)",
            f"{fmt_mean(s['retries_per_run']['mean'], 2)}   ({s['retries_per_run']['total']:,} in total)",
        ],
    ]
    print_table(console, (Column("FIGURE", 0), Column("VALUE", 0)), figures)
    if s.get("method") == "summarized":
        console.print(
            f"[dim]p50/p95 of latency, tokens and spend from the hourly summaries: within "
            f"{ACCURACY:.0%} of the exact value[/]"
        )
    mix = [
        [m["stop_reason"], m["class"], f"{m['runs']:,}", f"{m['share'] * 100:.1f}%"]
        for m in s["stop_reasons"]
    ]
    console.print()
    print_table(console, MIX_COLUMNS, mix, title="stop reasons")
    if s["failing_tools"]:
        failing = [
            [f["tool"], f["error"], f"{f['failures']:,}", f"{f['calls']:,}", f"{f['error_rate'] * 100:.1f}%"]
            for f in s["failing_tools"]
        ]
        console.print()
        print_table(console, FAILING_COLUMNS, failing, title="top failing tools")
