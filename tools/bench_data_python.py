#!/usr/bin/env python3
"""The notebook's way of loading and tokenizing, for comparison with `siamese-xlmr bench data`:
a csv-module loop over the English file (label = max of the label fields >= 0.5, undecodable
bytes ignored) and, per text, NLTK's wordpunct split (re.findall(r'\\w+|[^\\w\\s]+')) with each
word encoded by sentencepiece (Debian's python3-sentencepiece), <s> ... </s>, cut to 128.

Usage: /usr/bin/python3 tools/bench_data_python.py CSV SPM_MODEL [--texts 200000]
"""
import argparse
import csv
import json
import re
import sys
import time

import sentencepiece as spm

LABELS = ["toxic", "severe_toxicity", "obscene", "identity_attack", "insult", "threat"]
WORDPUNCT = re.compile(r"\w+|[^\w\s]+")


def load(path):
    csv.field_size_limit(sys.maxsize)
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="ignore", newline="") as f:
        for row in csv.DictReader(f):
            texts.append(row["comment_text"])
            labels.append(1 if max(float(row[k]) for k in LABELS) >= 0.5 else 0)
    return texts, labels


def tokenize(sp, text, maxlen=128):
    ids = [0]
    for word in WORDPUNCT.findall(text):
        ids.extend(i + 1 for i in sp.encode(word))
        if len(ids) > maxlen:
            break
    ids.append(2)
    return ids[:maxlen]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("spm_model")
    p.add_argument("--texts", type=int, default=200000)
    a = p.parse_args()
    t0 = time.perf_counter()
    texts, _ = load(a.csv)
    load_s = time.perf_counter() - t0
    sp = spm.SentencePieceProcessor(model_file=a.spm_model)
    n = min(a.texts, len(texts))
    t0 = time.perf_counter()
    for t in texts[:n]:
        tokenize(sp, t)
    tok_s = time.perf_counter() - t0
    print(f"python csv load: {len(texts)} rows in {load_s:.2f} s = {len(texts) / load_s:.0f} rows/s")
    print(f"python tokenize (1 thread): {n} texts in {tok_s:.2f} s = {n / tok_s:.0f} texts/s")
    print(json.dumps({"rows": len(texts), "load_s": round(load_s, 3), "texts": n, "tokenize_s": round(tok_s, 3)}))


if __name__ == "__main__":
    main()
