#!/usr/bin/env bash
# Per-rank memory of the data set-up with several ranks on this node: nothing shared, and the
# corpora and pairs shared by the node (`--share-data`, train's data.share_node), as `train`
# holds them. (Token ids shared per node, tokenizer.share_node, were retired: see
# docs/performance.md.)
# Prints, per run, each rank's unshared memory (smaps Private_Clean + Private_Dirty: what one
# more rank adds to the node; file pages only this rank maps count too), its anonymous memory
# (RssAnon: heap, not the page cache) and the node's summed PSS.
# Usage: tools/bench_data_ranks.sh DATA_DIR SPM_MODEL [RANKS...]   (default ranks: 2 8)
# DATA_DIR's files are used as they are; a DATA_DIR without them gets synthesized ones (1.9M rows).
# Oversubscribing ranks is fine for a memory measurement; the times are then not meaningful.
set -euo pipefail
dir=$1 model=$2
shift 2
ranks=("$@")
[ $# -eq 0 ] && ranks=(2 8)
bin=${SX_BIN:-build/src/app/siamese-xlmr}
summary='
import json, sys
rows = sorted((json.loads(l)["setup"] for l in sys.stdin), key=lambda r: r["rank"])
u = [r["unshared_mib"] for r in rows]
a = [r["private_mib"] for r in rows]
kind = "shared by the node" if rows[0]["shared"] else "per rank"
data = "shared by the node" if rows[0].get("shared_data") else "per rank"
print("%d ranks, corpora and pairs %s, token ids %s: unshared MiB per rank %s (mean %.0f); anonymous MiB per rank %s; node PSS %.0f MiB; "
      "peak RSS per rank (max) %.0f MiB; texts tokenized %d per %s; set-up %.1f s (slowest rank)"
      % (len(rows), data, kind, " ".join("%.0f" % x for x in u), sum(u) / len(u), " ".join("%.0f" % x for x in a),
         sum(r["pss_mib"] for r in rows), max(r["peak_mib"] for r in rows),
         rows[0]["tokenize_texts"], "node" if rows[0]["shared"] else "rank",
         max(r["total_s"] for r in rows)))
'
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for n in "${ranks[@]}"; do
  for share in "" --share-data; do
    out=$(mpirun -q --oversubscribe --allow-run-as-root -np "$n" "$bin" bench data --dir "$dir" --synthetic \
      --tokenizer "$model" --setup --threads 1 $share)
    echo "$out" | grep '^{"setup"' | python3 -c "$summary"
  done
done
