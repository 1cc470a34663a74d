"""The run store as a user meets it: setup() writes every run there; a broken store never hurts the agent."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import agent_otel
from agent_otel import sdk
from agent_otel.store import StoreSink, Target, open_store
from agent_otel.store import schema as store_schema
from tests.store import seed
from tests.store.conftest import one_run, run_python


def rows(path: str, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "agent_otel" and r.levelno >= logging.WARNING and "run store" in r.getMessage()
    ]


def test_setup_writes_every_run_to_the_default_sqlite_store(setup_agent, tmp_path):
    exporter = setup_agent()
    ids = [one_run(0), one_run(1, fail=True)]
    assert sdk.flush(5)
    home = tmp_path / "home"
    db = str(home / "agent-otel.db")
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600

    runs = {r["run_id"]: r for r in rows(db, "SELECT * FROM agent_runs")}
    assert set(runs) == set(ids)
    first = runs[ids[0]]
    assert (first["agent"], first["status"], first["stop_reason"]) == (
        "support-agent",
        "success",
        "completed",
    )
    assert (first["model"], first["prompt_version"], first["tools_version"]) == ("gpt-4o", "v12", "3")
    assert (first["tool_calls"], first["steps"], first["input_tokens"], first["output_tokens"]) == (
        2,
        3,
        800,
        90,
    )
    assert first["cost_usd"] > 0
    assert first["duration_ms"] >= 0 and first["ended_at"] >= first["created_at"]

    # The events are the unified schema, in step order, with the same hashes the spans carry.
    events = rows(db, "SELECT * FROM agent_events WHERE run_id = ? ORDER BY id", (ids[1],))
    assert [(e["kind"], e["step_id"], e["tool"]) for e in events] == [
        ("tool_result", 1, "search"),
        ("llm_result", 2, None),
        ("tool_result", 3, "http.get"),
        ("stop", None, None),
    ]
    failed = events[2]
    assert (failed["status"], failed["error"], failed["result_sha"]) == ("error", "ConnectionError", None)
    spans = {
        s.attributes.get("agent.step_id"): s
        for s in exporter.get_finished_spans()
        if s.attributes.get("agent.run_id") == ids[1] and s.name.startswith("execute_tool")
    }
    assert events[0]["args_sha"] == spans[1].attributes["agent.tool.args_sha"]
    assert events[0]["result_sha"] == spans[1].attributes["agent.tool.result_sha"]
    assert events[3]["stop_reason"] == "completed"
    assert events[3]["trace_id"] == runs[ids[1]]["trace_id"] != runs[ids[0]]["trace_id"]


def test_store_false_and_store_paths(setup_agent, tmp_path, monkeypatch):
    setup_agent(store=False)
    one_run()
    assert sdk.flush(5)
    agent_otel.shutdown()
    assert not (tmp_path / "home").exists()

    env_path = tmp_path / "elsewhere" / "runs.db"
    env_path.parent.mkdir()  # agent-otel creates only its own home directory
    monkeypatch.setenv("AGENT_OTEL_STORE", str(env_path))
    setup_agent()
    run_id = one_run()
    assert sdk.flush(5)
    assert [r["run_id"] for r in rows(str(env_path), "SELECT run_id FROM agent_runs")] == [run_id]
    agent_otel.shutdown()

    monkeypatch.setenv("AGENT_OTEL_STORE", "false")
    setup_agent()
    one_run()
    assert sdk.flush(5)
    assert not (tmp_path / "home").exists()


def test_events_disabled_keeps_runs_but_no_events(setup_agent, tmp_path):
    setup_agent(config={"logging": {"events": {"enabled": False}}})
    run_id = one_run()
    assert sdk.flush(5)
    db = str(tmp_path / "home" / "agent-otel.db")
    assert [tuple(r) for r in rows(db, "SELECT run_id, stop_reason FROM agent_runs")] == [
        (run_id, "completed")
    ]
    assert rows(db, "SELECT * FROM agent_events") == []


def test_a_run_is_stored_while_it_runs_and_its_end_is_never_undone(tmp_path):
    path = str(tmp_path / "s.db")
    records = seed.run_records(seed.now_ms())
    start, end = records[0], records[-1]
    seed.write(path, [start])
    assert [tuple(r) for r in rows(path, "SELECT status, stop_reason FROM agent_runs")] == [("running", None)]
    seed.write(path, records[1:])
    seed.write(path, [start])  # a duplicate start must not turn an ended run back into a running one
    got = rows(path, "SELECT status, stop_reason, tool_calls FROM agent_runs")
    assert [tuple(r) for r in got] == [("success", "completed", end[1]["tool_calls"])]


def test_values_left_empty_by_some_records_or_by_a_whole_batch_read_back_as_written(tmp_path):
    """The write path leaves out of its statements the columns every row of a batch leaves empty (binding
    None is slow): a value set in one row of a batch, a column empty in every row, an end record whose
    empty columns clear what its start record set, all read back as the records hold them."""
    path = str(tmp_path / "s.db")
    now = seed.now_ms()
    failed = seed.run_records(now, failing=("http.get", "Timeout"), conversation_id="conv-1")
    quiet = seed.run_records(now + 1)  # no error, no conversation: those columns are empty in its batch
    quiet[-1][1]["model"] = None  # the end record's empty model replaces the start record's
    seed.write(path, failed + quiet[:-1])
    seed.write(path, quiet[-1:])
    events = [p for t, p in failed + quiet if t == "event"]
    got = rows(path, "SELECT * FROM agent_events ORDER BY id")
    assert len(got) == len(events)
    for row, event in zip(got, events, strict=True):
        for column in ("run_id", "kind", "ts_ms", "step_id", "tool", "status", "error", "stop_reason"):
            assert row[column] == event.get(column), (column, dict(row), event)
        assert (row["usage"] is None) == (event.get("usage") is None)
        assert row["args"] is None and row["result"] is None and row["attempts"] is None
    assert sum(r["error"] == "Timeout" for r in got) == 1
    runs = {r["run_id"]: r for r in rows(path, "SELECT * FROM agent_runs")}
    end_failed, end_quiet = failed[-1][1], quiet[-1][1]
    assert runs[end_failed["run_id"]]["conversation_id"] == "conv-1"
    assert runs[end_failed["run_id"]]["model"] == "gpt-4o"
    assert runs[end_quiet["run_id"]]["conversation_id"] is None
    assert runs[end_quiet["run_id"]]["model"] is None
    assert runs[end_quiet["run_id"]]["status"] == "success"
    for run in runs.values():
        assert run["parent_run_id"] is None and run["replay_of"] is None and run["detail"] is None
    # SQLite: a column some rows of a batch leave empty is bound as NaN there, which SQLite stores as NULL
    # (no REAL value in a text column, none in a number column either).
    [counts] = rows(
        path,
        "SELECT sum(typeof(tool) = 'real') AS tool, sum(typeof(stop_reason) = 'real') AS stop, "
        "sum(typeof(usage) = 'real') AS usage, sum(typeof(step_id) = 'real') AS step, "
        "sum(stop_reason IS NULL) AS no_stop FROM agent_events",
    )
    assert dict(counts) == {"tool": 0, "stop": 0, "usage": 0, "step": 0, "no_stop": len(events) - 2}
    assert rows(path, "SELECT count(*) AS n FROM agent_runs WHERE typeof(model) = 'real'")[0]["n"] == 0


def test_a_batch_binds_empty_values_as_nan_in_sqlite_only_and_leaves_the_callers_values_as_they_were():
    """Binding None costs the sqlite3 module an adapter lookup per value; a NaN, which SQLite stores as
    NULL, is bound directly. PostgreSQL would store the NaN, so its values keep their None."""
    import math

    from agent_otel.store.writes import _without_nulls

    values = ["a", None, None, 1, "b", None, 2, None]
    kept = list(values)
    for nan in (True, False):
        columns, width, out = _without_nulls(("w", "x", "y", "z"), 4, 2, values, nan)
        assert (columns, width) == (("w", "y", "z"), 3) and values == kept
        empty = "float" if nan else "NoneType"
        assert [type(v).__name__ for v in out] == ["str", empty, "int", "str", "int", empty]
        assert all(math.isnan(v) for v in out if type(v) is float) and out[0::3] == ["a", "b"]
    _, _, out = _without_nulls(("x", "y"), 2, 2, kept[:4], True)  # no column empty in every row
    assert out is not kept and kept[:4] == ["a", None, None, 1] and math.isnan(out[1]) and math.isnan(out[2])


def test_seed_records_match_the_sdk(telemetry):
    """The synthetic runs other tests seed have the same shape as what a real run emits."""
    one_run()
    telemetry.flush()
    real = telemetry.sink.records
    fake = seed.run_records(seed.now_ms(), tool_calls=2, llm_calls=1)

    def shape(records):
        # Keys starting with "_" are the pipeline's own (sampling, for exemplars); the store ignores them.
        return sorted(
            {
                (t, p.get("kind"), p.get("status") == "running", tuple(sorted(k for k in p if k[0] != "_")))
                for t, p in records
            }
        )

    assert shape(fake) == shape(real)


def test_corrupt_store_warns_once_and_the_agent_and_otlp_carry_on(setup_agent, tmp_path, caplog):
    home = tmp_path / "home"
    home.mkdir()
    (home / "agent-otel.db").write_bytes(b"this is not a database" * 100)
    exporter = setup_agent()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        for i in range(5):
            one_run(i)
            assert sdk.flush(5)
    warnings = store_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "cannot be used" in warnings[0] and str(home / "agent-otel.db") in warnings[0]
    runs = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    assert len(runs) == 5  # spans still flow to the exporter


def test_an_existing_home_and_store_open_to_others_are_made_owner_only(tmp_path, monkeypatch, caplog):
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_OTEL_HOME", str(home))
    db = str(home / "agent-otel.db")
    seed.write(db, seed.run_records(seed.now_ms()))
    os.chmod(home, 0o755)  # made by hand, or by a tool with a default umask
    os.chmod(db, 0o644)
    with caplog.at_level(logging.INFO, logger="agent_otel"):
        open_store(Target("sqlite", db), create=False, writer=False).close()
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "owner-only" in r.getMessage()]
    assert len(said) == 1 and said[0][0] == logging.INFO
    said = [said[0][1]]
    assert f"{db} 0o644 -> 0o600" in said[0] and f"{home} 0o755 -> 0o700" in said[0]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agent_otel"):
        open_store(Target("sqlite", db), create=False).close()
    assert not [r for r in caplog.records if "owner-only" in r.getMessage()]  # once tightened, silent


def test_a_directory_the_user_chose_is_not_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    shared = tmp_path / "project"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    db = str(shared / "runs.db")
    seed.write(db, seed.run_records(seed.now_ms()))
    os.chmod(db, 0o640)
    open_store(Target("sqlite", db)).close()
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o755  # not agent-otel's directory
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600  # but the store file is


def test_newer_schema_is_not_written_but_is_reported_once(setup_agent, tmp_path, caplog):
    path = str(tmp_path / "home" / "agent-otel.db")
    seed.write(path, seed.run_records(seed.now_ms()))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE agent_otel_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    setup_agent()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        one_run(1)
        one_run(2)
        assert sdk.flush(5)
    warnings = store_warnings(caplog)
    assert len(warnings) == 1 and "newer than this agent-otel supports" in warnings[0]
    assert len(rows(path, "SELECT * FROM agent_runs")) == 1


def test_locked_store_warns_once_keeps_the_records_and_writes_them_later(
    setup_agent, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr("agent_otel.store.db.DEFAULT_BUSY_TIMEOUT_S", 1.5)
    path = str(tmp_path / "home" / "agent-otel.db")
    open_store(Target("sqlite", path)).close()  # create it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sqlite3, sys
                conn = sqlite3.connect(sys.argv[1], isolation_level=None)
                conn.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
            path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        setup_agent()
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            ids = [one_run(i) for i in range(3)]
            assert time.monotonic() - started < 1.0  # the agent never waits for the store
            assert sdk.flush(5)  # the first try waits out the busy timeout
            for i in range(3, 6):
                # Later batches do not wait it out again: the pipeline (and the metrics it carries) flows.
                ids.append(one_run(i))
                started = time.monotonic()
                assert sdk.flush(5)
                assert time.monotonic() - started < 0.75  # well under the 1.5 s busy timeout
        warnings = store_warnings(caplog)
        assert len(warnings) == 1 and "cannot take writes right now" in warnings[0], warnings
    finally:
        holder.stdin.close()
        holder.wait(10)
    # Once the lock is gone, a later batch (after the sink's back-off) carries the kept records in.
    deadline = time.monotonic() + 10
    while True:
        ids.append(one_run(len(ids)))
        assert sdk.flush(5)
        stored = {r["run_id"] for r in rows(path, "SELECT run_id FROM agent_runs WHERE status = 'success'")}
        if stored == set(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert stored == set(ids)


READ_ONLY_AGENT = textwrap.dedent(
    """
    import os, pwd, sys
    import agent_otel
    from agent_otel import sdk
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # Import everything first: once this process is not root it cannot read root's Python install.
    agent_otel.setup("warm", store=False, instrument=False, config={"exporter.probe_local": False})
    agent_otel.shutdown()
    import sqlite3, agent_otel.store.sink  # noqa
    if os.geteuid() == 0:
        user = pwd.getpwnam("nobody")
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    exporter = InMemorySpanExporter()
    agent_otel.setup("ro", store=sys.argv[1], instrument=False, span_exporters=[exporter],
                     config={"exporter.probe_local": False})

    @agent_otel.tool(name="search")
    def search(q):
        return q

    for i in range(3):
        with agent_otel.run("ro-agent") as run:
            search(str(i))
        sdk.flush(5)
    spans = len([s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")])
    agent_otel.shutdown()
    print(f"runs done, {spans} run spans exported")
    """
)


def test_read_only_store_warns_once_and_the_agent_carries_on():
    directory = tempfile.mkdtemp(prefix="agent-otel-ro-")
    path = os.path.join(directory, "agent-otel.db")
    try:
        seed.write(path, seed.run_records(seed.now_ms()))
        if os.geteuid() == 0:
            os.chmod(directory, 0o755)  # readable by everyone, writable by root only
            os.chmod(path, 0o644)
        else:
            os.chmod(path, 0o444)
            os.chmod(directory, 0o555)
        proc = run_python(READ_ONLY_AGENT, path)
        assert proc.returncode == 0, proc.stderr
        assert "runs done, 3 run spans exported" in proc.stdout
        warnings = [line for line in proc.stderr.splitlines() if "run store" in line]
        assert len(warnings) == 1, proc.stderr
        assert "cannot be used" in warnings[0]
        assert "Traceback" not in proc.stderr
        assert len(rows(path, "SELECT * FROM agent_runs")) == 1
    finally:
        os.chmod(directory, 0o755)
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


WRITER = textwrap.dedent(
    """
    import sys, time
    import agent_otel
    from agent_otel import sdk

    path, worker, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    agent_otel.setup("writer", store=path, instrument=False, config={"exporter.probe_local": False})
    time.sleep(max(start - time.time(), 0))  # all start together: they race to create the store

    @agent_otel.tool(name="search")
    def search(q):
        return q

    for i in range(count):
        with agent_otel.run("writer-agent", input={"worker": worker, "i": i}) as run:
            search(f"{worker}-{i}")
            search("again")
            run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=5)
        if i % 3 == 0:
            sdk.flush(10)  # many small transactions: more contention for the write lock
    agent_otel.shutdown(10)
    """
)


def test_several_processes_writing_one_sqlite_file_lose_nothing(tmp_path):
    (tmp_path / "shared").mkdir()
    path = str(tmp_path / "shared" / "agent-otel.db")  # fresh: they also race to create and migrate it
    workers, count = 4, 40
    start = time.time() + 1.5  # after every interpreter has started, even on a loaded machine
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, path, str(w), str(count), str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0 or "run store" in err:
            errors.append(err)
    assert not errors, errors
    runs = rows(path, "SELECT status, count(*) AS n FROM agent_runs GROUP BY status")
    assert [tuple(r) for r in runs] == [("success", workers * count)]
    per_kind = dict(tuple(r) for r in rows(path, "SELECT kind, count(*) FROM agent_events GROUP BY kind"))
    assert per_kind == {
        "tool_result": 2 * workers * count,
        "llm_result": workers * count,
        "stop": workers * count,
    }
    assert rows(path, "SELECT value FROM agent_otel_meta WHERE key = 'schema_version'")[0][0] == str(
        store_schema.LATEST_VERSION
    )


OPENER = textwrap.dedent(
    """
    import sys, time
    from agent_otel.store import Target, open_store

    directory, worker, start, rounds = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    for r in range(rounds):
        time.sleep(max(start + 0.3 * r - time.time(), 0))  # every process opens the same fresh file at once
        store = open_store(Target("sqlite", f"{directory}/round{r}.db"))
        store.write([{"run_id": f"{worker}-{r}", "agent": "a", "created_at_ms": 1, "status": "running"}], [])
        store.close()
    """
)


def test_processes_creating_one_store_at_the_same_instant_all_get_in(tmp_path):
    workers, rounds = 6, 5
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(tmp_path), str(w), str(start), str(rounds)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = [err for p in procs for err in [p.communicate(timeout=60)[1]] if p.returncode != 0]
    assert not errors, errors[0]
    for r in range(rounds):
        assert len(rows(str(tmp_path / f"round{r}.db"), "SELECT * FROM agent_runs")) == workers


def test_schema_migrates_forward_and_keeps_the_data(tmp_path, monkeypatch):
    path = str(tmp_path / "m.db")
    records = seed.run_records(seed.now_ms())
    seed.write(path, records)
    step = (
        store_schema.LATEST_VERSION + 1,
        [
            "CREATE TABLE agent_snapshots "
            "(run_id TEXT NOT NULL, step_id INTEGER, created_at_ms INTEGER NOT NULL)"
        ],
    )
    monkeypatch.setitem(store_schema.MIGRATIONS, "sqlite", [*store_schema.MIGRATIONS["sqlite"], step])
    store = open_store(Target("sqlite", path))
    try:
        assert store.schema_version() == store_schema.LATEST_VERSION + 1
        assert store.has_table("agent_snapshots")
        assert [r["run_id"] for r in store.runs()] == [records[0][1]["run_id"]]
    finally:
        store.close()


def test_gc_applies_retention_and_runs_at_most_daily_from_the_sink(tmp_path):
    path = str(tmp_path / "gc.db")
    now = seed.now_ms()
    old = seed.run_records(now - 40 * seed.DAY_MS)
    recent = seed.run_records(now - 2 * seed.DAY_MS)
    seed.write(path, old + recent)
    target = Target("sqlite", path)
    store = open_store(target)
    try:
        store.set_meta("last_gc_ms", str(now - 2 * 3_600_000))  # gc ran two hours ago
    finally:
        store.close()

    sink = StoreSink(target, {"logs_days": 30, "tool_snapshot_days": 14})
    sink.write(seed.run_records(now))
    sink.close()
    assert len(rows(path, "SELECT * FROM agent_runs")) == 3  # not yet a day since the last gc

    store = open_store(target)
    store.set_meta("last_gc_ms", str(now - 25 * 3_600_000))
    store.close()
    sink = StoreSink(target, {"logs_days": 30, "tool_snapshot_days": 14})
    fresh = seed.run_records(now)
    sink.write(fresh)
    # gc runs in slices between writes (a share of the thread's time): rewriting the run's rows (no new
    # row) gives it its next slices until it has recorded its end.
    for _ in range(100):
        last = rows(path, "SELECT value FROM agent_otel_meta WHERE key = 'last_gc_ms'")[0][0]
        if int(last) >= now:
            break
        time.sleep(0.05)
        sink.write([r for r in fresh if r[0] == "run"])
    sink.close()
    remaining = {r[0] for r in rows(path, "SELECT run_id FROM agent_runs")}
    assert old[0][1]["run_id"] not in remaining and recent[0][1]["run_id"] in remaining
    assert len(remaining) == 3
    assert not rows(path, "SELECT * FROM agent_events WHERE run_id = ?", (old[0][1]["run_id"],))
    last = int(rows(path, "SELECT value FROM agent_otel_meta WHERE key = 'last_gc_ms'")[0][0])
    assert last >= now


def test_unreachable_postgres_warns_once_and_the_agent_carries_on(setup_agent, caplog):
    pytest.importorskip("psycopg")
    exporter = setup_agent(store="postgresql://agent@127.0.0.1:1/agent_otel")
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        one_run(1)
        assert sdk.flush(10)
        one_run(2)
        assert sdk.flush(10)
    warnings = store_warnings(caplog)
    assert len(warnings) == 1 and "127.0.0.1:1" in warnings[0], warnings
    assert len([s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]) == 2


def test_backdating_hook_shifts_only_the_stored_copy(tmp_path):
    path = str(tmp_path / "b.db")
    now = seed.now_ms()
    records = seed.run_records(now)
    run_id = records[0][1]["run_id"]
    sink = StoreSink(Target("sqlite", path), {})
    sink.shift_run(run_id, 3 * seed.DAY_MS)
    sink.write(records)
    sink.close()
    assert records[0][1]["created_at_ms"] == now  # other sinks see the original record
    store = open_store(Target("sqlite", path))
    try:
        (run,) = store.runs()
        assert run["created_at_ms"] == now - 3 * seed.DAY_MS
        assert all(e["ts_ms"] < now - 3 * seed.DAY_MS + 10_000 for e in store.events_for(run_id))
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_worker_writes_its_runs_with_its_own_connection(setup_agent, tmp_path):
    setup_agent()
    parent_run = one_run(0)
    assert sdk.flush(5)  # the parent's connection is open now
    pid = os.fork()
    if pid == 0:  # the worker, as gunicorn or multiprocessing would fork it
        code = 1
        try:
            one_run(1)
            code = 0 if sdk.flush(5) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    one_run(2)
    assert sdk.flush(5)
    db = str(tmp_path / "home" / "agent-otel.db")
    stored = rows(db, "SELECT run_id, status FROM agent_runs")
    assert len(stored) == 3 and all(r["status"] == "success" for r in stored)
    assert parent_run in {r["run_id"] for r in stored}


def test_runs_a_locked_store_cannot_take_at_exit_are_reported_not_lost_silently(tmp_path):
    path = str(tmp_path / "home" / "agent-otel.db")
    open_store(Target("sqlite", path)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    agent = textwrap.dedent(
        """
        import sys, agent_otel
        config = {"exporter": {"probe_local": False}}
        agent_otel.setup("svc", store=sys.argv[1], instrument=False, config=config)
        for i in range(5):
            with agent_otel.run("support") as run:
                run.call_tool("search", lambda q: [q], {"q": i})
        agent_otel.shutdown()
        """
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", agent, path], capture_output=True, text=True, timeout=60, check=False
        )
        elapsed = time.monotonic() - started
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert proc.returncode == 0, proc.stderr
    assert "was busy at exit" in proc.stderr and "not stored" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 15  # the exit is bounded even with the store locked


OLDER = textwrap.dedent(
    """
    import sys
    import agent_otel
    from agent_otel.store import schema

    for kind in schema.MIGRATIONS:  # an agent-otel of schema 5, before summaries and snapshot data
        schema.MIGRATIONS[kind] = schema.MIGRATIONS[kind][:5]
    agent_otel.setup("older", store=sys.argv[1], instrument=False, config={"exporter.probe_local": False})
    with agent_otel.run("older-agent"):
        pass
    agent_otel.shutdown(10)
    """
)


def migrate_an_old_store_from_two_versions_at_once(target: Target, count_rows) -> None:
    """A schema-5 store with runs in it; two processes of this version start writing at the same instant
    (both migrate it, under the write lock: once), then a process of the older version starts. Every run
    of the new ones is stored along with the old runs; the older one, which cannot write the new schema,
    says so in one line and its agent runs on (README "Tables")."""
    import unittest.mock

    old = {kind: steps[:5] for kind, steps in store_schema.MIGRATIONS.items()}
    with unittest.mock.patch.dict(store_schema.MIGRATIONS, old):
        seed.write(target.location, seed.run_records(seed.now_ms() - 60_000))
        store = open_store(target)
        assert store.schema_version() == 5
        store.close()
    location, count = target.location, 20
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, location, str(w), str(count), str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "run store" not in err, err
    older = subprocess.run(
        [sys.executable, "-c", OLDER, location], capture_output=True, text=True, timeout=120
    )
    assert older.returncode == 0, older.stderr
    lines = [line for line in older.stderr.splitlines() if "run store" in line]
    assert len(lines) == 1 and (
        f"its schema version {store_schema.LATEST_VERSION} is newer than this agent-otel supports (5); "
        "upgrade agent-otel" in lines[0]
    ), older.stderr
    assert count_rows("SELECT value FROM agent_otel_meta WHERE key = 'schema_version'") == [
        (str(store_schema.LATEST_VERSION),)
    ]
    assert count_rows("SELECT agent, count(*) FROM agent_runs GROUP BY agent ORDER BY agent") == [
        ("support-agent", 1),
        ("writer-agent", 2 * count),
    ]
    assert count_rows("SELECT sum(calls) FROM agent_snapshot_packs") == [(2 * 2 * count,)]


def test_two_versions_migrating_an_old_sqlite_store_at_once(tmp_path):
    path = str(tmp_path / "agent-otel.db")
    migrate_an_old_store_from_two_versions_at_once(
        Target("sqlite", path), lambda sql: [tuple(r) for r in rows(path, sql)]
    )
