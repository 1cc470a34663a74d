"""An AG2 agent for ``agent-otel replay --call tests.integrations.ag2_agent:handle`` (tests/integrations/
test_ag2.py): AG2's tracing on, its model the OpenAI API at ``$AG2_TEST_BASE_URL`` (the test's fake API)."""

from __future__ import annotations

import os

NAME = "ag2-replayed"
BASE_URL = "AG2_TEST_BASE_URL"


async def handle(prompt: str = "hi") -> str | None:
    from ag2 import Agent
    from ag2.config import OpenAIConfig
    from ag2.middleware import TelemetryMiddleware

    from tests.integrations.sample_tools import lookup

    config = OpenAIConfig(model="gpt-4o", base_url=os.environ[BASE_URL], api_key="test", max_retries=0)
    agent = Agent(NAME, config=config, tools=[lookup], middleware=[TelemetryMiddleware(agent_name=NAME)])
    return (await agent.ask(prompt)).body
