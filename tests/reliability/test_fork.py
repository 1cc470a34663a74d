"""A forked worker (multiprocessing with fork, a pre-fork server) of a process that called ``setup()``.

Real forks of a real process exporting to a receiver on 127.0.0.1 over gRPC and HTTP: the parent and each
child export their own spans, once; each counts its own drops; a fork waits (bounded) for the sends in
flight and no child hangs, whatever ``GRPC_ENABLE_FORK_SUPPORT`` says.

The child inherits the parent's file descriptors and threads' state, not the threads. Whatever agent-otel
closes in the child, it must never write to again: the descriptor number is soon another file's, such as
the run store the child opens (a byte written at its offset 0 makes SQLite answer "file is not a database"
to every process sharing the store).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import grpc
import pytest

from tests.otlp_receiver import HTTPReceiver, OTLPReceiver
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


# --- export across a fork: the parent and each child send their own spans, once, and no child hangs ------

# setup() in the parent, then forked children (os.fork, as gunicorn, Celery's prefork pool and
# multiprocessing's fork start method do) that make runs of their own. Each process prints what it
# counted as dropped; the parent times each fork and each child's life.
_FORKING = """
import json, os, sys, time
import agent_otel
from agent_otel import sdk

endpoint, protocol, children, parent_flush = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
in_flight = sys.argv[5]  # a file the receiver creates when the parent's spans reach it ("": no wait)
agent_otel.setup("fork", endpoint=endpoint, store=False, instrument=False,
                 config={"exporter": {"protocol": protocol, "probe_local": False, "shutdown_timeout_s": 5}})
installation = sdk.installation()

def runs(agent, n):
    for _ in range(n):
        with agent_otel.run(agent) as run:
            run.call_tool("search", lambda q: [q], {"q": "x"})

def drops():
    return {f"{s}/{r}": n for (s, r), n in sdk._all_drops(installation).items()}

def say(*parts):
    # One write per line: the children and the parent write to one pipe at once, and print() writes each
    # part on its own when stdout is unbuffered (PYTHONUNBUFFERED, as in CI): "CHILDCHILD  10  {}{}".
    os.write(1, (" ".join(map(str, parts)) + "\\n").encode())

runs("doomed", 1)  # the receiver rejects it: a drop of the parent's
assert sdk.flush(10)
runs("parent", 3)
sdk.flush(parent_flush)  # 0: the parent's spans are queued at the fork; short: their send is in flight
deadline = time.monotonic() + 10
while in_flight and not os.path.exists(in_flight) and time.monotonic() < deadline:
    time.sleep(0.005)  # (a busy machine may start the send after flush's short wait has ended)
workers = []
for k in range(children):
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        runs(f"child{k}", 2)
        agent_otel.shutdown()
        say("CHILD", k, json.dumps(drops()))
        os._exit(0)
    say("FORK", k, time.monotonic() - started)
    workers.append((pid, time.monotonic()))
for k, (pid, started) in enumerate(workers):
    status = os.waitpid(pid, 0)[1]
    say("EXIT", k, os.waitstatus_to_exitcode(status), time.monotonic() - started)
runs("parent-after", 1)
agent_otel.shutdown()
say("PARENT", json.dumps(drops()))
"""


class _Slow:
    """The receiver's answer: rejects the "doomed" agent's spans, takes ``delay_s`` over the parent's."""

    def __init__(self, rejected: Any, delay_s: float = 0.0) -> None:
        self.rejected = rejected
        self.delay_s = delay_s
        self.in_flight = ""  # a file created as the parent's spans arrive: the script forks after it

    def __call__(self, spans: list[Any]) -> Any:
        names = {s.name for s in spans}
        if "invoke_agent doomed" in names:
            return self.rejected
        if "invoke_agent parent" in names:
            if self.in_flight:
                open(self.in_flight, "w").close()
            time.sleep(self.delay_s)
        return None


def _receiver(protocol: str, delay_s: float = 0.0) -> Any:
    if protocol == "grpc":
        slow = _Slow(grpc.StatusCode.INVALID_ARGUMENT, delay_s)
        receiver: Any = OTLPReceiver(answer=slow).start()
    else:
        slow = _Slow(400, delay_s)
        receiver = HTTPReceiver(answer=slow)
    receiver.slow = slow
    return receiver


def _fork(protocol: str, receiver: Any, tmp_path: Any, *, parent_flush: float = 0.0, **env: str) -> Any:
    """Run _FORKING with two children against ``receiver``; its output, parsed."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "GRPC_"))}
    full.update(AGENT_OTEL_HOME=str(tmp_path), **env)
    in_flight = ""
    if parent_flush:  # the fork must happen while the parent's send is in flight: wait until it is
        in_flight = receiver.slow.in_flight = str(tmp_path / "in-flight")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _FORKING, receiver.endpoint, protocol, "2", str(parent_flush), in_flight],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out: dict[str, Any] = {"proc": proc, "seconds": time.monotonic() - started, "fork": {}, "exit": {}}
    out["child"] = {}
    for line in proc.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "FORK":
            k, seconds = rest.split()
            out["fork"][int(k)] = float(seconds)
        elif kind == "EXIT":
            k, code, seconds = rest.split()
            out["exit"][int(k)] = (int(code), float(seconds))
        elif kind == "CHILD":
            k, counts = rest.split(" ", 1)
            out["child"][int(k)] = json.loads(counts)
        elif kind == "PARENT":
            out["parent"] = json.loads(rest)
    assert proc.returncode == 0 and "parent" in out, (proc.stdout, proc.stderr)
    # Every child reports what it counted and how it ended; the whole output when one did not (a child
    # that exits 0 without its report is a defect of its own, not "nothing dropped").
    assert set(out["exit"]) == set(out["child"]) == {0, 1}, (proc.stdout, proc.stderr)
    return out


def _arrived(receiver: Any) -> Counter[str]:
    """Run spans the receiver took, by agent (a span sent twice counts twice)."""
    time.sleep(0.2)  # (the receiver's handler threads)
    runs = [s.name.removeprefix("invoke_agent ") for s in receiver.spans if s.name.startswith("invoke_")]
    return Counter(runs)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_parent_and_its_forked_children_each_export_their_own_spans_once(tmp_path, protocol):
    """The parent's spans still queued at the fork are the parent's to send: a child that sent them too
    delivered them twice. The child's drop counts start at zero: the parent's one rejected span was
    reported again by every worker (in its metric and its exit summary)."""
    receiver = _receiver(protocol)
    try:
        out = _fork(protocol, receiver, tmp_path)
        arrived = _arrived(receiver)
    finally:
        receiver.stop()
    stderr = out["proc"].stderr
    assert arrived == {"parent": 3, "child0": 2, "child1": 2, "parent-after": 1}, (arrived, stderr)
    assert out["parent"] == {"spans/rejected": 2}, out["parent"]  # the doomed run's two spans
    assert out["child"] == {0: {}, 1: {}}, (out["child"], out["proc"].stderr)
    assert {code for code, _ in out["exit"].values()} == {0}, out["exit"]
    # The parent's threads were idle: no fork waited.
    assert max(out["fork"].values()) < 0.5, out["fork"]


_BLOCKED = "spans and metrics of this process are not sent"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_fork_waits_for_the_send_in_flight_and_the_child_exports_on_its_own_connection(tmp_path, protocol):
    """A fork while the parent's spans are on their way (the collector answers in 0.5 s) waits for the
    send to finish: a child forked mid-call got a copy of gRPC's state with the call in it (gRPC logs
    "Other threads are currently calling into gRPC, skipping fork() handlers") and spent 10 s in its
    shutdown, its metrics unsent."""
    receiver = _receiver(protocol, delay_s=0.5)
    try:
        out = _fork(protocol, receiver, tmp_path, parent_flush=0.1)
        arrived = _arrived(receiver)
    finally:
        receiver.stop()
    stderr = out["proc"].stderr
    assert 0.2 < out["fork"][0] < 1.2, (out["fork"], stderr)  # it waited for the send, within the bound
    assert arrived == {"parent": 3, "child0": 2, "child1": 2, "parent-after": 1}, (arrived, stderr)
    assert out["child"] == {0: {}, 1: {}}, (out["child"], stderr)
    assert all(code == 0 and seconds < 5 for code, seconds in out["exit"].values()), (out["exit"], stderr)
    assert "skipping fork() handlers" not in stderr and _BLOCKED not in stderr, stderr


@pytest.mark.parametrize(
    ("protocol", "fork_support"), [("grpc", None), ("grpc", "1"), ("http/protobuf", None)]
)
def test_a_fork_during_a_send_slower_than_the_bound_hangs_no_child(tmp_path, protocol, fork_support):
    """The collector takes 3 s over the parent's spans: the fork waits 1 s, no more. Over HTTP the send
    goes on in the parent and the child sends on pools of its own. A gRPC call still in flight is ended
    (CANCELLED) and its batch sent again after the fork: forked mid-call, a child got gRPC's state with
    the call in it and spent 10 s in its shutdown (GRPC_ENABLE_FORK_SUPPORT unset), or hung for good in
    gRPC's own fork handler (GRPC_ENABLE_FORK_SUPPORT=1)."""
    receiver = _receiver(protocol, delay_s=3.0)
    env = {"GRPC_ENABLE_FORK_SUPPORT": fork_support} if fork_support else {}
    try:
        out = _fork(protocol, receiver, tmp_path, parent_flush=0.1, **env)
        arrived = _arrived(receiver)
    finally:
        receiver.stop()
    stderr = out["proc"].stderr
    assert 0.9 < out["fork"][0] < 2.0, (out["fork"], stderr)
    assert all(code == 0 and seconds < 5 for code, seconds in out["exit"].values()), (out["exit"], stderr)
    assert out["child"] == {0: {}, 1: {}}, (out["child"], stderr)
    assert _BLOCKED not in stderr and "export is failing" not in stderr, stderr
    parent = arrived.pop("parent")
    assert arrived == {"child0": 2, "child1": 2, "parent-after": 1}, (arrived, stderr)
    if protocol == "grpc":
        # The cancelled request had reached the receiver, which took it: sent again, it arrives twice
        # (OTLP is at-least-once when a reply is lost). Nothing else is sent twice.
        assert parent in (3, 6), (parent, stderr)
    else:
        assert parent == 3, stderr
    assert out["parent"] == {"spans/rejected": 2}, (out["parent"], stderr)


def test_with_grpcs_fork_support_off_a_child_sends_nothing_over_grpc_and_counts_it(tmp_path):
    """GRPC_ENABLE_FORK_SUPPORT=0: gRPC's state in a child is the parent's, without its threads. A child
    that exported through it waited out the call's 10 s timeout and was killed by SIGABRT inside gRPC,
    and the parent's own exports timed out from then on (its last spans never arrived). Now the child
    makes no gRPC call at all: its spans and metric batches are counted as rejected, with one warning."""
    receiver = _receiver("grpc")
    try:
        out = _fork("grpc", receiver, tmp_path, GRPC_ENABLE_FORK_SUPPORT="0")
        arrived = _arrived(receiver)
    finally:
        receiver.stop()
    stderr = out["proc"].stderr
    assert all(code == 0 and seconds < 5 for code, seconds in out["exit"].values()), (out["exit"], stderr)
    assert arrived == {"parent": 3, "parent-after": 1}, (arrived, stderr)
    for counts in out["child"].values():
        assert counts["spans/rejected"] == 4, (out["child"], stderr)
        assert counts["metric_batches/rejected"] >= 1, (out["child"], stderr)
        assert set(counts) == {"spans/rejected", "metric_batches/rejected"}, out["child"]
    assert stderr.count(_BLOCKED) == 2 and "GRPC_ENABLE_FORK_SUPPORT=0" in stderr, stderr
    assert out["parent"] == {"spans/rejected": 2}, (out["parent"], stderr)


_BUSY_PARENT = """
import os, sys, threading, time
import agent_otel

endpoint, protocol, children = sys.argv[1], sys.argv[2], int(sys.argv[3])
agent_otel.setup("fork", endpoint=endpoint, store=False, instrument=False,
                 config={"exporter": {"protocol": protocol, "probe_local": False, "shutdown_timeout_s": 5,
                                      "schedule_delay_s": 0.05, "metric_interval_s": 1}})

def runs(agent, n):
    for _ in range(n):
        with agent_otel.run(agent) as run:
            run.call_tool("search", lambda q: [q], {"q": "x"})

stop = threading.Event()

def busy():  # the parent records and exports all along, as a busy parent's other threads do
    while not stop.is_set():
        runs("parent", 5)
        time.sleep(0.001)

threading.Thread(target=busy, daemon=True).start()
time.sleep(0.5)
for k in range(children):
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        runs(f"child{k}", 2)
        agent_otel.shutdown()
        os._exit(0)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print("CHILD", k, code, time.monotonic() - started, flush=True)
stop.set()
agent_otel.shutdown()
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_children_forked_while_the_parent_records_and_exports_each_export_their_own_spans(tmp_path, protocol):
    """Forks while another thread of the parent makes runs and its spans and metrics go out every 50 ms.
    Over gRPC, 14 of 20 such children exported none of their spans (a gRPC call of the parent's was in
    flight at the fork) and took up to 5 s to exit."""
    receiver = OTLPReceiver().start() if protocol == "grpc" else HTTPReceiver(keep_alive=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "GRPC_"))}
    env["AGENT_OTEL_HOME"] = str(tmp_path)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _BUSY_PARENT, receiver.endpoint, protocol, "12"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        arrived = _arrived(receiver)
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    children = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("CHILD ")]
    assert len(children) == 12, proc.stdout
    failed = [
        (k, code, arrived[f"child{k}"]) for k, code, _ in children if code != "0" or arrived[f"child{k}"] != 2
    ]
    assert failed == [], (failed, proc.stderr)
    assert max(float(seconds) for _, _, seconds in children) < 5, (children, proc.stderr)
    assert arrived["parent"] > 0


_SET_UP_AGAIN = """
import os, sys
import agent_otel
from agent_otel import sdk

def setup():
    agent_otel.setup("fork", endpoint=sys.argv[1], store=False, instrument=False,
                     config={"exporter": {"protocol": "grpc", "probe_local": False}})

def runs(agent, n):
    for _ in range(n):
        with agent_otel.run(agent) as run:
            run.call_tool("search", lambda q: [q], {"q": "x"})

setup()
runs("first", 1)
agent_otel.shutdown()  # its exporters stay alive (referenced) but shut down
setup()
runs("parent", 1)
assert sdk.flush(10)
pid = os.fork()
if pid == 0:
    runs("child", 2)
    agent_otel.shutdown()
    os._exit(0)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
agent_otel.shutdown()
"""


def test_exporters_shut_down_before_a_new_setup_do_not_keep_a_child_from_grpc(tmp_path):
    """setup(), shutdown(), setup() again, then a fork: the first installation's exporters, shut down,
    send nothing and hold no call, so the child exports over gRPC like any other."""
    receiver = OTLPReceiver().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "GRPC_"))}
    env["AGENT_OTEL_HOME"] = str(tmp_path)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _SET_UP_AGAIN, receiver.endpoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        arrived = _arrived(receiver)
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    assert arrived == {"first": 1, "parent": 1, "child": 2}, (arrived, proc.stderr)
    assert _BLOCKED not in proc.stderr, proc.stderr


_TWO_THREADS = """
import json, os, sqlite3, sys, threading, time
# Imported before agent-otel, as most applications do: its own fork hook (a lock, taken without a
# timeout) runs after agent-otel's, so the second fork's hooks wait for agent-otel's locks first.
from concurrent.futures import ThreadPoolExecutor

def held():  # the application's own fork hook, registered first so that it runs after agent-otel's
    if threading.current_thread().name == "slow-fork":
        time.sleep(5)  # a slow fork: a big process, a hook of its own that waits for something

os.register_at_fork(before=held)
import agent_otel
from agent_otel import sdk

endpoint, protocol, events, store = sys.argv[1:5]
exporter = {"probe_local": False, "schedule_delay_s": 0.05, "metric_interval_s": 0.5}
agent_otel.setup("svc", endpoint=endpoint, protocol=protocol, store=store, events=events, instrument=False,
                 config={"exporter": exporter})

def runs(name, n):
    for _ in range(n):
        with agent_otel.run(name) as run:
            run.call_tool("lookup", lambda: 1)

runs("before", 2)
assert sdk.flush(10)
took = {}

def fork():
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    took[threading.current_thread().name] = time.monotonic() - started

slow = threading.Thread(target=fork, name="slow-fork")
other = threading.Thread(target=fork, name="fork")
slow.start()
time.sleep(0.2)
other.start()
slow.join()
other.join()
runs("after", 3)
flushed = sdk.flush(10)
time.sleep(1.5)  # two metric intervals
agent_otel.shutdown()
with open(events) as fh:
    lines = [json.loads(line) for line in fh]
db = sqlite3.connect(store)
stored = db.execute("SELECT agent, count(*) FROM agent_runs GROUP BY agent ORDER BY agent").fetchall()
print(json.dumps({"took": took, "flushed": flushed, "stored": stored,
                  "event_lines_after": sum(1 for e in lines if e.get("agent") == "after")}))
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_two_threads_forking_at_once_leave_every_export_and_sink_working(tmp_path, protocol):
    """Two threads fork 0.2 s apart, and the first one's fork is slow (5 s in the application's own
    fork hook, which runs after agent-otel's). The second fork's hooks waited for the locks the first had
    taken, gave up after 1 s, and wrote "not taken" over the first fork's "taken": the first fork then
    never gave its locks back. Nothing of the process was exported again (spans, metrics), and the
    JSON-lines sink's lock held the event pipeline's thread for good (no event line, no store row)."""
    receiver = _receiver(protocol)
    try:
        proc = run_python(
            _TWO_THREADS,
            receiver.endpoint,
            protocol,
            str(tmp_path / "events.jsonl"),
            str(tmp_path / "runs.db"),
            env={"AGENT_OTEL_HOME": str(tmp_path), "AGENT_OTEL_PROBE_LOCAL": "false"},
            timeout=120,
        )
        arrived = _arrived(receiver)
        metric_batches = list(receiver.metric_batches)
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["took"]["slow-fork"] >= 5 and out["took"]["fork"] < 10, out
    assert arrived == {"before": 2, "after": 3}, (arrived, proc.stderr[-3000:])
    assert out["flushed"] is True, (out, proc.stderr[-3000:])
    assert out["stored"] == [["after", 3], ["before", 2]], (out, proc.stderr[-3000:])
    assert out["event_lines_after"] == 6, out  # each run's tool call and stop
    agents = {
        a.value.string_value
        for batch in metric_batches
        for rm in batch.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "agent.stop"
        for point in metric.sum.data_points
        for a in point.attributes
        if a.key == "agent"
    }
    assert "after" in agents, proc.stderr[-3000:]
