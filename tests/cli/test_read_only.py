"""A store this process cannot write (a copy, a read-only mount) can still be read by the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_otel.store import Target, open_store
from agent_otel.store.db import SQLiteStore
from tests.cli.conftest import CLI, one_line_error
from tests.store import seed


@contextlib.contextmanager
def unwritable(directory: Path, db: Path) -> Iterator[None]:
    """Make ``db`` and its directory unwritable for this process, for real, or skip.

    As a normal user: the directory 0500 and the file 0400. As root, whom modes do not stop: the
    immutable attribute (``chattr +i``) on both, which root's writes do fail on.
    """
    if os.geteuid() != 0:
        os.chmod(db, 0o400)
        os.chmod(directory, 0o500)
        try:
            yield
        finally:
            os.chmod(directory, 0o700)
            os.chmod(db, 0o600)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: cannot make a file unwritable for root")
    made = subprocess.run([chattr, "+i", str(db), str(directory)], capture_output=True, check=False)
    if made.returncode != 0:
        subprocess.run([chattr, "-i", str(db), str(directory)], capture_output=True, check=False)
        pytest.skip(f"running as root and chattr +i fails here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(db), str(directory)], capture_output=True, check=True)


def test_the_read_commands_read_a_store_they_cannot_write(cli: CLI, tmp_path: Path):
    """Real file permissions (or the immutable attribute as root): runs, show, stats, drift, export,
    doctor and replay's loading fall back to a read-only open; gc, which must write, says why it cannot."""
    directory = tmp_path / "copied"
    db = directory / "agent-otel.db"
    records = seed.run_records(seed.now_ms() - 60_000)
    seed.write(str(db), records)
    run_id = records[0][1]["run_id"]
    assert not (directory / "agent-otel.db-wal").exists()  # a closed store: everything is in the file
    store = ("--store", str(db))

    with unwritable(directory, db):
        with pytest.raises(sqlite3.OperationalError):  # this process really cannot write it
            conn = sqlite3.connect(db)
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                conn.execute("CREATE TABLE probe (x)")
            finally:
                conn.close()

        listed = cli("runs", "--json", *store)
        assert listed.returncode == 0, listed.stderr
        assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
        shown = cli("show", run_id[:10], "--json", *store)
        assert shown.returncode == 0 and json.loads(shown.stdout)["run"]["run_id"] == run_id
        for command in ("stats", "drift"):
            proc = cli(command, "--json", *store)
            assert proc.returncode == 0, (command, proc.stderr)
        exported = cli("export", *store)
        assert exported.returncode == 0 and len(exported.stdout.splitlines()) == len(records) - 2
        doctor = cli("doctor", "--json", *store)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr
        report = json.loads(doctor.stdout)["store"]
        assert report["ok"] is True and report["read_only"] is True and report["runs"] == 1
        # replay reads the recording before anything runs: the answer is about the run, not the store
        replayed = cli("replay", run_id, "--call", "json:dumps", *store)
        assert f"run {run_id} has no tool-result snapshots" in one_line_error(replayed)

        assert "cannot open the run store" in one_line_error(cli("gc", *store))
    assert sqlite3.connect(db).execute("SELECT count(*) FROM agent_runs").fetchone() == (1,)


class _NoWrites(SQLiteStore):
    """A SQLite store whose read-write open fails as on a read-only filesystem."""

    def __init__(self, target: Target, message: str) -> None:
        super().__init__(target)
        self.message = message

    def _open_read_write(self) -> None:
        raise sqlite3.OperationalError(self.message)


@pytest.mark.parametrize("message", ["attempt to write a readonly database", "unable to open database file"])
def test_a_reader_falls_back_to_read_only_when_the_read_write_open_fails(tmp_path: Path, message: str):
    """The fallback itself, wherever the test runs (as root, modes and a missing chattr cannot force
    the read-write open to fail): the read-write open raises what SQLite raises on a read-only
    filesystem; a reader then reads through a real ``mode=ro`` connection that cannot write."""
    db = str(tmp_path / "agent-otel.db")
    seed.write(db, seed.run_records(seed.now_ms()))
    reader = _NoWrites(Target("sqlite", db), message)
    reader.open(create=False, read_only_ok=True)
    try:
        assert reader.read_only and reader.migrate(writer=False) == reader.latest_version
        assert len(reader.runs()) == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.set_meta("probe", "1")
    finally:
        reader.close()

    writer = _NoWrites(Target("sqlite", db), message)
    with pytest.raises(Exception, match=message):
        writer.open(create=False)  # a writer is never handed a read-only store
    other = _NoWrites(Target("sqlite", db), "database disk image is malformed")
    with pytest.raises(Exception, match="malformed"):
        other.open(create=False, read_only_ok=True)  # only "cannot write" falls back
    open_store(Target("sqlite", db)).close()
