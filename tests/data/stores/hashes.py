"""Records one run calling tools with arguments of many kinds into the store at ``argv[1]`` and prints the
``args_sha`` of each call as JSON: run once with an older agent-otel's source on ``PYTHONPATH`` to make
``hashes.json``, and by ``tests/store/test_upgrade.py`` with this version's (replays match calls by it).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import os
import pathlib
import sqlite3
import sys
import uuid
from typing import Any

import agent_otel


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Pair:
    a: int
    b: str


class Plain:
    def __init__(self) -> None:
        self.x = 1
        self.y = [1, 2]


class Slots:
    __slots__ = ("s",)

    def __init__(self) -> None:
        self.s = "v"


def values() -> dict[str, Any]:
    nested: Any = [1]
    for _ in range(40):
        nested = [nested]
    return {
        "int": 1,
        "float": 1.0,
        "negative zero": -0.0,
        "nan": float("nan"),
        "inf": float("inf"),
        "2**70": 2**70,
        "bool": True,
        "none": None,
        "unicode": "é☃",
        "100k chars": "x" * 100_000,
        "lone surrogate": os.fsdecode(b"v\xff"),
        "bytes": b"\x00\xffbytes",
        "bytearray": bytearray(b"ab"),
        "tuple": (1, 2),
        "list of tuple": [1, (2, 3)],
        "set": {3, 1, 2},
        "frozenset": frozenset({"a"}),
        "datetime": datetime.datetime(2026, 1, 2, 3, 4, 5, 6),
        "aware datetime": datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC),
        "date": datetime.date(2026, 1, 2),
        "time": datetime.time(1, 2),
        "timedelta": datetime.timedelta(seconds=3),
        "decimal": decimal.Decimal("1.10"),
        "uuid": uuid.UUID(int=5),
        "enum": Color.RED,
        "dataclass": Pair(1, "b"),
        "object": Plain(),
        "slots": Slots(),
        "path": pathlib.PurePosixPath("/tmp/x"),
        "int key": {1: "int key", "b": 2},
        "tuple key": {(1, 2): "tuple key"},
        "nested dict": {"z": 1, "a": {"n": [1, 2.5]}},
        "41 levels": nested,
        "20,000 items": list(range(20_000)),
        "3,000 keys": {f"k{i}": i for i in range(3000)},
        "1.5e300": 1.5e300,
        "pi": 3.141592653589793,
        "0.1 + 0.2": 0.1 + 0.2,
    }


@agent_otel.tool(name="one")
def one(v: Any) -> str:
    return "r"


@agent_otel.tool(name="many")
def many(a: Any, b: Any = 5, *rest: Any, c: Any, d: Any = "dd", **kw: Any) -> str:
    return "r"


def main(store: str) -> None:
    agent_otel.setup(service_name="hashes", endpoint="http://127.0.0.1:9", store=store)
    names = list(values())
    with agent_otel.run("hashes") as r:
        for v in values().values():
            one(v)
        many(1, c=3)
        many(1, 2, 3, 4, c=3, e=9)
        many(a=1, c=3, d="dd")
        r.call_tool("kwargs", lambda **kw: 1, {"x": 1, "y": [1.0]})
        r.call_tool("positional", lambda *a: 1, [1, "two"])
        r.call_tool("none", lambda: 1, None)
        run_id = r.run_id
    agent_otel.shutdown()
    names += ["many(1, c=3)", "many(1, 2, 3, 4, c=3, e=9)", "many(a=1, c=3, d='dd')"]
    names += ["call_tool mapping", "call_tool list", "call_tool None"]
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT args_sha FROM agent_events WHERE run_id = ? AND kind = 'tool_result' ORDER BY step_id",
            (run_id,),
        ).fetchall()
    print(json.dumps(dict(zip(names, (r[0] for r in rows), strict=True)), indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
