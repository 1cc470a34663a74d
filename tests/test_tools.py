"""@tool and run.call_tool: one span per call, hashes of what went in and came out, errors unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import pickle
import typing
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry import trace

import agent_otel
from agent_otel import conventions as c
from agent_otel import tools
from agent_otel.hashing import sha


@agent_otel.tool(name="send_email", side_effects=True)
def send_email(to: str, body: str, *, cc: str | None = None) -> str:
    return f"queued for {to}"


@agent_otel.tool
async def search(query: str, *, limit: int = 3) -> list[str]:
    await asyncio.sleep(0)
    return [query] * limit


class CRM:
    def __init__(self):
        self.calls = 0

    @agent_otel.tool(name="crm.lookup")
    def lookup(self, customer_id: int) -> dict:
        self.calls += 1
        return {"id": customer_id, "email": "c@example.com"}

    @agent_otel.tool(name="crm.alookup")
    async def alookup(self, customer_id: int) -> dict:
        return {"id": customer_id}


def tool_spans(telemetry):
    return sorted(telemetry.spans_named("execute_tool"), key=lambda s: s.attributes[c.STEP_ID])


def test_decorated_functions_methods_and_keyword_only_args(telemetry):
    crm = CRM()
    with agent_otel.run("support") as run:
        assert send_email("a@example.com", "hi", cc="b@example.com") == "queued for a@example.com"
        assert crm.lookup(7) == {"id": 7, "email": "c@example.com"}
        assert asyncio.run(search("refund", limit=2)) == ["refund", "refund"]
        assert asyncio.run(crm.alookup(customer_id=9)) == {"id": 9}
    assert crm.calls == 1
    spans = tool_spans(telemetry)
    assert [s.attributes[c.GEN_AI_TOOL_NAME] for s in spans] == [
        "send_email",
        "crm.lookup",
        "search",
        "crm.alookup",
    ]
    assert [s.attributes[c.STEP_ID] for s in spans] == [1, 2, 3, 4]
    assert {s.attributes[c.RUN_ID] for s in spans} == {run.run_id}
    # args are bound to parameter names ("self" left out), so positional and keyword calls hash alike
    assert spans[0].attributes[c.TOOL_ARGS_SHA] == sha(
        {"to": "a@example.com", "body": "hi", "cc": "b@example.com"}
    )
    assert spans[1].attributes[c.TOOL_ARGS_SHA] == sha({"customer_id": 7})
    assert spans[2].attributes[c.TOOL_ARGS_SHA] == sha({"query": "refund", "limit": 2})
    assert spans[3].attributes[c.TOOL_ARGS_SHA] == sha({"customer_id": 9})
    assert spans[1].attributes[c.TOOL_RESULT_SHA] == sha({"id": 7, "email": "c@example.com"})
    assert spans[0].attributes[c.TOOL_SIDE_EFFECTS] is True
    assert run.tool_calls == 4 and run.steps == 4


def test_the_name_may_be_given_positionally_as_run_takes_the_agents(telemetry):
    """`@tool("search")` / `@agent("support")`, as `run("support")` and other frameworks' decorators take
    it: the name, not an AttributeError at import time."""

    @agent_otel.tool("kb.search")
    def kb_search(q: str) -> str:
        return q

    @agent_otel.agent("triage")
    def triage(ticket: str) -> str:
        return kb_search(ticket)

    assert triage("refund") == "refund"
    assert [s.attributes[c.GEN_AI_TOOL_NAME] for s in tool_spans(telemetry)] == ["kb.search"]
    assert [s.attributes[c.GEN_AI_AGENT_NAME] for s in telemetry.spans_named("invoke_agent")] == ["triage"]
    with pytest.raises(TypeError, match="two names"):
        agent_otel.tool("a", name="b")


def test_positional_and_keyword_calls_hash_the_same(telemetry):
    with agent_otel.run("a"):
        send_email("x@example.com", "b")
        send_email(to="x@example.com", body="b")
    first, second = tool_spans(telemetry)
    assert first.attributes[c.TOOL_ARGS_SHA] == second.attributes[c.TOOL_ARGS_SHA]


class _Session:
    """A context object as frameworks pass one: different in every run (its own id and history)."""

    def __init__(self, n: int) -> None:
        self.run_id = f"run-{n}"
        self.messages = [f"message {i}" for i in range(n)]


def test_a_framework_context_parameter_is_not_hashed_as_an_argument(telemetry):
    """A framework hands a tool its run's context (PydanticAI's RunContext, Strands' ToolContext, ...):
    the model's arguments are what a call is, for the loop guard and for replay. The context still
    reaches the function. Annotations read as text that do not resolve (imported under TYPE_CHECKING)
    are recognised by the framework class's name; tests/integrations/test_tool_context.py uses the real
    classes of each framework."""
    seen = []

    @agent_otel.tool(name="lookup")
    def lookup(ctx: RunContext[dict], q: str) -> str:  # noqa: F821 (a name that does not resolve)
        seen.append(ctx.run_id)
        return q.upper()

    @agent_otel.tool(name="reply")
    async def reply(q: str, *, tool_context: "ToolContext | None" = None) -> str:  # noqa: F821, UP037
        seen.append(tool_context.run_id if tool_context else None)
        return q

    with agent_otel.run("a"):
        assert lookup(_Session(1), "otel") == "OTEL"
        assert lookup(ctx=_Session(2), q="otel") == "OTEL"
        assert asyncio.run(reply("hi", tool_context=_Session(3))) == "hi"
        assert asyncio.run(reply(q="hi")) == "hi"
    assert seen == ["run-1", "run-2", "run-3", None]
    shas = [(s.name, s.attributes[c.TOOL_ARGS_SHA]) for s in tool_spans(telemetry)]
    assert shas == [
        ("execute_tool lookup", sha({"q": "otel"})),
        ("execute_tool lookup", sha({"q": "otel"})),
        ("execute_tool reply", sha({"q": "hi"})),
        ("execute_tool reply", sha({"q": "hi"})),
    ]


def test_a_parameter_of_the_users_own_context_class_is_an_argument(telemetry):
    """Only frameworks' context classes are left out: a class of one's own named Context (a generic name)
    is what the tool was asked, and two calls that differ only there are two different calls."""

    class Context:
        def __init__(self, customer: str) -> None:
            self.customer = customer

    @agent_otel.tool(name="refund")
    def refund(ctx: Context, amount: int) -> int:
        return amount

    with agent_otel.run("a"):
        refund(Context("alice"), 5)
        refund(Context("bob"), 5)
    first, second = (s.attributes[c.TOOL_ARGS_SHA] for s in tool_spans(telemetry))
    assert first != second and sha({"amount": 5}) not in (first, second)


def test_outside_a_run_a_tool_is_just_a_function(telemetry):
    assert send_email("a@example.com", "hi") == "queued for a@example.com"
    assert asyncio.run(search("q", limit=1)) == ["q"]
    assert telemetry.spans() == []


def test_decorator_keeps_the_function_metadata():
    assert send_email.__name__ == "send_email" and send_email.__agent_otel_tool__.side_effects
    assert asyncio.iscoroutinefunction(search)


def test_call_tool_forms(telemetry):
    async def afetch(url):
        return url.upper()

    with agent_otel.run("a") as run:
        assert run.call_tool("kw", lambda a, b: a + b, {"a": 1, "b": 2}) == 3
        assert run.call_tool("pos", lambda a, b: a - b, [5, 3]) == 2
        assert run.call_tool("single", lambda s: s * 2, "ab") == "abab"
        assert run.call_tool("none", lambda: "x") == "x"
        assert asyncio.run(run.call_tool("async", afetch, {"url": "u"})) == "U"
    spans = tool_spans(telemetry)
    assert [s.attributes[c.TOOL_ARGS_SHA] for s in spans] == [
        sha({"a": 1, "b": 2}),
        sha([5, 3]),
        sha("ab"),
        sha({}),
        sha({"url": "u"}),
    ]


def test_async_tool_errors_pass_through_unchanged(telemetry):
    original = ValueError("bad query")

    @agent_otel.tool
    async def failing(q):
        raise original

    async def main():
        async with agent_otel.run("a") as run:
            with pytest.raises(ValueError) as caught:
                await failing("x")
            assert caught.value is original
        return run

    run = asyncio.run(main())
    (span,) = tool_spans(telemetry)
    assert span.attributes[c.TOOL_STATUS] == "error" and span.attributes[c.ERROR_TYPE] == "ValueError"
    assert run.result.stop_reason == "completed"


def test_unserialisable_and_huge_args_do_not_break_the_call(telemetry):
    class Opaque:
        __slots__ = ()

    cyclic: list = []
    cyclic.append(cyclic)
    big = {"blob": "x" * 2_000_000}
    with agent_otel.run("a") as run:
        assert run.call_tool("weird", lambda o, c: "ok", {"o": Opaque(), "c": cyclic}) == "ok"
        assert run.call_tool("big", lambda blob: len(blob), big) == 2_000_000
    spans = tool_spans(telemetry)
    assert len(spans[0].attributes[c.TOOL_ARGS_SHA]) == 24
    assert spans[1].attributes[c.TOOL_ARGS_SHA] == sha(big)


def test_a_framework_call_claimed_by_a_nested_tool_is_one_span(telemetry):
    """An integration that opens the call and then invokes a user's @tool must not produce two spans."""
    with agent_otel.run("a") as run:
        call = tools.begin(
            run, tools.ToolOptions(name="send_email"), {"to": "x"}, "call_9", fn=send_email, claimable=True
        )
        result = send_email("x", "body")
        call.ok(result)
    (span,) = tool_spans(telemetry)
    assert span.attributes[c.GEN_AI_TOOL_CALL_ID] == "call_9"
    assert run.tool_calls == 1


def test_tool_called_from_a_thread_without_context_still_belongs_to_its_run(telemetry):
    import threading

    with agent_otel.run("a") as run:
        t = threading.Thread(target=lambda: run.call_tool("bg", lambda: 1))
        t.start()
        t.join()
    (span,) = tool_spans(telemetry)
    (root,) = telemetry.spans_named("invoke_agent")
    assert span.parent.span_id == root.context.span_id


class _Hostile:
    """An argument or result whose every conversion raises: the agent must not notice agent-otel."""

    def model_dump(self, mode: str = "python") -> dict:
        raise RuntimeError("model_dump failed")

    def __repr__(self) -> str:
        raise LookupError("repr failed")


def test_hostile_args_input_and_results_neither_raise_nor_leave_a_span_open(telemetry):
    hostile = _Hostile()

    @agent_otel.tool
    def echo(value: object) -> object:
        return value

    with agent_otel.run("support", input=hostile) as run:
        assert echo(hostile) is hostile
        assert echo("plain") == "plain"
    assert run.result.stop_reason.value == "completed"
    (root,) = telemetry.spans_named("invoke_agent")
    spans = tool_spans(telemetry)
    assert len(spans) == 2  # both ended and exported
    assert {s.parent.span_id for s in spans} == {root.context.span_id}  # the first did not stay current
    assert spans[0].attributes[c.TOOL_ARGS_SHA] == sha({"value": hostile})
    assert spans[0].attributes[c.TOOL_RESULT_SHA] == sha(hostile)
    assert root.attributes[c.INPUT_SHA] == sha(hostile)


@agent_otel.tool(name="pages")
def pages(n: int):
    for i in range(n):
        if i == 3:
            raise ConnectionError("page 3 failed")
        yield {"page": i}


@agent_otel.tool(name="apages")
async def apages(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        if i == 3:
            raise ConnectionError("page 3 failed")
        yield {"page": i}


def test_a_generator_tool_is_one_step_over_its_items_and_its_result_is_what_it_yielded(telemetry):
    """A tool that streams (yields) is one step from its first item to its last: the result hashed and
    recorded is the items, an error while iterating fails the step, and a consumer that stops early ends
    it with what it took. (Before: a 0 ms step whose result was the generator object's repr, whatever it
    yielded, and errors while iterating went unrecorded.)"""

    async def consume_async(n: int, take: int | None = None) -> list:
        out = []
        async with contextlib.aclosing(apages(n)) as stream:  # closed at once when the consumer stops
            async for item in stream:
                out.append(item)
                if take is not None and len(out) == take:
                    break
        return out

    with agent_otel.run("streamer") as run:
        assert list(pages(2)) == [{"page": 0}, {"page": 1}]
        assert asyncio.run(consume_async(2)) == [{"page": 0}, {"page": 1}]
        with pytest.raises(ConnectionError, match="page 3 failed"):
            list(pages(5))
        with pytest.raises(ConnectionError, match="page 3 failed"):
            asyncio.run(consume_async(5))
        stream = pages(5)
        assert next(stream) == {"page": 0}
        stream.close()  # the consumer has what it needs
        assert asyncio.run(consume_async(5, take=1)) == [{"page": 0}]
    spans = tool_spans(telemetry)
    assert [s.attributes[c.GEN_AI_TOOL_NAME] for s in spans] == ["pages", "apages"] * 3
    two, one = sha([{"page": 0}, {"page": 1}]), sha([{"page": 0}])
    assert [s.attributes.get(c.TOOL_RESULT_SHA) for s in spans] == [two, two, None, None, one, one]
    assert [s.attributes[c.TOOL_STATUS] for s in spans] == ["ok", "ok", "error", "error", "ok", "ok"]
    assert run.tool_calls == 6


def test_a_long_stream_is_not_kept_in_memory_for_its_result(telemetry):
    """A tool streaming the lines of a big file must not make agent-otel hold every line: past
    tools.STREAM_KEEP_ITEMS items the result is the count only (and a replay cannot serve it)."""

    @agent_otel.tool(name="lines")
    def lines(n: int):
        for i in range(n):
            yield f"line {i}"

    total = tools.STREAM_KEEP_ITEMS + 5
    with agent_otel.run("reader"):
        assert sum(1 for _ in lines(total)) == total
        assert list(lines(2)) == ["line 0", "line 1"]
    long, short = tool_spans(telemetry)
    assert long.attributes[c.TOOL_RESULT_SHA] == sha({"$stream_items": total})
    assert short.attributes[c.TOOL_RESULT_SHA] == sha(["line 0", "line 1"])


@agent_otel.tool
def pages_typed(n: int, *, size: int = 10) -> Iterator[dict]:
    """Pages of results."""
    for i in range(n):
        yield {"page": i, "size": size}


@agent_otel.tool
async def apages_typed(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def test_a_decorated_tool_looks_to_frameworks_like_the_function_it_wraps():
    """Frameworks build tool schemas and pick sync/async/streaming paths from ``inspect`` and the type
    hints; multiprocessing pickles functions by name. A generator tool's wrapper said it was a plain
    function (Gradio, Google ADK's streaming tools and others would not stream it)."""
    for fn, original in [(search, search.__wrapped__), (pages_typed, pages_typed.__wrapped__)]:
        assert inspect.signature(fn) == inspect.signature(original)
        assert typing.get_type_hints(fn) == typing.get_type_hints(original)
        assert pickle.loads(pickle.dumps(fn)) is fn
    assert (pages_typed.__name__, pages_typed.__doc__) == ("pages_typed", "Pages of results.")
    assert inspect.iscoroutinefunction(search) and not inspect.isasyncgenfunction(search)
    assert inspect.isgeneratorfunction(pages_typed) and not inspect.isasyncgenfunction(pages_typed)
    assert inspect.isasyncgenfunction(apages_typed) and not inspect.iscoroutinefunction(apages_typed)
    assert not inspect.iscoroutinefunction(send_email) and not inspect.isgeneratorfunction(send_email)


def test_classmethods_partials_and_callable_objects_are_tools(telemetry):
    """``@tool`` above ``@classmethod`` raised TypeError when called; a ``functools.partial`` or a callable
    object raised AttributeError (no ``__name__``) when decorated."""

    class Billing:
        rate = 2

        @agent_otel.tool
        @classmethod
        def quote(cls, units: int) -> int:
            return cls.rate * units

        @agent_otel.tool
        @staticmethod
        def currency() -> str:
            return "EUR"

    class Refund:
        def __call__(self, order: str) -> str:
            return f"refunded {order}"

    class AsyncRefund:
        async def __call__(self, order: str) -> str:
            return f"refunded {order}"

    def convert(amount: float, rate: float) -> float:
        return amount * rate

    to_usd = agent_otel.tool(functools.partial(convert, rate=1.1))
    refund, arefund = agent_otel.tool(Refund()), agent_otel.tool(AsyncRefund())
    with agent_otel.run("billing") as run:
        assert (Billing.quote(3), Billing().quote(units=2), Billing.currency()) == (6, 4, "EUR")
        assert to_usd(10.0) == pytest.approx(11.0)
        assert refund("o-1") == "refunded o-1"
        assert asyncio.run(arefund("o-2")) == "refunded o-2"
    spans = tool_spans(telemetry)
    names = [s.attributes[c.GEN_AI_TOOL_NAME] for s in spans]
    assert names == ["quote", "quote", "currency", "convert", "Refund", "AsyncRefund"]
    assert spans[0].attributes[c.TOOL_ARGS_SHA] == sha({"units": 3})  # cls is not an argument
    assert spans[-1].attributes[c.TOOL_RESULT_SHA] == sha("refunded o-2")  # awaited, not a coroutine
    assert run.tool_calls == 6


def test_what_a_consumer_sends_into_a_generator_tool_reaches_it(telemetry):
    """``send``/``asend`` into a streaming tool reach its body, in a run and outside one (in a run the
    values were dropped; outside, an async generator tool's wrapper is now one of ours)."""

    @agent_otel.tool
    def echo():
        got = None
        for i in range(3):
            got = yield (i, got)

    @agent_otel.tool
    async def aecho():
        got = None
        for i in range(3):
            got = yield (i, got)

    async def asend_all():
        stream = aecho()
        out = [await stream.asend(None), await stream.asend("a"), await stream.asend("b")]
        await stream.aclose()
        return out

    def send_all():
        stream = echo()
        out = [stream.send(None), stream.send("a"), stream.send("b")]
        stream.close()
        return out

    expected = [(0, None), (1, "a"), (2, "b")]
    assert (send_all(), asyncio.run(asend_all())) == (expected, expected)  # outside a run
    with agent_otel.run("echo") as run:
        assert (send_all(), asyncio.run(asend_all())) == (expected, expected)
    assert run.tool_calls == 2 and len(tool_spans(telemetry)) == 2


def test_a_stream_left_unfinished_ends_with_its_run_not_at_garbage_collection(telemetry):
    """A consumer that stops taking items but keeps the generator (a variable, a list of streams): its
    step ended only when the garbage collector closed it, after the run's span and stop (a tool span
    ending after its parent, a step missing from the run's numbers when they were recorded)."""

    @agent_otel.tool
    def rows(n):
        yield from range(n)

    @agent_otel.tool
    async def arows(n):
        for i in range(n):
            yield i

    async def take_one():
        stream = arows(5)
        return stream, await anext(stream)

    with agent_otel.run("reader") as run:
        kept = rows(5)
        assert next(kept) == 0
    loop = asyncio.new_event_loop()
    try:

        async def agent():
            async with agent_otel.run("areader") as arun:
                stream, item = await take_one()
                assert item == 0
            return arun, stream

        arun, astream = loop.run_until_complete(agent())
        spans = {s.name: s for s in telemetry.spans()}
        for root, tool in (
            ("invoke_agent reader", "execute_tool rows"),
            ("invoke_agent areader", "execute_tool arows"),
        ):
            assert spans[tool].end_time <= spans[root].end_time
            assert spans[tool].attributes[c.TOOL_RESULT_SHA] == sha([0])
            assert spans[tool].attributes[c.TOOL_STATUS] == "ok"
        assert next(kept) == 1  # the generator itself goes on
        kept.close()
        loop.run_until_complete(astream.aclose())
    finally:
        loop.close()
    assert len(telemetry.events("tool_result")) == 2  # one per step: closing later records nothing more
    assert run.result.usage["tool_calls"] == 1 and arun.result.usage["tool_calls"] == 1


def test_a_sync_callable_over_async_code_is_a_step_until_its_work_is_done(telemetry):
    """``run.call_tool("search", lambda q: client.search(q), ...)`` returns the client's coroutine: the
    step lasts until that work is done and records its result or error (it was a 0 ms step whose result
    was the coroutine's repr, a new hash every call); spans made by the work are children of the tool's."""
    tracer = trace.get_tracer("client")

    async def search(q):
        with tracer.start_as_current_span("http GET /search"):
            await asyncio.sleep(0.02)
        return [q]

    async def refused(q):
        await asyncio.sleep(0)
        raise ConnectionError("refused")

    async def agent():
        async with agent_otel.run("searcher") as run:
            assert await run.call_tool("search", lambda q: search(q), {"q": "refunds"}) == ["refunds"]
            with pytest.raises(ConnectionError):
                await run.call_tool("refused", lambda q: refused(q), {"q": "x"})
            assert trace.get_current_span() is run.span  # the tool spans did not stay current
            forgotten = run.call_tool("forgotten", lambda: search("z"))
        forgotten.close()  # never awaited: a bug of the agent's, the step ends failed with its run
        return run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "coroutine 'search' was never awaited"
        run = asyncio.run(agent())
    spans = {s.name: s for s in telemetry.spans()}
    ok, failed, forgotten = (spans[f"execute_tool {n}"] for n in ("search", "refused", "forgotten"))
    assert ok.attributes[c.TOOL_RESULT_SHA] == sha(["refunds"]) and ok.attributes[c.TOOL_STATUS] == "ok"
    assert ok.end_time - ok.start_time >= 15e6
    assert spans["http GET /search"].parent.span_id == ok.context.span_id
    assert (
        failed.attributes[c.TOOL_STATUS] == "error" and failed.attributes[c.ERROR_TYPE] == "ConnectionError"
    )
    assert forgotten.attributes[c.TOOL_STATUS] == "error"
    assert forgotten.end_time <= spans["invoke_agent searcher"].end_time
    assert run.result.stop_reason == "completed"


def test_call_tool_with_a_generator_function_is_one_step_over_its_items(telemetry):
    """``run.call_tool`` with a generator function was a 0 ms step whose result was the generator's repr."""

    def rows(n):
        yield from range(n)

    async def arows(n):
        for i in range(n):
            yield i

    async def consume(run):
        return [i async for i in run.call_tool("arows", arows, [2])]

    with agent_otel.run("reader") as run:
        assert list(run.call_tool("rows", rows, {"n": 3})) == [0, 1, 2]
        assert asyncio.run(consume(run)) == [0, 1]
    spans = tool_spans(telemetry)
    assert [s.attributes[c.TOOL_RESULT_SHA] for s in spans] == [sha([0, 1, 2]), sha([0, 1])]


class Skip(Exception):
    """What a consumer throws into a stream to make it skip ahead (a generator protocol some code uses)."""


def test_throw_into_a_generator_tool_reaches_it_and_its_return_value_comes_back(telemetry):
    """``throw()`` into a streaming tool went to agent-otel's wrapper, which failed the step and raised it,
    instead of to the user's generator (which handles it here); the generator's ``return`` value (the
    ``yield from`` result) was dropped. Without agent-otel both work: with it, in a run or not, too."""

    def pages():
        for page in range(3):
            try:
                yield page
            except Skip:
                yield "skipped"
        return "three pages"

    traced = agent_otel.tool(name="pages")(pages)

    def consume(gen):
        first = next(gen)
        after_throw = gen.throw(Skip())
        rest = list(gen)
        return [first, after_throw, *rest]

    def delegate(gen):
        returned = yield from gen
        yield returned

    expected = [0, "skipped", 1, 2]
    assert consume(pages()) == expected and list(delegate(pages()))[-1] == "three pages"  # the baseline
    assert consume(traced()) == expected and list(delegate(traced()))[-1] == "three pages"  # outside a run
    with agent_otel.run("reader") as run:
        assert consume(traced()) == expected
        assert list(delegate(traced()))[-1] == "three pages"
        assert list(delegate(run.call_tool("pages", pages)))[-1] == "three pages"
    spans = tool_spans(telemetry)
    assert [s.attributes[c.TOOL_STATUS] for s in spans] == ["ok", "ok", "ok"]
    # The generator returned a value (whether or not the consumer took it): the result has it too.
    assert spans[0].attributes[c.TOOL_RESULT_SHA] == sha({"$items": expected, "$return": "three pages"})
    assert run.result.stop_reason == "completed"


def test_a_throw_the_generator_tool_does_not_handle_fails_its_step_and_reaches_the_caller(telemetry):
    @agent_otel.tool
    def rows():
        yield 1
        yield 2

    with pytest.raises(Skip), agent_otel.run("reader") as run:
        stream = rows()
        next(stream)
        stream.throw(Skip("no more"))
    (span,) = tool_spans(telemetry)
    assert span.attributes[c.TOOL_STATUS] == "error" and span.attributes[c.ERROR_TYPE] == "Skip"
    assert run.result.stop_reason == "tool_error"


def test_athrow_into_an_async_generator_tool_reaches_it_in_a_run_and_after_it(telemetry):
    """The async twin: ``athrow()`` reached agent-otel's wrapper, not the user's async generator, inside
    a run (``@tool`` and ``run.call_tool``) and after the run's block (the stream consumed later)."""

    async def pages():
        for page in range(3):
            try:
                yield page
            except Skip:
                yield "skipped"

    traced = agent_otel.tool(name="pages")(pages)

    async def consume(gen):
        first = await anext(gen)
        after_throw = await gen.athrow(Skip())
        return [first, after_throw, *[item async for item in gen]]

    async def agent():
        expected = [0, "skipped", 1, 2]
        assert await consume(pages()) == expected  # the baseline
        async with agent_otel.run("areader") as run:
            assert await consume(traced()) == expected
            assert await consume(run.call_tool("pages", pages)) == expected
            later = run.call_tool("pages", pages)
        assert await consume(later) == expected  # begun after the block: untraced, still forwarded
        return run

    run = asyncio.run(agent())
    spans = tool_spans(telemetry)
    assert [s.attributes[c.TOOL_STATUS] for s in spans] == ["ok", "ok"]
    assert spans[0].attributes[c.TOOL_RESULT_SHA] == sha([0, "skipped", 1, 2])
    assert run.result.usage["tool_calls"] == 2


def test_a_cancelled_tool_call_is_cancelled_not_a_tool_error(telemetry):
    """An asyncio task cancelled while its tool runs, Ctrl-C during a sync tool: the tool did not fail.
    Its step read ``error`` (ERROR status, in the tool's error rate and the exemplars of failures); it is
    ``cancelled`` with span status UNSET, as a cancelled run is, ``error.type`` naming what cancelled it.
    The agent's own deadline around a tool still ends the run ``tool_timeout``."""

    @agent_otel.tool(name="slow")
    async def slow() -> None:
        await asyncio.sleep(10)

    @agent_otel.tool(name="interrupted")
    def interrupted() -> None:
        raise KeyboardInterrupt

    async def cancel_it() -> agent_otel.StopResult:
        started = asyncio.Event()

        async def agent() -> None:
            async with agent_otel.run("cancel"):
                started.set()
                await slow()

        task = asyncio.create_task(agent())
        await started.wait()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def deadline() -> agent_otel.Run:
        with pytest.raises(TimeoutError):
            async with agent_otel.run("deadline") as run:
                async with asyncio.timeout(0.05):
                    await slow()
        return run

    asyncio.run(cancel_it())
    assert asyncio.run(deadline()).result.stop_reason == "tool_timeout"
    with pytest.raises(KeyboardInterrupt), agent_otel.run("ctrl-c") as run:
        interrupted()
    assert run.result.stop_reason == "cancelled"
    spans = tool_spans(telemetry)
    assert len(spans) == 3
    for span in spans:
        assert span.attributes[c.TOOL_STATUS] == "cancelled"
        assert span.status.status_code.name == "UNSET"
    assert sorted(s.attributes[c.ERROR_TYPE] for s in spans) == [
        "CancelledError",
        "CancelledError",
        "KeyboardInterrupt",
    ]
    assert {e["status"] for e in telemetry.events("tool_result")} == {"cancelled"}
    assert {a["status"] for a, _ in telemetry.metrics()["agent.tool.invocations"]} == {"cancelled"}
