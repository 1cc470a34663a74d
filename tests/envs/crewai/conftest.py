"""CrewAI's environment (.venvs/crewai): its telemetry off (no network), the shared integration fixtures."""

from __future__ import annotations

import os

# CrewAI sends anonymous telemetry and traces to its servers unless told not to; tests talk to 127.0.0.1 only.
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"

from tests.integrations.conftest import configured, fake_api, guarded, instrument  # noqa: F401
from tests.replay.conftest import rig  # noqa: F401
