"""The integration registry: setup(instrument=...), idempotence, exact undo, missing frameworks."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import agent_otel
from agent_otel import integrations
from agent_otel.integrations._common import Patcher

FRAMEWORK_MODULES = (
    "openai",
    "anthropic",
    "mcp",
    "langchain_core",
    "langgraph",
    "agents",
    "pydantic_ai",
    "langchain",
    "google.genai",
    "litellm",
    "botocore",
    "smolagents",
    "llama_index.core",
    "claude_agent_sdk",
    "crewai",
    "mistralai.client",
    "ag2",
    "agent_framework",
)
ALL = [
    "langchain",
    "langgraph",
    "openai_agents",
    "pydantic_ai",
    "openai",
    "anthropic",
    "mcp",
    "google_genai",
    "bedrock",
    "litellm",
]
ALL += ["smolagents", "llamaindex", "claude_agent_sdk", "mistral", "ag2", "agent_framework"]
#: Registered, tested in an environment of their own (tests/envs), not installed in this one.
OWN_ENV = ["crewai", "strands", "google_adk", "autogen"]


def run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.strip()


def test_importing_agent_otel_imports_no_framework():
    imported = run_python(
        f"""
        import sys
        import agent_otel, agent_otel.integrations
        from agent_otel.integrations import _common, _stainless
        print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))
        """
    )
    assert imported == "[]"


def test_every_framework_of_the_test_extra_is_registered_and_available():
    assert integrations.registered() == ALL + OWN_ENV
    for name in ALL:
        assert integrations._load(name).available(), name
    for name in OWN_ENV:
        assert not integrations._load(name).available(), name


def test_setup_instruments_every_available_framework_and_shutdown_undoes_it(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    agent_otel.shutdown()
    try:
        agent_otel.setup("t", store=False, config={"exporter": {"probe_local": False}})
        assert sorted(integrations.active()) == sorted(ALL)
        assert agent_otel.sdk.installation().integrations == ALL
    finally:
        agent_otel.shutdown()
    assert integrations.active() == []


def test_setup_with_a_list_picks_those(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENT_OTEL_HOME", str(tmp_path))
    agent_otel.shutdown()
    try:
        agent_otel.setup(
            "t", store=False, instrument=["mcp", "openai"], config={"exporter": {"probe_local": False}}
        )
        assert sorted(integrations.active()) == ["mcp", "openai"]
    finally:
        agent_otel.shutdown()
    assert integrations.active() == []


def test_unknown_integration_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown integration.*semantic_kernel.*known: langchain"):
        integrations.instrument(["semantic_kernel"])


def test_a_missing_framework_is_not_an_error(monkeypatch, caplog):
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.split(".")[0] == "anthropic" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    try:
        # All available ones: the missing one is skipped silently.
        done = integrations.instrument(None)
        assert "anthropic" not in done and "openai" in done
        assert not [r for r in caplog.records if "anthropic" in r.getMessage()]
        # Asked for by name: a warning says what is missing, nothing raises.
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            assert integrations.instrument(["anthropic"]) == []
        assert "integration anthropic requested but anthropic is not installed" in caplog.text
    finally:
        integrations.uninstrument()


def test_setup_in_an_environment_without_any_framework_logs_no_warning():
    """As for a user who installed agent-otel alone: frameworks whose module is a submodule
    (``llama_index.core``, ``mistralai.client``) are missing with their parent package, which makes
    ``importlib.util.find_spec`` raise rather than answer None."""
    out = run_python(
        f"""
        import logging, os, sys, tempfile
        others = ("strands", "google.adk", "autogen_agentchat", "autogen_core", "ag2")
        for name in {FRAMEWORK_MODULES!r} + others:
            # Not installed: importing it raises ModuleNotFoundError (google is protobuf's namespace too).
            sys.modules[name if name.startswith("google.") else name.split(".")[0]] = None
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(levelname)s %(message)s")
        import agent_otel
        store = os.path.join(tempfile.mkdtemp(), "agent-otel.db")
        agent_otel.setup("bare", store=store, config={{"exporter.probe_local": False}})
        print(agent_otel.integrations.active())
        agent_otel.shutdown()
        """
    )
    assert out == "[]"


def test_an_incompatible_framework_version_logs_and_instruments_nothing(monkeypatch, caplog):
    from agents.run_internal import run_loop

    monkeypatch.delattr(run_loop, "stream_response_with_retry")
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        assert integrations.instrument(["openai_agents"]) == []
    assert "could not instrument openai_agents" in caplog.text
    assert "stream_response_with_retry not found" in caplog.text
    # Nothing was half-patched.
    from agents.run import AgentRunner

    assert not hasattr(AgentRunner.run, "__agent_otel_original__")
    assert "openai_agents" not in integrations.active()


def _patched(name: str) -> list[tuple[Any, str, Any, Any]]:
    patcher: Patcher = integrations._active[name]._patcher  # type: ignore[attr-defined]
    return list(patcher._applied)


def import_all_frameworks() -> None:
    for module in (
        "openai",
        "anthropic",
        "mcp",
        "langchain_core",
        "langgraph.prebuilt",
        "agents",
        "pydantic_ai",
        "google.genai",
        "botocore.client",
        "litellm",
        "smolagents",
        "llama_index.core",
        "claude_agent_sdk",
        "mistralai.client",
        "ag2",
        "agent_framework",
    ):
        importlib.import_module(module)


def test_instrumenting_twice_patches_once_and_uninstrument_restores_exactly():
    import_all_frameworks()
    before: dict[tuple[int, str], Any] = {}
    try:
        integrations.instrument(ALL)
        applied = {name: _patched(name) for name in ALL}
        for name, rows in applied.items():
            assert rows, f"{name} patched nothing"
            for owner, attr, original, wrapper in rows:
                assert vars(owner)[attr] is wrapper
                before[(id(owner), attr)] = original
        # Second instrument (registry and a second instance of each integration): no new wrappers.
        integrations.instrument(ALL)
        for name in ALL:
            second = integrations._load(name)
            second.instrument()
            assert not second._patcher.applied, name  # type: ignore[attr-defined]
            for owner, attr, _, wrapper in applied[name]:
                assert vars(owner)[attr] is wrapper
    finally:
        integrations.uninstrument()
    assert integrations.active() == []
    for rows in applied.values():
        for owner, attr, original, _ in rows:
            if original is integrations._common._ABSENT:
                assert attr not in vars(owner)
            else:
                assert vars(owner)[attr] is original
                assert not hasattr(original, "__agent_otel_original__")


def test_frameworks_imported_after_setup_are_instrumented_on_import():
    out = run_python(
        """
        import os, sys, tempfile
        home = tempfile.TemporaryDirectory()  # removed when this process exits
        os.environ["AGENT_OTEL_HOME"] = home.name
        import agent_otel
        from agent_otel import integrations
        agent_otel.setup("t", store=False, config={"exporter": {"probe_local": False}})
        frameworks = ("openai", "anthropic", "mcp", "langchain_core", "langgraph", "agents", "pydantic_ai",
                      "google.genai", "botocore", "litellm")
        print("imported by setup:", sorted(m for m in frameworks if m in sys.modules))
        print("pending:", integrations.pending())

        from langgraph.graph import StateGraph  # the namespace package, imported through a submodule
        from langgraph.pregel import Pregel
        print("pregel:", hasattr(Pregel.stream, "__agent_otel_original__"))
        from langgraph.prebuilt import ToolNode
        from langgraph.prebuilt import tool_node
        print("tool_node:", hasattr(tool_node._handle_tool_error, "__agent_otel_original__"))
        from openai import OpenAI
        from openai._base_client import SyncAPIClient
        print("openai:", hasattr(SyncAPIClient.request, "__agent_otel_original__"))
        import agents, pydantic_ai, mcp, anthropic, smolagents, llama_index.core, claude_agent_sdk
        from agents.run import AgentRunner
        print("agents:", hasattr(AgentRunner.run, "__agent_otel_original__"))
        from google import genai
        from google.genai._api_client import BaseApiClient
        print("google_genai:", hasattr(BaseApiClient.request, "__agent_otel_original__"))
        import boto3
        from botocore.client import BaseClient
        print("bedrock:", hasattr(BaseClient._make_api_call, "__agent_otel_original__"))
        import litellm
        print("litellm:", hasattr(litellm.completion, "__agent_otel_original__"))
        from mistralai.client import Mistral  # `mistralai` is a namespace package: its client triggers
        from mistralai.client.chat import Chat
        print("mistral:", hasattr(Chat.complete, "__agent_otel_original__"))
        from ag2.agent import Agent
        print("ag2:", hasattr(Agent._drive_scope, "__agent_otel_original__"))
        from agent_framework import FunctionTool
        print("agent_framework:", hasattr(FunctionTool.invoke, "__agent_otel_original__"))
        print("pending:", integrations.pending())
        print("watcher:", any(type(f).__name__ == "_ImportWatcher" for f in sys.meta_path))
        agent_otel.shutdown()
        patched = hasattr(SyncAPIClient.request, "__agent_otel_original__")
        print("after shutdown:", patched, integrations.active())
        """
    )
    assert out.splitlines() == [
        "imported by setup: []",
        "pending: ['ag2', 'agent_framework', 'anthropic', 'bedrock', 'claude_agent_sdk', 'google_genai',"
        " 'langchain', 'langgraph', 'litellm', 'llamaindex', 'mcp', 'mistral', 'openai', 'openai_agents',"
        " 'pydantic_ai', 'smolagents']",
        "pregel: True",
        "tool_node: True",
        "openai: True",
        "agents: True",
        "google_genai: True",
        "bedrock: True",
        "litellm: True",
        "mistral: True",
        "ag2: True",
        "agent_framework: True",
        "pending: []",
        "watcher: False",
        "after shutdown: False []",
    ]


def test_uninstrument_leaves_someone_elses_later_patch_alone():
    from openai import _base_client

    original = _base_client.SyncAPIClient.__dict__["request"]
    integrations.instrument(["openai"])
    ours = _base_client.SyncAPIClient.__dict__["request"]

    def theirs(self, *args, **kwargs):
        return ours(self, *args, **kwargs)

    _base_client.SyncAPIClient.request = theirs
    try:
        integrations.uninstrument(["openai"])
        assert _base_client.SyncAPIClient.__dict__["request"] is theirs
    finally:
        _base_client.SyncAPIClient.request = original
