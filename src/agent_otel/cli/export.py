"""``agent-otel export``: unified events as JSON lines (one object per line, every schema field)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import IO, Any

import orjson

from agent_otel.cli.common import CLIError, Context, add_agent, add_time_range, note_unknown_agent, time_range
from agent_otel.config import EVENT_FIELDS

HELP = "write unified events as JSON lines (stdout or --output FILE)"
_EXTRA = ("attempts", "args", "result")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_time_range(parser, what="events recorded")
    add_agent(parser)
    parser.add_argument("--run", metavar="RUN_ID", help="only the events of this run (id or unique prefix)")
    parser.add_argument(
        "--kind", choices=("tool_result", "llm_result", "stop"), help="only events of this kind"
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE (mode 0600) instead of stdout")
    parser.add_argument(
        "--json", action="store_true", help="accepted for symmetry: the output is always JSON lines"
    )


def line(event: dict[str, Any]) -> bytes:
    out = {f: event.get(f) for f in EVENT_FIELDS}
    for extra in _EXTRA:
        if event.get(extra) is not None:
            out[extra] = event[extra]
    return orjson.dumps(out, default=str)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store()
    run_ids = [store.find_run(args.run)["run_id"]] if args.run is not None else None
    since, until = time_range(args)
    stream: IO[bytes]
    if args.output:
        try:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise CLIError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        # O_CREAT's mode applies only to a new file; an existing one keeps its mode unless we set it,
        # and the events may hold arguments and results that others must not read. (Not /dev/null.)
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) != 0o600:
                os.fchmod(fd, 0o600)
        except OSError as exc:
            os.close(fd)
            raise CLIError(f"cannot make {args.output} owner-only (0600): {exc.strerror or exc}") from None
        stream = os.fdopen(fd, "wb")
    else:
        stream = sys.stdout.buffer
    count = 0
    try:
        for event in store.iter_events(
            since_ms=since, until_ms=until, agent=args.agent, kind=args.kind, run_ids=run_ids
        ):
            stream.write(line(event) + b"\n")
            count += 1
        stream.flush()
    finally:
        if args.output:
            stream.close()
    if not count:
        note_unknown_agent(store, args.agent)
    if args.output:
        sys.stderr.write(f"wrote {count} events to {args.output}\n")
    return 0
