"""Two plain tools for the frameworks that take Python functions as tools (AutoGen, AG2), counting the
calls that reached them: ``lookup`` answers, ``broken`` always fails. Import ``fresh_sent`` into a test
module to start each test with no calls counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

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
