"""The local run store: every run and unified event, in SQLite by default or PostgreSQL by URL.

``setup()`` adds a :class:`StoreSink` to the event pipeline (unless ``store: false``); the ``agent-otel``
CLI reads the same store through :func:`open_store`. Tables: ``agent_runs`` (one row per run) and
``agent_events`` (the unified event schema), versioned by :mod:`agent_otel.store.schema`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent_otel.store.db import Store, StoreError, open_store
from agent_otel.store.location import Target, home, resolve
from agent_otel.store.schema import LATEST_VERSION

if TYPE_CHECKING:
    from agent_otel.store.retention import RETENTION_RULES, RetentionRule
    from agent_otel.store.sink import StoreSink, retention_from_config, sink_from_config

# Imported on first use: the CLI's reading commands need none of them.
_LAZY = {
    "RETENTION_RULES": "agent_otel.store.retention",
    "RetentionRule": "agent_otel.store.retention",
    "StoreSink": "agent_otel.store.sink",
    "retention_from_config": "agent_otel.store.sink",
    "sink_from_config": "agent_otel.store.sink",
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'agent_otel.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


__all__ = [
    "LATEST_VERSION",
    "RETENTION_RULES",
    "RetentionRule",
    "Store",
    "StoreError",
    "StoreSink",
    "Target",
    "home",
    "open_store",
    "resolve",
    "retention_from_config",
    "sink_from_config",
]
