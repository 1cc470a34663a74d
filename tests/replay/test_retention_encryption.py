"""Snapshots expire after retention.tool_snapshot_days and can be encrypted at rest with a key from the
environment; both behave as the README's Replay section says."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

import agent_otel
from agent_otel.config import load
from agent_otel.replay import Replay, ReplayError
from agent_otel.snapshots import key_id
from agent_otel.store import snapshots as store_snapshots
from tests.helpers import missing_prerequisite
from tests.replay import support_agent
from tests.replay.conftest import KEY_ENV

WRONG = support_agent.CUSTOMERS[0]["email"]
DAY_MS = 86_400_000


def fernet_key() -> str:
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        missing_prerequisite("the cryptography package", "pip install -e '.[crypto]' (make install-dev)")
    return Fernet.generate_key().decode()


def age_everything(rig, days: int) -> None:
    """Make everything in the store ``days`` older, as if it had been recorded that long ago."""
    ms = days * DAY_MS
    for sql in (
        f"UPDATE agent_runs SET created_at = strftime('%Y-%m-%d %H:%M:%f', created_at, '-{days} days'), "
        f"ended_at = strftime('%Y-%m-%d %H:%M:%f', ended_at, '-{days} days')",
        f"UPDATE agent_events SET ts_ms = ts_ms - {ms}",
        f"UPDATE agent_snapshot_runs SET created_at_ms = created_at_ms - {ms}",
        f"UPDATE agent_tool_snapshots SET created_at_ms = created_at_ms - {ms}",
        f"UPDATE agent_snapshot_blobs SET last_used_ms = last_used_ms - {ms}",
        f"UPDATE agent_snapshot_data SET created_at_ms = created_at_ms - {ms}",
        f"UPDATE agent_snapshot_packs SET created_at_ms = created_at_ms - {ms}",
    ):
        rig.execute(sql)


@pytest.fixture(params=["with their snapshots", "in the blob table"])
def placement(request, monkeypatch) -> str:
    """Where the (small) snapshot data goes: with its snapshot (the default: a run's calls in its pack, its
    input in its row), or the blob table, as results larger than INLINE_MAX_BYTES do and every result
    recorded before schema migration 7 did."""
    if request.param == "in the blob table":
        monkeypatch.setattr(store_snapshots, "INLINE_MAX_BYTES", 0)
    return request.param


def stored_data(rig) -> list[dict]:
    """Every stored result, error and input, wherever it is: ``{"encoding", "key_id", "data"}``: in the blob
    table, a row of agent_snapshot_data (schema 7), a run's pack or its snapshot row (schema 8)."""
    small = "CASE WHEN key_id <> '' THEN 'fernet+json' ELSE 'json' END AS encoding, key_id, data"
    inputs = (
        "SELECT CASE WHEN input_key_id <> '' THEN 'fernet+json' ELSE 'json' END AS encoding, "
        "input_key_id AS key_id, input_data AS data FROM agent_snapshot_runs WHERE input_data IS NOT NULL"
    )
    packed = []
    for pack in rig.rows("SELECT DISTINCT run_id FROM agent_snapshot_packs WHERE items > 0"):
        _, data = rig.snapshots_and_data(pack["run_id"])
        packed += [{"encoding": e, "key_id": k, "data": d} for e, k, d in data.values()]
    return [
        *rig.rows("SELECT encoding, key_id, data FROM agent_snapshot_blobs"),
        *rig.rows(f"SELECT {small} FROM agent_snapshot_data"),
        *rig.rows(inputs),
        *packed,
    ]


def replay_matches(run_id: str, **kwargs) -> bool:
    with Replay(run_id, **kwargs) as rp:
        support_agent.handle(rp.input)
    return rp.report.matched


def test_snapshots_expire_after_the_retention_and_gc_deletes_them(rig, recorded, placement):
    old = recorded()
    old_packs = len(rig.rows("SELECT id FROM agent_snapshot_packs WHERE run_id = ?", (old,)))
    assert old_packs >= 1  # the run's three calls, a pack per write that carried some
    age_everything(rig, 15)  # recorded 15 days ago; retention.tool_snapshot_days is 14 by default
    fresh = recorded()  # same CRM and order answers as the old run: in the blob table, those are shared

    with pytest.raises(ReplayError, match=rf"snapshots of run {old} \(recorded .*\) have expired: "):
        with agent_otel.replay(old):
            pass
    assert support_agent.CALLS["send_email"] == 2  # only the two recordings
    # Retention 0 keeps snapshots forever, even these.
    assert replay_matches(old, config=load({"retention.tool_snapshot_days": 0}))
    assert replay_matches(fresh)

    proc = rig.cli("gc", "--json")
    assert proc.returncode == 0, proc.stderr
    deleted = json.loads(proc.stdout)["deleted"]
    assert deleted["agent_snapshot_runs"] == 1 and deleted["agent_snapshot_packs"] == old_packs
    assert deleted["agent_tool_snapshots"] == deleted["agent_snapshot_data"] == 0  # the forms before schema 8
    if placement == "in the blob table":
        # Only the old run's own e-mail receipt goes; the CRM/order answers and the input are still used.
        assert deleted["agent_snapshot_blobs"] == 1
    else:  # the old run's data went with its pack and its row; the fresh run has its own
        assert deleted["agent_snapshot_blobs"] == 0
    assert rig.rows("SELECT run_id FROM agent_snapshot_packs") == [{"run_id": fresh}] * len(
        rig.rows("SELECT id FROM agent_snapshot_packs")
    )
    assert len(stored_data(rig)) == 4  # the fresh run's input and three results, nothing of the old run
    assert deleted["agent_runs"] == 0  # runs are kept 30 days (retention.logs_days)

    with pytest.raises(ReplayError, match=f"snapshots of run {old} .* have expired"):
        agent_otel.replay(old).load()
    assert replay_matches(fresh)  # its shared blobs survived the gc
    assert support_agent.CALLS["send_email"] == 2


def test_encrypted_snapshots_need_the_right_key(rig, recorded, monkeypatch, placement):
    key, other = fernet_key(), fernet_key()
    monkeypatch.setenv(KEY_ENV, key)
    original = recorded()

    blobs = stored_data(rig)
    assert len(blobs) == 4  # the input and three results
    assert len(rig.rows("SELECT sha FROM agent_snapshot_blobs")) == (
        4 if placement == "in the blob table" else 0
    )
    assert {(b["encoding"], b["key_id"]) for b in blobs} == {("fernet+json", key_id(key.encode()))}
    agent_otel.shutdown()  # checkpoint: the whole store is in the main file now
    on_disk = b"".join(p.read_bytes() for p in Path(rig.db).parent.glob("agent-otel.db*"))
    assert WRONG.encode() not in on_disk and b"Kim Tanaka" not in on_disk
    assert original.encode() in on_disk  # (the same bytes, unencrypted metadata, are there)

    assert replay_matches(original)

    monkeypatch.setenv(KEY_ENV, other)
    with pytest.raises(ReplayError, match=rf"encrypted with key {key_id(key.encode())}, which is not among"):
        agent_otel.replay(original).load()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(
        ReplayError, match=f"are encrypted .*; set {KEY_ENV} to the key they were recorded with"
    ):
        agent_otel.replay(original).load()
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ReplayError, match=f"{KEY_ENV} does not hold Fernet keys"):
        agent_otel.replay(original).load()

    # Rotation: the new key first, the old one after it, until the old snapshots have expired.
    monkeypatch.setenv(KEY_ENV, f"{other},{key}")
    assert replay_matches(original)
    assert support_agent.CALLS["send_email"] == 1


def test_a_known_blob_is_resealed_with_the_current_key_and_never_stored_in_the_clear_again(
    rig, recorded, monkeypatch
):
    """Blobs shared by content (results larger than INLINE_MAX_BYTES) are re-sealed in place; a result kept
    in its own row belongs to that one call (see test_a_run_recorded_with_a_key_stores_its_own_rows_sealed).
    """
    monkeypatch.setattr(store_snapshots, "INLINE_MAX_BYTES", 0)
    plain_run = recorded()
    assert {b["encoding"] for b in rig.rows("SELECT encoding FROM agent_snapshot_blobs")} == {"json"}
    key = fernet_key()
    monkeypatch.setenv(KEY_ENV, key)
    rig.start()
    support_agent.reset()  # the e-mail gets the same message id: every result is the same as before
    sealed_run = recorded()
    # The same input and results: the blobs were sealed in place, the clear copies are gone.
    blobs = rig.rows("SELECT encoding, key_id FROM agent_snapshot_blobs")
    assert len(blobs) == 4 and {(b["encoding"], b["key_id"]) for b in blobs} == {
        ("fernet+json", key_id(key.encode()))
    }
    assert replay_matches(plain_run) and replay_matches(sealed_run)
    monkeypatch.delenv(KEY_ENV)
    rig.start()
    support_agent.reset()
    recorded()  # recorded without a key: the sealed blobs it shares stay sealed
    assert {b["encoding"] for b in rig.rows("SELECT encoding FROM agent_snapshot_blobs")} == {"fernet+json"}


def test_a_run_recorded_with_a_key_stores_its_own_rows_sealed(rig, recorded, monkeypatch):
    plain_run = recorded()
    key = fernet_key()
    monkeypatch.setenv(KEY_ENV, key)
    rig.start()
    support_agent.reset()
    sealed_run = recorded()  # the same input and results as plain_run: small data, a row per snapshot
    data = [
        {"run_id": run_id, "key_id": k, "data": d}
        for run_id in (plain_run, sealed_run)
        for _, k, d in rig.snapshots_and_data(run_id)[1].values()
    ]
    data += rig.rows(
        "SELECT run_id, input_key_id AS key_id, input_data AS data FROM agent_snapshot_runs "
        "WHERE input_data IS NOT NULL"
    )
    assert sorted((d["run_id"], d["key_id"]) for d in data) == sorted(
        [(plain_run, "")] * 4 + [(sealed_run, key_id(key.encode()))] * 4
    )
    packs = rig.rows("SELECT run_id, key_id, items FROM agent_snapshot_packs")
    assert {(p["run_id"], p["key_id"]) for p in packs} == {
        (plain_run, ""),
        (sealed_run, key_id(key.encode())),
    }
    assert not any(WRONG.encode() in bytes(d["data"]) for d in data if d["run_id"] == sealed_run)
    assert rig.rows("SELECT sha FROM agent_snapshot_blobs") == []
    assert replay_matches(plain_run) and replay_matches(sealed_run)


def test_encryption_can_be_required(rig, recorded, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, "agent_otel")
    run_id = recorded(replay={"require_encryption": True})
    assert (
        rig.rows("SELECT * FROM agent_snapshot_packs") == rig.rows("SELECT * FROM agent_tool_snapshots") == []
    )
    assert any(
        "not recorded: replay.require_encryption is true and AGENT_OTEL_SNAPSHOT_KEY is not set"
        in r.getMessage()
        for r in caplog.records
    )
    assert rig.run_row(run_id)["stop_reason"] == "completed"

    monkeypatch.setenv(KEY_ENV, "not-a-key")
    caplog.clear()
    recorded(replay={"require_encryption": False})
    assert (
        rig.rows("SELECT * FROM agent_snapshot_packs") == rig.rows("SELECT * FROM agent_tool_snapshots") == []
    )  # not stored in the clear instead
    assert any(f"{KEY_ENV} does not hold Fernet keys" in r.getMessage() for r in caplog.records)

    monkeypatch.setenv(KEY_ENV, fernet_key())
    monkeypatch.setitem(sys.modules, "cryptography.fernet", None)  # as if the crypto extra were missing
    caplog.clear()
    recorded(replay={"require_encryption": False})
    assert (
        rig.rows("SELECT * FROM agent_snapshot_packs") == rig.rows("SELECT * FROM agent_tool_snapshots") == []
    )
    assert any("pip install 'agent-otel[crypto]'" in r.getMessage() for r in caplog.records)


@pytest.fixture
def sqlite_without_secure_delete(monkeypatch):
    """SQLite as most builds have it: Debian's libsqlite3 turns ``secure_delete`` on at compile time,
    but macOS's, python.org's, conda's and uv's Pythons leave it off, and then deleted rows stay in the
    file's free pages until SQLite happens to reuse them."""
    import sqlite3

    connect = sqlite3.connect

    def without(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = 0")
        return conn

    monkeypatch.setattr(sqlite3, "connect", without)


def test_gc_leaves_no_trace_of_expired_snapshots_in_the_files(rig, recorded, sqlite_without_secure_delete):
    """What gc deletes is gone from the database file and its WAL, not only from the tables: the agent
    is still running (its store connection keeps the WAL), and a `strings` of the files finds nothing."""
    from agent_otel.cli import main

    recorded()
    age_everything(rig, 15)
    stored = b"".join(p.read_bytes() for p in Path(rig.db).parent.glob("agent-otel.db*"))
    assert WRONG.encode() in stored  # the snapshots hold the raw results, as they must for a replay
    assert main(["gc"]) == 0
    assert stored_data(rig) == []
    files = sorted(Path(rig.db).parent.glob("agent-otel.db*"))
    assert any(p.name.endswith("-wal") for p in files)  # the running agent's connection keeps it
    on_disk = b"".join(p.read_bytes() for p in files)
    assert WRONG.encode() not in on_disk and b"Kim Tanaka" not in on_disk
