"""benchmarks/overhead.py runs with tiny counts, with or without the optional 'bench' extra (peer SDKs)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "overhead.py"
PEER_NAMES = ("OpenLLMetry", "Langfuse", "OpenLIT", "OpenInference")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--calls", "20", "--repeats", "1", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_prints_the_table_and_every_peer_is_measured_or_reported_missing():
    proc = run()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "bare OpenTelemetry SDK span, same 8 attributes" in out
    assert "agent-otel tool call (hash+span+metrics+event)" in out
    assert "canonical JSON + sha256" in out
    assert "attempts: 0;" in out
    assert "FAILED" not in out, out
    titles = [line for line in out.splitlines() if line.startswith("[")]
    for name in PEER_NAMES:
        (title,) = [t for t in titles if f" {name}, " in t or t.startswith(f"[{name}, ")]
        assert title.startswith(f"[subprocess: {name}, ") or "NOT INSTALLED" in title, title


def test_json_results():
    proc = run("--json", "--peers", "none")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    (group,) = results["groups"]
    assert group["status"] == "ok" and group["network_attempts"] == []
    keys = [case["key"] for case in group["cases"]]
    assert keys == ["bare", "bare_batch", "agent_otel"]
    ours = group["cases"][2]
    assert ours["hot_us"] > 0 and ours["tool_span"]["args_in_clear"] == []
    assert [row["size"] for row in results["hashing"]] == ["1 KB", "100 KB", "1 MB"]
