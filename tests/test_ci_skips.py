"""With CI=true a skipped test is a failure, except a missing framework in the core-only environments.

CI ran the core suite on Python 3.12 and 3.13 in environments without frameworks, and failed on framework
tests that had been added to core folders; these pin down which skips CI lets through, and where.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests import conftest


def _skipped(why: str) -> Any:
    return SimpleNamespace(skipped=True, outcome="skipped", longrepr=("test_x.py", 1, f"Skipped: {why}"))


@pytest.mark.parametrize("core_only", [False, True])
def test_with_ci_a_skip_for_a_missing_prerequisite_is_a_failure(
    monkeypatch: pytest.MonkeyPatch, core_only: bool
) -> None:
    monkeypatch.setattr(conftest, "IN_CI", True)
    monkeypatch.setattr(conftest, "_CORE_ONLY", core_only)
    report = _skipped("PostgreSQL is not installed: run make prereqs")
    conftest._fail_skip_in_ci(report)
    assert report.outcome == "failed"
    assert "skipped with CI=true" in report.longrepr and "make prereqs" in report.longrepr


@pytest.mark.parametrize("core_only, outcome", [(False, "failed"), (True, "skipped")])
def test_with_ci_a_missing_framework_fails_except_in_a_core_only_environment(
    monkeypatch: pytest.MonkeyPatch, core_only: bool, outcome: str
) -> None:
    """.venv has every framework (a missing one is a failed install); the core-only ones have none."""
    monkeypatch.setattr(conftest, "IN_CI", True)
    monkeypatch.setattr(conftest, "_CORE_ONLY", core_only)
    report = _skipped("could not import 'anthropic': No module named 'anthropic'")
    conftest._fail_skip_in_ci(report)
    assert report.outcome == outcome


def test_without_ci_a_skip_stays_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "IN_CI", False)
    report = _skipped("PostgreSQL is not installed: run make prereqs")
    conftest._fail_skip_in_ci(report)
    assert report.outcome == "skipped"


def test_the_core_only_runs_set_the_flag() -> None:
    script = (Path(__file__).parents[1] / "scripts" / "test-pythons.sh").read_text()
    assert 'AGENT_OTEL_CORE_ONLY=1 "$venv/bin/python" -m pytest' in script
