"""agent-otel's span attributes put into the OpenTelemetry SDK's spans without cleaning them a second time.

Why: the SDK cleans every attribute given to a span (``BoundedAttributes`` and its
``_clean_attribute_value``: a Python call and a chain of ``isinstance`` checks per value, then a keyed
insert), whether it comes with ``start_span(attributes=...)`` or ``set_attributes()``. In the loop of
``benchmarks/overhead.py`` that is ~11,300 bytecodes per run, the largest single cost on the agent's
thread. Yet a value whose type is exactly ``str``, ``bool``, ``int`` or ``float``, under a key that is a
non-empty ``str``, comes out of that cleaning as the very same object (when no value length limit is
set), and nearly all of agent-otel's attributes are such values. For those the direct path puts the
same objects, in the same order, into the same mapping the public path fills; anything else (a tuple, a
``str`` subclass, ``None``, a user's object that needs cleaning) sends the whole mapping down the public
path, which cleans it as before.

It reads private structures of the SDK, so it is taken only where the result is exactly the public one:

* the span is the SDK's own span class (``_Span``, as its ``Tracer`` makes them) and its attributes the
  SDK's ``BoundedAttributes``;
* no attribute value length limit is set (``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``,
  ``SpanLimits(max_span_attribute_length=...)``): the public path truncates;
* no attribute would be dropped by the count limit (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, 128 by default):
  the public path drops the oldest, counted in ``dropped_attributes``;
* :func:`set_attributes`: the span has not ended (the public path refuses with a warning); a key set
  again moves to the end, as the SDK's re-insert does;
* :func:`start_span`: the attributes still reach the sampler, and every span processor's ``on_start``
  sees them on the span. The SDK's span constructor is what cleans them, so the handover goes around it:
  the provider's sampler, wrapped by :class:`agent_otel.sampling.RecordForRuns`, takes them out of its
  result (only when the application's sampler is one of the SDK's, which return exactly the attributes
  they were given when they record the span, see ``sampling._echoes``), and the provider's processor
  list, which agent-otel's sampling module already replaces by a subclass of the SDK's, puts them on
  the span before it calls the first processor. Where either is not agent-otel's, nothing is handed
  over. A span the limits would touch gets them there through ``set_attributes``, which on a new span
  does what the constructor would have done.

Anything else, an attribute renamed in another SDK version included, keeps to the public path: slower,
never wrong. tests/test_span_attributes.py checks with the installed SDK that the direct path is taken
for agent-otel's spans and that they equal, attribute for attribute, in order, with the same dropped
count, the spans the public path makes of the same runs, so an SDK upgrade that changes these
structures fails a test.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

_PLAIN_VALUES = frozenset((str, bool, int, float))
_STR = frozenset((str,))

# The SDK's span and attribute classes (enable()); None: every call takes the public path.
_span_type: type | None = None
_bounded_type: type | None = None
_event_type: type | None = None


def enable() -> None:
    """Find the SDK's span and attribute classes. Called where the SDK is imported anyway (setup(), by
    agent_otel.sampling), so that importing agent_otel does not import the SDK."""
    global _span_type, _bounded_type, _event_type
    try:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import Event, _Span

        probe = BoundedAttributes(2, {"a": "b"}, immutable=False)
        if probe._dict != {"a": "b"} or probe.maxlen != 2 or probe.max_value_len is not None:
            return  # pragma: no cover - another SDK
        with probe._lock:
            probe._immutable  # noqa: B018 - present, or the AttributeError below
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another SDK layout
        return
    _span_type, _bounded_type, _event_type = _Span, BoundedAttributes, Event


def disable() -> None:
    """Every span attribute takes the public path (tests compare the two)."""
    global _span_type, _bounded_type, _event_type
    _span_type = _bounded_type = _event_type = None


def plain(attributes: Any) -> bool:
    """Whether the SDK's cleaning would leave ``attributes`` (a dict) exactly as they are: non-empty str
    keys, values of exactly str, bool, int or float. Checked in C (no Python call per attribute)."""
    return (
        type(attributes) is dict
        and _PLAIN_VALUES.issuperset(map(type, attributes.values()))
        and _STR.issuperset(map(type, attributes))
        and "" not in attributes
    )


def set_attributes(span: Any, attributes: dict[str, Any], checked: bool = False) -> bool:
    """``span.set_attributes(attributes)``, through the direct path where it is exact. True when it was,
    and the span has dropped no attribute (its ``dropped_attributes`` is 0, read here without the
    property: the step engine asks as it ends every step); False says nothing either way. ``checked``:
    the caller made ``attributes`` of values :func:`plain` accepts (a plain dict of str keys and values
    of exactly str, int, bool or float), so it is not asked again."""
    if type(span) is _span_type and (checked or plain(attributes)):
        try:
            with span._lock:
                bounded = span._attributes
                if (
                    span._end_time is None
                    and type(bounded) is _bounded_type
                    and not bounded._immutable
                    and bounded.max_value_len is None
                ):
                    held = bounded._dict
                    maxlen = bounded.maxlen
                    if maxlen is None or len(held) + len(attributes) <= maxlen:
                        with bounded._lock:
                            if not held.keys().isdisjoint(attributes):
                                for key in attributes:  # set again: moved to the end, as the SDK does
                                    held.pop(key, None)
                            held.update(attributes)
                        return not bounded.dropped
        except AttributeError:  # pragma: no cover - another SDK layout
            pass
    span.set_attributes(attributes)
    return False


class _Handover(threading.local):
    #: The attributes start_span() is passing to the tracer on this thread (by identity).
    given: Any = None
    #: Taken out of the sampler's result: for the processor list to put on the span it starts.
    placing: Any = None


handover = _Handover()


def start_span(
    tracer: Any,
    name: str,
    context: Any,
    kind: Any,
    attributes: dict[str, Any],
    links: Sequence[Any] | None = None,
    start_time: int | None = None,
    checked: bool = False,
) -> Any:
    """``tracer.start_span(...)``, with the attributes handed over (module docstring) where that is exact.

    Only a tracer whose sampler is agent_otel.sampling's ``HandOver`` takes them (agent-otel's own, when the
    application's sampler is made of the SDK's and the provider's processor list places them); any other
    tracer leaves them where they are, on their way into the span's constructor. ``checked``: as for
    :func:`set_attributes`."""
    if _span_type is None or not (checked or plain(attributes)):
        return tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links, start_time=start_time
        )
    state = handover
    state.given = attributes
    try:
        return tracer.start_span(
            name, context=context, kind=kind, attributes=attributes, links=links, start_time=start_time
        )
    finally:
        state.given = state.placing = None


def place(span: Any, attributes: dict[str, Any]) -> None:
    """Put the attributes handed over on ``span``, which has just been made without them, before any span
    processor sees it: what the span's constructor would have done with them."""
    if type(span) is _span_type:
        try:
            bounded = span._attributes
            maxlen = bounded.maxlen
            if (
                type(bounded) is _bounded_type
                and not bounded._dict
                and bounded.max_value_len is None
                and (maxlen is None or len(attributes) <= maxlen)
            ):
                bounded._dict.update(attributes)
                return
        except AttributeError:  # pragma: no cover - another SDK layout
            pass
    span.set_attributes(attributes)


def add_event(span: Any, name: str, attributes: dict[str, Any]) -> None:
    """``span.add_event(name, attributes)``, through the direct path where it is exact: the SDK builds the
    event's ``BoundedAttributes`` by cleaning each value (as for span attributes, module docstring), which
    leaves plain values as they are. Here the same mapping, immutable, holds the same objects in the same
    order, when no value length limit is set and the event attribute count limit drops none; the event
    is appended as the SDK's ``_add_event`` does (not on an ended span: the public path warns there)."""
    if type(span) is _span_type and plain(attributes):
        try:
            limits = span._limits
            maxlen = limits.max_event_attributes
            if limits.max_attribute_length is None and (maxlen is None or len(attributes) <= maxlen):
                bounded = _bounded_type(maxlen, None, immutable=True)  # type: ignore[misc]
                bounded._dict.update(attributes)
                event = _event_type(name, bounded)  # type: ignore[misc]
                with span._lock:
                    if span._end_time is None:
                        span._events.append(event)
                        return
        except AttributeError:  # pragma: no cover - another SDK layout
            pass
    span.add_event(name, attributes)
