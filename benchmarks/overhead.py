"""What an agent run costs the agent: agent-otel next to bare OpenTelemetry spans and peer SDKs.

The unit of work is one run of a realistic agent loop, the same for every case: an LLM request recorded
after the fact, 8 tool calls with ~1 KB of JSON arguments and a ~2 KB JSON result each (distinct per call,
as real ones are), and a second LLM request. Arguments and results are built before measuring, so the
figures are the instrumentation alone. Each case uses its SDK's own primitives:

* ``bare``: plain OpenTelemetry SDK spans (a run span, 8 tool spans, 2 chat spans) carrying the very
  attributes agent-otel's spans carry (tests/test_benchmark_runs.py checks the keys), with precomputed
  values, through the SDK's ``BatchSpanProcessor``. Every ratio is to this row of the same process;
* ``default``: ``agent_otel.run`` / ``@agent_otel.tool`` / ``run.record_llm`` with the default settings:
  the local SQLite run store, replay recording, guards and metrics on; OTLP off (spans go to a discarding
  exporter through agent-otel's own span processor, metrics to an in-memory reader, as with OTLP on);
* ``store_off``: the same with ``store=False`` (no run store, hence no snapshots either);
* OpenLLMetry (``traceloop-sdk``): ``@workflow`` / ``@tool`` / ``track_llm_call``;
* OpenLIT: ``@openlit.trace`` / ``openlit.start_trace`` (its only primitives for user code);
* Langfuse (OpenTelemetry based, v3+): ``@observe(as_type=agent/tool/generation)``;
* OpenInference (Arize Phoenix): ``@tracer.agent`` / ``@tracer.tool`` / ``@tracer.llm``.

Two CPU figures per run: **hot**, the CPU time of the calling thread (what the agent waits for), and
**total**, the CPU time of the whole process up to a flush of the case's pipeline (span export, event
pipeline, store writes), so work moved to background threads still counts.

How it is measured: each case runs in fresh processes of its own, next to the bare spans of the same
process (peers take the global TracerProvider or patch ``threading``, and agent-otel's setup is one per
process). A process alternates rounds of ``--runs`` runs of the bare spans and of its case, ``--rounds``
times, and reports the medians; its ratios are case / bare of that process. The parent starts
``--processes`` such processes per case, one case after the other in rotation, so machine load drifts over
all cases alike, and prints the median ratio over the processes with its range. Absolute microseconds move
with the machine's load; ratios are what to compare.

Network: every measuring process makes ``socket.socket.connect``/``connect_ex``/``sendto``/``sendmsg``,
``socket.create_connection`` and ``socket.getaddrinfo`` raise from before any SDK is initialised until its
exit handlers have run, and reports the attempts and the sockets still open. OTLP and vendor variables are
removed and ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none`` is set. OpenLIT would fetch its price table from
GitHub at init: it gets a local file instead.

Also printed: what ``import agent_otel`` costs in a fresh process (median of several).

Run: ``make bench`` (builds ``.venvs/bench`` with the peer SDKs, the ``bench`` extra, which cannot share an
environment with the ``frameworks`` extra); ``--json`` for machine-readable results. Peers that are not
installed are reported and skipped. ``python benchmarks/hashing.py`` prints the hashing table.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import logging
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

MARKER = "Refund request for order"  # a string of the args payload: found in an attribute = args in clear
TOOL_CALLS = 8
AGENT = "bench-agent"
MODEL = "gpt-4o"
TOOL = "search"
TOOL_DOC = "Search the knowledge base."
LLM_USAGE = ((800, 60), (1200, 90))  # (input, output) tokens of the two requests of a run


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    dist: str | None  # the package measured (None: agent-otel itself or the bare spans)
    module: str | None
    setup: str  # how it is configured here, printed under the table
    diagnostic: bool = False  # measured only when named in --cases (not in 'all')


CASES = (
    Case(
        "default",
        "agent-otel, default settings",
        None,
        None,
        "setup(store=<fresh SQLite file>, instrument=False, span_exporters=[discard], own providers with an "
        "in-memory metric reader); everything else default: replay recording, guards, metrics, events",
    ),
    Case("store_off", "agent-otel, store=False", None, None, "as default, with store=False"),
    Case(
        "store_discard",
        "agent-otel, default, store writes dropped",
        None,
        None,
        "diagnostic, not a configuration: as default, but the store sink's write() drops each batch, so the "
        "agent's thread does all it does by default while the event thread does no SQLite work",
        diagnostic=True,
    ),
    Case(
        "openllmetry",
        "OpenLLMetry @workflow/@tool/track_llm_call",
        "traceloop-sdk",
        "traceloop.sdk",
        "Traceloop.init(exporter=discard, disable_batch=False, telemetry_enabled=False, instruments=set()): "
        "its global TracerProvider and BatchSpanProcessor",
    ),
    Case(
        "openlit",
        "OpenLIT @openlit.trace/start_trace",
        "openlit",
        "openlit",
        "global TracerProvider + BatchSpanProcessor(discard) set before openlit.init(disable_metrics=True, "
        "all instrumentors disabled, pricing_json=<local file>); its warnings about the dict results it "
        "cannot set as an attribute are silenced",
    ),
    Case(
        "langfuse",
        "Langfuse @observe(agent/tool/generation)",
        "langfuse",
        "langfuse",
        "Langfuse(tracer_provider=<own>, span_exporter=discard, dummy keys, base_url=127.0.0.1:9 never "
        "contacted): its LangfuseSpanProcessor (a BatchSpanProcessor) with its media scan",
    ),
    Case(
        "openinference",
        "OpenInference @tracer.agent/tool/llm",
        "openinference-instrumentation",
        "openinference.instrumentation",
        "OITracer of openinference.instrumentation.TracerProvider (not global) + BatchSpanProcessor(discard)",
    ),
)
BY_KEY = {case.key: case for case in CASES}
PEERS = tuple(case for case in CASES if case.dist is not None)

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


def discard_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

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

    return DiscardExporter()


def batch_processor(exporter: Any, runs: int) -> Any:
    """The SDK's BatchSpanProcessor with a queue holding a whole round, so that no span is dropped (and
    every span's export is in the total); the default 2048 is too small for a round of a tight loop."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter, max_queue_size=max(2048, runs * (TOOL_CALLS + 3) + 2048))


# --- the workload -------------------------------------------------------------------------------------


def tool_args(i: int) -> dict[str, Any]:
    """~1 KB of JSON arguments, distinct per call (the loop guard stops repeated identical calls)."""
    return {
        "query": f"{MARKER} {i}: customer asks whether the refund policy covers a late delivery",
        "filters": {"lang": "en", "limit": 20, "tags": ["billing", "vip", "refund"], "since": "2026-01-01"},
        "user": {"id": 4242, "tier": "gold", "region": "eu-west"},
        "context": [
            {"turn": t, "role": "user" if t % 2 else "assistant", "text": "previous message text " * 3}
            for t in range(6)
        ],
    }


def tool_result(i: int) -> dict[str, Any]:
    """~2 KB of JSON result, distinct per call (each is a snapshot of its own with the store on)."""
    return {
        "id": i,
        "total": 18,
        "hits": [
            {"doc": f"kb-{i}-{k}", "score": round(0.99 - k / 50, 4), "snippet": "refund policy text " * 3}
            for k in range(14)
        ],
    }


class Workload:
    """Arguments and results built before measuring, handed out in turn."""

    def __init__(self, n_calls: int) -> None:
        self.args = [tool_args(i) for i in range(n_calls)]
        self.results = [tool_result(i) for i in range(n_calls)]
        self._args = itertools.cycle(self.args)
        self._results = itertools.cycle(self.results)
        self._inputs = itertools.count()

    def next_args(self) -> dict[str, Any]:
        return next(self._args)

    def next_result(self) -> dict[str, Any]:
        return next(self._results)

    def next_input(self) -> dict[str, Any]:
        return {"ticket": f"T-{next(self._inputs)}", "question": "Can I get a refund for a late delivery?"}


# The attributes agent-otel's spans carry in this loop, with precomputed values of the same sizes
# (tests/test_benchmark_runs.py compares the keys with what agent-otel records).
HEX24, HEX32 = "a" * 24, "b" * 32
RUN_START = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": AGENT,
    "agent.run_id": HEX32,
    "gen_ai.request.model": MODEL,
    "agent.input_sha": HEX24,
}
RUN_END = {
    "agent.stop_reason": "completed",
    "agent.tool_calls": TOOL_CALLS,
    "agent.steps": TOOL_CALLS + 2,
    "agent.usage.input_tokens": 2000,
    "agent.usage.output_tokens": 150,
    "agent.cost_usd": 0.0065,
    "gen_ai.request.model": MODEL,
    "gen_ai.provider.name": "openai",
}
STOP_EVENT = {"agent.stop_reason": "completed", "stop_class": "success"}
CHAT_START = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": MODEL,
    "agent.run_id": HEX32,
    "agent.step_id": 1,
    "gen_ai.agent.name": AGENT,
    "gen_ai.provider.name": "openai",
}
CHAT_END = {"gen_ai.usage.input_tokens": 800, "gen_ai.usage.output_tokens": 60, "agent.cost_usd": 0.0026}
TOOL_START = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": TOOL,
    "gen_ai.tool.type": "function",
    "agent.run_id": HEX32,
    "agent.step_id": 2,
    "agent.tool.args_sha": HEX24,
    "gen_ai.tool.description": TOOL_DOC,
}
TOOL_END = {"agent.tool.status": "ok", "agent.tool.attempts": 1, "agent.tool.result_sha": HEX24}


@dataclass
class Subject:
    """One measured thing in a process: ``run(n)`` does n agent runs, ``flush()`` drains its pipeline."""

    key: str
    run: Callable[[int], None]
    flush: Callable[[], None]
    exporter: Any
    hot: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    spans: int = 0
    # agent-otel's event sinks: CPU seconds of their writes (on the event thread) in the current round,
    # and per round in us/run, so the total can be told apart by where it goes.
    sink_cpu: dict[str, float] = field(default_factory=dict)
    sinks: dict[str, list[float]] = field(default_factory=dict)


def time_sinks(subject: Subject, sinks: list[Any]) -> None:
    """Count the thread CPU of each sink's writes into ``subject.sink_cpu`` (by the sink's class name)."""
    for sink in sinks:
        name, write = type(sink).__name__, sink.write

        def timed(batch: Any, name: str = name, write: Callable[[Any], None] = write) -> None:
            start = time.thread_time()
            try:
                write(batch)
            finally:
                subject.sink_cpu[name] = subject.sink_cpu.get(name, 0.0) + time.thread_time() - start

        sink.write = timed


def bare_subject(work: Workload, runs: int) -> Subject:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind, Status, StatusCode

    exporter = discard_exporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(batch_processor(exporter, runs))
    tracer = provider.get_tracer("bench")

    def llm() -> None:
        span = tracer.start_span(f"chat {MODEL}", kind=SpanKind.CLIENT, attributes=CHAT_START)
        span.set_attributes(CHAT_END)
        span.end()

    def one_run() -> None:
        work.next_input()
        with tracer.start_as_current_span(f"invoke_agent {AGENT}", attributes=RUN_START) as span:
            llm()
            for _ in range(TOOL_CALLS):
                args = work.next_args()
                with tracer.start_as_current_span(f"execute_tool {TOOL}", attributes=TOOL_START) as tool:
                    _search(work, **args)
                    tool.set_attributes(TOOL_END)
            llm()
            span.set_attributes(RUN_END)
            span.add_event("agent.stop", STOP_EVENT)
            span.set_status(Status(StatusCode.OK))

    def run(n: int) -> None:
        for _ in range(n):
            one_run()

    return Subject("bare", run, lambda: provider.force_flush(), exporter)


def _search(work: Workload, query: str, filters: Any, user: Any, context: Any) -> Any:
    """Search the knowledge base."""
    return work.next_result()


def tool_function(work: Workload) -> Callable[..., Any]:
    """The loop's tool, a plain function with the signature and docstring of a real one."""

    def search(query: str, filters: Any, user: Any, context: Any) -> Any:
        return work.next_result()

    search.__doc__ = TOOL_DOC
    search.__name__ = TOOL
    return search


def agent_otel_subject(key: str, work: Workload, runs: int, store_dir: str) -> Subject:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    import agent_otel
    from agent_otel import runtime, sdk

    exporter = discard_exporter()
    agent_otel.setup(
        "bench",
        store=os.path.join(store_dir, "runs.db") if key in ("default", "store_discard") else False,
        instrument=False,
        tracer_provider=TracerProvider(shutdown_on_exit=False),
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False),
        span_exporters=[exporter],
        config={"exporter": {"probe_local": False}},
    )
    search = agent_otel.tool(tool_function(work))

    def run(n: int) -> None:
        for _ in range(n):
            with agent_otel.run(AGENT, model=MODEL, input=work.next_input()) as run:
                run.record_llm(model=MODEL, input_tokens=LLM_USAGE[0][0], output_tokens=LLM_USAGE[0][1])
                for _ in range(TOOL_CALLS):
                    search(**work.next_args())
                run.record_llm(model=MODEL, input_tokens=LLM_USAGE[1][0], output_tokens=LLM_USAGE[1][1])

    def flush() -> None:
        if not sdk.flush(60):
            raise RuntimeError("agent-otel did not flush within 60 s")

    subject = Subject(key, run, flush, exporter)
    sinks = runtime.current().pipeline.sinks()
    if key == "store_discard":
        for sink in sinks:
            if type(sink).__name__ == "StoreSink":
                sink.write = lambda batch: None  # type: ignore[method-assign]
    time_sinks(subject, sinks)
    return subject


def peer_loop(
    work: Workload,
    search: Callable[..., Any],
    llm: Callable[[tuple[int, int]], None],
    as_run: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> Callable[[int], None]:
    """A peer's ``run(n)``: the loop's function (decorated by ``as_run``, the peer's agent primitive)
    making 1 LLM request, the tool calls with the workload's args and a second request, n times."""

    def one_run(question: dict[str, Any]) -> None:
        llm(LLM_USAGE[0])
        for _ in range(TOOL_CALLS):
            search(**work.next_args())
        llm(LLM_USAGE[1])

    traced = as_run(one_run)

    def run(n: int) -> None:
        for _ in range(n):
            traced(work.next_input())

    return run


def openllmetry_subject(work: Workload, runs: int) -> Subject:
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import tool, workflow
    from traceloop.sdk.tracing.manual import LLMMessage, LLMUsage, track_llm_call

    exporter = discard_exporter()
    Traceloop.init(
        app_name="bench",
        exporter=exporter,
        disable_batch=False,
        telemetry_enabled=False,
        instruments=set(),  # no library auto-instrumentation: the loop uses none
    )
    from traceloop.sdk.tracing.tracing import TracerWrapper

    wrapper = TracerWrapper.instance
    search = tool(name=TOOL)(tool_function(work))
    messages = [LLMMessage(role="user", content="Can I get a refund for a late delivery?")]

    def llm(tokens: tuple[int, int]) -> None:
        with track_llm_call(vendor="openai", type="chat") as span:
            span.report_request(model=MODEL, messages=messages)
            span.report_response(MODEL, ["Let me look that up."])
            span.report_usage(
                LLMUsage(prompt_tokens=tokens[0], completion_tokens=tokens[1], total_tokens=sum(tokens))
            )

    run = peer_loop(work, search, llm, workflow(name=AGENT))
    return Subject("openllmetry", run, wrapper.flush, exporter)


def openlit_subject(work: Workload, runs: int) -> Subject:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    # OpenLIT uses a global TracerProvider that is set already: that is how it gets the exporter.
    exporter = discard_exporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(batch_processor(exporter, runs))
    trace.set_tracer_provider(provider)
    import openlit
    from openlit._instrumentors import MODULE_NAME_MAP

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as pricing:  # else from GitHub
        pricing.write("{}")
    try:
        openlit.init(
            service_name="bench",
            disable_batch=False,
            disable_metrics=True,  # its trace primitives record no metrics; its meter would need an exporter
            disabled_instrumentors=list(MODULE_NAME_MAP),
            pricing_json=pricing.name,
        )
    finally:
        os.unlink(pricing.name)
    # @openlit.trace sets the function's return value as an attribute; a dict is refused with a warning
    # per call, which would measure logging, not tracing.
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)
    search = openlit.trace(tool_function(work))

    def llm(tokens: tuple[int, int]) -> None:
        with openlit.start_trace(f"chat {MODEL}") as span:
            span.set_metadata(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": MODEL,
                    "gen_ai.usage.input_tokens": tokens[0],
                    "gen_ai.usage.output_tokens": tokens[1],
                }
            )
            span.set_result("Let me look that up.")

    run = peer_loop(work, search, llm, openlit.trace)
    return Subject("openlit", run, lambda: provider.force_flush(), exporter)


def langfuse_subject(work: Workload, runs: int) -> Subject:
    from langfuse import Langfuse, observe
    from opentelemetry.sdk.trace import TracerProvider

    exporter = discard_exporter()
    provider = TracerProvider(shutdown_on_exit=False)
    client = Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        base_url="http://127.0.0.1:9",  # never contacted: spans go to span_exporter, the guard blocks rest
        tracer_provider=provider,  # its own provider, not the global one
        span_exporter=exporter,
    )
    search = observe(name=TOOL, as_type="tool")(tool_function(work))

    def llm(tokens: tuple[int, int]) -> None:
        with client.start_as_current_observation(
            name=f"chat {MODEL}",
            as_type="generation",
            model=MODEL,
            usage_details={"input": tokens[0], "output": tokens[1]},
        ):
            pass

    run = peer_loop(work, search, llm, observe(name=AGENT, as_type="agent"))
    return Subject("langfuse", run, client.flush, exporter)


def openinference_subject(work: Workload, runs: int) -> Subject:
    from openinference.instrumentation import TracerProvider as OITracerProvider
    from openinference.instrumentation import get_llm_attributes

    exporter = discard_exporter()
    provider = OITracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(batch_processor(exporter, runs))
    tracer = provider.get_tracer("bench")
    search = tracer.tool(name=TOOL)(tool_function(work))

    def llm(tokens: tuple[int, int]) -> None:
        attributes = get_llm_attributes(
            provider="openai",
            model_name=MODEL,
            token_count={"prompt": tokens[0], "completion": tokens[1], "total": sum(tokens)},
        )
        with tracer.start_as_current_span(
            f"chat {MODEL}", openinference_span_kind="llm", attributes=attributes
        ):
            pass

    run = peer_loop(work, search, llm, tracer.agent(name=AGENT))
    return Subject("openinference", run, lambda: provider.force_flush(), exporter)


PEER_SUBJECTS: dict[str, Callable[[Workload, int], Subject]] = {
    "openllmetry": openllmetry_subject,
    "openlit": openlit_subject,
    "langfuse": langfuse_subject,
    "openinference": openinference_subject,
}


# --- one measuring process ----------------------------------------------------------------------------


def measure(subjects: list[Subject], runs: int, rounds: int) -> None:
    """``rounds`` rounds of ``runs`` runs per subject, alternating which subject goes first."""
    for subject in subjects:  # warm up caches, lazily created threads, the store's tables
        subject.run(max(2, runs // 10))
        subject.flush()
    for r in range(rounds):
        order = subjects if r % 2 == 0 else subjects[::-1]
        for subject in order:
            gc.collect()
            before = subject.exporter.count
            subject.sink_cpu.clear()
            t_proc, t_thread = time.process_time(), time.thread_time()
            subject.run(runs)
            thread_cpu = time.thread_time() - t_thread
            subject.flush()
            proc_cpu = time.process_time() - t_proc
            subject.hot.append(thread_cpu / runs * 1e6)
            subject.total.append(proc_cpu / runs * 1e6)
            subject.spans += subject.exporter.count - before
            for name, cpu in subject.sink_cpu.items():
                subject.sinks.setdefault(name, []).append(cpu / runs * 1e6)


def child(key: str, runs: int, rounds: int, out: str) -> None:
    scrub_environment()
    guard = NetworkGuard()
    guard.install()  # for the life of the process: SDK init, measurement, flushes, exit handlers
    work = Workload(runs * TOOL_CALLS + 64)
    with tempfile.TemporaryDirectory() as store_dir:
        subjects = [bare_subject(work, runs)]
        if key in ("default", "store_off", "store_discard"):
            subjects.append(agent_otel_subject(key, work, runs, store_dir))
        else:
            subjects.append(PEER_SUBJECTS[key](work, runs))
        measure(subjects, runs, rounds)
        sockets = open_sockets()
        atexit._run_exitfuncs()  # the SDKs' exit handlers (final flushes) run under the guard, counted
    results: dict[str, Any] = {"key": key, "network_attempts": guard.attempts, "open_sockets": sockets}
    for name, s in zip(("bare", "case"), subjects, strict=True):
        results[name] = {
            "hot_us": statistics.median(s.hot),
            "total_us": statistics.median(s.total),
            "hot_us_rounds": [round(x, 1) for x in s.hot],
            "total_us_rounds": [round(x, 1) for x in s.total],
            "spans_per_run": s.spans / (runs * rounds),
            "sinks_us": {k: statistics.median(v) for k, v in s.sinks.items()},
        }
    results["hot_ratio"] = results["case"]["hot_us"] / results["bare"]["hot_us"]
    results["total_ratio"] = results["case"]["total_us"] / results["bare"]["total_us"]
    with open(out, "w") as f:
        json.dump(results, f)


BASELINE = "@baseline"  # suffix of an agent-otel case measured with --baseline-src


def run_child(key: str, runs: int, rounds: int, baseline_src: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if key.endswith(BASELINE):  # the same case with another agent-otel's source first on the path
        key = key.removesuffix(BASELINE)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (baseline_src, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        proc = subprocess.run(
            [
                *(sys.executable, os.path.abspath(__file__), "--runs", str(runs), "--rounds", str(rounds)),
                *("--child", key, "--child-out", out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as f:
                return json.load(f)
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-12:]
    return {"key": key, "failed": "\n".join(tail)}


def import_time(samples: int, src: str | None = None) -> dict[str, float]:
    """Wall and CPU time of ``import agent_otel`` in fresh processes (medians), and of the interpreter."""
    code = (
        "import time; w, c = time.perf_counter(), time.process_time(); import agent_otel; "
        "print(time.perf_counter() - w, time.process_time() - c)"
    )
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    walls, cpus, bare = [], [], []
    for _ in range(samples):
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        out = run.stdout
        wall, cpu = (float(x) for x in out.split())
        walls.append(wall * 1000)
        cpus.append(cpu * 1000)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append((time.perf_counter() - start) * 1000)
    return {
        "wall_ms": statistics.median(walls),
        "cpu_ms": statistics.median(cpus),
        "python_startup_ms": statistics.median(bare),
    }


# --- the report ---------------------------------------------------------------------------------------


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed(case: Case) -> bool:
    if case.dist is None:
        return True
    try:
        return version(case.dist) is not None and importlib.util.find_spec(case.module or "") is not None
    except ModuleNotFoundError:
        return False


def summarize(key: str, processes: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [p for p in processes if "failed" not in p]
    row: dict[str, Any] = {"key": key, "label": BY_KEY[key].label, "processes": len(ok)}
    if len(ok) < len(processes):
        row["failed"] = next(p["failed"] for p in processes if "failed" in p)
    if not ok:
        return row
    for name in ("hot_ratio", "total_ratio"):
        values = [p[name] for p in ok]
        row[name] = statistics.median(values)
        row[f"{name}_range"] = (min(values), max(values))
    for name in ("hot_us", "total_us"):
        row[name] = statistics.median(p["case"][name] for p in ok)
        row[f"bare_{name}"] = statistics.median(p["bare"][name] for p in ok)
    row["spans_per_run"] = min(p["case"]["spans_per_run"] for p in ok)
    names = {name for p in ok for name in p["case"].get("sinks_us", {})}
    row["sinks_us"] = {
        n: statistics.median(p["case"]["sinks_us"].get(n, 0.0) for p in ok) for n in sorted(names)
    }
    row["bare_spans_per_run"] = min(p["bare"]["spans_per_run"] for p in ok)
    row["network_attempts"] = [a for p in ok for a in p["network_attempts"]]
    row["open_sockets"] = sorted({p["open_sockets"] for p in ok if p["open_sockets"] is not None})
    return row


def render(results: dict[str, Any]) -> str:
    v = results["versions"]
    rows = results["cases"]
    attempts = sum(len(r.get("network_attempts", [])) for r in rows)
    sockets = sorted({s for r in rows for s in r.get("open_sockets", [])})
    load = results["loadavg"]
    lines = [
        f"agent-otel {v['agent-otel']}: CPU per agent run (1 LLM request, {TOOL_CALLS} tool calls with ~1 KB "
        "args and ~2 KB results, 1 LLM request)",
        f"Python {v['python']}, opentelemetry-sdk {v['opentelemetry-sdk']}, {results['cpus']} CPUs, load "
        f"average {load[0]:.2f} at start, {results['load_end'][0]:.2f} at end.",
        f"Each case: {results['processes']} fresh processes, each alternating {results['rounds']} rounds of "
        f"{results['runs']} runs with bare OpenTelemetry spans",
        "(same attributes) in the same process; x = case / bare of its process, median over the processes "
        "[min-max].",
        "hot = CPU of the agent's thread; total = CPU of the whole process up to a flush of the case's "
        "pipeline.",
        f"Network: blocked in every measuring process, attempts: {attempts}; sockets open after: {sockets}.",
        "",
        f"{'case':<44}{'hot us':>8}{'total us':>10}{'hot x':>16}{'total x':>17}",
        "-" * 95,
    ]
    for row in rows:
        label = row["label"]
        if BY_KEY[row["key"]].dist:
            label = f"{label} {v.get(BY_KEY[row['key']].dist)}"
        if "hot_ratio" not in row:
            lines.append(f"{label:<44}{row.get('status') or 'FAILED: ' + row.get('failed', '')}")
            continue
        hot_lo, hot_hi = row["hot_ratio_range"]
        tot_lo, tot_hi = row["total_ratio_range"]
        lines.append(
            f"{label:<44}{row['hot_us']:>8.0f}{row['total_us']:>10.0f}"
            f"{row['hot_ratio']:>6.2f}x [{hot_lo:.2f}-{hot_hi:.2f}]"
            f"{row['total_ratio']:>6.2f}x [{tot_lo:.2f}-{tot_hi:.2f}]"
        )
    measured = [r for r in rows if "hot_ratio" in r]
    if measured:
        bare_hot = statistics.median(r["bare_hot_us"] for r in measured)
        bare_total = statistics.median(r["bare_total_us"] for r in measured)
        lines.insert(
            len(lines) - len(rows),
            f"{'bare OpenTelemetry spans (median of all processes)':<44}{bare_hot:>8.0f}{bare_total:>10.0f}"
            f"{1:>6.2f}x{'':>10}{1:>6.2f}x",
        )
    by_key = {r["key"]: r for r in measured}
    if "default" in by_key and "store_off" in by_key:
        on, off = by_key["default"], by_key["store_off"]
        per_call = TOOL_CALLS
        lines += [
            "",
            "The run store and replay recording (default - store_off, medians of their processes): "
            f"{on['hot_us'] - off['hot_us']:+.0f} us/run on the agent's thread, "
            f"{(on['total_us'] - on['hot_us']) - (off['total_us'] - off['hot_us']):+.0f} us/run in the "
            f"background ({per_call} tool calls and 2 LLM requests per run).",
        ]
    for row in measured:
        if row.get("sinks_us"):
            parts = ", ".join(f"{name} {us:.0f} us" for name, us in row["sinks_us"].items())
            lines.append(f"Event-thread CPU per run of {row['label']}, by sink: {parts}.")
    short = [
        f"{r['label']} ({r['spans_per_run']:.2f} spans/run)"
        for r in measured
        if r["spans_per_run"] < (TOOL_CALLS + 3) - 0.01 and r["key"] != "langfuse"
    ]
    if short:
        lines.append(f"WARNING: fewer spans exported than made, their export is not counted: {short}")
    imp = results.get("import")
    if imp:
        lines += [
            "",
            f"import agent_otel in a fresh process: {imp['wall_ms']:.0f} ms wall, {imp['cpu_ms']:.0f} ms CPU "
            f"(median of {results['import_samples']}; the interpreter itself starts in "
            f"{imp['python_startup_ms']:.0f} ms)",
        ]
    base = results.get("import_baseline")
    if base:
        lines.append(f"  baseline: {base['wall_ms']:.0f} ms wall, {base['cpu_ms']:.0f} ms CPU")
    lines += ["", "Setup:"]
    for case in (BY_KEY[r["key"]] for r in measured):
        lines += textwrap.wrap(
            f"{case.label}: {case.setup}", 104, initial_indent="  ", subsequent_indent="    "
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="agent runs per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per process (median)")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per case (median)")
    parser.add_argument(
        "--cases",
        default="all",
        help="comma-separated cases: " + ",".join(c.key for c in CASES) + " ('all': every installed one)",
    )
    parser.add_argument("--import-samples", type=int, default=9, help="fresh processes timing the import")
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead")
    parser.add_argument(
        "--baseline-src",
        help="also measure the agent-otel cases with this source directory first on PYTHONPATH (another "
        "version: a `git worktree` or `git archive` of it), interleaved with the others",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        child(args.child, args.runs, args.rounds, args.child_out)
        return 0

    keys = [c.key for c in CASES if not c.diagnostic] if args.cases == "all" else args.cases.split(",")
    unknown = set(keys) - set(BY_KEY)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    selected = [BY_KEY[k] for k in keys]
    runnable = [c for c in selected if installed(c)]
    versions = {
        "python": platform.python_version(),
        "agent-otel": version("agent-otel"),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
    }
    versions.update({c.dist: version(c.dist) for c in selected if c.dist})
    loadavg = os.getloadavg()
    per_case: dict[str, list[dict[str, Any]]] = {c.key: [] for c in runnable}
    if args.baseline_src:  # the agent-otel cases again, with another source tree, interleaved with these
        for case in [c for c in runnable if c.dist is None]:
            key = case.key + BASELINE
            BY_KEY[key] = Case(
                key, f"{case.label} (baseline)", None, None, f"{case.setup}; {args.baseline_src}"
            )
            runnable.append(BY_KEY[key])
            selected.append(BY_KEY[key])
            per_case[key] = []
    for p in range(args.processes):
        shift = p % max(len(runnable), 1)
        for case in runnable[shift:] + runnable[:shift]:
            per_case[case.key].append(run_child(case.key, args.runs, args.rounds, args.baseline_src))
    rows = []
    for case in selected:
        if case in runnable:
            rows.append(summarize(case.key, per_case[case.key]))
        else:
            rows.append(
                {
                    "key": case.key,
                    "label": case.label,
                    "status": f"not installed: pip install {case.dist} (or `make bench`); skipped",
                }
            )
    results = {
        "versions": versions,
        "cpus": os.cpu_count(),
        "loadavg": loadavg,
        "runs": args.runs,
        "rounds": args.rounds,
        "processes": args.processes,
        "cases": rows,
        "import_samples": args.import_samples,
        "import": import_time(args.import_samples) if args.import_samples else None,
        "import_baseline": (
            import_time(args.import_samples, args.baseline_src)
            if args.import_samples and args.baseline_src
            else None
        ),
        "load_end": os.getloadavg(),
        "per_process": per_case,
    }
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0 if all("failed" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
