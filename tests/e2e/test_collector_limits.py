"""Against the real collector binary: requests stay under its 4 MiB gRPC limit, so big spans still arrive.

The collector built from collector/builder-config.yaml runs tests/e2e/sink-config.yaml (an OTLP/gRPC
receiver with its defaults, writing what it takes to a file). With ``store_args`` on and ~9 KB
arguments, 512 spans make a ~4.8 MB request: the collector refused it (RESOURCE_EXHAUSTED, "received
message larger than max") and agent-otel resent it forever, exporting nothing after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent_otel
from agent_otel import sdk
from tests.e2e.harness import Proc, collector_binary, free_ports, healthy, sink_proc, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def collector_bin() -> Path:
    return collector_binary()


@pytest.fixture
def sink_collector(tmp_path: Path, collector_bin: Path) -> Iterator[tuple[str, Path, Proc]]:
    grpc_port, health_port = free_ports(2)
    out = tmp_path / "traces.jsonl"
    proc = sink_proc(
        "collector (OTLP receiver with its defaults, file exporter)",
        collector_bin,
        grpc_port,
        health_port,
        out,
    ).start()
    try:
        wait_for("the collector to be healthy", healthy(f"http://127.0.0.1:{health_port}/"), 60, (proc,))
        yield f"http://127.0.0.1:{grpc_port}", out, proc
    finally:
        proc.stop()


def spans_in(path: Path) -> list[str]:
    names: list[str] = []
    if not path.exists():
        return names
    for line in path.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                names += [span["name"] for span in ss.get("spans", [])]
    return names


def test_big_spans_reach_the_real_collector_in_requests_under_its_limit(fresh, sink_collector):
    endpoint, out, proc = sink_collector
    agent_otel.setup(
        "big-args",
        endpoint=endpoint,
        store=False,
        instrument=False,
        config={
            "logging.events.store_args": True,
            "redaction.max_chars": 16384,
            # Batches of 512 spans: sent when the queue reaches 512 (the timer is far away) or at flush.
            "exporter": {"schedule_delay_s": 30, "probe_local": False},
        },
    )
    with agent_otel.run("big") as run:
        for i in range(820):
            run.call_tool("fetch", lambda i, arg: i, {"i": i, "arg": "x" * 9000})
    sdk.flush()
    names = wait_for(
        "821 spans in the collector's output",
        lambda: len(spans_in(out)) >= 821 and spans_in(out),
        60,
        (proc,),
    )
    assert len(names) == 821
    assert names.count("execute_tool fetch") == 820
    agent_otel.shutdown()
    assert "larger than max" not in proc.tail(200)
