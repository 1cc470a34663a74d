"""`agent-otel demo`: the simulated support agent, read back through the CLI as a user would."""

from __future__ import annotations

import json
import os
import re
import stat
import statistics
from pathlib import Path

import pytest

from agent_otel.cli import demo_agent
from tests.cli.conftest import CLI, one_line_error

DEMOS = {
    "normal": ("--scenario", "normal", "--runs", "8"),
    "incident": ("--scenario", "incident", "--runs", "8"),
    "wrong": ("--scenario", "wrong-email", "--runs", "1"),
    "all-a": ("--runs", "5", "--seed", "11"),
    "all-b": ("--runs", "5", "--seed", "11"),
    "all-c": ("--runs", "5", "--seed", "12"),
}


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[CLI, str]]:
    """The demos above, run in parallel, each into its own fresh home."""
    base = tmp_path_factory.mktemp("demos")
    procs = {}
    for name, args in DEMOS.items():
        cli = CLI(base / name)
        procs[name] = (cli, cli.popen("demo", *args))
    out = {}
    for name, (cli, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, (name, stdout, stderr)
        assert "Traceback" not in stderr and "run store" not in stderr, stderr
        out[name] = (cli, stdout)
    return out


def runs(cli: CLI) -> list[dict]:
    proc = cli("runs", "--last", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def show(cli: CLI, run_id: str) -> dict:
    proc = cli("show", run_id, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_demo_summary_names_the_worst_run_and_shows_its_trace(demos):
    cli, out = demos["all-a"]
    assert "5 runs of support-agent written to the run store at" in out
    assert "by scenario" in out and "worst run" in out
    match = re.search(r"next: .*agent-otel show ([0-9a-f]{8})", out)
    assert match, out
    worst = show(cli, match.group(1))
    stored = runs(cli)
    assert len(stored) == 5 and all(r["status"] != "running" for r in stored)
    # Worst: a failure before a limit before a success, then the most tool calls, then the longest.
    rank = {"failure": 2, "limit": 1, "success": 0}
    expected = max(stored, key=lambda r: (rank[r["status"]], r["tool_calls"], r["duration_ms"]))
    assert worst["run"]["run_id"] == expected["run_id"]
    assert worst["run"]["trace_id"] in out and "stop" in out


def test_incident_climbs_from_about_four_to_about_twelve_tool_calls_with_retries(demos):
    normal = runs(demos["normal"][0])
    incident = runs(demos["incident"][0])
    assert len(normal) == len(incident) == 8
    normal_calls = statistics.mean(r["tool_calls"] for r in normal)
    incident_calls = statistics.mean(r["tool_calls"] for r in incident)
    assert 3.5 <= normal_calls <= 5.5
    assert 9 <= incident_calls <= 15 and incident_calls >= 2 * normal_calls
    assert sum(r["retries"] for r in incident) > 8 * sum(r["retries"] for r in normal)

    cli = demos["incident"][0]
    proc = cli("export", "--kind", "tool_result")
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    http = [e for e in events if e["tool"] == "http.get"]
    attempts = [e.get("attempts", 1) for e in http]
    assert max(attempts) <= 8 and sum(a > 1 for a in attempts) >= len(http) // 3
    errors = {e["error"] for e in http if e["status"] == "error"}
    assert errors and errors <= {"TooManyRequests", "ServiceUnavailable"}
    # Exhausted calls made all 8 attempts; the run's retry count is the sum over its calls.
    assert all(e["attempts"] == 8 for e in http if e["status"] == "error")
    for r in incident:
        per_run = [e.get("attempts", 1) - 1 for e in http if e["run_id"] == r["run_id"]]
        assert sum(per_run) == r["retries"]


def test_incident_retries_without_jitter(telemetry, monkeypatch):
    """The demo's http.get backs off exactly exponentially, like every other client: the seed's storm."""
    monkeypatch.setattr(demo_agent, "TIME_SCALE", 0.0)
    demo_agent.run_one(0, "incident", 5, "a" * 32)
    delays = []
    for span in telemetry.spans_named("execute_tool http.get"):
        delays += [e.attributes["delay_s"] for e in span.events if e.name == "agent.tool.retry"]
    assert delays, "the incident produced no retries"
    retry = demo_agent.http_get.__agent_otel_tool__.retry
    assert (retry.jitter, retry.max_attempts) == ("none", 8)
    expected = {min(retry.max_delay_s, retry.base_delay_s * 2**n) for n in range(7)}
    assert set(delays) <= expected and retry.base_delay_s in delays


def test_wrong_email_run_shows_who_was_emailed(demos):
    cli, out = demos["wrong"]
    (run,) = runs(cli)
    assert run["stop_reason"] == "completed"
    assert f"wrong-email run {run['run_id'][:12]}" in out
    events = show(cli, run["run_id"][:12])["events"]
    tools = [e for e in events if e["kind"] == "tool_result"]
    assert [e["tool"] for e in tools] == ["search", "crm.lookup", "http.get", "send_email"]
    lookup, email = tools[1], tools[3]
    assert lookup["args"] == {"customer": "Dana Whitfield"} and lookup["result"]["count"] == 2
    assert email["args"]["customer_id"] == "C-2291" != "C-2219"
    assert email["args"]["to"] == "[EMAIL]"  # stored arguments are redacted


def test_seed_fixes_tool_calls_hashes_and_errors(demos):
    def behaviour(cli: CLI) -> list:
        stored = runs(cli)
        proc = cli("export")
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        out = []
        for r in stored:
            steps = [
                (e["step_id"], e["kind"], e["tool"], e["args_sha"], e["result_sha"], e["status"], e["error"])
                for e in events
                if e["run_id"] == r["run_id"]
            ]
            out.append((r["input_sha"], r["stop_reason"], r["input_tokens"], tuple(steps)))
        return sorted(out)

    a, b, c = (behaviour(demos[n][0]) for n in ("all-a", "all-b", "all-c"))
    assert a == b
    assert a != c
    ids_a = {r["run_id"] for r in runs(demos["all-a"][0])}
    assert not ids_a & {r["run_id"] for r in runs(demos["all-b"][0])}  # two demos never collide


def test_demo_on_a_fresh_machine_creates_the_default_home(tmp_path):
    cli = CLI(tmp_path / "unused")
    proc = cli(
        "demo", "--runs", "2", "--scenario", "normal", env={"HOME": str(tmp_path), "AGENT_OTEL_HOME": ""}
    )
    assert proc.returncode == 0, proc.stderr
    home = Path(tmp_path) / ".agent-otel"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "agent-otel.db").st_mode) == 0o600
    assert str(home / "agent-otel.db") in proc.stdout


def test_backdated_demo_gives_drift_a_baseline(make_cli):
    cli = make_cli("backdated")
    proc = cli("demo", "--runs", "16", "--backdate", "--workers", "16")
    assert proc.returncode == 0, proc.stderr
    stored = runs(cli)
    ages_days = sorted((stored[0]["created_at_ms"] - r["created_at_ms"]) / 86_400_000 for r in stored)
    assert ages_days[-1] > 7  # some runs are in the baseline week of the seed's SQL
    drift = cli("drift", "--json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    result = json.loads(drift.stdout)
    tool_calls = next(s for s in result["signals"] if s["signal"] == "tool_calls_per_run")
    assert tool_calls["drift"] and tool_calls["window"] >= 2 * tool_calls["baseline"]


def test_doctor_counts_the_snapshots_the_demo_recorded_for_replay(demos):
    cli, _ = demos["normal"]
    stored = runs(cli)
    proc = cli("doctor", "--json")
    store = json.loads(proc.stdout)["store"]
    # every tool call of every run is recorded for replay; results repeat, so blobs are at most one per call
    assert store["snapshot_runs"] == len(stored) == 8
    assert store["tool_snapshots"] == sum(r["tool_calls"] for r in stored)
    assert 0 < store["snapshot_blobs"] <= store["tool_snapshots"] + len(stored)
    assert store["snapshot_bytes"] > 0 and store["encrypted_blobs"] == 0
    text = cli("doctor").stdout
    assert f"{store['tool_snapshots']:,} calls of 8 runs" in " ".join(text.split())
    assert "not encrypted" in text


def test_demo_on_a_corrupt_store_is_one_error_line_and_writes_nothing(cli):
    cli.home.mkdir(parents=True)
    Path(cli.db).write_bytes(b"garbage" * 200)
    proc = cli("demo", "--runs", "3")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "written to" not in proc.stdout and "support-agent" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"agent-otel: error: the run store at {cli.db} cannot be used: ")
    assert "not a database" in lines[0]
    assert Path(cli.db).read_bytes() == b"garbage" * 200


def test_demo_backdated_past_the_retention_is_refused_and_the_default_fits_a_short_one(make_cli, tmp_path):
    """`demo --backdate 60` stored runs the next daily gc deletes by the default 30-day retention (half the
    demo gone the day after; `--backdate 100000` put every run in the 1750s): a bad option now, before any
    run. With a retention shorter than the default 14 days, the default back-dates within it."""
    cli = make_cli("past-retention")
    line = one_line_error(cli("demo", "--runs", "2", "--backdate", "60"))
    assert "--backdate 60 reaches past the store's retention (retention.logs_days: 30)" in line
    assert "pass at most 30" in line and not Path(cli.db).exists()
    assert cli("demo", "--runs", "2", "--backdate", "30", "--workers", "2").returncode == 0

    config = tmp_path / "short.yaml"
    config.write_text("retention: {logs_days: 7}\n")
    short = make_cli("short-retention")
    proc = short("demo", "--runs", "6", "--workers", "6", env={"AGENT_OTEL_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stderr
    assert "back-dated over 7 days" in proc.stdout
    stored = runs(short)
    assert max(stored[0]["created_at_ms"] - r["created_at_ms"] for r in stored) < 7 * 86_400_000
    # kept for ever (0): no bound
    forever = tmp_path / "forever.yaml"
    forever.write_text("retention: {logs_days: 0}\n")
    proc = make_cli("forever")(
        "demo", "--runs", "2", "--backdate", "60", env={"AGENT_OTEL_CONFIG": str(forever)}
    )
    assert proc.returncode == 0, proc.stderr
