#!/usr/bin/env bash
# Installs or builds what the end-to-end tests start (PostgreSQL, Prometheus, the collector), idempotently.
# Each piece is one script in scripts/prereqs.d/, run in name order; a second run only checks and is fast.
# Downloads and builds are cached under ~/.cache/agent-otel.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export AGENT_OTEL_CACHE="${AGENT_OTEL_CACHE:-$HOME/.cache/agent-otel}"
mkdir -p "$AGENT_OTEL_CACHE"
shopt -s nullglob
for step in "$here"/prereqs.d/*.sh; do
  echo "prereqs: $(basename "$step")"
  bash "$step"
done
