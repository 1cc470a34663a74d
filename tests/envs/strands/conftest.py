"""Strands Agents' environment (.venvs/strands: Strands pins mcp<2.2): the shared integration fixtures."""

from __future__ import annotations

from tests.integrations.conftest import configured, guarded, instrument  # noqa: F401
from tests.replay.conftest import rig  # noqa: F401
