#!/usr/bin/env python3
"""Loads an `export-hf` directory with HF transformers and sentence-transformers and compares
their embeddings with `siamese-xlmr embed` of the exported weights (float32, |diff| <= 1e-5):

1. transformers.AutoModel on our token ids (padded, with the attention mask), masked mean,
   LayerNorm with 2_LayerNorm/'s weights;
2. sentence_transformers.SentenceTransformer (Transformer -> Pooling -> LayerNorm) on our ids;
3. SentenceTransformer.encode on the texts, its own tokenizer (AutoTokenizer's) included,
   against embed with tokenizer.pretokenize=none tokenizer.keep_eos=true (HF's whole-text
   encoding and truncation), on the texts whose ids agree (sentencepiece and HF's tokenizer may
   break a Viterbi tie differently: the tokenizer's own tests measure that).

The texts: a few hundred generated ones (Latin with accents, Cyrillic, Turkish, Arabic, CJK,
emoji, punctuation and odd whitespace), or one per line of --texts FILE.

Usage: tools/check_hf_export.py BINARY DIR [--config C [--checkpoint P]] [--texts FILE] [k=v ...]
  --config C: embed with the run's weights (best checkpoint, or --checkpoint P), the ones
              export-hf wrote; without it, embed reads DIR back (model.pretrained=DIR), which
              checks HF's reading of DIR but not that DIR holds the trained weights.
  k=v: configuration overrides for tokenize/embed (e.g. tokenizer.max_len=64).
Exit 0 when every check passes, 1 on a mismatch, 77 when torch/transformers/
sentence-transformers cannot be imported."""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging
except ImportError as e:
    print(f"skipped: {sys.executable} cannot import {e.name} (launch/install-py-deps.sh makes a "
          "venv that has it)")
    sys.exit(77)

TOLERANCE = 1e-5
POOL_LN_EPS = 1e-3  # model.pool_ln_eps's default; the model card tells users to set it

WORDS = {
    "latin": "été garçon naïve über Straße niño ação può déjà vu façade crème brûlée Ærø "
             "smørrebrød Łódź señor coração você élève höflich Öl".split(),
    "english": "you are a wonderful person this is stupid idea what the hell nice comment "
               "thanks idiot great job".split(),
    "cyrillic": "привет как дела дурак хорошо спасибо Москва ёжик їжак Україна съешь "
                "щука".split(),
    "turkish": "güzel ışık İstanbul çok şey ğ Iğdır düşün öğretmen aptal merhaba "
               "teşekkürler".split(),
    "arabic": "مرحبا كيف حالك شكرا غبي جميل السلام عليكم".split(),
    "cjk": "你好 世界 日本語 こんにちは 한국어 漢字 カタカナ 笨蛋 谢谢".split(),
    "emoji": "😀 👍🏽 🔥 ❤️ 👨‍👩‍👧 🇹🇷 🤬 ✨".split(),
    "punctuation": "! ?? ... , ; : — – « » “ ” ' \" (x) [y] {z} #tag @user http://a.b/c 3.14 "
                   "1,000 100% $5 €3".split(),
}
SPACES = [" ", " ", " ", "  ", "\t", "\u00a0", " \u3000 "]


def sample_texts(count=300, seed=0):
    """`count` texts, each mixing one to three scripts; lengths from one word to past
    128 tokens (so truncation is exercised)."""
    rng = random.Random(seed)
    scripts = list(WORDS)
    texts = []
    for i in range(count):
        chosen = rng.sample(scripts, rng.randint(1, 3))
        n = rng.choice([1, 2, 5, 10, 20, 40]) if i % 25 else rng.randint(60, 150)
        words = [rng.choice(WORDS[rng.choice(chosen)]) for _ in range(n)]
        text = words[0]
        for w in words[1:]:
            text += rng.choice(SPACES) + w if rng.random() > 0.15 else w  # some words glued
        texts.append(text.strip())
    return texts


class Ours:
    """siamese-xlmr tokenize / embed with the weights the directory was exported from (the
    run of --config, its best checkpoint or --checkpoint), or, without a configuration, the
    directory itself read back as model.pretrained (which checks HF's reading of it, not the
    export)."""

    def __init__(self, binary, model_dir, config=None, checkpoint=None, overrides=()):
        self.binary = binary
        if config:
            self.common = ["--config", config]
            self.weights = ["--checkpoint", checkpoint] if checkpoint else []
        else:
            self.common = [f"model.pretrained={model_dir}",
                           f"tokenizer.model={model_dir}/sentencepiece.bpe.model"]
            # The length the export was cut to (the default, 128, may pass the model's positions).
            with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
                max_len = json.load(f).get("model_max_length")
            if isinstance(max_len, int):
                self.common.append(f"tokenizer.max_len={max_len}")
            self.weights = ["--pretrained"]
        self.common += ["model.device=cpu", "run.log_level=warn", *overrides]

    def _run(self, command, texts, extra):
        done = subprocess.run([self.binary, command, *self.common, *extra],
                              input="\n".join(texts) + "\n", capture_output=True, text=True)
        if done.returncode != 0:  # its one line, not a traceback that hides it
            sys.exit(f"check_hf_export: `siamese-xlmr {command}` exited {done.returncode}: "
                     f"{done.stderr.strip()}")
        return done.stdout

    def ids(self, texts, extra=()):
        rows = [[int(v) for v in line.split()]
                for line in self._run("tokenize", texts, extra).splitlines()]
        return [[i for i in row if i != 1] for row in rows]  # without the pads

    def embed(self, texts, extra=()):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "e.npy")
            self._run("embed", texts, [*self.weights, "--out", out, *extra])
            return torch.from_numpy(np.load(out)).double()


def padded(ids):
    width = max(len(row) for row in ids)
    input_ids = torch.tensor([row + [1] * (width - len(row)) for row in ids])
    return input_ids, input_ids.ne(1).long()


def hf_embeddings(model_dir, ids):
    """transformers.AutoModel, masked mean and the exported pooling LayerNorm."""
    model = AutoModel.from_pretrained(model_dir).eval()
    norm = load_file(os.path.join(model_dir, "2_LayerNorm", "model.safetensors"))
    input_ids, mask = padded(ids)
    with torch.no_grad():
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(1) / m.sum(1)
    return torch.nn.functional.layer_norm(mean, mean.shape[-1:], norm["norm.weight"],
                                          norm["norm.bias"], eps=POOL_LN_EPS).double()


def worst(a, b, rows=None):
    rows = range(len(a)) if rows is None else rows
    return max(((a[i] - b[i]).abs().max().item() for i in rows), default=float("nan"))


def check(model_dir, texts, ours):
    """Runs the three comparisons against `ours` (an Ours), prints one line each; True when
    all pass."""
    hf_logging.set_verbosity_error()  # the unused pooler's "MISSING" report
    hf_logging.disable_progress_bar()
    ids, mine = ours.ids(texts), ours.embed(texts)
    results = []
    diff = worst(hf_embeddings(model_dir, ids), mine)
    results.append((diff, f"transformers.AutoModel on our ids vs embed, {len(texts)} texts"))

    st = SentenceTransformer(model_dir, device="cpu")
    st[2].norm.eps = POOL_LN_EPS
    input_ids, mask = padded(ids)
    with torch.no_grad():
        st_ours = st({"input_ids": input_ids, "attention_mask": mask})["sentence_embedding"]
    diff = worst(st_ours.double(), mine)
    results.append((diff, f"SentenceTransformer on our ids vs embed, {len(texts)} texts"))

    whole = ["tokenizer.pretokenize=none", "tokenizer.keep_eos=true"]
    st_ids = st.tokenizer(texts, truncation=True, max_length=st.max_seq_length)["input_ids"]
    same = [i for i, row in enumerate(ours.ids(texts, whole)) if row == st_ids[i]]
    encoded = torch.tensor(st.encode(texts, batch_size=64), dtype=torch.float64)
    diff = worst(encoded, ours.embed(texts, whole), same)
    if len(same) < len(texts) // 2:  # too few to say anything: fail rather than pass vacuously
        diff = float("inf")
    results.append((diff, f"SentenceTransformer.encode vs embed (tokenizer.pretokenize=none), "
                          f"{len(same)}/{len(texts)} texts with equal ids"))
    AutoTokenizer.from_pretrained(model_dir)("loads")
    for diff, what in results:
        print(f"export-hf: {what}: max |diff| {diff:.2e} ({'ok' if diff <= TOLERANCE else 'FAIL'})")
    return all(diff <= TOLERANCE for diff, _ in results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("model_dir")
    parser.add_argument("--config", help="the run's configuration: compare with the weights "
                        "export-hf exported (default: DIR itself read back by embed)")
    parser.add_argument("--checkpoint", help="with --config: the checkpoint that was exported")
    parser.add_argument("--texts", help="one text per line (default: generated texts)")
    parser.add_argument("overrides", nargs="*", help="key=value configuration overrides")
    args = parser.parse_args()
    if args.texts:
        with open(args.texts, encoding="utf-8") as f:
            texts = [line.rstrip("\n") for line in f if line.strip()]
    else:
        texts = sample_texts()
    ours = Ours(args.binary, args.model_dir, args.config, args.checkpoint, args.overrides)
    return 0 if check(args.model_dir, texts, ours) else 1


if __name__ == "__main__":
    sys.exit(main())
