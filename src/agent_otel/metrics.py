"""The metric instruments of DESIGN.md, created once per meter and recorded from the run and tool paths.

Histograms are synchronous OpenTelemetry instruments so that they carry trace exemplars (the link from a
latency spike in Grafana to the run that caused it). Counters are observable instruments over a small
locked dict: a counter increment then costs a dict update instead of the SDK's ~5 us measurement path,
and since the SDK reports counters cumulatively anyway nothing is lost. This is the largest single saving
on the per-tool-call path measured in benchmarks/overhead.py.

Two things keep short-lived processes (a CLI, a batch job, a serverless function) visible in Prometheus,
whose rate() and increase() ignore a series' first sample: an agent's first run creates its stop series
at zero for every stop reason (a closed set), so a zero, not a stop, is each one's first sample
(:meth:`Metrics.run_started`); and every series is exported as soon as it exists (:meth:`_new_series`), so
a histogram's first sample holds one measurement, not an export interval's worth.

Exemplars point only at traces the bundled collector keeps (collector/config.yaml, tail sampling):
runs that did not complete, failed tool calls, and "exemplar runs", at most one per agent per
``EXEMPLAR_INTERVAL_S``, marked ``agent.exemplar=true`` on their run span so the collector keeps them.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agent_otel import conventions as c
from agent_otel import green
from agent_otel.events import after_fork_in_child
from agent_otel.hashing import safe_text
from agent_otel.histograms import Pending, Series, forget_series
from agent_otel.stop import StopReason

# At most one exemplar run per agent this often: bounds the traces kept only because an exemplar links
# to them (one per agent per second at most) while leaving a dot every export interval.
EXEMPLAR_INTERVAL_S = 1.0
_MAX_EXEMPLAR_RUNS = 4096  # exemplar runs remembered (trace ids) until their last measurement
_MAX_AGENTS = 1024  # agents whose zero series and exemplar clock are kept


def _exemplar(event: dict[str, Any]) -> Context | None:
    """A context holding the event's span, so the histogram's exemplar links to the right trace.

    Without a span (telemetry disabled, or an unsampled span) there is none and no exemplar is taken:
    an exemplar must never point at a trace that was not kept.
    """
    if not event.get("_sampled"):
        return None
    span_context = SpanContext(
        int(event["trace_id"], 16),
        int(event["span_id"], 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context), Context())


# Constants the per-event code compares with (a global's look-up, not a module attribute's; the plain
# string of StopReason.COMPLETED, which a str compares equal to without the enum's __eq__).
_ERROR = c.STATUS_ERROR
_CANCELLED = c.STATUS_CANCELLED
_CHAT = c.OP_CHAT
_OPERATION = c.GEN_AI_OPERATION_NAME
_COMPLETED = StopReason.COMPLETED.value
_INPUT, _OUTPUT = "input_tokens", "output_tokens"
_MS_BOUNDS = c.M_TOOL_DURATION.buckets
_TOKEN_BOUNDS = c.M_TOKENS_PER_REQUEST.buckets
_TOOL_GEN_AI_KEYS = (c.GEN_AI_OPERATION_NAME, c.GEN_AI_AGENT_NAME, c.ERROR_TYPE)
_TOOL_KEYS = ("agent", "tool", "status")
# How long the event thread holds further measurements for a new series' first collection (_new_series).
NEW_SERIES_WAIT_S = 0.5
_MAX_SERIES = 10_000  # histogram series whose attributes and SDK aggregations are kept (see _series)


class MetricsSink:
    """Turns unified events into the per-call metrics on the event pipeline's thread.

    Recording the histograms here keeps their cost off the agent's thread; the counters of a batch are
    added up first and applied once per series (one lock instead of one per event), and so are the
    histogram measurements that take the direct path (agent_otel.histograms.Pending).
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def write(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        # The SDK's histogram reservoir keeps the last exemplar offered per bucket, so only the last
        # event per (series, bucket) in a batch needs the span context built for it (~1 us each).
        metrics = self.metrics
        events = [
            payload
            for rtype, payload in batch
            if rtype == "event" and not (metrics._replays and metrics.excluded(payload["run_id"]))
        ]
        last: dict[tuple[Any, ...], int] = {}
        for i, event in enumerate(events):
            if metrics.exemplar_eligible(event):
                last[metrics.exemplar_key(event)] = i
        keep = set(last.values())
        record = self.metrics.record_event
        counts = ToolCounts()
        pending = Pending()
        try:
            for i, event in enumerate(events):
                record(event, i in keep, counts, pending)
        finally:  # what was recorded before a failure is recorded, as without the batching
            pending.apply()
        counts.apply(metrics)

    def close(self) -> None:
        pass


# Label sets a counter keeps; the counts of further ones go to one overflow series. See CounterSet.
MAX_COUNTER_SERIES = 10_000
_OVERFLOW = ("otel.metric.overflow",)  # the overflow series' key (no label tuple has one element of this)
_OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": True}


def _attributes(names: tuple[str, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    """A series' attributes. A label value with a lone surrogate (an agent or tool named from
    ``os.fsdecode`` of a file name that is not UTF-8) becomes its backslash escape, as in the run store:
    the OTLP encoder left such a label out (the series then summed into another, agent-less one) and
    logged the error with its traceback at every export."""
    return {
        name: safe_text(value) if isinstance(value, str) and not value.isascii() else value
        for name, value in zip(names, values, strict=True)
    }


class CounterSet:
    """Cumulative counts keyed by label tuples, observed by an ObservableCounter at collection time.

    Bounded like the SDK's own instruments: label values that come from outside (the tools an MCP server
    lists, agent names holding a user id) made the table grow with every new name for the life of the
    process, and each collection handed all of them to the SDK again (which exports 2,000 per instrument
    and sums the rest into its overflow series anyway). Past MAX_COUNTER_SERIES label sets, the counts go
    to the series the OpenTelemetry SDK uses for its own overflow, ``otel.metric.overflow=true``, so the
    totals stay exact."""

    __slots__ = ("_counts", "_labels", "_lock")

    def __init__(self, labels: tuple[str, ...]) -> None:
        self._labels = labels
        self._counts: dict[tuple[Any, ...], float] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple[Any, ...], amount: float = 1) -> None:
        counts = self._counts
        with self._lock:
            if key not in counts and len(counts) >= MAX_COUNTER_SERIES:
                key = _OVERFLOW
            counts[key] = counts.get(key, 0) + amount

    def add_all(self, amounts: dict[tuple[Any, ...], float]) -> None:
        counts = self._counts
        with self._lock:
            for key, amount in amounts.items():
                if key not in counts and len(counts) >= MAX_COUNTER_SERIES:
                    key = _OVERFLOW
                counts[key] = counts.get(key, 0) + amount

    def value(self, key: tuple[Any, ...]) -> float:
        return self._counts.get(key, 0)

    def forget(self) -> None:
        """Start again from nothing (a forked child: see Metrics._after_fork)."""
        self._counts = {}
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._counts.items())
        labels = self._labels
        return [
            Observation(v, _OVERFLOW_ATTRIBUTES if k is _OVERFLOW else _attributes(labels, k))
            for k, v in items
        ]


class ToolCounts:
    """The tool counters' increments of a batch of tool results, counted by (agent, tool, status, error
    type, retries) and applied to the three CounterSets at the end of the batch, one lock each."""

    __slots__ = ("_results",)

    def __init__(self) -> None:
        self._results: dict[tuple[tuple[str, str, str, str | None], int], int] = {}

    def add(self, key: tuple[str, str, str, str | None], retries: int) -> None:
        results = self._results
        counted = (key, retries)
        results[counted] = results.get(counted, 0) + 1

    def apply(self, metrics: Metrics) -> None:
        invocations: dict[tuple[Any, ...], float] = {}
        failed: dict[tuple[Any, ...], float] = {}
        retried: dict[tuple[Any, ...], float] = {}
        for ((agent, tool, status, error), retries), n in self._results.items():
            key = (agent, tool, status, error or "")
            invocations[key] = invocations.get(key, 0) + n
            if status == c.STATUS_ERROR:  # the last attempt; retried ones come from failed_attempt()
                key = (agent, tool, error or "")
                failed[key] = failed.get(key, 0) + n
            # every call adds, 0 for a call without retries: the series then starts at 0, and the first
            # retry is a change rate() sees
            retried[agent, tool] = retried.get((agent, tool), 0) + n * retries
        self._results.clear()
        metrics.tool_invocations.add_all(invocations)
        metrics.failed_attempts.add_all(failed)
        metrics.tool_retries.add_all(retried)


class Metrics:
    """Instruments bound to one meter; ``enabled`` flags come from ``metrics.track`` / ``metrics.tools``.

    Use :meth:`for_meter`: the SDK keeps the first instrument registered under a name on a meter, so a
    second ``setup()`` against the same provider must reuse these instruments and counters rather than
    create new ones whose callbacks the SDK would silently ignore.
    """

    _by_meter: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()
    _by_meter_lock = threading.Lock()

    @classmethod
    def for_meter(
        cls,
        meter: Meter,
        track: Iterable[str] = (),
        tools: bool = True,
        dropped: Callable[[], dict[tuple[str, str], int]] | None = None,
    ) -> Metrics:
        with cls._by_meter_lock:
            try:
                existing = cls._by_meter.get(meter)
            except TypeError:  # not weak-referenceable: never cached
                existing = None
            if existing is None:
                existing = cls._bound_through_proxy(meter)
            if existing is not None:
                existing.configure(track, tools, dropped)
                return existing
            metrics = cls(meter, track, tools, dropped)
            with contextlib.suppress(TypeError):
                cls._by_meter[meter] = metrics
            return metrics

    @classmethod
    def _bound_through_proxy(cls, meter: Meter) -> Metrics | None:
        """The Metrics that runs made before ``setup()`` created on the API's proxy meter, if that proxy now
        hands its instruments to ``meter``. Its observable counters are the ones the SDK has under their
        names: a second Metrics registering the same names would get those back with the first one's
        callbacks, and its own counts (every stop of the process after setup()) would never be exported.
        So it is reused, its histograms taken straight from ``meter``."""
        for proxy, metrics in list(cls._by_meter.items()):
            if proxy is not meter and getattr(proxy, "_real_meter", None) is meter:
                metrics._histograms(meter)
                with contextlib.suppress(TypeError):
                    cls._by_meter[meter] = metrics
                return metrics
        return None

    def __init__(
        self,
        meter: Meter,
        track: Iterable[str] = (),
        tools: bool = True,
        dropped: Callable[[], dict[tuple[str, str], int]] | None = None,
    ) -> None:
        self.configure(track, tools, dropped)
        self._series_cache: dict[tuple[Any, tuple[Any, ...]], Series] = {}
        # (agent, tool, status, error type) -> a tool result's series; a request's GenAI attributes (as
        # recorded on its event) and agent -> its series (_gen_ai)
        self._tool_series: dict[tuple[str, str, str, str | None], tuple[Series, Series]] = {}
        self._genai_series: dict[tuple[Any, ...], tuple[Series, tuple[Series, Series]]] = {}
        # Replay runs whose tool and LLM events must not feed the traffic metrics (bounded: a replay's
        # events arrive within seconds of its start, long before 4096 later replays push it out).
        self._replays: OrderedDict[str, None] = OrderedDict()
        self._replays_lock = threading.Lock()
        # Agents seen in this process -> when their next exemplar run may start (monotonic seconds);
        # trace ids of exemplar runs, in the events' form (32 hex digits: one set look-up per event, not a
        # parse of its id). See run_started().
        self._agents: dict[str, float] = {}
        self._exemplar_runs: OrderedDict[str, None] = OrderedDict()
        self._runs_lock = threading.Lock()
        # Set by setup(): collect and export now. Called on a thread of our own when series appear (see
        # run_started and _new_series), coalesced so that a burst of new series costs one or two exports.
        self.export_soon: Callable[[], None] | None = None
        self._export_lock = threading.Lock()
        self._exporting = False
        self._export_again = False
        # Collections of the OTLP reader so far (see collected()), for the event thread's wait on a new
        # series; passes of _export_loop that collected nothing count too, so that nobody waits for them.
        self._collections = 0
        self._collected_cond = threading.Condition()
        # Series created since their first collection (id -> series), and the collection count that
        # exports them all: a second measurement into one of them waits for it (see _settle).
        self._fresh: dict[int, Series] = {}
        self._fresh_target = 0
        self._run_series: set[tuple[str, str]] = set()
        self._histograms(meter)

        self.stops = CounterSet(c.M_STOP.labels)
        self.tool_invocations = CounterSet(c.M_TOOL_INVOCATIONS.labels)
        self.tool_retries = CounterSet(c.M_TOOL_RETRIES.labels)
        self.failed_attempts = CounterSet(c.M_TOOL_FAILED_ATTEMPTS.labels)
        self.guard_triggers = CounterSet(c.M_GUARD_TRIGGERS.labels)
        self._counter_sets = (
            (c.M_STOP, self.stops),
            (c.M_TOOL_INVOCATIONS, self.tool_invocations),
            (c.M_TOOL_RETRIES, self.tool_retries),
            (c.M_TOOL_FAILED_ATTEMPTS, self.failed_attempts),
            (c.M_GUARD_TRIGGERS, self.guard_triggers),
        )
        self._counters = [
            meter.create_observable_counter(
                spec.name, callbacks=[counts.observe], unit=spec.unit, description=spec.description
            )
            for spec, counts in self._counter_sets
        ]
        self._counters.append(
            meter.create_observable_counter(
                c.M_DROPPED.name,
                callbacks=[self._observe_dropped],
                unit=c.M_DROPPED.unit,
                description=c.M_DROPPED.description,
            )
        )
        after_fork_in_child(self, "_after_fork")
        green.after_patch(self._after_patch)

    def _after_fork(self) -> None:
        """A forked child (a pre-fork server's worker, a multiprocessing fork) is a process of its own: the
        SDK gives it a new service.instance.id, so its series are new ones in Prometheus and must hold its
        own runs only. It inherited the parent's counts and the SDK's histogram aggregations, so every
        worker reported the parent's runs again as its own (a parent's 5 runs, then workers of 2 and 3
        runs: Prometheus counted 5 + 7 + 8). Everything this process had seen is forgotten: the series
        start empty, and an agent's first run in the child creates its zero series again."""
        try:
            for _, counts in self._counter_sets:
                counts.forget()
            forget_series(
                [
                    *self._counters,
                    self.tool_calls,
                    self.run_latency,
                    self.tokens_per_request,
                    self.spend_per_run,
                    self.tool_duration,
                    self.gen_ai_token_usage,
                    self.gen_ai_duration,
                ]
            )
            self._series_cache.clear()
            self._tool_series.clear()
            self._genai_series.clear()
            self._agents.clear()
            self._exemplar_runs.clear()
            self._run_series.clear()
            self._fresh.clear()
            self._renew_locks()  # another thread of the parent may have held them; no export thread runs here
            self._exporting = self._export_again = False
        except Exception:  # telemetry never breaks the child
            pass

    def _renew_locks(self) -> None:
        """New locks: in a forked child, and in one gevent patched after its fork (agent_otel.green)."""
        self._runs_lock = threading.Lock()
        self._replays_lock = threading.Lock()
        self._export_lock = threading.Lock()
        self._collected_cond = threading.Condition()

    def _after_patch(self) -> None:
        if not self._exporting:  # (a fork leaves no export thread; one started since keeps what it has)
            self._renew_locks()

    def _histograms(self, meter: Meter) -> None:
        """Create (or, from the meter that now serves them, take again) the histograms; the series looked
        up on the previous instruments are forgotten."""

        def hist(spec: c.MetricSpec) -> Any:
            return meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=list(spec.buckets),
            )

        self.tool_calls = hist(c.M_TOOL_CALLS)
        self.run_latency = hist(c.M_RUN_LATENCY)
        self.tokens_per_request = hist(c.M_TOKENS_PER_REQUEST)
        self.spend_per_run = hist(c.M_SPEND_PER_RUN)
        self.tool_duration = hist(c.M_TOOL_DURATION)
        self.gen_ai_token_usage = hist(c.M_GEN_AI_TOKEN_USAGE)
        self.gen_ai_duration = hist(c.M_GEN_AI_OPERATION_DURATION)
        self._series_cache.clear()
        self._tool_series.clear()
        self._genai_series.clear()

    def configure(
        self,
        track: Iterable[str],
        tools: bool,
        dropped: Callable[[], dict[tuple[str, str], int]] | None,
    ) -> None:
        track = set(track)
        self.tools_enabled = tools
        self.track_tool_calls = "tool_calls_per_run" in track
        self.track_latency = "latency_p95" in track
        self.track_tokens = "tokens_per_request" in track
        self.track_spend = "spend_per_run" in track
        self.track_stop = "stop_reason" in track
        self._dropped = dropped

    def _observe_dropped(self, _options: CallbackOptions) -> Iterable[Observation]:
        dropped = self._dropped
        if dropped is None:
            return []
        return [Observation(n, {"signal": s, "reason": r}) for (s, r), n in dropped().items()]

    # --- per tool call and LLM request: fed from unified events by MetricsSink ---------------------

    def exemplar_key(self, event: dict[str, Any]) -> tuple[Any, ...]:
        kind = event["kind"]
        if kind == "tool_result":
            value = event["duration_ms"] or 0
            return (kind, event["agent"], event["tool"], event["status"], bisect_left(_MS_BOUNDS, value))
        if kind == "llm_result":
            usage = event["usage"] or {}
            value = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
            return (kind, event["agent"], usage.get("model"), bisect_left(_TOKEN_BOUNDS, value))
        return (kind,)

    def _series(
        self, histogram: Any, values: tuple[Any, ...], names: tuple[str, ...], export: bool = True
    ) -> Series:
        """The histogram's series for these label values, kept (up to _MAX_SERIES) so that its attributes
        and the SDK's aggregations are looked up once (see agent_otel.histograms). ``export``: a new
        series asks for an export now, and a second measurement into it waits for that (see _settle)."""
        series = self._series_cache.get((histogram, values))
        if series is None:
            cached = len(self._series_cache) < _MAX_SERIES
            series = Series(histogram, _attributes(names, values), look_up=cached)
            if cached:
                self._series_cache[(histogram, values)] = series
                if export:
                    self._fresh_series(series)
        elif self._fresh and id(series) in self._fresh:
            self._settle()
        return series

    def _fresh_series(self, series: Series) -> None:
        target = self._new_series()
        if target is not None:
            self._fresh[id(series)] = series
            self._fresh_target = max(self._fresh_target, target)

    def _settle(self) -> None:
        """A series created since the last collection is about to get its second measurement: wait (at
        most NEW_SERIES_WAIT_S) until the OTLP reader has collected its first, so that its first sample
        in Prometheus holds one measurement. rate() ignores a series' first sample; on a loaded machine
        the export thread used to run only after dozens of a short-lived process's runs had gone into
        the series, and the seed's dashboard queries missed all of them. One wait covers every series
        created in the meantime (an agent's first run with many tools costs one collection, not one per
        tool). Only the event thread records histograms, so no agent's thread ever waits here."""
        target = self._fresh_target
        with self._collected_cond:
            self._collected_cond.wait_for(lambda: self._collections >= target, NEW_SERIES_WAIT_S)
        self._fresh.clear()

    def _new_series(self) -> int | None:
        """Ask for an export now, on a thread of our own (coalesced); None without OTLP export. Returns
        the collection count at which what was recorded so far has been collected."""
        if self.export_soon is None:
            return None
        with self._export_lock:
            # a pass already under way may have collected before this value: the next one counts
            target = self._collections + (2 if self._exporting else 1)
            self._export_again = True
            start = not self._exporting
            self._exporting = True
        if start:
            try:
                threading.Thread(target=self._export_loop, name="agent-otel-export-soon", daemon=True).start()
            except RuntimeError:  # at interpreter exit Python 3.12 starts no thread: the last export has it
                with self._export_lock:
                    self._exporting = False
                return None  # (raising, it cost the metrics of the whole batch: 0 of 20 runs counted)
        return target

    def collected(self) -> None:
        """The OTLP reader collected (called by its exporter with each batch): new series are out."""
        with self._collected_cond:
            self._collections += 1
            self._collected_cond.notify_all()

    def _export_loop(self) -> None:
        while True:
            with self._export_lock:
                export = self.export_soon
                if not self._export_again or export is None:
                    self._exporting = False
                    return
                self._export_again = False
            before = self._collections
            with contextlib.suppress(Exception):  # best effort: the periodic export follows anyway
                export()
            if self._collections == before:  # nothing collected (shut down, failed): release waiters
                self.collected()

    def exclude_run(self, run_id: str) -> None:
        """A replay: its events are the recording's traffic again, not new traffic."""
        with self._replays_lock:
            self._replays[run_id] = None
            if len(self._replays) > 4096:
                self._replays.popitem(last=False)

    def excluded(self, run_id: str) -> bool:
        return run_id in self._replays

    def record_event(
        self,
        event: dict[str, Any],
        exemplar: bool = True,
        counts: ToolCounts | None = None,
        pending: Pending | None = None,
    ) -> None:
        """Record one unified event's metrics; ``counts`` collects the tool counters' increments and
        ``pending`` the histogram measurements (the caller applies both), without them they are recorded
        at once."""
        kind = event["kind"]
        if kind == "tool_result":
            if not self.tools_enabled:
                return
            key = (event["agent"], event["tool"], event["status"], event["error"])
            if counts is None:
                own = ToolCounts()
                own.add(key, (event.get("attempts") or 1) - 1)
                own.apply(self)
            else:
                counts.add(key, (event.get("attempts") or 1) - 1)
            series = self._tool_series.get(key)
            if series is None:
                series = self._tool_series_of(key)
            elif self._fresh and id(series[0]) in self._fresh:
                self._settle()
            duration_ms = event["duration_ms"]
            series[0].record(duration_ms, _exemplar(event) if exemplar else None, pending)
            series[1].record(duration_ms / 1000.0, None, pending)
            return
        if kind == "stop":
            usage = event["usage"] or {}
            self.record_run(
                event["agent"],
                event["stop_reason"],
                event["duration_ms"],
                usage.get("tool_calls", 0),
                usage.get("cost_usd", 0.0),
                _exemplar(event) if self._run_exemplar_kept(event) else None,
                pending,
            )
            return
        if kind == "llm_result":
            self._gen_ai(event, event.get("_genai"), pending)
        if kind == "llm_result" and self.track_tokens:
            usage = event["usage"] or {}
            if "input_tokens" in usage or "output_tokens" in usage:  # absent: usage unknown, not 0
                tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
                self._series(
                    self.tokens_per_request,
                    (event["agent"], usage.get("model", "unknown")),
                    ("agent", "model"),
                ).record(tokens, _exemplar(event) if exemplar else None, pending)

    def _gen_ai(
        self, event: dict[str, Any], genai: dict[str, Any] | None, pending: Pending | None = None
    ) -> None:
        """The GenAI client metrics (gen_ai.client.operation.duration, gen_ai.client.token.usage) of one
        chat request, with gen_ai.agent.name = the run's agent (tool executions: record_event)."""
        if not genai or genai.get("skip"):
            return
        try:
            key = (tuple(genai.items()), event["agent"])
            series = self._genai_series.get(key)
        except TypeError:  # an unhashable value: not cached
            key, series = None, None
        if series is None:
            series = self._genai_series_of(genai, event["agent"])
            if key is not None and len(self._genai_series) < _MAX_SERIES:
                self._genai_series[key] = series
        duration, (input_tokens, output_tokens) = series
        duration_ms = event.get("duration_ms")
        status = event.get("status")
        # A cancelled request (its task, Ctrl-C) is neither a provider error nor a completed request's
        # latency: it stays out of the duration, whose error.type makes the provider's error rate.
        if duration_ms is not None and status != _CANCELLED:
            duration.record(duration_ms / 1000.0, None, pending)
        if genai.get(_OPERATION) != _CHAT or status == _ERROR:
            return
        usage = event.get("usage") or {}
        if _INPUT not in usage and _OUTPUT not in usage:
            return  # no usage reported (a stream without include_usage): unknown, not a request of 0
        input_tokens.record(usage.get(_INPUT) or 0, None, pending)
        output_tokens.record(usage.get(_OUTPUT) or 0, None, pending)

    def _tool_series_of(self, key: tuple[str, str, str, str | None]) -> tuple[Series, Series]:
        """A tool result's series: agent.tool.duration_ms, and gen_ai.client.operation.duration."""
        agent, tool, status, error = key
        series = (
            self._series(self.tool_duration, (agent, tool, status), _TOOL_KEYS),
            self._series(self.gen_ai_duration, (c.OP_EXECUTE_TOOL, agent, error), _TOOL_GEN_AI_KEYS)
            if error
            else self._series(self.gen_ai_duration, (c.OP_EXECUTE_TOOL, agent), _TOOL_GEN_AI_KEYS[:2]),
        )
        if len(self._tool_series) < _MAX_SERIES:
            self._tool_series[key] = series
        return series

    def _genai_series_of(self, genai: dict[str, Any], agent: str) -> tuple[Series, tuple[Series, Series]]:
        """A request's GenAI series: operation duration, and token usage by type (input, output)."""
        items = [(k, v) for k, v in genai.items() if k != "skip" and v is not None and v != ""]
        items.append((c.GEN_AI_AGENT_NAME, agent))
        names, values = zip(*items, strict=True)
        duration = self._series(self.gen_ai_duration, values, names, export=False)
        items = [(k, v) for k, v in items if k != c.ERROR_TYPE]
        tokens = []
        for token_type in ("input", "output"):
            names, values = zip(*items, (c.GEN_AI_TOKEN_TYPE, token_type), strict=True)
            tokens.append(self._series(self.gen_ai_token_usage, values, names, export=False))
        return duration, (tokens[0], tokens[1])

    # --- per run: fed from its stop event by MetricsSink, like the above ------------------------------

    def record_run(
        self,
        agent: str,
        stop_reason: str,
        duration_ms: float,
        tool_calls: int,
        cost_usd: float,
        ctx: Context | None,
        pending: Pending | None = None,
    ) -> None:
        """``ctx``: the run span's context for exemplars (None: none; see _run_exemplar_kept); ``pending``:
        see record_event."""
        if self.track_stop:
            self.stops.add((agent, stop_reason))
        if self.track_latency:
            self._series(self.run_latency, (agent, stop_reason), ("agent", "stop_reason")).record(
                duration_ms, ctx, pending
            )
        if self.track_tool_calls:
            self._series(self.tool_calls, (agent,), ("agent",)).record(tool_calls, ctx, pending)
        if self.track_spend:
            self._series(self.spend_per_run, (agent,), ("agent",)).record(cost_usd, ctx, pending)
        series = (agent, stop_reason)
        if series not in self._run_series and len(self._run_series) < 10_000:
            self._run_series.add(series)  # its stop count, even with no histogram tracked
            self._new_series()

    def record_guard(self, agent: str, guard: str) -> None:
        self.guard_triggers.add((agent, guard))

    def failed_attempt(self, agent: str, tool: str, error_type: str, run_id: str) -> None:
        """A tool attempt that failed and is being retried (the final failure counts from its event)."""
        if self.tools_enabled and not (self._replays and self.excluded(run_id)):
            self.failed_attempts.add((agent, tool, error_type))

    # --- a run starts: zero series for short-lived processes, exemplar runs ----------------------------

    def run_started(self, agent: str, span: Any) -> bool:
        """Called as each run starts; True if the run is an exemplar run (mark its span for the collector).

        The agent's first run creates its agent_stop_total series at 0 for every stop reason and asks for
        an export now: a process whose first export would already hold its stops (most runs of a CLI or a
        serverless function end before the first 10 s interval) would otherwise have them ignored by
        rate() and increase(), which count changes between samples, not a series' first value.
        """
        try:
            now = time.monotonic()
            due = self._agents.get(agent)
            if due is not None and now < due:  # the common case, without the lock
                return False
            span_context = span.get_span_context()
            with self._runs_lock:
                due = self._agents.get(agent)
                new = due is None and len(self._agents) < _MAX_AGENTS
                if new:
                    self._agents[agent] = due = 0.0
                exemplar = due is not None and now >= due and span_context.trace_flags.sampled
                if exemplar:
                    self._agents[agent] = now + EXEMPLAR_INTERVAL_S
                    self._exemplar_runs[format(span_context.trace_id, "032x")] = None  # as run.py writes it
                    if len(self._exemplar_runs) > _MAX_EXEMPLAR_RUNS:
                        self._exemplar_runs.popitem(last=False)
            if new and self.track_stop:
                for reason in StopReason:
                    self.stops.add((agent, reason.value), 0)
                self._new_series()
            return exemplar
        except Exception:  # telemetry never stops a run from starting
            return False

    def _run_exemplar_kept(self, event: dict[str, Any]) -> bool:
        """A run's histograms link to its trace only if the collector keeps that trace: a run that did
        not complete, or an exemplar run (checked before building the exemplar's context, ~2 us)."""
        if event["stop_reason"] != _COMPLETED:
            return True
        try:
            return event.get("trace_id") in self._exemplar_runs
        except TypeError:  # not a string: no run of ours
            return False

    def exemplar_eligible(self, event: dict[str, Any]) -> bool:
        """A tool or LLM measurement links to its trace only if the collector keeps that trace: a failed
        tool call (its span's status is ERROR) or a call made by an exemplar run."""
        if not event.get("_sampled"):
            return False
        if event.get("status") == _ERROR:
            return True
        try:
            return event.get("trace_id") in self._exemplar_runs
        except TypeError:  # not a string: no run of ours
            return False
