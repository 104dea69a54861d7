#!/usr/bin/env python3
"""tools/bench_gpu_peers.py on the CPU with its tiny config (--device cpu --tiny), so that the
script a GPU call runs once is known to work before device time is spent on it:
- its start-up check passed: the packed step (flex attention forward, also with more fill
  tokens; the varlen layout forward and backward) gives the padded step's loss and pooled
  embeddings (and gradients) within 1e-4;
- every row is in bench.json in order; each one a CPU can run was measured (a step time, the
  token counts, TFLOP/s as the script's docstring counts them), the flex rows say why a CPU
  cannot run them (FlexAttention has no backward on a CPU);
- the markdown table was printed.
Exit status: 0 pass, 1 fail, 77 skipped (this Python lacks torch or transformers).
Usage: PYTHON tests/hf/test_bench_gpu_peers.py TOOL [--cpu-compile]"""
import json
import math
import os
import subprocess
import sys
import tempfile

ROWS = ["eager_b32", "eager_b128", "graphs_b32", "graphs_b128", "packed_b32", "packed_b128",
        "varlen_b32", "varlen_b128"]
PAIRS = {"b32": 4, "b128": 8}  # --tiny's


def check_row(r, failures):
    name = r["row"]
    if name.startswith("packed_"):
        if "FlexAttention" not in r.get("skipped", ""):
            failures.append(f"{name}: expected 'skipped: ... FlexAttention ...' on a CPU, got {r}")
        return
    if "error" in r or "skipped" in r:
        failures.append(f"{name}: did not run: {r.get('error') or r.get('skipped')}")
        return
    pairs = PAIRS[name.split("_")[1]]
    padded = not name.startswith("varlen_")
    expect = [
        (r["pairs"] == pairs, f"pairs {r['pairs']} != {pairs}"),
        (r["step_ms"] > 0 and r["steps"] == 3, f"step_ms {r['step_ms']}, steps {r['steps']}"),
        (abs(r["pairs_per_s"] - pairs / r["step_ms"] * 1e3) < 1e-6 * r["pairs_per_s"],
         "pairs_per_s is not pairs / step time"),
        (20 * pairs <= r["real_tokens_per_step"] <= 2 * pairs * 128, "real tokens out of range"),
        (r["real_tokens_per_step"] <= r["padded_tokens_per_step"], "more real than padded tokens"),
        (math.isfinite(r["loss"]), f"loss {r['loss']}"),
        (r["real_tflops_per_s"] > 0, "no real TFLOP/s"),
        (r["mfu"] is None and r["peak_tflops"] is None, "an MFU on a CPU"),
    ]
    if padded:
        expect += [(r["padded_tokens_per_step"] == 2 * pairs * 128, "padded tokens != 2P x 128"),
                   (r["padded_equiv_tflops_per_s"] > r["real_tflops_per_s"],
                    "padded-equivalent TFLOP/s not above the real ones")]
    else:
        expect += [(r["padded_tokens_per_step"] - r["real_tokens_per_step"] < 256,
                    "more than 255 fill tokens a step (T is filled to a multiple of 256)"),
                   (r["padded_equiv_tflops_per_s"] is None, "padded-equivalent on a packed row"),
                   ("stand-in" in (r.get("cpu_note") or ""), "no note on the CPU stand-in")]
    failures += [f"{name}: {why}" for ok, why in expect if not ok]


def main():
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, tool, out, "--device", "cpu", "--tiny", "--warmup", "1",
                   "--steps", "3", "--budget", "420", *sys.argv[2:]]  # within CTest's 600 s
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode == 77:
            print(run.stdout.strip())
            return 77
        print(run.stdout[-6000:])
        failures = [] if run.returncode == 0 else [f"exit status {run.returncode}: "
                                                   f"{run.stderr[-3000:]}"]
        path = os.path.join(out, "bench.json")
        if not os.path.exists(path):
            print("FAIL: no bench.json", *failures, sep="\n")
            return 1
        with open(path) as f:
            bench = json.load(f)
    check = bench.get("check", {})
    variants = [v for v in check.values() if isinstance(v, dict)]
    if not (check.get("passed") and len(variants) == 3 and all(v["passed"] for v in variants)):
        failures.append(f"packed-vs-padded check did not pass: {check}")
    names = [r["row"] for r in bench["rows"]]
    if names != ROWS:
        failures.append(f"rows {names}, expected {ROWS}")
    for r in bench["rows"]:
        check_row(r, failures)
    if "| row | pairs | step ms |" not in run.stdout:
        failures.append("no markdown table printed")
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
