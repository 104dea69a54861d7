#!/usr/bin/env python3
"""The training step in PyTorch + HF transformers on the CPU, as a user would write it, beside
`siamese-xlmr bench train` on the CPU with the same settings; prints both and the ratio.

The same step as ours (src/train/step.cpp, src/app/cmd_bench_train.cpp):
- model: XLMRobertaModel (no pooler) randomly initialised from the same HF config.json, in train
  mode with the config's dropout (HF's default attention, SDPA), pooling = masked mean +
  LayerNorm(eps 1e-3);
- batches: synthetic as bench train's (data::random_text_batch): per pair two texts, lengths
  uniform in [10, --max-len], <s> first, </s> last, ids uniform in [5, min(250000, vocab)),
  labels 0/1 with p 0.5 (another generator, so the same distribution, not the same numbers);
  padded to the batch's longest text (HF's dynamic padding), with the attention mask;
- loss: the notebook's DBL loss, Keras' binary cross-entropy form (margin 1);
- optimizer: Adam in Keras' form (epsilon hat 1e-7) at bench train's constant rate 5e-5:
  torch.optim.Adam with eps = 1e-7 / sqrt(1 - beta2^t) each step equals it exactly (fused
  kernel, the fastest CPU Adam torch has);
- threads: torch.set_num_threads(--threads), as run.threads.
Batches are made before the timed steps (ours are made ahead on a thread).

Usage: .venv/bin/python tools/bench_train_cpu_py.py [--binary B ...] [--model CONFIG.json]
           [--pairs P] [--max-len L] [--warmup W] [--steps S] [--threads T] [--rounds R]
           [key=value ...]
Defaults: build/ and build-cuda/'s binaries (those that exist), the demo model
(configs/models/xlmr-tiny-demo), 32 pairs, lengths up to 64, 5 + 30 steps, 2 threads, 2 rounds.
Each round runs every binary then Python; the best step time of the rounds counts (the machine
is shared). The last lines name the BLAS each binary's libtorch calls."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

try:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel
except ImportError as e:
    sys.exit(f"{sys.executable} cannot import {e.name}: run it with the venv's python "
             "(.venv/bin/python, launch/install-py-deps.sh)")

LR, BETAS, EPS_HAT, MARGIN = 5e-5, (0.9, 0.999), 1e-7, 1.0


def make_batch(g, pairs, max_len, vocab_end):
    lengths = torch.randint(10, max_len + 1, (2 * pairs,), generator=g)
    width = int(lengths.max())
    ids = torch.randint(5, vocab_end, (2 * pairs, width), generator=g)
    for i, n in enumerate(lengths.tolist()):
        ids[i, 0] = 0
        ids[i, n - 1] = 2
        ids[i, n:] = 1
    labels = (torch.rand(pairs, generator=g) < 0.5).float()
    return ids, labels, int(lengths.sum())


def dbl_loss(e, labels):
    left, right = e.chunk(2)
    d = torch.sqrt(torch.clamp(((left - right) ** 2).sum(1), min=1e-7))
    p = ((1.0 + math.exp(-MARGIN)) / (1.0 + torch.exp(d - MARGIN))).clamp(1e-7, 1 - 1e-7)
    return (-(labels * torch.log(p + 1e-7) + (1 - labels) * torch.log(1 - p + 1e-7))).mean()


def python_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = XLMRobertaConfig.from_json_file(args.model)
    model = XLMRobertaModel(config, add_pooling_layer=False).train()
    pool_ln = torch.nn.LayerNorm(config.hidden_size, eps=1e-3)
    params = list(model.parameters()) + list(pool_ln.parameters())
    opt = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS_HAT, fused=True)

    def step(ids, labels, t):
        mask = ids.ne(1)
        h = model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        m = mask.unsqueeze(-1).float()
        loss = dbl_loss(pool_ln((h * m).sum(1) / m.sum(1)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.param_groups[0]["eps"] = EPS_HAT / math.sqrt(1 - BETAS[1] ** t)  # Keras' form
        opt.step()
        return loss

    g = torch.Generator().manual_seed(1)
    vocab_end = min(250000, config.vocab_size)
    data = [make_batch(g, args.pairs, args.max_len, vocab_end)
            for _ in range(args.warmup + args.steps)]
    for t in range(args.warmup):
        step(*data[t][:2], t + 1)
    start = time.perf_counter()
    for t in range(args.warmup, args.warmup + args.steps):
        loss = step(*data[t][:2], t + 1)
    seconds = (time.perf_counter() - start) / args.steps
    tokens = sum(b[2] for b in data[args.warmup:]) / args.steps
    return {"step_ms": seconds * 1e3, "pairs_per_s": args.pairs / seconds,
            "real_tokens_per_s": tokens / seconds, "loss": loss.item()}


def ours_bench(binary, args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        command = [binary, "bench", "train", "--model", args.model, "--pairs", str(args.pairs),
                   "--max-len", str(args.max_len), "--warmup", str(args.warmup), "--steps",
                   str(args.steps), "--json", out, "model.device=cpu",
                   f"run.threads={args.threads}", *args.overrides]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {run.returncode}:\n{run.stderr[-2000:]}")
        with open(out) as f:
            results = json.load(f)
    return dict(results["settings"][0], torch=results["torch"])


def blas_note(binary):
    """Which BLAS the binary's libtorch calls: Debian's libtorch 1.13 goes through libblas.so.3,
    Debian's reference implementation unless an optimized one (OpenBLAS) is installed."""
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for line in ldd.splitlines():
        if "libblas.so" in line and "=>" in line:
            path = os.path.realpath(line.split("=>")[1].split("(")[0].strip())
            reference = "/blas/libblas.so" in path
            return path + (" (the reference BLAS: unoptimized)" if reference else "")
    return "torch's own"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", action="append",
                        help="siamese-xlmr to measure; repeatable (default: build/ and "
                        "build-cuda/'s, those that exist)")
    parser.add_argument("--model", default="configs/models/xlmr-tiny-demo/config.json")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("overrides", nargs="*",
                        help="key=value overrides for bench train (model.attention=sdpa, ...)")
    args = parser.parse_args()
    binaries = args.binary or [b for b in ("build/src/app/siamese-xlmr",
                                           "build-cuda/src/app/siamese-xlmr") if os.path.exists(b)]
    if not binaries:
        sys.exit("no siamese-xlmr binary: build first (launch/build.sh) or pass --binary")
    ours = {b: [] for b in binaries}
    py = []
    for _ in range(args.rounds):  # interleaved, so that both see the same machine load
        for b in binaries:
            ours[b].append(ours_bench(b, args))
        py.append(python_bench(args))
    best_py = min(py, key=lambda r: r["step_ms"])
    print(f"model {args.model}, {args.pairs} pairs/step, lengths 10..{args.max_len}, "
          f"{args.threads} threads, best of {args.rounds} rounds of {args.steps} steps")
    print(f"{'':58s} {'step ms':>9s} {'pairs/s':>9s} {'tokens/s':>10s} {'ratio':>6s}")
    rows = [(f"{b} (libtorch {min(r, key=lambda x: x['step_ms'])['torch']}, packed)",
             min(r, key=lambda x: x["step_ms"])) for b, r in ours.items()]
    rows.append((f"PyTorch {torch.__version__} + HF transformers (padded)", best_py))
    for name, r in rows:
        print(f"{name:58s} {r['step_ms']:9.2f} {r['pairs_per_s']:9.1f} "
              f"{r['real_tokens_per_s']:10.0f} {r['pairs_per_s'] / best_py['pairs_per_s']:6.2f}")
    print("ratio = pairs/s / PyTorch's pairs/s (above 1: siamese-xlmr is faster)")
    for b in binaries:
        print(f"{b}: BLAS {blas_note(b)}")


if __name__ == "__main__":
    main()
