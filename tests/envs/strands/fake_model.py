"""A Strands model that streams scripted responses (no network): Strands' own ``Model`` interface."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from strands.models import Model


def text(content: str, usage: tuple[int, int] = (20, 3)) -> tuple[Any, ...]:
    return ("text", content, usage)


def tool_use(
    name: str, args: dict[str, Any], tool_use_id: str, usage: tuple[int, int] = (10, 5)
) -> tuple[Any, ...]:
    return ("tool", name, args, tool_use_id, usage)


def tool_uses(*calls: tuple[str, dict[str, Any], str], usage: tuple[int, int] = (10, 5)) -> tuple[Any, ...]:
    """One response asking for several tool calls (Strands runs them concurrently)."""
    return ("tools", list(calls), usage)


class FakeModel(Model):
    """Streams a script: ``text(...)``, ``tool_use(...)``, ``tool_uses(...)``, or an exception the request
    raises."""

    def __init__(self, *script: Any, model_id: str = "claude-3-5-haiku-20241022") -> None:
        self.script = list(script)
        self.config: dict[str, Any] = {"model_id": model_id}
        self.requests = 0

    def update_config(self, **model_config: Any) -> None:
        self.config.update(model_config)

    def get_config(self) -> Any:
        return self.config

    async def structured_output(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError
        yield

    async def stream(
        self, messages: Any, tool_specs: Any = None, system_prompt: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        self.requests += 1
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        yield {"messageStart": {"role": "assistant"}}
        if step[0] == "text":
            _, text, usage = step
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": text}}}
            yield {"contentBlockStop": {}}
            stop = "end_turn"
        else:
            calls, usage = ([step[1:4]], step[4]) if step[0] == "tool" else (step[1], step[2])
            for name, args, tid in calls:
                yield {"contentBlockStart": {"start": {"toolUse": {"toolUseId": tid, "name": name}}}}
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(args)}}}}
                yield {"contentBlockStop": {}}
            stop = "tool_use"
        yield {"messageStop": {"stopReason": stop}}
        yield {
            "metadata": {
                "usage": {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": sum(usage)},
                "metrics": {"latencyMs": 1},
            }
        }
