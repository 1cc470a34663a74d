"""The local run store: every run and unified event, in SQLite by default or PostgreSQL by URL.

``setup()`` adds a :class:`StoreSink` to the event pipeline (unless ``store: false``); the ``agent-otel``
CLI reads the same store through :func:`open_store`. Tables: ``agent_runs`` (one row per run) and
``agent_events`` (the unified event schema), versioned by :mod:`agent_otel.store.schema`.
"""

from __future__ import annotations

from agent_otel.store.db import Store, StoreError, open_store
from agent_otel.store.location import Target, home, resolve
from agent_otel.store.retention import RETENTION_RULES, RetentionRule
from agent_otel.store.schema import LATEST_VERSION
from agent_otel.store.sink import StoreSink, retention_from_config, sink_from_config

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
