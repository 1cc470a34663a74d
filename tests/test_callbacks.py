"""Runs and threads: tool calls fanned out to a thread pool, and runs that callback-style frameworks start
in one thread and end in another.

Entering a run makes it current in the entering thread's context; a framework that ends it from a
callback on another thread cannot reset that context. The entering thread's next run then took the
ended run as its parent: a sub-agent of a finished run, a child span in its trace, bound by its budget.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import agent_otel


def _in_thread(fn) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def _isolated(test):
    """Run ``test`` in a copy of the context: it leaves an ended run current in the context that entered
    it, as a callback framework does, and the tests after it must not inherit that."""

    @functools.wraps(test)  # (pytest reads the fixtures from the wrapped signature)
    def wrapper(*args, **kwargs):
        return contextvars.copy_context().run(test, *args, **kwargs)

    return wrapper


@_isolated
def test_a_run_ended_on_another_thread_is_no_parent_of_the_next_run(telemetry):
    callback_run = agent_otel.run("callback")
    callback_run.__enter__()
    _in_thread(lambda: callback_run.__exit__(None, None, None))  # the framework's completion callback
    assert callback_run.result["stop_reason"] == "completed"

    with agent_otel.run("next") as nxt:
        assert nxt.parent is None
        assert nxt.trace_id != callback_run.trace_id
    telemetry.flush()
    (span,) = telemetry.spans_named("invoke_agent next")
    assert span.parent is None
    assert not span.links  # the ended run's span is not an ambient span (a request, a job) to link to
    rows = [r for r in telemetry.sink.runs() if r["agent"] == "next"]
    assert rows and all(r.get("parent_run_id") is None for r in rows)


@_isolated
def test_a_sub_agent_ended_on_another_thread_leaves_its_parent_the_parent_of_the_next_one(telemetry):
    with agent_otel.run("parent") as parent:
        child = agent_otel.run("child")
        child.__enter__()
        _in_thread(lambda: child.__exit__(None, None, None))
        with agent_otel.run("sibling") as sibling:
            assert sibling.parent is parent
    (span,) = telemetry.spans_named("invoke_agent sibling")
    assert span.parent.span_id == parent.span.get_span_context().span_id  # not the ended child's span


def test_tool_calls_fanned_out_to_a_pool_with_a_copied_context_are_the_runs(telemetry):
    """README "Threads": the recipe. Without it a pool's thread sees no run (documented, untraced)."""

    @agent_otel.tool(name="lookup")
    def lookup(i: int) -> int:
        return i * 2

    with agent_otel.run("fan-out") as run, ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lookup, range(3))) == [0, 2, 4]  # untraced: no context in the pool's threads
        assert run.tool_calls == 0
        futures = [pool.submit(contextvars.copy_context().run, lookup, i) for i in range(6)]
        assert [f.result() for f in futures] == [0, 2, 4, 6, 8, 10]
    assert run.tool_calls == 6
    tools = telemetry.spans_named("execute_tool lookup")
    assert len(tools) == 6
    assert {s.parent.span_id for s in tools} == {run.span.get_span_context().span_id}
