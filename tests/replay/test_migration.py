"""A store recorded before schema migration 7 (every result, error and input in agent_snapshot_blobs) is
migrated in place, its rows untouched, and replays as before; runs recorded after it keep their small data
with their snapshots (a pack of calls per run, migration 8; the input in the run's row), and a replay of
either serves the same bytes. SQLite and PostgreSQL. (Stores written by the code of schema 7 itself:
tests/store/test_upgrade.py.)"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import pytest

import agent_otel
from agent_otel.replay import load
from agent_otel.store import Target, open_store
from agent_otel.store import schema as store_schema
from agent_otel.store import snapshots as store_snapshots
from tests.replay import support_agent

# What migrations 7 and 8 added, taken away again: the store as agent-otel wrote it at schema version 6.
TO_V6 = [
    "DROP TABLE agent_snapshot_packs",
    "ALTER TABLE agent_snapshot_runs DROP COLUMN input_key_id",
    "ALTER TABLE agent_snapshot_runs DROP COLUMN input_data",
    "DROP TABLE agent_snapshot_data",
    "ALTER TABLE agent_tool_snapshots DROP COLUMN data_id",
    "ALTER TABLE agent_snapshot_runs DROP COLUMN input_data_id",
    "UPDATE agent_otel_meta SET value = '6' WHERE key = 'schema_version'",
]
V6_CALL = (
    "run_id",
    "step_id",
    "parent_step",
    "tool",
    "args_sha",
    "outcome",
    "result_sha",
    "blob_sha",
    "error_type",
    "result_type",
    "created_at_ms",
)
SNAPSHOT_ROWS = {
    "agent_snapshot_blobs": "SELECT sha, encoding, key_id, size, data, last_used_ms "
    "FROM agent_snapshot_blobs",
    "agent_tool_snapshots": "SELECT run_id, step_id, tool, args_sha, outcome, result_sha, blob_sha, "
    "created_at_ms FROM agent_tool_snapshots",
    "agent_snapshot_runs": "SELECT run_id, input_sha, created_at_ms FROM agent_snapshot_runs",
}


def _location(request: pytest.FixtureRequest, dialect: str, rig: Any) -> str:
    if dialect == "sqlite":
        return rig.db
    pytest.importorskip("psycopg")
    return request.getfixturevalue("postgres").new_database()


def _columns(store: Any, table: str) -> list[str]:
    if store.kind == "sqlite":
        return [r["name"] for r in store.query(f"PRAGMA table_info({table})")]
    return [
        r["column_name"]
        for r in store.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            (table,),
        )
    ]


def _snapshot_rows(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r.values()) for r in rows)
        for table, rows in ((t, store.query(q)) for t, q in SNAPSHOT_ROWS.items())
    }


def _served(run_id: str) -> list[tuple[str, str | None, bytes | None]]:
    recording = load(run_id)
    return [(s.tool, s.result_sha, s.plain) for s in recording.steps]


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def test_a_v6_store_with_snapshots_migrates_in_place_and_replays_runs_recorded_before_and_after(
    rig, monkeypatch, request, dialect
):
    location = _location(request, dialect, rig)
    target = Target(dialect, location)
    # Recorded as a v6 store records: every result and input in the blob table.
    monkeypatch.setattr(store_snapshots, "INLINE_MAX_BYTES", -1)
    rig.start(store=location)
    support_agent.handle(dict(support_agent.TICKET))
    rig.flush()
    agent_otel.shutdown()
    with closing(open_store(target)) as store:
        old = store.query("SELECT run_id FROM agent_snapshot_runs")[0]["run_id"]
        calls = store_snapshots.tool_snapshots(store, [old])[old]
        with store.transaction():
            for call in calls:  # a row each, as schema 6 wrote them
                store.execute(
                    f"INSERT INTO agent_tool_snapshots ({', '.join(V6_CALL)}) "
                    f"VALUES ({', '.join('?' for _ in V6_CALL)})",
                    [call[c] for c in V6_CALL],
                )
            for statement in TO_V6:
                store.execute(statement)
        before = _snapshot_rows(store)
        v6_columns = {t: _columns(store, t) for t in ("agent_tool_snapshots", "agent_snapshot_runs")}
    assert len(before["agent_snapshot_blobs"]) == 4  # the input and three results

    # A store made by the migrations up to 6 has exactly these tables' columns: the store above is a v6 one.
    other = str(rig.home / "v6.db") if dialect == "sqlite" else _location(request, dialect, rig)
    fresh = Target(dialect, other)
    up_to_6 = [m for m in store_schema.MIGRATIONS[dialect] if m[0] <= 6]
    monkeypatch.setitem(store_schema.MIGRATIONS, dialect, up_to_6)
    with closing(open_store(fresh)) as store:
        assert store.schema_version() == 6
        assert {t: _columns(store, t) for t in v6_columns} == v6_columns
        assert not store.has_table("agent_snapshot_data")
    monkeypatch.undo()  # the real migrations and INLINE_MAX_BYTES from here on

    assert store_snapshots.INLINE_MAX_BYTES > 0
    with closing(open_store(target)) as store:  # opening migrates
        assert store.schema_version() == store_schema.LATEST_VERSION >= 8
        assert _snapshot_rows(store) == before  # nothing rewritten, nothing lost
        assert [r["data_id"] for r in store.query("SELECT data_id FROM agent_tool_snapshots")] == [None] * 3

    # The run recorded before the migration replays from the blob table.
    rig.start(store=location)
    with agent_otel.replay(old) as rp:
        assert support_agent.handle(rp.input)["accepted"] == [support_agent.CUSTOMERS[0]["email"]]
    assert rp.report.matched and support_agent.CALLS["send_email"] == 1  # served, not sent again

    # A run recorded now, with the same input and results: its calls in a pack, its data with them.
    support_agent.reset()
    support_agent.handle(dict(support_agent.TICKET))
    rig.flush()
    with closing(open_store(target)) as store:
        new = store.query(
            "SELECT run_id FROM agent_snapshot_runs WHERE run_id <> ? AND input_data IS NOT NULL", (old,)
        )[0]["run_id"]
        packs = store.query("SELECT calls, items, data FROM agent_snapshot_packs WHERE run_id = ?", (new,))
        assert sum(p["calls"] for p in packs) == sum(p["items"] for p in packs) == 3
        assert store.query("SELECT * FROM agent_tool_snapshots WHERE run_id = ?", (new,)) == []
        assert len(store.query("SELECT sha FROM agent_snapshot_blobs")) == 4  # the blob table as it was
        # doctor counts the snapshots and the stored results and inputs of both forms: 3 calls each, 4
        # blobs and the new run's 3 results and input.
        counts = store.counts()
        assert (counts["tool_snapshots"], counts["snapshot_runs"]) == (6, 2)
        assert counts["snapshot_blobs"] == 8 and counts["encrypted_blobs"] == 0
        stored = [
            *store.query("SELECT data FROM agent_snapshot_blobs"),
            *packs,
            *store.query("SELECT input_data AS data FROM agent_snapshot_runs WHERE run_id = ?", (new,)),
        ]
        assert counts["snapshot_bytes"] == sum(len(bytes(r["data"])) for r in stored) > 0
    with agent_otel.replay(new) as rp:
        support_agent.handle(rp.input)
    assert rp.report.matched and support_agent.CALLS["send_email"] == 1

    # The same hashes, and the same bytes served, from either form.
    assert _served(old) == _served(new)
    assert all(plain is not None for _, _, plain in _served(old))
