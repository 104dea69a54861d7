#!/usr/bin/env python3
"""Loads an `export-hf` directory with HF transformers (and sentence-transformers when it is
installed) and compares its embeddings with `siamese-xlmr embed model.pretrained=DIR`.
Usage: tools/check_hf_export.py BINARY DIR     (exit 1 on a mismatch above 1e-4)"""
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

binary, model_dir = sys.argv[1], sys.argv[2]
texts = ["You are a wonderful person", "This is a stupid idea!!", "hola amigo, que tal",
         "Bu ne kadar guzel bir gun"]
common = [f"model.pretrained={model_dir}", f"tokenizer.model={model_dir}/sentencepiece.bpe.model",
          "model.device=cpu"]


def cli(command, extra=()):
    out = subprocess.run([binary, command, *common, *extra], input="\n".join(texts) + "\n",
                         capture_output=True, text=True, check=True).stdout
    return [[float(v) for v in line.split()] for line in out.splitlines()]


ours_ids = [[int(v) for v in row] for row in cli("tokenize")]
ours = torch.tensor(cli("embed", ["--pretrained"]), dtype=torch.float64)  # not a run.dir checkpoint
norm = load_file(f"{model_dir}/2_LayerNorm/model.safetensors")
model = AutoModel.from_pretrained(model_dir).eval()
AutoTokenizer.from_pretrained(model_dir)("loads")
worst = 0.0
with torch.no_grad():
    for row, ids in enumerate(ours_ids):
        ids = [i for i in ids if i != 1]  # pads
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        mean = hidden.mean(0)
        emb = torch.nn.functional.layer_norm(mean, (mean.numel(),), norm["norm.weight"],
                                             norm["norm.bias"], eps=1e-3)
        worst = max(worst, (emb.double() - ours[row]).abs().max().item())
print(f"export-hf: HF transformers vs embed, same ids: max |diff| {worst:.2e}")
ok = worst < 1e-4
try:
    from sentence_transformers import SentenceTransformer
except ImportError:
    print("sentence-transformers is not installed: its check is skipped")
else:
    st = SentenceTransformer(model_dir, device="cpu")
    st[2].norm.eps = 1e-3
    st_ids = [st.tokenizer(t)["input_ids"] for t in texts]
    plain = cli("tokenize", ["tokenizer.pretokenize=none"])
    same = [i for i, ids in enumerate(st_ids) if ids == [v for v in map(int, plain[i]) if v != 1]]
    emb = torch.tensor(st.encode(texts), dtype=torch.float64)
    mine = torch.tensor(cli("embed", ["--pretrained", "tokenizer.pretokenize=none"]), dtype=torch.float64)
    diff = max(((emb[i] - mine[i]).abs().max().item() for i in same), default=float("nan"))
    print(f"export-hf: sentence-transformers vs embed (tokenizer.pretokenize=none), "
          f"{len(same)}/{len(texts)} texts with equal ids: max |diff| {diff:.2e}")
    ok = ok and (not same or diff < 1e-4)
sys.exit(0 if ok else 1)
