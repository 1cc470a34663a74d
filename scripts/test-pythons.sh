#!/usr/bin/env bash
# The core suite on every Python version pyproject.toml lists besides .venv's own (make test).
#
# The classifiers promise 3.11, 3.12 and 3.13, and the versions differ where agent-otel lives: Python 3.12
# starts no thread from an atexit hook (the spans of a short script were lost at exit there), and asyncio,
# sqlite3, inspect and sys.settrace changed between them. Each version gets .venvs/py<version> with the
# base extras (no agent frameworks: their own pins decide which Pythons they support) and runs the tests
# that need no framework and no end-to-end stack. With CI=true a version that is missing fails; locally it
# is skipped with a message naming how to install it.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${AGENT_OTEL_CACHE:-$HOME/.cache/agent-otel}"
main_version="$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
versions="${AGENT_OTEL_PYTHONS:-$(.venv/bin/python - <<'PY'
import re, tomllib
meta = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(" ".join(m.group(1) for c in meta["classifiers"] if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))))
PY
)}"

find_python() {  # the interpreter of version $1: on PATH, then pyenv's versions
  local v="$1" candidate
  for candidate in "python$v" "$HOME"/.pyenv/versions/"$v".*/bin/python /usr/local/bin/python"$v" /usr/bin/python"$v"; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$v" ]; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

status=0
for v in $versions; do
  [ "$v" = "$main_version" ] && continue  # .venv runs the whole suite on it
  if ! python="$(find_python "$v")"; then
    msg="Python $v (listed in pyproject.toml) is not installed, so the core suite did not run on it: install it (pyenv install $v, or your distribution's python$v)"
    if [ "${CI:-}" = "true" ]; then echo "FAILED: $msg" >&2; status=1; continue; fi
    echo "SKIPPED: $msg" >&2
    continue
  fi
  venv=".venvs/py$v"
  stamp="$venv/.ok"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    PIP_CACHE_DIR="$cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q --upgrade pip
    PIP_CACHE_DIR="$cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q -e '.[dev,grpc,postgres,crypto]'
    touch "$stamp"
  fi
  echo "core suite on Python $v ($python) in $venv"
  extra=()
  if [ "$v" = "3.12" ]; then
    # Python 3.12 sends sys.settrace no opcode events, which benchmarks/hot_breakdown.py counts (it says so).
    extra+=(--deselect tests/test_benchmark_runs.py::test_hot_breakdown_counts_bytecodes_by_module_and_the_bare_spans_run_no_agent_otel_code)
    extra+=(--deselect tests/test_benchmark_runs.py::test_hot_breakdown_by_function_names_the_functions_and_adds_up_to_the_same_totals)
  fi
  # Left out: the integrations and the framework replays (frameworks are not installed here), the end-to-end
  # stack (the same binaries on every Python), the wheel-in-a-fresh-venv test (its offline wheelhouse holds
  # .venv's Python's wheels) and `setup(instrument="mcp")` (mcp is a framework here).
  # AGENT_OTEL_CORE_ONLY=1: a test that imports a framework skips here (tests/conftest.py says why).
  AGENT_OTEL_CORE_ONLY=1 "$venv/bin/python" -m pytest -q \
    tests \
    --ignore=tests/integrations --ignore=tests/envs --ignore=tests/e2e --ignore=tests/stack \
    --ignore=tests/replay/test_frameworks.py --ignore=tests/replay/test_agent_frameworks.py \
    --ignore=tests/replay/test_providers.py \
    --deselect tests/test_packaging.py::test_a_fresh_venv_with_the_wheel_alone_runs_the_first_run_commands \
    --deselect tests/test_setup.py::test_instrument_takes_one_name_as_a_string "${extra[@]}" ||
    status=1
done
exit $status
