"""The PostgreSQL store as teams deploy it: behind PgBouncer, over TLS, with roles that may not create
tables, in a schema of its own, many workers starting at once, limits a DBA sets, a hot standby.
Real servers only (tests/store/pg.py: Debian's postgresql and pgbouncer)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from typing import Any

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
