"""A model client's request as an LLM step: what the google-genai, LiteLLM and Bedrock (boto3) integrations
share, so that each of them only says where its client sends a request and what the answer looks like.

One logical request (its retries included) is one ``chat {model}`` step of the current run, begun through
the step engine (:func:`agent_otel.llm.begin`) so that guards run before anything is sent and may raise
:class:`~agent_otel.AgentStopped`. Its span is current while the request is sent, so spans of the HTTP
client nest under it. The integration reads the answer into a :class:`Reply` (usage, response id, model,
finish reasons, the tool calls the model asked for) and the step ends with it; a failed request ends it
failed (``model_error`` if the exception ends the run). A streamed answer ends its step when the stream is
exhausted, closed, breaks off (with the usage seen until then), is dropped unread, or, left unfinished but
still referenced, when its run ends. The step carries the
GenAI attributes the integration can read (provider, request parameters, ``server.address``, response id,
model and finish reasons) and, with content capture on, the messages it builds only then.

Requests outside any run pass through untouched, and so do requests made while a framework integration
records the same LLM call (:data:`agent_otel.integrations._common.framework_llm`): a LiteLLM request that
reaches the OpenAI client underneath is one step, not two.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace

from agent_otel import conventions as c
from agent_otel import llm
from agent_otel.llm import LLMCall
from agent_otel.steps import active_run, internal_error
from agent_otel.stop import AgentStopped

from ._common import framework_call, framework_llm, reset_framework_llm


class Reply:
    """What one response said: usage, the responding model, id, finish reasons, requested tool calls.

    ``input_tokens`` is all input, cached included (``cached_input_tokens`` / ``cache_write_tokens`` are
    parts of it, priced differently); ``output_tokens`` is all output, reasoning included
    (``reasoning_tokens`` is the part of it the model spent thinking). ``cost_usd`` is the spend the client
    library computed itself, used only for a model agent-otel's price table does not know.
    """

    __slots__ = (
        "cache_write_tokens",
        "cached_input_tokens",
        "cost_usd",
        "finish_reasons",
        "input_tokens",
        "model",
        "output_tokens",
        "reasoning_tokens",
        "response_id",
        "tool_call_ids",
    )

    def __init__(self) -> None:
        # None until the response reports usage: unknown, not 0 (a reader takes 0 for a free request)
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.reasoning_tokens = 0
        self.cost_usd: float | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []
        self.tool_call_ids: list[str] = []

    def add_reason(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.finish_reasons.append(reason)

    def add_tool_call(self, call_id: Any) -> None:
        if isinstance(call_id, str) and call_id and call_id not in self.tool_call_ids:
            self.tool_call_ids.append(call_id)

    def set_model(self, model: Any) -> None:
        if isinstance(model, str) and model:
            self.model = model

    def set_id(self, response_id: Any) -> None:
        if isinstance(response_id, str) and response_id:
            self.response_id = response_id


def begin(
    provider: str | None,
    model: str | None,
    params: Mapping[str, Any] | None = None,
    *,
    stream: bool = False,
    server: Any = None,
    messages: Callable[[], list[dict[str, Any]]] | None = None,
    defer: bool = False,
) -> LLMCall | None:
    """An LLM step of the current run for a request about to be sent, or None (pass it through).

    ``params`` are the request parameters named as OpenAI names them (``temperature``, ``max_tokens``,
    ``top_p``, ``top_k``, ``stop_sequences``...); ``server`` is the base URL the request goes to
    (``server.address`` / ``server.port``); ``messages`` builds the request's messages in the GenAI form,
    called only with content capture on. AgentStopped from a guard propagates: nothing is sent.
    ``defer`` leaves the step's span to the library's own span of the request, if one comes
    (:mod:`agent_otel.native`); else agent-otel's opens when the step ends, back-dated to its start.
    """
    run = active_run()
    if run is None or framework_call() is not None:
        return None
    try:
        call = llm.begin(run, model or "unknown", attach=False, provider=provider, defer=defer)
    except AgentStopped:
        raise
    except Exception as exc:
        internal_error("starting an LLM request span", exc)
        return None
    if call is not None:
        call.request(params, stream=stream)
        try:
            call.attributes.update(server_attributes(server))
        except Exception as exc:
            internal_error("reading an LLM request", exc)
        capture(call, input=messages)
    return call


def capture(
    call: LLMCall,
    *,
    input: Callable[[], list[dict[str, Any]]] | None = None,
    output: Callable[[], list[dict[str, Any]]] | None = None,
) -> None:
    """Content capture: the request's or the response's messages, built only when capture is on."""
    if (input is None and output is None) or not call.capture_content:
        return
    try:
        call.messages(input=input() if input else None, output=output() if output else None)
    except Exception as exc:
        internal_error("capturing LLM messages", exc)


def server_attributes(url: Any) -> dict[str, Any]:
    """``server.address`` / ``server.port`` of a base URL (none for what is not one)."""
    if not isinstance(url, str) or "://" not in url:
        return {}
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    return {c.SERVER_ADDRESS: parts.hostname, c.SERVER_PORT: port} if parts.hostname else {}


def attach(call: LLMCall) -> Any:
    """Make the step's span current while its request is sent (HTTP client spans nest under it).

    Not for a deferred step: the client's own span will be current then (and become the step's span).
    """
    if call.native is None and call.span is trace.INVALID_SPAN:
        return None
    try:
        return otel_context.attach(trace.set_span_in_context(call.span))
    except Exception:
        return None


def detach(token: Any) -> None:
    if token is not None:
        try:
            otel_context.detach(token)
        except Exception as exc:
            internal_error("detaching the LLM request context", exc)


@contextlib.contextmanager
def sending(call: LLMCall, *, framework: bool = False) -> Iterator[None]:
    """The request of ``call`` is being sent: its span is current, and a failure fails the step.

    ``framework`` also makes ``call`` the framework's call in flight, so a client library used underneath
    (the OpenAI client under LiteLLM) does not record the same request again.
    """
    inflight = framework_llm.set(call) if framework else None
    token = attach(call)
    try:
        yield
    except BaseException as exc:
        fail(call, exc)
        raise
    finally:
        detach(token)
        if inflight is not None:
            reset_framework_llm(inflight)


def _describe_response(call: LLMCall, reply: Reply) -> None:
    call.response(
        response_id=reply.response_id,
        finish_reasons=reply.finish_reasons,
        tool_call_ids=reply.tool_call_ids,
        response_model=reply.model,
    )
    if reply.reasoning_tokens:
        call.attributes[c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reply.reasoning_tokens


def finish(call: LLMCall, reply: Reply, output: Callable[[], list[dict[str, Any]]] | None = None) -> None:
    """End the step with what the response said (``output``: its messages, for content capture)."""
    capture(call, output=output)
    try:
        _describe_response(call, reply)
    except Exception as exc:
        internal_error("reading an LLM response", exc)
    call.finish(
        reply.input_tokens,
        reply.output_tokens,
        cost_usd=_library_cost(call, reply),
        response_model=reply.model,
        cached_input_tokens=reply.cached_input_tokens,
        cache_write_tokens=reply.cache_write_tokens,
    )


def _library_cost(call: LLMCall, reply: Reply) -> float | None:
    """The library's own spend figure, if agent-otel's price table has no price for the model."""
    if reply.cost_usd is None:
        return None
    rt = call.runtime
    if rt is None or rt.prices.price(reply.model or call.model) is not None:
        return None
    return reply.cost_usd


def fail(call: LLMCall, exc: BaseException, reply: Reply | None = None) -> None:
    """End the step failed; a stream that broke off still used the tokens it reported before."""
    reply = reply or Reply()
    try:
        _describe_response(call, reply)
    except Exception as err:
        internal_error("reading an LLM response", err)
    call.fail(
        exc,
        reply.input_tokens,
        reply.output_tokens,
        cached_input_tokens=reply.cached_input_tokens,
        cache_write_tokens=reply.cache_write_tokens,
    )


def read(what: str, parse: Callable[[Reply], None]) -> Reply:
    """A Reply filled by ``parse``; of a response agent-otel cannot read, what was read before it failed."""
    reply = Reply()
    try:
        parse(reply)
    except Exception as exc:
        internal_error(f"reading {what}", exc)
    return reply


# --- streams ----------------------------------------------------------------------------------------

#: Reads one stream event into the Reply of its stream.
Feed = Callable[[Reply, Any], None]


class Watch:
    """One streamed response in flight: feeds its events into a Reply and ends the step exactly once
    (exhausted, closed early, broken off, or dropped unread)."""

    __slots__ = ("__weakref__", "call", "feed", "reply")

    def __init__(self, call: LLMCall, feed: Feed) -> None:
        self.call = call
        self.feed = feed
        self.reply = Reply()
        call.end_with_run(self.end)  # left unfinished but still referenced: it ends when the run stops

    def event(self, event: Any) -> None:
        try:
            self.feed(self.reply, event)
        except Exception as exc:
            internal_error("reading usage from a stream event", exc)

    def end(self) -> None:
        # (a step its run's stop ended takes the final usage of a stream read on: LLMCall.finish)
        if not self.call.done or isinstance(self.call.by_run, tuple):
            finish(self.call, self.reply)

    def error(self, exc: BaseException) -> None:
        if not self.call.done:
            fail(self.call, exc, self.reply)

    def on_drop(self, owner: Any) -> None:
        """Dropped without being read to its end or closed: the step still ends (usage seen so far)."""
        with contextlib.suppress(TypeError):  # not weak-referenceable: it ends when consumed or closed
            weakref.finalize(owner, type(self).dropped, self)

    def dropped(self) -> None:
        """The stream object was garbage-collected (a no-op if its step ended already)."""
        self.end()


def observe(inner: Iterator[Any], watch: Watch) -> Iterator[Any]:
    """Yield ``inner``'s events unchanged, feeding them to ``watch``; end its step with the stream.

    The step's span is current while each event is read (a stream that sends its request lazily, or reads
    the network per event, nests its HTTP spans under the step).
    """
    try:
        while True:
            token = attach(watch.call)
            try:
                event = next(inner)
            except StopIteration:
                break
            finally:
                detach(token)
            watch.event(event)
            yield event
    except GeneratorExit:
        close = getattr(inner, "close", None)
        if close is not None:
            close()
        watch.end()
        raise
    except BaseException as exc:
        watch.error(exc)
        raise
    watch.end()


async def aobserve(inner: AsyncIterator[Any], watch: Watch) -> AsyncIterator[Any]:
    """The async twin of :func:`observe`."""
    try:
        while True:
            token = attach(watch.call)
            try:
                event = await inner.__anext__()
            except StopAsyncIteration:
                break
            finally:
                detach(token)
            watch.event(event)
            yield event
    except GeneratorExit:
        watch.end()
        raise
    except BaseException as exc:
        watch.error(exc)
        raise
    watch.end()


# --- stream objects a library returns (patched at class level, read only when they carry a Watch) -------

#: Attribute on a library's stream object whose events agent-otel reads into an LLM step.
WATCH_ATTR = "_agent_otel_watch"


def watch_stream(stream: Any, watch: Watch) -> None:
    """Let ``stream`` (an object whose class agent-otel patched) feed ``watch`` and end its step."""
    setattr(stream, WATCH_ATTR, watch)
    watch.on_drop(stream)


def watch_of(stream: Any) -> Watch | None:
    return getattr(stream, WATCH_ATTR, None)


def _end_watch(stream: Any) -> None:
    watch = watch_of(stream)
    if watch is not None:
        watch.end()


def wrap_close(original: Any) -> Any:
    """A stream's ``close()`` that also ends its step (with the usage seen so far)."""

    @functools.wraps(original)
    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            _end_watch(self)

    return close


def wrap_aclose(original: Any) -> Any:
    """The async twin of :func:`wrap_close`."""

    @functools.wraps(original)
    async def aclose(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        finally:
            _end_watch(self)

    return aclose
