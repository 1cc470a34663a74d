"""The process-wide runtime: tracer, instruments, event pipeline, policies and the settings the hot path
reads.

``setup()`` builds a new :class:`Runtime` and swaps it in with one assignment, so a run never sees half a
configuration. Its policies (guards, replay, snapshot recording) come from the factories registered with
:func:`register_policy`, so this module, the runs and the step engine import none of them. Before
``setup()`` the runtime uses the global OpenTelemetry API (a no-op unless the application configured
OpenTelemetry itself), which keeps instrumented library code correct and nearly free in processes that
never call ``setup()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.trace import Tracer

from agent_otel._version import __version__
from agent_otel.config import Config, load
from agent_otel.events import Pipeline
from agent_otel.metrics import Metrics
from agent_otel.pricing import PriceTable
from agent_otel.redaction import DEFAULT_SECRET_KEYS, Redactor

logger = logging.getLogger("agent_otel")

SCOPE = "agent_otel"


@dataclass(slots=True)
class Runtime:
    config: Config
    tracer: Tracer
    metrics: Metrics
    pipeline: Pipeline
    prices: PriceTable
    redactor: Redactor | None
    service: str | None = None
    store_args_hash: bool = True
    # The policies the step engine consults (guards, replay, snapshot recording), in their ``order``.
    policies: tuple[Any, ...] = ()
    # Redacts prompts and completions for chat spans; None unless logging.events.capture_content.
    content: Redactor | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        tracer: Tracer,
        meter: otel_metrics.Meter,
        pipeline: Pipeline,
        dropped: Any = None,
    ) -> Runtime:
        events = config.get("logging.events")
        redactor = content = None
        if events["store_args"] or events["capture_content"]:
            keys = config.get("redaction.keys")
            redacting = Redactor(
                DEFAULT_SECRET_KEYS if keys is None else keys,
                max_chars=config.get("redaction.max_chars"),
                patterns=config.get("redaction.patterns"),
            )
            redactor = redacting if events["store_args"] else None
            content = redacting if events["capture_content"] else None
        from agent_otel.metrics import MetricsSink

        metrics = Metrics.for_meter(meter, config.get("metrics.track"), config.get("metrics.tools"), dropped)
        # In memory: at shutdown it gets the records a slow sink (a locked run store) holds up, which were
        # never recorded in the metrics when that took the whole shutdown bound.
        pipeline.add_sink(MetricsSink(metrics), fast=True)
        built = (factory(config, pipeline) for factory in _policy_factories.values())
        return cls(
            policies=tuple(sorted((p for p in built if p is not None), key=lambda p: p.order)),
            config=config,
            tracer=tracer,
            metrics=metrics,
            pipeline=pipeline,
            prices=PriceTable(config.get("prices")),
            redactor=redactor,
            service=config.get("service.name"),
            store_args_hash=events["store_args_hash"],
            content=content,
        )


#: A policy factory: from the configuration (and the event pipeline it may write to), the policy of a
#: new runtime, or None when the configuration turns it off. See ``agent_otel.steps.Policy``.
PolicyFactory = Callable[[Config, Pipeline], Any]
_policy_factories: dict[str, PolicyFactory] = {}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Make every runtime built from now on consult the policy ``factory`` builds (replacing ``name``).

    Guards, replay and the snapshot recorder register themselves when their modules are imported
    (``import agent_otel`` imports them all), so the step engine never imports a policy.
    """
    _policy_factories[name] = factory


def unregister_policy(name: str) -> None:
    """Runtimes built from now on no longer have the policy ``name`` (if it was registered)."""
    _policy_factories.pop(name, None)


def _default_runtime() -> Runtime:
    try:
        config = load()
    except Exception as exc:  # a broken AGENT_OTEL_CONFIG must not break an import-time default
        logger.warning("agent-otel: ignoring configuration (%s); using defaults until setup()", exc)
        config = load(env={})
    return Runtime.build(
        config,
        trace.get_tracer(SCOPE, __version__),
        otel_metrics.get_meter(SCOPE, __version__),
        Pipeline(),
    )


_runtime: Runtime | None = None


def current() -> Runtime:
    """The runtime in force (created lazily, so importing agent_otel stays cheap)."""
    global _runtime
    rt = _runtime
    if rt is None:
        rt = _runtime = _default_runtime()
    return rt


def install(rt: Runtime | None) -> None:
    global _runtime
    _runtime = rt
