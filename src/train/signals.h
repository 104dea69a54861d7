// Stop requests from the outside: SIGTERM, SIGINT (Ctrl-C; kept ignored when the process started
// with it ignored), and the configurable warning signal
// (dist.stop_signal, SIGUSR1 by default; Slurm sends it ahead of the time limit with
// --signal=B:USR1@N, and mpirun forwards SIGUSR1/SIGUSR2 to the ranks). The handler only
// sets a flag; the training loop turns it into an agreed stop at the next step boundary.
#pragma once

#include "core/config.h"

namespace sx::train {

// Exit code of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL, which a
// Slurm script maps to `scontrol requeue`.
inline constexpr int kExitRequeue = 75;
// Exit code when training stopped after train.max_bad_steps non-finite steps in a row.
inline constexpr int kExitNonFinite = 4;

// At the start of `train`, before MPI and the configuration: SIGTERM, SIGINT, SIGUSR1 and SIGUSR2
// are stop requests, so a signal sent while the job starts (a Slurm warning, a requeue) is kept for
// the first step boundary instead of killing the rank.
void install_early_stop_handlers();
// Once the configuration is known: SIGTERM, SIGINT and dist.stop_signal; the other warning signal
// gets its default action back (a request that came before stays a request).
void install_stop_handlers(StopSignal stop_signal);
bool stop_requested();
int stop_signal_number();  // the signal that asked, or 0
// Forgets a stop request (a process that runs another training after one stopped: tests).
void clear_stop_request();

}  // namespace sx::train
