// Waiting for a non-blocking MPI collective under dist.collective_timeout (inside dist/).
#pragma once

#include <mpi.h>

#include <string>

namespace sx::dist {

// Tests `request` until it completes (yielding first, then sleeping 200 us between tests, so a
// long wait does not hold a core); past `timeout_seconds` logs `what` and aborts the job.
void wait_or_abort(MPI_Request& request, double timeout_seconds, const std::string& what);

}  // namespace sx::dist
