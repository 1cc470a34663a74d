"""Guards that end a run with a visible stop reason: budgets, loops, policy, kill switch, retry budget.

The seed: "budgets, allowlists and kill switches are worthless if you cannot see when they trigger".
Every trigger here does the same four things: a span event ``agent.guard`` on the run span (guard, limit,
observed value, and the tool/args hash where one is involved), the counter
``agent_guard_triggers_total{agent,guard}``, the run's single stop (so the unified ``stop`` event and
``agent_stop_total`` follow), and an :class:`AgentStopped` raised into the agent's code *before* the step
that would have crossed the line. The run is stopped at the trigger, not when the exception leaves the
block, so an agent that swallows AgentStopped still ends up with the right stop reason.

The checks run before every step, so they are written for the hot path: plain attribute reads and a
bounded deque, the kill-switch file is stat'ed at most every ``check_interval_s``. They plug into the
step engine as a policy (:class:`Guards`, registered with the runtime below; :class:`RunGuards` per run).

Observe or enforce: adding ``setup()`` to an agent that works must not change what it does. So in a run
agent-otel starts around a framework (``Run.framework``: a LangGraph graph, an Agents SDK or PydanticAI
run outside any ``agent_otel.run``), a guard the user did not configure only *observes*: it leaves the same
span event (with ``enforced=false`` and ``would_stop``) and counter, once per cause, and the run goes on.
The only guard that can trigger without configuration is the loop guard (``guards.loop``, on by default);
budgets, the policy, ``tool_timeout_s`` and the kill switch act only once configured (or engaged), so they
always enforce. In the user's own ``agent_otel.run`` (and ``@agent``) every guard enforces: the user wrote
the run, the defaults are part of what they asked for. A run the GenAI span bridge follows only through a
framework's spans (``Run.stoppable`` false: the framework offers no hook before its steps) cannot be
stopped by anything agent-otel runs, so there every guard observes.

A budget is a promise about a run *with the sub-agents it starts*: a sub-agent registers with the runs
above it that have a budget (``_register_under_budgets``), each of those reads its live sub-agents'
counters when it checks (sub-agents running at once see each other's steps) and keeps the sums of the
ended ones; each run's own usage stays its own, so nothing is recorded twice.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from agent_otel import conventions as c
from agent_otel import runtime
from agent_otel.config import SOURCE_DEFAULT, Config, ConfigError
from agent_otel.steps import Policy, Refusal, RunPolicy, Step, check_pending, defer_stop, note_failure
from agent_otel.stop import AgentStopped, StopReason, StopResult
from agent_otel.tools import ToolCall, ToolOptions

if TYPE_CHECKING:
    from agent_otel.run import Run

KILL_SWITCH_ENV = "AGENT_OTEL_KILL_SWITCH"


#: Budget fields that are amounts (USD, seconds) rather than counts.
_BUDGET_FLOATS = frozenset({"max_cost_usd", "max_duration_s"})


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of one run; None means unlimited. Passed to ``run(budget=...)`` or set in ``guards.budget``.
    They hold for the run with the sub-agents it starts: an operator's "$1 for this run" is $1 for all it
    delegates (each sub-agent is also held to its own budget).

    ``max_steps`` counts tool and LLM steps (stop reason ``max_steps``); ``max_tool_calls``, ``max_tokens``,
    ``max_cost_usd`` and ``max_retries`` give ``budget_exceeded``; ``max_duration_s`` gives ``timeout``.
    """

    max_steps: int | None = None
    max_tool_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_duration_s: float | None = None
    max_retries: int | None = None

    def __post_init__(self) -> None:
        # Checked here, where the caller made it: a string from an environment variable, or a negative
        # number, failed at the run's first step as a TypeError out of a comparison (or stopped every run).
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            counts = f.name not in _BUDGET_FLOATS
            if isinstance(value, bool) or not isinstance(value, int if counts else int | float):
                kind = "an int" if counts else "a number"
                raise TypeError(f"Budget({f.name}=...) must be {kind} or None; got {value!r}")
            if value < 0:
                raise ValueError(f"Budget({f.name}=...) must be at least 0; got {value!r}")

    def merged_over(self, base: Budget) -> Budget:
        """This budget's set fields over ``base`` (a run's budget over the configured one)."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **changes)


class ToolDenied(Refusal, PermissionError):
    """A tool call was blocked by policy or by the kill switch's ``writes`` scope.

    Raised only with ``guards.on_deny: raise``; by default a denied call ends the run (AgentStopped).
    """

    def __init__(self, tool: str, guard: str, reason: str) -> None:
        self.tool = tool
        self.guard = guard
        super().__init__(f"tool {tool!r} blocked by {guard}: {reason}")


# --- the kill switch -------------------------------------------------------------------------------


KillSwitchFn = Callable[[str], str | None]
_kill_switch_fn: KillSwitchFn | None = None


def set_kill_switch(fn: KillSwitchFn | None) -> None:
    """Install a callable ``fn(agent) -> "all" | "writes" | "tools=..." | None`` read before every step."""
    global _kill_switch_fn
    _kill_switch_fn = fn


def parse_kill_switch(text: str, agent: str | tuple[str, ...]) -> str | None:
    """Scope that applies to ``agent`` from lines like ``all``, ``writes``, ``writes:agent-a,agent-b`` or
    ``tools=send_email,crm.delete_*`` (tool name patterns, shell-style; ``:agents`` scopes it as well).

    A flag file with no scope line means ``all``; ``off`` (or ``none``/``false``/``0``) means disengaged;
    ``all`` wins over the others; an unknown scope counts as ``all`` (fail closed: someone meant to stop),
    and so does ``tools=`` naming no tool. Returns ``all``, ``writes``, ``tools=<patterns>``,
    ``writes+tools=<patterns>`` or None. ``agent`` may be several names (a sub-agent and the agents
    above it): a line scoped to any of them applies.
    """
    names = (agent,) if isinstance(agent, str) else agent
    lines = [raw.split("#", 1)[0].strip() for raw in text.splitlines()]
    writes = False
    tools: list[str] = []
    for line in [ln for ln in lines if ln] or ["all"]:
        head, _, agents = line.partition(":")
        head = head.strip()
        scope = head.lower()
        if agents and not {c.nfc(a.strip()) for a in agents.split(",")}.intersection(names):
            continue
        if scope in ("off", "none", "false", "0"):
            continue
        if scope == "writes":
            writes = True
        elif scope.startswith("tools="):
            patterns = [p.strip() for p in head[len("tools=") :].split(",") if p.strip()]
            if not patterns:
                return "all"
            tools.extend(patterns)
        else:
            return "all"
    if tools:
        return ("writes+" if writes else "") + "tools=" + ",".join(tools)
    return "writes" if writes else None


_DISENGAGED: tuple[str | None, str] = (None, "")

#: Held while a guard records a trigger and stops the run, so that threads of one run reaching a limit at
#: once record it once (a trigger is rare: one lock for all runs costs nothing on the checks' path).
_TRIGGERING = threading.RLock()


class KillSwitch:
    """Reads the env var, flag file and callable; caches the file at most every ``interval_s``."""

    def __init__(self, env_var: str | None, path: str | None, interval_s: float) -> None:
        self.env_var = env_var
        self._env = c.env_reader(env_var) if env_var else None
        self.path = os.path.expanduser(path) if path else None
        self.interval_s = interval_s
        self._checked = 0.0
        self._text: str | None = None

    def _file_text(self) -> str | None:
        if self.path is None:
            return None
        now = time.monotonic()
        if now - self._checked >= self.interval_s:
            self._checked = now
            try:
                # Bytes that are not UTF-8 read as an unknown word, which means "all" (fail closed).
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    self._text = fh.read(4096)
            except FileNotFoundError:
                self._text = None
            except OSError:
                self._text = "all"  # present but unreadable (permissions, a directory): fail closed
        return self._text

    def scope(self, agent: str, outer: tuple[str, ...] = ()) -> tuple[str | None, str]:
        """(scope, source) for ``agent``, a sub-agent of the ``outer`` agents (innermost first): scope is
        "all", "writes", "tools=..." (see :func:`parse_kill_switch`) or None. A switch scoped to an agent
        covers the sub-agents it runs: stopping ``triage`` stops the research it delegated too."""
        names = (agent, *outer) if outer else agent
        if self._env is not None:
            value = self._env()
            if value:
                scope = parse_kill_switch(value, names)
                if scope:
                    return scope, f"env:{self.env_var}"
        if self.path is not None:  # (checked here too: this runs before every step)
            text = self._file_text()
            if text is not None:
                scope = parse_kill_switch(text, names)
                if scope:
                    return scope, f"file:{self.path}"
        fn = _kill_switch_fn
        if fn is not None:
            found: str | None = None
            for name in (agent, *outer):
                try:
                    value = fn(name)
                except Exception:
                    value = "all"  # a broken switch callable fails closed
                # Read as the variable and the file are ("ALL", "writes:agent", an unknown word: all);
                # None, False or "" is disengaged, any other value (True) engaged.
                if isinstance(value, str):
                    scope = parse_kill_switch(value, name) if value.strip() else None
                else:
                    scope = "all" if value else None
                if scope == "all":
                    return scope, "callable"
                found = found or scope
            if found is not None:
                return found, "callable"
        return _DISENGAGED


# --- configuration -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoopPolicy:
    enabled: bool = True
    max_repeats: int = 3
    window: int = 10
    ping_pong_cycles: int = 2


#: Guards that trigger with the default configuration (the loop guard and its ping-pong check).
_DEFAULT_ON = frozenset({"loop", "ping_pong"})


class Guards(Policy):
    """Built once per setup() from the ``guards:`` config; hands out per-run state."""

    order = 100  # before a replay matches the step: a stopped run asks the recording for nothing

    def __init__(self, config: Config) -> None:
        g = config.get("guards")
        self.budget = Budget(**g["budget"])
        self.loop = LoopPolicy(**g["loop"])
        self.tool_timeout_s: float | None = g["tool_timeout_s"]
        self.on_deny: str = g["policy"]["on_deny"]
        self._allow = _patterns(g["policy"]["allow"], "guards.policy.allow")
        self._deny = _patterns(g["policy"]["deny"], "guards.policy.deny")
        self.has_policy = bool(self._allow or self._deny)
        ks = g["kill_switch"]
        self.kill_switch = KillSwitch(ks["env"], ks["file"], ks["check_interval_s"])
        self._decisions: dict[tuple[str, str], str | None] = {}
        # The loop guard is on by default; it enforces in framework runs only if the user configured it.
        loop_keys = [f"guards.loop.{f.name}" for f in fields(LoopPolicy)]
        self.loop_configured = any(config.source(k) != SOURCE_DEFAULT for k in loop_keys)

    def enforces(self, run: Run, guard: str) -> bool:
        """Whether ``guard`` stops ``run`` when it triggers, or only observes (see the module docstring)."""
        if not run.stoppable:  # nothing runs before the framework's steps that could stop them
            return False
        if not run.framework:
            return True
        if guard in _DEFAULT_ON:
            return self.loop_configured
        return True

    def start_run(self, run: Run) -> RunGuards:
        budget = self.budget if run.budget is None else run.budget.merged_over(self.budget)
        if self.tool_timeout_s is None:
            return RunGuards(self, run, budget)
        return TimedRunGuards(self, run, budget)

    def policy_denial(self, agent: str, tool: str) -> str | None:
        """Why ``tool`` is denied for ``agent`` (None if allowed); cached per (agent, tool)."""
        key = (agent, tool)
        try:
            return self._decisions[key]
        except KeyError:
            pass
        reason = None
        for scope in (agent, "*"):
            for pattern in self._deny.get(scope, ()):
                if fnmatch.fnmatchcase(tool, pattern):
                    reason = f"matches deny pattern {pattern!r} for {scope}"
                    break
            if reason:
                break
        if reason is None:
            allow = self._allow.get(agent, self._allow.get("*"))
            if allow is not None and not any(fnmatch.fnmatchcase(tool, p) for p in allow):
                reason = "not in the allow list of " + (agent if agent in self._allow else "*")
        if len(self._decisions) < 10000:
            self._decisions[key] = reason
        return reason


def _patterns(value: Mapping[str, Any], key: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for agent, patterns in value.items():
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise ConfigError(f"agent-otel config key '{key}.{agent}' must be a list of tool name patterns")
        out[c.nfc(str(agent))] = tuple(patterns)
    return out


class RunGuards(RunPolicy):
    """Per-run guard state: recent tool signatures for loop detection and the effective budget.

    It holds no reference to its run (the hooks get it from the step): the run holds its hooks, so one
    back would make every run a reference cycle, garbage that only the cyclic collector frees, on the
    agent's thread (tests/test_run.py::test_a_finished_run_is_freed_without_the_cyclic_collector).
    """

    __slots__ = (
        "_above",
        "_counts",
        "_deadline",
        "_left",
        "_limits",
        "_observed",
        "_outer",
        "_recent",
        "_tree",
        "budget",
        "guards",
        "loop",
    )

    after_kinds = ("llm",)  # after_step checks the budgets an LLM step's usage may have crossed

    def __init__(self, guards: Guards, run: Run, budget: Budget) -> None:
        self.guards = guards
        self.budget = budget
        self.loop = guards.loop
        # (tool, args hash) of the recent tool calls, each with its step (to tell a failed one; the steps
        # are let go when the run stops, so no reference cycle outlives it).
        self._recent: deque[tuple[tuple[str, str], ToolCall | None]] = deque()
        self._counts: dict[tuple[str, str], int] = {}
        self._observed: set[tuple[Any, ...]] = set()  # causes already recorded by an observing guard
        self._deadline = (
            time.monotonic() + budget.max_duration_s if budget.max_duration_s is not None else None
        )
        # Whether any limit checked before a step is set (the budget is frozen): none by default.
        self._limits = not (
            self._deadline is None
            and budget.max_steps is None
            and budget.max_tool_calls is None
            and budget.max_tokens is None
            and budget.max_cost_usd is None
        )
        #: What this run's sub-agents used, once one started under a budget of this run (see _Tree).
        self._tree: _Tree | None = None
        #: The enclosing runs with a budget, each with its guards: a sub-agent's steps count toward theirs.
        #: (A run of its own, no sub-agent, has none: nor any agent above it, below.)
        self._above: tuple[tuple[Run, RunGuards], ...] = (
            () if run.parent is None else _register_under_budgets(self, run)
        )
        if self._above:
            self._limits = True
        #: After this sub-agent stopped: the budgets above it and what of its usage their sums hold, so a
        #: request that was in flight at its stop and ends after it still counts there.
        self._left: tuple[tuple[tuple[Run, RunGuards], ...], list[Any]] | None = None
        #: The agents of the runs above this one (innermost first): a kill switch scoped to one covers it.
        self._outer = () if run.parent is None else _outer_agents(run)

    # --- the step engine's hooks --------------------------------------------------------------------

    def before_step(self, step: Step) -> None:
        run = step.run
        if isinstance(step, ToolCall):
            self.before_tool(run, step.options, step.args_sha or "", step)
        elif step.recorded:
            self.after_recorded_llm(run)
        else:
            self.before_llm(run, getattr(step, "model", ""))

    def after_step(self, step: Step, result: Any, exc: BaseException | str | None) -> None:
        if self._left is not None:
            self._late_usage(step.run)
        elif step.kind == "llm" and exc is None:
            self.after_usage(step.run)
        return None

    def before_retry(self, step: Step) -> None:
        # The guards that stop a run *now* are checked again before each retry: a kill switch pulled, or
        # a deadline passed, while a tool retries a failing endpoint stops the storm at its next retry.
        if isinstance(step, ToolCall):
            run = step.run
            self._kill_switch(run, step.name, step.options.side_effects)
            self._deadline_check(run)
            self.on_retry(run, step.name)

    def run_stopped(self, result: StopResult) -> None:
        self._recent.clear()
        self._counts.clear()
        self._observed.clear()
        if self._above:  # what this sub-agent used stays counted in the budgets above it
            self._left = (self._above, _leave_budgets(self, self._above, result))
            self._above = ()

    # --- hooks called by the engine's hooks above and by run stop ------------------------------------

    def before_tool(
        self, run: Run, options: ToolOptions, args_sha: str, step: ToolCall | None = None
    ) -> None:
        name = options.name
        switch = self.guards.kill_switch  # (not asked when surely disengaged, as in _kill_switch: per call)
        env = switch._env
        if switch.path is not None or _kill_switch_fn is not None or (env is not None and env()):
            self._kill_switch(run, name, options.side_effects)
        if self._limits:  # (also checked inside: this runs before every tool call)
            self._budget_before_step(run, tool=True)
        guards = self.guards
        if guards.has_policy:  # an allow or deny list is configured
            denial = guards.policy_denial(run.agent, name)
            if denial is not None:
                self._deny(run, "policy", name, denial, StopReason.POLICY_DENIED)
        if self.loop.enabled and args_sha:  # a framework span without arguments has no hash to compare
            self._loop_check(run, name, args_sha, step)

    def before_llm(self, run: Run, model: str) -> None:
        self._kill_switch(run, None, False)
        self._budget_before_step(run, tool=False)

    def after_recorded_llm(self, run: Run) -> None:
        """The checks of an LLM step that ``record_llm`` reports after the request was made.

        Its usage is already counted, so the step and time limits are judged as they stood before it
        (the step is one of ``run.steps``); a token or spend budget this usage crossed stops the run at
        the next step, as after any LLM usage.
        """
        switch = self.guards.kill_switch  # (not asked when surely disengaged, as in before_tool)
        env = switch._env
        if switch.path is not None or _kill_switch_fn is not None or (env is not None and env()):
            self._kill_switch(run, None, False)
        if self._limits:
            self._budget_before_step(run, tool=False, recorded=True)

    def after_usage(self, run: Run) -> None:
        if not self._limits:  # no token or spend budget here, none above (this runs after every request)
            return
        if run.ledger.pending is None and run.result is None:
            crossed = self._usage_crossed(self._totals(run))
            if crossed is not None:
                self._mark_pending(run, *crossed)
        for above, guards in self._above:  # this usage may have crossed the budget of a run above
            if above.ledger.pending is None and above.result is None:
                crossed = guards._usage_crossed(guards._totals(above))
                if crossed is not None:
                    guards._mark_pending(above, *crossed)

    def _late_usage(self, run: Run) -> None:
        """A step of this stopped sub-agent ended after its stop (a request in flight then, in a task or
        thread of its own): what it added moves to the sums of the budgets above, which may stop them."""
        above, moved = self._left  # type: ignore[misc]
        now = _used(run.usage)
        delta = [n - m for n, m in zip(now, moved, strict=True)]
        if not any(delta):
            return
        moved[:] = now
        with _TREE:
            for _, guards in above:
                if guards._tree is not None:
                    for i, value in enumerate(delta):
                        guards._tree.done[i] += value
        for run_above, guards in above:
            if run_above.ledger.pending is None and run_above.result is None:
                crossed = guards._usage_crossed(guards._totals(run_above))
                if crossed is not None:
                    guards._mark_pending(run_above, *crossed)

    def _usage_crossed(self, totals: _Totals) -> tuple[str, Any, Any, StopReason] | None:
        """The token or spend budget that ``totals`` went past (checked right after LLM usage)."""
        b = self.budget
        tokens, cost = totals[2], totals[3]
        if b.max_tokens is not None and tokens > b.max_tokens:
            return "max_tokens", b.max_tokens, tokens, StopReason.BUDGET_EXCEEDED
        if b.max_cost_usd is not None and cost > b.max_cost_usd:
            return "max_cost_usd", b.max_cost_usd, round(cost, 8), StopReason.BUDGET_EXCEEDED
        return None

    def on_retry(self, run: Run, tool: str) -> None:
        """Called before each retry; a per-run retry budget stops a retry storm."""
        limit = self.budget.max_retries
        if limit is not None:
            retries = self._totals(run)[4] if self._tree is not None else run.retries
            if retries > limit:
                self.trigger(
                    run,
                    "max_retries",
                    limit,
                    retries,
                    StopReason.BUDGET_EXCEEDED,
                    f"retry budget of {limit} exhausted at tool {tool!r}" + self._with_subs(),
                    tool=tool,
                )
        if self._above:
            self._check_above(run, "retry", tool)

    def tool_timeout(self, options: ToolOptions) -> float | None:
        return options.timeout_s if options.timeout_s is not None else self.guards.tool_timeout_s

    # --- checks --------------------------------------------------------------------------------------

    def _kill_switch(self, run: Run, tool: str | None, side_effects: bool) -> None:
        switch = self.guards.kill_switch
        if switch.path is None and _kill_switch_fn is None:  # only the variable (by default): read it here
            env = switch._env
            if env is None or not env():
                return  # disengaged: what scope() answers for an unset or empty variable
        scope, source = switch.scope(run.agent, self._outer)
        if scope is None:
            return
        if scope == "all":
            self.trigger(
                run,
                "kill_switch",
                "all",
                source,
                StopReason.KILL_SWITCH,
                f"kill switch (all) engaged via {source}",
                tool=tool,
            )
        elif tool is not None:
            writes, _, tools = scope.partition("tools=")
            if side_effects and writes:
                why, limit = f"kill switch (writes) engaged via {source}", "writes"
            elif tools and any(fnmatch.fnmatchcase(tool, p) for p in tools.split(",")):
                why, limit = f"kill switch (tools={tools}) engaged via {source}", f"tools={tools}"
            else:
                return
            self._deny(run, "kill_switch", tool, why, StopReason.KILL_SWITCH, limit=limit)

    def _budget_before_step(self, run: Run, tool: bool, recorded: bool = False) -> None:
        if not self._limits:
            return
        phase = "recorded" if recorded else "tool" if tool else "llm"
        crossed = self._crossed(run, phase)
        if crossed is not None:
            self.trigger(run, *crossed)
        if self._above:
            self._check_above(run, phase, None)

    def _crossed(self, run: Run, phase: str) -> tuple[str, Any, Any, StopReason, str] | None:
        """The first limit of this run's budget that its steps so far (its sub-agents' included) have
        reached before a step of ``phase`` (``tool``, ``llm``, ``recorded``: an LLM step reported after
        the fact, already counted; ``retry``: only the deadline), as ``trigger``'s arguments."""
        b = self.budget
        if phase == "retry":
            totals: _Totals = (0, 0, 0, 0.0, 0)
        elif self._tree is None:
            totals = (run.steps, run.tool_calls, run.input_tokens + run.output_tokens, run.cost_usd, 0)
        else:
            totals = self._totals(run)
        steps, tool_calls, tokens, cost, _ = totals
        subs = self._with_subs()
        if phase == "recorded":
            steps -= 1
        if b.max_steps is not None and steps >= b.max_steps and phase != "retry":
            return (
                "max_steps",
                b.max_steps,
                steps,
                StopReason.MAX_STEPS,
                f"step budget of {b.max_steps} reached{subs}",
            )
        if phase == "tool" and b.max_tool_calls is not None and tool_calls >= b.max_tool_calls:
            return (
                "max_tool_calls",
                b.max_tool_calls,
                tool_calls,
                StopReason.BUDGET_EXCEEDED,
                f"tool-call budget of {b.max_tool_calls} reached{subs}",
            )
        if self._deadline is not None and time.monotonic() >= self._deadline:
            limit = b.max_duration_s
            elapsed = round(run.usage["duration_ms"] / 1000, 3)
            return "max_duration_s", limit, elapsed, StopReason.TIMEOUT, f"run deadline of {limit}s reached"
        if phase in ("recorded", "retry"):
            return None
        if b.max_tokens is not None and tokens >= b.max_tokens:
            return (
                "max_tokens",
                b.max_tokens,
                tokens,
                StopReason.BUDGET_EXCEEDED,
                f"token budget of {b.max_tokens} reached{subs}",
            )
        if b.max_cost_usd is not None and cost >= b.max_cost_usd:
            return (
                "max_cost_usd",
                b.max_cost_usd,
                round(cost, 8),
                StopReason.BUDGET_EXCEEDED,
                f"spend budget of ${b.max_cost_usd} reached{subs}",
            )
        return None

    def _deadline_check(self, run: Run) -> None:
        crossed = self._crossed(run, "retry") if self._deadline is not None else None
        if crossed is not None:
            self.trigger(run, *crossed)

    # --- budgets over a tree of runs ------------------------------------------------------------------

    def _totals(self, run: Run) -> _Totals:
        """Steps, tool calls, tokens, spend and retries of ``run`` and of every sub-agent under it."""
        steps, calls = run.steps, run.tool_calls
        tokens, cost, retries = run.input_tokens + run.output_tokens, run.cost_usd, run.retries
        tree = self._tree
        if tree is not None:
            with _TREE:
                done = tree.done
                steps, calls, tokens = steps + done[0], calls + done[1], tokens + done[2]
                cost, retries = cost + done[3], retries + done[4]
                for sub in tree.live.values():
                    steps += sub.steps
                    calls += sub.tool_calls
                    tokens += sub.input_tokens + sub.output_tokens
                    cost += sub.cost_usd
                    retries += sub.retries
        return steps, calls, tokens, cost, retries

    def _with_subs(self) -> str:
        return "" if self._tree is None else " (with its sub-agents)"

    def _check_above(self, run: Run, phase: str, tool: str | None) -> None:
        """Stop this sub-agent if a budget of a run above it is spent (by any run of that tree).

        The trigger is the budget's run's: recorded there once, and that run stopped (an agent above
        that swallows the AgentStopped still ends with the reason); this run stops with the same reason,
        its detail naming the run whose budget it was, and leaves no trigger of its own. A run followed
        only through a framework's spans cannot be stopped: the run above stops at its own next step.
        """
        if not run.stoppable:
            return
        for above, guards in self._above:
            if above.ledger.left:  # that run's block is over: what outlived it runs as it would
                continue
            # (A request reported after the fact may have just decided that stop: it ends the run at
            # the next step, as in a run of its own.)
            pending = above.ledger.pending if phase != "recorded" else None
            if pending is not None:
                crossed: tuple[str, Any, Any, StopReason, str] | None = (
                    "",
                    None,
                    None,
                    pending.stop_reason,
                    pending.detail or "",
                )
            elif phase == "retry":
                crossed = guards._crossed(above, "retry")
                limit = guards.budget.max_retries
                retries = guards._totals(above)[4]
                if crossed is None and limit is not None and retries > limit:
                    why = f"retry budget of {limit} exhausted at tool {tool!r} (with its sub-agents)"
                    crossed = ("max_retries", limit, retries, StopReason.BUDGET_EXCEEDED, why)
            else:
                crossed = guards._crossed(above, phase)
            if crossed is None:
                continue
            try:
                if pending is not None:
                    check_pending(above)
                else:
                    guards.trigger(above, *crossed)
            except AgentStopped:
                pass
            else:
                continue  # the run above only observes that guard (see Guards.enforces)
            whose = "parent" if above is run.parent else "enclosing"
            with _TRIGGERING:
                result = run.stop(crossed[3], f"{whose} run {above.run_id} ({above.agent}): {crossed[4]}")
            raise AgentStopped(result)

    def _loop_check(self, run: Run, tool: str, args_sha: str, step: ToolCall | None) -> None:
        """Repeats and A-B-A-B alternations of identical calls. A call made again after it *failed* is a
        retry, not a repeat: the calls of a failed attempt (the call that failed, and another call
        right before it, such as a token refresh) do not count toward ``max_repeats``, and an
        alternation with a failed call in it is a retry cycle. Retrying stays bounded: once the whole
        window is the one failing call (or the one alternation), the next call is a loop.
        """
        sig = (tool, args_sha)
        loop = self.loop
        recent = self._recent
        counts = self._counts
        seen = counts.get(sig, 0)  # a plain dict: Counter's __missing__ is Python code, run for new sigs
        if seen >= loop.max_repeats and (
            seen >= loop.window or seen - _failed(list(recent), sig) >= loop.max_repeats
        ):
            self.trigger(
                run,
                "loop",
                loop.max_repeats,
                seen + 1,
                StopReason.LOOP_DETECTED,
                f"{tool} called with the same args {seen + 1} times within {loop.window} tool calls",
                tool=tool,
                args_sha=args_sha,
            )
        cycles = loop.ping_pong_cycles
        n = 2 * cycles
        # A ping-pong ends with this call repeating the one before last: only then is the tail compared
        # (copying the window for every call cost more than the rest of the check).
        if cycles and len(recent) >= n and recent[-2][0] == sig:
            window = list(recent)
            other = window[-1][0]
            if other != sig and _alternate(window[-n:], sig, other):
                retrying = _failed(window[-n:], None) > 0  # a retry cycle: a loop once it fills the window
                if not retrying or (len(window) >= loop.window and _alternate(window, sig, other)):
                    seen_cycles = len(window) // 2 if retrying else cycles
                    self.trigger(
                        run,
                        "ping_pong",
                        cycles,
                        seen_cycles + 0.5,
                        StopReason.LOOP_DETECTED,
                        f"{tool} and {other[0]} alternate with the same args ({seen_cycles} cycles)",
                        tool=tool,
                        args_sha=args_sha,
                        other_tool=other[0],
                        other_args_sha=other[1],
                    )
        # Threads calling tools of one run (with a copied context) get here at once: nothing below may
        # raise when another thread has just evicted the same call (it raised KeyError into the agent);
        # a count lost to the race only makes the check a little late.
        recent.append((sig, step))
        counts[sig] = seen + 1
        if len(recent) > loop.window:
            old = recent.popleft()[0]
            left = counts.get(old, 1) - 1
            if left <= 0:
                counts.pop(old, None)
            else:
                counts[old] = left

    # --- effects -------------------------------------------------------------------------------------

    def _deny(
        self, run: Run, guard: str, tool: str, why: str, reason: StopReason, limit: Any = "deny"
    ) -> None:
        if self.guards.on_deny == "raise" and self.guards.enforces(run, guard):
            record(run, guard, limit, tool, tool=tool)
            denied = ToolDenied(tool, guard, why)
            # Caught, the run goes on; left uncaught, the run ends with the guard's stop reason.
            note_failure(run, denied, reason)
            raise denied
        self.trigger(run, guard, limit, tool, reason, f"{tool}: {why}", tool=tool)

    def _mark_pending(self, run: Run, guard: str, limit: Any, observed: Any, reason: StopReason) -> None:
        if not self.guards.enforces(run, guard):
            self.trigger(run, guard, limit, observed, reason, "")  # observes: records it, returns
            return
        with _TRIGGERING:  # threads of the run crossing the budget at once: the first one records it
            if run.ledger.pending is not None or run.result is not None:
                return
            record(run, guard, limit, observed)
            defer_stop(run, StopResult(reason, run.run_id, run.usage, f"{guard} {observed} over {limit}"))

    def trigger(
        self,
        run: Run,
        guard: str,
        limit: Any,
        observed: Any,
        reason: StopReason,
        detail: str,
        **attributes: Any,
    ) -> None:
        """Record the trigger, stop the run with ``reason`` and raise AgentStopped into the agent.

        A guard that only observes in this run records the trigger (once per guard, tool and args hash)
        with ``enforced=false`` and what it would have stopped with, and returns.
        """
        with _TRIGGERING:  # threads of one run at the same limit at once: the first one records it
            if not self.guards.enforces(run, guard):
                cause = (guard, attributes.get("tool"), attributes.get("args_sha"))
                if cause not in self._observed and len(self._observed) < 1024:
                    self._observed.add(cause)
                    record(run, guard, limit, observed, enforced=False, would_stop=reason.value, **attributes)
                return
            if run.result is None and run.ledger.pending is None:
                record(run, guard, limit, observed, **attributes)
                result = run.stop(reason, detail)
            else:  # another thread's trigger (or a budget's pending stop) came first: that is the stop
                pending = run.ledger.pending
                result = run.result or run.stop(pending.stop_reason, pending.detail)  # type: ignore[union-attr]
        raise AgentStopped(result)


#: Steps, tool calls, tokens, spend and retries, summed over a run and its sub-agents.
_Totals = tuple[int, int, int, float, int]

#: Guards the sub-agents registered with the runs above them (rare: only under a budget, at a sub-agent's
#: start and stop, and while a run with sub-agents sums them).
_TREE = threading.Lock()


class _Tree:
    """A run's sub-agents under its budget: those still running (their counters are read live, so
    sub-agents running at once see each other's steps), and the sums of those that ended."""

    __slots__ = ("done", "live")

    def __init__(self) -> None:
        #: Keyed by the sub-agent's guards, not its run id: two runs of a tree may share an id the user
        #: gave them (``run(run_id=...)``), and each counts.
        self.live: dict[int, Run] = {}
        self.done = [0, 0, 0, 0.0, 0]


def _run_guards(run: Run) -> RunGuards | None:
    for policy in run.ledger.hooks.policies:
        if isinstance(policy, RunGuards):
            return policy
    return None


def _outer_agents(run: Run) -> tuple[str, ...]:
    names: list[str] = []
    parent = run.parent
    while parent is not None:
        names.append(parent.agent)
        parent = parent.parent
    return tuple(names)


def _register_under_budgets(own: RunGuards, run: Run) -> tuple[tuple[Run, RunGuards], ...]:
    """The runs above ``run`` (a sub-agent) that have a budget, with their guards; ``run`` is counted
    in each of them from now on. A budget is a promise about the whole run, so what a sub-agent it starts
    spends (steps, tool calls, tokens, spend, retries, and time: its deadline) counts toward it."""
    above: list[tuple[Run, RunGuards]] = []
    parent = run.parent
    while parent is not None:
        # (a run stopped by its budget still bounds a sub-agent started after: only its block's end ends that)
        guards = None if parent.ledger.left else _run_guards(parent)
        if guards is not None and any(getattr(guards.budget, f.name) is not None for f in fields(Budget)):
            above.append((parent, guards))
        parent = parent.parent
    if above:
        with _TREE:
            for _, guards in above:
                if guards._tree is None:
                    guards._tree = _Tree()
                guards._tree.live[id(own)] = run
    return tuple(above)


def _used(usage: Mapping[str, Any]) -> list[Any]:
    return [usage["steps"], usage["tool_calls"], usage["total_tokens"], usage["cost_usd"], usage["retries"]]


def _leave_budgets(own: RunGuards, above: tuple[tuple[Run, RunGuards], ...], result: StopResult) -> list[Any]:
    """A sub-agent ended: its usage moves from the live runs of each budget above it to their sums.
    Returns what moved (see RunGuards._late_usage)."""
    used = _used(result.usage)
    with _TREE:
        for _, guards in above:
            tree = guards._tree
            if tree is not None and tree.live.pop(id(own), None) is not None:
                for i, value in enumerate(used):
                    tree.done[i] += value
    return used


class TimedRunGuards(RunGuards):
    """The guards of a run under ``guards.tool_timeout_s``: a tool without its own ``timeout_s`` gets that
    deadline. Without the key the guards leave a step's deadline alone, and since the engine calls only the
    hooks a policy overrides, plain :class:`RunGuards` has no ``step_timeout`` (one call less per step)."""

    __slots__ = ()

    def step_timeout(self, step: Step, timeout_s: float | None) -> float | None:
        return self.tool_timeout(step.options) if isinstance(step, ToolCall) else timeout_s


def _failed(entries: Any, sig: tuple[str, str] | None) -> int:
    """How many of the loop guard's ``entries`` (of ``sig``; None: any) were part of a failed attempt:
    the call failed, or the next call was another one that failed (a token refresh before a retry)."""
    count = 0
    next_failed: tuple[str, str] | None = None  # walking backwards: the next entry's sig, if it failed
    for entry_sig, step in reversed(entries):
        failed = step is not None and step.done and step.result_sha is None
        if (sig is None or entry_sig == sig) and (failed or (next_failed or entry_sig) != entry_sig):
            count += 1
        next_failed = entry_sig if failed else None
    return count


def _alternate(entries: list[Any], sig: tuple[str, str], other: tuple[str, str]) -> bool:
    """Whether ``entries`` alternate ``sig`` and ``other``, ending with ``other``."""
    last = len(entries) - 1
    return all(entry[0] == (other if (last - i) % 2 == 0 else sig) for i, entry in enumerate(entries))


def record(run: Run, guard: str, limit: Any, observed: Any, **attributes: Any) -> None:
    """The span event and counter every guard trigger leaves behind."""
    event: dict[str, Any] = {"guard": guard, "limit": _attr(limit), "observed": _attr(observed)}
    event["enforced"] = bool(attributes.pop("enforced", True))
    rt = run.ledger.runtime
    hashes = rt is None or rt.store_args_hash  # off: args hashes stay in the process (see Redaction)
    for key, value in attributes.items():
        if value is not None and (hashes or not key.endswith("args_sha")):
            event[key] = _attr(value)
    try:
        run.span.add_event(c.EVENT_GUARD, event)
        if rt is not None and not run.is_replay:  # a replay is not traffic (see Run._finish)
            rt.metrics.record_guard(run.agent, guard)
    except Exception:  # telemetry of a guard must not replace the guard's own effect
        pass


def _attr(value: Any) -> Any:
    return value if isinstance(value, str | bool | int | float) else str(value)


runtime.register_policy("guards", lambda config, pipeline: Guards(config))
