"""The PostgreSQL store as teams deploy it: behind PgBouncer, over TLS, with roles that may not create
tables, in a schema of its own, many workers starting at once, limits a DBA sets, a hot standby.
Real servers only (tests/store/pg.py: Debian's postgresql and pgbouncer)."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator

import pytest

from agent_otel.store import StoreSink
from agent_otel.store.location import Target
from tests.cli.conftest import COMMAND
from tests.store import seed
from tests.store.pg import PgBouncer, PostgresServer

pytestmark = pytest.mark.e2e
psycopg = pytest.importorskip("psycopg")


def _count(url: str, table: str = "agent_runs") -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _store_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "run store" in r.getMessage()]


def _cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--store", url, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.fixture(params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, postgres: PostgresServer) -> Iterator[PgBouncer]:
    pooler = PgBouncer(postgres, request.param)
    pooler.start()
    try:
        yield pooler
    finally:
        pooler.stop()


def test_behind_pgbouncer_writers_and_the_cli_share_server_sessions_safely(postgres, bouncer, caplog):
    """PgBouncer hands each transaction (transaction pooling) to whichever server session is free, shared
    with every other client. Statements psycopg prepared in one session were missing, or named alike for
    another statement, in the next: `agent-otel gc` after a writer failed with `prepared statement
    "_pg3_0" already exists`, and a second writer's store went off for its process. The planner settings
    agent-otel gives its own session leaked into the application's (JIT off for its queries)."""
    url = postgres.new_database()
    pooled = bouncer.url(url)
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sinks = [StoreSink(Target("postgresql", pooled), {"logs_days": 30}) for _ in range(2)]
        try:
            for i in range(12):  # psycopg prepares a statement after its 5th run
                for sink in sinks:
                    sink.write(seed.run_records(seed.now_ms() - i))
            assert [(s.written, s.dropped, s.error) for s in sinks] == [(108, 0, None)] * 2
        finally:
            for sink in sinks:
                sink.close()
    assert not _store_lines(caplog)
    assert _count(url) == 24
    for args in (["gc"], ["runs"], ["stats"], ["doctor"]):
        proc = _cli(pooled, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    # The application's own sessions through the pooler keep the server's settings.
    with psycopg.connect(pooled, autocommit=True) as conn:
        assert [conn.execute("SHOW jit").fetchone()[0] for _ in range(4)] == ["on"] * 4


# The README's "PostgreSQL in production" grants, run as the owner after it created the tables.
GRANTS = [
    "GRANT USAGE ON SCHEMA public TO agent_app, agent_reader",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO agent_app",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO agent_app",
    "GRANT SELECT ON agent_runs, agent_events, agent_run_summaries, agent_otel_meta TO agent_reader",
]


def _roles(url: str, *roles: str) -> list[str]:
    """``roles`` as login roles without any privilege on the database's tables; their URLs."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        for role in roles:
            conn.execute(
                f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
            conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {role}")
    return [url.replace("agent_otel@", f"{role}@") for role in roles]


def test_least_privilege_roles_write_and_read_and_a_missing_grant_names_the_role(postgres, caplog):
    """The DBA creates the tables as their owner and grants the application role only rows and the
    analysts' role only SELECT. Before that, the application's store was off with only `permission
    denied for schema public`, and an UPDATE missing from its grants only `permission denied for table
    agent_runs`: neither named the role nor what it lacked."""
    owner = postgres.new_database()
    app, reader = _roles(owner, "agent_app", "agent_reader")
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink = StoreSink(Target("postgresql", app), {})
        sink.write(seed.run_records(seed.now_ms()))
        sink.close()
    (line,) = _store_lines(caplog)
    assert "cannot be used (permission denied for schema public: the role agent_app may not create" in line
    assert "agent-otel --store <its URL> doctor" in line and "PostgreSQL in production" in line
    proc = _cli(reader, "runs")
    assert proc.returncode == 2 and "the role agent_reader may not create the store's tables" in proc.stderr

    assert _cli(owner, "doctor").returncode == 0  # the owner creates the tables
    with psycopg.connect(owner, autocommit=True) as conn:
        for grant in GRANTS:
            conn.execute(grant)
        conn.execute("REVOKE UPDATE ON agent_runs FROM agent_app")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink = StoreSink(Target("postgresql", app), {})
        sink.write(seed.run_records(seed.now_ms()))
        sink.close()
    (line,) = _store_lines(caplog)
    assert "permission denied for table agent_runs: the role agent_app needs SELECT, INSERT, UPDATE" in line

    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("GRANT UPDATE ON agent_runs TO agent_app")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink = StoreSink(Target("postgresql", app), {"logs_days": 30, "tool_snapshot_days": 14})
        for i in range(3):
            sink.write(seed.run_records(seed.now_ms() - 40 * seed.DAY_MS * (i == 0)))
        sink.close()
    assert not _store_lines(caplog) and (sink.written, sink.dropped) == (27, 0)
    assert _count(owner) == 2  # the sink's own gc removed the one past retention, as agent_app

    # The analysts' role reads with every reading command, and writes nothing: no transaction of the
    # database failed (a swallowed write attempt would have) and no row changed.
    def activity() -> tuple[int, ...]:
        with psycopg.connect(owner) as conn:
            row = conn.execute(
                "SELECT xact_rollback, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return tuple(row)

    run_id = _cli(reader, "runs", "--json").stdout.split('"run_id": "', 1)[1][:8]
    before = activity()
    for args in (["runs"], ["show", run_id], ["stats"], ["drift"], ["export"], ["doctor"]):
        proc = _cli(reader, *args)
        assert proc.returncode == 0 and not proc.stderr, (args, proc.stdout, proc.stderr)
    assert "not readable by this role" in proc.stdout  # doctor: the raw tool results are the owner's
    time.sleep(0.6)  # the statistics collector's flush (PG 15: at most every 0.5 s)
    assert activity() == before
