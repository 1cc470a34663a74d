"""Replay a recorded run: tool calls served from snapshots, LLM calls live, the first divergence reported.

::

    with agent_otel.replay(run_id) as rp:          # or: async with
        my_agent(rp.input)
    print(rp.report)                                # rp.report.diverged, rp.report.divergence, ...

The first run started in the block (``agent_otel.run`` / ``@agent``) replays the recording: it is a new
run with ``agent.replay_of`` set to the recorded run_id. Each of its tool calls (``@tool``,
``run.call_tool``, and integrations that ask :func:`serve` or :func:`recorded`) is matched against the
recorded calls in order, by tool name and ``args_sha``, and served from the snapshot: the recorded result
is returned, or the recorded error raised, and the tool itself never runs. LLM calls run live, since a
prompt or model change is usually what a replay is testing.

``mode="strict"`` (default): the first call that differs from the recording (another tool, other args,
a call past the end) stops the run with stop reason ``policy_denied`` (the replay allows exactly the
recorded calls) and raises :class:`ReplayDivergence`, an ``AgentStopped``, which the ``with`` block
absorbs. ``mode="lenient"``: a call that differs is still served if the recording has a call with the
same tool and ``args_sha`` anywhere in the run; a call the recording does not have raises
:class:`UnrecordedToolCall` and is never executed. Either way the report names the first divergence.

Sub-agent runs started directly in a replayed run replay the recorded sub-agent runs of the same agent
name, in order; calls made *inside* a served tool (nested tool calls, sub-agents run by a tool) never
happen in a replay, because the tool body does not run: their effect is in the served result.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_otel import runtime
from agent_otel import snapshots as snap
from agent_otel.steps import Policy, Refusal, RunPolicy
from agent_otel.stop import AgentStopped, StopReason, StopResult
from agent_otel.tools import ToolCall

if TYPE_CHECKING:
    from agent_otel.config import Config
    from agent_otel.run import Run
    from agent_otel.steps import Step as EngineStep
    from agent_otel.store.db import Store

logger = logging.getLogger("agent_otel")

STRICT = "strict"
LENIENT = "lenient"
MODES = (STRICT, LENIENT)
DAY_MS = 86_400_000
EVENT_DIVERGENCE = "agent.replay.divergence"
RecordedToolError = snap.RecordedToolError

# The replay session of the calling context; runs started under it are replays (see ReplayPolicy).
_session: ContextVar[Replay | None] = ContextVar("agent_otel_replay", default=None)


class ReplayError(Refusal):
    """A replay cannot be done or cannot go on: unknown run, no or expired snapshots, a key problem."""


class UnrecordedToolCall(ReplayError):
    """During a replay, a tool call the recording does not have; the tool was not executed."""


class SnapshotUnavailable(ReplayError):
    """The recorded call matches, but its result was not recorded (excluded, too large, interrupted)."""


class ReplayDivergence(AgentStopped):
    """Strict mode: the replayed run asked for a call the recording does not have at this point.

    The run is stopped with ``policy_denied``; the ``replay`` block that caused it absorbs the exception.
    """

    def __init__(self, result: StopResult, session: Replay, divergence: Divergence) -> None:
        super().__init__(result)
        self.session = session
        self.divergence = divergence


@dataclass(frozen=True, slots=True)
class CallRef:
    """A tool call as the report shows it: step, tool name and args hash (never the args)."""

    step_id: int | None
    tool: str
    args_sha: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"step_id": self.step_id, "tool": self.tool, "args_sha": self.args_sha}

    def __str__(self) -> str:
        step = f"step {self.step_id}" if self.step_id is not None else "step -"
        return f"{step}  {self.tool}  args {self.args_sha or '-'}"


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first tool call where the replay left the recording; ``index`` counts the run's tool calls."""

    index: int
    run_id: str | None
    recorded: CallRef | None
    now: CallRef | None

    @property
    def kind(self) -> str:
        if self.now is None:
            return "missing"  # the recording made this call; the replay did not
        if self.recorded is None:
            return "extra"  # the replay made a call past the end of the recording
        return "tool" if self.recorded.tool != self.now.tool else "args"

    def describe(self) -> str:
        if self.now is None:
            return f"tool call {self.index} never happened (recorded {self.recorded})"
        if self.recorded is None:
            return f"tool call {self.index} ({self.now}) is past the end of the recording"
        return f"tool call {self.index} differs: recorded {self.recorded}, now {self.now}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "run_id": self.run_id,
            "recorded": self.recorded.to_dict() if self.recorded else None,
            "now": self.now.to_dict() if self.now else None,
        }


class Step:
    """One recorded tool call, with its result or error ready to serve."""

    __slots__ = ("args_sha", "error_type", "outcome", "plain", "result_sha", "result_type", "step_id", "tool")

    def __init__(self, row: dict[str, Any], plain: bytes | None) -> None:
        self.step_id: int = row["step_id"]
        self.tool: str = row["tool"]
        self.args_sha: str = row["args_sha"]
        self.outcome: str = row["outcome"]
        self.result_sha: str | None = row.get("result_sha")
        self.error_type: str | None = row.get("error_type")
        self.result_type: str | None = row.get("result_type")
        self.plain = plain

    @property
    def ref(self) -> CallRef:
        return CallRef(self.step_id, self.tool, self.args_sha)

    def recorded(self) -> RecordedOutcome:
        """The recorded result (its JSON form) or error (rebuilt), without finishing any call."""
        assert self.plain is not None
        if self.outcome == snap.ERROR:
            return RecordedOutcome(None, snap.rebuild_error(self.plain), None)
        return RecordedOutcome(snap.load_json(self.plain), None, self.result_type)

    def serve(self, call: ToolCall) -> Any:
        """Finish ``call`` with the recorded outcome: return the result or raise the error."""
        recorded = self.recorded()
        if recorded.error is not None:
            call.fail(recorded.error)
            raise recorded.error
        call.ok(recorded.value)
        return recorded.value


@dataclass(frozen=True, slots=True)
class RecordedOutcome:
    """What a recorded tool call returned or raised, as :func:`recorded` hands it to an integration."""

    value: Any  # the result's JSON form (None when the call raised)
    error: BaseException | None  # the recorded error, rebuilt (RecordedToolError if its class is not loaded)
    result_type: str | None  # ``module.Class`` of a result that was not a JSON value when recorded

    def result(self) -> Any:
        """The recorded result, or raise the recorded error."""
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class Recording:
    """A recorded run: versions, input, tool calls in order, and the sub-agent runs it started itself."""

    run_id: str
    agent: str
    model: str | None
    prompt_version: str | None
    tools_version: str | None
    input_sha: str | None
    created_at_ms: int
    stop_reason: str | None
    steps: list[Step]  # the run's own tool calls; those made inside another tool call are in ``nested``
    nested: int = 0
    children: list[Recording] = field(default_factory=list)
    parent_run_id: str | None = None
    input_type: str | None = None  # ``module.Class`` of an input that was not a JSON value when recorded
    _input: bytes | None = None
    status: str | None = None  # the run row's status: ``running``/``abandoned`` when no stop was recorded
    unended: str | None = None  # why the run has no stop (the store's ``abandoned`` sentence), if it has none

    @property
    def input(self) -> Any:
        """The run's input as recorded (a fresh copy each time); None if the run had none."""
        if self.input_sha is None:
            return None
        if self._input is None:
            raise ReplayError(
                f"the input of run {self.run_id} was not recorded (larger than replay.max_result_mb)"
            )
        return snap.load_json(self._input)

    @property
    def tool_calls(self) -> int:
        """Replayable tool calls of this run and of the sub-agent runs it started."""
        return len(self.steps) + sum(c.tool_calls for c in self.children)


def load(
    run_id: str, *, store: Any = None, config: Config | None = None, now_ms: int | None = None
) -> Recording:
    """Read the recording of ``run_id`` (or a unique prefix) from the run store; ReplayError if it cannot.

    ``store`` is an open :class:`~agent_otel.store.Store`, a SQLite path or a ``postgresql://`` URL;
    default: the ``store`` of the configuration in force. Snapshots older than
    ``retention.tool_snapshot_days`` are expired even before gc has deleted them.
    """
    from agent_otel import config as config_mod
    from agent_otel.store import Store, StoreError, open_store, resolve

    cfg = config or config_mod.effective()
    _flush_recording()
    if isinstance(store, Store):
        return _load(store, run_id, cfg, now_ms)
    if isinstance(store, str) and not store.strip():  # as every configuration path says of a blank store
        raise ReplayError("store is empty; give a SQLite path or a postgresql:// URL (or leave it out)")
    target = resolve(cfg.get("store") if store is None else store)
    if target is None:
        raise ReplayError("the run store is disabled (store: false); replay reads its snapshots from it")
    try:
        opened = open_store(target, create=False, writer=False)
    except StoreError as exc:
        raise ReplayError(str(exc)) from None
    try:
        return _load(opened, run_id, cfg, now_ms)
    finally:
        opened.close()


def _flush_recording() -> None:
    """Snapshots recorded by this process may still be queued for the store: deliver them first."""
    rt = runtime.current()
    rt.pipeline.flush(rt.config.get("exporter.shutdown_timeout_s") or 1.0)


def _load(store: Store, run_id: str, cfg: Config, now_ms: int | None) -> Recording:
    from agent_otel.store import StoreError
    from agent_otel.store import snapshots as tables

    prefix = (run_id or "").strip()
    if not prefix:
        raise ReplayError("give a run id (or a unique prefix of one)")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    days = int(cfg.get("retention.tool_snapshot_days"))
    cutoff = now_ms - days * DAY_MS if days > 0 else None
    try:
        root = tables.find_run(store, prefix)
        if root is None:
            run = store.find_run(prefix)  # StoreError "no run matches" when the run is unknown too
            created = run.get("created_at_ms")
            purge = store.snapshot_purge()
            purged = purge is not None and created is not None and created < purge[0]
            if cutoff is not None and (created or now_ms) < cutoff:
                raise ReplayError(
                    _expired(run["run_id"], created, days) + ("; gc has deleted them" if purged else "")
                )
            if purged and purge is not None:  # deleted under a shorter retention than the one now
                raise ReplayError(
                    f"the snapshots of run {run['run_id']} (recorded {_when(created)}) have expired and "
                    f"were deleted by gc (retention.tool_snapshot_days was {purge[1]} then)"
                )
            if run.get("replay_of"):
                raise ReplayError(
                    f"run {run['run_id']} is a replay of run {run['replay_of']}, and replays are not "
                    f"recorded: replay {run['replay_of']} instead"
                )
            raise ReplayError(
                f"run {run['run_id']} has no tool-result snapshots in {store.target.display} (it was "
                "recorded with replay.record: false, with replay.require_encryption: true and no usable key, "
                "or by an agent-otel without replay)"
            )
        if cutoff is not None and root["created_at_ms"] < cutoff:
            raise ReplayError(_expired(root["run_id"], root["created_at_ms"], days))
        rows, steps, blobs = tables.load_tree(store, root)
        ended = store.runs(ids=[r["run_id"] for r in rows], newest_first=False)
        stops = {r["run_id"]: r for r in ended}
    except StoreError as exc:
        raise ReplayError(str(exc)) from None
    plain = _open_blobs(blobs, cfg)
    recordings: dict[str, Recording] = {}
    for row in rows:
        own = [s for s in steps[row["run_id"]] if s.get("parent_step") is None]
        for s in own:
            if s["outcome"] in (snap.OK, snap.ERROR) and s.get("blob_sha") not in plain:
                raise ReplayError(
                    f"the snapshot of step {s['step_id']} ({s['tool']}) of run {row['run_id']} is missing "
                    "from the store; its data was deleted (agent-otel gc) or never written"
                )
        end_row = stops.get(row["run_id"]) or {}
        rec = Recording(
            run_id=row["run_id"],
            agent=row["agent"],
            # As the run started, else as it ended: a framework's run learns its model from its requests.
            model=row.get("model") or end_row.get("model"),
            prompt_version=row.get("prompt_version") or end_row.get("prompt_version"),
            tools_version=row.get("tools_version") or end_row.get("tools_version"),
            input_sha=row.get("input_sha"),
            created_at_ms=int(row["created_at_ms"]),
            stop_reason=end_row.get("stop_reason"),
            steps=[Step(s, plain.get(s.get("blob_sha") or "")) for s in own],
            nested=len(steps[row["run_id"]]) - len(own),
            parent_run_id=row.get("parent_run_id"),
            input_type=row.get("input_type"),
            _input=plain.get(row.get("input_sha") or ""),
        )
        _mark_unended(rec, stops.get(row["run_id"]))
        recordings[rec.run_id] = rec
        parent = recordings.get(row.get("parent_run_id") or "")
        if parent is not None and row.get("parent_step") is None and rec.run_id != root["run_id"]:
            parent.children.append(rec)
    return recordings[root["run_id"]]


def _mark_unended(rec: Recording, run: dict[str, Any] | None) -> None:
    """A run without a recorded stop (its process killed mid-run, or still going) has a recording that
    ends where the process was, not where the agent finished: a replay cannot match it."""
    from agent_otel.store import liveness

    if run is None:
        return
    rec.status = run.get("status")
    if run.get("stop_reason") is None and rec.status in (liveness.RUNNING, liveness.ABANDONED):
        rec.unended = run.get("abandoned") or "no stop has been recorded yet; it may still be running"


def _when(created_at_ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((created_at_ms or 0) / 1000))


def _expired(run_id: str, created_at_ms: int | None, days: int) -> str:
    return (
        f"the snapshots of run {run_id} (recorded {_when(created_at_ms)}) have expired: "
        f"retention.tool_snapshot_days is {days}"
    )


def _open_blobs(blobs: dict[str, tuple[str, str, bytes]], cfg: Config) -> dict[str, bytes]:
    """Decrypt what is sealed (all of it now, so a wrong key fails before the agent runs)."""
    env_var = cfg.get("replay.key_env") or snap.DEFAULT_KEY_ENV
    sealer: snap.Sealer | None = None
    sealer_loaded = False
    out: dict[str, bytes] = {}
    try:
        for sha, (encoding, kid, data) in blobs.items():
            if encoding != snap.PLAIN and not sealer_loaded:
                sealer, sealer_loaded = snap.Sealer.from_env(env_var), True
            plain = snap.open_blob(encoding, kid, data, sealer, env_var)
            snap.load_json(plain)  # a damaged blob fails here, not in the middle of the agent
            out[sha] = plain
    except snap.SnapshotKeyError as exc:
        raise ReplayError(str(exc)) from None
    except ValueError as exc:
        raise ReplayError(f"a snapshot in the store is damaged ({exc})") from None
    return out


# --- the replay session ------------------------------------------------------------------------------


class _RunState(RunPolicy):
    """A run under replay and the recording it follows (None: a run the recording does not have).

    As the run's policy it serves each tool step from the recording instead of running it.
    """

    __slots__ = ("bound", "position", "recording", "run", "session", "used")

    def __init__(self, session: Replay, recording: Recording | None, run: Run) -> None:
        self.session = session
        self.recording = recording
        self.run = run
        self.position = 0  # recorded calls matched in order so far
        self.used: set[int] = set()
        self.bound: set[str] = set()  # recorded sub-agent runs already replayed by a child run

    @property
    def steps(self) -> list[Step]:
        return self.recording.steps if self.recording is not None else []

    def serve(self, step: EngineStep) -> Step | None:
        """The recorded call that serves a tool step, asked before the step exists (see
        :meth:`Replay.before_tool`); LLM steps run live."""
        if isinstance(step, ToolCall):
            return self.session.before_tool(self, step.run, step.name, step.args_sha or "", step.step_id)
        return None


def _state_of(run: Run | None) -> _RunState | None:
    """The replay state of ``run``, if it is a run under replay."""
    if run is None:
        return None
    return next((p for p in run.ledger.hooks.policies if isinstance(p, _RunState)), None)


class ReplayPolicy(Policy):
    """Binds the runs started in a ``replay`` block to the recording, and refuses tools outside a run."""

    # After the guards (a stopped run asks nothing), before the recorder (replays are not recorded).
    order = 200

    def start_run(self, run: Run) -> _RunState | None:
        session = _session.get()
        return session.run_started(run) if session is not None else None

    def outside_run(self, tool: str) -> None:
        session = _session.get()
        if session is not None:
            session.outside_run(tool)


_POLICY = ReplayPolicy()
runtime.register_policy("replay", lambda config, pipeline: _POLICY)


class Replay:
    """``with agent_otel.replay(run_id) as rp`` (or ``async with``): see the module documentation."""

    def __init__(
        self, run_id: str, *, mode: str = STRICT, store: Any = None, config: Config | None = None
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"replay mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.run_id = run_id
        self.mode = mode
        self._store = store
        self._config = config
        self.recording: Recording | None = None
        self.run: Run | None = None  # the replay run (the first run started in the block)
        self.divergence: Divergence | None = None
        self.unrecorded: list[CallRef] = []
        self.extra_runs = 0
        self.requested = 0
        self.matched = 0
        self.served = 0
        self.notes: list[str] = []
        self.error: str | None = None
        self._states: list[_RunState] = []
        self._lock = threading.Lock()
        self._token: Any = None
        self._done = False

    # --- context manager -----------------------------------------------------------------------------

    def load(self) -> Recording:
        """Read the recording now (``with`` does it on entry); raises ReplayError."""
        if self.recording is None:
            self.recording = load(self.run_id, store=self._store, config=self._config)
        return self.recording

    def __enter__(self) -> Replay:
        if self._token is not None or self._done:
            raise RuntimeError("a replay block can be entered once; call agent_otel.replay() again")
        rec = self.load()
        if rec.input_type and rec._input is not None:
            # Like a tool result that was an object: the agent gets a dict or list where it had a
            # dataclass or a datetime, which can change its path; the report says so.
            note = (
                f"the run input was a {rec.input_type} when recorded; rp.input is its JSON form "
                f"({type(snap.load_json(rec._input)).__name__})"
            )
            if note not in self.notes:
                self.notes.append(note)
                logger.info("agent-otel replay: %s", note)
        self._token = _session.set(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        token, self._token = self._token, None
        if token is not None:
            try:
                _session.reset(token)
            except ValueError:  # left in another context than it was entered
                _session.set(None)
        self._done = True
        ours = (isinstance(exc, ReplayDivergence) and exc.session is self) or self._own_stop(exc)
        if exc is not None and not ours:
            self.error = f"{type(exc).__name__}: {exc}"
        self._finish()
        return ours

    def _own_stop(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` is this replay's divergence stop, raised by the run's next step rather than as
        the ReplayDivergence (a framework's tool span compared at its end, where nothing can be raised)."""
        if not isinstance(exc, AgentStopped) or self.divergence is None or self.mode != STRICT:
            return False
        result = exc.result
        return result.stop_reason == StopReason.POLICY_DENIED and any(
            state.run.run_id == result.run_id for state in self._states
        )

    async def __aenter__(self) -> Replay:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    @property
    def input(self) -> Any:
        """The recorded run's input, to call the agent with (a fresh copy each time)."""
        return self.load().input

    @property
    def report(self) -> ReplayReport:
        """What the replay found (final once the block has been left)."""
        rec = self.load()
        run = self.run
        now = run.result.stop_reason.value if run is not None and run.result is not None else None
        return ReplayReport(
            run_id=rec.run_id,
            agent=rec.agent,
            mode=self.mode,
            replay_run_id=run.run_id if run is not None else None,
            recorded_tool_calls=rec.tool_calls,
            requested_tool_calls=self.requested,
            steps_matched=self.matched,
            served=self.served,
            divergence=self.divergence,
            stop_reason_then=rec.stop_reason,
            stop_reason_now=now,
            status_then=rec.status,
            unended_then=rec.unended,
            unrecorded_calls=list(self.unrecorded),
            error=self.error,
            notes=list(self.notes),
            finished=self._done,
            versions_then=_versions(rec),
            versions_now=_versions(run) if run is not None else None,
        )

    # --- called by the replay policy ------------------------------------------------------------------

    def run_started(self, run: Run) -> _RunState:
        """Bind a run started in this replay block to the recording it replays; never raises."""
        with self._lock:
            parent = _state_of(run.parent)
            if parent is None:
                if self.run is None:
                    self.run = run
                    state = _RunState(self, self.recording, run)
                else:  # a second run in one block: the recording has nothing for it
                    self.extra_runs += 1
                    self.notes.append(f"run {run.run_id} also started in the block; the recording has none")
                    state = _RunState(self, None, run)
            else:
                rec = None
                if parent.recording is not None:
                    free = [c for c in parent.recording.children if c.run_id not in parent.bound]
                    rec = next((c for c in free if c.agent == run.agent), None)
                if rec is not None:
                    parent.bound.add(rec.run_id)
                state = _RunState(self, rec, run)
            self._states.append(state)
        run.is_replay = True
        if state.recording is not None:
            run.replay_of = state.recording.run_id
        return state

    def outside_run(self, tool: str) -> None:
        """An ``@tool`` called outside any run during the replay: it was never recorded, so never run."""
        with self._lock:
            self.unrecorded.append(CallRef(None, tool, None))
        raise UnrecordedToolCall(
            f"tool {tool!r} was called outside any agent_otel run during a replay; only tool calls of a run "
            "are recorded, so it is not executed"
        )

    def before_tool(self, state: _RunState, run: Run, tool: str, args_sha: str, step_id: int = 0) -> Step:
        """Match a tool call; returns the step to serve, or stops the run (strict) or raises (lenient).

        ``step_id``: the call's, when it has one already (matched after it began, ``steps.serve_late``)."""
        now = CallRef(step_id or run.steps + 1, tool, args_sha)
        stop: Divergence | None = None
        with self._lock:
            self.requested += 1
            steps = state.steps
            k = state.position
            expected = steps[k] if k < len(steps) else None
            step: Step | None = None
            if self.mode == STRICT and self.divergence is not None:
                stop = self.divergence  # diverged earlier (in another run of the tree): stop here too
            elif (
                self.divergence is None
                and expected is not None
                and expected.tool == tool
                and expected.args_sha == args_sha
            ):
                state.position += 1
                state.used.add(k)
                self.matched += 1
                step = expected
            else:
                if self.divergence is None:
                    rid = state.recording.run_id if state.recording is not None else None
                    self.divergence = Divergence(k + 1, rid, expected.ref if expected else None, now)
                    _note_divergence(run, self.divergence)
                if self.mode == STRICT:
                    stop = self.divergence
                else:
                    step = _find(steps, state.used, tool, args_sha)
                    if step is None:
                        self.unrecorded.append(now)
            if step is not None and step.outcome in (snap.OK, snap.ERROR):
                self.served += 1
                if step.result_type and step.outcome == snap.OK:
                    self._note_type(step)
        if stop is not None:
            rec = self.recording.run_id if self.recording is not None else self.run_id
            detail = f"replay of {rec} diverged: {stop.describe()}"
            result = run.stop(StopReason.POLICY_DENIED, detail)
            raise ReplayDivergence(result, self, stop)
        if step is None:
            raise UnrecordedToolCall(
                f"tool {tool!r} with args_sha {args_sha} was not called in the recorded run; "
                "a replay never executes a tool, so this call fails"
            )
        if step.outcome not in (snap.OK, snap.ERROR):
            why = {
                snap.EXCLUDED: "its tool is excluded from recording (replay.exclude)",
                snap.TOO_LARGE: "its result was larger than replay.max_result_mb",
                snap.INTERRUPTED: f"the recorded call was interrupted ({step.error_type})",
            }.get(step.outcome, "its snapshot could not be written")
            with self._lock:  # the agent may catch it and go on: the report says why this call failed
                self.notes.append(
                    f"step {now.step_id} ({tool}) matched the recording but was not served: {why}"
                )
            raise SnapshotUnavailable(
                f"step {step.step_id} ({tool}) matches the recording but cannot be served: {why}; "
                "the tool is not executed"
            )
        return step

    @staticmethod
    def _type_note(step: Step) -> str:
        return (
            f"{step.tool} returned a {step.result_type} when recorded; the replay serves its JSON form "
            f"({type(snap.load_json(step.plain or b'null')).__name__})"
        )

    def _note_type(self, step: Step) -> None:
        note = self._type_note(step)
        if note not in self.notes:
            self.notes.append(note)
            logger.info("agent-otel replay: %s", note)

    def _finish(self) -> None:
        """On leaving the block: a recorded call the replay never made is a divergence too."""
        with self._lock:
            if self.divergence is not None:
                return
            for state in self._states:
                rec = state.recording
                if rec is None:
                    continue
                if state.position < len(rec.steps):
                    missing = rec.steps[state.position]
                    self.divergence = Divergence(state.position + 1, rec.run_id, missing.ref, None)
                    return
                for child in rec.children:
                    if child.run_id not in state.bound and child.steps:
                        self.divergence = Divergence(1, child.run_id, child.steps[0].ref, None)
                        return


def _versions(obj: Any) -> dict[str, str | None]:
    return {k: getattr(obj, k) for k in ("model", "prompt_version", "tools_version")}


def _find(steps: list[Step], used: set[int], tool: str, args_sha: str) -> Step | None:
    """Lenient lookup: the first unused recorded call with this tool and args hash, else the last used one."""
    last = None
    for i, step in enumerate(steps):
        if step.tool == tool and step.args_sha == args_sha:
            if i not in used:
                used.add(i)
                return step
            last = step
    return last


def _note_divergence(run: Run, d: Divergence) -> None:
    attributes: dict[str, Any] = {"index": d.index, "kind": d.kind}
    rt = run.ledger.runtime
    hashes = rt is None or rt.store_args_hash  # off: args hashes stay in the process (see Redaction)
    if d.run_id:
        attributes["recorded.run_id"] = d.run_id
    for side, ref in (("recorded", d.recorded), ("now", d.now)):
        if ref is not None:
            attributes[f"{side}.tool"] = ref.tool
            if ref.args_sha and hashes:
                attributes[f"{side}.args_sha"] = ref.args_sha
            if ref.step_id is not None:
                attributes[f"{side}.step_id"] = ref.step_id
    with contextlib.suppress(Exception):  # telemetry; the replay's own report does not depend on it
        run.span.add_event(EVENT_DIVERGENCE, attributes)


@dataclass
class ReplayReport:
    """The outcome of a replay: the first divergence, calls matched, and the stop reason then and now.

    ``diverged`` is true when the tool path differs (``divergence``), when the run stopped for another
    reason than the recorded run did, or when no run was started in the block.
    """

    run_id: str
    agent: str
    mode: str
    replay_run_id: str | None
    recorded_tool_calls: int
    requested_tool_calls: int
    steps_matched: int
    served: int
    divergence: Divergence | None
    stop_reason_then: str | None
    stop_reason_now: str | None
    unrecorded_calls: list[CallRef] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    finished: bool = True
    versions_then: dict[str, str | None] = field(default_factory=dict)
    versions_now: dict[str, str | None] | None = None
    status_then: str | None = None
    unended_then: str | None = None  # why the recorded run has no stop (abandoned, or still running)

    @property
    def stop_reason_changed(self) -> bool:
        return self.unended_then is not None or (
            self.stop_reason_then is not None and self.stop_reason_now != self.stop_reason_then
        )

    @property
    def diverged(self) -> bool:
        return self.divergence is not None or self.stop_reason_changed or self.replay_run_id is None

    @property
    def matched(self) -> bool:
        return not self.diverged

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "replay_run_id": self.replay_run_id,
            "agent": self.agent,
            "mode": self.mode,
            "matched": self.matched,
            "recorded_tool_calls": self.recorded_tool_calls,
            "requested_tool_calls": self.requested_tool_calls,
            "steps_matched": self.steps_matched,
            "served": self.served,
            "divergence": self.divergence.to_dict() if self.divergence else None,
            "stop_reason": {"then": self.stop_reason_then, "now": self.stop_reason_now},
            "status_then": self.status_then,
            "versions": {"then": self.versions_then, "now": self.versions_now},
            "unrecorded_calls": [c.to_dict() for c in self.unrecorded_calls],
            "error": self.error,
            "notes": list(self.notes),
        }

    def render(self) -> str:
        lines = [
            f"replay of {self.run_id} ({self.agent}), mode {self.mode}: "
            f"replay run {self.replay_run_id or '-'}",
            f"tool calls   recorded {self.recorded_tool_calls}   asked for {self.requested_tool_calls}   "
            f"matched in order {self.steps_matched}   served from snapshots {self.served}",
        ]
        d = self.divergence
        if self.replay_run_id is None:
            lines.append("DIVERGED: no agent_otel run was started in the replay block")
        elif d is not None:
            where = f" (recorded run {d.run_id})" if d.run_id and d.run_id != self.run_id else ""
            lines.append(f"DIVERGED at tool call {d.index}{where}:")
            lines.append(f"  recorded  {d.recorded if d.recorded else '(none: the recording ends here)'}")
            lines.append(f"  now       {d.now if d.now else '(none: the replay made no such call)'}")
        elif self.unended_then is not None:
            ended = "never ended" if self.status_then == "abandoned" else "has not ended"
            lines.append(f"DIVERGED: the recorded run {ended} ({self.status_then}: {self.unended_then})")
        elif self.stop_reason_changed:
            lines.append("DIVERGED: the same tool calls, but the run stopped for another reason")
        else:
            lines.append("MATCH: the replay made the recorded tool calls in the recorded order")
        then = self.stop_reason_then or ("- (" + self.status_then + ")" if self.unended_then else "-")
        lines.append(f"stop reason  then {then}   now {self.stop_reason_now or '-'}")
        if self.versions_now is not None and any((*self.versions_then.values(), *self.versions_now.values())):
            lines.append(f"versions     then {_fmt(self.versions_then)}   now {_fmt(self.versions_now)}")
        for call in self.unrecorded_calls:
            lines.append(f"not in the recording (not executed): {call}")
        if self.error:
            lines.append(f"the agent raised {self.error}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _fmt(versions: dict[str, str | None]) -> str:
    labels = (("model", "model"), ("prompt", "prompt_version"), ("tools", "tools_version"))
    return " ".join(f"{label} {versions.get(key) or '-'}" for label, key in labels)


def replay(run_id: str, *, mode: str = STRICT, store: Any = None) -> Replay:
    """Replay run ``run_id`` (or a unique prefix): ``with agent_otel.replay(run_id) as rp: agent(rp.input)``.

    ``mode`` is ``strict`` (stop at the first divergence) or ``lenient`` (serve recorded calls by tool and
    args hash, refuse unknown ones). ``store`` overrides the configured run store (path or URL).
    """
    return Replay(run_id, mode=mode, store=store)


# --- for framework integrations --------------------------------------------------------------------


def is_replayed(call: ToolCall | None) -> bool:
    """True when ``call`` (from ``tools.begin``) is part of a replay and must be served, not executed."""
    return call is not None and call.replay is not None


def serve(call: ToolCall) -> Any:
    """Finish a replayed ``call`` from its snapshot: return the recorded result or raise the recorded error.

    For integrations whose framework lets them skip executing a tool::

        call = tools.begin(run, options, args)
        if replay.is_replayed(call):
            return replay.serve(call)
    """
    if call.replay is None:
        raise ReplayError(f"tool call {call.name!r} is not part of a replay")
    return call.replay.serve(call)


def recorded(call: ToolCall) -> RecordedOutcome:
    """The recorded outcome of a replayed ``call``, leaving the call open.

    For integrations that hand the recorded result (or error) to the framework's own machinery instead
    of executing the tool, and then finish the call as they finish a live one (``call.ok`` /
    ``call.fail``): a faithful rebuild then records the same result_sha as the recording.
    """
    if call.replay is None:
        raise ReplayError(f"tool call {call.name!r} is not part of a replay")
    return call.replay.recorded()


def not_compared(call: ToolCall, why: str) -> None:
    """A tool call of a replay that cannot be compared with the recording (nor was recorded): a framework's
    tool span without its arguments. The report's notes say so; it counts as no call."""
    state = _state_of(call.run)
    session = state.session if state is not None else None
    if isinstance(session, Replay):
        with session._lock:
            session.notes.append(f"step {call.step_id} ({call.name}) was not compared: {why}")


def unserved(call: ToolCall, why: str) -> None:
    """A replayed ``call`` matched the recording, but its integration could not serve it (nor ran it).

    The report then does not count it as served and says why in its notes.
    """
    state = _state_of(call.run)
    session = state.session if state is not None else None
    if call.replay is None or not isinstance(session, Replay):
        return
    with session._lock:
        session.served -= 1
        if call.replay.result_type is not None:  # it was not served as its JSON form after all
            stale = session._type_note(call.replay)
            if stale in session.notes:
                session.notes.remove(stale)
        session.notes.append(
            f"step {call.step_id} ({call.name}) matched the recording but was not served: {why}"
        )


__all__ = [
    "CallRef",
    "Divergence",
    "RecordedOutcome",
    "RecordedToolError",
    "Recording",
    "Replay",
    "ReplayDivergence",
    "ReplayError",
    "ReplayReport",
    "SnapshotUnavailable",
    "UnrecordedToolCall",
    "is_replayed",
    "load",
    "not_compared",
    "recorded",
    "replay",
    "serve",
    "unserved",
]
