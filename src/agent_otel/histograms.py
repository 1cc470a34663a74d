"""Histogram measurements handed straight to the OpenTelemetry SDK's aggregations of their series.

Why: the SDK's ``Histogram.record()`` costs ~8 us per measurement on the development machine, and most of
it is spent before the value reaches the aggregation: it builds a ``Measurement`` whose attributes it
cleans, asks the exemplar filter, and for each reader copies and hashes the attributes again to look up
the series' aggregation. The aggregation itself (a lock, a bisect, sum, min and max) is ~1 us. agent-otel
records 27 histogram measurements per agent run, nearly always into the same few series, so a
:class:`Series` looks up its aggregations once, after a measurement that took the public path, and then
gives each value to them directly.

This reads private structures of the SDK, so the direct path is taken only where it provably does what
the public path would do:

* the measurement wants no exemplar (a measurement that may carry one takes the public path);
* its value is finite and not negative (the public path warns and drops the others);
* the instrument is enabled and the provider's exemplar filter is trace-based or always-off (both
  decline a measurement without a span; always-on takes the public path for every measurement);
* each reader's view of the instrument keeps its aggregations across collections (cumulative
  temporality, the default; a delta reader replaces them at every collection), and holds an
  explicit-bucket histogram aggregation whose attributes are exactly the series' (not the overflow
  series of the cardinality limit, not a view's subset of the keys);
* the provider's readers are the ones seen when the aggregations were looked up (a reader added or
  removed sends the next measurement down the public path, which looks them up again).

Anything else, an attribute renamed in another SDK version included, and the series keeps to the
public path: slower, never wrong. tests/test_histograms.py checks with the installed SDK that the direct
path is taken and that what it exports equals what the public path exports for the same measurements,
so an SDK upgrade that changes these structures fails a test instead of silently costing the speed.

The event thread records a batch of events at a time (agent_otel.metrics.MetricsSink), ~27 measurements
per agent run into the same few series. A :class:`Pending` holds a batch's direct-path measurements per
series and gives each series' values to its aggregations at the end of the batch, under one lock: the
bucket counts, sum (added in the order measured, so the float is bit for bit the same), min and max the
SDK's ``aggregate()`` would have reached one value at a time (~0.1 us a value instead of ~2 us). That
writes the aggregation's fields itself, so it is used only when a probe at import shows it leaves an
aggregation of the installed SDK in exactly the state ``aggregate()`` leaves it in; otherwise the held
values go through ``aggregate()`` one by one (tests/test_histograms.py checks both ways).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

# A context whose span is invalid: the exemplar filter declines it. An empty Context() would not do: it
# is falsy, and the SDK then takes the current context instead, whose span may be one to exemplify.
NO_EXEMPLAR = trace.set_span_in_context(trace.INVALID_SPAN, Context())
_INF = math.inf  # (a global, not a module attribute, looked up per measurement)

try:  # the private names the direct path needs; without them every series takes the public path
    from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation
    from opentelemetry.sdk.metrics._internal.exemplar import (
        AlwaysOffExemplarFilter,
        TraceBasedExemplarFilter,
    )
    from opentelemetry.sdk.metrics._internal.measurement import Measurement

    _DECLINING_FILTERS: tuple[type, ...] = (TraceBasedExemplarFilter, AlwaysOffExemplarFilter)
    # aggregate(measurement, should_sample_exemplar), as the direct path calls it
    if list(inspect.signature(_ExplicitBucketHistogramAggregation.aggregate).parameters) != [
        "self",
        "measurement",
        "should_sample_exemplar",
    ]:  # pragma: no cover - another SDK
        raise ImportError("another aggregate() signature")
except ImportError:  # pragma: no cover - another SDK layout
    _ExplicitBucketHistogramAggregation = None  # type: ignore[assignment,misc]
    _DECLINING_FILTERS = ()


class Series:
    """One histogram series (instrument + attribute set) with the direct path of the module docstring.

    ``direct`` (for tests and benchmarks) tells whether the last measurement took the direct path (or was
    held for it in a :class:`Pending`).
    ``look_up=False``: always the public path (a series used once, not worth its look-up).
    """

    __slots__ = ("_attributes", "_found", "_instrument", "_look_up_ok", "_not_found", "direct")

    def __init__(self, instrument: Any, attributes: Mapping[str, str], look_up: bool = True) -> None:
        self._instrument = instrument
        self._look_up_ok = look_up
        self._attributes = dict(attributes)
        # (the measurement consumer, its reader storages when looked up, the aggregations, the enabled
        # check), or None
        self._found: tuple[Any, Any, tuple[Any, ...], Any] | None = None
        # the reader storages for which the look-up failed: not tried again until they change
        self._not_found: Any = None
        self.direct = False

    @property
    def attributes(self) -> dict[str, str]:
        return self._attributes

    def record(self, value: float, context: Context | None = None, pending: Pending | None = None) -> None:
        """Record ``value``; ``context`` holds the span an exemplar may link to (None: no exemplar).

        ``pending``: a value that may take the direct path is held there until its ``apply()`` (the end
        of the caller's batch) instead of being aggregated now."""
        found = self._found
        if context is None and found is not None and 0 <= value < _INF:
            if pending is not None:
                pending.values[self].append(value)
                self.direct = True
                return
            consumer, storages, aggregations, enabled = found
            if storages is consumer._reader_storages and enabled():
                measurement = _measurement(value, time_ns(), self._instrument)
                for aggregation in aggregations:
                    aggregation.aggregate(measurement, False)
                self.direct = True
                return
        if pending is not None and self in pending.values:
            # the values held for this series go first: the sum is then added up in the order measured
            self._apply(pending.values.pop(self))
        self.direct = False
        self._instrument.record(value, self._attributes, context=NO_EXEMPLAR if context is None else context)
        if context is None and self._look_up_ok:
            self._found = self._look_up()

    def _apply(self, values: list[float]) -> None:
        """Give held direct-path ``values`` (finite, not negative) to the aggregations, in one go where the
        aggregations are still the readers' (else one by one through :meth:`record`, which looks again)."""
        found = self._found
        if found is not None:
            consumer, storages, aggregations, enabled = found
            if storages is consumer._reader_storages and enabled():
                for aggregation in aggregations:
                    _aggregate_all(aggregation, values, self._instrument)
                return
        for value in values:
            self.record(value)

    def _look_up(self) -> tuple[Any, Any, tuple[Any, ...], Any] | None:
        """The aggregations the public path just gave a value to, if the direct path may use them."""
        if _ExplicitBucketHistogramAggregation is None:
            return None
        try:
            instrument = self._instrument
            consumer = instrument._measurement_consumer
            storages = consumer._reader_storages
            if storages is self._not_found:
                return None
            self._not_found = storages
            if not isinstance(consumer._sdk_config.exemplar_filter, _DECLINING_FILTERS):
                return None
            enabled = getattr(instrument, "_is_enabled", None) or _always
            aggregations = []
            for storage in storages.values():
                for match in storage._instrument_view_instrument_matches.get(instrument, ()):
                    # 1.45.2 discards a delta reader's aggregations at each collection (a cached one would
                    # then be stale); before it, aggregations live as long as their series, whatever the
                    # temporality, and the attribute does not exist.
                    if getattr(match, "_reset_on_collect", False) is not False:
                        return None
                    with match._lock:
                        found = [
                            a
                            for a in match._attributes_aggregation.values()
                            if type(a) is _ExplicitBucketHistogramAggregation
                            and a._attributes == self._attributes
                        ]
                    if len(found) != 1:
                        return None
                    aggregations.append(found[0])
            if not aggregations or not _attributes_are_strings(self._attributes):
                return None
            self._not_found = None
            return consumer, storages, tuple(aggregations), enabled
        except (AttributeError, TypeError, KeyError):  # another SDK layout
            return None


class Pending:
    """The direct-path measurements of one batch, held per series until :meth:`apply` (module docstring).

    Local to one batch and one thread: series of another thread's batch are aggregated by that thread's
    ``apply()``, each under its aggregation's lock as ``aggregate()`` is."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: defaultdict[Series, list[float]] = defaultdict(list)

    def apply(self) -> None:
        """Aggregate everything held, series by series (each series' values in the order recorded)."""
        values, self.values = self.values, defaultdict(list)
        for series, held in values.items():
            series._apply(held)


def _aggregate_each(aggregation: Any, values: list[float], instrument: Any) -> None:
    """``values`` through the SDK's own ``aggregate()``, one measurement each (the fallback)."""
    for value in values:
        aggregation.aggregate(_measurement(value, time_ns(), instrument), False)


def _aggregate_at_once(aggregation: Any, values: list[float], instrument: Any) -> None:
    """What ``_ExplicitBucketHistogramAggregation.aggregate(measurement, False)`` does for each value, done
    for all of them under one hold of its lock: the sum is added up value by value in order (as the SDK
    does; ``sum()`` may round differently), and min/max of the values are taken once (``min(a, min(v))``
    is the sequential ``min`` of the SDK, ties included). Used only if _probe_aggregate_at_once agrees."""
    with aggregation._lock:
        counts = aggregation._value
        if counts is None:
            counts = aggregation._value = aggregation._get_empty_bucket_counts()
        total = aggregation._sum
        bounds = aggregation._boundaries
        for value in values:
            total += value
            counts[bisect_left(bounds, value)] += 1
        aggregation._sum = total
        if aggregation._record_min_max:
            aggregation._min = min(aggregation._min, min(values))
            aggregation._max = max(aggregation._max, max(values))


# Values of the probe: bucket edges and both sides of them, ints and floats (the sum's type follows them),
# equal values of both types (min and max keep the first), sums that round differently when regrouped.
_PROBE_VALUES = (0, 5, 5.0, 5.0001, 10, 0.1, 0.2, 0.3, 1e16, 1.0, 3, 7.25, 250, 99.5, 100, 1e9, 0.25, 0)


def _probe_aggregate_at_once() -> Any:
    """_aggregate_at_once if it leaves a fresh aggregation of the installed SDK in the very state that the
    SDK's ``aggregate()`` leaves another in for the same values, in two batches; else _aggregate_each."""
    if _ExplicitBucketHistogramAggregation is None:
        return _aggregate_each
    try:
        from opentelemetry.sdk.metrics._internal.aggregation import AggregationTemporality

        def fresh() -> Any:
            return _ExplicitBucketHistogramAggregation(
                attributes={},
                instrument_aggregation_temporality=AggregationTemporality.DELTA,
                start_time_unix_nano=0,
                reservoir_builder=lambda **_: None,
                boundaries=(0.0, 5.0, 10.0, 100.0, 250.0),
            )

        def state(aggregation: Any) -> list[tuple[str, str, str]]:
            return sorted(
                (k, type(v).__name__, repr(v))
                for k, v in vars(aggregation).items()
                if k not in ("_lock", "_reservoir")
            )

        one, batched = fresh(), fresh()
        half = len(_PROBE_VALUES) // 2
        for values in (_PROBE_VALUES[:half], _PROBE_VALUES[half:]):
            _aggregate_each(one, list(values), None)
            _aggregate_at_once(batched, list(values), None)
            if state(one) != state(batched):
                return _aggregate_each
        return _aggregate_at_once
    except Exception:  # another SDK's constructor or fields: the SDK's own aggregate() it is
        return _aggregate_each


def _measurement_factory() -> Any:
    """How the direct path builds its ``Measurement`` (value, time, instrument; no context or attributes,
    which only an exemplar offer reads). The dataclass's own frozen ``__init__`` costs ~1.5 us, more than
    the aggregation; filling the instance's ``__dict__`` costs ~0.3 us, and is used when a probe shows it
    builds an equal instance of a dataclass with exactly these fields."""
    if _ExplicitBucketHistogramAggregation is None:
        return None

    def construct(value: float, time_unix_nano: int, instrument: Any) -> Any:
        return Measurement(value, time_unix_nano, instrument, NO_EXEMPLAR, None)

    new = object.__new__

    def fill(value: float, time_unix_nano: int, instrument: Any) -> Any:
        measurement = new(Measurement)
        measurement.__dict__.update(
            value=value,
            time_unix_nano=time_unix_nano,
            instrument=instrument,
            context=NO_EXEMPLAR,
            attributes=None,
        )
        return measurement

    try:
        names = tuple(f.name for f in dataclasses.fields(Measurement))
        probe, expected = fill(1.5, 7, None), construct(1.5, 7, None)
        if names == _MEASUREMENT_FIELDS and probe == expected and vars(probe) == vars(expected):
            return fill
    except (TypeError, AttributeError):  # not a dataclass, or no __dict__ (slots)
        pass
    return construct


_MEASUREMENT_FIELDS = ("value", "time_unix_nano", "instrument", "context", "attributes")
_measurement = _measurement_factory()
_aggregate_all = _probe_aggregate_at_once()


def forget_series(instruments: Iterable[Any]) -> None:
    """Drop every series of ``instruments`` from the SDK's aggregations (of every reader): a forked child's
    instruments start empty, like a new process's (see Metrics._after_fork). The SDK has no public way to
    do this; on another SDK layout nothing is dropped.

    The locks of the collection path are made again too: the SDK re-creates its provider's locks in a
    forked child, not those of its readers and their storages, so a child forked while the parent's export
    thread was collecting would find them held for ever and never export."""
    done: set[int] = set()
    for instrument in instruments:
        instrument = getattr(instrument, "_real_instrument", None) or instrument  # the API's proxy
        try:
            consumer = instrument._measurement_consumer
            storages = consumer._reader_storages
            if id(consumer) not in done:
                done.add(id(consumer))
                consumer._lock = threading.Lock()
                for reader, storage in storages.items():
                    storage._lock = threading.RLock()
                    if hasattr(reader, "_export_lock"):
                        reader._export_lock = threading.Lock()
            for storage in storages.values():
                for match in storage._instrument_view_instrument_matches.get(instrument, ()):
                    match._lock = threading.Lock()  # another thread may have held it at the fork
                    match._attributes_aggregation = {}
        except (AttributeError, TypeError):  # another SDK layout, or not an SDK instrument
            continue


def _always() -> bool:
    return True


def _attributes_are_strings(attributes: Mapping[str, Any]) -> bool:
    """Equality of dicts of strings is the SDK's series identity (it tells 1 from True, dicts do not)."""
    return all(type(k) is str and type(v) is str for k, v in attributes.items())
