"""A short-lived process's last records reach the run store at its exit (README, Reliability: "Short-lived
processes"): scripts, cron jobs and task workers end right after their runs, while the store may still be
connecting (a first connection, a migration another process holds) or writing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from tests.helpers import script_env
from tests.store.pg import PostgresServer

pytestmark = pytest.mark.e2e
psycopg = pytest.importorskip("psycopg")

SCRIPT = textwrap.dedent(
    """
    import sys
    import agent_otel

    config = {"exporter": {"probe_local": False}}
    agent_otel.setup("cron-job", store=sys.argv[1], instrument=False, config=config)
    for i in range(3):
        with agent_otel.run("nightly", input={"job": sys.argv[2], "i": i}) as run:
            run.call_tool("lookup", lambda i: i * 2, {"i": i})
            run.record_llm(model="gpt-4o", input_tokens=100, output_tokens=10)
    """
)


def test_concurrent_short_scripts_against_postgresql_all_have_their_runs_stored(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Eight cron-like scripts start at once against an empty PostgreSQL database and exit right after
    three runs each. Connecting and the first writer's migration (the others wait for its lock) take more
    than the shutdown bound on a loaded machine: the exit waits for the store's write in progress (at most
    ``EXIT_WRITE_S``) instead of dropping the process's runs."""
    url = postgres.new_database()
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = script_env(tmp_path)
    started = time.monotonic()
    procs = [
        subprocess.Popen([sys.executable, str(script), url, str(n)], env=env, stdout=PIPE, stderr=PIPE)
        for n in range(8)
    ]
    outputs: list[tuple[int, str]] = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        outputs.append((proc.returncode, err.decode()))
    elapsed = time.monotonic() - started
    assert all(code == 0 for code, _ in outputs), outputs
    assert not [err for _, err in outputs if "not stored" in err or "dropped" in err], outputs
    with psycopg.connect(url) as conn:
        rows: list[Any] = conn.execute(
            "SELECT status, count(*), sum(input_tokens) FROM agent_runs WHERE agent = 'nightly' "
            "GROUP BY status"
        ).fetchall()
        events = conn.execute("SELECT count(*) FROM agent_events WHERE kind = 'tool_result'").fetchone()
    assert rows == [("success", 24, 2400)], (rows, elapsed)
    assert events == (24,)


HELD = textwrap.dedent(
    """
    import sys, time
    import agent_otel

    config = {"exporter": {"probe_local": False}}
    agent_otel.setup("cron-job", store=sys.argv[1], instrument=False, config=config)
    with agent_otel.run("warmup") as run:  # connected, tables made: the next write is the one held up
        pass
    from agent_otel import sdk
    sdk.flush(10)
    print("connected", flush=True)
    sys.stdin.readline()
    with agent_otel.run("nightly") as run:
        run.call_tool("lookup", lambda i: i * 2, {"i": 1})
    print("ran", time.monotonic(), flush=True)
    """
)


def test_the_exit_waits_for_the_store_at_most_its_bound(postgres: PostgresServer, tmp_path: Path) -> None:
    """A write that never finishes (another session holds a lock on the runs table) holds the exit for
    ``EXIT_WRITE_S`` at most, then the process's records are counted as not stored; and a store whose
    port refuses connections (no server) does not hold the exit past the usual bound."""
    from agent_otel.store.sink import EXIT_WRITE_S
    from tests.otlp_receiver import free_port

    url = postgres.new_database()
    script = tmp_path / "held.py"
    script.write_text(HELD)
    env = script_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, str(script), url], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "connected"
    with psycopg.connect(url) as locker:
        locker.execute("LOCK TABLE agent_runs IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        proc.stdin.write("go\n")
        proc.stdin.flush()
        ran = float(proc.stdout.readline().split()[1])
        try:
            _, err = proc.communicate(timeout=EXIT_WRITE_S + 20)
        finally:
            proc.kill()
        exited = time.monotonic()
    assert proc.returncode == 0, err
    assert EXIT_WRITE_S - 0.5 < exited - ran < EXIT_WRITE_S + 3, (exited - ran, err)
    assert "was busy at exit" in err and "not stored" in err, err
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM agent_runs WHERE agent = 'nightly'").fetchone() == (0,)

    refused = f"postgresql://agent_otel@127.0.0.1:{free_port()}/nowhere"
    script = tmp_path / "refused.py"
    # (timed from the end of the script's runs: its start-up and imports are not the exit's, and take
    # seconds of their own on a loaded machine)
    script.write_text(SCRIPT + "import time\nprint('ran', time.monotonic(), flush=True)\n")
    done = subprocess.run(
        [sys.executable, str(script), refused, "0"], env=env, capture_output=True, text=True, timeout=60
    )
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert "cannot take writes right now" in done.stderr, done.stderr
    ran = float(done.stdout.split()[1])
    assert exited - ran < EXIT_WRITE_S - 1, (exited - ran, done.stderr)


def test_setup_with_a_postgresql_store_imports_psycopg_on_its_own_thread(tmp_path: Path) -> None:
    """psycopg is imported when setup() makes the store's sink, on the caller's thread: its first import
    used to happen on the pipeline's thread at the first connection, which a short script's exit raced
    with the main thread's import for the last try (two threads importing one package as the interpreter
    ends broke one of them)."""
    from tests.otlp_receiver import free_port

    code = textwrap.dedent(
        """
        import sys
        import agent_otel

        url = f"postgresql://agent_otel@127.0.0.1:{sys.argv[1]}/nowhere"
        agent_otel.setup("s", store=url, instrument=False, config={"exporter": {"probe_local": False}})
        loaded = [m for m in ("psycopg", "psycopg.conninfo", "psycopg.pq") if m in sys.modules]
        print(",".join(loaded) or "none")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(free_port())], env=script_env(tmp_path), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "psycopg,psycopg.conninfo,psycopg.pq", done.stdout
