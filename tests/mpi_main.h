// The MPI main shared by the test binaries whose tests call collectives themselves (label
// "mpi", started under mpirun by sx_add_mpi_suite, or alone as one rank): MPI is initialised
// once for the whole binary, its ranks are in mpi_env(), collectives have a 60 s deadline.
#pragma once

#include "dist/mpi_env.h"

namespace sx::test {

// This process's place in the job, set by the shared main before any test runs.
dist::MpiEnv& mpi_env();

}  // namespace sx::test
