"""Framework integrations: one module per framework, all with the same small interface.

An integration is a subclass of :class:`Integration` registered in ``_REGISTRY`` by module path, so that
``import agent_otel`` imports no framework and a missing framework is simply "not available".
``setup(instrument=True)`` instruments every available integration; ``instrument=["openai"]`` picks some.
Each integration turns the framework's runs, tool calls and model calls into the same runs, tool calls
and LLM calls as the manual API, through the step engine's public interface only (the docstring of
:mod:`agent_otel.steps` lists it), so guards, metrics, events and stop reasons apply identically.

Instrumenting does not import frameworks. A framework that is already imported is instrumented at once;
one that is installed but not imported yet is instrumented when the application first imports it (an
import hook on the integration's ``triggers``). So ``setup()`` stays fast when many frameworks are
installed, and the order of ``setup()`` and the framework imports does not matter.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys
import threading
from collections.abc import Iterable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

logger = logging.getLogger("agent_otel")


class Integration:
    """Base class. Subclasses set ``name`` and ``packages`` and implement the two hooks."""

    #: Name used in ``setup(instrument=[...])``.
    name: str = ""
    #: Import names that must be importable for the integration to apply.
    packages: tuple[str, ...] = ()

    @property
    def triggers(self) -> tuple[str, ...]:
        """Modules whose import (re)runs ``instrument()``; by default the framework's top-level package.

        ``instrument()`` runs once one of them is imported and again after each further one, so it must
        only import what is safe to import at that point (the framework's own modules, after its
        top-level package finished importing) and patch incrementally.
        """
        return self.packages[:1]

    def available(self) -> bool:
        # find_spec("llama_index.core") imports llama_index, and raises when that is not installed.
        try:
            return all(importlib.util.find_spec(p) is not None for p in self.packages)
        except (ImportError, ValueError):
            return False

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
    "google_genai": "agent_otel.integrations.google_genai:GoogleGenAIIntegration",
    "bedrock": "agent_otel.integrations.bedrock:BedrockIntegration",
    "litellm": "agent_otel.integrations.litellm:LiteLLMIntegration",
    "smolagents": "agent_otel.integrations.smolagents:SmolagentsIntegration",
    "llamaindex": "agent_otel.integrations.llamaindex:LlamaIndexIntegration",
    "claude_agent_sdk": "agent_otel.integrations.claude_agent_sdk:ClaudeAgentSDKIntegration",
    "mistral": "agent_otel.integrations.mistral:MistralIntegration",
    "ag2": "agent_otel.integrations.ag2:AG2Integration",
    "agent_framework": "agent_otel.integrations.agent_framework:AgentFrameworkIntegration",
    "crewai": "agent_otel.integrations.crewai:CrewAIIntegration",
    "strands": "agent_otel.integrations.strands:StrandsIntegration",
    "google_adk": "agent_otel.integrations.google_adk:GoogleADKIntegration",
    "autogen": "agent_otel.integrations.autogen:AutoGenIntegration",
}
_active: dict[str, Integration] = {}


def registered() -> list[str]:
    return list(_REGISTRY)


def _load(name: str) -> Integration:
    module_name, _, class_name = _REGISTRY[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()


def instrument(names: Iterable[str] | None = None) -> list[str]:
    """Instrument the named integrations (all available ones for None); returns those now active.

    Active means instrumented now, or armed to instrument when the framework is first imported.
    """
    if isinstance(names, str):  # instrument="openai" is one name, not the letters o, p, e, n...
        names = [names]
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
            triggers = integration.triggers
            loaded = [t for t in triggers if t in sys.modules]
            if loaded or not triggers:
                integration.instrument()
        except Exception as exc:  # a broken framework version must not break setup()
            logger.warning("agent-otel: could not instrument %s (%s: %s)", name, type(exc).__name__, exc)
            continue
        _active[name] = integration
        pending = [t for t in triggers if t not in sys.modules]
        if pending:
            _watcher.arm(name, pending)
        done.append(name)
    return done


def uninstrument(names: Iterable[str] | None = None) -> None:
    for name in list(_active if names is None else names):
        _watcher.disarm(name)
        integration = _active.pop(name, None)
        if integration is None:
            continue
        try:
            integration.uninstrument()
        except Exception as exc:
            logger.warning("agent-otel: could not uninstrument %s (%s)", name, exc)


def active() -> list[str]:
    return list(_active)


def pending() -> list[str]:
    """Active integrations still waiting for (part of) their framework to be imported."""
    return _watcher.pending()


def _triggered(name: str) -> None:
    """A trigger module of integration ``name`` finished importing: instrument it now."""
    integration = _active.get(name)
    if integration is None:
        return
    try:
        integration.instrument()
    except Exception as exc:
        logger.warning("agent-otel: could not instrument %s (%s: %s)", name, type(exc).__name__, exc)
        _watcher.disarm(name)
        _active.pop(name, None)
        try:
            integration.uninstrument()
        except Exception as err:
            logger.debug("agent-otel: undoing a failed %s instrumentation failed: %s", name, err)


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Runs ``_triggered`` right after a trigger module's code has executed.

    It finds the module's spec through the other finders and wraps ``exec_module`` of that spec's
    loader instance (only for this module, removed after it ran), so the import itself is unchanged:
    same spec, same loader object, same module. It is on ``sys.meta_path`` only while something is armed.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._armed: dict[str, list[str]] = {}  # module -> integration names

    def arm(self, name: str, modules: list[str]) -> None:
        with self._lock:
            for module in modules:
                names = self._armed.setdefault(module, [])
                if name not in names:
                    names.append(name)
            if self not in sys.meta_path:
                sys.meta_path.insert(0, self)

    def disarm(self, name: str) -> None:
        with self._lock:
            for module in list(self._armed):
                names = self._armed[module]
                if name in names:
                    names.remove(name)
                if not names:
                    del self._armed[module]
            self._maybe_remove()

    def pending(self) -> list[str]:
        with self._lock:
            return sorted({n for names in self._armed.values() for n in names})

    def _maybe_remove(self) -> None:
        if not self._armed and self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname not in self._armed:
            return None
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None  # e.g. a namespace package: let the import system do it, untouched
        original = loader.exec_module
        own = "exec_module" in getattr(loader, "__dict__", {})

        def exec_module(module: ModuleType) -> None:
            try:
                original(module)
            finally:
                if getattr(module, "__name__", None) == fullname:
                    self._restore(loader, original, own)
            if getattr(module, "__name__", None) == fullname:
                self._fire(fullname)

        try:
            loader.exec_module = exec_module
        except (AttributeError, TypeError):
            return None
        return spec

    @staticmethod
    def _restore(loader: Any, original: Any, own: bool) -> None:
        try:
            if own:
                loader.exec_module = original
            else:
                del loader.exec_module
        except (AttributeError, TypeError):
            pass

    def _fire(self, module: str) -> None:
        with self._lock:
            names = self._armed.pop(module, [])
            self._maybe_remove()
        for name in names:
            _triggered(name)


_watcher = _ImportWatcher()
