#!/usr/bin/env bash
# Installs or builds what the end-to-end tests start (PostgreSQL, Prometheus, the collector), idempotently.
# Each piece is one script in scripts/prereqs.d/, run in name order; a second run only checks and is fast.
# Downloads and builds are cached under ~/.cache/agent-otel.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export AGENT_OTEL_CACHE="${AGENT_OTEL_CACHE:-$HOME/.cache/agent-otel}"
mkdir -p "$AGENT_OTEL_CACHE"
# Two test runs on one machine (two clones, or a user's shell beside CI) share the cache: the second waits
# for the first instead of building the collector or running apt-get into the same directories at once.
exec 9>"$AGENT_OTEL_CACHE/.prereqs.lock"
if ! flock -n 9; then
  echo "prereqs: another run is installing into $AGENT_OTEL_CACHE; waiting for it"
  flock 9
fi
shopt -s nullglob
for step in "$here"/prereqs.d/*.sh; do
  echo "prereqs: $(basename "$step")"
  bash "$step"
done
