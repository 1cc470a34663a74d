"""Which parameters of a tool function are a framework's context, not the model's arguments.

Frameworks hand a tool its run's context in a parameter the model never fills: PydanticAI's
``RunContext``, the OpenAI Agents SDK's ``RunContextWrapper``/``ToolContext``, Strands' and Google ADK's
``ToolContext``, LangChain's ``ToolRuntime``, ``RunnableConfig`` and ``InjectedToolArg`` annotations,
LlamaIndex's workflow ``Context``, AutoGen's ``CancellationToken``, an MCP server's ``Context``, the
Microsoft Agent Framework's ``FunctionInvocationContext``. An ``@agent_otel.tool`` function taking one
(without the framework's integration, or in a framework agent-otel has none for) hashed it into its
``args_sha``: two calls with the same arguments got different hashes (the context holds the run's
messages, usage, ids), so repeat and loop guards never saw a repeat and a replay matched nothing; the
whole message history was serialised on every call, on the agent's thread; and with ``store_args`` the
context's dependencies (an API client, its key) were redacted and stored as arguments.

The parameters are found once, when the function is decorated, from its annotations (resolved where the
names resolve, else read as text); calls pay nothing for it. Frameworks are never imported here: a class
is recognised by its module and name.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

#: (module prefix, class name) of each framework's context classes; a subclass matches too.
_CLASSES = (
    ("pydantic_ai.", "RunContext"),
    ("agents.", "RunContextWrapper"),  # the OpenAI Agents SDK; its ToolContext is a subclass
    ("strands.", "ToolContext"),
    ("google.adk.", "ToolContext"),
    ("google.adk.", "Context"),  # what ADK's ToolContext is an alias of since 1.x
    ("google.adk.", "CallbackContext"),
    ("langchain_core.", "RunnableConfig"),
    ("langchain_core.", "BaseRunManager"),  # the run_manager of a BaseTool's _run
    ("langchain_core.", "InjectedToolArg"),
    ("langgraph.", "ToolRuntime"),
    ("langchain.", "ToolRuntime"),
    ("workflows.", "Context"),  # LlamaIndex's workflow Context (llama_index.core.workflow re-exports it)
    ("llama_index.", "Context"),
    ("autogen_core.", "CancellationToken"),
    ("mcp.", "Context"),
    ("agent_framework.", "FunctionInvocationContext"),
)
#: The same classes' names, for an annotation left as text that does not resolve (a name imported only
#: under ``TYPE_CHECKING``). Generic names (``Context``) are not among them: a user's own class may have it.
_NAMES = frozenset(
    {
        "RunContext",
        "RunContextWrapper",
        "ToolContext",
        "ToolRuntime",
        "RunnableConfig",
        "CancellationToken",
        "FunctionInvocationContext",
        "CallbackManagerForToolRun",
        "AsyncCallbackManagerForToolRun",
        "InjectedToolArg",
        "InjectedToolCallId",
        "InjectedState",
        "InjectedStore",
    }
)


def context_parameters(func: Callable[..., Any], params: Sequence[inspect.Parameter]) -> frozenset[str]:
    """The names of ``func``'s parameters that a framework fills with its context (usually none)."""
    if not any(p.annotation is not inspect.Parameter.empty for p in params):
        return frozenset()
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # a name that does not resolve (TYPE_CHECKING imports), a broken annotation
        hints = {}
    found = set()
    for p in params:
        annotation = hints.get(p.name, p.annotation)
        try:
            if _is_context(annotation):
                found.add(p.name)
        except Exception:  # an annotation object of an unexpected kind: the parameter is an argument
            continue
    return frozenset(found)


def _is_context(annotation: Any, depth: int = 0) -> bool:
    if annotation is inspect.Parameter.empty or depth > 4:
        return False
    if isinstance(annotation, str):
        return _named_context(annotation)
    if isinstance(annotation, typing.ForwardRef):
        return _named_context(annotation.__forward_arg__)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        # LangChain's InjectedToolArg markers: Annotated[str, InjectedToolCallId], Annotated[dict,
        # InjectedState], as a class or an instance.
        return any(_is_context_class(m if isinstance(m, type) else type(m)) for m in metadata) or _is_context(
            inner, depth + 1
        )
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_context(a, depth + 1) for a in args)  # Optional[RunContext]
    if origin is not None:
        annotation = origin  # RunContext[Deps]
    return isinstance(annotation, type) and _is_context_class(annotation)


def _is_context_class(cls: type) -> bool:
    try:
        mro = cls.__mro__
    except AttributeError:
        return False
    for klass in mro:
        module, name = getattr(klass, "__module__", "") or "", klass.__name__
        for prefix, known in _CLASSES:
            if name == known and (module + ".").startswith(prefix):
                return True
    return False


def _named_context(text: str) -> bool:
    """An annotation as text: ``"RunContext[Deps]"``, ``"agents.RunContextWrapper[Any]"``,
    ``"Annotated[str, InjectedToolCallId]"``, ``"ToolContext | None"`` (quoted again under
    ``from __future__ import annotations``)."""
    for part in text.replace("[", ",").replace("]", ",").replace("|", ",").split(","):
        name = part.strip(" \t'\"").rpartition(".")[2]
        if name in _NAMES:
            return True
    return False
