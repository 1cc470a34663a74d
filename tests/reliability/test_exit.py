"""Short-lived processes and container stops keep their runs: real subprocesses, killed or terminated.

``docker stop`` sends SIGTERM, whose default disposition ends a Python process without atexit: with no
handler of the application's, setup() installs one that flushes and then terminates by SIGTERM as before.
A process killed outright (SIGKILL, OOM) flushes nothing, so records are written promptly instead of after
a batch interval.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import agent_otel
from agent_otel import sdk, sigterm
from tests.helpers import script_env
from tests.otlp_receiver import OTLPReceiver, stop_counts

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import agent_otel

    mode = sys.argv[1]
    if mode == "own-handler":
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))  # the application's own
    config = {"exporter": {"probe_local": False}}
    if mode == "handler-off":
        config["exporter"]["handle_sigterm"] = False
    endpoint, store = os.environ.get("ENDPOINT"), os.environ["STORE"]
    agent_otel.setup("short-lived", endpoint=endpoint, store=store, instrument=False, config=config)
    for i in range(20):
        with agent_otel.run("quick") as run:
            run.call_tool("lookup", lambda i: i * 2, {"i": i})
    print("ready", flush=True)
    if mode == "own-handler-after-setup":
        # A server that installs its handlers after the application module called setup() (gunicorn's
        # master with --preload): its handler only asks the main loop to stop, which then takes its time.
        import threading

        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
        print("handling", flush=True)
        while not stopping.wait(0.05):
            pass
        time.sleep(1.5)  # a graceful stop: waiting for the workers
        sys.exit(3)
    if mode == "busy":
        with agent_otel.run("slow") as run:
            run.call_tool("sleep", lambda secs: time.sleep(secs), {"secs": 60})
    elif mode == "other-thread":
        # The kernel may hand a process's SIGTERM to any thread that does not block it; then nothing
        # interrupts the main thread's sleep, where Python would run the handler.
        import threading

        def receive():
            sys.stdin.readline()
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

        threading.Thread(target=receive).start()
    elif mode == "busy-in-c":
        import hashlib

        print("computing", flush=True)
        hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 500_000_000)  # minutes in C, GIL released
    time.sleep(60)
    """
)


class Child:
    def __init__(self, tmp_path: Path, mode: str, endpoint: str | None = None) -> None:
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        self.store = tmp_path / "runs.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)
        env.update(AGENT_OTEL_HOME=str(tmp_path / "home"), STORE=str(self.store), PYTHONPATH=path)
        if endpoint:
            env["ENDPOINT"] = endpoint
        self.proc = subprocess.Popen(
            [sys.executable, str(script), mode],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        assert line == "ready\n", (line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def end(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return rc, self.proc.stderr.read()

    def completed_runs(self) -> int:
        if not self.store.exists():
            return 0
        with sqlite3.connect(self.store) as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM agent_runs WHERE agent = 'quick' AND stop_reason = 'completed'"
            ).fetchone()
        return n


@pytest.fixture
def receiver():
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


def test_sigterm_with_the_default_handler_flushes_runs_and_spans_then_dies_by_sigterm(tmp_path, receiver):
    """`docker stop`: before, no atexit ran and 0 of 20 runs were stored."""
    child = Child(tmp_path, "default", receiver.endpoint)
    child.wait_ready()
    rc, stderr = child.end(signal.SIGTERM)
    assert rc == -signal.SIGTERM, stderr  # what the parent would have seen without agent-otel
    assert child.completed_runs() == 20, stderr
    assert receiver.count() == 40  # 20 run spans and 20 tool spans
    assert "Traceback" not in stderr


def test_sigterm_during_a_tool_call_still_flushes_the_finished_runs(tmp_path, receiver):
    """The run SIGTERM interrupts ends ``cancelled`` (the process was ended on purpose, as with an
    application's own handler calling ``sys.exit()``), with the signal as its detail, and its span and stop
    are exported. Before, it was left ``running`` and read ``abandoned`` (what SIGKILL or a crash leave,
    for which nothing is known), and its run span and ``agent_stop_total`` count were never sent."""
    child = Child(tmp_path, "busy", receiver.endpoint)
    child.wait_ready()
    time.sleep(0.2)  # inside the 60 s tool call now
    start = time.monotonic()
    rc, stderr = child.end(signal.SIGTERM)
    assert rc == -signal.SIGTERM, stderr
    assert time.monotonic() - start < 10  # the shutdown bound (1 s) plus process start-up noise
    assert child.completed_runs() == 20, stderr
    with sqlite3.connect(child.store) as conn:
        query = "SELECT status, stop_reason, detail FROM agent_runs WHERE agent = 'slow'"
        slow = conn.execute(query).fetchall()
    assert slow == [("limit", "cancelled", "the process received SIGTERM")], stderr
    (span,) = [s for s in receiver.spans if s.name == "invoke_agent slow"]
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["agent.stop_reason"] == "cancelled", attributes
    stops = [
        (point.as_int, {a.key: a.value.string_value for a in point.attributes})
        for batch in receiver.metric_batches
        for rm in batch.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "agent.stop"
        for point in metric.sum.data_points
    ]
    assert (1, {"agent": "slow", "stop_reason": "cancelled"}) in [
        (n, {k: v for k, v in a.items() if k in ("agent", "stop_reason")}) for n, a in stops
    ], stops


def test_sigterm_received_by_another_thread_still_ends_the_process_promptly(tmp_path):
    """Python runs handlers on the main thread only: asleep in a system call, it would not notice."""
    child = Child(tmp_path, "other-thread")
    child.wait_ready()
    start = time.monotonic()
    child.proc.stdin.write("go\n")
    child.proc.stdin.flush()
    rc = child.proc.wait(30)
    assert rc == -signal.SIGTERM, child.proc.stderr.read()
    assert time.monotonic() - start < 10  # not the 60 s the main thread sleeps
    assert child.completed_runs() == 20


def test_sigterm_while_the_main_thread_is_busy_in_c_still_flushes_and_ends_the_process(tmp_path):
    child = Child(tmp_path, "busy-in-c")
    child.wait_ready()
    assert child.proc.stdout.readline() == "computing\n"
    start = time.monotonic()
    rc, stderr = child.end(signal.SIGTERM)
    assert rc == -signal.SIGTERM, stderr
    assert time.monotonic() - start < 10  # not the minutes the computation takes
    assert child.completed_runs() == 20, stderr


def test_an_applications_own_sigterm_handler_is_left_alone(tmp_path):
    child = Child(tmp_path, "own-handler")
    child.wait_ready()
    rc, stderr = child.end(signal.SIGTERM)
    assert rc == 3, stderr  # its handler ran (sys.exit(3)), and then atexit flushed as usual
    assert child.completed_runs() == 20, stderr


def test_a_handler_the_application_installs_after_setup_is_left_to_do_its_work(tmp_path):
    """gunicorn --preload: agent-otel's watcher thread still saw the signal and, the handler it had
    installed not running, ended the master by SIGTERM 0.4 s into its graceful stop (status -15, not 0)."""
    child = Child(tmp_path, "own-handler-after-setup")
    child.wait_ready()
    assert child.proc.stdout.readline() == "handling\n"
    rc, stderr = child.end(signal.SIGTERM)
    assert rc == 3, stderr  # the application's own exit, after its graceful stop
    assert child.completed_runs() == 20, stderr  # and atexit flushed as usual


def test_handle_sigterm_false_keeps_pythons_default(tmp_path):
    child = Child(tmp_path, "handler-off")
    child.wait_ready()
    time.sleep(0.5)  # records are written promptly anyway; what the default loses is the flush
    rc, _ = child.end(signal.SIGTERM)
    assert rc == -signal.SIGTERM


def test_a_process_killed_soon_after_its_runs_has_them_stored(tmp_path):
    """Killed soon after 20 quick runs: before, the store file was never even created (the runs waited
    for the exit). Now they reach the store while the process lives, within milliseconds on a quiet
    machine (benchmarks/reliability.py prints the figures for SIGKILL 0-150 ms after them); here the wait
    is bounded for a loaded CI machine instead of a fixed 150 ms, which failed under load while the store
    was still being created. What was stored survives SIGKILL."""
    child = Child(tmp_path, "default")
    child.wait_ready()

    def stored() -> int:
        try:
            return child.completed_runs()
        except sqlite3.OperationalError:  # the schema is still being created
            return 0

    deadline = time.monotonic() + 20
    while stored() < 20 and time.monotonic() < deadline and child.proc.poll() is None:
        time.sleep(0.02)
    rc, stderr = child.end(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert child.completed_runs() == 20, stderr


# --- when the handler is installed, in this process -------------------------------------------------------


@pytest.fixture
def sigterm_default(fresh):
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    agent_otel.shutdown()
    signal.signal(signal.SIGTERM, before)


def _setup(**config):
    agent_otel.setup("svc", store=False, instrument=False, config={"exporter.probe_local": False, **config})


def test_setup_installs_the_handler_and_shutdown_removes_it(sigterm_default):
    _setup()
    assert sigterm.installed()
    agent_otel.shutdown()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("how", ["config", "env"])
def test_the_handler_can_be_switched_off(sigterm_default, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("AGENT_OTEL_HANDLE_SIGTERM", "false")
        _setup()
    else:
        _setup(**{"exporter.handle_sigterm": False})
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_no_handler_over_the_applications_own(sigterm_default):
    def own(signum, frame):
        pass

    signal.signal(signal.SIGTERM, own)
    _setup()
    assert signal.getsignal(signal.SIGTERM) is own
    agent_otel.shutdown()
    assert signal.getsignal(signal.SIGTERM) is own


def test_no_handler_when_setup_runs_off_the_main_thread(sigterm_default):
    errors = []

    def target():
        try:
            _setup()
        except Exception as exc:  # pragma: no cover - would fail the assertion below
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert not errors
    assert sdk.installation() is not None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# --- SIGTERM while the process is already shutting down ---------------------------------------------------

EXITING = textwrap.dedent(
    """
    import os, sys, threading, time
    import agent_otel
    from agent_otel import sdk

    class SlowSink:
        # An application's slow sink. Its first batch holds the first run alone, and it returns once the
        # process is shutting down: the other runs are still queued then, and go in the next batch.
        first, runs_done = threading.Event(), threading.Event()

        def write(self, batch):
            if not self.first.is_set():
                self.first.set()
                self.runs_done.wait(10)
                deadline = time.monotonic() + 10
                while sdk.installation() is not None and time.monotonic() < deadline:
                    time.sleep(0.01)
            else:
                print("closing", flush=True)  # within shutdown(): the parent sends SIGTERM now
                time.sleep(0.5)

        def close(self):
            pass

    sink = SlowSink()
    agent_otel.setup("exiting", store=os.environ["STORE"], instrument=False, event_sinks=[sink],
                     config={"exporter": {"probe_local": False}})
    for i in range(20):
        with agent_otel.run("quick") as run:
            run.call_tool("lookup", lambda i: i * 2, {"i": i})
        if i == 0:
            sink.first.wait(10)
    sink.runs_done.set()
    print("exiting", flush=True)
    """
)


def test_sigterm_during_the_shutdown_at_exit_lets_it_finish(tmp_path):
    """`docker stop` (or multiprocessing's Pool.terminate()) as the process exits: the handler was removed
    as shutdown() began, so SIGTERM killed the process in the middle of delivering its last runs."""
    script = tmp_path / "exiting.py"
    script.write_text(EXITING)
    store = tmp_path / "runs.db"
    env = script_env(tmp_path, STORE=str(store))
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "exiting\n"
        line = proc.stdout.readline()
        assert line == "closing\n", (line, proc.stderr.read())
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    assert rc == -signal.SIGTERM, stderr  # ended by the SIGTERM, once the shutdown had delivered
    with sqlite3.connect(store) as conn:
        (n,) = conn.execute("SELECT count(*) FROM agent_runs WHERE stop_reason = 'completed'").fetchone()
    assert n == 20, stderr


# --- a run store that another process holds locked at exit ------------------------------------------------

LOCKED = textwrap.dedent(
    """
    import os, sys, time
    import agent_otel

    from agent_otel import sdk

    agent_otel.setup("locked", endpoint=os.environ["ENDPOINT"], store=os.environ["STORE"], instrument=False,
                     config={"exporter": {"probe_local": False}})
    with agent_otel.run("warm-up"):
        pass
    assert sdk.flush(10)  # the store is open, its tables created
    print("set up", flush=True)
    sys.stdin.readline()  # the parent holds the store's write lock from now on
    for i in range(20):
        with agent_otel.run("quick") as run:
            run.call_tool("lookup", lambda i: i * 2, {"i": i})
    print("exiting", flush=True)
    """
)


def test_a_store_locked_at_exit_holds_up_neither_the_exit_nor_the_metrics(tmp_path, receiver):
    """Another process holds SQLite's write lock past the shutdown bound: the runs cannot be stored, and
    say so, but OTLP gets them all. The metrics of a batch waited behind the store's write on the event
    thread, and the process exited before they were recorded: 0 of 20 runs in agent_stop_total."""
    script = tmp_path / "locked.py"
    script.write_text(LOCKED)
    store = tmp_path / "runs.db"
    env = script_env(tmp_path, STORE=str(store), ENDPOINT=receiver.endpoint)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = None
    try:
        assert proc.stdout.readline() == "set up\n", proc.stderr.read()
        holder = sqlite3.connect(store, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "exiting\n"
        start = time.monotonic()
        rc = proc.wait(30)
        elapsed = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    stderr = proc.stderr.read()
    assert rc == 0, stderr
    assert elapsed < 6, stderr  # the shutdown bound, not SQLite's 5 s busy timeout per try
    # one record or many, depending on how the event thread's first batch fell
    assert "was busy at exit" in stderr, stderr
    assert re.search(r"\b[1-9]\d* store records? \(store unavailable\)", stderr), stderr
    assert receiver.span_names().count("invoke_agent quick") == 20
    assert sum(stop_counts(receiver).values()) == 20, stderr


# --- the ways a process ends --------------------------------------------------------------------------------

EXIT_PATHS = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import agent_otel

    mode = sys.argv[1]
    agent_otel.setup("exits", store=os.environ["STORE"], instrument=False,
                     config={"exporter.probe_local": False})
    for i in range(5):
        with agent_otel.run("quick") as run:
            run.call_tool("lookup", lambda i: i, {"i": i})
    if mode == "sys-exit":
        with agent_otel.run("exiting") as run:
            run.call_tool("lookup", lambda i: i, {"i": 1})
            sys.exit(2)
    elif mode == "uncaught":  # while non-daemon threads are in runs, which Python waits for at exit
        def worker():
            with agent_otel.run("thread") as run:
                run.call_tool("sleep", lambda s: time.sleep(s), {"s": 0.5})
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        with agent_otel.run("main"):
            raise RuntimeError("boom")
    elif mode == "sigint":
        print("ready", flush=True)
        with agent_otel.run("interrupted") as run:
            run.call_tool("sleep", lambda s: time.sleep(s), {"s": 60})
    elif mode == "shutdown-twice":
        agent_otel.shutdown()  # and once more at exit
    """
)


@pytest.mark.parametrize(
    ("mode", "rc", "runs"),
    [
        ("sys-exit", 2, {("exiting", "cancelled"): 1}),
        ("uncaught", 1, {("main", "error"): 1, ("thread", "completed"): 3}),
        ("sigint", -signal.SIGINT, {("interrupted", "cancelled"): 1}),
        ("shutdown-twice", 0, {}),
    ],
)
def test_every_way_of_ending_keeps_the_runs_with_their_stop_reason(tmp_path, mode, rc, runs):
    script = tmp_path / "exits.py"
    script.write_text(EXIT_PATHS)
    store = tmp_path / "runs.db"
    env = script_env(tmp_path, STORE=str(store))
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if mode == "sigint":
            assert proc.stdout.readline() == "ready\n"
            time.sleep(0.3)  # inside the tool call
            proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == rc
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    with sqlite3.connect(store) as conn:
        rows = dict(
            ((agent, reason), n)
            for agent, reason, n in conn.execute(
                "SELECT agent, stop_reason, count(*) FROM agent_runs GROUP BY agent, stop_reason"
            )
        )
    assert rows == {("quick", "completed"): 5, **runs}, stderr
    assert "dropped" not in stderr and "agent-otel" not in stderr, stderr


def test_a_fork_while_the_sigterm_watcher_closes_its_pipe_closes_no_file_of_the_application(monkeypatch):
    """The watcher's reader thread closes its pipe as shutdown() stops it; os.close lets the main thread
    run, which may open a file (reusing the number) and fork. The child's fork hook must not close that
    number again (a pipe the application made for the child: its write failed with EBADF)."""
    from agent_otel import sigterm

    read_fd, write_fd = os.pipe()
    watcher = sigterm._Watcher(read_fd, write_fd)
    app_fds: list[int] = []
    real_close = os.close

    def close(fd: int) -> None:
        real_close(fd)
        if fd == write_fd:  # both closed: the main thread opens a pipe and forks here; the child's hook runs
            # The application's new pipe gets the freed numbers (os.pipe() takes the lowest free ones, which
            # are these only if no lower number is free: placed there, so that the test does not depend on
            # what else the process has open).
            r, w = os.pipe()
            for got, wanted in ((r, read_fd), (w, write_fd)):
                if got != wanted:
                    os.dup2(got, wanted)
                    real_close(got)
            app_fds.extend((read_fd, write_fd))
            monkeypatch.setattr(sigterm, "_watch", None)
            watcher._forked()

    monkeypatch.setattr(sigterm.os, "close", close)
    watcher._close_fds()
    monkeypatch.setattr(sigterm.os, "close", real_close)
    try:
        os.write(app_fds[1], b"x")  # still the application's, still open
        assert os.read(app_fds[0], 1) == b"x"
    finally:
        for fd in app_fds:
            real_close(fd)
