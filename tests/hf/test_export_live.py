#!/usr/bin/env python3
"""export-hf against live HF: a few training steps of the tiny fixture model on synthetic data
(every parameter moved, the pooling LayerNorm included), `export-hf`, then
tools/check_hf_export.py: transformers.AutoModel and sentence_transformers.SentenceTransformer
load the directory and their embeddings equal `siamese-xlmr embed` within 1e-5 on a few hundred
texts of several scripts.

Usage: test_export_live.py BINARY FIXTURES_DIR     exit 0 pass, 1 fail, 77 skipped."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import check_hf_export  # noqa: E402  (exits 77, saying why, without transformers)


def run(*command):
    r = subprocess.run(command, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(command)} exited {r.returncode}:\n{r.stderr[-3000:]}")


def main():
    binary, fixtures = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="sx-hf-export-") as tmp:
        data, run_dir = os.path.join(tmp, "data"), os.path.join(tmp, "run")
        run(binary, "data", "synth", "--out", data, "--rows", "600", "--seed", "5")
        config = os.path.join(tmp, "config.yaml")
        with open(config, "w") as f:
            f.write(f"""run:
  dir: {run_dir}
  threads: 1
  log_level: warn
data:
  train_csv: {data}/jigsaw-unintended-bias-train.csv
  multilingual_csv: {data}/validation.csv
  test_csv: ""
  train_pairs: 400
  val_pairs: 32
tokenizer:
  model: {fixtures}/tokenizer/sentencepiece.bpe.model
model:
  pretrained: {fixtures}/hf-tiny-xlmr
  device: cpu
train:
  pairs_per_rank: 8
  steps_per_epoch: 3
  max_steps: 6
  lr_min: 1.0e-3
  lr_max: 1.0e-2
  epoch_auc: false
export:
  before_training: false
""")
        # A large learning rate, so that the exported weights are far from the fixture's.
        run(binary, "train", "--config", config)
        out = os.path.join(tmp, "hf")
        run(binary, "export-hf", "--config", config, "--out", out)
        texts = check_hf_export.sample_texts(300)
        ours = check_hf_export.Ours(binary, out, config=config)  # the run's best weights
        return 0 if check_hf_export.check(out, texts, ours) else 1


if __name__ == "__main__":
    sys.exit(main())
