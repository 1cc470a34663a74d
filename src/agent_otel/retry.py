"""Retries with backoff and jitter, recorded attempt by attempt.

The seed's incident: http.get got 429/503, the tool layer retried up to 8 times *without jitter*, every
agent retried at the same instants and the upstream never recovered. So jitter is ``full`` by default
(AWS's "exponential backoff and jitter": sleep a uniform random time up to the exponential bound), and
each retry is visible: a span event with the error class and delay on the tool span,
``agent.tool.attempts`` on the span and ``agent_tool_retries_total``. A per-run retry budget
(``Budget(max_retries=...)``) stops a retry storm with ``budget_exceeded``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Jitter = Literal["full", "equal", "none"]

_rng = random.Random()


@dataclass(frozen=True, slots=True)
class Retry:
    """How a tool call is retried. ``retry_on`` is exception classes or a predicate on the exception.

    The delay before retry ``n`` (1-based) is ``min(max_delay_s, base_delay_s * 2**(n-1))``, then jittered:
    ``full`` draws uniformly from [0, delay], ``equal`` from [delay/2, delay], ``none`` uses it as is.
    """

    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    jitter: Jitter = "full"
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("Retry delays must not be negative")
        if self.jitter not in ("full", "equal", "none"):
            raise ValueError(f"Retry.jitter must be 'full', 'equal' or 'none', not {self.jitter!r}")

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        """Whether attempt number ``attempt`` (1-based), which raised ``exc``, gets another try."""
        if attempt >= self.max_attempts or not isinstance(exc, Exception):
            return False  # never retry cancellation, KeyboardInterrupt or SystemExit
        if never_retried(exc):
            return False
        if callable(self.retry_on) and not isinstance(self.retry_on, tuple):
            return bool(self.retry_on(exc))
        return isinstance(exc, self.retry_on)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        bound = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        if self.jitter == "full":
            return _rng.uniform(0.0, bound)
        if self.jitter == "equal":
            return bound / 2 + _rng.uniform(0.0, bound / 2)
        return bound


def never_retried(exc: BaseException) -> bool:
    """Exceptions no ``retry_on`` can make a retry of, because they are decisions, not failures.

    A guard's stop (AgentStopped) or refusal (ToolDenied, a replay's ReplayError): a retry would run what
    was refused. A task queue's time limit: a retry would take the task past it. A framework's control
    flow (agent_otel.stop.CONTROL_FLOW: an interrupt, a handoff, ModelRetry): a retry would run again a
    tool that asked a human, or answer the model's framework with a second result it did not ask for.
    """
    from agent_otel.stop import AgentStopped, Refusal, control_flow, is_time_limit

    return isinstance(exc, AgentStopped | Refusal) or is_time_limit(exc) or control_flow(exc) is not None
