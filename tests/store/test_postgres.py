"""The PostgreSQL store against a real server: the seed's SQL alert runs unchanged and finds the drift."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import agent_otel
from agent_otel import sdk
from agent_otel.store import StoreSink
from tests.store import seed
from tests.store.conftest import one_run
from tests.store.pg import PostgresServer

pytestmark = pytest.mark.e2e
psycopg = pytest.importorskip("psycopg")

SEED_ALERT = """
SELECT date_trunc('hour', created_at) AS hour, avg(tool_calls) AS avg_tool_calls
FROM agent_runs WHERE created_at > now() - interval '7 days' GROUP BY 1
HAVING avg(tool_calls) > 2 * (SELECT avg(tool_calls) FROM agent_runs
  WHERE created_at BETWEEN now() - interval '14 days' AND now() - interval '7 days');
"""


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


def hour_start(ms: int) -> int:
    return ms - ms % seed.HOUR_MS


def test_seed_sql_alert_returns_the_hours_whose_tool_calls_doubled(pg_url):
    now = seed.now_ms()
    records = []
    # Baseline week (8 to 13 days ago): 4 tool calls per run.
    for day in range(8, 14):
        for h in (3, 9, 15):
            records += seed.run_records(now - day * seed.DAY_MS - h * seed.HOUR_MS, tool_calls=4)
    # The last week: mostly normal hours, two drifted ones, and one at exactly twice (not above).
    for day, tool_calls in ((2, 4), (3, 5), (4, 3), (5, 4)):
        records += seed.run_records(now - day * seed.DAY_MS, tool_calls=tool_calls)
    drifted_a = hour_start(now - 5 * seed.HOUR_MS) + 600_000
    drifted_b = hour_start(now - 30 * seed.HOUR_MS) + 600_000
    exactly_twice = hour_start(now - 50 * seed.HOUR_MS) + 600_000
    for offset, tool_calls in ((0, 12), (60_000, 13), (120_000, 11)):
        records += seed.run_records(drifted_a + offset, tool_calls=tool_calls)
    for offset, tool_calls in ((0, 10), (300_000, 12)):
        records += seed.run_records(drifted_b + offset, tool_calls=tool_calls)
    records += seed.run_records(exactly_twice, tool_calls=8)
    seed.write(pg_url, records)

    with psycopg.connect(pg_url) as conn:
        kind = conn.execute("SELECT pg_typeof(created_at)::text FROM agent_runs LIMIT 1").fetchone()[0]
        got = conn.execute(SEED_ALERT).fetchall()
    assert kind == "timestamp with time zone"
    hours = {int(h.timestamp() * 1000): float(avg) for h, avg in got}
    assert hours == {hour_start(drifted_a): 12.0, hour_start(drifted_b): 11.0}


def test_setup_with_a_postgresql_url_stores_runs_the_cli_can_read(pg_url, setup_agent, tmp_path):
    setup_agent(store=pg_url)
    ids = [one_run(0), one_run(1, fail=True)]
    assert sdk.flush(10)
    agent_otel.shutdown()
    with psycopg.connect(pg_url) as conn:
        runs = conn.execute("SELECT run_id, stop_reason, tool_calls, created_at FROM agent_runs").fetchall()
        usage = conn.execute(
            "SELECT usage->>'input_tokens' FROM agent_events WHERE kind = 'llm_result'"
        ).fetchall()
    assert {r[0] for r in runs} == set(ids)
    assert {(r[1], r[2]) for r in runs} == {("completed", 2)}
    assert all(isinstance(r[3], dt.datetime) and r[3].tzinfo is not None for r in runs)
    assert [u[0] for u in usage] == ["800", "800"]

    env = {**os.environ, "AGENT_OTEL_HOME": str(tmp_path / "cli-home")}
    cli = [os.path.join(os.path.dirname(sys.executable), "agent-otel"), "--store", pg_url]
    shown = subprocess.run(
        [*cli, "show", ids[1][:10], "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [e["tool"] for e in data["events"] if e["kind"] == "tool_result"] == ["search", "http.get"]
    assert data["events"][-1]["kind"] == "stop" and data["run"]["stop_reason"] == "completed"
    listed = subprocess.run([*cli, "runs", "--json"], capture_output=True, text=True, env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    assert {r["run_id"] for r in json.loads(listed.stdout)} == set(ids)
    doctor = subprocess.run([*cli, "doctor", "--json"], capture_output=True, text=True, env=env, check=False)
    store = json.loads(doctor.stdout)["store"]
    assert store["ok"] is True and store["kind"] == "postgresql", store
    assert (store["runs"], store["schema_version"]) == (2, store["latest_schema_version"])
    # a team database records tool-result snapshots for replay too, owner-only
    assert (store["snapshot_runs"], store["tool_snapshots"]) == (2, 4) and store["encrypted_blobs"] == 0


def _store_sink() -> StoreSink:
    inst = sdk.installation()
    assert inst is not None
    return next(s for s in inst.pipeline.sinks() if isinstance(s, StoreSink))


def test_a_server_restart_mid_run_loses_no_run_and_no_event(caplog):
    """The drill of the README's Reliability section: `pg_ctl restart -m fast` while an agent runs."""
    server = PostgresServer()
    try:
        server.start()
        url = server.new_database()
        agent_otel.setup(
            "pg-restart",
            store=url,
            instrument=False,
            config={"exporter": {"probe_local": False}},
        )
        sink = _store_sink()
        ids: list[str] = []
        stop = threading.Event()

        def agent() -> None:
            while not stop.is_set():
                ids.append(one_run(len(ids), fail=len(ids) % 7 == 0))
                time.sleep(0.01)

        worker = threading.Thread(target=agent)
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            worker.start()
            wait_until(lambda: sink.written > 0, 30)
            server.restart()
            restarted_at = len(ids)
            time.sleep(1.5)  # the agent keeps running while the store comes back
            stop.set()
            worker.join(30)
            # Nothing arrives after this point: the sink's own retry must bring in what is waiting.
            with psycopg.connect(url) as conn:
                wait_until(lambda: _count(conn, "agent_runs WHERE status <> 'running'") == len(ids), 60)
                runs = _count(conn, "agent_runs")
                ended = _count(conn, "agent_runs WHERE status <> 'running'")
                events = _count(conn, "agent_events")
        messages = [r.getMessage() for r in caplog.records if "run store" in r.getMessage()]
        assert restarted_at > 0 and len(ids) > restarted_at
        assert (runs, ended, events) == (len(ids), len(ids), 4 * len(ids)), messages
        assert sink.dropped == 0 and sink.rejected == 0
        assert any("cannot take writes right now" in m for m in messages), messages
        assert any("accepts writes again" in m for m in messages), messages
        assert not any("cannot be used" in m for m in messages), messages
    finally:
        agent_otel.shutdown()
        server.stop()


def _count(conn: Any, what: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {what}").fetchone()[0])


def wait_until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_values_postgresql_cannot_hold_cost_at_most_their_own_record(pg_url, setup_agent, caplog):
    setup_agent(store=pg_url, config={"logging": {"events": {"store_args": True}}})
    not_utf8 = os.fsdecode(b"v\xff")

    @agent_otel.tool(name="ls")
    def ls(path: str) -> list:
        return [path, 10**5000]

    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        with agent_otel.run("fs-agent", prompt_version=not_utf8, tools_version="a\x00b") as odd:
            ls(path=not_utf8 + "\x00")
        with agent_otel.run("token-agent") as huge:
            huge.record_llm(model="gpt-4o", input_tokens=2**70, output_tokens=1)  # beyond bigint
        later = one_run(2)
        assert sdk.flush(10)
    sink = _store_sink()
    with psycopg.connect(pg_url) as conn:
        runs = {
            r[0]: r[1:]
            for r in conn.execute("SELECT run_id, status, prompt_version, tools_version FROM agent_runs")
        }
        (args,) = conn.execute("SELECT args->>'path' FROM agent_events WHERE tool = 'ls'").fetchone()
    assert runs[odd.run_id] == ("success", "v\\udcff", "a\\x00b")
    assert args == "v\\udcff\\x00"
    assert runs[huge.run_id][0] == "running"  # only its end record, whose token count bigint refuses, is lost
    assert runs[later][0] == "success"  # and the store is still on
    assert (sink.rejected, sink.dropped) == (1, 1)
    warnings = [r.getMessage() for r in caplog.records if "run store" in r.getMessage()]
    assert len(warnings) == 1 and "refused a run record" in warnings[0], warnings


def test_a_gc_cut_short_by_a_server_restart_goes_on_when_the_server_is_back(monkeypatch):
    """The sink's daily gc runs in slices between its writes. A restart closes the sink's connection and
    it reconnects; the gc under way must be finished over the new connection, not left for a day (the gc on
    the old connection ends there; the reopened store finds last_gc_ms not yet written and starts again)."""
    from agent_otel.store import retention
    from agent_otel.store import sink as sink_module
    from agent_otel.store.location import Target

    monkeypatch.setattr(sink_module, "MAINTENANCE_SLICE_S", 0.0)  # one gc batch per slice
    monkeypatch.setattr(retention, "BATCH_RUNS", 100)
    server = PostgresServer()
    try:
        server.start()
        url = server.new_database()
        old = seed.now_ms() - 40 * seed.DAY_MS
        records = []
        for i in range(500):
            records += seed.run_records(old + i * 1000, tool_calls=1, llm_calls=0)
        seed.write(url, records)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM agent_otel_meta WHERE key = 'last_gc_ms'")  # a day's gc is due
        sink = StoreSink(Target("postgresql", url), {"logs_days": 30, "tool_snapshot_days": 14})
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                for _ in range(100):  # the day's gc is due: writes carry it on, a slice at a time
                    sink.write(seed.run_records(seed.now_ms()))
                    left = _count(
                        conn, f"agent_runs WHERE created_at < to_timestamp({(old + 600_000) / 1000})"
                    )
                    if left < 500:
                        break
                    time.sleep(0.05)
                assert 0 < left < 500, "gc should be under way, not done or not started"
            server.restart()
            deadline = time.monotonic() + 60
            while True:
                sink.write(seed.run_records(seed.now_ms()))
                with psycopg.connect(url, autocommit=True) as conn:
                    left = _count(
                        conn, f"agent_runs WHERE created_at < to_timestamp({(old + 600_000) / 1000})"
                    )
                if left == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert left == 0, f"{left} runs older than the retention left after the restart"
            assert sink.dropped == 0
        finally:
            sink.close()
    finally:
        server.stop()


def test_tail_keeps_following_through_a_server_restart():
    """An operator watching `agent-otel tail` while PostgreSQL restarts: one line on stderr, then the
    runs that end after the restart (it ended with exit 2 and `AdminShutdown: terminating connection`)."""
    from tests.cli.conftest import COMMAND, wait_for_line

    server = PostgresServer()
    try:
        server.start()
        url = server.new_database()
        seed.write(url, seed.run_records(seed.now_ms(), run_id="b" * 32))
        tail = subprocess.Popen(
            [*COMMAND, "tail", "--store", url, "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = tail.stdout.readline()  # the header, then the run already there
            assert "ENDED" in line, line
            assert tail.stdout.readline().startswith("b" * 12)
            server.restart()
            time.sleep(0.5)  # at least one poll sees the restart
            seed.write(url, seed.run_records(seed.now_ms(), run_id="a" * 32))
            found = wait_for_line(tail, "a" * 12)
            assert tail.poll() is None, "tail ended"
            assert found, "tail did not show the run that ended after the restart"
        finally:
            tail.terminate()
            _, err = tail.communicate(timeout=30)
        assert "cannot be read right now" in err and "can be read again" in err, err
        assert "AdminShutdown" in err.splitlines()[0] or "terminating connection" in err, err
    finally:
        server.stop()


def test_tail_started_while_the_server_is_down_waits_for_it():
    """`agent-otel tail` started as a service before PostgreSQL is up (or during a restart): one line on
    stderr, then the runs that end once it answers. It ended at once with exit 2 (`Connection refused`),
    though the same outage a second later is waited out."""
    from tests.cli.conftest import COMMAND, wait_for_line

    server = PostgresServer()
    try:
        server.start()
        url = server.new_database()
        server.halt()
        tail = subprocess.Popen(
            [*COMMAND, "tail", "--store", url, "--interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first: list[str] = []
        try:
            # Its first failed try said so (a fixed sleep here was over before a loaded machine had started
            # the command and imported psycopg: nothing had failed yet), then a few more fail meanwhile.
            stderr = tail.stderr
            assert stderr is not None
            reader = threading.Thread(target=lambda: first.append(stderr.readline()), daemon=True)
            reader.start()
            reader.join(60)
            assert first and "cannot be read right now" in first[0], first
            time.sleep(0.6)
            assert tail.poll() is None, tail.communicate(timeout=10)
            server.resume()
            seed.write(url, seed.run_records(seed.now_ms(), run_id="c" * 32))
            found = wait_for_line(tail, "c" * 12)
            assert tail.poll() is None, "tail ended"
            assert found, "tail did not show the run that ended once the server was up"
        finally:
            tail.terminate()
            _, err = tail.communicate(timeout=30)
        err = "".join(first) + err
        lines = err.splitlines()
        assert len(lines) == 2 and "Traceback" not in err, err
        assert "cannot be read right now" in lines[0] and "Connection refused" in lines[0], err
        assert lines[1] == "agent-otel tail: the run store can be read again", err
    finally:
        server.stop()


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_warning(caplog):
    """A DBA's idle_session_timeout (or a proxy's idle limit) closes the sink's connection while the
    agent is idle. The next batch goes in over a new connection at once: no "cannot take writes" warning
    and "accepts writes again" after every quiet spell of a healthy database, no batch kept waiting."""
    from agent_otel.store.location import Target

    server = PostgresServer()
    try:
        server.start()
        url = server.new_database()
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET idle_session_timeout = '500ms'")
            conn.execute("SELECT pg_reload_conf()")
        sink = StoreSink(Target("postgresql", url), {})
        try:
            with caplog.at_level(logging.INFO, logger="agent_otel"):
                for _ in range(3):
                    sink.write(seed.run_records(seed.now_ms()))
                    assert sink.error is None and not sink._pending  # in the store at once
                    time.sleep(1.5)  # idle past the timeout: the server closes the connection
            with psycopg.connect(url) as conn:
                assert _count(conn, "agent_runs") == 3
        finally:
            sink.close()
        assert not [r.getMessage() for r in caplog.records if "run store" in r.getMessage()]
    finally:
        server.stop()


def test_gc_by_a_role_that_may_only_read_is_one_clear_error_line(postgres):
    """A read-only role (dashboards, analysts) may count with `gc --dry-run` but not delete: one line
    naming the store and the refusal, exit 2; it printed `InsufficientPrivilege: ...` as an unexpected
    error, with the hint to set AGENT_OTEL_DEBUG for a traceback."""
    from tests.cli.conftest import COMMAND

    url = postgres.new_database()
    seed.write(url, seed.run_records(seed.now_ms() - 40 * seed.DAY_MS))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN CREATE ROLE reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    reader = url.replace("agent_otel@", "reader@")
    dry = subprocess.run(
        [*COMMAND, "gc", "--dry-run", "--store", reader], capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0 and "would delete 1 rows from agent_runs" in dry.stdout, (
        dry.stdout + dry.stderr
    )
    proc = subprocess.run([*COMMAND, "gc", "--store", reader], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith(
        "agent-otel: error: cannot apply retention to the run store at postgresql://reader@"
    )
    assert "permission denied" in line and "AGENT_OTEL_DEBUG" not in line


def _poll(check: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _through_an_outage(
    postgres, caplog, down: list[str], up: list[str], error: str, in_store: bool = False
) -> int:
    """A run written, ``down`` run by an administrator, a run written (kept: the store refuses it with
    ``error``), ``up``, and a third run: the kept one goes in after the back-off without a new record, the
    third at once. Returns the runs the database has."""
    from agent_otel.store.location import Target

    url = postgres.new_database()
    name = url.rsplit("/", 1)[1]

    def admin(statements: list[str]) -> None:
        with psycopg.connect(url if in_store else postgres.url("postgres"), autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql.format(name=name))

    sink = StoreSink(Target("postgresql", url), {})
    try:
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            sink.write(seed.run_records(seed.now_ms()))
            assert sink.error is None
            admin(down)
            sink.write(seed.run_records(seed.now_ms()))
            assert error in str(sink.error) and sink._pending, sink.error
            admin(up)
            assert _poll(lambda: not sink._pending), sink.error
            sink.write(seed.run_records(seed.now_ms()))
            assert not sink._pending and sink.dropped == 0
        messages = [r.getMessage() for r in caplog.records]
        assert any("cannot take writes right now" in m and error in m for m in messages), messages
        assert any("accepts writes again" in m for m in messages), messages
        assert not any("cannot be used" in m for m in messages), messages
        with psycopg.connect(url) as conn:
            return _count(conn, "agent_runs")
    finally:
        sink.close()


def test_a_database_dropped_and_created_again_takes_writes_again(postgres, caplog):
    """An operator drops the store's database (`DROP DATABASE ... WITH (FORCE)` ends the sink's session)
    and creates it again, empty. While it is gone the server answers 3D000 "database does not exist":
    for a store this process was writing to, that passes like a restart. The records of that spell are
    kept (bounded) and go into the new database, whose tables are created again."""
    runs = _through_an_outage(
        postgres, caplog, ["DROP DATABASE {name} WITH (FORCE)"], ["CREATE DATABASE {name}"], "does not exist"
    )
    assert runs == 2  # the first went with the dropped database


def test_a_database_that_never_existed_is_one_clear_error(postgres, caplog):
    """A misspelt database name at the first connection is not an outage to wait out: the store is off
    for the process, said once, and the agent goes on."""
    from agent_otel.store.location import Target

    sink = StoreSink(Target("postgresql", postgres.url("no_such_db")), {})
    try:
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            sink.write(seed.run_records(seed.now_ms()))
        assert sink._disabled and not sink._pending
        (line,) = [r.getMessage() for r in caplog.records if "run store" in r.getMessage()]
        assert "cannot be used" in line and '"no_such_db" does not exist' in line
    finally:
        sink.close()


def test_two_versions_migrating_an_old_postgresql_store_at_once(pg_url):
    from agent_otel.store.location import Target
    from tests.store.test_store import migrate_an_old_store_from_two_versions_at_once

    def count_rows(sql: str) -> list[tuple]:
        with psycopg.connect(pg_url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    migrate_an_old_store_from_two_versions_at_once(Target("postgresql", pg_url), count_rows)


def test_a_read_only_server_after_a_failover_is_waited_out(postgres, caplog):
    """After a failover the URL may lead to a server that is a standby now: every write is refused with
    25006 read_only_sql_transaction until DNS or the proxy points at the new primary. That passes: the
    records wait (bounded) and go in once a new connection can write; it switched the store off for the
    rest of the process."""
    down = [
        "ALTER DATABASE {name} SET default_transaction_read_only = on",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    ]
    up = ["ALTER DATABASE {name} RESET default_transaction_read_only"]
    assert _through_an_outage(postgres, caplog, down, up, "read-only transaction") == 3


def test_a_schema_restored_under_a_writer_takes_writes_again(postgres, caplog):
    """A DBA restores the store's schema while the agent runs (``DROP SCHEMA public CASCADE``, then an
    empty one): the next write finds no table (42P01 undefined_table, which PostgreSQL reports for the
    write as 25P02 when a read in its transaction met it first). That switched the store off for the life
    of the process. A careful operator expects what a dropped database gets: nothing lost, the tables
    created again (the migrations run on the new connection), and the writes go on."""
    from agent_otel.store.location import Target

    url = postgres.new_database()
    sink = StoreSink(Target("postgresql", url), {})
    try:
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            sink.write(seed.run_records(seed.now_ms()))
            assert sink.error is None
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DROP SCHEMA public CASCADE")
                conn.execute("CREATE SCHEMA public")
            after = seed.run_records(seed.now_ms())
            sink.write(after)
            sink.write(seed.run_records(seed.now_ms()))
            assert not sink._pending and sink.dropped == 0 and not sink._disabled, sink.error
        assert not any("cannot be used" in r.getMessage() for r in caplog.records)
        with psycopg.connect(url) as conn:
            assert _count(conn, "agent_runs") == 2  # the two after the restore; the first went with it
            ids = {r[0] for r in conn.execute("SELECT run_id FROM agent_runs").fetchall()}
            assert after[0][1]["run_id"] in ids
    finally:
        sink.close()


def test_tables_missing_while_a_restore_runs_are_waited_out(postgres, caplog):
    """``pg_restore --clean`` drops the tables and creates them again from the dump: a write in between
    finds no table (42P01) although the schema version row is still there. The records are kept (bounded,
    as in an outage) and go in once the tables are back, without a new record to push them."""
    runs = _through_an_outage(
        postgres,
        caplog,
        ["ALTER TABLE agent_runs RENAME TO agent_runs_restoring"],
        ["ALTER TABLE agent_runs_restoring RENAME TO agent_runs"],
        "does not exist",
        in_store=True,
    )
    assert runs == 3


def _cut_runs(n: int) -> None:
    for i in range(n):
        with agent_otel.run("cut") as run:
            run.record_llm(model="gpt-4o", input_tokens=100, output_tokens=10)
            for q in range(3):
                run.call_tool("lookup", lambda q: {"answer": q * 2}, {"q": f"{i}-{q}"})


def _assert_each_run_once(url: str, runs: int) -> None:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT run_id, status, input_tokens FROM agent_runs").fetchall()
        assert len(rows) == runs and {(s, t) for _, s, t in rows} == {("success", 100)}
        twice = conn.execute(
            "SELECT run_id, step_id, kind, count(*) FROM agent_events GROUP BY 1, 2, 3 HAVING count(*) > 1"
        ).fetchall()
        assert twice == []
        per_run = conn.execute("SELECT run_id, count(*) FROM agent_events GROUP BY 1").fetchall()
        assert len(per_run) == runs and len({n for _, n in per_run}) == 1  # every run's events, once
        calls = conn.execute("SELECT run_id, sum(calls) FROM agent_snapshot_packs GROUP BY 1").fetchall()
        assert len(calls) == runs and {n for _, n in calls} == {3}


@contextlib.contextmanager
def _cut_at_a_commit(postgres: PostgresServer, mode: str) -> Iterator[tuple[str, Any]]:
    """An agent storing through a CommitCutter: 3 runs stored, then 3 more whose write ``mode`` cuts at
    its COMMIT; yields the database's URL and the cutter, which is stopped afterwards."""
    from tests.store.pg import CommitCutter

    url = postgres.new_database()
    cutter = CommitCutter(postgres.port)
    try:
        agent_otel.setup(
            "svc", store=cutter.url(url), instrument=False, config={"exporter": {"probe_local": False}}
        )
        _cut_runs(3)
        assert sdk.flush(10)
        cutter.arm(mode)
        _cut_runs(3)
        assert sdk.flush(10)
        assert cutter.cuts == 1
        yield url, cutter
    finally:
        cutter.stop()


@pytest.mark.parametrize("outcome", ["committed", "aborted"])
def test_a_commit_still_in_progress_is_waited_for_before_its_records_are_written_again(
    postgres, fresh, outcome
):
    """The connection to the sink cut while the server still holds the write's transaction open, its
    COMMIT not done (a slow commit, a backend that has not noticed its client is gone): the server
    answers "in progress", and the records wait (bounded, as in an outage) for its outcome. Before, the
    retry wrote them at once, waited on the held transaction's row locks, and stored the events again
    once it committed."""
    with _cut_at_a_commit(postgres, "hold") as (url, cutter):
        time.sleep(1.0)
        with psycopg.connect(url) as conn:  # the held transaction's runs are not visible yet
            assert _count(conn, "agent_runs") == 3
        cutter.release(commit=outcome == "committed")
        _cut_runs(2)
        agent_otel.shutdown(timeout_s=10)
    _assert_each_run_once(url, 8)


@pytest.mark.parametrize("cut", ["after", "before"])
def test_a_commit_whose_answer_was_lost_is_stored_once(postgres, fresh, cut):
    """The connection cut at a write's COMMIT (a restart, a failover, the network): ``after`` the server
    committed, its answer lost, the write's retry stored its events and snapshot packs a second time and
    added its late usage twice; the sink now asks the server what became of that transaction first.
    ``before`` the COMMIT reached the server: written again, nothing lost."""
    with _cut_at_a_commit(postgres, cut) as (url, _):
        _cut_runs(2)
        agent_otel.shutdown(timeout_s=10)
    _assert_each_run_once(url, 8)
