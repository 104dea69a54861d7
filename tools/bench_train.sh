#!/usr/bin/env bash
# Training throughput on CPU for 1 and 2 ranks through `train` (the whole loop: batches, step,
# all-reduce, metrics), and the share of step time spent in the gradient all-reduce (from
# metrics.jsonl's step_s and allreduce_s). 16 pairs per global step.
# Usage: tools/bench_train.sh [FIXTURES_DIR] [STEPS]
#   SX_BIN=PATH           the binary to measure (default build/src/app/siamese-xlmr), e.g. an
#                         older build kept for before/after ratios in one run
#   SX_BENCH_MODEL=fixture  the tiny fixture model, texts up to 128 tokens (default)
#   SX_BENCH_MODEL=demo     configs/demo.yaml's model (xlmr-tiny-demo), 64 tokens, with a
#                           sentencepiece model trained on the synthetic data as demo.sh does
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=${1:-../shared/fixtures}
steps=${2:-200}
bin=${SX_BIN:-build/src/app/siamese-xlmr}
which_model=${SX_BENCH_MODEL:-fixture}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin" data synth --out "$work/data" --rows 20000 --seed 1 >/dev/null
python=/usr/bin/python3; [ -x $python ] || python=python3
case $which_model in
  fixture)
    model=(tokenizer.model="$fixtures/tokenizer/sentencepiece.bpe.model" tokenizer.max_len=128
           model.pretrained="$fixtures/hf-tiny-xlmr");;
  demo)
    $python - "$work/data" <<'PY'
import csv, sys
d = sys.argv[1]
with open(f"{d}/spm-input.txt", "w") as out:
    for name in ("jigsaw-unintended-bias-train.csv", "validation.csv"):
        with open(f"{d}/{name}", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                out.write(row["comment_text"].replace("\n", " ") + "\n")
PY
    spm_train --input="$work/data/spm-input.txt" --model_prefix="$work/data/spm" --vocab_size=2000 \
      --model_type=unigram --character_coverage=1.0 --hard_vocab_limit=false --minloglevel=2 >/dev/null 2>&1
    model=(tokenizer.model="$work/data/spm.model" tokenizer.max_len=64 model.pretrained=
           model.config=configs/models/xlmr-tiny-demo/config.json);;
  *) echo "SX_BENCH_MODEL: fixture or demo, not $which_model" >&2; exit 2;;
esac
for ranks in 1 2; do
  per_rank=$(( 16 / ranks ))
  mpirun -q --oversubscribe -np $ranks "$bin" train run.dir="$work/r$ranks" run.threads=$(( 2 / ranks )) \
    data.train_csv="$work/data/jigsaw-unintended-bias-train.csv" data.multilingual_csv="$work/data/validation.csv" \
    data.test_csv= data.train_pairs=20000 data.val_pairs=64 export.before_training=false \
    "${model[@]}" train.pairs_per_rank=$per_rank train.steps_per_epoch=100000 \
    train.max_steps=$steps >/dev/null 2>&1
  $python - "$work/r$ranks/metrics.jsonl" $ranks $per_rank "$which_model" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"type":"step"' in l][10:]  # skip warm-up
step_s = sum(s["step_s"] for s in steps) / len(steps)
comm = sum(s["allreduce_s"] for s in steps) / len(steps)
pairs = int(sys.argv[2]) * int(sys.argv[3])
print(f"{sys.argv[4]}: {sys.argv[2]} rank(s) x {sys.argv[3]} pairs: {pairs / step_s:.0f} pairs/s, "
      f"step {step_s * 1e3:.1f} ms, all-reduce {comm * 1e3:.2f} ms ({100 * comm / step_s:.1f}% of the step)")
PY
done
