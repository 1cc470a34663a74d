"""The README tells the truth about names users depend on: every config key, metric and stop reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import agent_otel
from agent_otel import conventions as c
from agent_otel.config import ConfigError, load
from tests import readme_samples
from tests.test_setup import clean  # noqa: F401 (the fixture)

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_config_key_is_documented():
    for key, _, _ in load(env={}).items():
        if key.startswith("prices"):
            continue
        assert f"`{key}`" in README, key
    assert "`prices.<model>.input`" in README


def test_every_metric_and_stop_reason_is_documented():
    for spec in c.METRICS:
        assert f"`{spec.prometheus}" in README, spec.prometheus
    for reason in agent_otel.StopReason:
        assert f"| {reason.value} |" in README, reason


def test_every_public_name_is_documented():
    for name in agent_otel.__all__:
        if not name.startswith("_"):
            assert f"`{name}" in README, name


def test_the_documented_price_table_is_the_builtin_one():
    """The README's price table is what users check their bills against, so it must not drift."""
    from agent_otel.pricing import BUILTIN_PRICES

    rows = {}
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].strip("`") in BUILTIN_PRICES and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = tuple(float(cell) for cell in cells[1:])
    assert rows == {model: tuple(price) for model, price in BUILTIN_PRICES.items()}


def _config_table() -> list[list[str]]:
    """The rows of Configuration's "Every key" table, as cells."""
    section = README.split("Every key:", 1)[1].split("\nNotes:", 1)[0]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def _fields() -> dict[str, Any]:
    """Every key of the config schema (``prices.<model>.*`` as the README writes it) -> its Field."""
    from agent_otel import config as cfg

    def walk(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
        for name, spec in schema.items():
            key = f"{prefix}.{name}" if prefix else name
            if isinstance(spec, cfg.Field):
                yield key, spec
            elif isinstance(spec, cfg.MapOf):
                yield from walk(spec.schema, key + ".<model>")
            else:
                yield from walk(spec, key)

    return dict(walk(cfg.SCHEMA, ""))


def test_the_configuration_table_states_each_keys_real_default():
    """A user reads the default off the table: it is what load() gives with no file and no environment."""
    defaults = load(env={})
    fields = _fields()
    seen = set()
    for key_cell, default, _, _ in _config_table():
        for key in re.findall(r"`([^`]+)`", key_cell):
            seen.add(key)
            assert key in fields, f"the README documents {key!r}, which is no config key"
            if "<model>" in key:
                continue  # a default taken from the price table (tests/test_pricing.py)
            expected = None if default == "unset" else yaml.safe_load(default.strip("`"))
            assert defaults.get(key) == expected, (key, default, defaults.get(key))
    assert seen == set(fields)


# A value each documented variable may hold, different from the key's default.
ENV_SAMPLES = {
    "OTEL_SERVICE_NAME": ("svc", "svc"),
    "AGENT_OTEL_SERVICE_VERSION": ("1.2", "1.2"),
    "AGENT_OTEL_ENVIRONMENT": ("staging", "staging"),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("http://127.0.0.1:4318/v1/traces", None),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("http://127.0.0.1:4318", "http://127.0.0.1:4318"),
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": ("http://127.0.0.1:4318/v1/metrics", None),
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": ("http/protobuf", "http/protobuf"),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("http/protobuf", "http/protobuf"),
    "AGENT_OTEL_PROBE_LOCAL": ("false", False),
    "AGENT_OTEL_HANDLE_SIGTERM": ("false", False),
    "OTEL_METRIC_EXPORT_INTERVAL": ("2500", 2.5),  # milliseconds, as the spec says
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": ("true", True),
    "AGENT_OTEL_EVENTS": ("stderr", "stderr"),
    "AGENT_OTEL_KILL_SWITCH_FILE": ("/tmp/kill", "/tmp/kill"),
    "AGENT_OTEL_REPLAY_RECORD": ("false", False),
    "AGENT_OTEL_GRAFANA_URL": ("http://localhost:3000", "http://localhost:3000"),
    "AGENT_OTEL_STORE": ("false", False),
}


def test_each_variable_of_the_configuration_table_sets_its_key():
    """The "environment" column: each variable named there sets that key, and says so as its source."""
    for key_cell, _, env_cell, _ in _config_table():
        variables = re.findall(r"`([A-Z_]+)`", env_cell)
        for key in re.findall(r"`([^`]+)`", key_cell):
            assert tuple(variables) == _fields()[key].env, key
            for var in variables:
                raw, expected = ENV_SAMPLES[var]
                got = load(env={var: raw})
                assert got.source(key) == f"env:{var}", (key, var)
                if expected is not None:
                    assert got.get(key) == expected, (key, var, got.get(key))


def test_the_environment_table_names_the_keys_its_variables_set():
    """A row "`VAR` | `key`..." of Environment variables: VAR sets key (the Configuration table agrees)."""
    section = README.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    by_var = {var: key for key, field in _fields().items() for var in field.env}
    checked = 0
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        keys = [k for k in re.findall(r"`([a-z_.]+)`", cells[1]) if k in _fields()]
        if len(names) == 1 and names[0] in by_var:
            assert keys and keys[0] == by_var[names[0]], line
            checked += 1
    assert checked >= 10


def test_every_yaml_example_in_the_readme_loads(tmp_path):
    """Each ```yaml block is a config file a user may copy: it loads with no ConfigError."""
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    assert len(blocks) >= 3
    for n, block in enumerate(blocks):
        path = tmp_path / f"example{n}.yaml"
        path.write_text(block)
        config = load(path=str(path), env={})
        assert config.path == str(path)


def test_the_documented_unknown_key_error_is_the_one_users_get(tmp_path):
    said = re.search(
        r"naming the dotted key and its source\n\(`(agent-otel config: unknown key .*?)`\)", README, re.S
    )
    assert said, "the Configuration section quotes the error of a misspelled key"
    path = tmp_path / "agent.yaml"
    path.write_text("logging:\n  events:\n    store_arg: true\n")
    with pytest.raises(ConfigError) as err:
        load(path=str(path), env={})
    documented = " ".join(said.group(1).split()).replace("/etc/agent.yaml", str(path))
    assert str(err.value) == documented


def test_readme_links_to_its_own_sections_resolve():
    """Every ``](#anchor)`` is a heading's GitHub anchor (lower case, punctuation dropped, spaces to -)."""
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", prose, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in anchors else slug + "-1")
    links = re.findall(r"\]\(#([^)]+)\)", prose)
    assert links and not [link for link in links if link not in anchors]


# What the Quickstart leaves to the user ("your model call", a mailer, a CRM), as the smallest stand-ins.
_QUICKSTART_STUBS = """
from types import SimpleNamespace


class mailer:
    send = staticmethod(lambda to, body: f"sent to {to}")


class crm:
    lookup = staticmethod(lambda customer_id: {"id": customer_id, "email": "alex@example.com"})


class llm:  # your model call
    @staticmethod
    def complete(ticket, customer):
        return SimpleNamespace(text="Hi", input_tokens=120, output_tokens=30)


print("RESULT", handle({"customer_id": "C-1"}))
agent_otel.shutdown()
"""


def _span_attributes_table() -> dict[str, set[str]]:
    """Spans and attributes' table: attribute -> the spans it is documented on (run, tool, llm)."""
    section = README.split("\n## Spans and attributes\n", 1)[1].split("| attribute | on | value |", 1)[1]
    table = section.split("\n\n", 1)[0].splitlines()[2:]
    out: dict[str, set[str]] = {}
    for line in table:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        where = re.sub(r"\(.*?\)", "", cells[1])  # "run (model also on llm)": said below
        on = (
            {"run", "tool", "llm"}
            if where.strip() == "all"
            else set(re.findall(r"\b(run|tool|llm)\b", where))
        )
        prefix = ""
        for key in re.findall(r"`([a-z_.]+)`", cells[0]):
            if key.startswith("."):  # `gen_ai.request.temperature`, `.max_tokens`: the first one's prefix
                key = prefix + key
            else:
                prefix = key.rsplit(".", 1)[0]
            out[key] = on
    if "| run (model also on llm) |" in README:
        out["gen_ai.request.model"] = {"run", "llm"}
    return out


def _json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON documents the SDK's console exporters print one after another."""
    decoder, out, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = text.find("{", end)
    return out


def _run_quickstart(tmp_path: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    """The Quickstart pasted into a file (its placeholders filled in) and run by a user with a fresh $HOME."""
    block = README.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    program = tmp_path / "quickstart.py"
    program.write_text(block + _QUICKSTART_STUBS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env.update(HOME=str(tmp_path / "home"), AGENT_OTEL_PROBE_LOCAL="false", **env_vars)
    proc = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_the_quickstart_program_gives_what_the_readme_lists(tmp_path):
    """The Quickstart run: the trace, the metrics and the stored events are the ones "What you get for each
    call of `handle`" lists."""
    proc = _run_quickstart(
        tmp_path,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        AGENT_OTEL_EVENTS=str(tmp_path / "events.jsonl"),
    )
    assert "RESULT sent to alex@example.com" in proc.stdout
    documents = _json_objects(proc.stdout.split("RESULT", 1)[1])
    spans = [d for d in documents if "name" in d and "context" in d]
    [root] = [s for s in spans if s["name"] == "invoke_agent support-agent"]
    children = sorted((s for s in spans if s is not root), key=lambda s: s["attributes"]["agent.step_id"])
    assert [s["name"] for s in children] == [
        "execute_tool crm.lookup",
        "chat gpt-4o",
        "execute_tool send_email",
    ]
    run_id = root["attributes"]["agent.run_id"]
    for step, span in enumerate(children, 1):
        assert span["parent_id"] == root["context"]["span_id"]
        assert span["attributes"]["agent.run_id"] == run_id and span["attributes"]["agent.step_id"] == step
    for tool in (children[0], children[2]):
        assert {"agent.tool.args_sha", "agent.tool.result_sha"} <= set(tool["attributes"])
        assert tool["attributes"]["agent.tool.status"] == "ok"
    attrs = root["attributes"]
    assert (attrs["agent.prompt_version"], attrs["agent.tools_version"], attrs["gen_ai.request.model"]) == (
        "v12",
        "3",
        "gpt-4o",
    )
    assert attrs["agent.stop_reason"] == "completed" and attrs["agent.usage.input_tokens"] == 120
    assert attrs["agent.cost_usd"] > 0

    documented = _span_attributes_table()
    for span in (root, *children):
        kind = {"invoke_agent": "run", "execute_tool": "tool", "chat": "llm"}[span["name"].split()[0]]
        undocumented = [key for key in span["attributes"] if kind not in documented.get(key, ())]
        assert not undocumented, (span["name"], undocumented)

    [stop] = [e for e in root["events"] if e["name"] == "agent.stop"]  # "exactly one", with these fields
    assert stop["attributes"]["agent.stop_reason"] == "completed"
    assert set(stop["attributes"]) <= {"agent.stop_reason", "stop_class", "detail"}, stop

    metrics = {
        m["name"]: m["data"]["data_points"]
        for d in documents
        for rm in d.get("resource_metrics", [])
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    }
    specs = {spec.name: spec for spec in c.METRICS}
    units = {
        m["name"]: m["unit"]
        for d in documents
        for rm in d.get("resource_metrics", [])
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
    }
    for name, points in metrics.items():  # the Metrics table's units and labels (test_the_metrics_table_...)
        assert units[name] == specs[name].unit, name
        for point in points:
            assert set(point["attributes"]) <= set(specs[name].labels), (name, point["attributes"])
            if name.startswith("agent."):  # the GenAI metrics leave out a label whose value is unknown
                assert set(point["attributes"]) == set(specs[name].labels), (name, point["attributes"])
    stops = {p["attributes"]["stop_reason"]: p["value"] for p in metrics["agent.stop"]}
    assert stops["completed"] == 1 and sum(stops.values()) == 1
    for histogram in (
        "agent.run.latency_ms",
        "agent.tool_calls",
        "agent.tokens_per_request",
        "agent.spend_per_run_usd",
    ):
        exemplars = [e for p in metrics[histogram] for e in p.get("exemplars", [])]
        trace_id = int(root["context"]["trace_id"], 16)
        assert exemplars and {e["trace_id"] for e in exemplars} == {trace_id}, histogram

    # Unified events: the sink's lines have the fields, in the order, of the README's example lines.
    sunk = {}
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        sunk.setdefault(json.loads(line)["kind"], list(json.loads(line)))
    example = README.split("\n## Unified events\n", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    for line in example.splitlines():
        fields = list(json.loads(line))
        assert sunk[json.loads(line)["kind"]] == fields

    exported = readme_samples.run_cli(tmp_path / "home", "export", "--run", run_id)
    assert exported.returncode == 0, exported.stderr
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert kinds == ["tool_result", "llm_result", "tool_result", "stop"]


def test_every_command_option_is_in_its_synopsis_and_every_synopsis_option_exists():
    """The bold `agent-otel COMMAND [--option ...]` lines of Commands against the real parser, both ways
    (`--json` of the read commands is said once for all of them, `tail` being the one without it)."""
    import argparse

    from agent_otel.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    synopses: dict[str, set[str]] = {}
    for name, rest in re.findall(r"\*\*`agent-otel (\w+)([^`]*)`\*\*", README):
        synopses.setdefault(name, set()).update(re.findall(r"--[\w-]+", rest))
    assert set(synopses) == set(commands)

    def options(parser: argparse.ArgumentParser) -> set[str]:
        found = set()
        for action in parser._actions:
            found.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):  # `stack init`
                for sub in action.choices.values():
                    found |= options(sub)
        return found - {"--help", "--store", "--config"}

    reading = {"runs", "show", "stats", "drift", "export", "doctor", "gc", "replay"}
    for name, parser in commands.items():
        real = options(parser)
        assert synopses[name] <= real, (name, synopses[name] - real)
        assert real - synopses[name] <= ({"--json"} if name in reading else set()), (
            name,
            real - synopses[name],
        )
        assert ("--json" in real) == (name in reading), name


def _metrics_table() -> dict[str, tuple[str, tuple[str, ...], str, str]]:
    """Metrics' table: Prometheus name -> (kind, labels, OTel name, unit)."""
    section = README.split("\n## Metrics\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = re.sub(r"_bucket/.*$", "", cells[0].strip("`"))
        labels = tuple(label.split()[0] for label in re.sub(r"\([^)]*\)", "", cells[2]).split(","))
        otel_name, unit = (part.strip().strip("`") for part in cells[4].split(",", 1))
        rows[name] = (cells[1], labels, otel_name, unit)
    return rows


def test_the_metrics_table_is_what_the_sdk_registers():
    """Every row of Metrics (kind, labels, OTel name and unit) is the instrument the SDK creates, and every
    instrument has its row; what the Quickstart actually exports is checked against the same specs."""
    expected = {
        spec.prometheus: (
            "counter" if spec.kind.endswith("counter") else spec.kind,
            tuple(label.replace(".", "_") for label in spec.labels),
            spec.name,
            spec.unit,
        )
        for spec in c.METRICS
    }
    assert _metrics_table() == expected


def test_the_quickstart_handle_returns_the_stop_result_when_a_guard_stops_the_run(tmp_path):
    """ "`handle` then returns the `StopResult`": with the kill switch on writes, send_email never runs and
    the caller gets why (before, AgentStopped escaped `handle` although it was typed to return one)."""
    proc = _run_quickstart(
        tmp_path, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", AGENT_OTEL_KILL_SWITCH="writes"
    )
    assert "Traceback" not in proc.stderr and "sent to" not in proc.stdout, proc.stdout + proc.stderr
    result = proc.stdout.split("RESULT ", 1)[1]
    assert result.startswith("StopResult(") and "'kill_switch'" in result, result
    runs = json.loads(readme_samples.run_cli(tmp_path / "home", "runs", "--json").stdout)
    assert [(r["stop_reason"], r["tool_calls"]) for r in runs] == [("kill_switch", 1)]


def test_the_development_tree_names_every_module_and_benchmark_and_only_files_that_exist():
    """Development's tree is where "a reader finds a concept by its module name": every module of
    src/agent_otel and every benchmark script is in it, and every file it names exists."""
    root = Path(__file__).resolve().parents[1]
    tree = README.split("## Development\n\n```\n", 1)[1].split("```", 1)[0]
    named = set(re.findall(r"[\w/.-]+\.(?:py|md|sh)\b", tree))
    places = ("", "src/agent_otel/", "src/agent_otel/cli/", "src/agent_otel/store/", "benchmarks/", "tests/")
    assert not [n for n in named if not any((root / place / n).exists() for place in places)]
    modules = {p.name for p in (root / "src/agent_otel").glob("*.py") if not p.name.startswith("_")}
    benchmarks = {p.name for p in (root / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert modules - named == set() and benchmarks - named == set()


def test_the_install_sections_warning_for_grpc_without_the_extra_is_the_one_users_get(
    clean,  # noqa: F811 (the fixture: no OTEL_*/AGENT_OTEL_* from outside, setup() undone)
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
):
    """Install quotes the line a base install logs for an endpoint on :4317; it is that line, whole (the
    extra's absence simulated as tests/test_otlp_protocol.py does)."""
    import logging

    from agent_otel import otlp_endpoint

    quoted = README.split("**Which OTLP exporter.**", 1)[1].split("```\n", 2)[1].strip()
    endpoint = re.search(r"endpoint (\S+) means", quoted)
    assert endpoint, quoted
    monkeypatch.setattr(otlp_endpoint, "grpc_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="agent_otel"):
        agent_otel.setup("svc", endpoint=endpoint.group(1), store=str(tmp_path / "runs.db"), instrument=False)
        agent_otel.shutdown()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == [quoted]


def test_the_schema_version_upgrading_names_is_this_versions():
    """Upgrading and rolling back names the schema this version migrates to; a new migration must update
    it (and the figures quoted with it: `doctor`'s sample is compared by tests/cli/test_first_run.py)."""
    from agent_otel.store.schema import LATEST_VERSION

    said = re.search(r"\(`agent_otel_meta.schema_version`, (\d+)\s+for this version\)", README)
    assert said, "Upgrading and rolling back says which schema version this one is"
    assert int(said.group(1)) == LATEST_VERSION
    newer = re.search(r"its schema version (\d+) is newer than this agent-otel supports \((\d+)\)", README)
    assert newer and (int(newer.group(1)), int(newer.group(2))) == (LATEST_VERSION, LATEST_VERSION - 1)


def test_the_integration_names_integrations_lists_are_the_ones_setup_takes():
    """Integrations' "Names:" are what `setup(instrument=[...])` accepts, all of them, and the error for an
    unknown name lists the same ones."""
    from agent_otel import integrations

    said = README.split("\n## Integrations\n", 1)[1].split("\nNames: ", 1)[1].split("(an unknown name", 1)[0]
    names = re.findall(r"`(\w+)`", said)
    assert sorted(names) == sorted(integrations.registered()) and len(set(names)) == len(names)
    with pytest.raises(ValueError) as err:
        integrations.instrument(["no_such_framework"])
    assert sorted(str(err.value).split("known: ", 1)[1].split(", ")) == sorted(names)


def _redaction_table(header: str) -> list[list[str]]:
    section = README.split("\n### Redaction\n", 1)[1].split("\n## ", 1)[0]
    table = section.split(header, 1)[1].split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table.splitlines()[2:]]


def test_redactions_tables_mask_and_keep_what_they_show():
    """Redaction's examples, each as the default redactor treats it: the key names of the first table, and
    each string of the second in full (abbreviated ones, with `...`, aside) masked to the placeholder its
    row says, or kept unchanged."""
    from agent_otel import redaction

    redactor = redaction.for_config()
    said = README.split("The built-in list is ", 1)[1].split("; setting `redaction.keys`", 1)[0]
    assert sorted(re.findall(r"`(\w+)`", said)) == sorted(redaction.DEFAULT_SECRET_KEYS)
    for masked, kept in _redaction_table("| masked | kept |"):
        assert all(redactor.is_secret_key(k) for k in re.findall(r"`([^`]+)`", masked)), masked
        assert not any(redactor.is_secret_key(k) for k in re.findall(r"`([^`]+)`", kept)), kept
    checked = 0
    for what, masked, becomes, kept in _redaction_table("| what | masked | becomes | kept |"):
        placeholders = set(re.findall(r"\[[A-Z_]+\]", becomes))
        for example in re.findall(r"`([^`]+)`", masked):
            if "..." in example or "?" in example.replace("?token", ""):
                continue  # an abbreviation (`sk-...`) or a shape (`xox?-`), not a value
            out = redactor.redact_text(example)
            assert out != example and (
                not placeholders or placeholders & set(re.findall(r"\[[A-Z_]+\]", out))
            ), (
                what,
                example,
                out,
            )
            checked += 1
        for example in re.findall(r"`([^`]+)`", kept):
            assert redactor.redact_text(example) == example, (what, example)
            checked += 1
    assert checked > 30


def _parameters(signature: str) -> list[str]:
    """`a=None, b=(Exception,), *, c` -> ['a', 'b', 'c']: names at bracket depth 0."""
    names, depth, current = [], 0, ""
    for char in signature + ",":
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            name = current.split("=", 1)[0].strip().lstrip("*")
            if name:
                names.append(name)
            current = ""
        else:
            current += char
    return names


def test_the_api_tables_signatures_are_the_real_ones():
    """API: each `name(params)` row lists the callable's parameters, all of them, in order (a parameter
    the table leaves out is one users cannot know of)."""
    import inspect

    from agent_otel.run import Run

    section = README.split("\n## API\n", 1)[1].split("\n### Stop reasons", 1)[0]
    rows = re.findall(r"^\| `(@?)(\w+(?:\.\w+)?)\((.*?)\)(?: -> \w+)?` \|", section, re.M)
    assert len(rows) >= 12
    for decorator, name, params in rows:
        owner, _, attr = name.rpartition(".")
        obj = getattr(Run if owner == "Run" else agent_otel, attr)
        real = [
            p.name
            for p in inspect.signature(obj).parameters.values()
            if p.name not in ("self", "cls")
            and not (decorator and p.kind is p.POSITIONAL_ONLY)  # the function
        ]
        assert _parameters(params) == real, name
