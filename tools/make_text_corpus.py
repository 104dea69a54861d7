#!/usr/bin/env python3
"""A corpus of real multilingual text for `siamese-xlmr bench data` (the default corpus of
`bench data`, see docs/performance.md), and a sentencepiece model trained on it.

The texts are Debian's package descriptions and their human translations (the
Translation-LANG files that `apt-get -o Acquire::Languages=... update` fetches): one text per
description (the short description, a line break, then the long description, its paragraphs
separated by blank lines), duplicates dropped. By default Jigsaw's languages (en, es, it, tr,
fr, pt, ru) and the other European ones Debian has many translations of: about 222k texts
(448 bytes each on average) and 362k distinct words (NLTK wordpunct words), a vocabulary with
a natural long tail, unlike the synthesized corpus's 148 distinct words.

Writes OUT_DIR/texts.csv (columns lang,text; RFC 4180) and, unless --no-model,
OUT_DIR/spm.model: spm_train's unigram model (XLM-R's kind) of --vocab-size pieces.
Fetching the lists needs root (apt-get update); pass --no-update to use the lists already
in /var/lib/apt/lists. Training takes a few minutes on two cores: on a shared machine run it
under the CPU lock (flock /tmp/sx-cpu.lock tools/make_text_corpus.py runs/text-corpus).

Usage: tools/make_text_corpus.py OUT_DIR [--langs en,de,es,...] [--no-update]
       [--vocab-size 32000] [--no-model]
Standard library only (any python3).
"""
import argparse
import csv
import glob
import os
import subprocess
import sys
import tempfile

LISTS = "/var/lib/apt/lists"
APT_HELPER = "/usr/lib/apt/apt-helper"


def translation_files(lang):
    """The lists' Translation-LANG files of every suite, as apt keeps them (compressed or
    not; apt writes '_' in a file name as %5f)."""
    name = "Translation-" + lang.replace("_", "%5f")
    return sorted(f for f in glob.glob(os.path.join(LISTS, "*_i18n_" + name + "*"))
                  if os.path.basename(f).split("_i18n_")[1].split(".")[0] == name)


def read_list(path):
    """The text of an apt list, decompressed by apt itself (lz4, gz, xz or plain)."""
    out = subprocess.run([APT_HELPER, "cat-file", path], check=True, capture_output=True)
    return out.stdout.decode("utf-8", errors="replace")


def descriptions(text, lang):
    """Each record's description: the short one, then the long one's paragraphs."""
    key = f"Description-{lang}:"
    for record in text.split("\n\n"):
        short, paragraphs, current, inside = None, [], [], False
        for line in record.split("\n"):
            if line.startswith(key):
                short, inside = line[len(key):].strip(), True
            elif inside and line.startswith(" "):
                if line.strip() == ".":  # a paragraph break
                    paragraphs.append(" ".join(current))
                    current = []
                else:
                    current.append(line.strip())
            else:
                inside = False
        if current:
            paragraphs.append(" ".join(current))
        if short:
            yield short + "\n" + "\n\n".join(p for p in paragraphs if p)


def fetch_lists(langs):
    cmd = ["apt-get", "-o", "Acquire::Languages=" + ",".join(langs), "update"]
    print("fetching the translations:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def write_texts(out_dir, langs):
    seen, counts = set(), {}
    path = os.path.join(out_dir, "texts.csv")
    with open(path + ".tmp", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["lang", "text"])
        for lang in langs:
            for list_file in translation_files(lang):
                for text in descriptions(read_list(list_file), lang):
                    if text not in seen:
                        seen.add(text)
                        w.writerow([lang, text])
                        counts[lang] = counts.get(lang, 0) + 1
    os.replace(path + ".tmp", path)
    print(f"{path}: {sum(counts.values())} texts", counts)
    return path


def train_model(out_dir, texts_csv, vocab_size):
    """spm_train on the texts' lines: a unigram model, NFKC normalization, as XLM-R's."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as lines:
        with open(texts_csv, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                for line in row["text"].split("\n"):
                    if line.strip():
                        lines.write(line + "\n")
    try:
        subprocess.run(
            ["spm_train", "--input=" + lines.name,
             "--model_prefix=" + os.path.join(out_dir, "spm"), "--model_type=unigram",
             f"--vocab_size={vocab_size}", "--character_coverage=0.9995",
             "--input_sentence_size=2000000", "--shuffle_input_sentence=true",
             "--num_threads=2"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        os.unlink(lines.name)
    print(os.path.join(out_dir, "spm.model"), f"({vocab_size} pieces)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--langs", default="en,de,es,it,tr,fr,pt,ru,da,sk,pl,uk,cs,pt_BR")
    p.add_argument("--no-update", action="store_true", help="use the lists already fetched")
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--no-model", action="store_true", help="write texts.csv only")
    a = p.parse_args()
    langs = a.langs.split(",")
    missing = [lang for lang in langs if not translation_files(lang)]
    if missing and not a.no_update:
        fetch_lists(langs)
        missing = [lang for lang in langs if not translation_files(lang)]
    if missing:
        sys.exit(f"no Translation-{','.join(missing)} list in {LISTS}: run without --no-update "
                 "(as root), or leave those languages out of --langs")
    os.makedirs(a.out_dir, exist_ok=True)
    texts = write_texts(a.out_dir, langs)
    if not a.no_model:
        train_model(a.out_dir, texts, a.vocab_size)


if __name__ == "__main__":
    main()
