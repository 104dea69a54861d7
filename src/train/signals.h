// Stop requests from the outside: SIGTERM, SIGINT (Ctrl-C; kept ignored when the process started
// with it ignored), SIGUSR1 and SIGUSR2 (Slurm sends dist.stop_signal ahead of the time limit
// with --signal=B:USR1@N, and mpirun forwards SIGUSR1/SIGUSR2 to the ranks; the other one, once
// left to its default action, ended a rank without a checkpoint). The handler only sets a
// flag; the training loop turns it into an agreed stop at the next step boundary.
#pragma once

#include "core/config.h"

namespace sx::train {

// Exit code of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL, which a
// Slurm script maps to `scontrol requeue`.
inline constexpr int kExitRequeue = 75;
// Exit code when training stopped after train.max_bad_steps non-finite steps in a row.
inline constexpr int kExitNonFinite = 4;

// From the start of `train` (main.cpp's .preinit_array, before the libraries initialize): a
// signal sent while the job starts (a Slurm warning, a requeue) is kept for the first step
// boundary instead of killing the rank; SIGPIPE is ignored (a closed terminal pipe). Calling it
// again changes nothing.
void install_stop_handlers();
bool stop_requested();
int stop_signal_number();  // the signal that asked, or 0
// Forgets a stop request (a process that runs another training after one stopped: tests).
void clear_stop_request();

}  // namespace sx::train
