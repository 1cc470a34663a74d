"""`agent-otel ... | head -1` and friends: a reader that goes away changes nothing but the output.

A script runs `agent-otel drift | head -3` (or under `set -o pipefail`) and still needs the command's own
exit status: 1 for drift, 0 for a healthy doctor, a dry run or a listing. The reader here is gone before
the command writes its first byte, the harshest case of `head` closing early.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cli.conftest import CLI, COMMAND
from tests.store import seed

COMMANDS = [
    ("runs",),
    ("runs", "--json"),
    ("stats",),
    ("stats", "--json"),
    ("drift",),
    ("drift", "--json"),
    ("doctor",),
    ("gc", "--dry-run"),
    ("export",),
]


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> CLI:
    cli = CLI(tmp_path_factory.mktemp("pipes") / "home")
    now = seed.now_ms()
    records = []
    for day in range(2, 9):  # a week of baseline: 2 tool calls per run
        for i in range(6):
            records += seed.run_records(now - day * seed.DAY_MS - i * seed.HOUR_MS, tool_calls=2)
    for i in range(12):  # the last hours: 10 tool calls per run
        records += seed.run_records(now - i * 600_000, tool_calls=10)
    seed.write(cli.db, records)
    return cli


def _with_reader_gone(cli: CLI, *args: str) -> subprocess.CompletedProcess[str]:
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(AGENT_OTEL_HOME=str(cli.home), AGENT_OTEL_PROBE_LOCAL="false")
    try:
        return subprocess.run(
            [*COMMAND, *args], stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=120
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_pipe_keeps_the_commands_exit_status_and_prints_no_error(drifting, args):
    expected = drifting(*args)
    assert expected.returncode in (0, 1), expected.stderr
    assert expected.stdout
    piped = _with_reader_gone(drifting, *args)
    assert (piped.returncode, piped.stderr) == (expected.returncode, "")


def test_drift_in_the_fixture_is_detected(drifting):
    """The drift cases above must compare a real exit 1, not two zeros."""
    assert drifting("drift").returncode == 1


def test_tail_stops_once_its_reader_has_gone(drifting):
    """`agent-otel tail | grep -m1 x`: tail follows forever otherwise; it ends, quietly, once grep has."""
    piped = _with_reader_gone(drifting, "tail", "--interval", "0.1")
    assert (piped.returncode, piped.stderr) == (0, "")
