#!/usr/bin/env bash
# The OpenTelemetry Collector the stack tests run, built from collector/builder-config.yaml with the
# OpenTelemetry Collector Builder (ocb) of the same version, fetched from the Go module proxy.
#
# Cache layout (under $AGENT_OTEL_CACHE, default ~/.cache/agent-otel):
#   bin/ocb-<version>/builder                      the builder
#   collector/<manifest sha256, 16 hex>/otelcol-agent-otel
# The key is a hash of the manifest, so editing the manifest builds a new binary and an unchanged
# manifest is instant. tests/e2e/conftest.py finds the binary by the same key.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
manifest="$repo/collector/builder-config.yaml"
cache="${AGENT_OTEL_CACHE:-$HOME/.cache/agent-otel}"

if [ ! -f "$manifest" ]; then
  echo "collector: no manifest at $manifest" >&2
  exit 1
fi
name="$(sed -n 's/^  name: *//p' "$manifest" | head -n1)"
version="$(sed -n 's/^  version: *//p' "$manifest" | head -n1)"
key="$(sha256sum "$manifest" | cut -c1-16)"
out="$cache/collector/$key"
binary="$out/$name"

if [ -x "$binary" ]; then
  echo "collector: found $binary ($name $version)"
  exit 0
fi

# shellcheck source=../go-env.sh
. "$repo/scripts/go-env.sh"
require_go collector "the collector"

builder_dir="$cache/bin/ocb-$version"
if [ ! -x "$builder_dir/builder" ]; then
  GOBIN="$builder_dir" go install "go.opentelemetry.io/collector/cmd/builder@v$version"
fi

# The builder writes its generated sources and the binary to dist.output_path, which the manifest
# sets relative to the repository; point it at a scratch directory in the cache instead, then move
# the finished directory into place so a build that dies half-way never looks cached.
work="$cache/collector/.build-$key-$$"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
sed "s#^  output_path:.*#  output_path: $work/dist#" "$manifest" > "$work/builder-config.yaml"
start=$(date +%s)
"$builder_dir/builder" --config "$work/builder-config.yaml" > "$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  echo "collector: build failed (full log above)" >&2
  exit 1
}
mkdir -p "$cache/collector"
rm -rf "$out"
mv "$work/dist" "$out"
cp "$manifest" "$out/builder-config.yaml"
echo "collector: built $binary ($name $version) in $(( $(date +%s) - start ))s"
