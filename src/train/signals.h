// Stop requests from the outside: SIGTERM, and the configurable warning signal
// (dist.stop_signal, SIGUSR1 by default; Slurm sends it ahead of the time limit with
// --signal=B:USR1@N, and mpirun forwards SIGUSR1/SIGUSR2 to the ranks). The handler only
// sets a flag; the training loop turns it into an agreed stop at the next step boundary.
#pragma once

#include <string>

namespace sx::train {

// Exit code of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL, which a
// Slurm script maps to `scontrol requeue`.
inline constexpr int kExitRequeue = 75;
// Exit code when training stopped after train.max_bad_steps non-finite steps in a row.
inline constexpr int kExitNonFinite = 4;

void install_stop_handlers(const std::string& stop_signal);
bool stop_requested();
int stop_signal_number();  // the signal that asked, or 0

}  // namespace sx::train
