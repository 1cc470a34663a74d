"""What ``stats``, ``drift`` and ``runs`` print at their edges, through the real command: drift's baseline
partly empty, stop reasons that appear or vanish, constant figures, a one-run baseline, an agent with no
baseline, the exit codes the README gives; the same figures whatever the local time zone; the stop-reason
counts of ``stats`` against the rows ``runs`` lists."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from agent_otel.store import Target, open_store
from tests.cli.conftest import CLI
from tests.store import seed

HOUR, DAY = seed.HOUR_MS, seed.DAY_MS


def iso_utc(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M")


def _signals(proc: Any) -> dict[str, dict[str, Any]]:
    return {s["signal"]: s for s in json.loads(proc.stdout)["signals"]}


def test_drift_at_its_edges_and_its_exit_codes(cli: CLI):
    now = seed.now_ms()
    records: list[tuple[str, dict[str, Any]]] = []
    # baseline: only its last day holds runs (six of the seven days are empty); no spend at all
    for i in range(10):
        reason = "timeout" if i < 3 else "completed"  # a stop reason the window no longer has
        records += seed.run_records(now - DAY - (i + 1) * HOUR, cost_usd=0.0, stop_reason=reason)
    # window: the same tool calls, latency and tokens; two runs end tool_error (new); no spend either;
    # two requests reported no usage (as the SDK stores a stream without usage) and must not lower tokens
    for i in range(10):
        recs = seed.run_records(
            now - (i + 1) * HOUR, cost_usd=0.0, stop_reason="tool_error" if i < 2 else "completed"
        )
        if i < 2:
            llm = next(r for kind, r in recs if kind == "event" and r["kind"] == "llm_result")
            llm["usage"] = {"model": "gpt-4o"}
        records += recs
    records += seed.run_records(now - 3 * HOUR, agent="new-agent")  # no baseline at all
    records += seed.run_records(now - DAY - HOUR, agent="tiny-agent", tool_calls=2)
    records += seed.run_records(now - HOUR, agent="tiny-agent", tool_calls=5)
    seed.write(cli.db, records)

    proc = cli("drift", "--json", "--agent", "support-agent")
    assert proc.returncode == 1, proc.stderr
    signals = _signals(proc)
    assert signals["stop_reason:tool_error"]["drift"] is True
    new = signals["stop_reason:tool_error"]
    assert (new["baseline"], new["window"], new["ratio"]) == (0.0, 0.2, None)  # JSON has no Infinity
    assert signals["stop_reason:timeout"]["drift"] is False  # it went away: not a drift
    assert (signals["spend_per_run_usd"]["ratio"], signals["spend_per_run_usd"]["drift"]) == (None, False)
    assert signals["tool_calls_per_run"]["ratio"] == 1.0 and signals["latency_p95_ms"]["ratio"] == 1.0
    tokens = signals["tokens_per_request"]
    assert (tokens["baseline"], tokens["window"], tokens["drift"]) == (1000.0, 1000.0, False)
    text = cli("drift", "--agent", "support-agent")
    assert text.returncode == 1 and "drift: stop_reason:tool_error" in text.stdout
    assert "new" in next(
        line for line in text.stdout.splitlines() if line.startswith("stop_reason:tool_error")
    )

    alone = cli("drift", "--json", "--agent", "new-agent")
    assert alone.returncode == 0 and json.loads(alone.stdout)["enough_data"] is False
    assert json.loads(alone.stdout)["baseline"]["runs"] == 0
    one = cli("drift", "--json", "--agent", "tiny-agent", "--min-runs", "1")
    assert one.returncode == 1 and _signals(one)["tool_calls_per_run"]["ratio"] == 2.5
    assert cli("drift", "--agent", "tiny-agent").returncode == 0  # 1 run each: under --min-runs 5
    assert cli("drift", "--window", "0h").returncode == 2


def test_stats_are_the_same_in_every_local_time_zone(cli: CLI):
    start = seed.now_ms() // DAY * DAY - 2 * DAY  # 00:00 UTC two days ago: 19:00 in New York
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(30):
        records += seed.run_records(start + i * 97 * 60_000, duration_ms=100.0 + i, tool_calls=i % 7)
    # a writer whose clock is ahead: in the periods ending now (see the clock-ahead test below), no other
    records += seed.run_records(seed.now_ms() + 2 * HOUR)
    seed.write(cli.db, records)
    iso = iso_utc(start + 5 * HOUR)
    outputs = []
    for tz in ("UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"):
        fixed = cli("stats", "--json", "--since", iso, "--until", iso_utc(start + DAY), env={"TZ": tz})
        ago = cli("stats", "--json", "--since", "3d", env={"TZ": tz})
        table = cli("stats", "--since", iso, "--until", iso_utc(start + DAY), env={"TZ": tz})
        assert fixed.returncode == ago.returncode == table.returncode == 0, fixed.stderr
        figures = json.loads(fixed.stdout)
        assert json.loads(ago.stdout)["runs"] == 31
        outputs.append((figures, table.stdout))
    assert outputs[0][0]["runs"] == sum(5 * HOUR <= i * 97 * 60_000 < DAY for i in range(30))
    assert all(o == outputs[0] for o in outputs)
    assert f"from {iso[:10]} {iso[11:16]}:00Z" in outputs[0][1]


def test_stop_reason_counts_of_stats_are_the_rows_runs_lists(cli: CLI):
    now = seed.now_ms()
    records: list[tuple[str, dict[str, Any]]] = []
    reasons = ["completed"] * 5 + ["tool_error"] * 3 + ["interrupted", "max_steps", "max_steps"]
    for i, reason in enumerate(reasons):
        records += seed.run_records(now - (i + 1) * 600_000, stop_reason=reason)
    running = seed.run_records(now - 30_000)[:1]  # started, not ended (this process: still running)
    replay = seed.run_records(now - 60_000, stop_reason="policy_denied")
    for _, rec in replay:
        rec["replay_of"] = "0" * 32
    seed.write(cli.db, records + running + replay)
    stats = json.loads(cli("stats", "--json", "--since", "1d").stdout)
    listed = json.loads(cli("runs", "--json", "--since", "1d", "--last", "1000").stdout)
    counted = Counter(r["stop_reason"] for r in listed if not r.get("replay_of") and r["stop_reason"])
    assert {m["stop_reason"]: m["runs"] for m in stats["stop_reasons"]} == dict(counted)
    assert stats["runs"] == sum(counted.values()) == len(reasons)
    for reason, n in counted.items():
        rows = json.loads(cli("runs", "--json", "--since", "1d", "--stop-reason", reason).stdout)
        assert len([r for r in rows if not r.get("replay_of")]) == n
    success = sum(m["share"] for m in stats["stop_reasons"] if m["class"] == "success")
    assert success == 5 / len(reasons)


def test_small_spend_and_requests_without_usage_read_as_what_they_are(cli: CLI):
    """A run of a cheap model costs a few millionths of a dollar: `$0.0000` read as no spend at all. And
    requests that reported no usage are said, not folded into the tokens as requests of 0 tokens."""
    now = seed.now_ms()
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(3):
        recs = seed.run_records(
            now - (i + 1) * 60_000, cost_usd=0.000015, llm_calls=2, tokens_per_request=300
        )
        if i == 0:
            llm = next(r for kind, r in recs if kind == "event" and r["kind"] == "llm_result")
            llm["usage"] = {"model": "gpt-4o"}
        records += recs
    seed.write(cli.db, records)
    out = cli("stats").stdout
    spend = next(line for line in out.splitlines() if line.startswith("spend per run"))
    assert "$0.000015 / $0.000015" in spend and "(total $0.000045)" in spend
    tokens = next(line for line in out.splitlines() if line.startswith("tokens per request"))
    assert "300 / 300" in tokens and "(mean 300, 6 requests, 1 without usage)" in tokens
    (row,) = json.loads(cli("runs", "--json", "--last", "1").stdout)
    assert "$0.000015" in cli("show", row["run_id"]).stdout


def test_stats_until_alone_is_the_day_before_it(cli: CLI):
    """``--until`` without ``--since``: the 24h before it, as drift's window ends at its --until (it was an
    error, the default --since being 24h before now and so after any --until of days ago)."""
    end = seed.now_ms() // HOUR * HOUR - 2 * DAY
    records: list[tuple[str, dict[str, Any]]] = []
    for at in (end - DAY - 1, end - DAY, end - 1, end, seed.now_ms() - HOUR):
        records += seed.run_records(at)
    seed.write(cli.db, records)
    proc = cli("stats", "--json", "--until", iso_utc(end))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["runs"] == 2 and (got["from"], got["to"]) == (iso_ms(end - DAY), iso_ms(end))
    text = cli("stats", "--until", iso_utc(end)).stdout
    assert text.startswith(f"2 runs from {iso_utc(end - DAY).replace('T', ' ')}:00Z to ")
    assert json.loads(cli("stats", "--json").stdout)["runs"] == 1  # still the last 24h by default


def iso_ms(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def test_drift_says_when_a_period_comes_from_the_summaries(cli: CLI, monkeypatch, capsys):
    """A period of over periods.RAW_RUNS runs is summarized: drift then says its latency p95 is within 1%
    (as stats does), and ``--json`` gives each period's method."""
    from agent_otel.cli import main
    from agent_otel.store import periods

    now = seed.now_ms()
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(12):
        records += seed.run_records(now - DAY - (i + 1) * 5 * HOUR, duration_ms=1000.0 + i)
    for i in range(6):
        records += seed.run_records(now - (i + 1) * HOUR, duration_ms=1000.0 + i)
    seed.write(cli.db, records)
    monkeypatch.setattr(periods, "RAW_RUNS", 8)  # the baseline's 12 runs are "many", the window's 6 not
    assert main(["--store", cli.db, "drift", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["window"]["method"], got["baseline"]["method"]) == ("exact", "summarized")
    assert main(["--store", cli.db, "drift"]) == 0
    assert "latency p95 of the baseline from the hourly summaries: within 1%" in capsys.readouterr().out


def _killed(created_at_ms: int) -> dict[str, Any]:
    """The row of a run whose process was killed mid-run: another host's, past its deadline (read abandoned).
    Written straight into the store: the sink stamps rows with the writing process's own identity."""
    row = seed.run_records(created_at_ms)[0][1]
    return {**row, "host": "elsewhere", "pid": 1, "process_start": None, "deadline_ms": created_at_ms + 1}


def _write(cli: CLI, records: list[tuple[str, dict[str, Any]]], killed: list[dict[str, Any]]) -> None:
    seed.write(cli.db, records)
    store = open_store(Target("sqlite", cli.db))
    try:
        store.write(killed, [])
    finally:
        store.close()


def test_processes_killed_mid_run_are_a_drift_of_their_own(cli: CLI, make_cli):
    now = seed.now_ms()
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(10):
        records += seed.run_records(now - DAY - (i + 1) * HOUR)
        records += seed.run_records(now - (i + 1) * HOUR)
    killed = [_killed(now - DAY - 12 * HOUR)]  # one killed process in the baseline: 1 of 11
    killed += [_killed(now - (i + 1) * HOUR - 60_000) for i in range(4)]  # four in the window: 4 of 14
    _write(cli, records, killed)
    proc = cli("drift", "--json")
    assert proc.returncode == 1, proc.stdout
    got = _signals(proc)["abandoned"]
    assert (got["baseline"], got["window"], got["drift"]) == (1 / 11, 4 / 14, True)
    text = cli("drift")
    assert text.returncode == 1 and "drift: abandoned" in text.stdout

    # The same share in both periods is no drift.
    steady = make_cli("steady")
    records = []
    for i in range(10):
        records += seed.run_records(now - DAY - (i + 1) * HOUR)
        records += seed.run_records(now - (i + 1) * HOUR)
    killed = [_killed(now - DAY - (i + 1) * HOUR - 60_000) for i in range(2)]
    killed += [_killed(now - (i + 1) * HOUR - 60_000) for i in range(2)]
    _write(steady, records, killed)
    proc = steady("drift", "--json")
    assert proc.returncode == 0 and _signals(proc)["abandoned"]["drift"] is False

    # A window where every process was killed is judged, not hidden as "not enough data".
    crashing = make_cli("crashing")
    records = []
    for i in range(10):
        records += seed.run_records(now - DAY - (i + 1) * HOUR)
    _write(crashing, records, [_killed(now - (i + 1) * HOUR) for i in range(6)])
    proc = crashing("drift", "--json")
    assert proc.returncode == 1, proc.stdout
    out = json.loads(proc.stdout)
    assert out["enough_data"] is True and (out["window"]["runs"], out["window"]["abandoned"]) == (0, 6)
    assert _signals(proc)["abandoned"]["window"] == 1.0


def test_runs_from_a_clock_ahead_count_in_the_period_ending_now_and_are_flagged(cli: CLI):
    """A host whose clock is ahead writes runs that start after now. `stats` and `drift` (periods ending
    now) left them out until the local clock caught up, while `runs` listed them: the last hour of a
    fleet with one host 10 minutes ahead lacked that host's newest runs. Now a period that ends now counts
    every run stored by now, whatever its start time, and says how many start after now."""
    now = seed.now_ms()
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(3):
        records += seed.run_records(now - (i + 1) * 10 * 60_000)
    for i in range(2):
        records += seed.run_records(now + (i + 1) * 5 * 60_000, stop_reason="tool_error")  # ahead
    records += seed.run_records(now - 3 * DAY)  # out of every period below
    seed.write(cli.db, records)

    stats = json.loads(cli("stats", "--json").stdout)
    assert (stats["runs"], stats["ahead"]) == (5, 2)
    assert {m["stop_reason"]: m["runs"] for m in stats["stop_reasons"]} == {"completed": 3, "tool_error": 2}
    text = cli("stats", "--since", "1h")
    assert text.returncode == 0, text.stderr
    assert "5 runs of" not in text.stdout and text.stdout.startswith("5 runs in the last 1h")
    assert "2 runs start after now (a clock ahead of this host's): counted in this period" in text.stdout
    drift = json.loads(cli("drift", "--json", "--window", "1h").stdout)
    assert (drift["window"]["runs"], drift["window"]["ahead"]) == (5, 2)
    assert "2 runs start after now (a clock ahead of this host's): counted in the window" in (
        cli("drift", "--window", "1h").stdout
    )
    assert len(json.loads(cli("runs", "--since", "1h", "--json").stdout)) == 5
    # a period with an end of its own is that period, and says nothing of the clock
    until = json.loads(cli("stats", "--json", "--until", iso_utc(now + 60_000)).stdout)
    assert until["runs"] == 3 and "ahead" not in until


def test_agent_filters_match_a_name_however_its_accents_are_encoded(cli: CLI):
    """The SDK records agent names in NFC; `--agent café` typed as e + a combining accent (NFD: a macOS
    file name pasted, another terminal) found no run of café."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    seed.write(cli.db, seed.run_records(seed.now_ms() - HOUR, agent=nfc))
    for name in (nfc, nfd):
        assert json.loads(cli("stats", "--json", "--agent", name).stdout)["runs"] == 1
        assert len(json.loads(cli("runs", "--json", "--agent", name).stdout)) == 1
