"""LangGraph: a graph invocation is an agent run; its recursion limit maps to ``max_steps``.

``Pregel.stream`` and ``Pregel.astream`` are wrapped; ``invoke``/``ainvoke`` (and the prebuilt ReAct
agent, and LangChain 1.x ``create_agent``, which are compiled graphs) go through them. The run is named
after the graph (``graph.name``) and hashes the graph input as ``agent.input_sha``. Which run it is
follows the shared rule: inside a user's ``agent_otel.run`` the graph's steps join that run, inside a
tool call (a graph used as a tool, or a subgraph called from a tool) it is a sub-agent, otherwise a new
run; a subgraph running as a node of its parent graph joins the parent's run.

Stop reasons: ``GraphRecursionError`` -> ``max_steps``; a guard's ``AgentStopped`` -> the guard's
reason; a consumer that stops iterating ``stream()`` early, or a drain (``GraphDrained``: the run was
asked to stop at a step boundary, at shutdown) -> ``cancelled``; a subgraph's handoff to its parent
(``ParentCommand``) -> ``completed``; other exceptions follow
the run's usual rules (``tool_error`` when a tool raised, ``model_error`` when a model call failed).

Human in the loop: a graph that pauses (``interrupt()``, ``interrupt_before``/``interrupt_after``) ends
its run with ``interrupted`` (class ``pause``: span status UNSET, not an error), with an
``agent.interrupt`` span event (how many interrupts, their ids, the checkpoint). The run's
``gen_ai.conversation.id`` is the graph's ``thread_id``, and the next run of the thread (the resume,
``Command(resume=...)``) links to the paused run's span and names it in ``agent.resume_of``. Pauses are
seen through LangGraph's graph-lifecycle callbacks: this integration adds a ``GraphCallbackHandler`` of
its own to the lifecycle manager of graphs that run inside an agent-otel run (and only those), and the
model callback handler of the ``langchain`` integration is never added there.

Tool and chat model steps come from the ``langchain`` integration. ``ToolNode(handle_tool_errors=True)``
turns every tool exception into a message for the model; this integration keeps it from doing that to
:class:`AgentStopped`, so a denied or looping tool call ends the graph the same way as anywhere else,
and to a replay's ``ReplayError`` (a tool call the replay refuses to execute).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from agent_otel.replay import ReplayError
from agent_otel.run import FrameworkRun, Run, enter_run, exit_run
from agent_otel.steps import active_run, internal_error
from agent_otel.stop import AgentStopped, StopReason

from . import Integration
from ._common import Patcher, pause

_INTERRUPT = "__interrupt__"


def _reason(exc: BaseException) -> StopReason | None:
    from langgraph.errors import GraphBubbleUp, GraphInterrupt, GraphRecursionError

    if isinstance(exc, GraphRecursionError):
        return StopReason.MAX_STEPS
    drained = getattr(sys.modules.get("langgraph.errors"), "GraphDrained", None)  # (langgraph 1.2+)
    if drained is not None and isinstance(exc, drained):  # a drain at shutdown (RunControl.request_drain)
        return StopReason.CANCELLED
    if isinstance(exc, GraphInterrupt):  # a nested graph pausing: it bubbles up to the graph the caller ran
        return StopReason.INTERRUPTED
    if isinstance(exc, GraphBubbleUp):  # Command(graph=Command.PARENT): control goes to the parent graph
        return StopReason.COMPLETED
    return None


def _conversation(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The graph's ``thread_id`` (``config["configurable"]["thread_id"]``): its conversation."""
    config = kwargs.get("config", args[0] if args else None)
    configurable = config.get("configurable") if isinstance(config, Mapping) else None
    thread = configurable.get("thread_id") if isinstance(configurable, Mapping) else None
    return str(thread) if thread is not None and thread != "" else None


def _interrupts(chunk: Any) -> tuple[Any, ...]:
    """The interrupts a streamed chunk reports (``updates``/``values`` modes, v1 and v2 parts), if any."""
    try:
        if isinstance(chunk, tuple) and chunk:
            chunk = chunk[-1]  # (mode, data) or (namespace, mode, data)
        if not isinstance(chunk, Mapping):
            return ()
        found = chunk.get(_INTERRUPT) or (chunk.get("interrupts") if chunk.get("type") else None)
        data = chunk.get("data") if chunk.get("type") else None
        if not found and isinstance(data, Mapping):
            found = data.get(_INTERRUPT)
        return tuple(found) if isinstance(found, list | tuple) else ()
    except Exception:
        return ()


def _pause(run: Run, interrupts: Any = (), checkpoint_id: Any = None, status: Any = None) -> None:
    ids = [i.id for i in interrupts or () if isinstance(getattr(i, "id", None), str)]
    pause(run, len(interrupts or ()), ids, checkpoint_id=checkpoint_id, status=status)


def _ended_by_consumer(frun: FrameworkRun | None, interrupts: tuple[Any, ...]) -> BaseException | None:
    """A consumer that stops iterating after the graph paused has not cancelled anything."""
    if frun is not None and interrupts and frun.run.paused is None:
        _pause(frun.run, interrupts)
    if frun is not None and frun.run.paused is not None:
        return None
    return GeneratorExit()


def _agent_name(graph: Any) -> str:
    name = getattr(graph, "name", None)
    return name if isinstance(name, str) and name else "LangGraph"


def _make_stream(original: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    @functools.wraps(original)
    def stream(self: Any, input: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        frun = enter_run(_agent_name(self), input=input, conversation_id=_conversation(args, kwargs))
        interrupts: tuple[Any, ...] = ()
        try:
            for chunk in original(self, input, *args, **kwargs):
                interrupts = interrupts or _interrupts(chunk)
                yield chunk
        except GeneratorExit:
            exit_run(frun, _ended_by_consumer(frun, interrupts))
            raise
        except BaseException as exc:
            exit_run(frun, exc, _reason(exc))
            raise
        exit_run(frun, None)

    return stream


def _make_astream(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(original)
    async def astream(self: Any, input: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        frun = enter_run(_agent_name(self), input=input, conversation_id=_conversation(args, kwargs))
        interrupts: tuple[Any, ...] = ()
        try:
            async for chunk in original(self, input, *args, **kwargs):
                interrupts = interrupts or _interrupts(chunk)
                yield chunk
        except GeneratorExit:
            exit_run(frun, _ended_by_consumer(frun, interrupts))
            raise
        except BaseException as exc:
            exit_run(frun, exc, _reason(exc))
            raise
        exit_run(frun, None)

    return astream


def _lifecycle_handler() -> Any:
    """A ``GraphCallbackHandler`` that records pauses and resumes on the current agent-otel run."""
    from langgraph.callbacks import GraphCallbackHandler

    class AgentOtelGraphLifecycle(GraphCallbackHandler):
        run_inline = True  # in the graph's own context, where the run is current

        def __init__(self) -> None:
            super().__init__()
            self.enabled = True

        def on_interrupt(self, event: Any) -> None:
            self._on_run(
                "recording a LangGraph interrupt",
                lambda run: _pause(run, event.interrupts, event.checkpoint_id, event.status),
            )

        def on_resume(self, event: Any) -> None:
            # Resumed within the same run (a user's agent_otel.run): it is not paused any more.
            self._on_run("recording a LangGraph resume", lambda run: setattr(run, "paused", None))

        def _on_run(self, what: str, action: Callable[[Run], None]) -> None:
            if not self.enabled:
                return
            try:
                run = active_run()
                if run is not None and run.active:
                    action(run)
            except Exception as exc:
                internal_error(what, exc)

    return AgentOtelGraphLifecycle()


def _make_graph_manager(holder: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``get_(a)sync_graph_callback_manager_for_config``: add the lifecycle handler inside a run."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_manager(*args: Any, **kwargs: Any) -> Any:
            manager = original(*args, **kwargs)
            try:
                handler = holder.handler
                run = active_run()
                if handler is not None and run is not None and run.active and handler not in manager.handlers:
                    manager.add_handler(handler, inherit=False)
            except Exception as exc:
                internal_error("adding the LangGraph lifecycle handler", exc)
            return manager

        return get_manager

    return make


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
        self.handler: Any = None

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
            if self.handler is None and hasattr(main, "get_sync_graph_callback_manager_for_config"):
                self.handler = _lifecycle_handler()
                for name in (
                    "get_sync_graph_callback_manager_for_config",
                    "get_async_graph_callback_manager_for_config",
                ):
                    p.wrap(main, name, _make_graph_manager(self))
        tool_node = sys.modules.get("langgraph.prebuilt.tool_node")
        if tool_node is not None and hasattr(tool_node, "_handle_tool_error"):
            p.wrap(tool_node, "_handle_tool_error", _keep_agent_stopped)

    def uninstrument(self) -> None:
        if self.handler is not None:
            self.handler.enabled = False  # managers built meanwhile may hold it: inert
            self.handler = None
        self._patcher.restore()


def _has_subpackage(package: str, child: str) -> bool:
    """Whether ``package.child`` is installed, without importing ``package`` (find_spec would)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec(package)
    locations = getattr(spec, "submodule_search_locations", None) or []
    return any(os.path.isdir(os.path.join(location, child)) for location in locations)
