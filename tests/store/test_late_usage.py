"""Usage that arrives after its run stopped: a request still in flight when the run's block ended (on
another thread or task; a stream's final usage) adds its tokens and spend to the run, and the store adds
them to the stopped run's row (``run_usage`` records), so that ``runs``, ``show`` and ``stats`` count
what the run cost."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import agent_otel
from agent_otel import llm, sdk
from agent_otel.store import StoreSink, periods
from agent_otel.store.db import open_store
from agent_otel.store.location import resolve
from tests.cli.conftest import CLI
from tests.integrations import conftest as integration_fixtures
from tests.store.seed import HOUR_MS, now_ms

AGENT = "late-usage"
fake_api = integration_fixtures.fake_api  # the fake LLM API and instrument() of tests/integrations
instrument = integration_fixtures.instrument


def run_with_a_late_request(run_id: str | None = None) -> tuple[agent_otel.Run, agent_otel.StopResult]:
    """One run: a request answered in time, and one still in flight when the block ends, answered after."""
    begun, answer = threading.Event(), threading.Event()

    def in_flight(run: agent_otel.Run) -> None:
        call = llm.begin(run, "gpt-4o", attach=False)
        assert call is not None
        begun.set()
        answer.wait(10)
        call.finish(1000, 200)  # the response (a stream's final chunk) comes after the run stopped

    with agent_otel.run(AGENT, model="gpt-4o", run_id=run_id) as run:
        run.record_llm(input_tokens=100, output_tokens=10)
        worker = threading.Thread(target=in_flight, args=(run,))
        worker.start()
        assert begun.wait(10)
    result = run.result
    assert result is not None
    answer.set()
    worker.join(10)
    return run, result


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    pytest.importorskip("psycopg")
    return request.getfixturevalue("postgres").new_database()


def test_usage_that_arrives_after_the_stop_is_in_the_runs_row_and_the_cli_figures(
    store_url: str, setup_agent: Any, tmp_path: Any
) -> None:
    setup_agent(store=store_url)
    (sink,) = [s for s in sdk._installed.pipeline.sinks() if isinstance(s, StoreSink)]  # type: ignore[union-attr]
    earlier = "a" * 32
    sink.shift_run(earlier, 2 * HOUR_MS)  # a whole past hour: stats reads it from the summaries
    runs = [run_with_a_late_request(earlier), run_with_a_late_request()]  # ... and this one from the rows
    assert sdk.flush(10)
    for run, result in runs:
        assert result.usage["input_tokens"] == 100 and result.usage["output_tokens"] == 10  # at the stop
        assert run.usage["input_tokens"] == 1100 and run.usage["output_tokens"] == 210  # with the late one
        assert run.usage["cost_usd"] > result.usage["cost_usd"] > 0
    agent_otel.shutdown()

    cost = runs[0][0].usage["cost_usd"]
    cli = CLI(tmp_path / "home")
    listed = cli("--store", store_url, "runs", "--json", "--since", "4h")
    assert listed.returncode == 0, listed.stderr
    rows = {r["run_id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {run.run_id for run, _ in runs}
    for row in rows.values():
        assert (row["input_tokens"], row["output_tokens"]) == (1100, 210), row
        assert row["cost_usd"] == pytest.approx(cost), row
    shown = cli("--store", store_url, "show", runs[1][0].run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    run_row = json.loads(shown.stdout)["run"]
    assert (run_row["input_tokens"], run_row["output_tokens"]) == (1100, 210), run_row
    assert run_row["cost_usd"] == pytest.approx(cost), run_row
    stats = cli("--store", store_url, "stats", "--json", "--since", "4h")
    assert stats.returncode == 0, stats.stderr
    spend = json.loads(stats.stdout)["spend_per_run_usd"]
    assert spend["total"] == pytest.approx(2 * cost) and spend["mean"] == pytest.approx(cost), spend

    # The earlier run's hour is read from the summaries when they are asked for: the same spend.
    store = open_store(resolve(store_url), create=False)
    try:
        until = now_ms()
        for method in ("exact", "summarized"):
            figures = periods.period(store, until - 3 * HOUR_MS, until - HOUR_MS, AGENT, method=method)
            assert figures["method"] == method
            assert figures["runs"] == 1, figures
            assert figures["spend_per_run_usd"]["total"] == pytest.approx(cost), (method, figures)
            assert figures["spend_per_run_usd"]["p95"] == pytest.approx(cost, rel=0.011), (method, figures)
            assert figures["tokens_per_request"]["mean"] == pytest.approx(655), (method, figures)
    finally:
        store.close()


def test_a_streams_final_usage_read_after_its_run_stopped_is_in_the_runs_row_and_its_request(
    store_url: str, setup_agent: Any, instrument: Any, fake_api: Any, tmp_path: Any
) -> None:
    """An OpenAI stream (``include_usage``: the usage comes in its last chunk) read partly in the run and
    on to its end after it: the run's stop ends the request's step with the usage known then (none), and
    the final chunk's usage, read later, goes to the stopped run's row and to the request's stored event
    (before, it was lost: the run cost nothing, the request had no usage)."""
    pytest.importorskip("openai")
    from tests.integrations.test_openai_client import client, streamed_words

    setup_agent(store=store_url)
    instrument("openai")
    fake_api.reply(streamed_words())
    kwargs: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    with agent_otel.run("skimmer", model="gpt-4o") as run:
        stream = client(fake_api).chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
        assert next(iter(stream)).choices[0].delta.content == "a"
    assert run.result is not None and run.result.usage["total_tokens"] == 0  # nothing reported yet
    assert [c.choices[0].delta.content for c in stream if c.choices][-1] is None  # read on to its end
    assert (run.usage["input_tokens"], run.usage["output_tokens"]) == (12, 5)
    cost = run.usage["cost_usd"]
    assert cost > 0
    assert sdk.flush(10)
    agent_otel.shutdown()

    cli = CLI(tmp_path / "home")
    shown = cli("--store", store_url, "show", run.run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    out = json.loads(shown.stdout)
    assert (out["run"]["input_tokens"], out["run"]["output_tokens"]) == (12, 5), out["run"]
    assert out["run"]["cost_usd"] == pytest.approx(cost)
    (request,) = [e for e in out["events"] if e["kind"] == "llm_result"]
    assert (request["usage"]["input_tokens"], request["usage"]["output_tokens"]) == (12, 5), request
    stats = cli("--store", store_url, "stats", "--json", "--agent", "skimmer")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert (
        figures["tokens_per_request"]["requests"] == 1 and figures["tokens_per_request"]["without_usage"] == 0
    )
    assert figures["tokens_per_request"]["mean"] == 17, figures
    assert figures["spend_per_run_usd"]["total"] == pytest.approx(cost), figures
