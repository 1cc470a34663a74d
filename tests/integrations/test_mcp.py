"""MCP client against real MCP servers: in-process (memory transport) and a stdio subprocess."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypedDict

import anyio
import pytest

import agent_otel
from agent_otel.hashing import sha
from agent_otel.tools import ToolTimeout
from tests.integrations.conftest import children, one, ours, parent_of, steps

pytest.importorskip("mcp")

from mcp import Client, ClientSession, StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer


class Hits(TypedDict):
    query: str
    hits: int


STDIO_SERVER = Path(__file__).with_name("mcp_stdio_server.py")


def make_server() -> MCPServer:
    server = MCPServer("tools")

    @server.tool()
    def search(query: str, limit: int = 3) -> Hits:
        """Search."""
        return {"query": query, "hits": limit}

    @server.tool(structured_output=False)
    def shout(text: str) -> str:
        """Unstructured content blocks only."""
        return text.upper()

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(reason)

    @server.tool()
    def delete_repo(name: str) -> str:
        """Dangerous."""
        return "deleted " + name

    return server


async def test_call_tool_is_a_tool_call_of_the_run(telemetry, instrument):
    instrument("mcp")
    async with Client(make_server()) as client, agent_otel.run("mcp-agent") as run:
        result = await client.call_tool("search", {"query": "otel", "limit": 2})
    assert result.structured_content == {"query": "otel", "hits": 2}
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent mcp-agent")
    tool_span = one(spans, "execute_tool search")
    assert children(root, spans) == [tool_span]
    assert tool_span.attributes["gen_ai.tool.name"] == "search"
    assert tool_span.attributes["agent.run_id"] == run.run_id
    assert tool_span.attributes["agent.step_id"] == 1
    assert tool_span.attributes["agent.tool.args_sha"] == sha({"query": "otel", "limit": 2})
    assert tool_span.attributes["agent.tool.result_sha"] == sha({"query": "otel", "hits": 2})
    assert tool_span.attributes["agent.tool.status"] == "ok"
    assert root.attributes["agent.tool_calls"] == 1
    (event,) = telemetry.events("tool_result")
    assert (event["tool"], event["status"], event["args_sha"]) == (
        "search",
        "ok",
        sha({"query": "otel", "limit": 2}),
    )
    points = telemetry.metrics()["agent.tool.invocations"]
    assert [(a["tool"], a["status"], p.value) for a, p in points] == [("search", "ok", 1)]


async def test_result_hash_over_content_blocks_without_structured_content(telemetry, instrument):
    instrument("mcp")
    async with Client(make_server()) as client, agent_otel.run("mcp-text"):
        result = await client.call_tool("shout", {"text": "hi"})
    assert result.structured_content is None
    tool_span = one(ours(telemetry.spans()), "execute_tool shout")
    assert tool_span.attributes["agent.tool.result_sha"] == sha([{"type": "text", "text": "HI"}])


async def test_tool_error_result_marks_the_span_and_returns_the_result(telemetry, instrument):
    instrument("mcp")
    async with Client(make_server()) as client, agent_otel.run("mcp-errors") as run:
        result = await client.call_tool("explode", {"reason": "boom"})
    assert result.is_error
    tool_span = one(ours(telemetry.spans()), "execute_tool explode")
    assert tool_span.attributes["agent.tool.status"] == "error"
    assert tool_span.attributes["error.type"] == "MCPToolError"
    assert run.result.stop_reason == "completed"


async def test_stdio_server_with_client_session(telemetry, instrument):
    instrument("mcp")
    params = StdioServerParameters(command=sys.executable, args=[str(STDIO_SERVER)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        async with agent_otel.run("stdio-agent"):
            first = await session.call_tool("add", {"a": 2, "b": 3})
            second = await session.call_tool("divide", {"a": 1, "b": 4})
    structured = (
        "structured_content" if hasattr(first, "structured_content") else "structuredContent"
    )  # mcp 1.x
    assert getattr(first, structured) == {"result": 5}
    assert getattr(second, structured) == {"result": 0.25}
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent stdio-agent")
    assert steps(root, spans) == [(1, "execute_tool add"), (2, "execute_tool divide")]
    assert one(spans, "execute_tool add").attributes["agent.tool.result_sha"] == sha({"result": 5})


async def test_outside_a_run_nothing_is_recorded(telemetry, instrument):
    instrument("mcp")
    async with Client(make_server()) as client:
        await client.call_tool("search", {"query": "x"})
    assert ours(telemetry.spans()) == []


async def test_denied_mcp_tool_never_reaches_the_server(guarded, instrument):
    telemetry = guarded({"policy": {"deny": {"*": ["delete_*"]}}})
    instrument("mcp")
    async with Client(make_server()) as client:
        with pytest.raises(agent_otel.AgentStopped) as stopped:
            async with agent_otel.run("mcp-denied"):
                await client.call_tool("delete_repo", {"name": "prod"})
    assert stopped.value.stop_reason == "policy_denied"
    spans = ours(telemetry.spans())
    assert one(spans, "invoke_agent mcp-denied").attributes["agent.stop_reason"] == "policy_denied"
    assert not [s for s in spans if s.name.startswith("execute_tool")]


async def test_looping_mcp_calls_stop_with_loop_detected(guarded, instrument):
    telemetry = guarded({"loop": {"max_repeats": 2}})
    instrument("mcp")
    async with Client(make_server()) as client:
        with pytest.raises(agent_otel.AgentStopped) as stopped:
            async with agent_otel.run("mcp-loop"):
                for _ in range(5):
                    await client.call_tool("search", {"query": "same"})
    assert stopped.value.stop_reason == "loop_detected"
    spans = ours(telemetry.spans())
    assert len([s for s in spans if s.name == "execute_tool search"]) == 2


def slow_server() -> MCPServer:
    """A server whose one tool, ``hang``, answers after 2 s."""
    server = MCPServer("slow")

    @server.tool()
    async def hang() -> str:
        """Hangs."""
        await anyio.sleep(2)
        return "late"

    return server


async def test_guard_tool_timeout_applies_to_mcp_calls(guarded, instrument):
    telemetry = guarded({"tool_timeout_s": 0.05})
    instrument("mcp")
    server = slow_server()

    async with Client(server) as client:
        with pytest.raises(ToolTimeout):
            async with agent_otel.run("mcp-timeout"):
                await client.call_tool("hang", {})
    spans = ours(telemetry.spans())
    assert one(spans, "execute_tool hang").attributes["error.type"] == "ToolTimeout"
    assert one(spans, "invoke_agent mcp-timeout").attributes["agent.stop_reason"] == "tool_timeout"


async def test_the_clients_own_read_timeout_ends_the_run_with_tool_timeout(telemetry, instrument):
    """``call_tool(..., read_timeout_seconds=)``: the SDK gives up waiting and raises its MCPError
    (code REQUEST_TIMEOUT). The tool timed out, as with ``guards.tool_timeout_s``; the caller's
    exception is the SDK's, unchanged."""
    from mcp.shared.exceptions import MCPError
    from mcp.types import REQUEST_TIMEOUT

    instrument("mcp")
    server = slow_server()

    async with Client(server) as client:
        with pytest.raises(MCPError) as raised:
            async with agent_otel.run("mcp-read-timeout"):
                await client.call_tool("hang", {}, read_timeout_seconds=0.05)
    assert raised.value.error.code == REQUEST_TIMEOUT
    spans = ours(telemetry.spans())
    tool_span = one(spans, "execute_tool hang")
    assert (tool_span.attributes["agent.tool.status"], tool_span.attributes["error.type"]) == (
        "error",
        "MCPError",
    )
    root = one(spans, "invoke_agent mcp-read-timeout")
    assert root.attributes["agent.stop_reason"] == "tool_timeout"


async def test_a_server_that_dies_mid_call_fails_the_call_with_tool_error(telemetry, instrument, tmp_path):
    """The stdio server process exits while answering: the SDK raises MCPError (connection closed)."""
    from mcp.shared.exceptions import MCPError

    instrument("mcp")
    server = tmp_path / "dying_server.py"
    server.write_text(
        "import os\n"
        f"exec(open({str(STDIO_SERVER)!r}).read().replace('if __name__', 'if False'))\n"
        "@server.tool()\n"
        "def die() -> str:\n"
        '    """Exits mid-call."""\n'
        "    os._exit(3)\n"
        "server.run('stdio')\n"
    )
    params = StdioServerParameters(command=sys.executable, args=[str(server)])
    raised: list[BaseException] = []
    try:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            async with agent_otel.run("mcp-dies"):
                with anyio.fail_after(30):
                    await session.call_tool("die", {})
    except* MCPError as group:  # the session's task groups raise it again, in (nested) groups
        pending: list[BaseException] = [group]
        while pending:
            exc = pending.pop()
            pending.extend(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else raised.append(exc)
    assert [str(exc) for exc in raised] == ["Connection closed"]
    spans = ours(telemetry.spans())
    assert one(spans, "execute_tool die").attributes["error.type"] == "MCPError"
    assert one(spans, "invoke_agent mcp-dies").attributes["agent.stop_reason"] == "tool_error"


async def test_a_call_the_client_cancels_is_cancelled_not_a_tool_error(telemetry, instrument):
    """The client cancels its call (the task awaiting ``call_tool`` is cancelled; the SDK tells the server):
    the tool did not fail, so the step is ``cancelled`` with span status UNSET, not ``error`` (ERROR
    status, counted in the tool's error rate), and the run ends ``cancelled``."""
    import asyncio

    instrument("mcp")
    async with Client(slow_server()) as client:
        holder = {}

        async def agent() -> None:
            async with agent_otel.run("mcp-cancel") as run:
                holder["run"] = run
                await client.call_tool("hang", {})

        task = asyncio.create_task(agent())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    spans = ours(telemetry.spans())
    tool_span = one(spans, "execute_tool hang")
    assert tool_span.attributes["agent.tool.status"] == "cancelled"
    assert tool_span.attributes["error.type"] == "CancelledError"
    assert tool_span.status.status_code.name == "UNSET"
    (event,) = telemetry.events("tool_result")
    assert event["status"] == "cancelled"
    assert holder["run"].result.stop_reason == "cancelled"
    points = telemetry.metrics()["agent.tool.invocations"]
    assert [(a["tool"], a["status"]) for a, _ in points] == [("hang", "cancelled")]


def agent_otel_server(ran: list[str]) -> MCPServer:
    """An MCP server in this process whose tools are also ``@agent_otel.tool`` functions."""
    server = MCPServer("decorated")

    @server.tool()
    @agent_otel.tool(name="crm.lookup", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0, jitter="none"))
    def lookup(q: str) -> str:
        """Look up; the first attempt fails."""
        ran.append(q)
        if len(ran) < 2:
            raise ConnectionError("reset")
        return q.upper()

    @server.tool()
    @agent_otel.tool(side_effects=True)
    def wipe(user: str) -> str:
        """Wipe an account."""
        ran.append(f"wiped {user}")
        return "wiped"

    return server


async def test_an_agent_otel_tool_served_in_process_is_one_call_with_its_retry(telemetry, instrument):
    """A server tool that is also ``@agent_otel.tool(retry=...)``, served in this process: it claims the
    client's call (one span, one counted call) and ran bare: the first failure went back as an error
    result. Its retry applies once, inside the one step."""
    instrument("mcp")
    ran: list[str] = []
    async with Client(agent_otel_server(ran)) as client, agent_otel.run("mcp-agent") as run:
        result = await client.call_tool("lookup", {"q": "otel"})
    assert not result.is_error and ran == ["otel", "otel"]
    (tool_span,) = [s for s in ours(telemetry.spans()) if s.name.startswith("execute_tool")]
    assert tool_span.name == "execute_tool lookup" and tool_span.attributes["agent.tool.attempts"] == 2
    assert tool_span.attributes["agent.tool.result_sha"] == sha(result.structured_content)
    assert run.result.usage["tool_calls"] == 1


async def test_a_write_declared_on_an_in_process_server_tool_is_blocked_by_the_writes_kill_switch(
    guarded, instrument, monkeypatch, caplog
):
    """The client opens the call as a read (it cannot see the server's function); the server's
    ``@agent_otel.tool(side_effects=True)`` function claimed it and ran under the ``writes`` kill switch.
    Now the claim makes it a write, which never runs, and the run stops at that call: the client's
    ``call_tool`` raises ``AgentStopped`` (kill_switch) instead of returning the server's error result
    for the agent to go on with (before: the error result, and the stop only at the run's next step);
    a read before it went on."""
    telemetry = guarded({})
    instrument("mcp")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    ran: list[str] = ["primed"]  # lookup's first attempt succeeds
    went_on = False
    async with Client(agent_otel_server(ran)) as client:
        with pytest.raises(agent_otel.AgentStopped) as stopped:
            async with agent_otel.run("wiper") as run:
                assert not (await client.call_tool("lookup", {"q": "bob"})).is_error
                await client.call_tool("wipe", {"user": "bob"})
                went_on = True
    assert not went_on and stopped.value.result.stop_reason == "kill_switch"
    assert ran == ["primed", "bob"] and run.result.stop_reason == "kill_switch"
    # The step ended in the server's copy of the client's context: no OpenTelemetry error logged for it.
    assert "Failed to detach context" not in caplog.text
    wipe = one(ours(telemetry.spans()), "execute_tool wipe")
    assert wipe.attributes["agent.tool.side_effects"] is True
    assert wipe.attributes["agent.tool.status"] == "error"


async def test_a_write_refused_on_an_in_process_server_leaves_the_next_steps_under_the_run(
    guarded, instrument, monkeypatch
):
    """With ``on_deny: raise`` the blocked write is refused without a stop: the client gets the server's
    error result and the run goes on. Its next steps are the run's children, not the refused call's (the
    call ended in the server's copy of the client's context, which left its span current in the client's:
    the next call was recorded under the ended ``execute_tool wipe``)."""
    telemetry = guarded({"policy": {"on_deny": "raise"}})
    instrument("mcp")
    monkeypatch.setenv("AGENT_OTEL_KILL_SWITCH", "writes")
    ran: list[str] = ["primed"]
    async with Client(agent_otel_server(ran)) as client, agent_otel.run("wiper") as run:
        assert (await client.call_tool("wipe", {"user": "bob"})).is_error
        assert not (await client.call_tool("lookup", {"q": "x"})).is_error
    assert ran == ["primed", "x"] and run.result.stop_reason == "completed"
    spans = ours(telemetry.spans())
    root = one(spans, "invoke_agent wiper")
    assert steps(root, spans) == [(1, "execute_tool wipe"), (2, "execute_tool lookup")]
    assert parent_of(one(spans, "execute_tool lookup"), spans) is root
