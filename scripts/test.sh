#!/usr/bin/env bash
# Run the whole test suite once per Keras backend (Keras fixes the backend per
# process). Sets up its own virtual environment on first use. Fails if any
# backend fails.
#
#   bash scripts/test.sh                 # jax, torch, tensorflow
#   BACKENDS=jax bash scripts/test.sh -k videomae   # one backend, extra pytest args
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${KERAS_HAR_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || exit 1
fi
if [ -z "${KERAS_HAR_SKIP_INSTALL:-}" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[all,test]" || exit 1
fi
"$VENV/bin/python" -m pip list 2>/dev/null | grep -i -E '^(keras|keras-hub|jax|torch|torchvision|tensorflow|transformers|timm|grain|opencv-python-headless|numpy) ' || true

status=0
passed=0
failed=0
skipped=0
for backend in ${BACKENDS:-jax torch tensorflow}; do
  echo "=== KERAS_BACKEND=$backend ==="
  log=$(mktemp)
  KERAS_BACKEND=$backend "$VENV/bin/python" -m pytest -q "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # pytest's last line: "N passed, M skipped, ... in 12.3s" (with -q, no ===== around it)
  summary=$(grep -E '^=* *[0-9]+ (passed|failed|errors?|skipped|deselected|warnings?)\b.* in [0-9.]+s' "$log" | tail -1)
  p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  f=$(echo "$summary" | grep -oE '[0-9]+ (failed|error|errors)' | awk '{s+=$1} END {print s+0}')
  s=$(echo "$summary" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  rm -f "$log"
  if [ "$rc" -ne 0 ]; then
    echo "!!! tests failed under KERAS_BACKEND=$backend (exit $rc)"
    status=1
    if [ "${f:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
  fi
done
echo "all backends: $passed passed, $failed failed, $skipped skipped"
exit $status
