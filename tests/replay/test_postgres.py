"""Snapshots in a PostgreSQL store: recorded and replayed like in SQLite, and readable by their owner only."""

from __future__ import annotations

import pytest

import agent_otel
from tests.replay import support_agent

pytestmark = pytest.mark.e2e
psycopg = pytest.importorskip("psycopg")


def test_snapshots_in_postgresql_replay_and_stay_owner_only(postgres, rig):
    url = postgres.new_database()
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        # A dashboard role that the database hands SELECT on every new table (a common team setup).
        conn.execute("CREATE ROLE grafana_reader LOGIN")
        conn.execute("GRANT USAGE ON SCHEMA public TO grafana_reader")
        conn.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader")
        conn.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC")

    rig.start(store=url)
    support_agent.handle(dict(support_agent.TICKET))
    rig.flush()
    with psycopg.connect(url) as conn:
        original = conn.execute("SELECT run_id FROM agent_runs ORDER BY created_at DESC LIMIT 1").fetchone()[
            0
        ]
        outcomes = conn.execute(
            "SELECT tool, outcome FROM agent_tool_snapshots WHERE run_id = %s ORDER BY step_id", (original,)
        ).fetchall()
        assert outcomes == [("crm.search", "ok"), ("orders.get", "ok"), ("send_email", "ok")]

    with agent_otel.replay(original) as rp:
        support_agent.handle_fixed(rp.input)
    d = rp.report.divergence
    assert (d.index, d.now.tool, rp.report.stop_reason_now) == (3, "send_email", "policy_denied")
    with agent_otel.replay(original) as rp:
        assert support_agent.handle(rp.input)["accepted"] == [support_agent.CUSTOMERS[0]["email"]]
    assert rp.report.matched and support_agent.CALLS["send_email"] == 1
    rig.flush()

    reader = f"postgresql://grafana_reader@127.0.0.1:{postgres.port}/{database}"
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM agent_runs").fetchone()[0] == 3
        for table in ("agent_snapshot_runs", "agent_tool_snapshots", "agent_snapshot_blobs"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")
