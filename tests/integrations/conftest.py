"""Fixtures for the framework integration tests: instrumenting, span-tree helpers, a fake model API.

Frameworks are driven by their own fake/function/scripted models; the OpenAI and Anthropic clients talk
to :class:`FakeAPI`, a small HTTP server on 127.0.0.1 that answers like the real APIs (JSON and SSE).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from agent_otel import integrations

SCOPE = "agent_otel"


@pytest.fixture
def instrument() -> Iterator[Callable[..., list[str]]]:
    """``instrument("langchain", ...)``; undone after the test. Combine with ``telemetry`` or ``guarded``."""
    names: list[str] = []

    def do(*wanted: str) -> list[str]:
        names.extend(wanted)
        return integrations.instrument(list(wanted))

    yield do
    integrations.uninstrument(names)


def ours(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """Spans agent-otel produced (frameworks such as MCP also emit their own OpenTelemetry spans)."""
    return [s for s in spans if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE]


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = by_name(spans, name)
    assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in spans]}"
    return found[0]


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    for candidate in spans:
        if candidate.context.span_id == span.parent.span_id:
            return candidate
    return None


def children(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """Direct children of ``span`` in start order."""
    found = [s for s in spans if s.parent is not None and s.parent.span_id == span.context.span_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def steps(run_span: ReadableSpan, spans: list[ReadableSpan]) -> list[tuple[int, str]]:
    """(agent.step_id, span name) of every tool/LLM span of the run, in step order."""
    run_id = run_span.attributes["agent.run_id"]
    found = [
        (s.attributes["agent.step_id"], s.name)
        for s in spans
        if s.attributes.get("agent.run_id") == run_id and "agent.step_id" in s.attributes
    ]
    return sorted(found)


def request_span(spans: list[ReadableSpan], run_id: str) -> ReadableSpan:
    """The one span of a run's (one) model request: agent-otel's ``chat`` span, or the client library's
    own GenAI span that agent-otel adopted (agent_otel.native)."""
    found = [
        s
        for s in spans
        if s.attributes.get("agent.run_id") == run_id
        and "agent.step_id" in s.attributes
        and s.attributes.get("gen_ai.operation.name") == "chat"
    ]
    assert len(found) == 1, f"expected one request span, got {[s.name for s in found]}"
    return found[0]


def usage_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """Spans that carry a request's usage (the rule: each request's usage is on exactly one span)."""
    return [s for s in spans if "gen_ai.usage.input_tokens" in (s.attributes or {})]


def _chats(run_span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    run_id = run_span.attributes["agent.run_id"]
    chats = [
        s
        for s in spans
        if s.attributes.get("agent.run_id") == run_id and s.attributes.get("gen_ai.operation.name") == "chat"
    ]
    return sorted(chats, key=lambda s: s.attributes["agent.step_id"])


def chat_usage(run_span: ReadableSpan, spans: list[ReadableSpan]) -> list[tuple[int, int]]:
    """(input tokens, output tokens) of each ``chat`` span of the run, in step order."""
    return [
        (s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"])
        for s in _chats(run_span, spans)
    ]


def chat_tokens(run_span: ReadableSpan, spans: list[ReadableSpan]) -> list[tuple[Any, Any]]:
    """Like :func:`chat_usage`, with None where a ``chat`` span has no ``gen_ai.usage.*`` (unknown usage)."""
    return [
        (s.attributes.get("gen_ai.usage.input_tokens"), s.attributes.get("gen_ai.usage.output_tokens"))
        for s in _chats(run_span, spans)
    ]


def assert_unknown_then_zero_usage(telemetry: Any, run_span: ReadableSpan, spans: list[ReadableSpan]) -> None:
    """The run's two LLM steps: the first reported no usage (unknown: no token keys on its span or in its
    event, no spend), the second reported 0 tokens (0, not unknown); the run's totals add only the known."""
    assert chat_tokens(run_span, spans) == [(None, None), (0, 0)]
    run_id = run_span.attributes["agent.run_id"]
    usages = [e["usage"] for e in telemetry.events("llm_result") if e["run_id"] == run_id]
    assert [(u.get("input_tokens"), u.get("output_tokens")) for u in usages] == [(None, None), (0, 0)]
    assert "input_tokens" not in usages[0] and "output_tokens" not in usages[0]
    (stop,) = [e for e in telemetry.events("stop") if e["run_id"] == run_id]
    assert stop["usage"]["llm_calls"] == 2 and stop["usage"]["input_tokens"] == 0


def stop_event(run_span: ReadableSpan) -> dict[str, Any]:
    events = [e for e in run_span.events if e.name == "agent.stop"]
    assert len(events) == 1, f"expected one agent.stop event, got {len(events)}"
    return dict(events[0].attributes)


def approval_events(run_span: ReadableSpan) -> list[dict[str, Any]]:
    """The ``agent.approval`` events on a run span, in order, with all their attributes."""
    return [dict(e.attributes) for e in run_span.events if e.name == "agent.approval"]


def approval(call_id: str, tool: str, decision: str) -> dict[str, Any]:
    """An ``agent.approval`` event's attributes, as the README documents them."""
    return {"gen_ai.tool.call.id": call_id, "gen_ai.tool.name": tool, "agent.approval.decision": decision}


def anywhere(spans: list[ReadableSpan], text: str) -> bool:
    """Whether ``text`` is in any attribute value of the spans, their events or links (a privacy check)."""
    values: list[Any] = []
    for span in spans:
        values.extend((span.attributes or {}).values())
        for part in (*span.events, *span.links):
            values.extend((part.attributes or {}).values())
    return any(text in str(v) for v in values)


# --- a fake OpenAI / Anthropic API on 127.0.0.1 ------------------------------------------------------


@dataclass
class Reply:
    """One canned answer: a JSON body, or SSE events (``stream``) as (event name or None, data)."""

    body: Any = None
    stream: list[tuple[str | None, Any]] | None = None
    status: int = 200
    #: Bytes sent as they are (an AWS event stream, JSON lines), with this content type and extra headers.
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: The server waits for this event (at most 10 s) before the answer, or before stream event ``hold_at``.
    hold: threading.Event | None = None
    hold_at: int = 0
    #: A stream whose connection breaks after this many events: sent chunked, closed without its last
    #: chunk (the client's HTTP library raises, as when a proxy or the provider drops the connection).
    cut_after: int | None = None


@dataclass
class FakeAPI:
    base_url: str
    replies: queue.Queue[Reply] = field(default_factory=queue.Queue)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def reply(self, *replies: Reply) -> None:
        for r in replies:
            self.replies.put(r)


def _handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            api.requests.append((self.path, body))
            try:
                reply = api.replies.get_nowait()
            except queue.Empty:
                reply = Reply({"error": {"message": "no reply queued", "type": "test"}}, status=500)
            if reply.hold is not None and reply.stream is None:
                reply.hold.wait(10)
            if reply.stream is None:
                data = json.dumps(reply.body).encode() if reply.raw is None else reply.raw
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(reply.status)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            if reply.cut_after is not None:
                self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for i, (event, data) in enumerate(reply.stream):
                if reply.hold is not None and i == reply.hold_at:
                    reply.hold.wait(10)
                if reply.cut_after is not None and i == reply.cut_after:
                    break
                chunk = "" if event is None else f"event: {event}\n"
                chunk += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
                if reply.cut_after is not None:
                    chunk = f"{len(chunk.encode()):x}\r\n{chunk}\r\n"
                self.wfile.write(chunk.encode())
                self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture
def fake_api() -> Iterator[FakeAPI]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
    api = FakeAPI(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(api)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="fake-llm-api", daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()
    thread.join(5)


# --- telemetry with guards configured --------------------------------------------------------------


@pytest.fixture
def guarded(configured: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Like the ``telemetry`` fixture, but ``guarded({"policy": {...}})`` sets the ``guards:`` config."""
    return lambda guards: configured({"guards": guards})


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Callable[[dict[str, Any]], Any]]:
    """Like the ``telemetry`` fixture, with ``configured({...})`` config overrides (nested sections)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import agent_otel
    from tests.conftest import ListSink, Telemetry

    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "OTEL_SDK_DISABLED", "AGENT_OTEL_EVENTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    providers: list[MeterProvider] = []

    def setup(overrides: dict[str, Any]) -> Telemetry:
        agent_otel.shutdown()
        exporter, reader, sink = InMemorySpanExporter(), InMemoryMetricReader(), ListSink()
        provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
        providers.append(provider)
        cfg = agent_otel.setup(
            "test-service",
            span_exporters=[exporter],
            meter_provider=provider,
            event_sinks=[sink],
            store=False,
            instrument=False,
            config={"exporter": {"probe_local": False, "schedule_delay_s": 0.05}, **overrides},
        )
        return Telemetry(exporter, reader, sink, cfg)

    yield setup
    agent_otel.shutdown()
    for provider in providers:
        provider.shutdown(timeout_millis=1000)


class Session:
    """Stands in for the context object a framework passes its tool (tests/integrations/test_tool_context.py):
    different in every call."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.history = [f"message {i}" for i in range(n)]


def assert_context_left_out(telemetry: Any, call: Callable[[Session], Any]) -> None:
    """``call(context)`` calls an ``@agent_otel.tool`` function ``(q="x", <its context>)`` and returns
    its result: the context reaches the function, and both calls hash as ``{"q": "x"}``."""
    import asyncio

    import agent_otel
    from agent_otel import conventions as c
    from agent_otel.hashing import sha

    with agent_otel.run("a"):
        for n in (1, 2):
            result = call(Session(n))
            result = asyncio.run(result) if asyncio.iscoroutine(result) else result
            assert result == f"x:{n}", result
    spans = [s for s in telemetry.spans() if s.name.startswith("execute_tool")]
    assert [s.attributes[c.TOOL_ARGS_SHA] for s in spans] == [sha({"q": "x"})] * 2
