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

A pre-fork server can also fork before gevent patches: ``gunicorn -k gevent --preload`` runs ``setup()`` in
the master, unpatched, and each worker patches itself right after its fork. The locks agent-otel's fork
hooks made there are the OS's, and the SDK's metric reader restarted its thread there as a real OS thread;
gevent does not support either once it has patched (a real lock a greenlet holds across a yield stops the
OS thread for good when another greenlet takes it). The worker raised ``cannot notify on un-acquired lock``
at each metric export, sent no metric, and did not stop within gunicorn's 30 s graceful timeout. Such a
child renews them when gevent patches it (``after_patch``).

This module tells whether the process is such a one (the watcher then runs on a real OS thread, and only
ends a process whose main thread is stuck in C past the bound), runs the SIGTERM
flush in a greenlet of its own when the hub runs the handler, and makes gRPC cooperate before agent-otel
creates its first channel. It imports neither gevent nor grpc unless the application already has.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import weakref
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


# Called when gevent patches threading in a child forked while gevent was loaded and unpatched: weak
# references to bound methods (an object that is gone needs nothing), plain functions as they are.
_after_patch: list[Any] = []
_renew_at_patch = False  # this process was forked from one where gevent was loaded and had not patched
_subscribed = False


def patch_pending() -> bool:
    """gevent is loaded and has not patched ``threading``: a child forked now may patch itself (gunicorn's
    master with ``-k gevent`` and ``--preload``; its workers patch themselves right after the fork)."""
    return "gevent" in sys.modules and not patched()


def after_patch(fn: Callable[[], Any]) -> None:
    """Have ``fn`` renew what it made before gevent patched this process, in a child forked while the patch
    was pending: its locks are the OS's, and its threads real OS threads. A bound method is held weakly."""
    _after_patch[:] = [e for e in _after_patch if not isinstance(e, weakref.WeakMethod) or e() is not None]
    try:
        _after_patch.append(weakref.WeakMethod(fn))  # type: ignore[arg-type]
    except TypeError:
        _after_patch.append(fn)


def watch_patch() -> None:
    """Listen for gevent patching ``threading`` from now on (gevent is loaded: ``patch_pending``)."""
    global _subscribed
    if _subscribed:
        return
    try:
        from gevent import events

        events.subscribers.append(_on_gevent_event)
        _subscribed = True
    except Exception as exc:  # a gevent without its events: such a child stays as gevent leaves it
        logger.debug("agent-otel: cannot listen for gevent's patching: %s", exc)


def _on_gevent_event(event: Any) -> None:
    """gevent's subscriber: an exception here would stop gevent's patching itself, so none leaves."""
    try:
        if getattr(event, "module_name", "") != "threading" or "DidPatch" not in type(event).__name__:
            return
        if not _renew_at_patch:
            logger.warning(
                "agent-otel: gevent patched threading after agent_otel.setup() in this process: agent-otel's "
                "threads and locks were made before and may block every greenlet. Call setup() after "
                "gevent's monkey.patch_all()"
            )
            return
        for entry in list(_after_patch):
            fn = entry() if isinstance(entry, weakref.WeakMethod) else entry
            if fn is None:
                continue
            try:
                fn()
            except Exception as exc:
                logger.debug("agent-otel: cannot renew %r after gevent's patching: %s", fn, exc)
    except Exception:
        pass


def _forked() -> None:
    global _renew_at_patch
    _renew_at_patch = patch_pending()
    if _renew_at_patch:
        watch_patch()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
