"""Canonical JSON and the 24-hex sha that identifies tool args, results and run inputs.

The seed defines ``sha(obj)`` as the first 24 hex digits of sha256 over
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``. Hashes are compared across
processes, stores and versions (loop detection, replay, drift), so for JSON-native values we must produce
exactly those bytes, and for anything else we must still produce *some* deterministic bytes instead of
raising inside an agent.

orjson is ~10x faster than json on realistic payloads, and the two agree byte for byte except for floats
below 1e-4 (orjson writes ``0.00001`` and ``1e-5`` where Python writes ``1e-05``), integers beyond 64 bits,
lone surrogates and non-string keys. We take the orjson bytes only when none of those can be present and
otherwise fall back to json; tests/test_hashing.py checks the equivalence on generated data. orjson before
3.12 also wrote large floats unlike json (``1e16`` for ``1e+16``): a probe at import (_orjson_agrees) hands
every value to json when the installed orjson writes any of its values differently.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import functools
import hashlib
import json
import logging
import marshal
import math
import re
import threading
import types
import uuid
from collections.abc import Mapping
from decimal import Decimal
from itertools import chain
from pathlib import PurePath
from typing import Any

import orjson

SHA_HEX_CHARS = 24

_ORJSON_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

# Values whose orjson bytes the checks below take as they are, so orjson must write them exactly as json
# does. orjson before 3.12 writes large floats without the exponent's sign (``1e16``, ``2.5e20``, where
# json writes ``1e+16``): every value holding a float of 1e16 or more hashed differently from the seed's
# definition, and from agent-otel beside a newer orjson (loop detection, replay and drift compare hashes
# across processes). pyproject asks for orjson >= 3.12; this probe keeps the hashes right whatever orjson
# is installed (a pinned environment, a future change): if it disagrees, every value goes through json.
_AGREEMENT_PROBE: tuple[Any, ...] = (
    0.1, 0.5, 1.5, 100.0, 0.0001, 0.00012345, 3.141592653589793, 123456789.123, -0.0, 1e15, 1e16, 1e17,
    2.5e20, 1e22, -1.5e300, 1.7976931348623157e308, 2**53, 2**63 - 1, -(2**63), 2**64 - 1, True, None,
    "\u00e9\u2028\U0001f600", "\x00\x1f\"\\/", {"b": 1, "a": [1, 2], "A": None, "\u00e9": False}, [], {},
)  # fmt: skip


def _orjson_agrees(dumps: Any = None) -> bool:
    """Whether ``dumps`` (orjson's) writes every value of the probe as the seed's json.dumps does."""
    dumps = dumps or orjson.dumps
    try:
        for value in (*_AGREEMENT_PROBE, list(_AGREEMENT_PROBE)):
            theirs = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if dumps(value, option=_ORJSON_OPTS) != theirs.encode("utf-8"):
                return False
    except Exception:
        return False
    return True


_ORJSON_AGREES = _orjson_agrees()
if not _ORJSON_AGREES:
    logging.getLogger("agent_otel").warning(
        "agent-otel: orjson %s writes JSON unlike json.dumps (upgrade it to 3.12 or later); hashes of tool "
        "arguments and results are made with json, which is slower",
        getattr(orjson, "__version__", "?"),
    )

# Where orjson's float formatting can differ from repr(): a plain decimal with four leading zeros
# (``0.00001``: floats in [1e-5, 1e-4)) or a single-digit negative exponent (``1.5e-7``). A match inside a
# string only costs a fallback, never a wrong hash. Each search of a large output is one pass of re's
# literal-prefix scan (~0.3 ms/MB here, about half of what sha256 of the same bytes costs; ``bytes.find``
# with needles this short is slower): the passes that cannot match are skipped by a memchr (``b"." in``,
# ``b"-" in``: microseconds) first. One alternation of all three would be one pass, but without a literal
# prefix re tries a match at every position: ten times slower than the three passes together.
_SMALL_EXPONENT = re.compile(rb"[0-9]e-[1-9](?![0-9])")
# The same, searched from its minus sign (the literal re runs to: ``e`` is in every English word, ``-``
# mostly in dates) and checked behind it, in C instead of a Python loop over candidates.
_SMALL_EXPONENT_AT_MINUS = re.compile(rb"-(?<=[0-9]e-)[1-9](?![0-9])")
# Where minus signs are dense (negative numbers: a time series, coordinates, deltas), re's check behind
# each of them costs more than the scan: 2.3 times sha256's cost over a series of negative ints, where
# searching from ``e-`` costs 0.5 (and 0.8 over English text, where searching from ``-`` costs 0.65).
_SMALL_EXPONENT_AT_E = re.compile(rb"e-(?<=[0-9]e-)[1-9](?![0-9])")
_DENSE_MINUS = 16  # minus signs per 1 KB sampled (in English text with dates: about 4)
_PLAIN_SMALL = re.compile(rb"0\.0000")
_NULL = re.compile(rb"null")
_SHORT = 128  # bytes of output below which plain bytes searches are cheaper than calling re


def _orjson_may_differ(out: bytes) -> bool:
    """The float check of all but the shortest outputs (those are checked inline in canonical_json)."""
    if b"." in out and _PLAIN_SMALL.search(out) is not None:
        return True
    if b"-" not in out:
        return False
    search = _SMALL_EXPONENT_AT_E if _minus_is_dense(out) else _SMALL_EXPONENT_AT_MINUS
    return search.search(out) is not None


def _minus_is_dense(out: bytes) -> bool:
    """Whether four 1 KB samples of a large ``out`` hold more than ``_DENSE_MINUS`` minus signs per KB
    (only which search runs depends on it, never the answer; below 64 KB the sampling costs more)."""
    if len(out) < 65_536:
        return False
    step = len(out) // 4
    return sum(out.count(b"-", i, i + 1024) for i in range(0, 4 * step, step)) > _DENSE_MINUS * 4


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 64


def _default(obj: Any) -> Any:
    """Map values JSON cannot encode to JSON-native ones, deterministically.

    Shared by the orjson and json paths so that both agree on these values too.
    """
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, set | frozenset):
        return sorted(_encode(item) for item in obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, uuid.UUID | Decimal | _dt.timedelta):
        return str(obj)
    if isinstance(obj, PurePath):
        # Its text, not its attributes: those are caches (set by the first str()) and differ between
        # Python versions, so one path hashed differently before and after printing it, and in 3.12.
        return {"$type": type(obj).__qualname__, "path": str(obj)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    dump = getattr(obj, "model_dump", None)  # pydantic v2
    if callable(dump):
        return dump(mode="json")
    dump = getattr(obj, "dict", None)  # pydantic v1 and look-alikes
    if callable(dump) and hasattr(obj, "__fields__"):
        return dump()
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return tolist()
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, functools.partial):
        return {"$partial": obj.func, "args": obj.args, "keywords": obj.keywords}
    if isinstance(obj, types.FunctionType):
        return {"$function": _qualified(obj)}
    if isinstance(obj, types.MethodType):
        return {"$method": _qualified(obj)}
    if isinstance(obj, BaseException):
        # Its message lives in ``args``, not in ``__dict__``: every ValueError hashed alike, and a tool
        # given three different errors was a loop to the guard.
        return {"$type": type(obj).__qualname__, "args": obj.args, **_state(obj)}
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {"$type": type(obj).__qualname__, **_state(obj)}
    slots = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]
    if slots:
        return {
            "$type": type(obj).__qualname__,
            **{s: getattr(obj, s, None) for s in slots if s != "__weakref__"},
        }
    # Last resort: repr without memory addresses, which differ between processes.
    return {"$repr": _ADDRESS.sub("", repr(obj))}


def _qualified(fn: Any) -> str:
    """A function's (or bound method's) module and qualified name: what tells two callbacks apart, the
    same in every process and after the function's code changes (a function's ``__dict__`` is empty, so
    every function, lambda and method hashed alike; built-ins are told apart by their repr already)."""
    return f"{getattr(fn, '__module__', None)}.{getattr(fn, '__qualname__', None)}"


def _state(obj: Any) -> dict[str, Any]:
    """An object's attributes, without the values of its ``functools.cached_property`` attributes.

    Those are caches the first access fills (an ``IPv4Network``'s ``broadcast_address``, a class's own
    derived values): hashed with them, one argument had one ``args_sha`` before the agent (or a library)
    read the property and another after, so the loop guard missed repeats and a replay diverged. They
    are computed from the rest, which is hashed."""
    derived = _cached_properties(type(obj))
    return {str(k): v for k, v in vars(obj).items() if k not in derived}


@functools.lru_cache(maxsize=1024)
def _cached_properties(cls: type) -> frozenset[str]:
    """The names that ``cls``'s instances resolve to a ``functools.cached_property`` (the class nearest in
    the MRO decides, as attribute lookup does)."""
    names: set[str] = set()
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name not in seen:
                seen.add(name)
                if isinstance(value, functools.cached_property):
                    names.add(name)
    return frozenset(names)


def _encode(obj: Any) -> str:
    """Canonical JSON of a single set element, used only to sort sets deterministically."""
    return _canonical(obj).decode("utf-8", "surrogatepass")  # (counts on with the value it is part of)


# An object graph with shared parts (an agent whose tools all hold the same client, a framework's context
# object holding the agent) is a tree to orjson and json: each path to a shared object expands it again, so
# the work doubles with every level of sharing (a chain of 18 objects each holding the next one twice took
# 10 s, and a tool given Strands' ToolContext over 60 s, on the agent's thread). So the values that
# _default expands are counted per hash; past _MAX_EXPANSIONS the encoders give up and the value is hashed
# from a copy cut at _FALLBACK_CHARS characters of JSON, in time proportional to that. Below the count
# nothing changes: the hashes of every value that took less are the ones they always were.
_MAX_EXPANSIONS = 10_000
_FALLBACK_CHARS = 500_000


class _Expansions(threading.local):
    n = 0


_expansions = _Expansions()


class _TooManyObjects(Exception):
    pass


def _counted(obj: Any) -> Any:
    _counted_expansion()
    return _default(obj)


def _counted_expansion() -> None:
    count = _expansions.n = _expansions.n + 1
    if count > _MAX_EXPANSIONS:
        raise _TooManyObjects


def _may_hold_nonfinite(obj: Any, size: int) -> bool:
    """Whether orjson's ``null`` may stand for a NaN or infinity in ``obj`` (json writes ``NaN``).

    Only asked when the output contains ``null``. A value of the exact built-in types (what parsed JSON
    and most tool arguments are) is answered in C: marshal writes each float as a tag byte and its 8
    IEEE 754 bytes, so a non-finite float shows as an exponent of all ones 8 bytes after a float tag
    (:func:`_nonfinite_in_marshal`). Those bytes also occur inside other values (in a list of negative
    ints, at every item), so a hit, or too many candidates, is settled by :func:`_holds_nonfinite` in at
    most about ``size`` (the output's length) / 512 steps of Python; where that is not enough, the hit
    stands (json decides), or regular expressions look at all the candidates.
    Anything else (a model, a dataclass, a subclass: marshal refuses them without calling their code) is
    walked, and the first object that is not JSON-native answers True: json decides.
    """
    try:
        data = marshal.dumps(obj)
    except (ValueError, TypeError, RecursionError):  # not only built-in types, or too deep
        return _walk_may_hold_nonfinite(obj)
    found = _nonfinite_in_marshal(data)
    if found is False:
        return False
    held = _holds_nonfinite(obj, max(_MIN_STEPS, size >> 9))
    if held is not None:
        return held
    return found or any(p.search(data) is not None for p in _NONFINITE_FLOAT_AT_TAIL)


def _holds_nonfinite(obj: Any, steps: int) -> bool | None:
    """Whether ``obj``, of built-in types only (marshal took it), holds a NaN or an infinity, exactly;
    None when that takes more than ``steps`` values looked at one by one.

    The marshal check's false alarms come from dense numbers (a metrics series of negative ints with a
    gap was hashed by json, at 20 to 45 times the floor), and a list's numbers are summed in C
    (:func:`_sum_of_numbers`): a sum over a NaN or an infinity is not finite (an overflow to infinity only
    costs the json fallback). The rest is walked, one value at a time, at about json's cost per value:
    hence the bound, past which the byte-level check decides (as it did before this check).
    """
    stack = [obj]
    while stack:
        steps -= 1
        if steps < 0:
            return None
        value = stack.pop()
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return True
        elif kind is dict:
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            total = _sum_of_numbers(value)
            if type(total) is float:
                if not math.isfinite(total):
                    return True
            elif type(total) is not int:  # not only numbers, or a complex (its sum hides a float's NaN)
                stack.extend(value)
        elif kind is set or kind is frozenset:
            stack.extend(value)
    return False


_MIN_STEPS = 256


def _sum_of_numbers(items: list[Any] | tuple[Any, ...]) -> Any:
    """The sum, in C, of the numbers in ``items`` or, by its first item, in its lists (a series of
    ``[timestamp, value]`` points) or its dicts' values; None when something else is there, or when
    ``items`` is short (walking a few items costs less than the exception).

    Falsy values are left out (``filter(None, ...)``): None, zeros, empty strings and containers hold
    no NaN or infinity, and both are truthy. Whatever else is not a number stops the sum (TypeError).
    """
    if len(items) < _SUMMED:
        return None
    first = type(items[0])
    if first is list or first is tuple:
        numbers: Any = chain.from_iterable(items)
    elif first is dict:
        numbers = chain.from_iterable(map(dict.values, items))
    else:
        numbers = items
    try:
        return sum(filter(None, numbers))
    except (TypeError, OverflowError):
        return None


_SUMMED = 8


# marshal's float tags: TYPE_BINARY_FLOAT ('g') and the same with FLAG_REF (0x80); a complex is two
# floats ('y'), whose parts are found by the same test or not at all (then: a harmless fallback).
_FLOAT_TAGS = (0x67, 0xE7)
_NONFINITE_TAIL = (b"\x7f", b"\xff")  # the last (most significant) byte of an all-ones exponent
# The same test in C, searched from the last byte (a literal: re runs to it, where an expression that
# starts with the tag's two alternatives tries a match at every byte, ten times slower), one per tail.
_NONFINITE_FLOAT_AT_TAIL = tuple(
    re.compile(tail + rb"(?<=[g\xe7][\x00-\xff]{6}[\xf0-\xff]" + tail + rb")", re.DOTALL)
    for tail in _NONFINITE_TAIL
)
# A candidate costs a Python iteration, about what the two regexes cost over 300 bytes; 4,096 at least
# (as before) made a 100 KB series of negative ints spend 1.8 ms here, 30 times sha256's cost, and one
# in 512 bytes sent 1 MB of records with nulls (one in 490) to the regexes after most of the loop.
_MIN_CANDIDATES = 16


def _nonfinite_in_marshal(data: bytes) -> bool | None:
    """Whether marshal ``data`` may hold a non-finite float (never False when it does); None when it
    has too many candidates to look at one by one.

    Each float is a tag byte and 8 little-endian bytes; it is NaN or infinite when its exponent bits are
    all ones: the last byte is 0x7f or 0xff and the one before it at least 0xf0. Those bytes are rare in
    marshal data (negative ints, some lengths), so the candidates are found with memchr and checked.
    Data with many of them (long lists of negative ints) is left to the exact check, and where that
    gives up, to regular expressions (see :func:`_may_hold_nonfinite`): in such data a float tag 8 bytes
    before them is common (a false alarm), and each regex candidate costs about 30 ns.
    """
    budget = _MIN_CANDIDATES + (len(data) >> 8)  # denser than one in 256 bytes: left to the exact check
    for tail in _NONFINITE_TAIL:
        i = data.find(tail, 8)
        while i != -1:
            if data[i - 1] >= 0xF0 and data[i - 8] in _FLOAT_TAGS:
                return True
            budget -= 1
            if not budget:
                return None
            i = data.find(tail, i + 1)
    return False


def _walk_may_hold_nonfinite(obj: Any) -> bool:
    """The walk for values marshal refuses: JSON-native containers are walked; any other object
    (converted through :func:`_default`) may hide a float, so it answers True and json decides."""
    stack = [obj]
    seen = 0
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return True
        elif kind is dict:
            stack.extend(value.values())
        elif kind is list or kind is tuple:
            stack.extend(value)
        elif value is not None and kind is not str and kind is not int and kind is not bool:
            return True
        seen += 1
        if seen > 100_000:  # a huge payload: json is the cheaper answer than walking on
            return True
    return False


def canonical_json(obj: Any) -> bytes:
    """Return the canonical JSON bytes of ``obj``; never raises.

    A user object's ``model_dump``/``__repr__`` may raise anything; that must not reach the agent,
    so every path falls through to a sanitised copy and, at worst, to the object's type name.
    """
    try:
        return _canonical(obj)
    finally:
        if _expansions.n:
            _expansions.n = 0


def _canonical(obj: Any) -> bytes:
    if _ORJSON_AGREES:
        try:
            out = orjson.dumps(obj, default=_counted, option=_ORJSON_OPTS)
        except Exception:
            if _expansions.n > _MAX_EXPANSIONS:
                return _cut_copy(obj)
        else:
            if len(out) < _SHORT:  # a few dozen bytes: bytes searches cost less than calling re
                if (
                    b"0.0000" not in out
                    and not (b"e-" in out and _SMALL_EXPONENT.search(out))
                    and (b"null" not in out or not _may_hold_nonfinite(obj, len(out)))
                ):
                    return out
            elif not _orjson_may_differ(out) and not (
                _NULL.search(out) and _may_hold_nonfinite(obj, len(out))
            ):
                return out
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_counted)
    except Exception:
        if _expansions.n > _MAX_EXPANSIONS:
            return _cut_copy(obj)
        # Cycles, mixed-type keys, a raising model_dump or __repr__: encode a sanitised copy instead.
        try:
            text = json.dumps(
                _sanitise(obj, 0, set()), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        except _TooManyObjects:  # a cyclic graph with shared parts: the copy counts on (see _sanitise)
            return _cut_copy(obj)
        except Exception:
            text = json.dumps({"$type": _type_name(obj)}, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


def _cut_copy(obj: Any) -> bytes:
    """The JSON of a copy of ``obj`` cut at ``_FALLBACK_CHARS`` (see ``_MAX_EXPANSIONS``)."""
    try:
        copy = _sanitise(obj, 0, set(), _Budget(_FALLBACK_CHARS, 0))
        text = json.dumps(_finished(copy), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except Exception:
        text = json.dumps({"$type": _type_name(obj)}, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


def _finished(value: Any) -> Any:
    """The copy with its cut strings ending in their marker (a cut string is a different value)."""
    if isinstance(value, Cut):
        return value.finish()
    if isinstance(value, dict):
        return {_finished(k): _finished(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finished(v) for v in value]
    return value


def _type_name(obj: Any) -> str:
    try:
        return type(obj).__qualname__
    except Exception:
        return "object"


def _sanitise(obj: Any, depth: int, seen: set[int], budget: _Budget | None = None) -> Any:
    """Convert to JSON-native values, replacing cycles and runaway depth with markers.

    Whatever cannot be converted is replaced where it is, never together with its neighbours: one giant
    integer or one object whose conversions raise must not make distinct values look alike (equal hashes
    would make a loop guard stop the run and a replay serve another call's result). With a ``budget``
    (characters of JSON), the copy stops where it is spent (see :func:`jsonable`).
    """
    if isinstance(obj, str):
        return obj if budget is None else budget.string(obj)
    if obj is None or isinstance(obj, bool):
        _spend(budget, 5)
        return obj
    if isinstance(obj, int):
        if obj.bit_length() < _BIG_INT_BITS or _int_text(obj) is not None:
            _spend(budget, obj.bit_length() // 3 + 2)
            return obj
        return _sanitise(_huge_int(obj), depth, seen, budget)
    if isinstance(obj, float):
        _spend(budget, 8)
        return obj if math.isfinite(obj) else repr(obj)
    if depth >= _MAX_DEPTH:
        return "$max_depth"
    oid = id(obj)
    if oid in seen:
        return "$cycle"
    seen.add(oid)
    try:
        try:
            if isinstance(obj, Mapping):
                if budget is None:
                    return {_key(k): _sanitise(v, depth + 1, seen) for k, v in obj.items()}
                return _bounded_mapping(obj, depth, seen, budget)
            if isinstance(obj, list | tuple):
                if budget is None:
                    return [_sanitise(v, depth + 1, seen) for v in obj]
                return _bounded_list(obj, depth, seen, budget)
            if budget is None:  # whole copies count the objects they convert (see jsonable)
                _counted_expansion()
            converted = _default(obj)
        except _TooManyObjects:
            raise
        except Exception:  # a user object whose model_dump, __repr__, items() or __iter__ raises
            converted = _fallback(obj)
        return _sanitise(converted, depth + 1, seen, budget)
    finally:
        seen.discard(oid)


def _spend(budget: _Budget | None, chars: int) -> None:
    if budget is not None:
        budget.left -= chars


# json refuses to write an int of more than sys.get_int_max_str_digits() (4300) decimal digits; below
# this many bits (about 4,200 digits) no int can reach that limit, so the common case costs one compare.
_BIG_INT_BITS = 13_900


def _int_text(n: int) -> str | None:
    """``str(n)``, or None when the interpreter refuses to write that many digits."""
    try:
        return str(n)
    except ValueError:
        return None


def _huge_int(n: int) -> dict[str, str]:
    """An int too long for decimal text, as its exact hex digits (hex has no digit limit)."""
    return {"$int": hex(n)}


def _fallback(obj: Any) -> Any:
    """What ``_default`` would have said, from the first of its strategies that does not raise.

    A model whose ``model_dump`` raises still has attributes; an object whose ``repr`` raises may still
    have ``__dict__`` or slots. Only an object that yields nothing at all is reduced to its type name.
    """
    name = _type_name(obj)
    for attempt in (_vars_of, _slots_of, _str_of):
        try:
            found = attempt(obj)
        except Exception:
            continue
        if found is not None:
            return {"$type": name, **found}
    return {"$type": name}


def _vars_of(obj: Any) -> dict[str, Any] | None:
    return _state(obj) if hasattr(obj, "__dict__") else None


def _slots_of(obj: Any) -> dict[str, Any] | None:
    slots = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]
    return {s: getattr(obj, s, None) for s in slots if s != "__weakref__"} or None


def _str_of(obj: Any) -> dict[str, Any] | None:
    return {"$str": _ADDRESS.sub("", str(obj))}


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    try:
        return str(k)
    except Exception:
        return f"$key:{_type_name(k)}"


def jsonable(obj: Any, max_chars: int | None = None, slack: int = 0) -> Any:
    """A JSON-native copy of ``obj`` (the same mapping the hashes use), for redaction and snapshots.

    With ``max_chars`` the copy stops at about that much JSON text, in time proportional to it, not to
    ``obj``: containers end with a marker saying how much was left out, and a string that does not fit
    is a :class:`Cut` (its first ``keep`` characters plus ``slack`` more, so that a redactor sees a
    secret that straddles the cut whole before the cut is made).

    Without it the copy is whole, unless the objects it converts pass ``_MAX_EXPANSIONS``: a graph with
    shared parts (an exception holding a client, which holds its pool, ...) doubles the work with every
    level of sharing, as for the hashes, so past that count the copy is the one cut at
    ``_FALLBACK_CHARS`` characters, with its markers.
    """
    if max_chars is not None:
        return _sanitise(obj, 0, set(), _Budget(max_chars, slack))
    outer = _expansions.n  # (a copy made while a hash counts keeps that count)
    _expansions.n = 0
    try:
        return _sanitise(obj, 0, set())
    except _TooManyObjects:
        return _finished(_sanitise(obj, 0, set(), _Budget(_FALLBACK_CHARS, 0)))
    finally:
        _expansions.n = outer


class Cut(str):
    """A string cut to fit a budget: ``keep`` characters count, of ``full`` in the original."""

    keep: int
    full: int

    def finish(self, text: str | None = None) -> str:
        """``text`` (the string itself, or a redacted copy of it) cut to ``keep``, with the marker."""
        text = str(self) if text is None else text
        return f"{text[: self.keep]}...[truncated {self.full - self.keep} chars]"


def _cut(text: str, keep: int, slack: int) -> Cut:
    out = Cut(text[: keep + slack])
    out.keep, out.full = keep, len(text)
    return out


_MARKER = len("...[truncated 1000000 chars]")


class _Budget:
    """What is left of ``jsonable``'s ``max_chars``; ``slack`` as there."""

    __slots__ = ("left", "slack")

    def __init__(self, left: int, slack: int) -> None:
        self.left = left
        self.slack = slack

    def string(self, text: str) -> str:
        size = len(text) + 2
        if size <= self.left:
            self.left -= size
            return text
        keep, self.left = max(self.left - 2 - _MARKER, 0), 0  # room for the marker too
        return _cut(text, keep, self.slack)


def _bounded_list(obj: list[Any] | tuple[Any, ...], depth: int, seen: set[int], budget: _Budget) -> list[Any]:
    budget.left -= 2
    items: list[Any] = []
    for i, item in enumerate(obj):
        if budget.left <= 0:
            items.append(f"...[truncated {len(obj) - i} items]")
            break
        items.append(_sanitise(item, depth + 1, seen, budget))
    return items


def _bounded_mapping(obj: Mapping[Any, Any], depth: int, seen: set[int], budget: _Budget) -> dict[str, Any]:
    budget.left -= 2
    out: dict[str, Any] = {}
    for i, (k, v) in enumerate(obj.items()):
        if budget.left <= 0:
            try:
                left = len(obj) - i
            except Exception:
                left = "more"
            out["..."] = f"[truncated {left} keys]"
            break
        key = _key(k)
        if len(key) + 3 > budget.left:
            key = _cut(key, max(budget.left - 3 - _MARKER, 0), budget.slack)
        budget.left -= len(key) + 3
        out[key] = _sanitise(v, depth + 1, seen, budget)
    return out


_INT64_MIN, _INT64_END = -(2**63), 2**63  # SQLite's and PostgreSQL's bigint; orjson stops at 2**64


def safe_text(text: str, nul: bool = True) -> str:
    """``text`` as every UTF-8 encoder accepts it: lone surrogates (``os.fsdecode`` of bytes that are not
    UTF-8) become their backslash escape; with ``nul=False`` NUL characters do too (PostgreSQL text and
    jsonb cannot hold them). Text that needs nothing is returned as it is, at the cost of one check."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if not nul and "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text


def safe_int(n: int) -> int | str:
    """``n``, or its decimal (beyond 4,300 digits: hex) text when it is outside 64 bits, where JSON
    encoders, SQLite and PostgreSQL's bigint stop."""
    if _INT64_MIN <= n < _INT64_END:
        return n
    return _int_text(n) or hex(n)


def json_safe(obj: Any, nul: bool = True) -> Any:
    """A JSON-native copy of ``obj`` that any JSON encoder and database takes: texts through
    :func:`safe_text` (keys too), ints through :func:`safe_int`, NaN and infinities as text. For a value
    one record must not lose a whole batch to: only the record that needs it pays for the copy."""
    return _json_safe(jsonable(obj), nul)


def _json_safe(value: Any, nul: bool) -> Any:
    if isinstance(value, str):
        return safe_text(value, nul)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return safe_int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {safe_text(k, nul): _json_safe(v, nul) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v, nul) for v in value]
    return value


def sha(obj: Any) -> str:
    """First 24 hex digits of sha256 over the canonical JSON of ``obj``; never raises."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()[:SHA_HEX_CHARS]


def sha_bytes(data: bytes) -> str:
    """The same digest over bytes that are already canonical JSON (avoids encoding twice)."""
    return hashlib.sha256(data).hexdigest()[:SHA_HEX_CHARS]
