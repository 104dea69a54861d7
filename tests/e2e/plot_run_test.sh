#!/usr/bin/env bash
# tools/plot_run.py on a short 2-rank run: the three pictures exist and are valid PNG files.
set -euo pipefail
bin=$1 fixtures=$2 source=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin" data synth --out "$work/data" --rows 3000 --seed 3 >/dev/null
timeout 300 mpirun -q --oversubscribe -np 2 "$bin" train run.dir="$work/run" run.threads=1 \
  data.train_csv="$work/data/jigsaw-unintended-bias-train.csv" data.multilingual_csv="$work/data/validation.csv" \
  data.test_csv="$work/data/test.csv" data.train_pairs=400 data.val_pairs=64 \
  tokenizer.model="$fixtures/tokenizer/sentencepiece.bpe.model" tokenizer.max_len=32 \
  model.pretrained="$fixtures/hf-tiny-xlmr" train.pairs_per_rank=4 train.steps_per_epoch=5 train.max_steps=15 \
  >"$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
python=/usr/bin/python3
[ -x $python ] || python=python3
$python "$source/tools/plot_run.py" "$work/run" --samples 200
for png in tsne_before tsne_after learning_curves; do
  f="$work/run/$png.png"
  [ -s "$f" ] || { echo "missing $f"; exit 1; }
  sig=$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')
  [ "$sig" = "89504e470d0a1a0a" ] || { echo "$f is not a PNG (signature $sig)"; exit 1; }
done
grep -q '"centroid_auc_mean"' "$work/run/metrics.jsonl" || { echo "no centroid_auc in metrics.jsonl"; exit 1; }
# A run from before train.epoch_auc (no centroid_auc fields) still draws its curves.
mkdir "$work/old"
$python - "$work/run/metrics.jsonl" "$work/old/metrics.jsonl" <<'PY'
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        rec = json.loads(line)
        for key in ("centroid_auc", "centroid_auc_mean", "centroid_auc_s"):
            rec.pop(key, None)
        out.write(json.dumps(rec) + "\n")
PY
$python "$source/tools/plot_run.py" "$work/old"
[ -s "$work/old/learning_curves.png" ] || { echo "no learning curves for a run without centroid_auc"; exit 1; }
echo "plot_run: 3 valid PNG files, and curves for a run without centroid_auc"
