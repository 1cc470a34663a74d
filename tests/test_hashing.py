"""args_sha / result_sha / input_sha: byte-identical to the seed's sha() for JSON, deterministic otherwise."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import json
import math
import subprocess
import sys
import time
import uuid

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_otel.hashing import canonical_json, json_safe, jsonable, sha
from agent_otel.snapshots import error_document

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def seed_sha(obj):
    """The seed's definition, verbatim."""
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()[:24]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_json_values_hash_exactly_like_the_seed(obj):
    assert sha(obj) == seed_sha(obj)


# What json.dumps accepts beyond JSON: NaN and infinities (written NaN / Infinity), next to nulls.
json_with_nonfinite = st.recursive(
    st.none() | st.floats() | st.integers() | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=800, deadline=None)
@given(json_with_nonfinite)
def test_nan_and_infinity_hash_like_the_seed_and_unlike_null(obj):
    assert sha(obj) == seed_sha(obj)


def test_nan_is_not_null():
    assert len({sha({"x": float("nan")}), sha({"x": None}), sha({"x": math.inf}), sha({"x": -math.inf})}) == 4


class _Raising:
    """A user object whose every conversion raises something hashing does not expect."""

    def model_dump(self, mode: str = "python") -> dict:
        raise RuntimeError("model_dump failed")

    def __repr__(self) -> str:
        raise LookupError("repr failed")


def test_objects_whose_conversions_raise_hash_without_raising():
    values = [_Raising(), {"a": _Raising()}, [_Raising(), {1: _Raising()}], {"s": {_Raising()}}]
    digests = [sha(v) for v in values]
    assert digests == [sha(v) for v in values]  # deterministic
    assert len(set(digests)) == len(values)


def test_float_and_text_edge_cases_match_the_seed():
    cases = [
        1e16,
        1e-5,
        1.23e-7,
        2.5e-9,
        4.874613105863965e-05,
        0.0001,
        -0.0,
        5e-324,
        1.7976931348623157e308,
        2**63,
        2**64 + 1,
        -(2**80),
        "\x7f",
        "\u2028",
        "\x00\x1f",
        "é😀",
        "0.00001 in a string",
        "e-mail",
        {"z": 1, "Z": 2, "é": 3, "e": 4},
        [1, [2, [3, {"a": None}]]],
        (1, 2),
        "",
        {},
    ]
    for obj in cases:
        assert sha(obj) == seed_sha(obj), obj


def test_known_value():
    assert sha({"url": "https://example.com"}) == seed_sha({"url": "https://example.com"})
    assert len(sha({})) == 24 and all(ch in "0123456789abcdef" for ch in sha({}))


@dataclasses.dataclass
class Ticket:
    id: int
    email: str


class Customer(pydantic.BaseModel):
    id: int
    tags: list[str]


class Plain:
    def __init__(self):
        self.a = 1
        self.b = [1, 2]


class Slotted:
    __slots__ = ("x",)

    def __init__(self):
        self.x = 1


def _cyclic_list():
    items: list = [1]
    items.append(items)
    return items


def _cyclic_dict():
    d: dict = {"a": 1}
    d["self"] = d
    return d


NON_JSON = {
    "bytes": lambda: b"\x00\xffdata",
    "bytearray": lambda: bytearray(b"abc"),
    "datetime": lambda: dt.datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=dt.UTC),
    "date": lambda: dt.date(2026, 1, 2),
    "set": lambda: {3, 1, 2},
    "frozenset": lambda: frozenset({"b", "a"}),
    "dataclass": lambda: Ticket(7, "a@example.com"),
    "pydantic": lambda: Customer(id=1, tags=["vip"]),
    "plain object": Plain,
    "slotted object": Slotted,
    "cyclic list": _cyclic_list,
    "cyclic dict": _cyclic_dict,
    "nan": lambda: float("nan"),
    "inf in dict": lambda: {"x": math.inf},
    "decimal": lambda: decimal.Decimal("1.10"),
    "uuid": lambda: uuid.UUID(int=5),
    "mixed keys": lambda: {1: "a", "b": 2, None: 3},
    "deep": lambda: _deep(500),
    "lone surrogate": lambda: "\ud800",
}


def _deep(n):
    value: list = []
    for _ in range(n):
        value = [value]
    return value


def test_non_json_values_hash_deterministically_without_raising():
    for name, make in NON_JSON.items():
        first, second = sha(make()), sha(make())
        assert first == second, name
        assert len(first) == 24, name


def test_non_json_values_are_stable_across_processes():
    script = (
        "from tests.test_hashing import NON_JSON; "
        "from agent_otel.hashing import sha; print(' '.join(sha(m()) for m in NON_JSON.values()))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=ROOT,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().split() == [sha(m()) for m in NON_JSON.values()]


def test_sets_hash_independently_of_order_and_distinct_values_differ():
    assert sha({1, 2, 3}) == sha({3, 2, 1})
    assert sha(Ticket(1, "a")) != sha(Ticket(2, "a"))
    assert sha(b"a") != sha(b"b")
    assert sha(Customer(id=1, tags=[])) == sha({"id": 1, "tags": []})


def test_canonical_json_is_compact_and_sorted():
    assert canonical_json({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


class _DumpRaises:
    """A model whose model_dump raises but whose attributes still tell instances apart."""

    def __init__(self, value: int) -> None:
        self.value = value

    def model_dump(self, mode: str = "python") -> dict:
        raise RuntimeError("model_dump failed")

    def __repr__(self) -> str:
        raise LookupError("repr failed")


# Five distinct arguments json cannot encode (ints beyond its 4,300-digit limit, a model whose conversions
# raise); they used to share one args_sha, so a run calling a tool with each stopped as loop_detected.
UNENCODABLE_ARGS = [
    {"n": 10**5000},
    {"n": 10**5000 + 1},
    {"n": -(10**5000)},
    {"item": _DumpRaises(1)},
    {"item": _DumpRaises(2)},
]


def test_distinct_unencodable_values_hash_apart_and_deterministically():
    digests = [sha(v) for v in UNENCODABLE_ARGS]
    assert len(set(digests)) == len(UNENCODABLE_ARGS)
    assert digests == [sha(v) for v in UNENCODABLE_ARGS]
    # a giant int stands alone: its neighbours still count
    assert sha([10**5000, 1]) != sha([10**5000, 2])


def test_a_run_calling_a_tool_with_distinct_unencodable_args_is_not_a_loop(telemetry):
    import agent_otel

    @agent_otel.tool(name="compute")
    def compute(**kwargs):
        return "ok"

    with agent_otel.run("hash-agent") as run:
        for args in UNENCODABLE_ARGS:
            compute(**args)
    assert run.result.stop_reason.value == "completed"
    shas = {e["args_sha"] for e in telemetry.events("tool_result")}
    assert len(shas) == len(UNENCODABLE_ARGS)


def _records(n: int, extra: dict) -> list:
    return [{"id": i, "price": 19.99 + i, "neg": -i, "tags": ["a", None], **extra} for i in range(n)]


def test_large_values_with_nulls_and_non_finite_floats_hash_like_the_seed():
    """Large outputs take other paths (re searches; the non-finite check through marshal): a NaN or an
    infinity anywhere, however deep and however late, still hashes like the seed, unlike a null."""
    big = _records(20_000, {})
    assert sha(big) == seed_sha(big)
    for bad in (float("nan"), math.inf, -math.inf):
        for where in (0, 10_000, 19_999):
            value = _records(20_000, {})
            value[where]["tags"].append({"deep": [[bad]]})
            assert sha(value) == seed_sha(value), (bad, where)
        same = [bad] * 50_000 + [None]  # one float object, written once and then referenced
        assert sha(same) == seed_sha(same)


def test_dense_negative_ints_and_lengths_do_not_hide_a_non_finite_float():
    """Negative ints and some lengths put the bytes of a non-finite exponent in marshal data: many of them
    switch the check to a full scan, which still finds the one NaN."""
    dense = [-1, -255, -(2**40)] * 40_000 + ["x" * 127, None, float("nan")]
    assert sha(dense) == seed_sha(dense)
    assert sha(dense[:-1]) == seed_sha(dense[:-1])
    # Ints from -6 to -20 put three 0xff bytes each (the last byte of a negative infinity) into marshal
    # data and never a float tag 8 bytes before one: only the full scan past them finds the infinity.
    for bad in (-math.inf, -float("nan")):
        tail = [-(i % 15) - 6 for i in range(30_000)] + [None, bad]
        assert sha(tail) == seed_sha(tail), bad
        # Not numbers only, and too long to walk to its first item: only the full scan finds it.
        mixed = [bad, None] + ["s", -7, -8] * 30_000
        assert sha(mixed) == seed_sha(mixed), bad
        assert sha(mixed[1:]) == seed_sha(mixed[1:])


def test_small_floats_in_large_outputs_are_written_like_the_seed():
    for value in (1e-5, 4.874613105863965e-05, 1.5e-7, -2.5e-9):
        big = _records(5_000, {"tiny": value, "text": "e-mail re-use 2026-01-02"})
        assert sha(big) == seed_sha(big), value
    text = _records(5_000, {"text": "e-mail 3e-5 in a string, 0.00001 too"})
    assert sha(text) == seed_sha(text)


# Outputs past a few hundred bytes are checked by other searches than short ones: floats of every
# magnitude next to text full of minus signs, exponents and zeros, with and without a decimal point
# anywhere (``1e-7`` has none), with and without nulls.
_large_parts = st.lists(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-5, 5e-5, 1e-7, -2.5e-9, 1.5e-6, 3e-300, -0.0, 1e16, 0.0001])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(alphabet="0123456789e-.+ null", max_size=12)
    | st.none(),
    min_size=1,
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(_large_parts, st.sampled_from(["x" * 300, "a-b 2026-01-02 " * 20, "e-" * 150]))
def test_large_outputs_with_floats_and_text_hash_exactly_like_the_seed(parts, padding):
    value = {"pad": padding, "parts": parts, "copy": [parts, {"k": parts[::-1]}]}
    assert len(canonical_json(value)) > 300
    assert sha(value) == seed_sha(value)


def _series(n: int) -> list:
    """Negative ints, dense: every item puts bytes of a non-finite exponent into marshal data, and its
    output is full of minus signs (the other search for exponents)."""
    return [-(i % 300) for i in range(n)]


_NONFINITE = (float("nan"), math.inf, -math.inf, -float("nan"))


def test_a_series_of_negative_ints_with_gaps_hashes_like_the_seed_and_a_hidden_nan_is_found():
    """A series with ``null`` gaps sets off marshal's non-finite check (its int bytes look like a float's
    exponent), which is then settled exactly: nothing non-finite, the orjson bytes; a NaN or an infinity
    anywhere (a plain list of numbers, after a None, in a tuple, a dict, a set's neighbour), json's."""
    clean = {"t": list(range(50_000)), "v": _series(50_000), "gap": None, "w": [_series(300), None, (-1, -2)]}
    assert sha(clean) == seed_sha(clean)
    for bad in _NONFINITE:
        for place in ("v0", "v-1", "after_none", "tuple", "dict", "nested"):
            value = {"t": list(range(20_000)), "v": _series(20_000), "gap": None, "w": [None, -1]}
            if place == "v0":
                value["v"][0] = bad
            elif place == "v-1":
                value["v"][-1] = bad
            elif place == "after_none":
                value["w"].append(bad)
            elif place == "tuple":
                value["w"].append((-1, bad, -3))
            elif place == "dict":
                value["w"].append({"x": -1, "y": bad})
            else:
                value["w"].append([[-5, [bad]], {"s": [1, None]}])
            assert sha(value) == seed_sha(value), (bad, place)
            assert "NaN" in canonical_json(value).decode() or "Infinity" in canonical_json(value).decode()


@pytest.mark.parametrize("bad", _NONFINITE)
@pytest.mark.parametrize("where", [0, 1, 4_999])
def test_series_of_points_and_of_small_dicts_with_gaps_hide_no_nan(bad, where):
    """The exact check sums a list of ``[timestamp, value]`` points, or of dicts of numbers, in one go
    (gaps, zeros and empty values left out): a NaN or an infinity in any point or dict is still found,
    including the first, and mixed lists are walked."""
    points = [[1_767_225_600 + 60 * i, None if i % 100 == 7 else 150 - i % 300] for i in range(5_000)]
    assert sha(points) == seed_sha(points)
    points[where][1] = bad
    assert sha(points) == seed_sha(points)
    rows = [{"a": -i, "b": None, "c": 0, "d": ""} for i in range(5_000)]
    assert sha(rows) == seed_sha(rows)
    rows[where]["c"] = bad
    assert sha(rows) == seed_sha(rows)
    mixed = [[-1, -2]] * 10 + [{"x": -1, "y": bad}] + [[-3, None]] * 10
    assert sha(mixed) == seed_sha(mixed)


def test_a_nan_summed_with_a_complex_is_still_found():
    """A complex (hashed by its repr) next to a NaN makes a list's sum a complex, whose NaN part says
    nothing about the float: the list is walked, and the NaN is written as json writes it."""
    for value in ([[1j, float("nan")], None], [_series(3_000), [2 + 0j, -math.inf, -1], None]):
        text = canonical_json(value).decode()
        assert ("NaN" in text or "-Infinity" in text) and text.count("null") == 1, text[-80:]


def test_numbers_whose_sum_overflows_or_cancels_hash_like_the_seed():
    """The exact check sums lists of numbers: an overflow to infinity (no non-finite float at all) and an
    infinity next to its negative (a NaN sum) only cost the json fallback, never a wrong hash."""
    for value in (
        [1e308, 1e308, -1] * 2000 + [None],
        [math.inf, -math.inf, -1] * 2000 + [None],
        [_series(5000), [1.5, -(2**62), True, None], -0.0],
    ):
        assert sha(value) == seed_sha(value)


@pytest.mark.parametrize(
    "tiny",
    [1e-5, 5e-5, 1e-7, -1.5e-7, 2.5e-9, -9.99e-6, 5e-324, 1e-10, -0.0, 1e-4, 1e16, 1.7976931348623157e308],
)
def test_small_floats_among_dense_minus_signs_are_written_like_the_seed(tiny):
    """Outputs dense with minus signs are searched for exponents from ``e-`` instead of ``-``; sparse ones
    from ``-``: a small float is found either way, wherever it is, and its look-alikes in strings only
    cost the fallback."""
    for body in (_series(20_000), ["2026-01-02 e-mail"] * 2_000):
        for where in (0, len(body) // 2, len(body)):
            value = list(body)
            value.insert(where, tiny)
            assert sha(value) == seed_sha(value), (tiny, where, body[0])
            value.insert(0, [None, "1e-7", "0.00001"])
            assert sha(value) == seed_sha(value), (tiny, where, body[0])


def test_large_outputs_with_huge_ints_lone_surrogates_and_non_str_keys_hash_like_the_seed():
    """What orjson refuses (ints beyond 64 bits, lone surrogates, non-string keys) goes to json at any
    size, next to dense minus signs and nulls."""
    for odd in (2**64 + 1, -(2**70), "lone \ud800 surrogate", {1: "int key"}, {"k": {2.5: "float key"}}):
        value = [_series(10_000), None, odd, 1e-7]
        seed = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_json(value) == seed.encode("utf-8", "surrogatepass"), odd


_dense_parts = st.lists(
    st.integers(min_value=-(2**31), max_value=-1)
    | st.sampled_from([None, 1e-5, -1e-7, 5e-324, -0.0, 1e-9, 1e-10, float("nan"), math.inf, -math.inf])
    | st.floats()
    | st.tuples(st.integers(max_value=-1), st.floats()),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(_dense_parts, st.integers(min_value=0, max_value=3_000))
def test_dense_negative_numbers_with_any_float_hash_exactly_like_the_seed(parts, at):
    """Generated floats (NaN and infinities among them) and nulls placed in a long series of negative
    ints: every path of the non-finite and exponent checks for dense data against the seed."""
    series = _series(3_000)
    value = series[:at] + [parts] + series[at:]
    assert sha(value) == seed_sha(value)


def test_a_path_hashes_its_text_before_and_after_it_is_printed():
    """A path's attributes are caches: the first ``str()`` fills them, and Python 3.12 has other ones than
    3.11. Hashed as attributes, one path argument had two ``args_sha`` (the loop guard saw two calls, a
    replay diverged when the agent printed the path first) and another one on 3.12."""
    import pathlib

    path = pathlib.Path("/srv/reports/q3.csv")
    before = sha({"file": path})
    str(path)
    assert sha({"file": path}) == before
    assert canonical_json(pathlib.PurePosixPath("/a b")) == b'{"$type":"PurePosixPath","path":"/a b"}'
    assert sha(pathlib.PurePosixPath("/a")) != sha(pathlib.PurePosixPath("/b")) != sha("/b")


class _Report:
    """A class with a derived value cached on first access (``functools.cached_property``)."""

    def __init__(self, rows: list[int]) -> None:
        self.rows = rows

    @__import__("functools").cached_property
    def total(self) -> int:
        return sum(self.rows)


def test_an_object_hashes_alike_before_and_after_its_cached_properties_are_read():
    """A ``cached_property`` stores its value in the instance's ``__dict__`` on first access (the agent
    printing a total, a library reading a network's broadcast address): hashed with it, one argument had
    two ``args_sha``, so repeats were not a loop and a replay diverged, as paths did."""
    import ipaddress

    report, network = _Report([1, 2]), ipaddress.ip_network("10.0.0.0/24")
    before = sha({"report": report}), sha(network)
    assert report.total == 3
    assert str(network.broadcast_address) == "10.0.0.255" and network.hostmask
    assert (sha({"report": report}), sha(network)) == before
    assert canonical_json(report) == b'{"$type":"_Report","rows":[1,2]}'  # as before: no key dropped
    assert sha(_Report([1])) != sha(_Report([2]))
    assert sha(ipaddress.ip_network("10.0.1.0/24")) != before[1]


def test_a_subclass_attribute_hiding_a_cached_property_is_hashed():
    class Hidden(_Report):
        total = 0  # a plain class attribute: the instance's own value is state

    one, two = Hidden([1]), Hidden([1])
    one.total, two.total = 1, 2
    assert sha(one) != sha(two)


def test_distinct_exceptions_hash_apart():
    """An exception's message is in its ``args``, which are not attributes in ``__dict__``: every
    ValueError hashed as ``{"$type": "ValueError"}`` alike."""
    assert sha(ValueError("disk full")) != sha(ValueError("timeout")) != sha(KeyError("timeout"))
    assert canonical_json(ValueError("x", 1)) == b'{"$type":"ValueError","args":["x",1]}'
    assert sha(ValueError("x")) == sha(ValueError("x"))


def test_a_run_reporting_distinct_errors_to_a_tool_is_not_a_loop(telemetry):
    import agent_otel

    @agent_otel.tool(name="report_error")
    def report_error(error: Exception) -> str:
        return "noted"

    with agent_otel.run("errors-agent") as run:
        for message in ("disk full", "timeout", "refused", "not found"):
            report_error(OSError(message))
    assert run.result.stop_reason.value == "completed"
    assert len({e["args_sha"] for e in telemetry.events("tool_result")}) == 4


class _Kind(__import__("enum").Enum):
    A = "a"


class _Order(pydantic.BaseModel):
    id: int
    _seen: dict = pydantic.PrivateAttr(default_factory=dict)

    @__import__("functools").cached_property
    def label(self) -> str:
        return f"order {self.id}"

    @pydantic.computed_field
    @property
    def double(self) -> int:
        return self.id * 2


@dataclasses.dataclass
class _Priced:
    amount: decimal.Decimal

    @__import__("functools").cached_property
    def cents(self) -> int:
        return int(self.amount * 100)


def _touched(value):
    """``value`` after what an agent does with an argument: print it, compare it, read its properties."""
    str(value), repr(value)
    for name in ("label", "cents", "total", "broadcast_address", "hostmask", "is_private"):
        getattr(value, name, None)
    if isinstance(value, _Order):
        value._seen["printed"] = True
    return value


def test_common_argument_kinds_have_one_canonical_form_on_every_python_and_after_use():
    """The forms every Python the core suite runs on (3.11, 3.12, 3.13) must produce alike, before and
    after the value is printed and its cached properties read (loop guard, replay and drift compare
    hashes across processes and versions)."""
    import ipaddress
    import zoneinfo

    forms = [
        (_Kind.A, b'"a"'),
        (decimal.Decimal("1.10"), b'"1.10"'),
        (uuid.UUID(int=5), b'"00000000-0000-0000-0000-000000000005"'),
        (
            dt.datetime(2026, 1, 2, 3, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            b'"2026-01-02T03:00:00+01:00"',
        ),
        (frozenset({"b", "a"}), b'["\\"a\\"","\\"b\\""]'),
        (ValueError("x"), b'{"$type":"ValueError","args":["x"]}'),
        (ipaddress.ip_address("10.0.0.1"), b'{"$type":"IPv4Address","_ip":167772161}'),
        (_Order(id=1), b'{"double":2,"id":1}'),
        (_Priced(decimal.Decimal("1.5")), b'{"amount":"1.5"}'),
        (_Report([1]), b'{"$type":"_Report","rows":[1]}'),
    ]
    for value, form in forms:
        assert canonical_json(value) == form, value
        assert canonical_json(_touched(value)) == form, value
    network = ipaddress.ip_network("10.0.0.0/24")
    before = canonical_json(network)
    assert canonical_json(_touched(network)) == before


def _round_half_up(x, digits=0):
    return x


def _truncate(x, digits=0):
    return x


class _Formatter:
    def render(self, x):
        return x

    def escape(self, x):
        return x


def test_functions_and_partials_hash_by_their_name_and_bound_arguments():
    """A function has a ``__dict__`` (empty) and no state of its own worth hashing: every function,
    lambda, bound method and ``functools.partial`` hashed as ``{"$type": "function"}`` (or ``partial``,
    ``method``) alike, so a tool given a callback was a loop at its 4th call whatever the callbacks, and
    a replay served one callback's recorded result for another's. They hash by their qualified name, and
    a partial by its function and bound arguments."""
    import functools

    assert sha(_round_half_up) != sha(_truncate)
    assert canonical_json(_truncate) == b'{"$function":"tests.test_hashing._truncate"}'
    assert sha(functools.partial(_truncate, digits=2)) != sha(functools.partial(_truncate, digits=3))
    assert sha(functools.partial(_truncate, digits=2)) != sha(functools.partial(_round_half_up, digits=2))
    assert sha(functools.partial(_truncate, 1)) != sha(functools.partial(_truncate, digits=1))
    assert canonical_json(functools.partial(_truncate, 1.5, digits=2)) == (
        b'{"$partial":{"$function":"tests.test_hashing._truncate"},"args":[1.5],"keywords":{"digits":2}}'
    )
    assert sha(functools.partial(_truncate, digits=2)) == sha(functools.partial(_truncate, digits=2))
    formatter = _Formatter()
    assert sha(formatter.render) != sha(formatter.escape)
    assert canonical_json(formatter.render) == b'{"$method":"tests.test_hashing._Formatter.render"}'
    assert sha(len) == sha(len) != sha(abs)  # built-ins hashed apart already (their repr): unchanged


def test_a_tool_given_distinct_callbacks_is_not_a_loop(telemetry):
    import functools

    import agent_otel

    @agent_otel.tool(name="transform")
    def transform(values: list, fn) -> list:
        return [fn(v) for v in values]

    with agent_otel.run("callbacks-agent") as run:
        for fn in (_round_half_up, _truncate, functools.partial(_truncate, digits=1), _Formatter().render):
            transform([1.25], fn)
    assert run.result.stop_reason.value == "completed"
    assert len({e["args_sha"] for e in telemetry.events("tool_result")}) == 4


class _Shared:
    """A link of a chain in which every object holds the next one twice (two tools holding one client)."""

    def __init__(self, child: _Shared | None, name: str) -> None:
        self.name = name
        self.left = child
        self.right = child


def _shared_chain(depth: int, top: str = "top") -> _Shared:
    node = None
    for i in range(depth):
        node = _Shared(node, f"n{i}")
    node.name = top
    return node


def _tree(node: _Shared | None) -> object:
    """The chain as the JSON tree its hash is made of below the count of expansions."""
    if node is None:
        return None
    return {"$type": "_Shared", "name": node.name, "left": _tree(node.left), "right": _tree(node.right)}


def test_an_object_graph_with_shared_parts_is_hashed_in_bounded_time_and_apart():
    """orjson and json expand a shared object once per path to it: 2**40 expansions for this chain (a tool
    given a framework's context object, which holds the agent, its tools and their common client, spent
    over a minute in hashing on the agent's thread). Past a count of expansions the hash is made from a
    copy cut at a bounded size instead: still deterministic, and graphs that differ near the top apart."""
    start = time.monotonic()
    first = sha(_shared_chain(40))
    again = sha(_shared_chain(40))
    other = sha(_shared_chain(40, top="other"))
    elapsed = time.monotonic() - start
    assert elapsed < 30, elapsed  # (it never finished before; about 0.4 s each under load)
    assert first == again
    assert first != other


def test_a_cyclic_graph_with_shared_parts_is_hashed_in_bounded_time_and_apart():
    """A cycle sends the hash to a sanitised copy (orjson and json refuse cycles), which expanded every path
    to a shared object as well: a chain of 30 links whose last holds the first never finished."""

    def cyclic(top: str) -> _Shared:
        head = _shared_chain(30, top)
        node = head
        while node.left is not None:
            node = node.left
        node.left = head  # the client's pool holds the agent that holds the client
        return head

    start = time.monotonic()
    first, again, other = sha(cyclic("top")), sha(cyclic("top")), sha(cyclic("other"))
    assert time.monotonic() - start < 30
    assert first == again
    assert first != other


def test_a_whole_copy_of_a_graph_with_shared_parts_is_cut_in_bounded_time():
    """The JSON copies that redaction, an exception's recording and a store's fallback make had no bound:
    an exception holding a client whose parts share their parts stalled the thread that recorded it."""
    error = RuntimeError("pool exhausted")
    error.client = _shared_chain(40)  # type: ignore[attr-defined]
    start = time.monotonic()
    copy = jsonable(_shared_chain(40))
    document = json.loads(error_document(error))
    safe = json_safe({"client": _shared_chain(40)})
    assert time.monotonic() - start < 30
    text = json.dumps(copy)
    assert copy["name"] == "top" and "[truncated" in text
    assert len(text) < 1_000_000  # the fallback's 500,000 characters and the markers
    assert document["message"] == "pool exhausted" and document["attrs"]["client"]["name"] == "top"
    assert safe["client"]["name"] == "top"


def test_a_whole_copy_below_the_count_is_the_whole_value():
    """Below the count of conversions a whole copy is exactly the value's tree, with no marker."""
    value = _shared_chain(8)

    assert jsonable(value) == _tree(value)


def test_a_small_graph_with_shared_parts_keeps_the_hash_it_always_had():
    """Below the count of expansions nothing changes: the hash is still the seed's json.dumps of the tree."""
    value = _shared_chain(8)

    text = json.dumps(_tree(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert sha(value) == hashlib.sha256(text.encode()).hexdigest()[:24]


_OLD_ORJSON = """
import json, hashlib, logging, re, sys
import orjson
real = orjson.dumps
def dumps(obj, default=None, option=None):  # orjson 3.9 to 3.11: large floats without the exponent's sign
    return re.sub(rb"([0-9])e\\+", rb"\\1e", real(obj, default=default, option=option))
orjson.dumps = dumps
logging.basicConfig(stream=sys.stdout, format="%(message)s")
from agent_otel.hashing import canonical_json, sha
value = {"amount": 1e16, "points": [[1.7e9, 2.5e20], [1.8e9, -1.5e300]], "note": "ok"}
seed = hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
print(sha(value) == seed.hexdigest()[:24], canonical_json(value) == json.dumps(
    value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
"""


def test_an_orjson_that_writes_floats_unlike_json_is_not_trusted():
    """orjson 3.9 to 3.11 (which pyproject allowed) write ``1e16`` where json writes ``1e+16``: every value
    holding a float of 1e16 or more hashed unlike the seed's definition and unlike agent-otel beside a newer
    orjson. A probe at import finds such an orjson and hashes with json instead, saying so once."""
    proc = subprocess.run([sys.executable, "-c", _OLD_ORJSON], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "True True", proc.stdout
    assert any("writes JSON unlike json.dumps (upgrade it to 3.12 or later)" in line for line in lines), lines


def test_the_installed_orjson_agrees_with_json_on_the_probe():
    from agent_otel import hashing

    assert hashing._ORJSON_AGREES, "the orjson installed here writes the probe's values unlike json"
    assert hashing._orjson_agrees(lambda value, option: b"1e16") is False
