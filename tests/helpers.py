"""Shared test helpers: prerequisites that fail under CI and skip locally, and an in-memory telemetry rig."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisite(what: str, install: str) -> None:
    """Fail under CI=true (a missing prerequisite is a broken CI), skip locally naming the fix."""
    message = f"{what} is missing; install it with: {install}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def script_env(tmp_path: Any, **extra: str) -> dict[str, str]:
    """The environment of a script a test runs as a process of its own: agent-otel from this checkout, a
    home of its own under ``tmp_path``, none of the OTEL_*/AGENT_OTEL_* variables of the test's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), repo, extra.pop("PYTHONPATH", "")) if p)
    env.update(AGENT_OTEL_HOME=str(tmp_path / "home"), PYTHONPATH=path, **extra)
    return env


def require_binary(name: str, install: str, candidates: Iterable[str] = ()) -> str:
    """Path of an executable from PATH or ``candidates``; otherwise fail (CI) or skip (local)."""
    found = shutil.which(name)
    if found:
        return found
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    missing_prerequisite(f"the `{name}` binary", install)
    raise AssertionError("unreachable")


def metric_points(reader: Any) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """{metric name: [(attributes, point)]} from an InMemoryMetricReader."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    out.setdefault(metric.name, []).append((dict(point.attributes), point))
    return out


@contextlib.contextmanager
def attached_span_processor(provider: Any, processor: Any) -> Iterator[Any]:
    """An application's span processor on ``provider`` for the block only. Left attached to the global
    TracerProvider, it keeps every later test's spans (tests/reliability/test_memory.py measured them as
    held memory); the SDK has no public way to remove a processor."""
    provider.add_span_processor(processor)
    try:
        yield processor
    finally:
        processor.shutdown()
        active = provider._active_span_processor
        with active._lock:
            active._span_processors = tuple(p for p in active._span_processors if p is not processor)
