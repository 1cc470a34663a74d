"""Stores across agent-otel versions: a store another version migrates while this one reads or writes it,
a store of a schema newer than this code, and migrations cut short."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.store import seed
from tests.store.pg import PostgresServer

psycopg = pytest.importorskip("psycopg")


@pytest.mark.e2e
def test_tail_keeps_following_a_postgresql_store_a_newer_version_migrates(postgres: PostgresServer):
    """`agent-otel tail` left running while a newer agent-otel adds columns to the tables (its migration):
    it went on to print the runs that end afterwards. It ended with exit 2 and `FeatureNotSupported: cached
    plan must not change result type`: psycopg prepares a query run five times, and a prepared `SELECT *`
    may not change its columns."""
    from tests.cli.conftest import COMMAND, wait_for_line

    url = postgres.new_database()
    seed.write(url, seed.run_records(seed.now_ms(), run_id="b" * 32))
    tail = subprocess.Popen(
        [*COMMAND, "tail", "--store", url, "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "ENDED" in tail.stdout.readline()
        assert tail.stdout.readline().startswith("b" * 12)
        time.sleep(1.5)  # well over five polls: the query is prepared by now
        with psycopg.connect(url, autocommit=True) as conn:  # what a migration 8 of a later version does
            conn.execute("ALTER TABLE agent_runs ADD COLUMN later_version TEXT")
            conn.execute("ALTER TABLE agent_events ADD COLUMN later_version TEXT")
        seed.write(url, seed.run_records(seed.now_ms(), run_id="a" * 32))
        found = wait_for_line(tail, "a" * 12, timeout_s=30)
        assert tail.poll() is None, f"tail ended: {tail.stderr.read()}"
        assert found, "tail did not show the run that ended after the migration"
    finally:
        tail.terminate()
        _, err = tail.communicate(timeout=30)
    assert "cached plan" not in err, err


@pytest.mark.e2e
def test_an_older_postgresql_store_a_role_may_not_migrate_is_one_clear_line(postgres: PostgresServer):
    """The store's tables belong to a deployment role and the agents (and dashboards) connect as one that
    may only read and write rows. After an upgrade, the first agent-otel of the new version to open the
    store must migrate it, and this role may not: one line saying the schema is older and that it must be
    migrated once by a role that owns the tables (it said only `permission denied for schema public`), the
    store untouched, the agent unaffected."""
    import unittest.mock

    from agent_otel.store import open_store, schema
    from agent_otel.store.location import Target
    from tests.cli.conftest import COMMAND
    from tests.store.conftest import run_python

    url = postgres.new_database()
    old = {kind: steps[:3] for kind, steps in schema.MIGRATIONS.items()}
    with unittest.mock.patch.dict(schema.MIGRATIONS, old):
        store = open_store(Target("postgresql", url))
        assert store.schema_version() == 3
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO agent_runs (run_id, agent, created_at, status) "
            "VALUES ('r1', 'old', now(), 'running')"
        )
        conn.execute("DO $$ BEGIN CREATE ROLE app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app")
        conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app")
    app = url.replace("agent_otel@", "app@")
    proc = subprocess.run([*COMMAND, "runs", "--store", app], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert f"its schema version 3 is older than this agent-otel's ({schema.LATEST_VERSION})" in line, line
    assert "permission denied" in line and "owns its tables" in line, line
    agent = run_python(
        "import sys, agent_otel\n"
        "agent_otel.setup('app', store=sys.argv[1], instrument=False,\n"
        "                 config={'exporter.probe_local': False})\n"
        "with agent_otel.run('a'):\n"
        "    pass\n"
        "agent_otel.shutdown(5)\n"
        "print('ran')\n",
        app,
    )
    assert agent.returncode == 0 and "ran" in agent.stdout, agent.stderr
    (warning,) = [x for x in agent.stderr.splitlines() if "run store" in x]
    assert "its schema version 3 is older" in warning and "owns its tables" in warning, warning
    assert "store records (store unavailable)" in agent.stderr, agent.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM agent_otel_meta WHERE key = 'schema_version'").fetchall() == [
            ("3",)
        ]
        assert conn.execute("SELECT run_id FROM agent_runs").fetchall() == [("r1",)]


def _old_writer_rows(target: Any, created_at_ms: int, n: int) -> None:
    """Runs as an agent-otel from before schema 6 writes them (runs and events, no summaries): a process
    started before the upgrade keeps its connection and writes on after another one migrated the store."""
    from agent_otel.store import open_store

    store = open_store(target)
    try:
        with store.transaction():
            for i in range(n):
                run_id = f"old{i:029d}"
                store.execute(
                    "INSERT INTO agent_runs (run_id, agent, created_at, ended_at, duration_ms, tool_calls, "
                    "steps, llm_calls, retries, stop_reason, status, cost_usd) "
                    "VALUES (?, 'support-agent', ?, ?, 500, 1, 1, 0, 0, 'completed', 'success', 0.5)",
                    (run_id, store._ts(created_at_ms + i), store._ts(created_at_ms + i + 500)),
                )
                store.execute(
                    "INSERT INTO agent_events (run_id, kind, ts_ms, step_id, tool, status) "
                    "VALUES (?, 'tool_result', ?, 1, 'search', 'ok')",
                    (run_id, created_at_ms + i),
                )
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def test_runs_an_older_writer_adds_after_the_upgrade_are_counted_in_the_summaries(kind, tmp_path, request):
    """An agent-otel from before schema 6 still running after the upgrade writes runs without summarizing
    them. `stats` and `drift` read the summaries of whole hours over long periods: those runs were left
    out (a period of 8 runs read as 3) until the summaries were rebuilt by hand. The store sink of this
    version finds the recent hours whose summaries miss runs and summarizes them again."""
    from agent_otel.store import open_store, periods
    from agent_otel.store.location import Target

    if kind == "sqlite":
        path = str(tmp_path / "agent-otel.db")
    else:
        path = request.getfixturevalue("postgres").new_database()
    target = Target(kind, path)
    now = seed.now_ms()
    hour = now - now % seed.HOUR_MS - 3 * seed.HOUR_MS  # a whole hour, three hours ago
    for i in range(3):
        seed.write(path, seed.run_records(hour + 60_000 * (i + 1)))
    _old_writer_rows(target, hour + 30 * 60_000, 5)

    def figures(method: str) -> dict:
        store = open_store(target, writer=False)
        try:
            return periods.period(store, hour, hour + seed.HOUR_MS, method=method)
        finally:
            store.close()

    assert figures("exact")["runs"] == 8
    seed.write(path, seed.run_records(seed.now_ms()))  # a process of this version writes a run now
    summarized, exact = figures("summarized"), figures("exact")
    assert summarized["runs"] == 8, summarized
    for key in ("stop_reasons", "failing_tools"):
        assert summarized[key] == exact[key]
    assert summarized["spend_per_run_usd"]["total"] == pytest.approx(3 * 0.01 + 5 * 0.5)
    assert summarized["tool_calls_per_run"] == exact["tool_calls_per_run"]


STORES = Path(__file__).parent.parent / "data" / "stores"


def _with_stores() -> str:
    """PYTHONPATH for `agent-otel replay --call agent:handle`: the stores' agent, before the agent-otel the
    tests run (a checkout's ``src`` on PYTHONPATH, else the installed one)."""
    return os.pathsep.join(p for p in (str(STORES), os.environ.get("PYTHONPATH")) if p)


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6, 7])
def test_a_store_written_by_an_older_version_reads_the_same_after_the_upgrade(version, tmp_path):
    """A store each earlier schema's agent-otel wrote (tests/data/stores/schema*.sql, a dump of what the
    last commit of main at that schema stored: 7 runs, 28 events, replay snapshots from schema 2) opened by
    this version: migrated, and every command gives the answers the runs hold."""
    import datetime as dt
    import json
    import sqlite3

    from agent_otel.store import open_store, periods, schema
    from agent_otel.store.location import Target
    from tests.cli.conftest import CLI

    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as conn:
        conn.executescript((STORES / f"schema{version}.sql").read_text())
    cli = CLI(tmp_path / "home")
    day = sqlite3.connect(path).execute("SELECT substr(min(created_at), 1, 10) FROM agent_runs").fetchone()[0]
    until = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    period = ("--since", day, "--until", until)

    listed = cli("runs", "--store", path, *period, "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert sorted(r["agent"] for r in runs) == [f"agent-v{version}"] * 6 + [f"sub-v{version}"]
    assert all(r["stop_reason"] == "completed" and r["status"] == "success" for r in runs)
    failing = next(r for r in runs if r["tool_calls"] == 3)  # a run with the failing tool call

    shown = cli("show", failing["run_id"], "--store", path)
    assert shown.returncode == 0, shown.stderr
    steps = re.findall(r"\d+  tool (\S+)  (\S+)", shown.stdout)
    assert steps == [("lookup", "ok"), ("lookup", "ok"), ("fail", "error")], shown.stdout
    assert "ValueError" in shown.stdout and "gpt-4o" in shown.stdout

    stats = cli("stats", "--store", path, *period, "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["runs"] == 7 and figures["tokens_per_request"]["requests"] == 6
    assert figures["tool_calls_per_run"]["mean"] == pytest.approx(15 / 7)
    assert figures["failing_tools"] == [
        {"tool": "fail", "error": "ValueError", "failures": 2, "calls": 2, "error_rate": 1.0}
    ]
    exported = cli("export", "--store", path, *period)
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 28, exported.stderr
    assert cli("drift", "--store", path).returncode == 0

    replayed = cli(
        "replay",
        failing["run_id"],
        "--store",
        path,
        "--call",
        "agent:handle",
        env={"PYTHONPATH": _with_stores()},
    )
    if version == 1:  # no replay recording before schema 2: said so
        assert replayed.returncode == 2 and "by an agent-otel without replay" in replayed.stderr
    else:
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "matched in order 3   served from snapshots 3" in replayed.stdout, replayed.stdout
        assert "MATCH" in replayed.stdout

    store = open_store(Target("sqlite", path), writer=False)
    try:
        assert store.schema_version() == schema.LATEST_VERSION
        start = int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)
        for method in ("exact", "summarized"):
            assert periods.period(store, start, start + 86_400_000, method=method)["runs"] == 7
    finally:
        store.close()
    dry = cli("gc", "--dry-run", "--store", path)
    assert dry.returncode == 0, dry.stderr
    old = dt.date.fromisoformat(day) < dt.date.today() - dt.timedelta(days=31)
    assert f"would delete {7 if old else 0} rows from agent_runs" in dry.stdout, dry.stdout


# Open the store at argv[1] with this version, SIGKILLed at its argv[2]-th migration statement.
KILLED_MID_MIGRATION = """
import os, signal, sys
from agent_otel.store import db, schema
from agent_otel.store.location import resolve
statements = {s for _, steps in schema.MIGRATIONS["sqlite"] for s in steps}
seen, execute = [], db.Store.execute
def killing(self, text, params=()):
    if text in statements:
        seen.append(text)
        if len(seen) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    return execute(self, text, params)
db.Store.execute = killing
db.open_store(resolve(sys.argv[1]))
"""


def _columns(path: str) -> dict[str, list[str]]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        tables = [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


@pytest.mark.parametrize("at", [1, 6, 9, 13])  # a statement of migration 4, 5, 6, 7
def test_a_migration_killed_midway_leaves_the_store_as_it_was_and_the_next_open_finishes_it(at, tmp_path):
    """The process migrating a schema-3 store is SIGKILLed at a statement of migration 4, 5, 6 or 7: the
    store is at schema 3 with its tables as they were (all migrations are one transaction), and the next
    process to open it migrates it and finds every run."""
    import sqlite3

    from agent_otel.store import open_store, schema
    from agent_otel.store.location import Target
    from tests.store.conftest import run_python

    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as conn:
        conn.executescript((STORES / "schema3.sql").read_text())
    before = _columns(path)
    killed = run_python(KILLED_MID_MIGRATION, path, str(at))
    assert killed.returncode == -9, killed.stderr
    assert _columns(path) == before
    store = open_store(Target("sqlite", path))
    try:
        assert store.schema_version() == schema.LATEST_VERSION
        assert len(store.runs(limit=100)) == 7
    finally:
        store.close()


@pytest.mark.e2e
def test_a_postgresql_migration_failing_midway_leaves_the_store_as_it_was(postgres: PostgresServer):
    """A statement of migration 6 fails (here: injected) while a schema-3 PostgreSQL store is migrated:
    the store stays at schema 3, no table or column of migrations 4 and 5 is left behind, and the next
    open migrates it."""
    import unittest.mock

    from agent_otel.store import db, open_store, schema
    from agent_otel.store.location import Target

    url = postgres.new_database()
    target = Target("postgresql", url)
    with unittest.mock.patch.dict(schema.MIGRATIONS, {k: v[:3] for k, v in schema.MIGRATIONS.items()}):
        open_store(target).close()
    failing = schema.MIGRATIONS["postgresql"][5][1][0]  # migration 6's first statement
    execute = db.Store.execute

    def fail_at(self, text, params=()):
        if text == failing:
            raise psycopg.errors.InsufficientPrivilege("injected: permission denied for schema public")
        return execute(self, text, params)

    with unittest.mock.patch.object(db.Store, "execute", fail_at), pytest.raises(db.StoreError) as info:
        open_store(target)
    assert "its schema version 3 is older" in str(info.value)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM agent_otel_meta WHERE key = 'schema_version'").fetchone() == (
            "3",
        )
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'agent_runs'"
            )
        }
        assert not {"pid", "host", "conversation_id"} & columns
    store = open_store(target)
    try:
        assert store.schema_version() == schema.LATEST_VERSION
    finally:
        store.close()


def test_a_store_of_a_newer_schema_is_read_but_never_written(tmp_path):
    """Rolling back: a store a later agent-otel migrated (its schema version above ours). The agent runs
    on and its records are dropped and counted, with one line saying why; nothing is written to the store;
    the reading commands read what it holds; gc refuses in one line."""
    import json
    import sqlite3

    from agent_otel.store import schema
    from tests.cli.conftest import CLI, one_line_error
    from tests.store.conftest import run_python

    path = str(tmp_path / "newer.db")
    seed.write(path, seed.run_records(seed.now_ms() - 60_000, run_id="c" * 32))
    newer = schema.LATEST_VERSION + 1
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE agent_otel_meta SET value = ? WHERE key = 'schema_version'", (str(newer),))

    def dump() -> list[str]:
        with sqlite3.connect(path) as conn:
            return list(conn.iterdump())

    before = dump()
    agent = run_python(
        "import sys, agent_otel\n"
        "agent_otel.setup('app', store=sys.argv[1], instrument=False,\n"
        "                 config={'exporter.probe_local': False})\n"
        "with agent_otel.run('a') as r:\n"
        "    r.call_tool('t', lambda: 1)\n"
        "agent_otel.shutdown(5)\n"
        "print('ran')\n",
        path,
    )
    assert agent.returncode == 0 and "ran" in agent.stdout, agent.stderr
    lines = [x for x in agent.stderr.splitlines() if "store" in x]
    assert (
        f"its schema version {newer} is newer than this agent-otel supports ({schema.LATEST_VERSION}); "
        "upgrade agent-otel" in lines[0]
    ), agent.stderr
    assert "store records (store unavailable)" in lines[-1], agent.stderr
    assert dump() == before

    cli = CLI(tmp_path / "home")
    for command in (["runs"], ["show", "c" * 8], ["stats"], ["export"], ["drift"]):
        proc = cli(*command, "--store", path)
        assert proc.returncode == 0, (command, proc.stderr)
        assert command[0] in ("drift", "stats") or "c" * 8 in proc.stdout, (command, proc.stdout)
    assert json.loads(cli("stats", "--store", path, "--json").stdout)["runs"] == 1
    line = one_line_error(cli("gc", "--store", path))
    assert f"its schema version {newer} is newer than this agent-otel supports" in line
    assert dump() == before


def test_a_run_an_older_version_left_running_reads_abandoned_a_day_later(tmp_path):
    """A process of an agent-otel from before schema 4 killed mid-run left its row `running`, with no
    process to check (no host, pid, start) and no deadline: it read `running` for ever after the upgrade.
    A day after it started it reads `abandoned`; a recent one still reads `running`."""
    import json
    import sqlite3

    from tests.cli.conftest import CLI

    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as conn:
        conn.executescript((STORES / "schema3.sql").read_text())
        for run_id, ago in (("d" * 32, "-2 days"), ("e" * 32, "-10 minutes")):  # as schema 3's sink wrote it
            conn.execute(
                "INSERT INTO agent_runs (run_id, agent, created_at, status) "
                "VALUES (?, 'killed', strftime('%Y-%m-%d %H:%M:%f', 'now', ?), 'running')",
                (run_id, ago),
            )
    cli = CLI(tmp_path / "home")
    listed = {
        r["run_id"]: r for r in json.loads(cli("runs", "--store", path, "--agent", "killed", "--json").stdout)
    }
    assert listed["d" * 32]["status"] == "abandoned" and listed["d" * 32]["stop_reason"] is None
    assert "before schema 4" in listed["d" * 32]["abandoned"]
    assert listed["e" * 32]["status"] == "running"
    stats = json.loads(cli("stats", "--store", path, "--agent", "killed", "--since", "3d", "--json").stdout)
    assert (stats["running"], stats["abandoned"]) == (1, 1)


def test_tool_arguments_hash_as_they_did_under_earlier_schemas(tmp_path):
    """A replay matches a recorded call by its ``args_sha``: the calls of tests/data/stores/hashes.py (38
    kinds of argument: floats, NaN, big ints, bytes, sets, datetimes, objects, deep and long values, odd keys;
    keyword, positional, defaulted and ``**kw`` arguments; ``run.call_tool``) hash as they did under the code
    of schemas 2 to 6 (hashes.json), so a run recorded by it replays."""
    import json

    from tests.store.conftest import run_python

    golden = json.loads((STORES / "hashes.json").read_text())["args_sha"]
    proc = run_python((STORES / "hashes.py").read_text(), str(tmp_path / "hashes.db"))
    assert proc.returncode == 0, proc.stderr
    now = json.loads(proc.stdout)
    assert now.keys() == golden.keys()
    # The one deliberate change: a path hashed its private caches, which differ between Python versions
    # (3.12's differed from 3.11's) and change when the path is first printed; it hashes its text now
    # (tests/test_hashing.py), so no recording's path argument could be relied on to match anyway.
    del now["path"], golden["path"]
    assert {k: v for k, v in now.items() if golden.get(k) != v} == {}


def test_snapshot_data_an_older_versions_gc_leaves_is_purged_without_waiting_for_a_day(tmp_path):
    """An agent-otel of schema 6 still running after the upgrade does the day's gc (it records
    ``last_gc_ms``) but does not know ``agent_snapshot_data`` (schema 7): the replay data past
    ``retention.tool_snapshot_days`` stayed in the file for as long as such a process won the day's gc. A
    store sink of this version that finds rows older than their retention by over a day runs its gc."""
    import sqlite3

    from agent_otel.store import StoreSink, open_store
    from agent_otel.store.location import Target

    path = str(tmp_path / "agent-otel.db")
    now = seed.now_ms()
    seed.write(path, seed.run_records(now - 60_000))
    with sqlite3.connect(
        path
    ) as conn:  # written 20 days ago by this version, left by the older gc an hour ago
        conn.execute(
            "INSERT INTO agent_snapshot_data (created_at_ms, key_id, data) VALUES (?, '', ?)",
            (now - 20 * seed.DAY_MS, b'{"secret": 1}'),
        )
        conn.execute("UPDATE agent_otel_meta SET value = ? WHERE key = 'last_gc_ms'", (str(now - 3_600_000),))
    target = Target("sqlite", path)
    sink = StoreSink(target, {"logs_days": 30, "tool_snapshot_days": 14})
    fresh = seed.run_records(now)
    sink.write(fresh)
    for _ in range(100):  # gc runs in slices between writes
        with sqlite3.connect(path) as conn:
            left = conn.execute("SELECT count(*) FROM agent_snapshot_data").fetchone()[0]
        if not left:
            break
        time.sleep(0.05)
        sink.write([r for r in fresh if r[0] == "run"])
    sink.close()
    assert left == 0
    store = open_store(target)
    try:
        assert int(store.meta("last_gc_ms") or 0) >= now
    finally:
        store.close()


def test_a_schema7_store_recorded_on_after_the_upgrade_replays_both_forms_and_gc_deletes_both(tmp_path):
    """A store the agent-otel of schema 7 recorded (tests/data/stores/schema7.sql: a row per call in
    agent_tool_snapshots, small data in agent_snapshot_data) goes on being recorded by this version, whose
    calls go into packs (agent_snapshot_packs, schema 8) and inputs into their runs' rows. A replay serves
    the runs of either form; doctor counts both; gc, past retention.tool_snapshot_days, deletes both, and
    then a replay says so."""
    import json
    import sqlite3

    from agent_otel.store import open_store
    from agent_otel.store.location import Target
    from tests.cli.conftest import CLI

    path = str(tmp_path / "agent-otel.db")
    with sqlite3.connect(path) as conn:
        conn.executescript((STORES / "schema7.sql").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(AGENT_OTEL_HOME=str(tmp_path / "home"), AGENT_OTEL_PROBE_LOCAL="false")
    proc = subprocess.run(  # four runs recorded by this version into the store it migrates
        [sys.executable, str(STORES / "agent.py"), path, "4", "v8"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    cli = CLI(tmp_path / "home")
    day = sqlite3.connect(path).execute("SELECT substr(min(created_at), 1, 10) FROM agent_runs").fetchone()[0]
    listed = cli("runs", "--store", path, "--since", day, "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    old = next(r["run_id"] for r in runs if r["agent"] == "agent-v7" and r["tool_calls"] == 3)
    new = next(r["run_id"] for r in runs if r["agent"] == "agent-v8" and r["tool_calls"] == 3)
    with sqlite3.connect(path) as conn:
        assert conn.execute(
            "SELECT count(*) FROM agent_tool_snapshots WHERE run_id = ?", (old,)
        ).fetchone() == (3,)
        assert conn.execute(
            "SELECT count(*) FROM agent_snapshot_packs WHERE run_id = ?", (old,)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM agent_tool_snapshots WHERE run_id = ?", (new,)
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT sum(calls) FROM agent_snapshot_packs WHERE run_id = ?", (new,)
        ).fetchone() == (3,)
    for run_id in (old, new):
        replayed = cli(
            "replay", run_id, "--store", path, "--call", "agent:handle", env={"PYTHONPATH": _with_stores()}
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "matched in order 3   served from snapshots 3" in replayed.stdout, replayed.stdout

    store = open_store(Target("sqlite", path))
    try:
        counts = store.counts()
        # 7 runs of schema 7 (15 calls) and 5 of this version (10 calls: 2, 2, 3, 2 and a sub-agent's 1)
        assert (counts["tool_snapshots"], counts["snapshot_runs"]) == (15 + 10, 7 + 5)
        later = seed.now_ms() + 15 * seed.DAY_MS  # past the 14 days of retention.tool_snapshot_days
        retention = {"logs_days": 0, "tool_snapshot_days": 14}
        would = store.gc(retention, now_ms=later, dry_run=True)
        deleted = store.gc(retention, now_ms=later)
        assert would == deleted
        assert deleted["agent_tool_snapshots"] == 15 and deleted["agent_snapshot_data"] == 22
        assert deleted["agent_snapshot_runs"] == 12 and deleted["agent_snapshot_packs"] >= 5
        for table in (
            "agent_tool_snapshots",
            "agent_snapshot_data",
            "agent_snapshot_packs",
            "agent_snapshot_runs",
        ):
            assert store.query(f"SELECT count(*) AS n FROM {table}") == [{"n": 0}], table
    finally:
        store.close()
    replayed = cli(
        "replay", new, "--store", path, "--call", "agent:handle", env={"PYTHONPATH": _with_stores()}
    )
    assert replayed.returncode == 2 and "have expired and were deleted by gc" in replayed.stderr, (
        replayed.stderr
    )
