"""The figures of ``stats`` and ``drift`` at their edges, against a brute-force computation from the raw rows.

``test_periods`` checks a large random store; these check the cases where a summarized or SQL figure is most
likely to part from the plain one: period ends on and next to hour and day boundaries (where the stored
summaries and the raw rows meet), empty and one-run periods, percentiles of a handful of values, ties and
outliers, runs still going or abandoned, agent and tool names that differ only in case or in Unicode
normalisation, runs without an LLM request or with no known usage or price, and a PostgreSQL server whose
time zone is not whole hours from UTC. Each period is computed three ways (exactly in SQL, from the
summaries the writes kept, from summaries rebuilt from the raw tables) in SQLite and in PostgreSQL, and
compared with :func:`tests.store.test_periods.reference` (every row into Python).
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import pytest

from agent_otel.store import StoreSink, open_store, periods, summaries
from tests.store import seed
from tests.store.test_periods import assert_agrees, location, reference, target, write_through_sink

HOUR, DAY = seed.HOUR_MS, seed.DAY_MS
__all__ = ["location"]  # the fixture, imported for the tests here


def day_start(days_ago: int = 2) -> int:
    return summaries.floor_to(seed.now_ms(), DAY) - days_ago * DAY


def runs(at: list[int], **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i, created in enumerate(at):
        out += seed.run_records(
            created, **{k: (v[i] if isinstance(v, list) else v) for k, v in kwargs.items()}
        )
    return out


def figures_agree(store: Any, since: int, until: int, agent: str | None = None) -> dict[str, Any]:
    """The period exactly and summarized (from the summaries the writes kept, then rebuilt from the raw
    tables) against the reference; returns the exact figures."""
    want = reference(store, since, until, agent)
    exact = periods.period(store, since, until, agent, method=periods.EXACT)
    assert_agrees(exact, want, rel=1e-9)
    kept = periods.period(store, since, until, agent, method=periods.SUMMARIZED)
    assert_agrees(kept, want, rel=summaries.ACCURACY)
    store.rebuild_summaries()
    rebuilt = periods.period(store, since, until, agent, method=periods.SUMMARIZED)
    assert_agrees(rebuilt, want, rel=summaries.ACCURACY)
    return exact


def stored(location: str, records: list[tuple[str, dict[str, Any]]]) -> Any:
    write_through_sink(location, records)
    return open_store(target(location), create=False)


def test_period_ends_on_and_next_to_hour_and_day_boundaries(location):
    d = day_start()
    h = d + 5 * HOUR
    at = [d - 1, d, d + 1, h - 1, h, h + 1, h + HOUR - 1, h + HOUR, d + DAY - 1, d + DAY, d + DAY + 1]
    store = stored(location, runs(at, duration_ms=[100.0 * (i + 1) for i in range(len(at))]))
    try:
        edges = sorted({d - HOUR, d - 1, d, d + 1, h - 1, h, h + 1, h + HOUR, d + DAY, d + DAY + 1})
        for i, since in enumerate(edges):
            for until in edges[i + 1 :]:
                figures_agree(store, since, until)
        # `--since` on an hour: the runs started at it and in it are in; a millisecond before and the
        # next hour's first are not
        assert figures_agree(store, h, h + HOUR)["runs"] == 3
        assert figures_agree(store, h, h)["runs"] == 0
        assert figures_agree(store, d, d + DAY)["runs"] == 8
    finally:
        store.close()


def test_empty_one_and_few_run_periods_and_their_percentiles(location):
    d = day_start()
    # 1, 2 and 5 runs in three separate days; ties, all-equal values and an outlier among them
    one = runs([d + 3 * HOUR], duration_ms=1234.5, tokens_per_request=777, cost_usd=0.03)
    two = runs([d + DAY + HOUR, d + DAY + 2 * HOUR], duration_ms=[10.0, 1e9], tokens_per_request=[5, 5])
    five = runs(
        [d + 2 * DAY + i * 17 * 60_000 for i in range(5)],
        duration_ms=[500.0, 500.0, 500.0, 500.0, 500.0],
        tool_calls=[0, 0, 3, 3, 250],
        cost_usd=[0.0, 0.0, 0.0, 0.0, 40.0],
    )
    store = stored(location, one + two + five)
    try:
        assert figures_agree(store, d - DAY, d)["runs"] == 0
        single = figures_agree(store, d, d + DAY)
        assert single["latency_ms"] == {"p50": 1234.5, "p95": 1234.5}
        assert single["tokens_per_request"]["p95"] == 777
        pair = figures_agree(store, d + DAY, d + 2 * DAY)
        assert pair["latency_ms"]["p50"] == pytest.approx((10.0 + 1e9) / 2)
        many = figures_agree(store, d + 2 * DAY, d + 3 * DAY)
        assert many["latency_ms"] == {"p50": 500.0, "p95": 500.0}
        assert many["tool_calls_per_run"]["p95"] == pytest.approx(3 + (250 - 3) * 0.8)
        figures_agree(store, d, d + 3 * DAY)
    finally:
        store.close()


def test_running_abandoned_and_late_ending_runs(location):
    d = day_start()
    ended = runs([d + HOUR, d + 2 * HOUR], duration_ms=[300.0, 900.0])
    left = [r for r in runs([d + HOUR + 5, d + 3 * HOUR]) if r[0] == "event" or r[1]["status"] == "running"]
    store = stored(location, ended + left)
    try:
        store.execute("UPDATE agent_runs SET pid = 4194303, process_start = NULL WHERE status = 'running'")
        got = figures_agree(store, d, d + DAY)
        assert (got["runs"], got["abandoned"], got["running"]) == (2, 2, 0)
        # an abandoned run that finishes after all (its end record arrives late): it counts once, ended
        late_id = next(r[1]["run_id"] for r in left if r[0] == "run")
        late = [r for r in seed.run_records(d + HOUR + 5, run_id=late_id, duration_ms=7e6) if r[0] == "run"]
        write_through_sink(location, late[-1:])
        write_through_sink(location, late[-1:])  # and again: a duplicate end changes nothing
        got = figures_agree(store, d, d + DAY)
        assert (got["runs"], got["abandoned"]) == (3, 1)
    finally:
        store.close()


def test_agents_and_tools_differing_in_case_or_normalisation_stay_apart(location):
    d = day_start()
    nfc = unicodedata.normalize("NFC", "résumé-agent")
    nfd = unicodedata.normalize("NFD", "résumé-agent")
    agents = ["Support", "support", "SUPPORT", nfc, nfd, "支持-agent"]
    records: list[tuple[str, dict[str, Any]]] = []
    for i, agent in enumerate(agents):
        records += runs(
            [d + HOUR + i * 60_000, d + 30 * HOUR + i],
            agent=agent,
            tool_calls=i + 1,
            duration_ms=100.0 * (i + 1),
            failing=[("Http.Get", "E"), ("http.get", "e")][i % 2],
        )
    store = stored(location, records)
    try:
        for agent in [None, *agents, "suppORT", "nobody"]:
            got = figures_agree(store, d, d + 2 * DAY, agent)
            assert got["runs"] == (12 if agent is None else 2 if agent in agents else 0)
        everyone = periods.period(store, d, d + 2 * DAY)
        assert {(f["tool"], f["error"]) for f in everyone["failing_tools"]} == {
            ("Http.Get", "E"),
            ("http.get", "e"),
        }
    finally:
        store.close()


def test_runs_without_llm_requests_usage_or_price(location):
    d = day_start()
    records = runs([d + HOUR], llm_calls=0, cost_usd=0.0)  # no LLM step at all
    unknown = runs([d + HOUR + 1], llm_calls=2, cost_usd=0.0)
    for kind, rec in unknown:  # requests whose usage the provider did not report, as the SDK stores them
        if kind == "event" and rec["kind"] == "llm_result":
            rec["usage"] = {"model": "gpt-4o"}
    unpriced = runs([d + HOUR + 2], model="my-local-model")
    for kind, rec in unpriced:  # a model with no price: no cost anywhere
        if kind == "run" and rec["status"] != "running":
            rec["cost_usd"] = None
        if kind == "event" and rec.get("usage"):
            rec["usage"].pop("cost_usd", None)
    mixed = runs([d + 2 * HOUR, d + 2 * HOUR + 1], model=["gpt-4o", "claude-sonnet-4"], cost_usd=[0.25, 0.5])
    store = stored(location, records + unknown + unpriced + mixed)
    try:
        got = figures_agree(store, d, d + DAY)
        assert got["spend_per_run_usd"]["total"] == pytest.approx(0.75)
        # the requests that reported no usage are counted, but not as requests of 0 tokens (the
        # Prometheus histogram agent_tokens_per_request leaves them out too)
        assert got["tokens_per_request"]["requests"] == 2 + 2 + 2 + 2
        assert got["tokens_per_request"]["without_usage"] == 2
        assert got["tokens_per_request"]["mean"] == got["tokens_per_request"]["p50"] == 1000
    finally:
        store.close()


def test_postgresql_session_time_zone_off_the_hour(postgres):
    """PostgreSQL truncates a ``timestamptz`` to the hour in the session's time zone: in Asia/Kolkata
    (UTC+05:30) that is half past a UTC hour, and the rebuilt summaries' hours did not line up with the
    UTC hours the periods are cut in (a run at 02:01 UTC was summarized in the hour of 01:30)."""
    import psycopg

    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET timezone = 'Asia/Kolkata'")
    d = day_start()
    store = stored(
        url, runs([d + i * HOUR + 60_000 for i in range(11)], duration_ms=[float(i) for i in range(11)])
    )
    try:
        assert figures_agree(store, d + 2 * HOUR, d + 20 * HOUR)["runs"] == 9
        hours = store.query(
            "SELECT bucket_ms FROM agent_run_summaries WHERE span_ms = ?", (summaries.HOUR_MS,)
        )
        assert all(r["bucket_ms"] % HOUR == 0 for r in hours)
    finally:
        store.close()


def test_sqlite_and_postgresql_give_the_same_figures(tmp_path, postgres):
    d = day_start()
    durations = [1.0, 1.0, 2.0, 1e7, 0.0, 333.3, 333.3, 5.0]
    records = runs(
        [d + i * 37 * 60_000 for i in range(len(durations))],
        duration_ms=durations,
        tokens_per_request=[1, 1, 9000, 150, 150, 150, 2, 10**6],
        tool_calls=[0, 1, 1, 1, 2, 3, 5, 99],
        cost_usd=[0.0, 1e-6, 0.5, 0.5, 0.5, 0.0, 3.0, 0.1],
        agent=[f"a{uuid.uuid4().hex[:1]}" for _ in durations],
    )
    lite, pg = str(tmp_path / "s.db"), postgres.new_database()
    figures = []
    for where in (lite, pg):
        store = stored(where, records)
        try:
            got = [periods.period(store, d, d + DAY, method=m) for m in (periods.EXACT, periods.SUMMARIZED)]
        finally:
            store.close()
        for g in got:
            g.pop("method")
        figures.append(got)
    assert figures[0][0] == figures[1][0]  # exact: identical
    assert figures[0][1] == figures[1][1]  # summarized: the same summaries, the same figures


def test_runs_whose_events_fall_in_later_hours_and_days_count_in_their_start_hour(location):
    d = day_start()
    long_runs = runs(
        [d + DAY - 1, d + 5 * HOUR + 59 * 60_000], duration_ms=[3 * HOUR, 2 * 60_000.0], tool_calls=6
    )
    store = stored(location, long_runs)
    try:
        assert figures_agree(store, d + DAY - 1, d + DAY)["tokens_per_request"]["requests"] == 2
        assert figures_agree(store, d + DAY, d + 2 * DAY)["runs"] == 0
        figures_agree(store, d + 5 * HOUR, d + 6 * HOUR)
        figures_agree(store, d + 6 * HOUR, d + 7 * HOUR)
    finally:
        store.close()


def test_figures_after_gc_deleted_old_runs(location):
    now = seed.now_ms()
    d = day_start(4)
    store = stored(
        location, runs([d + i * 41 * 60_000 for i in range(120)], duration_ms=[float(i) for i in range(120)])
    )
    try:
        at = d + 2 * DAY + 17 * 60_000  # mid-hour
        store.gc({"logs_days": 1}, now_ms=at + DAY)
        for since, until in [(d, now), (at - HOUR, at + HOUR), (at, at + 3 * HOUR), (d, at + DAY)]:
            figures_agree(store, since, until)
        assert periods.period(store, d, now)["runs"] == sum(d + i * 41 * 60_000 >= at for i in range(120))
    finally:
        store.close()


def test_events_written_before_their_runs_start_record(location):
    """A batch can hold a run's events without its start record (the start record was in an earlier batch
    that failed and is retried, or was dropped): the summaries must still count those events."""
    d = day_start()
    records = runs([d + HOUR, d + HOUR + 1], tool_calls=3, failing=("http.get", "Boom"))
    events = [r for r in records if r[0] == "event"]
    starts_and_ends = [r for r in records if r[0] == "run"]
    sink = StoreSink(target(location), {"logs_days": 0, "tool_snapshot_days": 0})
    try:
        for batch in (events, starts_and_ends):  # in two batches (one process)
            sink.write(batch)
            assert sink.error is None, sink.error
    finally:
        sink.close()
    store = open_store(target(location), create=False)
    try:
        got = figures_agree(store, d, d + DAY)
        assert got["failing_tools"][0]["failures"] == 2
    finally:
        store.close()


def test_two_processes_writing_the_same_hour_at_once(location):
    import threading

    d = day_start()
    batches = [runs([d + HOUR + i * 1000 + w for i in range(60)], tool_calls=w + 1) for w in range(2)]
    errors: list[BaseException] = []

    def write(records: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            write_through_sink(location, records, batch=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = open_store(target(location), create=False)
    try:
        got = figures_agree(store, d, d + DAY)
        assert (got["runs"], got["tool_calls_per_run"]["mean"]) == (120, 1.5)
    finally:
        store.close()


# --- metrics against the store ---------------------------------------------------------------------------


def test_metrics_say_what_the_store_says_for_the_same_runs(tmp_path):
    """Real runs, recorded by the SDK to the store and to metrics: the Prometheus histograms and counters
    hold the figures ``stats`` computes from the store (latency, tool calls, spend, tokens, stop reasons,
    tool calls and failures, retries), and the run span lasts what the store says the run lasted."""
    import contextlib
    import time

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import agent_otel
    from agent_otel import conventions as c
    from tests.helpers import metric_points

    path = str(tmp_path / "figures.db")
    reader, spans = InMemoryMetricReader(), InMemorySpanExporter()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    agent_otel.setup(
        "figures",
        span_exporters=[spans],
        meter_provider=provider,
        store=path,
        instrument=False,
        config={"exporter": {"probe_local": False, "schedule_delay_s": 0.05}},
    )
    flaky_calls = {"n": 0}

    @agent_otel.tool(name="Flaky", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"))
    def flaky() -> str:
        flaky_calls["n"] += 1
        if flaky_calls["n"] % 3:
            raise ConnectionError("again")
        return "ok"

    @agent_otel.tool(name="flaky", retry=agent_otel.Retry(max_attempts=2, base_delay_s=0, jitter="none"))
    def broken() -> str:
        raise TimeoutError("down")

    try:
        for i in range(6):
            budget = agent_otel.Budget(max_steps=3) if i == 5 else None
            with (
                contextlib.suppress(agent_otel.AgentStopped),
                agent_otel.run("agent-é", model="gpt-4o", budget=budget) as run,
            ):
                time.sleep(0.002 * i)
                run.record_llm(model="gpt-4o", input_tokens=100 * (i + 1), output_tokens=10)
                if i % 2:
                    run.record_llm(model="gpt-4o")  # no usage reported
                flaky()
                if i >= 3:
                    try:
                        broken()
                    except TimeoutError:
                        pass
        agent_otel.shutdown()
        points = metric_points(reader)
    finally:
        agent_otel.shutdown()
        provider.shutdown(timeout_millis=1000)

    store = open_store(target(path), create=False)
    try:
        rows = store.runs(newest_first=False)
        s = periods.period(store, 0, seed.now_ms() + HOUR, method=periods.EXACT)
    finally:
        store.close()
    assert len(rows) == s["runs"] == 6

    def hist(spec: c.MetricSpec) -> list[tuple[dict[str, Any], Any]]:
        return points[spec.name]

    latency = hist(c.M_RUN_LATENCY)
    assert sum(p.count for _, p in latency) == 6
    assert sum(p.sum for _, p in latency) == pytest.approx(sum(r["duration_ms"] for r in rows), abs=1e-6)
    by_reason = {a["stop_reason"]: p.count for a, p in latency}
    assert (
        by_reason
        == {m["stop_reason"]: m["runs"] for m in s["stop_reasons"]}
        == {"completed": 5, "max_steps": 1}
    )
    stops = {a["stop_reason"]: p.value for a, p in points[c.M_STOP.name] if p.value}
    assert stops == by_reason
    (tool_calls,) = [p for _, p in hist(c.M_TOOL_CALLS)]
    assert (tool_calls.count, tool_calls.sum) == (6, sum(r["tool_calls"] for r in rows))
    assert tool_calls.sum == s["tool_calls_per_run"]["mean"] * 6
    (spend,) = [p for _, p in hist(c.M_SPEND_PER_RUN)]
    assert spend.sum == pytest.approx(s["spend_per_run_usd"]["total"], rel=1e-9)
    tokens = hist(c.M_TOKENS_PER_REQUEST)
    tok = s["tokens_per_request"]
    assert sum(p.count for _, p in tokens) == tok["requests"] - tok["without_usage"] == 6
    assert sum(p.sum for _, p in tokens) == pytest.approx(tok["mean"] * 6)
    genai_tokens = [(a, p) for a, p in points[c.M_GEN_AI_TOKEN_USAGE.name] if a.get("gen_ai.agent.name")]
    assert sum(p.sum for _, p in genai_tokens) == pytest.approx(tok["mean"] * 6)
    assert sum(p.count for a, p in genai_tokens if a["gen_ai.token.type"] == "input") == 6
    chats = [p for a, p in points[c.M_GEN_AI_OPERATION_DURATION.name] if a["gen_ai.operation.name"] == "chat"]
    assert sum(p.count for p in chats) == tok["requests"] == 9  # every request has a duration
    invocations = {
        (a["tool"], a["status"], a["error_type"]): p.value
        for a, p in points[c.M_TOOL_INVOCATIONS.name]
        if p.value
    }
    failing = {(f["tool"], f["error"]): (f["failures"], f["calls"]) for f in s["failing_tools"]}
    assert failing == {("flaky", "TimeoutError"): (2, 2)}  # run 5 stopped before it
    assert invocations[("flaky", "error", "TimeoutError")] == 2
    assert sum(v for (tool, _, _), v in invocations.items() if tool == "Flaky") == 6  # calls, not attempts
    attempts = {
        (a["tool"], a["error_type"]): p.value for a, p in points[c.M_TOOL_FAILED_ATTEMPTS.name] if p.value
    }
    assert attempts == {("Flaky", "ConnectionError"): 12, ("flaky", "TimeoutError"): 4}  # attempts, not calls
    retries = sum(p.value for _, p in points[c.M_TOOL_RETRIES.name])
    assert retries == s["retries_per_run"]["total"] == sum(r["retries"] for r in rows)
    guards = {a["guard"]: p.value for a, p in points[c.M_GUARD_TRIGGERS.name] if p.value}
    assert guards == {"max_steps": 1}
    run_spans = {
        sp.attributes[c.RUN_ID]: sp for sp in spans.get_finished_spans() if sp.name.startswith("invoke_agent")
    }
    for r in rows:
        span = run_spans[r["run_id"]]
        assert (span.end_time - span.start_time) / 1e6 == pytest.approx(r["duration_ms"], abs=0.001)
        assert span.start_time // 1_000_000 == r["created_at_ms"]


def test_a_model_without_a_price_counts_as_no_spend(tmp_path):
    """What the README says under Prices: a model the table does not know adds nothing to spend."""
    import agent_otel

    path = str(tmp_path / "prices.db")
    agent_otel.setup("prices", store=path, instrument=False, config={"exporter": {"probe_local": False}})
    try:
        with agent_otel.run("agent", model="my-local-model") as run:
            run.record_llm(model="my-local-model", input_tokens=500, output_tokens=50)
    finally:
        agent_otel.shutdown()
    store = open_store(target(path), create=False)
    try:
        (row,) = store.runs()
        (llm,) = [e for e in store.events_for(row["run_id"]) if e["kind"] == "llm_result"]
        s = periods.period(store, 0, seed.now_ms() + HOUR)
    finally:
        store.close()
    assert row["cost_usd"] == 0 and "cost_usd" not in llm["usage"]
    assert s["spend_per_run_usd"] == {"mean": 0.0, "p95": 0.0, "total": 0.0}


def test_summary_percentiles_stay_within_the_stated_accuracy_on_small_and_skewed_samples():
    """The histograms' percentiles against the exact ones, for samples of 1, 2, 5 and more values with ties,
    zeros, equal values and outliers over 15 orders of magnitude: within summaries.ACCURACY each time."""
    import random

    from tests.store.test_periods import percentile

    rng = random.Random(11)
    samples = [[0.0], [7.0], [1e-6, 1e9], [3.0, 3.0], [0.0, 0.0, 5.0, 5.0, 1e12], [42.0] * 9]
    for n in (1, 2, 3, 5, 8, 20, 101):
        for _ in range(40):
            samples.append(
                [
                    rng.choice([0.0, 1.0, round(rng.lognormvariate(5, 3), 3), 10 ** rng.uniform(-6, 9)])
                    for _ in range(n)
                ]
            )
    for values in samples:
        hist: dict[str, int] = {}
        for v in values:
            hist[summaries.log_key(v)] = hist.get(summaries.log_key(v), 0) + 1
        got = summaries.percentiles(hist, False, (0.5, 0.95, 0.99))
        for q, g in zip((0.5, 0.95, 0.99), got, strict=True):
            want = percentile(values, q)
            assert g == pytest.approx(want, rel=summaries.ACCURACY, abs=0), (values, q)


def test_runs_without_tool_calls_or_spend_fall_in_a_bucket_of_their_own(tmp_path):
    """``histogram_quantile`` interpolates inside a bucket, the first one from 0: with (0, 1] as the first
    bucket, an agent whose runs call no tool had a Prometheus p95 of 0.95 tool calls (``stats``: 0)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    import agent_otel
    from agent_otel import conventions as c
    from tests.helpers import metric_points

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    agent_otel.setup("zeros", meter_provider=provider, store=False, instrument=False, span_exporters=[])
    try:
        for _ in range(3):
            with agent_otel.run("chat-only", model="my-local-model") as run:
                run.record_llm(model="my-local-model", input_tokens=10, output_tokens=5)
        agent_otel.shutdown()
        points = metric_points(reader)
    finally:
        agent_otel.shutdown()
        provider.shutdown(timeout_millis=1000)
    for spec in (c.M_TOOL_CALLS, c.M_SPEND_PER_RUN):
        ((_, point),) = points[spec.name]
        assert point.explicit_bounds[0] == 0 and point.bucket_counts[0] == point.count == 3, spec.name


def test_figures_while_a_gc_is_cut_short(location, monkeypatch):
    """The store sink's daily gc goes a few batches at a time between writes, and a gc with a time budget
    stops between two: the runs and the summaries left must agree at every step (the summaries counted
    runs already deleted, 2,500 where 1,500 were left, and runs whose events had gone first)."""
    from agent_otel.store import retention

    monkeypatch.setattr(retention, "BATCH_RUNS", 150)
    d = day_start(4)
    store = stored(
        location, runs([d + i * 7 * 60_000 for i in range(600)], duration_ms=[float(i) for i in range(600)])
    )
    try:
        steps = retention.steps(store, {"logs_days": 1}, d + 4 * DAY)
        for left in (600, 450, 300):
            assert figures_agree(store, d - DAY, d + 3 * DAY)["runs"] == left
            next(steps)
        steps.close()
        figures_agree(store, d + DAY - 1, d + DAY + 3 * HOUR + 1)
    finally:
        store.close()


def test_events_with_the_same_time_are_each_exported_once(location):
    """Events of the same millisecond (a fast run, several processes at once) across the pages ``export``
    reads them in: each once, in time order."""
    now = seed.now_ms()
    records = runs([now - 5000] * 4, duration_ms=0.0, tool_calls=5)  # every event at the same ts_ms
    store = stored(location, records)
    try:
        everything = list(store.iter_events())
        paged = list(store.iter_events(chunk=3))
    finally:
        store.close()
    assert len({e["ts_ms"] for e in everything}) == 1
    assert len(paged) == len(everything) == sum(kind == "event" for kind, _ in records)
    key = [(e["run_id"], e["kind"], e["step_id"]) for e in paged]
    assert len(set(key)) == len(key) and key == [(e["run_id"], e["kind"], e["step_id"]) for e in everything]


def test_a_migrated_store_with_a_run_from_a_clock_at_1970_is_summarized_in_a_few_steps(tmp_path, monkeypatch):
    """A run stored by a machine whose clock was at 1970 (no RTC yet): summarizing a migrated store went
    back one empty hour per step, half a million steps of the sink's maintenance. Empty hours are skipped."""
    from agent_otel.store import Target, schema

    path = str(tmp_path / "old.db")
    now = seed.now_ms()
    with monkeypatch.context() as m:  # written by an agent-otel of schema 5
        m.setitem(schema.MIGRATIONS, "sqlite", [s for s in schema.MIGRATIONS["sqlite"] if s[0] < 6])
        write_through_sink(
            path, runs([HOUR + 5, now - 3 * HOUR, now - 2 * HOUR], duration_ms=[5.0, 7.0, 9.0])
        )
    store = open_store(Target("sqlite", path))  # migrates to 6: summaries from the next hour on
    try:
        steps = 0
        while summaries.backfill_step(store) and steps < 50:
            steps += 1
        assert steps < 10 and summaries.covered_from(store) == 0
        figures_agree(store, 0, now + HOUR)
        assert periods.period(store, 0, now + HOUR, method=periods.SUMMARIZED)["runs"] == 3
    finally:
        store.close()
