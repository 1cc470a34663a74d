"""What an operator reaches for: filters, time ranges, tail, replays marked, trace links, clear wording."""

from __future__ import annotations

import datetime as dt
import json
import queue
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.cli.conftest import CLI, one_line_error
from tests.store import seed

MIN = 60_000


def _tweak(records: list, **fields) -> list:
    """Set ``fields`` on a run's records (start and end rows); ``tool`` renames its tool calls."""
    tool = fields.pop("tool", None)
    for kind, rec in records:
        if kind == "run":
            rec.update(fields)
        elif tool and rec["kind"] == "tool_result":
            rec["tool"] = tool
    return records


@pytest.fixture
def varied(cli: CLI) -> dict[str, str]:
    """Runs that differ in one thing each, a few minutes apart (newest first in the dict order)."""
    now = seed.now_ms()
    specs = {
        "mini": dict(model="gpt-4o-mini"),
        "v13": dict(prompt_version="v13"),
        "mailer": dict(tool="send_email"),
        "slow": dict(duration_ms=9_000.0),
        "looped": dict(stop_reason="loop_detected"),
        "denied": dict(stop_reason="policy_denied"),
        "plain": {},
    }
    ids, records = {}, []
    for i, (name, spec) in enumerate(specs.items()):
        spec = dict(spec)
        kwargs = {k: spec.pop(k) for k in ("model", "duration_ms", "stop_reason") if k in spec}
        recs = seed.run_records(now - (i + 1) * MIN, **kwargs)
        ids[name] = recs[0][1]["run_id"]
        records += _tweak(recs, **spec)
    seed.write(cli.db, records)
    return ids


def _listed(cli: CLI, *args: str) -> set[str]:
    proc = cli("runs", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return {r["run_id"] for r in json.loads(proc.stdout)}


def test_runs_filters_by_model_prompt_tool_class_and_duration(cli, varied):
    ids = varied
    assert _listed(cli, "--model", "gpt-4o-mini") == {ids["mini"]}
    assert _listed(cli, "--prompt-version", "v13") == {ids["v13"]}
    assert _listed(cli, "--tool", "send_email") == {ids["mailer"]}
    assert _listed(cli, "--min-duration", "5s") == {ids["slow"]}
    assert _listed(cli, "--stop-class", "failure") == {ids["looped"]}
    assert _listed(cli, "--stop-class", "limit") == {ids["denied"]}
    assert _listed(cli, "--stop-class", "success", "--tool", "search") == set(ids.values()) - {
        ids["looped"],
        ids["denied"],
        ids["mailer"],
    }
    text = cli("runs", "--tool", "send_email").stdout
    assert ids["mailer"][:12] in text and ids["plain"][:12] not in text
    assert cli("runs", "--model", "claude").stdout.strip() == "no runs match"
    assert "invalid choice" in one_line_error(cli("runs", "--stop-class", "bad"))


def test_since_and_until_take_durations_and_utc_times(cli, varied):
    ids = varied
    runs = json.loads(cli("runs", "--json").stdout)
    by_id = {r["run_id"]: r for r in runs}
    # durations ago: runs started between 5 and 2 minutes ago
    window = _listed(cli, "--since", "5m", "--until", "2m")
    expected = {
        i for i, r in by_id.items() if seed.now_ms() - 5 * MIN <= r["created_at_ms"] < seed.now_ms() - 2 * MIN
    }
    assert window == expected and 2 <= len(window) <= 3
    # absolute UTC times, in the form the table prints and the form --json gives
    pivot = by_id[ids["slow"]]["created_at_ms"]
    as_printed = dt.datetime.fromtimestamp(pivot / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    until = _listed(cli, "--until", as_printed)
    assert until == {i for i, r in by_id.items() if r["created_at_ms"] < pivot // 1000 * 1000}
    as_json = by_id[ids["slow"]]["created_at"]  # 2026-11-24T17:37:15.123Z
    assert ids["slow"] in _listed(cli, "--since", as_json) and ids["slow"] not in _listed(
        cli, "--until", as_json
    )
    offset = dt.datetime.fromtimestamp(pivot / 1000 + 1, dt.timezone(dt.timedelta(hours=2)))
    assert ids["slow"] in _listed(cli, "--until", offset.strftime("%Y-%m-%dT%H:%M:%S+02:00"))
    assert "is not before --until" in one_line_error(cli("runs", "--since", "1m", "--until", "2h"))
    # export and stats take the same range; drift ends its window at --until
    exported = cli("export", "--until", as_json).stdout.splitlines()
    assert exported and all(
        json.loads(line)["ts_ms"] < by_id[ids["slow"]]["created_at_ms"] for line in exported
    )
    stats = json.loads(cli("stats", "--since", "1h", "--until", as_json, "--json").stdout)
    assert stats["runs"] == len(until)
    assert "last 24h" in cli("stats").stdout and "from 20" in cli("stats", "--since", as_json).stdout


def test_drift_until_moves_the_window(cli):
    now = seed.now_ms()
    records = []
    for day in range(2, 9):  # a week of 4-call runs, ending two days ago ...
        records += seed.run_records(now - day * seed.DAY_MS, tool_calls=4)
    for i in range(6):  # ... and a recent burst of 12-call runs
        records += seed.run_records(now - (i + 1) * MIN, tool_calls=12)
    seed.write(cli.db, records)
    assert cli("drift", "--min-runs", "1").returncode == 1
    earlier = cli("drift", "--min-runs", "1", "--until", "1d", "--window", "3d", "--json")
    assert earlier.returncode == 0, earlier.stdout
    result = json.loads(earlier.stdout)
    assert result["window"]["runs"] == 2 and not result["drift"]
    text = cli("drift", "--min-runs", "1", "--until", "1d", "--window", "3d").stdout
    assert "window 3d to 20" in text


def test_runs_marks_replays_next_to_their_stop_reason(cli):
    now = seed.now_ms()
    original = seed.run_records(now - 2 * MIN)
    replay = _tweak(
        seed.run_records(now - MIN, stop_reason="policy_denied"), replay_of=original[0][1]["run_id"]
    )
    real = seed.run_records(now - 3 * MIN, stop_reason="policy_denied")
    seed.write(cli.db, original + replay + real)
    lines = {line.split()[0]: line for line in cli("runs").stdout.splitlines()[1:] if line.strip()}
    assert "policy_denied (replay)" in lines[replay[0][1]["run_id"][:12]]
    assert "(replay)" not in lines[real[0][1]["run_id"][:12]]
    assert "(replay)" not in lines[original[0][1]["run_id"][:12]]


def test_counts_are_worded_for_one_and_many(cli):
    now = seed.now_ms()
    records = seed.run_records(now - MIN, tool_calls=1, llm_calls=1)
    records[-1][1]["retries"] = 1  # the end row
    seed.write(cli.db, records)
    run_id = records[0][1]["run_id"]
    shown = " ".join(cli("show", run_id[:8]).stdout.split())
    assert "usage 2 steps: 1 tool call, 1 LLM call, 1 retry" in shown
    stats = cli("stats").stdout
    assert stats.splitlines()[0] == "1 run in the last 24h"
    assert "1 runs" not in stats and "1 LLM calls" not in shown


def test_show_links_the_trace_in_grafana_when_configured(cli):
    records = seed.run_records(seed.now_ms() - MIN)
    seed.write(cli.db, records)
    run = records[-1][1]
    plain = cli("show", run["run_id"])
    assert "http" not in plain.stdout and "AGENT_OTEL_GRAFANA_URL" in plain.stdout
    proc = cli("show", run["run_id"], env={"AGENT_OTEL_GRAFANA_URL": "http://grafana.example:3000/"})
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("trace ")]
    url = line.split()[-1]
    assert url.startswith("http://grafana.example:3000/explore?")
    pane = json.loads(parse_qs(urlparse(url).query)["panes"][0])["trace"]
    assert pane["queries"][0]["query"] == run["trace_id"]
    assert pane["queries"][0]["datasource"] == {"type": "tempo", "uid": "tempo"}
    assert int(pane["range"]["from"]) < run["created_at_ms"] <= run["ended_at_ms"] < int(pane["range"]["to"])
    # the config file key works too, with another datasource uid; --json carries the link
    cfg = cli.home / "links.yaml"
    cfg.write_text("links: {grafana_url: 'https://g.example', tempo_datasource: traces}\n")
    data = json.loads(cli("show", run["run_id"], "--json", "--config", str(cfg)).stdout)
    assert data["trace_url"].startswith("https://g.example/explore?") and "traces" in data["trace_url"]


def test_an_invalid_yaml_config_is_one_clear_line(cli):
    cli.home.mkdir(parents=True)
    cfg = cli.home / "bad.yaml"
    cfg.write_text("logging:\n  events: {enabled: true\n  bad: [\n")
    line = one_line_error(cli("runs", "--config", str(cfg)))
    assert line == (
        f"agent-otel: error: agent-otel config file {cfg} is not valid YAML: line 3, column 6: "
        "expected ',' or '}', but got ':' (while parsing a flow mapping at line 2)"
    )


def test_a_key_given_twice_in_the_config_file_is_refused_not_the_last_one_kept(cli):
    """PyYAML keeps the last of two equal keys without a word: a second ``retention`` mapping (or
    ``logs_days`` twice in one) made gc delete by the value further down, and a second ``redaction:``
    section dropped the first's keys. A key a merge (``<<``) brings in may still be overridden."""
    seed.write(cli.db, seed.run_records(seed.now_ms() - 3 * 86_400_000))  # a run 3 days old
    twice = cli.home / "twice.yaml"
    twice.write_text(
        "retention:\n  logs_days: 30\nlogging:\n  events: {store_args: false}\nretention:\n  logs_days: 1\n"
    )
    line = one_line_error(cli("gc", "--config", str(twice)))
    assert line == (
        f"agent-otel: error: agent-otel config file {twice} is not valid YAML: line 5, column 1: the key "
        "'retention' is given twice (first at line 1) (while constructing a mapping at line 1)"
    )
    inline = cli.home / "inline.yaml"
    inline.write_text("retention: {logs_days: 30, logs_days: 1}\n")
    assert "the key 'logs_days' is given twice" in one_line_error(cli("gc", "--config", str(inline)))
    assert len(json.loads(cli("runs", "--json").stdout)) == 1  # nothing was deleted

    merged = cli.home / "merged.yaml"
    merged.write_text("retention:\n  <<: {logs_days: 1, tool_snapshot_days: 2}\n  logs_days: 30\n")
    dry = json.loads(cli("gc", "--dry-run", "--json", "--config", str(merged)).stdout)
    assert dry["retention_days"] == {"logs_days": 30, "tool_snapshot_days": 2}


def _reader(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """Lines of the process's stdout as they come (a thread, so a test can wait with a deadline)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue[str], seen: list[str], text: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            return False
    return True


def _interrupt(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C, as in the terminal; what the command then wrote on stderr."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    return proc.stderr.read() if proc.stderr else ""


def test_tail_follows_runs_as_they_end_with_filters_and_stops_on_ctrl_c(cli):
    now = seed.now_ms()
    before = seed.run_records(now - 2 * MIN)
    seed.write(cli.db, before + seed.run_records(now - MIN, agent="other-agent"))
    proc = cli.popen("tail", "--interval", "0.2", "--agent", "support-agent", "--last", "5")
    seen: list[str] = []
    try:
        lines = _reader(proc)
        # first the runs that already ended (only the one that matches the filter)
        assert _wait_for(lines, seen, before[0][1]["run_id"][:12]), seen
        new, other, running = (uuid.uuid4().hex for _ in range(3))
        started = seed.now_ms()
        records = seed.run_records(started, run_id=new, duration_ms=500.0)
        records += seed.run_records(started, run_id=other, agent="other-agent", duration_ms=500.0)
        records += seed.run_records(started, run_id=running)[:1]  # started, not ended
        seed.write(cli.db, records)
        assert _wait_for(lines, seen, new[:12]), seen
        time.sleep(1.0)  # a few more polls: nothing printed twice, nothing filtered out shows up
        err = _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert proc.returncode == 0, err
    assert err.strip() == "", err
    assert seen[0].split()[:2] == ["RUN", "ENDED"]
    assert sum(new[:12] in line for line in seen) == 1
    assert other[:12] not in text and running[:12] not in text


def test_tail_started_before_the_first_run_waits_for_the_store(cli):
    """`agent-otel tail` in one terminal, then the first agent (or `agent-otel demo --live`) in another:
    tail waits for the store to be created, rather than exit 2 because it does not exist yet."""
    proc = cli.popen("tail", "--interval", "0.1")
    seen: list[str] = []
    try:
        lines = _reader(proc)
        assert _wait_for(lines, seen, "RUN"), seen  # the header: tail is following
        time.sleep(0.5)  # a few polls of a store that does not exist
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        run_id = uuid.uuid4().hex
        seed.write(cli.db, seed.run_records(seed.now_ms(), run_id=run_id, duration_ms=100.0))
        assert _wait_for(lines, seen, run_id[:12]), seen
        err = _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "waiting" in err and "Traceback" not in err, err


def test_tail_of_an_agent_the_store_never_saw_says_so_and_goes_on_following(cli):
    """`tail --agent suport-agent` waited for ever without a word; it now says the agent is unknown (and
    which agents the store knows) and follows all the same: a new agent's first run still shows."""
    seed.write(cli.db, seed.run_records(seed.now_ms() - MIN))
    proc = cli.popen("tail", "--interval", "0.1", "--agent", "new-agent")
    seen: list[str] = []
    try:
        lines = _reader(proc)
        assert _wait_for(lines, seen, "RUN"), seen
        run_id = uuid.uuid4().hex
        first = seed.run_records(seed.now_ms(), run_id=run_id, agent="new-agent", duration_ms=100.0)
        seed.write(cli.db, first)
        assert _wait_for(lines, seen, run_id[:12]), seen
        err = _interrupt(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "note: no run of agent 'new-agent' in the store; its agents: support-agent" in err, err
    assert err.count("note:") == 1, err


def test_tail_refuses_running_runs(cli):
    seed.write(cli.db, seed.run_records(seed.now_ms()))
    assert "tail follows runs as they end" in one_line_error(cli("tail", "--stop-reason", "running"))


def test_demo_ctrl_c_stops_within_about_a_second(cli):
    """A real SIGINT: queued runs never start, runs in flight end `cancelled`, and it exits promptly."""
    proc = cli.popen("demo", "--runs", "300", "--workers", "4", "--live")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _ended(cli) < 8:
            time.sleep(0.1)
        assert _ended(cli) >= 8, "the demo did not get going"
        interrupted_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    runs = json.loads(cli("runs", "--json", "--last", "1000").stdout)
    reasons = [r["stop_reason"] for r in runs]
    assert "running" not in [r["status"] for r in runs]
    cancelled = reasons.count("cancelled")
    assert cancelled >= 1  # the 4 workers had runs in flight
    assert len(runs) < 150, len(runs)  # queued runs were dropped, not run
    said = " ".join(err.split())
    finished, not_started = len(runs) - cancelled, 300 - len(runs)
    assert f"{finished} runs finished, {cancelled} cancelled in flight, {not_started} not started" in said
    # About a second: runs in flight end at their next simulated wait (<= 0.14 s) and shutdown is bounded
    # by exporter.shutdown_timeout_s (1 s); the bound here is generous for a loaded 2-core machine.
    assert took < 10, took


def _ended(cli: CLI) -> int:
    """Runs the demo has stored so far (read directly: a CLI call per poll would load the machine)."""
    if not Path(cli.db).exists():
        return 0
    try:
        with sqlite3.connect(f"file:{cli.db}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM agent_runs WHERE status != 'running'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_stop_class_running_and_abandoned_follow_the_store_judgement(cli):
    """Both are `running` rows in the store; which one a run is depends on whether its process lives
    (here: this test's process wrote it, so it is running, not abandoned)."""
    now = seed.now_ms()
    started = seed.run_records(now - MIN)[:1]  # a start record only
    ended = seed.run_records(now - 2 * MIN)
    seed.write(cli.db, started + ended)
    assert _listed(cli, "--stop-class", "running") == {started[0][1]["run_id"]}
    assert _listed(cli, "--stop-class", "abandoned") == set()
    assert _listed(cli, "--stop-class", "success") == {ended[0][1]["run_id"]}
    assert "match no run together" in one_line_error(
        cli("runs", "--stop-class", "running", "--stop-reason", "completed")
    )
    assert "tail follows runs as they end" in one_line_error(cli("tail", "--stop-class", "abandoned"))


HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\u202eagent\r"  # a window title, a screen clear, a bidi override


def test_names_from_the_store_cannot_drive_the_terminal(cli):
    """An agent, tool, model, error or conversation id is whatever the agent passed (a tool name an LLM
    chose, a ticket's subject): `runs`, `show`, `stats` and `tail` printed its escape sequences raw, so a
    stored name could set the operator's window title or clear the screen, and `tail` cut one in half,
    leaving an unterminated sequence (a terminal takes what follows as part of it). They are shown escaped; a
    conversation id in rich markup (`[/]`) made `show` fail (MarkupError, exit 2). `--json` keeps the
    values as stored."""
    records = seed.run_records(
        seed.now_ms() - MIN, agent=HOSTILE, model=HOSTILE, failing=(HOSTILE, HOSTILE), conversation_id="[/]x"
    )
    records = _tweak(records, tool=HOSTILE, prompt_version=HOSTILE)
    seed.write(cli.db, records)
    run_id = records[0][1]["run_id"]
    tail = cli.popen("tail", "--last", "1", "--interval", "0.2")
    time.sleep(2)
    tail.send_signal(signal.SIGINT)
    tail_out, _ = tail.communicate(timeout=30)
    for args, out in (
        (("runs",), None),
        (("show", run_id), None),
        (("stats",), None),
        (("tail",), tail_out),
    ):
        if out is None:
            proc = cli(*args)
            assert proc.returncode == 0, (args, proc.stderr)
            out = proc.stdout
        assert "evil" in out, (args, out)
        bad = sorted({c for c in out if (ord(c) < 32 and c != "\n") or c in "\x7f\u202e"})
        assert not bad, (args, bad, out)
    shown = cli("show", run_id).stdout
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\u202eagent\\r" in shown and "[/]x" in shown
    assert json.loads(cli("runs", "--json").stdout)[0]["agent"] == HOSTILE


def test_show_cuts_a_huge_tool_or_model_name_to_one_line(cli):
    """A 100,000-character tool name filled 1,200 lines of `show` (the step line is not cut by the
    terminal's width: it wraps); it is cut to 160 characters like a stored value."""
    records = _tweak(seed.run_records(seed.now_ms() - MIN, model="M" * 100_000), tool="T" * 100_000)
    seed.write(cli.db, records)
    out = cli("show", records[0][1]["run_id"], env={"COLUMNS": "200"}).stdout
    assert "T" * 159 + "…" in out and "M" * 159 + "…" in out
    assert len(out.splitlines()) < 40, len(out.splitlines())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # beyond 64 bits a count reached SQLite's LIMIT: `IntegrityError: datatype mismatch`
        (("runs", "--last", "99999999999999999999"), "at most 1,000,000,000"),
        (("drift", "--min-runs", "99999999999999999999"), "at most 1,000,000,000"),
        (("tail", "--last", "99999999999999999999"), "--last must be from 0 to 1,000,000,000"),
        # NaN and centuries reached time.sleep after the header: ValueError, OverflowError
        (("tail", "--interval", "nan"), "--interval above 0 and at most 86,400"),
        (("tail", "--interval", "1e300"), "--interval above 0 and at most 86,400"),
        # the 24 hours before year 1: `ValueError: year 0 is out of range`
        (("stats", "--until", "0001-01-01"), "before 1970, when no run can start"),
        (("drift", "--until", "0001-01-01"), "before 1970, when no run can start"),
        (("runs", "--since", "1969-12-31"), "before 1970, when no run can start"),
        # Python's own words were `offset must be a timedelta strictly between -timedelta(hours=24) ...`
        (("runs", "--since", "2026-11-24T17:00+25:00"), "its zone offset must be under 24 hours"),
    ],
)
def test_out_of_range_counts_and_times_are_a_bad_option_not_an_internal_error(cli, args, says):
    seed.write(cli.db, seed.run_records(seed.now_ms() - MIN))  # a store, so only the option can fail
    line = one_line_error(cli(*args))
    assert says in line and "Error" not in line, line
