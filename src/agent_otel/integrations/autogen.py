"""AutoGen (``autogen-core`` 0.7): a sync ``@agent_otel.tool`` function keeps the run it was called in.

AutoGen traces itself: the GenAI span bridge (:mod:`agent_otel.bridge`) makes its ``invoke_agent`` span
the run and its ``execute_tool`` spans the tool steps, and an async ``@agent_otel.tool`` function claims
that step (one span, its retry, timeout and declared write applied once). A *sync* function is another
matter: ``FunctionTool.run`` hands it to ``loop.run_in_executor``, which (unlike ``asyncio.to_thread``)
does not carry the caller's context to the worker thread, so the function ran in no run, outside
AutoGen's span: untraced, without its ``retry=`` / ``timeout_s=``, and a declared write was not checked
against the writes kill switch.

This integration wraps ``FunctionTool.run`` so that, for a sync function decorated with
``@agent_otel.tool`` (directly or under wrappers that keep ``__wrapped__``), the executor runs it inside a
copy of the caller's context, as ``asyncio.to_thread`` would: AutoGen still calls it on its executor, with
its arguments and cancellation token, and gets its result or exception unchanged. Other functions run as
AutoGen runs them (their threads see no context of the caller's, as before: agent-otel does not change
what your own context variables show there).
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any

from . import Integration
from ._common import Patcher


def _is_agent_otel_tool(func: Any) -> bool:
    try:
        inner = inspect.unwrap(func, stop=lambda f: hasattr(f, "__agent_otel_tool__"))
    except ValueError:  # a __wrapped__ cycle
        return False
    return hasattr(inner, "__agent_otel_tool__")


def _make_run(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        func = getattr(self, "_func", None)
        if func is None or inspect.iscoroutinefunction(func) or not _is_agent_otel_tool(func):
            return await original(self, *args, **kwargs)
        # AutoGen's own run, on a shallow copy whose function enters the caller's context on the executor's
        # thread (a fresh copy per call: a Context is entered by one thread at a time).
        carried = copy.copy(self)
        carried._func = functools.partial(contextvars.copy_context().run, func)
        return await original(carried, *args, **kwargs)

    return run


class AutoGenIntegration(Integration):
    name = "autogen"
    packages = ("autogen_core",)

    def __init__(self) -> None:
        self._patcher = Patcher()

    def instrument(self) -> None:
        if self._patcher.applied:
            return
        from autogen_core.tools import FunctionTool

        self._patcher.wrap(FunctionTool, "run", _make_run)

    def uninstrument(self) -> None:
        self._patcher.restore()
