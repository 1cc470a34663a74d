"""A toy customer-support agent that e-mails the wrong customer, and its fix.

The ticket names the customer and the order. The CRM has two customers with that name; the buggy agent
takes the first hit, the fixed one the customer the order belongs to. Everything else (tools, the "LLM"
that drafts the reply) is the same, so a replay of a buggy run with the fixed agent diverges exactly at
``send_email``. The real tool bodies record what they did (``OUTBOX``, ``CALLS``, and the file named by
``$AGENT_OTEL_TEST_OUTBOX`` for the CLI's subprocess), which is how the tests prove a replay never ran
them; ``LLM_CALLS`` proves the LLM stays live.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from typing import Any

import agent_otel

OUTBOX: list[dict[str, Any]] = []
CALLS: Counter[str] = Counter()
LLM_CALLS: list[str] = []

CUSTOMERS = [
    {"id": "C-1", "name": "Kim Tanaka", "email": "kim@tanaka-design.example"},
    {"id": "C-2", "name": "Kim Tanaka", "email": "kim.tanaka@mail.example"},
    {"id": "C-3", "name": "Sam Okafor", "email": "sam@okafor.example"},
]
ORDERS = {
    "O-1001": {"order_id": "O-1001", "customer_id": "C-2", "status": "shipped", "carrier": "DHL"},
    "O-1002": {"order_id": "O-1002", "customer_id": "C-3", "status": "processing", "carrier": None},
}
TICKET = {"ticket_id": "T-77", "name": "Kim Tanaka", "order_id": "O-1001", "text": "Where is my order?"}


def reset() -> None:
    OUTBOX.clear()
    CALLS.clear()
    LLM_CALLS.clear()


def _sent(message: dict[str, Any]) -> dict[str, Any]:
    OUTBOX.append(message)
    path = os.environ.get("AGENT_OTEL_TEST_OUTBOX")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(message) + "\n")
    return {"message_id": f"M-{len(OUTBOX)}", "accepted": [message["to"]]}


# --- tools (sync) ------------------------------------------------------------------------------------


@agent_otel.tool(name="crm.search")
def crm_search(name: str) -> list[dict[str, Any]]:
    CALLS["crm.search"] += 1
    return [dict(c) for c in CUSTOMERS if c["name"] == name]


@agent_otel.tool(name="orders.get")
def orders_get(order_id: str) -> dict[str, Any]:
    CALLS["orders.get"] += 1
    if order_id not in ORDERS:
        raise LookupError(f"no order {order_id}")
    return dict(ORDERS[order_id])


@agent_otel.tool(name="send_email", side_effects=True)
def send_email(to: str, subject: str, body: str) -> dict[str, Any]:
    CALLS["send_email"] += 1
    return _sent({"to": to, "subject": subject, "body": body})


def draft_reply(order: dict[str, Any]) -> str:
    """The "LLM": deterministic text, usage recorded on the run like a real client's."""
    LLM_CALLS.append(order["order_id"])
    run = agent_otel.current_run()
    if run is not None:
        run.record_llm(model="gpt-4o", input_tokens=640, output_tokens=80)
    carrier = order.get("carrier") or "our warehouse"
    return f"Your order {order['order_id']} is {order['status']} ({carrier})."


def choose(hits: list[dict[str, Any]], order: dict[str, Any], fixed: bool) -> dict[str, Any]:
    if fixed:
        return next(c for c in hits if c["id"] == order["customer_id"])
    return hits[0]  # the bug: two customers share the name and the first one gets the e-mail


def _handle(ticket: dict[str, Any], fixed: bool) -> dict[str, Any]:
    hits = crm_search(name=ticket["name"])
    order = orders_get(order_id=ticket["order_id"])
    body = draft_reply(order)
    customer = choose(hits, order, fixed)
    return send_email(to=customer["email"], subject=f"Re: {ticket['ticket_id']}", body=body)


@agent_otel.agent(name="support-agent", model="gpt-4o", prompt_version="v12", tools_version="3")
def handle(ticket: dict[str, Any]) -> dict[str, Any]:
    return _handle(ticket, fixed=False)


@agent_otel.agent(name="support-agent", model="gpt-4o", prompt_version="v13", tools_version="3")
def handle_fixed(ticket: dict[str, Any]) -> dict[str, Any]:
    return _handle(ticket, fixed=True)


@agent_otel.agent(name="support-agent", model="gpt-4o", prompt_version="v12", tools_version="3")
def handle_with_priority(ticket: dict[str, Any], priority: str) -> dict[str, Any]:
    """Two parameters: ``@agent`` records the input as {"ticket": ..., "priority": ...}."""
    return _handle(dict(ticket, text=f"[{priority}] {ticket['text']}"), fixed=False)


# --- the same agent, async ---------------------------------------------------------------------------


@agent_otel.tool(name="crm.search")
async def crm_search_async(name: str) -> list[dict[str, Any]]:
    await asyncio.sleep(0)
    CALLS["crm.search"] += 1
    return [dict(c) for c in CUSTOMERS if c["name"] == name]


@agent_otel.tool(name="orders.get")
async def orders_get_async(order_id: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    CALLS["orders.get"] += 1
    if order_id not in ORDERS:
        raise LookupError(f"no order {order_id}")
    return dict(ORDERS[order_id])


@agent_otel.tool(name="send_email", side_effects=True)
async def send_email_async(to: str, subject: str, body: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    CALLS["send_email"] += 1
    return _sent({"to": to, "subject": subject, "body": body})


async def _handle_async(ticket: dict[str, Any], fixed: bool) -> dict[str, Any]:
    hits, order = await asyncio.gather(
        crm_search_async(name=ticket["name"]), orders_get_async(order_id=ticket["order_id"])
    )
    body = draft_reply(order)
    customer = choose(hits, order, fixed)
    return await send_email_async(to=customer["email"], subject=f"Re: {ticket['ticket_id']}", body=body)


@agent_otel.agent(name="support-agent-async", model="gpt-4o", prompt_version="v12")
async def handle_async(ticket: dict[str, Any]) -> dict[str, Any]:
    return await _handle_async(ticket, fixed=False)


@agent_otel.agent(name="support-agent-async", model="gpt-4o", prompt_version="v13")
async def handle_async_fixed(ticket: dict[str, Any]) -> dict[str, Any]:
    return await _handle_async(ticket, fixed=True)
