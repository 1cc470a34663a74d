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
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import threading
from collections.abc import Iterable, Mapping
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

# A context whose span is invalid: the exemplar filter declines it. An empty Context() would not do: it
# is falsy, and the SDK then takes the current context instead, whose span may be one to exemplify.
NO_EXEMPLAR = trace.set_span_in_context(trace.INVALID_SPAN, Context())

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

    ``direct`` (for tests and benchmarks) tells whether the last measurement took the direct path.
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

    def record(self, value: float, context: Context | None = None) -> None:
        """Record ``value``; ``context`` holds the span an exemplar may link to (None: no exemplar)."""
        found = self._found
        if context is None and found is not None and 0 <= value < math.inf:
            consumer, storages, aggregations, enabled = found
            if storages is consumer._reader_storages and enabled():
                measurement = _measurement(value, time_ns(), self._instrument)
                for aggregation in aggregations:
                    aggregation.aggregate(measurement, False)
                self.direct = True
                return
        self.direct = False
        self._instrument.record(value, self._attributes, context=NO_EXEMPLAR if context is None else context)
        if context is None and self._look_up_ok:
            self._found = self._look_up()

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
