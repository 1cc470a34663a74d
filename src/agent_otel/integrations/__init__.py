"""Framework integrations: one module per framework, all with the same small interface.

An integration is a subclass of :class:`Integration` registered in ``_REGISTRY`` by module path, so that
``import agent_otel`` imports no framework and a missing framework is simply "not available".
``setup(instrument=True)`` instruments every available integration; ``instrument=["openai"]`` picks some.
Each integration turns the framework's runs, tool calls and model calls into the same runs, tool calls
and LLM calls as the manual API (``agent_otel.tools.begin`` / ``agent_otel.llm.begin``), so guards,
metrics, events and stop reasons apply identically.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterable

logger = logging.getLogger("agent_otel")


class Integration:
    """Base class. Subclasses set ``name`` and ``packages`` and implement the two hooks."""

    #: Name used in ``setup(instrument=[...])``.
    name: str = ""
    #: Import names that must be importable for the integration to apply.
    packages: tuple[str, ...] = ()

    def available(self) -> bool:
        return all(importlib.util.find_spec(p) is not None for p in self.packages)

    def instrument(self) -> None:
        """Patch or register hooks. Must be idempotent: a second call adds nothing."""
        raise NotImplementedError

    def uninstrument(self) -> None:
        """Undo instrument() exactly."""
        raise NotImplementedError


# name -> "module:Class"; modules are imported only when instrumenting.
_REGISTRY: dict[str, str] = {
    "langchain": "agent_otel.integrations.langchain:LangChainIntegration",
    "langgraph": "agent_otel.integrations.langgraph:LangGraphIntegration",
    "openai_agents": "agent_otel.integrations.openai_agents:OpenAIAgentsIntegration",
    "pydantic_ai": "agent_otel.integrations.pydantic_ai:PydanticAIIntegration",
    "openai": "agent_otel.integrations.openai_client:OpenAIIntegration",
    "anthropic": "agent_otel.integrations.anthropic_client:AnthropicIntegration",
    "mcp": "agent_otel.integrations.mcp_client:MCPIntegration",
}
_active: dict[str, Integration] = {}


def registered() -> list[str]:
    return list(_REGISTRY)


def _load(name: str) -> Integration:
    module_name, _, class_name = _REGISTRY[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()


def instrument(names: Iterable[str] | None = None) -> list[str]:
    """Instrument the named integrations (all available ones for None); returns those now active."""
    wanted = list(_REGISTRY) if names is None else list(names)
    unknown = [n for n in wanted if n not in _REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown integration(s) {', '.join(unknown)}; known: {', '.join(_REGISTRY) or 'none'}"
        )
    done: list[str] = []
    for name in wanted:
        if name in _active:
            done.append(name)
            continue
        try:
            integration = _load(name)
            if not integration.available():
                if names is not None:
                    logger.warning(
                        "agent-otel: integration %s requested but %s is not installed",
                        name,
                        " / ".join(integration.packages),
                    )
                continue
            integration.instrument()
        except Exception as exc:  # a broken framework version must not break setup()
            logger.warning("agent-otel: could not instrument %s (%s: %s)", name, type(exc).__name__, exc)
            continue
        _active[name] = integration
        done.append(name)
    return done


def uninstrument(names: Iterable[str] | None = None) -> None:
    for name in list(_active if names is None else names):
        integration = _active.pop(name, None)
        if integration is None:
            continue
        try:
            integration.uninstrument()
        except Exception as exc:
            logger.warning("agent-otel: could not uninstrument %s (%s)", name, exc)


def active() -> list[str]:
    return list(_active)
