"""smolagents (Hugging Face): ``agent.run()`` of a ToolCallingAgent or CodeAgent, its tools and model calls.

* Runs: ``MultiStepAgent._run_stream``, the loop behind ``run()`` and ``run(stream=True)``, is a run named
  after the agent (``name=``, else its class: ``ToolCallingAgent``, ``CodeAgent``), with the task as
  ``agent.input_sha`` and the model's ``model_id`` as ``gen_ai.request.model``. The shared rule applies:
  inside a user's ``agent_otel.run`` its steps join that run; a managed agent (called by its manager as a
  tool) is a sub-agent of the manager's run.
* Tools: every call of a ``Tool`` (``Tool.__call__``: a ToolCallingAgent's tool call, and a CodeAgent's code
  calling a tool) and of a managed agent is a tool step, begun *before* the tool runs, so a guard can stop
  it; the ``final_answer`` tool is the framework's way to answer, not a tool step. smolagents turns a tool's
  exception into an observation for the model and goes on; the step is marked ``error`` with the tool's
  exception class. It also turns the :class:`~agent_otel.AgentStopped` of a guard into an observation, so
  the run loop is ended right after the step the guard stopped, and the caller gets the AgentStopped.
  Step callbacks are not used: they run after a step, too late for a guard.
* Model calls: each ``generate`` / ``generate_stream`` of the agent's model (planning, action and the
  final answer after ``max_steps``) is an LLM step with the ``token_usage`` smolagents reports (summed over
  a stream's deltas), the provider its model id names, the model's and the call's request settings, the
  response id and the tool calls it asked for; requests the model's client makes for it are not counted
  again (a GenAI span the client emits itself becomes the step's span). The model's class is wrapped when
  a run first uses it.
* Replay: a recorded tool call is not executed; its recorded result (a JSON value) is returned, converted
  as smolagents converts a tool's output (``AgentText`` for a string tool), or its recorded error raised.
  A managed agent's recorded answer is served the same way, so the managed agent does not run.

Stop reasons: reaching ``max_steps`` -> ``max_steps`` (smolagents then asks the model for a final answer
and returns it); ``agent.interrupt()`` -> ``cancelled``; a model error -> ``model_error``; a
``run(stream=True)`` its consumer closes -> ``cancelled``, unless right after the ``FinalAnswerStep``
(the loop's last item: the run was over).

The hooks are ``MultiStepAgent._run_stream``, ``Tool.__call__``, ``MultiStepAgent.__call__``, the model
class's ``generate`` / ``generate_stream``, and a ToolCallingAgent's ``process_tool_calls`` /
``execute_tool_call`` (which give a tool step the model's call id). A CodeAgent whose code runs in a
remote executor (E2B, Docker, Modal, WebAssembly) calls its tools there, out of reach: only its model calls
are recorded.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from agent_otel import llm
from agent_otel.genai import guess_provider
from agent_otel.llm import LLMCall
from agent_otel.replay import RecordedOutcome
from agent_otel.run import MISSING, FrameworkRun, enter_run, exit_run
from agent_otel.steps import active_run, check_pending, internal_error
from agent_otel.stop import AgentStopped, StopReason

from . import Integration
from ._common import (
    Patcher,
    Serve,
    as_int,
    call_or_serve,
    framework_call,
    framework_llm,
    refuse_outside_run,
    reset_framework_llm,
    start_tool,
    token_count,
    usage_value,
    wrapped_cause,
)

#: The tool smolagents answers with; calling it ends the run, it is not a step of the run.
FINAL_ANSWER = "final_answer"


def _model_id(model: Any) -> str | None:
    value = getattr(model, "model_id", None)
    return value if isinstance(value, str) and value else None


def _agent_name(agent: Any) -> str:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else type(agent).__name__


def _max_steps_reached(agent: Any) -> bool:
    from smolagents.utils import AgentMaxStepsError

    steps = getattr(getattr(agent, "memory", None), "steps", None) or ()
    return bool(steps) and isinstance(getattr(steps[-1], "error", None), AgentMaxStepsError)


def _classify(agent: Any, exc: BaseException) -> StopReason | None:
    from smolagents.utils import AgentError

    if isinstance(exc, AgentError) and getattr(agent, "interrupt_switch", False):
        return StopReason.CANCELLED
    return None


# --- runs -------------------------------------------------------------------------------------------


def _make_run_stream(models: _Models) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def _run_stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            models.ensure(getattr(self, "model", None))
            task = kwargs.get("task", args[0] if args else MISSING)
            frun = enter_run(_agent_name(self), model=_model_id(getattr(self, "model", None)), input=task)
            inner = original(self, *args, **kwargs)
            if frun is None:
                yield from inner
                return
            last: Any = None
            try:
                for item in inner:
                    last = item
                    yield item
                    # smolagents turns a guard's AgentStopped into an observation: end the loop here.
                    check_pending(frun.run)
            except BaseException as exc:
                if isinstance(exc, GeneratorExit) and _is_answer(last):
                    # The consumer stopped at the answer (``FinalAnswerStep``, the loop's last item:
                    # ``for step in agent.run(task, stream=True): if isinstance(step, FinalAnswerStep):
                    # ... break``). Nothing was left to run: the run ended as it would have, not cancelled.
                    inner.close()
                    _end_run(self, frun)
                    raise
                _end(inner, exc)
                exit_run(frun, exc, _classify(self, exc))
                stopped = wrapped_cause(exc)
                if stopped is not None and stopped is not exc:
                    raise stopped from None
                raise
            _end_run(self, frun)

        return _run_stream

    return make


def _is_answer(item: Any) -> bool:
    """Whether ``item`` is the ``FinalAnswerStep`` smolagents' loop yields last, after the run is done."""
    return type(item).__name__ == "FinalAnswerStep"


def _end_run(agent: Any, frun: FrameworkRun) -> None:
    """The loop is over: ``max_steps`` if smolagents reached it (then asked the model for an answer)."""
    if frun.owned and _max_steps_reached(agent):
        _stop(frun, StopReason.MAX_STEPS, f"smolagents reached max_steps after {agent.step_number - 1}")
    exit_run(frun, None)


def _end(inner: Any, exc: BaseException) -> None:
    """End smolagents' loop with ``exc`` (a guard's stop, or the consumer leaving the stream).

    ``close()`` is not enough: the loop yields its step again in a ``finally``, so it is thrown ``exc``
    until it lets it out (at most a few times; a finished loop lets it out at once).
    """
    for _ in range(4):
        try:
            inner.throw(exc)
        except BaseException:
            return


def _stop(frun: FrameworkRun, reason: StopReason, detail: str) -> None:
    try:
        frun.run.stop(reason, detail)
    except Exception as exc:
        internal_error("stopping a smolagents run", exc)


# --- tools ------------------------------------------------------------------------------------------


def _hashed_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The arguments as the model gave them: the keyword arguments, or the single positional one."""
    if not args:
        return kwargs
    if len(args) == 1 and not kwargs:
        return args[0]
    return {"args": list(args), **kwargs}


def _plain(result: Any) -> Any:
    """A tool's output as a JSON value where smolagents wrapped it (``AgentText`` is a ``str``)."""
    from smolagents.agent_types import AgentText

    return str(result) if isinstance(result, AgentText) else result


def _tool_server(tool: Any, sanitize: bool) -> Serve:
    """Serve a replayed tool call: what ``Tool.__call__`` returned (or raised) when it was recorded."""

    def serve(recorded: RecordedOutcome) -> Any:
        value = recorded.result()
        if sanitize:
            from smolagents.agent_types import handle_agent_output_types

            return handle_agent_output_types(value, getattr(tool, "output_type", None))
        return value

    return serve


#: The model's tool calls a ToolCallingAgent's step is executing, as (name, arguments, call id): smolagents
#: hands a tool its arguments only, so ``execute_tool_call`` finds its call's id here (parallel calls run in
#: copies of the step's context, which share the list).
_step_calls: contextvars.ContextVar[list[tuple[str, Any, str]] | None] = contextvars.ContextVar(
    "agent_otel_smolagents_step_calls", default=None
)
#: (tool name, call id) of the call ``execute_tool_call`` is making, for the tool step it opens.
_call_id: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "agent_otel_smolagents_call_id", default=None
)
_calls_lock = threading.Lock()


def _make_process_tool_calls(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def process_tool_calls(self: Any, chat_message: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            calls = [
                (str(c.function.name), c.function.arguments, str(c.id))
                for c in getattr(chat_message, "tool_calls", None) or ()
                if getattr(c, "id", None)
            ]
        except Exception as exc:
            internal_error("reading smolagents tool call ids", exc)
            calls = []
        _step_calls.set(calls)  # this step's; the next step sets its own
        return (yield from original(self, chat_message, *args, **kwargs))

    return process_tool_calls


def _make_execute_tool_call(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute_tool_call(self: Any, tool_name: Any, arguments: Any, *args: Any, **kwargs: Any) -> Any:
        calls = _step_calls.get()
        found = None
        if calls:
            with _calls_lock:
                for i, (name, called_with, call_id) in enumerate(calls):
                    if name == tool_name and (called_with is arguments or called_with == arguments):
                        found = (name, call_id)
                        del calls[i]
                        break
        if found is None:
            return original(self, tool_name, arguments, *args, **kwargs)
        token = _call_id.set(found)
        try:
            return original(self, tool_name, arguments, *args, **kwargs)
        finally:
            _call_id.reset(token)

    return execute_tool_call


def _take_call_id(name: str) -> str | None:
    pending = _call_id.get()
    if pending is None or pending[0] != name:
        return None
    _call_id.set(None)  # the step's own tool call; a tool it calls in turn is not that call
    return pending[1]


def _run_tool(
    name: str, fn: Any, serve: Serve, original: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    run = active_run()
    if run is None:
        refuse_outside_run(name)
        return original(*args, **kwargs)
    call_args = dict(kwargs)
    call_args.pop("sanitize_inputs_outputs", None)
    description = getattr(args[0], "description", None)
    call = start_tool(
        run,
        name,
        _hashed_args(args[1:], call_args),
        call_id=_take_call_id(name),
        fn=fn,
        description=description,
    )
    if call is None:
        return original(*args, **kwargs)
    try:
        result = call_or_serve(call, serve, original, *args, **kwargs)
    except BaseException as exc:
        call.fail(exc)
        raise
    call.ok(_plain(result))
    return result


def _make_tool_call(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(getattr(self, "name", "") or type(self).__name__)
        if name == FINAL_ANSWER:
            return original(self, *args, **kwargs)
        serve = _tool_server(self, bool(kwargs.get("sanitize_inputs_outputs")))
        return _run_tool(name, getattr(self, "forward", None), serve, original, self, *args, **kwargs)

    return __call__


def _make_managed_call(original: Callable[..., Any]) -> Callable[..., Any]:
    """A managed agent called by its manager: a tool step of the manager's run (its run is a sub-agent)."""

    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _run_tool(_agent_name(self), None, RecordedOutcome.result, original, self, *args, **kwargs)

    return __call__


def _make_timeout(original: Callable[..., Any]) -> Callable[..., Any]:
    """The CodeAgent's local executor runs the code in a worker thread (its timeout): carry the caller's
    context there, so the tools the code calls are steps of the run."""

    @functools.wraps(original)
    def timeout(*args: Any, **kwargs: Any) -> Any:
        decorate = original(*args, **kwargs)

        def apply(func: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(func)
            def in_callers_context(*a: Any, **kw: Any) -> Any:
                return decorate(functools.partial(contextvars.copy_context().run, func))(*a, **kw)

            return in_callers_context

        return apply

    return timeout


# --- model calls ------------------------------------------------------------------------------------


def _begin_llm(
    model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], stream: bool = False
) -> LLMCall | None:
    run = active_run()
    if run is None or framework_call() is not None:  # not in a run, or a nested generate of the same request
        return None
    name = _model_id(model) or type(model).__name__
    try:
        # Deferred: a GenAI span the model's client emits itself (anthropic 2.x) becomes the step's span.
        call = llm.begin(run, name, attach=False, provider=guess_provider(name), defer=True)
    except AgentStopped:
        raise
    except Exception as exc:
        internal_error("starting a smolagents model step", exc)
        return None
    if call is not None:
        # What the request asks for: the model's own settings (Model(temperature=...)), then this call's.
        stop = kwargs.get("stop_sequences", args[1] if len(args) > 1 else None)
        settings = getattr(model, "kwargs", None)
        params = {**(settings if isinstance(settings, dict) else {}), **kwargs, "stop": stop}
        call.request(params, stream=stream)
    return call


def _finish(call: LLMCall, input_tokens: int | None, output_tokens: int | None, message: Any = None) -> None:
    if message is not None:
        raw = getattr(message, "raw", None)
        tool_calls = getattr(message, "tool_calls", None) or ()
        call.response(
            response_id=usage_value(raw, "id"),
            response_model=usage_value(raw, "model"),
            tool_call_ids=[getattr(t, "id", None) for t in tool_calls],
        )
    call.finish(input_tokens, output_tokens)


def _make_generate(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin_llm(self, args, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        token = framework_llm.set(call)
        try:
            message = original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        finally:
            reset_framework_llm(token)
        usage = getattr(message, "token_usage", None)  # None: the model reported none (unknown, not 0)
        input_tokens = token_count(usage_value(usage, "input_tokens"))
        output_tokens = token_count(usage_value(usage, "output_tokens"))
        _finish(call, input_tokens, output_tokens, message)
        return message

    return generate


def _make_generate_stream(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def generate_stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        call = _begin_llm(self, args, kwargs, stream=True)
        if call is None:
            yield from original(self, *args, **kwargs)
            return
        input_tokens: int | None = None  # until a delta reports usage: unknown, not 0
        output_tokens: int | None = None
        token = framework_llm.set(call)
        try:
            for delta in original(self, *args, **kwargs):
                usage = getattr(delta, "token_usage", None)
                if usage is not None:  # smolagents sums the deltas' usage (agglomerate_stream_deltas)
                    input_tokens = (input_tokens or 0) + as_int(usage_value(usage, "input_tokens"))
                    output_tokens = (output_tokens or 0) + as_int(usage_value(usage, "output_tokens"))
                yield delta
        except GeneratorExit:
            _finish(call, input_tokens, output_tokens)
            raise
        except BaseException as exc:
            call.fail(exc, input_tokens, output_tokens)
            raise
        finally:
            reset_framework_llm(token)
        _finish(call, input_tokens, output_tokens)

    return generate_stream


class _Models:
    """Wraps ``generate`` / ``generate_stream`` of each model class a run uses, once per class."""

    def __init__(self, patcher: Patcher) -> None:
        self._patcher = patcher
        self._seen: set[type] = set()
        self._lock = threading.Lock()
        self.enabled = True

    def ensure(self, model: Any) -> None:
        cls = type(model)
        if model is None or cls in self._seen or not self.enabled:
            return
        try:
            with self._lock:
                if cls in self._seen:
                    return
                for attr, make in (("generate", _make_generate), ("generate_stream", _make_generate_stream)):
                    if callable(getattr(cls, attr, None)):
                        self._patcher.wrap(cls, attr, make)
                self._seen.add(cls)
        except Exception as exc:
            internal_error("instrumenting a smolagents model class", exc)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
            self.enabled = False


class SmolagentsIntegration(Integration):
    """Wraps the agent loop, ``Tool.__call__``, managed-agent calls and the models' ``generate``."""

    name = "smolagents"
    packages = ("smolagents",)

    def __init__(self) -> None:
        self._patcher = Patcher()
        self._models: _Models | None = None

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from smolagents import agents, local_python_executor, tools

        targets = [
            (agents.MultiStepAgent, "_run_stream"),
            (agents.MultiStepAgent, "__call__"),
            (tools.Tool, "__call__"),
            (local_python_executor, "timeout"),
        ]
        for owner, attr in targets:
            if not hasattr(owner, attr):
                raise AttributeError(f"{owner.__name__}.{attr} not found (unsupported smolagents version)")
        self._models = _Models(self._patcher)
        self._patcher.wrap(agents.MultiStepAgent, "_run_stream", _make_run_stream(self._models))
        self._patcher.wrap(agents.MultiStepAgent, "__call__", _make_managed_call)
        self._patcher.wrap(tools.Tool, "__call__", _make_tool_call)
        self._patcher.wrap(local_python_executor, "timeout", _make_timeout)
        calling = agents.ToolCallingAgent  # the model's call ids (a CodeAgent's code calls tools without)
        if hasattr(calling, "process_tool_calls") and hasattr(calling, "execute_tool_call"):
            self._patcher.wrap(calling, "process_tool_calls", _make_process_tool_calls)
            self._patcher.wrap(calling, "execute_tool_call", _make_execute_tool_call)

    def uninstrument(self) -> None:
        if self._models is not None:
            self._models.clear()
            self._models = None
        self._patcher.restore()
