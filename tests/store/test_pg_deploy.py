"""The PostgreSQL store as teams deploy it: behind PgBouncer, over TLS, with roles that may not create
tables, in a schema of its own, many workers starting at once, limits a DBA sets, a hot standby.
Real servers only (tests/store/pg.py: Debian's postgresql and pgbouncer)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from agent_otel.store import StoreSink
from agent_otel.store.location import Target
from tests.cli.conftest import COMMAND
from tests.helpers import require_binary
from tests.store import seed
from tests.store.pg import PgBouncer, PostgresServer
from tests.store.test_postgres import _poll

pytestmark = pytest.mark.e2e
psycopg = pytest.importorskip("psycopg")


def _count(url: str, table: str = "agent_runs") -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _store_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "run store" in r.getMessage()]


def _cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--store", url, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.fixture(params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, postgres: PostgresServer) -> Iterator[PgBouncer]:
    pooler = PgBouncer(postgres, request.param)
    pooler.start()
    try:
        yield pooler
    finally:
        pooler.stop()


def test_behind_pgbouncer_writers_and_the_cli_share_server_sessions_safely(postgres, bouncer, caplog):
    """PgBouncer hands each transaction (transaction pooling) to whichever server session is free, shared
    with every other client. Statements psycopg prepared in one session were missing, or named alike for
    another statement, in the next: `agent-otel gc` after a writer failed with `prepared statement
    "_pg3_0" already exists`, and a second writer's store went off for its process. The planner settings
    agent-otel gives its own session leaked into the application's (JIT off for its queries)."""
    url = postgres.new_database()
    pooled = bouncer.url(url)
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sinks = [StoreSink(Target("postgresql", pooled), {"logs_days": 30}) for _ in range(2)]
        try:
            for i in range(12):  # psycopg prepares a statement after its 5th run
                for sink in sinks:
                    sink.write(seed.run_records(seed.now_ms() - i))
            assert [(s.written, s.dropped, s.error) for s in sinks] == [(108, 0, None)] * 2
        finally:
            for sink in sinks:
                sink.close()
    assert not _store_lines(caplog)
    assert _count(url) == 24
    for args in (["gc"], ["runs"], ["stats"], ["drift"], ["export"]):
        proc = _cli(pooled, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert json.loads(_cli(pooled, "doctor", "--json").stdout)["store"]["pooled"] is True
    assert json.loads(_cli(url, "doctor", "--json").stdout)["store"]["pooled"] is False
    # The application's own sessions through the pooler keep the server's settings.
    with psycopg.connect(pooled, autocommit=True) as conn:
        assert [conn.execute("SHOW jit").fetchone()[0] for _ in range(4)] == ["on"] * 4


# The README's "PostgreSQL in production" grants, run as the owner after it created the tables.
GRANTS = [
    "GRANT USAGE ON SCHEMA public TO agent_app, agent_reader",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO agent_app",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO agent_app",
    "GRANT SELECT ON agent_runs, agent_events, agent_run_summaries, agent_otel_meta TO agent_reader",
]


def _roles(url: str, *roles: str) -> list[str]:
    """``roles`` as login roles without any privilege on the database's tables; their URLs."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        for role in roles:
            conn.execute(
                f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
            conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {role}")
    return [url.replace("agent_otel@", f"{role}@") for role in roles]


def test_least_privilege_roles_write_and_read_and_a_missing_grant_names_the_role(postgres, caplog):
    """The DBA creates the tables as their owner and grants the application role only rows and the
    analysts' role only SELECT. Before that, the application's store was off with only `permission
    denied for schema public`, and an UPDATE missing from its grants only `permission denied for table
    agent_runs`: neither named the role nor what it lacked."""
    owner = postgres.new_database()
    app, reader = _roles(owner, "agent_app", "agent_reader")
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink = StoreSink(Target("postgresql", app), {})
        sink.write(seed.run_records(seed.now_ms()))
        sink.close()
    (line,) = _store_lines(caplog)
    assert "cannot be used (permission denied for schema public: the role agent_app may not create" in line
    assert "agent-otel --store <its URL> doctor" in line and "PostgreSQL in production" in line
    proc = _cli(reader, "runs")
    assert proc.returncode == 2 and "the role agent_reader may not create the store's tables" in proc.stderr

    assert _cli(owner, "doctor").returncode == 0  # the owner creates the tables
    with psycopg.connect(owner, autocommit=True) as conn:
        for grant in GRANTS:
            conn.execute(grant)
        conn.execute("REVOKE UPDATE ON agent_runs FROM agent_app")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink = StoreSink(Target("postgresql", app), {})
        sink.write(seed.run_records(seed.now_ms()))
        sink.close()
    (line,) = _store_lines(caplog)
    assert "permission denied for table agent_runs: the role agent_app needs SELECT, INSERT, UPDATE" in line

    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("GRANT UPDATE ON agent_runs TO agent_app")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agent_otel"):
        sink = StoreSink(Target("postgresql", app), {"logs_days": 30, "tool_snapshot_days": 14})
        for i in range(3):
            sink.write(seed.run_records(seed.now_ms() - 40 * seed.DAY_MS * (i == 0)))
        sink.close()
    assert not _store_lines(caplog) and (sink.written, sink.dropped) == (27, 0)
    assert _count(owner) == 2  # the sink's own gc removed the one past retention, as agent_app

    # The analysts' role reads with every reading command, and writes nothing: no transaction of the
    # database failed (a swallowed write attempt would have) and no row changed.
    def activity() -> tuple[int, ...]:
        with psycopg.connect(owner) as conn:
            row = conn.execute(
                "SELECT xact_rollback, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return tuple(row)

    run_id = _cli(reader, "runs", "--json").stdout.split('"run_id": "', 1)[1][:8]
    before = activity()
    for args in (["runs"], ["show", run_id], ["stats"], ["drift"], ["export"], ["doctor"]):
        proc = _cli(reader, *args)
        assert proc.returncode == 0 and not proc.stderr, (args, proc.stdout, proc.stderr)
    assert "not readable by this role" in proc.stdout  # doctor: the raw tool results are the owner's
    time.sleep(0.6)  # the statistics collector's flush (PG 15: at most every 0.5 s)
    assert activity() == before


def _certificates(directory: str) -> None:
    """A CA, a server certificate it signs for 127.0.0.1 and localhost, and another CA (the wrong one)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    for name in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt",
        )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr",
    )  # fmt: skip
    with open(os.path.join(directory, "san"), "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.crt", "-extfile", "san",
    )  # fmt: skip


def test_tls_require_and_verify_full_work_and_a_wrong_ca_is_one_clear_line(tmp_path, caplog):
    """`sslmode=require` and `verify-full` against a server with a certificate of the test's own CA. A
    wrong CA (or a CA file that is not there) is configuration, like a wrong password: it was taken for
    an outage, the records kept and retried every 30 s for the life of the process, and at exit "was busy
    at exit"; now the store is off at once, said in one line, the records counted."""
    require_binary("openssl", "apt-get install openssl")
    _certificates(str(tmp_path))
    server = PostgresServer()
    for name in ("server.crt", "server.key"):
        target = os.path.join(server.dir, name)
        shutil.copy(tmp_path / name, target)
        os.chmod(target, 0o600)
        if server.user is not None:
            os.chown(target, server.user.pw_uid, server.user.pw_gid)
    server.settings = {
        "ssl": "on",
        "ssl_cert_file": os.path.join(server.dir, "server.crt"),
        "ssl_key_file": os.path.join(server.dir, "server.key"),
    }
    try:
        server.start()
        url = server.new_database()
        good = {
            "require": f"{url}?sslmode=require",
            "verify-full": f"{url}?sslmode=verify-full&sslrootcert={tmp_path}/ca.crt",
        }
        for n, tls_url in enumerate(good.values(), 1):
            sink = StoreSink(Target("postgresql", tls_url), {})
            sink.write(seed.run_records(seed.now_ms()))
            sink.close()
            assert (sink.written, sink.error) == (9, None)
            assert _count(url) == n
            proc = _cli(tls_url, "runs", "--json")
            assert proc.returncode == 0 and proc.stdout.count('"run_id"') == n, proc.stderr
        with psycopg.connect(good["verify-full"]) as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]

        for ca in ("other-ca.crt", "missing.crt"):
            wrong = f"{url}?sslmode=verify-full&sslrootcert={tmp_path}/{ca}"
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="agent_otel"):
                sink = StoreSink(Target("postgresql", wrong), {})
                sink.write(seed.run_records(seed.now_ms()))
                sink.write(seed.run_records(seed.now_ms()))
                sink.close()
            (line,) = _store_lines(caplog)
            assert "cannot be used" in line, line
            assert ("certificate verify failed" if ca == "other-ca.crt" else "does not exist") in line
            assert sink._disabled and sink.dropped == 18 and not sink._pending
            proc = _cli(wrong, "runs")
            (error,) = proc.stderr.splitlines()
            assert proc.returncode == 2 and error.startswith("agent-otel: error: cannot open the run store")
        assert _count(url) == 2
    finally:
        server.stop()


def test_two_applications_in_two_schemas_of_one_database_see_only_their_own_runs(postgres, caplog):
    """One database, a schema per application: chosen in the URL (`options=-csearch_path=...`) or, where
    a pooler refuses startup options (PgBouncer: `unsupported startup parameter: options`, which was
    retried as an outage for the life of the process), by the role (`ALTER ROLE ... SET search_path`)."""
    owner = postgres.new_database()
    (billing,) = _roles(owner, "billing_app")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA support")
        conn.execute("CREATE SCHEMA billing AUTHORIZATION billing_app")
        conn.execute("ALTER ROLE billing_app SET search_path = billing")
    support = f"{owner}?options=-csearch_path%3Dsupport"
    pooler = PgBouncer(postgres, "transaction", users=("agent_otel", "billing_app"))
    pooler.start()
    try:
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            for url, runs in ((support, 3), (pooler.url(billing), 2)):
                sink = StoreSink(Target("postgresql", url), {})
                for i in range(runs):
                    sink.write(seed.run_records(seed.now_ms() - i))
                sink.close()
                assert (sink.written, sink.error) == (9 * runs, None)
            assert not _store_lines(caplog)
            sink = StoreSink(Target("postgresql", pooler.url(support)), {})
            sink.write(seed.run_records(seed.now_ms()))
            sink.close()
            sink = StoreSink(Target("postgresql", f"{owner}?options=-csearch_path%3Dno_such_schema"), {})
            sink.write(seed.run_records(seed.now_ms()))
            sink.close()
        options, missing = _store_lines(caplog)
        assert "cannot be used" in options and "unsupported startup parameter: options" in options
        assert "cannot be used (no schema has been selected to create in" in missing
        for url, runs in ((support, 3), (pooler.url(billing), 2)):
            listed = _cli(url, "runs", "--json")
            assert listed.returncode == 0 and listed.stdout.count('"run_id"') == runs
            doctor = json.loads(_cli(url, "doctor", "--json").stdout)["store"]
            schema = "support" if url == support else "billing"
            with psycopg.connect(owner) as conn:
                size = conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname IN "
                    "('agent_runs', 'agent_events', 'agent_otel_meta')",
                    (schema,),
                ).fetchone()[0]
            assert (doctor["runs"], doctor["size_bytes"]) == (runs, size)
        with psycopg.connect(owner) as conn:
            assert conn.execute("SELECT to_regclass('public.agent_runs')").fetchone()[0] is None
    finally:
        pooler.stop()


WORKER = """
import sys, time
import agent_otel
from agent_otel import sdk
url, start = sys.argv[1], float(sys.argv[2])
agent_otel.setup(store=url, instrument=False, config={"exporter": {"probe_local": False}})
while time.time() < start:
    time.sleep(0.001)
for _ in range(5):
    with agent_otel.run("worker"):
        pass
assert sdk.flush(30)
agent_otel.shutdown()
"""


@pytest.mark.parametrize("through", ["direct", "pgbouncer"])
def test_workers_starting_at_once_on_an_empty_database_migrate_it_once(postgres, through):
    """Six workers (a pre-fork server's) start on an empty database at the same instant: one creates the
    tables, the others wait for it (an advisory lock) and find them made; no worker logs a warning, every
    run is stored, and the server's log holds no error: each worker's look for the schema version read a
    table that did not exist yet (`ERROR: relation "agent_otel_meta" does not exist` six times)."""
    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET log_statement = 'ddl'")
    pooler = PgBouncer(postgres, "transaction") if through == "pgbouncer" else None
    if pooler is not None:  # six clients, two server sessions: the advisory lock is a transaction's
        pooler.start()
    log = os.path.join(postgres.dir, "log")
    seen = os.path.getsize(log)
    start = time.time() + 3  # the six interpreters started and set up by then
    try:
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, pooler.url(url) if pooler else url, str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(6)
        ]
        outputs = [w.communicate(timeout=120)[0] for w in workers]
    finally:
        if pooler is not None:
            pooler.stop()
    assert [w.returncode for w in workers] == [0] * 6, outputs
    assert not any(outputs), outputs
    assert _count(url) == 30
    with open(log) as fh:
        fh.seek(seen)
        lines = fh.read().splitlines()
    assert not [line for line in lines if "ERROR" in line or "FATAL" in line], lines
    assert sum("CREATE TABLE agent_runs" in line for line in lines) == 1, lines


def test_a_hot_standby_serves_the_reading_commands_and_the_sink_waits_for_a_primary(postgres, caplog):
    """Analysts pointed at a read replica: every reading command works there (none writes), `gc` says
    in one line why it cannot; an agent pointed at it keeps its records (bounded) as after a failover."""
    url = postgres.new_database()
    seed.write(url, seed.run_records(seed.now_ms() - seed.HOUR_MS))
    standby = postgres.standby()
    try:
        replica = url.replace(f":{postgres.port}/", f":{standby.port}/")
        with psycopg.connect(replica) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        run_id = json.loads(_cli(replica, "runs", "--json").stdout)[0]["run_id"]
        for args in (["runs"], ["show", run_id[:8]], ["stats"], ["drift"], ["export"], ["doctor"]):
            proc = _cli(replica, *args)
            assert proc.returncode == 0 and not proc.stderr, (args, proc.stderr)
        gc = _cli(replica, "gc")
        (line,) = gc.stderr.splitlines()
        assert gc.returncode == 2 and "cannot execute DELETE in a read-only transaction" in line
        with caplog.at_level(logging.WARNING, logger="agent_otel"):
            sink = StoreSink(Target("postgresql", replica), {})
            sink.write(seed.run_records(seed.now_ms()))
            assert not sink._disabled and len(sink._pending) == 9 and sink.dropped == 0
            sink.close()
        waiting, at_exit = _store_lines(caplog)
        assert "cannot take writes right now (cannot execute INSERT in a read-only transaction)" in waiting
        assert "9 records (runs, events, snapshots) of this process were not stored" in at_exit
    finally:
        standby.stop()


def test_a_statement_timeout_the_dba_set_is_one_line_naming_it(postgres):
    """A read cut short by the database's `statement_timeout` printed `QueryCanceled: ... (set
    AGENT_OTEL_DEBUG=1 for a traceback)`, as for a bug in agent-otel."""
    url = postgres.new_database()
    seed.write(url, [r for i in range(50) for r in seed.run_records(seed.now_ms() - i * 60_000)])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET statement_timeout = '200ms'")
    with psycopg.connect(url) as blocker:  # a DBA's maintenance holds the table: every read waits
        blocker.execute("LOCK TABLE agent_runs IN ACCESS EXCLUSIVE MODE")
        proc = _cli(url, "stats")
    (line,) = proc.stderr.splitlines()
    assert proc.returncode == 2 and "AGENT_OTEL_DEBUG" not in line, line
    assert line.startswith("agent-otel: error: reading the run store at postgresql://agent_otel@")
    assert "canceling statement due to statement timeout" in line and "SET statement_timeout" in line


def test_the_poolers_idle_limits_and_a_pooler_restart_cost_no_record(postgres, caplog):
    """PgBouncer closes a client idle for `client_idle_timeout`: the next batch goes over a new
    connection, no warning. PgBouncer restarted under a writer: its records wait and go in."""
    url = postgres.new_database()
    pooler = PgBouncer(postgres, "transaction", settings={"client_idle_timeout": "1"})
    pooler.start()
    sink = StoreSink(Target("postgresql", pooler.url(url)), {})
    try:
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            for _ in range(2):
                sink.write(seed.run_records(seed.now_ms()))
                assert sink.error is None and not sink._pending
                time.sleep(2.5)  # idle past the pooler's limit: it closes the connection
            assert "client_idle_timeout" in pooler.log()
            assert not _store_lines(caplog)
            pooler.halt()
            sink.write(seed.run_records(seed.now_ms()))
            assert len(sink._pending) == 9
            pooler.start()
            assert _poll(lambda: not sink._pending), sink.error
        assert sink.dropped == 0 and _count(url) == 3
        assert any("accepts writes again" in line for line in _store_lines(caplog))
    finally:
        sink.close()
        pooler.stop()


def test_one_connection_per_process_and_a_role_at_its_connection_limit_is_waited_out(postgres, caplog):
    """What `max_connections` must cover: one connection per writing process. A role at its
    `CONNECTION LIMIT` (or a server at `max_connections`) is waited out like an outage."""
    import agent_otel
    from agent_otel import sdk

    owner = postgres.new_database()
    (app,) = _roles(owner, "limited_app")
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO limited_app")
        conn.execute("ALTER ROLE limited_app CONNECTION LIMIT 1")

    def sessions() -> int:
        with psycopg.connect(owner) as conn:
            return int(
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'limited_app'"
                ).fetchone()[0]
            )

    agent_otel.setup(store=app, instrument=False, config={"exporter": {"probe_local": False}})
    try:
        for _ in range(3):
            with agent_otel.run("counted"):
                pass
        assert sdk.flush(10)
        assert sessions() == 1 and _count(owner) == 3
    finally:
        agent_otel.shutdown()
    assert _poll(lambda: sessions() == 0)

    holder = psycopg.connect(app)  # the role's one connection, taken
    sink = StoreSink(Target("postgresql", app), {})
    try:
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            sink.write(seed.run_records(seed.now_ms()))
            assert len(sink._pending) == 9 and not sink._disabled
            proc = _cli(app, "runs")
            (line,) = proc.stderr.splitlines()
            assert proc.returncode == 2 and 'too many connections for role "limited_app"' in line
            holder.close()
            assert _poll(lambda: not sink._pending), sink.error
        waiting, back = _store_lines(caplog)
        assert "cannot take writes right now" in waiting and "too many connections" in waiting
        assert "accepts writes again" in back and _count(owner) == 4
    finally:
        holder.close()
        sink.close()


def test_a_worker_waits_for_another_migrating_whatever_the_lock_timeout(postgres, caplog):
    """A DBA's `lock_timeout` (here 50 ms) is shorter than another worker's migration of an empty
    database: waiting for it was cancelled (`canceling statement due to lock timeout`), the worker warned
    and held its records, and a short-lived one lost them at exit."""
    import threading

    from agent_otel.store import db

    url = postgres.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET lock_timeout = '50ms'")
    migrator = psycopg.connect(url)  # holds the migration lock for 1 s, as a worker migrating would
    migrator.execute("SELECT pg_advisory_xact_lock(%s)", (db._PG_LOCK_ID,))
    release = threading.Timer(1.0, migrator.commit)
    release.start()
    sink = StoreSink(Target("postgresql", url), {})
    try:
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            sink.write(seed.run_records(seed.now_ms()))
        assert (sink.written, sink.error, sink._pending) == (9, None, [])
        assert not _store_lines(caplog)
    finally:
        release.join()
        migrator.close()
        sink.close()


def test_a_write_that_waited_past_the_lock_timeout_for_another_writer_is_tried_again_at_once(
    postgres, caplog
):
    """Another writer holds a row this batch updates (its run's row; with many workers, the summary of
    the same hour) past the DBA's `lock_timeout`: the batch is tried again at once, as the other
    transaction is short. It was taken for an outage: a warning, the records held 0.5 s and more (a
    short-lived worker lost them at exit)."""
    import threading

    url = postgres.new_database()
    records = seed.run_records(seed.now_ms())
    sink = StoreSink(Target("postgresql", url), {})
    try:
        sink.write(records[:1])  # the run's start: its row, `running`
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET lock_timeout = '1s'")
        sink._store.close()  # the next connection takes the database's new setting
        sink._store = None
        holder = psycopg.connect(url)
        holder.execute("SELECT 1 FROM agent_runs FOR UPDATE")
        log = os.path.join(postgres.dir, "log")
        seen = os.path.getsize(log)

        def release_after_the_first_timeout() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with open(log) as fh:
                    fh.seek(seen)
                    if "canceling statement due to lock timeout" in fh.read():
                        break
                time.sleep(0.01)
            holder.commit()

        releaser = threading.Thread(target=release_after_the_first_timeout)
        releaser.start()
        with caplog.at_level(logging.INFO, logger="agent_otel"):
            sink.write(records[1:])
        releaser.join()
        holder.close()
        assert (sink.written, sink.error, sink._pending) == (9, None, [])
        assert not _store_lines(caplog)
    finally:
        sink.close()
