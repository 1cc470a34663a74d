"""Runs of a process that died without recording a stop read ``abandoned``, never ``running`` forever.

Real processes are killed here (SIGKILL: no atexit, no flush), and the real ``agent-otel`` commands read
the store afterwards. No stop reason is invented for such a run: its ``stop_reason`` stays empty.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from agent_otel.store import Target, open_store
from agent_otel.store.liveness import identity
from tests.cli.conftest import CLI
from tests.store import seed
from tests.store.test_store import rows

AGENT = textwrap.dedent(
    """
    import os, signal, sys, time
    import agent_otel
    from agent_otel import sdk

    agent_otel.setup("svc", store=sys.argv[1], instrument=False, config={"exporter": {"probe_local": False}})
    with agent_otel.run("done-agent") as done:
        done.call_tool("search", lambda q: [q], {"q": 1})
    with agent_otel.run("stuck-agent", budget=agent_otel.Budget(max_duration_s=3600)) as stuck:
        stuck.call_tool("search", lambda q: [q], {"q": 2})
        assert sdk.flush(10)
        print(done.run_id, stuck.run_id, flush=True)
        if sys.argv[2] == "finish-then-die":
            stuck.stop("completed")
            os.kill(os.getpid(), signal.SIGKILL)  # before the pipeline's next write
        time.sleep(600)  # a tool that hangs until the process is killed
    """
)


@pytest.fixture
def cli(tmp_path) -> CLI:
    return CLI(tmp_path / "home")


def start_agent(db: str, mode: str) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", AGENT, db, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().split()
    assert len(line) == 2, proc.stderr.read() if proc.poll() is not None else line
    return proc, line[0], line[1]


def runs_json(cli: CLI, *args: str) -> dict[str, dict]:
    out = cli("runs", "--json", *args)
    assert out.returncode == 0, out.stderr
    return {r["run_id"]: r for r in json.loads(out.stdout)}


def test_a_killed_process_leaves_its_run_abandoned_in_runs_show_stats_and_drift(cli):
    proc, done, stuck = start_agent(cli.db, "hang")
    try:
        listed = runs_json(cli)
        # While the process lives, its unfinished run is running.
        assert (listed[stuck]["status"], listed[stuck]["stop_reason"]) == ("running", None)
        assert listed[done]["status"] == "success"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    listed = runs_json(cli)
    assert (listed[stuck]["status"], listed[stuck]["stop_reason"]) == ("abandoned", None)
    assert (listed[stuck]["pid"], listed[stuck]["host"]) == (proc.pid, socket.gethostname())
    assert listed[stuck]["deadline_ms"] == listed[stuck]["created_at_ms"] + 3_600_000
    assert listed[done]["deadline_ms"] is None
    assert f"pid {proc.pid}" in listed[stuck]["abandoned"]
    assert listed[done]["status"] == "success"
    assert set(runs_json(cli, "--stop-reason", "abandoned")) == {stuck}
    assert runs_json(cli, "--stop-reason", "running") == {}

    text = cli("runs")
    assert text.returncode == 0 and "abandoned" in text.stdout
    shown = cli("show", stuck[:12])
    assert shown.returncode == 0, shown.stderr
    assert "abandoned" in shown.stdout and "process" in shown.stdout and "running" not in shown.stdout

    stats = json.loads(cli("stats", "--json").stdout)
    assert (stats["runs"], stats["running"], stats["abandoned"]) == (1, 0, 1)
    assert [m["stop_reason"] for m in stats["stop_reasons"]] == ["completed"]  # none invented
    drift = json.loads(cli("drift", "--json", "--min-runs", "1").stdout)
    assert (drift["window"]["runs"], drift["window"]["abandoned"]) == (1, 1)


def test_a_killed_process_its_parent_has_not_reaped_yet_is_gone_too(cli):
    """A supervisor that has not waited for its killed worker yet (or never does) leaves a zombie: the
    pid exists, with its start time, but the process will never write its run's end."""
    proc, _, stuck = start_agent(cli.db, "hang")
    try:
        proc.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, and left unreaped
        assert runs_json(cli)[stuck]["status"] == "abandoned"
    finally:
        proc.wait(10)


def test_a_run_that_finished_just_before_a_kill_never_shows_running(cli):
    proc, _, stuck = start_agent(cli.db, "finish-then-die")
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert stuck in {r["run_id"] for r in rows(cli.db, "SELECT run_id FROM agent_runs")}
    # Whether its end reached the store before the kill depends on timing; either way, the run is
    # not presented as still running: it is what the store knows (success) or abandoned.
    assert runs_json(cli)[stuck]["status"] in ("success", "abandoned")


def _row(run_id: str, **fields: object) -> dict:
    (start,) = [p for t, p in seed.run_records(seed.now_ms() - 5000, run_id=run_id)[:1]]
    return {**start, **fields}


def test_pid_reuse_another_host_and_deadlines_are_judged_as_documented(tmp_path):
    me = identity()
    other_start = me["process_start"].rsplit(":", 1)[0] + ":1" if me["process_start"] else None
    if other_start is None:
        pytest.skip("needs /proc to compare process start times (Linux)")
    past = seed.now_ms() - 120_000
    cases = {
        "alive": _row("a" * 32, **me),
        "pid-reused": _row("b" * 32, **dict(me, process_start=other_start)),
        "other-host": _row("c" * 32, host="elsewhere", pid=me["pid"], process_start=other_start),
        "other-host-late": _row("d" * 32, host="elsewhere", pid=1, process_start=None, deadline_ms=past),
        "alive-late": _row("e" * 32, **me, deadline_ms=past),  # a hung tool: the process is alive
        "no-identity": _row("f" * 32),  # written by an agent-otel before schema 4
    }
    path = str(tmp_path / "judge.db")
    store = open_store(Target("sqlite", path))
    try:
        store.write(list(cases.values()), [])
        status = {r["run_id"][0]: r["status"] for r in store.runs()}
    finally:
        store.close()
    assert status == {
        "a": "running",
        "b": "abandoned",  # same pid, another start time: another process
        "c": "running",  # another host: cannot tell
        "d": "abandoned",  # but its deadline passed over a minute ago
        "e": "running",  # a live process's run is running, past its deadline or not
        "f": "running",
    }
    assert socket.gethostname() == me["host"] and os.getpid() == me["pid"]
