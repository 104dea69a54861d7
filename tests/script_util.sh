# Shared by the test scripts (sourced, after setting $test_name): log, fail, wait_until, and
# the steps a training run has logged.
# A script may define `dump` to print what helps when it fails.

log() { echo "$test_name: $*"; }

fail() {
  log "FAILED: $*"
  if declare -F dump >/dev/null; then dump; fi
  exit 1
}

# wait_until SECONDS WHAT CMD...: polls CMD until it succeeds; fails the test after SECONDS.
# SECONDS only bounds a hang: the test waits on the condition, never on a guessed time.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "waited $limit s for $what"
    sleep 0.1
  done
}

# steps RUN_DIR: the step events rank 0 has written to RUN_DIR/metrics.jsonl (0 before any).
steps() {
  local n
  n=$(grep -c '"type":"step"' "$1/metrics.jsonl" 2>/dev/null) || true
  echo "${n:-0}"
}
at_least_steps() { [ "$(steps "$1")" -ge "$2" ]; }
