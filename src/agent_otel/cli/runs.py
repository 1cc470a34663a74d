"""``agent-otel runs``: one line per run, newest first, laid out to fit the terminal.

The filters here are shared with ``tail``: agent, stop reason or class, model, prompt version, conversation,
a tool the run called, a minimum duration, and a time range (``--since``/``--until``: a duration ago or a
UTC time).
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.text import Text

from agent_otel.cli.common import (
    CLIError,
    Context,
    add_agent,
    add_json,
    add_time_range,
    fmt_duration,
    fmt_num,
    fmt_usd,
    jsonable_run,
    note_unknown_agent,
    parse_duration,
    positive_int,
    print_json,
    time_range,
    utc_time,
)
from agent_otel.cli.layout import Column, print_table
from agent_otel.stop import StopReason

HELP = "list runs, one line each, newest first (filters: agent, stop reason/class, model, tool, ...)"

#: Stop classes a run can have (``--stop-class``), plus ``running`` for runs not ended yet and ``abandoned``
#: for runs that never will (no stop recorded, their process gone).
STOP_CLASSES = (*sorted({r.stop_class for r in StopReason}), "running", "abandoned")


def add_filters(parser: argparse.ArgumentParser) -> None:
    """The run filters ``runs`` and ``tail`` share."""
    add_agent(parser)
    reason = parser.add_argument(
        "--stop-reason",
        metavar="R",
        help="only runs that stopped with R (or 'running', or 'abandoned': no stop, process gone)",
    )
    reason.completions = [*(r.value for r in StopReason), "running", "abandoned"]  # type: ignore[attr-defined]
    parser.add_argument(
        "--stop-class",
        choices=STOP_CLASSES,
        metavar="C",
        help=f"only runs whose stop reason is of this class: {', '.join(STOP_CLASSES)}",
    )
    parser.add_argument("--model", metavar="M", help="only runs of this model (gen_ai.request.model)")
    parser.add_argument("--prompt-version", metavar="V", help="only runs of this prompt version")
    parser.add_argument(
        "--conversation",
        metavar="ID",
        help="only runs of conversation ID (gen_ai.conversation.id: a LangGraph thread_id, a session id)",
    )
    parser.add_argument("--tool", metavar="T", help="only runs that called tool T")
    parser.add_argument(
        "--min-duration",
        type=parse_duration,
        metavar="DURATION",
        help="only runs that took at least DURATION (1s, 2m; ended runs only)",
    )


def filters(args: argparse.Namespace) -> dict[str, Any]:
    """The store filters of :func:`add_filters`' options (names of :meth:`Store.runs`)."""
    reason = args.stop_reason
    if reason is not None and reason not in ("running", "abandoned"):
        try:
            reason = StopReason.parse(reason).value
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    status = args.stop_class
    if status in ("running", "abandoned"):
        # Both are `running` rows in the store; the store tells them apart (is the process alive?).
        if reason is not None and reason != status:
            raise CLIError(f"--stop-reason {reason} and --stop-class {status} match no run together")
        reason, status = status, None
    return {
        "agent": args.agent,
        "stop_reason": reason,
        "status": status,
        "model": args.model,
        "prompt_version": args.prompt_version,
        "conversation": args.conversation,
        "tool": args.tool,
        "min_duration_ms": args.min_duration,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--last", type=positive_int, default=20, metavar="N", help="at most N runs (default 20)"
    )
    add_filters(parser)
    add_time_range(parser)
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    where = filters(args)
    since, until = time_range(args)
    rows = ctx.store().runs(since_ms=since, until_ms=until, limit=args.last, **where)
    if not rows:
        note_unknown_agent(ctx.store(), args.agent)
    if args.json:
        print_json([jsonable_run(r) for r in rows])
        return 0
    console = ctx.console
    if not rows:
        filtered = any(v is not None for v in where.values()) or since is not None or until is not None
        console.print("no runs match" if filtered else "no runs in the store yet")
        return 0
    print_table(console, COLUMNS, [cells(r) for r in rows])
    return 0


def stop_style(run: dict[str, Any]) -> str:
    styles = {
        "success": "green",
        "limit": "yellow",
        "failure": "red",
        "pause": "blue",
        "abandoned": "magenta",
    }
    return styles.get(run.get("status") or "", "cyan")


#: The columns of ``runs`` and ``tail``, in order; priorities say which go first at 80 columns.
#: ``nominal`` widths are what ``tail`` reserves before it has seen a run.
COLUMNS = (
    Column("RUN", 0, nominal=12),
    Column("STARTED", 2, nominal=(20, 12)),
    Column("AGENT", 6, nominal=14, max_width=24, drop_if_constant=True),
    Column("STOP", 1, nominal=13),
    Column("TOOLS", 4, right=True),
    Column("STEPS", 8, right=True),
    Column("RETRIES", 9, right=True),
    Column("DURATION", 3, right=True, nominal=8),
    Column("TOKENS", 7, right=True, nominal=7),
    Column("COST", 5, right=True, nominal=7),
    Column("MODEL", 10, nominal=10, max_width=24, drop_if_constant=True),
)


def cells(r: dict[str, Any], when: str = "created_at_ms") -> list[Any]:
    """One run as the cells of :data:`COLUMNS` (``when``: the time shown second). A replay says so next
    to its stop reason, so that a replay which left the recorded path is not read as a real
    ``policy_denied``."""
    tokens = None
    if r.get("input_tokens") is not None or r.get("output_tokens") is not None:
        tokens = (r.get("input_tokens") or 0) + (r.get("output_tokens") or 0)
    stop = Text(r.get("stop_reason") or r.get("status") or "running", style=stop_style(r))
    if r.get("replay_of"):
        stop.append(" (replay)", style="dim")
    return [
        r["run_id"][:12],
        (utc_time(r.get(when)), utc_time(r.get(when), short=True)),
        r.get("agent") or "",
        stop,
        fmt_num(r.get("tool_calls")),
        fmt_num(r.get("steps")),
        fmt_num(r.get("retries")),
        fmt_duration(r.get("duration_ms")),
        fmt_num(tokens),
        fmt_usd(r.get("cost_usd")) if r.get("stop_reason") else "-",
        r.get("model") or "",
    ]
