"""The configuration: one schema, four sources, and a record of which source won for every value.

Precedence, highest first: keyword arguments to ``setup()`` (or a ``config=`` mapping), environment
variables (the standard ``OTEL_*`` ones and ``AGENT_OTEL_*``), the YAML file named by
``AGENT_OTEL_CONFIG`` (or ``config=`` path), then the defaults. The defaults *are* the seed's "safe
default config", so that file loads unchanged and changes nothing.

Unknown keys and wrong types raise :class:`ConfigError` naming the dotted key and the source, because a
typo in a privacy setting (``store_arg: false``) must not silently fall back to a default.

``agent_otel.config.effective()`` returns the configuration in force; ``Config.source(key)`` says where a
value came from, which ``agent-otel doctor`` prints.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CONFIG_ENV = "AGENT_OTEL_CONFIG"

SOURCE_DEFAULT = "default"
SOURCE_ARGUMENT = "argument"


class ConfigError(ValueError):
    """A configuration value is unknown or has the wrong type; the message names the key."""


@dataclass(frozen=True, slots=True)
class Field:
    type: type | tuple[type, ...]
    default: Any
    doc: str
    env: tuple[str, ...] = ()
    env_parse: Callable[[str], Any] | None = None
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    item_choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None  # for waits: beyond it, timers overflow (1e308 s stops metric export)
    check: Callable[[Any], str | None] | None = None  # what is wrong with a value (ends the error), or None


@dataclass(frozen=True, slots=True)
class MapOf:
    """A section whose keys are free (model names in ``prices``); each value follows ``schema``."""

    schema: dict[str, Field]
    doc: str


EVENT_FIELDS = (
    "run_id",
    "kind",
    "ts_ms",
    "step_id",
    "tool",
    "args_sha",
    "result_sha",
    "duration_ms",
    "status",
    "error",
    "stop_reason",
    "usage",
    "trace_id",
    "span_id",
    "agent",
)
TRACKED_METRICS = ("tokens_per_request", "tool_calls_per_run", "latency_p95", "spend_per_run", "stop_reason")


def _env_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


# The modes opentelemetry-util-genai (the GenAI instrumentations') reads from the same variable besides
# true/false: content on spans or not. EVENT_ONLY puts it in log events only, and agent-otel writes none.
_CAPTURE_MODES = {"no_content": False, "event_only": False, "span_only": True, "span_and_event": True}


def _env_capture(value: str) -> bool:
    mode = _CAPTURE_MODES.get(value.strip().lower())
    return _env_bool(value) if mode is None else mode


def _env_store(value: str) -> Any:
    # An empty AGENT_OTEL_STORE is kept as it is, for _check_store to refuse: it switched the store off
    # without a word (a `AGENT_OTEL_STORE=$STORE` whose variable was unset lost every run).
    return False if value.strip().lower() in ("false", "off", "none", "0") else value


def _env_ms_to_s(value: str) -> float:
    return float(value) / 1000.0


# Waits longer than this are not a configuration anyone means, and the timers behind them overflow.
_MAX_WAIT_S = 86_400.0
STORE_SCHEMES = ("postgresql://", "postgres://")
COMPRESSIONS = ("gzip", "deflate", "none")
COMPRESSION_ENV = (
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
)


def _check_endpoint(value: str) -> str | None:
    """A URL the exporters can use: ``host:port`` or ``scheme://host:port[/path]``, port in range."""
    try:
        parts = urlsplit(value if "://" in value else f"http://{value}")
        port = parts.port
    except ValueError as exc:  # an unclosed [IPv6 bracket, a port of 99999 or "abc"
        return f"is not a valid URL ({exc}): {masked_url(value)!r}"
    if not parts.hostname or port == 0:
        return f"needs a host and a port from 1 to 65535: {masked_url(value)!r}"
    if parts.scheme.lower() not in ("http", "https"):  # `htps://`, `grpc://` were sent as plain gRPC
        scheme = f"{parts.scheme}://"
        return f"has the scheme {scheme!r}; OTLP endpoints are http:// or https://: {masked_url(value)!r}"
    return None


def masked_url(url: str) -> str:
    """``url`` without its user info (which may hold a password), for an error message or a log line."""
    return re.sub(r"//[^/@]*@", "//***@", url)


# ``host=db dbname=agents password=...``: libpq's other connection-string form, keyword first.
_LIBPQ_KEYWORDS = re.compile(
    r"(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|connect_timeout)\s*=\s*\S"
)


def _check_store(value: Any) -> str | None:
    """A SQLite path or a postgresql:// URL: any other URL scheme would become a relative directory."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:  # `--store ''`, `AGENT_OTEL_STORE=`: the default store (or none) was used without a word
        return (
            "is empty; give a SQLite path, a postgresql:// URL or false, "
            "or leave it unset for $AGENT_OTEL_HOME/agent-otel.db"
        )
    scheme, sep, _ = text.partition("://")
    if not sep and _LIBPQ_KEYWORDS.match(text):  # (the value is not echoed: it may hold a password)
        return (
            "is a libpq keyword/value connection string, which would become a SQLite file of that name; "
            "give the PostgreSQL store as a URL: postgresql://user:password@host:5432/dbname"
        )
    if not sep or text.lower().startswith(STORE_SCHEMES):
        return None
    if scheme.lower() == "sqlite":
        return "is a sqlite:// URL; give the SQLite file's path itself (such as ~/.agent-otel/agent-otel.db)"
    return f"has the unknown scheme {scheme + '://'!r}; use a SQLite file path or a postgresql:// URL"


SCHEMA: dict[str, Any] = {
    "service": {
        "name": Field(
            str,
            None,
            "service.name of the resource (OTel default: unknown_service).",
            env=("OTEL_SERVICE_NAME",),
            nullable=True,
        ),
        "version": Field(
            str, None, "service.version of the resource.", env=("AGENT_OTEL_SERVICE_VERSION",), nullable=True
        ),
        "environment": Field(
            str,
            None,
            "deployment.environment.name of the resource.",
            env=("AGENT_OTEL_ENVIRONMENT",),
            nullable=True,
        ),
    },
    "exporter": {
        "endpoint": Field(
            str,
            None,
            "OTLP endpoint; unset means probe localhost:4317/4318 once.",
            # A metrics-only URL, the last resort: spans then go to the same host (see sdk._signal_endpoint)
            env=(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            ),
            nullable=True,
            check=_check_endpoint,
        ),
        "protocol": Field(
            str,
            None,
            "grpc (needs the grpc extra) or http/protobuf. Unset: http/protobuf for port 4318, grpc "
            "for 4317, else grpc if the grpc extra is installed, http/protobuf if not.",
            env=("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
            nullable=True,
            choices=("grpc", "http/protobuf"),
        ),
        "probe_local": Field(
            bool,
            True,
            "Without an endpoint, check once whether a local collector answers.",
            env=("AGENT_OTEL_PROBE_LOCAL",),
            env_parse=_env_bool,
        ),
        "timeout_s": Field(
            float, 5.0, "Timeout of one OTLP export request.", minimum=0.1, maximum=_MAX_WAIT_S
        ),
        "shutdown_timeout_s": Field(
            float, 1.0, "Upper bound on shutdown()/flush at exit.", minimum=0.0, maximum=_MAX_WAIT_S
        ),
        "schedule_delay_s": Field(
            float, 1.0, "How often queued spans are exported.", minimum=0.01, maximum=_MAX_WAIT_S
        ),
        "max_queue": Field(
            int, 8192, "Spans held for export; beyond this the oldest are dropped (counted).", minimum=1
        ),
        "batch_size": Field(int, 512, "Spans per export request.", minimum=1),
        "retry_buffer_mb": Field(
            float,
            32.0,
            "Spans kept while the collector is down or slow, in MiB: failed batches as encoded OTLP "
            "requests, and spans waiting for the exporter thread beyond two batches; beyond this spans "
            "are dropped (counted).",
            minimum=0.0,
        ),
        "max_request_mb": Field(
            float,
            4.0,
            "Largest OTLP span request, in MiB (encoded); larger batches are split. Metric requests carry "
            "at most 512 data points per MiB (2,048 at 4 MiB). The collector's gRPC receiver refuses more "
            "than 4 MiB unless configured otherwise.",
            minimum=0.001,
        ),
        "handle_sigterm": Field(
            bool,
            True,
            "Without a SIGTERM handler of the application's, install one that flushes (within "
            "shutdown_timeout_s) and then terminates by SIGTERM as before.",
            env=("AGENT_OTEL_HANDLE_SIGTERM",),
            env_parse=_env_bool,
        ),
        "metric_interval_s": Field(
            float,
            10.0,
            "Metric export interval.",
            env=("OTEL_METRIC_EXPORT_INTERVAL",),
            env_parse=_env_ms_to_s,
            minimum=0.1,
            maximum=_MAX_WAIT_S,
        ),
    },
    "logging": {
        "events": {
            "enabled": Field(
                bool, True, "Write unified events to the sink and the run store (metrics are unaffected)."
            ),
            "schema": Field(str, "unified", "Event schema; only 'unified' exists.", choices=("unified",)),
            "store_args": Field(
                bool, False, "Attach raw args/results, redacted and truncated. Off by default."
            ),
            "store_args_hash": Field(
                bool,
                True,
                "Put args_sha/result_sha (and the run's input_sha) on spans and into sink events; the "
                "run store keeps them either way.",
            ),
            "capture_content": Field(
                bool,
                False,
                "Record prompts and completions on chat spans (gen_ai.input.messages / "
                "gen_ai.output.messages), redacted and truncated like store_args. Off by default.",
                env=("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",),
                env_parse=_env_capture,
            ),
            "include": Field(
                list,
                ["run_id", "step_id", "tool", "duration_ms", "status", "error", "stop_reason"],
                "Event fields written to the sink (kind, ts_ms, trace_id, span_id, agent are "
                "always written).",
                item_choices=EVENT_FIELDS,
            ),
            "sink": Field(
                str,
                None,
                "JSON-lines sink: a file path, 'stdout' or 'stderr'; unset means none.",
                env=("AGENT_OTEL_EVENTS",),
                nullable=True,
            ),
            "queue_mb": Field(
                float,
                32.0,
                "Memory bound of the queue of events, run rows and snapshots on their way to the store and "
                "sinks, in MiB; beyond it (or 16,384 records) the oldest are dropped (counted).",
                minimum=0.001,
            ),
        },
    },
    "metrics": {
        "track": Field(
            list, list(TRACKED_METRICS), "Run-level metrics to record.", item_choices=TRACKED_METRICS
        ),
        "tools": Field(bool, True, "Record per-tool metrics (duration, invocations, retries)."),
    },
    "retention": {
        "tool_snapshot_days": Field(int, 14, "Days tool-result snapshots are kept.", minimum=0),
        "logs_days": Field(int, 30, "Days runs and events are kept in the local store.", minimum=0),
    },
    "redaction": {
        "keys": Field(
            list,
            None,
            "Key names whose values are masked (matched by name segment); unset means the built-in list.",
            nullable=True,
        ),
        "patterns": Field(list, [], "Extra regular expressions to mask in string values."),
        "max_chars": Field(
            int,
            4096,
            "Cut each args/result to this size before it is redacted; spans, events and the store "
            "get no more.",
            minimum=16,
        ),
        "stacktrace": Field(
            str,
            "redacted",
            "Stack traces of recorded exceptions: redacted, off, or raw (unredacted, opt-in). Exception "
            "messages are always redacted.",
            choices=("redacted", "off", "raw"),
        ),
        "library_content": Field(
            str,
            "redacted",
            "Prompts, answers, tool arguments/results and exception text that other libraries (with their "
            "own content capture on) put on their spans: redacted on export, or raw (opt-in).",
            choices=("redacted", "raw"),
        ),
    },
    "prices": MapOf(
        {
            "input": Field(float, 0.0, "USD per million input tokens.", minimum=0.0),
            "output": Field(float, 0.0, "USD per million output tokens.", minimum=0.0),
            # Optional because most users only know the list price; the fallback over-reports spend
            # for cached prompts rather than under-reporting it.
            "cached_input": Field(
                float,
                None,
                "USD per million input tokens read from the prompt cache; unset means the input price.",
                nullable=True,
                minimum=0.0,
            ),
            "cache_write": Field(
                float,
                None,
                "USD per million input tokens written to the prompt cache; unset means the input price.",
                nullable=True,
                minimum=0.0,
            ),
        },
        "Per-model prices, merged over the built-in table.",
    ),
    "guards": {
        "budget": {
            "max_steps": Field(
                int,
                None,
                "Steps (tool + LLM calls) per run, its sub-agents' included; stop reason max_steps.",
                nullable=True,
                minimum=1,
            ),
            "max_tool_calls": Field(
                int,
                None,
                "Tool calls per run, its sub-agents' included; budget_exceeded.",
                nullable=True,
                minimum=1,
            ),
            "max_tokens": Field(
                int,
                None,
                "Input + output tokens per run, its sub-agents' included; budget_exceeded.",
                nullable=True,
                minimum=1,
            ),
            "max_cost_usd": Field(
                float,
                None,
                "Spend per run in USD, its sub-agents' included; budget_exceeded.",
                nullable=True,
                minimum=0.0,
            ),
            "max_duration_s": Field(
                float,
                None,
                "Run deadline in seconds (its sub-agents' too); timeout.",
                nullable=True,
                minimum=0.0,
            ),
            "max_retries": Field(
                int,
                None,
                "Tool retries per run, its sub-agents' included (stops retry storms); budget_exceeded.",
                nullable=True,
                minimum=0,
            ),
        },
        "loop": {
            "enabled": Field(bool, True, "Stop runs that repeat a tool call (loop_detected)."),
            "max_repeats": Field(
                int,
                3,
                "Identical calls (tool + args hash) allowed within the window; the next one stops the run.",
                minimum=1,
            ),
            "window": Field(int, 10, "Tool calls looked back over.", minimum=2),
            "ping_pong_cycles": Field(
                int, 2, "A-B-A-B cycles allowed before the next A stops the run; 0 disables.", minimum=0
            ),
        },
        "tool_timeout_s": Field(
            float,
            None,
            "Default timeout for every tool call (per-tool timeout_s wins; 0 = no deadline).",
            nullable=True,
            minimum=0.0,
            maximum=_MAX_WAIT_S,
        ),
        "policy": {
            "on_deny": Field(
                str,
                "stop",
                "stop: a denied call ends the run (policy_denied); raise: it raises "
                "agent_otel.ToolDenied, which the agent may catch.",
                choices=("stop", "raise"),
            ),
            "allow": Field(dict, {}, "Agent name (or '*') -> tool name patterns allowed; others are denied."),
            "deny": Field(dict, {}, "Agent name (or '*') -> tool name patterns denied."),
        },
        "kill_switch": {
            "env": Field(
                str, "AGENT_OTEL_KILL_SWITCH", "Environment variable holding the kill switch.", nullable=True
            ),
            "file": Field(
                str,
                None,
                "Flag file: present means engaged; its lines give the scope.",
                env=("AGENT_OTEL_KILL_SWITCH_FILE",),
                nullable=True,
            ),
            "check_interval_s": Field(
                float, 0.25, "How often the flag file is re-read.", minimum=0.0, maximum=_MAX_WAIT_S
            ),
        },
    },
    "replay": {
        "record": Field(
            bool,
            True,
            "Record tool-result snapshots (and each run's input) in the local run store, for replay. "
            "Only with a local store; snapshots never leave the process over OTLP.",
            env=("AGENT_OTEL_REPLAY_RECORD",),
            env_parse=_env_bool,
        ),
        "exclude": Field(
            list,
            [],
            "Tool name patterns (fnmatch) whose results are not recorded; a replay cannot serve their calls.",
        ),
        "max_result_mb": Field(
            float,
            16.0,
            "Results (and inputs) larger than this as JSON, in MiB, are not recorded (counted, warned once).",
            minimum=0.0,
        ),
        "key_env": Field(
            str,
            "AGENT_OTEL_SNAPSHOT_KEY",
            "Environment variable holding the Fernet key(s) that encrypt snapshots at rest (comma-"
            "separated: the first encrypts, all decrypt). Unset variable: snapshots are stored unencrypted.",
        ),
        "require_encryption": Field(
            bool, False, "Record no snapshots unless they can be encrypted (key set, crypto extra installed)."
        ),
    },
    "links": {
        "grafana_url": Field(
            str,
            None,
            "Base URL of the Grafana that shows these traces (http://localhost:3000 for the bundled stack); "
            "`agent-otel show` then prints a link to the run's trace. Unset: no link.",
            env=("AGENT_OTEL_GRAFANA_URL",),
            nullable=True,
        ),
        "tempo_datasource": Field(
            str, "tempo", "uid of the Tempo datasource in that Grafana (the bundled stack's is tempo)."
        ),
    },
    "store": Field(
        (str, bool),
        None,
        "Local run store: a SQLite path, a postgresql:// URL, or false. "
        "Unset means $AGENT_OTEL_HOME/agent-otel.db; empty is an error.",
        env=("AGENT_OTEL_STORE",),
        env_parse=_env_store,
        nullable=True,
        check=_check_store,
    ),
}


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    names = {str: "string", bool: "boolean", int: "integer", float: "number", list: "list", dict: "mapping"}
    return names.get(t, t.__name__)


def _check(key: str, field: Field, value: Any, source: str) -> Any:
    where = f"agent-otel config key '{key}' (from {source})"
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{where} must not be null")
    allowed = field.type if isinstance(field.type, tuple) else (field.type,)
    original = value  # the error names what the user wrote, not a half-converted value
    ok = False
    for t in allowed:
        if t is bool:
            ok = isinstance(value, bool)
        elif t in (int, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and t is int and isinstance(value, float):
                ok = value.is_integer()
                if ok:
                    value = int(value)
            if ok and t is float:
                value = float(value)
        else:
            ok = isinstance(value, t)
        if ok:
            break
    if not ok:
        expected = _type_name(field.type)
        article = "an" if expected[0] in "aeiou" else "a"
        raise ConfigError(f"{where} must be {article} {expected}, got {type(original).__name__} {original!r}")
    if field.choices is not None and value not in field.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, field.choices))}; got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number; got {original!r}")
    if field.minimum is not None and isinstance(value, int | float) and value < field.minimum:
        # 0 is a common spelling of "no limit" elsewhere; here it would stop every run, so say how.
        hint = "; leave it unset (or null) for no limit" if field.nullable and value == 0 else ""
        raise ConfigError(f"{where} must be at least {field.minimum}; got {value!r}{hint}")
    if field.maximum is not None and isinstance(value, int | float) and value > field.maximum:
        raise ConfigError(f"{where} must be at most {field.maximum:g}; got {value!r}")
    if field.check is not None and (problem := field.check(value)) is not None:
        raise ConfigError(f"{where} {problem}")
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(f"{where} must be a list of strings; got item {item!r}")
            if field.item_choices is not None and item not in field.item_choices:
                raise ConfigError(
                    f"{where} has unknown item {item!r}; valid items: {', '.join(field.item_choices)}"
                )
        value = list(value)
    if isinstance(value, dict):
        for name, item in value.items():
            items = [item] if isinstance(item, str) else item
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ConfigError(
                    f"agent-otel config key '{key}.{name}' (from {source}) must be a list of strings"
                )
        value = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in value.items()}
    if isinstance(value, dict):
        for name, item in value.items():
            items = [item] if isinstance(item, str) else item
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise ConfigError(
                    f"agent-otel config key '{key}.{name}' (from {source}) must be a list of strings"
                )
        value = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in value.items()}
    if key == "store" and value is True:
        raise ConfigError(f"{where} must be a path, a postgresql:// URL or false; got true")
    return value


def _unknown(key: str, known: Mapping[str, Any], source: str) -> ConfigError:
    import difflib

    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys here: {', '.join(known)}"
    return ConfigError(f"agent-otel config: unknown key '{key}' (from {source}){hint}")


def _defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in schema.items():
        if isinstance(spec, Field):
            out[name] = spec.default.copy() if isinstance(spec.default, list | dict) else spec.default
        elif isinstance(spec, MapOf):
            out[name] = {}
        else:
            out[name] = _defaults(spec)
    return out


def _merge(
    schema: Mapping[str, Any],
    target: dict[str, Any],
    data: Any,
    source: str,
    prefix: str,
    sources: dict[str, str],
) -> None:
    if not isinstance(data, Mapping):
        where = f"key '{prefix}'" if prefix else "the top level"
        raise ConfigError(
            f"agent-otel config: {where} (from {source}) must be a mapping, got {type(data).__name__}"
        )
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        spec = schema.get(name) if isinstance(name, str) else None
        if spec is None:
            raise _unknown(key, schema, source)
        if isinstance(spec, Field):
            target[name] = _check(key, spec, value, source)
            sources[key] = source
        elif isinstance(spec, MapOf):
            if not isinstance(value, Mapping):
                raise ConfigError(f"agent-otel config key '{key}' (from {source}) must be a mapping")
            section = target.setdefault(name, {})
            for entry, entry_value in value.items():
                entry_key = f"{key}.{entry}"
                merged = dict(section.get(entry) or _defaults(spec.schema))
                _merge(spec.schema, merged, entry_value, source, entry_key, sources)
                section[str(entry)] = merged
                sources[entry_key] = source
        else:
            _merge(spec, target.setdefault(name, {}), value, source, key, sources)


def _from_env(
    schema: Mapping[str, Any], env: Mapping[str, str], prefix: str = ""
) -> list[tuple[str, Any, str]]:
    found: list[tuple[str, Any, str]] = []
    for name, spec in schema.items():
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(spec, Field):
            for var in spec.env:
                raw = env.get(var)
                if raw is None or (raw.strip() == "" and spec.env_parse is None):
                    continue
                try:
                    value = spec.env_parse(raw) if spec.env_parse else raw.strip()
                except ValueError as exc:
                    raise ConfigError(f"agent-otel config key '{key}' (from env:{var}): {exc}") from None
                found.append((key, value, f"env:{var}"))
                break
        elif isinstance(spec, dict):
            found.extend(_from_env(spec, env, key))
    return found


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


class Config:
    """An immutable, validated configuration plus the source of every explicitly set value."""

    __slots__ = ("_data", "_sources", "path")

    def __init__(self, data: dict[str, Any], sources: dict[str, str], path: str | None) -> None:
        self._data = data
        self._sources = sources
        self.path = path

    def get(self, key: str) -> Any:
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def source(self, key: str) -> str:
        """Where ``key`` came from: ``argument``, ``env:VAR``, ``file:PATH`` or ``default``."""
        parts = key.split(".")
        for i in range(len(parts), 0, -1):
            found = self._sources.get(".".join(parts[:i]))
            if found:
                return found
        return SOURCE_DEFAULT

    def as_dict(self) -> dict[str, Any]:
        import copy

        return copy.deepcopy(self._data)

    def items(self) -> list[tuple[str, Any, str]]:
        """Every leaf as (dotted key, value, source), in schema order; what ``doctor`` prints."""
        rows: list[tuple[str, Any, str]] = []

        def walk(node: Mapping[str, Any], schema: Mapping[str, Any], prefix: str) -> None:
            for name, spec in schema.items():
                key = f"{prefix}.{name}" if prefix else name
                value = node.get(name)
                if isinstance(spec, Field):
                    rows.append((key, value, self.source(key)))
                elif isinstance(spec, MapOf):
                    if not value:
                        rows.append((key, {}, self.source(key)))
                    for entry, entry_value in (value or {}).items():
                        walk(entry_value, spec.schema, f"{key}.{entry}")
                else:
                    walk(value or {}, spec, key)

        walk(self._data, SCHEMA, "")
        return rows

    def __repr__(self) -> str:
        return f"Config(path={self.path!r}, data={self._data!r})"


def load(
    overrides: Mapping[str, Any] | None = None,
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration; raises ConfigError with the offending key on bad input.

    ``overrides`` may use nested mappings or dotted keys (``{"exporter.endpoint": ...}``).
    """
    env = os.environ if env is None else env
    data = _defaults(SCHEMA)
    sources: dict[str, str] = {}
    file_path = path if path is not None else env.get(CONFIG_ENV) or None
    if file_path is not None:
        try:
            file_path = os.fspath(file_path)
        except TypeError:
            raise ConfigError(
                f"agent-otel config must be a YAML file path or a mapping, got {type(file_path).__name__}"
            ) from None
        data_file = _read_yaml(file_path)
        if data_file is not None:
            _merge(SCHEMA, data, data_file, f"file:{file_path}", "", sources)
    for key, value, source in _from_env(SCHEMA, env):
        _merge(SCHEMA, data, _nest(key, value), source, "", sources)
    _check_compression(env)
    if overrides:
        for name, value in overrides.items():
            nested = _nest(name, value) if isinstance(name, str) and "." in name else {name: value}
            _merge(SCHEMA, data, nested, SOURCE_ARGUMENT, "", sources)
    return Config(data, sources, file_path)


def _check_compression(env: Mapping[str, str]) -> None:
    """The OTLP exporters read these themselves, and raise their own exception (or only log) on a bad
    value; say it here, where every other configuration error is said."""
    for var in COMPRESSION_ENV:
        value = env.get(var)
        if value is not None and value.strip().lower() not in (*COMPRESSIONS, ""):
            raise ConfigError(
                f"agent-otel config: env:{var} must be one of {', '.join(COMPRESSIONS)}; got {value!r}"
            )


def compression(env: Mapping[str, str], signal: str) -> str | None:
    """The OTLP compression for ``signal`` (``traces``/``metrics``) from the environment, or None."""
    for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
        value = (env.get(var) or "").strip().lower()
        if value:
            return value
    return None


def _read_yaml(path: str) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"agent-otel config file {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"agent-otel config file {path} is not UTF-8 text (byte {exc.start}); is it the YAML file?"
        ) from None
    try:
        return yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"agent-otel config file {path} is not valid YAML: {_yaml_problem(exc)}") from None


def _unique_key_loader() -> Any:
    """PyYAML's SafeLoader, refusing a key given twice in one mapping.

    PyYAML keeps the last of two equal keys without a word: a second ``redaction:`` section further down
    a long file silently replaced the first, its ``keys`` and ``patterns`` gone, and a second
    ``logs_days`` in one mapping decided what gc deletes. A key a merge (``<<: *base``) brings in may still
    be overridden, as YAML means it to be."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the constructor says so itself
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"the key {key!r} is given twice (first at line {first})",
                            key_node.start_mark,
                        )
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's multi-line message as one line: where, what, and what it was parsing."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        text += f" ({context}" + (f" at line {context_mark.line + 1}" if context_mark else "") + ")"
    return text


_lock = threading.Lock()
_effective: Config | None = None


def effective() -> Config:
    """The configuration in force: the one ``setup()`` built, else one loaded from env and file now."""
    global _effective
    with _lock:
        if _effective is None:
            _effective = load()
        return _effective


def set_effective(config: Config | None) -> None:
    global _effective
    with _lock:
        _effective = config
