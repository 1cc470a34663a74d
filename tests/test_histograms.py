"""agent_otel.histograms: the direct path into the SDK's aggregations exports exactly what the public
``Histogram.record()`` path exports, is taken with the installed SDK, and steps aside where it would not
be exact (delta readers, views, the cardinality limit, an always-on exemplar filter, readers added).

These tests fail when an opentelemetry-sdk upgrade changes the private structures the direct path reads:
either the path is no longer taken (agent-otel stays correct but slower), or, worse, it is taken and
exports something else."""

from __future__ import annotations

import inspect
import math
import os
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics._internal._view_instrument_match import _ViewInstrumentMatch
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import agent_otel
from agent_otel import histograms, runtime, sdk
from agent_otel import metrics as metrics_mod
from agent_otel.histograms import NO_EXEMPLAR, Pending, Series

# What the installed SDK does (the floor, 1.45.0/1.45.1, differs from 1.45.2): from 1.45.2 a delta reader's
# aggregations are discarded at each collection, and a series past the cardinality limit goes to overflow.
_MATCH_INIT = inspect.signature(_ViewInstrumentMatch.__init__).parameters
RESETS_ON_COLLECT = "reset_on_collect" in _MATCH_INIT
CARDINALITY_LIMIT = "cardinality_limit" in _MATCH_INIT

BOUNDS = [5.0, 10.0, 25.0, 50.0, 100.0]
ATTRS = {"agent": "support", "tool": "search", "status": "ok"}
# bucket edges, both sides of them, zero, and values the SDK refuses (negative, infinite, NaN)
VALUES = [0, 5, 5.0001, 10, 3, 250, 99.5, 100, -1, math.inf, math.nan, 7, 42, 1e9, 0.25]


def provider(*readers: Any, **kwargs: Any) -> tuple[MeterProvider, Any]:
    mp = MeterProvider(metric_readers=list(readers), shutdown_on_exit=False, **kwargs)
    hist = mp.get_meter("test").create_histogram(
        "agent.tool.duration_ms", explicit_bucket_boundaries_advisory=BOUNDS
    )
    return mp, hist


def points(reader: InMemoryMetricReader) -> list[dict[str, Any]]:
    """The reader's histogram points, without their timestamps."""
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    out.append(
                        {
                            "name": metric.name,
                            "attributes": dict(p.attributes),
                            "count": p.count,
                            "sum": p.sum,
                            "bucket_counts": tuple(p.bucket_counts),
                            "bounds": tuple(p.explicit_bounds),
                            "min": p.min,
                            "max": p.max,
                            "exemplars": [
                                (e.value, e.trace_id, dict(e.filtered_attributes or {})) for e in p.exemplars
                            ],
                        }
                    )
    return sorted(out, key=lambda p: (p["name"], sorted(p["attributes"].items())))


def sampled_context(trace_id: int = 0xABC) -> Context:
    span = NonRecordingSpan(
        SpanContext(trace_id, 0x1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    return trace.set_span_in_context(span, Context())


def record_both(values: list[float], series_kwargs: dict[str, Any] | None = None, **provider_kwargs: Any):
    """The same values through a Series and through the public path, each into its own provider."""
    direct_reader, public_reader = InMemoryMetricReader(), InMemoryMetricReader()
    _, direct_hist = provider(direct_reader, **provider_kwargs)
    _, public_hist = provider(public_reader, **provider_kwargs)
    series = Series(direct_hist, ATTRS)
    taken = []
    for value in values:
        series.record(value)
        taken.append(series.direct)
        public_hist.record(value, ATTRS, context=NO_EXEMPLAR)
    return points(direct_reader), points(public_reader), taken


def test_the_direct_path_is_taken_with_the_installed_sdk_and_exports_what_the_public_path_does(caplog):
    direct, public, taken = record_both(VALUES)
    assert direct == public
    [point] = direct
    assert point["count"] == 12 and point["attributes"] == ATTRS  # the 3 refused values are not counted
    # the first value looks the aggregation up; every later valid one goes straight to it
    assert taken == [False] + [not (v < 0 or not math.isfinite(v)) for v in VALUES[1:]]
    # refused values still get the SDK's warning (they take the public path)
    assert (
        sum("non-negative" in r.getMessage() or "not finite" in r.getMessage() for r in caplog.records) >= 6
    )


def test_measurements_built_by_the_direct_path_equal_the_sdks_own():
    """The direct path fills Measurement's fields instead of running its (costly) frozen __init__ when
    a probe shows that builds an equal instance; with the installed SDK it must."""
    assert histograms._measurement.__name__ == "fill"
    from opentelemetry.sdk.metrics._internal.measurement import Measurement

    built = histograms._measurement(2.5, 11, None)
    assert built == Measurement(2.5, 11, None, NO_EXEMPLAR, None) and type(built) is Measurement


def test_a_measurement_that_may_carry_an_exemplar_takes_the_public_path_and_gets_it():
    reader = InMemoryMetricReader()
    _, hist = provider(reader)
    series = Series(hist, ATTRS)
    series.record(3)
    series.record(4)
    assert series.direct
    series.record(60, sampled_context(0xABC))
    assert not series.direct
    series.record(70)
    assert series.direct
    [point] = points(reader)
    assert point["count"] == 4
    assert point["exemplars"] == [(60, 0xABC, {})]


# A batch as the event thread records it: direct-path values held, refused ones (public path, warned) and
# measurements carrying an exemplar among them. 1.0 + 1.0 + 1e16 and 1e16 + 1.0 + 1.0 are different floats:
# a sum added up in another order than measured, or an exemplar's value added before the values held ahead
# of it, changes the exported sum.
BATCH = [0.1, 0.2, 0.3, 5, 5.0, 1.0, 1.0, ("exemplar", 1e16), 1.0, 1.0, -1, 7, math.inf, 42, ("exemplar", 7)]
BATCH += [100, 5.0001, 0, math.nan, 0.25, 1e9, 10, 3, 99.5, 250]


def record_batches(batches: list[list[Any]], collect_between: bool = True):
    """``batches`` through a Series with a Pending per batch, and value by value through the public path."""
    direct_reader, public_reader = InMemoryMetricReader(), InMemoryMetricReader()
    _, direct_hist = provider(direct_reader)
    _, public_hist = provider(public_reader)
    series = Series(direct_hist, ATTRS)
    taken, collected = [], []
    for batch in batches:
        pending = Pending()
        for item in batch:
            value, context = (
                (item[1], sampled_context(0xE0 + int(item[1]) % 7))
                if isinstance(item, tuple)
                else (item, None)
            )
            series.record(value, context, pending)
            taken.append(series.direct)
            public_hist.record(value, ATTRS, context=NO_EXEMPLAR if context is None else context)
        pending.apply()
        if collect_between:
            collected.append((points(direct_reader), points(public_reader)))
    return collected or [(points(direct_reader), points(public_reader))], taken


def test_a_batch_held_in_pending_exports_exactly_what_the_public_path_does_value_by_value():
    """The sum (bit for bit), count, bucket counts, min, max and exemplars of held values, applied at the
    end of each batch, equal those of the same values recorded one at a time, with collections between
    batches (cumulative) and the exemplars' measurements and refused values among the held ones."""
    assert histograms._aggregate_all is histograms._aggregate_at_once  # the installed SDK passes the probe
    collected, taken = record_batches([BATCH[:1], BATCH, list(reversed(BATCH)), BATCH[3:9]])
    for direct, public in collected:
        assert direct == public
    [point] = collected[-1][0]
    valid = [v[1] if isinstance(v, tuple) else v for v in BATCH]
    valid = [v for v in valid if 0 <= v < math.inf]
    assert point["count"] == 1 + 2 * len(valid) + 6
    assert {e[0] for e in point["exemplars"]} == {1e16}  # the last batch's (the reservoir starts anew)
    assert {e[0] for e in collected[1][0][0]["exemplars"]} == {1e16, 7}
    assert taken.count(True) > len(BATCH)  # the held values went the direct path


def test_values_held_for_a_series_go_first_when_one_takes_the_public_path():
    """Without it, 1.0 + 1.0 + 1e16 (as measured) would be summed as 1e16 + 1.0 + 1.0."""
    [(direct, public)], _ = record_batches([[1.0], [1.0, 1.0, ("exemplar", 1e16)]], collect_between=False)
    assert direct == public and direct[0]["sum"] == 1.0 + 1.0 + 1.0 + 1e16 != 1e16 + 1.0 + 1.0 + 1.0


def test_the_probe_refuses_an_aggregation_it_does_not_reproduce(monkeypatch):
    """If aggregating a batch at once left an aggregation in another state than the SDK's aggregate() (an
    SDK that keeps another field, or sums differently), the values go through aggregate() one by one."""
    assert histograms._probe_aggregate_at_once() is histograms._aggregate_at_once

    def sums_all_at_once(aggregation: Any, values: list[float], instrument: Any) -> None:
        with aggregation._lock:
            aggregation._value = aggregation._value or aggregation._get_empty_bucket_counts()
            aggregation._sum += math.fsum(values)  # another rounding than value by value
            for v in values:
                aggregation._value[histograms.bisect_left(aggregation._boundaries, v)] += 1
            aggregation._min = min(aggregation._min, *values)
            aggregation._max = max(aggregation._max, *values)

    monkeypatch.setattr(histograms, "_aggregate_at_once", sums_all_at_once)
    assert histograms._probe_aggregate_at_once() is histograms._aggregate_each
    monkeypatch.setattr(histograms, "_aggregate_all", histograms._aggregate_each)
    collected, _ = record_batches([BATCH, BATCH[::-1]])
    for direct, public in collected:
        assert direct == public


def test_held_values_of_a_series_whose_readers_changed_take_the_public_path():
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    mp, hist = provider(first)
    series = Series(hist, ATTRS)
    series.record(1)
    pending = Pending()
    series.record(2, None, pending)
    series.record(3, None, pending)
    if not hasattr(mp, "add_metric_reader"):
        pytest.skip("this opentelemetry-sdk cannot add readers to a provider")
    mp.add_metric_reader(second)  # between the measurements and the end of their batch
    pending.apply()
    assert [p["count"] for p in points(first)] == [3]
    [point] = points(second)
    assert point["count"] == 2 and point["sum"] == 5


def test_cumulative_sums_stay_right_across_collections():
    direct_reader, public_reader = InMemoryMetricReader(), InMemoryMetricReader()
    _, direct_hist = provider(direct_reader)
    _, public_hist = provider(public_reader)
    series = Series(direct_hist, ATTRS)
    for chunk in (VALUES[:5], VALUES[5:], [8, 9, 11]):
        for v in chunk:
            series.record(v)
            public_hist.record(v, ATTRS, context=NO_EXEMPLAR)
        assert points(direct_reader) == points(public_reader)
    assert series.direct


def test_a_delta_reader_keeps_every_measurement_on_the_public_path():
    delta = {Histogram: AggregationTemporality.DELTA}
    direct_reader = InMemoryMetricReader(preferred_temporality=delta)
    public_reader = InMemoryMetricReader(preferred_temporality=delta)
    _, direct_hist = provider(direct_reader)
    _, public_hist = provider(public_reader)
    series = Series(direct_hist, ATTRS)
    for chunk in ([1, 2, 3], [30, 40], [7]):
        for v in chunk:
            series.record(v)
            # An SDK that discards aggregations at each collection (1.45.2) must not take the direct path
            if RESETS_ON_COLLECT:
                assert not series.direct
            public_hist.record(v, ATTRS, context=NO_EXEMPLAR)
        # each collection starts new aggregations: values after it must reach them, not the old ones
        assert points(direct_reader) == points(public_reader) != []


@pytest.mark.parametrize(
    "view",
    [
        View(instrument_name="agent.tool.duration_ms", attribute_keys={"agent"}),  # a subset of the keys
        View(instrument_name="agent.tool.duration_ms", aggregation=None, name="renamed"),  # direct is fine
    ],
)
def test_views_get_what_the_public_path_gives_them(view):
    direct, public, taken = record_both(VALUES, views=[view])
    assert direct == public
    assert taken[-1] is (view._attribute_keys is None)


def test_past_the_cardinality_limit_measurements_go_to_the_overflow_series_as_before():
    direct_reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.CUMULATIVE})
    public_reader = InMemoryMetricReader()
    _, direct_hist = provider(direct_reader)
    _, public_hist = provider(public_reader)
    limit = 2000
    series = [Series(direct_hist, {"agent": f"a{i}"}) for i in range(limit + 2)]
    for s in series:
        for v in (1, 2):
            s.record(v)
            public_hist.record(v, s.attributes, context=NO_EXEMPLAR)
    assert points(direct_reader) == points(public_reader)
    overflow = any(p["attributes"] == {"otel.metric.overflow": True} for p in points(direct_reader))
    assert overflow is CARDINALITY_LIMIT  # an SDK without the limit (before 1.45.2) has no overflow series
    assert series[0].direct and series[-1].direct is not CARDINALITY_LIMIT


def test_an_always_on_exemplar_filter_keeps_the_public_path(monkeypatch):
    from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOnExemplarFilter

    direct, public, taken = record_both(VALUES, exemplar_filter=AlwaysOnExemplarFilter())
    assert not any(taken)
    # the public path offers every measurement (no trace id): compare what does not depend on timing
    strip = [{**p, "exemplars": len(p["exemplars"])} for p in direct]
    assert strip == [{**p, "exemplars": len(p["exemplars"])} for p in public] and strip[0]["exemplars"] > 0


def test_a_reader_added_later_gets_the_later_measurements_and_the_path_is_found_again():
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    mp, hist = provider(first)
    series = Series(hist, ATTRS)
    series.record(1)
    series.record(2)
    assert series.direct
    if not hasattr(mp, "add_metric_reader"):
        pytest.skip("this opentelemetry-sdk cannot add readers to a provider")
    mp.add_metric_reader(second)
    series.record(30)
    assert not series.direct  # the readers changed: public path, then the look-up again
    series.record(40)
    assert series.direct
    assert [p["count"] for p in points(first)] == [4]
    [point] = points(second)
    assert point["count"] == 2 and point["sum"] == 70
    mp.remove_metric_reader(second)
    series.record(50)
    series.record(60)
    assert series.direct and points(first)[0]["count"] == 6


def test_two_readers_both_get_every_measurement():
    a, b = InMemoryMetricReader(), InMemoryMetricReader()
    _, hist = provider(a, b)
    series = Series(hist, ATTRS)
    for v in VALUES:
        series.record(v)
    assert series.direct
    assert points(a) == points(b) and points(a)[0]["count"] == 12


def test_agent_otel_runs_record_their_histograms_through_the_direct_path(telemetry, monkeypatch):
    """The metrics of agent runs take the direct path (the guard against an SDK change making every
    measurement silently pay the public path again), and what reaches the reader is complete."""
    # only the agent's first run is an exemplar run (its measurements take the public path)
    monkeypatch.setattr(metrics_mod, "EXEMPLAR_INTERVAL_S", 3600.0)
    for _ in range(3):
        with agent_otel.run("support", model="gpt-4o") as run:
            run.call_tool("search", lambda q: [q], {"q": "refund"})
            run.record_llm(input_tokens=500, output_tokens=50, provider="openai")
    metrics = telemetry.metrics()
    cached = runtime.current().metrics._series_cache.values()
    assert len(cached) == 9 and all(s.direct for s in cached)  # 6 per-call histograms, 3 per-run
    [(_, durations)] = metrics["agent.tool.duration_ms"]
    assert durations.count == 3
    [(_, latency)] = metrics["agent.run.latency_ms"]
    assert latency.count == 3
    assert {a["gen_ai.token.type"]: p.count for a, p in metrics["gen_ai.client.token.usage"]} == {
        "input": 3,
        "output": 3,
    }


def test_a_series_without_look_up_keeps_the_public_path():
    """What agent-otel uses past its cache of series (a label set seen once is not worth a look-up)."""
    reader = InMemoryMetricReader()
    _, hist = provider(reader)
    series = Series(hist, ATTRS, look_up=False)
    for v in (1, 2, 3):
        series.record(v)
        assert not series.direct
    assert points(reader)[0]["count"] == 3


def test_as_deployed_with_otlp_export_the_histograms_take_the_direct_path(monkeypatch, tmp_path):
    """agent-otel's own OTLP metric reader (cumulative, as the OTLP exporter prefers by default) on the
    provider setup() installs or joins: the configuration users run, not only the tests' in-memory one."""
    from tests.otlp_receiver import HTTPReceiver

    for var in list(os.environ):
        if var.startswith(("OTEL_", "AGENT_OTEL_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    monkeypatch.setattr(metrics_mod, "EXEMPLAR_INTERVAL_S", 3600.0)
    agent_otel.shutdown()
    receiver = HTTPReceiver()
    try:
        agent_otel.setup(
            "svc", endpoint=receiver.endpoint, protocol="http/protobuf", store=False, instrument=False
        )
        for _ in range(3):
            with agent_otel.run("deployed", model="gpt-4o") as run:
                run.call_tool("search", lambda q: [q], {"q": "refund"})
                run.record_llm(input_tokens=500, output_tokens=50, provider="openai")
        assert sdk.flush(10)
        ours = [
            s for s in runtime.current().metrics._series_cache.values() if "deployed" in s.attributes.values()
        ]
        assert len(ours) == 9 and all(s.direct for s in ours)
        agent_otel.shutdown()
        assert receiver.metric_requests >= 1
    finally:
        agent_otel.shutdown()
        receiver.stop()
