#!/usr/bin/env bash
# PgBouncer for the run store's connection-pooler tests (tests/store/test_pg_deploy.py start it in front
# of a throwaway PostgreSQL server on a loopback port; nothing runs as a service). Found on PATH or in
# /usr/sbin; otherwise Debian's `pgbouncer` package is installed and the service it enables is stopped
# and disabled (the tests need only the binary).
set -euo pipefail

find_pgbouncer() {
  command -v pgbouncer 2>/dev/null && return 0
  [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer
}

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

did=""
if ! path="$(find_pgbouncer)"; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "11-pgbouncer: pgbouncer not found and apt-get is unavailable; install PgBouncer" >&2
    exit 1
  fi
  $sudo apt-get update -qq >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
  path="$(find_pgbouncer)" || { echo "11-pgbouncer: installed pgbouncer but found no binary" >&2; exit 1; }
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    $sudo systemctl disable --now pgbouncer >/dev/null 2>&1 || true
  fi
  did="installed Debian's pgbouncer; "
fi

echo "11-pgbouncer: ${did}$("$path" --version | head -n 1) at $path"
