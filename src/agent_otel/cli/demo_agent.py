"""A simulated customer-support agent for ``agent-otel demo``: the real agent_otel API, no network, no keys.

Each run answers one support ticket: plan (LLM), search the knowledge base, look the customer up in the
CRM, fetch the order over HTTP, draft (LLM), send an e-mail. Everything the tools and the "LLM" return
comes from a per-run ``random.Random`` derived from the demo's seed, so a seed fixes every tool call,
argument hash, error and token count; only run ids and timings differ between two demos.

Scenarios:

* ``normal``: about four tool calls per run; now and then a CRM timeout ends a run with ``tool_timeout``.
* ``incident`` (the seed's slowdown): the orders API answers 429/503 most of the time; ``http.get`` retries
  up to 8 times *without jitter* (``agent_otel.Retry(jitter="none")``); when it still fails, or the answer
  is a partial one served from a cache, the agent re-plans, searches and fetches again, so tool calls per
  run climb to about twelve, and tokens per request and latency climb with them. One incident run in
  twelve (by position, so every demo shows it whatever the seed) meets the payments endpoint hard down:
  the agent asks for it again and again until the loop guard ends the run ``loop_detected``. Other runs
  may end ``tool_error`` when the retries never get through.
* ``wrong-email``: the agent looks the customer up by *name*, the CRM returns two customers, and the reply
  goes to the wrong one. The run completes; only its trace shows what happened.

Simulated time runs at ``TIME_SCALE`` of real time (a 900 ms LLM call sleeps 90 ms), so the demo takes
seconds while durations keep realistic proportions; the recorded durations are the real ones. Every
simulated wait ends at once when :data:`CANCEL` is set (Ctrl-C): the run then ends ``cancelled``, as any
run interrupted by KeyboardInterrupt does.
"""

from __future__ import annotations

import random
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import agent_otel

AGENT = "support-agent"
MODEL = "gpt-4o"
PROMPT_VERSION = "v12"
TOOLS_VERSION = "3"
TIME_SCALE = 0.1
ORDERS_API = "https://orders.internal/api/v2"
SCENARIOS = ("normal", "incident", "wrong-email")
#: One incident run in this many meets the payments endpoint hard down (and ends loop_detected).
HARD_DOWN_EVERY = 12
#: Set by ``agent-otel demo`` on Ctrl-C: runs in flight stop at their next simulated wait.
CANCEL = threading.Event()

_TOPICS = (
    ("refund", "Refund for a damaged item"),
    ("shipping", "Where is my order?"),
    ("billing", "Charged twice this month"),
    ("exchange", "Exchange for a different size"),
    ("cancel", "Cancel my order before it ships"),
)
_FIRST = ("Alex", "Sam", "Robin", "Jordan", "Kim", "Taylor", "Noor", "Mika", "Lee", "Ari")
_LAST = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Byrne", "Haddad", "Kowalski", "Reyes")


class HTTPError(Exception):
    """An HTTP error status from the simulated upstream; ``error.type`` is the subclass name."""

    status = 500

    def __init__(self, url: str) -> None:
        super().__init__(f"{self.status} from {url}")
        self.url = url


class TooManyRequests(HTTPError):
    status = 429


class ServiceUnavailable(HTTPError):
    status = 503


class CRMTimeout(TimeoutError):
    """The CRM did not answer in time."""


@dataclass
class World:
    """What one run's tools see: its ticket and a random stream fixed by the seed."""

    scenario: str
    rng: random.Random
    ticket: dict[str, Any]
    customers: list[dict[str, Any]] = field(default_factory=list)
    context_tokens: int = 0
    down: str = ""  # an endpoint that fails on every attempt (see HARD_DOWN_EVERY)

    def sleep(self, low_ms: float, high_ms: float) -> float:
        simulated = self.rng.uniform(low_ms, high_ms)
        if CANCEL.wait(simulated * TIME_SCALE / 1000) if TIME_SCALE else CANCEL.is_set():
            raise KeyboardInterrupt("agent-otel demo interrupted")
        return simulated

    def attempt_fails(self, url: str) -> bool:
        if self.scenario != "incident":
            return self.rng.random() < 0.02
        failed = self.rng.random() < 0.8
        return failed or bool(self.down and url.startswith(self.down))


_world: ContextVar[World] = ContextVar("agent_otel_demo_world")


def _customer(rng: random.Random, cid: str, name: str) -> dict[str, Any]:
    local = name.lower().replace(" ", ".")
    return {
        "id": cid,
        "name": name,
        "email": f"{local}@example.com",
        "tier": rng.choice(["standard", "plus"]),
    }


def make_ticket(rng: random.Random, index: int, scenario: str) -> World:
    topic, subject = rng.choice(_TOPICS)
    if scenario == "wrong-email":
        right = {"id": "C-2219", "name": "Dana Whitfield", "email": "d.whitfield@example.com", "tier": "plus"}
        wrong = {
            "id": "C-2291",
            "name": "Dana Whitfield",
            "email": "dana.whitfield@example.org",
            "tier": "standard",
        }
        customers = [wrong, right]  # the CRM's name search returns the wrong Dana first
        cust = right
    else:
        cust = _customer(rng, f"C-{rng.randint(1000, 9999)}", f"{rng.choice(_FIRST)} {rng.choice(_LAST)}")
        customers = [cust]
    ticket = {
        "ticket_id": f"T-{rng.randint(100000, 999999)}",
        "customer_id": cust["id"],
        "customer_name": cust["name"],
        "order_id": f"ord_{rng.getrandbits(32):08x}",
        "topic": topic,
        "subject": subject,
    }
    return World(scenario, rng, ticket, customers)


# --- tools: plain functions made tools by agent_otel -------------------------------------------------


@agent_otel.tool(name="search")
def search(query: str, top_k: int = 3) -> list[dict[str, Any]]:
    w = _world.get()
    w.sleep(40, 160)
    return [
        {"doc": f"kb-{w.rng.randint(100, 999)}", "score": round(w.rng.uniform(0.5, 0.99), 3)}
        for _ in range(top_k)
    ]


@agent_otel.tool(name="crm.lookup")
def crm_lookup(customer: str) -> dict[str, Any]:
    w = _world.get()
    w.sleep(30, 120)
    if w.scenario == "normal" and w.rng.random() < 0.03:
        w.sleep(800, 1200)
        raise CRMTimeout(f"crm.lookup {customer!r} timed out")
    matches = [c for c in w.customers if customer in (c["id"], c["name"])]
    return {"matches": matches, "count": len(matches)}


@agent_otel.tool(
    name="http.get",
    retry=agent_otel.Retry(
        max_attempts=8, base_delay_s=0.005, max_delay_s=0.04, jitter="none", retry_on=(HTTPError,)
    ),
)
def http_get(url: str) -> dict[str, Any]:
    w = _world.get()
    w.sleep(60, 250)
    if w.attempt_fails(url):
        error = TooManyRequests if w.rng.random() < 0.6 else ServiceUnavailable
        raise (ServiceUnavailable if w.down and url.startswith(w.down) else error)(url)
    partial = w.scenario == "incident" and w.rng.random() < 0.6
    body = {"order_id": w.ticket["order_id"], "state": w.rng.choice(["paid", "shipped", "delivered"])}
    return {"status": 200, "partial": partial, "body": body}


@agent_otel.tool(name="send_email", side_effects=True)
def send_email(to: str, customer_id: str, subject: str, body: str) -> dict[str, Any]:
    w = _world.get()
    w.sleep(80, 200)
    return {"accepted": True, "message_id": f"msg-{w.rng.getrandbits(40):010x}"}


# --- the agent ----------------------------------------------------------------------------------------


def _think(run: agent_otel.Run, w: World, out_low: int = 60, out_high: int = 180) -> None:
    """One simulated LLM request: prompt + context so far in, a short answer out."""
    start = time.perf_counter()
    w.sleep(500, 1400)
    elapsed_ms = (time.perf_counter() - start) * 1000
    input_tokens = 850 + w.context_tokens + w.rng.randint(0, 200)
    output_tokens = w.rng.randint(out_low, out_high)
    w.context_tokens += output_tokens + 120
    run.record_llm(
        model=MODEL, input_tokens=input_tokens, output_tokens=output_tokens, duration_ms=elapsed_ms
    )


def _reply(run: agent_otel.Run, w: World, customer: dict[str, Any]) -> None:
    _think(run, w, 150, 320)
    t = w.ticket
    send_email(
        to=customer["email"],
        customer_id=customer["id"],
        subject=f"Re: {t['subject']} [{t['ticket_id']}]",
        body=f"Hi {customer['name'].split()[0]}, about order {t['order_id']}: ...",
    )


def _normal(run: agent_otel.Run, w: World) -> None:
    t = w.ticket
    _think(run, w)
    search(query=t["subject"])
    found = crm_lookup(customer=t["customer_id"])
    w.context_tokens += 180
    http_get(url=f"{ORDERS_API}/orders/{t['order_id']}")
    w.context_tokens += 220
    if w.rng.random() < 0.3:
        search(query=f"{t['topic']} policy")
    _reply(run, w, found["matches"][0])


def _incident(run: agent_otel.Run, w: World) -> None:
    t = w.ticket
    _think(run, w)
    search(query=t["subject"])
    found = crm_lookup(customer=t["customer_id"])
    # While the orders API struggles the summary comes back partial, so the agent also asks for the
    # details, and every failure or partial answer sends it back to re-plan and fetch again.
    base = f"{ORDERS_API}/orders/{t['order_id']}"
    pending = [base, f"{base}/shipments", f"{base}/payments", f"{base}/returns"]
    last_error: HTTPError | None = None
    rounds = 0
    while pending and rounds < 16:
        rounds += 1
        url = pending.pop(0)
        try:
            answer = http_get(url=url)
        except HTTPError as exc:
            last_error = exc
            _think(run, w)
            search(query=f"{t['topic']}: {url.rsplit('/', 1)[-1]} returned {exc.status}")
            # The same call again (at once after a 503, "temporarily unavailable"; after the others for a
            # 429): enough of these and the loop guard stops the run.
            if exc.status == ServiceUnavailable.status:
                pending.insert(0, url)
            else:
                pending.append(url)
            continue
        w.context_tokens += 260
        if answer["partial"] and "?" not in url:
            _think(run, w, 40, 90)
            pending.append(f"{url}?consistent=true")
    if pending and last_error is not None:
        raise last_error  # gave up: the tool's own error ends the run (tool_error)
    _reply(run, w, found["matches"][0])


def _wrong_email(run: agent_otel.Run, w: World) -> None:
    t = w.ticket
    _think(run, w)
    search(query=t["subject"])
    found = crm_lookup(customer=t["customer_name"])  # the bug: by name, not by customer_id
    w.context_tokens += 180
    http_get(url=f"{ORDERS_API}/orders/{t['order_id']}")
    _reply(run, w, found["matches"][0])  # and it takes the first match without checking


FLOWS = {"normal": _normal, "incident": _incident, "wrong-email": _wrong_email}


@dataclass
class Outcome:
    index: int
    scenario: str
    run_id: str
    stop_reason: str
    ticket: dict[str, Any]


def run_one(index: int, scenario: str, seed: int, run_id: str) -> Outcome:
    """One run of ``scenario``; deterministic in (seed, index, scenario) apart from timing and ids."""
    rng = random.Random(f"{seed}:{index}:{scenario}")
    w = make_ticket(rng, index, scenario)
    if scenario == "incident" and index % HARD_DOWN_EVERY == HARD_DOWN_EVERY // 2 - 1:
        w.down = f"{ORDERS_API}/orders/{w.ticket['order_id']}/payments"
    run = agent_otel.run(
        AGENT,
        model=MODEL,
        prompt_version=PROMPT_VERSION,
        tools_version=TOOLS_VERSION,
        input=w.ticket,
        budget=agent_otel.Budget(max_steps=60),
        run_id=run_id,
    )
    token = _world.set(w)
    try:
        with run:
            FLOWS[scenario](run, w)
    except (agent_otel.AgentStopped, HTTPError, TimeoutError, KeyboardInterrupt):
        pass  # the run recorded why it stopped; a real agent would answer the ticket by hand now
    finally:
        _world.reset(token)
    reason = run.result.stop_reason.value if run.result is not None else "error"
    return Outcome(index, scenario, run_id, reason, w.ticket)
