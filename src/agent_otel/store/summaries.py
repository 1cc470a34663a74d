"""Summaries of runs per agent and hour (and day): what ``stats`` and ``drift`` read at scale (schema 6).

A summary row holds, for the runs of one agent *started* in one hour or one UTC day, what the figures of
``stats`` are made of: the number of ended runs and the sums of their tool calls, spend and retries, the
stop reasons, the tool calls and failures by tool, the LLM requests and their tokens, and histograms for the
percentiles (latency, tool calls, spend, tokens per request). Replays are left out, as in ``stats``.

The store keeps them in step with the raw tables in the same transaction as each write (:func:`deltas` and
:func:`apply`): a run counts once, when its row goes from ``running`` to ended; an event counts in the
summary of its run's start hour. ``running`` rows are never summarized: whether they are still running or
abandoned is judged when reading (:mod:`agent_otel.store.liveness`).

Histograms: tool calls per run are integers and kept exactly (a count per value). Latency, spend and tokens
go into logarithmic buckets: a positive value ``v`` falls in bucket ``k = ceil(log(v) / log(g))`` with
``g = (1 + a) / (1 - a)``, and the bucket stands for ``2 g**k / (g + 1)``, within ``a`` (relative) of every
value in it; zero has a bucket of its own. A percentile read from the buckets (interpolated linearly between
neighbouring ranks, as ``percentile_cont``) is therefore within ``ACCURACY`` (1%) of the exact one.

Coverage: a store migrated to schema 6 with runs in it has summaries only from the next hour on
(``agent_otel_meta.summaries_from_ms``); readers compute earlier periods from the raw tables, and the store
sink's maintenance (:func:`backfill_step`) summarizes the older hours one at a time, newest first, moving
that mark back. A fresh store is covered from the start.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_otel.store.db import Store

TABLE = "agent_run_summaries"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SPANS = (HOUR_MS, DAY_MS)
COVERED_KEY = "summaries_from_ms"
ACCURACY = 0.01
_GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
_PG_LOCK_ID = 0x6167_6F75  # serialises summary backfill (exclusive) with writers (shared), PostgreSQL only
_RUN_CACHE = 20_000  # run_id -> (created_at_ms, agent, replay) of recent runs, to place their events


def floor_to(ms: int, span: int) -> int:
    return ms - ms % span


def ceil_to(ms: int, span: int) -> int:
    return -(-ms // span) * span


def _number(value: Any) -> float:
    """``value or 0`` as a float for a JSON number; anything else (a string, a bool) counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def request_tokens(usage: Any) -> float | None:
    """Input plus output tokens of an ``llm_result`` event's ``usage`` (a dict or its JSON text), or None
    when the request's usage is unknown (no token counts in it: a stream without ``include_usage``), which
    token averages and percentiles leave out rather than count as a free request."""
    if isinstance(usage, str):
        try:
            usage = json.loads(usage)
        except ValueError:
            return None
    if not isinstance(usage, dict) or ("input_tokens" not in usage and "output_tokens" not in usage):
        return None
    return _number(usage.get("input_tokens")) + _number(usage.get("output_tokens"))


# --- histograms --------------------------------------------------------------------------------------


def log_key(v: float) -> str:
    if v == 0:
        return "z"
    k = math.ceil(math.log(abs(v)) / _LOG_GAMMA)
    return f"p{k}" if v > 0 else f"n{k}"


def _log_value(key: str) -> float:
    if key == "z":
        return 0.0
    v = 2 * _GAMMA ** int(key[1:]) / (_GAMMA + 1)
    return v if key[0] == "p" else -v


def exact_key(v: float) -> str:
    return repr(float(v))


def percentiles(hist: dict[str, int], exact: bool, qs: Sequence[float]) -> list[float | None]:
    """Linearly interpolated percentiles (``percentile_cont``) of a histogram, one per ``q``."""
    total = sum(hist.values())
    if not total:
        return [None for _ in qs]
    value = float if exact else _log_value
    items = sorted((value(k), n) for k, n in hist.items() if n)
    out: list[float | None] = []
    for q in qs:
        pos = (total - 1) * q
        lo, hi = math.floor(pos), math.ceil(pos)
        v_lo, v_hi = _at(items, lo), _at(items, hi)
        out.append(v_lo if lo == hi else v_lo + (v_hi - v_lo) * (pos - lo))
    return out


def _at(items: list[tuple[float, int]], rank: int) -> float:
    seen = 0
    for v, n in items:
        seen += n
        if rank < seen:
            return v
    return items[-1][0]


def _add(hist: dict[str, int], key: str, n: int = 1) -> None:
    hist[key] = hist.get(key, 0) + n


def _merge_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for k, n in other.items():
        into[k] = into.get(k, 0) + n


def _merge_firsts(into: dict[str, list[int]], other: dict[str, list[int]]) -> None:
    """``{key: [count, first_ms]}``: counts add up, the first time is the earliest."""
    for k, (n, first) in other.items():
        mine = into.get(k)
        if mine is None:
            into[k] = [n, first]
        else:
            mine[0] += n
            mine[1] = min(mine[1], first)


# --- one summary -------------------------------------------------------------------------------------


@dataclass
class Summary:
    """The figures of some runs (of ended runs; events of every run), additive: merging two summaries
    gives the summary of both sets of runs."""

    runs: int = 0
    tool_calls: float = 0.0
    spend: float = 0.0
    retries: float = 0.0
    stops: dict[str, list[int]] = field(default_factory=dict)  # reason -> [runs, first created_at_ms]
    durations: dict[str, int] = field(default_factory=dict)
    tool_calls_hist: dict[str, int] = field(default_factory=dict)
    spend_hist: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    tokens: float = 0.0
    tokens_hist: dict[str, int] = field(default_factory=dict)
    tools: dict[str, int] = field(default_factory=dict)  # tool -> calls
    failures: dict[str, list[int]] = field(default_factory=dict)  # "tool\0error" -> [failures, first ts]
    events: int = 0

    def add_run(self, r: dict[str, Any], created_ms: int) -> None:
        """One ended run (a row of ``agent_runs`` or an end record)."""
        self.runs += 1
        # _number: a NaN or infinite figure (an end record built from a framework's usage, a row a
        # PostgreSQL of an older version holds) is unknown, counted as 0 like a missing one; log_key(nan)
        # raised, and with it the write of the run's end.
        calls = _number(r.get("tool_calls"))
        spend = _number(r.get("cost_usd"))
        self.tool_calls += calls
        self.spend += spend
        self.retries += _number(r.get("retries"))
        reason = r.get("stop_reason") or "unknown"
        stop = self.stops.get(reason)
        if stop is None:
            self.stops[reason] = [1, created_ms]
        else:
            stop[0] += 1
            stop[1] = min(stop[1], created_ms)
        duration = r.get("duration_ms")
        if isinstance(duration, int | float) and math.isfinite(duration):
            _add(self.durations, log_key(float(duration)))
        _add(self.tool_calls_hist, exact_key(calls))
        _add(self.spend_hist, log_key(spend))

    def add_event(self, e: dict[str, Any]) -> None:
        """One unified event record (only the fields its kind counts are read)."""
        self.events += 1
        kind = e.get("kind")
        if kind == "llm_result":
            self.add_request(e.get("usage"))
        elif kind == "tool_result":
            status = e.get("status")
            if status == "error":
                self.add_tool_calls(e.get("tool"), status, e.get("error"), 1, int(e.get("ts_ms") or 0))
            else:  # most calls: a count only (add_tool_calls, inlined: one per tool call written)
                name = e.get("tool") or "?"
                self.tools[name] = self.tools.get(name, 0) + 1

    def add_request(self, usage: Any) -> None:
        """One LLM request (``usage``: its dict, or the JSON text of it, or its tokens)."""
        self.requests += 1
        tokens = _number(usage) if isinstance(usage, int | float) else request_tokens(usage)
        if tokens is None:  # usage unknown: a request, but not one of 0 tokens
            return
        self.tokens += tokens
        _add(self.tokens_hist, log_key(tokens))

    def add_tool_calls(self, tool: Any, status: Any, error: Any, n: int, first_ts: int) -> None:
        """``n`` calls of ``tool`` that ended with ``status`` (and ``error``), the first at ``first_ts``."""
        name = tool or "?"
        self.tools[name] = self.tools.get(name, 0) + n
        if status == "error":
            key = f"{name}\0{error or 'error'}"
            failure = self.failures.get(key)
            if failure is None:
                self.failures[key] = [n, first_ts]
            else:
                failure[0] += n
                failure[1] = min(failure[1], first_ts)

    def merge(self, other: Summary) -> None:
        self.runs += other.runs
        self.tool_calls += other.tool_calls
        self.spend += other.spend
        self.retries += other.retries
        _merge_firsts(self.stops, other.stops)
        _merge_counts(self.durations, other.durations)
        _merge_counts(self.tool_calls_hist, other.tool_calls_hist)
        _merge_counts(self.spend_hist, other.spend_hist)
        self.requests += other.requests
        self.tokens += other.tokens
        _merge_counts(self.tokens_hist, other.tokens_hist)
        _merge_counts(self.tools, other.tools)
        _merge_firsts(self.failures, other.failures)
        self.events += other.events

    def __bool__(self) -> bool:
        return bool(self.runs or self.events)

    def dumps(self) -> str:
        return json.dumps(
            {
                "n": self.runs,
                "tc": self.tool_calls,
                "usd": self.spend,
                "rt": self.retries,
                "stops": self.stops,
                "dur": self.durations,
                "tch": self.tool_calls_hist,
                "usdh": self.spend_hist,
                "req": self.requests,
                "tok": self.tokens,
                "tokh": self.tokens_hist,
                "tools": self.tools,
                "fail": self.failures,
                "ev": self.events,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None) -> Summary:
        """The summary stored as ``text``; an empty one for text that is not one (a row changed by hand
        must not fail the writes that add to it)."""
        if not text:
            return cls()
        try:
            return cls._loads(text)
        except (ValueError, KeyError, TypeError):
            return cls()

    @classmethod
    def _loads(cls, text: str) -> Summary:
        d = json.loads(text)
        return cls(
            runs=d["n"],
            tool_calls=d["tc"],
            spend=d["usd"],
            retries=d["rt"],
            stops=d["stops"],
            durations=d["dur"],
            tool_calls_hist=d["tch"],
            spend_hist=d["usdh"],
            requests=d["req"],
            tokens=d["tok"],
            tokens_hist=d["tokh"],
            tools=d["tools"],
            failures=d["fail"],
            events=d["ev"],
        )

    def figures(self) -> dict[str, Any]:
        """The figures :func:`agent_otel.store.periods.figures` takes, percentiles from the histograms."""
        n = self.runs
        lat = percentiles(self.durations, False, (0.5, 0.95))
        tc = percentiles(self.tool_calls_hist, True, (0.5, 0.95))
        known = sum(self.tokens_hist.values())  # the requests that reported their usage (a real 0 too)
        tok = percentiles(self.tokens_hist, False, (0.5, 0.95))
        (usd95,) = percentiles(self.spend_hist, False, (0.95,))
        return {
            "runs": n,
            "latency": (lat[0], lat[1]),
            "tool_calls": (self.tool_calls / n if n else None, tc[0], tc[1]),
            "tokens": (self.requests, self.tokens / known if known else None, tok[0], tok[1], known),
            "spend": (self.spend / n if n else None, usd95, self.spend if n else 0),
            "retries": (self.retries / n if n else None, int(self.retries)),
            "stops": [(reason, c, first) for reason, (c, first) in self.stops.items()],
            "tools": dict(self.tools),
            "failures": [(*key.split("\0", 1), c, first) for key, (c, first) in self.failures.items()],
        }


def usage_known_sql(store: Store, usage: str = "usage") -> str:
    """Whether an event's ``usage`` has token counts, in SQL (:func:`request_tokens` is not None)."""
    if store.kind == "postgresql":
        return f"({usage}->'input_tokens' IS NOT NULL OR {usage}->'output_tokens' IS NOT NULL)"
    return (
        f"(json_valid({usage}) AND (json_type({usage}, '$.input_tokens') IS NOT NULL "
        f"OR json_type({usage}, '$.output_tokens') IS NOT NULL))"
    )


def tokens_sql(store: Store, usage: str = "usage") -> str:
    """Input plus output tokens of an event's ``usage`` in SQL, as :meth:`Summary.add_request` counts
    them: numbers only, anything else (a string, a missing key, text that is not JSON) 0. Requests whose
    usage is unknown are left out with :func:`usage_known_sql`."""
    if store.kind == "postgresql":
        part = (
            f"CASE WHEN jsonb_typeof({usage}->'{{0}}') = 'number' THEN ({usage}->>'{{0}}')::float8 ELSE 0 END"
        )
        return f"({part.format('input_tokens')} + {part.format('output_tokens')})"
    part = (
        f"CASE WHEN json_type({usage}, '$.{{0}}') IN ('integer', 'real') "
        f"THEN json_extract({usage}, '$.{{0}}') ELSE 0 END"
    )
    both = f"{part.format('input_tokens')} + {part.format('output_tokens')}"
    return f"(CASE WHEN json_valid({usage}) THEN {both} ELSE 0 END)"


# --- reading raw rows into summaries -------------------------------------------------------------------


def range_where(
    store: Store, since_ms: int, until_ms: int, agent: str | None, alias: str = ""
) -> tuple[str, list[Any]]:
    p = f"{alias}." if alias else ""
    where = f"{p}created_at >= ? AND {p}created_at < ? AND {p}replay_of IS NULL"
    params: list[Any] = [store._ts(since_ms), store._ts(until_ms)]
    if agent is not None:
        where += f" AND {p}agent = ?"
        params.append(agent)
    return where, params


def from_raw(
    store: Store, since_ms: int, until_ms: int, agent: str | None = None, hourly: bool = False
) -> dict[tuple[int, str], Summary]:
    """Summaries of the runs started in ``[since_ms, until_ms)`` computed from the raw tables.

    ``hourly``: one summary per agent and start hour (the rows :func:`rebuild` writes), else one, keyed
    ``(since_ms, "")``. Ended runs and LLM requests are streamed (the histograms need each value); tool
    calls and failures are counted in SQL."""
    out: dict[tuple[int, str], Summary] = {}
    bucket_ms: dict[Any, int] = {}
    hour_sql = (  # UTC hours, whatever the session's time zone (Asia/Kolkata's hours start at :30 UTC)
        "date_trunc('hour', r.created_at AT TIME ZONE 'UTC')"
        if store.kind == "postgresql"
        else "substr(r.created_at, 1, 13)"
    )

    def slot(hour: Any, run_agent: str) -> Summary:
        if hourly:
            start = bucket_ms.get(hour)
            if start is None:  # "2026-11-24 17" in SQLite, a datetime in PostgreSQL: converted once each
                text = f"{hour}:00:00" if isinstance(hour, str) else hour
                start = bucket_ms[hour] = store._ms(text) or 0
            key = (start, run_agent)
        else:
            key = (since_ms, "")
        found = out.get(key)
        if found is None:
            found = out[key] = Summary()
        return found

    where, params = range_where(store, since_ms, until_ms, agent, "r")
    runs = f"FROM agent_runs r WHERE {where}"
    joined = f"FROM agent_runs r JOIN agent_events e ON e.run_id = r.run_id WHERE {where}"
    created: dict[Any, int] = {}
    for row in store.stream(
        f"SELECT r.agent, {hour_sql}, r.created_at, r.duration_ms, r.tool_calls, r.cost_usd, r.retries, "
        f"r.stop_reason {runs} AND r.status <> 'running'",
        params,
    ):
        at = created.get(row[2])
        if at is None:
            at = created[row[2]] = store._ms(row[2]) or 0
        r = {"duration_ms": row[3], "tool_calls": row[4], "cost_usd": row[5], "retries": row[6]}
        r["stop_reason"] = row[7]
        slot(row[1], row[0]).add_run(r, at)
    for row in store.stream(
        f"SELECT r.agent, {hour_sql}, e.usage {joined} AND e.kind = 'llm_result'", params
    ):
        slot(row[1], row[0]).add_request(row[2])
    for row in store.stream(
        f"SELECT r.agent, {hour_sql}, e.tool, e.status, e.error, count(*), min(e.ts_ms) {joined} "
        "AND e.kind = 'tool_result' GROUP BY 1, 2, 3, 4, 5",
        params,
    ):
        slot(row[1], row[0]).add_tool_calls(row[2], row[3], row[4], int(row[5]), int(row[6]))
    for row in store.stream(f"SELECT r.agent, {hour_sql}, count(*) {joined} GROUP BY 1, 2", params):
        slot(row[1], row[0]).events += int(row[2])
    return out


# --- reading summaries ---------------------------------------------------------------------------------


def covered_from(store: Store) -> int | None:
    """Summaries hold every run started at or after this time (ms); None: no summaries in this store."""
    value = store.meta(COVERED_KEY)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def plan(
    since_ms: int, until_ms: int, covered: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """``[since_ms, until_ms)`` as raw pieces ``(from, to)`` (partial hours at the ends, and whatever
    precedes ``covered``) and summary pieces ``(span, from, to)`` (whole hours, whole days)."""
    start = max(since_ms, covered)
    left = min(ceil_to(start, HOUR_MS), until_ms)
    right = max(floor_to(until_ms, HOUR_MS), left)
    raw = [(a, b) for a, b in ((since_ms, left), (right, until_ms)) if a < b]
    spans: list[tuple[int, int, int]] = []
    if left < right:
        d0 = min(ceil_to(left, DAY_MS), right)
        d1 = max(floor_to(right, DAY_MS), d0)
        spans = [
            (span, a, b)
            for span, a, b in ((HOUR_MS, left, d0), (DAY_MS, d0, d1), (HOUR_MS, d1, right))
            if a < b
        ]
    return raw, spans


def stored(
    store: Store, span: int, since_ms: int, until_ms: int, agent: str | None, data: bool = True
) -> Iterator[Any]:
    """Summary rows of ``span`` starting in ``[since_ms, until_ms)``: Summaries, or run counts."""
    where = "span_ms = ? AND bucket_ms >= ? AND bucket_ms < ?"
    params: list[Any] = [span, since_ms, until_ms]
    if agent is not None:
        where += " AND agent = ?"
        params.append(agent)
    column = "data" if data else "runs"
    for row in store.stream(f"SELECT {column} FROM {TABLE} WHERE {where}", params):
        yield Summary.loads(row[0]) if data else int(row[0] or 0)


# --- writing -------------------------------------------------------------------------------------------


class Deltas:
    """What one write adds to the summaries: ``{(bucket start of the hour, agent): Summary}``."""

    def __init__(self) -> None:
        self.hours: dict[tuple[int, str], Summary] = {}

    def at(self, created_ms: int, agent: str) -> Summary:
        key = (floor_to(created_ms, HOUR_MS), agent)
        found = self.hours.get(key)
        if found is None:
            found = self.hours[key] = Summary()
        return found


def deltas(store: Store, runs: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> Deltas | None:
    """The summary deltas of a write, computed before it (inside its transaction): which end records
    end a ``running`` (or missing) row, and the start hour and agent of each event's run."""
    covered = covered_from(store)
    if covered is None:
        return None
    out = Deltas()
    cache, orphans = store._summary_runs, store._summary_orphans
    ended: dict[str, dict[str, Any]] = {}
    adopted: list[str] = []
    for r in runs:
        run_id = r.get("run_id")
        if not run_id:
            continue
        created = int(r.get("created_at_ms") or 0)
        cache[run_id] = (created, r.get("agent") or "", bool(r.get("replay_of")))
        if run_id in orphans:
            del orphans[run_id]
            adopted.append(run_id)
        if (r.get("status") or "running") != "running" and run_id not in ended:
            ended[run_id] = r
    for table in (cache, orphans):
        if len(table) > _RUN_CACHE:
            for key in list(table)[: len(table) - _RUN_CACHE // 2]:
                del table[key]
    if adopted:  # events written before their run's row (its start record came late, or was dropped)
        for row in store.in_chunks(
            "SELECT run_id, kind, tool, status, error, usage, ts_ms FROM agent_events WHERE run_id IN ({})",
            adopted,
        ):
            created, agent, replay = cache[row[0]]
            if not replay and created >= covered:
                keys = ("kind", "tool", "status", "error", "usage", "ts_ms")
                out.at(created, agent).add_event(dict(zip(keys, row[1:], strict=True)))
    if ended:
        done = {
            row[0]
            for row in store.in_chunks(
                "SELECT run_id FROM agent_runs WHERE status <> 'running' AND run_id IN ({})", list(ended)
            )
        }
        for run_id, r in ended.items():
            created = int(r.get("created_at_ms") or 0)
            if run_id not in done and not r.get("replay_of") and created >= covered:
                out.at(created, r.get("agent") or "").add_run(r, created)
    unknown = [i for i in {e.get("run_id") for e in events} if i and i not in cache]
    if unknown:
        for row in store.in_chunks(
            "SELECT run_id, created_at, agent, replay_of FROM agent_runs WHERE run_id IN ({})", unknown
        ):
            cache[row[0]] = (store._ms(row[1]) or 0, row[2] or "", bool(row[3]))
        orphans.update((i, None) for i in unknown if i not in cache)  # counted when their run row comes
    of_run: dict[str, Summary | None] = {}  # the summary each run's events go to (None: not summarized)
    last_id: Any = None
    summary: Summary | None = None
    for e in events:
        get = e.get
        run_id = get("run_id") or ""
        if run_id != last_id:  # a run's events mostly come one after another
            last_id = run_id
            if run_id in of_run:
                summary = of_run[run_id]
            else:
                info = cache.get(run_id)
                # no run row (yet), a replay, or a run of hours the summaries do not cover: None
                summary = None if info is None or info[2] or info[0] < covered else out.at(info[0], info[1])
                of_run[run_id] = summary
        if summary is None:
            continue
        if get("kind") == "tool_result" and get("status") != "error":  # most events: add_event, inlined
            summary.events += 1
            name = get("tool") or "?"
            tools = summary.tools
            tools[name] = tools.get(name, 0) + 1
        else:
            summary.add_event(e)
    return out if out.hours else None


def usage_deltas(
    store: Store,
    added: dict[str, tuple[int, int, float]],
    requests: Sequence[tuple[str, int, dict[str, Any]]],
    into: Deltas | None,
) -> Deltas | None:
    """Add to ``into`` what late usage (``{run_id: (input, output, spend)}``, see writes.late_usage)
    changes in the summaries: the spend of each stopped run it goes to, and that run's place in the spend
    histogram; and for ``requests`` (``(run_id, step_id, usage)``: a stream's final usage after its run's
    stop ended it) the tokens of the request, whose event was summarized with the usage known at the
    stop. Read before the rows are updated, after the batch's own rows went in. (A request that ended
    after the stop has an event of its own, with its usage, counted as any.)"""
    covered = covered_from(store)
    if covered is None:
        return into
    out = into if into is not None else Deltas()
    for run_id, step_id, usage in requests:
        found = store.execute(
            "SELECT e.usage, r.created_at, r.agent, r.replay_of FROM agent_events e "
            "JOIN agent_runs r ON r.run_id = e.run_id "
            "WHERE e.run_id = ? AND e.step_id = ? AND e.kind = 'llm_result'",
            (run_id, step_id),
        ).fetchone()
        if found is None or found[3] or (store._ms(found[1]) or 0) < covered:
            continue
        s = out.at(store._ms(found[1]) or 0, found[2] or "")
        had, has = request_tokens(found[0]), request_tokens(usage)
        if had is not None:
            s.tokens -= had
            _add(s.tokens_hist, log_key(had), -1)
        if has is not None:
            s.tokens += has
            _add(s.tokens_hist, log_key(has))
    sql = "SELECT run_id, created_at, agent, replay_of, status, cost_usd FROM agent_runs WHERE run_id IN ({})"
    for run_id, created, agent, replay, status, cost in store.in_chunks(sql, list(added)) if added else ():
        spend = added[run_id][2]
        created_ms = store._ms(created) or 0
        if not spend or replay or (status or "running") == "running" or created_ms < covered:
            continue
        before = _number(cost)
        s = out.at(created_ms, agent or "")
        s.spend += spend
        old, new = log_key(before), log_key(before + spend)
        if old != new:
            _add(s.spend_hist, old, -1)
            _add(s.spend_hist, new)
    return out if out.hours else None


def _lock(store: Store, exclusive: bool) -> None:
    """PostgreSQL: writers adding deltas share a lock that rebuilding takes alone, so that a rebuild reads
    every committed write and no write lands between its read and its replace. (SQLite writers are
    serialised by the database lock already.)"""
    if store.kind == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        store.execute(f"SELECT {fn}(?)", (_PG_LOCK_ID,))


def apply(store: Store, d: Deltas) -> None:
    """Add the deltas to the hour and day rows (inside the write's transaction)."""
    _lock(store, exclusive=False)
    merged: dict[tuple[int, int, str], Summary] = {}
    for (hour, agent), s in d.hours.items():
        for span in SPANS:
            key = (span, floor_to(hour, span), agent)
            found = merged.get(key)
            if found is None:
                merged[key] = found = Summary()
            found.merge(s)
    _add_rows(store, merged)


def _add_rows(store: Store, rows: dict[tuple[int, int, str], Summary]) -> None:
    """Merge ``rows`` into the stored ones (locked row by row in PostgreSQL, in key order).

    A row is read back every time (another process may have added to it), but parsed only when it is not
    the text this writer stored last: a writer's batches mostly add to the same hour and day rows, whose
    histograms grow over the day, and parsing them was much of a small batch's cost."""
    lock = " FOR UPDATE" if store.kind == "postgresql" else ""
    last, store._summary_rows = store._summary_rows, {}
    for key in sorted(rows):
        delta = rows[key]
        if store.kind == "postgresql":
            store.execute(
                f"INSERT INTO {TABLE} (span_ms, bucket_ms, agent, runs, events, data) "
                "VALUES (?, ?, ?, 0, 0, '') ON CONFLICT (span_ms, bucket_ms, agent) DO NOTHING",
                key,
            )
        found = store.execute(
            f"SELECT data FROM {TABLE} WHERE span_ms = ? AND bucket_ms = ? AND agent = ?{lock}", key
        ).fetchone()
        text = found[0] if found else None
        mine = last.get(key)
        # The Summary this writer stored as exactly this text (a failed transaction's rows are not read
        # back: the text differs, and is parsed).
        total = mine[1] if mine is not None and text is not None and mine[0] == text else Summary.loads(text)
        total.merge(delta)
        store._summary_rows[key] = (_put(store, key, total), total)


def _put(store: Store, key: tuple[int, int, str], s: Summary) -> str:
    """Store ``s`` as the row of ``key``; the text stored."""
    text = s.dumps()
    store.execute(
        f"INSERT INTO {TABLE} (span_ms, bucket_ms, agent, runs, events, data) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (span_ms, bucket_ms, agent) DO UPDATE SET runs = excluded.runs, "
        "events = excluded.events, data = excluded.data",
        (*key, s.runs, s.events, text),
    )
    return text


# --- rebuilding from the raw tables -------------------------------------------------------------------


def rebuild(store: Store, since_ms: int, until_ms: int) -> None:
    """Replace the summaries of the hours in ``[since_ms, until_ms)`` (hour-aligned) by what the raw tables
    hold, and the days they touch by the sum of their hours. Call inside a write transaction."""
    _lock(store, exclusive=True)
    hours = from_raw(store, since_ms, until_ms, hourly=True)
    store.execute(
        f"DELETE FROM {TABLE} WHERE span_ms = ? AND bucket_ms >= ? AND bucket_ms < ?",
        (HOUR_MS, since_ms, until_ms),
    )
    for (hour, agent), s in hours.items():
        _put(store, (HOUR_MS, hour, agent), s)
    day = floor_to(since_ms, DAY_MS)
    while day < until_ms:
        _sum_day(store, day)
        day += DAY_MS


def _sum_day(store: Store, day: int) -> None:
    """The day's rows as the sum of its hours' rows."""
    days: dict[str, Summary] = {}
    for agent, data in store.stream(
        f"SELECT agent, data FROM {TABLE} WHERE span_ms = ? AND bucket_ms >= ? AND bucket_ms < ?",
        (HOUR_MS, day, day + DAY_MS),
    ):
        days.setdefault(agent, Summary()).merge(Summary.loads(data))
    store.execute(f"DELETE FROM {TABLE} WHERE span_ms = ? AND bucket_ms = ?", (DAY_MS, day))
    for agent, s in days.items():
        _put(store, (DAY_MS, day, agent), s)


def rebuild_all(store: Store) -> None:
    """Summarize every run the store holds and mark the store covered from the beginning."""
    with store.transaction():
        rows = store.query("SELECT min(created_at) AS lo, max(created_at) AS hi FROM agent_runs")
        lo, hi = store._ms(rows[0]["lo"]), store._ms(rows[0]["hi"])
        store.execute(f"DELETE FROM {TABLE}")
        if lo is not None and hi is not None:
            rebuild(store, floor_to(lo, HOUR_MS), floor_to(hi, HOUR_MS) + HOUR_MS)
        store._upsert_meta(COVERED_KEY, "0")


def backfill_step(store: Store, hours: int = 1) -> bool:
    """Summarize the ``hours`` hours before the covered mark (newest first) and move the mark back; True
    while older runs are left to summarize. One short transaction: the sink calls it between writes."""
    with store.transaction():
        covered = covered_from(store)
        if covered is None or covered <= 0:
            return False
        oldest = store._ms(store.query("SELECT min(created_at) AS t FROM agent_runs")[0]["t"])
        newest = store._ms(store.query("SELECT max(created_at) AS t FROM agent_runs")[0]["t"])
        if oldest is None or newest is None or oldest >= covered:
            store._upsert_meta(COVERED_KEY, "0")
            return False
        covered = min(covered, floor_to(newest, HOUR_MS) + HOUR_MS)  # a mark set far ahead, by hand
        # Hours without runs have no summary: skip a stretch of them at once (a run stored by a clock at
        # 1970 made it summarize half a million empty hours, one per step).
        before = store._ms(
            store.query(
                "SELECT max(created_at) AS t FROM agent_runs WHERE created_at < ?", [store._ts(covered)]
            )[0]["t"]
        )
        if before is not None:
            covered = min(covered, floor_to(before, HOUR_MS) + HOUR_MS)
        start = max(covered - hours * HOUR_MS, floor_to(oldest, HOUR_MS))
        rebuild(store, start, covered)
        done = start <= oldest
        store._upsert_meta(COVERED_KEY, "0" if done else str(start))
        return not done


# How far back the store sink looks for hours whose summaries miss runs: when it opens the store, and then
# every ten minutes (the runs that ended since its last look started in those hours, but for long runs).
# 48 hours of a store of a million runs in 30 days (67,000 runs): 150 ms CPU; 3 hours: a sixteenth.
RECHECK_MS = 2 * DAY_MS
RECHECK_RECENT_MS = 3 * HOUR_MS


def stale_hours(store: Store, now_ms: int, back_ms: int = RECHECK_MS) -> list[int]:
    """The summarized hours of the last ``back_ms`` whose count of ended runs is not the raw table's, in
    order: runs written by an agent-otel from before schema 6 (a process started before the upgrade keeps
    writing, and does not summarize) or deleted by its gc. The runs of those hours are summarized again
    (:func:`rebuild`); one query over each table, served by the ``created_at`` and primary-key indexes."""
    covered = covered_from(store)
    if covered is None:
        return []
    since = max(floor_to(now_ms - back_ms, HOUR_MS), covered)
    until = floor_to(now_ms, HOUR_MS) + HOUR_MS
    if since >= until:
        return []
    hour_sql = "date_trunc('hour', created_at)" if store.kind == "postgresql" else "substr(created_at, 1, 13)"
    where, params = range_where(store, since, until, None)
    with store.reading():  # one snapshot: a run ending meanwhile is in both counts or in neither
        ran = store.execute(
            f"SELECT {hour_sql}, count(*) FROM agent_runs WHERE {where} AND status <> 'running' GROUP BY 1",
            params,
        ).fetchall()
        counted = store.execute(
            f"SELECT bucket_ms, sum(runs) FROM {TABLE} "
            "WHERE span_ms = ? AND bucket_ms >= ? AND bucket_ms < ? GROUP BY 1",
            (HOUR_MS, since, until),
        ).fetchall()
    raw = {store._ms(f"{hour}:00:00" if isinstance(hour, str) else hour) or 0: int(n) for hour, n in ran}
    summed = {int(bucket): int(n) for bucket, n in counted}
    return sorted(h for h in raw.keys() | summed.keys() if raw.get(h, 0) != summed.get(h, 0))


def forget_before(store: Store, cutoff_ms: int) -> None:
    """After gc deleted the runs started before ``cutoff_ms``: drop the summaries of hours and days wholly
    before it and rebuild the hour (and day) it falls in. Call inside a write transaction."""
    _lock(store, exclusive=True)
    hour = floor_to(cutoff_ms, HOUR_MS)
    store.execute(f"DELETE FROM {TABLE} WHERE span_ms = ? AND bucket_ms < ?", (HOUR_MS, hour))
    store.execute(
        f"DELETE FROM {TABLE} WHERE span_ms = ? AND bucket_ms < ?", (DAY_MS, floor_to(cutoff_ms, DAY_MS))
    )
    covered = covered_from(store)
    if covered is not None and covered <= hour:
        rebuild(store, hour, hour + HOUR_MS)


def chunked(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
