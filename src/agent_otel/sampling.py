"""The application's sampler decides what is exported, never what agent-otel sees.

An application that samples its traces (``ParentBased(TraceIdRatioBased(0.1))``, ``ALWAYS_OFF``,
``OTEL_TRACES_SAMPLER``) gets spans that are not recording for the traces it drops, and span processors
never see those: the GenAI span bridge (:mod:`agent_otel.bridge`) missed nine framework runs in ten, with
their stops, usage, metrics and store rows. agent-otel's own runs are counted whatever the sampler says
(their metrics and events do not come from spans), and a bridged run must be too.

:class:`RecordForRuns` wraps the provider's sampler: where it drops a span the bridge needs (a GenAI
span, by its operation, or any span under a span bound to a run), the span is recorded but still not
sampled (``RECORD_ONLY``). Every exporter's processor (the SDK's batch and simple ones, agent-otel's)
exports only sampled spans, so what leaves the process is exactly what the application's sampler kept,
and a dropped trace stays dropped as a whole (its children, parent-based, are not sampled either). The
cost is a recorded span object for such spans of dropped traces, never sent.

Only agent-otel's processors are given such a span (:func:`hide_recorded_for_runs`): an application's
own processor that does not check the sampled flag (one that counts, enriches or forwards every span it
is given) would otherwise see spans that, without agent-otel, were never recorded. The provider's
processor list (the SDK's synchronous or concurrent one) learns which spans those are from the sampler,
on the thread that starts the span, between the sampler's decision and the processors' ``on_start``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from agent_otel import native, span_attributes
from agent_otel.span_attributes import handover
from agent_otel.steps import context_binding

span_attributes.enable()


class RecordForRuns(Sampler):
    """The application's sampler, except that spans agent-otel's runs need are recorded, not dropped."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        forced = (
            result.decision is Decision.DROP
            and native.enabled()
            and _needed(parent_context, name, attributes)
        )
        _starting.forced = forced  # read by the provider's processor list as the span starts
        if forced:
            # A dropping sampler's result holds no attributes, and the SDK gives the span only the
            # result's: the bridge then read a framework's run without the name, model and conversation
            # it was started with (stored and counted as agent "agent"). The span's own come first.
            given = {**attributes, **result.attributes} if attributes else result.attributes
            return SamplingResult(Decision.RECORD_ONLY, given, result.trace_state)
        return result

    def get_description(self) -> str:
        return self.sampler.get_description()

    def __getattr__(self, name: str) -> Any:
        # What the application reads of its sampler (a ratio's ``rate``) reads as before.
        if name == "sampler":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.sampler, name)


class HandOver(Sampler):
    """The sampler of agent-otel's own tracer where the application's is made of the SDK's samplers
    (:func:`handing_over`): it samples as the application's does, and takes the attributes
    agent_otel.span_attributes hands over out of the result, for the processor list to put on the span
    before its processors see it, so that the span's constructor does not clean them again."""

    hands_over = True  # what agent_otel.span_attributes.start_span looks for

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if attributes is not None and attributes is handover.given:
            handover.given = None
            if result.decision is not Decision.DROP:
                # The SDK's samplers make a new result per call, holding exactly these attributes.
                handover.placing = attributes
                result.attributes = _NO_ATTRIBUTES
        return result

    def get_description(self) -> str:
        return self.sampler.get_description()

    def __getattr__(self, name: str) -> Any:
        if name == "sampler":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.sampler, name)


def handing_over(sampler: Any) -> Any:
    """``sampler``, wrapped in :class:`HandOver` when that is exact (the SDK's samplers only)."""
    return HandOver(sampler) if _echoes(sampler) else sampler


_NO_ATTRIBUTES: Any = SamplingResult(Decision.DROP).attributes  # an empty read-only mapping
_ECHOING = (StaticSampler.should_sample, TraceIdRatioBased.should_sample)
_PARENT_BASED_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def _echoes(sampler: Any, depth: int = 0) -> bool:
    """Whether ``sampler`` is made of the SDK's samplers only (their own ``should_sample``, not a
    subclass's): a decision that does not depend on the attributes, and, when it records, a new result
    whose attributes are exactly those given (the SDK's span constructor then cleans them)."""
    method = getattr(type(sampler), "should_sample", None)
    if method in _ECHOING:
        return True
    if method is ParentBased.should_sample and depth < 4:
        try:
            return all(_echoes(getattr(sampler, name), depth + 1) for name in _PARENT_BASED_DELEGATES)
        except AttributeError:  # another SDK layout
            return False
    return False


def _needed(parent_context: Context | None, name: str, attributes: Attributes) -> bool:
    if context_binding(parent_context) is not None:
        return True  # in a run: the bridge binds it (and may find it a step when it ends)
    operation = (attributes or {}).get("gen_ai.operation.name")
    if isinstance(operation, str):
        return True
    first = name.split(" ", 1)[0] if isinstance(name, str) else ""
    return first in native.OPERATIONS or first in native.MULTI_AGENT_OPERATIONS


def keep_runs_recorded(provider: Any) -> None:
    """Wrap ``provider``'s sampler (once), for the tracers it hands out from now on and those it has."""
    sampler = getattr(provider, "sampler", None)
    if sampler is None or isinstance(sampler, RecordForRuns):
        return
    hide_recorded_for_runs(provider)
    wrapped = RecordForRuns(sampler)
    try:
        provider.sampler = wrapped
    except (AttributeError, TypeError):  # not the SDK's provider: its sampling stays as it is
        return
    _wrap_assigned(provider)
    # Tracers already handed out (a module's `tracer = trace.get_tracer(__name__)`) hold the sampler
    # themselves; the SDK keeps them in a private dict.
    with contextlib.suppress(AttributeError, TypeError, RuntimeError):
        for tracer in list(provider._tracers.values()):
            if getattr(tracer, "sampler", None) is sampler:
                tracer.sampler = wrapped


def _get_sampler(provider: Any) -> Any:
    return provider.__dict__["sampler"]


def _set_sampler(provider: Any, sampler: Any) -> None:
    provider.__dict__["sampler"] = sampler if isinstance(sampler, RecordForRuns) else RecordForRuns(sampler)


_WRAPPING: dict[type, type] = {}


def _wrap_assigned(provider: Any) -> None:
    """Wrap a sampler the application (or a framework it gives the provider to) assigns to
    ``provider.sampler`` after setup() as well: it replaced the wrapper, and the bridge missed the runs of
    the traces it dropped. The provider's class is switched in place to a subclass that differs only in
    ``sampler`` being a property whose setter wraps, as the processor list's is (the value stays in the
    instance's dict, where the SDK keeps it). A class that has a ``sampler`` of its own is left alone.
    As without agent-otel, tracers handed out before the assignment keep the sampler they were given."""
    cls = type(provider)
    if any("sampler" in vars(k) for k in cls.__mro__) or "sampler" not in vars(provider):
        return
    sub = _WRAPPING.get(cls)
    if sub is None:
        namespace = {"sampler": property(_get_sampler, _set_sampler), "__module__": cls.__module__}
        sub = _WRAPPING[cls] = type(cls.__name__, (cls,), namespace)
        sub.__qualname__ = cls.__qualname__
    with contextlib.suppress(TypeError):
        provider.__class__ = sub


class _Starting(threading.local):
    #: The span the sampler just decided to record for runs is starting on this thread.
    forced = False
    #: The context of the span of that kind ending on this thread now (between _on_ending and on_end).
    ending: Any = None


_starting = _Starting()
_HIDDEN = "_agent_otel_recorded_for_runs"
_hid_any = False  # until a span is hidden, ends cost one global read more


def _hide(span: Any) -> bool:
    """Mark ``span`` as recorded for runs only (it is, when not sampled: the sampler's decision)."""
    global _hid_any
    if span.get_span_context().trace_flags.sampled:
        return False
    try:
        setattr(span, _HIDDEN, True)
    except (AttributeError, TypeError):
        return False
    _hid_any = True
    return True


def _own(holder: Any) -> tuple[Any, ...]:
    """The processors of ``holder`` (a processor list) that ask for spans recorded only for runs; kept
    until its processors change."""
    processors = holder._span_processors
    cached = holder.__dict__.get("_agent_otel_own")
    if cached is None or cached[0] is not processors:
        cached = (processors, tuple(p for p in processors if getattr(p, "sees_recorded_for_runs", False)))
        holder._agent_otel_own = cached
    return cached[1]  # type: ignore[no-any-return]


def _hidden_end(span: Any) -> bool:
    """Whether ``span`` (a ReadableSpan) is the hidden span whose ``_on_ending`` came just before (the SDK
    gives it the span's own context object)."""
    ending, _starting.ending = _starting.ending, None
    return span.get_span_context() is ending


#: A span processor's hook marked with this attribute (set to True) does nothing: the processor list skips
#: it (the bridge's ``on_end``; the SDK's base class's hooks, which agent-otel's exporting processor
#: inherits for a span's start and ending, are known).
DOES_NOTHING = "_agent_otel_does_nothing"
_BASE_HOOKS = {
    "on_start": SpanProcessor.on_start,
    "_on_ending": SpanProcessor._on_ending,
    "on_end": SpanProcessor.on_end,
}


def _does_something(processor: Any, hook: str) -> bool:
    """Whether calling ``processor``'s ``hook`` may do anything: not the SDK's base class's empty hook,
    nor one marked :data:`DOES_NOTHING`. A hook an instance was given of its own is called; one assigned
    after the processor was added, over an empty hook of its class, is seen once the processors change."""
    method = getattr(processor, hook, None)
    function = getattr(method, "__func__", None)
    if function is None or getattr(method, "__self__", None) is not processor:
        return True  # not a method of the processor's class: an instance attribute, a callable object
    return function is not _BASE_HOOKS[hook] and getattr(function, DOES_NOTHING, False) is not True


def _calling(holder: Any) -> tuple[Any, ...]:
    """``(processors, with on_start, with _on_ending, with on_end)`` of ``holder`` (a processor list): the
    processors whose hook does something, for each hook, kept in ``holder._calls`` until its processors
    change. An empty hook costs a Python call per span and processor (an exporter's processor has nothing
    to do at a span's start, the bridge nothing at its end): 33 calls in a run of benchmarks/overhead.py."""
    processors = holder._span_processors
    calls = holder._calls = (
        processors,
        *(tuple(p for p in processors if _does_something(p, hook)) for hook in _BASE_HOOKS),
    )
    return calls


class _SynchronousHiding(SynchronousMultiSpanProcessor):
    """The SDK's processor list, except that a span recorded only for agent-otel's runs goes to the
    processors that ask for it (``sees_recorded_for_runs``: the bridge), not to the application's, and that
    a hook that does nothing is not called (:func:`_calling`). The loops are the base class's, inline:
    this runs for every span of the provider."""

    places_handed_over = True  # agent_otel.span_attributes: on_start puts them on the span first
    #: What :func:`_calling` worked out for the processors it was given (none yet: it is asked at once).
    _calls: tuple[Any, ...] = (None,)

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        placing = handover.placing
        if placing is not None:
            handover.placing = None
            span_attributes.place(span, placing)
        if _starting.forced:
            _starting.forced = False
            if _hide(span):
                for processor in _own(self):
                    processor.on_start(span, parent_context=parent_context)
                return
        calls = self._calls
        if calls[0] is not self._span_processors:
            calls = _calling(self)
        for processor in calls[1]:
            processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        if _hid_any and getattr(span, _HIDDEN, False):
            _starting.ending = span.get_span_context()
            for processor in _own(self):
                processor._on_ending(span)
            return
        calls = self._calls
        if calls[0] is not self._span_processors:
            calls = _calling(self)
        for processor in calls[2]:
            processor._on_ending(span)

    def on_end(self, span: Any) -> None:
        if _starting.ending is not None and _hidden_end(span):
            for processor in _own(self):
                processor.on_end(span)
            return
        calls = self._calls
        if calls[0] is not self._span_processors:
            calls = _calling(self)
        for processor in calls[3]:
            processor.on_end(span)


class _ConcurrentHiding(ConcurrentMultiSpanProcessor):
    """The same for the SDK's concurrent processor list (an application's choice): a hidden span's own
    processors are called on the calling thread."""

    places_handed_over = True

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        placing = handover.placing
        if placing is not None:
            handover.placing = None
            span_attributes.place(span, placing)
        if _starting.forced:
            _starting.forced = False
            if _hide(span):
                for processor in _own(self):
                    processor.on_start(span, parent_context=parent_context)
                return
        super().on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        if _hid_any and getattr(span, _HIDDEN, False):
            _starting.ending = span.get_span_context()
            for processor in _own(self):
                processor._on_ending(span)
            return
        super()._on_ending(span)

    def on_end(self, span: Any) -> None:
        if _starting.ending is not None and _hidden_end(span):
            for processor in _own(self):
                processor.on_end(span)
            return
        super().on_end(span)


_HIDING: dict[type, type] = {
    SynchronousMultiSpanProcessor: _SynchronousHiding,
    ConcurrentMultiSpanProcessor: _ConcurrentHiding,
}


def hide_recorded_for_runs(provider: Any) -> None:
    """Make ``provider``'s processor list give the spans :class:`RecordForRuns` records only to agent-otel's
    processors. The list is the one object every tracer of the provider holds (those handed out already
    too), so its class is switched in place to a subclass that differs only there; a list of another
    class (not the SDK's) is left as it is, and its processors see those spans."""
    active = getattr(provider, "_active_span_processor", None)
    hiding = _HIDING.get(type(active))
    if hiding is not None:
        with contextlib.suppress(TypeError):
            active.__class__ = hiding
