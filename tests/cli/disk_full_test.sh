#!/usr/bin/env bash
# Every command that writes files, on a real full file system (a small tmpfs in a private mount
# namespace): one line on stderr naming the file and the system's reason, exit 2, no temporary
# left, and the files written before (checkpoints, features, classifier, ...) unchanged.
# Needs root and mount(2); elsewhere it skips (exit 77) with one line saying why.
# Usage: disk_full_test.sh BINARY FIXTURES_DIR
set -uo pipefail
test_name=cli.disk_full
source "$(dirname "$0")/../script_util.sh"
bin=$1
fixtures=$2
skip() {
  echo "$test_name: skipped: $*"
  exit 77
}

if [ -z "${SX_DISK_FULL_NAMESPACE:-}" ]; then
  [ "$(id -u)" = 0 ] || skip "needs root to mount a small file system"
  unshare -m true 2>/dev/null || skip "cannot make a mount namespace (unshare -m)"
  # The namespace is private: its mounts end with it, whatever happens to this script.
  SX_DISK_FULL_NAMESPACE=1 exec unshare -m --propagation private "$0" "$@"
fi

work=$(mktemp -d)
mnt=$work/full
mkdir "$mnt"
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs -o size=16m tmpfs "$mnt" 2>/dev/null || skip "cannot mount a tmpfs"
umount "$mnt"

# A finished tiny run on the ordinary disk, whose files the cases copy.
"$bin" data synth --out "$work/data" --rows 2000 --seed 3 >/dev/null || fail "data synth"
cat >"$work/config.yaml" <<EOF
run: {dir: $work/run, threads: 1, progress: "off", log_level: warn}
data:
  train_csv: $work/data/jigsaw-unintended-bias-train.csv
  multilingual_csv: $work/data/validation.csv
  test_csv: $work/data/test.csv
  pair_sampler: balanced
  train_pairs: 200
  val_pairs: 32
tokenizer: {model: $fixtures/tokenizer/sentencepiece.bpe.model, max_len: 32}
model: {pretrained: $fixtures/hf-tiny-xlmr}
train: {pairs_per_rank: 4, steps_per_epoch: 10, max_epochs: 3}
export: {batch_size: 16}
EOF
cli() { "$bin" "$1" --config "$work/config.yaml" "${@:2}"; }
cli train >"$work/train.log" 2>&1 || fail "the training on the ordinary disk: $(tail -3 "$work/train.log")"
cli predict >/dev/null 2>&1 || fail "predict on the ordinary disk"
"$bin" evaluate "$work/run/features.h5" >/dev/null 2>&1 || fail "evaluate on the ordinary disk"
best=$work/run/checkpoints/best.h5

# fresh_fs SIZE [FILE...]: a new tmpfs of SIZE at $mnt holding run/ with copies of the run's FILEs.
fresh_fs() {
  mountpoint -q "$mnt" && umount "$mnt"
  mount -t tmpfs -o "size=$1" tmpfs "$mnt" || fail "mount"
  mkdir -p "$mnt/run"
  rm -rf "$work/before"
  shift
  for f in "$@"; do cp "$work/run/$f" "$mnt/run/$f" || fail "copy $f"; done
  cp -r "$mnt/run" "$work/before"  # what must be there unchanged after the failure
}
# fill [KIB]: no byte left on $mnt, or KIB kibibytes (a write that starts and then fails).
fill() {
  dd if=/dev/zero of="$mnt/filler" bs=4k >/dev/null 2>&1
  [ "$(stat -f -c %a "$mnt")" = 0 ] || fail "$mnt is not full"
  [ -z "${1:-}" ] || truncate -s "-${1}K" "$mnt/filler"
}

# expect_full CASE TARGET CMD...: CMD fails as a full disk must, naming TARGET.
expect_full() {
  local name=$1 target=$2
  shift 2
  "$@" >"$work/out" 2>"$work/err" </dev/null
  local rc=$? err
  err=$(cat "$work/err")
  [ "$rc" = 2 ] || fail "$name: exit $rc, expected 2: $(cat "$work/err")"
  [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "$name: more than one line: $(cat "$work/err")"
  [[ "$err" == "siamese-xlmr: error: "*"$target"*": No space left on device" ]] ||
    fail "$name: expected one line naming $target and the system's reason: $err"
  local left
  left=$(find "$mnt" -name '*.tmp.*')
  [ -z "$left" ] || fail "$name: temporaries left: $left"
  log "$name: $err"
}
# unchanged CASE: every file fresh_fs copied is still there, byte for byte (but .lock, which
# names its latest holder).
unchanged() {
  (cd "$work/before" && find . -type f ! -name .lock) | while read -r f; do
    cmp -s "$work/before/$f" "$mnt/run/$f" || fail "$1: $f changed or lost"
  done || exit 1
  rm -rf "$work/before"
}

fresh_fs 4m .lock features.h5 && fill
expect_full "export --force" "$mnt/run/features.h5.tmp." \
  cli export --force --checkpoint "$best" run.dir="$mnt/run"
unchanged export

# Room for the start of features.h5 (82 kB), not all of it.
fresh_fs 4m .lock features.h5 && fill 40
expect_full "export --force (a partial write)" "$mnt/run/features.h5.tmp." \
  cli export --force --checkpoint "$best" run.dir="$mnt/run"
unchanged "export (a partial write)"

fresh_fs 4m .lock classifier.json submission.csv && fill
expect_full "predict --force" "$mnt/run/classifier.json.tmp." \
  cli predict --force --features "$work/run/features.h5" run.dir="$mnt/run"
unchanged predict

fresh_fs 4m .lock features.h5 features_before.h5 evaluation.json && fill
expect_full evaluate "$mnt/run/evaluation.json.tmp." "$bin" evaluate "$mnt/run/features.h5"
unchanged evaluate

for out in e.h5 e.npy; do
  fresh_fs 4m && fill
  expect_full "embed --out $out" "$mnt/$out.tmp." \
    cli embed --csv "$work/data/test.csv" --text-column content --checkpoint "$best" \
    --out "$mnt/$out"
done

fresh_fs 4m && fill
expect_full "export-hf" "$mnt/hf/" cli export-hf --checkpoint "$best" --out "$mnt/hf"
[ ! -e "$mnt/hf" ] || fail "export-hf left $mnt/hf"

fresh_fs 4m && cp "$work/run/submission.csv" "$mnt/pairs.csv" && fill
expect_full "data pairs" "$mnt/pairs.csv.tmp." "$bin" data pairs --config "$work/config.yaml" --out "$mnt/pairs.csv"
cmp -s "$work/run/submission.csv" "$mnt/pairs.csv" || fail "data pairs: the earlier file changed"

fresh_fs 4m && fill
expect_full "data synth" "$mnt/synth/" "$bin" data synth --out "$mnt/synth" --rows 500
[ -z "$(ls -A "$mnt/synth" 2>/dev/null)" ] || fail "data synth left files: $(ls "$mnt/synth")"

# Text on stdout into a full disk: exit 2 and one line, not a success with a cut file.
seq 1 3000 | sed 's/^/text number /' >"$work/lines.txt"
for sub in "tokenize" "embed --checkpoint $best" "predict --texts - --features $work/run/features.h5"; do
  fresh_fs 4m && fill
  # shellcheck disable=SC2086  # the words of $sub are its arguments
  cli $sub <"$work/lines.txt" >"$mnt/out.txt" 2>"$work/err"
  rc=$?
  [ "$rc" = 2 ] || fail "$sub > a full disk: exit $rc, expected 2: $(cat "$work/err")"
  [ "$(grep -c . "$work/err")" = 1 ] && grep -q "^siamese-xlmr: error: writing to stdout failed" "$work/err" ||
    fail "$sub > a full disk: expected one line saying stdout was not written: $(cat "$work/err")"
  log "$sub > a full disk: $(cat "$work/err")"
done

fresh_fs 4m .lock && fill
expect_full "train (config.resolved.yaml)" "$mnt/run/config.resolved.yaml.tmp." \
  cli train run.dir="$mnt/run"

# Room for the first epoch's checkpoints, not for all: training ends with the error, and the
# checkpoints written before the full disk are whole (export loads best.h5 and checks its sum).
fresh_fs 3m .lock
expect_full "train (a checkpoint)" "$mnt/run/checkpoints/" cli train run.dir="$mnt/run"
for f in best.h5 step-0000000010.h5; do
  cli export --checkpoint "$mnt/run/checkpoints/$f" run.dir="$work/reload-$f" >/dev/null 2>&1 ||
    fail "train: $f does not load after the failure"
done
rm -rf "$work/before"
log "passed"
