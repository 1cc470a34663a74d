"""What an instrumented tool call costs, agent-otel next to peer SDKs, measured side by side.

The unit of work is the same for every case: one agent run (a parent span, opened once per round) containing
``--calls`` tool calls with about 1 KB of JSON arguments. Each case uses its own SDK's primitive for it:

* ``bare span``: a plain OpenTelemetry SDK span with the 8 attributes agent-otel sets (no hashing), through
  agent-otel's TracerProvider and span processor. Every ratio is relative to this row of the same process;
* ``bare span, SDK BatchSpanProcessor``: the same span through the SDK's ``BatchSpanProcessor``, which is
  what the peers use, so the processors' share of the difference can be read off (the processors this
  script builds get a queue holding a whole round, see ``batch_processor``);
* agent-otel: ``run.call_tool(...)`` inside ``agent_otel.run(...)`` (hashing, span, metrics, event);
* OpenLLMetry (``traceloop-sdk``): ``@workflow`` around the loop, ``@tool`` on the tool;
* Langfuse (v3+, OpenTelemetry based): ``@observe(as_type="agent")`` / ``@observe(as_type="tool")``;
* OpenLIT: ``@openlit.trace`` on both (its function-level primitive; it has no tool or agent kind for user
  code, only ``trace``/``start_trace``);
* OpenInference (Arize Phoenix): ``OITracer`` decorators ``@tracer.agent`` / ``@tracer.tool``.

Each peer keeps what it records by default (several serialize the full arguments into span attributes: the
``args in clear`` column says so, a privacy and cost difference, agent-otel records a hash). Every span
goes to an in-process exporter that drops it; library auto-instrumentation (openai, requests, ...) is
switched off since no tool call touches it.

Two CPU figures per call, medians over ``--repeats`` rounds, cases interleaved round by round (order rotated)
so background load hits all cases alike:

* ``hot path``: CPU of the calling thread only (what the agent waits for),
* ``total``: CPU of the whole process including background threads (span batching, event pipeline), up to a
  flush of that case's pipeline, so work moved off the hot path is still counted.

Isolation: OpenLLMetry and OpenLIT both take the process-global TracerProvider (the second one reuses the
first's provider and processors) and OpenLLMetry patches ``threading`` globally, so peers cannot share a
process without measuring each other. Each peer therefore runs in its own subprocess that also measures the
bare span and agent-otel, and every ratio compares cases of one process and one run. The first group runs
in the main process with no peer imported. Absolute microseconds differ between groups with machine load;
compare ratios.

Network: every measuring process makes ``socket.socket.connect``/``connect_ex``/``sendto``/``sendmsg``,
``socket.create_connection`` and ``socket.getaddrinfo`` raise from before any peer SDK is initialized until
its exit handlers have run, and reports the attempts and the socket file descriptors still open after
measuring (which would also show a gRPC channel, whose C core bypasses Python's socket module). OTLP and
vendor variables (``OTEL_EXPORTER_OTLP_*``, ``TRACELOOP_*``, ``LANGFUSE_*``, ``OPENLIT_*``, ``PHOENIX_*``)
are removed and ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none`` is set. OpenLIT would fetch its price table
from GitHub at init: it gets a local file instead.

Caveats: CPU time, not wall time, of a synchronous tool that returns at once, so the figures are the
instrumentation alone. Peers' ``@tool`` decorators record the result as well as the arguments; agent-otel
hashes both. OpenLLMetry's ``telemetry_enabled`` is passed but unused by the installed version (no telemetry
client in it). One run of one machine: quote the ratios with the versions printed next to them.

Run: ``make install-dev EXTRAS=dev,postgres,bench`` then ``python benchmarks/overhead.py`` (``--json`` for
machine-readable results). Peers that are not installed are reported and skipped.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import agent_otel
from agent_otel import sdk
from agent_otel.hashing import sha

MARKER = "Refund request for order"  # a string of the args payload: found in an attribute = args in clear


@dataclass(frozen=True)
class Peer:
    key: str
    name: str
    dist: str
    module: str
    primitive: str
    setup: str  # how it is configured here, printed under the table


PEERS = (
    Peer(
        "openllmetry",
        "OpenLLMetry",
        "traceloop-sdk",
        "traceloop.sdk",
        "@workflow + @tool",
        "Traceloop.init(exporter=discard, disable_batch=False, telemetry_enabled=False, instruments=set()); "
        "its own global TracerProvider + its BatchSpanProcessor (default queue)",
    ),
    Peer(
        "langfuse",
        "Langfuse",
        "langfuse",
        "langfuse",
        "@observe(as_type=agent/tool)",
        "Langfuse(tracer_provider=<own>, span_exporter=discard, dummy keys, base_url=127.0.0.1:9 never "
        "contacted); LangfuseSpanProcessor (a BatchSpanProcessor, default queue) with its media scan",
    ),
    Peer(
        "openlit",
        "OpenLIT",
        "openlit",
        "openlit",
        "@openlit.trace",
        "global TracerProvider + BatchSpanProcessor(discard, queue of a round) set before "
        "openlit.init(disable_metrics=True, all instrumentors disabled, pricing_json=<local file>, else "
        "fetched from GitHub)",
    ),
    Peer(
        "openinference",
        "OpenInference",
        "openinference-instrumentation",
        "openinference.instrumentation",
        "@tracer.agent + @tracer.tool",
        "OITracer from openinference.instrumentation.TracerProvider (not global) + "
        "BatchSpanProcessor(discard, queue of a round: with 2048 it dropped half its spans, see "
        "batch_processor)",
    ),
)

SCRUBBED_ENV_PREFIXES = (
    "OTEL_EXPORTER_OTLP",
    "TRACELOOP_",
    "LANGFUSE_",
    "OPENLIT_",
    "PHOENIX_",
    "ARIZE_",
    "AGENT_OTEL_",
)


def scrub_environment() -> None:
    """No endpoint, key or exporter from the caller's environment may reach a measuring process."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED_ENV_PREFIXES):
            del os.environ[name]
    os.environ.update(
        {
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SDK_DISABLED": "false",
            "TRACELOOP_TELEMETRY": "false",
            "TRACELOOP_SUPPRESS_WARNINGS": "true",
            "NO_PROXY": "*",
            "no_proxy": "*",
        }
    )


class NetworkGuard:
    """Makes every outgoing socket operation and name lookup raise, and records the attempts."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._saved: list[tuple[Any, str, Any]] = []

    def _blocked(self, what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            target = args[1:] if what.startswith("socket.") else args[:1]
            self.attempts.append(f"{what} {target!r}"[:200])
            raise OSError(101, f"network disabled by the benchmark ({what})")

        return refuse

    def install(self) -> None:
        for owner, name in (
            (socket.socket, "connect"),
            (socket.socket, "connect_ex"),
            (socket.socket, "sendto"),
            (socket.socket, "sendmsg"),
            (socket, "getaddrinfo"),
            (socket, "create_connection"),
        ):
            self._saved.append((owner, name, getattr(owner, name)))
            prefix = "socket." if owner is socket.socket else ""
            setattr(owner, name, self._blocked(prefix + name))

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()


def open_sockets() -> int | None:
    """Sockets this process holds (Linux), Python's or not (a gRPC channel's would show here)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):  # the fd listdir used is gone
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


class DiscardExporter(SpanExporter):
    """Drops spans (we measure instrumentation, not a network); counts them, keeps them when asked."""

    def __init__(self) -> None:
        self.count = 0
        self.kept: list[Any] | None = None

    def export(self, spans: Any) -> SpanExportResult:
        self.count += len(spans)
        if self.kept is not None:
            self.kept.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class DiscardSink:
    def write(self, batch: Any) -> None:
        pass

    def close(self) -> None:
        pass


def payload(size: int) -> dict[str, Any]:
    """A realistic args dict of about ``size`` bytes of canonical JSON."""
    item = {"id": 12345, "title": MARKER, "price": 19.99, "tags": ["billing", "vip"]}
    per_item = len(json.dumps(item, separators=(",", ":")))
    return {
        "query": "customer refund policy",
        "items": [dict(item, id=i) for i in range(max(1, size // per_item))],
    }


ARGS_1K = payload(1_000)
RESULT = {"status": 200, "body": "ok"}


def http_get(query: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Fetch a URL (the benchmark's tool: returns a constant)."""
    return RESULT


@dataclass
class Case:
    key: str
    label: str
    run: Callable[[int], None]  # n tool calls inside one agent run
    flush: Callable[[], None]
    exporter: DiscardExporter
    hot: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    spans: int = 0
    tool_span: dict[str, Any] = field(default_factory=dict)


def measure(cases: list[Case], calls: int, repeats: int) -> None:
    """Rounds of ``calls`` calls per case, interleaved, rotating which case goes first."""
    for case in cases:  # warm up caches and lazily created threads
        case.run(min(500, calls))
        case.flush()
    for r in range(repeats):
        for case in cases[r % len(cases) :] + cases[: r % len(cases)]:
            gc.collect()
            before = case.exporter.count
            t_proc, t_thread = time.process_time(), time.thread_time()
            case.run(calls)
            thread_cpu = time.thread_time() - t_thread
            case.flush()
            proc_cpu = time.process_time() - t_proc
            case.hot.append(thread_cpu / calls * 1e6)
            case.total.append(proc_cpu / calls * 1e6)
            case.spans += case.exporter.count - before


def inspect_tool_span(case: Case) -> None:
    """One extra call with the exporter keeping spans: what does the tool span record?"""
    case.exporter.kept = []
    case.run(1)
    case.flush()
    spans, case.exporter.kept = case.exporter.kept, None
    tools = [s for s in spans if s.parent is not None] or spans
    if not tools:
        case.tool_span = {"name": None, "attributes": 0, "attribute_bytes": 0, "args_in_clear": None}
        return
    span = tools[0]
    attrs = dict(span.attributes or {})
    sizes = {k: len(k) + len(v if isinstance(v, str) else repr(v)) for k, v in attrs.items()}
    clear = sorted(k for k, v in attrs.items() if MARKER in (v if isinstance(v, str) else repr(v)))
    case.tool_span = {
        "name": span.name,
        "attributes": len(attrs),
        "attribute_bytes": sum(sizes.values()),
        "args_in_clear": clear,
        "largest_attribute": max(sizes, key=sizes.__getitem__) if sizes else None,
    }


def batch_processor(exporter: SpanExporter, calls: int) -> BatchSpanProcessor:
    """The SDK's BatchSpanProcessor, with a queue that holds a whole round.

    With the default 2048 spans, OpenInference lost about half its spans in the tight loop: its ids come
    from ``secrets.randbits`` (``os.urandom``), which releases and retakes the GIL on every span, and that
    starves the batch worker thread. Real tool calls wait on I/O and leave it time; here every span must be
    exported, so that the ``total`` column counts its export (``spans`` shows it was).
    """
    return BatchSpanProcessor(exporter, max_queue_size=max(2048, calls + 2048))


# --- cases -------------------------------------------------------------------------------------------


def bare_case(key: str, label: str, provider: Any, flush: Callable[[], None], exporter: Any) -> Case:
    tracer = provider.get_tracer("bench")
    counter = iter(range(10**12))

    def run(n: int) -> None:
        with tracer.start_as_current_span("invoke_agent bench-agent"):
            for _ in range(n):
                attributes = {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "http.get",
                    "agent.run_id": "r" * 32,
                    "agent.step_id": next(counter),
                    "agent.tool.args_sha": "a" * 24,
                    "agent.tool.result_sha": "b" * 24,
                    "agent.tool.status": "ok",
                    "agent.tool.attempts": 1,
                }
                with tracer.start_as_current_span("execute_tool http.get", attributes=attributes):
                    http_get(**ARGS_1K)

    return Case(key, label, run, flush, exporter)


def baseline_cases(calls: int) -> list[Case]:
    """The bare span (agent-otel's provider), the bare span (stock batch processor) and agent-otel."""
    exporter = DiscardExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    agent_otel.setup(
        "bench",
        store=False,
        instrument=False,
        tracer_provider=provider,
        meter_provider=meters,
        span_exporters=[exporter],
        event_sinks=[DiscardSink()],
        config={"exporter": {"probe_local": False}, "guards": {"loop": {"enabled": False}}},
    )

    def flush() -> None:
        sdk.flush(10)

    stock_exporter = DiscardExporter()
    stock = TracerProvider(shutdown_on_exit=False)
    stock.add_span_processor(batch_processor(stock_exporter, calls))

    def ours(n: int) -> None:
        with agent_otel.run("bench-agent") as run:
            for _ in range(n):
                run.call_tool("http.get", http_get, ARGS_1K)

    return [
        bare_case("bare", "bare OpenTelemetry SDK span, same 8 attributes", provider, flush, exporter),
        bare_case(
            "bare_batch",
            "bare span, SDK BatchSpanProcessor",
            stock,
            lambda: stock.force_flush(),
            stock_exporter,
        ),
        Case("agent_otel", "agent-otel tool call (hash+span+metrics+event)", ours, flush, exporter),
    ]


def openllmetry_case(peer: Peer, calls: int) -> Case:
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import tool, workflow

    exporter = DiscardExporter()
    Traceloop.init(
        app_name="bench",
        exporter=exporter,
        disable_batch=False,
        telemetry_enabled=False,
        instruments=set(),  # no library auto-instrumentation: the tool call does not use any
    )
    from traceloop.sdk.tracing.tracing import TracerWrapper

    wrapper = TracerWrapper.instance
    traced_tool = tool(name="http.get")(http_get)

    @workflow(name="bench-agent")
    def run(n: int) -> None:
        for _ in range(n):
            traced_tool(**ARGS_1K)

    return Case(peer.key, f"{peer.name} {peer.primitive}", run, wrapper.flush, exporter)


def langfuse_case(peer: Peer, calls: int) -> Case:
    from langfuse import Langfuse, observe

    exporter = DiscardExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    client = Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        base_url="http://127.0.0.1:9",  # never contacted: spans go to span_exporter, the guard blocks rest
        tracer_provider=provider,  # its own provider, not the global one
        span_exporter=exporter,
    )
    traced_tool = observe(name="http.get", as_type="tool")(http_get)

    @observe(name="bench-agent", as_type="agent")
    def run(n: int) -> None:
        for _ in range(n):
            traced_tool(**ARGS_1K)

    return Case(peer.key, f"{peer.name} {peer.primitive}", run, client.flush, exporter)


def openlit_case(peer: Peer, calls: int) -> Case:
    from opentelemetry import trace

    # OpenLIT reuses a global TracerProvider that is already set: that is how it gets our exporter.
    exporter = DiscardExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(batch_processor(exporter, calls))
    trace.set_tracer_provider(provider)
    import openlit
    from openlit._instrumentors import MODULE_NAME_MAP

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as pricing:  # else from GitHub
        pricing.write("{}")
    try:
        openlit.init(
            service_name="bench",
            disable_batch=False,
            disable_metrics=True,  # @openlit.trace records no metrics; its meter would need an exporter
            disabled_instrumentors=list(MODULE_NAME_MAP),
            pricing_json=pricing.name,
        )
    finally:
        os.unlink(pricing.name)
    traced_tool = openlit.trace(http_get)

    @openlit.trace
    def run(n: int) -> None:
        for _ in range(n):
            traced_tool(**ARGS_1K)

    return Case(peer.key, f"{peer.name} {peer.primitive}", run, lambda: provider.force_flush(), exporter)


def openinference_case(peer: Peer, calls: int) -> Case:
    from openinference.instrumentation import TracerProvider as OITracerProvider

    exporter = DiscardExporter()
    provider = OITracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(batch_processor(exporter, calls))
    tracer = provider.get_tracer("bench")
    traced_tool = tracer.tool(name="http.get")(http_get)

    @tracer.agent(name="bench-agent")
    def run(n: int) -> None:
        for _ in range(n):
            traced_tool(**ARGS_1K)

    return Case(peer.key, f"{peer.name} {peer.primitive}", run, lambda: provider.force_flush(), exporter)


PEER_CASES: dict[str, Callable[[Peer, int], Case]] = {
    "openllmetry": openllmetry_case,
    "langfuse": langfuse_case,
    "openlit": openlit_case,
    "openinference": openinference_case,
}


# --- groups ------------------------------------------------------------------------------------------


def run_group(peer: Peer | None, calls: int, repeats: int, guard: NetworkGuard) -> dict[str, Any]:
    """Measure the baseline cases, plus ``peer``'s case if given, in this process."""
    attempts_before = len(guard.attempts)
    try:
        cases = baseline_cases(calls)  # agent-otel first: its threads exist before any peer patches threading
        if peer is not None:
            cases.append(PEER_CASES[peer.key](peer, calls))
        measure(cases, calls, repeats)
        for case in cases:
            inspect_tool_span(case)
        sockets = open_sockets()
    finally:
        agent_otel.shutdown()
    bare = cases[0]
    bare_hot, bare_total = statistics.median(bare.hot), statistics.median(bare.total)
    rows = []
    for case in cases:
        hot, total = statistics.median(case.hot), statistics.median(case.total)
        rows.append(
            {
                "key": case.key,
                "label": case.label,
                "hot_us": round(hot, 2),
                "total_us": round(total, 2),
                "hot_ratio": round(hot / bare_hot, 3),
                "total_ratio": round(total / bare_total, 3),
                "hot_us_rounds": [round(x, 2) for x in case.hot],
                "total_us_rounds": [round(x, 2) for x in case.total],
                "spans_per_call": round(case.spans / (calls * repeats), 4),
                "tool_span": case.tool_span,
            }
        )
    return {
        "peer": peer.key if peer else None,
        "process": "subprocess" if peer else "main",
        "status": "ok",
        "network_attempts": guard.attempts[attempts_before:],
        "open_sockets": sockets,
        "cases": rows,
    }


def run_peer_subprocess(peer: Peer, calls: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.run(
            [
                *(sys.executable, os.path.abspath(__file__)),
                *("--calls", str(calls), "--repeats", str(repeats)),
                *("--child", peer.key, "--child-out", out),
            ],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as f:
                return json.load(f)
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-12:]
    return {"peer": peer.key, "process": "subprocess", "status": "failed", "error": "\n".join(tail)}


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed(peer: Peer) -> bool:
    try:
        return version(peer.dist) is not None and importlib.util.find_spec(peer.module) is not None
    except ModuleNotFoundError:
        return False


# --- hashing -----------------------------------------------------------------------------------------


def seed_sha(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()[:24]


def hashing_table(repeats: int) -> list[dict[str, Any]]:
    rows = []
    for label, size in (("1 KB", 1_000), ("100 KB", 100_000), ("1 MB", 1_000_000)):
        obj = payload(size)
        n = max(3, 2_000_000 // size)
        ours = min(_timeit(lambda o=obj: sha(o), n) for _ in range(repeats))
        seed = min(_timeit(lambda o=obj: seed_sha(o), n) for _ in range(repeats))
        assert sha(obj) == seed_sha(obj)
        rows.append({"size": label, "agent_otel_us": round(ours, 2), "json_dumps_us": round(seed, 2)})
    return rows


def _timeit(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


# --- output ------------------------------------------------------------------------------------------


def _args_column(tool_span: dict[str, Any]) -> str:
    clear = tool_span.get("args_in_clear")
    if clear is None:
        return "no tool span"
    where = f"args in clear: {', '.join(clear)}" if clear else "args not in clear"
    return f"{tool_span['attributes']:>2} attrs {tool_span['attribute_bytes']:>5} B  {where}"


def render(results: dict[str, Any]) -> str:
    v = results["versions"]
    groups = results["groups"]
    attempts = sum(len(g.get("network_attempts", [])) for g in groups)
    sockets = [g.get("open_sockets") for g in groups if g["status"] == "ok"]
    lines = [
        f"agent-otel {v['agent-otel']} vs peer SDKs: one tool call with 1 KB args inside an agent run",
        f"Python {v['python']}, opentelemetry-sdk {v['opentelemetry-sdk']}, {results['cpus']} CPUs; "
        f"{results['calls']} calls x {results['repeats']} rounds per case, interleaved; median per call.",
        "hot = calling-thread CPU; total = whole-process CPU up to a flush of the case's pipeline;",
        "x = ratio to the bare span of the same process; spans = spans exported per call (incl. run span).",
        "Each peer runs in its own subprocess, next to its own bare span and agent-otel rows, because peers",
        "take the global TracerProvider or patch threading: compare ratios within a group (microseconds",
        "across groups move with machine load).",
        "Network: socket connect, connect_ex, sendto, sendmsg, create_connection and getaddrinfo raise in",
        f"every measuring process, init to exit; attempts: {attempts}; socket fds open after measuring: "
        f"{sockets}.",
        "Spans go to in-process exporters that drop them.",
        "",
    ]
    header = f"{'case':<52}{'hot':>9}{'total':>9}{'hot x':>7}{'tot x':>7}{'spans':>7}  tool span"
    lines += [header, "-" * 110]
    for group in groups:
        peer = next((p for p in PEERS if p.key == group["peer"]), None)
        if peer is None:
            title = "main process, no peer SDK imported"
        elif group["process"] is None:
            title = f"{peer.name}, {peer.dist}"
        else:
            title = f"subprocess: {peer.name}, {peer.dist} {v.get(peer.dist)}"
        if group["status"] != "ok":
            reason = f": {group['reason']}" if group.get("reason") else ""
            lines.append(f"[{title}] {group['status'].upper()}{reason}")
            lines += [f"    {err}" for err in (group.get("error") or "").splitlines()]
            continue
        extra = f"  NETWORK ATTEMPTS: {group['network_attempts']}" if group["network_attempts"] else ""
        lines.append(f"[{title}]{extra}")
        for row in group["cases"]:
            lines.append(
                f"  {row['label']:<50}{row['hot_us']:>7.1f}us{row['total_us']:>7.1f}us"
                f"{row['hot_ratio']:>6.2f}x{row['total_ratio']:>6.2f}x{row['spans_per_call']:>7.3f}"
                f"  {_args_column(row['tool_span'])}"
            )
    main = groups[0]
    ours = next(r for r in main["cases"] if r["key"] == "agent_otel")
    lines += [
        "",
        f"agent-otel / bare span, main process (target <= 2.0): hot {ours['hot_ratio']:.2f}x, "
        f"total {ours['total_ratio']:.2f}x",
        "",
        f"{'peer / agent-otel, same subprocess':<44}{'hot':>8}{'total':>9}",
    ]
    for group in groups[1:]:
        peer = next(p for p in PEERS if p.key == group["peer"])
        label = f"{peer.name} {peer.primitive}"
        if group["status"] != "ok":
            lines.append(f"{label:<44}{group['status']:>17}")
            continue
        by_key = {r["key"]: r for r in group["cases"]}
        theirs, ref = by_key[peer.key], by_key["agent_otel"]
        hot, total = theirs["hot_us"] / ref["hot_us"], theirs["total_us"] / ref["total_us"]
        lines.append(f"{label:<44}{hot:>7.2f}x{total:>8.2f}x")
    dropped = [
        f"{row['label']} ({row['spans_per_call']:.3f})"
        for group in groups
        if group["status"] == "ok"
        for row in group["cases"]
        if row["spans_per_call"] < 1
    ]
    if dropped:
        lines.append(f"WARNING: spans were dropped (queue full), their export is not counted: {dropped}")
    configured = [p for p in PEERS if any(g["peer"] == p.key and g["status"] == "ok" for g in groups)]
    if configured:
        lines += ["", "Peer setup (defaults otherwise; library auto-instrumentation off):"]
        for p in configured:
            lines += textwrap.wrap(
                f"{p.name} {v.get(p.dist)}: {p.setup}", 110, initial_indent="  ", subsequent_indent="    "
            )
    lines += [
        "",
        f"{'canonical JSON + sha256':<20}{'agent-otel':>14}{'json.dumps (seed)':>20}{'speed-up':>10}",
    ]
    for row in results["hashing"]:
        ours_us, seed_us = row["agent_otel_us"], row["json_dumps_us"]
        lines.append(f"{row['size']:<20}{ours_us:>12.1f}us{seed_us:>18.1f}us{seed_us / ours_us:>9.1f}x")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="tool calls per round and case")
    parser.add_argument("--repeats", type=int, default=7, help="rounds per case (median)")
    parser.add_argument(
        "--peers",
        default="all",
        help="comma-separated peers to compare: " + ",".join(p.key for p in PEERS) + ", 'all' or 'none'",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scrub_environment()
    guard = NetworkGuard()
    guard.install()  # for the life of the process: SDK init, measurement, flushes, exit handlers

    if args.child:
        peer = next(p for p in PEERS if p.key == args.child)
        group = run_group(peer, args.calls, args.repeats, guard)
        before = len(guard.attempts)
        atexit._run_exitfuncs()  # peers' exit handlers (final flushes) run under the guard and are counted
        group["network_attempts"] += guard.attempts[before:]
        with open(args.child_out, "w") as f:
            json.dump(group, f)
        return 0

    if args.peers == "all":
        selected = list(PEERS)
    elif args.peers == "none":
        selected = []
    else:
        keys = set(args.peers.split(","))
        unknown = keys - {p.key for p in PEERS}
        if unknown:
            parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
        selected = [p for p in PEERS if p.key in keys]

    versions = {
        "python": platform.python_version(),
        "agent-otel": agent_otel.__version__,
        "opentelemetry-sdk": version("opentelemetry-sdk"),
    }
    groups = [run_group(None, args.calls, args.repeats, guard)]
    for peer in selected:
        versions[peer.dist] = version(peer.dist)
        if not installed(peer):
            groups.append(
                {
                    "peer": peer.key,
                    "process": None,
                    "status": "not installed",
                    "reason": f"pip install {peer.dist} (or the 'bench' extra); skipped",
                }
            )
            continue
        groups.append(run_peer_subprocess(peer, args.calls, args.repeats))
    results = {
        "versions": versions,
        "cpus": os.cpu_count(),
        "calls": args.calls,
        "repeats": args.repeats,
        "peers": {
            p.key: {"name": p.name, "dist": p.dist, "primitive": p.primitive, "setup": p.setup} for p in PEERS
        },
        "groups": groups,
        "hashing": hashing_table(args.repeats),
    }
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
