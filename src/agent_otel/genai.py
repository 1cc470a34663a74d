"""What the GenAI semantic conventions make of a request: its parameters as ``gen_ai.request.*``
attributes, and the ``gen_ai.provider.name`` of a well-known model name.

Shared by the LLM step (``agent_otel.llm``) and the integrations, which read request parameters from
request bodies, LangChain ``invocation_params``, Agents SDK ``ModelSettings`` or PydanticAI
``model_settings``, all named as the OpenAI and Anthropic APIs name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_otel import conventions as c


def request_attributes(params: Mapping[str, Any]) -> dict[str, Any]:
    """``gen_ai.request.*`` attributes from request parameters named as in OpenAI/Anthropic bodies."""
    out: dict[str, Any] = {}
    for key, attribute, kind in c.REQUEST_PARAMETERS:
        value = params.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if kind is int and isinstance(value, float) and not value.is_integer():
            continue
        out[attribute] = kind(value)
    stop = params.get("stop", params.get("stop_sequences"))
    sequences = [stop] if isinstance(stop, str) else strings(stop)
    if sequences:
        out[c.GEN_AI_REQUEST_STOP_SEQUENCES] = sequences
    choices = params.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        out[c.GEN_AI_REQUEST_CHOICE_COUNT] = choices
    # The output format asked for: Chat Completions' response_format, the Responses API's text.format.
    fmt = params.get("response_format")
    text = params.get("text")
    if fmt is None and isinstance(text, Mapping):
        fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind in ("json_schema", "json_object"):
        out[c.GEN_AI_OUTPUT_TYPE] = "json"
    elif kind == "text":
        out[c.GEN_AI_OUTPUT_TYPE] = "text"
    return out


# Model name prefixes of well-known providers, for a request whose provider nobody said (run.record_llm).
_PROVIDER_PREFIXES = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage"), "openai"),
    (("claude",), "anthropic"),
    (("gemini",), "gcp.gemini"),
    (("mistral", "mixtral", "codestral", "ministral", "magistral"), "mistral_ai"),
    (("deepseek",), "deepseek"),
    (("grok",), "x_ai"),
    (("command",), "cohere"),
)


def guess_provider(model: str | None) -> str | None:
    """``gen_ai.provider.name`` for a well-known model name, else None (then the attribute is left out)."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    for prefixes, provider in _PROVIDER_PREFIXES:
        if name.startswith(prefixes):
            return provider
    return None


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v]
    return []
