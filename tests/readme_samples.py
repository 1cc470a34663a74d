"""The README's CLI samples, produced by running the documented walkthrough for real.

The README quotes what `agent-otel demo`, `runs`, `show`, `stats`, `drift` and `doctor` print. Each quote sits
between ``<!-- sample: NAME -->`` and ``<!-- /sample -->``; ``tests/cli/test_first_run.py`` runs the
walkthrough in a fresh home and compares, and this module rewrites the quotes from a fresh run:

    .venv/bin/python -m tests.readme_samples        # rewrite the README's samples from real output

Only what differs between two runs of the same seed is normalised: run and trace ids, timestamps,
durations (and the latency ratio built from them), column padding, and the home directory. Every count,
token figure, cost, stop reason and hash is compared as printed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The width the samples are printed at (a common terminal; `runs` keeps every column but two).
COLUMNS = 100
HOME = "/home/me"
_SCRIPT = Path(sys.executable).parent / "agent-otel"
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "agent_otel.cli"]
SAMPLE = re.compile(r"<!-- sample: (?P<name>[\w-]+) -->\n```text\n(?P<body>.*?)```\n<!-- /sample -->", re.S)


def run_cli(
    home: Path, *args: str, columns: int = COLUMNS, env: dict[str, str] | None = None, probe: bool = False
) -> subprocess.CompletedProcess[str]:
    """``agent-otel ARGS`` as a user with $HOME ``home`` and a terminal ``columns`` wide runs it.

    The local-collector probe is off unless asked for: whether something answers on localhost:4317/4318
    depends on the machine, not on agent-otel."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    full.update(HOME=str(home), COLUMNS=str(columns), TERM="dumb")
    if not probe:
        full["AGENT_OTEL_PROBE_LOCAL"] = "false"
    full.update(env or {})
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, env=full, timeout=300, check=False
    )


def walkthrough(home: Path, probe: bool = False) -> dict[str, str]:
    """Run the README's walkthrough in ``home`` (a fresh $HOME) and return each sample's text.

    ``probe`` leaves the local-collector probe on, as a user has it: the README's samples are written
    that way (on a machine where no collector runs), the tests compare with it off (see :func:`normalise`).
    """
    out: dict[str, str] = {}

    def step(name: str, *args: str, expect: int = 0, cut: Callable[[str], str] = lambda s: s) -> str:
        proc = run_cli(home, *args, probe=probe)
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        text = cut(proc.stdout.replace(str(home), HOME))
        out[name] = "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"
        return proc.stdout

    demo = step("demo", "demo", cut=_demo_part)
    out["_demo_stdout"] = demo  # not a sample: the whole output, for tests
    worst = re.search(r"next: .*agent-otel show ([0-9a-f]{8})", demo)
    assert worst, demo
    step("runs", "runs", "--last", "12")
    step("show", "show", worst.group(1))
    step("stats", "stats")
    step("drift", "drift", expect=1)
    step("doctor", "doctor", cut=lambda s: s[s.index("\nrun store\n") :])
    return out


def _demo_part(stdout: str) -> str:
    """From the summary line through the by-scenario table (the progress bar and the trees are left out)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if " of support-agent written to " in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("worst run"))
    return "\n".join(lines[start : end + 1])


def samples(text: str | None = None) -> dict[str, str]:
    """The README's samples by name."""
    text = README.read_text() if text is None else text
    return {m["name"]: m["body"] for m in SAMPLE.finditer(text)}


_NORMALISE = [
    (re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f]{12}\b|\b[0-9a-f]{8}\b"), "<id>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z|\b\d{2}-\d{2} \d{2}:\d{2}Z"), "<time>"),
    (re.compile(r"\b\d+m \d+\.\ds\b|\b\d+(?:\.\d+)? (?:ms|s)\b"), "<duration>"),
    # Why OTLP is off depends on the machine (is a collector answering on localhost?), not on agent-otel.
    (re.compile(r"^OTLP export is off: .*"), "OTLP export is off: <why>"),
    # the store file's size moves with SQLite's page allocation, run to run
    (re.compile(r"^(\s*size )\d+\.\d KiB"), r"\1<size>"),
]


def normalise(text: str) -> list[str]:
    """The sample with what legitimately differs between runs replaced, one entry per line."""
    lines = []
    for line in text.strip("\n").splitlines():
        for pattern, repl in _NORMALISE:
            line = pattern.sub(repl, line)
        if line.startswith("latency_p95_ms"):  # the ratio of two durations
            line = re.sub(r"\b\d+\.\d+x\b", "<ratio>", line)
        lines.append(" ".join(line.split()))
    return lines


def write(fresh: dict[str, str]) -> None:
    text = README.read_text()
    fresh = {name: body for name, body in fresh.items() if not name.startswith("_")}
    names = set(samples(text))
    missing = set(fresh) - names
    if missing:
        raise SystemExit(f"the README has no <!-- sample: NAME --> block for {sorted(missing)}")

    def repl(m: re.Match[str]) -> str:
        body = fresh.get(m["name"], m["body"])
        return f"<!-- sample: {m['name']} -->\n```text\n{body}```\n<!-- /sample -->"

    README.write_text(SAMPLE.sub(repl, text))


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    busy = [port for port in (4317, 4318) if _answers(port)]
    if busy:
        raise SystemExit(f"something answers on localhost:{busy}; the samples show a machine without one")
    with tempfile.TemporaryDirectory(prefix="agent-otel-readme-") as home:
        fresh = walkthrough(Path(home), probe=True)
    write(fresh)
    print(json.dumps({name: len(body.splitlines()) for name, body in fresh.items() if name[0] != "_"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
