#!/usr/bin/env python3
"""The network model of docs/performance.md against tools/bench_network.sh's measurements.

Usage: network_model.py CONFIG.json RESULTS_DIR RATE...   (RATE as tc takes it: 100mbit, off)

For each link rate and wire type, medians over the repeats of 2 hosts x 1 rank: the step, the
network's cost in it (the step less the step on the unshaped link, T), and rank 0's exposed
all-reduce (bench train's split_ms.allreduce). Against them, for that rate and that T:
  doc:  the model as docs/performance.md had it: network = t(rows) + max(0, t(dense) - f T),
        f = 0.6, t(S) = 2 (n-1)/n S / B (a ring);
  new:  the corrected one for the CPU path: Open MPI's non-blocking in-place all-reduce is a
        binomial reduce then broadcast, 2 ceil(log2 n) S / B on the critical path, and nothing
        overlaps backward when the model fits one bucket (train.bucket_mb); each collective
        (the dense bucket, the rows) pays for its bytes beyond the shaper's token bucket b
        (cluster.sh: 1 ms at the rate, which lets a message's start pass at once); latencies
        per collective are part of T.
"""
import glob
import json
import math
import statistics
import sys


def dense_and_vocab(config):
    """(parameters outside the word embeddings, hidden size, vocabulary) of an HF XLM-R config."""
    c = json.load(open(config))
    h, i, layers, v = (c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                       c["vocab_size"])
    embeddings = (c["max_position_embeddings"] + c.get("type_vocab_size", 1)) * h + 2 * h
    layer = 4 * (h * h + h) + 2 * h + (h * i + i + i * h + h) + 2 * h
    pooling = 2 * h
    return embeddings + layers * layer + pooling, h, v


def expected_rows(vocab, ranks, pairs, max_len, min_len=10):
    """Rows of the union of the ranks' batches: bench train draws ids uniformly from [5, vocab)
    between <s> and </s>, lengths uniformly from [min_len, max_len]."""
    draws = ranks * 2 * pairs * ((min_len + max_len) / 2 - 2)
    ids = min(vocab, 250000) - 5
    return ids * (1 - math.exp(-draws / ids)) + 2


def rate_bytes(rate):
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, scale in units.items():
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * scale / 8
    return None  # "off": the veth's own speed


def burst_bytes(rate_b):
    """The token bucket tests/cluster/cluster.sh gives a link: 1 ms at the rate, >= 2 frames."""
    return max(rate_b / 1000, 3028)


def setting(folder, name):
    """Medians over the repeats of (step ms, exposed all-reduce ms, pairs per rank, max_len)."""
    runs = [json.load(open(p)) for p in sorted(glob.glob(f"{folder}/{name}-*.json"))]
    if not runs:
        sys.exit(f"network_model: no {folder}/{name}-*.json")
    first = runs[0]["settings"][0]
    med = lambda xs: statistics.median(xs)
    return (med([r["settings"][0]["step_ms"] for r in runs]),
            med([r["settings"][0]["split_ms"]["allreduce"] for r in runs]),
            first["pairs_per_rank"], runs[0]["max_len"], len(runs))


def main():
    if len(sys.argv) < 4 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    config, folder, *rates = sys.argv[1:]
    dense, hidden, vocab = dense_and_vocab(config)
    one_step, _, pairs, max_len, repeats = setting(folder, "one-rank")
    ranks = 2
    rows = expected_rows(vocab, ranks, pairs, max_len)
    print(f"model: {dense} parameters besides the {vocab} x {hidden} word embeddings; {pairs} "
          f"pairs per rank, max_len {max_len}: about {rows:.0f} rows touched per step; 1 rank "
          f"alone {one_step:.1f} ms per step; medians of {repeats} runs")
    print("| link | wire | bytes S | step ms | network ms | rank 0 exposed ms "
          "| doc: network ms, step | new: network ms, step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for wire in ("fp32", "bf16"):
        base, _, _, _, _ = setting(folder, f"off-{wire}")
        size = 4 if wire == "fp32" else 2
        collectives = [size * dense + 8, size * rows * hidden]  # + the loss and token slots
        bytes_ = sum(collectives)
        for rate in rates:
            step, exposed, _, _, _ = setting(folder, f"{rate}-{wire}")
            b = rate_bytes(rate)
            measured = step - base
            head = (f"| {rate} | {wire} | {bytes_ / 1e3:.0f} KB | {step:.1f} | {measured:.1f} "
                    f"| {exposed:.1f} ")
            if b is None:
                print(head + "| (T) | (T) |")
                continue
            t = lambda n_bytes: n_bytes / b * 1e3  # ms; 2 (n-1)/n = 1 for n = 2
            doc = t(collectives[1]) + max(0.0, t(collectives[0]) - 0.6 * base)
            rounds = 2 * math.ceil(math.log2(ranks))
            new = sum(rounds * t(max(0.0, c - burst_bytes(b))) for c in collectives)
            cell = lambda net: f"{net:.1f}, {base + net:.1f} ({(base + net) / step - 1:+.0%})"
            print(head + f"| {cell(doc)} | {cell(new)} |")


if __name__ == "__main__":
    main()
