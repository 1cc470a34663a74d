"""Helpers for the reliability tests: agent-otel against real receivers that refuse, reject or vanish."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import agent_otel
from agent_otel import conventions as c
from agent_otel import sdk
from tests.helpers import metric_points


class Rig:
    """agent-otel set up in this process with a metric reader the test can read drops from."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def setup(self, endpoint: str | None, config: dict[str, Any], **kwargs: Any) -> Any:
        kwargs.setdefault("store", False)
        return agent_otel.setup(
            "svc",
            endpoint=endpoint,
            instrument=False,
            meter_provider=self.meter_provider,
            config={"exporter.probe_local": False, **config},
            **kwargs,
        )

    def dropped(self) -> dict[tuple[str, str], int]:
        """agent_otel_telemetry_dropped_total as the metric reports it now, by (signal, reason)."""
        return {
            (a["signal"], a["reason"]): p.value
            for a, p in metric_points(self.reader).get(c.M_DROPPED.name, [])
        }

    def counted(self) -> dict[tuple[str, str], int]:
        """The drops counted so far, read directly (the metric shows the same at its next collection)."""
        return sdk._all_drops(sdk.installation())

    @property
    def processor(self) -> Any:
        (processor,) = sdk.installation().span_processors
        return processor


@pytest.fixture
def rig(fresh: None) -> Iterator[Rig]:
    rig = Rig()
    yield rig
    agent_otel.shutdown()
    rig.meter_provider.shutdown(timeout_millis=1000)


def tool_calls(agent: str, tool: str, n: int, arg: str = "") -> int:
    """One run of ``n`` calls of ``tool``; the number of spans it makes (the run's included)."""
    with agent_otel.run(agent) as run:
        for i in range(n):
            run.call_tool(tool, lambda i, arg: len(arg) + i, {"i": i, "arg": arg})
    return n + 1
