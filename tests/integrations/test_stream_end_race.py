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
from tests.integrations.conftest import by_name, ours
from tests.integrations.test_openai_client import client, streamed_words

openai = pytest.importorskip("openai")

KWARGS = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}


def test_a_stream_ended_by_its_run_and_by_its_reader_at_once_is_one_step(
    telemetry, instrument, fake_api, monkeypatch
):
    instrument("openai")
    fake_api.reply(streamed_words(1))  # a chunk, then one word, the finish and the usage
    sync = client(fake_api)
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
        stream = sync.chat.completions.create(**KWARGS, stream=True, stream_options={"include_usage": True})
        next(stream)
        reader = threading.Thread(target=read_to_the_end, args=(stream,))
        reader.start()
    reader_may_end.set()
    reader.join(10)
    assert not reader.is_alive() and len(rest) == 3  # the reader got the whole stream either way

    events = telemetry.events("llm_result")
    assert len(events) == 1, [e["usage"] for e in events]
    assert run.result.usage["llm_calls"] == 1
    assert run.result.usage["input_tokens"] in (0, 12)  # counted once: by whichever end won
    assert len(by_name(ours(telemetry.spans()), "chat gpt-4o")) == 1
