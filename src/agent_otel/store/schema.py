"""The store's tables and their forward migrations, one list per database dialect.

The schema version is the ``schema_version`` row of ``agent_otel_meta``. Opening a store applies every
migration above that version, in order, inside one transaction that holds the database's write lock
(SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), so several processes opening a fresh store at
once migrate it exactly once. Migrations are only ever appended: to add a table (replay snapshots, for
example) append ``(2, [...])`` to both lists; never edit a released step.

Timestamps: in PostgreSQL ``created_at``/``ended_at`` are ``timestamptz``, so the seed's SQL alert runs
unchanged. SQLite has no timestamp type; there they are UTC text in SQLite's own format
(``YYYY-MM-DD HH:MM:SS.SSS``), which sorts correctly and works with SQLite's date functions
(``created_at > datetime('now', '-7 days')``). Event times are ``ts_ms`` (epoch milliseconds) in both,
as in the unified event schema.
"""

from __future__ import annotations

from agent_otel.config import EVENT_FIELDS

META_TABLE = "agent_otel_meta"
SNAPSHOT_PURGE_KEY = "snapshot_gc_cutoff"  # agent_otel_meta: "<cutoff_ms>:<days>" of the latest snapshot gc

_RUN_COLUMNS_SQLITE = """
    run_id TEXT PRIMARY KEY,
    trace_id TEXT,
    span_id TEXT,
    agent TEXT NOT NULL,
    parent_run_id TEXT,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    duration_ms REAL,
    tool_calls INTEGER,
    steps INTEGER,
    llm_calls INTEGER,
    retries INTEGER,
    stop_reason TEXT,
    status TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    model TEXT,
    prompt_version TEXT,
    tools_version TEXT,
    input_sha TEXT,
    service TEXT,
    replay_of TEXT,
    detail TEXT
"""

_EVENT_COLUMNS_SQLITE = """
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    step_id INTEGER,
    tool TEXT,
    args_sha TEXT,
    result_sha TEXT,
    duration_ms REAL,
    status TEXT,
    error TEXT,
    stop_reason TEXT,
    usage TEXT,
    trace_id TEXT,
    span_id TEXT,
    agent TEXT,
    attempts INTEGER,
    args TEXT,
    result TEXT
"""

_RUN_COLUMNS_PG = """
    run_id TEXT PRIMARY KEY,
    trace_id TEXT,
    span_id TEXT,
    agent TEXT NOT NULL,
    parent_run_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    duration_ms DOUBLE PRECISION,
    tool_calls INTEGER,
    steps INTEGER,
    llm_calls INTEGER,
    retries INTEGER,
    stop_reason TEXT,
    status TEXT NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    model TEXT,
    prompt_version TEXT,
    tools_version TEXT,
    input_sha TEXT,
    service TEXT,
    replay_of TEXT,
    detail TEXT
"""

_EVENT_COLUMNS_PG = """
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    step_id INTEGER,
    tool TEXT,
    args_sha TEXT,
    result_sha TEXT,
    duration_ms DOUBLE PRECISION,
    status TEXT,
    error TEXT,
    stop_reason TEXT,
    usage JSONB,
    trace_id TEXT,
    span_id TEXT,
    agent TEXT,
    attempts INTEGER,
    args JSONB,
    result JSONB
"""

_INDEXES = [
    "CREATE INDEX agent_runs_created_at ON agent_runs (created_at)",
    "CREATE INDEX agent_runs_agent_created_at ON agent_runs (agent, created_at)",
    "CREATE INDEX agent_runs_parent ON agent_runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
    "CREATE INDEX agent_events_run ON agent_events (run_id, step_id)",
    "CREATE INDEX agent_events_ts ON agent_events (ts_ms)",
]

# Migration 2: replay snapshots (agent_otel.snapshots, agent_otel.replay). Raw tool results live only here.
# agent_snapshot_runs: one row per recorded run (its input is a blob, keyed by input_sha);
# agent_tool_snapshots: one row per tool call (run_id, step_id); agent_snapshot_blobs: results, errors
# and inputs stored once per content hash (a 1 MB result returned by 100 calls is stored once).
SNAPSHOT_TABLES = ("agent_snapshot_runs", "agent_tool_snapshots", "agent_snapshot_blobs")


def _snapshot_tables(blob: str, ms: str) -> list[str]:
    return [
        f"""CREATE TABLE agent_snapshot_runs (
    run_id TEXT PRIMARY KEY,
    parent_run_id TEXT,
    parent_step INTEGER,
    agent TEXT NOT NULL,
    model TEXT,
    prompt_version TEXT,
    tools_version TEXT,
    input_sha TEXT,
    created_at_ms {ms} NOT NULL
)""",
        f"""CREATE TABLE agent_tool_snapshots (
    run_id TEXT NOT NULL,
    step_id INTEGER NOT NULL,
    parent_step INTEGER,
    tool TEXT NOT NULL,
    args_sha TEXT NOT NULL,
    outcome TEXT NOT NULL,
    result_sha TEXT,
    blob_sha TEXT,
    error_type TEXT,
    result_type TEXT,
    created_at_ms {ms} NOT NULL,
    PRIMARY KEY (run_id, step_id)
)""",
        f"""CREATE TABLE agent_snapshot_blobs (
    sha TEXT PRIMARY KEY,
    encoding TEXT NOT NULL,
    key_id TEXT NOT NULL,
    size {ms} NOT NULL,
    data {blob} NOT NULL,
    last_used_ms {ms} NOT NULL
)""",
        "CREATE INDEX agent_snapshot_runs_created ON agent_snapshot_runs (created_at_ms)",
        "CREATE INDEX agent_snapshot_runs_parent ON agent_snapshot_runs (parent_run_id) "
        "WHERE parent_run_id IS NOT NULL",
        "CREATE INDEX agent_tool_snapshots_created ON agent_tool_snapshots (created_at_ms)",
        "CREATE INDEX agent_snapshot_blobs_used ON agent_snapshot_blobs (last_used_ms)",
    ]


# In PostgreSQL the tables belong to the role that migrates; nobody else may read raw results, even
# where default privileges (ALTER DEFAULT PRIVILEGES ... GRANT SELECT) hand every new table to a
# dashboard role. (No '?' or '%' here: the store's SQL layer rewrites placeholders.)
def _owner_only(tables: tuple[str, ...]) -> str:
    names = ", ".join(f"'{t}'" for t in tables)
    return (
        """DO $$
DECLARE g record;
BEGIN
  FOR g IN SELECT DISTINCT grantee, table_name FROM information_schema.role_table_grants
           WHERE table_schema = current_schema()
             AND table_name IN ("""
        + names
        + """)
             AND grantee <> current_user LOOP
    IF g.grantee = 'PUBLIC' THEN
      EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(g.table_name) || ' FROM PUBLIC';
    ELSE
      EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(g.table_name) || ' FROM ' || quote_ident(g.grantee);
    END IF;
  END LOOP;
END $$"""
    )


_PG_OWNER_ONLY = _owner_only(SNAPSHOT_TABLES)

# Migration 3: the class of a run input that was not a JSON value (a dataclass, a datetime), so a replay
# can say that ``rp.input`` is its JSON form rather than hand back a dict without a word.
_INPUT_TYPE = "ALTER TABLE agent_snapshot_runs ADD COLUMN input_type TEXT"


# Migration 4: who wrote a run row, so that a ``running`` row whose process is gone reads as ``abandoned``
# (agent_otel.store.liveness): host name, pid and the process's start marker, and the run's deadline
# (epoch ms, from its max_duration_s budget) for rows of other hosts. The partial index serves the
# listing of running and abandoned runs without a scan of every ended one.
def _process_columns(bigint: str) -> list[str]:
    return [
        "ALTER TABLE agent_runs ADD COLUMN pid INTEGER",
        "ALTER TABLE agent_runs ADD COLUMN host TEXT",
        "ALTER TABLE agent_runs ADD COLUMN process_start TEXT",
        f"ALTER TABLE agent_runs ADD COLUMN deadline_ms {bigint}",
        "CREATE INDEX agent_runs_running ON agent_runs (created_at) WHERE status = 'running'",
    ]


# Migration 5: the conversation (gen_ai.conversation.id: a LangGraph thread, an Agents SDK session, the
# application's own id) a run belongs to, so that a paused run and its resume are found together
# (``agent-otel runs --conversation ID``).
_CONVERSATION = [
    "ALTER TABLE agent_runs ADD COLUMN conversation_id TEXT",
    "CREATE INDEX agent_runs_conversation ON agent_runs (conversation_id, created_at) "
    "WHERE conversation_id IS NOT NULL",
]


# Migration 6: summaries of runs per agent and hour (and UTC day), what `stats` and `drift` read over long
# periods (agent_otel.store.summaries), kept by the writers in the write's transaction. A store that already
# holds runs is summarized from the next hour after now (and after its newest run) on; the store sink
# summarizes the earlier hours in the background, newest first (summaries_from_ms moves back).
def _summaries(bigint: str, without_rowid: str, covered_from: str) -> list[str]:
    return [
        f"""CREATE TABLE agent_run_summaries (
    span_ms {bigint} NOT NULL,
    bucket_ms {bigint} NOT NULL,
    agent TEXT NOT NULL,
    runs {bigint} NOT NULL,
    events {bigint} NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (span_ms, bucket_ms, agent)
){without_rowid}""",
        f"INSERT INTO {META_TABLE} (key, value) SELECT 'summaries_from_ms', "
        f"CASE WHEN EXISTS (SELECT 1 FROM agent_runs) THEN {covered_from} ELSE '0' END",
    ]


# The next hour boundary after now and after the newest run, in epoch ms, as text.
_SQLITE_NEXT_HOUR = (
    "CAST((max(CAST(strftime('%s', 'now') AS INTEGER), coalesce((SELECT CAST(strftime('%s', max(created_at)) "
    "AS INTEGER) FROM agent_runs), 0)) / 3600 + 1) * 3600000 AS TEXT)"
)
_PG_NEXT_HOUR = (
    "((floor(greatest(extract(epoch from now()), coalesce((SELECT extract(epoch from max(created_at)) "
    "FROM agent_runs), 0)) / 3600) + 1) * 3600000)::bigint::text"
)


# Migration 7: small results, errors and inputs (agent_otel.store.snapshots.INLINE_MAX_BYTES as stored)
# get a row of their own in agent_snapshot_data, appended in the order of its integer key and named by the
# snapshot's ``data_id`` (a run's ``input_data_id``), not a row in agent_snapshot_blobs: each new blob cost
# an insert into the blob table's sha index, keyed by a random value (a page written per result, or more,
# in a large store), and a look-up of the sha first. ``key_id``: the key the data is sealed with, '' for
# data in the clear; ``created_at_ms``: its snapshot's, which is what retention deletes it by. NULL
# data_id: the data is in the blob table (blob_sha, input_sha), as that of every snapshot recorded before
# this migration. Only a table and nullable columns are added: rows already stored are not rewritten.
def _snapshot_data(blob: str, ms: str, key: str) -> list[str]:
    return [
        f"""CREATE TABLE agent_snapshot_data (
    id {key} PRIMARY KEY,
    created_at_ms {ms} NOT NULL,
    key_id TEXT NOT NULL,
    data {blob} NOT NULL
)""",
        "CREATE INDEX agent_snapshot_data_created ON agent_snapshot_data (created_at_ms)",
        f"ALTER TABLE agent_tool_snapshots ADD COLUMN data_id {ms}",
        f"ALTER TABLE agent_snapshot_runs ADD COLUMN input_data_id {ms}",
    ]


# Migration 8: the tool calls of a run recorded in one write go into one row of agent_snapshot_packs (see
# agent_otel.store.snapshots): ``steps``, JSON text with an array per call (snapshots.PACK_FIELDS), and
# ``data``, the calls' small data one after another; ``calls`` and ``items``: how many calls, and how many
# data of them it holds; ``key_id``: the key its data is sealed with, '' in the clear; ``created_at_ms``:
# its earliest call's, what retention deletes it by. A run's small input goes into its agent_snapshot_runs
# row (``input_data``, sealed with ``input_key_id``). A row per call in agent_tool_snapshots, and one per
# datum in agent_snapshot_data, with the index entries of each, were most of what recording a run cost.
# Only a table and nullable columns are added: snapshots already stored stay where they are and replay.
def _snapshot_packs(blob: str, ms: str, key: str) -> list[str]:
    return [
        f"""CREATE TABLE agent_snapshot_packs (
    id {key} PRIMARY KEY,
    run_id TEXT NOT NULL,
    created_at_ms {ms} NOT NULL,
    calls INTEGER NOT NULL,
    items INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    steps TEXT NOT NULL,
    data {blob} NOT NULL
)""",
        "CREATE INDEX agent_snapshot_packs_run ON agent_snapshot_packs (run_id)",
        "CREATE INDEX agent_snapshot_packs_created ON agent_snapshot_packs (created_at_ms)",
        "ALTER TABLE agent_snapshot_runs ADD COLUMN input_key_id TEXT",
        f"ALTER TABLE agent_snapshot_runs ADD COLUMN input_data {blob}",
    ]


MIGRATIONS: dict[str, list[tuple[int, list[str]]]] = {
    "sqlite": [
        (
            1,
            [
                f"CREATE TABLE agent_runs ({_RUN_COLUMNS_SQLITE})",
                f"CREATE TABLE agent_events ({_EVENT_COLUMNS_SQLITE})",
                *_INDEXES,
            ],
        ),
        (2, _snapshot_tables("BLOB", "INTEGER")),
        (3, [_INPUT_TYPE]),
        (4, _process_columns("INTEGER")),
        (5, _CONVERSATION),
        (6, _summaries("INTEGER", " WITHOUT ROWID", _SQLITE_NEXT_HOUR)),
        (7, _snapshot_data("BLOB", "INTEGER", "INTEGER")),
        (8, _snapshot_packs("BLOB", "INTEGER", "INTEGER")),
    ],
    "postgresql": [
        (
            1,
            [
                f"CREATE TABLE agent_runs ({_RUN_COLUMNS_PG})",
                f"CREATE TABLE agent_events ({_EVENT_COLUMNS_PG})",
                *_INDEXES,
            ],
        ),
        (2, [*_snapshot_tables("BYTEA", "BIGINT"), _PG_OWNER_ONLY]),
        (3, [_INPUT_TYPE]),
        (4, _process_columns("BIGINT")),
        (5, _CONVERSATION),
        (6, _summaries("BIGINT", "", _PG_NEXT_HOUR)),
        (7, [*_snapshot_data("BYTEA", "BIGINT", "BIGSERIAL"), _owner_only(("agent_snapshot_data",))]),
        (8, [*_snapshot_packs("BYTEA", "BIGINT", "BIGSERIAL"), _owner_only(("agent_snapshot_packs",))]),
    ],
}

LATEST_VERSION = max(v for steps in MIGRATIONS.values() for v, _ in steps)

# Columns written from ("run", {...}) records, in order. Timestamps arrive as *_ms and are converted.
RUN_COLUMNS = (
    "run_id",
    "trace_id",
    "span_id",
    "agent",
    "parent_run_id",
    "created_at",
    "ended_at",
    "duration_ms",
    "tool_calls",
    "steps",
    "llm_calls",
    "retries",
    "stop_reason",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "model",
    "prompt_version",
    "tools_version",
    "input_sha",
    "service",
    "replay_of",
    "detail",
    "pid",
    "host",
    "process_start",
    "deadline_ms",
    "conversation_id",
)

# Columns written from ("event", {...}) records: the unified event schema plus what tools may add.
EVENT_COLUMNS = (*EVENT_FIELDS, "attempts", "args", "result")
JSON_EVENT_COLUMNS = ("usage", "args", "result")
