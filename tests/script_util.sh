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

# tiny_job BINARY FIXTURES DIR ROWS: a training job of seconds, synthetic data (ROWS rows of
# English) and the fixture tokenizer and model, its config in DIR/config.yaml (run.dir given by
# the caller's override, or the default).
tiny_job() {
  local bin=$1 fixtures=$2 dir=$3 rows=$4
  "$bin" data synth --out "$dir/data" --rows "$rows" --seed 9 >/dev/null
  cat >"$dir/config.yaml" <<CONF
run: {seed: 11, threads: 1, progress: lines, progress_interval: 1000s}
data:
  train_csv: $dir/data/jigsaw-unintended-bias-train.csv
  multilingual_csv: $dir/data/validation.csv
  test_csv: $dir/data/test.csv
  train_pairs: 2000
  val_pairs: 32
tokenizer: {model: $fixtures/tokenizer/sentencepiece.bpe.model, max_len: 32}
model: {pretrained: $fixtures/hf-tiny-xlmr}
train: {pairs_per_rank: 4, steps_per_epoch: 200, log_every: 1000}
export: {before_training: false}
CONF
}
