"""Celery workers, for real: a worker process (``celery worker``) and a broker that needs no server (kombu's
``filesystem://`` transport, results in files), with agent-otel set up as users do it: in
``worker_process_init`` (each pool child) or at import in the master, before the pool forks.

A prefork child that ``worker_max_tasks_per_child`` recycles ends in billiard's ``Worker._do_exit()`` with
``os._exit()``: neither atexit nor multiprocessing's finalizers run there. What does run is Celery's
``worker_process_shutdown`` signal. Before agent-otel flushed there, 2 of 12 runs were stored with one
task per child, 7 of 12 with three.
"""

from __future__ import annotations

import importlib.util
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

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
    import os
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
    """
)

CLIENT = textwrap.dedent(
    """
    import sys, tasks
    results = [tasks.work.delay(i) for i in range(int(sys.argv[1]))]
    print(sorted(r.get(timeout=120) for r in results), flush=True)
    """
)


def stored(store: Path) -> list[tuple[str, str]]:
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


@pytest.mark.parametrize(
    ("pool", "setup", "max_tasks"),
    [
        ("prefork", "worker_process_init", 1),
        ("prefork", "import", 3),
        ("threads", "import", 0),
    ],
)
def test_every_task_run_of_a_celery_worker_is_stored_and_exported(tmp_path, receiver, pool, setup, max_tasks):
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
        ENDPOINT=receiver.endpoint,
        SETUP="import" if setup == "import" else "signal",
        MAX_TASKS=str(max_tasks),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", pool, "-c", "2", "-l", "WARNING"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, "client.py", str(N)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )
    finally:
        worker.send_signal(signal.SIGTERM)  # Celery's warm shutdown: running tasks finish, children end
        log, _ = worker.communicate(timeout=60)
    assert client.stdout.strip() == str(list(range(N))), client.stderr + log
    assert worker.returncode == 0, log
    assert stored(tmp_path / "runs.db") == [("worker", "completed")] * N, log
    # Every child has ended, and flushed as it did: nothing is on its way any more.
    assert receiver.span_names().count("invoke_agent worker") == N, log
    assert receiver.span_names().count("execute_tool lookup") == N, log
    assert "dropped" not in log, log

