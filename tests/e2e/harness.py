"""The bundled stack as the end-to-end tests run it: real binaries, no Docker.

The collector built from collector/builder-config.yaml runs collector/config.yaml and Prometheus (Debian's
2.42 or the 3.x docker-compose.yml runs) runs prometheus/prometheus.yml with prometheus/rules, each with
only its addresses and paths changed (environment variables for the collector, flags and scrape targets
for Prometheus). Tempo cannot run here, so the collector's Tempo exporter points at a second collector
(tests/e2e/sink-config.yaml) that writes the traces it receives to a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import missing_prerequisite
from tests.stack import stackfiles as sf

# --- processes --------------------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (bound together, then released for the processes to take)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=sf.REPO,
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: tuple[Proc, ...] = ()) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` and the processes' logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                pytest.fail(f"{p.name} exited while waiting for {what}:\n{p.tail()}", pytrace=False)
        try:
            last = check()
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in procs)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n{logs}", pytrace=False)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def healthy(url: str) -> Callable[[], bool]:
    return lambda: http_get(url, timeout=2)[0] == 200


# --- the stack --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    collector_bin: Path
    ports: dict[str, int]
    collector: Proc
    sink: Proc
    prometheus: Proc
    sink_file: Path
    procs: list[Proc] = field(default_factory=list)

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_grpc']}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url, timeout=10)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", f"{expr}: {status} {body[:300]!r}"
        return data["data"]["result"]

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(f"{self.prom_url}{path}?{query}", timeout=10)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", f"{path}: {status} {body[:300]!r}"
        return data["data"]

    def start_collector(self) -> None:
        """Start the (stopped) collector again and wait until it is healthy."""
        self.collector.start()
        wait_for(
            "the restarted collector",
            healthy(f"http://127.0.0.1:{self.ports['collector_health']}/"),
            60,
            (self.collector,),
        )

    def collector_metric(self, name: str, **labels: str) -> float | None:
        """A sample of the collector's own telemetry, read from its /metrics endpoint."""
        status, body = http_get(f"http://127.0.0.1:{self.ports['collector_telemetry']}/metrics")
        if status != 200:
            return None
        total = None
        for line in body.decode().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
        return total


def collector_env(tmp: Path, ports: dict[str, int]) -> dict[str, str]:
    """The bundled collector config's variables: every one is an address or a path, and every one is set."""
    values = {
        "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{ports['collector_health']}",
        "OTELCOL_STORAGE_DIR": str(tmp / "collector" / "file_storage"),
        "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "TEMPO_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['sink_grpc']}",
        "PROMETHEUS_REMOTE_WRITE_URL": f"http://127.0.0.1:{ports['prometheus']}/api/v1/write",
        "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
        "OTELCOL_TELEMETRY_PORT": str(ports["collector_telemetry"]),
    }
    assert set(values) == set(sf.env_vars(sf.COLLECTOR_CONFIG, sf.COLLECTOR_ENV)), (
        "collector/config.yaml refers to variables this test does not set (or no longer refers to some)"
    )
    return values


def prometheus_argv(prometheus: str, config: Path, data: Path, port: int) -> list[str]:
    """docker-compose.yml's Prometheus command, with the config path, data path and listen address changed."""
    command = sf.load_yaml(sf.COMPOSE)["services"]["prometheus"]["command"]
    argv = [prometheus]
    for arg in command:
        if arg.startswith("--config.file="):
            argv.append(f"--config.file={config}")
        elif arg.startswith("--storage.tsdb.path="):
            argv.append(f"--storage.tsdb.path={data}")
        else:
            argv.append(arg)
    argv.append(f"--web.listen-address=127.0.0.1:{port}")
    return argv


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    return env


def collector_binary() -> Path:
    """The collector built from the manifest; fails (CI) or skips (local) when it was not built."""
    binary = sf.collector_binary()
    if not binary.is_file():
        missing_prerequisite(
            f"the collector built from collector/builder-config.yaml ({binary})",
            "make prereqs  (scripts/prereqs.d/30-collector.sh)",
        )
    return binary


def sink_proc(name: str, collector_bin: Path, grpc_port: int, health_port: int, out: Path) -> Proc:
    """A collector running tests/e2e/sink-config.yaml: an OTLP/gRPC receiver writing traces to ``out``."""
    return Proc(
        name,
        [str(collector_bin), f"--config={sf.SINK_CONFIG}"],
        {
            **base_env(),
            "SINK_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
            "SINK_HEALTH_ENDPOINT": f"127.0.0.1:{health_port}",
            "SINK_FILE": str(out),
        },
        out.with_name(out.stem + ".log"),
    )


PORTS = (
    "otlp_grpc",
    "otlp_http",
    "collector_health",
    "collector_telemetry",
    "prometheus",
    "sink_grpc",
    "sink_health",
    "tempo_unused",
)


def prometheus_binary(release: sf.PrometheusRelease) -> str:
    """The release's prometheus binary; fails (CI) or skips (local) when it is not installed."""
    binary = release.binary("prometheus")
    if binary is None:
        missing_prerequisite(f"the prometheus binary of {release.name}", release.install)
    assert binary is not None
    return binary


# The stack fixtures' parameters: each e2e module runs once per Prometheus the tests check (Debian's 2.42
# and the version docker-compose.yml runs); a test's id names the version, e.g. [prometheus-3.14.0].
PROMETHEUS_PARAMS = {"params": sf.PROMETHEUS_RELEASES, "ids": lambda r: r.name}


@contextlib.contextmanager
def launch_stack(tmp: Path, collector_bin: Path, release: sf.PrometheusRelease) -> Iterator[Stack]:
    """The collector, the release's Prometheus and the trace sink, started with the bundled configs;
    stopped on exit."""
    prometheus = prometheus_binary(release)
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    (tmp / "collector").mkdir()

    sink_file = tmp / "sink" / "traces.jsonl"
    sink_file.parent.mkdir()
    sink = sink_proc(
        "trace sink (stands in for Tempo)", collector_bin, ports["sink_grpc"], ports["sink_health"], sink_file
    )

    prom_config = tmp / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            sf.prometheus_config_for(
                {
                    "localhost:9090": f"127.0.0.1:{ports['prometheus']}",
                    "collector:8888": f"127.0.0.1:{ports['collector_telemetry']}",
                    # Tempo's own metrics: nothing listens there, so this target is simply down.
                    "tempo:3200": f"127.0.0.1:{ports['tempo_unused']}",
                }
            )
        )
    )
    prom = Proc(
        "prometheus",
        prometheus_argv(prometheus, prom_config, tmp / "prometheus-data", ports["prometheus"]),
        base_env(),
        tmp / "prometheus.log",
    )

    collector = Proc(
        "collector",
        [str(collector_bin), f"--config={sf.COLLECTOR_CONFIG}"],
        {**base_env(), **collector_env(tmp, ports)},
        tmp / "collector.log",
    )

    st = Stack(tmp, collector_bin, ports, collector, sink, prom, sink_file)
    try:
        for proc in (sink, prom, collector):
            st.procs.append(proc.start())
        wait_for(
            "the trace sink to be healthy", healthy(f"http://127.0.0.1:{ports['sink_health']}/"), 60, (sink,)
        )
        wait_for("Prometheus to be ready", healthy(f"{st.prom_url}/-/ready"), 90, (prom,))
        wait_for(
            "the collector to be healthy",
            healthy(f"http://127.0.0.1:{ports['collector_health']}/"),
            60,
            (collector,),
        )
        yield st
    finally:
        for proc in reversed(st.procs):
            proc.stop()


def write_refusals(stack: Stack) -> dict[str, float]:
    """Writes Prometheus refused (4xx on /api/v1/write) and metric points the collector failed to send.

    Prometheus drops a whole remote-write request it refuses, so any of these is lost data.
    """
    result = stack.query(
        'sum(prometheus_http_requests_total{handler="/api/v1/write", code=~"4.."}) or vector(0)'
    )
    refused = float(result[0]["value"][1])
    failed = stack.collector_metric(
        "otelcol_exporter_send_failed_metric_points", exporter="prometheus_remote_write"
    ) or stack.collector_metric(
        "otelcol_exporter_send_failed_metric_points_total", exporter="prometheus_remote_write"
    )
    accepted = stack.query(
        'sum(prometheus_http_requests_total{handler="/api/v1/write", code=~"2.."}) or vector(0)'
    )
    return {"refused": refused, "failed_points": failed or 0.0, "accepted": float(accepted[0]["value"][1])}


# --- reading the traces the sink received -----------------------------------------------------------------


def _value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return v


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span in the sink's file (complete lines only: the sink may be writing the last one)."""
    if not path.exists():
        return []
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n") or not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            resource = _attrs(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    spans.append(
                        {
                            "trace_id": s["traceId"].lower(),
                            "span_id": s["spanId"],
                            "parent": s.get("parentSpanId", ""),
                            "name": s["name"],
                            "attrs": _attrs(s.get("attributes")),
                            "events": [(e["name"], _attrs(e.get("attributes"))) for e in s.get("events", [])],
                            "status": s.get("status", {}).get("code", 0),
                            "status_message": s.get("status", {}).get("message", ""),
                            "start_ns": int(s["startTimeUnixNano"]),
                            "resource": resource,
                        }
                    )
    return spans


def traces_by_id(spans: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        out.setdefault(s["trace_id"], []).append(s)
    return out


def root_of(trace: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((s for s in trace if s["name"].startswith("invoke_agent ")), None)


def wait_for_runs(
    stack: Stack, path: Path, runs: list[dict[str, Any]], procs: tuple[Proc, ...], timeout: float = 90
) -> dict[str, list[dict[str, Any]]]:
    """Wait until the sink holds the root span of every run in ``runs``; return the traces by id."""
    wanted = {r["trace_id"].lower() for r in runs}

    def arrived() -> dict[str, list[dict[str, Any]]] | None:
        traces = traces_by_id(read_spans(path))
        missing = [t for t in wanted if t not in traces or root_of(traces[t]) is None]
        return None if missing else traces

    return wait_for(f"{len(wanted)} runs' traces in the sink", arrived, timeout, procs)
