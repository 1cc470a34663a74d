"""agent-otel next to an application's own OpenTelemetry setup: its samplers, processors, exporters.

"Adding setup() must never change what a working agent does" includes the application's own telemetry,
and agent-otel's own records must stay complete whatever the application does with its spans.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

import agent_otel
from agent_otel import otlp_endpoint, sdk
from tests.helpers import metric_points
from tests.otlp_receiver import HTTPReceiver, free_port
from tests.test_setup import clean, run_script  # noqa: F401  (clean: a fixture)


@pytest.fixture
def home(clean, monkeypatch, tmp_path):  # noqa: F811
    """tests/test_setup.py's ``clean`` (no OTEL_*/AGENT_OTEL_* variables, setup() undone), no probing."""
    monkeypatch.setenv("AGENT_OTEL_PROBE_LOCAL", "false")
    return tmp_path


def _framework_run(tracer, agent: str) -> None:
    """What a framework that traces itself (Strands, ADK, PydanticAI...) emits for one invocation."""
    with tracer.start_as_current_span(
        f"invoke_agent {agent}",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent},
    ):
        with tracer.start_as_current_span(
            "chat m", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
        ) as chat:
            chat.set_attribute("gen_ai.usage.input_tokens", 10)
            chat.set_attribute("gen_ai.usage.output_tokens", 5)
        with tracer.start_as_current_span("execute_tool lookup", attributes={"gen_ai.tool.name": "lookup"}):
            pass


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(TraceIdRatioBased(0.1))], ids=["off", "ratio"])
def test_the_applications_sampler_drops_no_run_and_exports_only_what_it_keeps(home, sampler):
    """The application samples its traces; agent-otel's runs, steps, metrics and store rows stay complete
    (they are counted, not sampled), while what reaches any exporter is still only what the sampler kept,
    whole traces (a run's steps with it). Before, a framework's run (its spans recognised by the bridge)
    that the sampler dropped was never seen: no run, no stop, no usage."""
    app_spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    ours, reader = InMemorySpanExporter(), InMemoryMetricReader()
    store = str(home / "runs.db")
    agent_otel.setup(
        "svc",
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        span_exporters=[ours],
        store=store,
        instrument=False,
    )
    framework = provider.get_tracer("some.framework")
    app = provider.get_tracer("app")
    n = 40
    for _ in range(n):
        _framework_run(framework, "fw")
        with agent_otel.run("manual") as run:
            run.call_tool("t", lambda: 1)
            _framework_run(framework, "inner")  # a framework agent inside a run of the application's
        with app.start_as_current_span("app-request"):
            pass
    assert sdk.flush(5)
    stops = {a["agent"]: p.value for a, p in metric_points(reader)["agent.stop"] if p.value}
    assert stops == {"fw": n, "manual": n}
    tokens = sum(p.sum for a, p in metric_points(reader)["agent.tokens_per_request"])
    assert tokens == 2 * n * 15  # every framework request's usage, in its own run or the manual one
    agent_otel.shutdown()
    with contextlib.closing(sqlite3.connect(store)) as db:
        rows = db.execute("SELECT agent, steps, input_tokens, stop_reason FROM agent_runs").fetchall()
    assert Counter(rows) == {("fw", 2, 10, "completed"): n, ("manual", 3, 10, "completed"): n}
    # The exporters got exactly what the sampler kept, whole traces, and the same on both.
    app_names = Counter(s.name for s in app_spans.get_finished_spans())
    assert Counter(s.name for s in ours.get_finished_spans()) == app_names
    # Exemplars point only at traces that were exported (never at one the sampler dropped).
    exported = {s.context.trace_id for s in app_spans.get_finished_spans()}
    exemplars = {
        e.trace_id for points in metric_points(reader).values() for _, p in points for e in p.exemplars or ()
    }
    assert exemplars <= exported
    if sampler is ALWAYS_OFF:
        assert not app_names
    else:
        assert app_names["app-request"] < n
        assert app_names["invoke_agent fw"] == app_names["chat m"] - app_names["invoke_agent manual"]
        by_trace: dict[int, set[str]] = {}
        for span in app_spans.get_finished_spans():
            by_trace.setdefault(span.context.trace_id, set()).add(span.name)
        for names in by_trace.values():
            assert names in (
                {"app-request"},
                {"invoke_agent fw", "chat m", "execute_tool lookup"},
                {"invoke_agent manual", "execute_tool t", "invoke_agent inner"}
                | {"chat m", "execute_tool lookup"},
            )


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(TraceIdRatioBased(0.5))], ids=["off", "ratio"])
def test_a_framework_run_in_a_dropped_trace_keeps_what_its_spans_started_with(home, sampler):
    """A framework names its agent, model and conversation in its spans' start attributes. In a trace
    the application's sampler dropped, those spans were recorded for the run without them (a dropping
    sampler's result holds no attributes): stored and counted as agent "agent", no model, no conversation,
    for every run the sampler did not keep."""
    reader = InMemoryMetricReader()
    provider = TracerProvider(sampler=sampler)
    store = str(home / "runs.db")
    agent_otel.setup(
        "svc",
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        store=store,
        instrument=False,
    )
    framework = provider.get_tracer("some.framework")
    n = 20
    for i in range(n):
        started = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"}
        started |= {"gen_ai.request.model": "m-1", "gen_ai.conversation.id": f"conv-{i}"}
        with framework.start_as_current_span("invoke_agent", attributes=started):
            chat = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-2"}
            with framework.start_as_current_span("chat", attributes=chat) as span:
                span.set_attribute("gen_ai.usage.input_tokens", 3)
            tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}
            with framework.start_as_current_span("execute_tool", attributes=tool):
                pass
    assert sdk.flush(5)
    stops = {a["agent"]: p.value for a, p in metric_points(reader)["agent.stop"] if p.value}
    assert stops == {"triage": n}
    agent_otel.shutdown()
    with contextlib.closing(sqlite3.connect(store)) as db:
        rows = db.execute("SELECT agent, model, conversation_id, steps FROM agent_runs").fetchall()
        tools = db.execute("SELECT tool FROM agent_events WHERE kind = 'tool_result'").fetchall()
    assert sorted(rows) == sorted(("triage", "m-1", f"conv-{i}", 2) for i in range(n))
    assert tools == [("lookup",)] * n


def _receiver_names(rx) -> tuple[Counter, Counter]:
    metrics: Counter = Counter()
    for batch in rx.metric_batches:
        for rm in batch.resource_metrics:
            for sm in rm.scope_metrics:
                metrics.update(m.name for m in sm.metrics)
    return Counter(s.name for s in rx.spans), metrics


def test_the_applications_otlp_exporter_to_the_same_collector_gets_each_span_and_metric_once(
    home, monkeypatch
):
    """The application exports to the collector named by OTEL_EXPORTER_OTLP_ENDPOINT (as
    `opentelemetry-instrument` sets it up), and agent-otel reads the same variable. Before, agent-otel
    added its own OTLP exporter and reader next to the application's: every span of the process (the
    application's and the runs') and every metric reached the collector twice."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    rx = HTTPReceiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint.replace("127.0.0.1", "localhost"))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        app_reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=60_000)
        meters = MeterProvider(metric_readers=[app_reader])
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint)
        agent_otel.setup(
            "svc", tracer_provider=provider, meter_provider=meters, store=False, instrument=False
        )
        with provider.get_tracer("app").start_as_current_span("app-request"):
            pass
        meters.get_meter("app").create_counter("app.requests").add(1)
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        agent_otel.shutdown()
        provider.shutdown()
        meters.shutdown()
        spans, metrics = _receiver_names(rx)
        assert spans == {"app-request": 1, "invoke_agent a": 1, "execute_tool t": 1}
        assert metrics["app.requests"] == metrics["agent.stop"] == len(rx.metric_batches) == 1
    finally:
        rx.stop()


def test_the_log_line_naming_the_applications_exporter_leaves_out_the_password_of_its_url(
    home, monkeypatch, caplog
):
    """setup() says at INFO which exporter of the application its spans go through, with that exporter's
    URL; a collector behind basic auth has its password in the URL's user info, which the line printed."""
    import logging

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    caplog.set_level(logging.INFO, "agent_otel")
    rx = HTTPReceiver()
    try:
        endpoint = rx.endpoint.replace("http://", "http://collector:s3cr3t-pw@")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        agent_otel.setup("svc", tracer_provider=provider, store=False, instrument=False)
        agent_otel.shutdown()
        provider.shutdown()
    finally:
        rx.stop()
    (line,) = [r.getMessage() for r in caplog.records if "already sends to" in r.getMessage()]
    assert "//***@127.0.0.1" in line
    assert "s3cr3t-pw" not in caplog.text


def test_an_application_that_sets_its_providers_after_setup_is_told_where_its_telemetry_goes():
    """setup() first installs agent-otel's providers; the application's own set_tracer_provider /
    set_meter_provider afterwards is refused by OpenTelemetry (the first one stays), so what is traced
    through the global API never reaches the application's exporters. OpenTelemetry's one line
    ("Overriding of current TracerProvider is not allowed") does not say that, nor what to do:
    agent-otel's warning does."""
    proc, _ = run_script("""
        import logging
        logging.basicConfig(format="%(name)s: %(message)s")
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import agent_otel

        agent_otel.setup("svc", store=False, instrument=False)
        app_spans = InMemorySpanExporter()
        tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(app_spans))
        trace.set_tracer_provider(tp)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        trace.set_tracer_provider(tp)  # said once
        agent_otel.shutdown()
    """)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("agent_otel:") and "own" in line]
    assert len(ours) == 2, proc.stderr
    for line, kind in zip(ours, ("TracerProvider", "MeterProvider"), strict=True):
        assert f"the application set its own {kind} after agent_otel.setup()" in line
        assert "reach agent-otel's" in line and "not the application's" in line
        assert "call agent_otel.setup() after" in line


def test_a_wrapped_global_provider_is_attached_to_through_the_sdk_provider_it_wraps():
    """Logfire's configure() installs a ProxyTracerProvider / ProxyMeterProvider that wrap the SDK's
    (in ``.provider``). Before, setup() did not recognise them, installed providers of its own, and
    OpenTelemetry refused them ("Overriding of current TracerProvider is not allowed"): the application's
    exporters never saw a run, and the GenAI spans of frameworks went past the bridge. A global provider
    that wraps none is not replaced either, and the warning says what follows."""
    proc, _ = run_script("""
        import logging
        logging.basicConfig(format="%(name)s: %(message)s")
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import agent_otel
        from agent_otel import sdk
        from tests.helpers import metric_points

        class Wrapper:  # what Logfire installs: the SDK's provider inside, and tracers/meters from it
            def __init__(self, provider):
                self.provider = provider
            def get_tracer(self, *args, **kwargs):
                return self.provider.get_tracer(*args, **kwargs)
            def get_meter(self, *args, **kwargs):
                return self.provider.get_meter(*args, **kwargs)

        app_spans, app_reader = InMemorySpanExporter(), InMemoryMetricReader()
        tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(app_spans))
        trace.set_tracer_provider(Wrapper(tp))
        metrics.set_meter_provider(Wrapper(MeterProvider(metric_readers=[app_reader])))
        agent_otel.setup("svc", store=False, instrument=False)
        with trace.get_tracer("fw").start_as_current_span("invoke_agent fw"):
            pass
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        sdk.flush(2)
        print(sorted(s.name for s in app_spans.get_finished_spans()))
        print(sorted(a["agent"] for a, p in metric_points(app_reader)["agent.stop"] if p.value))
        agent_otel.shutdown()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "Overriding" not in proc.stderr
    spans, stops = proc.stdout.splitlines()
    assert spans == "['execute_tool t', 'invoke_agent a', 'invoke_agent fw']"
    assert stops == "['a', 'fw']"

    proc, _ = run_script("""
        import logging
        logging.basicConfig(format="%(name)s: %(message)s")
        from opentelemetry import trace
        import agent_otel

        trace.set_tracer_provider(trace.NoOpTracerProvider())
        agent_otel.setup("svc", store=False, instrument=False)
        with agent_otel.run("a") as run:
            pass
        print(run.usage["steps"], trace.get_tracer_provider().__class__.__name__)
        agent_otel.shutdown()
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "NoOpTracerProvider"]
    assert "Overriding" not in proc.stderr
    assert "the global TracerProvider is a NoOpTracerProvider, not the OpenTelemetry SDK's" in proc.stderr


@pytest.mark.parametrize("value", ["console", "otlp,console", "zipkin"])
def test_otel_traces_exporter_names_the_span_exporters(value):
    """OTEL_TRACES_EXPORTER is a list of exporters (the SDK's auto-configuration reads it so): `console`
    prints spans to stdout instead of sending OTLP, `otlp,console` does both, and a name agent-otel has no
    exporter for is said once, not silently replaced by OTLP. Before, anything but `none` meant OTLP."""
    rx = HTTPReceiver()
    try:
        proc, _ = run_script(
            """
            import agent_otel
            agent_otel.setup("svc", store=False, instrument=False)
            with agent_otel.run("a") as run:
                run.call_tool("t", lambda: 1)
            agent_otel.shutdown()
            """,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_EXPORTER": value,
            },
        )
        assert proc.returncode == 0, proc.stderr
        printed = proc.stdout.count('"name": "invoke_agent a"')
        sent = [s.name for s in rx.spans]
        assert len(rx.metric_batches) >= 1  # metrics are OTLP as before (OTEL_METRICS_EXPORTER unset)
        if value == "console":
            assert (printed, sent) == (1, [])
        elif value == "otlp,console":
            assert (printed, sorted(sent)) == (1, ["execute_tool t", "invoke_agent a"])
        else:
            assert (printed, sent) == (0, [])
            assert "OTEL_TRACES_EXPORTER names zipkin" in proc.stderr
    finally:
        rx.stop()


def test_setup_leaves_the_applications_logging_and_warnings_filters_alone():
    """The root logger's level and handlers, every other logger's configuration and the warnings filters
    are the application's: setup(), runs and shutdown() change none of them (the OpenTelemetry SDK's
    get_tracer adds its own `ignore` filter for a deprecation of its own, whoever calls it)."""
    proc, _ = run_script("""
        import logging, warnings
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        warnings.simplefilter("default")

        def state():
            loggers = {
                name: (lg.level, list(lg.handlers), lg.propagate, lg.disabled)
                for name, lg in logging.Logger.manager.loggerDict.items()
                if isinstance(lg, logging.Logger)
            }
            root = logging.getLogger()
            otel = "InstrumentationScope"
            filters = [f for f in warnings.filters if otel not in getattr(f[1], "pattern", "")]
            return root.level, list(root.handlers), filters, logging.root.manager.disable, loggers

        before = state()
        import agent_otel
        agent_otel.setup("svc", store=False, instrument=True)
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        agent_otel.shutdown()
        after = state()
        for i, what in enumerate(("root level", "root handlers", "warnings filters", "disable")):
            assert before[i] == after[i], (what, before[i], after[i])
        changed = {n: v for n, v in after[4].items() if before[4].get(n, (0, [], True, False)) != v}
        assert not changed, changed
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_collector_found_by_probing_is_not_a_second_destination_for_the_applications_spans(
    home, monkeypatch
):
    """No endpoint configured: setup() looks for a collector on localhost. When the application's provider
    already exports OTLP somewhere (opentelemetry-instrument's default is localhost:4317 over gRPC; the base
    install probes :4318 over HTTP), a collector agent-otel merely found is not a destination anyone
    chose: before, every span of the process went there too (twice into one collector listening on both
    ports)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    chosen, found = HTTPReceiver(), HTTPReceiver()
    try:
        monkeypatch.setenv("AGENT_OTEL_PROBE_LOCAL", "true")
        monkeypatch.setattr(otlp_endpoint, "LOCAL_HTTP_PORT", found.port)
        monkeypatch.setattr(otlp_endpoint, "LOCAL_GRPC_PORT", free_port())  # nothing there
        provider = TracerProvider()
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=chosen.endpoint + "/v1/traces"))
        )
        agent_otel.setup("svc", tracer_provider=provider, store=False, instrument=False)
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        agent_otel.shutdown()
        provider.shutdown()
        assert sorted(s.name for s in chosen.spans) == ["execute_tool t", "invoke_agent a"]
        assert found.spans == []
    finally:
        chosen.stop()
        found.stop()


def test_the_run_store_names_the_service_the_spans_name(home):
    """The service of a stored run (`agent-otel show`) is the service.name of the resource the run's spans
    carry: the application's provider's (set in code) or OTEL_RESOURCE_ATTRIBUTES's. Before, it was
    taken only from setup(service_name=...) / OTEL_SERVICE_NAME, and stored runs had none."""
    from opentelemetry.sdk.resources import Resource

    store = str(home / "runs.db")
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    agent_otel.setup(tracer_provider=provider, store=store, instrument=False)
    with agent_otel.run("a"):
        pass
    agent_otel.shutdown()
    with contextlib.closing(sqlite3.connect(store)) as db:
        assert db.execute("SELECT service FROM agent_runs").fetchall() == [("checkout",)]


def test_the_application_flushing_or_shutting_down_its_providers_loses_no_run(home, caplog):
    """The application's force_flush() reaches agent-otel's processors (bounded), and its provider's
    shutdown() ends their export; runs after that are still counted and stored, and agent-otel's own
    shutdown() afterwards neither raises nor warns."""
    import logging

    rx = HTTPReceiver()
    try:
        provider, reader = TracerProvider(), InMemoryMetricReader()
        meters = MeterProvider(metric_readers=[reader])
        store = str(home / "runs.db")
        agent_otel.setup(
            "svc",
            endpoint=rx.endpoint,
            protocol="http/protobuf",
            tracer_provider=provider,
            meter_provider=meters,
            store=store,
            instrument=False,
        )
        with agent_otel.run("before"):
            pass
        assert provider.force_flush()
        assert [s.name for s in rx.spans] == ["invoke_agent before"]
        provider.shutdown()
        with agent_otel.run("after"):
            pass
        with caplog.at_level(logging.WARNING):
            agent_otel.shutdown()
        assert caplog.text == ""
        stops = {a["agent"]: p.value for a, p in metric_points(reader)["agent.stop"] if p.value}
        assert stops == {"before": 1, "after": 1}
        with contextlib.closing(sqlite3.connect(store)) as db:
            assert sorted(db.execute("SELECT agent, status FROM agent_runs")) == [
                ("after", "success"),
                ("before", "success"),
            ]
        assert [s.name for s in rx.spans] == ["invoke_agent before"]
    finally:
        rx.stop()


def test_a_small_span_attribute_limit_keeps_the_attributes_runs_are_found_by(home):
    """The SDK drops the oldest attributes over ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` (an application's
    ``SpanLimits``), and ``agent.run_id``, ``gen_ai.operation.name`` and ``agent.stop_reason`` came
    first: with a limit of 5 a run's span kept its counters only, Tempo found no trace for
    ``agent.run_id``, and the collector's sampling did not know a failed run. Now they are kept (the rest
    is dropped as the application asked)."""
    from opentelemetry.sdk.trace import SpanLimits

    spans = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=5))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    agent_otel.setup("svc", tracer_provider=provider, store=str(home / "runs.db"), instrument=False)

    @agent_otel.tool(name="search", side_effects=True)
    def search(q: str) -> str:
        """Looks a thing up."""
        raise ValueError("down")

    with pytest.raises(ValueError), agent_otel.run("limited") as run:
        run.record_llm(model="gpt-4o", input_tokens=10, output_tokens=5, provider="openai")
        search("x")
    _framework_run(provider.get_tracer("some.framework"), "fw")
    assert sdk.flush(5)
    by_name = {s.name: dict(s.attributes) for s in spans.get_finished_spans()}
    assert by_name["invoke_agent limited"] == by_name["invoke_agent limited"] | {
        "agent.run_id": run.run_id,
        "gen_ai.operation.name": "invoke_agent",
        "agent.stop_reason": "tool_error",
        "gen_ai.agent.name": "limited",
    }
    assert by_name["execute_tool search"] == by_name["execute_tool search"] | {
        "agent.run_id": run.run_id,
        "gen_ai.operation.name": "execute_tool",
        "agent.step_id": 2,
        "gen_ai.tool.name": "search",
    }
    assert by_name["chat gpt-4o"] == by_name["chat gpt-4o"] | {
        "agent.run_id": run.run_id,
        "gen_ai.operation.name": "chat",
        "agent.step_id": 1,
        "gen_ai.request.model": "gpt-4o",
    }
    framework = by_name["invoke_agent fw"]
    assert framework.get("agent.run_id") and framework.get("agent.stop_reason") == "completed", framework


def _setup_for(rx, monkeypatch, **kwargs) -> None:
    """setup() with OTEL_EXPORTER_OTLP_ENDPOINT naming the receiver ``rx`` and ``kwargs`` (no store)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    agent_otel.setup("svc", store=False, instrument=False, **kwargs)


def test_an_otlp_exporter_passed_to_setup_for_the_configured_collector_gets_each_span_and_metric_once(
    home, monkeypatch
):
    """``setup(span_exporters=[OTLP exporter to X], metric_readers=[a reader of one])`` with
    OTEL_EXPORTER_OTLP_ENDPOINT=X: before, agent-otel added its own OTLP exporter and reader to X too, and
    X got every span and metric twice (a backend summing ``gen_ai.usage.*`` counted tokens twice)."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    rx = HTTPReceiver()
    try:
        _setup_for(
            rx,
            monkeypatch,
            span_exporters=[OTLPSpanExporter(endpoint=f"{rx.endpoint}/v1/traces")],
            metric_readers=[
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(
                        endpoint=f"{rx.endpoint.replace('127.0.0.1', 'localhost')}/v1/metrics"
                    ),
                    export_interval_millis=60_000,
                )
            ],
        )
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        # The last export's bound is generous: the full suite on a loaded machine overran the default 1 s
        # (the reader's exporter shut down before its final batch went out); this test counts copies.
        agent_otel.shutdown(timeout_s=10)
        spans, metrics = _receiver_names(rx)
        assert spans == {"invoke_agent a": 1, "execute_tool t": 1}
        assert metrics["agent.stop"] == len(rx.metric_batches) == 1
    finally:
        rx.stop()


def test_an_otlp_exporter_passed_to_setup_for_another_collector_is_added_next_to_agent_otels(
    home, monkeypatch
):
    """An exporter passed to setup() that sends elsewhere is a second destination the user chose."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    rx, other = HTTPReceiver(), HTTPReceiver()
    try:
        _setup_for(rx, monkeypatch, span_exporters=[OTLPSpanExporter(endpoint=f"{other.endpoint}/v1/traces")])
        with agent_otel.run("a"):
            pass
        agent_otel.shutdown()
        assert _receiver_names(rx)[0] == _receiver_names(other)[0] == {"invoke_agent a": 1}
    finally:
        rx.stop()
        other.stop()


class _CountingProcessor:
    """An application's span processor that does not look at the sampled flag (a custom one that counts
    or enriches every span it is given): it is given only the spans the application's sampler records."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span.name)

    def _on_ending(self, span) -> None:
        pass

    def on_end(self, span) -> None:
        self.ended.append(span.name)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _RecordOnlyChat:
    """An application's sampler that records (not samples) chat spans itself and drops the rest."""

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ):
        from opentelemetry.sdk.trace.sampling import Decision, SamplingResult

        decision = Decision.RECORD_ONLY if name.startswith("chat") else Decision.DROP
        return SamplingResult(decision, attributes, None)

    def get_description(self) -> str:
        return "RecordOnlyChat"


@pytest.mark.parametrize("concurrent", [False, True], ids=["synchronous", "concurrent"])
def test_the_applications_span_processors_see_no_span_its_sampler_dropped(home, concurrent):
    """agent-otel records the GenAI spans of traces the application's sampler drops (its runs need them),
    but only its own processors see them: an application's processor that does not check the sampled
    flag was given spans it never saw without agent-otel (a change in what a working application does).
    A span the application's own sampler records is still given to it, and the runs are still complete."""
    from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor
    from opentelemetry.sdk.trace.sampling import Sampler

    Sampler.register(_RecordOnlyChat)
    seen, reader = _CountingProcessor(), InMemoryMetricReader()
    provider = TracerProvider(
        sampler=_RecordOnlyChat(),
        active_span_processor=ConcurrentMultiSpanProcessor(2) if concurrent else None,
        shutdown_on_exit=False,  # its own: the concurrent list's executor is gone at interpreter exit
    )
    provider.add_span_processor(seen)
    agent_otel.setup(
        "svc",
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        store=str(home / "runs.db"),
        instrument=False,
    )
    framework = provider.get_tracer("some.framework")
    for _ in range(3):
        _framework_run(framework, "fw")
        with agent_otel.run("manual") as run:
            run.call_tool("t", lambda: 1)
    assert sdk.flush(5)
    assert seen.started == seen.ended == ["chat m"] * 3  # what the application's sampler recorded
    stops = {a["agent"]: p.value for a, p in metric_points(reader)["agent.stop"] if p.value}
    assert stops == {"fw": 3, "manual": 3}
    agent_otel.shutdown()
    provider.shutdown()


def test_the_applications_sampler_reads_as_before_through_the_provider(home):
    """setup() wraps the provider's sampler (agent_otel.sampling); what the application reads of it
    (its description, a ratio's ``rate``, a parent-based sampler's root) reads as before."""
    sampler = ParentBased(TraceIdRatioBased(0.25))
    provider = TracerProvider(sampler=sampler)
    before = provider.sampler.get_description()
    agent_otel.setup("svc", tracer_provider=provider, store=False, instrument=False)
    assert provider.sampler is not sampler  # wrapped: isinstance checks on it see the wrapper
    assert provider.sampler.get_description() == before
    assert provider.sampler._root.rate == 0.25


def test_a_sampler_the_application_assigns_after_setup_still_drops_no_run(home):
    """Some frameworks set ``provider.sampler = ...`` on the provider they are given, after setup().
    That replaced agent-otel's wrapper: the traces the new sampler drops had no runs (no stop, no usage,
    no store row) for a framework agent's spans. Now the sampler assigned is wrapped as it is set: it
    decides what is exported (nothing, here), and every run is counted."""
    app_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    reader = InMemoryMetricReader()
    agent_otel.setup(
        "svc",
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        store=False,
        instrument=False,
    )
    provider.sampler = ALWAYS_OFF
    assert provider.sampler.get_description() == ALWAYS_OFF.get_description()
    framework = provider.get_tracer("some.framework")  # a tracer taken after the assignment
    for _ in range(5):
        _framework_run(framework, "fw")
    assert sdk.flush(5)
    stops = {a["agent"]: p.value for a, p in metric_points(reader)["agent.stop"] if p.value}
    assert stops == {"fw": 5}
    assert app_spans.get_finished_spans() == ()  # the application's sampler still decides what is exported
    agent_otel.shutdown()
    provider.shutdown()


class _EveryHook(SpanProcessor):
    """An application's processor that overrides the three hooks of a span's life."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_start(self, span, parent_context=None) -> None:
        self.calls.append(("start", span.name))

    def _on_ending(self, span) -> None:
        self.calls.append(("ending", span.name))

    def on_end(self, span) -> None:
        self.calls.append(("end", span.name))


def test_every_hook_an_applications_processor_overrides_or_is_given_is_called_for_every_span(home):
    """The provider's processor list does not call the hooks that do nothing (the SDK's base class's, an
    exporter's processor at a span's start, the bridge at its end: three Python calls a span), and it
    notices processors added while spans are made: each hook an application's processor has, by its class
    or set on the instance before it is added, is called once per span, before and after setup()'s own
    processors."""
    before, after, own = _EveryHook(), _EveryHook(), SpanProcessor()
    given: list[str] = []
    provider = TracerProvider()
    provider.add_span_processor(before)
    agent_otel.setup(
        "svc",
        tracer_provider=provider,
        span_exporters=[InMemorySpanExporter()],
        store=False,
        instrument=False,
    )

    @agent_otel.tool
    def lookup(q: str) -> str:
        return q

    def one_run() -> None:
        with agent_otel.run("agent") as run:
            lookup("a")
            run.record_llm(model="gpt-4o", input_tokens=3, output_tokens=1)

    one_run()
    own.on_end = lambda span: given.append(span.name)  # a hook of the instance's own, set before adding it
    provider.add_span_processor(after)  # added while spans were already being made
    provider.add_span_processor(own)
    one_run()
    names = ["execute_tool lookup", "chat gpt-4o", "invoke_agent agent"]
    expected = Counter((hook, name) for name in names for hook in ("start", "ending", "end"))
    assert Counter(before.calls) == expected + expected  # every hook, once per span
    assert Counter(after.calls) == expected  # the second run's spans
    for calls in (before.calls, after.calls):
        assert calls[0] == ("start", "invoke_agent agent")
        assert calls[-1] == ("end", "invoke_agent agent")
    assert given == names
