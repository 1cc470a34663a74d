"""Agent traffic for tests/e2e/test_stack.py, run as its own process against the stack under test.

    python -m tests.e2e.stack_driver MANIFEST [STOP_FILE] [--rounds N] [--max-seconds S]

It uses only the public API, pointed at the collector by the standard OTEL_* variables, and makes:

1. ``--rounds`` rounds of a scripted mix, two agents each: completed runs with tool calls and LLM usage, a
   tool error, a tool timeout, a loop the loop guard stops, a kill switch, a step budget, a tool that
   succeeds on retry, and runs carrying secrets and personal data (tool args with an e-mail address and a
   bearer token, which agent-otel itself redacts; span attributes set directly by "application code",
   which only the collector's redaction can catch). Then it writes MANIFEST: one record per run
   (run_id, trace_id, agent, stop_reason, whether secrets were planted) and the planted strings.
2. Steady traffic of the same mix until STOP_FILE exists or ``--max-seconds`` pass, so that the test's
   PromQL sees fresh samples (rate() needs two inside its window) while it checks the dashboards.

With ``--in-flight BEFORE AFTER`` it makes one run instead, paused half-way until STOP_FILE appears (see
in_flight()): the test restarts the collector in between.

With ``--paused AGENT RUNS SECONDS`` it makes only RUNS runs of AGENT, side by side, that each wait SECONDS
and then pause for a human (see paused()), into the run store setup() opens by default; MANIFEST gets
their records (tests/e2e/test_demo.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import agent_otel
from agent_otel import sdk

AGENTS = ("support-agent", "research-agent")

# Strings that must not reach Tempo. The first two go into tool arguments (agent-otel redacts those);
# the others are set on spans and on the resource directly, so only the collector can remove them.
ARG_EMAIL = "carol.customer@example.com"
ARG_TOKEN = "Bearer s3cr3tT0kenValue0123456789"
SPAN_EMAIL = "alice.private@example.com"
SPAN_API_KEY = "sk-live0123456789abcdefghijKLMN"
SPAN_NOTE_EMAIL = "dave.person@example.net"
SPAN_NOTE_TOKEN = "Bearer zyxwvutsrqponmlk9876543210"
SPAN_BASIC = "Basic dXNlcjpodW50ZXIyaHVudGVyMg=="
RESOURCE_EMAIL = "erin.owner@example.org"
# Only their camelCase key says they are secret (no pattern matches the value itself).
CAMEL_API_KEY = "plain-openai-key-9f8e7d6c5b4a"
CAMEL_AUTH_TOKEN = "plain-auth-token-0a1b2c3d4e5f"
# Inside a string array.
CC_EMAILS = ("frank.cc@example.net", "grace.cc@example.net")
# In the message of an exception a tool raised (the tool span's status message and exception event; the
# SDK redacts those itself), and in the status message application code sets on a span of its own.
STATUS_EMAIL = "heidi.status@example.net"
APP_STATUS_KEY = "sk-proj-statusmessage0123456789"

SECRETS = (
    ARG_EMAIL,
    ARG_TOKEN,
    SPAN_EMAIL,
    SPAN_API_KEY,
    SPAN_NOTE_EMAIL,
    SPAN_NOTE_TOKEN,
    SPAN_BASIC,
    RESOURCE_EMAIL,
    CAMEL_API_KEY,
    CAMEL_AUTH_TOKEN,
    *CC_EMAILS,
    STATUS_EMAIL,
    APP_STATUS_KEY,
)


def _fetch(url: str, headers: dict[str, str] | None = None, to: str = "") -> dict[str, Any]:
    time.sleep(0.002)
    return {"status": 200, "url": url, "bytes": 512}


def _search(query: str) -> list[str]:
    time.sleep(0.001)
    return [f"doc-{len(query)}", "doc-2"]


def _broken(url: str, headers: dict[str, str] | None = None, to: str = "") -> Any:
    raise ConnectionError("upstream refused the connection")


def _slow(order_id: str) -> Any:
    raise TimeoutError("payments API did not answer in 10 s")


class _Flaky:
    """Fails the first call, then works: a tool that succeeds on retry."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, query: str) -> list[str]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionResetError("reset by peer")
        return ["doc-1"]


def _plant_secrets() -> None:
    """What careless application code might do: personal data and keys straight onto the run span."""
    span = agent_otel.current_run().span
    span.set_attribute("user.email", SPAN_EMAIL)
    span.set_attribute("api_key", SPAN_API_KEY)
    span.set_attribute("http.request.header.authorization", SPAN_BASIC)
    span.set_attribute("note", f"escalate to {SPAN_NOTE_EMAIL}, use {SPAN_NOTE_TOKEN}")
    span.set_attribute("openaiApiKey", CAMEL_API_KEY)
    span.set_attribute("authToken", CAMEL_AUTH_TOKEN)
    span.set_attribute("cc_list", list(CC_EMAILS))


def _no_account(customer: str) -> Any:
    raise LookupError(f"no account for {STATUS_EMAIL} ({customer})")


def _app_span_with_a_status_message() -> None:
    """Application code's own span, inside the run, failing with a message agent-otel never sees."""
    with trace.get_tracer("billing-app").start_as_current_span("billing.charge") as span:
        span.set_status(Status(StatusCode.ERROR, f"card declined for {STATUS_EMAIL} using {APP_STATUS_KEY}"))


class Driver:
    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def _record(self, run: Any, planted: bool = False, decided: bool = False) -> None:
        result = run.result
        self.runs.append(
            {
                "run_id": run.run_id,
                "trace_id": run.trace_id,
                "agent": run.agent,
                "stop_reason": str(result.stop_reason) if result is not None else None,
                "planted": planted,
                "decided": decided,
            }
        )

    def _args(self, n: int) -> dict[str, Any]:
        return {
            "url": f"https://api.example.test/orders/{n}",
            "to": ARG_EMAIL,
            "headers": {"Authorization": ARG_TOKEN},
        }

    def completed(self, agent: str, n: int, planted: bool = False) -> None:
        with agent_otel.run(
            agent, model="gpt-4o", prompt_version="v12", tools_version="3", input={"ticket": n}
        ) as run:
            run.call_tool("http.get", _fetch, self._args(n))
            run.record_llm(model="gpt-4o", input_tokens=800 + n % 7 * 40, output_tokens=96)
            run.call_tool("search", _search, {"query": f"refund policy {n}"})
            run.record_llm(model="gpt-4o-mini", input_tokens=300, output_tokens=40)
            if planted:
                _plant_secrets()
                with contextlib.suppress(LookupError):  # the agent handles it and completes
                    run.call_tool("crm.lookup", _no_account, {"customer": f"c-{n}"})
                _app_span_with_a_status_message()
        self._record(run, planted)

    def tool_error(self, agent: str, n: int) -> None:
        try:
            with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
                run.record_llm(model="gpt-4o", input_tokens=700, output_tokens=60)
                run.call_tool("http.get", _broken, self._args(n))
        except ConnectionError:
            pass
        self._record(run)

    def tool_timeout(self, agent: str, n: int) -> None:
        try:
            with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
                run.call_tool("payments.refund", _slow, {"order_id": f"o-{n}"})
        except TimeoutError:
            pass
        self._record(run)

    def loop(self, agent: str, n: int) -> None:
        try:
            with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
                for _ in range(10):  # the loop guard stops the 4th identical call
                    run.call_tool("search", _search, {"query": "same question"})
        except agent_otel.AgentStopped:
            pass
        self._record(run)

    def kill_switch(self, agent: str, n: int, planted: bool = False) -> None:
        with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
            run.call_tool("search", _search, {"query": f"cancel order {n}"})
            if planted:
                _plant_secrets()
            run.stop("kill_switch")
        self._record(run, planted)

    def step_budget(self, agent: str, n: int) -> None:
        try:
            with agent_otel.run(
                agent, model="gpt-4o", input={"ticket": n}, budget=agent_otel.Budget(max_steps=2)
            ) as run:
                for i in range(5):
                    run.call_tool("search", _search, {"query": f"step {i}"})
        except agent_otel.AgentStopped:
            pass
        self._record(run)

    def interrupted(self, agent: str, n: int, wait_s: float = 0.0) -> None:
        """A run that pauses for a human (stop reason interrupted, class pause) after ``wait_s``."""
        with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
            run.call_tool("search", _search, {"query": f"refund over the limit {n}"})
            time.sleep(wait_s)
            run.stop("interrupted")
        self._record(run)

    def decided(self, agent: str, n: int) -> None:
        """The resume of a paused run: a human rejected one waiting call and approved another, as a
        framework integration hands the decisions to the run (an agent.approval event each); it completes."""
        from agent_otel.integrations._common import record_approvals

        with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
            decisions = [(f"call-{n}-a", "payments.refund", False), (f"call-{n}-b", "search", True)]
            record_approvals(run, decisions)
            run.call_tool("search", _search, {"query": f"approved {n}"})
            run.record_llm(model="gpt-4o", input_tokens=400, output_tokens=50)
        self._record(run, decided=True)

    def retried(self, agent: str, n: int) -> None:
        with agent_otel.run(agent, model="gpt-4o", input={"ticket": n}) as run:
            run.call_tool(
                "search",
                _Flaky(),
                {"query": f"flaky {n}"},
                retry=agent_otel.Retry(max_attempts=3, base_delay_s=0.01, jitter="none"),
            )
            run.record_llm(model="gpt-4o", input_tokens=500, output_tokens=50)
        self._record(run)

    def round(self, n: int, completed_runs: int) -> None:
        for k, agent in enumerate(AGENTS):
            base = n * 100 + k * 50
            for i in range(completed_runs):
                self.completed(agent, base + i)
            self.completed(agent, base + 20, planted=True)
            self.retried(agent, base + 21)
            self.tool_error(agent, base + 22)
            self.tool_timeout(agent, base + 23)
            self.loop(agent, base + 24)
            self.kill_switch(agent, base + 25, planted=(k == 0))
            self.step_budget(agent, base + 26)
            self.interrupted(agent, base + 27)
            self.decided(agent, base + 28)


def in_flight(manifest: str, resume_file: str, before: int, after: int) -> None:
    """One run whose first ``before`` tool calls end (and are exported) before MANIFEST is written, and
    whose other ``after`` tool calls and the run span only after RESUME_FILE appears; it ends tool_error."""
    resume = Path(resume_file)
    try:
        with agent_otel.run("inflight-agent", model="gpt-4o", input={"ticket": "inflight"}) as run:
            for i in range(before):
                run.call_tool("search", _search, {"query": f"before {i}"})
            sdk.flush(5.0)  # the first spans are at the collector before the test restarts it
            Path(manifest).write_text(json.dumps({"run_id": run.run_id, "trace_id": run.trace_id}))
            deadline = time.monotonic() + 120
            while not resume.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            for i in range(after - 1):
                run.call_tool("search", _search, {"query": f"after {i}"})
            run.call_tool("http.get", _broken, {"url": "https://api.example.test/after"})
    except ConnectionError:
        pass


def paused(agent: str, runs: int, wait_s: float) -> list[dict[str, Any]]:
    """``runs`` runs of ``agent`` at once (a thread each), each pausing for a human after ``wait_s``."""
    driver = Driver()
    threads = [
        threading.Thread(target=driver.interrupted, args=(agent, 9000 + i, wait_s)) for i in range(runs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return driver.runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest")
    parser.add_argument("stop_file", nargs="?", default="")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--completed-per-round", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=240.0)
    parser.add_argument("--in-flight", nargs=2, type=int, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--paused", nargs=3, metavar=("AGENT", "RUNS", "SECONDS"))
    args = parser.parse_args(argv)

    if args.paused:
        agent, runs, wait_s = args.paused[0], int(args.paused[1]), float(args.paused[2])
        agent_otel.setup(service_name="paused-runs", instrument=False)
        records = paused(agent, runs, wait_s)
        agent_otel.shutdown(10.0)
        Path(args.manifest).write_text(json.dumps({"runs": records}))
        return 0

    if args.in_flight:
        agent_otel.setup(service_name="stack-e2e-inflight", store=False, instrument=False)
        in_flight(args.manifest, args.stop_file, *args.in_flight)
        agent_otel.shutdown(10.0)
        return 0

    # Personal data on the resource too: the collector redacts resource attributes of spans and metrics.
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = f"deployment.owner_email={RESOURCE_EMAIL}"
    agent_otel.setup(
        service_name="stack-e2e",
        store=False,
        instrument=False,
        config={"logging": {"events": {"store_args": True}}},
    )
    driver = Driver()
    deadline = time.monotonic() + args.max_seconds
    for n in range(args.rounds):
        driver.round(n, args.completed_per_round)
        time.sleep(0.5)  # spread the rounds over several metric exports
    manifest = {"runs": driver.runs, "secrets": list(SECRETS)}
    tmp = Path(args.manifest + ".tmp")
    tmp.write_text(json.dumps(manifest))
    tmp.replace(args.manifest)

    stop = Path(args.stop_file)
    n = args.rounds
    while not stop.exists() and time.monotonic() < deadline:
        driver.runs = []
        driver.round(n, 1)
        n += 1
        time.sleep(1.0)
    agent_otel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
