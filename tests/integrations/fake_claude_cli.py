"""A stand-in for the Claude Code CLI: speaks the stream-json protocol of ``claude-agent-sdk`` on stdio.

The SDK starts it as ``cli_path`` (through a small executable wrapper, see ``claude_cli`` in
test_claude_agent_sdk.py). It answers the SDK's ``initialize`` control request, then, for each user
message, plays the JSON script named by ``FAKE_CLAUDE_SCRIPT``: assistant messages (one per content
block, as the CLI sends them), a ``PreToolUse`` hook callback to the SDK before each tool use (a ``deny``
answer means the tool does not run; ``continue: false`` ends the turn), ``PostToolUse`` /
``PostToolUseFailure`` after it, the ``tool_result`` user message, and the ``result``. It appends what the
tools "ran" to ``FAKE_CLAUDE_LOG`` so tests can tell whether a tool was executed. No network, no model.
A tool with ``"sdk": "<server>"`` is a tool of an in-process SDK MCP server (``create_sdk_mcp_server``),
named ``mcp__<server>__<tool>``: the CLI calls it as Claude Code does, through ``mcp_message`` control
requests to the SDK (``initialize`` once, then ``tools/call``); its result is the MCP result's content.
``"no_hooks": true`` skips the ``PreToolUse`` hook of a tool (a CLI that does not ask).

Script: ``{"model": ..., "session_id": ..., "prompts": [{"turns": [...], "result": {...}}], "exit_code": 0}``
where a turn is ``{"id": "msg_1", "text": "...", "tool": {"id", "name", "input", "result", "is_error"},
"usage": {...}, "error": "rate_limit"}``, or ``{"raw": [message, ...]}``: stream-json messages sent as they
are (no hooks), such as the interleaved messages of subagents.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

with open(os.environ["FAKE_CLAUDE_SCRIPT"]) as _script:
    SCRIPT = json.loads(_script.read())
LOG = os.environ.get("FAKE_CLAUDE_LOG")
MODEL = SCRIPT.get("model", "claude-sonnet-4-5")
SESSION = SCRIPT.get("session_id", "session-1")
hooks: dict[str, list[str]] = {}
_counter = 0
_initialized: set[str] = set()


def send(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read() -> dict[str, Any] | None:
    while True:
        line = sys.stdin.readline()
        if not line:
            return None
        if line.strip():
            return json.loads(line)


def answer(request: dict[str, Any]) -> None:
    body = request["request"]
    if body.get("subtype") == "initialize":
        for event, matchers in (body.get("hooks") or {}).items():
            hooks[event] = [cid for m in matchers for cid in m.get("hookCallbackIds", [])]
        response: dict[str, Any] = {"commands": [], "hooks_applied": True}
    else:
        response = {}
    send(
        {
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request["request_id"], "response": response},
        }
    )


def wait_user() -> dict[str, Any] | None:
    while True:
        message = read()
        if message is None or message.get("type") == "user":
            return message
        if message.get("type") == "control_request":
            answer(message)


def call_hooks(event: str, payload: dict[str, Any], tool_use_id: str) -> list[dict[str, Any]]:
    global _counter
    answers = []
    for callback_id in hooks.get(event, []):
        _counter += 1
        request_id = f"cli_req_{_counter}"
        data = {"hook_event_name": event, "session_id": SESSION, "transcript_path": "", "cwd": "/", **payload}
        send(
            {
                "type": "control_request",
                "request_id": request_id,
                "request": {
                    "subtype": "hook_callback",
                    "callback_id": callback_id,
                    "input": data,
                    "tool_use_id": tool_use_id,
                },
            }
        )
        while True:
            message = read()
            if message is None:
                return answers
            if (
                message.get("type") == "control_response"
                and message["response"].get("request_id") == request_id
            ):
                answers.append(message["response"].get("response") or {})
                break
            if message.get("type") == "control_request":
                answer(message)
    return answers


def control(body: dict[str, Any]) -> dict[str, Any]:
    """Send a control request to the SDK and return its response (answering the SDK's own meanwhile)."""
    global _counter
    _counter += 1
    request_id = f"cli_req_{_counter}"
    send({"type": "control_request", "request_id": request_id, "request": body})
    while True:
        message = read()
        if message is None:
            return {}
        if message.get("type") == "control_response" and message["response"].get("request_id") == request_id:
            return message["response"].get("response") or {}
        if message.get("type") == "control_request":
            answer(message)


def mcp(server: str, method: str, params: dict[str, Any], notify: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if not notify:
        message["id"] = _counter + 1
    body = {"subtype": "mcp_message", "server_name": server, "message": message}
    return control(body).get("mcp_response") or {}


def call_sdk_tool(tool: dict[str, Any]) -> tuple[Any, bool]:
    """An in-process SDK MCP server's tool, called as Claude Code calls it: (content, is_error)."""
    server = tool["sdk"]
    if server not in _initialized:
        _initialized.add(server)
        hello = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "fake", "version": "1"},
        }
        mcp(server, "initialize", hello)
        mcp(server, "notifications/initialized", {}, notify=True)
    name = tool["name"].split("__", 2)[2]
    params = {"name": name, "arguments": tool["input"], "_meta": {"claudecode/toolUseId": tool["id"]}}
    response = mcp(server, "tools/call", params)
    result = response.get("result")
    if not isinstance(result, dict):
        error = (response.get("error") or {}).get("message", "MCP error")
        return f"Error: {error}", True
    return result.get("content", []), bool(result.get("isError"))


def assistant(turn: dict[str, Any], block: dict[str, Any]) -> None:
    event = {
        "type": "assistant",
        "message": {
            "id": turn["id"],
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [block],
            "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
            "usage": turn.get("usage", {"input_tokens": 10, "output_tokens": 5}),
        },
        "parent_tool_use_id": None,
        "session_id": SESSION,
        "uuid": str(uuid.uuid4()),
    }
    if turn.get("error"):
        event["error"] = turn["error"]
    send(event)


def play(prompt: dict[str, Any]) -> None:
    turns = prompt.get("turns", [])
    result: dict[str, Any] = {
        "subtype": "success",
        "is_error": False,
        "result": "done",
        **prompt.get("result", {}),
    }
    for turn in turns:
        if turn.get("raw") is not None:  # messages sent as they are (a subagent's, interleaved...)
            for message in turn["raw"]:
                send({"session_id": SESSION, "uuid": str(uuid.uuid4()), "parent_tool_use_id": None} | message)
            continue
        if turn.get("text") is not None:
            assistant(turn, {"type": "text", "text": turn["text"]})
        tool = turn.get("tool")
        if tool is None:
            continue
        assistant(turn, {"type": "tool_use", "id": tool["id"], "name": tool["name"], "input": tool["input"]})
        payload = {"tool_name": tool["name"], "tool_input": tool["input"], "tool_use_id": tool["id"]}
        answers = [] if tool.get("no_hooks") else call_hooks("PreToolUse", payload, tool["id"])
        decisions = [a.get("hookSpecificOutput", {}).get("permissionDecision") for a in answers]
        if "deny" in decisions:
            content, is_error = "denied by a PreToolUse hook", True
        elif tool.get("sdk"):  # the SDK runs it, in its own process
            content, is_error = call_sdk_tool(tool)
            if is_error:
                call_hooks("PostToolUseFailure", {**payload, "error": json.dumps(content)}, tool["id"])
            else:
                call_hooks("PostToolUse", {**payload, "tool_response": content}, tool["id"])
        else:
            if LOG:
                with open(LOG, "a") as log:
                    log.write(json.dumps({"tool": tool["name"], "input": tool["input"]}) + "\n")
            content, is_error = tool.get("result", ""), bool(tool.get("is_error"))
            if is_error:
                call_hooks("PostToolUseFailure", {**payload, "error": content}, tool["id"])
            else:
                call_hooks("PostToolUse", {**payload, "tool_response": content}, tool["id"])
        send(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": tool["id"],
                            "content": content,
                            "is_error": is_error,
                        }
                    ],
                },
                "parent_tool_use_id": None,
                "session_id": SESSION,
                "uuid": str(uuid.uuid4()),
            }
        )
        if any(a.get("continue") is False for a in answers):
            result = {
                "subtype": "success",
                "is_error": False,
                "result": "",
                "terminal_reason": "hook_stopped",
            }
            break
    send(
        {
            "type": "result",
            "duration_ms": 12,
            "duration_api_ms": 10,
            "num_turns": len(turns),
            "session_id": SESSION,
            "uuid": str(uuid.uuid4()),
            **result,
        }
    )


def main() -> int:
    send(
        {
            "type": "system",
            "subtype": "init",
            "session_id": SESSION,
            "model": MODEL,
            "claude_code_version": "2.1.200",
        }
    )
    prompts = list(SCRIPT.get("prompts", []))
    while True:
        message = wait_user()
        if message is None:
            return int(SCRIPT.get("exit_code", 0))
        play(prompts.pop(0) if prompts else {"turns": [{"id": "msg_x", "text": "nothing scripted"}]})
        if SCRIPT.get("exit_code"):
            return int(SCRIPT["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
