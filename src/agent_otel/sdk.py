"""``setup()`` and ``shutdown()``: wiring OpenTelemetry, the event pipeline and integrations in one call.

The rules this module keeps:

* Never replace what the application installed. If a TracerProvider/MeterProvider from the SDK is already
  the global one (or is passed in), agent-otel adds its processor and reader to it; otherwise it installs
  its own. The peer SDKs that replace providers break applications' existing exporters.
* Idempotent: a second ``setup()`` returns the configuration in force and adds nothing.
* Bounded: ``shutdown()`` (also run at interpreter exit) takes at most ``exporter.shutdown_timeout_s``
  (default 1 s) however dead the collector is. The OTel SDK's own atexit hook is disabled for the
  providers agent-otel creates, because it can block for tens of seconds.
* Import cost is paid here, not at ``import agent_otel``: the SDK and the OTLP exporters (the gRPC one
  alone costs ~100 ms) are imported inside ``setup()``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from agent_otel import bridge, guards, replay, snapshots  # noqa: F401  (their policies register with the runtime)
from agent_otel import config as config_mod
from agent_otel import conventions as c
from agent_otel import otlp_endpoint as endpoint_mod
from agent_otel import runtime as runtime_mod
from agent_otel._version import __version__
from agent_otel.config import Config
from agent_otel.events import JsonLinesSink, Pipeline, Sink
from agent_otel.green import after_patch, patch_pending, prepare_grpc, spawn, watch_patch
from agent_otel.otlp_endpoint import with_scheme

logger = logging.getLogger("agent_otel")


@dataclass
class Installation:
    """What one ``setup()`` created, so that ``shutdown()`` undoes exactly that and nothing else."""

    config: Config
    runtime: runtime_mod.Runtime
    pipeline: Pipeline
    drops: Any
    otlp: str | None
    otlp_note: str
    span_processors: list[Any] = field(default_factory=list)
    metric_readers: list[Any] = field(default_factory=list)
    otlp_metric_reader: Any = None
    metric_exporters: list[Any] = field(default_factory=list)
    tracer_provider: Any = None
    meter_provider: Any = None
    owns_tracer_provider: bool = False
    owns_meter_provider: bool = False
    integrations: list[str] = field(default_factory=list)
    late_providers: Any = None  # the _LateProviders filter, while agent-otel's providers are the global ones
    args: tuple[Any, ...] = ()
    sigterm: bool = False  # setup() installed agent-otel's SIGTERM handler (see agent_otel.sigterm)
    events_closed: bool = False  # shutdown() has delivered the last events (see _export_soon)


_lock = threading.RLock()
_installed: Installation | None = None
_atexit_registered = False


def installation() -> Installation | None:
    """The current installation (for doctor and tests); None before setup() or after shutdown()."""
    return _installed


def setup(
    service_name: str | None = None,
    endpoint: str | None = None,
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    store: Any = ...,
    instrument: bool | str | Sequence[str] = True,
    *,
    protocol: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    events: str | None = None,
    span_exporters: Iterable[Any] = (),
    metric_readers: Iterable[Any] = (),
    event_sinks: Iterable[Sink] = (),
    tracer_provider: Any = None,
    meter_provider: Any = None,
) -> Config:
    """Configure agent-otel for this process and return the effective :class:`Config`.

    ``config`` is a YAML path or a mapping of overrides (nested or dotted keys). ``store`` is a SQLite path,
    a ``postgresql://`` URL or False (default: the config's ``store``). ``events`` is a JSON-lines sink
    (path, ``stdout`` or ``stderr``). ``span_exporters``/``metric_readers`` are added next to OTLP;
    ``tracer_provider``/``meter_provider`` name providers to attach to instead of the global ones.
    """
    global _installed, _atexit_registered
    overrides: dict[str, Any] = {}
    path: str | os.PathLike[str] | None = None
    if isinstance(config, Mapping):
        overrides.update(config)
    elif config is not None:
        path = config
    for key, value in (
        ("service.name", service_name),
        ("service.version", service_version),
        ("service.environment", environment),
        ("exporter.endpoint", endpoint),
        ("exporter.protocol", protocol),
        ("logging.events.sink", events),
    ):
        if value is not None:
            overrides[key] = value
    if store is not ...:
        overrides["store"] = store
    span_exporters = list(span_exporters)
    metric_readers = list(metric_readers)
    event_sinks = list(event_sinks)
    cfg = config_mod.load(overrides, path)
    args = (
        tuple(sorted((k, repr(v)) for k, v in overrides.items())),
        os.fspath(path) if path else None,
        tuple(id(x) for x in (*span_exporters, *metric_readers, *event_sinks)),
        id(tracer_provider),
        id(meter_provider),
        repr(instrument),
    )
    with _lock:
        if _installed is not None:
            if _installed.args != args:
                logger.warning(
                    "agent-otel: setup() was already called with other arguments; keeping the "
                    "first configuration (call agent_otel.shutdown() first to reconfigure)"
                )
            return _installed.config
        _installed = _install(
            cfg, args, span_exporters, metric_readers, event_sinks, tracer_provider, meter_provider
        )
        if not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
        _hook_multiprocessing()
        _hook_celery()
        if patch_pending():  # gevent loaded, not patched: see _defer_tickers
            watch_patch()
        if cfg.get("exporter.handle_sigterm"):
            from agent_otel import sigterm

            _installed.sigterm = sigterm.install(_shutdown_at_sigterm, cfg.get("exporter.shutdown_timeout_s"))
    if instrument:
        from agent_otel import integrations

        names = None if instrument is True else instrument  # (a string is one name)
        _installed.integrations = integrations.instrument(names)
    return cfg


def _install(
    cfg: Config,
    args: tuple[Any, ...],
    span_exporters: list[Any],
    metric_readers: list[Any],
    event_sinks: list[Sink],
    tracer_provider: Any,
    meter_provider: Any,
) -> Installation:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace

    from agent_otel.drops import DropCounter
    from agent_otel.export import quiet_exporter_logs

    quiet_exporter_logs()
    drops = DropCounter()
    pipeline = _build_pipeline(cfg, event_sinks, drops)
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if disabled:
        otlp, note = None, "OTEL_SDK_DISABLED=true: no spans or metrics are produced"
        rt = runtime_mod.Runtime.build(
            cfg, trace.NoOpTracer(), otel_metrics.NoOpMeter(c.M_STOP.name), pipeline, None
        )
        inst = Installation(cfg, rt, pipeline, drops, otlp, note, args=args)
    else:
        otlp_protocol, otlp_endpoint, note = endpoint_mod.resolve_otlp(cfg)
        otlp = f"{otlp_protocol} {otlp_endpoint}" if otlp_endpoint else None
        if otlp is None:
            # With the local store (or an event sink or exporter of the application's) the runs are
            # still recorded, and that is the embedded default: say it quietly. With nothing at all
            # recording them, the user has to hear it.
            recorded = bool(pipeline.sinks()) or bool(span_exporters)
            # A configured endpoint that is not used (gRPC without the grpc extra) is always a warning.
            unused = bool(cfg.get("exporter.endpoint")) or (
                cfg.get("exporter.protocol") == "grpc" and not endpoint_mod.grpc_available()
            )
            logger.log(
                logging.INFO if recorded and not unused else logging.WARNING,
                "agent-otel: OTLP export is off: %s",
                note + ("" if recorded else "; nothing records these runs (store: false, no event sink)"),
            )
        inst = Installation(cfg, None, pipeline, drops, otlp, note, args=args)  # type: ignore[arg-type]
        _install_tracing(inst, cfg, otlp_protocol, otlp_endpoint, span_exporters, tracer_provider)
        _install_metrics(inst, cfg, otlp_protocol, otlp_endpoint, metric_readers, meter_provider)
        rt = runtime_mod.Runtime.build(
            cfg,
            _own_tracer(inst.tracer_provider),
            inst.meter_provider.get_meter(runtime_mod.SCOPE, __version__),
            pipeline,
            lambda: _all_drops(inst),
        )
        inst.runtime = rt
        if rt.service is None:
            rt.service = _resource_service(inst.tracer_provider)
        if inst.owns_tracer_provider or inst.owns_meter_provider:
            inst.late_providers = _LateProviders()
            inst.late_providers.attach()
        if inst.otlp_metric_reader is not None:
            rt.metrics.export_soon = lambda: _export_soon(inst)
            for exporter in inst.metric_exporters:
                exporter.on_export = rt.metrics.collected
    runtime_mod.install(rt)
    config_mod.set_effective(cfg)
    return inst


def _resource_service(provider: Any) -> str | None:
    """The service.name of the resource ``provider`` gives its spans (the application's, set in code, or
    OTEL_RESOURCE_ATTRIBUTES'), unless it is the SDK's ``unknown_service`` placeholder."""
    resource = getattr(provider, "resource", None)
    name = getattr(resource, "attributes", {}).get(c.SERVICE_NAME)
    return name if isinstance(name, str) and name and not name.startswith("unknown_service") else None


def _own_tracer(provider: Any) -> Any:
    """agent-otel's tracer, sampled by the application's sampler as it is: its runs and steps are counted
    whatever the sampler says, so a span of theirs in a dropped trace need not be recorded (other
    libraries' spans are, see agent_otel.sampling)."""
    from agent_otel.sampling import HandOver, RecordForRuns, handing_over

    tracer = provider.get_tracer(runtime_mod.SCOPE, __version__)
    sampler = getattr(tracer, "sampler", None)
    if isinstance(sampler, RecordForRuns):
        tracer.sampler = sampler = sampler.sampler
    if (
        sampler is not None
        and not isinstance(sampler, HandOver)
        and getattr(getattr(tracer, "span_processor", None), "places_handed_over", False) is True
    ):
        # Its spans' own attributes are put on them without cleaning them again, where the application's
        # sampler is made of the SDK's and the processor list places them (agent_otel.span_attributes).
        tracer.sampler = handing_over(sampler)
    return tracer


def _all_drops(inst: Installation) -> dict[tuple[str, str], int]:
    """Every drop of this installation: spans, metric batches and event records (counted as they
    happen), and the records the run store could not write (its sink keeps its own count)."""
    from agent_otel.store import StoreSink

    counts = inst.drops.snapshot()
    stores = [s for s in inst.pipeline.sinks() if isinstance(s, StoreSink)]
    rejected = sum(s.rejected for s in stores)  # refused by the database, one record at a time
    lost = sum(s.dropped for s in stores) - rejected  # the store could not be written at all
    if rejected:
        counts[("store_records", "rejected")] = rejected
    if lost:
        counts[("store_records", "store_unavailable")] = lost
    return counts


def _build_pipeline(cfg: Config, event_sinks: list[Sink], drops: Any = None) -> Pipeline:
    """The event pipeline and its sinks; ``logging.events.enabled: false`` turns off the event outputs,
    not the pipeline, which also feeds the per-call metrics."""
    sinks: list[Sink] = list(event_sinks)
    events = cfg.get("logging.events")
    if events["enabled"] and events["sink"]:
        try:
            sinks.append(JsonLinesSink(events["sink"], events["include"], events["store_args_hash"]))
        except OSError as exc:
            logger.warning(
                "agent-otel: cannot open the event sink %s (%s); events go only to the store",
                events["sink"],
                exc,
            )
    # The local run store (store: false disables it). It opens lazily on the pipeline's thread, so a
    # slow, locked or broken store costs setup() nothing and reaches the agent only as one warning.
    from agent_otel.store import sink_from_config

    store_sink = sink_from_config(cfg)
    if store_sink is not None:
        sinks.append(store_sink)
    return Pipeline(sinks, max_bytes=int(events["queue_mb"] * (1 << 20)), drops=drops)


def _resource(cfg: Config) -> Any:
    from opentelemetry.sdk.resources import Resource

    from agent_otel import otlp

    attributes: dict[str, Any] = {c.AGENT_OTEL_VERSION: __version__}
    for key, attr in (
        ("service.name", c.SERVICE_NAME),
        ("service.version", c.SERVICE_VERSION),
        ("service.environment", c.DEPLOYMENT_ENVIRONMENT),
    ):
        value = cfg.get(key)
        if value is not None:
            attributes[attr] = value
    resource = Resource.create(attributes)
    # A value that is not UTF-8 (OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES read from bytes that are
    # not, a process detector's command line): the OTLP encoder left it out of every metric export, with
    # a traceback, and refused every span batch as it was (see otlp.encodable_span).
    encodable = otlp.encodable_attributes(resource.attributes) or {}
    if encodable != dict(resource.attributes):
        resource = Resource(encodable, resource.schema_url)
    return resource


def _signal_endpoint(cfg: Config, endpoint: str, protocol: str, signal: str) -> str:
    specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if specific:
        return specific
    if cfg.source("exporter.endpoint") == "env:OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
        # A traces-only URL; metrics go to the generic endpoint if there is one, else the same host.
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or endpoint.removesuffix("/v1/traces")
    elif cfg.source("exporter.endpoint") == "env:OTEL_EXPORTER_OTLP_METRICS_ENDPOINT":
        # A metrics-only URL and no other: spans go to the same host (before, neither signal was exported
        # unless a collector answered on localhost: "no endpoint configured").
        endpoint = endpoint.removesuffix("/v1/metrics")
    if protocol == "grpc":
        return endpoint
    return with_scheme(endpoint).rstrip("/") + f"/v1/{signal}"


#: What one metric data point may take in a request, when sizing ``max_export_batch_size`` from
#: ``exporter.max_request_mb``: agent-otel's own points measure 170 bytes on average and at most ~400 (a
#: histogram with its buckets and attributes); 2 KiB leaves room for long attribute values of the user's.
METRIC_POINT_BYTES = 2048


def metric_points_per_request(cfg: Config) -> int:
    """Data points per OTLP metric request, so that requests stay under ``exporter.max_request_mb``.

    Metrics are cumulative: every export carries every series seen so far, so the request grows with the
    number of series (tools x agents x models x outcomes) and never shrinks. Unsplit, the first one above
    the collector's limit (gRPC: 4 MiB) was refused, retried, and every later one was larger: metric
    export stopped for good while spans went on.
    """
    return max(1, int(cfg.get("exporter.max_request_mb") * 1024 * 1024) // METRIC_POINT_BYTES)


def _otlp_metric_exporter(cfg: Config, protocol: str, endpoint: str) -> Any:
    """The SDK's OTLP metric exporter (spans go through agent_otel.otlp instead, see there why)."""
    url = _signal_endpoint(cfg, endpoint, protocol, "metrics")
    timeout = cfg.get("exporter.timeout_s")
    points = metric_points_per_request(cfg)
    # Given explicitly (config.load has checked the variables): the gRPC exporter would raise on the
    # spec's own "none", the HTTP one only log a bad value.
    compression = config_mod.compression(os.environ, "metrics")
    if protocol == "grpc":
        prepare_grpc()  # before the exporter's channel: see agent_otel.green
        import grpc

        insecure = True if urlparse(with_scheme(url)).scheme == "http" else None
        grpc_compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            compression or "", grpc.Compression.NoCompression if compression else None
        )
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(
            endpoint=url,
            insecure=insecure,
            credentials=None if insecure else _grpc_metric_credentials(grpc),
            timeout=timeout,
            compression=grpc_compression,
            max_export_batch_size=points,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression

    http_compression = Compression(compression) if compression else None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HTTPMetricExporter,
    )

    return HTTPMetricExporter(
        endpoint=url, timeout=timeout, compression=http_compression, max_export_batch_size=points
    )


def _grpc_metric_credentials(grpc: Any) -> Any:
    """The gRPC metric exporter's TLS credentials from ``OTEL_EXPORTER_OTLP_[METRICS_]CERTIFICATE``,
    ``..._CLIENT_KEY`` and ``..._CLIENT_CERTIFICATE``, or None (the SDK's own defaults) when none is set.

    Read here rather than by the SDK, which logs an ERROR with a traceback during ``setup()`` for a file
    that does not exist, and raises into the application for one it may not read. A file that cannot be
    read is one warning naming it and its variable, as for spans (:mod:`agent_otel.otlp`); the metric
    exporter then verifies the collector against the system's root certificates, as the SDK would."""
    names = ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")
    found = {}
    for name in names:
        for var in (f"OTEL_EXPORTER_OTLP_METRICS_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
            if os.environ.get(var):
                found[name] = var
                break
    if not found or os.environ.get("OTEL_PYTHON_EXPORTER_OTLP_GRPC_CREDENTIAL_PROVIDER"):
        return None
    contents: dict[str, bytes | None] = {}
    for name, var in found.items():
        path = os.environ[var]
        try:
            with open(path, "rb") as f:
                contents[name] = f.read()
        except OSError as exc:
            contents[name] = None
            logger.warning(
                "agent-otel: %s (%s) cannot be read: %s; metrics are exported over gRPC with the system's "
                "root certificates instead",
                path,
                var,
                exc.strerror or exc,
            )
    return grpc.ssl_channel_credentials(*(contents.get(name) for name in names))


#: The OTEL_{TRACES,METRICS}_EXPORTER names agent-otel has an exporter for.
_EXPORTER_NAMES = frozenset({"otlp", "console", "none"})


def _exporter_names(signal: str) -> set[str]:
    """OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: a comma-separated list of exporters (unset: otlp),
    as the SDK's auto-configuration reads it. A name agent-otel has no exporter for is said once."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    names = {n.strip().lower() for n in os.environ.get(variable, "").split(",") if n.strip()} or {"otlp"}
    unknown = sorted(names - _EXPORTER_NAMES)
    if unknown:
        logger.warning(
            "agent-otel: %s names %s; agent-otel exports %s over OTLP (otlp) or to stdout (console) only, "
            "so nothing is sent for %s (the collector can forward OTLP to other backends)",
            variable,
            ", ".join(unknown),
            signal,
            "it" if len(unknown) == 1 else "them",
        )
    return names


def _install_tracing(
    inst: Installation,
    cfg: Config,
    protocol: str,
    endpoint: str | None,
    span_exporters: list[Any],
    tracer_provider: Any,
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from agent_otel import native
    from agent_otel.export import BufferedSpanProcessor
    from agent_otel.otlp import OTLPTransport, sender
    from agent_otel.redaction import library_span_scrubber

    provider = _sdk_provider(tracer_provider, TracerProvider) or tracer_provider
    if provider is None:
        existing = trace.get_tracer_provider()
        provider = _sdk_provider(existing, TracerProvider)
        if provider is None:
            provider = TracerProvider(resource=_resource(cfg), shutdown_on_exit=False)
            inst.owns_tracer_provider = _set_global(existing, provider, trace.set_tracer_provider)
    inst.tracer_provider = provider
    _add_native_spans(provider)
    exporters: list[tuple[str, Any]] = []
    names = _exporter_names("traces")
    url = _signal_endpoint(cfg, endpoint, protocol, "traces") if endpoint else None
    if "console" in names and not _app_exporters(provider, "span", ConsoleSpanExporter):
        exporters.append(("spans-console", ConsoleSpanExporter()))
    if url and "otlp" in names and not _already_exported(provider, inst, url, "span", span_exporters):
        transport = OTLPTransport(
            sender(protocol, url, cfg.get("exporter.timeout_s")),
            int(cfg.get("exporter.max_request_mb") * (1 << 20)),
        )
        exporters.append(("spans", transport))
    exporters += [(f"spans-{i}", e) for i, e in enumerate(span_exporters, 1)]
    scrub = library_span_scrubber(cfg, native.SCOPE)
    for name, exporter in exporters:
        processor = BufferedSpanProcessor(
            exporter,
            inst.drops,
            max_queue=cfg.get("exporter.max_queue"),
            batch_size=cfg.get("exporter.batch_size"),
            schedule_delay_s=cfg.get("exporter.schedule_delay_s"),
            retry_buffer_bytes=int(cfg.get("exporter.retry_buffer_mb") * (1 << 20)),
            shutdown_timeout_s=cfg.get("exporter.shutdown_timeout_s"),
            name=name,
            scrub=scrub,
        )
        provider.add_span_processor(processor)
        inst.span_processors.append(processor)


def _sdk_provider(existing: Any, sdk_class: type) -> Any:
    """The SDK provider to attach to: the global one, or the SDK provider a wrapper installed as the
    global one holds (Logfire's ProxyTracerProvider / ProxyMeterProvider keep it in ``.provider``)."""
    if isinstance(existing, sdk_class):
        return existing
    inner = getattr(existing, "provider", None)
    return inner if isinstance(inner, sdk_class) else None


def _set_global(existing: Any, provider: Any, set_global: Any) -> bool:
    """Install ``provider`` as the global one if none is set yet (the API's own proxy is current).

    A provider someone else set that is not the SDK's (a no-op one, another SDK's) cannot be replaced:
    OpenTelemetry refuses it with a line that does not say what follows, so agent-otel does not try,
    and says it."""
    kind = type(existing)
    if kind.__module__.startswith("opentelemetry.") and kind.__name__.lstrip("_").startswith("Proxy"):
        set_global(provider)
        return True
    signal = "TracerProvider" if "Tracer" in type(provider).__name__ else "MeterProvider"
    logger.warning(
        "agent-otel: the global %s is a %s, not the OpenTelemetry SDK's, and agent-otel can neither "
        "attach to it nor replace it: agent-otel's own %s go to agent-otel's exporters only, and what "
        "other libraries emit through it is not seen; pass an SDK provider: setup(%s=...)",
        signal,
        kind.__name__,
        "spans" if signal == "TracerProvider" else "metrics",
        "tracer_provider" if signal == "TracerProvider" else "meter_provider",
    )
    return False


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def _collector(url: str) -> tuple[str, int | None]:
    """Host and port an OTLP URL sends to (the loopback names alike): two exporters with the same are
    sending to one collector, whatever their paths and protocols."""
    parsed = urlparse(with_scheme(url))
    host = (parsed.hostname or "").lower()
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    except ValueError:
        port = None
    return ("127.0.0.1" if host in _LOOPBACK else host), port


def _app_exporters(provider: Any, signal: str, kind: type = object) -> list[Any]:
    """The exporters of ``kind`` behind the SDK's batch and simple span processors (``signal`` "span") or
    periodic metric readers ("metric") on ``provider``: the application's (agent-otel's own processors
    are not of those classes). Private attributes, read defensively."""
    if signal == "span":
        holders = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
        exporters = [
            getattr(p, "span_exporter", None)
            or getattr(getattr(p, "_batch_processor", None), "_exporter", None)
            for p in holders
        ]
    else:
        exporters = [getattr(r, "_exporter", None) for r in getattr(provider, "_metric_readers", ())]
    return [e for e in exporters if e is not None and isinstance(e, kind)]


def _endpoints(exporters: Iterable[Any]) -> list[str]:
    """Where the OTLP exporters among ``exporters`` send."""
    urls = [getattr(e, "_endpoint", None) for e in exporters]
    return [u for u in urls if isinstance(u, str) and u]


def _already_exported(
    provider: Any, inst: Installation, url: str, signal: str, given: Iterable[Any] = ()
) -> bool:
    """The application's provider already has an OTLP exporter to the collector ``url`` names (it read the
    same OTEL_EXPORTER_OTLP_* variables, as ``opentelemetry-instrument`` does), or one of the exporters
    (metric readers) passed to setup() is one: agent-otel's spans or metrics go through it, and a second
    exporter of agent-otel's would send everything twice. So too when no endpoint is configured and
    ``url`` is a local collector setup() found by probing, wherever that exporter sends: that is the
    destination someone chose (opentelemetry-instrument's default, localhost:4317 over gRPC, next to the
    base install's probe of :4318 sent everything twice)."""
    try:
        target = _collector(url)
        found = [(u, "setup()'s") for u in _endpoints(given)]
        if provider is not None and not (signal == "span" and inst.owns_tracer_provider):
            found += [(u, "the application's") for u in _endpoints(_app_exporters(provider, signal))]
        same = next((f for f in found if _collector(f[0]) == target), None)
        if same is None and not inst.config.get("exporter.endpoint"):
            same = next(iter(found), None)
    except Exception:  # an exporter of an unexpected shape: export as usual
        return False
    if same is not None:
        logger.info(
            "agent-otel: %s OTLP %s exporter already sends to %s; agent-otel's %ss go through it "
            "(no second OTLP %s exporter)",
            same[1],
            signal,
            config_mod.masked_url(same[0]),  # a collector behind basic auth: its password is not printed
            signal,
            signal,
        )
        inst.otlp_note += f"; {signal}s through {same[1]} exporter to {same[0]}"
    return same is not None


class _LateProviders(logging.Filter):
    """Says what OpenTelemetry's "Overriding of current TracerProvider is not allowed" means when the
    provider it keeps is agent-otel's: the application configured OpenTelemetry after setup(), and the
    processors, exporters and readers it set up receive nothing (its spans and metrics go to agent-otel's
    providers and exporters). Attached to OpenTelemetry's loggers while setup() owns a global provider."""

    LOGGERS = ("opentelemetry.trace", "opentelemetry.metrics._internal")
    KINDS = {
        "TracerProvider": "spans started through the global API (trace.get_tracer) reach agent-otel's "
        "exporters and not the application's span processors and exporters",
        "MeterProvider": "metrics recorded through the global API (metrics.get_meter) reach agent-otel's "
        "readers and not the application's",
    }

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for kind, what in self.KINDS.items():
            if message.startswith(f"Overriding of current {kind}") and kind not in self.said:
                self.said.add(kind)
                logger.warning(
                    "agent-otel: the application set its own %s after agent_otel.setup() had installed "
                    "agent-otel's; OpenTelemetry keeps the first, so %s: call agent_otel.setup() after "
                    "the application's OpenTelemetry setup, or "
                    "pass its providers (setup(tracer_provider=..., meter_provider=...))",
                    kind,
                    what,
                )
        return True

    def attach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _add_native_spans(provider: Any) -> None:
    """The GenAI span bridge's processor (agent_otel.bridge), once per provider, and the provider's
    sampler wrapped so that the spans the bridge needs are recorded even in traces it drops."""
    from agent_otel import native
    from agent_otel.sampling import keep_runs_recorded

    if not getattr(provider, "_agent_otel_native_spans", False):
        keep_runs_recorded(provider)
        provider.add_span_processor(bridge.Bridge())
        # A provider class with slots cannot be marked: it may get a second (harmless) processor.
        with contextlib.suppress(AttributeError):
            provider._agent_otel_native_spans = True
    native.enable(True)


def _install_metrics(
    inst: Installation,
    cfg: Config,
    protocol: str,
    endpoint: str | None,
    metric_readers: list[Any],
    meter_provider: Any,
) -> None:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    from agent_otel.export import NonBlockingMetricExporter

    readers = list(metric_readers)
    names = _exporter_names("metrics")
    provider = _sdk_provider(meter_provider, MeterProvider) or meter_provider
    existing = otel_metrics.get_meter_provider()
    if provider is None:
        provider = _sdk_provider(existing, MeterProvider)
    if (
        endpoint
        and "otlp" in names
        and not _already_exported(
            provider,
            inst,
            _signal_endpoint(cfg, endpoint, protocol, "metrics"),
            "metric",
            [getattr(r, "_exporter", None) for r in metric_readers],
        )
    ):
        exporter = NonBlockingMetricExporter(
            _otlp_metric_exporter(cfg, protocol, endpoint),
            inst.drops,
            shutdown_timeout_s=cfg.get("exporter.shutdown_timeout_s"),
        )
        inst.metric_exporters.append(exporter)
        inst.otlp_metric_reader = PeriodicExportingMetricReader(
            exporter,
            export_interval_millis=cfg.get("exporter.metric_interval_s") * 1000,
            export_timeout_millis=cfg.get("exporter.timeout_s") * 1000,
        )
        readers.insert(0, inst.otlp_metric_reader)
    if "console" in names and not _app_exporters(provider, "metric", ConsoleMetricExporter):
        readers.append(
            PeriodicExportingMetricReader(
                ConsoleMetricExporter(), export_interval_millis=cfg.get("exporter.metric_interval_s") * 1000
            )
        )
    if provider is None:
        provider = MeterProvider(metric_readers=readers, resource=_resource(cfg), shutdown_on_exit=False)
        inst.owns_meter_provider = _set_global(existing, provider, otel_metrics.set_meter_provider)
    else:
        for reader in readers:
            try:
                provider.add_metric_reader(reader)
            except AttributeError:
                logger.warning(
                    "agent-otel: this opentelemetry-sdk cannot add metric readers to an existing "
                    "MeterProvider (needs >= 1.39); agent-otel metrics go to its readers only"
                )
                readers = []
                break
    inst.meter_provider = provider
    inst.metric_readers = readers


def _export_soon(inst: Installation) -> None:
    """Collect and export the OTLP metrics now (Metrics calls it on a thread of its own, for new series).
    Also while shutdown() delivers the last events: a short-lived process's series appear then."""
    if not inst.events_closed:
        inst.otlp_metric_reader.force_flush(timeout_millis=inst.config.get("exporter.timeout_s") * 1000)


def flush(timeout_s: float | None = None) -> bool:
    """Deliver queued events, spans and metrics now; bounded like shutdown(). True if all finished."""
    inst = _installed
    if inst is None:
        return True
    timeout = inst.config.get("exporter.shutdown_timeout_s") if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout
    ok = inst.pipeline.flush(timeout)
    for processor in inst.span_processors:
        ok = processor.force_flush(int(max(deadline - time.monotonic(), 0.001) * 1000)) and ok
    for reader in inst.metric_readers:
        try:
            ok = (
                bool(reader.force_flush(timeout_millis=max(deadline - time.monotonic(), 0.001) * 1000)) and ok
            )
        except Exception as exc:
            logger.debug("agent-otel: metric reader flush failed: %s", exc)
            ok = False
    return ok


def shutdown(timeout_s: float | None = None) -> None:
    """Flush and close what setup() created, in at most ``exporter.shutdown_timeout_s`` (default 1 s).

    Safe to call twice and before setup(). Afterwards agent-otel falls back to the global OpenTelemetry
    API, and setup() may be called again. What could not be delivered within the bound is counted, and
    everything dropped during the process is summed up in one WARNING line.
    """
    _close(timeout_s, at_exit=False)


def _close(timeout_s: float | None, at_exit: bool) -> None:
    """shutdown(); ``at_exit``: the process is ending normally (see _shutdown)."""
    global _installed
    with _lock:
        inst, _installed = _installed, None
    if inst is None:
        return
    from agent_otel import sigterm

    with sigterm.shutting_down():
        try:
            _shutdown(inst, timeout_s, at_exit)
        finally:
            if inst.sigterm:
                # Removed once the last records are delivered: a SIGTERM meanwhile waits for them.
                sigterm.uninstall()  # (from the main thread only; shutting_down ends the process then)


_METRICS_SHARE = 0.25  # of the shutdown bound, kept for the last metric export (see _shutdown)


def _shutdown(inst: Installation, timeout_s: float | None, at_exit: bool = False) -> None:
    """``at_exit``: the process is ending normally (interpreter exit, a multiprocessing or Celery worker's
    end): past the bound, the events still wait for a run store that is connecting or writing, up to the
    store's own bound (:data:`agent_otel.store.sink.EXIT_WRITE_S`); not at SIGTERM, which has its own."""
    timeout = inst.config.get("exporter.shutdown_timeout_s") if timeout_s is None else timeout_s
    started = time.monotonic()
    deadline = started + timeout
    if inst.integrations:
        from agent_otel import integrations

        integrations.uninstrument(inst.integrations)
    runtime_mod.install(None)
    config_mod.set_effective(None)
    if inst.late_providers is not None:
        inst.late_providers.detach()
    from agent_otel import native

    native.enable(False)
    workers: list[threading.Thread] = []

    def step(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            logger.debug("agent-otel: shutdown step failed: %s", exc)

    def spawn(fn: Any, *args: Any) -> bool:
        thread = threading.Thread(target=step, args=(fn, *args), name="agent-otel-shutdown", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # at interpreter exit Python 3.12 starts no thread: each step in turn, here
            return False
        workers.append(thread)
        return True

    # Spans do not depend on the event pipeline: their last export starts now, next to it (at exit on
    # Python 3.12, which starts no thread, after it as before).
    later = [p.shutdown for p in inst.span_processors if not spawn(p.shutdown)]
    # Events first otherwise: the run store should hold every run before the process goes away, and the
    # metrics are recorded from the events. If a sink still holds the pipeline up when a quarter of the
    # bound is left (a run store another process keeps locked took the whole bound, and the metrics of the
    # process's last runs were never sent), the metrics get what is queued ahead of it and their last
    # export starts, while the pipeline goes on delivering to the store until the bound.
    share = timeout * _METRICS_SHARE if inst.metric_readers else 0.0
    if not inst.pipeline.flush(max(deadline - share - time.monotonic(), 0.05)):
        inst.events_closed = True  # (no collection of its own for a new series: the last export has it)
        inst.pipeline.feed_fast()
        later += _start_metrics_shutdown(inst, deadline, spawn)
    inst.pipeline.stop(max(deadline - time.monotonic(), 0.05), grace_from=started if at_exit else None)
    if not inst.events_closed:
        inst.events_closed = True
        later += _start_metrics_shutdown(inst, deadline, spawn)
    inst.pipeline.close_sinks()  # the run store's last try, next to the metrics' last export
    for deferred in later:
        step(deferred)
    for thread in workers:
        thread.join(max(deadline - time.monotonic(), 0))
    # The bound is reached: whatever a worker still holds (a request to a collector that does not answer,
    # the batches waiting behind it) is counted now rather than lost without a word.
    for processor in inst.span_processors:
        processor.abandon()
    for exporter in inst.metric_exporters:
        exporter.abandon()
    from agent_otel.drops import drop_summary

    summary = drop_summary(_all_drops(inst))
    if summary:
        logger.warning(summary)


def _start_metrics_shutdown(inst: Installation, deadline: float, spawn: Any) -> list[Any]:
    """Start each metric reader's shutdown (its last collection and export) on a thread of its own; the
    ones that could not start (Python 3.12 at exit), to be run in turn."""
    remaining_ms = max(deadline - time.monotonic(), 0.05) * 1000
    return [
        functools.partial(_shutdown_reader, inst.meter_provider, reader, remaining_ms)
        for reader in inst.metric_readers
        if not spawn(_shutdown_reader, inst.meter_provider, reader, remaining_ms)
    ]


class _DropRepeatShutdown(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "shutdown multiple times" not in record.getMessage()


def _shutdown_reader(provider: Any, reader: Any, timeout_ms: float) -> None:
    # Shut down first (the final collection needs the provider's callback), then detach the reader so a
    # later setup() can attach a new one; detaching shuts down again, which the SDK warns about.
    reader.shutdown(timeout_millis=timeout_ms)
    remove = getattr(provider, "remove_metric_reader", None)
    if remove is None:
        return
    sdk_export_logger = logging.getLogger("opentelemetry.sdk.metrics._internal.export")
    quiet = _DropRepeatShutdown()
    sdk_export_logger.addFilter(quiet)
    try:
        remove(reader)
    except Exception as exc:
        logger.debug("agent-otel: removing metric reader failed: %s", exc)
    finally:
        sdk_export_logger.removeFilter(quiet)


def _shutdown_at_exit(at_exit: bool = True) -> None:
    try:
        _close(None, at_exit)
    except Exception as exc:  # never turn interpreter exit into a traceback
        logger.debug("agent-otel: shutdown at exit failed: %s", exc)


def _shutdown_at_sigterm() -> None:
    """The process is being ended on purpose: the runs still open stop ``cancelled`` (see
    run.end_open_runs), then everything is flushed."""
    try:
        from agent_otel import stop
        from agent_otel.run import end_open_runs

        if stop.hard_time_limit_reached():  # (setup() in a task: billiard's handler was there before)
            end_open_runs(stop.HARD_TIME_LIMIT_DETAIL, stop.StopReason.TIMEOUT)
        else:
            end_open_runs("the process received SIGTERM")
    except Exception as exc:
        logger.debug("agent-otel: stopping the open runs at SIGTERM failed: %s", exc)
    _shutdown_at_exit(at_exit=False)  # within SIGTERM's bound: no wait past it for the store


# --- multiprocessing's children --------------------------------------------------------------------------
#
# A child of multiprocessing (fork and forkserver start methods: Process, Pool, ProcessPoolExecutor) ends
# with os._exit() once its target returns, so atexit never runs there: a worker's last runs, their spans
# and its metrics were lost (0 of 24 runs stored for 24 forked Processes). What runs there is
# multiprocessing's own exit function, with the finalizers registered through multiprocessing.util.Finalize;
# shutdown() becomes one of them. multiprocessing clears the finalizers a child inherits as it starts its
# target (Process._bootstrap), then calls the functions given to util.register_after_fork: that is where a
# forked child's finalizer is registered. Nothing here imports multiprocessing: a process that has not
# imported it has no such children.


class _Token:
    """What util.register_after_fork keeps a weak reference to (it keys its callbacks by an object)."""


_MP_TOKEN = _Token()
_mp_registered = False  # _at_multiprocessing_start is registered (inherited by forked children, like it)
_mp_finalizer: Any = None  # shutdown() as a multiprocessing finalizer of this process, once registered


def _hook_multiprocessing() -> None:
    global _mp_registered
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    try:
        if not _mp_registered:
            util.register_after_fork(_MP_TOKEN, _at_multiprocessing_start)
            _mp_registered = True
        if sys.modules["multiprocessing"].parent_process() is not None:  # setup() in a worker (initializer)
            _at_multiprocessing_start(_MP_TOKEN)
    except Exception as exc:  # an unexpected multiprocessing: its children keep only what atexit keeps
        logger.debug("agent-otel: cannot hook multiprocessing's exit: %s", exc)


def _at_multiprocessing_start(token: _Token) -> None:
    """Called in a child of multiprocessing as its target starts, and by setup() in one."""
    global _mp_finalizer
    util = sys.modules.get("multiprocessing.util")
    if _installed is None or util is None:
        return
    if _mp_finalizer is not None and _mp_finalizer.still_active():  # (a child's start clears them)
        return
    # The lowest priority: after the application's own finalizers (which may still end runs) and after
    # multiprocessing's queues have flushed their feeder threads (-5).
    _mp_finalizer = util.Finalize(None, _shutdown_at_exit, exitpriority=-100)


def _after_fork_in_child() -> None:
    # multiprocessing imported after setup() (ProcessPoolExecutor imports it when first used): a forked
    # child still gets its finalizer, registered before the child starts its target.
    if _installed is not None:
        _hook_multiprocessing()
        _hook_celery()
        _defer_tickers(_installed)


# --- a child that gevent patches after its fork ----------------------------------------------------------
#
# gunicorn -k gevent --preload: setup() runs in the unpatched master, and each worker patches itself right
# after its fork. The SDK's metric reader restarts its thread in the fork hook, before the patch: a real OS
# thread, which then exported through locks gevent had made greenlet-only ("cannot notify on un-acquired
# lock" at each export, no metric sent, and a worker that did not stop within gunicorn's 30 s). In such a
# child the reader's thread waits as its first tick would and, once gevent has patched, leaves the ticking
# to a greenlet; in a child that is not patched by then it ticks as the SDK's own.

_deferred: list[tuple[Any, Any]] = []  # (reader, lock: taken by whoever ticks from now on)


def _defer_tickers(inst: Installation) -> None:
    _deferred.clear()
    try:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    except ImportError:
        return
    pending = patch_pending()
    for reader in inst.metric_readers:
        if not isinstance(reader, PeriodicExportingMetricReader):
            continue
        reader.__dict__.pop("_ticker", None)  # (one the parent's own fork set: not this child's)
        if pending and getattr(reader, "_daemon_thread", None) is not None:
            claim = threading.Lock()
            reader._ticker = functools.partial(_first_tick, reader, claim)  # the thread the SDK starts next
            _deferred.append((reader, claim))


def _first_tick(reader: Any, claim: Any) -> None:
    stop = reader._shutdown_event.wait(reader._export_interval_millis / 1e3)
    if not claim.acquire(False):
        # gevent patched this child, and a greenlet ticks (_tick_in_greenlet). A real thread that ends in a
        # patched process prints a KeyError from threading's bookkeeping at exit: this one waits, in C, for
        # a lock nobody gives back, and ends with the process.
        claim.acquire()
        return
    reader.__dict__.pop("_ticker", None)
    if not stop:
        with contextlib.suppress(Exception):
            reader.collect(timeout_millis=reader._export_timeout_millis)
    reader._ticker()  # the SDK's own loop from here


def _after_patch() -> None:
    for reader, claim in _deferred:
        if claim.acquire(False):
            spawn(functools.partial(_tick_in_greenlet, reader))
    _deferred.clear()


def _tick_in_greenlet(reader: Any) -> None:
    reader.__dict__.pop("_ticker", None)
    if not reader._shutdown_event.is_set():
        reader._at_fork_reinit()  # the SDK's ticker, on a thread that is a greenlet now


after_patch(_after_patch)


# --- Celery's pool children ------------------------------------------------------------------------------
#
# Celery's prefork pool (billiard) ends a child with os._exit() in Worker._do_exit(): when
# worker_max_tasks_per_child recycles it, when the pool shrinks or closes. Neither atexit nor
# multiprocessing's (nor billiard's) finalizers run there; Celery's worker_process_shutdown signal does,
# in the child, just before. Before agent-otel flushed there, a recycled child's last runs were lost
# (2 of 12 stored with one task per child). Connected when setup() runs with Celery imported (in
# worker_process_init, or at import in the master) or in a child forked after it; Celery is never imported
# here.


def _hook_celery() -> None:
    if "celery" not in sys.modules:
        return
    try:
        from celery import signals

        signals.worker_process_shutdown.connect(_on_celery_child_exit, weak=False, dispatch_uid="agent_otel")
        signals.task_prerun.connect(_on_celery_task_start, weak=False, dispatch_uid="agent_otel")
        signals.task_postrun.connect(_on_celery_task_end, weak=False, dispatch_uid="agent_otel")
    except Exception as exc:  # an unexpected Celery: its recycled children keep what their pipes flushed
        logger.debug("agent-otel: cannot hook Celery's worker_process_shutdown: %s", exc)


def _on_celery_child_exit(*args: Any, **kwargs: Any) -> None:
    _shutdown_at_exit()


def _on_celery_task_start(*args: Any, task: Any = None, **kwargs: Any) -> None:
    from agent_otel import stop

    stop.task_started(task)  # what tells a hard time limit's end from a cold shutdown's (stop.py)


def _on_celery_task_end(*args: Any, **kwargs: Any) -> None:
    from agent_otel import stop

    stop.task_ended()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
