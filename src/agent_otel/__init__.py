"""agent-otel: OpenTelemetry-native observability for LLM agents.

The whole public API is re-exported here; everything else is internal and may change::

    import agent_otel

    agent_otel.setup(service_name="support-agent")
    with agent_otel.run("support-agent", model="gpt-4o", input=ticket) as run:
        result = run.call_tool("http.get", fetch, {"url": url})
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from agent_otel._version import __version__

if TYPE_CHECKING:
    from agent_otel import config
    from agent_otel.config import ConfigError
    from agent_otel.guards import Budget, ToolDenied, set_kill_switch
    from agent_otel.replay import ReplayError, replay
    from agent_otel.retry import Retry
    from agent_otel.run import Run, agent, current_run, run
    from agent_otel.sdk import setup, shutdown
    from agent_otel.stop import AgentStopped, StopReason, StopResult
    from agent_otel.tools import ToolTimeout, tool


#: Where each public name is defined. ``import agent_otel`` imports none of them: the first use of a name
#: imports its module (and what that module needs), so that what uses none of the API (the ``agent-otel``
#: command, which starts by importing this package) does not pay for it.
_EXPORTS = {
    "AgentStopped": "agent_otel.stop",
    "Budget": "agent_otel.guards",
    "ConfigError": "agent_otel.config",
    "ReplayError": "agent_otel.replay",
    "Retry": "agent_otel.retry",
    "Run": "agent_otel.run",
    "StopReason": "agent_otel.stop",
    "StopResult": "agent_otel.stop",
    "ToolDenied": "agent_otel.guards",
    "ToolTimeout": "agent_otel.tools",
    "agent": "agent_otel.run",
    "current_run": "agent_otel.run",
    "replay": "agent_otel.replay",
    "run": "agent_otel.run",
    "set_kill_switch": "agent_otel.guards",
    "setup": "agent_otel.sdk",
    "shutdown": "agent_otel.sdk",
    "tool": "agent_otel.tools",
}


def __getattr__(name: str) -> Any:
    if name == "config":
        return importlib.import_module("agent_otel.config")
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'agent_otel' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """``agent_otel.run`` and ``agent_otel.replay`` are functions, though submodules share their names.
    Importing a submodule binds it on its package, so once ``agent_otel.run`` (the module) was imported,
    ``agent_otel.run(...)`` would find the module. The eager import used to rebind the functions
    afterwards; here those two bindings are not made (``sys.modules`` still holds both modules)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("run", "replay") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
