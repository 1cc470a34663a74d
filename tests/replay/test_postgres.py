"""Snapshots in a PostgreSQL store: recorded and replayed like in SQLite, and readable by their owner only."""

from __future__ import annotations

from contextlib import closing

import pytest

import agent_otel
from agent_otel.store import Target, open_store
from agent_otel.store import snapshots as store_snapshots
from agent_otel.store.snapshots import tool_snapshots
from tests.replay import support_agent

pytestmark = pytest.mark.e2e
psycopg = pytest.importorskip("psycopg")


@pytest.mark.parametrize("placement", ["small data with the snapshots", "every result in the blob table"])
def test_snapshots_in_postgresql_replay_and_stay_owner_only(postgres, rig, monkeypatch, placement):
    if (
        placement == "every result in the blob table"
    ):  # as results over INLINE_MAX_BYTES, and before migration 7
        monkeypatch.setattr(store_snapshots, "INLINE_MAX_BYTES", 0)
    url = postgres.new_database()
    database = url.rsplit("/", 1)[1]
    reader_role = f"grafana_reader_{database}"
    with psycopg.connect(url, autocommit=True) as conn:
        # A dashboard role that the database hands SELECT on every new table (a common team setup).
        conn.execute(f"CREATE ROLE {reader_role} LOGIN")  # (roles are the server's: one per database)
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {reader_role}")
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {reader_role}")
        conn.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC")

    rig.start(store=url)
    support_agent.handle(dict(support_agent.TICKET))
    rig.flush()
    with psycopg.connect(url) as conn:
        original = conn.execute("SELECT run_id FROM agent_runs ORDER BY created_at DESC LIMIT 1").fetchone()[
            0
        ]
    with closing(open_store(Target("postgresql", url), writer=False)) as store:
        outcomes = [(s["tool"], s["outcome"]) for s in tool_snapshots(store, [original])[original]]
    assert outcomes == [("crm.search", "ok"), ("orders.get", "ok"), ("send_email", "ok")]
    with psycopg.connect(url) as conn:
        (items,) = conn.execute("SELECT coalesce(sum(items), 0) FROM agent_snapshot_packs").fetchone()
        (inputs,) = conn.execute("SELECT count(input_data) FROM agent_snapshot_runs").fetchone()
        (blobs,) = conn.execute("SELECT count(*) FROM agent_snapshot_blobs").fetchone()
        assert (items, inputs, blobs) == ((3, 1, 0) if placement.startswith("small") else (0, 0, 4))

    with agent_otel.replay(original) as rp:
        support_agent.handle_fixed(rp.input)
    d = rp.report.divergence
    assert (d.index, d.now.tool, rp.report.stop_reason_now) == (3, "send_email", "policy_denied")
    with agent_otel.replay(original) as rp:
        assert support_agent.handle(rp.input)["accepted"] == [support_agent.CUSTOMERS[0]["email"]]
    assert rp.report.matched and support_agent.CALLS["send_email"] == 1
    rig.flush()

    reader = f"postgresql://{reader_role}@127.0.0.1:{postgres.port}/{database}"
    with psycopg.connect(reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM agent_runs").fetchone()[0] == 3
        for table in (
            "agent_snapshot_runs",
            "agent_tool_snapshots",
            "agent_snapshot_blobs",
            "agent_snapshot_data",
            "agent_snapshot_packs",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")

    # gc: snapshots older than the retention go, with their data in either form.
    with psycopg.connect(url, autocommit=True) as conn:
        for table, column in (
            ("agent_snapshot_runs", "created_at_ms"),
            ("agent_tool_snapshots", "created_at_ms"),
            ("agent_snapshot_blobs", "last_used_ms"),
            ("agent_snapshot_data", "created_at_ms"),
            ("agent_snapshot_packs", "created_at_ms"),
        ):
            conn.execute(f"UPDATE {table} SET {column} = {column} - 15 * 86400000")
    proc = rig.cli("gc", "--json", env={"AGENT_OTEL_STORE": url})
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(url) as conn:
        for table in (
            "agent_snapshot_runs",
            "agent_tool_snapshots",
            "agent_snapshot_blobs",
            "agent_snapshot_data",
            "agent_snapshot_packs",
        ):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
