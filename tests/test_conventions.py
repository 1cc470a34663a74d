"""The OpenTelemetry metric names and units turn into exactly the Prometheus names of DESIGN.md.

``prometheus_name`` implements the translation rules of the OpenTelemetry specification
("Prometheus and OpenMetrics Compatibility", Metric Metadata), which the collector's Prometheus
exporters and Prometheus' own OTLP receiver apply by default. tests/e2e proves the same end to end.
"""

from __future__ import annotations

import re

import pytest

from agent_otel import conventions as c

# Units from the specification's conversion table (a selection) and the rule for "/" (per).
UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "%": "percent",
    "Hz": "hertz",
    "Cel": "celsius",
    "1": "",
}


def prometheus_name(name: str, unit: str, kind: str) -> str:
    unit = re.sub(r"\{[^}]*\}", "", unit)  # annotations are dropped
    if "/" in unit:
        num, den = unit.split("/", 1)
        suffix = "_per_".join(filter(None, (UNIT_WORDS.get(num, num), UNIT_WORDS.get(den, den))))
    else:
        suffix = UNIT_WORDS.get(unit, unit)
    base = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    base = re.sub(r"__+", "_", base)
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if kind in ("counter", "observable_counter") and not base.endswith("_total"):
        base += "_total"
    return base


def test_the_translation_rules_themselves():
    assert prometheus_name("http.server.duration", "ms", "histogram") == "http_server_duration_milliseconds"
    assert prometheus_name("system.io", "By", "counter") == "system_io_bytes_total"
    assert prometheus_name("requests", "{request}", "counter") == "requests_total"
    assert prometheus_name("a.latency_ms", "ms", "histogram") == "a_latency_ms_milliseconds"


@pytest.mark.parametrize("spec", c.METRICS, ids=lambda s: s.name)
def test_each_metric_translates_to_its_contract_name(spec):
    assert prometheus_name(spec.name, spec.unit, spec.kind) == spec.prometheus


def test_design_md_metric_names_are_all_produced():
    design = {
        "agent_stop_total": ("agent", "stop_reason"),
        "agent_tool_calls": ("agent",),
        "agent_run_latency_ms": ("agent", "stop_reason"),
        "agent_tokens_per_request": ("agent", "model"),
        "agent_spend_per_run_usd": ("agent",),
        "agent_tool_duration_ms": ("agent", "tool", "status"),
        "agent_tool_invocations_total": ("agent", "tool", "status", "error_type"),
        "agent_tool_retries_total": ("agent", "tool"),
    }
    produced = {spec.prometheus: spec.labels for spec in c.METRICS}
    for name, labels in design.items():
        assert produced[name] == labels


def test_histogram_buckets_are_sorted_and_not_negative():
    for spec in c.METRICS:
        if spec.kind == "histogram":  # 0 may be a bound: a bucket of its own for runs of 0 (tool calls, USD)
            assert list(spec.buckets) == sorted(set(spec.buckets)) and spec.buckets[0] >= 0, spec.name
