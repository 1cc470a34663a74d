"""A streamed LLM step ends once when the run ends on one thread while another thread reads the same
stream to its end: the two ends race, and the one that loses must record nothing (no second event, no
usage counted twice). The interleaving is forced: the run's end is held between its check that the step
is still open and its claim of it, while the reader thread ends the step."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import agent_otel
from agent_otel import steps
from tests.integrations.conftest import Reply, by_name, ours

openai = pytest.importorskip("openai")


def streamed() -> Reply:
    def chunk(delta: dict[str, Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": None}]
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": choices,
            "usage": usage,
        }

    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    events = [chunk({"role": "assistant", "content": "a"}), chunk({"content": "b"}), chunk({}, usage)]
    return Reply(stream=[(None, e) for e in events] + [(None, "[DONE]")])


def test_a_stream_ended_by_its_run_and_by_its_reader_at_once_is_one_step(
    telemetry, instrument, fake_api, monkeypatch
):
    instrument("openai")
    fake_api.reply(streamed())
    client = openai.OpenAI(base_url=fake_api.base_url + "/v1", api_key="k", max_retries=0)
    main = threading.get_ident()
    reader_may_end, reader_ended = threading.Event(), threading.Event()

    # The check-then-set of a step's end, held on the run's thread right after it read the step as open.
    slot = steps.Step.__dict__["_done"]

    def read_done(step: Any) -> bool:
        value = slot.__get__(step)
        caller = __import__("sys")._getframe(1).f_code.co_name
        if caller == "claim_end" and threading.get_ident() == main and not reader_may_end.is_set():
            reader_may_end.set()
            assert reader_ended.wait(10)
        return value

    monkeypatch.setattr(
        steps.Step, "_done", property(read_done, lambda step, value: slot.__set__(step, value))
    )

    def read_to_the_end(stream: Any) -> None:
        reader_may_end.wait(10)  # (a claim that reads nothing first never holds the run: it goes on)
        rest.extend(stream)
        reader_ended.set()

    rest: list[Any] = []
    with agent_otel.run("raced") as run:
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        next(stream)
        reader = threading.Thread(target=read_to_the_end, args=(stream,))
        reader.start()
    reader_may_end.set()
    reader.join(10)
    assert not reader.is_alive() and len(rest) == 2  # the reader got the whole stream either way

    events = telemetry.events("llm_result")
    assert len(events) == 1, [e["usage"] for e in events]
    assert run.result.usage["llm_calls"] == 1
    assert run.result.usage["input_tokens"] in (0, 12)  # counted once: by whichever end won
    assert len(by_name(ours(telemetry.spans()), "chat gpt-4o")) == 1
