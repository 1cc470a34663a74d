"""agent-otel: OpenTelemetry-native observability for LLM agents.

The whole public API is re-exported here; everything else is internal and may change::

    import agent_otel

    agent_otel.setup(service_name="support-agent")
    with agent_otel.run("support-agent", model="gpt-4o", input=ticket) as run:
        result = run.call_tool("http.get", fetch, {"url": url})
"""

from __future__ import annotations

from agent_otel import config
from agent_otel._version import __version__
from agent_otel.config import ConfigError
from agent_otel.guards import Budget, ToolDenied, set_kill_switch
from agent_otel.replay import ReplayError, replay
from agent_otel.retry import Retry
from agent_otel.run import Run, agent, current_run, run
from agent_otel.sdk import setup, shutdown
from agent_otel.stop import AgentStopped, StopReason, StopResult
from agent_otel.tools import ToolTimeout, tool

__all__ = [
    "AgentStopped",
    "Budget",
    "ConfigError",
    "ReplayError",
    "Retry",
    "Run",
    "StopReason",
    "StopResult",
    "ToolDenied",
    "ToolTimeout",
    "__version__",
    "agent",
    "config",
    "current_run",
    "replay",
    "run",
    "set_kill_switch",
    "setup",
    "shutdown",
    "tool",
]
