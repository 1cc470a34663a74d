#!/usr/bin/env bash
# Prometheus and promtool for the stack tests: Debian's `prometheus` package (2.42 on bookworm).
# The end-to-end tests start it with the bundled prometheus/ config and rules; the static tests run
# `promtool check config|rules` and `promtool test rules`. Idempotent: a second run only checks.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: found $(prometheus --version 2>&1 | head -n1)"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# --no-install-recommends: the package recommends prometheus-node-exporter, which the tests do not need.
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package enables and starts a system service on :9090 where systemd runs; the tests start their
# own instance on a free port, so leave a running service alone rather than guess whose it is.
echo "prometheus: installed $(prometheus --version 2>&1 | head -n1)"
