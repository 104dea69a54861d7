// Completing a non-blocking MPI collective under dist.collective_timeout (inside dist/).
#pragma once

#include <mpi.h>

#include <string>

namespace sx::dist {

// Tests `request` until it completes, through await() (deadline.h): past the deadline the rank
// names `what` and the step, and the job ends.
void wait_or_abort(MPI_Request& request, const std::string& what);

}  // namespace sx::dist
