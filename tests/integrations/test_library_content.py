"""Other libraries' content on their own spans leaves the process redacted, unless opted in.

A library whose content capture is on (Mistral's SDK with ``MISTRAL_SDK_TELEMETRY=global``, AG2's
middleware, a framework's instrumentation) writes prompts, answers, tool arguments and results and the
text of its exceptions onto its spans as they are; ``setup()`` exports those spans, so agent-otel's
exporters put those attributes through the same redactor as its own (``redaction.library_content``).
Checked at a real OTLP receiver.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import agent_otel
from agent_otel import sdk
from tests.helpers import attached_span_processor
from tests.integrations.conftest import Reply
from tests.otlp_receiver import OTLPReceiver

EMAIL, PASSWORD, API_KEY = "alice.smith@example.com", "Tr0ub4dor-3", "sk-proj-AbCdEfGhIjKlMnOpQrStUv"
PROMPT = f"reset the account of {EMAIL}, the admin password: {PASSWORD}"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    """``exported(config)``: setup() exporting to a real OTLP receiver; returns the receiver."""
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    agent_otel.shutdown()
    receiver = OTLPReceiver().start()

    def start(config: dict[str, Any]) -> OTLPReceiver:
        agent_otel.setup(
            "svc",
            endpoint=receiver.endpoint,
            store=False,
            instrument=False,
            config={"exporter": {"schedule_delay_s": 0.05}, **config},
        )
        return receiver

    yield start
    agent_otel.shutdown()
    receiver.stop()


def received(receiver: OTLPReceiver, n: int) -> dict[str, Any]:
    assert sdk.flush(10)
    deadline = time.monotonic() + 10
    while receiver.count() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return {s.name: s for s in receiver.spans}


def attrs(span: Any) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in span.attributes}


def library_work() -> None:
    """A library with its content capture on: its tool and chat spans carry the raw values."""
    tracer = trace.get_tracer("somelib.instrumentation")
    with tracer.start_as_current_span("execute_tool reset_password") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "reset_password",
                "gen_ai.tool.call.arguments": json.dumps({"user": EMAIL, "password": PASSWORD}),
                "gen_ai.tool.call.result": json.dumps({"ok": True, "api_key": API_KEY}),
            }
        )
    with tracer.start_as_current_span("chat some-model") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "some-model",
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"content": PROMPT}]}]),
                "gen_ai.prompt.0.content": PROMPT,  # the older indexed form
                "server.address": "api.example.com",
            }
        )
        span.add_event("gen_ai.user.message", {"content": PROMPT})
        span.add_event(
            "exception",
            {
                "exception.type": "PermissionError",
                "exception.message": f"login failed for {EMAIL} with password {PASSWORD}",
                "exception.stacktrace": f"Traceback ...\nPermissionError: key {API_KEY}\n",
            },
        )
        span.set_status(Status(StatusCode.ERROR, f"denied for {EMAIL}"))


def test_a_librarys_content_and_exception_text_reach_the_collector_redacted(exported):
    receiver = exported({})
    with agent_otel.run("agent"):
        library_work()
    spans = received(receiver, 3)
    wire = "".join(str(s) for s in spans.values())
    for raw in (EMAIL, PASSWORD, API_KEY):
        assert raw not in wire, raw
    tool = attrs(spans["execute_tool reset_password"])
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"user": "[EMAIL]", "password": "[REDACTED]"}
    assert json.loads(tool["gen_ai.tool.call.result"]) == {"ok": True, "api_key": "[REDACTED]"}
    chat = spans["chat some-model"]
    masked = "reset the account of [EMAIL], the admin password: [REDACTED]"
    assert attrs(chat)["gen_ai.prompt.0.content"] == masked
    assert json.loads(attrs(chat)["gen_ai.input.messages"])[0]["parts"][0]["content"] == masked
    # What is not content is left as the library wrote it.
    assert attrs(chat)["server.address"] == "api.example.com"
    assert attrs(chat)["gen_ai.request.model"] == "some-model"
    events = {e.name: {kv.key: kv.value.string_value for kv in e.attributes} for e in chat.events}
    assert events["gen_ai.user.message"]["content"] == masked
    assert events["exception"]["exception.message"] == "login failed for [EMAIL] with password [REDACTED]"
    assert events["exception"]["exception.type"] == "PermissionError"
    assert "[API_KEY]" in events["exception"]["exception.stacktrace"]
    assert chat.status.message == "denied for [EMAIL]"


def test_the_applications_own_processors_see_the_librarys_spans_unchanged(exported):
    """Redaction works on a copy in agent-otel's exporters: the span object itself is not modified."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    receiver = exported({})
    mine = InMemorySpanExporter()
    provider = trace.get_tracer_provider()  # the global one: the processor must not outlive the test
    with attached_span_processor(provider, SimpleSpanProcessor(mine)):
        library_work()
        spans = received(receiver, 2)
        assert EMAIL not in str(spans["chat some-model"])
        (chat,) = [s for s in mine.get_finished_spans() if s.name == "chat some-model"]
        assert chat.attributes["gen_ai.prompt.0.content"] == PROMPT
    mine.clear()


def test_raw_library_content_is_an_opt_in(exported):
    receiver = exported({"redaction": {"library_content": "raw"}})
    library_work()
    spans = received(receiver, 2)
    assert attrs(spans["chat some-model"])["gen_ai.prompt.0.content"] == PROMPT
    assert PASSWORD in attrs(spans["execute_tool reset_password"])["gen_ai.tool.call.arguments"]


def test_mistrals_own_spans_carry_the_prompt_redacted(exported, fake_api, monkeypatch):
    """The real case: Mistral's SDK with its tracing on puts the messages on its span as they are."""
    pytest.importorskip("mistralai")
    from mistralai.client import Mistral

    monkeypatch.setenv("MISTRAL_SDK_TELEMETRY", "global")
    receiver = exported({})
    answer = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "mistral-large-latest",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"Done, {EMAIL}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    fake_api.reply(Reply(answer))
    with agent_otel.run("assistant"):
        reply = Mistral(api_key="test", server_url=fake_api.base_url).chat.complete(
            model="mistral-large-latest", messages=[{"role": "user", "content": PROMPT}]
        )
    assert reply.choices[0].message.content == f"Done, {EMAIL}"  # what the application gets is untouched
    spans = received(receiver, 2)
    (request,) = [s for s in spans.values() if s.name.startswith("chat ")]
    carried = attrs(request)
    assert any("[EMAIL]" in v for v in carried.values()), carried  # Mistral did capture the content
    wire = "".join(str(s) for s in spans.values())
    assert EMAIL not in wire and PASSWORD not in wire


def test_the_applications_own_spans_are_left_to_the_collectors_redaction(exported):
    """Not a GenAI span: what application code writes on its own spans is exported as written (the bundled
    collector's `redaction` processor is their layer, tests/e2e/test_stack.py)."""
    receiver = exported({})
    with trace.get_tracer("billing").start_as_current_span("billing.charge") as span:
        span.set_status(Status(StatusCode.ERROR, f"card declined for {EMAIL}"))
    spans = received(receiver, 1)
    assert spans["billing.charge"].status.message == f"card declined for {EMAIL}"


def test_content_under_a_librarys_own_attribute_names_reaches_the_collector_redacted(exported):
    """Libraries also put content under names of their own, which no list of names keeps up with: Google
    ADK's `gcp.vertex.agent.llm_request` / `tool_call_args` (on its older `call_llm` span, with
    `gen_ai.system` but no `gen_ai.operation.name`), PydanticAI's `pydantic_ai.all_messages` and
    `final_result`. Every string of another library's GenAI span goes through the redactor; its names and
    ids stay as written."""
    receiver = exported({})
    tracer = trace.get_tracer("google.adk")
    with tracer.start_as_current_span("call_llm") as span:
        span.set_attributes(
            {
                "gen_ai.system": "gcp.vertex.agent",
                "gen_ai.request.model": "gemini-2.5-flash",
                "gcp.vertex.agent.llm_request": json.dumps({"contents": [{"parts": [{"text": PROMPT}]}]}),
                "gcp.vertex.agent.session_id": "session-7",
                "gcp.vertex.agent.tags": (f"owner:{EMAIL}", "tier:gold"),
            }
        )
    with tracer.start_as_current_span("execute_tool reset_password") as span:
        span.set_attributes(
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "reset_password",
                "gen_ai.tool.call.id": "call-1",
                "gcp.vertex.agent.tool_call_args": json.dumps({"user": EMAIL, "password": PASSWORD}),
                "gcp.vertex.agent.tool_response": json.dumps({"api_key": API_KEY}),
            }
        )
        span.add_event("memory.content", {"content": PROMPT})  # Strands' memory events, not gen_ai.*
    spans = received(receiver, 2)
    wire = "".join(str(s) for s in spans.values())
    for raw in (EMAIL, PASSWORD, API_KEY):
        assert raw not in wire, raw
    llm = spans["call_llm"]
    carried = attrs(llm)
    assert "the admin password: [REDACTED]" in carried["gcp.vertex.agent.llm_request"]
    assert carried["gen_ai.request.model"] == "gemini-2.5-flash"
    assert carried["gcp.vertex.agent.session_id"] == "session-7"
    (tags,) = [kv.value.array_value for kv in llm.attributes if kv.key == "gcp.vertex.agent.tags"]
    assert [v.string_value for v in tags.values] == ["owner:[EMAIL]", "tier:gold"]
    tool = attrs(spans["execute_tool reset_password"])
    args = json.loads(tool["gcp.vertex.agent.tool_call_args"])
    assert args == {"user": "[EMAIL]", "password": "[REDACTED]"}
    assert tool["gen_ai.tool.name"] == "reset_password" and tool["gen_ai.tool.call.id"] == "call-1"
    (memory,) = spans["execute_tool reset_password"].events
    masked = "reset the account of [EMAIL], the admin password: [REDACTED]"
    assert memory.attributes[0].value.string_value == masked


def test_pydantic_ais_own_spans_carry_its_run_history_redacted(exported):
    """The real case: PydanticAI's instrumentation (`Agent.instrument = True`, content on by default) puts
    the whole conversation on its agent run span as `pydantic_ai.all_messages` and the answer as
    `final_result`, names of its own."""
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            call = ToolCallPart(tool_name="lookup", args={"user": EMAIL}, tool_call_id="c1")
            return ModelResponse(parts=[call])
        return ModelResponse(parts=[TextPart(f"the key of {EMAIL} is {API_KEY}")])

    agent = Agent(FunctionModel(respond, model_name="gpt-4o"), name="support")
    agent.instrument = True

    @agent.tool_plain
    def lookup(user: str) -> str:
        return f"password={PASSWORD}"

    receiver = exported({})
    output = agent.run_sync(PROMPT).output
    assert API_KEY in output  # what the application gets is untouched
    spans = received(receiver, 4)
    run = spans["invoke_agent support"]
    carried = attrs(run)
    assert "[EMAIL]" in carried["pydantic_ai.all_messages"]  # PydanticAI did capture the conversation
    assert carried["final_result"] == "the key of [EMAIL] is [API_KEY]"
    wire = "".join(str(s) for s in spans.values())
    for raw in (EMAIL, PASSWORD, API_KEY):
        assert raw not in wire, raw
