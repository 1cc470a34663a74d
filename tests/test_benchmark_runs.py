"""The benchmarks run at a tiny size (they print ratios; nothing here times anything), with or without the
peer SDKs of the `bench` extra, and the bare spans they compare with carry what agent-otel's carry."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import overhead  # noqa: E402
from agent_otel import conventions as c  # noqa: E402


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


TINY = ("--runs", "3", "--rounds", "1", "--processes", "1", "--import-samples", "1")


def test_agent_loop_prints_every_case_measured_or_reported_missing():
    proc = run("overhead.py", *TINY)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert (
        "bare OpenTelemetry spans" in out
        and "Network: blocked in every measuring process, attempts: 0;" in out
    )
    for case in overhead.CASES:
        if case.diagnostic:  # measured only when asked for (below)
            assert not any(ln.startswith(case.label) for ln in out.splitlines())
            continue
        (line,) = [ln for ln in out.splitlines() if ln.startswith(case.label)]
        assert "FAILED" not in line, line
        if case.dist is None or overhead.installed(case):
            assert line.count("x [") == 2, line  # hot and total ratios, each with its range
        else:
            assert "not installed" in line, line
    assert "import agent_otel in a fresh process:" in out


def test_agent_loop_json_has_both_ratios_per_process():
    proc = run("overhead.py", *TINY, "--cases", "default,store_off,store_discard", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert [row["key"] for row in results["cases"]] == ["default", "store_off", "store_discard"]
    for row in results["cases"]:
        assert row["processes"] == 1 and row["network_attempts"] == []
        assert row["hot_ratio"] > 0 and row["total_ratio"] > 0
        assert row["spans_per_run"] == overhead.TOOL_CALLS + 3  # every span exported: its export is counted
        sinks = {"MetricsSink"} if row["key"] == "store_off" else {"MetricsSink", "StoreSink"}
        assert set(row["sinks_us"]) == sinks and row["sinks_us"]["MetricsSink"] > 0
    sinks_us = {row["key"]: row["sinks_us"] for row in results["cases"]}
    # The diagnostic case's store sink is handed every batch and writes nothing.
    assert sinks_us["default"]["StoreSink"] > 20 * sinks_us["store_discard"]["StoreSink"]
    (process,) = results["per_process"]["default"]
    assert process["bare"]["spans_per_run"] == overhead.TOOL_CALLS + 3


def test_the_bare_spans_carry_the_attributes_agent_otel_records(tmp_path):
    """The baseline is fair only if it sets what agent-otel sets: same spans, same attribute keys."""
    import agent_otel

    def spans_of(subject: overhead.Subject) -> dict[str, list]:
        subject.exporter.kept = []
        subject.run(1)
        subject.flush()
        kept = subject.exporter.kept
        subject.exporter.kept = None
        # agent.exemplar marks at most one run per agent per second (metrics.EXEMPLAR_INTERVAL_S), the
        # first of a process among them: not an attribute of the loop's runs, so the bare spans lack it.
        return {
            name: sorted(
                sorted(k for k in s.attributes if k != c.RUN_EXEMPLAR) for s in kept if s.name == name
            )
            for name in {s.name for s in kept}
        }

    work = overhead.Workload(64)
    agent_otel.shutdown()
    try:
        ours = spans_of(overhead.agent_otel_subject("default", work, 10, str(tmp_path)))
    finally:
        agent_otel.shutdown()
    bare = spans_of(overhead.bare_subject(work, 10))
    assert bare == ours
    assert sum(len(v) for v in ours.values()) == overhead.TOOL_CALLS + 3


def test_hashing_table_runs_and_agrees_with_the_seed():
    proc = run("hashing.py", "--rounds", "1", "--max-size", "100000", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["size"], r["shape"], r["nulls"]) for r in rows] == [
        (size, shape, nulls)
        for shape, nulls in (("records", False), ("records", True), ("text", False), ("series", True))
        for size in ("1 KB", "100 KB")
    ]
    assert all(
        r["floor_us"] > 0 and r["orjson_us"] > 0 and r["agent_otel_us"] > 0 and r["seed_us"] > 0 for r in rows
    )
    proc = run("hashing.py", "--rounds", "1", "--max-size", "1000")
    assert proc.returncode == 0 and "1 KB records, nulls" in proc.stdout, proc.stderr


def test_hot_breakdown_counts_bytecodes_by_module_and_the_bare_spans_run_no_agent_otel_code():
    proc = run("hot_breakdown.py", "--runs", "2", "--top", "40")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    totals = dict(part.rsplit(" ", 1) for part in lines[1].removeprefix("case totals: ").split(", "))
    bare, store_off, default = (float(totals[k].replace(",", "")) for k in ("bare", "store_off", "default"))
    assert 0 < bare < store_off < default  # the store's snapshot records are work on the agent's thread
    rows = {ln[:48].strip(): [float(v.replace(",", "")) for v in ln[48:].split()] for ln in lines[6:]}
    assert rows["agent_otel/steps.py"][0] == 0 and rows["agent_otel/steps.py"][2] > 0
    assert rows["agent_otel/snapshots.py"][1] == 0 < rows["agent_otel/snapshots.py"][2]


def test_event_thread_prints_each_sinks_cpu_its_replay_and_where_it_goes():
    proc = run("event_thread.py", "--runs", "3", "--processes", "1", "--top", "5")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    default = next(ln for ln in out.splitlines() if ln.startswith("default: "))
    store_off = next(ln for ln in out.splitlines() if ln.startswith("store_off: "))
    assert "MetricsSink" in default and "StoreSink" in default and "StoreSink" not in store_off
    # only the in-memory sink is replayed (writing the store's records again would not be the same work)
    assert "replay (fastest of" in store_off and "StoreSink" not in default.split("replay")[1]
    assert "agent_otel/metrics.py:" in out


def test_hot_breakdown_by_function_names_the_functions_and_adds_up_to_the_same_totals():
    proc = run("hot_breakdown.py", "--runs", "2", "--top", "400", "--by", "function")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = proc.stdout.splitlines()
    totals = dict(part.rsplit(" ", 1) for part in lines[1].removeprefix("case totals: ").split(", "))
    assert float(totals["default"].replace(",", "")) > float(totals["bare"].replace(",", "")) > 0
    assert lines[4].split()[0] == "function"
    names = {ln.rsplit(None, 3)[0] for ln in lines[6:]}
    assert "agent_otel/steps.py:begin" in names
    assert "agent_otel/llm.py:record" in names
