#!/usr/bin/env bash
# PostgreSQL server binaries (initdb, pg_ctl, postgres) for the run store's PostgreSQL tests
# (tests/store/test_postgres.py start a throwaway server on a loopback port; nothing runs as a service).
# Found on PATH or in /usr/lib/postgresql/*/bin; otherwise Debian's `postgresql` package is installed,
# without creating or starting its default cluster. initdb refuses to run as root, so when this runs
# as root it also makes sure the unprivileged `postgres` account exists (the tests run the server as it).
set -euo pipefail

find_initdb() {
  command -v initdb 2>/dev/null && return 0
  local found
  found="$(ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
  [ -n "$found" ] && echo "$found"
}

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

did=""
if ! initdb_path="$(find_initdb)"; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "10-postgres: initdb not found and apt-get is unavailable; install PostgreSQL server binaries" >&2
    exit 1
  fi
  # Debian's package would create and start a 'main' cluster; the tests need only the binaries.
  $sudo mkdir -p /etc/postgresql-common
  if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
    echo "create_main_cluster = false" | $sudo tee -a /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $sudo apt-get update -qq >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  initdb_path="$(find_initdb)" || { echo "10-postgres: installed postgresql but found no initdb" >&2; exit 1; }
  did="installed Debian's postgresql; "
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
  did="${did}created the postgres account; "
fi

echo "10-postgres: ${did}$("$initdb_path" --version) at $initdb_path"
