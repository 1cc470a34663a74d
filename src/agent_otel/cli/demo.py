"""``agent-otel demo``: run the simulated support agent into the store (and OTLP, when configured).

Shows a progress bar, then what happened to OTLP export, a summary by scenario and the worst run's trace
(worst: a failure before a limit before a success, then the most tool calls, then the longest).

The stored runs are back-dated by default (``--backdate DAYS``, 14): spread over the last DAYS days so that
``drift`` and the seed's SQL alert have a baseline right away; with ``--scenario all`` the normal runs fill
the days before yesterday and the incident's runs the last six hours. It uses the store sink's internal
``shift_run`` hook; spans and metrics sent over OTLP keep their real time. ``--live`` stores real times
(for ``agent-otel tail``).

Ctrl-C stops it within about a second: runs not started yet are dropped, runs in flight end
``cancelled`` (their simulated waits end at once), and what finished is stored.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from agent_otel.cli.analysis import mean, percentile
from agent_otel.cli.common import (
    CLIError,
    Context,
    fmt_duration,
    fmt_mean,
    fmt_num,
    fmt_usd,
    parse_store_arg,
    plural,
    positive_int,
)
from agent_otel.cli.layout import Column, print_table

HELP = "run a simulated customer-support agent (no network, no API key) into the store"
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_CLASS_RANK = {"failure": 2, "limit": 1, "success": 0}
BACKDATE_DAYS = 14
EXIT_INTERRUPTED = 130
_METRIC_INTERVAL = "exporter.metric_interval_s"
_DEMO_METRIC_INTERVAL_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from agent_otel.cli.demo_agent import SCENARIOS

    parser.add_argument(
        "--runs", type=positive_int, default=40, metavar="N", help="number of runs (default 40)"
    )
    parser.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "all"),
        default="all",
        help="normal, incident (429/503 and retries without jitter), wrong-email, or all (default): "
        "mostly normal runs, one wrong-email run, and the incident's runs last",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="fixes tools, args, errors and tokens (default 7)"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--backdate",
        nargs="?",
        const=BACKDATE_DAYS,
        type=positive_int,
        metavar="DAYS",
        help=f"store the runs spread over the last DAYS days, the incident in the last 6 hours, so drift "
        f"has a baseline (the default, over {BACKDATE_DAYS} days)",
    )
    when.add_argument(
        "--live",
        action="store_true",
        help="store the runs at their real time instead (to watch them with `agent-otel tail`)",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=8, metavar="N", help="runs in parallel (default 8)"
    )


def plan(runs: int, scenario: str) -> list[str]:
    if scenario != "all":
        return [scenario] * runs
    incident = max(1, round(runs * 0.3))
    wrong = 1 if runs - incident >= 2 else 0
    normal = runs - incident - wrong
    half = normal // 2
    return (
        ["normal"] * half + ["wrong-email"] * wrong + ["normal"] * (normal - half) + ["incident"] * incident
    )


def offsets(scenarios: list[str], days: int, seed: int, mixed: bool) -> list[int]:
    """How far into the past each run is stored (ms), in run order (oldest first)."""
    rng = random.Random(f"{seed}:backdate")
    span = days * _DAY_MS
    older = [i for i, s in enumerate(scenarios) if not (mixed and s == "incident")]
    recent = [i for i, s in enumerate(scenarios) if mixed and s == "incident"]
    out = [0] * len(scenarios)
    # Older runs: evenly over [now - days, now - 1 day) (all of [now - days, now) without a mix).
    end = _DAY_MS if mixed and days > 1 else 0
    for k, i in enumerate(older):
        slot = (span - end) / max(len(older), 1)
        out[i] = int(span - slot * (k + rng.uniform(0.1, 0.9)))
    for k, i in enumerate(recent):  # the incident: the last six hours
        slot = 6 * _HOUR_MS / max(len(recent), 1)
        out[i] = int(6 * _HOUR_MS - slot * (k + rng.uniform(0.1, 0.9)))
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    import agent_otel
    from agent_otel import sdk
    from agent_otel.cli.demo_agent import run_one
    from agent_otel.store import StoreSink

    if ctx.config_path:
        os.environ["AGENT_OTEL_CONFIG"] = ctx.config_path
    keep = int(ctx.config.get("retention.logs_days") or 0)  # 0: runs are kept for ever
    if args.backdate is not None and 0 < keep < args.backdate:
        # Runs back-dated past the retention are deleted by the store's next daily gc: half of the demo
        # gone the day after `--backdate 60`, all of it after `--backdate 100000` (runs of the 1750s).
        raise CLIError(
            f"--backdate {args.backdate} reaches past the store's retention (retention.logs_days: {keep}): "
            f"gc would delete those runs; pass at most {keep}, or raise retention.logs_days"
        )
    _check_store(ctx)
    setup_kwargs: dict[str, Any] = {}
    if ctx.store_arg is not None:
        setup_kwargs["store"] = parse_store_arg(ctx.store_arg)
    agent_otel.shutdown()
    # The demo opts in to storing redacted arguments and results, so `show` can display them.
    agent_otel.setup(
        service_name="support-demo",
        config={"logging.events.store_args": True, **_metric_cadence()},
        instrument=False,
        **setup_kwargs,
    )
    inst = sdk.installation()
    spans = span_counter()
    if inst is not None and inst.otlp:
        inst.tracer_provider.add_span_processor(spans)
    sinks = [s for s in (inst.pipeline.sinks() if inst else []) if isinstance(s, StoreSink)]
    sink = sinks[0] if sinks else None

    scenarios = plan(args.runs, args.scenario)
    run_ids = [uuid.uuid4().hex for _ in scenarios]
    days = args.backdate
    if days is not None and sink is None:
        raise CLIError("--backdate needs the run store, which is disabled (store: false)")
    if days is None and not args.live and sink is not None:
        days = min(BACKDATE_DAYS, keep) if keep > 0 else BACKDATE_DAYS
    if days:
        for run_id, offset in zip(
            run_ids, offsets(scenarios, days, args.seed, args.scenario == "all"), strict=True
        ):
            sink.shift_run(run_id, offset)  # type: ignore[union-attr]

    console = ctx.console
    outcomes, not_started = _execute(console, scenarios, run_ids, args, run_one)
    if inst is not None and inst.otlp and not_started is None:
        # One more metric interval, so the last runs reach the collector with a regular export, not only
        # in the (time-bounded) export at shutdown.
        time.sleep(inst.config.get(_METRIC_INTERVAL))
    agent_otel.shutdown()

    if sink is not None and sink.error is not None and not sink.written:
        # It broke during the demo (the check before it passed): the runs were not written.
        raise CLIError(f"the run store at {sink.target.display} cannot be used: {sink.error}")
    where = f"the run store at {sink.target.display}" if sink else "no run store (store: false)"
    # soft_wrap: a long path or endpoint stays on its line (no break in the middle of it)
    console.print(f"{plural(len(outcomes), 'run')} of support-agent written to {where}", soft_wrap=True)
    if days:
        console.print(
            f"back-dated over {plural(days, 'day')}, the incident's runs in the last 6 h (--live: real time)"
        )
    console.print(otlp_report(inst, spans), soft_wrap=True)
    if not_started is not None:
        cancelled = sum(o.stop_reason == "cancelled" for o in outcomes)
        sys.stderr.write(
            f"agent-otel: interrupted: {plural(len(outcomes) - cancelled, 'run')} finished, "
            f"{cancelled} cancelled in flight, {not_started} not started\n"
        )
        return EXIT_INTERRUPTED
    if sink is None:
        return 0
    _summary(ctx, outcomes)
    return 0


def _metric_cadence() -> dict[str, float]:
    """Export metrics every second unless the user chose an interval (environment or config file).

    The demo's runs take a few seconds, less than the default 10 s interval: it would export once, at
    exit, and the dashboards would show nothing while it runs, and any plain rate() over its series would
    see little more than their first samples.
    """
    from agent_otel.config import SOURCE_DEFAULT, load

    try:
        chosen = load().source(_METRIC_INTERVAL) != SOURCE_DEFAULT
    except Exception:  # a broken config file: setup() reports it
        chosen = True
    return {} if chosen else {_METRIC_INTERVAL: _DEMO_METRIC_INTERVAL_S}


def span_counter() -> Any:
    """A span processor that counts the spans the demo ended: what OTLP export should have delivered.
    (Built on demand: the SDK is not imported for the CLI's other commands.)"""
    import threading

    from opentelemetry.sdk.trace import SpanProcessor

    class SpanCount(SpanProcessor):
        def __init__(self) -> None:
            self.ended = 0
            self._lock = threading.Lock()  # the demo's runs end spans on several threads

        def on_end(self, span: Any) -> None:
            with self._lock:
                self.ended += 1

    return SpanCount()


def otlp_report(inst: Any, spans: Any) -> str:
    """What happened to OTLP export, from the exporter's own count of spans delivered: never "sent"
    when nothing got through."""
    if inst is None or not inst.otlp:
        return f"OTLP export is off: {inst.otlp_note if inst else 'agent-otel is not set up'}"
    if not inst.span_processors:  # OTEL_TRACES_EXPORTER=none: metrics only
        return f"OTLP {inst.otlp}: metrics only (OTEL_TRACES_EXPORTER=none; their delivery is not counted)"
    sent = inst.span_processors[0].exported
    total = max(spans.ended, sent)
    if sent == total:
        return f"sent {plural(sent, 'span')} to OTLP {inst.otlp}"
    if sent:
        lost = total - sent
        return f"sent {sent:,} of {plural(total, 'span')} to OTLP {inst.otlp}; {lost:,} were not delivered"
    return (
        f"nothing reached OTLP {inst.otlp}: none of {plural(total, 'span')} was delivered (every export "
        "failed; is the collector running? `agent-otel doctor` checks)"
    )


def _check_store(ctx: Context) -> None:
    """Open the store for writing (creating and migrating it) before any run: a corrupt, unwritable or
    newer-schema store is then one error line, not forty simulated runs, a progress bar and a warning."""
    from agent_otel.store import StoreError, open_store

    target = ctx.target
    if target is None:
        return
    try:
        open_store(target, create=True, writer=True).close()
    except StoreError as exc:
        raise CLIError(f"the run store at {target.display} cannot be used: {exc}") from None


def _execute(
    console: Any, scenarios: list[str], run_ids: list[str], args: argparse.Namespace, run_one: Any
) -> tuple[list[Any], int | None]:
    """Run the scenarios; returns the outcomes in run order and, after Ctrl-C, how many never started."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent_otel.cli import demo_agent

    demo_agent.CANCEL.clear()
    outcomes: list[Any] = []
    not_started: int | None = None
    with Progress(
        TextColumn("[bold]support-agent[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"{args.scenario} (seed {args.seed})", total=len(scenarios))
        pool = ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="demo-run")
        futures = [
            pool.submit(run_one, i, scenario, args.seed, run_ids[i]) for i, scenario in enumerate(scenarios)
        ]
        try:
            for future in as_completed(futures):
                outcomes.append(future.result())
                progress.advance(task)
        except KeyboardInterrupt:
            # Ctrl-C: drop the queued runs, and let the ones in flight end `cancelled` (their simulated
            # waits return at once), rather than finish every queued run first.
            demo_agent.CANCEL.set()
            pool.shutdown(wait=True, cancel_futures=True)
            outcomes = [f.result() for f in futures if not f.cancelled() and f.exception() is None]
            not_started = sum(f.cancelled() for f in futures)
        finally:
            pool.shutdown(wait=True)
            demo_agent.CANCEL.clear()
    outcomes.sort(key=lambda o: o.index)
    return outcomes, not_started


#: The demo's summary table; at 80 columns the retries and tokens go first.
SUMMARY_COLUMNS = (
    Column("SCENARIO", 0),
    Column("RUNS", 1, right=True),
    Column("TOOL CALLS/RUN", 3, right=True, short="TOOLS/RUN"),
    Column("RETRIES/RUN", 7, right=True, short="RETRIES"),
    Column("P95 LATENCY", 4, right=True, short="P95"),
    Column("TOKENS/REQUEST", 6, right=True, short="TOKENS/REQ"),
    Column("SPEND/RUN", 5, right=True, short="SPEND"),
    Column("STOP REASONS", 2),
)


def _summary(ctx: Context, outcomes: list[Any]) -> None:
    from agent_otel.cli import show

    store = ctx.store()
    ids = [o.run_id for o in outcomes]
    rows: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        for r in store.runs(ids=ids[i : i + 500]):
            rows[r["run_id"]] = r
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for o in outcomes:
        if o.run_id in rows:
            by_scenario.setdefault(o.scenario, []).append(rows[o.run_id])
    console = ctx.console
    table = []
    for scenario, runs in by_scenario.items():
        tokens = sum((r.get("input_tokens") or 0) + (r.get("output_tokens") or 0) for r in runs)
        requests = sum(r.get("llm_calls") or 0 for r in runs)
        reasons = Counter(r.get("stop_reason") or "running" for r in runs)
        table.append(
            [
                scenario,
                str(len(runs)),
                fmt_mean(mean([float(r.get("tool_calls") or 0) for r in runs])),
                fmt_mean(mean([float(r.get("retries") or 0) for r in runs])),
                fmt_duration(percentile([float(r.get("duration_ms") or 0) for r in runs], 0.95)),
                fmt_num(tokens / requests if requests else None, 0),
                fmt_usd(mean([float(r.get("cost_usd") or 0) for r in runs])),
                ", ".join(f"{k} {v}" for k, v in reasons.most_common()),
            ]
        )
    print_table(console, SUMMARY_COLUMNS, table, title="by scenario")
    if not rows:
        return
    worst = max(
        rows.values(),
        key=lambda r: (
            _CLASS_RANK.get(r.get("status") or "", 0),
            r.get("tool_calls") or 0,
            r.get("duration_ms") or 0,
        ),
    )
    calls = plural(worst.get("tool_calls") or 0, "tool call")
    console.print(f"\n[bold]worst run[/] ({worst.get('stop_reason')}, {calls}):")
    console.print(show.render(worst, store.events_for(worst["run_id"]), store.children(worst["run_id"])))
    for o in outcomes:
        if o.scenario == "wrong-email" and o.run_id in rows:
            console.print(
                f"\n[bold]wrong-email run[/] {o.run_id[:12]}: the ticket came from customer "
                f"{o.ticket['customer_id']}, but the agent looked the customer up by name, the CRM "
                "returned two, and the reply went to the first. The run says `completed`; "
                f"`agent-otel show {o.run_id[:12]}` shows the crm.lookup result and the send_email args."
            )
    console.print(
        # `;` between the commands: a line pasted into a shell runs them in turn (with `|` it piped them).
        f"\nnext: [bold]agent-otel runs[/]; [bold]agent-otel show {worst['run_id'][:8]}[/]; "
        "[bold]agent-otel drift[/]\n      [bold]agent-otel stats[/]; [bold]agent-otel export --since 1d[/]"
    )
