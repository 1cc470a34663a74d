#!/usr/bin/env bash
# A wheelhouse of the base install's dependencies (pyproject.toml [project] dependencies, no extras) and
# of its build backend, for tests/test_packaging.py: it installs the freshly built agent-otel wheel into a
# new venv, and runs `make demo` on a new venv, with `pip install --no-index --find-links`, so the tests
# need no network, and prove the wheel alone (no extra) installs and runs. Cached under $AGENT_OTEL_CACHE/wheelhouse; pip's own cache makes reruns cheap,
# and a dependency list that did not change is not even looked up again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
house="$AGENT_OTEL_CACHE/wheelhouse"
python="$root/.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"

requirements="$("$python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    project = tomllib.load(fh)
# hatchling asks for `editables` when pip builds an editable install (`make install`)
print("\n".join(project["project"]["dependencies"] + project["build-system"]["requires"] + ["editables"]))
PY
)"
stamp="$(printf '%s\n%s\n' "$("$python" -c 'import sys; print(sys.version)')" "$requirements" | sha256sum | cut -c1-16)"
if [ -f "$house/.stamp" ] && [ "$(cat "$house/.stamp")" = "$stamp" ]; then
  echo "wheelhouse: up to date ($(ls "$house"/*.whl | wc -l) wheels in $house)"
  exit 0
fi
mkdir -p "$house"
printf '%s\n' "$requirements" > "$house/requirements.txt"
PIP_CACHE_DIR="$AGENT_OTEL_CACHE/pip" PIP_DISABLE_PIP_VERSION_CHECK=1 \
  "$python" -m pip download -q --only-binary=:all: -d "$house" -r "$house/requirements.txt"
echo "$stamp" > "$house/.stamp"
echo "wheelhouse: $(ls "$house"/*.whl | wc -l) wheels in $house"
