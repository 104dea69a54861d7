// data::NodeMemory over MPI: one shared-memory window per publish() among the ranks of a node
// (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) + MPI_Win_allocate_shared). The node's first rank
// builds and fills; the others wait on a node barrier (at most `timeout_seconds`, like every
// collective: past it the job is aborted) and map its memory. All of this file's collectives
// are node-local and live in node_memory.cpp.
#pragma once

#include <memory>

#include "data/node_memory.h"

namespace sx::dist {

// Windows live until MPI_Finalize: freeing one is a collective, and what they hold is needed
// for the whole run.
std::unique_ptr<data::NodeMemory> make_node_memory(double timeout_seconds);

}  // namespace sx::dist
