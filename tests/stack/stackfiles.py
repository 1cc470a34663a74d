"""The bundled stack's files and how to read them; shared by tests/stack (static) and tests/e2e (binaries)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
# The compose specification's JSON schema lives next to the repository (../shared in CI, /work/shared
# here): the nearest shared/schemas above the checkout, so a git worktree further down finds it too.
COMPOSE_SCHEMA = next(
    (
        p / "shared" / "schemas" / "compose-spec.json"
        for p in REPO.parents
        if (p / "shared" / "schemas" / "compose-spec.json").is_file()
    ),
    REPO.parent / "shared" / "schemas" / "compose-spec.json",
)

COLLECTOR_CONFIG = REPO / "collector" / "config.yaml"
BUILDER_MANIFEST = REPO / "collector" / "builder-config.yaml"
SINK_CONFIG = REPO / "tests" / "e2e" / "sink-config.yaml"
TEMPO_CONFIG = REPO / "tempo" / "tempo.yaml"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
RULES_DIR = REPO / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.test.yml"))
GRAFANA_DATASOURCES = REPO / "grafana" / "provisioning" / "datasources" / "agent-otel.yaml"
GRAFANA_DASHBOARD_PROVIDER = REPO / "grafana" / "provisioning" / "dashboards" / "agent-otel.yaml"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
DESIGN_METRICS = (
    "agent_stop_total",
    "agent_tool_calls_bucket",
    "agent_tool_calls_sum",
    "agent_tool_calls_count",
    "agent_run_latency_ms_bucket",
    "agent_run_latency_ms_sum",
    "agent_run_latency_ms_count",
    "agent_tokens_per_request_bucket",
    "agent_tokens_per_request_sum",
    "agent_tokens_per_request_count",
    "agent_spend_per_run_usd_bucket",
    "agent_spend_per_run_usd_sum",
    "agent_spend_per_run_usd_count",
    "agent_tool_duration_ms_bucket",
    "agent_tool_duration_ms_sum",
    "agent_tool_duration_ms_count",
    "agent_tool_invocations_total",
    "agent_tool_retries_total",
    "agent_tool_failed_attempts_total",
    "agent_guard_triggers_total",
    "agent_otel_telemetry_dropped_total",
)
# The GenAI client metric the fidelity work adds (OpenTelemetry semantic conventions; seconds, with
# gen_ai.agent.name): the Agent overview's "LLM time vs tool time per run" reads it.
GENAI_METRICS = (
    "gen_ai_client_operation_duration_seconds_bucket",
    "gen_ai_client_operation_duration_seconds_sum",
    "gen_ai_client_operation_duration_seconds_count",
)
# DESIGN.md, "These queries, copied from the seed, must return data in the bundled stack".
SEED_QUERIES = (
    "histogram_quantile(0.95, sum(rate(agent_tool_calls_bucket[5m])) by (le))",
    "sum(rate(agent_stop_total[10m])) by (stop_reason)",
    "histogram_quantile(0.95, sum(rate(agent_run_latency_ms_bucket[5m])) by (le))",
)
DASHBOARD_UIDS = {
    "agent-otel-overview": "Agent overview",
    "agent-otel-tools": "Tools",
    "agent-otel-runs": "Runs",
}
# The last schema version of Grafana's v1 dashboard JSON model (newer changes are per-panel migrations).
DASHBOARD_SCHEMA_VERSION = 42

# `${env:NAME:-default}` in collector configs, `${NAME:-default}` in Tempo's (-config.expand-env).
COLLECTOR_ENV = re.compile(r"\$\{env:([A-Za-z0-9_]+)(?::-([^}]*))?\}")
TEMPO_ENV = re.compile(r"\$\{([A-Za-z0-9_]+)(?::-([^}]*))?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def env_vars(path: Path, pattern: re.Pattern[str]) -> dict[str, str | None]:
    """Environment variables a config file's values refer to (not its comments), with their defaults."""
    return {m.group(1): m.group(2) for text in _strings(load_yaml(path)) for m in pattern.finditer(text)}


def load_with_defaults(path: Path, pattern: re.Pattern[str]) -> Any:
    """The config as it is with no variable set: every reference replaced by its default."""
    text = pattern.sub(lambda m: m.group(2) or "", path.read_text(encoding="utf-8"))
    return yaml.safe_load(text)


def cache_dir() -> Path:
    return Path(os.environ.get("AGENT_OTEL_CACHE") or Path.home() / ".cache" / "agent-otel")


def manifest() -> dict[str, Any]:
    return load_yaml(BUILDER_MANIFEST)


def collector_version() -> str:
    return str(manifest()["dist"]["version"])


def collector_binary() -> Path:
    """Where scripts/prereqs.d/30-collector.sh puts the collector built from the manifest (same hash key)."""
    key = hashlib.sha256(BUILDER_MANIFEST.read_bytes()).hexdigest()[:16]
    return cache_dir() / "collector" / key / manifest()["dist"]["name"]


# --- the Prometheus versions the tests run -----------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusRelease:
    """One Prometheus the tests check our files against: where its binaries are and how to get them.

    Debian's package (2.42, what the project's brief requires) and the version docker-compose.yml pins,
    which users meet (scripts/prereqs.d/25-prometheus3.sh builds it from the Go module proxy)."""

    name: str  # in test ids: a failure names the version
    bin_dir: Path | None  # None: found on PATH
    install: str

    def binary(self, tool: str) -> str | None:
        if self.bin_dir is None:
            return shutil.which(tool)
        path = self.bin_dir / tool
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def compose_prometheus_version() -> str:
    """The Prometheus version docker-compose.yml runs (its image tag without the v)."""
    image = load_yaml(COMPOSE)["services"]["prometheus"]["image"]
    repo, _, tag = image.rpartition(":")
    assert repo == "prom/prometheus" and tag.startswith("v"), image
    return tag.removeprefix("v")


def debian_prometheus_version() -> str:
    """promtool's version on PATH ("2.42"), or "debian" when it is not installed (the test then fails
    under CI or skips, naming the install command)."""
    tool = shutil.which("promtool")
    if tool is None:
        return "debian"
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, check=False)
    m = re.search(r"version (\d+\.\d+)", out.stdout + out.stderr)
    return m.group(1) if m else "debian"


def prometheus_releases() -> list[PrometheusRelease]:
    compose = compose_prometheus_version()
    return [
        PrometheusRelease(
            f"prometheus-{debian_prometheus_version()}", None, "make prereqs  (Debian package prometheus)"
        ),
        PrometheusRelease(
            f"prometheus-{compose}",
            cache_dir() / "bin" / f"prometheus-{compose}",
            "make prereqs  (scripts/prereqs.d/25-prometheus3.sh)",
        ),
    ]


PROMETHEUS_RELEASES = prometheus_releases()


def run_promtool(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout, check=False)


# --- Prometheus config as the tests run it ----------------------------------------------------------------


def prometheus_config_for(addresses: dict[str, str], rules_dir: Path = RULES_DIR) -> dict[str, Any]:
    """prometheus.yml with only addresses and the rules path changed.

    ``addresses`` maps a scrape target of the compose network (``collector:8888``) to the address it has
    in the test (``127.0.0.1:40123``); every target must be mapped, so nothing is left pointing at a
    hostname that does not exist here.
    """
    config = load_yaml(PROMETHEUS_CONFIG)
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets = []
            for target in static["targets"]:
                if target not in addresses:
                    raise KeyError(f"scrape target {target} of job {job['job_name']} has no test address")
                targets.append(addresses[target])
            static["targets"] = targets
    config["rule_files"] = [str(rules_dir / Path(pattern).name) for pattern in config["rule_files"]]
    return config


# --- Grafana dashboards -----------------------------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def datasource_uid(panel: dict[str, Any], target: dict[str, Any]) -> str | None:
    ds = target.get("datasource") or panel.get("datasource") or {}
    return ds.get("uid") if isinstance(ds, dict) else None


# What Grafana puts in place of the built-in and template variables when the dashboard opens with its
# defaults ("All" for every multi-value variable, whose allValue is a regex) and a one-hour range.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def interpolate(text: str, variables: dict[str, str]) -> str:
    values = {**GRAFANA_BUILTINS, **variables}

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown variable ${name} in {text!r}")
        return values[name]

    return re.sub(r"\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, text)


def default_variable_values(dashboard: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            current = var.get("current", {}).get("value", "")
            values[var["name"]] = current if isinstance(current, str) else ",".join(current)
    return values


def promql_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, interpolated PromQL) for every Prometheus query of the dashboard's panels."""
    values = default_variable_values(dashboard)
    out = []
    for panel, target in targets(dashboard):
        if datasource_uid(panel, target) == "prometheus" and target.get("expr"):
            out.append((panel["title"], interpolate(target["expr"], values)))
    return out


def label_values_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, metric selector, label) for every ``label_values(selector, label)`` variable query."""
    values = default_variable_values(dashboard)
    out = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var.get("query"), dict) else var.get("query", "")
        m = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)", query.strip())
        assert m, f"variable {var['name']}: unsupported query {query!r}"
        out.append((var["name"], interpolate(m.group(1), values), m.group(2)))
    return out
