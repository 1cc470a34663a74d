"""A PostgreSQL store cut off by a silent partition: packets dropped, no reset, the session left open.

A server that goes away cleanly (a restart, a refused connection) is covered in test_postgres.py. A host
that vanishes, a firewall that forgets the connection, a route that flaps: the client's kernel hears
nothing, and a session without TCP timeouts waits on its socket for ~15 minutes of retransmissions (or the
OS keepalive's 2 hours). The test makes the partition real: the agent and its own PostgreSQL server run in
a network namespace of their own (``unshare -n``, which needs root), and the namespace's loopback is taken
down under them, then brought back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.helpers import missing_prerequisite, script_env

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, logging, os, subprocess, sys, threading, time

import psycopg

import agent_otel
from agent_otel import sdk
from tests.store.pg import PostgresServer

OUT = sys.argv[1]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
server = PostgresServer()
log: list[tuple[float, str]] = []


class Remember(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log.append((time.monotonic(), record.getMessage()))


logging.getLogger("agent_otel").addHandler(Remember())
logging.getLogger("agent_otel").setLevel(logging.INFO)


@agent_otel.tool(name="lookup")
def lookup(n: int) -> dict:
    return {"n": n, "text": "x" * 200}


def lines(path: str) -> int:
    with open(path) as fh:
        return sum(1 for _ in fh)


try:
    server.start()
    url = server.new_database()
    events = os.path.join(os.path.dirname(OUT), "events.jsonl")
    agent_otel.setup(
        "partition", store=url, events=events, instrument=False, config={"exporter": {"probe_local": False}}
    )
    ids: list[str] = []
    stop = threading.Event()

    def agent() -> None:
        while not stop.is_set():
            with agent_otel.run("partitioned") as run:
                lookup(len(ids))
                lookup(len(ids) + 1)
            ids.append(run.run_id)
            time.sleep(0.02)

    worker = threading.Thread(target=agent, daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while len(ids) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sdk.flush(30)
    lines_then = lines(events)
    time.sleep(4)
    lines_before = lines(events) - lines_then
    subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
    cut = time.monotonic()
    runs_at_cut = len(ids)
    noticed = None
    deadline = cut + 60
    while noticed is None and time.monotonic() < deadline:
        noticed = next((t for t, m in log if "cannot take writes right now" in m), None)
        time.sleep(0.1)
    # the pipeline's thread is free again: the event sink beside the store takes what the agent records
    time.sleep(1)
    lines_then = lines(events)
    time.sleep(4)
    lines_during = lines(events) - lines_then
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    healed_runs = len(ids)
    time.sleep(1)
    stop.set()
    worker.join(30)
    flushed = sdk.flush(60)
    healed = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        # the sink's next try after its back-off (at most 30 s) writes what waited
        while time.monotonic() < healed + 60:
            stored = conn.execute("SELECT count(*) FROM agent_runs WHERE status <> 'running'").fetchone()[0]
            if stored >= len(ids):
                break
            time.sleep(0.2)
        stored_after_s = time.monotonic() - healed
        calls = conn.execute("SELECT count(*), count(DISTINCT run_id) FROM agent_events").fetchone()
    result = {
        "noticed_after_s": None if noticed is None else noticed - cut,
        "runs_at_cut": runs_at_cut,
        "runs_during": healed_runs - runs_at_cut,
        "event_lines_in_4s_before": lines_before,
        "event_lines_in_4s_during": lines_during,
        "runs": len(ids),
        "flushed": flushed,
        "stored_after_s": stored_after_s,
        "stored": stored,
        "events": calls[0],
        "event_runs": calls[1],
        "log": [m for _, m in log if "run store" in m],
    }
finally:
    agent_otel.shutdown()
    server.stop()
with open(OUT, "w") as fh:
    json.dump(result, fh)
"""


def _network_namespace() -> None:
    unshare = shutil.which("unshare")
    ok = unshare is not None and shutil.which("ip") is not None and os.geteuid() == 0
    if ok:
        ok = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0
    if not ok:
        missing_prerequisite(
            "a network namespace of the test's own (root, `unshare -n` from util-linux, `ip` from iproute2)",
            "scripts/prereqs.d/55-iproute2.sh (apt-get install iproute2), and run the tests as root",
        )


def test_a_silent_partition_from_the_server_is_noticed_and_healed_without_loss(tmp_path: Any) -> None:
    """The store's session fails within ~30 s (keepalives, tcp_user_timeout) instead of holding the
    pipeline's thread, and with it every other sink, for as long as TCP retries; once the network is back
    the buffered records are written, each once."""
    _network_namespace()
    out = tmp_path / "result.json"
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", textwrap.dedent(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        env=script_env(tmp_path),
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["noticed_after_s"] is not None and result["noticed_after_s"] < 40, result
    assert result["runs_during"] > 0, result
    assert result["event_lines_in_4s_during"] >= result["event_lines_in_4s_before"] / 2, result
    assert result["flushed"] is True, result
    assert (result["stored"], result["event_runs"]) == (result["runs"], result["runs"]), result
    assert result["events"] == 3 * result["runs"], result  # two calls and the end of each run, once each
    assert any("accepts writes again" in m for m in result["log"]), result


def test_the_store_session_has_tcp_timeouts_unless_its_url_sets_its_own(postgres: Any) -> None:
    from agent_otel.store.db import open_store
    from agent_otel.store.location import Target

    url = postgres.new_database()
    store = open_store(Target("postgresql", url))
    try:
        given = store.conn.info.get_parameters()  # type: ignore[attr-defined]
    finally:
        store.close()
    assert given["keepalives_idle"] == "15" and given["tcp_user_timeout"] == "15000", given
    store = open_store(Target("postgresql", f"{url}?keepalives_idle=120&tcp_user_timeout=0"))
    try:
        given = store.conn.info.get_parameters()  # type: ignore[attr-defined]
    finally:
        store.close()
    assert (given["keepalives_idle"], given.get("tcp_user_timeout", "0")) == ("120", "0"), given
    assert given["keepalives_count"] == "3", given
