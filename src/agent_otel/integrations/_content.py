"""Prompts and completions in the GenAI conventions' message form, for opt-in content capture.

``gen_ai.input.messages`` / ``gen_ai.output.messages`` hold a JSON list of messages, each
``{"role": ..., "parts": [...]}`` with parts such as ``{"type": "text", "content": ...}``,
``{"type": "tool_call", "id": ..., "name": ..., "arguments": ...}`` and
``{"type": "tool_call_response", "id": ..., "response": ...}``; output messages also carry their
``finish_reason``. The converters here turn what each API or framework sends and receives into that
form; they are only called when ``logging.events.capture_content`` is on (the LLM step then redacts
and truncates the result like ``store_args``), and whatever they do not recognise becomes a text part
of its string form rather than an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._common import parse_json_args, usage_value


def text(content: Any) -> dict[str, Any]:
    return {"type": "text", "content": content if isinstance(content, str) else str(content)}


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": parse_json_args(arguments)}


def tool_response(call_id: Any, response: Any) -> dict[str, Any]:
    return {"type": "tool_call_response", "id": call_id, "response": response}


def message(role: Any, parts: list[dict[str, Any]], finish_reason: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": str(role or "user"), "parts": parts}
    if finish_reason is not None:
        out["finish_reason"] = str(finish_reason)
    return out


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Parts of an OpenAI / Anthropic ``content``: a string, or a list of typed blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text(content)] if content else []  # an assistant turn with only tool calls has ""
    if not isinstance(content, list):
        return [text(content)]
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = usage_value(block, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(text(usage_value(block, "text")))
        elif kind == "tool_use":
            parts.append(
                tool_call(usage_value(block, "id"), usage_value(block, "name"), usage_value(block, "input"))
            )
        elif kind == "tool_result":
            parts.append(
                tool_response(usage_value(block, "tool_use_id"), _jsonable(usage_value(block, "content")))
            )
        elif isinstance(block, str):
            parts.append(text(block))
        else:
            parts.append({"type": str(kind or "unknown")})  # images, files...: named, not copied
    return parts


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


# --- OpenAI ----------------------------------------------------------------------------------------


def openai_chat_input(messages: Any) -> list[dict[str, Any]]:
    out = []
    for m in messages or ():
        role = usage_value(m, "role")
        if role == "tool":
            out.append(
                message("tool", [tool_response(usage_value(m, "tool_call_id"), usage_value(m, "content"))])
            )
            continue
        parts = _blocks(usage_value(m, "content"))
        for tc in usage_value(m, "tool_calls") or ():
            fn = usage_value(tc, "function")
            parts.append(
                tool_call(usage_value(tc, "id"), usage_value(fn, "name"), usage_value(fn, "arguments"))
            )
        out.append(message(role, parts))
    return out


def openai_chat_output(body: Any) -> list[dict[str, Any]]:
    out = []
    for choice in usage_value(body, "choices") or ():
        m = usage_value(choice, "message") or {}
        parts = _blocks(usage_value(m, "content"))
        for tc in usage_value(m, "tool_calls") or ():
            fn = usage_value(tc, "function")
            parts.append(
                tool_call(usage_value(tc, "id"), usage_value(fn, "name"), usage_value(fn, "arguments"))
            )
        out.append(
            message(usage_value(m, "role") or "assistant", parts, usage_value(choice, "finish_reason"))
        )
    return out


def responses_input(items: Any, instructions: Any = None) -> list[dict[str, Any]]:
    """The Responses API's ``input`` (also what the Agents SDK sends its model)."""
    out = []
    if isinstance(instructions, str) and instructions:
        out.append(message("system", [text(instructions)]))
    if isinstance(items, str):
        return [*out, message("user", [text(items)])]
    for item in items or ():
        kind = usage_value(item, "type")
        if kind == "function_call":
            out.append(
                message(
                    "assistant",
                    [
                        tool_call(
                            usage_value(item, "call_id"),
                            usage_value(item, "name"),
                            usage_value(item, "arguments"),
                        )
                    ],
                )
            )
        elif kind == "function_call_output":
            out.append(
                message("tool", [tool_response(usage_value(item, "call_id"), usage_value(item, "output"))])
            )
        elif usage_value(item, "role") is not None:
            out.append(message(usage_value(item, "role"), _blocks(usage_value(item, "content"))))
    return out


def responses_output(items: Any, finish_reason: Any = None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for item in items or ():
        kind = usage_value(item, "type")
        if kind == "message":
            parts.extend(_blocks(usage_value(item, "content")))
        elif kind == "function_call":
            parts.append(
                tool_call(
                    usage_value(item, "call_id"), usage_value(item, "name"), usage_value(item, "arguments")
                )
            )
    return [message("assistant", parts, finish_reason)] if parts else []


# --- Anthropic -------------------------------------------------------------------------------------


def anthropic_input(body: Any) -> list[dict[str, Any]]:
    out = []
    system = usage_value(body, "system")
    if system:
        out.append(message("system", _blocks(system)))
    for m in usage_value(body, "messages") or ():
        out.append(message(usage_value(m, "role"), _blocks(usage_value(m, "content"))))
    return out


def anthropic_output(body: Any) -> list[dict[str, Any]]:
    return [message("assistant", _blocks(usage_value(body, "content")), usage_value(body, "stop_reason"))]


# --- LangChain -------------------------------------------------------------------------------------

_LANGCHAIN_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
}


def langchain_input(batches: Any) -> list[dict[str, Any]]:
    """``on_chat_model_start``'s messages (a list of lists; agent-otel records one request per call)."""
    messages: Iterable[Any] = batches[0] if batches and isinstance(batches[0], list) else batches or ()
    return [_langchain_message(m) for m in messages]


def _langchain_message(m: Any) -> dict[str, Any]:
    kind = getattr(m, "type", None)
    role = _LANGCHAIN_ROLES.get(str(kind), str(kind or "user"))
    if role == "tool":
        return message(
            "tool", [tool_response(getattr(m, "tool_call_id", None), _jsonable(getattr(m, "content", None)))]
        )
    parts = _blocks(getattr(m, "content", None))
    for tc in getattr(m, "tool_calls", None) or ():
        parts.append(tool_call(tc.get("id"), tc.get("name"), tc.get("args")))
    return message(role, parts)


def langchain_output(response: Any) -> list[dict[str, Any]]:
    out = []
    for candidates in getattr(response, "generations", None) or []:
        for gen in candidates:
            m = getattr(gen, "message", None)
            if m is None:
                out.append(message("assistant", [text(getattr(gen, "text", ""))]))
                continue
            reason = (getattr(m, "response_metadata", None) or {}).get("finish_reason") or (
                getattr(m, "response_metadata", None) or {}
            ).get("stop_reason")
            converted = _langchain_message(m)
            out.append(message("assistant", converted["parts"], reason))
    return out


# --- PydanticAI ------------------------------------------------------------------------------------


def pydantic_ai_input(messages: Any) -> list[dict[str, Any]]:
    out = []
    for m in messages or ():
        for part in getattr(m, "parts", None) or ():
            kind = getattr(part, "part_kind", None)
            if kind == "system-prompt":
                out.append(message("system", [text(part.content)]))
            elif kind == "user-prompt":
                out.append(
                    message(
                        "user", _blocks(part.content if isinstance(part.content, str) else list(part.content))
                    )
                )
            elif kind == "tool-return":
                out.append(message("tool", [tool_response(part.tool_call_id, _jsonable(part.content))]))
            elif kind == "retry-prompt":
                out.append(message("user", [text(part.model_response())]))
            elif kind == "text":
                out.append(message("assistant", [text(part.content)]))
            elif kind == "tool-call":
                out.append(message("assistant", [tool_call(part.tool_call_id, part.tool_name, part.args)]))
    return out


def pydantic_ai_output(response: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in getattr(response, "parts", None) or ():
        kind = getattr(part, "part_kind", None)
        if kind == "text":
            parts.append(text(part.content))
        elif kind == "tool-call":
            parts.append(tool_call(part.tool_call_id, part.tool_name, part.args))
    return [message("assistant", parts, getattr(response, "finish_reason", None))]


# --- Gemini (generateContent) ------------------------------------------------------------------------


def _gemini_parts(parts: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts or ():
        call = usage_value(part, "functionCall")
        answer = usage_value(part, "functionResponse")
        if usage_value(part, "text") is not None:
            out.append(text(usage_value(part, "text")))
        elif call is not None:
            out.append(
                tool_call(usage_value(call, "id"), usage_value(call, "name"), usage_value(call, "args"))
            )
        elif answer is not None:
            out.append(tool_response(usage_value(answer, "id"), _jsonable(usage_value(answer, "response"))))
        else:
            kinds = (
                [k for k in part if k not in ("thought", "thoughtSignature")]
                if isinstance(part, dict)
                else []
            )
            out.append({"type": str(kinds[0] if kinds else "unknown")})  # inline data, files...: named
    return out


def gemini_input(request: Any) -> list[dict[str, Any]]:
    """The ``contents`` (and ``systemInstruction``) of a generateContent request body."""
    out = []
    system = usage_value(request, "systemInstruction")
    if system is not None:
        out.append(message("system", _gemini_parts(usage_value(system, "parts"))))
    for content in usage_value(request, "contents") or ():
        role = usage_value(content, "role")
        out.append(
            message(
                "assistant" if role == "model" else role or "user",
                _gemini_parts(usage_value(content, "parts")),
            )
        )
    return out


def gemini_output(body: Any) -> list[dict[str, Any]]:
    return [
        message(
            "assistant",
            _gemini_parts(usage_value(candidate, "content", "parts")),
            usage_value(candidate, "finishReason"),
        )
        for candidate in usage_value(body, "candidates") or ()
    ]


# --- Bedrock Converse --------------------------------------------------------------------------------


def _converse_blocks(blocks: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in blocks or ():
        use = usage_value(block, "toolUse")
        result = usage_value(block, "toolResult")
        if usage_value(block, "text") is not None:
            out.append(text(usage_value(block, "text")))
        elif use is not None:
            out.append(
                tool_call(usage_value(use, "toolUseId"), usage_value(use, "name"), usage_value(use, "input"))
            )
        elif result is not None:
            out.append(
                tool_response(usage_value(result, "toolUseId"), _jsonable(usage_value(result, "content")))
            )
        else:
            kinds = list(block) if isinstance(block, dict) else []
            out.append({"type": str(kinds[0] if kinds else "unknown")})  # images, documents...: named
    return out


def converse_input(params: Any) -> list[dict[str, Any]]:
    """The ``system`` and ``messages`` of a Bedrock Converse request."""
    out = []
    system = usage_value(params, "system")
    if system:
        out.append(message("system", _converse_blocks(system)))
    for m in usage_value(params, "messages") or ():
        out.append(message(usage_value(m, "role"), _converse_blocks(usage_value(m, "content"))))
    return out


def converse_output(response: Any) -> list[dict[str, Any]]:
    m = usage_value(response, "output", "message")
    if m is None:
        return []
    return [
        message(
            usage_value(m, "role") or "assistant",
            _converse_blocks(usage_value(m, "content")),
            usage_value(response, "stopReason"),
        )
    ]
