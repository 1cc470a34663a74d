"""agent_otel.span_attributes: agent-otel's own attributes reach the SDK's spans without a second cleaning,
and the spans are exactly those of the public path (every attribute, in order, the dropped count, the
events, the status), for every kind of agent-otel span, under span limits, with the application's
samplers and processor lists, and what span processors see at on_start.

These tests fail when an opentelemetry-sdk upgrade changes the private structures the direct path uses:
either the path is no longer taken (agent-otel stays correct but slower), or, worse, it is taken and
makes other spans."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import opentelemetry.attributes as otel_attributes
import pytest
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    DEFAULT_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

import agent_otel
from agent_otel import conventions as c
from agent_otel import llm, runtime, sampling, span_attributes
from agent_otel import metrics as metrics_mod
from tests.conftest import ListSink

# Values that differ from one run of a scenario to the next (ids, durations, hashes of ids).
VARYING = {c.RUN_ID, c.PARENT_RUN_ID, "agent.replay_of", "agent.resume_of"}


class Cleaned:
    """Counts what the SDK's attribute cleaning is asked to clean (its mappings' keys)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: list[str] = []
        if hasattr(otel_attributes, "_clean_attribute_value"):  # SDK 1.45 and later: a mapping at a time
            real = otel_attributes._clean_attribute_value

            def counting(value: Any, max_len: Any) -> Any:
                if isinstance(value, Mapping):
                    self.keys.extend(value)
                return real(value, max_len)

            monkeypatch.setattr(otel_attributes, "_clean_attribute_value", counting)
            return
        # SDK 1.44 (pyproject's floor): a key at a time, extended attributes (log records, nested
        # mappings) through their own function
        for name in ("_clean_attribute", "_clean_extended_attribute"):
            original = getattr(otel_attributes, name)

            def by_key(key: str, value: Any, max_len: Any, _real: Any = original) -> Any:
                self.keys.append(key)
                return _real(key, value, max_len)

            monkeypatch.setattr(otel_attributes, name, by_key)


class OnStart(SpanProcessor):
    """An application's processor reading each span's attributes as it starts."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[tuple[str, Any]]]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.seen.append((span.name, list(span.attributes.items())))


@contextlib.contextmanager
def installed(provider: TracerProvider, tmp_path: Any) -> Iterator[tuple[InMemorySpanExporter, ListSink]]:
    agent_otel.shutdown()
    exporter, sink = InMemorySpanExporter(), ListSink()
    agent_otel.setup(
        "test-service",
        tracer_provider=provider,
        span_exporters=[exporter],
        event_sinks=[sink],
        store=False,
        instrument=False,
        config={"exporter": {"probe_local": False, "schedule_delay_s": 0.05}},
    )
    try:
        yield exporter, sink
    finally:
        agent_otel.shutdown()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "AGENT_OTEL_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    # Every run an exemplar run (agent.exemplar on its span), not the first of each agent per second.
    monkeypatch.setattr(metrics_mod, "EXEMPLAR_INTERVAL_S", -1.0)
    yield
    agent_otel.shutdown()


@agent_otel.tool(name="lookup", side_effects=True)
def lookup(query: str, limit: int = 3) -> dict[str, Any]:
    """Look something up."""
    return {"query": query, "hits": list(range(limit))}


@agent_otel.tool(name="explode")
def explode(what: str) -> None:
    raise ValueError(f"cannot {what}")


@agent_otel.tool(name="slow_async")
async def slow_async(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


def scenario() -> None:
    """Every kind of agent-otel span: runs (completed, error, budget stop, a sub-agent), tool calls (ok,
    failed, async, explicit, nested), LLM requests (recorded after the fact, and an integration's request
    with response attributes that need cleaning: a list of finish reasons)."""
    with agent_otel.run(
        "support",
        model="gpt-4o",
        prompt_version="v12",
        tools_version="3",
        input={"ticket": 7},
        conversation_id="conv-1",
    ) as run:
        run.record_llm(model="gpt-4o", input_tokens=812, output_tokens=96, provider="openai")
        lookup("refund policy", limit=2)
        with contextlib.suppress(ValueError):
            explode("parse")
        run.call_tool("http.get", lambda url: {"status": 200, "url": url}, {"url": "https://x.test/a"})
        asyncio.run(slow_async(4))
        step = llm.begin(run, "gpt-4o-mini", "call-9", provider="openai")
        assert step is not None
        step.request({"temperature": 0.2, "max_tokens": 128})
        step.response(
            response_id="resp-1", finish_reasons=["stop", "tool_calls"], response_model="gpt-4o-mini"
        )
        step.finish(20, 4)
        with agent_otel.run("sub-agent", model="claude-3-5-sonnet", input="sub") as sub:
            sub.record_llm(model="claude-3-5-sonnet", input_tokens=5, output_tokens=1)
            lookup("inner")
    with contextlib.suppress(RuntimeError), agent_otel.run("support", model="gpt-4o", input=1):
        raise RuntimeError("agent bug")
    with (
        contextlib.suppress(agent_otel.AgentStopped),
        agent_otel.run("support", input=2, budget=agent_otel.Budget(max_steps=2)),
    ):
        for i in range(5):
            lookup(f"q{i}")


def normalized(spans: Any) -> list[dict[str, Any]]:
    out = []
    for s in spans:
        out.append(
            {
                "name": s.name,
                "kind": s.kind,
                "attributes": [(k, "<varies>" if k in VARYING else v) for k, v in s.attributes.items()],
                "types": [type(v) for v in s.attributes.values()],
                "dropped": s.dropped_attributes,
                "events": [
                    (e.name, [(k, v) for k, v in e.attributes.items() if k != "exception.stacktrace"])
                    for e in s.events
                ],
                "status": (s.status.status_code, s.status.description),
            }
        )
    return out


def record(provider: TracerProvider, tmp_path: Any, direct: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The spans and events of one scenario with the direct path on or off, and what was cleaned."""
    with monkeypatch.context() as m:
        if not direct:
            m.setattr(span_attributes, "_span_type", None)
        cleaned = Cleaned(m)
        on_start = OnStart()
        provider.add_span_processor(on_start)
        with installed(provider, tmp_path) as (exporter, sink):
            cleaned.keys.clear()  # (the resources setup() made)
            scenario()
            assert agent_otel.sdk.flush(5.0)
            spans = normalized(exporter.get_finished_spans())
            events = [without_times(e) for e in sink.events()]
            tracer = runtime.current().tracer
        return spans, events, cleaned.keys, on_start.seen, tracer


def without_times(record: Any) -> Any:
    """An event without what differs from one run of a scenario to the next (times, ids)."""
    if isinstance(record, dict):
        return {
            k: without_times(v)
            for k, v in record.items()
            if k not in ("ts_ms", "duration_ms", "run_id", "trace_id", "span_id")
        }
    return record


def seen_normalized(seen: list[tuple[str, list[tuple[str, Any]]]]) -> list[Any]:
    return [(name, [(k, "<varies>" if k in VARYING else v) for k, v in attrs]) for name, attrs in seen]


def both(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, **provider_kwargs: Any) -> tuple[Any, Any]:
    direct = record(TracerProvider(shutdown_on_exit=False, **provider_kwargs), tmp_path, True, monkeypatch)
    public = record(TracerProvider(shutdown_on_exit=False, **provider_kwargs), tmp_path, False, monkeypatch)
    return direct, public


def test_the_direct_path_is_taken_with_the_installed_sdk_and_makes_the_spans_of_the_public_path(
    monkeypatch, tmp_path
):
    direct, public = both(monkeypatch, tmp_path)
    assert isinstance(direct[4].sampler, sampling.HandOver)  # agent-otel's tracer hands over
    spans, events, cleaned, seen, _ = direct
    assert len(spans) == 14  # 4 runs, 7 tool calls (2 in the budget's run), 3 LLM requests
    assert spans == public[0]  # attribute for attribute, in order, with types, dropped counts, events
    assert events == public[1]  # the unified events (what the store and metrics get) too
    assert seen_normalized(seen) == seen_normalized(public[3])  # what processors see at on_start
    # The public path cleans agent-otel's attributes; the direct path does not (but for the list of
    # finish reasons, which needs cleaning, and the exception events: their mappings go the public way).
    # The run's stop event ("stop_class" is only there) goes the direct way too.
    own = {c.GEN_AI_OPERATION_NAME, c.STEP_ID, c.TOOL_STATUS, c.TOOL_RESULT_SHA, c.STEPS, c.TOOL_CALLS}
    own.add("stop_class")
    assert own <= set(public[2])
    assert not own & set(cleaned), sorted(own & set(cleaned))
    assert c.GEN_AI_RESPONSE_FINISH_REASONS in cleaned
    by_name: dict[str, dict[str, Any]] = {}
    for name, attrs in seen:
        by_name.setdefault(name, dict(attrs))  # the first span of each name
    assert by_name["execute_tool lookup"][c.GEN_AI_OPERATION_NAME] == c.OP_EXECUTE_TOOL
    assert by_name["invoke_agent support"][c.PROMPT_VERSION] == "v12"


@pytest.mark.parametrize(
    "limits",
    [
        {"max_span_attributes": 5},  # the count limit: oldest dropped, agent-otel's essentials set again
        {"max_span_attributes": 9},  # fits at start, not after the end's attributes
        {"max_span_attribute_length": 6},  # values truncated
        {"max_attributes": 0},
    ],
)
def test_under_span_limits_the_spans_are_those_of_the_public_path(monkeypatch, tmp_path, limits):
    direct, public = both(monkeypatch, tmp_path, span_limits=SpanLimits(**limits))
    assert direct[0] == public[0]
    assert direct[1] == public[1]
    assert seen_normalized(direct[3]) == seen_normalized(public[3])
    assert any(s["dropped"] for s in direct[0]) or "max_span_attribute_length" in limits


def test_within_the_default_limits_a_span_with_many_attributes_keeps_them_all(monkeypatch, tmp_path):
    direct, public = both(monkeypatch, tmp_path, span_limits=SpanLimits(max_span_attributes=128))
    assert direct[0] == public[0] and not any(s["dropped"] for s in direct[0])


class AttributeSampler(Sampler):
    """An application's sampler that decides on the attributes it is given."""

    def __init__(self) -> None:
        self.given: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.given.append(dict(attributes or {}))
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return "AttributeSampler"


@pytest.mark.parametrize(
    "sampler",
    [DEFAULT_ON, ALWAYS_ON, ParentBasedTraceIdRatio(1.0), ParentBased(TraceIdRatioBased(1.0))],
    ids=["parentbased_always_on", "always_on", "parentbased_traceidratio", "parentbased_ratio"],
)
def test_the_sdks_samplers_hand_over(monkeypatch, tmp_path, sampler):
    direct, public = both(monkeypatch, tmp_path, sampler=sampler)
    assert isinstance(direct[4].sampler, sampling.HandOver) and direct[4].sampler.sampler is sampler
    assert direct[0] == public[0]
    assert c.STEP_ID not in direct[2]


def test_an_application_sampler_of_its_own_sees_the_attributes_and_nothing_is_handed_over(
    monkeypatch, tmp_path
):
    samplers = AttributeSampler(), AttributeSampler()
    direct = record(TracerProvider(sampler=samplers[0], shutdown_on_exit=False), tmp_path, True, monkeypatch)
    public = record(TracerProvider(sampler=samplers[1], shutdown_on_exit=False), tmp_path, False, monkeypatch)
    assert not isinstance(direct[4].sampler, sampling.HandOver)
    assert direct[0] == public[0]
    assert len(samplers[0].given) == len(samplers[1].given) == 14
    assert samplers[0].given[0][c.GEN_AI_OPERATION_NAME] == c.OP_INVOKE_AGENT
    assert all(c.GEN_AI_OPERATION_NAME in g for g in samplers[0].given)


def test_with_the_sdks_concurrent_processor_list_processors_see_the_attributes_at_on_start(
    monkeypatch, tmp_path
):
    results = []
    for direct in (True, False):
        provider = TracerProvider(
            shutdown_on_exit=False, active_span_processor=ConcurrentMultiSpanProcessor(2)
        )
        results.append(record(provider, tmp_path, direct, monkeypatch))
    assert isinstance(results[0][4].sampler, sampling.HandOver)
    assert results[0][0] == results[1][0]
    assert seen_normalized(results[0][3]) == seen_normalized(results[1][3])
    assert all(dict(attrs).get(c.GEN_AI_OPERATION_NAME) for _, attrs in results[0][3])


# --- set_attributes on single spans, against the public path -------------------------------------------


def two_spans(**limits: Any) -> tuple[Any, Any]:
    provider = TracerProvider(shutdown_on_exit=False, span_limits=SpanLimits(**limits))
    tracer = provider.get_tracer("t")
    return tracer.start_span("a", attributes={"x": 1, "y": "b"}), tracer.start_span(
        "b", attributes={"x": 1, "y": "b"}
    )


class Odd:
    def __str__(self) -> str:
        return "odd"


class Str(str):
    pass


@pytest.mark.parametrize(
    "attributes",
    [
        {"a": "1", "b": 2, "c": 3.5, "d": True},
        {"y": "again", "z": 1},  # y set again: it moves to the end
        {"x": 2, "y": "c"},
        {"list": ["a", "b"], "k": 1},
        {"tuple": (1, 2)},
        {"none": None, "k": "v"},
        {"obj": Odd()},
        {"sub": Str("s")},
        {"bytes": b"\x00"},
        {"": "empty key", "k": 1},
        {1: "int key"},
        {"big": 2**80, "nan": float("nan")},
        {},
    ],
    ids=lambda a: ",".join(map(str, a)) or "empty",
)
@pytest.mark.parametrize(
    "limits", [{}, {"max_span_attributes": 3}, {"max_span_attribute_length": 2}, {"max_span_attributes": 0}]
)
def test_set_attributes_makes_what_the_public_call_makes(attributes, limits):
    direct, public = two_spans(**limits)
    span_attributes.set_attributes(direct, dict(attributes))
    public.set_attributes(dict(attributes))
    assert list(map(repr, direct.attributes.items())) == list(map(repr, public.attributes.items()))
    assert direct.dropped_attributes == public.dropped_attributes


def test_set_attributes_takes_the_direct_path_only_where_cleaning_would_change_nothing(monkeypatch):
    direct, _ = two_spans()
    cleaned = Cleaned(monkeypatch)
    span_attributes.set_attributes(direct, {"k": "v", "n": 1})
    assert cleaned.keys == []
    span_attributes.set_attributes(direct, {"k": ["v"]})
    assert cleaned.keys == ["k"]


def test_an_ended_span_is_not_changed_and_the_sdks_warning_is_logged(caplog):
    direct, public = two_spans()
    direct.end()
    public.end()
    with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
        span_attributes.set_attributes(direct, {"late": 1})
        public.set_attributes({"late": 1})
    assert dict(direct.attributes) == dict(public.attributes) == {"x": 1, "y": "b"}
    assert [r.getMessage() for r in caplog.records] == ["Setting attribute on ended span."] * 2


def test_spans_not_of_the_sdk_take_the_public_call():
    from opentelemetry.trace import INVALID_SPAN

    span_attributes.set_attributes(INVALID_SPAN, {"k": "v"})  # a no-op, as its own set_attributes is


def test_another_tracers_start_leaves_the_attributes_to_the_span_constructor(monkeypatch):
    """A tracer whose sampler is not HandOver (an application's, or before setup) cleans them as before."""
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("app")
    cleaned = Cleaned(monkeypatch)
    span = span_attributes.start_span(tracer, "s", None, SpanKind.INTERNAL, {"k": "v", "n": 2})
    assert list(span.attributes.items()) == [("k", "v"), ("n", 2)]
    assert cleaned.keys == ["k", "n"]
    assert span_attributes.handover.given is None and span_attributes.handover.placing is None


EVENT_ATTRIBUTES = [
    {"agent.stop_reason": "completed", "stop_class": "success"},
    {"a": "1", "b": 2, "c": 3.5, "d": True},
    {"list": ["a", "b"], "k": 1},
    {"none": None, "k": "v"},
    {"sub": Str("s")},
    {"": "empty key", "k": 1},
    {},
]


@pytest.mark.parametrize("attributes", EVENT_ATTRIBUTES, ids=lambda a: ",".join(map(str, a)) or "empty")
@pytest.mark.parametrize(
    "limits", [{}, {"max_event_attributes": 1}, {"max_attribute_length": 2}, {"max_event_attributes": 0}]
)
def test_add_event_makes_what_the_public_call_makes(attributes, limits):
    direct, public = two_spans(**limits)
    span_attributes.add_event(direct, "agent.stop", dict(attributes))
    public.add_event("agent.stop", dict(attributes))
    (made,), (expected,) = direct.events, public.events
    assert made.name == expected.name
    assert list(map(repr, made.attributes.items())) == list(map(repr, expected.attributes.items()))
    assert made.dropped_attributes == expected.dropped_attributes
    with pytest.raises(TypeError):  # immutable, as the SDK's
        made.attributes["late"] = 1  # type: ignore[index]


def test_add_event_takes_the_direct_path_only_where_cleaning_would_change_nothing(monkeypatch):
    direct, _ = two_spans()
    cleaned = Cleaned(monkeypatch)
    span_attributes.add_event(direct, "e", {"k": "v", "n": 1})
    assert cleaned.keys == []
    span_attributes.add_event(direct, "e", {"k": ["v"]})
    assert cleaned.keys == ["k"]
    span_attributes.disable()
    try:
        span_attributes.add_event(direct, "e", {"p": "v"})
        assert cleaned.keys == ["k", "p"]
    finally:
        span_attributes.enable()
    assert [dict(e.attributes) for e in direct.events] == [{"k": "v", "n": 1}, {"k": ("v",)}, {"p": "v"}]


def test_an_ended_span_gets_no_event_and_the_sdks_warning_is_logged(caplog):
    direct, public = two_spans()
    direct.end()
    public.end()
    with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
        span_attributes.add_event(direct, "late", {"k": 1})
        public.add_event("late", {"k": 1})
    assert direct.events == public.events == ()
    assert len(caplog.records) == 2
    assert caplog.records[0].getMessage() == caplog.records[1].getMessage()
