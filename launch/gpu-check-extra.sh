#!/usr/bin/env bash
# Run last by gpu-check.sh, if time is left (SX_GPU_CHECK_EXTRA): short training runs on the GPU
# through the real launcher path (1 rank, NCCL), fp32 and bf16 + fused attention, then bench
# train and export-hf loaded by HF transformers. Needs build-gpu/src/app/siamese-xlmr. Each part
# has its own timeout (SX_EXTRA_TIMEOUT seconds, default 150); the two-rank checks are
# tools/gpu_two_ranks.sh (gpu-check.sh runs it before this).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
bin=build-gpu/src/app/siamese-xlmr
fixtures=$PWD/../shared/fixtures
[ -d "$fixtures" ] || fixtures=$PWD/.fixtures
limit=${SX_EXTRA_TIMEOUT:-150}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin" data synth --out "$work/data" --rows 20000 --seed 1 >/dev/null
for mode in "fp32 model.attention=math model.autocast_bf16=false" "bf16-sdpa model.attention=sdpa model.autocast_bf16=true"; do
  # shellcheck disable=SC2086  # the mode's words: its name, then overrides
  set -- $mode
  name=$1; shift
  echo "--- train on GPU with NCCL ($name)"
  SX_BIN=$bin timeout -k 10 "$limit" launch/run.sh /dev/null run.dir="$work/$name" \
    data.train_csv="$work/data/jigsaw-unintended-bias-train.csv" \
    data.multilingual_csv="$work/data/validation.csv" data.test_csv="$work/data/test.csv" data.train_pairs=20000 \
    data.val_pairs=256 tokenizer.model="$fixtures/tokenizer/sentencepiece.bpe.model" \
    model.pretrained="$fixtures/hf-tiny-xlmr" model.device=cuda dist.backend=nccl train.pairs_per_rank=32 \
    train.steps_per_epoch=100 train.max_steps=300 train.lr_max=1e-3 train.log_every=100 "$@" 2>&1 | \
    grep -E "NCCL|replica|epoch|stopped|features|error" || true
  test -f "$work/$name/features.h5" || { echo "no features from the $name run"; exit 1; }
  python3 - "$work/$name/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"type":"step"' in l][20:]
print(f"GPU throughput: {sum(s['pairs_per_s'] for s in steps) / len(steps):.0f} pairs/s (tiny model, 32 pairs/step)")
PY
  timeout -k 10 "$limit" "$bin" evaluate "$work/$name/features.h5" | tail -2
done

echo "--- bench train on the tiny model (CUDA events, pinned batches, bf16, both layouts)"
for layout in packed padded; do
  timeout -k 10 "$limit" "$bin" bench train --model "$fixtures/hf-tiny-xlmr/config.json" --pairs 8 \
    --warmup 2 --steps 5 --layout $layout model.device=cuda model.autocast_bf16=true model.attention=sdpa | tail -2
done
echo "--- export-hf of the fp32 run, loaded by HF transformers (and sentence-transformers if there)"
timeout -k 10 "$limit" "$bin" export-hf run.dir="$work/fp32" model.pretrained="$fixtures/hf-tiny-xlmr" \
  tokenizer.model="$fixtures/tokenizer/sentencepiece.bpe.model" --out "$work/hf" | tail -1
timeout -k 10 "$limit" python3 tools/check_hf_export.py "$bin" "$work/hf"
echo "--- extra GPU checks passed"
