#!/usr/bin/env python3
"""Counts the CSV rows that the notebook's reader splits and siamese-xlmr keeps whole.

The notebook reads its CSV files through codecs.open(..., encoding='utf-8', errors='ignore'),
whose readline() breaks lines where str.splitlines() does: besides \\n and \\r also at \\x0b,
\\x0c, \\x1c, \\x1d, \\x1e, U+0085, U+2028 and U+2029. Inside a quoted field the csv module
joins the pieces again; outside quotes a row holding one of them is cut in two and the notebook
loses it. siamese-xlmr parses RFC 4180 records (only \\n and \\r\\n end a record) and keeps such
rows. This script counts them (docs/differences.md):

    python3 tools/count_line_breaks.py data/jigsaw-unintended-bias-train.csv data/validation.csv

It prints, per file, the data rows (records after the header) and those holding one of the
characters outside quotes, per character. Standard library only; reads the file in chunks.
"""
import codecs
import sys

# The characters str.splitlines() breaks at that are not RFC 4180 line ends.
SPLITTERS = {
    "\x0b": "\\x0b",
    "\x0c": "\\x0c",
    "\x1c": "\\x1c",
    "\x1d": "\\x1d",
    "\x1e": "\\x1e",
    "\x85": "U+0085",
    "\u2028": "U+2028",
    "\u2029": "U+2029",
}


def count(path, chunk_bytes=1 << 24):
    """(data rows, rows split by the notebook, {character name: occurrences outside quotes})."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    inside = False  # within a quoted field
    record = 0  # the record being read (0: the header)
    affected = set()
    per_char = {name: 0 for name in SPLITTERS.values()}
    last_char = ""
    with open(path, "rb") as f:
        while True:
            raw = f.read(chunk_bytes)
            text = decoder.decode(raw, final=not raw)
            if text:
                last_char = text[-1]
            # Between two quote characters the state flips; a doubled quote flips twice.
            for k, part in enumerate(text.split('"')):
                if k > 0:
                    inside = not inside
                if inside:
                    continue
                for ch, name in SPLITTERS.items():
                    start = part.find(ch)
                    while start >= 0:
                        per_char[name] += 1
                        affected.add(record + part.count("\n", 0, start))
                        start = part.find(ch, start + 1)
                record += part.count("\n")
            if not raw:
                break
    rows = record - (1 if last_char == "\n" else 0)  # records after the header
    affected.discard(0)
    return rows, len(affected), per_char


def main(paths):
    if not paths or paths[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if not paths else sys.stdout)
        return 2 if not paths else 0
    for path in paths:
        rows, split, per_char = count(path)
        chars = ", ".join(f"{name} {n}" for name, n in per_char.items() if n) or "none"
        print(f"{path}: {rows} data rows, {split} split by the notebook's line reader "
              f"(characters outside quotes: {chars})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
