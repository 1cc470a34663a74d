"""Worker processes: multiprocessing (fork, forkserver, spawn), Pool and ProcessPoolExecutor, for real.

A child of multiprocessing ends with ``os._exit()`` once its target returns (fork and forkserver), so atexit
never runs there: the runs a worker made last, their spans and its metrics were lost (0 of 24 runs stored
for 24 forked Processes, 0 spans). What does run there is multiprocessing's own finalizers.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import script_env
from tests.otlp_receiver import OTLPReceiver, stop_counts

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX processes")


WORKERS = textwrap.dedent(
    """
    import concurrent.futures, hashlib, multiprocessing, os, sys, time
    import agent_otel

    N = 24

    def init():
        # spawn and forkserver workers start without the parent's setup(): an initializer calls it
        # The bound at exit is generous: two dozen processes writing one SQLite store at once on a loaded
        # machine wait for its lock (the README's Reliability section has the figures); not what is tested.
        config = {"exporter.probe_local": False, "exporter.shutdown_timeout_s": float(os.environ["BOUND"])}
        agent_otel.setup("workers", endpoint=os.environ["ENDPOINT"], store=os.environ["STORE"],
                         instrument=False, config=config)

    @agent_otel.tool(name="lookup")
    def lookup(i):
        return i * 2

    def work(i):
        with agent_otel.run("worker", input={"i": i}):
            lookup(i)
        return i

    def work_in_c(i):
        work(i)
        with agent_otel.run("in-c"):
            # ~20 s in C on the development machine (the GIL released): Python's handler cannot run meanwhile
            hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 60_000_000)

    if __name__ == "__main__":
        method, kind = sys.argv[1], sys.argv[2]
        ctx = multiprocessing.get_context(method)
        initializer = None if method == "fork" else init
        if method == "fork":
            init()  # in the parent, before the workers are forked
        if kind == "process":
            procs = [ctx.Process(target=work, args=(i,)) for i in range(N)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(60)
            assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        elif kind == "pool":  # workers that end by themselves: close() and join(), each after 3 tasks
            pool = ctx.Pool(3, initializer=initializer, maxtasksperchild=3)
            assert sorted(pool.map(work, range(N), chunksize=1)) == list(range(N))
            pool.close()
            pool.join()
        elif kind == "pool-with":  # leaving the with block terminates the workers: SIGTERM
            with ctx.Pool(3, initializer=initializer) as pool:
                assert sorted(pool.map(work, range(N), chunksize=1)) == list(range(N))
        elif kind == "terminate-busy":  # workers busy in C code when the pool is terminated
            pool = ctx.Pool(2, initializer=initializer)
            pool.map_async(work_in_c, range(2), chunksize=1)
            time.sleep(1.0)
            start = time.monotonic()
            pool.terminate()
            pool.join()
            print(f"terminated in {time.monotonic() - start:.1f} s", flush=True)
        elif kind == "executor":
            with concurrent.futures.ProcessPoolExecutor(3, mp_context=ctx, initializer=initializer) as ex:
                assert sorted(ex.map(work, range(N))) == list(range(N))
        print("done", flush=True)
    """
)


def run_workers(
    tmp_path: Path, endpoint: str, method: str, kind: str, bound_s: float = 10
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "workers.py"
    script.write_text(WORKERS)
    env = script_env(tmp_path, STORE=str(tmp_path / "runs.db"), ENDPOINT=endpoint, BOUND=str(bound_s))
    return subprocess.run(
        [sys.executable, str(script), method, kind],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def stored_runs(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as conn:
        try:
            (n,) = conn.execute(
                "SELECT count(*) FROM agent_runs WHERE agent = 'worker' AND stop_reason = 'completed'"
            ).fetchone()
        except sqlite3.OperationalError:  # no table: no worker ever wrote to the store
            return 0
    return n


def test_a_pool_terminates_workers_busy_in_c_code_at_once(tmp_path, receiver):
    """A forked worker inherits agent-otel's SIGTERM handler, which Python runs only between bytecodes: a
    worker busy in C code went on until its computation ended (~20 s here; before setup(), SIGTERM ended
    it at once). It now has a watcher thread of its own, as its parent does (see agent_otel.sigterm)."""
    proc = run_workers(tmp_path, receiver.endpoint, "fork", "terminate-busy", bound_s=1)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
    seconds = float(proc.stdout.split("terminated in ")[1].split(" s")[0])
    assert seconds < 8, proc.stdout  # the shutdown bound (1 s) and the watcher's grace, not the computation
    assert stored_runs(tmp_path / "runs.db") == 2, proc.stderr  # each worker's run before it


@pytest.fixture
def receiver():
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("fork", "process"),
        ("fork", "pool"),
        ("fork", "pool-with"),
        ("fork", "executor"),
        ("forkserver", "pool"),
        ("spawn", "executor"),
    ],
)
def test_every_run_of_a_multiprocessing_worker_is_stored_and_exported(tmp_path, receiver, method, kind):
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    proc = run_workers(tmp_path, receiver.endpoint, method, kind)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
    assert stored_runs(tmp_path / "runs.db") == 24, proc.stderr
    # Every worker has ended, and flushed as it did: nothing is on its way any more.
    assert receiver.span_names().count("invoke_agent worker") == 24
    assert receiver.span_names().count("execute_tool lookup") == 24
    # Each worker is a series of its own (its service.instance.id), whose last value counts its runs:
    # what Prometheus adds up.
    assert sum(stop_counts(receiver).values()) == 24
    assert "dropped" not in proc.stderr, proc.stderr
