"""Reliability drill: what an outage costs, whether drops add up, and what survives SIGTERM and SIGKILL.

Four drills, each in fresh subprocesses (so RSS and exit status are the process's own):

* ``outage``: the collector refuses (nothing listens on the OTLP port) while an agent makes ``--calls``
  tool calls (~300-byte arguments, runs of 100) with the default SQLite store. Reported: RSS growth
  (peak during the calls minus the level after a warm-up) against the configured budgets (span retry
  buffer + event queue), the worst agent-thread stall (the slowest tool call, wall clock, and the longest
  garbage-collector pause, wall and CPU), and spans and event records produced, delivered and dropped by
  reason: delivered + dropped must equal produced.
* ``reference``: the outage's loop again with the collector up (a receiver in this process takes every
  span), and with agent-otel imported but not set up (the tool called directly): the stalls without an
  outage, and what a full collection of the process's own heap costs. ``--gc-freeze`` makes both drills
  call ``gc.freeze()`` after the warm-up, as an application may (agent-otel never does): what is left is
  what agent-otel's records and spans cost the collector.
* ``accounting``: a real OTLP/gRPC receiver on 127.0.0.1 that goes away and comes back, rejects every
  batch holding a ``poison`` tool span (INVALID_ARGUMENT) and refuses requests over 1 MiB (as a
  collector configured with ``max_recv_msg_size_mib: 1`` does). Distinct spans received + spans counted
  as dropped must equal spans produced, exactly; a batch the receiver took just before it was stopped
  (its reply lost) is sent again and arrives twice, as OTLP's at-least-once delivery allows: reported
  apart, not counted twice.
* ``exit``: 20 quick runs, then SIGTERM (what ``docker stop`` sends; Python's default handler runs no
  atexit), or SIGKILL 0, 50, 100, 150 ms later. Reported: runs in the store, spans at the receiver, exit
  status, time from the signal to the exit.

Wall-clock figures (stalls, exit times) depend on the machine's load: run it on a quiet machine and quote
the load next to them. ``--calls`` scales the outage; ``--json`` prints machine-readable results.

Run: ``python benchmarks/reliability.py`` (``--calls 200000``, the issue's figure, is the default).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from array import array
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/otlp_receiver.py: a real OTLP receiver on 127.0.0.1

MB = 1 << 20  # sizes are reported in MiB, as the budgets (retry_buffer_mb, queue_mb) are configured
ALLOWANCE_MIB = 20e6 / MB  # the "+ 20 MB" on top of the budgets


# --- inside a child process ---------------------------------------------------------------------------------


class _SummaryCatcher(logging.Handler):
    """Keeps the exit summary line, and any other warning about lost records, so a drill whose sums do
    not add up says why (a sink that failed names itself and its exception)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.other: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("agent-otel: dropped"):
            self.lines.append(message)
        elif "failed" in message or "cannot" in message:
            self.other.append(message)


def _count_emits(pipeline: Any) -> dict[str, int]:
    """Count every record handed to the pipeline, independently of the pipeline's own counters."""
    produced: dict[str, int] = {}
    emit = pipeline.emit

    def counting(rtype: str, payload: dict[str, Any], *more: Any) -> None:  # more: further (type, payload)s
        for name in (rtype, *more[::2]):
            produced[name] = produced.get(name, 0) + 1
        emit(rtype, payload, *more)

    pipeline.emit = counting
    return produced


def _count_spans(provider: Any) -> list[int]:
    """Count every sampled span that ends, next to agent-otel's processor."""
    from opentelemetry.sdk.trace import SpanProcessor

    ended = [0]

    class Counter(SpanProcessor):
        def on_end(self, span: Any) -> None:
            ended[0] += 1

    provider.add_span_processor(Counter())
    return ended


def child_outage(opts: argparse.Namespace) -> dict[str, Any]:
    """The outage (``--mode outage``), or one of its references: the same loop with the collector up
    (``up``: a receiver in the parent takes every span) or with agent-otel imported but not set up
    (``off``: the tool called directly; what the process's own heap costs a full collection)."""
    import psutil
    from tests.otlp_receiver import free_port

    import agent_otel
    from agent_otel import sdk

    home = Path(opts.tmp)
    catcher = _SummaryCatcher()
    logging.getLogger("agent_otel").addHandler(catcher)
    config = {
        "exporter": {"retry_buffer_mb": opts.retry_mb, "timeout_s": 1.0},
        "logging": {"events": {"queue_mb": opts.queue_mb}},
    }
    store = str(home / "runs.db")
    off = opts.mode == "off"
    if not off:
        agent_otel.setup(
            "outage-drill",
            # outage: nothing listens, the collector refuses; up: the parent's receiver
            endpoint=opts.endpoint or f"http://127.0.0.1:{free_port()}",
            store=store,
            instrument=False,
            config=config,
        )
    inst = sdk.installation()
    produced = _count_emits(inst.pipeline) if not off else {}
    spans_ended = _count_spans(inst.tracer_provider) if not off else [0]
    pad = "p" * 300

    def tool(i: int, note: str) -> int:
        return i

    def calls(n: int, took: array[float], per_run: int = 100) -> None:
        done = 0
        while done < n:
            if off:
                for _ in range(min(per_run, n - done)):
                    start = time.perf_counter()
                    tool(**{"i": done, "note": pad})
                    took[done] = time.perf_counter() - start
                    done += 1
                continue
            with agent_otel.run("agent") as run:
                for _ in range(min(per_run, n - done)):
                    start = time.perf_counter()
                    run.call_tool("lookup", tool, {"i": done, "note": pad})
                    took[done] = time.perf_counter() - start
                    done += 1

    calls(2000, array("d", bytes(8 * 2000)))  # warm-up: caches, the store's schema, the encoder
    if not off:
        sdk.flush(5)
    gc.collect()
    time.sleep(0.5)
    start, start_cpu = time.perf_counter(), time.thread_time()
    gc.collect()
    full_gc_ms = (time.perf_counter() - start) * 1000
    full_gc_cpu_ms = (time.thread_time() - start_cpu) * 1000
    if opts.gc_freeze:  # what an application that freezes its start-up heap would see (not done by setup())
        gc.freeze()
    # What the drill measures is kept in objects allocated before the base RSS is read, which the garbage
    # collector does not walk: a list of 200,000 floats (the durations) and a tuple per collection were 6
    # to 15 MiB of the drill's own in the RSS growth, and containers every full collection visits item by
    # item (the durations alone made a full collection several milliseconds longer).
    took = array("d", bytes(8 * opts.calls))
    # per generation: collections, longest wall ms, longest CPU ms, over 50 ms wall
    pauses = array("d", bytes(8 * 12))
    gc_start = array("d", bytes(16))

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0], gc_start[1] = time.perf_counter(), time.thread_time()
        else:
            wall = (time.perf_counter() - gc_start[0]) * 1000
            cpu = (time.thread_time() - gc_start[1]) * 1000
            at = 4 * info["generation"]
            pauses[at] += 1
            if wall > pauses[at + 1]:
                pauses[at + 1] = wall
            if cpu > pauses[at + 2]:
                pauses[at + 2] = cpu
            if wall > 50:
                pauses[at + 3] += 1

    proc = psutil.Process()
    base_rss = proc.memory_info().rss
    base_objects = len(gc.get_objects())
    peak = [base_rss]
    peak_objects = [base_objects]
    sampling = threading.Event()

    def sample() -> None:
        ticks = 0
        while not sampling.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            ticks += 1
            if ticks % 50 == 0:  # objects the garbage collector tracks: what a full collection walks
                peak_objects[0] = max(peak_objects[0], len(gc.get_objects()))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    gc.callbacks.append(on_gc)
    t0 = time.perf_counter()
    calls(opts.calls, took)
    elapsed = time.perf_counter() - t0
    time.sleep(1.0)  # the background threads catch up; RSS still sampled
    gc.callbacks.remove(on_gc)
    sampling.set()
    sampler.join()
    ordered = sorted(took)
    stalls = {
        "mode": opts.mode,
        "calls": opts.calls,
        "elapsed_s": elapsed,
        "rss_base_mb": base_rss / MB,
        "rss_growth_mb": (peak[0] - base_rss) / MB,
        "worst_call_ms": ordered[-1] * 1000,
        "p999_call_ms": ordered[int(len(ordered) * 0.999)] * 1000,
        "p99_call_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "gc_objects_before": base_objects,
        "gc_objects_peak": peak_objects[0],
        "full_gc_before_ms": full_gc_ms,
        "full_gc_before_cpu_ms": full_gc_cpu_ms,
        "gc_frozen": gc.get_freeze_count(),
        "gc_max_wall_ms": max(pauses[1::4]),
        "gc_max_cpu_ms": max(pauses[2::4]),
        "gc_full_collections": int(pauses[8]),
        "gc_collections": [int(n) for n in pauses[0::4]],
        "gc_over_50ms": int(sum(pauses[3::4])),
    }
    if off:
        return stalls
    processor = inst.span_processors[0]
    retry_bytes = processor.retry_bytes
    t1 = time.perf_counter()
    agent_otel.shutdown()
    shutdown_s = time.perf_counter() - t1
    drops = sdk._all_drops(inst)
    with sqlite3.connect(store) as conn:
        (events_stored,) = conn.execute("SELECT count(*) FROM agent_events").fetchone()
    return {
        **stalls,
        "budget_mb": opts.retry_mb + opts.queue_mb,
        "retry_buffer_bytes_at_end": retry_bytes,
        "shutdown_s": shutdown_s,
        "spans_produced": spans_ended[0],
        "spans_exported": processor.exported,
        "records_produced": produced,
        "records_delivered": inst.pipeline.delivered,
        "events_stored": events_stored,
        "drops": {f"{s}/{r}": n for (s, r), n in sorted(drops.items())},
        "summary": catcher.lines,
        "warnings": catcher.other,
    }


def child_accounting(opts: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from tests.otlp_receiver import OTLPReceiver, free_port

    import agent_otel
    from agent_otel import sdk

    port = free_port()
    down = {"refusing": False}

    def answer(spans: list[Any]) -> Any:
        if any(s.name == "execute_tool poison" for s in spans):
            return grpc.StatusCode.INVALID_ARGUMENT
        return grpc.StatusCode.UNAVAILABLE if down["refusing"] else None

    receivers = [OTLPReceiver(port, max_message_bytes=MB, answer=answer).start()]
    catcher = _SummaryCatcher()
    logging.getLogger("agent_otel").addHandler(catcher)
    agent_otel.setup(
        "accounting-drill",
        endpoint=receivers[0].endpoint,
        store=False,
        instrument=False,
        config={
            "exporter": {"schedule_delay_s": 0.1, "retry_buffer_mb": 2.0, "timeout_s": 1.0},
            # Raw (redacted) arguments on the spans make some requests pass the receiver's 1 MiB limit.
            "logging": {"events": {"store_args": True}},
            "redaction": {"max_chars": 20_000},
        },
    )
    inst = sdk.installation()
    spans_ended = _count_spans(inst.tracer_provider)

    def phase(n: int, tool: str = "lookup") -> None:
        with agent_otel.run("agent") as run:
            for i in range(n):
                note = "n" * (15_000 if i % 5 == 0 else 100)
                run.call_tool(tool, lambda i, note: i, {"i": i, "note": note})

    phases = []
    for step in range(opts.rounds):
        phase(300)
        phase(1, "poison")
        if step % 3 == 1:
            receivers[-1].stop()  # the collector goes away...
            phase(300)
            time.sleep(0.5)
            receivers.append(OTLPReceiver(port, max_message_bytes=MB, answer=answer).start())  # ...comes back
            phases.append("restart")
        elif step % 3 == 2:
            down["refusing"] = True  # answers, but UNAVAILABLE
            phase(300)
            time.sleep(0.5)
            down["refusing"] = False
            phases.append("refusing")
    sdk.flush(5)
    deadline = time.monotonic() + 15
    while inst.span_processors[0].pending and time.monotonic() < deadline:
        time.sleep(0.1)
    agent_otel.shutdown()
    time.sleep(0.5)
    received = sum(r.count() for r in receivers)
    # OTLP is at-least-once: a receiver stopped while answering took a batch whose reply never came, and
    # the resend arrives again. Lost or counted is about distinct spans; resends are reported apart.
    distinct = len(set().union(*(r.span_ids() for r in receivers)))
    for r in receivers:
        r.stop()
    drops = sdk._all_drops(inst)
    span_drops = sum(n for (s, _), n in drops.items() if s == "spans")
    return {
        "spans_produced": spans_ended[0],
        "spans_received": distinct,
        "spans_received_again": received - distinct,
        "spans_dropped": span_drops,
        "drops": {f"{s}/{r}": n for (s, r), n in sorted(drops.items())},
        "adds_up": distinct + span_drops == spans_ended[0],
        "summary": catcher.lines,
        "phases": phases,
    }


EXIT_CHILD = textwrap.dedent(
    """
    import os, sys, time
    import agent_otel
    endpoint, store = os.environ["ENDPOINT"], os.environ["STORE"]
    agent_otel.setup("exit-drill", endpoint=endpoint, store=store, instrument=False)
    for i in range(20):
        with agent_otel.run("quick") as run:
            run.call_tool("lookup", lambda i: i * 2, {"i": i})
    print("ready", flush=True)
    time.sleep(60)
    """
)


def exit_trial(tmp: Path, endpoint: str, sig: int, delay_s: float) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / "child.py"
    script.write_text(EXIT_CHILD)
    store = tmp / "runs.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(ENDPOINT=endpoint, STORE=str(store), AGENT_OTEL_HOME=str(tmp / "home"))
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().strip() == "ready"
    time.sleep(delay_s)
    sent = time.perf_counter()
    proc.send_signal(sig)
    rc = proc.wait(30)
    exit_s = time.perf_counter() - sent
    stored = 0
    if store.exists():
        with sqlite3.connect(store) as conn:
            try:
                (stored,) = conn.execute(
                    "SELECT count(*) FROM agent_runs WHERE stop_reason = 'completed'"
                ).fetchone()
            except sqlite3.OperationalError:  # killed while creating the schema
                stored = 0
    return {"ready": ready, "rc": rc, "exit_s": exit_s, "runs_stored": stored}


def drill_exit(opts: argparse.Namespace) -> dict[str, Any]:
    from tests.otlp_receiver import OTLPReceiver

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="agent-otel-exit-") as tmp:
        for name, sig, delay in [("SIGTERM", signal.SIGTERM, 0.0)] + [
            (f"SIGKILL +{ms} ms", signal.SIGKILL, ms / 1000) for ms in opts.kill_ms
        ]:
            trials = []
            for i in range(opts.trials):
                receiver = OTLPReceiver().start()
                try:
                    trial = exit_trial(Path(tmp) / f"{len(results)}-{i}", receiver.endpoint, sig, delay)
                    if sig == signal.SIGTERM:
                        time.sleep(0.2)
                        trial["spans_received"] = receiver.count()
                finally:
                    receiver.stop()
                trials.append(trial)
            results[name] = trials
    return results


# --- the parent: run the children, print the figures -------------------------------------------------------


class _CountedSpans(list):  # type: ignore[type-arg]
    """Stands in for a receiver's list of spans: counts them instead of keeping 200,000 of them."""

    taken = 0

    def extend(self, spans: Any) -> None:
        self.taken += len(spans)

    def __len__(self) -> int:
        return self.taken


def drill_reference(opts: argparse.Namespace, shared: list[str]) -> dict[str, Any]:
    """The outage's loop with the collector up, and with agent-otel off: what the stalls are without an
    outage, and what the process's own heap costs."""
    from tests.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver()
    receiver.spans = _CountedSpans()
    receiver.start()
    try:
        up = run_child("outage", opts, [*shared, "--mode", "up", "--endpoint", receiver.endpoint])
        time.sleep(0.5)
        if "error" not in up:
            up["spans_received"] = receiver.count()
    finally:
        receiver.stop()
    return {"up": up, "off": run_child("outage", opts, [*shared, "--mode", "off"])}


def run_child(kind: str, opts: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"agent-otel-{kind}-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        env["AGENT_OTEL_HOME"] = tmp
        out = Path(tmp) / "result.json"
        argv = [sys.executable, __file__, "--child", kind, "--tmp", tmp, "--child-out", str(out), *extra]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=opts.timeout)
        if proc.returncode != 0 or not out.exists():
            return {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}
        return json.loads(out.read_text())


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}, {os.cpu_count()} CPUs"
    except OSError:
        return f"{os.cpu_count()} CPUs"


def _frozen(result: dict[str, Any]) -> str:
    frozen = result.get("gc_frozen", 0)
    return f" (and {frozen:,} frozen by gc.freeze() after the warm-up)" if frozen else ""


def _adds_up(ok: bool) -> str:
    return "adds up" if ok else "DOES NOT ADD UP"


def report(results: dict[str, Any]) -> str:
    lines = [f"agent-otel reliability drill, Python {sys.version.split()[0]}, {results['load_before']}"]
    o = results.get("outage")
    if o and "error" in o:
        lines.append(f"outage: FAILED {o['error']}")
    elif o:
        spans_dropped = sum(n for k, n in o["drops"].items() if k.startswith("spans/"))
        records = sum(o["records_produced"].values())
        record_drops = sum(n for k, n in o["drops"].items() if k.startswith("events/"))
        budget = o["budget_mb"]
        lines += [
            "",
            f"[outage] collector refusing, {o['calls']:,} tool calls in {o['elapsed_s']:.1f} s, "
            "default store",
            f"  RSS growth            {o['rss_growth_mb']:.1f} MiB (budgets {budget:.0f} MiB + 20 MB "
            f"allowed = {budget + ALLOWANCE_MIB:.1f} MiB; base {o['rss_base_mb']:.0f} MiB)",
            f"  tool call, wall clock p99 {o['p99_call_ms']:.2f} ms, p99.9 {o['p999_call_ms']:.2f} ms, "
            f"worst {o['worst_call_ms']:.1f} ms",
            f"  longest GC pause      {o['gc_max_wall_ms']:.1f} ms wall, {o['gc_max_cpu_ms']:.1f} ms CPU "
            f"({o['gc_full_collections']} full collections, {o['gc_over_50ms']} over 50 ms wall)",
            f"  a full collection before the outage {o['full_gc_before_ms']:.1f} ms wall, "
            f"{o['full_gc_before_cpu_ms']:.1f} ms CPU",
            f"  tracked objects       {o['gc_objects_before']:,} before, at most "
            f"{o['gc_objects_peak']:,} during" + _frozen(o),
            f"  spans                 produced {o['spans_produced']:,}, exported "
            f"{o['spans_exported']:,}, dropped {spans_dropped:,}: "
            + _adds_up(o["spans_exported"] + spans_dropped == o["spans_produced"]),
            f"  event records         produced {records:,}, delivered {o['records_delivered']:,}, "
            f"dropped {record_drops:,}: " + _adds_up(o["records_delivered"] + record_drops == records),
            f"  events in the store   {o['events_stored']:,}",
            f"  shutdown              {o['shutdown_s']:.2f} s",
            f"  drops                 {o['drops']}",
            f"  exit line             {o['summary'][0] if o['summary'] else '(none)'}",
        ]
    for mode, title in (
        ("up", "the same loop with the collector up (a receiver in the parent)"),
        ("off", "the same loop, agent-otel imported but not set up (the tool called directly)"),
    ):
        r = results.get("reference", {}).get(mode)
        if r and "error" in r:
            lines.append(f"reference {mode}: FAILED {r['error']}")
        elif r:
            lines += [
                "",
                f"[reference: {mode}] {title}, {r['calls']:,} tool calls in {r['elapsed_s']:.1f} s",
                f"  RSS growth            {r['rss_growth_mb']:.1f} MiB (base {r['rss_base_mb']:.0f} MiB)",
                f"  tool call, wall clock p99 {r['p99_call_ms']:.2f} ms, p99.9 {r['p999_call_ms']:.2f} ms, "
                f"worst {r['worst_call_ms']:.1f} ms",
                f"  longest GC pause      {r['gc_max_wall_ms']:.1f} ms wall, {r['gc_max_cpu_ms']:.1f} ms CPU "
                f"({r['gc_full_collections']} full collections, {r['gc_over_50ms']} over 50 ms wall)",
                f"  a full collection before the loop {r['full_gc_before_ms']:.1f} ms wall, "
                f"{r['full_gc_before_cpu_ms']:.1f} ms CPU",
                f"  tracked objects       {r['gc_objects_before']:,} before, at most "
                f"{r['gc_objects_peak']:,} during" + _frozen(r),
            ]
            if mode == "up":
                spans_dropped = sum(n for k, n in r["drops"].items() if k.startswith("spans/"))
                lines.append(
                    f"  spans                 produced {r['spans_produced']:,}, exported "
                    f"{r['spans_exported']:,} (received {r.get('spans_received', 0):,}), dropped "
                    f"{spans_dropped:,}"
                )
    a = results.get("accounting")
    if a and "error" in a:
        lines.append(f"accounting: FAILED {a['error']}")
    elif a:
        lines += [
            "",
            "[accounting] receiver restarted, refusing, rejecting poison batches, 1 MiB limit "
            f"({', '.join(a['phases'])})",
            f"  spans produced {a['spans_produced']:,} = received {a['spans_received']:,} + dropped "
            f"{a['spans_dropped']:,}: " + _adds_up(a["adds_up"]),
            f"  drops {a['drops']}; received again after a lost reply (at-least-once): "
            f"{a['spans_received_again']:,}",
        ]
    e = results.get("exit")
    if e:
        lines += ["", "[exit] 20 quick runs, then a signal (runs stored of 20; exit status; signal to exit)"]
        for name, trials in e.items():
            stored = [t["runs_stored"] for t in trials]
            rcs = sorted({t["rc"] for t in trials})
            slow = max(t["exit_s"] for t in trials)
            spans = [t.get("spans_received") for t in trials if "spans_received" in t]
            lines.append(
                f"  {name:<15} runs stored {stored}, exit status {rcs}, slowest exit {slow * 1000:.0f} ms"
                + (f", spans received {spans} of 40 each" if spans else "")
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="tool calls of the outage drill")
    parser.add_argument("--retry-mb", type=float, default=32.0, help="exporter.retry_buffer_mb")
    parser.add_argument("--queue-mb", type=float, default=32.0, help="logging.events.queue_mb")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="outage and references: gc.freeze() after the warm-up, as an application may do "
        "(agent-otel never does); shows what the process's own heap costs each full collection",
    )
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the accounting drill")
    parser.add_argument("--trials", type=int, default=3, help="processes per signal in the exit drill")
    parser.add_argument(
        "--kill-ms",
        type=lambda text: [int(ms) for ms in text.split(",")],
        default=[0, 50, 100, 150],
        help="the exit drill's SIGKILL delays after the runs, in ms (default 0,50,100,150)",
    )
    parser.add_argument("--drills", default="outage,reference,accounting,exit")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="outage", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        result = {"outage": child_outage, "accounting": child_accounting}[opts.child](opts)
        Path(opts.child_out).write_text(json.dumps(result))
        return 0
    shared = ["--calls", str(opts.calls), "--retry-mb", str(opts.retry_mb), "--queue-mb", str(opts.queue_mb)]
    if opts.gc_freeze:
        shared.append("--gc-freeze")
    results: dict[str, Any] = {"load_before": _load()}
    drills = opts.drills.split(",")
    if "outage" in drills:
        results["outage"] = run_child("outage", opts, shared)
    if "reference" in drills:
        results["reference"] = drill_reference(opts, shared)
    if "accounting" in drills:
        results["accounting"] = run_child("accounting", opts, ["--rounds", str(opts.rounds)])
    if "exit" in drills:
        results["exit"] = drill_exit(opts)
    results["load_after"] = _load()
    print(json.dumps(results, indent=2) if opts.json else report(results))
    references = results.get("reference", {}).values()
    failed = any("error" in results.get(k, {}) for k in ("outage", "accounting")) or any(
        "error" in r for r in references
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
