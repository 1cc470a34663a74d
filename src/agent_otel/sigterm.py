"""SIGTERM (`docker stop`, Kubernetes, systemd): flush what is queued, then end the process as SIGTERM would.

Python's default disposition for SIGTERM ends the process on the spot, without atexit: the runs, events and
spans still queued are lost. When the application has no SIGTERM handler of its own, ``setup()`` installs
one (:func:`install`) that flushes within ``exporter.shutdown_timeout_s`` and then re-raises SIGTERM with
the default disposition, so the parent sees the exit status it expects (-15 for Popen, 143 from a shell).

Python runs signal handlers on the main thread only, between bytecodes. Two things can keep it from doing
so, and a process that ignores SIGTERM for the 10 s until ``docker stop`` sends SIGKILL is worse than one
that loses its last runs:

* the kernel may deliver the signal to another thread (gRPC's, say) while the main thread sleeps in a
  system call (``time.sleep``, a blocking read) that nothing then interrupts;
* the main thread may be busy inside C code for a long time.

So a watcher thread learns of the signal through ``signal.set_wakeup_fd`` (written by the C-level handler
from whichever thread got the signal), interrupts the main thread's system call with ``pthread_kill`` if
the handler has not started, flushes and ends the process itself if the main thread still does not get to
it, and ends the process if the handler has not done so within the bound. When the wakeup fd is already
in use (an asyncio loop with signal handlers), only the handler is installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

from agent_otel import green

logger = logging.getLogger("agent_otel")

_MAIN_GRACE_S = 0.2  # how long the watcher lets the main thread get to the handler by itself
# Reentrant: the handler runs on the main thread between any two bytecodes, shutting_down() included.
_lock = threading.RLock()
_claimed = False  # a flush for SIGTERM has started (by the handler or the watcher)
_flush: Callable[[], None] | None = None
_bound_s = 1.0
_watch: _Watcher | None = None
_shutdowns = 0  # shutdown() calls under way (see shutting_down)
_deferred = False  # a SIGTERM arrived during one: the last of them to end ends the process


def installed() -> bool:
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


def install(flush: Callable[[], None], bound_s: float) -> bool:
    """Install the handler unless the application has its own or this is not the main thread."""
    global _flush, _bound_s, _watch
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return False
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL:
            _before_uvicorn_reraises(current, flush)
            return False  # the application (or its server: uvicorn, gunicorn, ...) handles SIGTERM itself
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError) as exc:
        logger.debug("agent-otel: not handling SIGTERM: %s", exc)
        return False
    _flush, _bound_s = flush, bound_s
    if _watch is None and hasattr(signal, "pthread_kill"):
        _watch = _Watcher.start()
    return True


def _before_uvicorn_reraises(handler: object, flush: Callable[[], None]) -> None:
    """uvicorn imports the application (and so runs setup()) inside ``Server.serve()``, with its own
    handler in place: always in its ``--workers`` processes. When its graceful stop is done, it puts back
    the handler it found (Python's default) and raises SIGTERM again, which ends the process without atexit:
    a worker's last runs, their spans and its metrics were lost (0 of 60 spans, 2 to 5 of 30 runs stored).
    So that server's ``shutdown()`` (the graceful stop, after the application's lifespan shutdown) is
    followed by agent-otel's, when a signal is about to be raised again. The server object only: nothing
    of uvicorn's is patched."""
    server = getattr(handler, "__self__", None)
    if type(server).__module__ != "uvicorn.server" or getattr(handler, "__name__", "") != "handle_exit":
        return
    stop = getattr(server, "shutdown", None)
    if stop is None or getattr(stop, "_agent_otel_flushes", False):
        return

    async def shutdown(*args: object, **kwargs: object) -> None:
        try:
            await stop(*args, **kwargs)
        finally:
            if getattr(server, "_captured_signals", None):  # (uvicorn's own record of what it re-raises)
                flush()

    shutdown._agent_otel_flushes = True  # type: ignore[attr-defined]
    try:
        server.shutdown = shutdown  # type: ignore[union-attr]
    except Exception as exc:  # a uvicorn whose Server takes no attributes: its workers keep what atexit does
        logger.debug("agent-otel: cannot follow uvicorn's shutdown: %s", exc)


def uninstall() -> None:
    """Undo :func:`install` (main thread only): the default disposition again, no watcher."""
    global _watch
    if threading.current_thread() is not threading.main_thread():
        return
    if installed():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    watch, _watch = _watch, None
    if watch is not None:
        watch.stop()


@contextlib.contextmanager
def shutting_down() -> Iterator[None]:
    """Around ``shutdown()``: a SIGTERM that arrives meanwhile (``docker stop`` as the process exits,
    multiprocessing's ``Pool.terminate()`` as a worker ends) lets it finish, then ends the process as
    SIGTERM would. Before, the handler was removed as shutdown began, and SIGTERM killed the process in the
    middle of delivering its last runs. The shutdown is bounded as the handler's flush is."""
    global _shutdowns
    with _lock:
        _shutdowns += 1
    try:
        yield
    finally:
        with _lock:
            _shutdowns -= 1
            end = _deferred and not _shutdowns
        if end:
            _terminate()


def _defer() -> bool:
    """True (and the process ends when it finishes) if a shutdown is under way."""
    global _deferred
    with _lock:
        if _shutdowns:
            _deferred = True
        return _deferred


def _claim() -> bool:
    """True for the first caller only: one flush per SIGTERM."""
    global _claimed
    with _lock:
        first, _claimed = not _claimed, True
    return first


def _flush_bounded() -> None:
    flush = _flush
    if flush is None:
        return
    # On a helper thread: the thread that calls this may have been interrupted inside agent-otel holding a
    # lock the flush needs; waiting for the helper with a bound can never deadlock.
    helper = threading.Thread(target=flush, name="agent-otel-sigterm", daemon=True)
    helper.start()
    helper.join(_bound_s + 0.5)


def _on_sigterm(signum: int, frame: object) -> None:
    if not _claim():
        return  # the watcher is already flushing, and will end the process
    if _defer():
        return  # the shutdown under way (perhaps the one this handler interrupted) ends the process
    if green.in_hub() and green.spawn(_flush_and_terminate):
        return  # gevent's event loop ran the handler, where nothing may block (agent_otel.green)
    _flush_and_terminate()


def _flush_and_terminate() -> None:
    _flush_bounded()
    _terminate()


def _terminate() -> None:
    """End the process by SIGTERM with the default disposition, as if agent-otel had never handled it."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # not the main thread: set the disposition below Python
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
            libc.signal(int(signal.SIGTERM), None)  # SIG_DFL
        except Exception as exc:
            logger.debug("agent-otel: cannot restore SIGTERM's default disposition: %s", exc)
            os._exit(128 + int(signal.SIGTERM))
    os.kill(os.getpid(), signal.SIGTERM)
    # Delivery is asynchronous; if we are still here, SIGTERM is blocked everywhere. (The stdlib's sleep:
    # on the gevent watcher's OS thread, gevent's would need a hub of its own.)
    green.native("time", "sleep")(1.0)
    os._exit(128 + int(signal.SIGTERM))


class _Watcher:
    """Reads the signal numbers CPython writes to the wakeup fd, on a daemon thread.

    Under gevent (agent_otel.green) a thread is a greenlet of the main thread, and this one's blocking read
    stopped every greenlet for good: there it runs on a real OS thread (gevent's originals), and does
    only what needs no greenlet: past the bound, it ends a process whose main thread never ran the
    handler (busy in C code, where gevent's hub cannot run it), without a flush, as SIGTERM's default
    disposition would have at once. Everything else is the handler's, which gevent's hub runs."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd, self._write_fd = read_fd, write_fd
        self._stopping = False
        self._native = green.patched()
        # Guards the two descriptors: once closed (-1), their numbers belong to the next file opened, such
        # as the run store, and a wake-up byte written there would land at its offset 0.
        # (The stdlib's own lock: under gevent, threading.Lock is gevent's, and the watcher a real thread.)
        self._fds_lock = green.native("_thread", "allocate_lock")()
        self._thread = None
        if not self._native:
            self._thread = threading.Thread(target=self._run, name="agent-otel-sigterm-watch", daemon=True)

    def _begin(self) -> None:
        if self._thread is not None:
            self._thread.start()
        else:
            green.native("_thread", "start_new_thread")(self._run, ())

    @classmethod
    def start(cls) -> _Watcher | None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            previous = None
        if previous != -1:  # in use (asyncio's signal handling) or unavailable: the handler alone
            if previous is not None:
                signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return None
        watcher = cls(read_fd, write_fd)
        watcher._begin()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=watcher._forked)
        return watcher

    def _release_wakeup_fd(self) -> None:
        try:
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, self._write_fd):
                signal.set_wakeup_fd(previous)  # someone else's since: leave theirs in place
        except ValueError:
            pass

    def stop(self) -> None:
        self._stopping = True
        self._release_wakeup_fd()
        with self._fds_lock, contextlib.suppress(OSError):
            if self._write_fd >= 0:
                os.write(self._write_fd, b"\0")  # wake the reader; it closes both ends

    def _close_fds(self) -> None:
        # Forgotten before they are closed: os.close lets other threads run, and a fork between a close and
        # forgetting the number left the child closing it again, by then the number of the application's
        # next file (a pipe it made to talk to that child: its writes failed with EBADF).
        with self._fds_lock:
            fds, self._read_fd, self._write_fd = (self._read_fd, self._write_fd), -1, -1
            for fd in fds:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _forked(self) -> None:
        """A forked child must not signal its parent's watcher through the shared pipe. It inherits the
        handler, though, so it gets a watcher of its own: without one, ``Pool.terminate()`` waited for a
        worker busy in C code to finish its computation (12 s in the probe) instead of ending it at once."""
        global _watch
        self._fds_lock = green.native("_thread", "allocate_lock")()  # a parent's thread may have held it
        if self._read_fd < 0:
            return
        self._release_wakeup_fd()
        self._stopping = True
        self._close_fds()
        if _watch is self and installed():
            _watch = _Watcher.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                data = os.read(self._read_fd, 512)
                if not data or self._stopping:
                    break
                if int(signal.SIGTERM) in data:
                    if self._native:
                        self._on_sigterm_native()
                    else:
                        self._on_sigterm()
        except OSError:
            pass
        finally:
            self._close_fds()

    def _on_sigterm_native(self) -> None:
        """Under gevent: the handler flushes and ends the process within its bound; if the process is still
        here after that, its main thread is busy in C code, and SIGTERM ends it, unflushed."""
        green.native("time", "sleep")(_MAIN_GRACE_S + _bound_s + 1.0)
        if installed() and not self._stopping:
            _terminate()

    def _on_sigterm(self) -> None:
        time.sleep(_MAIN_GRACE_S)
        if not installed():
            # The application (or its server: gunicorn's master with --preload) installed a handler of its
            # own after setup(): SIGTERM is its to handle, perhaps by a graceful stop that takes a while.
            return
        if not _claimed:
            # The main thread has not run the handler: wake it from the system call it sleeps in.
            with contextlib.suppress(OSError, ValueError):
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
            time.sleep(_MAIN_GRACE_S)
        if _claim() and not _defer():
            # Still nothing: the main thread is busy in C code. Flush and end the process from here.
            _flush_bounded()
            _terminate()
        else:
            # The handler runs; it ends the process within its bound, or we do.
            time.sleep(_bound_s + 1.0)
            _terminate()


def _after_patch() -> None:
    """gevent patched this child after its fork (agent_otel.green): the watcher the fork started is a real
    OS thread, as under gevent it must be, and from now on does only what one may there (``_native``): it
    flushing through gevent's locks would fail. (Stopped and made again, its thread ending in a patched
    process printed a KeyError from threading's bookkeeping.)"""
    if _watch is not None:
        _watch._native = True


green.after_patch(_after_patch)
