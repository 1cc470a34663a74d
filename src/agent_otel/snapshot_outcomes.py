"""What the snapshot recorder and the store's snapshot tables agree on, below both of them.

The outcome of a recorded tool call (a column of ``agent_tool_snapshots``), and the counters of what
went wrong while recording: the recorder (:mod:`agent_otel.snapshots`) counts serialization and size
failures on the agent's thread, the store (:mod:`agent_otel.store.snapshots`) sealing and write failures
on the pipeline's thread, and doctor and the tests read them as ``agent_otel.snapshots.counters``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

logger = logging.getLogger("agent_otel")

# Outcomes of a recorded tool call. Only ok and error can be served by a replay.
OK = "ok"
ERROR = "error"
EXCLUDED = "excluded"  # replay.exclude matched the tool: no result kept
TOO_LARGE = "too_large"  # larger than replay.max_result_mb
INTERRUPTED = "interrupted"  # the call ended by AgentStopped, cancellation or interpreter exit
WRITE_FAILED = "write_failed"  # the result could not be sealed for the store

# How stored snapshot data is encoded: canonical JSON in the clear, or sealed with a key (its key_id stored).
PLAIN = "json"
SEALED = "fernet+json"

#: What went wrong while recording snapshots, by kind (``serialize``, ``too_large``, ``seal``, ``write``).
counters: Counter[str] = Counter()
_warned: set[str] = set()
_warn_lock = threading.Lock()


def warn_once(key: str, message: str, *args: Any) -> None:
    """Count ``key`` and log ``message`` the first time it happens in this process."""
    with _warn_lock:
        counters[key] += 1
        first = key not in _warned
        _warned.add(key)
    if first:
        logger.warning("agent-otel: " + message + " (further cases are counted, not logged)", *args)
