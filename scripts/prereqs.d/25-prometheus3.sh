#!/usr/bin/env bash
# Prometheus and promtool of the version docker-compose.yml runs (3.x), built from the Go module proxy, so
# the stack tests check our rules, dashboards and prometheus.yml against it as well as against Debian's
# 2.42 (20-prometheus.sh). Prometheus tags its Go releases v0.3XY.Z for 3.XY.Z. Idempotent: a second run
# only checks.
#
# Cache layout (under $AGENT_OTEL_CACHE, default ~/.cache/agent-otel):
#   bin/prometheus-<version>/{prometheus,promtool}
# tests/stack/stackfiles.py (prometheus_releases) finds the binaries by the same path.
#
# `go install ...@v0.3XY.Z` refuses the module (its go.mod has replace directives), so the script
# downloads the module and builds inside it, with upstream's own go.mod and go.sum (GOWORK=off: the
# module ships a go.work naming directories the module zip leaves out). The web UI's assets are not built
# (the tests use the HTTP API only). The Go module and build caches are Go's defaults (GOMODCACHE,
# GOCACHE), as for the collector (30-collector.sh). The cold build's time and disk: README "Local stack".
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
# the version docker-compose.yml pins (image prom/prometheus:v<version>)
version="$(sed -n 's#^ *image: *prom/prometheus:v\([0-9][0-9.]*\) *$#\1#p' "$repo/docker-compose.yml" | head -n1)"
if [ -z "$version" ]; then
  echo "prometheus3: no prom/prometheus:v<version> image in $repo/docker-compose.yml" >&2
  exit 1
fi
cache="${AGENT_OTEL_CACHE:-$HOME/.cache/agent-otel}"
out="$cache/bin/prometheus-$version"

if [ -x "$out/prometheus" ] && [ -x "$out/promtool" ]; then
  echo "prometheus3: found $out ($("$out/prometheus" --version 2>&1 | head -n1))"
  exit 0
fi

# shellcheck source=../go-env.sh
. "$repo/scripts/go-env.sh"
require_go prometheus3 "Prometheus $version"

major="${version%%.*}"
rest="${version#*.}"
go_version="v0.${major}$(printf '%02d' "${rest%%.*}").${rest#*.}"
module="github.com/prometheus/prometheus@$go_version"

start=$(date +%s)
src="$(go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
  echo "prometheus3: could not download $module from the Go module proxy" >&2
  exit 1
fi

# Build into a scratch directory, then move it into place, so a build that dies half-way never looks cached.
work="$cache/bin/.build-prometheus-$version-$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
ldflags="-s -w -X github.com/prometheus/common/version.Version=$version"
ldflags="$ldflags -X github.com/prometheus/common/version.Branch=$go_version"
# -tags remove_all_sd: without the service discoveries (Kubernetes, clouds, ...), which our prometheus.yml
# does not use (static_configs only) and which made most of the build (Prometheus's own plugins/*.go
# build tags); the query engine, rules, TSDB and the remote-write receiver are those of the release.
(cd "$src" && GOWORK=off go build -mod=readonly -trimpath -tags remove_all_sd -ldflags "$ldflags" \
  -o "$work/" ./cmd/prometheus ./cmd/promtool) \
  > "$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  echo "prometheus3: build of $module failed (full log above)" >&2
  exit 1
}
rm -f "$work/build.log"
rm -rf "$out"
mv "$work" "$out"
echo "prometheus3: built $out ($("$out/prometheus" --version 2>&1 | head -n1)) in $(( $(date +%s) - start ))s"
