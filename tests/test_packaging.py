"""The distribution a user installs: built as a release would be, checked as PyPI would, installed alone.

Builds the sdist and wheel with ``python -m build --no-isolation`` (this venv's hatchling, no network),
runs ``twine check --strict`` on them, reads the wheel's metadata and files, then installs the wheel into a
fresh venv with nothing but the base install's dependencies (from the wheelhouse ``make prereqs`` fills, so
offline) and runs the first-run commands there.
"""

from __future__ import annotations

import email
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from agent_otel.cli import stack
from tests.helpers import missing_prerequisite
from tests.otlp_receiver import HTTPReceiver

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
WHEELHOUSE = Path(os.environ.get("AGENT_OTEL_CACHE", Path.home() / ".cache" / "agent-otel")) / "wheelhouse"
# sha256 of the Apache License 2.0 text (https://www.apache.org/licenses/LICENSE-2.0.txt) with all runs of
# whitespace collapsed to one space: the file must be the standard text, not a summary of it.
APACHE_2_SHA256 = "0ffddef9e48f8a09aed5caf2d44f7ba1c1be2d9b8e0a6f693b1635b2d5566645"


def _normalised_sha(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = out.glob("agent_otel-*.whl")
    (sdist,) = out.glob("agent_otel-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(zf.read(name))


def test_twine_check_passes_on_the_wheel_and_sdist(dist):
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_the_wheel_is_complete_for_a_release(dist):
    meta = _metadata(dist["wheel"])
    with zipfile.ZipFile(dist["wheel"]) as zf:
        names = set(zf.namelist())
        license_name = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        license_text = zf.read(license_name).decode()
    # "Typing :: Typed" is backed by the marker.
    assert "Classifier: Typing :: Typed" in str(meta) and "agent_otel/py.typed" in names
    # The license expression, and the standard Apache-2.0 text as the license file.
    assert meta["License-Expression"] == "Apache-2.0" and meta["License-File"] == "LICENSE"
    assert _normalised_sha(license_text) == APACHE_2_SHA256
    assert license_text == (ROOT / "LICENSE").read_text()
    # The PyPI description is the one written for pip users, rendered as Markdown.
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().strip() == (ROOT / "docs" / "pypi.md").read_text().strip()
    assert "make " not in meta.get_payload()  # pip users have no Makefile


def test_the_base_install_is_lean_and_grpc_is_an_extra(dist):
    meta = _metadata(dist["wheel"])
    requires = meta.get_all("Requires-Dist")
    base = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("opentelemetry-exporter-otlp-proto-http") for r in base)
    assert not any("grpc" in r for r in base), base
    assert any(
        r.startswith("opentelemetry-exporter-otlp-proto-grpc") and "extra == 'grpc'" in r for r in requires
    )
    assert not any("psycopg" in r for r in base)


def test_the_wheel_carries_the_repository_stack_files_unchanged(dist):
    force = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert sorted(force) == sorted(stack.ENTRIES)
    assert all(target == f"agent_otel/{stack.PACKAGED}/{source}" for source, target in force.items())
    prefix = f"agent_otel/{stack.PACKAGED}/"
    with zipfile.ZipFile(dist["wheel"]) as zf:
        packaged = {
            n[len(prefix) :]: zf.read(n)
            for n in zf.namelist()
            if n.startswith(prefix) and not n.endswith("/")
        }
    repository = stack.files(ROOT)
    assert packaged == repository
    assert "docker-compose.yml" in packaged and any(p.startswith("grafana/dashboards/") for p in packaged)


def _venv(tmp_path: Path, wheel: Path) -> Path:
    if not any(WHEELHOUSE.glob("*.whl")):
        missing_prerequisite(f"the wheelhouse of the base dependencies ({WHEELHOUSE})", "make prereqs")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(WHEELHOUSE),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def test_a_fresh_venv_with_the_wheel_alone_runs_the_first_run_commands(dist, tmp_path):
    """The wheel and its base dependencies only (no grpc, no psycopg): demo, runs, show, drift, stack init,
    OTLP over HTTP, and one clear line for gRPC."""
    venv = _venv(tmp_path, dist["wheel"])
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    installed = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert "agent-otel" in installed and "opentelemetry-exporter-otlp-proto-http" in installed
    assert not {"grpcio", "opentelemetry-exporter-otlp-proto-grpc", "psycopg", "psycopg-binary"} & installed

    cli = str(venv / "bin" / "agent-otel")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(HOME=str(home), AGENT_OTEL_PROBE_LOCAL="false", COLUMNS="100")

    def run(
        *args: str, extra: dict[str, str] | None = None, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [cli, *args],
            capture_output=True,
            text=True,
            env={**env, **(extra or {})},
            timeout=300,
            check=False,
        )
        assert proc.returncode == expect, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        return proc

    receiver = HTTPReceiver()
    try:
        # An endpoint on neither 4317 nor 4318, no protocol: without the grpc extra, OTLP/HTTP.
        demo = run("demo", extra={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    finally:
        receiver.stop()
    said = re.search(
        r"sent ([\d,]+) spans to OTLP http/protobuf " + re.escape(receiver.endpoint), demo.stdout
    )
    assert said, demo.stdout
    assert int(said.group(1).replace(",", "")) == len(receiver.spans) > 40
    assert "completed 11, loop_detected 1" in demo.stdout
    worst = re.search(r"next: .*agent-otel show ([0-9a-f]{8})", demo.stdout)
    assert worst, demo.stdout
    assert "loop_detected" in run("runs").stdout
    assert "loop_detected (failure)" in run("show", worst.group(1)).stdout
    drift = json.loads(run("drift", "--json", expect=1).stdout)
    assert next(s for s in drift["signals"] if s["signal"] == "tool_calls_per_run")["drift"]

    target = tmp_path / "stack"
    run("stack", "init", str(target))
    written = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert written == stack.files(ROOT)

    # gRPC without the extra: one warning line naming the fix, no ImportError, and the agent runs.
    script = (
        "import agent_otel\n"
        "agent_otel.setup(service_name='x', instrument=False)\n"
        "with agent_otel.run('a') as r:\n"
        "    r.call_tool('t', lambda: 1)\n"
        "print(r.result.stop_reason.value)\n"
    )
    for extra in (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ):
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-c", script],
            capture_output=True,
            text=True,
            env={**env, **extra, "AGENT_OTEL_HOME": str(home / "sdk")},
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "completed", proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert (
            lines[0].startswith("agent-otel: OTLP export is off: ")
            and "pip install 'agent-otel[grpc]'" in lines[0]
        )
        assert "http/protobuf" in lines[0] and "4318" in lines[0]


def test_make_demo_installs_the_base_only_and_runs_the_demo(tmp_path):
    """`make demo` as the README says, on a fresh venv: no psycopg, no gRPC, and the demo runs."""
    if not any(WHEELHOUSE.glob("hatchling-*.whl")):
        missing_prerequisite(f"the wheelhouse with the build backend ({WHEELHOUSE})", "make prereqs")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_", "VIRTUAL_ENV"))}
    # Offline: every distribution from the wheelhouse (pip honours these for the build backend too).
    env.update(
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(WHEELHOUSE),
        HOME=str(tmp_path / "home"),
        AGENT_OTEL_PROBE_LOCAL="false",
    )
    proc = subprocess.run(
        ["make", "-s", "demo", f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (
        "40 runs of support-agent written to" in proc.stdout
        and "completed 11, loop_detected 1" in proc.stdout
    )
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert "agent-otel" in installed and "opentelemetry-exporter-otlp-proto-http" in installed
    assert not {"grpcio", "psycopg", "psycopg-binary", "pytest", "cryptography"} & installed, installed
