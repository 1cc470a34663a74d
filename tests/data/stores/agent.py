"""The agent whose runs fill ``tests/data/stores/schema*.sql``, run once with an older agent-otel's source
on ``PYTHONPATH`` (``python agent.py STORE 6 vN``), and the entry point that replays them
(``agent-otel replay RUN_ID --call agent:handle``, this directory on ``PYTHONPATH``).

Each run: two ``lookup`` calls and one LLM request; every third run a ``fail`` call raising ValueError;
every fourth a sub-agent with one ``lookup``. Inputs are ``{"i": i, "tag": tag}``.
"""

from __future__ import annotations

import sys
from typing import Any

import agent_otel

tag = "x"


@agent_otel.tool(name="lookup")
def lookup(q: str) -> dict[str, Any]:
    return {"q": q, "hits": [1, 2, 3], "tag": tag}


@agent_otel.tool(name="fail")
def fail(q: str) -> str:
    raise ValueError("bad " + q)


def handle(inp: dict[str, Any]) -> str:
    i, name = inp["i"], inp["tag"]
    with agent_otel.run(
        "agent-" + name, model="gpt-4o", prompt_version="p1", tools_version="t1", input=inp
    ) as r:
        lookup(q=f"q{i}")
        lookup(q="same")
        r.record_llm(model="gpt-4o", input_tokens=100 + i, output_tokens=10)
        if i % 3 == 2:
            try:
                fail(q=str(i))
            except ValueError:
                pass
        if i % 4 == 3:
            with agent_otel.run("sub-" + name, input="child"):
                lookup(q="child")
    return "ok"


def main(argv: list[str]) -> None:
    global tag
    store, runs, tag = argv[1], int(argv[2]), argv[3]
    agent_otel.setup(service_name="up-" + tag, endpoint="http://127.0.0.1:9", store=store)
    for i in range(runs):
        handle({"i": i, "tag": tag})
    agent_otel.shutdown()


if __name__ == "__main__":
    main(sys.argv)
