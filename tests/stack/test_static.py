"""The bundled stack's files, checked without running anything but promtool.

docker-compose.yml against the compose specification; every file it mounts exists; every hostname, port,
path and datasource uid that one file expects of another agrees; the collector's manifest lists exactly
what its configs use; dashboards parse and refer only to provisioned datasources and to metrics that
exist; promtool checks the Prometheus config and rules and runs the alert tests.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from agent_otel import conventions
from agent_otel.stop import StopReason
from tests.helpers import missing_prerequisite
from tests.stack import stackfiles as sf

COMPOSE = sf.load_yaml(sf.COMPOSE)
SERVICES = COMPOSE["services"]
COLLECTOR = sf.load_with_defaults(sf.COLLECTOR_CONFIG, sf.COLLECTOR_ENV)
TEMPO = sf.load_with_defaults(sf.TEMPO_CONFIG, sf.TEMPO_ENV)
PROMETHEUS = sf.load_yaml(sf.PROMETHEUS_CONFIG)
DATASOURCES = {d["uid"]: d for d in sf.load_yaml(sf.GRAFANA_DATASOURCES)["datasources"]}


def host_port(address: str) -> tuple[str, int]:
    if "://" in address:
        u = urlparse(address)
        assert u.hostname and u.port, address
        return u.hostname, u.port
    host, port = address.rsplit(":", 1)
    return host, int(port)


def published(service: str) -> dict[int, str]:
    """container port -> published 'host_ip:host_port' for a compose service."""
    out = {}
    for entry in SERVICES[service].get("ports", []):
        host_ip, host_port, container = str(entry).split(":")
        out[int(container)] = f"{host_ip}:{host_port}"
    return out


def mounts(service: str) -> dict[str, str]:
    """container path -> source (a ./path bind or a named volume) for a compose service."""
    out = {}
    for entry in SERVICES[service].get("volumes", []):
        source, target = str(entry).split(":")[:2]
        out[target] = source
    return out


def bind_source(service: str, container_path: str) -> Path:
    """The repository file or directory a compose service sees at container_path (or under it)."""
    for target, source in sorted(mounts(service).items(), key=lambda kv: -len(kv[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            assert source.startswith("./"), f"{service}:{container_path} is not a bind mount"
            return sf.REPO / source / Path(container_path).relative_to(target)
    raise AssertionError(f"{service} mounts nothing at {container_path}")


# --- docker-compose.yml -----------------------------------------------------------------------------------


def test_compose_validates_against_the_compose_specification() -> None:
    if not sf.COMPOSE_SCHEMA.is_file():
        pytest.fail(
            f"compose schema not found at {sf.COMPOSE_SCHEMA} (expected ../shared/schemas next to "
            "the repository)",
            pytrace=False,
        )
    schema = json.loads(sf.COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, "\n".join(errors)
    # and the schema does reject a mistake, so the check above means something
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["collector"]["portz"] = ["4317:4317"]
    assert list(validator.iter_errors(broken))


def test_every_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for entry in service.get("volumes", []):
            source = str(entry).split(":")[0]
            if source.startswith(("./", "/")):
                assert (sf.REPO / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in COMPOSE["volumes"], f"{name} uses undeclared volume {source}"


def test_services_are_pinned_local_only_persistent_and_restart() -> None:
    assert set(SERVICES) == {"init-volumes", "collector", "tempo", "prometheus", "grafana"}
    for name, service in SERVICES.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), (
            f"{name}: {image} unpinned"
        )
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        assert "restart" in service, f"{name} has no restart policy"
        for source in mounts(name).values():
            if not source.startswith("./"):
                assert source in COMPOSE["volumes"], source
    for name in ("collector", "tempo", "prometheus", "grafana"):
        assert SERVICES[name]["restart"] == "unless-stopped"
        assert any(not s.startswith("./") for s in mounts(name).values()), f"{name} keeps no data in a volume"
    assert SERVICES["init-volumes"]["restart"] == "no"
    # the named volumes are declared and each is used
    used = {s for n in SERVICES for s in mounts(n).values() if not s.startswith("./")}
    assert used == set(COMPOSE["volumes"])


def test_image_versions_agree_with_what_is_built_and_provisioned() -> None:
    version = sf.collector_version()
    assert SERVICES["collector"]["image"] == f"otel/opentelemetry-collector-contrib:{version}"
    for kind in ("receivers", "processors", "exporters", "extensions"):
        for comp in sf.manifest()[kind]:
            _, module_version = comp["gomod"].split()
            assert module_version == f"v{version}", comp
    prom_version = SERVICES["prometheus"]["image"].rpartition(":v")[2]
    assert DATASOURCES["prometheus"]["jsonData"]["prometheusVersion"] == prom_version
    assert SERVICES["init-volumes"]["image"] == SERVICES["prometheus"]["image"]  # no extra image to pull
    assert SERVICES["tempo"]["image"].startswith("grafana/tempo:3.")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:13.")


def test_every_pinned_image_says_where_its_release_was_confirmed() -> None:
    """A tag that does not exist fails `docker compose up` for every user: each one is confirmed from its
    project's release notes or source, and the compose file says where (its header comment)."""
    text = sf.COMPOSE.read_text(encoding="utf-8")
    header = text.split("\nname:", 1)[0]
    for name, service in SERVICES.items():
        image = service["image"]
        if name == "init-volumes":
            continue
        assert image in header, f"{name}: {image} has no note on where its release was confirmed"


def test_the_readme_states_the_pinned_versions() -> None:
    """The Local stack section names each image's version; a pin changed in one place only is caught."""
    section = (sf.REPO / "README.md").read_text(encoding="utf-8").split("\n## Local stack", 1)[1]
    section = section.split("\n## ", 1)[0]
    stated: dict[str, set[str]] = {}
    for name, version in re.findall(r"(Prometheus|Tempo|Grafana|collector) (\d+\.\d+\.\d+)", section):
        stated.setdefault(name, set()).add(version)
    pinned = {
        name: {SERVICES[service]["image"].rpartition(":")[2].removeprefix("v")}
        for name, service in (
            ("Prometheus", "prometheus"),
            ("Tempo", "tempo"),
            ("Grafana", "grafana"),
            ("collector", "collector"),
        )
    }
    assert stated == pinned


def test_start_order() -> None:
    def deps(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in SERVICES[name].get("depends_on", {}).items()}

    assert deps("collector") == {
        "init-volumes": "service_completed_successfully",
        "tempo": "service_started",
        "prometheus": "service_healthy",
    }
    assert deps("tempo")["init-volumes"] == "service_completed_successfully"
    assert set(deps("grafana")) == {"prometheus", "tempo"}
    # the volumes the init service chowns are the collector's and Tempo's data volumes
    init = " ".join(SERVICES["init-volumes"]["entrypoint"])
    for service, path in (("collector", "/var/lib/otelcol"), ("tempo", "/var/tempo")):
        assert path in init and mounts("init-volumes")[path] == mounts(service)[path]


def test_grafana_opens_for_anonymous_viewers_and_takes_the_admin_password_from_the_environment() -> None:
    env = SERVICES["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert bind_source("grafana", home).is_file()
    assert published("grafana") == {3000: "127.0.0.1:3000"}


# --- hostnames, ports and paths across the files ----------------------------------------------------------


def test_agents_reach_the_collector_on_the_published_otlp_ports() -> None:
    receivers = COLLECTOR["receivers"]["otlp"]["protocols"]
    grpc = host_port(receivers["grpc"]["endpoint"])
    http = host_port(receivers["http"]["endpoint"])
    assert grpc == ("0.0.0.0", 4317) and http == ("0.0.0.0", 4318)
    assert published("collector") == {4317: "127.0.0.1:4317", 4318: "127.0.0.1:4318"}
    assert (
        bind_source("collector", SERVICES["collector"]["command"][0].split("=", 1)[1]) == sf.COLLECTOR_CONFIG
    )


def test_collector_exports_to_tempo_and_prometheus_where_they_listen() -> None:
    host, port = host_port(COLLECTOR["exporters"]["otlp_grpc/tempo"]["endpoint"])
    assert host == "tempo" and host in SERVICES
    assert host_port(TEMPO["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])[1] == port
    url = COLLECTOR["exporters"]["prometheus_remote_write"]["http"]["endpoint"]
    host, port = host_port(url)
    assert host == "prometheus" and port == 9090 and urlparse(url).path == "/api/v1/write"
    assert "--web.enable-remote-write-receiver" in SERVICES["prometheus"]["command"]
    # Tempo's metrics generator writes to the same Prometheus
    (tempo_rw,) = TEMPO["metrics_generator"]["storage"]["remote_write"]
    assert tempo_rw["url"] == url


def test_collector_state_lives_in_its_volume() -> None:
    volume_path = next(t for t, s in mounts("collector").items() if not s.startswith("./"))
    storage = COLLECTOR["extensions"]["file_storage"]["directory"]
    assert storage.startswith(volume_path + "/"), f"{storage} is not on the collector's volume"


def test_remote_write_sends_in_order_without_a_wal() -> None:
    """Prometheus refuses a whole write request with a sample older than the newest of its series: the
    exporter's WAL sent out of order (most writes refused). One request at a time keeps the order."""
    prw = COLLECTOR["exporters"]["prometheus_remote_write"]
    assert "wal" not in prw
    assert prw["remote_write_queue"]["enabled"] is True
    assert prw["max_batch_request_parallelism"] == 1
    # num_consumers other than the default 5 is deprecated (and would mean parallel requests)
    assert "num_consumers" not in prw["remote_write_queue"]


def test_prometheus_scrapes_what_exists_and_loads_the_mounted_rules() -> None:
    targets = {
        job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
        for job in PROMETHEUS["scrape_configs"]
    }
    telemetry = COLLECTOR["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert targets["otel-collector"] == [f"collector:{telemetry['port']}"]
    assert targets["tempo"] == [f"tempo:{TEMPO['server']['http_listen_port']}"]
    assert targets["prometheus"] == ["localhost:9090"]
    for job, addresses in targets.items():
        for address in addresses:
            host, _ = host_port(address)
            assert host == "localhost" or host in SERVICES, f"{job}: unknown host {host}"
    command = SERVICES["prometheus"]["command"]
    config_path = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    assert bind_source("prometheus", config_path) == sf.PROMETHEUS_CONFIG
    (rule_glob,) = PROMETHEUS["rule_files"]
    rules_dir = bind_source("prometheus", str(Path(rule_glob).parent))
    assert sorted(rules_dir.glob(Path(rule_glob).name)) == sf.RULE_FILES and sf.RULE_FILES
    assert not list(rules_dir.glob("tests/" + Path(rule_glob).name)), "rule tests must not be loaded as rules"
    assert "--enable-feature=exemplar-storage" in command


def test_grafana_datasources_point_at_the_services_and_at_each_other() -> None:
    assert set(DATASOURCES) == {"prometheus", "tempo"}
    prom, tempo = DATASOURCES["prometheus"], DATASOURCES["tempo"]
    assert (prom["type"], tempo["type"]) == ("prometheus", "tempo")
    assert host_port(prom["url"]) == ("prometheus", 9090)
    assert host_port(tempo["url"]) == ("tempo", TEMPO["server"]["http_listen_port"])
    assert prom["isDefault"] is True
    # exemplars -> Tempo, traces -> metrics and service map -> Prometheus
    (exemplar,) = prom["jsonData"]["exemplarTraceIdDestinations"]
    assert exemplar["datasourceUid"] == "tempo" and exemplar["name"] == "trace_id"
    assert tempo["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"
    for q in tempo["jsonData"]["tracesToMetrics"]["queries"]:
        assert "$$__tags" in q["query"], "a literal $ must be written $$ in provisioning files"
    provisioning = {t: s for t, s in mounts("grafana").items() if t.startswith("/etc/grafana/provisioning")}
    assert bind_source("grafana", "/etc/grafana/provisioning/datasources") == sf.GRAFANA_DATASOURCES.parent
    assert len(provisioning) == 2


def test_dashboards_provider_reads_the_mounted_dashboards() -> None:
    (provider,) = sf.load_yaml(sf.GRAFANA_DASHBOARD_PROVIDER)["providers"]
    assert provider["type"] == "file"
    assert bind_source("grafana", provider["options"]["path"]) == sf.DASHBOARDS_DIR
    assert (
        bind_source("grafana", "/etc/grafana/provisioning/dashboards") == sf.GRAFANA_DASHBOARD_PROVIDER.parent
    )


# --- collector ----------------------------------------------------------------------------------------------

# ocb module path -> component type where the type is not the module name minus its kind suffix
_MODULE_TYPES = {"otlpexporter": "otlp_grpc", "otlphttpexporter": "otlp_http"}


def _component_type(gomod: str) -> str:
    module = gomod.split()[0].rsplit("/", 1)[1]
    if module in _MODULE_TYPES:
        return _MODULE_TYPES[module]
    return re.sub(r"(receiver|processor|exporter|extension|connector)$", "", module)


def _used(kind: str) -> set[str]:
    """Component types (without the /name suffix) that collector/config.yaml and the e2e sink config use."""
    used = set()
    for path in (sf.COLLECTOR_CONFIG, sf.SINK_CONFIG):
        config = sf.load_with_defaults(path, sf.COLLECTOR_ENV)
        used |= {name.split("/")[0] for name in config.get(kind) or {}}
    return used


def test_builder_manifest_lists_exactly_the_components_the_configs_use() -> None:
    manifest = sf.manifest()
    for kind in ("receivers", "processors", "exporters", "extensions"):
        # module names drop the underscores of the types (memorylimiterprocessor is memory_limiter)
        listed = {_component_type(c["gomod"]).replace("_", "") for c in manifest.get(kind, [])}
        used = {t.replace("_", "") for t in _used(kind)}
        assert listed == used, f"{kind}: manifest {sorted(listed)} != configs {sorted(used)}"
    assert not manifest.get("connectors")
    providers = {p["gomod"].split()[0].rsplit("/", 1)[1] for p in manifest["providers"]}
    assert providers == {"envprovider", "fileprovider"}


def test_collector_uses_current_component_names_and_keys() -> None:
    text = sf.COLLECTOR_CONFIG.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    exporters = set(config["exporters"])
    # deprecated aliases of 0.161: otlp -> otlp_grpc, prometheusremotewrite -> prometheus_remote_write
    assert not {e for e in exporters if e.split("/")[0] in ("otlp", "otlphttp", "prometheusremotewrite")}
    prw = config["exporters"]["prometheus_remote_write"]
    assert "endpoint" not in prw and "tls" not in prw, "top-level HTTP settings are deprecated: use http:"
    for key in ("resource_to_telemetry_conversion", "add_metric_suffixes"):
        assert key not in prw, f"{key} is deprecated"
    assert "batch" not in config["processors"], "batching is the exporters' sending_queue.batch"


def test_collector_pipelines() -> None:
    service = COLLECTOR["service"]
    traces = service["pipelines"]["traces"]
    metrics = service["pipelines"]["metrics"]
    assert traces["processors"] == ["memory_limiter", "redaction", "transform/status", "tail_sampling"]
    assert metrics["processors"][0] == "memory_limiter"
    assert traces["exporters"] == ["otlp_grpc/tempo"] and metrics["exporters"] == ["prometheus_remote_write"]
    queue = COLLECTOR["exporters"]["otlp_grpc/tempo"]["sending_queue"]
    assert queue["enabled"] and queue["storage"] in service["extensions"]
    assert COLLECTOR["exporters"]["otlp_grpc/tempo"]["retry_on_failure"]["max_elapsed_time"] in ("0s", 0)
    assert service["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"] == 8888


def test_tail_sampling_policies() -> None:
    ts = COLLECTOR["processors"]["tail_sampling"]
    by_name = {p["name"]: p for p in ts["policies"]}
    assert len(by_name) == len(ts["policies"]), "policy names are unique"
    # every run in which a human approved or rejected a tool call (conventions.EVENT_APPROVAL)
    decided = by_name.pop("runs-with-a-human-decision")
    assert decided["type"] == "ottl_condition"
    assert decided["ottl_condition"]["spanevent"] == [f'spanevent.name == "{conventions.EVENT_APPROVAL}"']
    policies = {p["type"]: p for p in by_name.values()}
    assert len(policies) == len(by_name)
    assert set(policies) == {
        "status_code",
        "ottl_condition",
        "latency",
        "probabilistic",
        "boolean_attribute",
        "and",
    }
    # the runs agent-otel links exemplars to (conventions.RUN_EXEMPLAR)
    assert policies["boolean_attribute"]["boolean_attribute"] == {
        "key": conventions.RUN_EXEMPLAR,
        "value": True,
    }
    # an agent trace whose run span is missing at decision time (collector shutdown, runs > decision_wait)
    agent_spans, not_root = policies["and"]["and"]["and_sub_policy"]
    assert agent_spans["ottl_condition"]["span"] == [f'span.attributes["{conventions.RUN_ID}"] != nil']
    assert not_root["type"] == "not"
    assert not_root["not"]["not_sub_policy"]["ottl_condition"]["span"] == ["IsRootSpan()"]
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    (cond,) = policies["ottl_condition"]["ottl_condition"]["span"]
    assert 'span.attributes["agent.stop_reason"] != "completed"' in cond
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    # decides soon after the root span (the run span, which ends last) arrives
    assert ts["decision_wait_after_root_received"] == "2s"


def test_redaction_patterns_mask_secrets_and_spare_the_design_attributes() -> None:
    redaction = COLLECTOR["processors"]["redaction"]
    assert redaction["allow_all_keys"] is True
    assert redaction["redact_all_types"] is True  # values inside arrays, checked as their JSON text
    # Go's RE2 and Python's re agree on these patterns (no look-arounds, no backreferences)
    keys = [re.compile(p) for p in redaction["blocked_key_patterns"]]
    values = [re.compile(p) for p in redaction["blocked_values"]]

    def key_masked(key: str) -> bool:
        return any(p.search(key) for p in keys)

    def value_masked(value: str) -> bool:
        return any(p.search(value) for p in values)

    for key in (
        "api_key",
        "apiKey",
        "user.email",
        "password",
        "http.request.header.authorization",
        "db.password",
        "client_secret",
        "access_token",
        "x-api-key",
        "session_id",
        "cookie",
        # camelCase
        "openaiApiKey",
        "openaiAPIKey",
        "authToken",
        "refreshToken",
        "userEmail",
        "dbPassword",
        "clientSecret",
        "sessionId",
        "OPENAI_API_KEY",
    ):
        assert key_masked(key), key
    # every attribute key agent-otel itself sets (conventions.py holds them all) passes untouched
    own_keys = [v for k, v in vars(conventions).items() if k.isupper() and isinstance(v, str) and "." in v]
    assert len(own_keys) > 20
    for key in (*own_keys, "maxTokens", "tokenizer", "authorName", "emailed", "gen_ai.usage.output_tokens"):
        assert not key_masked(key), f"{key} would be masked"
    for value in (
        "mail me at jane.doe@example.com",
        '["ops@example.net","cc@example.org"]',
        "Bearer abcdefghijklmnop",
        "sk-proj-abcdefghijklmnopqrstu",
        "AKIAABCDEFGHIJKLMNOP",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop",
    ):
        assert value_masked(value), value
    for value in (
        "3f2a9c0d1e4b5a6f7c8d9e0f",
        "invoke_agent support-agent",
        "gpt-4o",
        "tool_timeout",
        "8b9eae7eeada8af8283805c4f65020a7",
    ):
        assert not value_masked(value), value


def test_the_span_status_message_is_masked_with_the_same_patterns() -> None:
    """The redaction processor skips the status message; transform/status applies the same value
    patterns to it, in OTTL's string syntax (backslashes doubled)."""
    statements = COLLECTOR["processors"]["transform/status"]["trace_statements"]
    found = []
    for statement in statements:
        m = re.fullmatch(r'replace_pattern\(span\.status\.message, "(.*)", "\*\*\*\*"\)', statement)
        assert m, statement
        found.append(m.group(1).replace("\\\\", "\\"))
    assert found == COLLECTOR["processors"]["redaction"]["blocked_values"]


# --- Tempo --------------------------------------------------------------------------------------------------


def test_tempo_is_a_tempo_3_monolith_with_local_storage_retention_and_metrics_generator() -> None:
    for removed in ("ingester", "ingester_client", "compactor", "metrics_generator_client"):
        assert removed not in TEMPO, f"{removed} is a Tempo 2 block, removed in 3.0"
    assert "-target=all" in SERVICES["tempo"]["command"]
    assert "-config.expand-env=true" in SERVICES["tempo"]["command"]
    config_path = next(
        a.split("=", 1)[1] for a in SERVICES["tempo"]["command"] if a.startswith("-config.file=")
    )
    assert bind_source("tempo", config_path) == sf.TEMPO_CONFIG
    assert TEMPO["storage"]["trace"]["backend"] == "local"
    volume_path = next(t for t, s in mounts("tempo").items() if not s.startswith("./"))
    for path in (
        TEMPO["storage"]["trace"]["wal"]["path"],
        TEMPO["storage"]["trace"]["local"]["path"],
        TEMPO["metrics_generator"]["storage"]["path"],
        TEMPO["live_store"]["wal"]["path"],
    ):
        assert path.startswith(volume_path + "/"), path
    retention = TEMPO["backend_scheduler"]["provider"]["compaction"]["compaction"]["block_retention"]
    assert retention == TEMPO["backend_worker"]["compaction"]["block_retention"] == "168h"
    assert set(TEMPO["overrides"]["defaults"]["metrics_generator"]["processors"]) == {
        "span-metrics",
        "service-graphs",
    }


# --- dashboards ---------------------------------------------------------------------------------------------


def _recorded() -> set[str]:
    return {
        r["record"]
        for f in sf.RULE_FILES
        for g in sf.load_yaml(f)["groups"]
        for r in g["rules"]
        if "record" in r
    }


def test_dashboards_parse_with_stable_uids_and_current_schema() -> None:
    boards = sf.dashboards()
    assert {d["uid"]: d["title"] for d in boards.values()} == sf.DASHBOARD_UIDS
    for name, d in boards.items():
        assert d["schemaVersion"] == sf.DASHBOARD_SCHEMA_VERSION, name
        ids = [p["id"] for p in sf.panels(d)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in sf.panels(d):
            assert panel.get("title") and panel.get("type"), panel
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, (name, panel["title"])
        for link in d.get("links", []):
            assert link["url"].removeprefix("/d/") in sf.DASHBOARD_UIDS


def test_dashboards_use_only_provisioned_datasources() -> None:
    for name, d in sf.dashboards().items():
        for panel, target in sf.targets(d):
            uid = sf.datasource_uid(panel, target)
            assert uid in DATASOURCES, f"{name} / {panel['title']}: datasource {uid}"
            assert DATASOURCES[uid]["type"] == (target.get("datasource") or panel["datasource"])["type"]
        for var in d["templating"]["list"]:
            if "datasource" in var:
                assert var["datasource"]["uid"] in DATASOURCES


def test_dashboard_queries_use_metrics_that_exist() -> None:
    known = set(sf.DESIGN_METRICS) | set(sf.GENAI_METRICS) | _recorded() | {"ALERTS"}
    for name, d in sf.dashboards().items():
        exprs = sf.promql_expressions(d)
        assert exprs, name
        for title, expr in exprs:
            metrics = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=[{\[])", expr))
            metrics |= set(re.findall(r"\b(agent_otel:threshold:[a-z0-9_]+)\b", expr))
            assert metrics, f"{name} / {title}: no metric in {expr}"
            assert metrics <= known, f"{name} / {title}: unknown {sorted(metrics - known)}"


def test_dashboards_answer_the_questions_of_the_issue() -> None:
    titles = {d["title"]: {p["title"] for p in sf.panels(d)} for d in sf.dashboards().values()}
    assert {
        "Runs by stop reason",
        "p95 run latency",
        "Tool calls per run p95 vs baseline",
        "Tokens per request",
        "Spend per run",
        "Stop-reason distribution",
        "Firing alerts",
        "Baseline",
        "Retries per run",
        "Tool calls per run by tool",
        "Failed attempts by error class",
        "LLM time vs tool time per run",
    } <= titles["Agent overview"]
    assert {
        "Tool calls by tool",
        "Error rate by tool",
        "Failed attempts by tool and error class",
        "Errors by tool and error class",
        "p95 duration by tool",
        "Retries by tool",
    } <= titles["Tools"]
    runs = next(d for d in sf.dashboards().values() if d["uid"] == "agent-otel-runs")
    traceql = [t["query"] for p, t in sf.targets(runs) if sf.datasource_uid(p, t) == "tempo"]
    assert any("agent.stop_reason" in q and "completed" in q for q in traceql)
    assert any("agent.run_id" in q and "$run_id" in q for q in traceql)
    assert {v["name"] for v in runs["templating"]["list"]} == {"agent", "stop_reason", "run_id"}
    (reasons,) = [v for v in runs["templating"]["list"] if v["name"] == "stop_reason"]
    assert set(reasons["query"].split(",")) == {r.value for r in StopReason} - {"completed"} | {"interrupted"}


def test_the_overview_says_when_a_baseline_is_not_ready() -> None:
    overview = next(d for d in sf.dashboards().values() if d["uid"] == "agent-otel-overview")
    (panel,) = [p for p in sf.panels(overview) if p["title"] == "Baseline"]
    ready = next(t for t in panel["targets"] if t["expr"].startswith("agent:baseline:ready"))
    (override,) = [o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == ready["refId"]]
    (mappings,) = [p["value"] for p in override["properties"] if p["id"] == "mappings"]
    texts = {k: v["text"] for m in mappings for k, v in m["options"].items()}
    assert texts == {"0": "not ready", "1": "ready"}
    assert "agent:baseline:ready" in _recorded()


def test_no_dashboard_query_counts_interrupted_runs_as_failed() -> None:
    """interrupted (an agent waiting for a human) is not a failure: a query that singles out failures,
    or everything but completed runs as "failed", must leave it out."""
    for name, d in sf.dashboards().items():
        for title, expr in sf.promql_expressions(d):
            if "failed" in title.lower() and "stop_reason" in expr:
                assert "interrupted" in expr, f"{name} / {title}: {expr}"
    for f in sf.RULE_FILES:
        for g in sf.load_yaml(f)["groups"]:
            for r in g["rules"]:
                assert 'stop_reason!="completed"' not in r["expr"], r


_WINDOW_COUNT = re.compile(
    r"\(last_over_time\((?P<x>[^\[]+)\[(?P<w>[\w$]+)\]\) - (?P=x) offset (?P=w)\) >= 0"
)


def test_every_window_count_takes_a_reset_series_from_its_last_value() -> None:
    """A process restarted under the same service.instance.id writes its counters from 0 into the old
    process's series: "last minus the value at the window's start" is then the new count minus the old
    (a restarted process's kill switch stop counted 0). Every panel, trace-to-metrics query and rule
    counts such a series from its last value, as scenario 5 of the promtool tests proves for the rules.

    A reset is seen by resets() inside the window and by a value in the window below the value at its
    start: Prometheus 3 leaves a sample exactly at the window's start out of the range (2.x kept it), so a
    reset right after that sample is not a reset within the window there (scenario 5 at 24m)."""
    texts = [(f.name, f.read_text()) for f in (*sf.RULE_FILES, sf.GRAFANA_DATASOURCES)]
    texts += [(name, expr) for name, d in sf.dashboards().items() for _, expr in sf.promql_expressions(d)]
    counted = 0
    for name, text in texts:
        for m in _WINDOW_COUNT.finditer(text):
            counted += 1
            rest = text[m.end() :].lstrip()
            x, w = m["x"], m["w"]
            reset = f"unless (resets({x}[{w}]) > 0 or min_over_time({x}[{w}]) < {x} offset {w})"
            assert rest.startswith(reset), f"{name}: {m[0]} {rest[:200]}"
    assert counted >= 40


def test_dashboards_have_no_obsolete_table_footer() -> None:
    for name, d in sf.dashboards().items():
        for panel in sf.panels(d):
            assert "footer" not in panel.get("options", {}), f"{name} / {panel['title']}"


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    """Every panel's PromQL, interpolated as Grafana does, through promtool's parser."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_, _, expr) in enumerate(
            (n, t, e) for n, d in sf.dashboards().items() for t, e in sf.promql_expressions(d)
        )
    ]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = sf.run_promtool(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Prometheus: promtool -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sf.PROMETHEUS_RELEASES, ids=lambda r: r.name)
def promtool(request: pytest.FixtureRequest) -> str:
    """promtool of each Prometheus the tests run (Debian's 2.42, the compose file's 3.x): a test using it
    runs once per version, and its id names the version."""
    release: sf.PrometheusRelease = request.param
    tool = release.binary("promtool")
    if tool is None:
        missing_prerequisite(f"promtool of {release.name}", release.install)
    assert tool is not None
    return tool


def test_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    # as bundled (the rules path is the container's), then with the rules path of this checkout so that
    # the check covers the rule files too
    proc = sf.run_promtool(promtool, "check", "config", "--syntax-only", str(sf.PROMETHEUS_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = sf.prometheus_config_for(
        {t: t for job in PROMETHEUS["scrape_configs"] for s in job["static_configs"] for t in s["targets"]}
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    proc = sf.run_promtool(promtool, "check", "config", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(sf.RULE_FILES)} rule files found" in proc.stdout + proc.stderr


def test_promtool_check_rules(promtool: str) -> None:
    proc = sf.run_promtool(promtool, "check", "rules", *map(str, sf.RULE_FILES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_test_rules_every_alert_fires_and_stays_silent_where_it_should(
    promtool: str,
) -> None:
    assert sf.RULE_TESTS
    proc = sf.run_promtool(promtool, "test", "rules", *map(str, sf.RULE_TESTS), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = {
        r["alert"]
        for f in sf.RULE_FILES
        for g in sf.load_yaml(f)["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert {
        # day 1: absolute thresholds
        "AgentRetriesPerRunHigh",
        "AgentToolLatencyHigh",
        "AgentToolCallsPerRunHigh",
        "AgentFailedRunsHigh",
        "AgentSpendPerRunHigh",
        "AgentKillSwitchStop",
        "AgentOtelTelemetryDropped",
        "AgentOtelSeriesOverflow",
        # drift against the agent's baseline
        "AgentToolCallsPerRunDrift",
        "AgentLoopDetectedAboveBaseline",
        "AgentToolTimeoutSpike",
        "AgentRunLatencyP95Drift",
        "AgentSpendPerRunDrift",
    } <= alerts
    cases = [
        c
        for test_file in sf.RULE_TESTS
        for t in sf.load_yaml(test_file)["tests"]
        for c in t.get("alert_rule_test", [])
    ]
    for alert in alerts:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"no test shows {alert} firing"
        assert any(not c["exp_alerts"] for c in mine), f"no test shows {alert} silent"


def test_the_readmes_port_table_is_what_compose_publishes() -> None:
    """Local stack's "Ports, all bound to 127.0.0.1" table: each row a port compose publishes on loopback,
    to the service the row names, and no published port missing from it."""
    readme = (sf.REPO / "README.md").read_text()
    table = readme.split("Ports, all bound to 127.0.0.1:", 1)[1].split("\n\n", 2)[1]
    rows = {
        int(cells[0]): cells[1].split(",")[0].split()[0].lower()
        for line in table.splitlines()[2:]
        if (cells := [c.strip() for c in line.strip().strip("|").split("|")])
    }
    compose = {
        int(address.split(":")[1]): service
        for service in SERVICES
        for address in published(service).values()
        if address.startswith("127.0.0.1:")
    }
    assert compose == {port: name for port, name in rows.items()}
