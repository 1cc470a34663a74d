"""The figures of a period (``stats``, ``drift``), aggregated in the database rather than in Python.

A period is the runs *started* in ``[since_ms, until_ms)`` (of one agent, or all), replays left out. Two
ways to the same figures:

* **exact**, for a period of at most :data:`RAW_RUNS` runs: counts, sums, the stop reasons and the failing
  tools are SQL aggregates over the raw tables (``agent_runs`` by its ``created_at`` or ``(agent,
  created_at)`` index; the period's events through ``agent_events (run_id, step_id)``), and percentiles are
  exact: PostgreSQL's ``percentile_cont``, in SQLite the values at the two ranks around each percentile,
  found with ``row_number() OVER (ORDER BY value)`` and interpolated linearly, as ``percentile_cont`` does;
* **summarized**, for a longer one: the stored summaries of the whole hours and days inside it
  (:mod:`agent_otel.store.summaries`, one row per agent and hour or day) added up, plus the partial hours
  at its ends summarized from the raw tables. Counts, means, totals and the tables are exact; percentiles
  come from the summaries' histograms and are within ``summaries.ACCURACY`` (1%) of the exact ones (tool
  calls per run: exact).

Tokens per request are over the LLM requests that reported their usage: a request of 0 tokens reported
none (a stream without ``include_usage``, a failed request), and is counted apart (``without_usage``) rather
than as a request of 0 tokens, as ``agent_tokens_per_request`` leaves it out.

Runs still going and abandoned runs are counted apart in both, from the ``running`` rows only (a partial
index), grouped by the process that wrote them so that each process is judged once.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from agent_otel.stop import StopReason
from agent_otel.store import liveness, summaries

if TYPE_CHECKING:
    from agent_otel.store.db import Store

RAW_RUNS = 2_000  # above this many runs in a period, figures come from the summaries
FAILING_TOOLS = 10
EXACT, SUMMARIZED = "exact", "summarized"


def period(
    store: Store, since_ms: int, until_ms: int, agent: str | None = None, method: str | None = None
) -> dict[str, Any]:
    """The figures of the period (the keys ``stats --json`` prints). ``method``: force ``exact`` or
    ``summarized`` (tests compare them); by default the size of the period decides."""
    with store.reading():
        running, abandoned = running_counts(store, since_ms, until_ms, agent)
        covered = summaries.covered_from(store) if store.has_table(summaries.TABLE) else None
        if method is None:
            method = (
                EXACT
                if covered is None or size(store, since_ms, until_ms, agent, covered) <= RAW_RUNS
                else SUMMARIZED
            )
        if method == SUMMARIZED and covered is None:
            raise ValueError("this store has no summaries (schema < 6)")
        figures = (
            exact(store, since_ms, until_ms, agent)
            if method == EXACT
            else summarized(store, since_ms, until_ms, agent, covered or 0)
        )
    out = build(figures, running, abandoned)
    out["method"] = method
    return out


def through_now(store: Store, now_ms: int, agent: str | None = None) -> tuple[int, int]:
    """The end of a period that ends *now*, and how many runs start after now: ``(end_ms, ahead)``.

    A run's start time is its writer's clock, and a host whose clock is ahead stores runs that start
    after now; a period ending now left them out until this clock caught up (the last hour of a fleet
    with one host ten minutes ahead lacked that host's newest runs), while ``runs`` listed them. A
    period that ends now is every run stored by now, so its end moves past the latest such start. One
    look-up over the ``created_at`` index (runs after now are few)."""
    where, params = summaries.range_where(store, now_ms, _FAR_MS, agent)
    rows = store.query(f"SELECT count(*) AS n, max(created_at) AS last FROM agent_runs WHERE {where}", params)
    ahead = int(rows[0]["n"] or 0) if rows else 0
    last = store._ms(rows[0]["last"]) if ahead else None
    return (max(now_ms, last + 1) if last is not None else now_ms), ahead


_FAR_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z: no upper bound


def _where(store: Store, since_ms: int, until_ms: int, agent: str | None) -> tuple[str, list[Any]]:
    return summaries.range_where(store, since_ms, until_ms, agent)


def size(store: Store, since_ms: int, until_ms: int, agent: str | None, covered: int) -> int:
    """Ended runs in the period, from the summaries, plus the runs of its raw pieces (counted at most to
    just past RAW_RUNS): cheap whatever the period."""
    raw, spans = summaries.plan(since_ms, until_ms, covered)
    total = 0
    for span, a, b in spans:
        total += sum(summaries.stored(store, span, a, b, agent, data=False))
    for a, b in raw:
        if total > RAW_RUNS:
            break
        where, params = _where(store, a, b, agent)
        rows = store.query(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM agent_runs WHERE {where} LIMIT {RAW_RUNS + 1}) t",
            params,
        )
        total += int(rows[0]["n"])
    return total


def running_counts(store: Store, since_ms: int, until_ms: int, agent: str | None) -> tuple[int, int]:
    """(running, abandoned) among the period's ``running`` rows: one liveness judgement per process."""
    where, params = _where(store, since_ms, until_ms, agent)
    now_ms = int(time.time() * 1000)
    rows = store.query(
        "SELECT host, pid, process_start, count(*) AS n, sum(CASE WHEN deadline_ms IS NOT NULL AND "
        "deadline_ms < ? THEN 1 WHEN deadline_ms IS NULL AND host IS NULL AND pid IS NULL AND process_start "
        f"IS NULL AND created_at < ? THEN 1 ELSE 0 END) AS late FROM agent_runs WHERE {where} "
        "AND status = 'running' GROUP BY host, pid, process_start",
        [now_ms - liveness.DEADLINE_GRACE_MS, store._ts(now_ms - liveness.UNCHECKED_MS), *params],
    )
    running = abandoned = 0
    for r in rows:
        state = liveness.UNKNOWN
        with contextlib.suppress(Exception):  # an odd row must not break the figures
            state = liveness.process_state(r["host"], r["pid"], r["process_start"])
        n, late = int(r["n"]), int(r["late"] or 0)
        if state == liveness.GONE:
            abandoned += n
        elif state == liveness.UNKNOWN:
            abandoned += late
            running += n - late
        else:
            running += n
    return running, abandoned


# --- exact: SQL over the raw tables ----------------------------------------------------------------------


def exact(store: Store, since_ms: int, until_ms: int, agent: str | None) -> dict[str, Any]:
    where, params = _where(store, since_ms, until_ms, agent)
    ended = f"{where} AND status <> 'running'"
    n = nd = 0
    tool_calls = spend = retries = 0.0
    stops: dict[str, list[Any]] = {}
    for r in store.query(
        "SELECT stop_reason, count(*) AS n, count(duration_ms) AS nd, sum(coalesce(tool_calls, 0)) AS tc, "
        "sum(coalesce(cost_usd, 0)) AS usd, sum(coalesce(retries, 0)) AS rt, min(created_at) AS first "
        f"FROM agent_runs WHERE {ended} GROUP BY stop_reason",
        params,
    ):
        count = int(r["n"])
        n, nd = n + count, nd + int(r["nd"])
        tool_calls += float(r["tc"] or 0)
        spend += float(r["usd"] or 0)
        retries += float(r["rt"] or 0)
        reason, first = r["stop_reason"] or "unknown", store._ms(r["first"]) or 0
        if reason in stops:
            stops[reason] = [stops[reason][0] + count, min(stops[reason][1], first)]
        else:
            stops[reason] = [count, first]
    in_period = f"run_id IN (SELECT run_id FROM agent_runs WHERE {where})"
    tools: dict[str, int] = {}
    failures: dict[tuple[str, str], list[int]] = {}
    for r in store.query(
        "SELECT tool, status, error, count(*) AS n, min(ts_ms) AS first FROM agent_events "
        f"WHERE kind = 'tool_result' AND {in_period} GROUP BY tool, status, error",
        params,
    ):
        name, count = r["tool"] or "?", int(r["n"])
        tools[name] = tools.get(name, 0) + count
        if r["status"] == "error":
            key = (name, r["error"] or "error")
            old = failures.get(key)
            failures[key] = (
                [count, int(r["first"])] if old is None else [old[0] + count, min(old[1], int(r["first"]))]
            )
    tokens = summaries.tokens_sql(store)
    known = summaries.usage_known_sql(store)  # a real 0 is a request of 0 tokens; unknown usage is not
    requests_sql = f"FROM agent_events WHERE kind = 'llm_result' AND {in_period}"
    llm = f"{requests_sql} AND {known}"  # requests that reported their usage
    totals = store.query(
        f"SELECT count(*) AS n, sum(CASE WHEN {known} THEN 1 ELSE 0 END) AS k, sum({tokens}) AS t "
        f"{requests_sql}",
        params,
    )[0]
    requests, reported, token_sum = int(totals["n"]), int(totals["k"] or 0), float(totals["t"] or 0)
    if store.kind == "postgresql":
        pct = _pg_percentiles(store, ended, params, tokens, llm)
    else:
        pct = {
            "lat": _sqlite_percentiles(
                store, "duration_ms", f"FROM agent_runs WHERE {ended}", params, nd, (0.5, 0.95)
            ),
            "tc": _sqlite_percentiles(
                store, "coalesce(tool_calls, 0)", f"FROM agent_runs WHERE {ended}", params, n, (0.5, 0.95)
            ),
            "usd": _sqlite_percentiles(
                store, "coalesce(cost_usd, 0)", f"FROM agent_runs WHERE {ended}", params, n, (0.95,)
            ),
            "tok": _sqlite_percentiles(store, tokens, llm, params, reported, (0.5, 0.95)),
        }
    return {
        "runs": n,
        "latency": tuple(pct["lat"]),
        "tool_calls": (tool_calls / n if n else None, *pct["tc"]),
        "tokens": (requests, token_sum / reported if reported else None, *pct["tok"], reported),
        "spend": (spend / n if n else None, pct["usd"][0], spend if n else 0),
        "retries": (retries / n if n else None, int(retries)),
        "stops": [(reason, c, first) for reason, (c, first) in stops.items()],
        "tools": tools,
        "failures": [(tool, error, c, first) for (tool, error), (c, first) in failures.items()],
    }


def _pg_percentiles(
    store: Store, ended: str, params: list[Any], tokens: str, llm: str
) -> dict[str, list[Any]]:
    runs = store.query(
        "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY duration_ms) AS lat, "
        "percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY coalesce(tool_calls, 0)::float8) AS tc, "
        "percentile_cont(ARRAY[0.95]) WITHIN GROUP (ORDER BY coalesce(cost_usd, 0)) AS usd "
        f"FROM agent_runs WHERE {ended}",
        params,
    )[0]
    tok = store.query(
        f"SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY {tokens}) AS tok {llm}", params
    )[0]
    out = {**runs, **tok}
    return {k: list(v) if v is not None else [None] * (1 if k == "usd" else 2) for k, v in out.items()}


def _sqlite_percentiles(
    store: Store, expr: str, source: str, params: list[Any], count: int, qs: tuple[float, ...]
) -> list[float | None]:
    """Exact linearly interpolated percentiles of ``expr`` over the ``count`` non-null values of
    ``source``: the values at the ranks around each percentile, by a window function over the sorted
    values (one sort), then interpolated here."""
    if not count:
        return [None for _ in qs]
    ranks: set[int] = set()
    for q in qs:
        pos = (count - 1) * q
        ranks.update((int(pos // 1), -int(-pos // 1)))
    marks = ", ".join("?" for _ in ranks)
    rows = store.query(
        f"SELECT v, i FROM (SELECT {expr} AS v, row_number() OVER (ORDER BY {expr}) - 1 AS i {source} "
        f"AND {expr} IS NOT NULL) t WHERE i IN ({marks})",
        [*params, *sorted(ranks)],
    )
    at = {int(r["i"]): float(r["v"]) for r in rows}
    out: list[float | None] = []
    for q in qs:
        pos = (count - 1) * q
        lo, hi = int(pos // 1), -int(-pos // 1)
        out.append(at[lo] if lo == hi else at[lo] + (at[hi] - at[lo]) * (pos - lo))
    return out


# --- summarized ----------------------------------------------------------------------------------------


def summarized(store: Store, since_ms: int, until_ms: int, agent: str | None, covered: int) -> dict[str, Any]:
    raw, spans = summaries.plan(since_ms, until_ms, covered)
    total = summaries.Summary()
    for a, b in raw:
        for s in summaries.from_raw(store, a, b, agent).values():
            total.merge(s)
    for span, a, b in spans:
        for s in summaries.stored(store, span, a, b, agent):
            total.merge(s)
    return total.figures()


# --- the figures as `stats` prints them ----------------------------------------------------------------


def _stop_class(reason: str) -> str:
    try:
        return StopReason(reason).stop_class
    except ValueError:
        return "?"


def build(f: dict[str, Any], running: int, abandoned: int) -> dict[str, Any]:
    """The ``stats`` dict from the figures of either way. Ties in the stop-reason and failing-tool tables
    go to what appeared first."""
    n = f["runs"]
    stops = sorted(f["stops"], key=lambda s: (-s[1], s[2], s[0]))
    failures = sorted(f["failures"], key=lambda x: (-x[2], x[3], x[0], x[1]))[:FAILING_TOOLS]
    tools = f["tools"]
    lat, (tc_mean, tc50, tc95), (requests, tok_mean, tok50, tok95, reported) = (
        f["latency"],
        f["tool_calls"],
        f["tokens"],
    )
    spend_mean, spend95, spend_total = f["spend"]
    retries_mean, retries_total = f["retries"]
    return {
        "runs": n,
        "running": running,
        "abandoned": abandoned,
        "latency_ms": {"p50": lat[0], "p95": lat[1]},
        "tool_calls_per_run": {"mean": tc_mean, "p50": tc50, "p95": tc95},
        "tokens_per_request": {
            "requests": requests,
            "without_usage": requests - reported,
            "mean": tok_mean,
            "p50": tok50,
            "p95": tok95,
        },
        "spend_per_run_usd": {"mean": spend_mean, "p95": spend95, "total": spend_total},
        "retries_per_run": {"mean": retries_mean, "total": retries_total},
        "stop_reasons": [
            {"stop_reason": reason, "class": _stop_class(reason), "runs": c, "share": c / n if n else 0.0}
            for reason, c, _ in stops
        ],
        "failing_tools": [
            {
                "tool": tool,
                "error": error,
                "failures": c,
                "calls": tools.get(tool, 0),
                "error_rate": c / tools[tool] if tools.get(tool) else 0.0,
            }
            for tool, error, c, _ in failures
        ],
    }
