"""setup(): one call, idempotent, attaches to existing providers, probes locally, honours OTEL_* variables."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel import otlp_endpoint, sdk
from tests.otlp_receiver import Blackhole, HTTPReceiver, OTLPReceiver, free_port

ROOT = Path(__file__).resolve().parents[1]


def run_script(
    code: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a Python snippet in a fresh interpreter (global OTel providers can only be set once)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    # A PYTHONPATH of the caller's comes first (checking a test against an older src tree).
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    full_env.update({"PYTHONPATH": path, "AGENT_OTEL_PROBE_LOCAL": "false"})
    full_env.update(env or {})
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )
    return proc, time.monotonic() - start


@pytest.fixture
def clean(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith(("OTEL_", "AGENT_OTEL_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    agent_otel.shutdown()
    yield
    agent_otel.shutdown()


def test_setup_twice_adds_nothing(clean, caplog):
    exporter = InMemorySpanExporter()
    cfg = agent_otel.setup(
        "svc",
        span_exporters=[exporter],
        store=False,
        instrument=False,
        config={"exporter": {"probe_local": False}},
    )
    first = sdk.installation()
    processors = len(first.tracer_provider._active_span_processor._span_processors)
    assert (
        agent_otel.setup(
            "svc",
            span_exporters=[exporter],
            store=False,
            instrument=False,
            config={"exporter": {"probe_local": False}},
        )
        is cfg
    )
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        assert agent_otel.setup("other", store=False, instrument=False) is cfg
    assert "already called with other arguments" in caplog.text
    assert sdk.installation() is first
    assert len(first.tracer_provider._active_span_processor._span_processors) == processors
    with agent_otel.run("a"):
        pass
    assert sdk.flush(2)
    assert [s.name for s in exporter.get_finished_spans()] == ["invoke_agent a"]  # exported once


def test_instrument_takes_one_name_as_a_string(clean):
    """``instrument="mcp"`` means the one integration (it raised ValueError: unknown integrations m, c,
    p, after setup had installed everything else)."""
    from agent_otel import integrations

    try:
        agent_otel.setup("svc", store=False, instrument="mcp", config={"exporter": {"probe_local": False}})
        assert sdk.installation().integrations == ["mcp"]
        with pytest.raises(ValueError, match=r"unknown integration\(s\) nosuch; known: langchain"):
            integrations.instrument(["nosuch"])
    finally:
        integrations.uninstrument()


def test_attaches_to_the_applications_existing_providers():
    proc, _ = run_script("""
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import agent_otel
        from agent_otel import sdk
        from tests.helpers import metric_points

        app_spans, app_reader = InMemorySpanExporter(), InMemoryMetricReader()
        tp = TracerProvider(); tp.add_span_processor(SimpleSpanProcessor(app_spans))
        mp = MeterProvider(metric_readers=[app_reader])
        trace.set_tracer_provider(tp); metrics.set_meter_provider(mp)
        ours, our_reader = InMemorySpanExporter(), InMemoryMetricReader()
        agent_otel.setup("svc", span_exporters=[ours], metric_readers=[our_reader], store=False,
                         instrument=False)
        assert trace.get_tracer_provider() is tp and metrics.get_meter_provider() is mp
        with trace.get_tracer("app").start_as_current_span("app-work"):
            pass
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        sdk.flush(2)
        print(sorted(s.name for s in app_spans.get_finished_spans()))
        print(sorted(s.name for s in ours.get_finished_spans()))
        print("agent.stop" in metric_points(app_reader), "agent.stop" in metric_points(our_reader))
        agent_otel.shutdown()
    """)
    assert proc.returncode == 0, proc.stderr
    app, ours, metrics_seen = proc.stdout.splitlines()
    assert app == "['app-work', 'execute_tool t', 'invoke_agent a']"  # the app's exporter keeps working
    assert ours == "['app-work', 'execute_tool t', 'invoke_agent a']"  # ours is attached to its provider
    assert metrics_seen == "True True"


def test_installs_providers_with_a_resource_when_none_exist():
    proc, _ = run_script(
        """
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        import agent_otel
        agent_otel.setup(store=False, instrument=False, service_version="1.2.3", environment="staging")
        tp = trace.get_tracer_provider()
        assert isinstance(tp, TracerProvider) and isinstance(metrics.get_meter_provider(), MeterProvider)
        attrs = dict(tp.resource.attributes)
        for key in ("service.name", "service.version", "deployment.environment.name", "agent_otel.version",
                    "team"):
            print(key, attrs.get(key))
    """,
        env={"OTEL_SERVICE_NAME": "billing-agent", "OTEL_RESOURCE_ATTRIBUTES": "team=payments"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines == {
        "service.name": "billing-agent",
        "service.version": "1.2.3",
        "deployment.environment.name": "staging",
        "agent_otel.version": agent_otel.__version__,
        "team": "payments",
    }


def test_probe_exports_to_a_local_collector_when_one_answers():
    """In a process of its own, as an application meets it: in the test process, after the suite's
    earlier tests (in two fresh-clone CI runs, not alone nor after any one directory of tests), the
    span never left the exporter within a 10 s shutdown ("dropped 1 span (unsent at shutdown)") while the
    same receiver took a subprocess's spans a test later."""
    receiver = OTLPReceiver().start()
    try:
        proc, _ = run_script(
            f"""
            import agent_otel
            from agent_otel import otlp_endpoint, sdk
            otlp_endpoint.LOCAL_GRPC_PORT = {receiver.port}
            agent_otel.setup("svc", store=False, instrument=False)
            print(sdk.installation().otlp)
            with agent_otel.run("a"):
                pass
            agent_otel.shutdown(timeout_s=10)
        """,
            env={"AGENT_OTEL_PROBE_LOCAL": "true"},  # (run_script turns the probe off)
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"grpc http://127.0.0.1:{receiver.port}", proc.stderr
        assert receiver.span_names() == ["invoke_agent a"], proc.stderr
    finally:
        receiver.stop()


def test_without_a_collector_otlp_is_off_and_says_so_once(clean, monkeypatch, caplog):
    monkeypatch.setattr(otlp_endpoint, "LOCAL_GRPC_PORT", free_port())
    monkeypatch.setattr(otlp_endpoint, "LOCAL_HTTP_PORT", free_port())
    with caplog.at_level(logging.DEBUG, logger="agent_otel"):
        start = time.monotonic()
        agent_otel.setup("svc", store=False, instrument=False)
        assert time.monotonic() - start < 1.0
        for _ in range(20):
            with agent_otel.run("a") as run:
                run.call_tool("t", lambda: 1)
        agent_otel.shutdown()
    (record,) = caplog.records
    assert "OTLP export is off" in record.getMessage() and "4317" in record.getMessage()
    # nothing else records these runs (store: false), so it is a warning Python's default logging shows
    assert record.levelno == logging.WARNING and "nothing records these runs" in record.getMessage()


def test_with_the_local_store_the_otlp_off_notice_is_quiet(clean, monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(otlp_endpoint, "LOCAL_GRPC_PORT", free_port())
    monkeypatch.setattr(otlp_endpoint, "LOCAL_HTTP_PORT", free_port())
    with caplog.at_level(logging.DEBUG, logger="agent_otel"):
        agent_otel.setup("svc", store=str(tmp_path / "runs.db"), instrument=False)
        agent_otel.shutdown()
    notices = [r for r in caplog.records if "OTLP export is off" in r.getMessage()]
    assert [r.levelno for r in notices] == [logging.INFO]


def test_http_protobuf_export(clean):
    receiver = HTTPReceiver()
    try:
        agent_otel.setup(
            "svc", endpoint=receiver.endpoint, protocol="http/protobuf", store=False, instrument=False
        )
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        agent_otel.shutdown(timeout_s=10)  # the default 1 s bound ran out on a machine at load 10 (CI: 2)
        assert sorted(s.name for s in receiver.spans) == ["execute_tool t", "invoke_agent a"]
        assert receiver.metric_requests >= 1
    finally:
        receiver.stop()


def test_standard_endpoint_variable_is_honoured():
    receiver = OTLPReceiver().start()
    try:
        proc, _ = run_script(
            """
            import agent_otel
            agent_otel.setup(store=False, instrument=False)
            with agent_otel.run("env-agent"):
                pass
        """,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
        )
        assert proc.returncode == 0, proc.stderr
        # Flushed at interpreter exit, metrics too (the run ended before the first export interval). On
        # Python 3.12, which starts no thread from an atexit hook, both were lost without a word.
        assert receiver.span_names() == ["invoke_agent env-agent"]
        stops = [
            m.name
            for batch in receiver.metric_batches
            for rm in batch.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        ]
        assert "agent.stop" in stops, proc.stderr  # agent_stop_total in Prometheus
    finally:
        receiver.stop()


def test_otel_sdk_disabled_produces_no_telemetry_but_agents_run(tmp_path):
    receiver = OTLPReceiver().start()
    events = tmp_path / "events.jsonl"
    try:
        proc, _ = run_script(
            f"""
            import agent_otel
            agent_otel.setup(store=False, instrument=False, events={str(events)!r})
            with agent_otel.run("a") as run:
                print(run.call_tool("t", lambda: 41) + 1, run.trace_id)
        """,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SDK_DISABLED": "true"},
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["42", "None"]
        assert receiver.count() == 0
        assert '"stop_reason":"completed"' in events.read_text()
    finally:
        receiver.stop()


@pytest.mark.parametrize("collector", ["closed port", "accepts but never answers"])
def test_interpreter_exit_is_bounded_with_the_collector_down(collector):
    hole = Blackhole() if collector != "closed port" else None
    endpoint = hole.endpoint if hole else f"http://127.0.0.1:{free_port()}"
    try:
        proc, elapsed = run_script(
            """
            import time
            import agent_otel
            agent_otel.setup("svc", store=False, instrument=False)
            with agent_otel.run("a") as run:
                for i in range(1000):
                    run.call_tool("t", lambda i: i, {"i": i})
            print(run.result.stop_reason)
            print(time.monotonic())  # (the system's clock: the test reads it too)
        """,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint},
        )
        exited = time.monotonic()
    finally:
        if hole:
            hole.close()
    assert proc.returncode == 0, proc.stderr
    reason, finished = proc.stdout.split()
    assert reason == "completed"
    assert "Traceback" not in proc.stderr
    # From the script's last line to the process gone: a 1 s bounded shutdown (the SDK alone would take
    # 7-40 s here). Timed from there, not from the start, so that a loaded machine's slow interpreter
    # start and 1000 calls do not count.
    assert exited - float(finished) < 3, (exited - float(finished), elapsed, proc.stderr)
