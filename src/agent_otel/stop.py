"""Why a run ended: the closed taxonomy, the result a caller receives, and the exception guards raise.

``stop_reason`` is a metric label, so the set is closed: an unknown reason is a ``ValueError`` listing the
valid ones rather than a new time series. The class of a reason decides the run span's status (OK for
success, ERROR for failure, UNSET for a limit that did its job and for a pause: a run that waits for a
human, whose resume is a new run of the same conversation).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class StopReason(enum.StrEnum):
    COMPLETED = "completed"
    MAX_STEPS = "max_steps"
    BUDGET_EXCEEDED = "budget_exceeded"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    POLICY_DENIED = "policy_denied"
    KILL_SWITCH = "kill_switch"
    LOOP_DETECTED = "loop_detected"
    TOOL_TIMEOUT = "tool_timeout"
    TOOL_ERROR = "tool_error"
    MODEL_ERROR = "model_error"
    ERROR = "error"
    INTERRUPTED = "interrupted"

    @property
    def stop_class(self) -> str:
        """``success``, ``limit``, ``failure`` or ``pause``."""
        return STOP_CLASS[self]

    @classmethod
    def parse(cls, value: str | StopReason) -> StopReason:
        """Accept a member or its string value; anything else is a ValueError naming the valid reasons."""
        if isinstance(value, StopReason):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown stop_reason {value!r}; valid reasons: {valid}") from None


#: ``stop_class`` of each reason (read here directly where it runs per run: the property is Python code).
STOP_CLASS = {
    StopReason.COMPLETED: "success",
    StopReason.MAX_STEPS: "limit",
    StopReason.BUDGET_EXCEEDED: "limit",
    StopReason.TIMEOUT: "limit",
    StopReason.CANCELLED: "limit",
    StopReason.POLICY_DENIED: "limit",
    StopReason.KILL_SWITCH: "limit",
    StopReason.LOOP_DETECTED: "failure",
    StopReason.TOOL_TIMEOUT: "failure",
    StopReason.TOOL_ERROR: "failure",
    StopReason.MODEL_ERROR: "failure",
    StopReason.ERROR: "failure",
    StopReason.INTERRUPTED: "pause",
}


#: The ``error.type`` of a task queue's deadline raised into the task (see :func:`is_time_limit`).
TIME_LIMIT_TYPES = frozenset({"SoftTimeLimitExceeded"})


def is_time_limit(exc: BaseException) -> bool:
    """Whether ``exc`` is a worker's deadline for the whole task, raised into whatever the task is running:
    Celery's ``SoftTimeLimitExceeded`` (billiard's, which Celery re-exports; raised from a signal handler
    in the pool child). It ends the run ``timeout``, the step it cut short ``cancelled``, and it is never
    retried: the task would otherwise go on past its limit. Recognised by class, nothing is imported."""
    cls = type(exc)
    return cls.__name__ in TIME_LIMIT_TYPES and cls.__module__.startswith(("billiard.", "celery."))


# A Celery task's hard time limit (``time_limit``, ``task_time_limit``): billiard's master raises
# TimeLimitExceeded on its side and ends the pool child with SIGTERM (SIGKILL 0.1 s later). In the child
# billiard's own handler turns that SIGTERM into SystemExit, as it does a cold shutdown's
# (``Pool.terminate()``): the task running, and since when, tell the two apart, so that a run the limit cut
# short reads ``timeout`` (as a soft limit's does), not ``cancelled``. Set from Celery's task_prerun and
# task_postrun signals (agent_otel.sdk), in the process that runs the task.
_task: tuple[float, Any] | None = None  # (monotonic start, task) of the Celery task running here
_LIMIT_SLACK_S = 0.25  # the master's clock starts as the child takes the job, a little before task_prerun
HARD_TIME_LIMIT_DETAIL = "the task's hard time limit (TimeLimitExceeded)"


def task_started(task: Any) -> None:
    """A prefork child runs its task on its main thread; tasks of the ``threads`` pool (which has no time
    limits) are not followed, nor would one global say which of them is meant."""
    global _task
    if threading.current_thread() is threading.main_thread():
        _task = (time.monotonic(), task)


def task_ended() -> None:
    global _task
    if threading.current_thread() is threading.main_thread():
        _task = None


def hard_time_limit_reached() -> bool:
    """Whether the Celery task running in this process has reached its hard time limit."""
    current = _task
    if current is None:
        return False
    started, task = current
    try:
        given = getattr(task.request, "timelimit", None) or (None, None)
        hard = given[0] or task.time_limit or task.app.conf.task_time_limit
        return bool(hard) and time.monotonic() - started + _LIMIT_SLACK_S >= float(hard)
    except Exception:  # an unexpected Celery: the exit reads as the SIGTERM it is (cancelled)
        return False


def is_hard_time_limit(exc: BaseException | None) -> bool:
    """``exc`` (SystemExit: billiard's SIGTERM handler) ends a Celery task at its hard time limit."""
    return _task is not None and isinstance(exc, SystemExit) and hard_time_limit_reached()


class Flow(enum.Enum):
    """What a framework means by an exception that is control flow, not a failure."""

    #: The agent waits for a human (or another system): the step is ``interrupted``, the run
    #: ``interrupted`` (LangGraph ``interrupt()``, PydanticAI ``ApprovalRequired``, Strands interrupts).
    PAUSE = "pause"
    #: Control passes to another graph or agent: the step ends ``ok`` and the run ``completed``
    #: (LangGraph ``Command(graph=Command.PARENT)``, raised as ``ParentCommand``).
    HANDOFF = "handoff"
    #: The tool asks the model to try again (PydanticAI ``ModelRetry``): the tool span is ``error`` (the
    #: call did not succeed), but the run has not failed: the model answers it.
    TO_MODEL = "to_model"


#: Exception classes that are control flow, by qualified name (``module.QualName`` of the class that
#: defines it), so that no framework is imported to know them. A subclass inherits its base's flow.
CONTROL_FLOW: dict[str, Flow] = {
    "langgraph.errors.GraphInterrupt": Flow.PAUSE,
    "langgraph.errors.NodeInterrupt": Flow.PAUSE,
    "langgraph.errors.ParentCommand": Flow.HANDOFF,
    "pydantic_ai.exceptions.ApprovalRequired": Flow.PAUSE,
    "pydantic_ai.exceptions.CallDeferred": Flow.PAUSE,
    "pydantic_ai.exceptions.ModelRetry": Flow.TO_MODEL,
    "pydantic_ai.exceptions.ToolRetryError": Flow.TO_MODEL,  # ModelRetry as PydanticAI's hooks see it
    "strands.interrupt.InterruptException": Flow.PAUSE,
    # Microsoft Agent Framework: a tool (an ``Agent.as_tool()`` sub-agent) that needs the user's input.
    "agent_framework.exceptions.UserInputRequiredException": Flow.PAUSE,
    # CrewAI flows: a human-feedback provider pausing the flow (``kickoff()`` returns it).
    "crewai.flow.async_feedback.types.HumanFeedbackPending": Flow.PAUSE,
    # LlamaIndex workflows (llama-index-workflows >= 2.9): ``ctx.wait_for_event()`` in a step or a tool
    # before the event arrived; the step worker adds a waiter and runs the step again once it does.
    "workflows.runtime.types.results.WaitingForEvent": Flow.PAUSE,
}

_flows: dict[type, Flow | None] = {}  # per class, after the walk of its MRO; cleared on registration


def register_control_flow(exc_type: type[BaseException] | str, flow: Flow) -> None:
    """Make ``exc_type`` (a class, or its qualified name ``module.QualName``) control flow meaning ``flow``
    for the steps and runs it leaves and for :class:`~agent_otel.Retry`."""
    if not isinstance(flow, Flow):
        raise TypeError(f"flow must be a Flow, not {flow!r}")
    name = exc_type if isinstance(exc_type, str) else _qualified(exc_type)
    CONTROL_FLOW[name] = flow
    _flows.clear()


def control_flow(exc: BaseException | None) -> Flow | None:
    """The :class:`Flow` ``exc`` stands for, or None for an exception that is a real failure."""
    if exc is None:
        return None
    cls = type(exc)
    try:
        return _flows[cls]
    except KeyError:
        pass
    found = None
    for base in cls.__mro__:
        found = CONTROL_FLOW.get(_qualified(base))
        if found is not None:
            break
    if len(_flows) < 1024:  # (classes made on the fly must not grow it without bound)
        _flows[cls] = found
    return found


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def handoff_result(exc: BaseException) -> Any:
    """What a step that handed over returned: the framework's command or result the exception carries."""
    result = getattr(exc, "result", None)
    if result is not None:
        return result
    return exc.args[0] if len(exc.args) == 1 else None


@dataclass(frozen=True, slots=True)
class StopResult(Mapping[str, Any]):
    """What the caller (and its UI) receives when a run stops.

    A read-only mapping, so ``dict(result)`` or ``json.dumps(dict(result))`` gives
    ``{"status": "stopped", "stop_reason": ..., "run_id": ..., "usage": {...}}``.
    """

    stop_reason: StopReason
    run_id: str
    usage: dict[str, Any] = field(default_factory=dict)
    detail: str | None = None
    status: str = "stopped"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "stop_reason": self.stop_reason.value,
            "run_id": self.run_id,
            "usage": dict(self.usage),
        }
        if self.detail:
            out["detail"] = self.detail
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


class AgentStopped(Exception):
    """Raised into agent code when a guard ends the run; carries the :class:`StopResult`.

    Leaving a ``run()`` block with this exception records its stop reason (not ``error``); the exception
    then continues to the caller, so code after the block never runs as if the agent had finished.
    """

    def __init__(self, result: StopResult) -> None:
        self.result = result
        detail = f": {result.detail}" if result.detail else ""
        super().__init__(f"run {result.run_id} stopped ({result.stop_reason.value}){detail}")

    @property
    def stop_reason(self) -> StopReason:
        return self.result.stop_reason


class Refusal(Exception):
    """Base of the exceptions a policy raises into agent code *on purpose* instead of stopping the run:
    a guard's ``ToolDenied`` (``guards.policy.on_deny: raise``), a replay's ``ReplayError``.

    Integrations let these (and :class:`~agent_otel.AgentStopped`) through to the framework and treat
    every other exception from a step's start as a telemetry failure; a refused step never runs, and
    :class:`~agent_otel.Retry` never runs it again.
    """
