"""Processes whose threads are greenlets: gevent's ``monkey.patch_all()`` (gunicorn ``-k gevent``, Celery
``-P gevent``, locust).

agent-otel does its work off the agent's thread: the event pipeline, the span and metric exporters, the
SIGTERM watcher, the run store's retry timer. Once gevent has patched ``threading``, each of those threads
is a greenlet on the one OS thread that runs every request of the application, and a call that blocks in C
code without yielding to gevent's hub blocks all of them at once. Four did:

* the SIGTERM watcher's ``os.read`` of its wakeup pipe (gevent does not patch ``os.read``): the process
  froze for good the first time the watcher ran, a few runs after ``setup()``;
* the SIGTERM handler's bounded flush, when gevent's hub ran it (every greenlet waiting): a blocking
  call there is refused (``BlockingSwitchOutError``), so the process ended with status 1 and a
  traceback instead of by SIGTERM, with none of its spans sent and the run SIGTERM cut short stored as
  ``tool_error``;
* a gRPC export waiting for a collector that accepted the connection and did not answer: gRPC's core
  waits for the deadline (``exporter.timeout_s``, 10 s) without yielding, so every greenlet stopped for
  10 s per export, and the 1 s shutdown bound took 25 s. gRPC cooperates with gevent only once
  ``grpc.experimental.gevent.init_gevent()`` has run (the application's own gRPC calls block the same way
  without it);
* the run store's wait for a SQLite file another process holds locked (``agent-otel gc``, another
  worker's transaction): SQLite waits in C, up to its 5 s busy timeout, and a store locked for 3 s stopped
  the whole application for 3 s (the sink waits 50 ms there instead: agent_otel.store.sink).

This module tells whether the process is such a one (the watcher then runs on a real OS thread, and only
ends a process whose main thread is stuck in C past the bound), runs the SIGTERM
flush in a greenlet of its own when the hub runs the handler, and makes gRPC cooperate before agent-otel
creates its first channel. It imports neither gevent nor grpc unless the application already has.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("agent_otel")


def patched() -> bool:
    """gevent has patched ``threading``: agent-otel's threads are greenlets of the application's OS thread."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    try:
        return bool(monkey.is_module_patched("threading"))
    except Exception:
        return False


def native(module: str, name: str) -> Any:
    """The standard library's own ``module.name``, as it was before gevent patched it: what code that must
    run on a real OS thread uses (the SIGTERM watcher: a blocking read there stops no greenlet)."""
    if patched():
        try:
            return sys.modules["gevent.monkey"].get_original(module, name)
        except Exception:
            pass
    return getattr(importlib.import_module(module), name)


def prepare_grpc() -> None:
    """Before agent-otel creates a gRPC channel in a gevent-patched process: turn on gRPC's gevent support
    (``grpc.experimental.gevent.init_gevent()``) unless the application already has. gRPC's own rule is
    to call it after patching and before creating any gRPC object; what agent-otel does is the earliest it
    can, and an application that created channels before ``setup()`` should call it itself, first."""
    if not patched():
        return
    try:
        from grpc._cython import cygrpc

        if getattr(cygrpc, "g_gevent_activated", False):
            return
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
    except Exception as exc:  # a grpcio without it: exports may then block greenlets while they wait
        logger.warning(
            "agent-otel: gevent has patched this process but gRPC's gevent support could not be turned on "
            "(%s); an OTLP/gRPC export to a collector that does not answer blocks every greenlet until "
            "exporter.timeout_s. Use exporter.protocol: http/protobuf, or call "
            "grpc.experimental.gevent.init_gevent() after monkey.patch_all().",
            exc,
        )
        return
    logger.info(
        "agent-otel: gevent has patched this process: turned on gRPC's gevent support "
        "(grpc.experimental.gevent.init_gevent()) for OTLP/gRPC export"
    )


def in_hub() -> bool:
    """The caller runs in gevent's hub: a signal handler gevent's event loop ran while every greenlet
    waited. Nothing there may block (gevent raises ``BlockingSwitchOutError``)."""
    if not patched():
        return False
    try:
        import gevent

        return bool(gevent.getcurrent() is gevent.get_hub())
    except Exception:
        return False


def spawn(fn: Callable[[], None]) -> bool:
    """Run ``fn`` in a greenlet of its own, started by the hub's next turn; False if that failed."""
    try:
        import gevent

        gevent.spawn(fn)
    except Exception as exc:
        logger.debug("agent-otel: cannot start a greenlet: %s", exc)
        return False
    return True
