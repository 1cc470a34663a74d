"""``agent-otel doctor``: the configuration in force and where each value came from, whether the OTLP
endpoint answers, and the state of the run store. Exits 1 when a check fails."""

from __future__ import annotations

import argparse
import os
import socket
import stat
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from agent_otel._version import __version__
from agent_otel.cli.common import Context, add_json, damage_hint, local_time, print_json
from agent_otel.store import StoreError, home, open_store, retention_from_config

HELP = "show the effective config with sources, whether OTLP answers, and the store's state"


#: How long ``doctor`` lets SQLite's quick_check run: a whole check takes about 1 s per 300 MB of store, so
#: a large store is checked in full only with ``--integrity``.
QUICK_CHECK_S = 0.3
FULL_CHECK_S = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--integrity",
        action="store_true",
        help=f"check every page of a SQLite store however long it takes (default: {QUICK_CHECK_S:g} s)",
    )
    add_json(parser)


def check_otlp(cfg: Any) -> dict[str, Any]:
    # Not from agent_otel.sdk, which would load the OpenTelemetry SDK just to name an endpoint.
    from agent_otel.otlp_endpoint import resolve_otlp, with_scheme

    protocol, endpoint, note = resolve_otlp(cfg)
    from agent_otel.store.location import redact_url

    shown = redact_url(endpoint) if endpoint else endpoint  # a password in the user info is not printed
    out: dict[str, Any] = {"endpoint": shown, "protocol": protocol, "note": note, "answers": None}
    if not endpoint:
        return out
    parsed = urlparse(with_scheme(endpoint))
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.hostname or "localhost"
    try:
        with socket.create_connection((host, port), timeout=1.0):
            out["answers"] = True
    except OSError as exc:
        out["answers"] = False
        out["error"] = exc.strerror or str(exc)
    return out


def check_store(ctx: Context, check_s: float = QUICK_CHECK_S) -> dict[str, Any]:
    target = ctx.target
    out: dict[str, Any] = {"enabled": target is not None, "source": ctx.config.source("store")}
    if target is None:
        return out
    out.update(kind=target.kind, location=target.display, retention_days=retention_from_config(ctx.config))
    if target.kind == "sqlite":
        path = target.location
        out["exists"] = os.path.exists(path)
        if not out["exists"]:
            problem = _cannot_create(path)
            out["ok"] = problem is None
            if problem:
                out["error"] = f"cannot be created: {problem}; runs are not stored until it can be"
            else:
                out["note"] = "created by the first run with agent_otel.setup() (or `agent-otel demo`)"
            return out
    try:
        store = open_store(target, create=False, writer=False)  # tightens the modes it may (owner_only)
    except StoreError as exc:
        out["ok"] = False
        out["error"] = f"{exc}{damage_hint(str(exc), target)}"
        return out
    finally:
        if target.kind == "sqlite":
            out.update(_modes(target.location))
    try:
        out["integrity"] = check = store.integrity(check_s)
        if check["problems"]:
            out["ok"] = False
            out["error"] = (
                f"the store is damaged (SQLite quick_check: {'; '.join(check['problems'][:2])}); "
                f"commands reading the damaged part fail. Salvage what is left with: sqlite3 "
                f"{target.location} .recover | sqlite3 recovered.db"
            )
        out["schema_version"] = store.schema_version()
        out["latest_schema_version"] = store.latest_version
        out["size_bytes"] = store.size_bytes()
        out["read_only"] = store.read_only
        if store.kind == "postgresql":
            out["pooled"] = store.pooled  # type: ignore[attr-defined]
        newer = out["schema_version"] > out["latest_schema_version"]
        if newer and out.get("ok") is not False:
            # The SDK refuses to write such a store (its runs are then lost), gc refuses to delete from
            # it: that is a failure to report, even though this process can still read some of it.
            out["ok"] = False
            out["error"] = (
                f"its schema version {out['schema_version']} is newer than this agent-otel supports "
                f"({out['latest_schema_version']}); upgrade agent-otel"
            )
        out.update(store.counts())
        last = store.meta("last_gc_ms")
        out["last_gc_ms"] = int(last) if last else None
        if not newer and not check["problems"]:
            out["ok"] = True
    except Exception as exc:
        out["ok"] = False
        out.setdefault("error", str(exc).splitlines()[0])
    finally:
        store.close()
    return out


def _cannot_create(path: str) -> str | None:
    """Why the SDK could not create a SQLite store at ``path``, or None: it creates the file, and of the
    directories only those inside the agent-otel home, with every missing parent of the home (as
    ``os.makedirs``); a missing directory elsewhere is taken for a typo.

    Before, a home whose parent did not exist yet (``AGENT_OTEL_HOME=/srv/agent-otel/home``) was called
    impossible (exit 1) though the first run creates it, and a home naming a file (where the SDK drops
    every run) was called fine, "created by the first run", exit 0."""
    directory = os.path.dirname(os.path.abspath(path))
    agent_home = home()
    inside_home = os.path.commonpath([agent_home, directory]) == agent_home
    while not os.path.isdir(directory):
        if os.path.exists(directory):
            return f"{directory} is a file, not a directory"
        if not inside_home:
            return (
                f"the directory {directory} does not exist (agent-otel creates only its home, {agent_home})"
            )
        directory = os.path.dirname(directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_mount(directory) else "no write permission"
        return f"{directory} is not writable ({why})"
    return None


def _read_only_mount(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _modes(path: str) -> dict[str, Any]:
    """The store file's and directory's modes, and a warning for each that other users can get into.

    A warning, not a failure: the store works, but others may read the arguments, results and
    snapshots it keeps. (Opening the store already tightened what this user owns; what is left is
    another user's, or a directory agent-otel does not manage.)"""
    out: dict[str, Any] = {"warnings": []}
    for key, what, item, want in (
        ("file_mode", "store file", path, "600"),
        ("dir_mode", "store directory", os.path.dirname(path), "700"),
    ):
        try:
            mode = stat.S_IMODE(os.stat(item).st_mode)
        except OSError:
            continue
        out[key] = oct(mode)
        if key == "dir_mode" and mode & stat.S_ISVTX:
            continue  # a shared directory such as /tmp: sticky on purpose; the file's mode is what counts
        if mode & 0o077:
            out["warnings"].append(
                f"the {what} {item} is open to other users (mode {oct(mode)}); chmod {want} {item}"
            )
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    cfg = ctx.config
    config_rows = [{"key": k, "value": _printable(k, v), "source": s} for k, v, s in cfg.items()]
    otlp = check_otlp(cfg)
    store = check_store(ctx, FULL_CHECK_S if args.integrity else QUICK_CHECK_S)
    failed = (otlp["answers"] is False) or (store.get("enabled") and store.get("ok") is False)
    if args.json:
        print_json(
            {
                "version": __version__,
                "config_file": cfg.path,
                "config": config_rows,
                "otlp": otlp,
                "store": store,
                "ok": not failed,
            }
        )
        return 1 if failed else 0
    render(ctx, cfg, config_rows, otlp, store)
    return 1 if failed else 0


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _printable(key: str, value: Any) -> Any:
    """A configuration value as doctor prints it (text and ``--json``): a URL without its password."""
    if key in ("store", "exporter.endpoint") and isinstance(value, str):
        from agent_otel.store.location import redact_url

        return redact_url(value)
    return value


def render(
    ctx: Context, cfg: Any, rows: list[dict[str, Any]], otlp: dict[str, Any], store: dict[str, Any]
) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console = ctx.console
    console.print(
        f"[bold]agent-otel {__version__}[/]   config file: {cfg.path or 'none (set AGENT_OTEL_CONFIG)'}"
    )
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="effective configuration", title_justify="left")
    t.add_column("KEY", no_wrap=True)
    t.add_column("VALUE")
    t.add_column("SOURCE", no_wrap=True)
    for r in rows:
        value = r["value"]
        source = r["source"]
        t.add_row(
            r["key"],
            escape(repr(value) if isinstance(value, str) else str(value)),
            source if source != "default" else f"[dim]{source}[/]",
        )
    console.print(t)

    console.print("[bold]OTLP[/]")
    if otlp["endpoint"]:
        state = (
            "[green]answers[/]"
            if otlp["answers"]
            else f"[red]does not answer[/] ({escape(otlp.get('error') or '')})"
        )
        console.print(
            f"  {otlp['protocol']} {escape(otlp['endpoint'])}: {state}   [dim]{escape(otlp['note'])}[/]"
        )
    else:
        console.print(f"  export is off: {escape(otlp['note'])}")

    console.print("[bold]run store[/]")
    if not store["enabled"]:
        console.print(f"  disabled (store: false, from {store['source']})")
        return
    console.print(f"  {store['kind']} {escape(store['location'])}   [dim](from {store['source']})[/]")
    if store.get("exists") is False and store.get("ok") is False:
        console.print(f"  [red]{escape(store['error'])}[/]")
    elif store.get("exists") is False:
        console.print(f"  not created yet: {store['note']}")
    elif store.get("ok") is False and "runs" not in store:
        console.print(f"  [red]not usable[/]: {escape(store['error'])}")
    else:
        if store.get("ok") is False and (store.get("integrity") or {}).get("problems"):
            console.print(f"  [red]damaged[/]: {escape(store['error'])}")
        elif store.get("ok") is False:  # readable, but not by this agent-otel's writers (a newer schema)
            console.print(f"  [red]cannot be written[/]: {escape(store['error'])}")
        modes = ""
        if "file_mode" in store:
            modes = f"   file {store['file_mode']}, dir {store.get('dir_mode', '?')}"
        console.print(f"  size {_size(store.get('size_bytes'))}{modes}")
        if store.get("read_only"):
            console.print("  opened read-only: this process cannot write it (gc and new runs need that)")
        if store.get("pooled"):
            console.print(
                "  through a connection pooler (PgBouncer or alike): statements are not prepared, "
                "session and transaction pooling both work"
            )
        for warning in store.get("warnings") or ():
            console.print(f"  [yellow]warning[/]: {escape(warning)}")
        console.print(
            f"  schema version {store['schema_version']} (this agent-otel: {store['latest_schema_version']})"
        )
        check = store.get("integrity") or {}
        if check.get("checked") and not check.get("problems"):
            console.print("  integrity: SQLite quick_check found no damaged page")
        elif check.get("note"):
            console.print(f"  integrity: {escape(check['note'])}")
        about = set(store.get("estimated") or ())

        def n(key: str) -> str:
            return f"~{store[key]:,}" if key in about else f"{store[key]:,}"

        console.print(
            f"  {n('runs')} runs, {n('events')} events; "
            f"oldest run {local_time(store.get('oldest_run_ms'))}, "
            f"newest {local_time(store.get('newest_run_ms'))}"
            + ("   [dim](~: estimated)[/]" if about else "")
        )
        if store.get("snapshots_hidden"):
            console.print(
                "  tool snapshots (for replay): not readable by this role (their tables are the owner's: "
                f"{', '.join(store['snapshots_hidden'])})"
            )
        else:
            _snapshot_line(console, store, n)
    keep = store["retention_days"]
    console.print(
        f"  retention: runs and events {keep['logs_days'] or 'forever'} days, tool snapshots "
        f"{keep['tool_snapshot_days'] or 'forever'} days; last gc "
        f"{local_time(store.get('last_gc_ms')) if store.get('last_gc_ms') else 'never'} (runs at most daily)"
    )


def _snapshot_line(console: Any, store: dict[str, Any], n: Callable[[str], str]) -> None:
    about = set(store.get("estimated") or ())
    sealed = store["encrypted_blobs"]
    size = ("~" if "snapshot_bytes" in about else "") + _size(store["snapshot_bytes"])
    console.print(
        f"  tool snapshots (for replay): {n('tool_snapshots')} calls of "
        f"{n('snapshot_runs')} runs, {n('snapshot_blobs')} results and inputs stored "
        f"({size}"
        + (
            # "not encrypted" only from a count: a sample without a sealed result says "~0 encrypted"
            f", {n('encrypted_blobs')} encrypted"
            if sealed or "encrypted_blobs" in about
            else ", not encrypted"
            if store["snapshot_blobs"]
            else ""
        )
        + ")"
    )
