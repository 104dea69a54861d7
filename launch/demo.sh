#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the whole job on the
# demo configuration (configs/demo.yaml) on CPU with 2 MPI ranks: synthesize data, train a
# tokenizer, train the Siamese model with validation, checkpoints and early/time stopping,
# reload the best weights, export features, evaluate before/after, draw the pictures, export the
# encoder as an HF model directory and write the test set's submission.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/install-deps.sh
# Only what the demo runs (the program and its sentencepiece module), not the test suites.
SX_BUILD_TARGETS=siamese-xlmr launch/build.sh
bin=build/src/app/siamese-xlmr
data=runs/demo-data
run=runs/demo
start=$(date +%s)
# Debian's interpreter holds the packages install-deps.sh installed (a python3 earlier on PATH
# may not).
python=/usr/bin/python3
[ -x "$python" ] || python=python3

if [ ! -f "$data/validation.csv" ]; then
  "$bin" data synth --out "$data" --rows 40000 --seed 42
fi
if [ ! -f "$data/spm.model" ]; then
  # A small unigram sentencepiece model (XLM-R's kind) trained on the synthetic comments.
  "$python" - "$data" <<'PY'
import csv, sys
d = sys.argv[1]
with open(f"{d}/spm-input.txt", "w") as out:
    for name, col in (("jigsaw-unintended-bias-train.csv", "comment_text"), ("validation.csv", "comment_text"), ("test.csv", "content")):
        with open(f"{d}/{name}", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                out.write(row[col].replace("\n", " ") + "\n")
PY
  spm_train --input="$data/spm-input.txt" --model_prefix="$data/spm" --vocab_size=2000 --model_type=unigram \
    --character_coverage=1.0 --hard_vocab_limit=false --minloglevel=2 --num_threads="$(nproc)" >/dev/null 2>&1
fi

rm -rf "$run"
SX_CPU_RANKS=2 launch/run.sh configs/demo.yaml
echo
"$bin" evaluate "$run/features.h5" | tee "$run/evaluation.txt"
"$python" tools/plot_run.py "$run" >/dev/null
# What a user takes away: the encoder as an HF / sentence-transformers directory, and the final
# classifier's probabilities for the test set.
"$bin" export-hf --config configs/demo.yaml --out "$run/hf-model"
"$bin" predict --config configs/demo.yaml
end=$(date +%s)
cat <<MSG

Demo finished in $(( end - start ))s (after the build). Results in $run/:
  metrics.jsonl, log/rank-*.log          training metrics and per-rank logs
  checkpoints/best.h5, step-*.h5         weights (HF names), optimizer state
  features_before.h5, features.h5        embeddings + language folds for the final classifier
  evaluation.json, evaluation.txt        per-language ROC-AUC before vs after (above)
  tsne_before.png, tsne_after.png, learning_curves.png
  hf-model/                              the encoder for HF transformers / sentence-transformers
  classifier.json, submission.csv        the final classifier and its test-set probabilities (id,toxic)
MSG
