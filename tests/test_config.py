"""Configuration: the seed's safe default, precedence, sources, and errors that name the key."""

from __future__ import annotations

import textwrap

import pytest

import agent_otel
from agent_otel.config import ConfigError, load

SEED_DEFAULT = textwrap.dedent("""
    logging:
      events: {enabled: true, schema: "unified", store_args: false, store_args_hash: true,
               include: ["run_id", "step_id", "tool", "duration_ms", "status", "error", "stop_reason"]}
    metrics:
      track: ["tokens_per_request", "tool_calls_per_run", "latency_p95", "spend_per_run", "stop_reason"]
    retention: {tool_snapshot_days: 14, logs_days: 30}
""")


def test_the_seed_default_loads_unchanged_and_is_the_default(tmp_path):
    path = tmp_path / "agent-otel.yaml"
    path.write_text(SEED_DEFAULT)
    from_file = load(path=path, env={})
    default = load(env={})
    assert from_file.as_dict() == default.as_dict()
    assert from_file.get("logging.events.store_args") is False
    assert from_file.get("retention.tool_snapshot_days") == 14
    assert from_file.source("retention.logs_days") == f"file:{path}"
    assert default.source("retention.logs_days") == "default"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"logging": {"events": {"store_arg": False}}}, "logging.events.store_arg"),
        ({"loging": {}}, "loging"),
        ({"retention": {"tool_snapshot_day": 3}}, "retention.tool_snapshot_day"),
        ({"guards": {"budget": {"max_step": 3}}}, "guards.budget.max_step"),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(data, key):
    with pytest.raises(ConfigError, match=f"unknown key '{key}'"):
        load(data, env={})


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'store_args'"):
        load({"logging": {"events": {"store_arg": True}}}, env={})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"logging": {"events": {"store_args": "yes"}}}, "logging.events.store_args"),
        ({"retention": {"logs_days": "30"}}, "retention.logs_days"),
        ({"retention": {"logs_days": True}}, "retention.logs_days"),
        ({"retention": {"logs_days": -1}}, "retention.logs_days"),
        ({"metrics": {"track": ["tokens_per_request", "bogus"]}}, "metrics.track"),
        ({"logging": {"events": {"include": ["run_id", "nope"]}}}, "logging.events.include"),
        ({"exporter": {"protocol": "thrift"}}, "exporter.protocol"),
        ({"logging": "verbose"}, "logging"),
        ({"store": True}, "store"),
        ({"guards": {"policy": {"deny": {"*": [1]}}}}, "guards.policy.deny"),
    ],
)
def test_wrong_types_are_errors_naming_the_key(data, key):
    with pytest.raises(ConfigError, match=f"'{key}"):
        load(data, env={})


def test_a_float_for_an_integer_key_is_reported_as_written(tmp_path):
    config = tmp_path / "agent-otel.yaml"
    config.write_text("retention:\n  logs_days: 0.5\n")
    with pytest.raises(ConfigError) as info:
        load(path=str(config), env={})
    assert "'retention.logs_days'" in str(info.value)
    assert str(info.value).endswith("must be an integer, got float 0.5")
    # A whole number written as a float is still accepted as the integer it is.
    assert load({"retention": {"logs_days": 7.0}}, env={}).get("retention.logs_days") == 7


def test_precedence_arguments_over_env_over_file_over_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("exporter: {endpoint: 'http://file:4317', timeout_s: 3}\nretention: {logs_days: 5}\n")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317", "AGENT_OTEL_CONFIG": str(path)}
    cfg = load({"retention.logs_days": 9}, env=env)
    assert cfg.get("exporter.endpoint") == "http://env:4317"
    assert cfg.source("exporter.endpoint") == "env:OTEL_EXPORTER_OTLP_ENDPOINT"
    assert cfg.get("exporter.timeout_s") == 3.0 and cfg.source("exporter.timeout_s") == f"file:{path}"
    assert cfg.get("retention.logs_days") == 9 and cfg.source("retention.logs_days") == "argument"
    assert (
        cfg.get("retention.tool_snapshot_days") == 14
        and cfg.source("retention.tool_snapshot_days") == "default"
    )


def test_signal_specific_env_wins_and_ms_interval_is_converted():
    cfg = load(
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/v1/traces",
            "OTEL_METRIC_EXPORT_INTERVAL": "2500",
            "OTEL_SERVICE_NAME": "svc",
        }
    )
    assert cfg.get("exporter.endpoint") == "http://b:4318/v1/traces"
    assert cfg.get("exporter.metric_interval_s") == 2.5
    assert cfg.get("service.name") == "svc" and cfg.source("service.name") == "env:OTEL_SERVICE_NAME"


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="AGENT_OTEL_PROBE_LOCAL"):
        load(env={"AGENT_OTEL_PROBE_LOCAL": "maybe"})


def test_file_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load(path=tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("logging: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(path=bad, env={})


def test_prices_merge_per_model_and_items_lists_every_leaf():
    cfg = load({"prices": {"my-model": {"input": 1.0, "output": 2.0}}}, env={})
    assert cfg.get("prices") == {
        "my-model": {"input": 1.0, "output": 2.0, "cached_input": None, "cache_write": None}
    }
    rows = {key: (value, source) for key, value, source in cfg.items()}
    assert rows["prices.my-model.input"] == (1.0, "argument")
    assert rows["logging.events.store_args"] == (False, "default")
    assert "guards.kill_switch.file" in rows


def test_setup_exposes_the_effective_config(telemetry):
    effective = agent_otel.config.effective()
    assert effective is telemetry.config
    assert effective.get("store") is False and effective.source("store") == "argument"
    assert effective.get("exporter.probe_local") is False


BINARY = bytes(range(256)) * 4  # not UTF-8, as a config path pointing at a binary file reads


@pytest.mark.parametrize(
    ("kwargs", "env", "says"),
    [
        ({"endpoint": "http://[::1"}, {}, "'exporter.endpoint' .* not a valid URL"),
        ({"endpoint": "localhost:99999"}, {}, "'exporter.endpoint' .*Port out of range"),
        ({"endpoint": "http://u:secret@[::1"}, {}, r"//\*\*\*@"),  # no password in the message
        (
            {"endpoint": "htps://collector:4317"},
            {},
            "scheme 'htps://'; OTLP endpoints are http:// or https://",
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"},
            "OTEL_EXPORTER_OTLP_ENDPOINT.*'grpc://'",
        ),
        ({"endpoint": "http://127.0.0.1:4317"}, {"OTEL_EXPORTER_OTLP_COMPRESSION": "bogus"}, "gzip, deflate"),
        (
            {"endpoint": "http://127.0.0.1:4318", "protocol": "http/protobuf"},
            {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd"},
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        ),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "nan"}, "metric_interval_s.*finite"),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "inf"}, "metric_interval_s.*finite"),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "1e308"}, "metric_interval_s.*at most 86400"),
        ({"config": {"guards": {"tool_timeout_s": 1e308}}}, {}, "tool_timeout_s.*at most"),
        ({"config": {"exporter": {"timeout_s": float("nan")}}}, {}, "timeout_s.*finite"),
        ({"config": "BINARY"}, {}, "not UTF-8"),
        ({"config": 123}, {}, "YAML file path or a mapping"),
        ({"store": "mysql://app:pw@db/agents"}, {}, "unknown scheme 'mysql://'"),
        ({"store": "sqlite:///runs.db"}, {}, "sqlite:// URL; give the SQLite file's path"),
        # Became a SQLite file named after the password, in the working directory.
        ({"store": "host=db dbname=agents user=app password=secret"}, {}, "libpq keyword/value"),
        ({}, {"AGENT_OTEL_STORE": "dbname=agents password=secret"}, "libpq keyword/value"),
        # An empty store used the default one (an argument, the config file) or none at all (the variable,
        # as `AGENT_OTEL_STORE=$STORE` leaves it when $STORE is unset), without a word.
        ({"store": ""}, {}, "'store' \\(from argument\\) is empty"),
        ({}, {"AGENT_OTEL_STORE": ""}, "'store' \\(from env:AGENT_OTEL_STORE\\) is empty"),
        ({}, {"AGENT_OTEL_STORE": " "}, "is empty; give a SQLite path"),
    ],
)
def test_setup_raises_only_config_error_for_bad_configuration(monkeypatch, tmp_path, kwargs, env, says):
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "AGENT_OTEL_CONFIG", "AGENT_OTEL_STORE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if kwargs.get("config") == "BINARY":
        path = tmp_path / "agent.yaml"
        path.write_bytes(BINARY)
        kwargs = {"config": str(path)}
    kwargs = {"store": False, **kwargs}
    agent_otel.shutdown()
    try:
        with pytest.raises(ConfigError, match=says) as raised:
            agent_otel.setup("bad-config", instrument=False, **kwargs)
        assert "pw" not in str(raised.value) and "secret" not in str(raised.value)
    finally:
        agent_otel.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("value", ["none", "gzip", "GZIP "])
def test_every_compression_the_spec_names_is_accepted(monkeypatch, protocol, value):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", value)
    agent_otel.shutdown()
    try:
        agent_otel.setup(
            "ok", endpoint="http://127.0.0.1:4317", protocol=protocol, store=False, instrument=False
        )
    finally:
        agent_otel.shutdown()


@pytest.mark.parametrize(
    ("value", "captured"),
    [
        ("NO_CONTENT", False),
        ("event_only", False),  # content in log events only, never on spans: none on ours
        ("SPAN_ONLY", True),
        ("span_and_event", True),
        ("true", True),
        ("false", False),
    ],
)
def test_the_genai_content_capture_modes_of_the_standard_variable_are_understood(
    monkeypatch, value, captured
):
    """OpenTelemetry's GenAI instrumentations (opentelemetry-util-genai) read
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT as a mode as well as true/false: a user who set
    NO_CONTENT for one of them must neither get content on agent-otel's spans nor a ConfigError from
    setup(), which would break the agent for adding agent-otel."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    assert load().get("logging.events.capture_content") is captured
    agent_otel.shutdown()
    try:
        config = agent_otel.setup(
            "svc", store=False, instrument=False, config={"exporter": {"probe_local": False}}
        )
        assert config.get("logging.events.capture_content") is captured
    finally:
        agent_otel.shutdown()


def test_a_zero_budget_in_the_config_says_how_to_write_no_limit():
    # `max_steps: 0` is how many tools spell "unlimited"; here it would stop every run at its first step.
    with pytest.raises(ConfigError) as info:
        load({"guards": {"budget": {"max_steps": 0}}}, env={})
    assert str(info.value).endswith("must be at least 1; got 0; leave it unset (or null) for no limit")
    assert load({"guards": {"budget": {"max_steps": None}}}, env={}).get("guards.budget.max_steps") is None
