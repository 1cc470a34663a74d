"""``agent-otel gc``: apply retention now (it also runs automatically, at most once a day)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from agent_otel.cli.common import CLIError, Context, add_json, local_time, print_json, shown
from agent_otel.store import retention_from_config

if TYPE_CHECKING:
    from agent_otel.store.db import Store

HELP = "delete runs and events older than the retention (retention.logs_days, tool_snapshot_days)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    add_json(parser)


def run(args: argparse.Namespace, ctx: Context) -> int:
    # gc never deletes from a store whose newer schema we do not know; a dry run changes nothing at all
    # (no migration, no WAL switch, read-only), so it also counts in a store gc could not touch.
    store = ctx.store(writer=not args.dry_run, migrate=not args.dry_run)
    retention = retention_from_config(ctx.config)
    last = store.meta("last_gc_ms")
    notes: list[str] = []
    try:
        deleted = store.gc(retention, dry_run=args.dry_run)
        if args.dry_run:
            version = store.schema_version()
            notes = _dry_run_notes(store, version, retention, deleted)
    except Exception as exc:  # a role that may read but not delete (PostgreSQL), a read-only file
        from agent_otel.store.db import classify

        raise CLIError(
            f"cannot apply retention to the run store at {store.target.display}: {classify(exc)}"
        ) from None
    if args.json:
        out = {
            "store": store.target.display,
            "retention_days": retention,
            "dry_run": args.dry_run,
            "deleted": deleted,
            "previous_gc": int(last) if last else None,
        }
        if args.dry_run:
            out.update(schema_version=version, notes=notes)
        print_json(out)
        return 0
    console = ctx.console
    keep = ", ".join(f"{k} {v or 'forever'}" for k, v in retention.items())
    console.print(f"store {shown(store.target.display)}   retention: {keep}")
    verb = "would delete" if args.dry_run else "deleted"
    if not deleted:
        console.print("retention is off (0 days): nothing to delete")
    for table, n in deleted.items():
        console.print(f"{verb} {n:,} rows from {table}")
    for note in notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"previous gc: {local_time(int(last)) if last else 'never'}")
    return 0


def _dry_run_notes(
    store: Store, version: int, retention: dict[str, int], counted: dict[str, int]
) -> list[str]:
    """What a dry run, which reads the store as it is, cannot count as gc would, or must say first; the
    tables a migration gc would make first are added to ``counted`` (empty: 0)."""
    from agent_otel.store.retention import RETENTION_RULES

    latest = store.latest_version
    if version > latest:
        return [
            f"the store's schema {version} is newer than this agent-otel's ({latest}): rows of tables it "
            "added are not counted, and gc itself refuses it (upgrade agent-otel)"
        ]
    notes = []
    if version < latest:
        notes.append(f"gc would first migrate the store from schema {version} to {latest}")
        for rule in RETENTION_RULES:
            if retention.get(rule.days_key) and rule.since > version:
                counted.setdefault(rule.table, 0)
    if store.kind == "sqlite" and not os.access(store.target.location, os.W_OK):
        notes.append("the store's file is read-only here: gc itself could not delete from it")
    return notes
