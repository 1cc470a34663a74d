"""Claude Agent SDK (``claude-agent-sdk``): ``query()`` and ``ClaudeSDKClient`` turns, tool uses, model turns.

The SDK drives the Claude Code CLI as a subprocess: the CLI calls the model and runs the tools (Bash, Read,
Edit, MCP tools...) itself, reports every step as a stream-json message, and asks the SDK's hooks before and
after each tool use. agent-otel adds its own ``PreToolUse`` / ``PostToolUse`` / ``PostToolUseFailure`` hooks
to the options of every query and client (the user's own hooks stay and run too) and reads the messages:

* Runs: a ``query()`` is a run; with ``ClaudeSDKClient`` each ``client.query()`` up to its ``ResultMessage``
  is one (a turn). The run is named ``claude-agent`` (wrap it in ``agent_otel.run("name")`` to name it: the
  turn's steps then join that run), with the prompt as ``agent.input_sha``, ``options.model`` as
  ``gen_ai.request.model`` and the CLI's session id (``options.resume``, or the one the CLI reports) as
  ``gen_ai.conversation.id``: a client's turns share it. It is entered in a context of its own, so
  leaving a stream early never leaves a run behind in the caller's context.
* Tools: the ``PreToolUse`` hook begins the tool step through :func:`agent_otel.tools.begin` *before* the CLI
  runs the tool, with the ``tool_use_id`` and the tool's input; a guard that stops the run answers the hook
  with ``permissionDecision: deny`` and ``continue: false``, so the tool never runs and Claude stops. The
  step ends at ``PostToolUse`` (result: the hook's ``tool_response``) or ``PostToolUseFailure`` (error
  ``ToolUseError``), or, from a CLI that sends neither, at the ``tool_result`` block the model gets back.
* Model turns: each assistant message (one API response: the CLI sends one message per content block, all
  with the same message id and usage) is an LLM step with its model and usage (``input_tokens`` plus cache
  reads and writes, as the Anthropic client integration counts them), the response id, stop reason and the
  tool uses it asked for (provider ``anthropic``, or ``aws.bedrock`` / ``gcp.vertex_ai`` when Claude Code is
  told to use them), from the moment the request became
  due (the prompt was sent, or the last tool result came back) to its last block. The SDK reports
  responses after they happened, so guards on model steps (budgets) act at the next tool use.
* Stop: the ``ResultMessage``: ``success`` -> ``completed``; ``error_max_turns`` -> ``max_steps``;
  ``error_max_budget_usd`` -> ``budget_exceeded``; an API error (``api_error_status``, or an assistant
  message with ``error``) -> ``model_error``; an interrupted turn -> ``cancelled``; any other error result
  -> ``error``. A run a guard stopped raises :class:`~agent_otel.AgentStopped` to the consumer once the
  CLI has finished the turn (after the ``ResultMessage`` of ``query()`` / ``receive_response()``).
* Replay: the CLI runs its own tools (Bash, Edit, external MCP servers...), and a hook cannot hand it a
  result instead, so a replayed run's tool uses are refused (denied, and ``ReplayError`` is raised to the
  consumer): nothing runs twice. The tools of an in-process SDK MCP server (``create_sdk_mcp_server``)
  run in this process, where the CLI asks for them through ``mcp_message`` control requests: the
  recording keeps the MCP result the server answered (``ToolCall.snapshot_json``, or on the recorded
  ``ToolUseError``), and a replay lets the tool use go ahead and answers the CLI's ``tools/call`` with
  that result instead of calling the server, so the tool function does not run and the CLI gets what it
  got then. A tool use recorded before the MCP result was kept is refused, as is a ``tools/call`` of a
  replayed run that matches no tool use agent-otel saw.

The hooks need the SDK's streaming control protocol, which ``query()`` and ``ClaudeSDKClient`` always use. A
custom ``transport=`` that does not answer hook callbacks leaves tool uses unrecorded (model turns still are).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from agent_otel import llm
from agent_otel.conventions import GEN_AI_CONVERSATION_ID
from agent_otel.guards import ToolDenied
from agent_otel.hashing import canonical_json, sha
from agent_otel.llm import LLMCall
from agent_otel.replay import ReplayError, recorded
from agent_otel.run import MISSING, FrameworkRun, enter_run, exit_run
from agent_otel.steps import internal_error
from agent_otel.stop import AgentStopped, StopReason
from agent_otel.tools import ToolCall

from . import Integration
from ._common import Patcher, as_int, call_or_serve, refuse, start_tool, token_count, usage_value

AGENT = "claude-agent"
_RESULT_REASONS = {
    "success": StopReason.COMPLETED,
    "error_max_turns": StopReason.MAX_STEPS,
    "error_max_budget_usd": StopReason.BUDGET_EXCEEDED,
}
_CANCELLED = ("aborted_streaming", "aborted_tools", "interrupted")
#: Where a client keeps its holder, and the mark on agent-otel's hook callbacks naming theirs.
_HOLDER_ATTR = "_agent_otel_turns"
#: The key under which a recorded SDK MCP tool use keeps the MCP result its server answered.
MCP_RESULT = "$mcp_result"
#: Where Claude Code names the tool use in a ``tools/call`` to an SDK MCP server.
_TOOL_USE_META = "claudecode/toolUseId"
#: Whether the SDK MCP servers' messages go through agent-otel's hook (else a replay refuses their tools).
_mcp_hooked = False


class ToolUseError(Exception):
    """A tool use the CLI reported as failed (``PostToolUseFailure``, or an ``is_error`` tool result).

    ``mcp_result``: for a tool of an in-process SDK MCP server, the MCP result the server answered (kept
    with the recorded error, so that a replay answers the CLI the same)."""

    def __init__(self, message: str, mcp_result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.mcp_result = mcp_result


class ModelResponseError(Exception):
    """An assistant message that carries an API error (``rate_limit``, ``server_error``...)."""


class _Responses:
    """The model responses of one agent of a turn (the main one, or a subagent its ``Task`` tool use runs,
    whose messages carry that ``parent_tool_use_id``): the one in flight, and when the next became due.
    Subagents run in parallel, their messages interleaved: each keeps its own, so that one response sent
    as several messages is still one step."""

    __slots__ = ("due_ns", "due_perf", "llm", "message_id", "tool_use_ids", "usage")

    def __init__(self) -> None:
        self.llm: LLMCall | None = None
        self.message_id: str | None = None
        self.usage: Any = None
        self.tool_use_ids: list[str] = []
        self.due_ns = time.time_ns()  # when the next model request became due
        self.due_perf = time.perf_counter_ns()


class _Turn:
    """One run: its own context, the tool steps in flight by ``tool_use_id``, the model steps in flight (one
    per agent: the main one, and subagents by ``parent_tool_use_id``)."""

    def __init__(self, prompt: Any, options: Any, session_id: str | None = None) -> None:
        self.context = contextvars.copy_context()
        model = getattr(options, "model", None)
        resume = getattr(options, "resume", None)
        conversation = session_id or (resume if isinstance(resume, str) and resume else None)
        self.frun: FrameworkRun | None = self.context.run(
            functools.partial(
                enter_run,
                AGENT,
                model=model if isinstance(model, str) else None,
                input=_prompt_input(prompt),
                conversation_id=conversation,
            )
        )
        self.provider = _provider(options)
        self.session_id = conversation
        self.tools: dict[str, ToolCall] = {}
        self.sdk_servers = _sdk_servers(options)
        self.mcp_results: dict[str, dict[str, Any]] = {}  # tool_use_id -> what its SDK MCP server answered
        self.serving: dict[str, dict[str, Any]] = {}  # tool_use_id -> the recorded MCP result to answer
        self.agents: dict[str | None, _Responses] = {None: _Responses()}
        self.began: dict[str, tuple[int, int]] = {}  # when each tool use in flight began (a Task's subagent)
        self.model_error = False
        self.result: dict[str, Any] | None = None
        self.stopped: BaseException | None = None  # what to raise to the consumer once the turn ended
        self.ended = False

    @property
    def run(self) -> Any:
        return self.frun.run if self.frun is not None else None

    # --- tools (the hooks) ---------------------------------------------------------------------------

    def pre_tool(self, data: dict[str, Any], tool_use_id: str | None) -> dict[str, Any]:
        run = self.run
        if run is None or self.ended:
            return {}
        name = str(data.get("tool_name") or "tool")
        for agent in list(self.agents.values()):  # the response that asked for this tool use is complete
            if tool_use_id in agent.tool_use_ids:
                self._end_llm(agent)
        kind = (
            "extension" if name.startswith("mcp__") else "function"
        )  # an MCP server's tool, or Claude Code's
        try:
            call = start_tool(
                run, name, data.get("tool_input"), call_id=tool_use_id, attach=False, tool_type=kind
            )
            if call is not None and call.replay is not None:
                if _mcp_hooked and self._sdk_tool(name):
                    self.serving[tool_use_id or ""] = _recorded_mcp_result(call)
                else:
                    call_or_serve(call, None, _nothing)  # refuses: the CLI runs the tool, it cannot be served
        except ToolDenied as exc:  # on_deny: raise: this tool is refused, the agent carries on
            return _deny(str(exc), stop=False)
        except (AgentStopped, ReplayError) as exc:
            self.stopped = exc
            reason = exc.stop_reason.value if isinstance(exc, AgentStopped) else "replay"
            return _deny(f"agent-otel stopped the run ({reason}): {exc}")
        if call is not None and tool_use_id:
            self.tools[tool_use_id] = call
            self.began[tool_use_id] = (time.time_ns(), time.perf_counter_ns())
        return {}

    def post_tool(self, tool_use_id: str | None, result: Any = None, error: str | None = None) -> None:
        call = self.tools.pop(tool_use_id or "", None)
        self.began.pop(tool_use_id or "", None)
        self.serving.pop(tool_use_id or "", None)
        mcp_result = self.mcp_results.pop(tool_use_id or "", None)
        if call is None:
            return
        if error is None:
            if mcp_result is not None:  # served by a replay from what is recorded: the CLI's result is hashed
                call.snapshot_json = canonical_json({MCP_RESULT: mcp_result})
            call.ok(result)
        else:
            call.fail(ToolUseError(error, mcp_result))

    # --- in-process SDK MCP servers ------------------------------------------------------------------

    def _sdk_tool(self, name: str) -> bool:
        """Whether ``name`` is a tool of an in-process SDK MCP server (``mcp__<server>__<tool>``)."""
        return any(name.startswith(f"mcp__{server}__") for server in self.sdk_servers)

    def mcp_call(self, server: str, params: dict[str, Any]) -> tuple[str | None, ToolCall | None]:
        """The tool use a ``tools/call`` to an SDK MCP server answers: named in its ``_meta`` (Claude
        Code does), else the first tool use in flight of that tool and arguments."""
        name = f"mcp__{server}__{params.get('name')}"
        meta = params.get("_meta")
        named = meta.get(_TOOL_USE_META) if isinstance(meta, dict) else None
        if isinstance(named, str) and named in self.tools:
            return named, self.tools[named]
        args_sha = sha(params.get("arguments") if params.get("arguments") is not None else {})
        for tool_use_id, call in self.tools.items():
            if call.name == name and call.args_sha == args_sha and tool_use_id not in self.mcp_results:
                return tool_use_id, call
        return None, None

    # --- messages (read by the SDK's reader task, in the order the CLI sent them) -------------------

    def observe(self, data: dict[str, Any]) -> None:
        """One stream-json message of the CLI, before the SDK parses it or answers a hook it precedes."""
        kind = data.get("type")
        if kind in ("control_request", "control_response", "control_cancel_request", "stream_event"):
            return
        self._conversation(data.get("session_id"))
        parent = data.get("parent_tool_use_id")
        agent = self.agents.get(parent if isinstance(parent, str) else None)
        if kind == "assistant":
            self._assistant(data)
            return
        if kind == "result":
            self._end_llms()
            self.result = data
            return
        if agent is not None:
            self._end_llm(agent)
        if kind == "user":
            for block in _blocks(data):
                if block.get("type") == "tool_result":
                    content = block.get("content")
                    error = _text(content) if block.get("is_error") else None
                    self.post_tool(block.get("tool_use_id"), content, error)
            if agent is not None:
                agent.due_ns, agent.due_perf = time.time_ns(), time.perf_counter_ns()

    def _assistant(self, data: dict[str, Any]) -> None:
        run = self.run
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        message_id = message.get("id")
        parent = data.get("parent_tool_use_id")
        agent = self.agents.get(parent if isinstance(parent, str) else None)
        if agent is None:  # a subagent's first response: due since its Task tool use began
            agent = self.agents[parent] = _Responses()
            if parent in self.tools:
                agent.due_ns, agent.due_perf = self.began.get(parent, (agent.due_ns, agent.due_perf))
        if agent.llm is not None and message_id is not None and message_id == agent.message_id:
            agent.usage = message.get("usage") or agent.usage
        else:
            self._end_llm(agent)
            if run is None:
                return
            model = message.get("model")
            call = llm.begin(
                run,
                str(model or "unknown"),
                attach=False,
                start_time_ns=agent.due_ns,
                checks=False,
                provider=self.provider,
            )
            if call is None:
                return
            call.back_date((time.perf_counter_ns() - agent.due_perf) / 1e6)
            agent.llm, agent.message_id, agent.usage = call, message_id, message.get("usage")
            agent.tool_use_ids = []
        for block in message.get("content") or ():
            if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("id"):
                agent.tool_use_ids.append(str(block["id"]))
        agent.llm.response(
            response_id=message_id,
            response_model=message.get("model"),
            finish_reasons=message.get("stop_reason"),
            tool_call_ids=agent.tool_use_ids,
        )
        error = data.get("error")
        if error:
            self.model_error = True
            self._end_llm(agent, ModelResponseError(str(error)))

    def _conversation(self, session_id: Any) -> None:
        """The CLI's session id is the run's ``gen_ai.conversation.id`` (a user's run keeps its own)."""
        run = self.run
        if (
            not isinstance(session_id, str)
            or not session_id
            or run is None
            or run.conversation_id is not None
        ):
            return
        self.session_id = run.conversation_id = session_id
        run.span.set_attribute(GEN_AI_CONVERSATION_ID, session_id)

    def _end_llms(self) -> None:
        for agent in list(self.agents.values()):
            self._end_llm(agent)

    def _end_llm(self, agent: _Responses, error: BaseException | None = None) -> None:
        call, agent.llm = agent.llm, None
        if call is None:
            return
        usage = agent.usage
        cache_read = as_int(usage_value(usage, "cache_read_input_tokens"))
        cache_write = as_int(usage_value(usage, "cache_creation_input_tokens"))
        input_tokens = token_count(usage_value(usage, "input_tokens"))  # None: unknown, not 0 tokens
        if input_tokens is not None:  # Anthropic's input_tokens leave the cache out
            input_tokens += cache_read + cache_write
        output_tokens = token_count(usage_value(usage, "output_tokens"))
        if error is not None:
            call.fail(
                error,
                input_tokens,
                output_tokens,
                cached_input_tokens=cache_read,
                cache_write_tokens=cache_write,
            )
        else:
            call.finish(
                input_tokens, output_tokens, cached_input_tokens=cache_read, cache_write_tokens=cache_write
            )
        agent.due_ns, agent.due_perf = time.time_ns(), time.perf_counter_ns()

    # --- the end -------------------------------------------------------------------------------------

    def reason(self) -> tuple[StopReason | None, str | None]:
        result = self.result
        if result is None:
            return None, None
        subtype = str(result.get("subtype") or "")
        detail = f"Claude Code result: {subtype}"
        if str(result.get("terminal_reason") or "") in _CANCELLED:
            return StopReason.CANCELLED, detail
        if not result.get("is_error"):
            return StopReason.COMPLETED, None
        if result.get("api_error_status") is not None or self.model_error:
            return StopReason.MODEL_ERROR, detail
        return _RESULT_REASONS.get(subtype, StopReason.ERROR), detail

    def end(self, exc: BaseException | None, cancelled: str | None = None) -> None:
        """Leave the run (once): close what is open, stop it as the result says (``cancelled``: why the
        turn was left before its result)."""
        if self.ended:
            return
        self.ended = True
        try:
            self._end_llms()
            for tool_use_id in list(self.tools):
                self.post_tool(tool_use_id, error="the turn ended before the tool use finished")
            frun = self.frun
            if frun is None:
                return
            reason, detail = self.reason()
            if reason is None and exc is None and cancelled:
                reason, detail = StopReason.CANCELLED, cancelled
            if reason is not None and frun.owned and reason is not StopReason.COMPLETED and exc is None:
                frun.run.stop(reason, detail)
            self.context.run(exit_run, frun, exc, reason if exc is not None else None)
        except Exception as err:
            internal_error("ending a Claude Agent SDK run", err)


def _nothing() -> None:
    return None


def _sdk_servers(options: Any) -> tuple[str, ...]:
    """The names of the in-process SDK MCP servers among the options' ``mcp_servers``."""
    servers = getattr(options, "mcp_servers", None)
    if not isinstance(servers, dict):
        return ()
    return tuple(
        str(name)
        for name, config in servers.items()
        if isinstance(config, dict) and config.get("type") == "sdk"
    )


def _recorded_mcp_result(call: ToolCall) -> dict[str, Any]:
    """The MCP result a replayed SDK MCP tool use is answered with: what its server answered when the
    call was recorded. A recording without it (made before it was kept) is refused."""
    outcome = recorded(call)
    error = outcome.error
    if error is not None:
        kept = getattr(error, "mcp_result", None) if isinstance(error, ToolUseError) else None
    else:
        value = outcome.value
        kept = value.get(MCP_RESULT) if isinstance(value, dict) else None
    if not isinstance(kept, dict):
        refuse(
            call,
            "is a tool of an in-process SDK MCP server whose result was recorded by an agent-otel that did "
            "not keep the MCP result the server answered, so it cannot be answered from the recording",
        )
    return kept


def _provider(options: Any) -> str:
    """Claude Code calls Anthropic's API, or Bedrock / Vertex AI when its environment says so."""
    env = {**os.environ, **(getattr(options, "env", None) or {})}
    if str(env.get("CLAUDE_CODE_USE_BEDROCK", "")).lower() in ("1", "true"):
        return "aws.bedrock"
    if str(env.get("CLAUDE_CODE_USE_VERTEX", "")).lower() in ("1", "true"):
        return "gcp.vertex_ai"
    return "anthropic"


def _deny(reason: str, stop: bool = True) -> dict[str, Any]:
    """The PreToolUse answer refusing a tool use; ``stop`` also ends the CLI's turn."""
    denial: dict[str, Any] = {"continue_": False, "stopReason": reason} if stop else {}
    return {
        **denial,
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        },
    }


def _prompt_input(prompt: Any) -> Any:
    return prompt if isinstance(prompt, str) else MISSING


def _blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    message = data.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class _Holder:
    """The current turn of a query or a client (the hooks are registered once, the turns change)."""

    __slots__ = ("turn",)

    def __init__(self) -> None:
        self.turn: _Turn | None = None

    @property
    def session_id(self) -> str | None:
        """The conversation of a client's turns so far (its next turn continues it)."""
        return self.turn.session_id if self.turn is not None else None


def _safely(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        internal_error(what, exc)
        return None


def _hooks(holder: _Holder) -> dict[str, Any]:
    """agent-otel's hook callbacks, by hook event."""

    async def pre_tool_use(data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        turn = holder.turn
        if turn is None or not isinstance(data, dict):
            return {}
        return _safely("recording a Claude tool use", turn.pre_tool, data, tool_use_id) or {}

    async def post_tool_use(data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        turn = holder.turn
        if turn is not None and isinstance(data, dict):
            _safely("recording a Claude tool result", turn.post_tool, tool_use_id, data.get("tool_response"))
        return {}

    async def post_tool_use_failure(data: Any, tool_use_id: str | None, context: Any) -> dict[str, Any]:
        turn = holder.turn
        if turn is not None and isinstance(data, dict):
            error = str(data.get("error") or "tool use failed")
            _safely("recording a Claude tool error", turn.post_tool, tool_use_id, None, error)
        return {}

    hooks = {
        "PreToolUse": pre_tool_use,
        "PostToolUse": post_tool_use,
        "PostToolUseFailure": post_tool_use_failure,
    }
    for callback in hooks.values():
        setattr(callback, _HOLDER_ATTR, holder)
    return hooks


def _with_hooks(options: Any, holder: _Holder) -> Any:
    """A copy of ``options`` whose hooks include agent-otel's (added after the user's own)."""
    from claude_agent_sdk.types import HookMatcher

    hooks = {event: list(matchers) for event, matchers in (getattr(options, "hooks", None) or {}).items()}
    for event, callback in _hooks(holder).items():
        hooks.setdefault(event, []).append(HookMatcher(matcher=None, hooks=[callback]))
    return dataclasses.replace(options, hooks=hooks)


def _raise_if_stopped(turn: _Turn) -> None:
    stopped = turn.stopped
    run = turn.run
    if stopped is None or run is None:
        return
    if isinstance(stopped, AgentStopped) and run.result is not None:
        raise AgentStopped(run.result)
    raise stopped


# --- query() ---------------------------------------------------------------------------------------


def _make_process_query(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def process_query(
        self: Any, prompt: Any, options: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        holder = _Holder()
        try:
            turn = _Turn(prompt, options)
            options = _with_hooks(options, holder)
            holder.turn = turn
        except Exception as exc:
            internal_error("starting a Claude Agent SDK run", exc)
            async for message in original(self, prompt, options, *args, **kwargs):
                yield message
            return
        # A str prompt is one turn: its ResultMessage ends the run, before the consumer gets it (one that
        # stops there, the turn being over, closes this generator: not a cancelled run). A stream of
        # prompts is one run over its turns, ended when the query ends.
        one_turn = isinstance(prompt, str)
        try:
            async for message in original(self, prompt, options, *args, **kwargs):
                if one_turn and not turn.ended and type(message).__name__ == "ResultMessage":
                    turn.end(None)
                yield message
        except BaseException as exc:
            turn.end(exc)
            raise
        turn.end(None)
        _raise_if_stopped(turn)

    return process_query


# --- ClaudeSDKClient --------------------------------------------------------------------------------


def _make_connect(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def connect(self: Any, prompt: Any = None, *args: Any, **kwargs: Any) -> Any:
        holder = getattr(self, _HOLDER_ATTR, None)
        if holder is None:
            try:
                holder = _Holder()
                self.options = _with_hooks(self.options, holder)
                setattr(self, _HOLDER_ATTR, holder)
            except Exception as exc:
                internal_error("adding agent-otel's hooks to a ClaudeSDKClient", exc)
        if holder is not None and isinstance(prompt, str):
            _new_turn(self, holder, prompt)
        return await original(self, prompt, *args, **kwargs)

    return connect


def _new_turn(client: Any, holder: _Holder, prompt: Any) -> None:
    previous = holder.turn
    if previous is not None:
        previous.end(None)
    session = holder.session_id
    holder.turn = _safely("starting a Claude Agent SDK run", _Turn, prompt, client.options, session)


def _make_client_query(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def query(self: Any, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        holder = getattr(self, _HOLDER_ATTR, None)
        if holder is not None:
            _new_turn(self, holder, prompt)
        return await original(self, prompt, *args, **kwargs)

    return query


def _make_receive_messages(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def receive_messages(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        holder = getattr(self, _HOLDER_ATTR, None)
        try:
            async for message in original(self, *args, **kwargs):
                turn = holder.turn if holder is not None else None
                if turn is not None and not turn.ended and type(message).__name__ == "ResultMessage":
                    turn.end(None)
                yield message
        except BaseException as exc:
            turn = holder.turn if holder is not None else None
            if turn is not None and not isinstance(exc, GeneratorExit):
                turn.end(exc)
            raise

    return receive_messages


def _make_receive_response(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def receive_response(self: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for message in original(self, *args, **kwargs):
            yield message
        holder = getattr(self, _HOLDER_ATTR, None)
        turn = holder.turn if holder is not None else None
        if turn is not None and turn.ended:
            _raise_if_stopped(turn)

    return receive_response


def _make_disconnect(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def disconnect(self: Any, *args: Any, **kwargs: Any) -> Any:
        holder = getattr(self, _HOLDER_ATTR, None)
        turn = holder.turn if holder is not None else None
        if turn is not None and not turn.ended:
            turn.end(turn.stopped, cancelled="the client disconnected before the turn's result")
        return await original(self, *args, **kwargs)

    return disconnect


# --- the SDK's reader task ---------------------------------------------------------------------------


def _holder_of(query: Any) -> _Holder | None:
    """The holder of agent-otel's hooks among a Query's hook callbacks (None: not ours)."""
    for matchers in (getattr(query, "hooks", None) or {}).values():
        for matcher in matchers or ():
            for callback in (matcher.get("hooks") if isinstance(matcher, dict) else None) or ():
                holder = getattr(callback, _HOLDER_ATTR, None)
                if isinstance(holder, _Holder):
                    return holder
    return None


async def _observed(
    messages: AsyncIterator[dict[str, Any]], holder: _Holder
) -> AsyncIterator[dict[str, Any]]:
    async for data in messages:
        turn = holder.turn
        if turn is not None and not turn.ended and isinstance(data, dict):
            _safely("reading a Claude message", turn.observe, data)
        yield data


def _make_start(original: Callable[..., Any]) -> Callable[..., Any]:
    """Read the CLI's messages in the SDK's reader task, where they come in order with the hook requests."""

    @functools.wraps(original)
    async def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        holder = _holder_of(self)
        transport = getattr(self, "transport", None)
        if holder is not None and transport is not None:
            try:
                read = transport.read_messages
                transport.read_messages = lambda: _observed(read(), holder)
            except Exception as exc:
                internal_error("reading a Claude Agent SDK transport", exc)
        return await original(self, *args, **kwargs)

    return start


def _make_handle_sdk_mcp_request(original: Callable[..., Any]) -> Callable[..., Any]:
    """An in-process SDK MCP server's ``tools/call``: its MCP result kept for the recording, or, under a
    replay, answered from the recording without calling the server."""

    @functools.wraps(original)
    async def _handle_sdk_mcp_request(
        self: Any, server_name: str, message: Any, *args: Any, **kwargs: Any
    ) -> Any:
        holder = _holder_of(self)
        turn = holder.turn if holder is not None else None
        params = message.get("params") if isinstance(message, dict) else None
        if turn is None or not isinstance(params, dict) or message.get("method") != "tools/call":
            return await original(self, server_name, message, *args, **kwargs)
        tool_use_id, call = _safely("matching an SDK MCP tool call", turn.mcp_call, server_name, params) or (
            None,
            None,
        )
        run = turn.run
        if call is not None and tool_use_id is not None and call.replay is not None:
            served = turn.serving.pop(tool_use_id, None)
            if served is not None:
                turn.mcp_results[tool_use_id] = served
                return {"jsonrpc": "2.0", "id": message.get("id"), "result": served}
        if (call is None or call.replay is not None) and run is not None and getattr(run, "is_replay", False):
            # Not a tool use agent-otel began and matched: during a replay it is not executed.
            refusal = ReplayError(
                f"tool {params.get('name')!r} of the SDK MCP server {server_name!r} matches no tool use of "
                "the recording; not executing it during a replay"
            )
            if turn.stopped is None:
                turn.stopped = refusal
            return {
                "jsonrpc": "2.0",
                "id": message.get("id"),
                "error": {"code": -32603, "message": str(refusal)},
            }
        response = await original(self, server_name, message, *args, **kwargs)
        result = response.get("result") if isinstance(response, dict) else None
        if call is not None and tool_use_id is not None and isinstance(result, dict):
            turn.mcp_results[tool_use_id] = {k: v for k, v in result.items() if k != "_meta"}
        return response

    return _handle_sdk_mcp_request


class ClaudeAgentSDKIntegration(Integration):
    """Adds agent-otel's tool hooks to every query and client and reads their messages."""

    name = "claude_agent_sdk"
    packages = ("claude_agent_sdk",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from claude_agent_sdk import client
        from claude_agent_sdk._internal import client as internal
        from claude_agent_sdk._internal import query as internal_query

        targets = [
            (internal_query.Query, "start", _make_start),
            (internal.InternalClient, "process_query", _make_process_query),
            (client.ClaudeSDKClient, "connect", _make_connect),
            (client.ClaudeSDKClient, "query", _make_client_query),
            (client.ClaudeSDKClient, "receive_messages", _make_receive_messages),
            (client.ClaudeSDKClient, "receive_response", _make_receive_response),
            (client.ClaudeSDKClient, "disconnect", _make_disconnect),
        ]
        for owner, attr, _ in targets:
            if not hasattr(owner, attr):
                raise AttributeError(
                    f"{owner.__name__}.{attr} not found (unsupported claude-agent-sdk version)"
                )
        for owner, attr, make in targets:
            self._patcher.wrap(owner, attr, make)
        global _mcp_hooked
        _mcp_hooked = hasattr(internal_query.Query, "_handle_sdk_mcp_request")
        if _mcp_hooked:  # an SDK that routes in-process MCP servers' messages there: replays serve them
            self._patcher.wrap(internal_query.Query, "_handle_sdk_mcp_request", _make_handle_sdk_mcp_request)

    def uninstrument(self) -> None:
        global _mcp_hooked
        _mcp_hooked = False
        self._patcher.restore()
