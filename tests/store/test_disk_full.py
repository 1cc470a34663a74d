"""A full disk is a passing state, not a broken store.

The disk under a SQLite store fills up (logs, a core dump, a quota reached) and is freed again (log
rotation, `agent-otel gc`, an operator). The agent must run on throughout, and once there is room the
store takes writes again, with the records that waited: a long-lived agent must not stay without a store
until it is restarted. The disk is filled for real, for this process only, by a file-size limit
(``RLIMIT_FSIZE``: SQLite then gets EFBIG, as with a disk quota; Python ignores SIGXFSZ) that the process
lifts again itself.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from tests.store.conftest import run_python
from tests.store.test_store import rows

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics are Linux's")

AGENT_ON_A_FILLING_DISK = textwrap.dedent(
    """
    import logging, resource, sys, time
    import agent_otel
    from agent_otel import sdk

    messages = []
    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())
    logging.getLogger("agent_otel").addHandler(Keep())
    logging.getLogger("agent_otel").setLevel(logging.INFO)

    def wait_for(text):
        deadline = time.monotonic() + 30
        while not any(text in m for m in messages):
            assert time.monotonic() < deadline, (text, messages)
            time.sleep(0.05)

    agent_otel.setup("full", store=sys.argv[1], instrument=False, config={"exporter.probe_local": False})

    @agent_otel.tool(name="search")
    def search(q):
        return {"q": q, "hits": ["x" * 500] * 4}

    def runs(first, count):
        for i in range(first, first + count):
            with agent_otel.run("disk-agent", input={"i": i}):
                search(str(i))
                search(str(i) + "b")

    runs(0, 1)
    assert sdk.flush(10)
    # The disk is full: no write may grow a file beyond its first page.
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    runs(1, 20)
    sdk.flush(10)
    wait_for("run store")
    print("while full:", [m for m in messages if "run store" in m])
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    runs(21, 10)
    sdk.flush(10)
    wait_for("accepts writes again")
    agent_otel.shutdown(10)
    print("agent done")
    """
)


def test_a_store_on_a_disk_that_fills_up_and_is_freed_again_stores_every_run(tmp_path):
    path = str(tmp_path / "agent-otel.db")
    proc = run_python(AGENT_ON_A_FILLING_DISK, path, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "agent done" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "cannot take writes right now" in proc.stdout  # the one warning while the disk is full
    stored = rows(path, "SELECT status, count(*) FROM agent_runs GROUP BY status")
    assert [tuple(r) for r in stored] == [("success", 31)]  # the runs that waited for room, and the rest
    events = rows(path, "SELECT count(*) FROM agent_events WHERE kind = 'tool_result'")
    assert events[0][0] == 62
