"""Plain tools for the frameworks that take Python functions as tools (AutoGen, AG2, Strands, Agent
Framework), counting the calls that reached them: ``lookup`` answers, ``broken`` always fails; ``search`` and
``wipe`` (``asearch`` and ``awipe``, async) are also ``@agent_otel.tool`` functions: ``search`` renamed, with
a retry, failing its first attempt; ``wipe`` a declared write. Import ``fresh_sent`` into a test module to
start each test with no calls counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

import agent_otel

SENT: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def fresh_sent() -> Iterator[None]:
    SENT.clear()
    yield
    SENT.clear()


def lookup(q: str) -> str:
    """Look something up."""
    SENT["lookup"] += 1
    return q.upper()


def broken(q: str) -> str:
    """Always fails."""
    SENT["broken"] += 1
    raise RuntimeError("backend down")


_RETRY = agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none")


@agent_otel.tool(name="crm.search", retry=_RETRY)
def search(q: str) -> str:
    """Search; the first attempt fails."""
    SENT["search"] += 1
    if SENT["search"] < 2:
        raise ConnectionError("reset")
    return q.upper()


@agent_otel.tool(name="crm.asearch", retry=_RETRY)
async def asearch(q: str) -> str:
    """Search; the first attempt fails."""
    return search.__wrapped__(q)  # type: ignore[attr-defined, no-any-return]


@agent_otel.tool(side_effects=True)
def wipe(q: str) -> str:
    """Wipe an account."""
    SENT["wipe"] += 1
    return "wiped"


@agent_otel.tool(side_effects=True)
async def awipe(q: str) -> str:
    """Wipe an account."""
    return wipe.__wrapped__(q)  # type: ignore[attr-defined, no-any-return]
