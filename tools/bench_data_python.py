#!/usr/bin/env python3
"""The notebook's way of loading and tokenizing, for comparison with `siamese-xlmr bench data`:
a csv-module loop over the English file (label = max of the label fields >= 0.5, undecodable
bytes ignored, texts stripped) and, per text, NLTK's wordpunct split
(re.findall(r'\\w+|[^\\w\\s]+')) with each word encoded by sentencepiece (Debian's
python3-sentencepiece), <s> ... </s>, cut to 128.

--hf: also HF's fast tokenizer (the `tokenizers` library behind transformers'
XLMRobertaTokenizerFast, built from the same sentencepiece model): whole texts, batch
encoding, cut to 128, on all threads (RAYON_NUM_THREADS if set). Needs tokenizers and
transformers (the project's .venv has them); without them it says so and goes on.
--setup: the phases of the data set-up that Python has (loading the three files next to CSV:
validation.csv and test.csv; tokenizing as many texts as the C++ set-up's first epoch).
--cpp FILE: the output of the matching `siamese-xlmr bench data` run; prints the ratios.
(`siamese-xlmr bench data --compare PYTHON` runs this script itself and prints them.)

Usage: /usr/bin/python3 tools/bench_data_python.py CSV SPM_MODEL [--texts 200000] [--hf]
       [--setup] [--cpp CPP_OUTPUT]
"""
import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time

import sentencepiece as spm

LABELS = ["toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"]
WORDPUNCT = re.compile(r"\w+|[^\w\s]+")


def load(path, text_field="comment_text", labels=LABELS):
    csv.field_size_limit(sys.maxsize)
    texts, out_labels = [], []
    with open(path, encoding="utf-8", errors="ignore", newline="") as f:
        for row in csv.DictReader(f):
            text = row[text_field].strip()
            if not text:
                continue
            texts.append(text)
            if labels:
                out_labels.append(1 if max(float(row[k]) for k in labels) >= 0.5 else 0)
    return texts, out_labels


def tokenize(sp, text, maxlen=128):
    ids = [0]
    for word in WORDPUNCT.findall(text):
        ids.extend(i + 1 for i in sp.encode(word))
        if len(ids) > maxlen:
            break
    ids.append(2)
    return ids[:maxlen]


def hf_fast_tokenizer(spm_model):
    """XLMRobertaTokenizerFast from the sentencepiece model (HF converts it on loading a
    directory holding it as sentencepiece.bpe.model), or None with the reason printed."""
    try:
        from transformers import XLMRobertaTokenizerFast
    except ImportError as e:
        print(f"HF tokenizers: not timed ({e}; {sys.executable} lacks transformers)")
        return None
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(spm_model, os.path.join(d, "sentencepiece.bpe.model"))
        return XLMRobertaTokenizerFast.from_pretrained(d)


def time_hf(spm_model, texts):
    """Seconds for HF's fast tokenizer to encode the texts in one batch, and its threads."""
    tok = hf_fast_tokenizer(spm_model)
    if tok is None:
        return None, 0
    backend = tok.backend_tokenizer
    backend.enable_truncation(max_length=128)
    t0 = time.perf_counter()
    backend.encode_batch(texts)
    seconds = time.perf_counter() - t0
    return seconds, int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count())


def cpp_results(path):
    """The JSON lines of a `siamese-xlmr bench data` output, merged."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.update(json.loads(line))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("spm_model")
    p.add_argument("--texts", type=int, default=200000)
    p.add_argument("--hf", action="store_true", help="also time HF's fast tokenizer")
    p.add_argument("--load-repeats", type=int, default=1,
                   help="time the CSV load this many times and keep the fastest")
    p.add_argument("--setup", action="store_true")
    p.add_argument("--cpp")
    a = p.parse_args()
    sp = spm.SentencePieceProcessor(model_file=a.spm_model)
    result = {}
    load_s = None
    for _ in range(max(1, a.load_repeats)):  # the fastest, as timeit reports
        texts = None
        t0 = time.perf_counter()
        texts, _ = load(a.csv)
        s = time.perf_counter() - t0
        load_s = s if load_s is None else min(load_s, s)
    if a.setup:
        d = os.path.dirname(a.csv)
        t1 = time.perf_counter()
        load(os.path.join(d, "validation.csv"), labels=["toxic"])
        load(os.path.join(d, "test.csv"), text_field="content", labels=[])
        all_s = load_s + time.perf_counter() - t1
        print(f"python set-up: load (3 files) {all_s:.2f} s")
        result["setup_load_s"] = round(all_s, 3)
    n = min(a.texts, len(texts))
    t0 = time.perf_counter()
    for t in texts[:n]:
        tokenize(sp, t)
    tok_s = time.perf_counter() - t0
    print(f"python csv load (fastest of {max(1, a.load_repeats)}): {len(texts)} rows in {load_s:.3f} s = "
          f"{len(texts) / load_s:.0f} rows/s")
    print(f"python tokenize (1 thread): {n} texts in {tok_s:.2f} s = {n / tok_s:.0f} texts/s")
    result.update({"rows": len(texts), "load_s": round(load_s, 3), "texts": n,
                   "tokenize_s": round(tok_s, 3)})
    if a.hf:
        hf_s, hf_threads = time_hf(a.spm_model, texts[:n])
        if hf_s is not None:
            print(f"HF tokenizers (XLMRobertaTokenizerFast, whole texts, batch, {hf_threads} "
                  f"threads): {n} texts in {hf_s:.2f} s = {n / hf_s:.0f} texts/s")
            result.update({"hf_tokenize_s": round(hf_s, 3), "hf_threads": hf_threads})
    print(json.dumps(result))
    if a.cpp:
        c = cpp_results(a.cpp)
        if "load_s" in c:
            print(f"ratio csv load: {load_s / c['load_s']:.1f}x")
        if "tokenize_s" in c:
            print(f"ratio tokenize (texts/s): {(c['texts'] / c['tokenize_s']) / (n / tok_s):.1f}x")
            if "hf_tokenize_s" in result:
                hf_rate = n / result["hf_tokenize_s"]
                print(f"ratio tokenize (texts/s) to HF tokenizers: "
                      f"{(c['texts'] / c['tokenize_s']) / hf_rate:.2f}x (notebook ids)"
                      + (f", {(c['texts'] / c['tokenize_whole_s']) / hf_rate:.2f}x (whole text)"
                         if "tokenize_whole_s" in c else ""))
        if "setup" in c and "setup_load_s" in result:
            print(f"ratio set-up load (3 files): {result['setup_load_s'] / c['setup']['load']:.1f}x")
            if "tokenize" in c["setup"] and "tokenize_texts" in c["setup"]:
                cpp_rate = c["setup"]["tokenize_texts"] / c["setup"]["tokenize"]
                print(f"ratio set-up tokenize (texts/s): {cpp_rate / (n / tok_s):.1f}x")


if __name__ == "__main__":
    main()
