"""Usage a response did not report is unknown, not 0 tokens (which a reader takes for a free request): a
streamed Chat Completion without ``stream_options.include_usage``, through the real OpenAI client against
the fake API, then the store and the ``agent-otel show`` / ``stats`` a user reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel import integrations
from tests.cli.conftest import CLI
from tests.conftest import ListSink
from tests.helpers import metric_points
from tests.integrations.conftest import Reply, by_name
from tests.integrations.test_openai_client import chunk, completion

openai = pytest.importorskip("openai")

MESSAGES = [{"role": "user", "content": "x"}]


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """agent-otel with the local SQLite store in the CLI's home, plus in-memory spans, events, metrics."""
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "OTEL_SDK_DISABLED", "AGENT_OTEL_EVENTS"):
        monkeypatch.delenv(var, raising=False)
    cli = CLI(tmp_path / "home")
    monkeypatch.setenv("AGENT_OTEL_HOME", str(cli.home))
    agent_otel.shutdown()
    exporter, reader, sink = InMemorySpanExporter(), InMemoryMetricReader(), ListSink()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    agent_otel.setup(
        "test-service",
        span_exporters=[exporter],
        meter_provider=provider,
        event_sinks=[sink],
        store=cli.db,
        instrument=False,
        config={"exporter": {"probe_local": False}},
    )
    integrations.instrument(["openai"])
    yield cli, exporter, reader, sink
    integrations.uninstrument()
    agent_otel.shutdown()
    provider.shutdown(timeout_millis=1000)


def test_a_stream_without_usage_is_unknown_usage_not_zero_tokens(stored, fake_api):
    cli, exporter, reader, sink = stored
    stream = [
        (None, chunk({"role": "assistant", "content": "a"})),
        (None, chunk({"content": "b"})),
        (None, "[DONE]"),
    ]
    fake_api.reply(Reply(stream=stream), Reply(completion(10, 2)), Reply(completion(0, 0)))
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    with agent_otel.run("streamer") as run:
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # a real 0 stays 0
    agent_otel.shutdown()  # everything written: spans, events, the store

    unknown, known, zero = sorted(
        by_name(exporter.get_finished_spans(), "chat gpt-4o"), key=lambda s: s.start_time
    )
    assert not [k for k in unknown.attributes if k.startswith("gen_ai.usage.")]
    assert "agent.cost_usd" not in unknown.attributes  # no spend computed from tokens nobody reported
    assert (
        known.attributes["gen_ai.usage.input_tokens"],
        known.attributes["gen_ai.usage.output_tokens"],
    ) == (10, 2)
    assert (zero.attributes["gen_ai.usage.input_tokens"], zero.attributes["gen_ai.usage.output_tokens"]) == (
        0,
        0,
    )
    usages = [e["usage"] for e in sink.events("llm_result")]
    assert [("input_tokens" in u, u.get("input_tokens")) for u in usages] == [
        (False, None),
        (True, 10),
        (True, 0),
    ]
    assert run.result.usage["llm_calls"] == 3 and run.result.usage["input_tokens"] == 10

    # The GenAI token metric: the two requests whose usage is known (10 + 0 input tokens), not a third 0.
    tokens = metric_points(reader)["gen_ai.client.token.usage"]
    inputs = [v for p, v in tokens if p["gen_ai.token.type"] == "input"]
    assert [(v.count, v.sum) for v in inputs] == [(2, 10)]
    per_request = [
        v for p, v in metric_points(reader)["agent.tokens_per_request"] if p["agent"] == "streamer"
    ]
    assert [(v.count, v.sum) for v in per_request] == [(2, 12)]

    shown = cli("show", run.run_id)
    assert shown.returncode == 0, shown.stderr
    llm_lines = [line for line in shown.stdout.splitlines() if " llm " in line]
    assert len(llm_lines) == 3
    assert "tokens unknown" in llm_lines[0] and "0 in" not in llm_lines[0]
    assert "10 in / 2 out" in llm_lines[1] and "0 in / 0 out" in llm_lines[2]
    assert "1 LLM call of unknown usage" in shown.stdout

    stats = cli("stats", "--since", "1h", "--json")
    assert stats.returncode == 0, stats.stderr
    per_request = json.loads(stats.stdout)["tokens_per_request"]
    # Every request counted, the unknown one apart; the real 0 is a request of 0 tokens in the mean.
    assert (per_request["requests"], per_request["without_usage"]) == (3, 1)
    assert per_request["mean"] == pytest.approx(6.0)
