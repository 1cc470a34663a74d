"""Claude Agent SDK driving a fake Claude Code CLI (fake_claude_cli.py) over its real stream-json protocol."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agent_otel
from agent_otel.hashing import sha
from tests.integrations.conftest import assert_unknown_then_zero_usage, children, one, ours, steps, stop_event

pytest.importorskip("claude_agent_sdk")

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, HookMatcher, ResultMessage, query
from claude_agent_sdk._errors import ResultError

FAKE = Path(__file__).with_name("fake_claude_cli.py")
MODEL = "claude-sonnet-4-5"
USAGE = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_read_input_tokens": 50,
    "cache_creation_input_tokens": 10,
}


class CLI:
    """Writes the script and an executable wrapper for the fake CLI; ``ran()`` lists the tools it ran."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "ran.jsonl"
        self.path = tmp_path / "claude"
        self.path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
        self.path.chmod(0o700)

    def options(self, *prompts: dict[str, Any], exit_code: int = 0, **kwargs: Any) -> ClaudeAgentOptions:
        script = self.dir / "script.json"
        script.write_text(json.dumps({"model": MODEL, "prompts": list(prompts), "exit_code": exit_code}))
        env = {"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_LOG": str(self.log)}
        return ClaudeAgentOptions(cli_path=str(self.path), env=env, model=MODEL, **kwargs)

    def ran(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path)


def tool_turn(
    name: str, tool_input: dict, result: str, tool_id: str = "toolu_1", **tool: Any
) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "text": "Let me check.",
        "tool": {"id": tool_id, "name": name, "input": tool_input, "result": result, **tool},
        "usage": USAGE,
    }


def final_turn(text: str = "All done.", message_id: str = "msg_2") -> dict[str, Any]:
    return {"id": message_id, "text": text, "usage": {"input_tokens": 200, "output_tokens": 8}}


async def collect(prompt: str, options: ClaudeAgentOptions) -> list[Any]:
    return [message async for message in query(prompt=prompt, options=options)]


async def test_query_with_a_tool_use(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    options = cli.options({"turns": [tool_turn("Bash", {"command": "ls"}, "a.txt\nb.txt"), final_turn()]})
    messages = await collect("list the files", options)
    assert isinstance(messages[-1], ResultMessage) and not messages[-1].is_error
    assert cli.ran() == [{"tool": "Bash", "input": {"command": "ls"}}]

    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent claude-agent")
    assert root.parent is None
    assert [s.name for s in children(root, spans)] == [f"chat {MODEL}", "execute_tool Bash", f"chat {MODEL}"]
    assert steps(root, spans) == [(1, f"chat {MODEL}"), (2, "execute_tool Bash"), (3, f"chat {MODEL}")]
    tool_span = one(spans, "execute_tool Bash")
    assert tool_span.attributes["gen_ai.tool.call.id"] == "toolu_1"
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"command": "ls"})
    assert tool_span.attributes["agent.tool.result_sha"] == sha("a.txt\nb.txt")
    assert tool_span.attributes["agent.tool.status"] == "ok"
    first_chat, _, second_chat = children(root, spans)
    # one response sent as two messages (text, tool_use) with one id: one step, usage counted once
    assert first_chat.attributes["gen_ai.usage.input_tokens"] == 160  # 100 + 50 cache reads + 10 cache writes
    assert first_chat.attributes["gen_ai.usage.output_tokens"] == 20
    assert first_chat.attributes["gen_ai.usage.cache_read.input_tokens"] == 50
    assert first_chat.attributes["gen_ai.usage.cache_creation.input_tokens"] == 10
    assert second_chat.attributes["gen_ai.usage.input_tokens"] == 200
    assert first_chat.end_time <= tool_span.start_time
    assert first_chat.kind.name == "CLIENT"
    assert first_chat.attributes["gen_ai.provider.name"] == "anthropic"
    assert first_chat.attributes["gen_ai.response.id"] == "msg_1"
    assert first_chat.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert tool_span.attributes["gen_ai.tool.type"] == "function"
    # the CLI's session id is the conversation, on the run and its requests
    assert root.attributes["gen_ai.conversation.id"] == "session-1"
    assert first_chat.attributes["gen_ai.conversation.id"] == "session-1"
    assert root.attributes["gen_ai.request.model"] == MODEL
    assert root.attributes["agent.input_sha"] == sha("list the files")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.usage.input_tokens"] == 360
    assert stop_event(root)["agent.stop_reason"] == "completed"

    assert [
        (e["tool"], e["step_id"], e["args_sha"], e["status"]) for e in telemetry.events("tool_result")
    ] == [("Bash", 2, sha({"command": "ls"}), "ok")]
    assert [
        (e["usage"]["input_tokens"], e["usage"]["output_tokens"]) for e in telemetry.events("llm_result")
    ] == [
        (160, 20),
        (200, 8),
    ]
    (stop,) = telemetry.events("stop")
    assert stop["stop_reason"] == "completed" and stop["usage"]["tool_calls"] == 1
    metrics = telemetry.metrics()
    assert [(p[0]["stop_reason"], p[1].value) for p in metrics["agent.stop"] if p[1].value] == [
        ("completed", 1)
    ]
    assert [(p[0]["tool"], p[0]["status"], p[1].value) for p in metrics["agent.tool.invocations"]] == [
        ("Bash", "ok", 1)
    ]


async def test_failed_tool_use_is_an_error_step_and_the_run_goes_on(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    options = cli.options(
        {
            "turns": [
                tool_turn("Read", {"file_path": "/nope"}, "File does not exist.", is_error=True),
                final_turn(),
            ]
        }
    )
    await collect("read it", options)
    spans = ours(telemetry.spans())
    tool_span = one(spans, "execute_tool Read")
    assert tool_span.attributes["agent.tool.status"] == "error"
    assert tool_span.attributes["error.type"] == "ToolUseError"
    assert tool_span.status.status_code.name == "ERROR"
    assert one(spans, "invoke_agent claude-agent").attributes["agent.stop_reason"] == "completed"


async def test_api_error_stops_with_model_error(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    failing = {
        "turns": [
            {
                "id": "msg_1",
                "text": "API Error: rate limited",
                "error": "rate_limit",
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        ],
        "result": {"subtype": "success", "is_error": True, "api_error_status": 429, "result": "rate limited"},
    }
    with pytest.raises(ResultError):
        await collect("hi", cli.options(failing, exit_code=1))
    spans = ours(telemetry.spans())
    chat = one(spans, f"chat {MODEL}")
    assert chat.attributes["error.type"] == "ModelResponseError"
    root = one(spans, "invoke_agent claude-agent")
    assert root.attributes["agent.stop_reason"] == "model_error"
    assert root.status.status_code.name == "ERROR"


async def test_max_turns_stops_with_max_steps(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    capped = {
        "turns": [tool_turn("Bash", {"command": "ls"}, "a.txt")],
        "result": {"subtype": "error_max_turns", "is_error": True},
    }
    with pytest.raises(ResultError):
        await collect("go", cli.options(capped, exit_code=1, max_turns=1))
    root = one(ours(telemetry.spans()), "invoke_agent claude-agent")
    assert root.attributes["agent.stop_reason"] == "max_steps"
    assert root.status.status_code.name == "UNSET"


async def test_denied_tool_never_runs_and_stops_the_run(guarded, instrument, cli):
    telemetry = guarded({"policy": {"deny": {"*": ["Bash"]}}})
    instrument("claude_agent_sdk")
    options = cli.options(
        {"turns": [tool_turn("Bash", {"command": "rm -rf /tmp/x"}, "removed"), final_turn("never")]}
    )
    seen: list[Any] = []
    with pytest.raises(agent_otel.AgentStopped) as stopped:
        async for message in query(prompt="clean up", options=options):
            seen.append(message)
    assert stopped.value.stop_reason == "policy_denied"
    assert cli.ran() == []
    assert isinstance(seen[-1], ResultMessage)  # the CLI finished the turn before the consumer got the stop
    assert not any("never" in str(getattr(m, "content", "")) for m in seen)
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent claude-agent").attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name.startswith("execute_tool")]


async def test_a_tool_denied_with_on_deny_raise_never_runs_and_the_turn_goes_on(guarded, instrument, cli):
    """``on_deny: raise``: the tool use is refused (the CLI tells the model), the run is not stopped."""
    telemetry = guarded({"policy": {"deny": {"*": ["Bash"]}, "on_deny": "raise"}})
    instrument("claude_agent_sdk")
    options = cli.options(
        {"turns": [tool_turn("Bash", {"command": "rm -rf /tmp/x"}, "removed"), final_turn("could not")]}
    )
    seen = [m async for m in query(prompt="clean up", options=options)]
    assert cli.ran() == []
    assert any("could not" in str(getattr(m, "content", "")) for m in seen)  # the turn went on
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent claude-agent")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert not [s for s in spans if s.name.startswith("execute_tool")]
    assert [e.attributes["guard"] for e in root.events if e.name == "agent.guard"] == ["policy"]


async def test_users_own_hooks_still_run(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    called: list[str] = []

    async def mine(data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        called.append(data["tool_name"])
        return {}

    options = cli.options(
        {"turns": [tool_turn("Bash", {"command": "ls"}, "x"), final_turn()]},
        hooks={"PreToolUse": [HookMatcher(matcher=None, hooks=[mine])]},
    )
    await collect("go", options)
    assert called == ["Bash"]
    assert len(options.hooks["PreToolUse"]) == 1  # the user's options object is left as it was
    assert one(ours(telemetry.spans()), "execute_tool Bash").attributes["agent.tool.status"] == "ok"


async def test_client_turns_are_runs(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    options = cli.options(
        {"turns": [tool_turn("Bash", {"command": "ls"}, "a.txt"), final_turn()]},
        {"turns": [final_turn("Second answer.", "msg_3")]},
    )
    async with ClaudeSDKClient(options=options) as client:
        await client.query("first")
        first = [m async for m in client.receive_response()]
        await client.query("second")
        second = [m async for m in client.receive_response()]
    assert isinstance(first[-1], ResultMessage) and isinstance(second[-1], ResultMessage)
    spans = ours(telemetry.spans())
    runs = sorted([s for s in spans if s.name == "invoke_agent claude-agent"], key=lambda s: s.start_time)
    assert [r.attributes["agent.input_sha"] for r in runs] == [sha("first"), sha("second")]
    assert steps(runs[0], spans) == [(1, f"chat {MODEL}"), (2, "execute_tool Bash"), (3, f"chat {MODEL}")]
    assert steps(runs[1], spans) == [(1, f"chat {MODEL}")]
    assert [r.attributes["agent.stop_reason"] for r in runs] == ["completed", "completed"]
    assert [r.attributes["gen_ai.conversation.id"] for r in runs] == ["session-1", "session-1"]


async def test_query_inside_a_user_run_joins_it(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    options = cli.options({"turns": [tool_turn("Bash", {"command": "ls"}, "a"), final_turn()]})
    async with agent_otel.run("named-agent") as run:
        await collect("go", options)
    spans = ours(telemetry.spans())
    assert not [s for s in spans if s.name == "invoke_agent claude-agent"]
    assert steps(one(spans, "invoke_agent named-agent"), spans) == [
        (1, f"chat {MODEL}"),
        (2, "execute_tool Bash"),
        (3, f"chat {MODEL}"),
    ]
    assert run.result.stop_reason == "completed"


async def test_client_disconnecting_before_the_result_cancels_the_turn(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    options = cli.options({"turns": [tool_turn("Bash", {"command": "ls"}, "a"), final_turn()]})
    async with ClaudeSDKClient(options=options) as client:
        await client.query("go")
        async for _ in client.receive_response():
            break
    assert agent_otel.current_run() is None
    root = one(ours(telemetry.spans()), "invoke_agent claude-agent")
    assert root.attributes["agent.stop_reason"] == "cancelled"


async def test_a_query_consumer_that_stops_at_the_result_message_completes(telemetry, instrument, cli):
    """``query()`` read up to its ``ResultMessage`` (the turn is over) and left there (``break``): closing
    the generator ended the run ``cancelled``, though Claude Code had finished. Now the ResultMessage
    ends the run, as it does for ``ClaudeSDKClient``, before the consumer gets it."""
    instrument("claude_agent_sdk")
    options = cli.options({"turns": [tool_turn("Bash", {"command": "ls"}, "a"), final_turn()]})
    async for message in query(prompt="go", options=options):
        if isinstance(message, ResultMessage):
            break
    assert not message.is_error and cli.ran() == [{"tool": "Bash", "input": {"command": "ls"}}]
    root = one(ours(telemetry.spans()), "invoke_agent claude-agent")
    assert root.attributes["agent.stop_reason"] == "completed"
    assert root.attributes["agent.usage.input_tokens"] == 360
    (stop,) = telemetry.events("stop")
    assert (stop["stop_reason"], stop["usage"]["tool_calls"], stop["usage"]["llm_calls"]) == (
        "completed",
        1,
        2,
    )


def test_uninstrument_restores_the_sdk(instrument):
    from claude_agent_sdk._internal.client import InternalClient

    before: Callable[..., Any] = InternalClient.process_query
    instrument("claude_agent_sdk")
    assert InternalClient.process_query is not before
    agent_otel.integrations.uninstrument(["claude_agent_sdk"])
    assert InternalClient.process_query is before


async def test_a_message_without_usage_is_unknown_usage_and_a_reported_0_is_0(telemetry, instrument, cli):
    instrument("claude_agent_sdk")
    unmetered = {**tool_turn("Bash", {"command": "ls"}, "a.txt"), "usage": None}
    free = {**final_turn(), "usage": {"input_tokens": 0, "output_tokens": 0}}
    messages = await collect("list the files", cli.options({"turns": [unmetered, free]}))
    assert isinstance(messages[-1], ResultMessage) and not messages[-1].is_error
    spans = ours(telemetry.spans())
    assert_unknown_then_zero_usage(telemetry, one(spans, "invoke_agent claude-agent"), spans)


def assistant_message(
    message_id: str, block: dict[str, Any], usage: tuple[int, int], parent: str | None = None
):
    return {
        "type": "assistant",
        "parent_tool_use_id": parent,
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [block],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        },
    }


def tool_result(tool_use_id: str, content: str, parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "user",
        "parent_tool_use_id": parent,
        "message": {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use_id, "content": content}],
        },
    }


async def test_parallel_subagents_interleaved_messages_are_one_step_per_response(telemetry, instrument, cli):
    """Two ``Task`` subagents run in parallel; the CLI sends each response as one message per content block,
    the two subagents' messages interleaved (told apart by ``parent_tool_use_id``). Each response is one
    LLM step with its usage counted once (they were split into a step per message, their usage counted
    again for every block after the other subagent's)."""
    instrument("claude_agent_sdk")
    raw = [
        assistant_message(
            "m0", {"type": "tool_use", "id": "t1", "name": "Task", "input": {"p": "a"}}, (100, 10)
        ),
        assistant_message(
            "m0", {"type": "tool_use", "id": "t2", "name": "Task", "input": {"p": "b"}}, (100, 10)
        ),
        assistant_message("a1", {"type": "text", "text": "A thinks"}, (11, 1), "t1"),
        assistant_message("b1", {"type": "text", "text": "B thinks"}, (22, 2), "t2"),
        assistant_message(
            "a1", {"type": "tool_use", "id": "ta", "name": "Read", "input": {"f": "x"}}, (11, 1), "t1"
        ),
        assistant_message(
            "b1", {"type": "tool_use", "id": "tb", "name": "Read", "input": {"f": "y"}}, (22, 2), "t2"
        ),
        tool_result("ta", "x", "t1"),
        tool_result("tb", "y", "t2"),
        assistant_message("a2", {"type": "text", "text": "A done"}, (12, 3), "t1"),
        assistant_message("b2", {"type": "text", "text": "B done"}, (23, 4), "t2"),
        tool_result("t1", "A"),
        tool_result("t2", "B"),
        assistant_message("m1", {"type": "text", "text": "all done"}, (200, 5)),
    ]
    messages = await collect("go", cli.options({"turns": [{"raw": raw}]}))
    assert isinstance(messages[-1], ResultMessage) and not messages[-1].is_error
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent claude-agent")
    chats = sorted(
        (s for s in spans if s.name == f"chat {MODEL}"), key=lambda s: s.attributes["agent.step_id"]
    )
    assert [
        (
            s.attributes["gen_ai.response.id"],
            s.attributes["gen_ai.usage.input_tokens"],
            s.attributes["gen_ai.usage.output_tokens"],
        )
        for s in chats
    ] == [("m0", 100, 10), ("a1", 11, 1), ("b1", 22, 2), ("a2", 12, 3), ("b2", 23, 4), ("m1", 200, 5)]
    assert tuple(
        one([s for s in chats if s.attributes["gen_ai.response.id"] == "m0"], f"chat {MODEL}").attributes[
            "agent.llm.tool_call_ids"
        ]
    ) == ("t1", "t2")
    assert (
        root.attributes["agent.usage.input_tokens"] == 368
        and root.attributes["agent.stop_reason"] == "completed"
    )
