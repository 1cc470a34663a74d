"""Tests of frameworks that need an environment of their own (their pins conflict with the main one).

``tests/envs/<name>/`` runs only in ``.venvs/<name>`` (``make test`` builds it with the extras
``dev,frameworks-<name>`` and runs it with ``AGENT_OTEL_TEST_ENV=<name>``). In any other environment
these directories are not collected: their framework is not installed there by design, and ``make test``
runs them separately, so nothing is skipped silently.
"""

from __future__ import annotations

import os
from pathlib import Path

_HERE = Path(__file__).parent


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    try:
        rel = collection_path.relative_to(_HERE)
    except ValueError:
        return None
    if not rel.parts or not (_HERE / rel.parts[0]).is_dir():
        return None
    return rel.parts[0] != os.environ.get("AGENT_OTEL_TEST_ENV")
