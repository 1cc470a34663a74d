"""The README tells the truth about names users depend on: every config key, metric and stop reason."""

from __future__ import annotations

from pathlib import Path

import agent_otel
from agent_otel import conventions as c
from agent_otel.config import load

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_config_key_is_documented():
    for key, _, _ in load(env={}).items():
        if key.startswith("prices"):
            continue
        assert f"`{key}`" in README, key
    assert "`prices.<model>.input`" in README


def test_every_metric_and_stop_reason_is_documented():
    for spec in c.METRICS:
        assert f"`{spec.prometheus}" in README, spec.prometheus
    for reason in agent_otel.StopReason:
        assert f"| {reason.value} |" in README, reason


def test_every_public_name_is_documented():
    for name in agent_otel.__all__:
        if not name.startswith("_"):
            assert f"`{name}" in README, name


def test_the_documented_price_table_is_the_builtin_one():
    """The README's price table is what users check their bills against, so it must not drift."""
    from agent_otel.pricing import BUILTIN_PRICES

    rows = {}
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].strip("`") in BUILTIN_PRICES and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = tuple(float(cell) for cell in cells[1:])
    assert rows == {model: tuple(price) for model, price in BUILTIN_PRICES.items()}
