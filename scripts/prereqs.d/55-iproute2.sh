#!/usr/bin/env bash
# iproute2's `ip`, for tests/store/test_partition.py: it takes the loopback of a network namespace of the
# test's own (`unshare -n`, util-linux) down under an agent and its PostgreSQL server, a silent partition.
# Debian's package; idempotent.
set -euo pipefail

if command -v ip >/dev/null 2>&1; then
  echo "iproute2: found $(ip -V)"
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
echo "iproute2: installed $(ip -V)"
