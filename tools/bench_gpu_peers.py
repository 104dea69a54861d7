#!/usr/bin/env python3
"""The strongest PyTorch training steps we know how to write for the Siamese DBL step, timed the
way `siamese-xlmr bench train` is (issue #23 item 1). An extended copy of the fixed reference
../shared/bench/pytorch_reference.py: the same model config (XLM-R base, random init, train mode
with the config's dropout), the same data (seeds 0 and 1; lengths uniform in [10, 128]; ids
uniform in [5, 250000); <s> first, </s> last), masked mean pooling + LayerNorm(eps 1e-3), the DBL
loss, fused Adam (lr 5e-5, eps 1e-7), bf16 autocast, TF32 off.

Unlike the reference, every row builds its batches on the host in pinned memory before timing
and copies them to the device with non_blocking INSIDE the timed loop, as ours does.

Rows (each in its own child process with its own time limit, so one that fails or runs out of
time is reported and the others still run; --rows picks some):
  eager_b32, eager_b128     HF XLMRobertaModel, SDPA, padded to 128 tokens, eager (as the
                            reference's bf16 rows).
  graphs_b32, graphs_b128   the same step's forward + pooling + loss under
                            torch.compile(mode="reduce-overhead", dynamic=False): CUDA graphs
                            of forward and backward; fixed shapes [2P, 128], one compile each.
  packed_b32, packed_b128   padding-free: the batch's texts flattened into one row of T tokens
                            with position ids 2..len+1 (XLM-R's), attention by
                            torch.nn.attention.flex_attention with a document block mask (built
                            inside the compiled function from the segment ids), pooling by
                            segment sum (index_add); torch.compile(mode=--packed-mode, default
                            "default"). T is filled with pad tokens (a segment of their own, not
                            pooled) up to a multiple of 256 and marked dynamic, so ONE compile
                            serves every batch of a row (should that compile fail, the row fills
                            every batch to its longest and compiles that one shape instead, and
                            says so in packed_shapes). flex_attention cannot drop attention
                            probabilities, so these rows run with attention_probs_dropout 0
                            (hidden dropout kept): a little less work than the padded rows.
  varlen_b32, varlen_b128   (not run by default: --rows ...) the same packed step with
                            torch.nn.attention.varlen.varlen_attn (flash varlen, CUDA only; HF's
                            flash_attention_2 padding-free path without the flash_attn package);
                            the fill tokens are two segments of at most 128 (possibly empty).

Timing: W warm-up steps (compiles and CUDA-graph recording happen there), then N steps with a
CUDA event recorded at the start of each (no sync inside the loop, so the host may run ahead as
in training) and torch.cuda.synchronize() after the last; step_ms is the median of the N
event-to-event intervals, step_ms_wall the mean wall time of the N steps. On a CPU, wall clock
per step.

FLOPs per step (stated here, used for every row; the same as `bench train`'s):
  real:   6 * N * T_real + 12 * layers * hidden * sum(len_i^2)
  padded: 6 * N * (2P * 128) + 12 * layers * hidden * 2P * 128^2     ("padded-equivalent")
with N the parameters of XLMRobertaModel outside its embeddings (no pooler; 85.05M for XLM-R
base), T_real = sum(len_i) the real tokens, len_i each text's length, 2P the texts of P pairs;
12 * L^2 * H per layer and text is the attention's two matmuls (QK^T, PV), 2 * 2 * L^2 * H
forward, times 3 for training. padded_equiv_tflops_per_s is given for the padded rows only;
real_tflops_per_s for every row; mfu = real TFLOP/s / the GPU's dense bf16 peak (H100 SXM and
H200: 989.4; H100 NVL 835.6; H100 PCIe 756.5; --peak-tflops sets it for others).

At start-up a check on a tiny config (2 layers, hidden 64, fp32, dropout off, on the device):
the packed step (flex attention, also with 256 more fill tokens, and the varlen layout through
a per-segment SDPA stand-in) gives the padded eager step's loss, pooled embeddings and
gradients within 1e-4 (flex forward only on a CPU: FlexAttention has no backward there).
--check-compile adds the flex packed forward compiled as the rows compile it, on two token
counts: equal to eager within 1e-4, one compiled graph.

Output: one `peers_row {json}` line per row, OUT/bench.json (all rows, the check, the device),
and a markdown table at the end.
Usage on a GPU: python3 tools/bench_gpu_peers.py OUT [--budget 330]
Here:           .venv/bin/python tools/bench_gpu_peers.py OUT --device cpu --tiny
"""
import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from transformers import AttentionInterface, XLMRobertaConfig, XLMRobertaModel
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError as e:
    print(f"skipped: {sys.executable} cannot import {e.name} (use the venv's python)")
    sys.exit(77)

PAD, BOS, EOS = 1, 0, 2
MAX_LEN = 128
FILL_MULTIPLE = 256  # packed rows: T filled up to a multiple of this
MARGIN = 1.0
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against the device name in order.
PEAKS = [("H200", 989.4), ("H100 NVL", 835.6), ("H100 PCIe", 756.5), ("H100", 989.4)]
ROWS = {  # name: (layout, attention, compile mode or None, pairs)
    "eager_b32": ("padded", "sdpa", None, 32),
    "eager_b128": ("padded", "sdpa", None, 128),
    "graphs_b32": ("padded", "sdpa", "reduce-overhead", 32),
    "graphs_b128": ("padded", "sdpa", "reduce-overhead", 128),
    "packed_b32": ("packed", "flex", "packed", 32),
    "packed_b128": ("packed", "flex", "packed", 128),
    "varlen_b32": ("packed", "varlen", "packed", 32),
    "varlen_b128": ("packed", "varlen", "packed", 128),
}
DEFAULT_ROWS = "eager_b32,eager_b128,graphs_b32,graphs_b128,packed_b32,packed_b128"
# Seconds a row may take at most, and what is kept back for each row still to come.
ROW_CAP = {None: 60, "reduce-overhead": 110, "packed": 130}
ROW_RESERVE = {None: 20, "reduce-overhead": 50, "packed": 60}


def model_config(tiny, attention_dropout=0.1):
    if tiny:
        sizes = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=256)
    else:
        sizes = dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072)
    return XLMRobertaConfig(**sizes, max_position_embeddings=514, type_vocab_size=1,
                            layer_norm_eps=1e-5, pad_token_id=PAD, bos_token_id=BOS,
                            eos_token_id=EOS, attention_probs_dropout_prob=attention_dropout)


# ---- attention for the packed layout (registered with HF's attention interface)

def varlen_reference(q, k, v, cu, scale):
    """What varlen_attn computes, one segment at a time with SDPA ([T, heads, d] layout)."""
    bounds = cu.tolist()
    out = [F.scaled_dot_product_attention(q[s:e].transpose(0, 1), k[s:e].transpose(0, 1),
                                          v[s:e].transpose(0, 1), scale=scale).transpose(0, 1)
           for s, e in zip(bounds[:-1], bounds[1:])]
    return torch.cat(out)


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     cu_seq_lens_q=None, **kwargs):
    """query/key/value [1, heads, T, d]; returns [1, T, heads, d] as HF's interfaces do. The
    mask is a flex BlockMask (flex rows) or None with cu_seq_lens_q (varlen rows)."""
    if isinstance(attention_mask, BlockMask):
        return flex_attention(query, key, value, block_mask=attention_mask,
                              scale=scaling).transpose(1, 2), None
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [T, heads, d]
    if q.is_cuda and q.dtype != torch.float32:
        from torch.nn.attention.varlen import varlen_attn
        out = varlen_attn(q, k, v, cu_seq_lens_q, cu_seq_lens_q, MAX_LEN, MAX_LEN, scale=scaling)
    else:
        out = varlen_reference(q, k, v, cu_seq_lens_q, scaling)
    return out.unsqueeze(0), None


AttentionInterface.register("sx_packed", packed_attention)


# ---- batches (built on the host before timing, in pinned memory on a GPU)

def host_batch(pairs, g, vocab_end, pin):
    """The reference's batch (same generator calls, so the same numbers), padded [2P, 128], plus
    its packed form: the texts' tokens back to back, filled with pads to a multiple of 256."""
    ids = torch.randint(5, vocab_end, (2 * pairs, MAX_LEN), generator=g)
    lengths = torch.randint(10, MAX_LEN + 1, (2 * pairs,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        ids[i, 0] = BOS
        ids[i, n - 1] = EOS
        ids[i, n:] = PAD
    y = (torch.rand(pairs, generator=g) < 0.5).float()
    real = int(lengths.sum())
    cap = -(-real // FILL_MULTIPLE) * FILL_MULTIPLE
    fill = cap - real
    flat = ids[ids.ne(PAD)]
    seg = torch.repeat_interleave(torch.arange(2 * pairs), lengths)
    pos = torch.cat([torch.arange(2, n + 2) for n in lengths.tolist()])
    # The fill: pad tokens at the padding position, one segment (index 2P) nobody pools; for
    # varlen two segments of at most 128 (one may be empty) so cu_seqlens keeps its size.
    split = min(fill, MAX_LEN)
    cu = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0),
                    torch.tensor([real + split, cap])]).int()
    b = {"ids": ids, "y": y, "lengths": lengths.float(),
         "flat": torch.cat([flat, torch.full((fill,), PAD)]),
         "pos": torch.cat([pos, torch.full((fill,), PAD)]),
         "seg": torch.cat([seg, torch.full((fill,), 2 * pairs)]), "cu": cu}
    if pin:
        b = {k: v.pin_memory() for k, v in b.items()}
    b["real_tokens"] = real
    b["sum_len_sq"] = int((lengths ** 2).sum())
    return b


def to_device(b, dev, keys):
    return {k: b[k].to(dev, non_blocking=True) for k in keys}


# ---- the step: forward + pooling + loss (what gets compiled), then backward and Adam

def dbl_loss(e, y):
    left, right = e.chunk(2)
    d = torch.sqrt(torch.clamp(((left - right) ** 2).sum(1), min=1e-7))
    p = ((1.0 + math.exp(-MARGIN)) / (1.0 + torch.exp(d - MARGIN))).clamp(1e-7, 1 - 1e-7)
    return (-(y * torch.log(p + 1e-7) + (1 - y) * torch.log(1 - p + 1e-7))).mean()


def padded_forward(model, ln, amp, ids, y):
    mask = ids.ne(PAD)
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=amp):
        h = model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    m = mask.unsqueeze(-1).float()
    e = ln((h.float() * m).sum(1) / m.sum(1))
    return dbl_loss(e, y), e


def packed_forward(model, ln, amp, attention, flat, pos, seg, cu, lengths, y):
    """flat/pos/seg [T]; lengths [2P]; y [P]. Segment 2P is the fill, never pooled."""
    texts = lengths.shape[0]
    t = flat.shape[0]
    extra = {}
    if attention == "flex":
        def same_text(b, h, q, kv):
            return seg[q] == seg[kv]
        mask = create_block_mask(same_text, None, None, t, t, device=flat.device)
    else:
        mask, extra = None, {"cu_seq_lens_q": cu}
    with torch.autocast(flat.device.type, dtype=torch.bfloat16, enabled=amp):
        h = model(input_ids=flat[None], position_ids=pos[None], attention_mask=mask,
                  **extra).last_hidden_state[0]
    sums = torch.zeros(texts + 1, h.shape[-1], device=h.device).index_add_(0, seg, h.float())
    e = ln(sums[:texts] / lengths[:, None])
    return dbl_loss(e, y), e


def build_model(cfg, attention, dev):
    model = XLMRobertaModel._from_config(cfg, attn_implementation=attention,
                                         add_pooling_layer=False).to(dev).train()
    ln = torch.nn.LayerNorm(cfg.hidden_size, eps=1e-3).to(dev)
    return model, ln


def non_embedding_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


# ---- start-up check: the packed step computes what the padded one does

def check_packed_equals_padded(dev, pairs=3, tol=1e-4):
    """Tiny config, fp32, dropout off: loss, pooled embeddings and gradients of the packed
    step (flex, and the varlen layout through its SDPA stand-in) against the padded step.
    FlexAttention has no backward on a CPU (torch 2.11): there flex is checked forward only."""
    torch.manual_seed(0)
    cfg = model_config(tiny=True)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    padded_model, ln = build_model(cfg, "sdpa", dev)
    b = host_batch(pairs, torch.Generator().manual_seed(1), cfg.vocab_size - 2, pin=False)
    b = {k: v.to(dev) for k, v in b.items() if torch.is_tensor(v)}

    def run(fn, model, backward, *inputs):
        model.zero_grad(set_to_none=True)
        ln.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(backward):
            loss, e = fn(model, ln, False, *inputs)
        if not backward:
            return loss, e, None
        loss.backward()
        grads = [p.grad.clone() for p in list(model.parameters()) + list(ln.parameters())]
        return loss.detach(), e.detach(), grads

    want = run(padded_forward, padded_model, True, b["ids"], b["y"])
    packed_model, _ = build_model(cfg, "sx_packed", dev)
    packed_model.load_state_dict(padded_model.state_dict())
    result = {"pairs": pairs, "tolerance": tol, "device": str(dev)}
    # flex_filled: with 256 more fill tokens, as the static fallback of the packed rows fills.
    filled = fill_to(b, b["flat"].numel() + FILL_MULTIPLE)
    variants = {"flex": ("flex", b), "flex_filled": ("flex", filled), "varlen": ("varlen", b)}
    for variant, (attention, x) in variants.items():
        backward = not (attention == "flex" and dev == "cpu")
        got = run(lambda m, l, a, *x: packed_forward(m, l, a, attention, *x), packed_model,
                  backward, x["flat"], x["pos"], x["seg"], x["cu"], x["lengths"], x["y"])
        diffs = {"loss": (got[0] - want[0]).abs().item(),
                 "embeddings": (got[1] - want[1]).abs().max().item()}
        if backward:
            diffs["gradients"] = max((g - w).abs().max().item() for g, w in zip(got[2], want[2]))
        result[variant] = dict(diffs, passed=all(d <= tol for d in diffs.values()))
        if not backward:
            result[variant]["gradients"] = "not checked: FlexAttention has no backward on CPU"
    result["passed"] = all(result[v]["passed"] for v in variants)
    return result


def check_compiled_packed(dev, tol=1e-4):
    """The flex packed forward compiled as the packed rows compile it (T marked dynamic) on two
    batches of different T: one compiled graph serves both, and the results equal the eager
    ones (tiny config, fp32, dropout off; forward only, as a CPU has no flex backward)."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    cfg = model_config(tiny=True)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    model, ln = build_model(cfg, "sx_packed", dev)

    def fn(flat, pos, seg, cu, lengths, y):
        return packed_forward(model, ln, False, "flex", flat, pos, seg, cu, lengths, y)

    g = torch.Generator().manual_seed(1)
    batches = [host_batch(4, g, cfg.vocab_size - 2, pin=False)]
    while len(batches) < 2:  # the same pairs (as in a row), another token count
        b = host_batch(4, g, cfg.vocab_size - 2, pin=False)
        if b["flat"].numel() != batches[0]["flat"].numel():
            batches.append(b)
    inputs = [[b[k].to(dev) for k in ("flat", "pos", "seg", "cu", "lengths", "y")]
              for b in batches]
    with torch.no_grad():
        wants = [fn(*x) for x in inputs]  # eager flex compiles a graph of its own: first
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(fn)
    result = {"tolerance": tol, "T": [x[0].numel() for x in inputs], "max_diff": 0.0}
    for x, want in zip(inputs, wants):
        for t in x[:3]:
            torch._dynamo.maybe_mark_dynamic(t, 0)
        with torch.no_grad():
            got = compiled(*x)
        result["max_diff"] = max(result["max_diff"], (want[0] - got[0]).abs().item(),
                                 (want[1] - got[1]).abs().max().item())
    result["compiled_graphs"] = counters["stats"]["unique_graphs"]
    result["passed"] = result["max_diff"] <= tol and result["compiled_graphs"] == 1
    return result


# ---- one row (run in a child process)

def row_pairs(name, tiny):
    pairs = ROWS[name][3]
    return {32: 4, 128: 8}[pairs] if tiny else pairs


def cpu_note(name, args):
    """Why (or how) a row runs differently on a CPU; None when it runs as on a GPU."""
    layout, attention, mode, _ = ROWS[name]
    if attention == "flex":
        return "skipped: FlexAttention has no backward on CPU (torch 2.11)"
    notes = []
    if attention == "varlen":
        notes.append("attention by the per-segment SDPA stand-in (varlen_attn is CUDA only)")
    if mode and not args.cpu_compile:
        notes.append("not compiled on CPU (--cpu-compile compiles; no CUDA graphs on CPU)")
    elif mode == "reduce-overhead":
        notes.append("compiled; no CUDA graphs on CPU")
    return "; ".join(notes) or None


def compile_mode(name, args):
    """The torch.compile mode a row runs under here, or None (eager)."""
    mode = ROWS[name][2]
    if mode is None or (args.device == "cpu" and not args.cpu_compile):
        return None
    return args.packed_mode if mode == "packed" else mode


def step_function(name, model, ln, amp):
    """The function a row times and compiles: forward + pooling + loss."""
    layout, attention, _, _ = ROWS[name]
    if layout == "padded":
        def fn(ids, y):
            return padded_forward(model, ln, amp, ids, y)[0]
    else:
        def fn(flat, pos, seg, cu, lengths, y):
            return packed_forward(model, ln, amp, attention, flat, pos, seg, cu, lengths, y)[0]
    return fn


def compiled(fn, name, args, dynamic=None):
    mode = compile_mode(name, args)
    if mode is None:
        return fn
    return torch.compile(fn, mode=mode, dynamic=False if mode == "reduce-overhead" else dynamic)


def fill_to(b, cap):
    """A packed batch filled with more pad tokens up to cap (flex rows: the fill is one
    segment, so cu_seqlens is not updated)."""
    out = dict(b)
    fill = cap - b["flat"].numel()
    for k, value in (("flat", PAD), ("pos", PAD), ("seg", b["lengths"].numel())):
        t = torch.cat([b[k], torch.full((fill,), value, dtype=b[k].dtype, device=b[k].device)])
        out[k] = t.pin_memory() if b[k].is_pinned() else t
    return out


def timed_steps(step, data, warmup, cuda):
    """Runs the warm-up steps, then the rest: per-step times (ms) from CUDA events recorded at
    each step's start (no sync inside the loop) or the wall clock on a CPU."""
    t0 = time.perf_counter()
    for b in data[:warmup]:
        step(b)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    warmup_s = time.perf_counter() - t0
    marks = []
    t0 = time.perf_counter()
    for b in data[warmup:]:
        if cuda:
            marks.append(torch.cuda.Event(enable_timing=True))
            marks[-1].record()
        else:
            marks.append(time.perf_counter())
        loss = step(b)
    if cuda:
        marks.append(torch.cuda.Event(enable_timing=True))
        marks[-1].record()
        torch.cuda.synchronize()
        per_step = [a.elapsed_time(b) for a, b in zip(marks[:-1], marks[1:])]
    else:
        marks.append(time.perf_counter())
        per_step = [(b - a) * 1e3 for a, b in zip(marks[:-1], marks[1:])]
    wall_ms = (time.perf_counter() - t0) * 1e3 / (len(data) - warmup)
    return per_step, wall_ms, warmup_s, loss.item()


def run_row(name, args):
    layout, attention, mode, _ = ROWS[name]
    dev, cuda, pairs = args.device, args.device == "cuda", row_pairs(name, args.tiny)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = model_config(args.tiny, attention_dropout=0.0 if attention == "flex" else 0.1)
    model, ln = build_model(cfg, "sdpa" if layout == "padded" else "sx_packed", dev)
    params = list(model.parameters()) + list(ln.parameters())
    opt = torch.optim.Adam(params, lr=5e-5, eps=1e-7, fused=True)
    raw = step_function(name, model, ln, cuda)
    # Packed rows: T (a multiple of 256) marked dynamic, so that one compile serves them all.
    dynamic = layout == "packed" and compile_mode(name, args) is not None
    state = {"fn": compiled(raw, name, args), "shapes": "dynamic" if dynamic else None}
    keys = ["ids", "y"] if layout == "padded" else ["flat", "pos", "seg", "cu", "lengths", "y"]
    graphs = mode == "reduce-overhead" and cuda

    def step(b):
        x = to_device(b, dev, keys)
        if state["shapes"] == "dynamic":
            for k in ("flat", "pos", "seg"):
                torch._dynamo.maybe_mark_dynamic(x[k], 0)
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss = state["fn"](*(x[k] for k in keys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    g = torch.Generator().manual_seed(1)
    vocab_end = min(250000, cfg.vocab_size - 2)
    data = [host_batch(pairs, g, vocab_end, pin=cuda) for _ in range(args.warmup + args.steps)]
    t0 = time.perf_counter()
    try:
        step(data[0])  # the first warm-up step: the compile
    except Exception as e:
        if attention != "flex" or compile_mode(name, args) is None:
            raise
        # Should the dynamic-shape compile fail: every batch filled to the longest, one shape.
        print(f"{name}: compile with a dynamic token count failed ({type(e).__name__}: "
              f"{str(e)[:300]}); compiling for one fixed token count", flush=True)
        torch._dynamo.reset()
        cap = max(b["flat"].numel() for b in data)
        data = [fill_to(b, cap) for b in data]
        state.update(fn=compiled(raw, name, args, dynamic=False),
                     shapes=f"static {cap} (dynamic failed: {type(e).__name__}: {str(e)[:300]})")
        step(data[0])
    first_s = time.perf_counter() - t0
    per_step, wall_ms, warmup_s, loss = timed_steps(step, data[1:], args.warmup - 1, cuda)
    extra = dict(warmup_s=first_s + warmup_s, loss=loss, packed_shapes=state["shapes"],
                 attention_dropout=cfg.attention_probs_dropout_prob,
                 peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else None)
    return row_result(name, pairs, cfg, non_embedding_params(model), data[args.warmup:],
                      per_step, wall_ms, extra, args)


def peak_tflops(args):
    if args.peak_tflops:
        return args.peak_tflops
    if args.device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAKS if key in name), None)


def compile_stats():
    from torch._dynamo.utils import counters
    return {"compiled_graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values()),
            "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}


def row_result(name, pairs, cfg, n_nonemb, timed, per_step, wall_ms, extra, args):
    layout, attention, mode, _ = ROWS[name]
    ms = statistics.median(per_step)
    real = statistics.mean(b["real_tokens"] for b in timed)
    sum_sq = statistics.mean(b["sum_len_sq"] for b in timed)
    layers, hidden, texts = cfg.num_hidden_layers, cfg.hidden_size, 2 * pairs
    real_flops = 6 * n_nonemb * real + 12 * layers * hidden * sum_sq
    padded = layout == "padded"
    computed = texts * MAX_LEN if padded else statistics.mean(b["flat"].numel() for b in timed)
    padded_flops = 6 * n_nonemb * texts * MAX_LEN + 12 * layers * hidden * texts * MAX_LEN ** 2
    peak = peak_tflops(args)
    real_tf = real_flops / ms / 1e9
    r = {"row": name, "layout": layout, "attention": attention,
         "compile": compile_mode(name, args),
         "pairs": pairs, "step_ms": ms, "step_ms_wall": wall_ms, "step_ms_min": min(per_step),
         "steps": len(per_step), "pairs_per_s": pairs / ms * 1e3,
         "real_tokens_per_step": real, "padded_tokens_per_step": computed,
         "padded_equiv_tflops_per_s": padded_flops / ms / 1e9 if padded else None,
         "real_tflops_per_s": real_tf, "mfu": real_tf / peak if peak else None,
         "peak_tflops": peak, "n_nonemb_params": n_nonemb, "device": args.device}
    r.update(extra)
    if r["compile"] is not None:
        r.update(compile_stats())
    if args.device == "cpu":
        r["cpu_note"] = cpu_note(name, args)
    return r


# ---- the parent: the check, then each row in a child with a time limit, then the table

def row_limit(names, i, started, args):
    """Seconds row i may take: its cap, less what the rows after it keep back, but at least
    its own reserve while the budget lasts."""
    scale = 1 if args.device == "cuda" else 3  # 2 shared cores here
    left = args.budget - (time.monotonic() - started)
    keep = sum(ROW_RESERVE[ROWS[n][2]] for n in names[i + 1:])
    mode = ROWS[names[i]][2]
    return min(ROW_CAP[mode] * scale, max(left - keep, min(left, ROW_RESERVE[mode])))


RUNNING = []  # the row's child process, while one runs


def end_child(child):
    """Ends a row's child and what it started (inductor's compile workers): its process group."""
    os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def on_term(signum, frame):
    """timeout(1) ends the parent: end the row's child too (it has a process group of its own,
    which timeout's signal does not reach), then stop."""
    for child in RUNNING:
        os.killpg(child.pid, signal.SIGKILL)
    sys.exit(128 + signum)


def run_child(name, limit, args):
    """Runs one row in a child process (its own process group, ended by its id if it runs out
    of time) and returns its result, or what went wrong."""
    path = os.path.join(args.out, "rows", name + ".json")
    if os.path.exists(path):
        os.remove(path)
    command = [sys.executable, os.path.abspath(__file__), args.out, "--row", name,
               "--device", args.device, "--warmup", str(args.warmup), "--steps", str(args.steps),
               "--packed-mode", args.packed_mode]
    command += ["--tiny"] * args.tiny + ["--cpu-compile"] * args.cpu_compile
    command += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    child = subprocess.Popen(command, process_group=0)
    RUNNING.append(child)
    try:
        code = child.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        end_child(child)
        return {"row": name, "pairs": row_pairs(name, args.tiny),
                "error": f"timed out after {limit:.0f} s (its time limit)"}
    finally:
        RUNNING.remove(child)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"row": name, "pairs": row_pairs(name, args.tiny),
            "error": f"the row's process exited {code} without a result"}


def child_main(args):
    name = args.row
    if args.device == "cpu" and (cpu_note(name, args) or "").startswith("skipped"):
        result = {"row": name, "pairs": row_pairs(name, args.tiny), "skipped":
                  cpu_note(name, args)}
    else:
        try:
            result = run_row(name, args)
        except Exception as e:  # reported in the row, the other rows still run
            result = {"row": name, "pairs": row_pairs(name, args.tiny),
                      "error": f"{type(e).__name__}: {str(e)[:1500]}"}
    print("peers_row", json.dumps(result), flush=True)
    os.makedirs(os.path.join(args.out, "rows"), exist_ok=True)
    with open(os.path.join(args.out, "rows", name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def table(rows):
    lines = ["| row | pairs | step ms | pairs/s | real tokens | padded tokens | TFLOP/s "
             "padded-equivalent | TFLOP/s real | MFU (real) | peak GiB | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        note = r.get("error") or r.get("skipped") or r.get("cpu_note") or ""
        lines.append(
            f"| {r['row']} | {r.get('pairs', '')} | {fmt(r.get('step_ms'), '.2f')} | "
            f"{fmt(r.get('pairs_per_s'), '.1f')} | {fmt(r.get('real_tokens_per_step'), '.0f')} | "
            f"{fmt(r.get('padded_tokens_per_step'), '.0f')} | "
            f"{fmt(r.get('padded_equiv_tflops_per_s'), '.4g')} | "
            f"{fmt(r.get('real_tflops_per_s'), '.4g')} | "
            f"{fmt(r.get('mfu') and 100 * r['mfu'], '.1f')}{'%' if r.get('mfu') else ''} | "
            f"{fmt(r.get('peak_mem_gib'), '.2f')} | {note[:120]} |")
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for bench.json and rows/")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true",
                        help="2 layers, hidden 64, vocab 1000; 4 and 8 pairs for the b32/b128 rows")
    parser.add_argument("--rows", help=f"comma-separated, of {', '.join(ROWS)} (default: "
                        f"{DEFAULT_ROWS}; on a CPU the varlen rows too)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--budget", type=float, help="seconds for all rows (default 330 on a "
                        "GPU, 900 on a CPU); each row also has its own cap")
    parser.add_argument("--packed-mode", default="default",
                        help="torch.compile mode of the packed rows (default, "
                        "max-autotune-no-cudagraphs, ...)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak for the MFU")
    parser.add_argument("--cpu-compile", action="store_true",
                        help="on a CPU, compile the rows that compile on a GPU")
    parser.add_argument("--check-compile", action="store_true",
                        help="also check the compiled flex packed forward against the eager one "
                        "on the tiny config, and that one compile serves two token counts")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # a child runs this one row
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "bench_gpu_peers.py: --device cuda but torch.cuda.is_available() is "
                    "False (use --device cpu --tiny to check the script on a CPU)\n")
    names = (args.rows or DEFAULT_ROWS + (",varlen_b32,varlen_b128" if args.device == "cpu"
                                          else "")).split(",")
    unknown = [n for n in names if n not in ROWS]
    if unknown or (args.row and args.row not in ROWS):
        parser.exit(2, f"bench_gpu_peers.py: --rows: unknown row {unknown or args.row}; "
                    f"expected some of {', '.join(ROWS)}\n")
    args.names = names
    if args.warmup < 1 or args.steps < 1:
        parser.exit(2, f"bench_gpu_peers.py: --warmup {args.warmup} --steps {args.steps}: "
                    "expected at least 1 each (the first warm-up step compiles)\n")
    if args.budget is None:
        args.budget = 330 if args.device == "cuda" else 900
    return args


def main():
    args = parse_args()
    if args.row:
        return child_main(args)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, on_term)
    os.makedirs(args.out, exist_ok=True)
    import transformers
    results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
               "torch": torch.__version__, "transformers": transformers.__version__,
               "tiny": args.tiny, "warmup": args.warmup, "steps": args.steps,
               "budget_s": args.budget, "rows": []}
    try:
        results["check"] = check_packed_equals_padded(args.device)
    except Exception as e:
        results["check"] = {"passed": False, "error": f"{type(e).__name__}: {str(e)[:1500]}"}
    print("peers_check", json.dumps(results["check"]), flush=True)
    if args.check_compile:
        try:
            results["compile_check"] = check_compiled_packed(args.device)
        except Exception as e:
            results["compile_check"] = {"passed": False,
                                        "error": f"{type(e).__name__}: {str(e)[:1500]}"}
        print("peers_compile_check", json.dumps(results["compile_check"]), flush=True)

    def save():
        with open(os.path.join(args.out, "bench.json"), "w") as f:
            json.dump(results, f, indent=1)
    for i, name in enumerate(args.names):
        limit = row_limit(args.names, i, started, args)
        print(f"=== peers row {name} (limit {limit:.0f} s)", flush=True)
        if limit < 10:
            result = {"row": name, "pairs": row_pairs(name, args.tiny),
                      "skipped": "out of time (--budget)"}
        else:
            result = run_child(name, limit, args)
        results["rows"].append(result)
        save()
    results["total_s"] = time.monotonic() - started
    save()
    print(f"\n{results['device']}, torch {results['torch']}, transformers "
          f"{results['transformers']}; packed-vs-padded check "
          f"{'passed' if results['check'].get('passed') else 'FAILED'}"
          + ("" if "compile_check" not in results else ", compiled: " + (
              "passed" if results["compile_check"].get("passed") else "FAILED")) + "; "
          f"{results['total_s']:.0f} s\n")
    print(table(results["rows"]))
    checks = [results["check"], results.get("compile_check", {"passed": True})]
    return 0 if all(c.get("passed") for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
