"""``agent-otel gc``: apply retention now (it also runs automatically, at most once a day)."""

from __future__ import annotations

import argparse

from agent_otel.cli.common import CLIError, Context, add_json, local_time, print_json, shown
from agent_otel.store import retention_from_config

HELP = "delete runs and events older than the retention (retention.logs_days, tool_snapshot_days)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    store = ctx.store(writer=True)  # never delete from a store whose newer schema we do not know
    retention = retention_from_config(ctx.config)
    last = store.meta("last_gc_ms")
    try:
        deleted = store.gc(retention, dry_run=args.dry_run)
    except Exception as exc:  # a role that may read but not delete (PostgreSQL), a read-only file
        from agent_otel.store.db import classify

        raise CLIError(
            f"cannot apply retention to the run store at {store.target.display}: {classify(exc)}"
        ) from None
    if args.json:
        print_json(
            {
                "store": store.target.display,
                "retention_days": retention,
                "dry_run": args.dry_run,
                "deleted": deleted,
                "previous_gc": int(last) if last else None,
            }
        )
        return 0
    console = ctx.console
    keep = ", ".join(f"{k} {v or 'forever'}" for k, v in retention.items())
    console.print(f"store {shown(store.target.display)}   retention: {keep}")
    verb = "would delete" if args.dry_run else "deleted"
    if not deleted:
        console.print("retention is off (0 days): nothing to delete")
    for table, n in deleted.items():
        console.print(f"{verb} {n:,} rows from {table}")
    console.print(f"previous gc: {local_time(int(last)) if last else 'never'}")
    return 0
