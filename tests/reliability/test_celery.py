"""Celery workers, for real: a worker process (``celery worker``) and a broker that needs no server (kombu's
``filesystem://`` transport, results in files), with agent-otel set up as users do it: in
``worker_process_init`` (each pool child) or at import in the master, before the pool forks.

A prefork child that ``worker_max_tasks_per_child`` recycles ends in billiard's ``Worker._do_exit()`` with
``os._exit()``: neither atexit nor multiprocessing's finalizers run there. What does run is Celery's
``worker_process_shutdown`` signal. Before agent-otel flushed there, 2 of 12 runs were stored with one
task per child, 7 of 12 with three.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import missing_prerequisite, script_env
from tests.otlp_receiver import OTLPReceiver


@pytest.fixture(autouse=True)
def _celery() -> None:
    if importlib.util.find_spec("celery") is None:
        missing_prerequisite("celery (the dev extra)", "make install-dev")


N = 12

TASKS = textwrap.dedent(
    """
    import os, time
    from celery import Celery, signals
    import agent_otel

    broker = os.environ["BROKER_DIR"]
    app = Celery("tasks")
    app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": broker, "data_folder_out": broker, "polling_interval": 0.1,
        },
        result_backend="file://" + os.environ["RESULTS_DIR"],
        worker_max_tasks_per_child=int(os.environ["MAX_TASKS"]) or None,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )

    def setup():
        agent_otel.setup("celery-worker", endpoint=os.environ["ENDPOINT"], store=os.environ["STORE"],
                         instrument=False, config={"exporter.probe_local": False,
                                                   "exporter.shutdown_timeout_s": 10.0})

    if os.environ.get("OTEL_CELERY"):  # the application's own tracing, with Celery's instrumentation
        import json
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        spans = InMemorySpanExporter()

        @signals.worker_process_init.connect(weak=False)
        def instrument(**kwargs):
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(spans))
            trace.set_tracer_provider(provider)
            CeleryInstrumentor().instrument()

        @signals.worker_process_shutdown.connect(weak=False)
        def dump(**kwargs):
            with open(os.environ["OTEL_CELERY"], "a") as out:
                for s in spans.get_finished_spans():
                    links = [format(link.context.span_id, "016x") for link in s.links]
                    parent = format(s.parent.span_id, "016x") if s.parent else None
                    out.write(json.dumps([s.name, format(s.context.span_id, "016x"), parent, links]) + "\\n")

    if os.environ["SETUP"] == "import":
        setup()  # in the master, before the pool forks its children (and in the client: harmless)
    else:
        signals.worker_process_init.connect(lambda **kwargs: setup(), weak=False)

    @agent_otel.tool(name="lookup")
    def lookup(i):
        return i * 2

    @app.task
    def work(i):
        with agent_otel.run("worker", input={"i": i}):
            lookup(i)
        return i

    @agent_otel.tool(name="slow", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0))
    def slow(seconds):
        time.sleep(seconds)
        return seconds

    @app.task(soft_time_limit=1)
    def limited(seconds):
        with agent_otel.run("limited"):
            return slow(seconds)

    @app.task(time_limit=2)
    def hard_limited(seconds):
        with agent_otel.run("hard-limited"):
            return slow(seconds)

    @app.task
    def long(seconds):
        with agent_otel.run("long"):
            return slow(seconds)
    """
)

CLIENT = textwrap.dedent(
    """
    import sys, tasks
    if sys.argv[1] == "limited":
        try:
            print(tasks.limited.delay(4).get(timeout=60), flush=True)
        except Exception as exc:
            print(type(exc).__name__, flush=True)
    elif sys.argv[1] == "hard_limited":
        try:
            print(tasks.hard_limited.delay(30).get(timeout=60), flush=True)
        except Exception as exc:
            print(type(exc).__name__, flush=True)
    elif sys.argv[1] == "long":
        print(tasks.long.delay(60).id, flush=True)  # sent; the worker is stopped while it runs
    else:
        results = [tasks.work.delay(i) for i in range(int(sys.argv[1]))]
        print(sorted(r.get(timeout=120) for r in results), flush=True)
    """
)


def stored(store: Path) -> list[tuple[str, str | None]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as conn:
        try:
            return conn.execute("SELECT agent, stop_reason FROM agent_runs").fetchall()
        except sqlite3.OperationalError:  # no table: nothing was ever written
            return []


@pytest.fixture
def receiver():
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


def run_worker(
    tmp_path: Path,
    endpoint: str,
    pool: str,
    setup: str,
    max_tasks: int,
    client_arg: str,
    **extra_env: str,
) -> tuple[subprocess.CompletedProcess[str], subprocess.Popen[str], str]:
    """Start ``celery worker``, run the client with ``client_arg``, then stop the worker (SIGTERM: Celery's
    warm shutdown, running tasks finish, children end)."""
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "client.py").write_text(CLIENT)
    for d in ("broker", "results"):
        (tmp_path / d).mkdir()
    env = script_env(
        tmp_path,
        PYTHONPATH=str(tmp_path),
        BROKER_DIR=str(tmp_path / "broker"),
        RESULTS_DIR=str(tmp_path / "results"),
        STORE=str(tmp_path / "runs.db"),
        ENDPOINT=endpoint,
        SETUP="import" if setup == "import" else "signal",
        MAX_TASKS=str(max_tasks),
        **extra_env,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", pool, "-c", "2", "-l", "WARNING"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, "client.py", client_arg],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            log, _ = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # leave no worker behind (the master and its pool children)
            os.killpg(worker.pid, signal.SIGKILL)
            raise
    return client, worker, log + client.stderr


@pytest.mark.parametrize(
    ("pool", "setup", "max_tasks"),
    [
        ("prefork", "worker_process_init", 1),
        ("prefork", "import", 3),
        ("threads", "import", 0),
        ("solo", "import", 0),
        ("gevent", "import", 0),  # Celery patches the worker with gevent before it imports the tasks
    ],
)
def test_every_task_run_of_a_celery_worker_is_stored_and_exported(tmp_path, receiver, pool, setup, max_tasks):
    client, worker, log = run_worker(tmp_path, receiver.endpoint, pool, setup, max_tasks, str(N))
    assert client.stdout.strip() == str(list(range(N))), log
    assert worker.returncode == 0, log
    assert stored(tmp_path / "runs.db") == [("worker", "completed")] * N, log
    # Every child has ended, and flushed as it did: nothing is on its way any more.
    assert receiver.span_names().count("invoke_agent worker") == N, log
    assert receiver.span_names().count("execute_tool lookup") == N, log
    assert "dropped" not in log, log
    assert "Traceback" not in log and "failed with" not in log, log  # (a greenlet's error, under gevent)


def test_a_soft_time_limit_inside_a_tool_is_the_runs_timeout_and_is_not_retried(tmp_path, receiver):
    """Celery raises ``SoftTimeLimitExceeded`` into whatever the task is running when its soft time limit
    is reached: here a tool with ``retry=Retry(max_attempts=3)``. It is the worker's deadline for the task,
    not the tool failing: the tool call is cut short (``cancelled``, as a cancellation is) and the run ends
    ``timeout``. Before, the Retry policy caught it and ran the tool again, so the task went on past its
    limit and succeeded (what it never does without agent-otel), and the run read ``completed`` after a
    tool ``error``."""
    client, worker, log = run_worker(
        tmp_path, receiver.endpoint, "prefork", "worker_process_init", 0, "limited"
    )
    assert client.stdout.strip() == "SoftTimeLimitExceeded", log
    assert worker.returncode == 0, log
    assert stored(tmp_path / "runs.db") == [("limited", "timeout")], log
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        (detail,) = conn.execute("SELECT detail FROM agent_runs").fetchone()
    assert detail == "the task's time limit (SoftTimeLimitExceeded)"  # not the run's own max_duration_s
    (run,) = [s for s in receiver.spans if s.name == "invoke_agent limited"]
    assert run.status.message == "", run.status  # a limit, not a failure: status UNSET
    tools = [s for s in receiver.spans if s.name == "execute_tool slow"]
    assert len(tools) == 1, log
    attributes = {a.key: a.value.string_value or a.value.int_value for a in tools[0].attributes}
    assert attributes["agent.tool.status"] == "cancelled", attributes
    assert attributes["agent.tool.attempts"] == 1, attributes


def test_with_celerys_opentelemetry_instrumentation_each_run_links_to_its_task_span(tmp_path, receiver):
    """opentelemetry-instrumentation-celery makes a span per task (``run/tasks.work``); a run is a new
    trace (DESIGN: a run is a root span) whose link is that task span, and the task spans stay as the
    instrumentation makes them: one per task, ended, with their own parents."""
    if importlib.util.find_spec("opentelemetry.instrumentation.celery") is None:
        missing_prerequisite("opentelemetry-instrumentation-celery (the dev extra)", "make install-dev")
    dump = tmp_path / "app-spans.jsonl"
    client, worker, log = run_worker(
        tmp_path, receiver.endpoint, "prefork", "worker_process_init", 0, "3", OTEL_CELERY=str(dump)
    )
    assert client.stdout.strip() == "[0, 1, 2]", log
    assert worker.returncode == 0, log
    assert stored(tmp_path / "runs.db") == [("worker", "completed")] * 3, log
    app_spans = [json.loads(line) for line in dump.read_text().splitlines()]
    tasks = {span_id for name, span_id, _, _ in app_spans if name == "run/tasks.work"}
    assert len(tasks) == 3, app_spans
    runs = [(parent, links) for name, _, parent, links in app_spans if name == "invoke_agent worker"]
    assert len(runs) == 3, app_spans
    assert all(parent is None and len(links) == 1 and links[0] in tasks for parent, links in runs), runs


def start_worker(tmp_path: Path, endpoint: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``celery worker`` (prefork, ``setup()`` in ``worker_process_init``) in a session of its own, and the
    environment of its client: the caller ends the session (see stop_worker)."""
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "client.py").write_text(CLIENT)
    for d in ("broker", "results"):
        (tmp_path / d).mkdir()
    env = script_env(
        tmp_path,
        PYTHONPATH=str(tmp_path),
        BROKER_DIR=str(tmp_path / "broker"),
        RESULTS_DIR=str(tmp_path / "results"),
        STORE=str(tmp_path / "runs.db"),
        ENDPOINT=endpoint,
        SETUP="signal",
        MAX_TASKS="0",
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "--pool",
            "prefork",
            "-c",
            "1",
            "-l",
            "INFO",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return worker, env


def stop_worker(worker: subprocess.Popen[str]) -> str:
    """End the worker's whole session (master and pool children) and return its log. Celery's master at
    times never finishes its own shutdown after a child killed under it (billiard's pool cleanup, with or
    without agent-otel), so the tests judge the store within their window and
    end the worker themselves."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    log, _ = worker.communicate(timeout=30)
    return log


def stored_rows(store: Path, agent: str) -> list[tuple[str | None, str | None]]:
    if not store.exists():
        return []
    with sqlite3.connect(store) as conn:
        try:
            return conn.execute(
                "SELECT stop_reason, detail FROM agent_runs WHERE agent = ?", (agent,)
            ).fetchall()
        except sqlite3.OperationalError:  # no table yet
            return []


def wait_for_row(store: Path, agent: str, done: Callable[[list[Any]], bool], timeout_s: float) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    rows = stored_rows(store, agent)
    while not done(rows) and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = stored_rows(store, agent)
    return rows


def test_a_hard_time_limit_ends_the_run_timeout(tmp_path, receiver):
    """``time_limit``: billiard's master raises TimeLimitExceeded for the task and ends the pool child with
    SIGTERM, then SIGKILL 0.1 s later. The run the limit cut short is the run's ``timeout``, as a soft
    limit's is, with a detail naming the hard limit, and it is stored before the SIGKILL (it read
    ``cancelled``, as if the worker had been stopped: billiard's handler in the child turns the SIGTERM
    into SystemExit, as for a cold shutdown)."""
    worker, env = start_worker(tmp_path, receiver.endpoint)
    try:
        client = subprocess.run(
            [sys.executable, "client.py", "hard_limited"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        rows = wait_for_row(tmp_path / "runs.db", "hard-limited", lambda rows: rows and rows[0][0], 10)
    finally:
        log = stop_worker(worker)
    assert client.stdout.strip() == "TimeLimitExceeded", (client.stdout, client.stderr, log)
    assert rows == [("timeout", "the task's hard time limit (TimeLimitExceeded)")], log
    (run,) = [s for s in receiver.spans if s.name == "invoke_agent hard-limited"]
    assert run.status.message == "", run.status  # a limit, not a failure: status UNSET


def test_a_cold_shutdown_of_the_worker_ends_its_running_task_run_cancelled(tmp_path, receiver):
    """SIGQUIT to the master (Celery's cold shutdown: running tasks are not waited for) terminates the pool
    children with SIGTERM, which billiard's handler there turns into SystemExit: the run of the task that
    was running is ``cancelled`` (not the ``timeout`` of a hard time limit, which ends a child the same
    way), stored and exported, not left ``running`` (``abandoned`` once the worker is gone)."""
    worker, env = start_worker(tmp_path, receiver.endpoint)
    try:
        client = subprocess.run(
            [sys.executable, "client.py", "long"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        running = wait_for_row(tmp_path / "runs.db", "long", lambda rows: bool(rows), 60)
        assert running == [(None, None)], running
        time.sleep(0.5)  # in the tool's sleep
        worker.send_signal(signal.SIGQUIT)
        rows = wait_for_row(tmp_path / "runs.db", "long", lambda rows: rows and rows[0][0], 20)
        # The child exports the run's span as it exits, next to (not before) the store write just seen:
        # wait for it before the test ends the worker's session (which no cold shutdown does to a child).
        deadline = time.monotonic() + 20
        while "invoke_agent long" not in receiver.span_names() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        log = stop_worker(worker)
    assert [reason for reason, _ in rows] == ["cancelled"], (rows, log)
    assert "invoke_agent long" in receiver.span_names(), log
