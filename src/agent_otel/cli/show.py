"""``agent-otel show RUN_ID``: one run answering the five questions.

Which tools ran in which order (the step tree), with which arguments (``args_sha``, and the redacted
arguments when ``store_args`` is on), what came back (``result_sha``), which versions ran (model,
prompt_version, tools_version), and why it stopped (stop reason, class, usage), plus the trace_id to
open the same run in Grafana.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any
from urllib.parse import quote

from rich.text import Text

from agent_otel.cli.common import (
    Context,
    add_json,
    fmt_duration,
    fmt_usd,
    jsonable_run,
    plural,
    print_json,
    shown,
    utc_time,
)
from agent_otel.cli.runs import stop_style
from agent_otel.store.summaries import request_tokens

HELP = "show one run: steps in order with hashes, versions, stop reason, usage, trace_id"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    row = store.find_run(args.run_id)
    events = store.events_for(row["run_id"])
    children = store.children(row["run_id"])
    link = trace_link(ctx.config, row)
    if args.json:
        print_json(
            {
                "run": jsonable_run(row),
                "events": events,
                "children": [jsonable_run(c) for c in children],
                "trace_url": link,
            }
        )
        return 0
    ctx.console.print(render(row, events, children, link))
    if link:
        # Whole, on one line, so that terminals make it clickable (and as an OSC 8 link where supported).
        ctx.console.print(Text.assemble(("trace  ", "bold"), (link, f"link {link}")), soft_wrap=True)
    return 0


def trace_link(cfg: Any, row: dict[str, Any]) -> str | None:
    """The run's trace in Grafana Explore (Tempo), when ``links.grafana_url`` is set; else None."""
    base = cfg.get("links.grafana_url")
    trace_id = row.get("trace_id")
    if not base or not trace_id:
        return None
    uid = cfg.get("links.tempo_datasource")
    start = int(row.get("created_at_ms") or 0)
    # Up to now, not to the run's end: the bundled Grafana looks a trace id up only within the link's range
    # (its Tempo datasource's timeShiftEnabled), and a run stored back-dated (`agent-otel demo`) sent its
    # spans at the real time, after its row's; the range up to now holds them.
    end = max(int(row.get("ended_at_ms") or start), int(time.time() * 1000))
    pane = {
        "trace": {
            "datasource": uid,
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "tempo", "uid": uid},
                    "queryType": "traceql",
                    "query": trace_id,
                }
            ],
            "range": {"from": str(start - 3_600_000), "to": str(end + 3_600_000)},
        }
    }
    panes = quote(json.dumps(pane, separators=(",", ":")), safe="")
    return f"{base.rstrip('/')}/explore?schemaVersion=1&orgId=1&panes={panes}"


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(
    row: dict[str, Any],
    events: list[dict[str, Any]],
    children: list[dict[str, Any]],
    link: str | None = None,
) -> Any:
    """The run's head and step tree; ``link``: the trace link ``run`` prints after it (not repeated)."""
    from rich.console import Group
    from rich.table import Table
    from rich.tree import Tree

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    service = f"  (service {row['service']})" if row.get("service") else ""
    head.add_row("run", f"{row['run_id']}")
    head.add_row("agent", f"{shown(row.get('agent') or '')}{shown(service)}")
    head.add_row(
        "started",
        f"{utc_time(row.get('created_at_ms'))}   duration {fmt_duration(row.get('duration_ms'))}",
    )
    reason = row.get("stop_reason")
    if reason:
        stop = f"[{stop_style(row)}]{reason}[/] ({row.get('status')})"
        if row.get("detail"):
            stop += f" - {shown(str(row['detail']))}"
    elif row.get("status") == "abandoned":
        stop = f"[magenta]abandoned[/] ({shown(str(row.get('abandoned') or 'no stop was recorded'))})"
    else:
        stop = "[cyan]running[/] (no stop recorded yet)"
    head.add_row("stop", stop)
    head.add_row(
        "versions",
        "   ".join(
            f"{label} {shown(str(row.get(key) or '-'))}"
            for label, key in (("model", "model"), ("prompt", "prompt_version"), ("tools", "tools_version"))
        ),
    )
    if row.get("input_sha"):
        head.add_row("input_sha", row["input_sha"])
    if reason:
        tokens_in, tokens_out = row.get("input_tokens") or 0, row.get("output_tokens") or 0
        head.add_row(
            "usage",
            f"{plural(row.get('steps') or 0, 'step')}: {plural(row.get('tool_calls') or 0, 'tool call')}, "
            f"{plural(row.get('llm_calls') or 0, 'LLM call')}, {plural(row.get('retries') or 0, 'retry')}",
        )
        unknown = sum(
            e.get("kind") == "llm_result" and request_tokens(e.get("usage")) is None for e in events
        )
        head.add_row(
            "spend",
            f"{tokens_in + tokens_out:,} tokens ({tokens_in:,} in / {tokens_out:,} out)   "
            f"{fmt_usd(row.get('cost_usd'))}"
            + (f"   [yellow]+ {plural(unknown, 'LLM call')} of unknown usage[/]" if unknown else ""),
        )
    for label, key in (
        ("parent run", "parent_run_id"),
        ("replay of", "replay_of"),
        ("conversation", "conversation_id"),
    ):
        if row.get(key):
            head.add_row(label, shown(str(row[key])))
    if row.get("trace_id"):
        hint = "(AGENT_OTEL_GRAFANA_URL=... for a link)"
        head.add_row("trace_id", f"{row['trace_id']}" + ("" if link else f"   [dim]{hint}[/]"))

    tree = Tree("[bold]steps[/]")
    steps = [e for e in events if e.get("kind") != "stop"]
    stops = [e for e in events if e.get("kind") == "stop"]
    if not events:
        tree.add("[dim]no events stored for this run[/]")
    for e in steps:
        node = tree.add(step_line(e))
        if e.get("kind") == "tool_result":
            # The hashes under the step, each with its redacted value when stored: the step line stays
            # short enough for an 80-column terminal.
            for label, sha, extra in (("args", "args_sha", "args"), ("result", "result_sha", "result")):
                value = f"  [dim]{shown(_short(e[extra]))}[/]" if extra in e else ""
                node.add(f"{label} {e.get(sha) or '-'}{value}")
    for e in stops:
        line = f"[bold]stop[/] [{_class_style(e.get('status'))}]{e.get('stop_reason')}[/] ({e.get('status')})"
        if e.get("error"):
            line += f"  error [red]{shown(e['error'])}[/]"
        line += f"  after {fmt_duration(e.get('duration_ms'))}"
        tree.add(line)
    parts: list[Any] = [head, tree]
    if children:
        sub = Tree("[bold]sub-agent runs[/]")
        for c in children:
            sub.add(
                f"{c['run_id'][:12]}  {shown(c.get('agent') or '')}  "
                f"[{stop_style(c)}]{c.get('stop_reason') or c.get('status') or 'running'}[/]  "
                f"{plural(c.get('tool_calls') or 0, 'tool call')}  {fmt_duration(c.get('duration_ms'))}"
            )
        parts.append(sub)
    return Group(*parts)


def _class_style(status: str | None) -> str:
    styles = {"success": "green", "limit": "yellow", "failure": "red", "pause": "blue"}
    return {**styles, "ok": "green", "error": "red"}.get(status or "", "cyan")


def step_line(e: dict[str, Any]) -> str:

    step = e.get("step_id")
    prefix = f"{step:>2}" if step is not None else " -"
    status = e.get("status") or "?"
    status_txt = f"[{_class_style(status)}]{status}[/]"
    if e.get("error"):
        status_txt += f" [red]{shown(e['error'])}[/]"
    duration = fmt_duration(e.get("duration_ms"))
    if e.get("kind") == "tool_result":
        line = f"{prefix}  [bold]tool[/] {shown(_short(e.get('tool') or '?'))}  {status_txt}  {duration}"
        attempts = e.get("attempts")
        if attempts and attempts > 1:
            retries = "1 retry" if attempts == 2 else f"{attempts - 1} retries"
            line += f"  [yellow]attempts {attempts} ({retries})[/]"
        return line
    usage = e.get("usage") or {}
    line = (
        f"{prefix}  [bold]llm[/]  {shown(_short(str(usage.get('model') or '?')))}  {status_txt}  {duration}"
    )
    if "input_tokens" in usage or "output_tokens" in usage:
        line += f"  {usage.get('input_tokens') or 0:,} in / {usage.get('output_tokens') or 0:,} out tokens"
    else:  # the response reported no usage: not 0 tokens, which would read as a free request
        line += "  [dim]tokens unknown[/]"
    if usage.get("cost_usd") is not None:
        line += f"  {fmt_usd(usage['cost_usd'])}"
    return line
