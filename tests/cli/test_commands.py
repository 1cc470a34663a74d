"""The read commands over a store seeded with known runs: what a user sees, and the exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import statistics
import subprocess
import sys

import pytest

from agent_otel.config import EVENT_FIELDS
from agent_otel.store import LATEST_VERSION, Target, open_store
from tests.cli.conftest import CLI, one_line_error
from tests.store import seed
from tests.store.test_upgrade import STORES

HOUR, DAY = seed.HOUR_MS, seed.DAY_MS
# The seeded runs carry no replay snapshots (schema migration 2); gc reports those tables too.
NO_SNAPSHOTS = {
    "agent_tool_snapshots": 0,
    "agent_snapshot_runs": 0,
    "agent_snapshot_blobs": 0,
    "agent_snapshot_data": 0,
    "agent_snapshot_packs": 0,
}


def q(values: list[float], p: int) -> float:
    """Linearly interpolated percentile, computed independently of the CLI."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@pytest.fixture
def seeded(cli: CLI) -> dict:
    """Five recent runs of support-agent, two loop_detected runs of triage-agent, one run three days old."""
    now = seed.now_ms()
    records, ids = [], {}
    durations = [800.0, 1200.0, 950.0, 4000.0, 1500.0]
    for i, duration in enumerate(durations):
        recs = seed.run_records(
            now - (i + 1) * 60_000,
            tool_calls=3 + i,
            duration_ms=duration,
            tokens_per_request=1000 + 100 * i,
            cost_usd=0.01 * (i + 1),
            failing=("http.get", "TooManyRequests") if i in (1, 3) else None,
        )
        ids[f"support-{i}"] = recs[0][1]["run_id"]
        records += recs
    for i in range(2):
        recs = seed.run_records(
            now - (10 + i) * 60_000,
            agent="triage-agent",
            stop_reason="loop_detected",
            run_id=f"feed{i:04d}" + "0" * 24,  # two ids with a common prefix
        )
        ids[f"triage-{i}"] = recs[0][1]["run_id"]
        records += recs
    old = seed.run_records(now - 3 * DAY, tool_calls=9)
    ids["old"] = old[0][1]["run_id"]
    seed.write(cli.db, records + old)
    return {"ids": ids, "durations": durations}


def test_runs_lists_newest_first_and_filters(cli, seeded):
    ids = seeded["ids"]
    listed = json.loads(cli("runs", "--json").stdout)
    assert [r["run_id"] for r in listed][:2] == [ids["support-0"], ids["support-1"]]
    assert len(listed) == 8 and listed[-1]["run_id"] == ids["old"]
    assert listed[0]["created_at"].endswith("Z") and listed[0]["tool_calls"] == 3

    def ids_of(*args):
        proc = cli("runs", "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return [r["run_id"] for r in json.loads(proc.stdout)]

    assert ids_of("--agent", "triage-agent") == [ids["triage-0"], ids["triage-1"]]
    assert ids_of("--stop-reason", "loop_detected") == [ids["triage-0"], ids["triage-1"]]
    assert ids["old"] not in ids_of("--since", "2h") and len(ids_of("--since", "2h")) == 7
    assert ids_of("--last", "3") == [ids["support-0"], ids["support-1"], ids["support-2"]]

    text = cli("runs", "--last", "3").stdout
    lines = [line for line in text.splitlines() if any(ids[k][:12] in line for k in ids)]
    assert len(lines) == 3 and "completed" in lines[0] and "support-agent" in lines[0]


def test_show_answers_the_five_questions(cli, seeded):
    run_id = seeded["ids"]["support-1"]
    proc = cli("show", run_id[:10])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    data = json.loads(cli("show", run_id[:10], "--json").stdout)
    run, events = data["run"], data["events"]
    assert run["run_id"] == run_id
    # 1-3: tools in order with args and result hashes, status and error class.
    tool_events = [e for e in events if e["kind"] == "tool_result"]
    assert [e["step_id"] for e in events if e["step_id"] is not None] == sorted(
        e["step_id"] for e in events if e["step_id"] is not None
    )
    positions = [out.index(e["args_sha"]) for e in tool_events]
    assert positions == sorted(positions)
    assert tool_events[-1]["error"] == "TooManyRequests" and "TooManyRequests" in out
    for e in tool_events[:-1]:
        assert e["result_sha"] in out
    # 4: versions; 5: stop reason and usage; and the trace to open in Grafana.
    for text in ("model gpt-4o", "prompt v12", "tools 3", "completed (success)", run["trace_id"]):
        assert text in out, text
    assert f"{run['input_tokens'] + run['output_tokens']:,} tokens" in out
    assert events[-1]["kind"] == "stop" and events[-1]["usage"]["tool_calls"] == run["tool_calls"] == 4


def test_errors_are_one_line_and_exit_2(cli, seeded, make_cli):
    assert "no run matches 'ffffffff'" in one_line_error(cli("show", "ffffffff"))
    assert "ambiguous" in one_line_error(cli("show", "feed000"))
    assert json.loads(cli("show", "feed0001", "--json").stdout)["run"]["run_id"] == seeded["ids"]["triage-1"]
    assert "invalid time 'yesterday'" in one_line_error(cli("runs", "--since", "yesterday"))
    # Before year 1 (it was "ValueError: year -17139 is out of range", as an unexpected error) or beyond a
    # float (OverflowError).
    for args in (
        ("stats", "--since", "1000000w"),
        ("drift", "--window", "1000000w"),
        ("runs", "--since", "9" * 400 + "d"),
    ):
        assert "at most 100 years (36500d)" in one_line_error(cli(*args)), args
    assert "unknown stop_reason" in one_line_error(cli("runs", "--stop-reason", "exploded"))
    # An option the command does not have points to that command's help, where the options are.
    said = one_line_error(cli("runs", "--bogus"))
    assert said.startswith("agent-otel runs: error: unrecognized arguments: --bogus"), said
    assert said.endswith("(see agent-otel runs --help)"), said
    said = one_line_error(cli("--store", "x.db", "tail", "--json"))
    assert said == "agent-otel tail: error: unrecognized arguments: --json (see agent-otel tail --help)", said
    assert "no run store at" in one_line_error(make_cli("empty")("runs"))
    assert "disabled" in one_line_error(cli("runs", env={"AGENT_OTEL_STORE": "false"}))
    assert "unknown key" in one_line_error(
        cli("runs", env={"AGENT_OTEL_CONFIG": _write_config(cli, "stor: x\n")})
    )


def _write_config(cli: CLI, text: str) -> str:
    cli.home.mkdir(parents=True, exist_ok=True)
    path = cli.home / "config.yaml"
    path.write_text(text)
    return str(path)


def test_stats_reports_the_figures_of_the_period(cli, seeded):
    proc = cli("stats", "--since", "2h", "--agent", "support-agent", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    durations = seeded["durations"]
    assert s["runs"] == 5 and s["running"] == 0
    assert s["latency_ms"]["p50"] == pytest.approx(q(durations, 50))
    assert s["latency_ms"]["p95"] == pytest.approx(q(durations, 95))
    assert s["tool_calls_per_run"]["p95"] == pytest.approx(q([3, 4, 5, 6, 7], 95))
    tokens = [1000 + 100 * i for i in range(5) for _ in range(2)]
    assert s["tokens_per_request"]["mean"] == pytest.approx(statistics.mean(tokens))
    assert s["tokens_per_request"]["p95"] == pytest.approx(q(tokens, 95))
    assert s["spend_per_run_usd"]["mean"] == pytest.approx(0.03)
    assert s["stop_reasons"] == [{"stop_reason": "completed", "class": "success", "runs": 5, "share": 1.0}]
    (failing,) = s["failing_tools"]
    assert (failing["tool"], failing["error"], failing["failures"]) == ("http.get", "TooManyRequests", 2)

    everyone = json.loads(cli("stats", "--since", "2h", "--json").stdout)
    assert everyone["runs"] == 7
    mix = {m["stop_reason"]: m["share"] for m in everyone["stop_reasons"]}
    assert mix == pytest.approx({"completed": 5 / 7, "loop_detected": 2 / 7})

    text = cli("stats", "--since", "2h").stdout
    assert "7 runs in the last 2h" in text and "loop_detected" in text and "TooManyRequests" in text


def _drift_store(cli: CLI, window_tool_calls: int, window_loops: int = 0) -> None:
    now = seed.now_ms()
    records = []
    for i in range(20):  # baseline: the 7 days before the last 24 hours
        records += seed.run_records(now - DAY - (i + 1) * 7 * HOUR, tool_calls=4, duration_ms=1000.0)
    for i in range(10):  # window: the last 24 hours
        reason = "loop_detected" if i < window_loops else "completed"
        records += seed.run_records(
            now - (i + 1) * HOUR, tool_calls=window_tool_calls, duration_ms=1000.0, stop_reason=reason
        )
    seed.write(cli.db, records)


def test_drift_flags_tool_calls_at_twice_the_baseline_and_exits_1(cli):
    _drift_store(cli, window_tool_calls=12, window_loops=3)
    proc = cli("drift", "--json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["drift"] is True and result["window"]["runs"] == 10 and result["baseline"]["runs"] == 20
    signals = {s["signal"]: s for s in result["signals"]}
    tool_calls = signals["tool_calls_per_run"]
    assert (tool_calls["baseline"], tool_calls["window"], tool_calls["drift"]) == (4.0, 12.0, True)
    assert tool_calls["ratio"] == pytest.approx(3.0)
    latency = signals["latency_p95_ms"]
    assert (latency["baseline"], latency["window"], latency["drift"]) == (1000.0, 1000.0, False)
    loops = signals["stop_reason:loop_detected"]
    assert (loops["baseline"], loops["window"], loops["drift"]) == (0.0, 0.3, True)

    text = cli("drift")
    assert text.returncode == 1
    line = next(line for line in text.stdout.splitlines() if line.strip().startswith("tool_calls_per_run"))
    assert "4" in line and "12" in line and "3.00x" in line and "DRIFT" in line
    assert "drift: tool_calls_per_run" in text.stdout


def test_drift_below_the_threshold_or_without_data_exits_0(cli, make_cli):
    _drift_store(cli, window_tool_calls=7)  # 1.75x: under the 2x flag
    proc = cli("drift", "--json")
    assert proc.returncode == 0, proc.stdout
    result = json.loads(proc.stdout)
    signal = next(s for s in result["signals"] if s["signal"] == "tool_calls_per_run")
    assert (signal["window"], signal["drift"]) == (7.0, False)
    assert "no drift" in cli("drift").stdout

    empty = make_cli("little")
    seed.write(empty.db, seed.run_records(seed.now_ms() - HOUR))
    proc = empty("drift", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["enough_data"] is False


def test_export_writes_every_event_as_a_json_line(cli, seeded):
    proc = cli("export")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    # 8 runs: 2 LLM calls each, 3..7 + 4 + 4 + 9 tool calls, one stop each.
    assert len(lines) == 8 * 2 + (3 + 4 + 5 + 6 + 7) + 4 + 4 + 9 + 8
    assert all(list(e)[: len(EVENT_FIELDS)] == list(EVENT_FIELDS) for e in lines)
    assert [e["ts_ms"] for e in lines] == sorted(e["ts_ms"] for e in lines)
    recent = [json.loads(line) for line in cli("export", "--since", "2h").stdout.splitlines()]
    assert seeded["ids"]["old"] not in {e["run_id"] for e in recent} and len(recent) == len(lines) - 12
    one = cli("export", "--run", seeded["ids"]["support-0"][:12], "--kind", "tool_result").stdout.splitlines()
    assert len(one) == 3
    out = cli.home / "events.jsonl"
    proc = cli("export", "--output", str(out))
    assert proc.returncode == 0 and f"wrote {len(lines)} events" in proc.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_export_of_an_empty_run_id_is_an_error_not_every_run(cli, seeded):
    """`agent-otel export --run "$RUN"` with RUN unset in a script: one line and exit 2, as `show ""`,
    rather than every event of every run."""
    proc = cli("export", "--run", "")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout[:300]
    assert "give a run id" in proc.stderr


def test_export_over_an_existing_file_leaves_it_owner_only(cli, seeded):
    out = cli.home / "shared.jsonl"
    out.write_text("old contents\n")
    os.chmod(out, 0o644)
    proc = cli("export", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "old contents" not in out.read_text()


def test_doctor_reports_sources_otlp_and_the_store(cli, seeded):
    config = _write_config(cli, "retention: {logs_days: 9}\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        env = {
            "AGENT_OTEL_CONFIG": config,
            "AGENT_OTEL_STORE": cli.db,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        }
        proc = cli("doctor", "--json", env=env)
    finally:
        listener.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    d = json.loads(proc.stdout)
    sources = {row["key"]: (row["value"], row["source"]) for row in d["config"]}
    assert sources["retention.logs_days"] == (9, f"file:{config}")
    assert sources["store"] == (cli.db, "env:AGENT_OTEL_STORE")
    assert sources["retention.tool_snapshot_days"] == (14, "default")
    assert sources["exporter.endpoint"][1] == "env:OTEL_EXPORTER_OTLP_ENDPOINT"
    assert d["otlp"]["answers"] is True
    store = d["store"]
    assert (store["kind"], store["location"], store["schema_version"], store["runs"]) == (
        "sqlite",
        cli.db,
        LATEST_VERSION,
        8,
    )
    assert store["size_bytes"] > 0 and store["retention_days"] == {"logs_days": 9, "tool_snapshot_days": 14}
    assert (store["file_mode"], store["dir_mode"]) == ("0o600", "0o700")

    text = cli("doctor", env={**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert text.returncode == 1  # the listener is gone: the configured endpoint does not answer
    assert "does not answer" in text.stdout and f"schema version {LATEST_VERSION}" in text.stdout
    assert f"file:{config}" in text.stdout


def test_doctor_resolves_and_probes_otlp_without_importing_the_sdk(cli, seeded):
    """Doctor names the OTLP endpoint as setup() would and probes it, through agent_otel.otlp_endpoint.
    Before, it imported agent_otel.sdk for that, and with it the OpenTelemetry SDK and the whole
    instrumentation core: ~130 ms of a command that should answer in well under a second."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    code = (
        "import sys, json; from agent_otel.cli import main; code = main(sys.argv[1:]); "
        "print(json.dumps([code, sorted(sys.modules)]), file=sys.stderr)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(
        AGENT_OTEL_HOME=str(cli.home),
        AGENT_OTEL_STORE=cli.db,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{listener.getsockname()[1]}",
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, "doctor"], capture_output=True, text=True, env=env, timeout=120
        )
    finally:
        listener.close()
    assert "answers" in proc.stdout and "8 runs" in proc.stdout, proc.stdout + proc.stderr
    status, loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert status == 0, proc.stdout + proc.stderr
    heavy = [
        m
        for m in loaded
        if m in ("agent_otel.sdk", "agent_otel.runtime", "agent_otel.metrics")
        or m.startswith(("opentelemetry.sdk", "opentelemetry.trace", "opentelemetry.metrics"))
    ]
    assert heavy == []
    assert "agent_otel.otlp_endpoint" in loaded


def test_doctor_flags_a_store_other_users_can_read_without_failing(cli, tmp_path):
    shared = tmp_path / "project"
    shared.mkdir()
    os.chmod(shared, 0o755)  # a directory the user chose: agent-otel leaves its mode alone
    db = str(shared / "runs.db")
    seed.write(db, seed.run_records(seed.now_ms()))
    os.chmod(db, 0o644)
    proc = cli("doctor", "--json", "--store", db)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = json.loads(proc.stdout)["store"]
    assert store["ok"] is True
    assert (store["file_mode"], store["dir_mode"]) == ("0o600", "0o755")  # the file was ours: tightened
    assert store["warnings"] == [
        f"the store directory {shared} is open to other users (mode 0o755); chmod 700 {shared}"
    ]
    text = cli("doctor", "--store", db)
    assert text.returncode == 0 and f"warning: the store directory {shared} is open" in text.stdout

    if os.geteuid() == 0:  # a store file of another user is not ours to change: flagged instead
        os.chown(db, 65534, 65534)
        os.chmod(db, 0o644)
        store = json.loads(cli("doctor", "--json", "--store", db).stdout)["store"]
        assert store["ok"] is True and store["file_mode"] == "0o644"
        assert f"the store file {db} is open to other users (mode 0o644); chmod 600 {db}" in store["warnings"]


def test_doctor_on_a_corrupt_store_says_so_and_exits_1(cli):
    cli.home.mkdir(parents=True)
    with open(cli.db, "wb") as fh:
        fh.write(b"garbage" * 200)
    proc = cli("doctor", "--json")
    assert proc.returncode == 1
    store = json.loads(proc.stdout)["store"]
    assert store["ok"] is False and "not a database" in store["error"]
    assert "move it aside and the next run starts a new store there" in store["error"]
    line = one_line_error(cli("runs"))
    assert "cannot open the run store" in line and "move it aside" in line


def test_a_store_of_a_newer_schema_fails_doctor_and_gc_leaves_it_alone(cli):
    old = seed.run_records(seed.now_ms() - 40 * DAY)
    seed.write(cli.db, old)
    conn = sqlite3.connect(cli.db)
    conn.execute("UPDATE agent_otel_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()

    proc = cli("doctor", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    store = json.loads(proc.stdout)["store"]
    assert store["ok"] is False and store["schema_version"] == 99
    assert store["error"] == (
        f"its schema version 99 is newer than this agent-otel supports ({LATEST_VERSION}); upgrade agent-otel"
    )
    text = cli("doctor")
    assert text.returncode == 1 and "upgrade agent-otel" in text.stdout

    error = one_line_error(cli("gc"))
    assert "newer than this agent-otel supports" in error and "upgrade agent-otel" in error
    assert len(json.loads(cli("runs", "--json").stdout)) == 1  # nothing deleted; still readable


def test_gc_deletes_what_is_older_than_the_retention(cli):
    now = seed.now_ms()
    old, recent = seed.run_records(now - 40 * DAY), seed.run_records(now - DAY)
    seed.write(cli.db, old + recent)
    dry = json.loads(cli("gc", "--dry-run", "--json").stdout)
    expected = {"agent_events": len(old) - 2, "agent_runs": 1, **NO_SNAPSHOTS}
    assert dry["deleted"] == expected and dry["dry_run"]
    assert len(json.loads(cli("runs", "--json").stdout)) == 2

    proc = cli("gc", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["deleted"] == expected
    assert [r["run_id"] for r in json.loads(cli("runs", "--json").stdout)] == [recent[0][1]["run_id"]]
    events = cli("export").stdout.splitlines()
    assert len(events) == len(recent) - 2

    keep = _write_config(cli, "retention: {logs_days: 0, tool_snapshot_days: 0}\n")
    seed.write(cli.db, seed.run_records(now - 400 * DAY))
    kept = cli("gc", env={"AGENT_OTEL_CONFIG": keep})
    assert kept.returncode == 0 and "nothing to delete" in kept.stdout
    assert len(json.loads(cli("runs", "--json").stdout)) == 2


def test_gc_names_a_store_whose_path_has_brackets(cli, tmp_path):
    """`gc` printed the store's path as rich markup: `/data/[prod]/agent-otel.db` lost `[prod]`, and a
    directory named `[/]` was a MarkupError."""
    for directory in ("[prod]", "[/]"):
        path = str(tmp_path / directory / "agent-otel.db")
        seed.write(path, seed.run_records(seed.now_ms()))
        proc = cli("--store", path, "gc", "--dry-run")
        assert proc.returncode == 0 and proc.stdout.startswith(f"store {path} "), proc.stdout + proc.stderr


def _file_state(path: str) -> tuple[bytes, list[str]]:
    """The store file's bytes, and the files next to it but a WAL store's ``-wal`` and ``-shm`` (which
    SQLite makes for any reader of a store in WAL mode)."""
    with open(path, "rb") as fh:
        data = fh.read()
    wal = data[18:20] == b"\x02\x02"
    names = os.listdir(os.path.dirname(path))
    return data, sorted(n for n in names if not (wal and n.endswith(("-wal", "-shm"))))


@pytest.mark.parametrize("schema", ["older", "newer"])
def test_gc_dry_run_changes_nothing_and_says_what_it_cannot_know(cli, tmp_path, schema):
    """`gc --dry-run` opened the store as gc does, as a writer: a store of an older schema was migrated
    (and switched to WAL) by what the user was told deletes nothing, and a store of a newer schema was
    refused. Now it reads the store as it is, read-only (no byte of it and no file next to it changes,
    a store in rollback-journal mode stays so), and counts what gc would delete; of a newer schema, it
    says that the tables that schema added are not counted; of an older one, that gc migrates it first."""
    from agent_otel.store import LATEST_VERSION

    directory = tmp_path / "stores"
    directory.mkdir()
    path = str(directory / "runs.db")
    old = seed.run_records(seed.now_ms() - 40 * DAY)
    if schema == "older":
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.executescript((STORES / "schema3.sql").read_text())  # a rollback journal, not WAL
            conn.execute(  # a run of 40 days ago, as schema 3's sink wrote it
                "INSERT INTO agent_runs (run_id, agent, created_at, status) "
                "VALUES (?, 'old', strftime('%Y-%m-%d %H:%M:%f', 'now', '-40 days'), 'completed')",
                ("d" * 32,),
            )
            conn.commit()
            version = 3
    else:
        seed.write(path, old + seed.run_records(seed.now_ms()))
        version = LATEST_VERSION + 1
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE agent_otel_meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    before = _file_state(path)
    proc = cli("--store", path, "gc", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert _file_state(path) == before
    dry = json.loads(proc.stdout)
    assert dry["dry_run"] and dry["schema_version"] == version
    text = cli("--store", path, "gc", "--dry-run")
    assert text.returncode == 0 and _file_state(path) == before, text.stderr
    if schema == "older":
        assert dry["deleted"]["agent_runs"] >= 1 and dry["deleted"]["agent_snapshot_data"] == 0
        assert dry["notes"] == [f"gc would first migrate the store from schema 3 to {LATEST_VERSION}"]
        real = cli("--store", path, "gc", "--json")
        assert real.returncode == 0, real.stderr
        assert json.loads(real.stdout)["deleted"] == dry["deleted"]  # what it said is what gc did
    else:
        assert dry["deleted"] == {"agent_events": len(old) - 2, "agent_runs": 1, **NO_SNAPSHOTS}
        assert dry["notes"] == [
            f"the store's schema {version} is newer than this agent-otel's ({LATEST_VERSION}): rows of "
            "tables it added are not counted, and gc itself refuses it (upgrade agent-otel)"
        ]
        assert "tables it added are not counted" in text.stdout
        assert "newer than this agent-otel supports" in one_line_error(cli("--store", path, "gc"))


def test_drift_of_an_agent_the_store_never_saw_is_a_bad_option_not_missing_data(cli, make_cli):
    """A cron job running `drift --agent` with a misspelt name got "not enough data" and exit 0 forever."""
    _drift_store(cli, window_tool_calls=12)
    line = one_line_error(cli("drift", "--agent", "suport-agent"))
    assert "'suport-agent'" in line and "its agents: support-agent" in line
    proc = cli("drift", "--agent", "suport-agent", "--json")
    assert proc.returncode == 2 and proc.stdout == "" and "its agents: support-agent" in proc.stderr
    assert cli("drift", "--agent", "support-agent", "--json").returncode == 1  # the agent itself drifts

    # An agent that exists with too few runs keeps its documented answer: not enough data, exit 0.
    little = make_cli("little")
    seed.write(little.db, seed.run_records(seed.now_ms() - HOUR))
    proc = little("drift", "--agent", "support-agent", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["enough_data"] is False

    # A store without any run yet (a cron job set up before the agent's first run) knows no agent to
    # compare with: not enough data, exit 0, as without --agent.
    fresh = make_cli("fresh")
    os.makedirs(fresh.home)
    open_store(Target("sqlite", fresh.db), create=True).close()
    proc = fresh("drift", "--agent", "support-agent")
    assert proc.returncode == 0 and "not enough data" in proc.stdout and proc.stderr == ""

    # The list of known agents is bounded.
    many = make_cli("many")
    records = []
    for i in range(14):
        records += seed.run_records(seed.now_ms() - HOUR, agent=f"agent-{i:02d}")
    seed.write(many.db, records)
    line = one_line_error(many("drift", "--agent", "agent-99"))
    assert "agent-00, agent-01" in line and "agent-09, ..." in line and "agent-10" not in line


def test_runs_and_stats_of_an_unknown_agent_say_so_on_stderr(cli, seeded):
    """An empty listing is a right answer, but for a misspelt agent the user learns it is unknown."""
    for command in (("runs",), ("runs", "--json"), ("stats",), ("stats", "--json"), ("export",)):
        proc = cli(*command, "--agent", "triage-agnet")
        assert proc.returncode == 0, proc.stderr
        assert "note: no run of agent 'triage-agnet'" in proc.stderr, command
        assert "its agents: support-agent, triage-agent" in proc.stderr
        if "--json" in command:
            json.loads(proc.stdout)  # stdout stays what a script parses
        if command == ("export",):
            assert proc.stdout == ""  # no event lines: the note is on stderr only
    # A known agent with nothing in the period: no note.
    proc = cli("stats", "--agent", "triage-agent", "--since", "1m")
    assert proc.returncode == 0 and proc.stderr == ""
    proc = cli("runs", "--agent", "triage-agent", "--since", "1m")
    assert proc.returncode == 0 and proc.stderr == "" and "no runs match" in proc.stdout
    proc = cli("export", "--agent", "triage-agent", "--since", "1m")
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""


def test_an_unknown_agent_is_named_from_a_postgresql_store_too(cli, postgres):
    """The known agents are listed by a walk of the (agent, created_at) index, in SQL both databases run."""
    url = postgres.new_database()
    records = []
    for name in ("triage-agent", "support-agent", "billing-agent"):
        records += seed.run_records(seed.now_ms() - HOUR, agent=name)
    seed.write(url, records)
    line = one_line_error(cli("--store", url, "drift", "--agent", "suport-agent"))
    assert "its agents: billing-agent, support-agent, triage-agent" in line, line
    proc = cli("--store", url, "runs", "--agent", "suport-agent")
    assert proc.returncode == 0 and "its agents: billing-agent, support-agent" in proc.stderr
    assert cli("--store", url, "drift", "--agent", "support-agent").returncode == 0  # known: too few runs


def test_doctor_says_not_encrypted_only_from_a_count():
    """A blob table summed from a sample (doctor on a large store) may hide sealed results past the sample:
    an estimated 0 is printed as "~0 encrypted", not as the count's "not encrypted"."""
    from rich.console import Console

    from agent_otel.cli import doctor

    def line(estimated: list[str]) -> str:
        store = {
            "tool_snapshots": 35,
            "snapshot_runs": 5,
            "snapshot_blobs": 2500,
            "snapshot_bytes": 2_500_000,
            "encrypted_blobs": 0,
            "estimated": estimated,
        }
        console = Console(record=True, width=200, color_system=None)
        about = set(estimated)
        doctor._snapshot_line(console, store, lambda k: f"~{store[k]:,}" if k in about else f"{store[k]:,}")
        return console.export_text().strip()

    assert line([]).endswith("2,500 results and inputs stored (2.4 MiB, not encrypted)")
    sampled = line(["snapshot_bytes", "encrypted_blobs"])
    assert sampled.endswith("2,500 results and inputs stored (~2.4 MiB, ~0 encrypted)")
