"""Span export against a real OTLP receiver that refuses: too large, rejected for good, refused for now.

The receivers (tests/otlp_receiver.py) speak real OTLP over gRPC (grpcio) and HTTP on 127.0.0.1; the
gRPC one enforces its receive limit the way the collector does (4 MiB by default, RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import pytest

import agent_otel
from agent_otel import sdk
from agent_otel.export import MAX_STRIKES
from tests.otlp_receiver import HTTPReceiver, OTLPReceiver
from tests.reliability.conftest import tool_calls


def poll(check, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def test_spans_beyond_the_collectors_4_mib_limit_are_split_and_all_arrive(rig):
    """The issue's case: store_args on, big arguments, ~500 spans per batch > 4 MiB: 0 of 821 arrived."""
    receiver = OTLPReceiver().start()  # grpcio's default receive limit is the collector's: 4 MiB
    try:
        rig.setup(
            receiver.endpoint,
            # Batches of 512 spans, sent when the queue reaches 512 (the timer is far away) or at flush.
            {
                "logging.events.store_args": True,
                "redaction.max_chars": 16384,
                "exporter.schedule_delay_s": 30,
            },
        )
        spans = tool_calls("big", "fetch", 820, arg="x" * 9000)  # ~9.3 KB per span: ~4.8 MB per 512
        sdk.flush()
        assert receiver.wait_for(spans, 60) == spans
        assert max(size for size, _, _ in receiver.requests) <= 4 << 20
        assert all(status == "OK" for _, _, status in receiver.requests)
        assert rig.dropped() == {}
    finally:
        receiver.stop()


def test_a_collector_with_a_lower_limit_gets_smaller_requests(rig, caplog):
    """A collector configured below 4 MiB answers RESOURCE_EXHAUSTED: the request is split, not resent."""
    receiver = OTLPReceiver(max_message_bytes=256 << 10).start()
    try:
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            # One batch of all the spans at the flush (the timer is far away: a slow machine producing them
            # for longer than a short delay sent small batches that fit, and nothing was refused).
            rig.setup(receiver.endpoint, {"logging.events.store_args": True, "exporter.schedule_delay_s": 30})
            spans = tool_calls("big", "fetch", 300, arg="y" * 3000)  # ~3.5 KB per span: ~1 MB in all
            sdk.flush()
            assert receiver.wait_for(spans, 60) == spans
        # grpcio refuses oversized messages before the service sees them: what arrived is what fit.
        assert max(size for size, _, _ in receiver.requests) <= 256 << 10
        assert rig.dropped() == {}
        warnings = [r.getMessage() for r in caplog.records if "refused a span request" in r.getMessage()]
        assert len(warnings) == 1, warnings  # it learns the limit once, then sends requests that fit
    finally:
        receiver.stop()


def _poisoned(spans) -> bool:
    return any(span.name == "execute_tool poison" for span in spans)


@pytest.mark.parametrize(
    "protocol, refusal",
    [("grpc", grpc.StatusCode.INVALID_ARGUMENT), ("grpc", grpc.StatusCode.PERMISSION_DENIED), ("http", 400)],
)
def test_a_batch_the_collector_rejects_is_dropped_once_counted_and_blocks_nothing(
    rig, protocol, refusal, caplog
):
    """INVALID_ARGUMENT was resent 43 times and nothing after it was exported."""
    answer = lambda spans: refusal if _poisoned(spans) else None  # noqa: E731
    receiver = OTLPReceiver(answer=answer).start() if protocol == "grpc" else HTTPReceiver(answer=answer)
    try:
        endpoint = receiver.endpoint
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            rig.setup(endpoint, {"exporter.schedule_delay_s": 0.05, "exporter.protocol": _protocol(protocol)})
            produced = tool_calls("a", "poison", 1)
            assert poll(lambda: receiver.requests)
            produced += tool_calls("a", "ok", 50)
            delivered = receiver.wait_for(51) if protocol == "grpc" else _wait_http(receiver, 51)
        refused = [r for r in receiver.requests if r[2] not in ("OK", 200)]
        assert len(refused) == 1, receiver.requests  # sent once, never again
        rejected_spans = refused[0][1]
        assert delivered == produced - rejected_spans
        assert rig.dropped() == {("spans", "rejected"): rejected_spans}
        warnings = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
        assert len(warnings) == 1 and str(getattr(refusal, "name", refusal)) in warnings[0]
    finally:
        receiver.stop()


@pytest.mark.parametrize("protocol, refusal", [("grpc", grpc.StatusCode.UNAVAILABLE), ("http", 503)])
def test_a_batch_refused_for_now_again_and_again_while_others_pass_is_dropped_after_bounded_resends(
    rig, protocol, refusal
):
    """A retryable refusal is resent, but not forever when the collector keeps taking everything else."""
    answer = lambda spans: refusal if _poisoned(spans) else None  # noqa: E731
    receiver = OTLPReceiver(answer=answer).start() if protocol == "grpc" else HTTPReceiver(answer=answer)
    try:
        rig.setup(
            receiver.endpoint, {"exporter.schedule_delay_s": 0.05, "exporter.protocol": _protocol(protocol)}
        )
        produced = tool_calls("a", "poison", 1)
        assert poll(lambda: receiver.requests)
        # Traffic goes on; each of its requests passes while the poisoned one keeps being refused.
        deadline = time.monotonic() + 60
        while ("spans", "retries_exhausted") not in rig.counted():
            assert time.monotonic() < deadline, receiver.requests
            produced += tool_calls("a", "ok", 3)
            time.sleep(0.1)
        refused = [r for r in receiver.requests if r[2] not in ("OK", 200)]
        # Its first refusal, one more before other requests had passed, then MAX_STRIKES while they did.
        assert MAX_STRIKES <= len(refused) <= MAX_STRIKES + 2
        assert len({spans for _, spans, _ in refused}) == 1  # the same batch each time
        dropped = rig.counted()
        assert dropped == {("spans", "retries_exhausted"): refused[0][1]}
        ok = produced - refused[0][1]
        assert (receiver.wait_for(ok) if protocol == "grpc" else _wait_http(receiver, ok)) == ok
    finally:
        receiver.stop()


def test_a_batch_refused_for_now_is_resent_until_the_collector_takes_it(rig):
    """The other side of the bound: an outage (every request refused) never exhausts a batch."""
    down = {"until": time.monotonic() + 4.0}
    receiver = OTLPReceiver(
        answer=lambda spans: grpc.StatusCode.UNAVAILABLE if time.monotonic() < down["until"] else None
    ).start()
    try:
        rig.setup(receiver.endpoint, {"exporter.schedule_delay_s": 0.05})
        produced = 0
        while time.monotonic() < down["until"] + 0.5:
            produced += tool_calls("a", "ok", 5)
            time.sleep(0.05)
        assert receiver.wait_for(produced, 30) == produced
        assert sum(1 for r in receiver.requests if r[2] != "OK") >= 2
        assert rig.dropped() == {}
    finally:
        receiver.stop()


@pytest.mark.parametrize("status", [429, 408])
def test_http_429_and_408_are_retried_not_dropped(rig, status):
    refusals = {"left": 3}

    def answer(spans):
        if refusals["left"]:
            refusals["left"] -= 1
            return status
        return None

    receiver = HTTPReceiver(answer=answer)
    try:
        rig.setup(
            receiver.endpoint, {"exporter.schedule_delay_s": 0.05, "exporter.protocol": "http/protobuf"}
        )
        produced = tool_calls("a", "ok", 20)
        assert _wait_http(receiver, produced) == produced
        assert rig.dropped() == {}
    finally:
        receiver.stop()


def _protocol(name: str) -> str:
    return "grpc" if name == "grpc" else "http/protobuf"


def _wait_http(receiver: HTTPReceiver, n: int, timeout_s: float = 20.0) -> int:
    poll(lambda: len(receiver.spans) >= n, timeout_s)
    return len(receiver.spans)


def test_spans_are_retried_as_encoded_requests_within_the_byte_budget(rig):
    """While the collector refuses, spans wait as OTLP bytes, accounted at their real size."""
    receiver = OTLPReceiver(answer=lambda spans: grpc.StatusCode.UNAVAILABLE).start()
    try:
        rig.setup(
            receiver.endpoint,
            {"exporter.schedule_delay_s": 0.05, "exporter.retry_buffer_mb": 0.5, "exporter.batch_size": 64},
        )
        processor = rig.processor
        produced = 0
        for _ in range(30):
            produced += tool_calls("a", "t", 99, arg="z" * 200)
            # Spans waiting for the exporter thread count against the same budget (test_memory.py): paced,
            # the thread keeps up, so they reach the retry buffer however loaded the machine is.
            poll(lambda: len(processor._queue) < 64)
        assert poll(lambda: processor.retry_bytes > (1 << 19) * 0.8)
        retained = list(processor._retry)
        assert retained and all(isinstance(b.payload, bytes) for b in retained)
        assert processor.retry_bytes == sum(b.size for b in retained) <= 1 << 19
        assert all(b.size - len(b.payload) < 100 for b in retained)
        inst = sdk.installation()
        sdk.shutdown()
    finally:
        receiver.stop()
    # Nothing arrived, and every span is accounted for: the buffer's overflow and what was left at exit.
    counted = sdk._all_drops(inst)
    assert set(counted) <= {("spans", "retry_buffer_full"), ("spans", "unsent_at_shutdown")}
    assert sum(counted.values()) == produced


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_otlp_headers_and_compression_variables_apply_to_spans(rig, monkeypatch, protocol):
    """Spans no longer go through the SDK's exporter: its variables must still be honoured."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret,x-tenant=blue")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    receiver = OTLPReceiver().start() if protocol == "grpc" else HTTPReceiver()
    try:
        rig.setup(
            receiver.endpoint, {"exporter.schedule_delay_s": 0.05, "exporter.protocol": _protocol(protocol)}
        )
        produced = tool_calls("a", "ok", 3)
        delivered = receiver.wait_for(produced) if protocol == "grpc" else _wait_http(receiver, produced)
        assert delivered == produced
        assert receiver.headers["x-api-key"] == "s3cret" and receiver.headers["x-tenant"] == "blue"
        if protocol == "http":  # (grpcio handles gRPC's compression below what a servicer can see)
            assert receiver.headers["content-encoding"] == "gzip"
    finally:
        receiver.stop()


def _tool_names(requests) -> set[str]:
    """The ``tool`` attribute values of every data point in these metric requests."""
    return {
        attribute.value.string_value
        for request in requests
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in getattr(metric, metric.WhichOneof("data")).data_points
        for attribute in point.attributes
        if attribute.key == "tool"
    }


def _setup_fast_metrics(endpoint: str, protocol: str, config: dict[str, Any] | None = None) -> None:
    """setup() exporting to ``endpoint`` only, metrics every 0.2 s, no store."""
    agent_otel.setup(
        "svc",
        endpoint=endpoint,
        instrument=False,
        store=False,
        config={
            "exporter.probe_local": False,
            "exporter.protocol": protocol,
            "exporter.metric_interval_s": 0.2,
            **(config or {}),
        },
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_metrics_of_many_series_are_split_under_the_request_limit(fresh, protocol):
    """Metrics are cumulative: every export carries every series seen so far (tools x agents x outcomes),
    so requests grow and never shrink. Unsplit, the first one over the collector's limit was refused and
    resent, every later one was larger, and metric export stopped for good while spans went on."""
    limit = 8 << 10
    if protocol == "grpc":
        receiver: Any = OTLPReceiver(max_message_bytes=limit).start()
    else:
        receiver = HTTPReceiver()
    try:
        _setup_fast_metrics(receiver.endpoint, protocol, {"exporter.max_request_mb": limit / (1 << 20)})
        names = {f"tool_{k}" for k in range(150)}  # ~13 KB of cumulative metrics, in ~470 data points
        with agent_otel.run("many-tools") as run:
            for name in sorted(names):
                run.call_tool(name, lambda: "ok", {})
        # Every series arrives within a few export intervals, in requests the collector takes.
        assert poll(lambda: names <= _tool_names(list(receiver.metric_batches)), 20.0)
        if protocol == "http/protobuf":
            assert max(receiver.metric_sizes) <= limit
    finally:
        agent_otel.shutdown()
        receiver.stop()


def _invocations(request, tool: str) -> float | None:
    """The cumulative tool-invocation count of ``tool`` in one metric request (None: not in it)."""
    from agent_otel import conventions

    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == conventions.M_TOOL_INVOCATIONS.name:
                    for point in metric.sum.data_points:
                        if any(a.value.string_value == tool for a in point.attributes):
                            return point.as_double or point.as_int
    return None


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_after_metric_export_fails_the_newest_batch_goes_first(fresh, monkeypatch, caplog, temporality):
    """Metrics are cumulative: a newer batch holds everything an older one does. A batch that failed was
        resent before the newer ones queued behind it, so after a collector rejected metrics for a while (a
        pipeline misconfigured, then fixed) the first counts to arrive were stale, and a batch rejected for
        good held up every later one until eight more had queued (eight export intervals). Now a newer batch
        replaces a failed one: the first request accepted carries the newest counts. (With delta temporality,
    which an operator can choose, batches are still sent oldest first.)"""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", temporality)
    tool = f"poll_{temporality}"  # counts of a tool outlive shutdown() in this process: one per case
    receiver = HTTPReceiver()
    receiver.metric_status = 400  # rejected for good: the SDK's exporter does not retry it itself
    try:
        _setup_fast_metrics(receiver.endpoint, "http/protobuf")
        with agent_otel.run("polling") as run:
            for i in range(3):
                run.call_tool(tool, lambda i: "ok", {"i": i})
            # A batch with the first 3 calls is refused, and then resent after a back-off...
            assert poll(lambda: receiver.metric_refused >= 2, 20.0)
            for i in range(3, 7):
                run.call_tool(tool, lambda i: "ok", {"i": i})
            # ... while a newer batch with all 7 is collected behind it: the counts come from the event
            # pipeline, then a collection now (a fixed wait for the next interval failed under load).
            installation = sdk.installation()
            assert installation is not None and installation.pipeline.flush(10)
            before = receiver.metric_refused
            installation.otlp_metric_reader.collect(timeout_millis=5000)
            # A send under way now is refused, and the sender backs off: the collector recovers after
            # that (a batch in flight when it recovers would be taken first, whatever its age).
            assert poll(lambda: receiver.metric_refused > before, 20.0)
            refused = receiver.metric_refused
        receiver.metric_status = None
        assert refused >= 2
        # The warning says why (the SDK's exporter only returns FAILURE; its own log line is silenced).
        # (Only this receiver's: under load a reader of an earlier test may still report its own port.)
        failing = [r.getMessage() for r in caplog.records if "metrics export is failing" in r.getMessage()]
        assert len([m for m in failing if "400" in m]) == 1, failing
        if temporality == "cumulative":
            assert poll(lambda: receiver.metric_batches, 20.0)
            assert _invocations(receiver.metric_batches[0], tool) == 7
        else:  # each batch its own increments: all of them arrive, none skipped
            counts = lambda: sum(_invocations(b, tool) or 0 for b in receiver.metric_batches)  # noqa: E731
            assert poll(lambda: counts() == 7, 20.0), counts()
    finally:
        agent_otel.shutdown()
        receiver.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_certificate_file_that_cannot_be_read_fails_the_export_not_setup(
    rig, monkeypatch, caplog, tmp_path, protocol
):
    """An operator's typo in OTEL_EXPORTER_OTLP_CERTIFICATE: over gRPC, setup() raised FileNotFoundError
    into the application, which did not start. Now, as over HTTP, the agent runs and one warning names
    the file; the spans are kept for retry (and counted if never sent)."""
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(missing))
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        rig.setup(
            "https://127.0.0.1:9",  # never reached: the certificate is read first
            {"exporter.schedule_delay_s": 0.05, "exporter.protocol": _protocol(protocol)},
        )
        assert tool_calls("a", "ok", 2) == 3  # the agent runs
        # (Metrics go through the SDK's exporter, whose failure says less; under load it can come first.)
        poll(lambda: any("spans export is failing" in r.getMessage() for r in caplog.records))
    (failing,) = [r.getMessage() for r in caplog.records if "spans export is failing" in r.getMessage()]
    assert str(missing) in failing


def test_a_metrics_only_endpoint_exports_metrics_and_spans_to_that_host(rig, monkeypatch):
    """OTEL_EXPORTER_OTLP_METRICS_ENDPOINT alone (no generic or traces endpoint), no collector on
    localhost: "OTLP export is off: no endpoint configured", and neither signal went anywhere. Now, as
    for a traces-only URL, the other signal goes to the same host."""
    receiver = HTTPReceiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{receiver.endpoint}/v1/metrics")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        rig.setup(None, {"exporter.schedule_delay_s": 0.05})
        produced = tool_calls("a", "ok", 2)
        assert sdk.flush(10)
        assert _wait_http(receiver, produced) == produced
        assert poll(lambda: receiver.metric_requests > 0)
    finally:
        receiver.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_password_in_the_endpoint_is_not_printed_by_the_export_warnings(fresh, caplog, protocol):
    """gRPC's errors quote the target with its user info (``u:pw@host:port``): the "export is failing"
    warnings printed the password of an endpoint such as http://user:pw@collector:4317."""
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        # (nothing listens on port 9)
        _setup_fast_metrics(
            "http://app:hunter2secret@127.0.0.1:9", protocol, {"exporter.schedule_delay_s": 0.05}
        )
        try:
            tool_calls("a", "ok", 2)
            failing = lambda: [r for r in caplog.records if "export is failing" in r.getMessage()]  # noqa: E731
            assert poll(lambda: len(failing()) == 2, 30.0), [r.getMessage() for r in caplog.records]
        finally:
            agent_otel.shutdown()
    assert not [r.getMessage() for r in caplog.records if "hunter2secret" in r.getMessage()]


@pytest.mark.parametrize("bad", ["missing", "directory"])
def test_a_certificate_file_that_cannot_be_read_is_one_warning_line_for_grpc_metrics(
    fresh, monkeypatch, caplog, tmp_path, bad
):
    """The SDK's gRPC metric exporter read OTEL_EXPORTER_OTLP_CERTIFICATE itself during setup(): a file
    that does not exist logged an ERROR with a traceback (from `opentelemetry.exporter...`), and one it
    may not read (here a directory) raised out of setup(). Now it is one warning line naming the file and
    the variable, as for spans, no traceback, and setup() returns."""
    path = tmp_path / "no-such-ca.pem"
    if bad == "directory":
        path.mkdir()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(path))
    with caplog.at_level(logging.WARNING):
        agent_otel.setup(
            "svc",
            endpoint="https://127.0.0.1:9",
            protocol="grpc",
            instrument=False,
            store=False,
            config={"exporter.probe_local": False},
        )
        agent_otel.shutdown()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    (line,) = [r.getMessage() for r in caplog.records if "metrics are exported" in r.getMessage()]
    assert str(path) in line and "OTEL_EXPORTER_OTLP_CERTIFICATE" in line and "\n" not in line


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_names_that_are_not_utf8_cost_no_span_of_the_batch_and_no_metric_series(fresh, protocol, capfd):
    """An agent, tool or model named from bytes that are not UTF-8 (``os.fsdecode`` of a file name): the
    OTLP encoder refused the span's name, and so the whole batch (the other runs' spans too: 0 of 5
    arrived); it left out such a value as an attribute or a metric label (the series summed into an
    agent-less one), as it did an application's int attribute beyond 64 bits, and logged a traceback at
    every export. Now the text goes out as its backslash escape, as the run store keeps it, and the int
    as its decimal text."""
    import os

    if protocol == "grpc":
        receiver: Any = OTLPReceiver().start()
    else:
        receiver = HTTPReceiver()
    agent, tool, model = (os.fsdecode(b"agent-\xff"), os.fsdecode(b"tool-\xfd"), os.fsdecode(b"m-\xfe"))
    try:
        _setup_fast_metrics(receiver.endpoint, protocol, {"exporter.schedule_delay_s": 0.05})
        with agent_otel.run(agent, model=model) as run:
            run.call_tool(tool, lambda x: x, {"x": 1})
            run.record_llm(model=model, input_tokens=3, output_tokens=2)
        with agent_otel.run("plain") as run:
            run.call_tool("lookup", lambda: 1)
        from opentelemetry import trace

        # an int beyond OTLP's 64 bits: the encoder left the attribute out, with a traceback
        with trace.get_tracer("app").start_as_current_span("app-span", attributes={"big": 2**70}):
            pass
        assert sdk.flush(10)
        names = {"invoke_agent agent-\\udcff", "execute_tool tool-\\udcfd", "chat m-\\udcfe", "app-span"}
        names |= {"invoke_agent plain", "execute_tool lookup"}
        assert poll(lambda: {s.name for s in receiver.spans} == names, 10.0), [s.name for s in receiver.spans]
        by_name = {s.name: {a.key: a.value.string_value for a in s.attributes} for s in receiver.spans}
        assert by_name["execute_tool tool-\\udcfd"]["gen_ai.tool.name"] == "tool-\\udcfd"
        assert by_name["chat m-\\udcfe"]["gen_ai.request.model"] == "m-\\udcfe"
        assert by_name["invoke_agent agent-\\udcff"]["gen_ai.agent.name"] == "agent-\\udcff"
        assert by_name["app-span"]["big"] == str(2**70)

        def stop_agents() -> set[str]:
            """The agent label of every run counted (the process's earlier tests' agents too)."""
            return {
                {a.key: a.value.string_value for a in point.attributes}.get("agent", "(none)")
                for batch in list(receiver.metric_batches)
                for rm in batch.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
                if metric.name == "agent.stop"
                for point in metric.sum.data_points
                if point.as_int
            }

        assert poll(lambda: {"agent-\\udcff", "plain"} <= stop_agents(), 10.0), stop_agents()
        assert "(none)" not in stop_agents()
    finally:
        agent_otel.shutdown()
        receiver.stop()
    assert "Traceback" not in capfd.readouterr().err


_NOT_UTF8_SERVICE = """
import os, sys, agent_otel
agent_otel.setup(os.fsdecode(b"svc-\\xff"), endpoint=sys.argv[1], protocol=sys.argv[2], store=False,
                 instrument=False, config={"exporter": {"probe_local": False}})
with agent_otel.run("a") as run:
    run.call_tool("t", lambda: 1)
agent_otel.shutdown(timeout_s=10)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_service_name_that_is_not_utf8_reaches_the_collector_escaped(protocol):
    """``OTEL_SERVICE_NAME`` read from bytes that are not UTF-8 (or a name given so): the encoder refused
    every span batch and left ``service.name`` out of every metric export, with a traceback each time."""
    from tests.store.conftest import run_python

    receiver: Any = OTLPReceiver().start() if protocol == "grpc" else HTTPReceiver()
    try:
        proc = run_python(
            _NOT_UTF8_SERVICE, receiver.endpoint, protocol, env={"AGENT_OTEL_PROBE_LOCAL": "false"}
        )
        time.sleep(0.2)  # (the receiver's handler threads)
        spans = [s.name for s in receiver.spans]
        services = {
            a.value.string_value
            for batch in list(receiver.metric_batches)
            for rm in batch.resource_metrics
            for a in rm.resource.attributes
            if a.key == "service.name"
        }
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    assert sorted(spans) == ["execute_tool t", "invoke_agent a"], proc.stderr
    assert services == {"svc-\\udcff"}, proc.stderr
    assert "Traceback" not in proc.stderr
