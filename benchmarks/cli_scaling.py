"""The CLI at scale: each read command timed on generated stores of 10k, 100k and 1M runs, SQLite, PostgreSQL.

Prints the table of issue 17: wall time (median of ``--repeat`` runs after one warm-up) and peak RSS of each
command, per store size and database. Nothing here asserts a figure (tests/ keeps the queries correct and
index-served; this measures them).

The stores are generated in the project's own schema, by the agent-otel under test (``open_store`` creates
and migrates the tables): runs spread evenly over the 30 days before generation, each with 10 events (an LLM
call, 7 tool calls, an LLM call, the stop), replay snapshots for the runs of the last 15 days (results ~2 KB,
drawn from a pool of 20,000 distinct ones, stored once each as the store does), 0.05% of runs left
``running`` by a process that is gone (read as abandoned). Rows go in with bulk inserts (SQLite
``executemany``, PostgreSQL ``COPY``), then the store's own maintenance (``Store.rebuild_summaries`` where
the version under test has it) brings derived tables up to date, as a store written run by run would have
them. Generation is slow at 1M runs (minutes), so stores are cached under ``~/.cache/agent-otel/bench``
(PostgreSQL's data directory under ``/var/tmp/agent-otel-bench`` when the server runs as ``postgres`` and
cannot enter the cache directory) and regenerated once older than ``--max-age-h`` hours: the commands use
relative times (``--since 30d``), which a store ages out of.

PostgreSQL: a throwaway server (tests/store/pg.py) on a free loopback port, on the cached data directory;
it is stopped at the end.

Run from the repository root: ``python benchmarks/cli_scaling.py`` (``--sizes 10000,100000``,
``--dialects sqlite``, ``--json``). To measure another version of agent-otel, put its ``src`` first on
``PYTHONPATH``: commands run as ``python -m agent_otel.cli`` with the same ``PYTHONPATH``, and stores of
another schema version are generated (and cached) apart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT))  # tests.store.pg, after an explicit PYTHONPATH

CACHE = Path(os.environ.get("AGENT_OTEL_BENCH_CACHE", Path.home() / ".cache" / "agent-otel" / "bench"))
GENERATOR = 2  # bump when the generated data changes: cached stores of another generator are not reused
DAY_MS = 86_400_000
SPAN_DAYS = 30
SNAPSHOT_DAYS = 15
BLOB_POOL = 20_000
AGENTS = (("support-agent", 0.6), ("triage-agent", 0.3), ("billing-agent", 0.1))
TOOLS = ("search", "crm.lookup", "http.get", "send_email", "kb.fetch", "orders.get", "refund.create")
ERRORS = ("TimeoutError", "ServiceUnavailable", "TooManyRequests", "ConnectionError", "ValueError")
STOPS = (
    ("completed", "success", 0.95),
    ("tool_error", "failure", 0.02),
    ("loop_detected", "failure", 0.01),
    ("max_steps", "limit", 0.01),
    ("timeout", "limit", 0.005),
    ("budget_exceeded", "limit", 0.005),
)
ABANDONED_SHARE = 0.0005
COMMANDS: dict[str, list[str]] = {
    "runs": ["runs"],
    "show": ["show", "{run}"],
    "stats --since 30d": ["stats", "--since", "30d"],
    "drift": ["drift"],
    # The last hour of the store's runs: a cached store is hours old, and "--since 1h" from now finds none.
    "export --since 1h": ["export", "--since", "{hour_before}", "--until", "{generated}"],
    "doctor": ["doctor"],
    "gc --dry-run": ["gc", "--dry-run"],
    "--version": ["--version"],
}


# --- generation ----------------------------------------------------------------------------------------


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


class Generator:
    """Rows of the store's tables for ``n`` runs, in time order, deterministic for a seed."""

    def __init__(self, n: int, now_ms: int, seed: int = 17) -> None:
        self.n = n
        self.now_ms = now_ms
        self.rng = random.Random(seed)
        self.start_ms = now_ms - SPAN_DAYS * DAY_MS
        self.snapshot_from = now_ms - SNAPSHOT_DAYS * DAY_MS
        self.agents = [a for a, _ in AGENTS]
        self.agent_weights = [w for _, w in AGENTS]
        self.stops = [(r, c) for r, c, _ in STOPS]
        self.stop_weights = [w for _, _, w in STOPS]
        blob_rng = random.Random(seed + 1)
        self.blobs = [(_hex(blob_rng, 24), _blob(blob_rng)) for _ in range(BLOB_POOL)]
        self.sample_run: str | None = None

    def chunks(self, size: int = 5000) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
        rng = self.rng
        step = SPAN_DAYS * DAY_MS / self.n
        for first in range(0, self.n, size):
            out: dict[str, list[tuple[Any, ...]]] = {"runs": [], "events": [], "snap_runs": [], "packs": []}
            for i in range(first, min(first + size, self.n)):
                created = int(self.start_ms + i * step + rng.random() * step)
                self._run(rng, created, out)
            yield out

    def _run(self, rng: random.Random, created: int, out: dict[str, list[tuple[Any, ...]]]) -> None:
        from agent_otel.store.snapshots import PACK_FIELDS

        run_id, trace_id = _hex(rng, 32), _hex(rng, 32)
        if self.sample_run is None and created > self.now_ms - DAY_MS:
            self.sample_run = run_id
        agent = rng.choices(self.agents, self.agent_weights)[0]
        duration = min(max(rng.lognormvariate(8.3, 0.6), 200.0), 120_000.0)
        abandoned = rng.random() < ABANDONED_SHARE
        reason, status = rng.choices(self.stops, self.stop_weights)[0]
        each = duration / 10
        t = created
        events: list[dict[str, Any]] = []
        tokens_in = tokens_out = 0
        cost = 0.0
        retries = 0
        for step_id in range(1, 10):
            t += int(each * rng.uniform(0.5, 1.5))
            if step_id in (1, 9):
                tin, tout = rng.randint(400, 4000), rng.randint(40, 600)
                c = round(tin * 2.5e-6 + tout * 1e-5, 6)
                tokens_in, tokens_out, cost = tokens_in + tin, tokens_out + tout, cost + c
                usage = {"model": "gpt-4o", "input_tokens": tin, "output_tokens": tout, "cost_usd": c}
                events.append(dict(kind="llm_result", step=step_id, ts=t, dur=each, status="ok", usage=usage))
            else:
                failed = rng.random() < 0.03
                attempts = rng.choice((2, 3)) if rng.random() < 0.05 else None
                retries += (attempts or 1) - 1
                events.append(
                    dict(
                        kind="tool_result",
                        step=step_id,
                        ts=t,
                        dur=each * rng.uniform(0.2, 1.0),
                        tool=rng.choice(TOOLS),
                        status="error" if failed else "ok",
                        error=rng.choice(ERRORS) if failed else None,
                        attempts=attempts,
                    )
                )
        ended = created + int(duration)
        if abandoned:
            reason = status = None
        usage = {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
            "cost_usd": round(cost, 6),
            "tool_calls": 7,
            "llm_calls": 2,
            "steps": 9,
            "retries": retries,
            "duration_ms": duration,
        }
        if not abandoned:
            events.append(dict(kind="stop", step=None, ts=ended, dur=duration, status=status, usage=usage))
        out["runs"].append(
            {
                "run_id": run_id,
                "trace_id": trace_id,
                "span_id": _hex(rng, 16),
                "agent": agent,
                "parent_run_id": None,
                "created_at_ms": created,
                "ended_at_ms": None if abandoned else ended,
                "duration_ms": None if abandoned else duration,
                "tool_calls": None if abandoned else 7,
                "steps": None if abandoned else 9,
                "llm_calls": None if abandoned else 2,
                "retries": None if abandoned else retries,
                "stop_reason": reason,
                "status": "running" if abandoned else status,
                "input_tokens": None if abandoned else tokens_in,
                "output_tokens": None if abandoned else tokens_out,
                "cost_usd": None if abandoned else round(cost, 6),
                "model": "gpt-4o",
                "prompt_version": "v12",
                "tools_version": "3",
                "input_sha": _hex(rng, 24),
                "service": "bench",
                "replay_of": None,
                "detail": None,
                # An abandoned run's process is gone (no such pid on this host); ended runs keep theirs.
                "pid": 4_194_303 if abandoned else 4242,
                "host": os.uname().nodename,
                "process_start": None if abandoned else "0:pid:[0]:1",
                "deadline_ms": None,
            }
        )
        snap = created >= self.snapshot_from
        if snap:
            out["snap_runs"].append(
                {
                    "run_id": run_id,
                    "agent": agent,
                    "model": "gpt-4o",
                    "prompt_version": "v12",
                    "tools_version": "3",
                    "input_sha": out["runs"][-1]["input_sha"],
                    "created_at_ms": created,
                }
            )
        calls: list[list[Any]] = []  # the run's tool snapshots, as agent-otel writes them (one pack a run)
        for e in events:
            args_sha = _hex(rng, 24) if e["kind"] == "tool_result" else None
            blob_sha = None
            if e["kind"] == "tool_result" and e["status"] == "ok":
                blob_sha = self.blobs[rng.randrange(BLOB_POOL)][0]
            out["events"].append(
                {
                    "run_id": run_id,
                    "kind": e["kind"],
                    "ts_ms": e["ts"],
                    "step_id": e["step"],
                    "tool": e.get("tool"),
                    "args_sha": args_sha,
                    "result_sha": blob_sha,
                    "duration_ms": e["dur"],
                    "status": e["status"],
                    "error": e.get("error"),
                    "stop_reason": reason if e["kind"] == "stop" else None,
                    "usage": e.get("usage"),
                    "trace_id": trace_id,
                    "span_id": _hex(rng, 16),
                    "agent": agent,
                    "attempts": e.get("attempts"),
                }
            )
            if snap and e["kind"] == "tool_result":
                call = {
                    "step_id": e["step"],
                    "parent_step": None,
                    "tool": e["tool"],
                    "args_sha": args_sha,
                    "outcome": "ok" if blob_sha else "error",
                    "result_sha": blob_sha,
                    "error_type": e.get("error"),
                    "result_type": "dict" if blob_sha else None,
                    "blob_sha": blob_sha,  # the ~2 KB results are shared blobs of the pool (size: none here)
                    "size": None,
                    "created_at_ms": e["ts"],
                }
                calls.append(call)
        if calls:
            out["packs"].append(
                {
                    "run_id": run_id,
                    "created_at_ms": min(c["created_at_ms"] for c in calls),
                    "calls": len(calls),
                    "items": 0,
                    "key_id": "",
                    "steps": json.dumps([[c[f] for f in PACK_FIELDS] for c in calls], separators=(",", ":")),
                    "data": b"",
                }
            )


def _blob(rng: random.Random) -> bytes:
    """A ~2 KB JSON tool result."""
    hits = [
        {"doc": f"kb-{rng.randrange(10_000)}", "score": round(rng.random(), 3), "text": _hex(rng, 64)}
        for _ in range(20)
    ]
    return json.dumps({"status": 200, "hits": hits}, separators=(",", ":")).encode()


def _columns(store: Any, table: str) -> list[str]:
    if store.kind == "sqlite":
        return [r["name"] for r in store.query(f"PRAGMA table_info({table})")]
    rows = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        (table,),
    )
    return [r["column_name"] for r in rows]


def generate(target: Any, n: int, now_ms: int, log: Any) -> str:
    """Fill the empty store at ``target`` with ``n`` runs; returns the id of a run of the last day."""
    from agent_otel.store import open_store

    store = open_store(target, create=True, writer=True)
    gen = Generator(n, now_ms)
    try:
        cols = {t: _columns(store, t) for t in ("agent_runs", "agent_events")}
        run_cols = [c for c in cols["agent_runs"]]
        event_cols = [c for c in cols["agent_events"] if c != "id"]
        from agent_otel.store.snapshots import PACK_COLUMNS as pack_cols
        from agent_otel.store.snapshots import RUN_COLUMNS as snap_cols

        writer = _SQLiteWriter(store) if store.kind == "sqlite" else _PostgresWriter(store)
        writer.blobs(gen.blobs, now_ms)
        started = time.monotonic()
        done = 0
        for chunk in gen.chunks():
            runs = [tuple(_run_value(store, r, c) for c in run_cols) for r in chunk["runs"]]
            events = [tuple(_event_value(store, e, c) for c in event_cols) for e in chunk["events"]]
            snaps = [tuple(s.get(c) for c in snap_cols) for s in chunk["snap_runs"]]
            packs = [tuple(p[c] for c in pack_cols) for p in chunk["packs"]]
            writer.write(
                [
                    ("agent_runs", run_cols, runs),
                    ("agent_events", event_cols, events),
                    ("agent_snapshot_runs", snap_cols, snaps),
                    ("agent_snapshot_packs", list(pack_cols), packs),
                ]
            )
            done += len(runs)
            if done % 100_000 == 0:
                log(f"  {done:,} runs ({time.monotonic() - started:.0f} s)")
        writer.finish()
        rebuild = getattr(store, "rebuild_summaries", None)
        if rebuild is not None:
            t0 = time.monotonic()
            rebuild()
            log(f"  summaries rebuilt in {time.monotonic() - t0:.0f} s")
        writer.analyze()
    finally:
        store.close()
    assert gen.sample_run is not None
    return gen.sample_run


def _run_value(store: Any, r: dict[str, Any], col: str) -> Any:
    if col == "created_at":
        return store._ts(r["created_at_ms"])
    if col == "ended_at":
        return store._ts(r["ended_at_ms"])
    return r.get(col)


def _event_value(store: Any, e: dict[str, Any], col: str) -> Any:
    value = e.get(col)
    if col in ("usage", "args", "result") and value is not None:
        return json.dumps(value)
    return value


class _SQLiteWriter:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.conn = store.conn
        self.conn.execute("PRAGMA cache_size = -1000000")

    def blobs(self, pool: list[tuple[str, bytes]], now_ms: int) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO agent_snapshot_blobs (sha, encoding, key_id, size, data, last_used_ms) "
            "VALUES (?, 'plain', '', ?, ?, ?)",
            [(sha, len(data), data, now_ms) for sha, data in pool],
        )
        self.conn.execute("COMMIT")

    def write(self, tables: list[tuple[str, list[str], list[tuple[Any, ...]]]]) -> None:
        self.conn.execute("BEGIN")
        for table, cols, rows in tables:
            if rows:
                marks = ", ".join("?" for _ in cols)
                self.conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)
        self.conn.execute("COMMIT")

    def finish(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def analyze(self) -> None:
        """Nothing: agent-otel never runs ANALYZE on a SQLite store, so the plans measured are its own."""


class _PostgresWriter:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.conn = store.conn

    def blobs(self, pool: list[tuple[str, bytes]], now_ms: int) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO agent_snapshot_blobs (sha, encoding, key_id, size, data, last_used_ms) "
                "VALUES (%s, 'plain', '', %s, %s, %s)",
                [(sha, len(data), data, now_ms) for sha, data in pool],
            )

    def write(self, tables: list[tuple[str, list[str], list[tuple[Any, ...]]]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            for table, cols, rows in tables:
                if not rows:
                    continue
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)

    def finish(self) -> None:
        pass

    def analyze(self) -> None:
        """VACUUM ANALYZE: the state autovacuum brings a long-lived store to (statistics, visibility map)."""
        self.conn.execute("VACUUM ANALYZE")


# --- PostgreSQL on a cached data directory ---------------------------------------------------------------


def _pg_root() -> Path:
    """Where the cached PostgreSQL data directory lives: the cache when the server's user can enter it."""
    if os.geteuid() != 0:
        return CACHE / "pg"
    return Path("/var/tmp/agent-otel-bench/pg")


class CachedPostgres:
    """tests/store/pg.py's server, on a data directory that outlives the benchmark."""

    def __init__(self, tag: str) -> None:
        from tests.store.pg import PostgresServer

        self.server = PostgresServer()
        shutil.rmtree(self.server.dir, ignore_errors=True)
        root = _pg_root() / tag
        root.mkdir(parents=True, exist_ok=True)
        for parent in (root, root.parent, root.parent.parent):
            if self.server.user is not None:
                os.chown(parent, self.server.user.pw_uid, self.server.user.pw_gid)
        self.server.dir = str(root)
        self.server.data = str(root / "data")

    def start(self) -> None:
        server = self.server
        if not os.path.isdir(server.data):
            server.start()  # initdb, then start
            return
        from tests.store.pg import _free_port

        for _ in range(3):
            server.port = _free_port()
            if server._start().returncode == 0:
                return
        raise RuntimeError("PostgreSQL did not start on the cached data directory")

    def database(self, name: str, fresh: bool) -> str:
        import psycopg

        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and fresh:
                conn.execute(f"DROP DATABASE {name}")
            if not exists or fresh:
                conn.execute(f"CREATE DATABASE {name}")
        return self.server.url(name)

    def stop(self) -> None:
        self.server._run(self.server.pg_ctl, "-D", self.server.data, "-m", "fast", "-w", "stop", timeout=120)


# --- measuring -----------------------------------------------------------------------------------------


def _schema_tag() -> str:
    from agent_otel.store.schema import LATEST_VERSION

    return f"g{GENERATOR}-s{LATEST_VERSION}"


def _fresh(meta: dict[str, Any] | None, max_age_h: float) -> bool:
    return bool(meta) and time.time() - meta["generated_at"] < max_age_h * 3600


def prepare_sqlite(n: int, args: argparse.Namespace, log: Any) -> tuple[str, dict[str, Any]]:
    from agent_otel.store import Target

    folder = CACHE / _schema_tag()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sqlite-{n}.db"
    meta_path = folder / f"sqlite-{n}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and path.exists() else None
    if not _fresh(meta, args.max_age_h):
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(str(path) + suffix)
        log(f"generating {n:,} runs in SQLite at {path}")
        now = int(time.time() * 1000)
        t0 = time.monotonic()
        sample = generate(Target("sqlite", str(path)), n, now, log)
        meta = {"generated_at": now / 1000, "sample_run": sample, "seconds": time.monotonic() - t0}
        meta_path.write_text(json.dumps(meta))
    assert meta is not None
    return str(path), meta


def prepare_postgres(
    pg: CachedPostgres, n: int, args: argparse.Namespace, log: Any
) -> tuple[str, dict[str, Any]]:
    from agent_otel.store import Target

    tag = _schema_tag().replace("-", "_")
    name = f"bench_{tag}_{n}"
    meta_path = CACHE / _schema_tag() / f"postgresql-{n}.json"
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    fresh = not _fresh(meta, args.max_age_h)
    url = pg.database(name, fresh=fresh)
    if fresh:
        log(f"generating {n:,} runs in PostgreSQL database {name}")
        now = int(time.time() * 1000)
        t0 = time.monotonic()
        sample = generate(Target("postgresql", url), n, now, log)
        meta = {"generated_at": now / 1000, "sample_run": sample, "seconds": time.monotonic() - t0}
        meta_path.write_text(json.dumps(meta))
    assert meta is not None
    return url, meta


def _peak_rss_kb(pid: int) -> int:
    """The process's own peak RSS so far (``VmHWM``). Not ``ru_maxrss``: Linux counts in it the memory the
    process had before its exec, which for a posix_spawn (vfork) child is this process's, hundreds of MB
    after generating a store. Read every 2 ms while the command runs: a high-water mark, so only a peak
    in the last 2 ms before the exit could be missed."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def measure(argv: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Wall time and peak RSS of ``python -m agent_otel.cli ARGV``; a timeout or a failure is reported."""
    env = dict(os.environ)
    env.update(AGENT_OTEL_PROBE_LOCAL="false", AGENT_OTEL_HOME=str(CACHE / "home"), COLUMNS="100")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    # An installed package has its bytecode compiled (pip does it); without it every start compiles
    # agent_otel's modules again (~40 ms here). The warm-up run writes it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    limit = int(args.mem_limit_gb * (1 << 30))
    err_path = CACHE / "stderr.txt"
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(err_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    started = time.monotonic()
    # posix_spawn returns once the child has exec'd, so the address-space cap set right after comes long
    # before the interpreter has started.
    pid = os.posix_spawn(
        sys.executable, [sys.executable, "-m", "agent_otel.cli", *argv], env, file_actions=actions
    )
    with contextlib.suppress(OSError):
        resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
    timed_out = False
    deadline = started + args.timeout
    peak_kb = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        peak_kb = max(peak_kb, _peak_rss_kb(pid))
        if time.monotonic() > deadline and not timed_out:
            os.kill(pid, signal.SIGKILL)
            timed_out = True
        time.sleep(0.002)
    seconds = time.monotonic() - started
    err = err_path.read_text(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    out: dict[str, Any] = {"seconds": seconds, "cpu_s": cpu, "rss_mb": peak_kb / 1024, "exit": code}
    if timed_out:
        out["failed"] = f"killed after {args.timeout:g} s"
    elif "MemoryError" in err:
        out["failed"] = f"MemoryError after {seconds:.0f} s at the {args.mem_limit_gb:g} GB cap"
    elif code not in (0, 1):  # drift exits 1 when it finds drift
        out["failed"] = f"exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}"
    return out


def start_floor(code: str, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``python -c CODE`` in a fresh process: what a command pays before it
    does anything (the interpreter; the PostgreSQL driver, which every PostgreSQL command imports)."""
    walls, cpus = [], []
    for _ in range(repeat):
        started = time.monotonic()
        pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))
        _, _, usage = os.wait4(pid, 0)
        walls.append(time.monotonic() - started)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def _iso(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


def bench_store(store: str, meta: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    values = {
        "{run}": meta["sample_run"][:8],
        "{hour_before}": _iso(meta["generated_at"] - 3600),
        "{generated}": _iso(meta["generated_at"] + 1),
    }
    results: dict[str, dict[str, Any]] = {}
    for name in args.commands:
        argv = [values.get(a, a) for a in COMMANDS[name]]
        if name != "--version":
            argv += ["--store", store]
        first = measure(argv, args)  # warm-up (page cache, .pyc), not counted
        if first.get("failed"):
            results[name] = first
            continue
        runs = [measure(argv, args) for _ in range(args.repeat)]
        failed = next((r for r in runs if r.get("failed")), None)
        results[name] = failed or {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "rss_mb": max(r["rss_mb"] for r in runs),
        }
    return results


def cell(r: dict[str, Any]) -> str:
    if r.get("failed"):
        return r["failed"]
    return f"{r['seconds']:.2f} s, {r['rss_mb']:.0f} MB"


def cpu_cell(r: dict[str, Any]) -> str:
    return "-" if r.get("failed") else f"{r['cpu_s']:.2f} s"


def print_table(table: dict[str, dict[str, dict[str, Any]]], commands: list[str], fmt: Any) -> None:
    columns = list(table)
    print("| command | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in commands:
        print(f"| `{name}` | " + " | ".join(fmt(table[c][name]) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="runs per store, comma-separated")
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument(
        "--commands", default=",".join(COMMANDS), help="comma-separated, of: " + ", ".join(COMMANDS)
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="kill a command after this many s")
    parser.add_argument("--mem-limit-gb", type=float, default=4.0, help="address-space cap per command")
    parser.add_argument(
        "--max-age-h", type=float, default=24.0, help="regenerate cached stores older than this"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = [c for c in args.commands if c not in COMMANDS]
    if unknown:
        parser.error(f"unknown commands {unknown}")
    sizes = [int(s) for s in args.sizes.split(",")]
    dialects = [d.strip() for d in args.dialects.split(",")]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    import agent_otel

    log(f"agent-otel from {Path(agent_otel.__file__).parent}, stores tagged {_schema_tag()}")
    table: dict[str, dict[str, dict[str, Any]]] = {}
    pg: CachedPostgres | None = None
    try:
        for dialect in dialects:
            if dialect == "postgresql":
                pg = CachedPostgres(_schema_tag())
                pg.start()
            for n in sizes:
                if dialect == "sqlite":
                    store, meta = prepare_sqlite(n, args, log)
                else:
                    assert pg is not None
                    store, meta = prepare_postgres(pg, n, args, log)
                column = f"{n:,} ({'SQLite' if dialect == 'sqlite' else 'PostgreSQL'})"
                log(f"measuring {column}")
                table[column] = bench_store(store, meta, args)
    finally:
        if pg is not None:
            pg.stop()
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print("wall time (median) and peak RSS")
    print_table(table, args.commands, cell)
    print("\nCPU time of the command's process (user + system, median): less sensitive to a loaded machine")
    print_table(table, args.commands, cpu_cell)
    print("\nstart-up floors in a fresh process (median of 9: wall s, CPU s)")
    for label, code in (
        ("the interpreter alone", "pass"),
        ("import sqlite3", "import sqlite3"),
        ("import psycopg (the PostgreSQL driver)", "import psycopg"),
    ):
        wall, cpu = start_floor(code, 9)
        print(f"  {label}: {wall:.3f} s wall, {cpu:.3f} s CPU")


if __name__ == "__main__":
    main()
