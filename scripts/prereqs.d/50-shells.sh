#!/usr/bin/env bash
# zsh and fish, for tests/cli/test_completion.py: the scripts `agent-otel completion zsh|fish` prints are
# loaded by the real shells (bash is already there). Debian's packages; idempotent.
set -euo pipefail

missing=()
for shell in zsh fish; do
  command -v "$shell" >/dev/null 2>&1 || missing+=("$shell")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "shells: found zsh $(zsh --version | cut -d' ' -f2), $(fish --version)"
  exit 0
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "shells: installed ${missing[*]}"
