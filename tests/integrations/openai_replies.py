"""Chat Completions answers for the fake API (tests/integrations/conftest.py ``fake_api``), for the
frameworks whose model client is the real OpenAI SDK (CrewAI, AutoGen), in their own environments too."""

from __future__ import annotations

import json
from typing import Any

from tests.integrations.conftest import Reply


def completion(message: dict[str, Any], usage: tuple[int, int] = (21, 4), finish: str = "stop") -> Reply:
    return Reply(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        }
    )


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> Reply:
    """The model asks for one tool call (usage 30 in, 7 out)."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        ],
    }
    return completion(message, usage=(30, 7), finish="tool_calls")


def answer(text: str) -> Reply:
    """The model's final answer (usage 21 in, 4 out)."""
    return completion({"role": "assistant", "content": text})


def streamed(*deltas: dict[str, Any], usage: tuple[int, int] = (30, 7), finish: str = "stop") -> Reply:
    """A streamed Chat Completion (``stream_options.include_usage``): the deltas, the finish reason, then a
    last chunk with no choices and the usage."""
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000}
    base["model"] = "gpt-4o-2024-08-06"
    events: list[tuple[str | None, Any]] = [
        (None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}) for delta in deltas
    ]
    events.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    usage_body = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    events.append((None, {**base, "choices": [], "usage": usage_body}))
    events.append((None, "[DONE]"))
    return Reply(stream=events)


def streamed_tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> Reply:
    """:func:`tool_call`, streamed: the call's id and name, then its arguments in two pieces."""
    text = json.dumps(args)
    half = len(text) // 2
    call = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return streamed(
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"tool_calls": [{"index": 0, "function": {"arguments": text[:half]}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": text[half:]}}]},
        finish="tool_calls",
    )


def streamed_answer(text: str) -> Reply:
    """:func:`answer`, streamed in two pieces (usage 21 in, 4 out)."""
    half = len(text) // 2
    return streamed({"role": "assistant", "content": text[:half]}, {"content": text[half:]}, usage=(21, 4))
