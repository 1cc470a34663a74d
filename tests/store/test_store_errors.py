"""A store that cannot be what the user meant says so in one line, and doctor tells a damaged one apart.

Every case runs the real ``agent-otel`` command (and ``setup()`` where the SDK meets the same input).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import stat

import pytest

import agent_otel
from agent_otel import sdk
from tests.cli.conftest import CLI, one_line_error
from tests.store import seed
from tests.store.conftest import one_run
from tests.store.test_store import store_warnings


@pytest.fixture
def cli(tmp_path) -> CLI:
    return CLI(tmp_path / "home")


def _damage(path: str, table: str = "agent_runs") -> None:
    """Overwrite three leaf pages of ``table`` in the middle of the file, as a failing disk would."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [
            r[0]
            for r in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,))
        ]
    finally:
        conn.close()
    assert len(pages) >= 6, pages
    with open(path, "r+b") as fh:
        for page in pages[len(pages) // 2 : len(pages) // 2 + 3]:
            fh.seek((page - 1) * page_size + 100)
            fh.write(b"\xde\xad\xbe\xef" * 200)


def test_doctor_finds_damaged_pages_that_make_runs_fail(cli):
    records = []
    for i in range(600):
        records += seed.run_records(seed.now_ms() - i * 60_000)
    seed.write(cli.db, records)
    healthy = json.loads(cli("doctor", "--json").stdout)["store"]
    assert healthy["ok"] is True and healthy["integrity"] == {"checked": True, "problems": [], "note": ""}
    _damage(cli.db)

    listing = cli("runs", "--last", "1000")
    assert listing.returncode == 2 and "malformed" in listing.stderr  # what the user ran into
    # ... as one line that says what it means and where to go, not an internal error's type and traceback hint
    assert listing.stderr.count("\n") == 1 and "AGENT_OTEL_DEBUG" not in listing.stderr
    assert f"reading the run store at {cli.db} failed" in listing.stderr
    assert "damaged: `agent-otel doctor` checks it" in listing.stderr
    doctor = cli("doctor", "--json")
    store = json.loads(doctor.stdout)["store"]
    assert doctor.returncode == 1 and store["ok"] is False
    assert store["integrity"]["checked"] is True and store["integrity"]["problems"]
    assert "damaged" in store["error"] and ".recover" in store["error"]
    text = cli("doctor")
    assert text.returncode == 1 and "damaged" in text.stdout


def test_a_store_that_cannot_be_what_the_user_meant_is_one_clear_line(cli, tmp_path):
    directory = tmp_path / "runs"
    directory.mkdir()
    cases = {
        str(directory): "is a directory; the store is a file",
        str(tmp_path / "typo-dir" / "agent-otel.db"): f"the directory {tmp_path / 'typo-dir'} does not exist",
        "mysql://app:pw@db/agents": "unknown scheme 'mysql://'",
        "sqlite:///x.db": "give the SQLite file's path itself",
    }
    for store, says in cases.items():
        line = one_line_error(cli("--store", store, "runs"))
        assert says in line, line
        assert ":pw@" not in line
    # An empty store location is a bad option, not the default store (nor, from the variable, no store).
    for args, env in ((("--store", ""), {}), (("--store", " "), {}), ((), {"AGENT_OTEL_STORE": ""})):
        line = one_line_error(cli(*args, "runs", env=env))
        assert "is empty; give a SQLite path, a postgresql:// URL or false" in line, line
    assert not os.path.exists(cli.db)
    # The demo, which creates a store, does not create a mistyped directory either.
    line = one_line_error(cli("--store", str(tmp_path / "typo-dir" / "agent-otel.db"), "demo", "--runs", "1"))
    assert f"the directory {tmp_path / 'typo-dir'} does not exist" in line
    assert not (tmp_path / "typo-dir").exists() and not os.path.exists("mysql:")


def test_the_sdk_warns_once_for_a_store_path_it_must_not_create(setup_agent, tmp_path, caplog):
    target = tmp_path / "typo-dir" / "agent-otel.db"
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        setup_agent(store=str(target))
        one_run(1)
        one_run(2)
        assert sdk.flush(5)
    agent_otel.shutdown()
    warnings = store_warnings(caplog)
    assert len(warnings) == 1 and f"the directory {target.parent} does not exist" in warnings[0], warnings
    assert not target.parent.exists()


def test_doctor_does_not_advise_chmod_on_a_sticky_shared_directory(cli, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    db = str(shared / "agent-otel.db")
    seed.write(db, seed.run_records(seed.now_ms()))
    store = json.loads(cli("doctor", "--json", "--store", db).stdout)["store"]
    assert store["dir_mode"] == "0o1777" and store["file_mode"] == "0o600"
    assert store["warnings"] == []
    assert "chmod" not in cli("doctor", "--store", db).stdout
    shutil.rmtree(shared)


def test_an_existing_world_readable_event_sink_file_is_made_owner_only(setup_agent, tmp_path):
    sink = tmp_path / "events.jsonl"
    sink.write_text("")
    os.chmod(sink, 0o644)
    setup_agent(store=False, events=str(sink))
    one_run(1)
    assert sdk.flush(5)
    assert stat.S_IMODE(os.stat(sink).st_mode) == 0o600
    assert '"kind":"stop"' in sink.read_text()


def test_doctor_says_when_the_store_cannot_be_created_where_setup_would_put_it(cli, tmp_path):
    """The SDK's warning (`cannot be used ...; Check it with agent-otel doctor`) must not meet a doctor
    that answers "not created yet: created by the first run": a home directory that cannot be made (a
    read-only file system in a container, a path under a file) is a failure, and a missing directory
    outside the home is the typo the SDK reports."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the home directory's parent should be")
    doctor = cli("doctor", "--json", env={"AGENT_OTEL_HOME": str(blocker / "agent-otel")})
    store = json.loads(doctor.stdout)["store"]
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert store["ok"] is False and "cannot be created" in store["error"], store

    typo = cli("doctor", "--store", str(tmp_path / "srv" / "agnet" / "runs.db"))
    assert typo.returncode == 1 and "does not exist" in typo.stdout, typo.stdout

    fresh = cli("doctor", "--json")  # the default home, not made yet: the first run makes it
    assert fresh.returncode == 0 and json.loads(fresh.stdout)["store"]["exists"] is False


PG_PASSWORD = "S3cret-pw-4711"


def test_a_postgresql_password_in_the_urls_query_is_never_printed(setup_agent, cli, caplog):
    """libpq takes the password from the URL's user info or from its query (``?password=``); warnings,
    log lines and ``doctor`` mask both. (No server listens on the port: every message is an error.)"""
    from tests.otlp_receiver import free_port

    port = free_port()
    urls = [
        f"postgresql://app:{PG_PASSWORD}@127.0.0.1:{port}/agents?sslmode=disable&password={PG_PASSWORD}",
        f"postgresql://app@127.0.0.1:{port}/agents?password={PG_PASSWORD}&connect_timeout=2",
        f"postgres://127.0.0.1:{port}/agents?user=app&PassWord={PG_PASSWORD}&sslpassword={PG_PASSWORD}",
        f"postgresql://app:{PG_PASSWORD} 2@127.0.0.1:{port}/agents",  # libpq's error quotes this one
    ]
    with caplog.at_level(logging.DEBUG, logger="agent_otel"):
        setup_agent(store=urls[0])
        one_run(1)
        sdk.flush(2)
        agent_otel.shutdown()
    printed = [r.getMessage() for r in caplog.records]
    assert any(f"127.0.0.1:{port}/agents" in m for m in store_warnings(caplog)), printed
    for url in urls:
        for args in (("doctor",), ("doctor", "--json"), ("runs",)):
            proc = cli("--store", url, *args)
            printed += [proc.stdout, proc.stderr]
            assert f"127.0.0.1:{port}" in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
    assert not [m for m in printed if PG_PASSWORD in m]


def test_doctor_masks_a_password_in_the_otlp_endpoint(cli, tmp_path):
    db = str(tmp_path / "agent-otel.db")
    seed.write(db, seed.run_records(seed.now_ms()))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://agent:{PG_PASSWORD}@127.0.0.1:1"}
    for args in (("doctor",), ("doctor", "--json")):
        proc = cli("--store", db, *args, env=env)
        assert "https://agent:***@127.0.0.1:1" in proc.stdout, proc.stdout
        assert PG_PASSWORD not in proc.stdout + proc.stderr


def test_a_wal_file_another_user_created_first_gets_nothing_of_the_store(setup_agent, tmp_path, caplog):
    """In a directory others can write to (``/tmp`` is sticky: nobody can remove another's file), another
    user can create ``<store>-wal`` before the agent starts, and SQLite writes every page into a WAL it
    finds, whoever owns it: that user would read every record and raw snapshot of the store."""
    from tests.helpers import missing_prerequisite

    if os.geteuid() != 0:
        missing_prerequisite(
            "root (to make a file that another user owns)", "run the tests as root, as CI does"
        )
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    db = shared / "agent-otel.db"
    wal = shared / "agent-otel.db-wal"
    wal.touch()
    os.chmod(wal, 0o666)
    os.chown(wal, 65534, 65534)  # nobody's
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        setup_agent(store=str(db))
        one_run(1)
        assert sdk.flush(5)
    agent_otel.shutdown()
    warnings = store_warnings(caplog)
    assert len(warnings) == 1 and f"{wal} belongs to another user" in warnings[0], warnings
    assert wal.stat().st_size == 0
    wal.unlink()  # gone: the store is the user's own again
    setup_agent(store=str(db))
    one_run(2)
    assert sdk.flush(5)
    agent_otel.shutdown()
    assert sqlite3.connect(db).execute("SELECT count(*) FROM agent_runs").fetchone() == (1,)
    assert not wal.exists() or wal.stat().st_uid == 0


def test_a_postgresql_url_libpq_cannot_parse_or_a_short_password_is_reported_without_the_password(
    setup_agent, cli, caplog
):
    """libpq quotes a URL it cannot parse whole (an unclosed IPv6 bracket), and Python cannot split it
    either: its password was printed by the CLI, ``doctor --json`` and the SDK's warning. A password
    is masked where it stands as a word: replacing every occurrence of `p` made `***ort 1 failed`, and
    a port beyond 65535 came out as `ValueError: Port out of range 0-65535`, naming no URL."""
    from tests.otlp_receiver import free_port

    port = free_port()
    malformed = f"postgresql://app:{PG_PASSWORD}@[::1/agents"
    with caplog.at_level(logging.DEBUG, logger="agent_otel"):
        setup_agent(store=malformed)
        one_run(1)
        sdk.flush(2)
        agent_otel.shutdown()
    printed = [r.getMessage() for r in caplog.records]
    assert store_warnings(caplog), printed
    for args in (("doctor",), ("doctor", "--json"), ("runs",)):
        proc = cli("--store", malformed, *args)
        printed += [proc.stdout, proc.stderr]
        assert "IPv6" in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
    assert not [m for m in printed if PG_PASSWORD in m]

    line = one_line_error(cli("--store", f"postgresql://app:p@127.0.0.1:{port}/agents", "runs"))
    assert f'"127.0.0.1", port {port} failed' in line and "***@127.0.0.1" in line, line
    line = one_line_error(cli("--store", f"postgresql://app:{PG_PASSWORD}@127.0.0.1:99999/agents", "runs"))
    assert "postgresql://app:***@127.0.0.1:99999/agents" in line and PG_PASSWORD not in line, line


def test_doctor_agrees_with_the_sdk_on_a_home_that_is_a_file_or_whose_parents_are_missing(
    setup_agent, cli, tmp_path, monkeypatch
):
    """The SDK makes its home with every missing parent (``os.makedirs``), and cannot when the home is a
    file. doctor said the opposite of both: a home under a directory not made yet was `cannot be created`
    (exit 1), and a home that is a file, where every run is dropped, `not created yet: created by the
    first run` (exit 0); `runs` called that file a directory that `does not exist`."""
    a_file = tmp_path / "home-file"
    a_file.write_text("not a directory")
    doctor = cli("doctor", "--json", env={"AGENT_OTEL_HOME": str(a_file)})
    store = json.loads(doctor.stdout)["store"]
    assert doctor.returncode == 1 and store["ok"] is False, doctor.stdout
    assert store["error"].startswith(f"cannot be created: {a_file} is a file, not a directory"), store
    line = one_line_error(cli("runs", env={"AGENT_OTEL_HOME": str(a_file)}))
    assert f"{a_file} is a file, not a directory" in line, line

    deep = tmp_path / "srv" / "agent-otel" / "home"
    doctor = cli("doctor", "--json", env={"AGENT_OTEL_HOME": str(deep)})
    store = json.loads(doctor.stdout)["store"]
    assert doctor.returncode == 0 and store["ok"] is True and store["exists"] is False, doctor.stdout
    monkeypatch.setenv("AGENT_OTEL_HOME", str(deep))
    setup_agent()
    run_id = one_run(1)
    assert sdk.flush(5)
    assert [
        r["run_id"] for r in json.loads(cli("runs", "--json", env={"AGENT_OTEL_HOME": str(deep)}).stdout)
    ] == [run_id]
