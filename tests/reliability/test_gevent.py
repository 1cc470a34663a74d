"""An agent in a gevent process (``monkey.patch_all()``: gunicorn ``-k gevent``, Celery ``-P gevent``, locust,
a ``gevent.pywsgi`` server) runs as it does without agent-otel, a real gevent in a real process.

Once gevent has patched ``threading``, agent-otel's threads are greenlets of the application's one OS
thread: a call that blocks in C without yielding stops every greenlet. Before agent_otel.green, three did:
the SIGTERM watcher's read of its pipe (the process froze for good a few runs after ``setup()``), a gRPC
export to a collector that did not answer (every greenlet stopped for the 10 s export timeout each time,
and shutdown took 25 s), and the SIGTERM handler's flush in gevent's hub (status 1 and a traceback
instead of SIGTERM's, no span sent, the run cut short stored as ``tool_error``).
"""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import missing_prerequisite, script_env
from tests.otlp_receiver import Blackhole, HTTPReceiver, OTLPReceiver

CHILD = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json, os, sys, time

    import gevent

    import agent_otel

    mode, protocol = sys.argv[1], sys.argv[2]
    agent_otel.setup(
        "green",
        endpoint=os.environ["ENDPOINT"],
        protocol=protocol,
        store=os.environ["STORE"],
        instrument=False,
        config={"exporter": {"probe_local": False}},
    )
    gaps = []


    def ticker():  # another greenlet of the application: how long it waits for its turn
        last = time.monotonic()
        while True:
            gevent.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now


    @agent_otel.tool()
    def lookup(i):
        gevent.sleep(0.002)  # I/O: the other greenlets run meanwhile
        return {"i": i}


    def agent(i):
        with agent_otel.run("quick", input={"i": i}) as run:
            lookup(i)
            run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=5)


    tick = gevent.spawn(ticker)
    start = time.monotonic()
    done = 0
    locker = None
    while done < 20 or time.monotonic() - start < float(os.environ["SECONDS"]):
        if mode == "locked" and locker is None and time.monotonic() - start > 1:
            # Another process holds the store's write lock for 3 s (an `agent-otel gc`, another worker).
            import subprocess

            hold = (
                "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(3); "
                "c.execute('COMMIT')"
            )
            locker = subprocess.Popen(
                [sys.executable, "-c", hold, os.environ["STORE"]], stdout=subprocess.PIPE, text=True
            )
            assert locker.stdout.readline() == "locked\\n"
        gevent.joinall([gevent.spawn(agent, done + k) for k in range(10)])
        done += 10
        if mode == "pg-stalled":
            gevent.sleep(0.05)  # ~150 runs/s: the event queue holds what a 3 s stall keeps back
        if mode == "pg-stalled" and locker is None and time.monotonic() - start > 1:
            print("stall", flush=True)  # the test stops the PostgreSQL server's processes for 3 s
            locker = sys.stdin.readline()
    report = {"runs": done, "max_gap_s": max(gaps), "elapsed_s": time.monotonic() - start}
    if mode == "locked":
        locker.wait()
    print(json.dumps(report), flush=True)
    if mode == "sigterm":
        print("ready", flush=True)
        with agent_otel.run("slow") as run:
            run.call_tool("sleep", gevent.sleep, {"seconds": 60})
    elif mode == "busy-in-c":
        import hashlib

        gevent.sleep(0.5)  # the pipeline's greenlet writes the runs
        print("ready", flush=True)
        hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 500_000_000)  # minutes in C: no greenlet runs
    tick.kill()
    start = time.monotonic()
    agent_otel.shutdown()
    print(json.dumps({"shutdown_s": time.monotonic() - start}), flush=True)
    """
)

PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.fixture(autouse=True)
def _gevent() -> None:
    try:
        import gevent  # noqa: F401
    except ImportError:
        missing_prerequisite("gevent", "make install-dev (the dev extra)")


def _start(
    tmp_path: Path, mode: str, protocol: str, endpoint: str, seconds: float, store: str | None = None
) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    store = store or str(tmp_path / "runs.db")
    env = script_env(tmp_path, ENDPOINT=endpoint, STORE=store, SECONDS=str(seconds))
    return subprocess.Popen(
        [sys.executable, str(script), mode, protocol],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout_s: float) -> tuple[int | None, str, str]:
    """The child's status, stdout and stderr; None for a child that had not ended within ``timeout_s``."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, err


def _lines(proc: subprocess.Popen) -> queue.Queue[str]:
    """The child's lines of output as they come ("" at its end), read on a thread: a frozen child must fail
    the test within its bound, not hold a read forever."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


def _line(lines: queue.Queue[str], timeout_s: float = 60.0) -> str:
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return ""


def _terminated(proc: subprocess.Popen, timeout_s: float = 30.0) -> int | None:
    """The status of a child sent SIGTERM; None (and the child killed) if it had not ended in time."""
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def _completed_runs(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        (n,) = conn.execute("SELECT count(*) FROM agent_runs WHERE stop_reason = 'completed'").fetchone()
    return int(n)


def _receiver(protocol: str) -> Any:
    return OTLPReceiver().start() if protocol == "grpc" else HTTPReceiver()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_agent_under_gevent_keeps_its_pace_while_the_collector_does_not_answer(tmp_path, protocol):
    """The collector accepts connections and never answers (it hangs): the agent's greenlets and the
    application's other greenlets go on at their pace, and shutdown keeps its 1 s bound. Before: the
    process froze for good (the SIGTERM watcher), and with that fixed, a gRPC export stopped every greenlet
    for 10 s at a time (10 runs in 30 s, shutdown 25 s)."""
    hole = Blackhole()
    try:
        proc = _start(tmp_path, "hang", protocol, hole.endpoint, seconds=4)
        rc, out, err = _finish(proc, 60)
    finally:
        hole.close()
    assert rc == 0, (rc, out, err[-3000:])
    pace, shutdown = (json.loads(line) for line in out.splitlines())
    # The ticker sleeps 10 ms at a time; on a loaded machine a turn may come 100s of ms late, never the
    # export timeout (10 s).
    assert pace["max_gap_s"] < 2.0, pace
    assert pace["runs"] >= 200, pace  # ~5,000 in 4 s here; 10 before the fix
    assert shutdown["shutdown_s"] < 4.0, shutdown  # exporter.shutdown_timeout_s is 1 s
    assert "Traceback" not in err, err[-3000:]
    assert _completed_runs(tmp_path) == pace["runs"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sigterm_under_gevent_flushes_the_runs_and_ends_the_process_by_sigterm(tmp_path, protocol):
    """``docker stop`` of a gevent process with agent-otel's handler: gevent's hub runs the handler while
    the greenlets wait, so the flush runs in a greenlet of its own. The run SIGTERM cuts short ends
    ``cancelled``, every span reaches the collector, and the parent sees SIGTERM's status (-15)."""
    receiver = _receiver(protocol)
    try:
        proc = _start(tmp_path, "sigterm", protocol, receiver.endpoint, seconds=0)
        lines = _lines(proc)
        first = _line(lines)
        assert first, _finish(proc, 0)  # (before the fix: the process froze here)
        pace = json.loads(first)
        assert _line(lines) == "ready\n", _finish(proc, 0)
        time.sleep(0.5)  # the slow run's tool sleeps in gevent now (the line is printed just before it)
        proc.send_signal(signal.SIGTERM)
        rc = _terminated(proc)
        err = proc.stderr.read() if proc.stderr is not None else ""
        assert rc == -signal.SIGTERM, (rc, err[-3000:])
        assert "Traceback" not in err, err[-3000:]
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            rows = conn.execute(
                "SELECT agent, stop_reason, detail, count(*) FROM agent_runs GROUP BY 1, 2, 3 ORDER BY 1"
            ).fetchall()
        assert rows == [
            ("quick", "completed", None, pace["runs"]),
            ("slow", "cancelled", "the process received SIGTERM", 1),
        ]
        # Each quick run is three spans (run, tool, chat); the slow one its run span (the tool call SIGTERM
        # cut short never ended: run.end_open_runs).
        names = [span.name for span in receiver.spans]
        assert len(names) == 3 * pace["runs"] + 1, sorted(set(names))
        assert names.count("invoke_agent slow") == 1
    finally:
        receiver.stop()


def test_a_sqlite_store_another_process_locks_does_not_stop_a_gevent_application(tmp_path):
    """SQLite's wait for another process's write lock holds the OS thread every greenlet runs on: a store
    locked for 3 s stopped the whole application for 3 s (a 2,993 ms gap in its other greenlets). Under
    gevent the sink waits at most 50 ms a try, and the records wait in its buffer for the next try: every
    run is stored once the lock is gone."""
    hole = Blackhole()  # (OTLP goes nowhere: this is about the store)
    try:
        proc = _start(tmp_path, "locked", "http/protobuf", hole.endpoint, seconds=6)
        rc, out, err = _finish(proc, 90)
    finally:
        hole.close()
    assert rc == 0, (rc, out, err[-3000:])
    pace, _ = (json.loads(line) for line in out.splitlines())
    assert pace["max_gap_s"] < 1.0, pace
    assert "cannot take writes right now" in err  # the lock was met, and said once
    assert _completed_runs(tmp_path) == pace["runs"], err[-3000:]


GUNICORN_APP = textwrap.dedent(
    """
    import os

    import gevent

    import agent_otel

    agent_otel.setup("web", endpoint=os.environ["ENDPOINT"], store=os.environ["STORE"], instrument=False,
                     protocol=os.environ["PROTOCOL"], config={"exporter.probe_local": False})


    def app(environ, start_response):
        with agent_otel.run("web") as run:
            run.call_tool("lookup", lambda x: gevent.sleep(0.01) or x, {"x": 1})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    """
)


class _Gunicorn:
    """A real gunicorn master with gevent workers running GUNICORN_APP; its log goes to a file (a pipe
    nobody reads fills, and then the master waits on it)."""

    def __init__(self, tmp_path: Path, endpoint: str, protocol: str, *, preload: bool, workers: int) -> None:
        from tests.otlp_receiver import free_port

        (tmp_path / "app.py").write_text(GUNICORN_APP)
        self.port = free_port()
        self.log = tmp_path / "gunicorn.log"
        env = script_env(
            tmp_path,
            STORE=str(tmp_path / "runs.db"),
            ENDPOINT=endpoint,
            PROTOCOL=protocol,
            PYTHONPATH=str(tmp_path),
        )
        args = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(workers)]
        args += ["-b", f"127.0.0.1:{self.port}", "--no-control-socket", *(["--preload"] if preload else [])]
        with self.log.open("w") as log:
            self.master = subprocess.Popen([*args, "app:app"], env=env, cwd=tmp_path, stdout=log, stderr=log)

    def get(self) -> float:
        """One request (an agent's run); how long it took to be answered."""
        import urllib.request

        start = time.monotonic()
        assert urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=30).read() == b"ok"
        return time.monotonic() - start

    def wait_up(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get()
                return
            except OSError:
                assert self.master.poll() is None and time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.1)

    def stop(self) -> tuple[int | None, float]:
        """SIGTERM to the master: its status (None if it had not ended in 60 s) and how long it took."""
        start = time.monotonic()
        self.master.send_signal(signal.SIGTERM)
        try:
            return self.master.wait(60), time.monotonic() - start
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - start

    def kill(self) -> None:
        if self.master.poll() is None:
            self.master.kill()
            self.master.wait()


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_gunicorn_gevent_workers_answer_at_their_pace_while_the_collector_does_not_answer(tmp_path, preload):
    """gunicorn ``-k gevent``: the worker patches itself, then imports the application (with ``--preload``
    the master imports it, unpatched, before the fork). Every request runs an agent; OTLP/gRPC goes to a
    collector that never answers. No request waits for an export (before: requests waited for the exports'
    10 s timeout)."""
    hole = Blackhole()
    server = _Gunicorn(tmp_path, hole.endpoint, "grpc", preload=preload, workers=1)
    latencies = []
    try:
        server.wait_up()
        end = time.monotonic() + 12  # past the first exports' 10 s timeout
        while time.monotonic() < end:
            latencies.append(server.get())
        rc, _ = server.stop()
    finally:
        server.kill()
        hole.close()
    log = server.log.read_text()
    assert rc == 0, log[-3000:]
    assert max(latencies) < 2.0, (max(latencies), len(latencies))  # not the exports' 10 s (20 s seen)
    assert _completed_runs(tmp_path) == len(latencies) + 1, log[-3000:]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gunicorn_gevent_preload_workers_export_their_metrics_and_stop_promptly(tmp_path, protocol):
    """``gunicorn -k gevent --preload``: setup() runs in the unpatched master, and each worker patches itself
    right after its fork, so the locks and the metric reader's thread that agent-otel and the SDK renew at
    the fork were made before gevent patched (agent_otel.green renews them once it has). Before: each metric
    export failed with ``cannot notify on un-acquired lock`` (no metric reached the collector) and the
    workers did not stop within gunicorn's 30 s graceful timeout. Now every worker's runs are counted in the
    metrics the collector receives, and SIGTERM stops the master in seconds, without a traceback."""
    from tests.otlp_receiver import stop_counts

    receiver = _receiver(protocol)
    server = _Gunicorn(tmp_path, receiver.endpoint, protocol, preload=True, workers=2)
    try:
        server.wait_up()
        requests = 1
        for _ in range(40):
            server.get()
            requests += 1
        rc, took = server.stop()
        log = server.log.read_text()
        assert rc == 0, log[-3000:]
        assert took < 15, (took, log[-3000:])  # gunicorn's graceful timeout is 30 s
        assert "Traceback" not in log, log[-3000:]
        assert _completed_runs(tmp_path) == requests
        assert len(receiver.spans) == 2 * requests  # a run and its tool call each
        counts = stop_counts(receiver)
        assert sum(counts.values()) == requests, counts  # the workers' series (one each)
    finally:
        server.kill()
        receiver.stop()


def test_a_postgresql_store_that_stops_answering_does_not_stop_a_gevent_application(tmp_path, postgres):
    """psycopg waits through gevent (it notices the patching): a PostgreSQL server whose processes are
    stopped for 3 s (SIGSTOP: connections open, nothing answers) costs the application's other greenlets
    no more than a turn, and every run is stored once the server answers again."""
    import psutil

    url = postgres.new_database()
    hole = Blackhole()  # (OTLP goes nowhere: this is about the store)
    try:
        proc = _start(tmp_path, "pg-stalled", "http/protobuf", hole.endpoint, seconds=6, store=url)
        lines = _lines(proc)
        assert _line(lines) == "stall\n", _finish(proc, 0)
        server = psutil.Process(int(Path(postgres.data, "postmaster.pid").read_text().split()[0]))
        stopped = [server, *server.children(recursive=True)]
        for p in stopped:
            p.suspend()
        try:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            time.sleep(3)
        finally:
            for p in stopped:
                p.resume()
        pace = json.loads(_line(lines, 60) or "{}")
        shutdown = json.loads(_line(lines, 60) or "{}")
        rc = proc.wait(30)
        err = proc.stderr.read() if proc.stderr is not None else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        hole.close()
    assert rc == 0, (rc, err[-3000:])
    assert pace["max_gap_s"] < 1.0, pace
    assert shutdown["shutdown_s"] < 10.0, shutdown
    import psycopg

    with psycopg.connect(url) as conn:
        (stored,) = conn.execute("SELECT count(*) FROM agent_runs WHERE stop_reason = 'completed'").fetchone()
    assert stored == pace["runs"], err[-3000:]


def test_sigterm_ends_a_gevent_process_busy_in_c_code_promptly(tmp_path):
    """The main thread is in one long C call: gevent's hub cannot run the handler until it returns. Without
    agent-otel SIGTERM's default disposition ends the process at once; with it, the watcher (a real OS
    thread under gevent) ends it past the flush's bound, unflushed, rather than minutes later."""
    hole = Blackhole()
    try:
        proc = _start(tmp_path, "busy-in-c", "http/protobuf", hole.endpoint, seconds=0)
        lines = _lines(proc)
        assert _line(lines), _finish(proc, 0)
        assert _line(lines) == "ready\n", _finish(proc, 0)
        time.sleep(0.3)  # computing now
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = _terminated(proc)
        took = time.monotonic() - start
    finally:
        hole.close()
    assert rc == -signal.SIGTERM, rc
    assert took < 10, took  # the bound (1 s) plus the watcher's grace; not the minutes of the computation


@pytest.mark.parametrize("order", ["patch-then-setup", "setup-then-patch"])
def test_gevent_patching_a_process_after_its_setup_is_warned_about(tmp_path, order):
    """gevent patching a process whose agent-otel threads already run is not supported (no fork between,
    nothing to renew them at): a warning says to call setup() after ``monkey.patch_all()``. The supported
    order gets none."""
    setup = (
        "agent_otel.setup('late', store=False, instrument=False, endpoint=None, "
        "config={'exporter.probe_local': False})"
    )
    patch = "from gevent import monkey; monkey.patch_all()"
    steps = [patch, setup] if order == "patch-then-setup" else [setup, patch]
    script = "\n".join(["import gevent", "import agent_otel", *steps, "agent_otel.shutdown()", "print('ok')"])
    proc = subprocess.run(
        [sys.executable, "-c", script], env=script_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr[-3000:]
    warned = "gevent patched threading after agent_otel.setup() in this process" in proc.stderr
    assert warned == (order == "setup-then-patch"), proc.stderr[-3000:]
