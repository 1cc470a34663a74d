#!/usr/bin/env bash
# Installs what the end-to-end tests start, idempotently; a second run only checks.
set -euo pipefail
echo "prereqs: nothing beyond Python packages yet"
