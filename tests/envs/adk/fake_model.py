"""A Google ADK model that answers from a script (ADK's own ``BaseLlm`` interface, no network)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types


def text(content: str, usage: tuple[int, int] = (20, 3)) -> LlmResponse:
    return _response(types.Part(text=content), usage)


def call(name: str, args: dict[str, Any], call_id: str, usage: tuple[int, int] = (10, 5)) -> LlmResponse:
    return _response(types.Part(function_call=types.FunctionCall(name=name, args=args, id=call_id)), usage)


def _response(part: types.Part, usage: tuple[int, int]) -> LlmResponse:
    return LlmResponse(
        content=types.Content(role="model", parts=[part]),
        finish_reason=types.FinishReason.STOP,
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=usage[0], candidates_token_count=usage[1], total_token_count=sum(usage)
        ),
    )


class FakeModel(BaseLlm):
    """Answers each request with the next scripted response (or raises it, if it is an exception)."""

    script: list[Any] = []
    requests: int = 0

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        yield step
