"""The figures of a period, aggregated in the database, against a straightforward Python computation.

Runs are written through the real store sink (which keeps the summaries), in SQLite and in PostgreSQL, and
the figures of ``stats`` are computed three ways: in Python from every row (the reference, as the CLI did
before issue 17), exactly in SQL, and from the summaries plus the raw partial hours. The exact way must
agree with the reference; the summarized one too, except percentiles, within the stated accuracy.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from agent_otel.store import StoreSink, Target, open_store, periods, summaries
from tests.store import seed

HOUR, DAY = seed.HOUR_MS, seed.DAY_MS
STOPS = ["completed"] * 12 + [
    "tool_error",
    "loop_detected",
    "max_steps",
    "timeout",
    "policy_denied",
    "interrupted",
]
FAILURES = [
    ("http.get", "TooManyRequests"),
    ("http.get", "ServiceUnavailable"),
    ("crm.lookup", "TimeoutError"),
]


# --- the reference: every row into Python, as `stats` computed it before ----------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def reference(store: Any, since: int, until: int, agent: str | None) -> dict[str, Any]:
    runs = store.runs(since_ms=since, until_ms=until, agent=agent, newest_first=False, replays=False)
    events = list(store.iter_events(run_ids=[r["run_id"] for r in runs])) if runs else []
    done = [r for r in runs if r["status"] not in ("running", "abandoned")]
    durations = [float(r["duration_ms"]) for r in done if r.get("duration_ms") is not None]
    calls = [float(r.get("tool_calls") or 0) for r in done]
    spend = [float(r.get("cost_usd") or 0.0) for r in done]
    retries = [float(r.get("retries") or 0) for r in done]
    requests = [e["usage"] or {} for e in events if e["kind"] == "llm_result"]
    every = [float((u.get("input_tokens") or 0) + (u.get("output_tokens") or 0)) for u in requests]
    tokens = [t for t in every if t]  # 0 tokens: the request reported no usage (left out, counted apart)
    tool_total = Counter(e["tool"] or "?" for e in events if e["kind"] == "tool_result")
    failed = Counter(
        (e["tool"] or "?", e["error"] or "error")
        for e in events
        if e["kind"] == "tool_result" and e["status"] == "error"
    )
    n = len(done)
    return {
        "runs": n,
        "running": sum(r["status"] == "running" for r in runs),
        "abandoned": sum(r["status"] == "abandoned" for r in runs),
        "latency_ms": {"p50": percentile(durations, 0.5), "p95": percentile(durations, 0.95)},
        "tool_calls_per_run": {
            "mean": sum(calls) / n if n else None,
            "p50": percentile(calls, 0.5),
            "p95": percentile(calls, 0.95),
        },
        "tokens_per_request": {
            "requests": len(every),
            "without_usage": len(every) - len(tokens),
            "mean": sum(tokens) / len(tokens) if tokens else None,
            "p50": percentile(tokens, 0.5),
            "p95": percentile(tokens, 0.95),
        },
        "spend_per_run_usd": {
            "mean": sum(spend) / n if n else None,
            "p95": percentile(spend, 0.95),
            "total": sum(spend),
        },
        "retries_per_run": {"mean": sum(retries) / n if n else None, "total": int(sum(retries))},
        "stop_reasons": Counter(r["stop_reason"] or "unknown" for r in done),
        "failing": {key: (count, tool_total[key[0]]) for key, count in failed.items()},
    }


PERCENTILES = [
    ("latency_ms", "p50"),
    ("latency_ms", "p95"),
    ("tokens_per_request", "p50"),
    ("tokens_per_request", "p95"),
    ("spend_per_run_usd", "p95"),
]
EXACT_FIGURES = [
    ("tool_calls_per_run", "mean"),
    ("tool_calls_per_run", "p50"),
    ("tool_calls_per_run", "p95"),
    ("tokens_per_request", "requests"),
    ("tokens_per_request", "without_usage"),
    ("tokens_per_request", "mean"),
    ("spend_per_run_usd", "mean"),
    ("spend_per_run_usd", "total"),
    ("retries_per_run", "mean"),
    ("retries_per_run", "total"),
]


def assert_agrees(got: dict[str, Any], want: dict[str, Any], rel: float) -> None:
    assert (got["runs"], got["running"], got["abandoned"]) == (
        want["runs"],
        want["running"],
        want["abandoned"],
    )
    for key, stat in EXACT_FIGURES + PERCENTILES:
        if want[key][stat] is None:  # no runs, no requests
            assert got[key][stat] is None, (key, stat)
        elif (key, stat) in EXACT_FIGURES:
            assert got[key][stat] == pytest.approx(want[key][stat], rel=1e-9), (key, stat)
        else:
            assert got[key][stat] == pytest.approx(want[key][stat], rel=rel, abs=1e-12), (key, stat)
    assert {m["stop_reason"]: m["runs"] for m in got["stop_reasons"]} == dict(want["stop_reasons"])
    counts = [m["runs"] for m in got["stop_reasons"]]
    assert counts == sorted(counts, reverse=True)
    for m in got["stop_reasons"]:
        assert m["share"] == pytest.approx(m["runs"] / want["runs"])
    top = sorted(want["failing"].items(), key=lambda kv: -kv[1][0])[:10]
    assert len(got["failing_tools"]) == len(top)
    for f in got["failing_tools"]:
        count, calls = want["failing"][(f["tool"], f["error"])]
        assert (f["failures"], f["calls"]) == (count, calls)
        assert f["error_rate"] == pytest.approx(count / calls)


# --- stores --------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def location(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "agent-otel.db")
    return request.getfixturevalue("postgres").new_database()


def target(location: str) -> Target:
    return Target("postgresql" if location.startswith("postgresql://") else "sqlite", location)


def generated(
    now: int, n: int = 900, days: float = 3.0, rng_seed: int = 7
) -> list[tuple[str, dict[str, Any]]]:
    """``n`` runs of two agents spread over ``days`` before ``now``, with random durations, tool calls,
    tokens, spend, stop reasons and failing tools; a few left running by processes that are gone."""
    rng = random.Random(rng_seed)
    records: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        created = now - int(rng.random() * days * DAY) - 1
        recs = seed.run_records(
            created,
            agent="support-agent" if rng.random() < 0.7 else "triage-agent",
            tool_calls=rng.randint(0, 12),
            duration_ms=round(rng.lognormvariate(7.5, 0.8), 3),
            llm_calls=rng.randint(1, 4),
            tokens_per_request=rng.randint(150, 6000),
            cost_usd=round(rng.uniform(0, 0.2), 6) if rng.random() < 0.9 else 0.0,
            stop_reason=rng.choice(STOPS),
            failing=rng.choice(FAILURES) if rng.random() < 0.15 else None,
        )
        if i % 97 == 0:  # never ended (the test makes its process one that is gone)
            recs = [r for r in recs if not (r[0] == "run" and r[1]["status"] != "running")]
        records += recs
    return records


def write_through_sink(location: str, records: list[tuple[str, dict[str, Any]]], batch: int = 500) -> None:
    sink = StoreSink(target(location), {"logs_days": 0, "tool_snapshot_days": 0})
    try:
        for i in range(0, len(records), batch):
            sink.write(records[i : i + batch])
            assert sink.error is None, sink.error
    finally:
        sink.close()


# --- the tests -----------------------------------------------------------------------------------------


def test_exact_and_summarized_figures_agree_with_python_over_every_row(location):
    now = seed.now_ms()
    records = generated(now)
    write_through_sink(location, records)
    store = open_store(target(location), create=False)
    try:
        store.execute(  # the sink stamped every row with this process; these runs' process is gone
            "UPDATE agent_runs SET pid = 4194303, process_start = NULL WHERE status = 'running'"
        )
        periods_to_check = [
            (now - 3 * DAY - HOUR, now + HOUR, None),  # everything, ragged ends
            (now - 2 * DAY + 1234, now - 7 * HOUR - 999, "support-agent"),  # mid-hour ends, one agent
            (now - 26 * HOUR, now - 2 * HOUR, "triage-agent"),
            (now - 10 * HOUR, now - 9 * HOUR, None),  # within two hours: raw pieces only
        ]
        for since, until, agent in periods_to_check:
            want = reference(store, since, until, agent)
            assert want["runs"] > 0 and want["tokens_per_request"]["requests"] > 0
            exact = periods.period(store, since, until, agent, method=periods.EXACT)
            assert_agrees(exact, want, rel=1e-9)
            summed = periods.period(store, since, until, agent, method=periods.SUMMARIZED)
            assert_agrees(summed, want, rel=summaries.ACCURACY)
        everything = periods.period(store, now - 4 * DAY, now + HOUR)
        assert (everything["runs"], everything["abandoned"], everything["running"]) == (890, 10, 0)
    finally:
        store.close()


def test_two_writers_adding_to_the_same_hours_keep_the_summaries_whole(location):
    """Each writer reuses the summary rows it stored last without parsing them again; one that another
    writer added to since must be read anew, or its additions would be overwritten and lost."""
    now = seed.now_ms()
    records = generated(now, n=240, days=0.1, rng_seed=11)  # a few hours: every batch adds to the same rows
    first = StoreSink(target(location), {"logs_days": 0, "tool_snapshot_days": 0})
    second = StoreSink(target(location), {"logs_days": 0, "tool_snapshot_days": 0})
    try:
        for n, i in enumerate(range(0, len(records), 100)):
            sink = first if n % 3 else second  # first, first, second: each sees the other's rows change
            sink.write(records[i : i + 100])
            assert sink.error is None, sink.error
    finally:
        first.close()
        second.close()
    store = open_store(target(location), create=False)
    try:
        # whole hours only: what SUMMARIZED reads from the summary rows
        since, until = summaries.floor_to(now - DAY, HOUR), summaries.floor_to(now, HOUR) + HOUR
        want = reference(store, since, until, None)
        assert want["runs"] > 200
        summed = periods.period(store, since, until, None, method=periods.SUMMARIZED)
        assert_agrees(summed, want, rel=summaries.ACCURACY)
    finally:
        store.close()
