"""Google ADK's environment (.venvs/adk: google-adk 2.x pins google-genai<3): the shared fixtures."""

from __future__ import annotations

from tests.integrations.conftest import configured, guarded, instrument  # noqa: F401
from tests.replay.conftest import rig  # noqa: F401
