"""The application's sampler decides what is exported, never what agent-otel sees.

An application that samples its traces (``ParentBased(TraceIdRatioBased(0.1))``, ``ALWAYS_OFF``,
``OTEL_TRACES_SAMPLER``) gets spans that are not recording for the traces it drops, and span processors
never see those: the GenAI span bridge (:mod:`agent_otel.bridge`) missed nine framework runs in ten, with
their stops, usage, metrics and store rows. agent-otel's own runs are counted whatever the sampler says
(their metrics and events do not come from spans), and a bridged run must be too.

:class:`RecordForRuns` wraps the provider's sampler: where it drops a span the bridge needs (a GenAI
span, by its operation, or any span under a span bound to a run), the span is recorded but still not
sampled (``RECORD_ONLY``). Processors see it; every exporter's processor (the SDK's batch and simple
ones, agent-otel's) exports only sampled spans, so what leaves the process is exactly what the
application's sampler kept, and a dropped trace stays dropped as a whole (its children, parent-based, are
not sampled either). The cost is a recorded span object for such spans of dropped traces, never sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from agent_otel import native
from agent_otel.steps import context_binding


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
        if (
            result.decision is Decision.DROP
            and native.enabled()
            and _needed(parent_context, name, attributes)
        ):
            return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return self.sampler.get_description()


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
    wrapped = RecordForRuns(sampler)
    try:
        provider.sampler = wrapped
    except (AttributeError, TypeError):  # not the SDK's provider: its sampling stays as it is
        return
    # Tracers already handed out (a module's `tracer = trace.get_tracer(__name__)`) hold the sampler
    # themselves; the SDK keeps them in a private dict.
    with contextlib.suppress(AttributeError, TypeError, RuntimeError):
        for tracer in list(provider._tracers.values()):
            if getattr(tracer, "sampler", None) is sampler:
                tracer.sampler = wrapped
