"""Servers with worker processes, for real: gunicorn's master and sync workers, uvicorn ``--workers``; an
agent run per request, stopped as deployments stop them (SIGTERM to the master, SIGHUP to reload).

With ``--preload`` the application module, and so ``setup()``, runs in gunicorn's master before gunicorn
installs its own signal handlers; the workers are forked from it. Without it each worker imports the
application after the fork. uvicorn's workers are spawned, and import the application inside
``Server.serve()``, after uvicorn installed its handlers: at the end uvicorn puts back the handler it found
(Python's default) and raises SIGTERM again, which ends the worker without atexit.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request

import psutil
import pytest

from tests.helpers import script_env
from tests.otlp_receiver import OTLPReceiver, free_port, stop_counts

REQUESTS = 30

APP = textwrap.dedent(
    """
    import os
    import agent_otel

    agent_otel.setup("web", endpoint=os.environ["ENDPOINT"], store=os.environ["STORE"], instrument=False,
                     config={"exporter.probe_local": False})

    def app(environ, start_response):
        with agent_otel.run("web") as run:
            run.call_tool("lookup", lambda x: x, {"x": 1})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    """
)


ASGI_APP = textwrap.dedent(
    """
    import os
    import agent_otel

    agent_otel.setup("web", endpoint=os.environ["ENDPOINT"], store=os.environ["STORE"], instrument=False,
                     config={"exporter.probe_local": False})

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        async with agent_otel.run("web") as run:
            run.call_tool("lookup", lambda x: x, {"x": 1})
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    """
)


def get(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return response.read()


@pytest.mark.parametrize(
    ("server", "stop"),
    [("gunicorn --preload", "TERM"), ("gunicorn", "HUP"), ("uvicorn", "TERM")],
    ids=["gunicorn-preload-sigterm", "gunicorn-reload-then-sigterm", "uvicorn-workers-sigterm"],
)
def test_server_workers_keep_every_run_and_the_master_exits_as_it_would(tmp_path, server, stop):
    """gunicorn --preload: the watcher agent-otel started in the master still acted on SIGTERM after
    gunicorn had replaced the handler, and ended the master by SIGTERM in the middle of its graceful stop
    (-15). uvicorn --workers: each worker ended by SIGTERM with the default disposition, without atexit
    (2 to 5 of 30 runs stored, 0 of 60 spans, 1 of 30 runs counted in agent_stop_total)."""
    pytest.importorskip(
        server.split()[0], reason=f"{server.split()[0]} is in the dev extra: make install-dev"
    )
    (tmp_path / "app.py").write_text(ASGI_APP if server == "uvicorn" else APP)
    store = tmp_path / "runs.db"
    receiver = OTLPReceiver().start()
    port = free_port()
    env = script_env(tmp_path, STORE=str(store), ENDPOINT=receiver.endpoint, PYTHONPATH=str(tmp_path))
    if server == "uvicorn":
        args = [sys.executable, "-m", "uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    else:
        args = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--no-control-socket"]
        args += server.split()[1:]
    master = subprocess.Popen(
        [*args, "app:app"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert get(port) == b"ok"
                break
            except OSError:
                assert master.poll() is None and time.monotonic() < deadline, master.stderr.read()
                time.sleep(0.1)
        for _ in range(REQUESTS - 1):
            assert get(port) == b"ok"
        if stop == "HUP":  # new workers; gunicorn stops the old ones by SIGTERM
            old = {w.pid for w in psutil.Process(master.pid).children()}
            master.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                workers = {w.pid for w in psutil.Process(master.pid).children()}
                if len(workers) == 2 and not workers & old and not any(psutil.pid_exists(p) for p in old):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"no reload: {old} -> {workers}")
        master.send_signal(signal.SIGTERM)
        rc = master.wait(60)
    finally:
        if master.poll() is None:
            master.kill()
        receiver.stop()
    stderr = master.stderr.read()
    assert rc == 0, stderr  # gunicorn's own graceful exit
    with sqlite3.connect(store) as conn:
        (n,) = conn.execute("SELECT count(*) FROM agent_runs WHERE stop_reason = 'completed'").fetchone()
    assert n == REQUESTS, stderr
    assert receiver.span_names().count("invoke_agent web") == REQUESTS
    assert sum(stop_counts(receiver).values()) == REQUESTS  # what Prometheus adds up over the workers
    assert "dropped" not in stderr, stderr
