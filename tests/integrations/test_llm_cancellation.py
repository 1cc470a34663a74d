"""An LLM request cancelled (its asyncio task, a stream's task cancelled mid-way, Ctrl-C in a sync request)
is a ``cancelled`` step, as a cancelled tool call is: not the provider failing. Every client integration,
against the fake API on 127.0.0.1 held until the request is cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import agent_otel
from tests.integrations.conftest import Reply, request_span

MESSAGES = [{"role": "user", "content": "x"}]


def chat_completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


def chat_stream() -> list[tuple[str | None, Any]]:
    def chunk(delta: dict[str, Any]) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": None}
        return {
            "id": "chatcmpl-2",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [choice],
        }

    return [
        (None, chunk({"role": "assistant", "content": "a"})),
        (None, chunk({"content": "b"})),
        (None, "[DONE]"),
    ]


def assert_cancelled(telemetry: Any, run: Any, error_type: str = "CancelledError") -> None:
    """What a user sees of the cancelled request: a ``cancelled`` step (event, span), not a model error."""
    events = telemetry.events("llm_result")
    assert [(e["status"], e["error"]) for e in events] == [("cancelled", error_type)]
    span = request_span(telemetry.spans(), run.run_id)
    assert span.status.status_code.name == "UNSET"  # as a cancelled tool call's and a cancelled run's
    assert span.attributes["error.type"] == error_type
    assert run.result.stop_reason == "cancelled"
    # The GenAI client metrics: no request counted with an error.type (the provider's error rate).
    durations = telemetry.metrics().get("gen_ai.client.operation.duration", [])
    assert [p for p, _ in durations if p.get("gen_ai.operation.name") == "chat"] == []


async def cancel_while_waiting(
    fake_api: Any, hold: threading.Event, request: Callable[[], Awaitable[Any]]
) -> Any:
    """Run ``request`` in a run in a task, cancel the task while the server holds the answer; the run."""
    runs: list[Any] = []

    async def agent() -> None:
        async with agent_otel.run("impatient") as run:
            runs.append(run)
            await request()

    task = asyncio.create_task(agent())
    try:
        for _ in range(1000):  # the request reached the server (or the stream its held event)
            if fake_api.requests:
                break
            await asyncio.sleep(0.01)
        assert fake_api.requests
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        hold.set()
    return runs[0]


async def test_openai_request_cancelled_is_a_cancelled_step(telemetry, instrument, fake_api):
    openai = pytest.importorskip("openai")
    instrument("openai")
    hold = threading.Event()
    fake_api.reply(Reply(chat_completion(), hold=hold))
    aclient = openai.AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    run = await cancel_while_waiting(
        fake_api, hold, lambda: aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    )
    assert_cancelled(telemetry, run)


async def test_openai_stream_whose_task_is_cancelled_mid_way_is_a_cancelled_step(
    telemetry, instrument, fake_api
):
    openai = pytest.importorskip("openai")
    instrument("openai")
    hold = threading.Event()
    fake_api.reply(Reply(stream=chat_stream(), hold=hold, hold_at=1))  # one chunk, then nothing
    aclient = openai.AsyncOpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)

    async def read() -> None:
        stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async with stream:  # closed by the caller as the cancellation leaves its block
            async for _ in stream:
                pass

    run = await cancel_while_waiting(fake_api, hold, read)
    assert_cancelled(telemetry, run)


def test_openai_sync_request_interrupted_by_ctrl_c_is_a_cancelled_step(telemetry, instrument, fake_api):
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx")
    instrument("openai")

    def interrupt(request: Any) -> None:
        raise KeyboardInterrupt

    http = httpx.Client(event_hooks={"request": [interrupt]})
    sync = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0, http_client=http)
    with pytest.raises(KeyboardInterrupt), agent_otel.run("interrupted") as run:
        sync.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert_cancelled(telemetry, run, "KeyboardInterrupt")


async def test_anthropic_request_cancelled_is_a_cancelled_step(telemetry, instrument, fake_api):
    anthropic = pytest.importorskip("anthropic")
    instrument("anthropic")
    hold = threading.Event()
    fake_api.reply(Reply({}, hold=hold))
    aclient = anthropic.AsyncAnthropic(
        base_url=fake_api.base_url, api_key="k", max_retries=0, open_telemetry=False
    )
    run = await cancel_while_waiting(
        fake_api,
        hold,
        lambda: aclient.messages.create(model="claude-sonnet-4-20250514", max_tokens=10, messages=MESSAGES),
    )
    assert_cancelled(telemetry, run)


async def test_google_genai_request_cancelled_is_a_cancelled_step(telemetry, instrument, fake_api):
    pytest.importorskip("google.genai")
    from google import genai
    from google.genai import types

    instrument("google_genai")
    hold = threading.Event()
    fake_api.reply(Reply({}, hold=hold))
    options = types.HttpOptions(base_url=fake_api.base_url, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key="k", http_options=options)
    run = await cancel_while_waiting(
        fake_api, hold, lambda: client.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    )
    assert_cancelled(telemetry, run)


async def test_litellm_request_cancelled_is_a_cancelled_step(telemetry, instrument, fake_api):
    litellm = pytest.importorskip("litellm")
    instrument("litellm")
    hold = threading.Event()
    fake_api.reply(Reply(chat_completion(), hold=hold))
    run = await cancel_while_waiting(
        fake_api,
        hold,
        lambda: litellm.acompletion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=fake_api.base_url, api_key="k", num_retries=0
        ),
    )
    assert_cancelled(telemetry, run)


async def test_mistral_request_cancelled_is_a_cancelled_step(telemetry, instrument, fake_api):
    pytest.importorskip("mistralai")
    from mistralai.client import Mistral

    instrument("mistral")
    hold = threading.Event()
    fake_api.reply(Reply(chat_completion(), hold=hold))
    client = Mistral(api_key="k", server_url=fake_api.base_url)
    run = await cancel_while_waiting(
        fake_api, hold, lambda: client.chat.complete_async(model="mistral-large-latest", messages=MESSAGES)
    )
    assert_cancelled(telemetry, run)


def test_bedrock_request_interrupted_by_ctrl_c_is_a_cancelled_step(telemetry, instrument):
    pytest.importorskip("boto3")
    from tests.integrations.test_bedrock import CLAUDE, bedrock
    from tests.integrations.test_bedrock import MESSAGES as BEDROCK_MESSAGES

    instrument("bedrock")
    client = bedrock()

    def interrupt(**kwargs: Any) -> None:
        raise KeyboardInterrupt

    client.meta.events.register("before-send.bedrock-runtime.Converse", interrupt)
    with pytest.raises(KeyboardInterrupt), agent_otel.run("interrupted") as run:
        client.converse(modelId=CLAUDE, messages=BEDROCK_MESSAGES)
    assert_cancelled(telemetry, run, "KeyboardInterrupt")


async def test_langchain_chat_model_call_cancelled_is_a_cancelled_step(telemetry, instrument):
    """A framework's model call (LangChain reports the cancellation through ``on_llm_error``)."""
    pytest.importorskip("langchain_core")
    from langchain_core.language_models import BaseChatModel

    started = asyncio.Event()

    class Slow(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "slow"

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def _agenerate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> Any:
            started.set()
            await asyncio.sleep(30)

    instrument("langchain")
    runs: list[Any] = []

    async def agent() -> None:
        async with agent_otel.run("impatient") as run:
            runs.append(run)
            await Slow().ainvoke("hi")

    task = asyncio.create_task(agent())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_cancelled(telemetry, runs[0])
