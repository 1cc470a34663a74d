"""What hashing a tool's arguments or result costs: agent-otel's ``sha`` next to the seed's and the floor.

Three ways to the same 24-hex digest of a JSON value, on payloads of 1 KB to 10 MB of canonical JSON:

* **floor**: sha256 of the canonical JSON bytes, already made (what hashing costs without serialising);
* **orjson + sha256**: ``orjson.dumps`` with sorted keys, then sha256: the fastest serialiser's bytes with
  none of the checks that make them the seed's (what any orjson-based method costs at least);
* **agent-otel**: ``agent_otel.hashing.sha`` (canonical JSON of the value, then sha256);
* **seed**: the seed's ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
  then sha256.

Payloads are what tool results look like: ``records``, a list of small records (short strings, ints,
floats, a nested list and object: the most work per byte for a serialiser), clean and with a ``null`` in
every record (JSON's ``null`` is where a NaN could hide, see agent_otel.hashing); ``text``, search hits
with a text snippet each; and ``series``, metrics points ``[timestamp, value]`` with negative values and a
gap (``null``) in one point of a hundred (dense negative ints look like a NaN to the first, byte-level
check). The three methods run
interleaved, round by round; each figure is the median over the rounds of the thread's CPU time per
call. Every method's digest is checked to be the same.

Run: ``python benchmarks/hashing.py`` (``--rounds``, ``--json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from agent_otel.hashing import SHA_HEX_CHARS, canonical_json, sha

SIZES = (("1 KB", 1_000), ("100 KB", 100_000), ("1 MB", 1_000_000), ("10 MB", 10_000_000))


def document(i: int, nulls: bool) -> dict[str, Any]:
    """A search hit with a text snippet: what a retrieval or web tool returns."""
    return {
        "id": i,
        "url": f"https://example.com/kb/{i}",
        "title": f"Refund policy, article {i}",
        "score": 0.5 + (i % 50) / 100,
        "snippet": "Customers can ask for a refund within 30 days of delivery when the item arrived late. "
        * 3,
        "updated": "2026-01-15T10:00:00Z",
        **({"parent": None} if nulls else {}),
    }


def record(i: int, nulls: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": i,
        "title": f"Refund request for order {i}",
        "price": 19.99 + i % 100,
        "score": 0.5 + (i % 50) / 100,
        "tags": ["billing", "vip"],
        "customer": {"id": 1000 + i, "tier": "gold", "country": "DE"},
    }
    if nulls:
        item["parent"] = None
    return item


def point(i: int, nulls: bool) -> list[Any]:
    """A metrics point, ``[timestamp, value]``: the value goes negative, and with ``nulls`` one in a
    hundred is missing (a gap, as metrics APIs return it)."""
    return [1_767_225_600 + 60 * i, None if nulls and i % 100 == 7 else 150 - i % 300]


SHAPES = {"records": record, "text": document, "series": point}


def payload(size: int, nulls: bool, shape: str = "records") -> dict[str, Any]:
    """A result of about ``size`` bytes of canonical JSON, a list of ``shape`` items."""
    item = SHAPES[shape]
    n = max(1, size // (len(orjson.dumps(item(10_000, nulls))) + 1))
    return {"query": "refund policy", "total": n, "hits": [item(i, nulls) for i in range(n)]}


def seed_sha(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()[:SHA_HEX_CHARS]


def floor_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:SHA_HEX_CHARS]


def orjson_sha(obj: Any) -> str:
    return floor_sha(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - start) / n * 1e6


def measure(rounds: int, sizes: tuple[tuple[str, int], ...] = SIZES) -> list[dict[str, Any]]:
    rows = []
    for shape, nulls in (("records", False), ("records", True), ("text", False), ("series", True)):
        for label, size in sizes:
            obj = payload(size, nulls, shape)
            data = canonical_json(obj)
            digests = {sha(obj), seed_sha(obj), floor_sha(data), orjson_sha(obj)}
            assert len(digests) == 1, f"digests differ for {label}: {digests}"
            n = max(1, 3_000_000 // size)
            methods = {
                "floor": lambda d=data: floor_sha(d),
                "orjson": lambda o=obj: orjson_sha(o),
                "agent_otel": lambda o=obj: sha(o),
                "seed": lambda o=obj: seed_sha(o),
            }
            times: dict[str, list[float]] = {k: [] for k in methods}
            for r in range(rounds):
                keys = list(methods)
                for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                    times[key].append(per_call_us(methods[key], n))
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append(
                {
                    "size": label,
                    "shape": shape,
                    "bytes": len(data),
                    "nulls": nulls,
                    "floor_us": med["floor"],
                    "orjson_us": med["orjson"],
                    "agent_otel_us": med["agent_otel"],
                    "seed_us": med["seed"],
                }
            )
    return rows


def render(rows: list[dict[str, Any]], rounds: int) -> str:
    lines = [
        f"24-hex sha256 of canonical JSON, Python {platform.python_version()}, orjson {orjson.__version__}; "
        f"thread CPU per call, median of {rounds} interleaved rounds",
        "floor = sha256 of the canonical JSON bytes, already made; x = time / floor",
        "",
        f"{'payload':<22}{'floor':>11}{'orjson + sha256':>21}{'agent-otel':>21}{'seed json.dumps':>22}"
        f"{'agent-otel vs seed':>20}",
        "-" * 117,
    ]
    for row in rows:
        floor = row["floor_us"]
        name = f"{row['size']} {row['shape']}{', nulls' if row['nulls'] else ''}"
        lines.append(
            f"{name:<22}{_us(floor):>11}"
            f"{_us(row['orjson_us']):>13} {row['orjson_us'] / floor:>5.1f}x"
            f"{_us(row['agent_otel_us']):>13} {row['agent_otel_us'] / floor:>5.1f}x"
            f"{_us(row['seed_us']):>14} {row['seed_us'] / floor:>5.1f}x"
            f"{row['seed_us'] / row['agent_otel_us']:>18.1f}x faster"
        )
    return "\n".join(lines)


def _us(us: float) -> str:
    return f"{us:,.1f} us" if us < 1000 else f"{us / 1000:,.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per payload (median)")
    parser.add_argument("--max-size", type=int, default=10_000_000, help="largest payload in bytes")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead")
    args = parser.parse_args()
    sizes = tuple((label, size) for label, size in SIZES if size <= args.max_size)
    rows = measure(args.rounds, sizes)
    print(json.dumps(rows, indent=2) if args.json else render(rows, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
