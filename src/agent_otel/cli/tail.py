"""``agent-otel tail``: follow runs as they end, one line each, with the filters of ``runs``.

The store is polled (``--interval``, default 1 s) for runs whose end time is at or after the last one
printed, minus a few seconds of slack: processes write in batches (about every 200 ms) and their clocks
may differ a little, so a run can become visible slightly after a later one. Runs already printed are
remembered over that slack, so none is printed twice. Runs started more than a day before they end are
not followed (the query uses the index on the start time). Ctrl-C ends it with exit status 0.

A store that cannot be read for now (a PostgreSQL server restarting or failing over, unreachable) is
said once on stderr and read again at the next interval, reconnecting, rather than ending the tail: an
operator watching runs through a database restart keeps watching.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

from agent_otel.cli.common import MAX_COUNT, CLIError, Context, now_ms, reader_gone, unknown_agent
from agent_otel.cli.layout import fit
from agent_otel.cli.runs import COLUMNS, add_filters, cells, filters
from agent_otel.store import StoreError, open_store

HELP = "follow runs as they end (same filters as runs); Ctrl-C to stop"

SLACK_MS = 5_000
LOOKBACK_MS = 86_400_000
_MAX_INTERVAL_S = 86_400  # a day: far beyond any use, and within what time.sleep takes
#: ``tail`` shows when a run ended, where ``runs`` shows when it started.
TAIL_COLUMNS = tuple(dataclasses.replace(c, header="ENDED") if c.header == "STARTED" else c for c in COLUMNS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--last",
        type=int,
        default=10,
        metavar="N",
        help="first print the N latest runs of the past day that have ended (default 10; 0: none)",
    )
    add_filters(parser)
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to look for new runs (default 1)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    where = filters(args)
    if where["stop_reason"] in ("running", "abandoned"):
        raise CLIError(
            f"tail follows runs as they end; use `agent-otel runs --stop-reason {where['stop_reason']}`"
        )
    # A NaN or an interval of centuries, or a --last beyond 64 bits, reached time.sleep or SQLite's
    # LIMIT and ended in a ValueError or an IntegrityError after the header, not as a bad option.
    if not (0 <= args.last <= MAX_COUNT and 0 < args.interval <= _MAX_INTERVAL_S):
        raise CLIError(
            f"--last must be from 0 to {MAX_COUNT:,} and --interval above 0 and at most {_MAX_INTERVAL_S:,}"
        )
    console = ctx.console
    layout = fit(TAIL_COLUMNS, [], console.width, reserve=True)
    try:
        console.print(layout.header(), soft_wrap=True)
        store = _wait_for_store(ctx, args.interval)
        if store is not None:
            _follow(ctx, store, console, layout, args, where)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how tail ends: not an error
    return 0


def _wait_for_store(ctx: Context, interval: float) -> Any:
    """The store, once it exists and answers: `agent-otel tail` is often started before the first agent
    run (or `agent-otel demo --live`) creates it, or, as a service, while PostgreSQL is still starting or
    restarting: that is waited out as while following (it ended `tail` with exit 2 at once, where the
    same outage a second later was waited out). Any other error is one line and exit 2, as everywhere."""
    target = ctx.require_target()
    said = down = False
    while not reader_gone():
        try:
            store = open_store(target, create=False, writer=False)
        except StoreError as exc:
            if "no run store at" in str(exc):
                if not said:
                    said = True
                    _say(f"{exc}; waiting for it (Ctrl-C to stop)")
            elif exc.transient:
                if not down:
                    down = True
                    _say(f"the run store cannot be read right now ({exc}); trying again every {interval:g} s")
            else:
                raise CLIError(f"cannot open the run store at {target.display}: {exc}") from None
        else:
            ctx.opened.append(store)
            if down:
                _say("the run store can be read again")
            return store
        time.sleep(interval)
    return None


def _follow(
    ctx: Context, store: Any, console: Any, layout: Any, args: argparse.Namespace, where: dict[str, Any]
) -> None:
    seen: dict[str, int] = {}  # run id -> end, for the runs printed within the slack
    cursor = now_ms()
    down: StoreError | None = None  # the store could not be read at the last try

    def emit(rows: list[dict[str, Any]]) -> None:
        nonlocal cursor
        for r in sorted(rows, key=_end):
            if r["run_id"] not in seen:
                console.print(layout.line(cells(r, "ended_at_ms")), soft_wrap=True)
                seen[r["run_id"]] = _end(r)
                cursor = max(cursor, _end(r))

    if args.agent is not None and (unknown := unknown_agent(store, args.agent)):
        # A misspelt --agent otherwise waits for ever without a word; a new agent's first run still shows.
        _say(f"note: {unknown}; following it all the same")
    if args.last:
        since = cursor - LOOKBACK_MS
        emit(store.runs(limit=args.last, since_ms=since, ended_since_ms=since, **where))
    while not reader_gone():  # `agent-otel tail | grep -m1 x`: stop once grep has
        time.sleep(args.interval)
        start = cursor - SLACK_MS
        try:
            if store is None:
                store = open_store(ctx.require_target(), create=False, writer=False)
                ctx.opened.append(store)
            rows = store.runs(
                since_ms=now_ms() - LOOKBACK_MS, ended_since_ms=start, newest_first=False, **where
            )
        except Exception as exc:
            from agent_otel.store.db import classify  # only when reading failed

            err = exc if isinstance(exc, StoreError) else classify(exc)
            if not err.transient:
                raise
            if down is None:
                _say(
                    f"the run store cannot be read right now ({err}); trying again every {args.interval:g} s"
                )
            down = err
            if store is not None:
                store.close()  # reconnect at the next try
                store = None
            continue
        if down is not None:
            down = None
            _say("the run store can be read again")
        emit(rows)
        seen = {k: v for k, v in seen.items() if v >= cursor - SLACK_MS}


def _say(line: str) -> None:
    sys.stderr.write(f"agent-otel tail: {line}\n")
    sys.stderr.flush()


def _end(r: dict[str, Any]) -> int:
    return int(r.get("ended_at_ms") or 0)
