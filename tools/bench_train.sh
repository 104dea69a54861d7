#!/usr/bin/env bash
# Training throughput of the tiny fixture model on CPU for 1 and 2 ranks, and the share of step
# time spent in the gradient all-reduce (from metrics.jsonl's step_s and allreduce_s).
# Usage: tools/bench_train.sh [FIXTURES_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=${1:-../shared/fixtures}
steps=${2:-200}
bin=build/src/app/siamese-xlmr
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin" data synth --out "$work/data" --rows 20000 --seed 1 >/dev/null
python=/usr/bin/python3; [ -x $python ] || python=python3
for ranks in 1 2; do
  per_rank=$(( 16 / ranks ))
  mpirun -q --oversubscribe -np $ranks "$bin" train run.dir="$work/r$ranks" run.threads=$(( 2 / ranks )) \
    data.train_csv="$work/data/jigsaw-unintended-bias-train.csv" data.multilingual_csv="$work/data/validation.csv" \
    data.test_csv= data.train_pairs=20000 data.val_pairs=64 export.before_training=false \
    tokenizer.model="$fixtures/tokenizer/sentencepiece.bpe.model" tokenizer.max_len=128 \
    model.pretrained="$fixtures/hf-tiny-xlmr" train.pairs_per_rank=$per_rank train.steps_per_epoch=100000 \
    train.max_steps=$steps >/dev/null 2>&1
  $python - "$work/r$ranks/metrics.jsonl" $ranks $per_rank <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"type":"step"' in l][10:]  # skip warm-up
step_s = sum(s["step_s"] for s in steps) / len(steps)
comm = sum(s["allreduce_s"] for s in steps) / len(steps)
pairs = int(sys.argv[2]) * int(sys.argv[3])
print(f"{sys.argv[2]} rank(s) x {sys.argv[3]} pairs (max_len 128): {pairs / step_s:.0f} pairs/s, "
      f"step {step_s * 1e3:.1f} ms, all-reduce {comm * 1e3:.2f} ms ({100 * comm / step_s:.1f}% of the step)")
PY
done
