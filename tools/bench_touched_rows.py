"""Zeroing + finiteness check of an XLM-R-base-shaped flat gradient buffer on the CPU: the whole
buffer (train.touched_rows_only: false) vs the dense part + the touched rows (true), with the
ATen ops of src/train/touched_rows.cpp. Usage: python tools/bench_touched_rows.py [threads]
(run under the CPU lock; compare the ratio, the times are noisy on shared cores)."""
import sys, time
if len(sys.argv) > 1 and not sys.argv[1].isdigit():  # --help, or not a thread count
    sys.exit(__doc__)
try:
    import torch
except ImportError:
    sys.exit(f"bench_touched_rows: {sys.executable} lacks torch: run it with the venv's python "
             "(launch/install-py-deps.sh)")
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
V, H = 250002, 768
dense = 277_500_000 - V * H + 2  # about XLM-R base's parameters but the word embeddings, + 2 slots
buf = torch.zeros(dense + V * H)
emb = buf.narrow(0, dense - 2, V * H).view(V, H)  # last in layout but for the slots (as the flat buffer)
def full():
    buf.zero_()
    return torch.isfinite(buf.sum()).logical_not().float()
def rows_only(rows):
    buf.narrow(0, 0, dense - 2).zero_(); buf.narrow(0, dense - 2 + V * H, 2).zero_()
    emb.index_fill_(0, rows, 0.0)
    s = torch.stack([buf.narrow(0, 0, dense - 2).sum(), emb.index_select(0, rows).sum()])
    return torch.isfinite(s).logical_not().any().float()
def best(f, n=7):
    t = []
    for _ in range(n):
        a = time.perf_counter(); f(); t.append(time.perf_counter() - a)
    return min(t) * 1e3
g = torch.Generator().manual_seed(0)
for pairs in (32, 128):
    tokens = pairs * 2 * 69  # lengths uniform in [10, 128]: 69 tokens on average
    rows = torch.randint(5, 250000, (tokens,), generator=g).unique()
    f, r = best(full), best(lambda: rows_only(rows))
    print(f"pairs {pairs}: {rows.numel()} rows touched; whole buffer {f:.1f} ms, dense + rows {r:.1f} ms, ratio {f / r:.2f}x")
