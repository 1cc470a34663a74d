"""CrewAI flows' pause for human feedback (``HumanFeedbackPending``, which ``Flow.kickoff()`` returns) is
control flow: an ``@agent_otel.tool`` raising it is ``interrupted``, not retried, and so is its run."""

from __future__ import annotations

import pytest

import agent_otel
from tests.integrations.conftest import one, ours

pytest.importorskip("crewai")

from crewai.flow.async_feedback.types import HumanFeedbackPending, PendingFeedbackContext


def test_human_feedback_pending_is_a_pause_never_retried(telemetry):
    asked: list[str] = []

    @agent_otel.tool(name="request_review", retry=agent_otel.Retry(max_attempts=3, base_delay_s=0))
    def request_review(draft: str) -> str:
        asked.append(draft)
        context = PendingFeedbackContext(
            flow_id="f-1", flow_class="ReviewFlow", method_name="review", method_output=draft, message="ok?"
        )
        raise HumanFeedbackPending(context=context, callback_info={"ticket": "T-1"})

    with pytest.raises(HumanFeedbackPending), agent_otel.run("reviews") as run:
        request_review("draft 1")
    assert asked == ["draft 1"] and run.result.stop_reason == "interrupted"
    tool = one(ours(telemetry.spans()), "execute_tool request_review")
    assert tool.attributes["agent.tool.status"] == "interrupted" and "error.type" not in tool.attributes
