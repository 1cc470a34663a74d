"""A forked worker (multiprocessing with fork, a pre-fork server) of a process that called ``setup()``.

The child inherits the parent's file descriptors and threads' state, not the threads. Whatever agent-otel
closes in the child, it must never write to again: the descriptor number is soon another file's, such as
the run store the child opens (a byte written at its offset 0 makes SQLite answer "file is not a database"
to every process sharing the store).
"""

from __future__ import annotations

import sqlite3

from tests.store.conftest import run_python

FORKED_WORKER = """
import multiprocessing as mp, os, sys, tempfile
import agent_otel

store, files = sys.argv[1], sys.argv[2]

def one(tag):
    with agent_otel.run("forked", input={"tag": tag}):
        search(tag)

@agent_otel.tool(name="search")
def search(q):
    return q

def worker():
    # Files opened first get the lowest free descriptor numbers: those agent-otel closed after the fork.
    handles = []
    for i in range(64):
        path = os.path.join(files, f"file-{i}")
        with open(path, "w") as fh:
            fh.write("SENTINEL")
        handles.append(os.open(path, os.O_RDWR))
    one("child")
    agent_otel.shutdown(5)  # and again at exit
    agent_otel.shutdown(5)

if __name__ == "__main__":
    agent_otel.setup("fork", store=store, instrument=False, config={"exporter.probe_local": False})
    for _ in range(3):
        for i in range(20):  # the parent's pipeline is busy writing when it forks
            one("parent")
        p = mp.get_context("fork").Process(target=worker)
        p.start()
        p.join(60)
        assert p.exitcode == 0, p.exitcode
    one("parent-after")
    agent_otel.shutdown(5)
    print("done")
"""


def test_a_forked_worker_writes_to_no_file_descriptor_it_did_not_open_and_the_store_stays_sound(tmp_path):
    store = tmp_path / "agent-otel.db"
    files = tmp_path / "files"
    files.mkdir()
    proc = run_python(FORKED_WORKER, str(store), str(files), timeout=120)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
    changed = {p.name: p.read_bytes() for p in files.iterdir() if p.read_bytes() != b"SENTINEL"}
    assert changed == {}
    assert store.read_bytes()[:16] == b"SQLite format 3\x00"
    conn = sqlite3.connect(store)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM agent_runs WHERE status = 'success'").fetchone() == (64,)
    finally:
        conn.close()
    assert "run store" not in proc.stderr, proc.stderr
