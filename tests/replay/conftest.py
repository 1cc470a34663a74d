"""Fixtures for replay: agent_otel set up with a real SQLite store in a temp AGENT_OTEL_HOME, and helpers
to read the store and run the real ``agent-otel`` command."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_otel
from agent_otel import integrations, sdk, snapshot_outcomes
from tests.integrations.conftest import fake_api  # noqa: F401  (a fake model provider, for test_providers)
from tests.replay import support_agent

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).parent / "agent-otel"
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "agent_otel.cli"]
KEY_ENV = "AGENT_OTEL_SNAPSHOT_KEY"


@dataclass
class Rig:
    home: Path
    db: str
    events: Path
    exporter: InMemorySpanExporter | None = None

    def start(
        self, sinks: tuple[Any, ...] = (), readers: tuple[Any, ...] = (), **config: Any
    ) -> InMemorySpanExporter:
        """agent_otel.setup() with the store, a JSON-lines event file and an in-memory span exporter."""
        agent_otel.shutdown()
        self.exporter = InMemorySpanExporter()
        merged: dict[str, Any] = {"exporter": {"probe_local": False, "schedule_delay_s": 0.05}}
        merged.update(config)
        agent_otel.setup(
            "replay-test",
            span_exporters=[self.exporter],
            events=str(self.events),
            event_sinks=list(sinks),
            metric_readers=list(readers),
            instrument=False,
            config=merged,
        )
        return self.exporter

    def flush(self) -> None:
        assert sdk.flush(5.0), "flush did not finish"

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        self.flush()
        conn = sqlite3.connect(self.db)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.flush()
        conn = sqlite3.connect(self.db)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    def run_row(self, run_id: str) -> dict[str, Any]:
        return self.rows("SELECT * FROM agent_runs WHERE run_id = ?", (run_id,))[0]

    def tool_events(self, run_id: str) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT * FROM agent_events WHERE run_id = ? AND kind = 'tool_result' ORDER BY step_id", (run_id,)
        )

    def snapshots(self, run_id: str) -> list[dict[str, Any]]:
        """The recorded tool calls of ``run_id`` in step order, as the store's reader gives them (a row of
        agent_tool_snapshots each, whichever form they are stored in: rows, or packs since schema 8)."""
        return self.snapshots_and_data(run_id)[0]

    def snapshots_and_data(
        self, run_id: str
    ) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str, bytes]]]:
        """:meth:`snapshots`, and the data stored with them: ``{blob_sha: (encoding, key_id, data)}``."""
        from agent_otel.store import Target, open_store
        from agent_otel.store import snapshots as tables

        self.flush()
        store = open_store(Target("sqlite", self.db), writer=False)
        try:
            data: dict[str, tuple[str, str, bytes]] = {}
            return tables.tool_snapshots(store, [run_id], data)[run_id], data
        finally:
            store.close()

    def last_run_id(self, agent: str | None = None) -> str:
        where, params = ("WHERE agent = ?", (agent,)) if agent else ("", ())
        return self.rows(f"SELECT run_id FROM agent_runs {where} ORDER BY created_at DESC LIMIT 1", params)[
            0
        ]["run_id"]

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """The real ``agent-otel`` in a subprocess, from the repository root (so tests.replay imports)."""
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        full.update(AGENT_OTEL_HOME=str(self.home), AGENT_OTEL_PROBE_LOCAL="false")
        full.update(env or {})
        return subprocess.run(
            [*COMMAND, *args], capture_output=True, text=True, env=full, cwd=REPO, timeout=120, check=False
        )


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Rig]:
    for var in list(os.environ):
        if var.startswith(("OTEL_", "AGENT_OTEL_")):
            monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_OTEL_HOME", str(home))
    monkeypatch.setenv("AGENT_OTEL_PROBE_LOCAL", "false")
    agent_otel.shutdown()
    support_agent.reset()
    monkeypatch.setattr(snapshot_outcomes, "_warned", set())  # "warned once" is per process
    yield Rig(home, str(home / "agent-otel.db"), tmp_path / "events.jsonl")
    agent_otel.shutdown()


@pytest.fixture
def recorded(rig: Rig) -> Callable[..., str]:
    """Record one run of ``agent`` (default: the buggy support agent) and return its run_id."""

    def record(agent: Callable[..., Any] = support_agent.handle, ticket: Any = None, **config: Any) -> str:
        if rig.exporter is None or config:
            rig.start(**config)
        result = agent(dict(support_agent.TICKET) if ticket is None else ticket)
        if hasattr(result, "__await__"):
            import asyncio

            asyncio.run(result)
        rig.flush()
        return rig.last_run_id()

    return record


def load_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def instrument(rig: Rig) -> Iterator[Callable[..., None]]:
    """Set up agent_otel with the real SQLite store and instrument the named frameworks."""
    names: list[str] = []

    def do(*wanted: str) -> None:
        rig.start()
        names.extend(wanted)
        integrations.instrument(list(wanted))

    yield do
    integrations.uninstrument(names)
