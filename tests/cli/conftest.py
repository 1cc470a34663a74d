"""The real ``agent-otel`` command in a subprocess, with its own AGENT_OTEL_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_SCRIPT = Path(sys.executable).parent / "agent-otel"
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "agent_otel.cli"]


class CLI:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.db = str(home / "agent-otel.db")
        self.env: dict[str, str] = {}

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        full.update(AGENT_OTEL_HOME=str(self.home), AGENT_OTEL_PROBE_LOCAL="false")
        full.update(self.env)
        full.update(env or {})
        return subprocess.run(
            [*COMMAND, *args], capture_output=True, text=True, env=full, timeout=timeout, check=False
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        full.update(AGENT_OTEL_HOME=str(self.home), AGENT_OTEL_PROBE_LOCAL="false", **self.env)
        # Ctrl-C as in a terminal: a test run started in the background (`make test &`, some CI
        # runners) ignores SIGINT, and a child would inherit that and never see the tests' Ctrl-C.
        return subprocess.Popen(
            [*COMMAND, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path / "home")


@pytest.fixture
def make_cli(tmp_path: Path) -> Callable[[str], CLI]:
    return lambda name: CLI(tmp_path / name)


def one_line_error(proc: Any) -> str:
    """The failure a user sees: non-zero exit, exactly one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("agent-otel")
    return lines[0]


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float = 60.0) -> bool:
    """Read ``proc``'s stdout (a following command such as ``tail``) until a line starts with ``prefix``:
    True then, False if the process ended or ``timeout_s`` passed first."""
    found = threading.Event()

    def read() -> None:
        for out in proc.stdout or ():
            if out.startswith(prefix):
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found.wait(0.2) and proc.poll() is None and time.monotonic() < deadline:
        pass
    return found.is_set()
