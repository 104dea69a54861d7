// One corpus per node: the set-up's corpora and pair sequences, built by the node's builder
// (NodeMemory::builder()) and published once into memory the ranks of the node share. Every
// process of the node calls these functions in the same order (they are collectives over the
// node); afterwards each holds corpora whose columns view the shared image, and texts that
// are views of its own read-only mapping of the CSV files (the page cache is shared), or of
// the image for the texts that loading had to copy (unescaped, UTF-8 cleaned). They read
// exactly as the corpora the builder loaded, and are read-only.
#pragma once

#include <optional>

#include "data/corpus.h"
#include "data/node_memory.h"
#include "data/pairs.h"
#include "data/split.h"

namespace sx::data {

// The builder passes what it loaded and split; the others pass anything (it is replaced).
// Every process, the builder included, gets the shared corpora back in `split` and `test`.
// Throws std::runtime_error when a CSV file has changed size since the builder loaded it.
void share_corpora(CorpusSplit& split, std::optional<TestCorpus>& test, NodeMemory& node);

// The builder's `pairs` on every process, shared (the others' `pairs` are ignored).
PairList share_pairs(const PairList& pairs, NodeMemory& node);

}  // namespace sx::data
