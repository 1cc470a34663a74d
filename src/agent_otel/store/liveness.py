"""Whether the process that started a run is still there: what turns a stale ``running`` into ``abandoned``.

A run row says ``running`` from its start record until its end record is stored. A process killed in
between (SIGKILL, the OOM killer, a power cut) never writes the end, so without more information the run
would look alive forever. The store sink stamps every run row with the writing process's identity: its
host name, pid and a *start marker*, which on Linux is ``boot id:pid namespace:start time`` (the start
time in clock ticks since boot, field 22 of ``/proc/<pid>/stat``). A reader on the same host then knows:

* the pid does not exist, or it exists but started at another time (the pid was reused), or the machine
  has rebooted since: the process is **gone**;
* the pid exists with the same start time: **alive**;
* another host, another pid namespace (a container with the same host name), or no ``/proc`` to compare
  start times (macOS: only whether the pid exists; Windows: nothing): **unknown**, and the run stays
  ``running`` unless its deadline (the run's ``max_duration_s`` budget) passed over ``DEADLINE_GRACE_MS``
  ago.

Nothing here invents a stop reason: an abandoned run has ``status = abandoned`` and no ``stop_reason``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from typing import Any

ABANDONED = "abandoned"
RUNNING = "running"
ALIVE, GONE, UNKNOWN = "alive", "gone", "unknown"
ZOMBIE = "zombie"  # what _start_ticks says for a dead, unreaped process: never a start time
# A deadline is checked at the run's next step, so a run may overrun it by one tool call; past this
# grace, a run without an end record is no longer believed to be running.
DEADLINE_GRACE_MS = 60_000

_identity: tuple[int, dict[str, Any]] | None = None


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat`` (after the command name, which may hold spaces and parens), or
    ``ZOMBIE`` for a process that has died and waits for its parent to reap it (state Z or X): its pid
    and start time live on, its run never ends."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat or ")" not in stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields and fields[0] in ("Z", "X"):
        return ZOMBIE
    return fields[19] if len(fields) > 19 else None


def _namespace() -> tuple[str, str] | None:
    """(boot id, pid namespace) of this process, or None without ``/proc``."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    return (boot, pidns) if boot and pidns else None


def identity() -> dict[str, Any]:
    """``{"host", "pid", "process_start"}`` of this process, computed once per process (forks included)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        found: dict[str, Any] = {"host": None, "pid": pid, "process_start": None}
        try:
            found["host"] = socket.gethostname()
            namespace = _namespace()
            ticks = _start_ticks(pid) if namespace else None
            if namespace and ticks:
                found["process_start"] = f"{namespace[0]}:{namespace[1]}:{ticks}"
        except Exception:  # no host name, no /proc: the run rows just cannot be judged later
            pass
        _identity = (pid, found)
    return _identity[1]


def process_state(host: str | None, pid: int | None, start: str | None) -> str:
    """ALIVE, GONE or UNKNOWN for the process that wrote a run row (see the module docstring)."""
    if not host or not pid or host != socket.gethostname() or sys.platform == "win32":
        return UNKNOWN
    pid = int(pid)
    namespace = _namespace()
    if start and namespace:
        boot, pidns, ticks = _split(start)
        if pidns != namespace[1]:
            return UNKNOWN  # another container that happens to share the host name
        if boot != namespace[0]:
            return GONE  # the machine has rebooted since
        now_ticks = _start_ticks(pid)
        if now_ticks is not None:
            return ALIVE if now_ticks == ticks else GONE  # another start time (or none): reused, or dead
    exists = _exists(pid)
    if exists is False:
        return GONE
    # It exists; without a start time to compare (no /proc, or hidepid hides it) it may be another.
    return ALIVE if exists and not start else UNKNOWN


def _exists(pid: int) -> bool | None:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the pid exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OSError, OverflowError, ValueError):
        return None
    return True


def _split(start: str) -> tuple[str, str, str]:
    """``boot:pid:[ns]:ticks`` -> (boot, "pid:[ns]", ticks); the namespace link holds a colon."""
    boot, _, rest = start.partition(":")
    pidns, _, ticks = rest.rpartition(":")
    return boot, pidns, ticks


# A row without its writer (host, pid, process start) and without a deadline was written by an agent-otel from
# before schema 4, whose process cannot be checked; a run of it killed before the upgrade would read
# `running` for ever. Still running a day after its start, it reads abandoned.
UNCHECKED_MS = 86_400_000


def judge(row: dict[str, Any], now_ms: int, cache: dict[tuple[Any, ...], str] | None = None) -> str | None:
    """Why a ``running`` row is abandoned (a sentence for ``show``), or None if it may still be running.

    A process known to be alive keeps its run ``running`` even past the deadline (a hung tool delays
    the guard's stop); the deadline decides only when the process cannot be checked."""
    key = (row.get("host"), row.get("pid"), row.get("process_start"))
    state = cache.get(key) if cache is not None else None
    if state is None:
        state = UNKNOWN
        with contextlib.suppress(Exception):  # an odd row must not break a listing
            state = process_state(*key)
        if cache is not None:
            cache[key] = state
    if state == GONE:
        return f"no stop was recorded and its process (pid {row.get('pid')} on {row.get('host')}) is gone"
    deadline = row.get("deadline_ms")
    if state == UNKNOWN and deadline is not None and now_ms > int(deadline) + DEADLINE_GRACE_MS:
        return "no stop was recorded and its deadline (max_duration_s) passed over a minute ago"
    created = row.get("created_at_ms")
    if (
        key == (None, None, None)
        and deadline is None
        and created is not None
        and now_ms > created + UNCHECKED_MS
    ):
        return (
            "no stop was recorded, and it started over a day ago in a process of an agent-otel from before "
            "schema 4, which cannot be checked"
        )
    return None
