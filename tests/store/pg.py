"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a free loopback port in a temp directory.

initdb refuses to run as root. As root the server runs as the unprivileged ``postgres`` account (which
Debian's package and scripts/prereqs.d/10-postgres.sh create) through ``runuser``; as any other user it
runs as that user. No Unix socket outside the data directory, no TCP beyond 127.0.0.1, trust auth.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid

from tests.helpers import missing_prerequisite, require_binary

INSTALL = "scripts/prereqs.d/10-postgres.sh (apt-get install postgresql)"
SUPERUSER = "agent_otel"


def _binary(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return require_binary(name, INSTALL, candidates)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.initdb = _binary("initdb")
        self.pg_ctl = _binary("pg_ctl")
        self.prefix: list[str] = []
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                missing_prerequisite(
                    "an unprivileged 'postgres' account (initdb refuses to run as root)", INSTALL
                )
            runuser = shutil.which("runuser")
            if runuser:
                self.prefix = [runuser, "-u", "postgres", "--"]
            else:
                self.prefix = ["su", "postgres", "-s", "/bin/sh", "-c", '"$0" "$@"']
        self.dir = tempfile.mkdtemp(prefix="agent-otel-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = 0
        self.settings: dict[str, str] = {}  # more `-c name=value` for the server (TLS, limits)
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *cmd], capture_output=True, text=True, timeout=timeout, check=False, cwd=self.dir
        )

    def start(self) -> str:
        init = self._run(
            self.initdb, "-D", self.data, "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale", "-N"
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        last = ""
        for _ in range(3):
            self.port = _free_port()
            started = self._start()
            if started.returncode == 0:
                return self.url("postgres")
            last = started.stderr or started.stdout
            with contextlib.suppress(OSError), open(os.path.join(self.dir, "log")) as fh:
                last += fh.read()[-2000:]
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def _start(self) -> subprocess.CompletedProcess[str]:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data} "
            "-c timezone=UTC -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        log = os.path.join(self.dir, "log")
        return self._run(
            self.pg_ctl, "-D", self.data, "-l", log, "-w", "-t", "60", "-o", options, "start", timeout=90
        )

    def halt(self) -> None:
        """``pg_ctl stop -m fast``: the server is down (connections refused) until :meth:`resume`."""
        done = self._run(self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop", timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr or done.stdout}")

    def resume(self) -> None:
        """Start the halted server again on the same port."""
        done = self._start()
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start again: {done.stderr or done.stdout}")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``, as an operator does: sessions are terminated (57P01), the server
        refuses connections while it starts (57P03), then comes back on the same port."""
        done = self._run(
            self.pg_ctl,
            "-D",
            self.data,
            "-l",
            os.path.join(self.dir, "log"),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "restart",
            timeout=90,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {done.stderr or done.stdout}")

    def standby(self) -> PostgresServer:
        """A hot standby of this server (``pg_basebackup -R``: streaming replication, read-only), started
        on a port of its own; ``stop()`` it first."""
        replica = PostgresServer()
        done = replica._run(
            _binary("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
            "-D", replica.data, "-R", "-X", "stream", "-c", "fast", timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            replica.stop()
            raise RuntimeError(f"pg_basebackup failed: {done.stderr or done.stdout}")
        for _ in range(3):
            replica.port = _free_port()
            if replica._start().returncode == 0:
                return replica
        replica.stop()
        raise RuntimeError("the standby did not start")

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if os.path.isdir(self.data):
            self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


PGBOUNCER_INSTALL = "scripts/prereqs.d/11-pgbouncer.sh (apt-get install pgbouncer)"


class PgBouncer:
    """PgBouncer in front of a :class:`PostgresServer`, on its own free loopback port, in ``pool_mode``
    (``transaction``, the common production mode, or ``session``). Every database of the server is
    reachable through it by name; trust auth for the roles in ``users``. It refuses to run as root, so
    it runs as the server's account."""

    def __init__(
        self,
        server: PostgresServer,
        pool_mode: str,
        users: tuple[str, ...] = (SUPERUSER,),
        settings: dict[str, str] | None = None,
    ) -> None:
        self.binary = require_binary("pgbouncer", PGBOUNCER_INSTALL, ["/usr/sbin/pgbouncer"])
        self.server = server
        self.dir = tempfile.mkdtemp(prefix="agent-otel-pgbouncer-")
        self.port = _free_port()
        with open(os.path.join(self.dir, "users.txt"), "w") as fh:
            fh.writelines(f'"{user}" ""\n' for user in users)
        with open(os.path.join(self.dir, "pgbouncer.ini"), "w") as fh:
            fh.write(
                "[databases]\n"
                f"* = host=127.0.0.1 port={server.port}\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {self.dir}/users.txt\n"
                f"pool_mode = {pool_mode}\ndefault_pool_size = 2\nmax_client_conn = 200\n"
                f"logfile = {self.dir}/log\npidfile = {self.dir}/pid\n"
                + "".join(f"{name} = {value}\n" for name, value in (settings or {}).items())
            )
        if server.user is not None:
            for name in ("", "users.txt", "pgbouncer.ini"):
                os.chown(os.path.join(self.dir, name), server.user.pw_uid, server.user.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.server.prefix, self.binary, os.path.join(self.dir, "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = ""
        with contextlib.suppress(OSError), open(os.path.join(self.dir, "log")) as fh:
            log = fh.read()[-2000:]
        raise RuntimeError(f"pgbouncer did not start: {log}")

    def halt(self) -> None:
        """Stop the pooler (its clients' connections closed); :meth:`start` it again on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def url(self, database_url: str) -> str:
        """``database_url`` (of the server) through the pooler."""
        return database_url.replace(f":{self.server.port}/", f":{self.port}/")

    def log(self) -> str:
        with open(os.path.join(self.dir, "log")) as fh:
            return fh.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class CommitCutter:
    """A TCP relay on a free loopback port in front of a server that, once :meth:`arm`-ed, cuts both sides
    of the connection at the COMMIT of the next transaction that writes events (``COPY agent_events``
    or an ``INSERT`` into it): ``after`` relays the COMMIT, lets the server commit, and never relays its
    answer (what a restart, a failover or a network cut at that moment does); ``before`` never relays
    the COMMIT (the transaction is aborted when the server sees the connection gone); ``hold`` cuts the
    client's side only and keeps the COMMIT and the server's side until :meth:`release` (the transaction
    is "in progress" meanwhile, as for a COMMIT the server is slow to finish). New connections are
    relayed normally."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.port = _free_port()
        self.cuts = 0
        self._mode: str | None = None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._held: tuple[socket.socket, bytes] | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        return database_url.replace(f":{self.server_port}/", f":{self.port}/")

    def arm(self, mode: str) -> None:
        assert mode in ("after", "before", "hold")
        with self._lock:
            self._mode = mode

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.server_port), timeout=10)
            client.settimeout(None)
            server.settimeout(None)
            self._sockets += [client, server]
            state = {"writes": False, "cut": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        """Client to server: watches for the events' write, then its COMMIT."""
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if b"agent_events" in data and (b"COPY" in data or b"INSERT" in data):
                    state["writes"] = True
                mode = self._mode
                if mode is not None and state["writes"] and b"COMMIT" in data:
                    with self._lock:
                        self._mode = None
                        self.cuts += 1
                    state["cut"] = True  # the server's answer is not relayed
                    if mode == "hold":
                        self._held = (server, data)
                        self._close(client)
                        return
                    if mode == "after":
                        server.sendall(data)
                        time.sleep(0.3)  # the server commits
                    self._close(client, server)
                    return
                server.sendall(data)
                if b"COMMIT" in data:
                    state["writes"] = False

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        with contextlib.suppress(OSError):
            while (data := server.recv(65536)) and not state["cut"]:
                client.sendall(data)
        if state["cut"] and (self._held is None or self._held[0] is not server):
            self._close(client, server)

    def release(self, commit: bool) -> None:
        """A held transaction: ``commit`` relays its COMMIT late (the server commits), else it is cut (the
        server aborts it)."""
        assert self._held is not None
        server, data = self._held
        if commit:
            server.sendall(data)
            time.sleep(0.3)
        self._held = None
        self._close(server)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def stop(self) -> None:
        self._stopped.set()
        self._close(self._listener, *self._sockets)
