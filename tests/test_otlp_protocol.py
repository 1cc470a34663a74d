"""Which OTLP transport setup() picks, and what it says when gRPC is asked for without the grpc extra.

The base install has only the http/protobuf exporter (the OTLP specification's default); gRPC is the
``grpc`` extra. Here the extra's absence is simulated in-process (``otlp_endpoint.grpc_available``); the
test that installs the wheel into a fresh venv (tests/test_packaging.py) checks the same with the real
absence.
"""

from __future__ import annotations

import importlib.util
import logging
import socket

import pytest

import agent_otel
from agent_otel import otlp_endpoint, sdk
from tests.otlp_receiver import HTTPReceiver, OTLPReceiver, free_port
from tests.test_setup import clean  # noqa: F401 (the fixture)

# No OTEL_*/AGENT_OTEL_* variables from outside, and setup() undone before and after each test.
pytestmark = pytest.mark.usefixtures("clean")

# These tests are about which transport carries the spans, not how fast: shutdown may take as long as a
# loaded machine needs to deliver them (the 1 s default bound once left 2 spans unsent in CI).
PATIENT = {"exporter": {"shutdown_timeout_s": 30}}


@pytest.fixture
def no_grpc(monkeypatch):
    monkeypatch.setattr(otlp_endpoint, "grpc_available", lambda: False)


def test_grpc_available_asks_for_the_extra_without_importing_it(monkeypatch):
    assert otlp_endpoint.grpc_available()  # the test venv has the grpc extra
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a)
    )
    assert not otlp_endpoint.grpc_available()


@pytest.mark.parametrize(
    ("setup_kwargs", "env", "says"),
    [
        (
            {"endpoint": "http://127.0.0.1:4317"},
            {},
            "endpoint http://127.0.0.1:4317 means OTLP/gRPC (port 4317)",
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "(exporter.protocol from env:OTEL_EXPORTER_OTLP_PROTOCOL)",
        ),
        (
            {"protocol": "grpc"},
            {"AGENT_OTEL_PROBE_LOCAL": "false"},
            "exporter.protocol is grpc (from argument)",
        ),
    ],
)
def test_grpc_without_the_extra_is_one_warning_and_no_otlp(
    no_grpc, monkeypatch, caplog, tmp_path, setup_kwargs, env, says
):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.DEBUG, logger="agent_otel"):
        # The local store records the runs, yet a configured endpoint going unused is a warning.
        agent_otel.setup("svc", store=str(tmp_path / "runs.db"), instrument=False, **setup_kwargs)
        assert sdk.installation().otlp is None
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        assert run.result.stop_reason == "completed"
        agent_otel.shutdown()
    # One word about the export (a loaded machine may add a shutdown's drop count, which is not about it).
    (record,) = [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO and any(w in r.getMessage().lower() for w in ("otlp", "grpc", "export"))
    ]
    message = record.getMessage()
    assert record.levelno == logging.WARNING and "\n" not in message
    assert message.startswith("agent-otel: OTLP export is off: ") and says in message
    assert "pip install 'agent-otel[grpc]'" in message and "http/protobuf" in message


def test_without_the_extra_another_port_means_http_protobuf(no_grpc, caplog):
    receiver = HTTPReceiver()
    try:
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            agent_otel.setup("svc", endpoint=receiver.endpoint, config=PATIENT, store=False, instrument=False)
            assert sdk.installation().otlp == f"http/protobuf {receiver.endpoint}"
            with agent_otel.run("a") as run:
                run.call_tool("t", lambda: 1)
            agent_otel.shutdown()
        assert sorted(s.name for s in receiver.spans) == ["execute_tool t", "invoke_agent a"]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        receiver.stop()


def test_with_the_extra_another_port_still_means_grpc():
    """Nothing changes for an installation that has gRPC: an endpoint without a protocol is OTLP/gRPC."""
    receiver = OTLPReceiver().start()
    try:
        agent_otel.setup("svc", endpoint=receiver.endpoint, config=PATIENT, store=False, instrument=False)
        assert sdk.installation().otlp == f"grpc {receiver.endpoint}"
        with agent_otel.run("a") as run:
            run.call_tool("t", lambda: 1)
        agent_otel.shutdown()
        assert sorted(receiver.span_names()) == ["execute_tool t", "invoke_agent a"]
    finally:
        receiver.stop()


def test_the_local_probe_without_the_extra_uses_4318_and_explains_4317(no_grpc, monkeypatch, caplog):
    grpc_port, http_port = free_port(), free_port()
    monkeypatch.setattr(otlp_endpoint, "LOCAL_GRPC_PORT", grpc_port)
    monkeypatch.setattr(otlp_endpoint, "LOCAL_HTTP_PORT", http_port)
    with socket.socket() as listener:  # something answers on the "gRPC" port only
        listener.bind(("127.0.0.1", grpc_port))
        listener.listen()
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            agent_otel.setup("svc", store=False, instrument=False)
        assert sdk.installation().otlp is None
        agent_otel.shutdown()
    (record,) = [r for r in caplog.records if "OTLP export is off" in r.getMessage()]
    assert "a collector answers on localhost:4317 (OTLP/gRPC), but" in record.getMessage()
    assert "agent-otel[grpc]" in record.getMessage()
    receiver = HTTPReceiver()
    try:
        monkeypatch.setattr(otlp_endpoint, "LOCAL_HTTP_PORT", receiver.port)
        agent_otel.setup("svc", store=False, instrument=False)
        assert sdk.installation().otlp == f"http/protobuf http://127.0.0.1:{receiver.port}"
    finally:
        agent_otel.shutdown()
        receiver.stop()
