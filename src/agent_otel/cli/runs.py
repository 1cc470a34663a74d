"""``agent-otel runs``: one line per run, newest first."""

from __future__ import annotations

import argparse
from typing import Any

from agent_otel.cli.common import (
    CLIError,
    Context,
    add_agent,
    add_json,
    fmt_duration,
    fmt_num,
    fmt_usd,
    jsonable_run,
    local_time,
    now_ms,
    parse_duration,
    positive_int,
    print_json,
)
from agent_otel.stop import StopReason

HELP = "list runs, one line each, newest first"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--last", type=positive_int, default=20, metavar="N", help="at most N runs (default 20)"
    )
    add_agent(parser)
    parser.add_argument(
        "--stop-reason",
        metavar="R",
        help="only runs that stopped with R (or 'running', or 'abandoned': no stop, process gone)",
    )
    parser.add_argument(
        "--since",
        type=parse_duration,
        metavar="DURATION",
        help="only runs started in the last DURATION (30m, 2h, 7d)",
    )
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    reason = args.stop_reason
    if reason is not None and reason not in ("running", "abandoned"):
        try:
            reason = StopReason.parse(reason).value
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    since = now_ms() - args.since if args.since else None
    rows = ctx.store().runs(since_ms=since, agent=args.agent, stop_reason=reason, limit=args.last)
    if args.json:
        print_json([jsonable_run(r) for r in rows])
        return 0
    console = ctx.console
    if not rows:
        console.print("no runs match" if (args.agent or reason or since) else "no runs in the store yet")
        return 0
    console.print(table(rows))
    return 0


def stop_style(run: dict[str, Any]) -> str:
    styles = {"success": "green", "limit": "yellow", "failure": "red", "abandoned": "magenta"}
    return styles.get(run.get("status") or "", "cyan")


def table(rows: list[dict[str, Any]]) -> Any:
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, justify in (
        ("RUN", "left"),
        ("STARTED", "left"),
        ("AGENT", "left"),
        ("STOP", "left"),
        ("TOOLS", "right"),
        ("STEPS", "right"),
        ("RETRIES", "right"),
        ("DURATION", "right"),
        ("TOKENS", "right"),
        ("COST", "right"),
        ("MODEL", "left"),
    ):
        t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        tokens = None
        if r.get("input_tokens") is not None or r.get("output_tokens") is not None:
            tokens = (r.get("input_tokens") or 0) + (r.get("output_tokens") or 0)
        t.add_row(
            r["run_id"][:12],
            local_time(r.get("created_at_ms")),
            r.get("agent") or "",
            f"[{stop_style(r)}]{r.get('stop_reason') or r.get('status') or 'running'}[/]",
            fmt_num(r.get("tool_calls")),
            fmt_num(r.get("steps")),
            fmt_num(r.get("retries")),
            fmt_duration(r.get("duration_ms")),
            fmt_num(tokens),
            fmt_usd(r.get("cost_usd")) if r.get("stop_reason") else "-",
            r.get("model") or "",
        )
    return t
