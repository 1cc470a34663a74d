"""Fixtures for the run store: a clean agent-otel environment, agents set up with a store, subprocesses."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel

CLEARED_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
    "AGENT_OTEL_CONFIG",
    "AGENT_OTEL_EVENTS",
    "AGENT_OTEL_STORE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[None]:
    for var in CLEARED_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGENT_OTEL_PROBE_LOCAL", "false")
    agent_otel.shutdown()
    yield
    agent_otel.shutdown()


@pytest.fixture
def setup_agent() -> Callable[..., InMemorySpanExporter]:
    """``setup_agent(store=...)``: agent_otel set up with an in-memory span exporter standing in for OTLP."""

    def start(**kwargs: Any) -> InMemorySpanExporter:
        exporter = InMemorySpanExporter()
        config = {"exporter": {"probe_local": False, "schedule_delay_s": 0.05}}
        config.update(kwargs.pop("config", {}))
        agent_otel.setup("store-test", span_exporters=[exporter], instrument=False, config=config, **kwargs)
        return exporter

    return start


@agent_otel.tool(name="search")
def search(query: str) -> dict[str, Any]:
    return {"hits": [query.upper()]}


@agent_otel.tool(name="http.get")
def http_get(url: str) -> dict[str, Any]:
    if "fail" in url:
        raise ConnectionError(url)
    return {"status": 200}


def one_run(i: int = 0, fail: bool = False) -> str:
    """A small real run: two tools, one LLM call; returns its run_id."""
    with agent_otel.run(
        "support-agent", model="gpt-4o", prompt_version="v12", tools_version="3", input={"i": i}
    ) as r:
        search(query=f"q{i}")
        r.record_llm(input_tokens=800, output_tokens=90)
        with contextlib.suppress(ConnectionError):
            http_get(url=f"https://x/{'fail' if fail else 'ok'}/{i}")
    return r.run_id


def run_python(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    """Run ``code`` in a fresh interpreter (the test's), returning the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
