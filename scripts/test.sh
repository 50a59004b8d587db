#!/usr/bin/env bash
# Run the whole test suite once per Keras backend (Keras fixes the backend per
# process). Sets up its own virtual environment on first use. Fails if any
# backend fails.
#
#   bash scripts/test.sh                 # jax, torch, tensorflow
#   BACKENDS=jax bash scripts/test.sh -k videomae   # one backend, extra pytest args
#   KERAS_HAR_TEST_JOBS=1 bash scripts/test.sh      # one backend at a time, output live
#
# The backends' runs go two at a time on a machine with 2 or more cores
# (KERAS_HAR_TEST_JOBS sets how many): a run spends much of its time in one
# thread (imports, tracing, compiling) or waiting (worker processes starting
# and stopping, killed runs), so two share 2 cores well. Each run's output is
# kept in a log and printed whole when that run ends; a line says when each
# one starts.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${KERAS_HAR_VENV:-.venv}
PYTHON=${PYTHON:-python3}
JOBS=${KERAS_HAR_TEST_JOBS:-$([ "$(nproc)" -ge 2 ] && echo 2 || echo 1)}
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
  echo "KERAS_HAR_TEST_JOBS must be a whole number of backend runs at a time (1 or more), not '$JOBS'" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || exit 1
fi
if [ -z "${KERAS_HAR_SKIP_INSTALL:-}" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[all,test]" || exit 1
fi
"$VENV/bin/python" -m pip list 2>/dev/null | grep -i -E '^(keras|keras-hub|jax|torch|torchvision|tensorflow|transformers|timm|grain|opencv-python-headless|numpy) ' || true

PYTEST_ARGS=("$@")
status=0
passed=0
failed=0
skipped=0

count() {  # backend log exit-status: add one backend's pytest summary to the totals
  local backend=$1 log=$2 rc=$3 summary p f s
  # pytest's last line: "N passed, M skipped, ... in 12.3s" (with -q, no ===== around it)
  summary=$(grep -E '^=* *[0-9]+ (passed|failed|errors?|skipped|deselected|warnings?)\b.* in [0-9.]+s' "$log" | tail -1)
  p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  f=$(echo "$summary" | grep -oE '[0-9]+ (failed|error|errors)' | awk '{s+=$1} END {print s+0}')
  s=$(echo "$summary" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  if [ "$rc" -ne 0 ]; then
    echo "!!! tests failed under KERAS_BACKEND=$backend (exit $rc)"
    status=1
    if [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
  fi
}

pytest_under() {  # backend: exec pytest under that backend (own cache directory: runs may go side by side)
  KERAS_BACKEND=$1 exec "$VENV/bin/python" -m pytest -q -o cache_dir=".pytest_cache/$1" "${PYTEST_ARGS[@]}"
}

read -r -a queue <<< "${BACKENDS:-jax torch tensorflow}"
declare -A start
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
if [ "$JOBS" -eq 1 ]; then
  for backend in "${queue[@]}"; do
    echo "=== KERAS_BACKEND=$backend ==="
    pytest_under "$backend" 2>&1 | tee "$logs/$backend.log"
    count "$backend" "$logs/$backend.log" "${PIPESTATUS[0]}"
  done
else
  # A background command ignores Ctrl-C in a script, so an interrupt stops the runs here.
  declare -A pid
  trap 'kill "${pid[@]}" 2>/dev/null; echo "interrupted" >&2; exit 130' INT TERM
  running=()
  while [ ${#queue[@]} -gt 0 ] || [ ${#running[@]} -gt 0 ]; do
    while [ ${#queue[@]} -gt 0 ] && [ ${#running[@]} -lt "$JOBS" ]; do
      backend=${queue[0]}; queue=("${queue[@]:1}")
      echo "=== KERAS_BACKEND=$backend: started at $(date +%T) ==="
      start[$backend]=$(date +%s)
      pytest_under "$backend" > "$logs/$backend.log" 2>&1 &
      pid[$backend]=$!  # pytest's own pid (the function's subshell execs it)
      running+=("$backend")
    done
    sleep 1
    still=()
    for backend in "${running[@]}"; do
      if kill -0 "${pid[$backend]}" 2>/dev/null; then
        still+=("$backend")
        continue
      fi
      wait "${pid[$backend]}"
      rc=$?
      unset "pid[$backend]"
      took=$(( $(date +%s) - ${start[$backend]} ))
      echo "=== KERAS_BACKEND=$backend: ended at $(date +%T), $((took / 60)) min $((took % 60)) s ==="
      cat "$logs/$backend.log"
      count "$backend" "$logs/$backend.log" "$rc"
    done
    running=("${still[@]}")
  done
fi
echo "all backends: $passed passed, $failed failed, $skipped skipped"
exit $status
