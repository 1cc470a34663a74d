"""The step engine's two interfaces: the one policies plug into, and the one integrations call.

Both are what the next integrations and policies are written against (``agent_otel/steps.py``), so each
is exercised here exactly as its docstring tells an author to use it.
"""

from __future__ import annotations

from typing import Any

import pytest

import agent_otel
from agent_otel import conventions as c
from agent_otel import llm, runtime, steps, tools
from agent_otel.run import enter_run, exit_run
from agent_otel.steps import active_run, check_pending, note_failure
from agent_otel.stop import AgentStopped, StopReason


class Served:
    """What a serving policy hands the engine: it finishes the call instead of the tool."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def serve(self, call: tools.ToolCall) -> Any:
        call.ok(self.value)
        return self.value


class Probe(steps.Policy):
    order = 50

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start_run(self, run: Any) -> ProbeRun:
        self.calls.append(("start_run", run.agent, run.trace_id))  # before the run's span exists
        return ProbeRun(self)

    def outside_run(self, tool: str) -> None:
        self.calls.append(("outside_run", tool))


class ProbeRun(steps.RunPolicy):
    __slots__ = ("probe",)

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def before_step(self, step: steps.Step) -> None:
        self.probe.calls.append(("before", step.kind, step.step_id, step.recorded))

    def serve(self, step: steps.Step) -> Served | None:
        if isinstance(step, tools.ToolCall) and step.name == "served":
            return Served("from the policy")
        return None

    def after_step(self, step: steps.Step, result: Any, exc: BaseException | str | None) -> None:
        error = type(exc).__name__ if exc else None
        self.probe.calls.append(("after", step.kind, step.step_id, result, error))

    def run_stopped(self, result: Any) -> None:
        self.probe.calls.append(("stopped", result.stop_reason.value))


class BeforeOnly(steps.Policy):
    def start_run(self, run: Any) -> steps.RunPolicy:
        class Check(steps.RunPolicy):
            def before_step(self, step: steps.Step) -> None:
                pass

        return Check()


@pytest.fixture
def probe(request: pytest.FixtureRequest) -> Any:
    found = Probe()
    runtime.register_policy("test-probe", lambda config, pipeline: found)
    runtime.register_policy("test-before-only", lambda config, pipeline: BeforeOnly())
    try:
        yield found, request.getfixturevalue("telemetry")  # set up after the registration
    finally:
        runtime.unregister_policy("test-probe")
        runtime.unregister_policy("test-before-only")


def test_a_registered_policy_sees_every_step_of_both_kinds(probe):
    found, telemetry = probe
    ran: list[int] = []

    @agent_otel.tool(name="double")
    def double(x: int) -> int:
        ran.append(x)
        return 2 * x

    def never(x: int) -> int:
        raise AssertionError("a served step must not run")

    with agent_otel.run("a") as run:
        assert double(2) == 4
        assert run.call_tool("served", never, {"x": 1}) == "from the policy"
        run.record_llm(model="m", input_tokens=3, output_tokens=4)
        with pytest.raises(ValueError):
            run.call_tool("bad", lambda: (_ for _ in ()).throw(ValueError("no")))
    assert double(5) == 10  # outside any run: the policies are asked, the tool runs untraced
    assert ran == [2, 5]
    assert found.calls == [
        ("start_run", "a", None),
        ("before", "tool", 0, False),  # before its step_id and span: a guard stops it before either
        ("after", "tool", 1, 4, None),
        ("before", "tool", 0, False),
        ("after", "tool", 2, "from the policy", None),
        ("after", "llm", 3, None, None),  # reported after the fact: counted first, then checked
        ("before", "llm", 3, True),
        ("before", "tool", 0, False),
        ("after", "tool", 4, None, "ValueError"),
        ("stopped", "completed"),  # the agent caught the ValueError
        ("outside_run", "double"),
    ]
    tool_spans = telemetry.spans_named("execute_tool")
    assert [s.attributes[c.STEP_ID] for s in tool_spans] == [1, 2, 4]
    # The engine calls only the hooks a policy overrides.
    hooks = run.ledger.hooks
    assert len(hooks.policies) == 3  # the guards, the probe and the before-only policy
    assert len(hooks.before) == 3 and len(hooks.serve) == 1 and len(hooks.after) == 2


def test_an_integration_needs_only_the_documented_interface(telemetry):
    """A pretend framework, instrumented with exactly the calls steps.py documents for integrations."""

    def framework_agent(prompt: str) -> None:
        frun = enter_run("fw-agent", model="m1", input=prompt)
        try:
            run = active_run()
            assert run is not None
            call = tools.begin(run, tools.ToolOptions("search"), {"q": prompt}, call_id="c1", attach=False)
            assert call is not None and not call.done
            call.ok(["hit"])
            assert call.done
            step = llm.begin(run, "m1", "r1", attach=False)
            assert step is not None
            step.finish(10, 5)
            error = RuntimeError("too many turns")
            note_failure(run, error, StopReason.MAX_STEPS)  # the framework knows why it gives up
            raise error
        except BaseException as exc:
            exit_run(frun, exc)
            raise

    with pytest.raises(RuntimeError):
        framework_agent("refund")
    assert active_run() is None
    (root,) = telemetry.spans_named("invoke_agent")
    assert root.name == "invoke_agent fw-agent" and root.attributes[c.STOP_REASON] == "max_steps"
    (tool_span,) = telemetry.spans_named("execute_tool")
    (chat,) = telemetry.spans_named("chat")
    assert tool_span.attributes[c.STEP_ID] == 1 and tool_span.attributes[c.GEN_AI_TOOL_CALL_ID] == "c1"
    assert chat.attributes[c.STEP_ID] == 2 and chat.attributes[c.GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert tool_span.parent.span_id == root.context.span_id == chat.parent.span_id
    assert [e["kind"] for e in telemetry.events()] == ["tool_result", "llm_result", "stop"]

    # Inside the user's own run, the framework's invocation is part of that run (not owned, not stopped).
    with agent_otel.run("user-agent") as outer:
        frun = enter_run("fw-agent")
        assert frun is not None and frun.run is outer and not frun.owned
        exit_run(frun, None)
        assert outer.result is None
    assert outer.result.stop_reason == "completed"


def test_check_pending_raises_a_stop_decided_since_the_last_step(telemetry):
    budget = agent_otel.Budget(max_tokens=10)
    with pytest.raises(AgentStopped) as stopped, agent_otel.run("a", budget=budget) as run:
        step = llm.begin(run, "m1", attach=False)
        step.finish(20, 5)  # over the token budget: the run stops before its next step
        assert run.result is None
        check_pending(run)
    assert stopped.value.stop_reason == "budget_exceeded"
    assert run.result.stop_reason == "budget_exceeded"


def test_a_step_bound_to_a_span_is_found_once_any_binding_gets_one(telemetry, monkeypatch):
    """Until some span's binding names a step, looking for one is skipped (the hot path); the first
    binding given a step, by any of its ways, turns the look-up on for every later call."""
    from opentelemetry import trace

    monkeypatch.setattr(steps, "_steps_bound", False)  # as in a process where the bridge made no step yet
    with agent_otel.run("a") as run:
        span = runtime.current().tracer.start_span("execute_tool framework")
        binding = steps.SpanBinding(run)
        steps.bind_span(span, binding)
        with trace.use_span(span, end_on_exit=True):
            assert tools.active_tool_call() is None and not steps.steps_bound()
            call = tools.begin(run, tools.ToolOptions("search"), {"q": 1}, attach=False)
            assert call is not None
            binding.step = call  # as the bridge does for a framework's tool span
            assert steps.steps_bound()
            assert tools.active_tool_call() is call
            call.ok("hit")
    monkeypatch.setattr(steps, "_steps_bound", False)
    assert steps.SpanBinding(run, call).step is call and steps.steps_bound()  # given at construction


def test_a_run_without_a_span_leaves_no_binding_on_the_shared_invalid_span(fresh, monkeypatch):
    """With tracing disabled a run's span is ``INVALID_SPAN``, the current span of every context without
    one: binding it would make an ended run the run of any later caller outside a run."""
    from opentelemetry import trace

    from agent_otel import bridge

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    try:
        agent_otel.setup("t", store=False, instrument=False)
        with agent_otel.run("a") as run:
            assert run.span is trace.INVALID_SPAN and active_run() is run
        assert steps.span_binding(trace.INVALID_SPAN) is None
        assert bridge.hook_in() is None and active_run() is None
    finally:  # the old behaviour would leave the binding for every later test of this process
        if steps.span_binding(trace.INVALID_SPAN) is not None:
            delattr(trace.INVALID_SPAN, steps.SPAN_BINDING)
