"""Where the event pipeline's thread spends a run: its sinks' CPU, their hottest functions, and a replay.

``overhead.py`` prints the event thread's CPU per run by sink; this says where inside a sink it goes, for
the loop of ``overhead.py`` (one run: an LLM request, 8 tool calls with ~1 KB args and ~2 KB results, an
LLM request) with agent-otel's default settings or ``store=False``, in fresh processes:

* **sink CPU**: the thread CPU of each sink's ``write()`` per run, as ``overhead.py`` counts it;
* **replay**: the records the in-memory sinks (the metrics) were handed, captured and written to them again
  in batches of the same size, many times over in the measuring process's main thread with nothing else
  running in it; the fastest repetition, in us per run, which moves far less with the machine's load than
  the sink CPU of a live run (that shares the GIL with the agent's thread), and the Python bytecodes one
  more repetition executes per run (as hot_breakdown.py counts them), which the load does not move at all
  (what C code does inside a bytecode is not counted);
* **profile**: the functions the sinks' writes spent the most time in, over as many runs again (own time,
  cProfile with a thread CPU clock, which inflates Python calls: compare functions with each other, not
  with the figures above).

``--baseline-src DIR`` measures another version's source (a ``git worktree`` or ``git archive`` of it) in
processes interleaved with these, as ``overhead.py`` does.

Run: ``python benchmarks/event_thread.py`` (``--cases``, ``--runs``, ``--processes``, ``--top``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import overhead  # the workload and subjects of overhead.py, from this directory

CASES = ("default", "store_off")
REPLAY_REPETITIONS = 30


def where(filename: str, name: str) -> str:
    """``agent_otel/metrics.py:record_event``, ``opentelemetry/...:aggregate`` or a builtin's name."""
    for marker in ("/site-packages/", "/src/"):
        if marker in filename:
            return f"{filename.split(marker, 1)[1]}:{name}"
    return name if filename == "~" else f"{os.path.basename(filename)}:{name}"


def bytecodes(write: Any, batches: list[list[Any]]) -> int:
    """Python bytecodes writing ``batches`` executes on this thread (as hot_breakdown.py counts them): a
    figure the machine's load does not move; 0 where the interpreter sends no opcode events (3.12.1)."""
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "opcode":
            count += 1
        return local

    def trace(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace = local
        return local

    sys.settrace(trace)
    try:
        for batch in batches:
            write(batch)
    finally:
        sys.settrace(None)
    return count


def child(case: str, runs: int, top: int) -> dict[str, Any]:
    from agent_otel import runtime

    overhead.scrub_environment()
    work = overhead.Workload(runs * overhead.TOOL_CALLS + 64)
    with tempfile.TemporaryDirectory() as tmp:
        subject = overhead.agent_otel_subject(case, work, runs, tmp)
        subject.run(max(2, runs // 10))  # warm: first-run work (series, caches, tables) is not a run's cost
        subject.flush()
        pipeline = runtime.current().pipeline
        fast = set(map(id, pipeline._fast))
        profile = cProfile.Profile(time.thread_time)
        profiling = False
        captured: dict[str, list[list[Any]]] = {}
        for sink in pipeline.sinks():  # inside overhead.py's timing of each write (subject.sink_cpu)
            name, write = type(sink).__name__, sink.write
            keep = captured.setdefault(name, []) if id(sink) in fast else None

            def watched(batch: Any, write: Any = write, keep: list[list[Any]] | None = keep) -> None:
                if not profiling:
                    if keep is not None:
                        keep.append(list(batch))
                    write(batch)
                    return
                profile.enable()
                try:
                    write(batch)
                finally:
                    profile.disable()

            sink.write = watched
        subject.sink_cpu.clear()
        subject.run(runs)  # the sinks' CPU, as overhead.py counts it, and the records to replay
        subject.flush()
        sinks_us = {name: cpu / runs * 1e6 for name, cpu in subject.sink_cpu.items()}
        profiling = True
        subject.run(runs)  # the same number of runs again, profiled
        subject.flush()
        replay_us: dict[str, float] = {}
        replay_bytecodes: dict[str, float] = {}
        for sink in pipeline.sinks():
            name = type(sink).__name__
            batches = captured.get(name)
            if not batches:
                continue
            write = type(sink).write.__get__(sink)  # the sink's own, without the timing wrappers
            best = float("inf")
            for _ in range(REPLAY_REPETITIONS):
                start = time.thread_time()
                for batch in batches:
                    write(batch)
                best = min(best, time.thread_time() - start)
            replay_us[name] = best / runs * 1e6
            replay_bytecodes[name] = bytecodes(write, batches) / runs
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    own = sorted(((v[2], where(k[0], k[2])) for k, v in stats.items()), reverse=True)[:top]
    return {
        "case": case,
        "sinks_us": sinks_us,
        "replay_us": replay_us,
        "replay_bytecodes": replay_bytecodes,
        "profile": [(name, t / runs * 1e6) for t, name in own],
    }


def run_child(case: str, runs: int, top: int, src: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", case, "--runs", str(runs), "--top", str(top)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{case}: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--runs", type=int, default=300, help="measured runs per process")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per case (median)")
    parser.add_argument("--top", type=int, default=12, help="functions listed per case")
    parser.add_argument("--baseline-src", help="also measure this source directory, interleaved")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runs, args.top)))
        return 0
    cases = args.cases.split(",")
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    versions = [("", None)] + ([(" (baseline)", args.baseline_src)] if args.baseline_src else [])
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    load = os.getloadavg()[0]
    for p in range(args.processes):  # rotated, so that load drifts over every case and version alike
        order = [(case, v) for case in cases for v in versions]
        shift = p % len(order)
        for case, (suffix, src) in order[shift:] + order[:shift]:
            results.setdefault((case, suffix), []).append(run_child(case, args.runs, args.top, src))
    print(
        f"Event-thread CPU per agent run of overhead.py's loop ({args.runs} runs a process, median of "
        f"{args.processes} processes; load average {load:.2f} at start, {os.getloadavg()[0]:.2f} at end)"
    )
    for (case, suffix), rows in results.items():
        names = sorted({n for r in rows for n in r["sinks_us"]})
        sinks = ", ".join(
            f"{n} {statistics.median(r['sinks_us'].get(n, 0) for r in rows):.1f} us" for n in names
        )
        replayed = sorted({n for r in rows for n in r["replay_us"]})
        replay = ", ".join(
            f"{n} {statistics.median(r['replay_us'][n] for r in rows):.1f} us, "
            f"{statistics.median(r['replay_bytecodes'][n] for r in rows):,.0f} bytecodes"
            for n in replayed
        )
        print(f"\n{case}{suffix}: sink CPU {sinks}; replay (fastest of {REPLAY_REPETITIONS}) {replay}")
        print("  own time per run under cProfile (inflated; first process):")
        for name, us in rows[0]["profile"]:
            print(f"  {us:8.1f} us  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
