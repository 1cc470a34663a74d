"""LangGraph: a graph invocation is an agent run; its recursion limit maps to ``max_steps``.

``Pregel.stream`` and ``Pregel.astream`` are wrapped; ``invoke``/``ainvoke`` (and the prebuilt ReAct
agent, and LangChain 1.x ``create_agent``, which are compiled graphs) go through them. The run is named
after the graph (``graph.name``) and hashes the graph input as ``agent.input_sha``. Which run it is
follows the shared rule: inside a user's ``agent_otel.run`` the graph's steps join that run, inside a
tool call (a graph used as a tool, or a subgraph called from a tool) it is a sub-agent, otherwise a new
run; a subgraph running as a node of its parent graph joins the parent's run.

Stop reasons: ``GraphRecursionError`` -> ``max_steps``; a guard's ``AgentStopped`` -> the guard's
reason; a consumer that stops iterating ``stream()`` early -> ``cancelled``; other exceptions follow
the run's usual rules (``tool_error`` when a tool raised, ``model_error`` when a model call failed).

Tool and chat model steps come from the ``langchain`` integration. ``ToolNode(handle_tool_errors=True)``
turns every tool exception into a message for the model; this integration keeps it from doing that to
:class:`AgentStopped`, so a denied or looping tool call ends the graph the same way as anywhere else,
and to a replay's ``ReplayError`` (a tool call the replay refuses to execute).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from agent_otel.replay import ReplayError
from agent_otel.run import enter_run, exit_run
from agent_otel.stop import AgentStopped, StopReason

from . import Integration
from ._common import Patcher


def _reason(exc: BaseException) -> StopReason | None:
    from langgraph.errors import GraphRecursionError

    if isinstance(exc, GraphRecursionError):
        return StopReason.MAX_STEPS
    return None


def _agent_name(graph: Any) -> str:
    name = getattr(graph, "name", None)
    return name if isinstance(name, str) and name else "LangGraph"


def _make_stream(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    @functools.wraps(original)
    def stream(self: Any, input: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        frun = enter_run(_agent_name(self), input=input)
        try:
            yield from original(self, input, *args, **kwargs)
        except BaseException as exc:
            exit_run(frun, exc, _reason(exc))
            raise
        exit_run(frun, None)

    return stream


def _make_astream(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(original)
    async def astream(self: Any, input: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        frun = enter_run(_agent_name(self), input=input)
        try:
            async for chunk in original(self, input, *args, **kwargs):
                yield chunk
        except BaseException as exc:
            exit_run(frun, exc, _reason(exc))
            raise
        exit_run(frun, None)

    return astream


def _keep_agent_stopped(original: Callable[..., Any]) -> Callable[..., Any]:
    """``ToolNode`` error handling must not turn a guard's stop, or a replay's refusal to execute a
    tool, into a message for the model."""

    @functools.wraps(original)
    def handle(e: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(e, AgentStopped | ReplayError):
            raise e
        return original(e, *args, **kwargs)

    return handle


class LangGraphIntegration(Integration):
    """Wraps ``Pregel.stream``/``astream`` and ToolNode's error handler.

    ``langgraph`` is a namespace package, so the triggers are the two modules patched here; each is
    patched when it has been imported, without importing the other (importing ``langgraph.prebuilt``
    while ``langgraph.graph`` is still being imported would be a circular import).
    """

    name = "langgraph"
    packages = ("langgraph",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    @property
    def triggers(self) -> tuple[str, ...]:
        return ("langgraph.pregel.main", "langgraph.prebuilt.tool_node")

    def available(self) -> bool:
        # langgraph-checkpoint alone also provides the ``langgraph`` namespace; Pregel is langgraph's.
        return super().available() and _has_subpackage("langgraph", "pregel")

    def instrument(self) -> None:
        p = self._patcher
        main = sys.modules.get("langgraph.pregel.main")
        if main is not None:
            p.wrap(main.Pregel, "stream", _make_stream)
            p.wrap(main.Pregel, "astream", _make_astream)
        tool_node = sys.modules.get("langgraph.prebuilt.tool_node")
        if tool_node is not None and hasattr(tool_node, "_handle_tool_error"):
            p.wrap(tool_node, "_handle_tool_error", _keep_agent_stopped)

    def uninstrument(self) -> None:
        self._patcher.restore()


def _has_subpackage(package: str, child: str) -> bool:
    """Whether ``package.child`` is installed, without importing ``package`` (find_spec would)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec(package)
    locations = getattr(spec, "submodule_search_locations", None) or []
    return any(os.path.isdir(os.path.join(location, child)) for location in locations)
