# Sourced by the prereqs scripts that build with Go (scripts/prereqs.d/25-prometheus3.sh, 30-collector.sh).
# require_go WHO WHAT: put Go on PATH (from PATH or /usr/local/go), or exit naming what needs it.
require_go() {
  local go_bin
  go_bin="$(command -v go || true)"
  if [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ]; then
    go_bin=/usr/local/go/bin/go
  fi
  if [ -z "$go_bin" ]; then
    echo "$1: Go is required to build $2 (https://go.dev/dl/)" >&2
    exit 1
  fi
  PATH="$(dirname "$go_bin"):$PATH"
  export PATH
}
