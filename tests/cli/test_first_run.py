"""The first ten minutes: the README's walkthrough gives the README's output, in a terminal of any width.

One fresh $HOME runs the documented walkthrough (``tests/readme_samples.py``); the README's samples are
compared with it, and the other tests here read the same store at other widths.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests import readme_samples
from tests.readme_samples import run_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("first-run")
    return home, readme_samples.walkthrough(home)


def test_readme_samples_are_the_walkthrough_output(walk):
    _, fresh = walk
    documented = readme_samples.samples()
    assert set(documented) == {"demo", "runs", "show", "stats", "drift", "doctor"}
    for name, text in documented.items():
        assert readme_samples.normalise(text) == readme_samples.normalise(fresh[name]), (
            f"README sample {name!r} differs from the real output; "
            "`.venv/bin/python -m tests.readme_samples` rewrites it\n" + fresh[name]
        )


def test_the_demo_sample_says_why_otlp_is_off_as_a_user_without_a_collector_sees_it(walk):
    """The sample is written with the probe on; the walkthrough runs with it off (a machine's collector must
    not change the test), so the line is normalised in the comparison and checked here instead."""
    _, fresh = walk
    documented = readme_samples.samples()["demo"]
    assert (
        "OTLP export is off: no endpoint configured and no collector answers on localhost:4317 or :4318"
        in documented
    ), documented
    assert "OTLP export is off: no endpoint configured and exporter.probe_local is false" in fresh["demo"]


def test_the_default_demo_shows_the_incident_the_readme_describes(walk):
    _, fresh = walk
    rows = {line.split()[0]: line for line in fresh["demo"].splitlines() if line.split()[:1]}
    assert rows["incident"].endswith("completed 11, loop_detected 1")
    assert rows["normal"].split()[1] == "27" and rows["incident"].split()[1] == "12"
    assert "worst run (loop_detected," in fresh["demo"]


def test_the_walkthrough_comment_states_the_drift_the_commands_find(walk):
    home, _ = walk
    block = README_TEXT.split("<!-- walkthrough -->", 1)[1].split("```", 2)[1]
    claim = re.search(r"agent-otel drift +# exit 1: tool calls per run went from ([\d.]+) to ([\d.]+)", block)
    assert claim, block
    proc = run_cli(home, "drift", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    calls = next(s for s in json.loads(proc.stdout)["signals"] if s["signal"] == "tool_calls_per_run")
    assert calls["drift"]
    assert (f"{calls['baseline']:.1f}", f"{calls['window']:.1f}") == claim.groups()


README_TEXT = (ROOT / "README.md").read_text()


def _make_demo_args() -> list[str]:
    """The agent-otel arguments of `make demo`'s recipe, as the Makefile has them."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.+)$", makefile, re.M)
    assert recipe, "no demo target in the Makefile"
    words = shlex.split(recipe.group(1))
    assert words[0].endswith("/bin/agent-otel"), words
    return words[1:]


def test_make_demo_then_demo_backdate_then_drift_finds_the_documented_drift(tmp_path):
    """The sequence the README used to document (and users still type): the second demo must not dilute
    the first one's incident."""
    home = tmp_path / "home"
    first = run_cli(home, *_make_demo_args())
    assert first.returncode == 0, first.stderr
    second = run_cli(home, "demo", "--backdate")
    assert second.returncode == 0, second.stderr
    proc = run_cli(home, "drift", "--json")
    assert proc.returncode == 1, proc.stdout
    result = json.loads(proc.stdout)
    calls = next(s for s in result["signals"] if s["signal"] == "tool_calls_per_run")
    assert calls["drift"] and calls["window"] >= 2 * calls["baseline"]
    assert result["window"]["runs"] == 24  # the two demos' incidents, no normal run among them


def test_a_live_demo_is_stored_at_real_time(tmp_path):
    home = tmp_path / "home"
    proc = run_cli(home, "demo", "--live", "--runs", "4", "--scenario", "normal")
    assert proc.returncode == 0, proc.stderr
    assert "back-dated" not in proc.stdout
    runs = json.loads(run_cli(home, "runs", "--json").stdout)
    assert len(runs) == 4 and all(r["created_at_ms"] > runs[0]["created_at_ms"] - 120_000 for r in runs)
    both = run_cli(home, "demo", "--live", "--backdate", "3")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_tables_fit_the_terminal_and_keep_the_run_id(walk, columns):
    home, _ = walk
    outputs = {
        "runs": run_cli(home, "runs", columns=columns).stdout,
        "drift": run_cli(home, "drift", columns=columns).stdout,
        "stats": run_cli(home, "stats", columns=columns).stdout,
        "failures": run_cli(home, "runs", "--stop-class", "failure", columns=columns).stdout,
    }
    for name, out in outputs.items():
        too_wide = [line for line in out.splitlines() if len(line) > columns]
        assert not too_wide, (name, too_wide)
    runs = json.loads(run_cli(home, "runs", "--json").stdout)
    lines = outputs["runs"].splitlines()
    assert lines[0].split()[:2] == ["RUN", "STARTED"] and "STOP" in lines[0]
    # every run-id prefix whole (12 hex), in the order --json gives
    assert [line.split()[0] for line in lines[1 : len(runs[:20]) + 1]] == [
        r["run_id"][:12] for r in runs[:20]
    ]
    header = lines[0].split()
    if columns >= 200:
        everything = ["RUN", "STARTED", "AGENT", "STOP", "TOOLS", "STEPS", "RETRIES", "DURATION", "TOKENS"]
        assert header == [*everything, "COST", "MODEL"]
    if columns == 80:
        assert {"DURATION", "TOOLS", "COST"} <= set(header)
        assert lines[-1] == "(all rows: agent support-agent, model gpt-4o)"


def test_the_demo_summary_fits_80_columns_with_its_runs_column(tmp_path):
    home = tmp_path / "home"
    proc = run_cli(home, "demo", "--runs", "12", columns=80)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("by scenario\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split()[:2] == ["SCENARIO", "RUNS"] and "STOP" in table[0]
    assert all(len(line) <= 80 for line in table), table
    counts = {line.split()[0]: int(line.split()[1]) for line in table[1:]}
    assert counts == {"normal": 7, "wrong-email": 1, "incident": 4}


def test_per_run_means_read_alike(walk):
    _, fresh = walk
    table = fresh["demo"].split("by scenario\n", 1)[1].splitlines()
    header = table[0].split()
    for line in table[1:4]:
        cells = line.split()
        calls, retries = cells[header.index("TOOLS/RUN")], cells[header.index("RETRIES")]
        assert re.fullmatch(r"\d+\.\d", calls) and re.fullmatch(r"\d+\.\d", retries), line


def test_started_is_utc_with_its_zone_and_matches_json(walk):
    home, _ = walk
    text = run_cli(home, "runs", "--last", "3", columns=200).stdout.splitlines()
    data = json.loads(run_cli(home, "runs", "--last", "3", "--json").stdout)
    for line, run in zip(text[1:], data, strict=True):
        started = re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z", line)
        assert started, line
        # --json: 2026-11-24T17:37:15.123Z; the table: 2026-11-24 17:37:15Z, the same instant
        assert started.group(0) == run["created_at"][:19].replace("T", " ") + "Z"
    shown = run_cli(home, "show", data[0]["run_id"]).stdout
    assert f"started    {data[0]['created_at'][:19].replace('T', ' ')}Z" in shown


def test_demo_reports_when_nothing_reached_otlp(tmp_path):
    from tests.otlp_receiver import free_port

    home = tmp_path / "home"
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_cli(home, "demo", "--runs", "3", env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert proc.returncode == 0, proc.stderr
    said = " ".join(proc.stdout.split())
    assert f"nothing reached OTLP grpc {endpoint}: none of" in said and "was delivered" in said
    assert "sent " not in said


def test_demo_reports_the_spans_the_collector_received(tmp_path):
    from tests.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver().start()
    try:
        proc = run_cli(
            tmp_path / "home", "demo", "--runs", "3", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        )
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    said = re.search(r"sent ([\d,]+) spans to OTLP grpc " + re.escape(receiver.endpoint), proc.stdout)
    assert said, proc.stdout
    assert int(said.group(1).replace(",", "")) == len(receiver.spans) > 3


def test_the_walkthrough_typed_into_a_shell_after_make_demo_does_what_its_comments_say(tmp_path):
    """The README's walkthrough, line by line in one bash session in a checkout, as a new user types it.

    ``make demo`` runs the Makefile's recipe but not its install (this test's own venv, linked as the
    checkout's ``.venv``, is the install); ``agent-otel`` is not on PATH until the walkthrough puts it
    there (it was not: after ``make demo`` the next line, ``agent-otel runs``, was "command not found").
    The id ``show`` is given is the one the demo printed, as the comment says. Each line exits as its
    comment says (0 unless ``exit N``).
    """
    block = README_TEXT.split("<!-- walkthrough -->", 1)[1].split("```", 2)[1].split("\n", 1)[1]
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    makefile = shlex.quote(str(ROOT / "Makefile"))
    script = [  # the real recipe; `-o install`: the install is this venv (`make demo` runs `install` first)
        'make() { [ "$1" = demo ] || return 99; '
        f'command make -s -f {makefile} -o install demo | tee "$OUT/demo"; }}',
        'command -v agent-otel >/dev/null && echo agent-otel-on-path-before >> "$OUT/rc"',
    ]
    expected = []
    for n, line in enumerate(line for line in block.splitlines() if line.strip()):
        command, _, comment = line.partition("#")
        exit_said = re.match(r"\s*exit (\d+)", comment)
        expected.append((command.strip(), int(exit_said.group(1)) if exit_said else 0))
        command = re.sub(
            r"(agent-otel show) [0-9a-f]+",
            r'\1 "$(sed -n "s/^next: .*agent-otel show \\([0-9a-f]*\\).*/\\1/p" "$OUT/demo")"',
            command,
        )
        script.append(f'{command} > "$OUT/{n}.out" 2>&1; echo "$?" >> "$OUT/rc"')
    out = tmp_path / "out"
    out.mkdir()
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        d
        for d in os.environ["PATH"].split(os.pathsep)
        if d and d != bin_dir and not Path(d, "agent-otel").exists()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "VIRTUAL_ENV"))}
    env.update(
        HOME=str(tmp_path / "home"), PATH=path, OUT=str(out), AGENT_OTEL_PROBE_LOCAL="false", TERM="dumb"
    )
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=checkout, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 or proc.stderr == "", proc.stderr
    codes = (out / "rc").read_text().split()
    outputs = [(out / f"{n}.out").read_text() for n in range(len(expected))]
    assert [(cmd, int(rc)) for (cmd, _), rc in zip(expected, codes, strict=True)] == expected, outputs
    assert expected[0][0] == "make demo" and "40 runs of support-agent" in outputs[0]
    # the hint for a user who reads no further: the recipe's last line names the next line's command
    assert "'. .venv/bin/activate' puts it on PATH" in outputs[0], outputs[0][-300:]
    shown = next(
        o for (cmd, _), o in zip(expected, outputs, strict=True) if cmd.startswith("agent-otel show")
    )
    assert "stop       loop_detected (failure)" in shown, shown


def test_shows_grafana_link_of_a_back_dated_demo_run_covers_the_time_its_spans_were_sent(tmp_path):
    """Local stack: AGENT_OTEL_GRAFANA_URL set, `agent-otel demo`, then `show`. The demo stores its runs
    back-dated but sends their spans at the real time, and the bundled Grafana looks a trace id up only in
    the link's time range (its Tempo datasource has `timeShiftEnabled`, +-1 h): the range must hold the
    time the spans were sent (it was the stored run's +-1 h, days before: the trace was not found)."""
    import time

    home = tmp_path / "home"
    sent_from = time.time() * 1000
    assert run_cli(home, "demo", "--runs", "3", "--scenario", "normal").returncode == 0
    sent_until = time.time() * 1000
    grafana = {"AGENT_OTEL_GRAFANA_URL": "http://localhost:3000"}
    runs = json.loads(run_cli(home, "runs", "--json").stdout)
    assert all(
        run["created_at_ms"] < sent_from - 2 * 3_600_000 for run in runs
    )  # stored hours or days before
    for run in runs:
        shown = json.loads(run_cli(home, "show", run["run_id"], "--json", env=grafana).stdout)
        pane = json.loads(parse_qs(urlparse(shown["trace_url"]).query)["panes"][0])["trace"]
        assert int(pane["range"]["from"]) <= run["created_at_ms"] and int(pane["range"]["to"]) >= sent_until


def test_the_demos_next_lines_pasted_into_a_shell_run_each_command(walk, tmp_path):
    """The demo ends with the commands to try next; a user pastes a line after `next:` into a shell. Each
    command must run and print its own output (they were separated by `|`: pasted, `runs` and `show` were
    piped into the next command and their output lost)."""
    home, fresh = walk
    lines = fresh["_demo_stdout"].split("\nnext: ", 1)[1].splitlines()[:2]
    first = subprocess.run(
        ["bash", "-c", lines[0].strip()],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))},
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert first.returncode == 1, first.stderr  # drift's, the last command: the demo's incident drifts
    out = first.stdout
    assert out.index("RUN ") < out.index("\nsteps\n") < out.index("window last 24h"), out


def test_the_readmes_sqlite_alert_finds_the_demos_incident_hours(walk):
    """Tables: "The same alert for the SQLite store", run as printed on the walkthrough's store, returns the
    hours of the demo's incident (the last six hours, about 12 tool calls per run against about 4 the week
    before) and no hour of normal runs."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    home, _ = walk
    block = README_TEXT.split("The same alert for\nthe SQLite store:", 1)[1].split("```sql\n", 1)[1]
    query = block.split("```", 1)[0]
    db = sqlite3.connect(f"file:{home / '.agent-otel' / 'agent-otel.db'}?mode=ro", uri=True)
    try:
        hours = db.execute(query).fetchall()
    finally:
        db.close()
    assert hours, "the alert found no hour"
    oldest = (datetime.now(UTC) - timedelta(hours=7)).strftime("%Y-%m-%d %H:00")
    assert all(hour >= oldest and avg > 8 for hour, avg in hours), hours
