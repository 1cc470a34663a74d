"""Where the agent's thread spends a run: Python bytecodes executed per run, by module.

CPU time on a shared machine moves with its load; the number of bytecodes a run executes does not. This
counts them on the agent's thread (``sys.settrace`` with opcode events) for the loop of
``benchmarks/overhead.py`` (one run: an LLM request, 8 tool calls with ~1 KB args and ~2 KB results, an
LLM request), for the bare OpenTelemetry spans and the agent-otel cases, and attributes each to the module
of the function executing it. What C code does inside a bytecode (orjson, sha256, dict building) is not
counted, so this says where the interpreter's work goes, not its time; ``overhead.py`` measures that.

It also counts the objects a run leaves to the cyclic garbage collector (what ``gc.collect()`` finds
unreachable after runs made with the collector off): objects in a reference cycle are not freed when their
last user lets go, and the collections that free them run on whichever thread allocates, mostly the
agent's, walking them first. Like the bytecodes, the count does not move with the machine's load.

Run: ``python benchmarks/hot_breakdown.py`` (``--runs``, ``--top``; ``--by function`` counts by function,
``module:qualified name``, instead of by module: where in a module the bytecodes go).
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import overhead  # the workload and subjects of overhead.py, from this directory

CASES = ("bare", "store_off", "default")
CYCLIC = "(objects left to the cyclic garbage collector)"  # the child's line for that count


def module_of(filename: str) -> str:
    """``agent_otel/steps.py``, ``opentelemetry/sdk/trace/__init__.py``, or the file's name."""
    for marker in ("/site-packages/", "/src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return os.path.basename(filename)


def count(case: str, runs: int, by: str = "module") -> collections.Counter[str]:
    """Bytecodes per module (or function) for ``runs`` runs of ``case``, in a fresh process (setup is one
    per process)."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", case, "--runs", str(runs), "--by", by],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    counts: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        n, _, module = line.partition(" ")
        counts[module] = int(n)
    return counts


def child(case: str, runs: int, by: str = "module") -> None:
    overhead.scrub_environment()
    work = overhead.Workload(64)
    with tempfile.TemporaryDirectory() as tmp:
        if case == "bare":
            subject = overhead.bare_subject(work, runs)
        else:
            subject = overhead.agent_otel_subject(case, work, runs, tmp)
        subject.run(30)  # warm: first-run work (metric series, caches) is not a run's cost
        subject.flush()
        counts: collections.Counter[tuple[str, str]] = collections.Counter()

        def trace(frame: Any, event: str, arg: Any) -> Any:
            frame.f_trace_opcodes = True
            code = frame.f_code
            key = (code.co_filename, code.co_qualname if by == "function" else "")

            def local(frame: Any, event: str, arg: Any) -> Any:
                if event == "opcode":
                    counts[key] += 1
                return local

            frame.f_trace = local  # Python 3.13 sends opcode events only then; 3.12.1 sends none at all
            return local

        sys.settrace(trace)
        try:
            subject.run(runs)
        finally:
            sys.settrace(None)
        subject.flush()
        gc.collect()
        gc.disable()
        try:
            subject.run(runs)
            subject.flush()
            cyclic = gc.collect()
        finally:
            gc.enable()
    by_module: collections.Counter[str] = collections.Counter()
    for (filename, function), n in counts.items():
        if filename != overhead.__file__:  # the loop itself
            by_module[module_of(filename) + (f":{function}" if function else "")] += n
    for module, n in by_module.items():
        print(n, module)
    print(cyclic, CYCLIC)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="traced runs per case")
    parser.add_argument("--top", type=int, default=14, help="modules (or functions) listed")
    parser.add_argument("--by", choices=("module", "function"), default="module", help="what counts are by")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs, args.by)
        return 0
    results = {case: count(case, args.runs, args.by) for case in CASES}
    cyclic = {case: results[case].pop(CYCLIC, 0) / args.runs for case in CASES}
    per_run = {case: {m: n / args.runs for m, n in c.items()} for case, c in results.items()}
    totals = {case: sum(v.values()) for case, v in per_run.items()}
    if not totals["bare"]:
        version = sys.version.split()[0]
        print(f"Python {version} sent no opcode events to sys.settrace: no counts (3.11 and 3.13 do)")
        return 1
    print(
        f"Python bytecodes per run on the agent's thread, by module ({args.runs} traced runs per case, "
        "after 30 untraced)"
    )
    print("case totals: " + ", ".join(f"{case} {totals[case]:,.0f}" for case in CASES))
    print(
        f"default / bare: {totals['default'] / totals['bare']:.2f}x; "
        f"store_off / bare: {totals['store_off'] / totals['bare']:.2f}x; objects per run left to the cyclic "
        "garbage collector: " + ", ".join(f"{case} {cyclic[case]:,.1f}" for case in CASES) + "\n"
    )
    modules = sorted(per_run["default"], key=lambda m: -per_run["default"][m])[: args.top]
    print(f"{args.by:48s} {'bare':>8s} {'store_off':>10s} {'default':>8s}")
    print("-" * 77)
    for module in modules:
        row = [per_run[case].get(module, 0.0) for case in CASES]
        print(f"{module:48s} {row[0]:8,.0f} {row[1]:10,.0f} {row[2]:8,.0f}")
    rest = [totals[case] - sum(per_run[case].get(m, 0.0) for m in modules) for case in CASES]
    other = f"(other {args.by}s)"
    print(f"{other:48s} {rest[0]:8,.0f} {rest[1]:10,.0f} {rest[2]:8,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
