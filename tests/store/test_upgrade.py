"""Stores across agent-otel versions: a store another version migrates while this one reads or writes it,
a store of a schema newer than this code, and migrations cut short."""

from __future__ import annotations

import subprocess
import threading
import time

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
    from tests.cli.conftest import COMMAND

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
        found = threading.Event()

        def read() -> None:
            for out in tail.stdout:
                if out.startswith("a" * 12):
                    found.set()
                    return

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 30
        while not found.wait(0.2) and tail.poll() is None and time.monotonic() < deadline:
            pass
        assert tail.poll() is None, f"tail ended: {tail.stderr.read()}"
        assert found.is_set(), "tail did not show the run that ended after the migration"
    finally:
        tail.terminate()
        _, err = tail.communicate(timeout=30)
    assert "cached plan" not in err, err
