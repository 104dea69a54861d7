#!/usr/bin/env bash
# Starts `siamese-xlmr train` under mpirun: one rank per visible GPU on this node, or
# SX_CPU_RANKS CPU ranks (default 2) when there is none. Each rank picks its GPU from its local
# rank; ranks are bound to nearby cores; the environment (PATH, LD_LIBRARY_PATH, NCCL_*, OMP_*,
# SX_*) is forwarded.
#
# Usage: launch/run.sh CONFIG [dotted.key=value ...] [--resume auto|PATH]
# Multi-node: SX_HOSTFILE=hosts SX_RANKS_PER_NODE=8 launch/run.sh CONFIG ...
#   (hosts: one "nodename slots=8" line per node; every node sees the same paths)
# Inside a Slurm allocation mpirun takes the nodes from Slurm; see slurm/train.sbatch.
#
# mpirun runs as this script's child: signals sent to the script (SIGUSR1, SIGUSR2, SIGTERM)
# are forwarded to it, and its stderr passes through a watch that notes how the job ends. When a
# rank has ended the job but mpirun cannot finish (a host it cannot reach any more), the script
# ends mpirun SX_ABORT_GRACE seconds (default 5) later. The exit code is the program's (0, 1,
# 2, 4, 75; README); Open MPI's own codes for a lost host, a killed rank or daemons that did
# not start become 1 (2 for daemons that did not start), with one line saying what happened.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SX_BIN:-$root/build/src/app/siamese-xlmr}
[ $# -ge 1 ] || { echo "usage: launch/run.sh CONFIG [key=value ...] [--resume auto|PATH]" >&2; exit 2; }
config=$1
shift
[ -x "$bin" ] || { echo "launch/run.sh: $bin not built; run launch/build.sh" >&2; exit 2; }
grace=${SX_ABORT_GRACE:-5}

gpus=0
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
per_node=${SX_RANKS_PER_NODE:-}
if [ -z "$per_node" ]; then
  if [ "$gpus" -gt 0 ]; then per_node=$gpus; else per_node=${SX_CPU_RANKS:-2}; fi
fi
cores=$(nproc)
per_rank=$(( cores / per_node )); [ "$per_rank" -ge 1 ] || per_rank=1

# Every host of the hostfile must resolve before anything starts: a typo fails here, in one
# line, instead of in Open MPI's daemon start-up.
check_hostfile() {
  local file=$1 line=0 host rest
  [ -r "$file" ] || { echo "launch/run.sh: SX_HOSTFILE $file cannot be read" >&2; exit 2; }
  while read -r host rest || [ -n "$host" ]; do
    line=$((line + 1))
    case $host in '' | '#'*) continue ;; esac
    getent hosts "$host" >/dev/null || {
      echo "launch/run.sh: $file:$line: host '$host' does not resolve (getent hosts); expected one 'nodename slots=N' line per node" >&2
      exit 2
    }
  done <"$file"
}

# No -q: Open MPI's messages pass through watch_stderr below, which needs them.
args=(--map-by "slot:PE=$per_rank" --bind-to core)
[ "$per_rank" -eq 1 ] && [ "$per_node" -gt "$cores" ] && args=(--oversubscribe --bind-to none)
if [ -n "${SX_HOSTFILE:-}" ]; then
  check_hostfile "$SX_HOSTFILE"
  nodes=$(grep -cv '^\s*\(#\|$\)' "$SX_HOSTFILE")
  args+=(--hostfile "$SX_HOSTFILE" -np $(( nodes * per_node )) --npernode "$per_node")
elif [ -n "${SLURM_JOB_ID:-}" ] && [ -n "${SLURM_NTASKS:-}" ]; then
  args+=(-np "$SLURM_NTASKS")   # nodes and slots come from the Slurm allocation
else
  args+=(-np "$per_node")
fi
for v in PATH LD_LIBRARY_PATH $(compgen -e | grep -E '^(NCCL_|OMP_|SX_|CUDA_|TORCH_)' || true); do
  [ -n "${!v+set}" ] && args+=(-x "$v")   # mpirun warns about unset ones
done
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$per_rank}

state=$(mktemp -d "${TMPDIR:-/tmp}/sx-run.XXXXXX")
trap 'rm -rf "$state"' EXIT
mkfifo "$state/stderr"

# Copies mpirun's stderr through, noting in $state what the end of the job must explain. The
# layout rank 0 logs ("layout: 4 ranks on 2 hosts: n1 ranks 0, 1; n2 ranks 2, 3") is kept.
# Open MPI's messages come in blocks between lines of dashes: the blocks this script sums up
# in one line at the end (a lost host, a rank killed by a signal) or that repeat what a rank
# already said (MPI_Abort, a rank's non-zero exit) are held back; any other block passes. The
# first sign that the job is ending starts the deadline for mpirun to finish.
watch_stderr() {
  local line block="" in_block=0
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ ^-{60,}$ ]]; then
      if [ "$in_block" -eq 0 ]; then in_block=1 block=""; continue; fi
      in_block=0
      sum_up "$block" || printf '%s\n%s%s\n' "$line" "$block" "$line" >&2
      continue
    fi
    if [ "$in_block" -eq 1 ]; then block+=$line$'\n'; continue; fi
    case $line in  # Open MPI's count of messages it held back
      *" more process"*"sent help message"* | *"orte_base_help_aggregate"*) continue ;;
    esac
    printf '%s\n' "$line" >&2
    case $line in
      *"] layout: "*" ranks on "*) line=${line#*layout: } && echo "${line#*: }" >"$state/layout" ;;
      *"Ending the job."*) job_ending ;;
    esac
  done
  [ "$in_block" -eq 0 ] || printf '%s' "$block" >&2
}

# Notes what an Open MPI message BLOCK says; returns 1 when the block should be shown.
sum_up() {
  local b=$1
  case $b in
    *"MPI_ABORT was invoked on rank "*)
      [[ $b =~ errorcode\ ([0-9]+) ]] && echo "${BASH_REMATCH[1]}" >"$state/abort_code" ;;
    *"Remote daemon:"*" on node "*)
      [[ $b =~ Remote\ daemon:.*\ on\ node\ ([^[:space:]]+) ]] &&
        echo "${BASH_REMATCH[1]}" >"$state/lost_host" ;;
    *"mpirun noticed that process rank "*)
      [[ $b =~ rank\ ([0-9]+)\ with\ PID\ [0-9]+\ on\ node\ ([^[:space:]]+)\ exited\ on\ signal\ ([0-9]+) ]] &&
        echo "rank ${BASH_REMATCH[1]} on host ${BASH_REMATCH[2]} was killed by signal ${BASH_REMATCH[3]}" >"$state/killed" ;;
    *"non-zero exit code"* | *"exited with non-zero status"*) return 0 ;;  # the rank said why
    *"unable to reliably start one or more daemons"*) : >"$state/no_daemons"; return 1 ;;
    *) return 1 ;;
  esac
  job_ending
}

# The job is ending: mpirun gets SX_ABORT_GRACE seconds to finish it.
job_ending() {
  [ -f "$state/ending" ] && return 0
  : >"$state/ending"
  end_mpirun_after "$grace" </dev/null >/dev/null 2>&1 &
  echo $! >"$state/ender"
}

# Ends mpirun if it is still running SECONDS after the job began to end. SIGKILL: mpirun stuck
# in an abort answers SIGTERM by crashing in its own clean-up (Open MPI 4.1); its daemons end
# their ranks when they lose it.
end_mpirun_after() {
  sleep "$1"
  local pid
  pid=$(cat "$state/pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  : >"$state/ended_by_us"
  kill -KILL "$pid" 2>/dev/null || true
}

# The ranks a host ran, from the layout line ("" if unknown).
ranks_on() {
  local host=$1 part
  [ -f "$state/layout" ] || return 0
  local IFS=';'
  for part in $(cat "$state/layout"); do
    part=${part# }
    [ "${part%% *}" = "$host" ] && { echo "${part#* }"; return 0; }
  done
}

# The script's exit code for mpirun's `rc`, and one line when Open MPI's code needs one.
explain_end() {
  local rc=$1 code=1
  case $rc in 0 | 1 | 2 | 4 | 75) code=$rc ;; esac
  if [ -f "$state/lost_host" ]; then
    local host ranks
    host=$(cat "$state/lost_host")
    ranks=$(ranks_on "$host")
    echo "launch/run.sh: lost host $host${ranks:+ ($ranks)}: Open MPI lost contact with its daemon there (host down or cut off) and ended the job; exit 1" >&2
    code=1
  elif [ -f "$state/ended_by_us" ]; then
    [ -f "$state/abort_code" ] && code=$(cat "$state/abort_code")
    echo "launch/run.sh: mpirun had not ended ${grace} s after the job failed (a host it cannot reach?), so this script ended it; exit $code" >&2
  elif [ -f "$state/killed" ]; then
    echo "launch/run.sh: $(cat "$state/killed"); the job was ended; exit 1" >&2
    code=1
  elif [ -f "$state/no_daemons" ]; then
    echo "launch/run.sh: Open MPI could not start on every host (see its message above): check that each one answers its launcher (ssh HOST true); exit 2" >&2
    code=2
  elif [ "$code" != "$rc" ]; then
    echo "launch/run.sh: mpirun exited with $rc (Open MPI's own code, see its message above); exit 1" >&2
  fi
  return "$code"
}

watch_stderr <"$state/stderr" &
watcher=$!
mpirun "${args[@]}" "$bin" train --config "$config" "$@" 2>"$state/stderr" &
pid=$!
echo "$pid" >"$state/pid"
# Signals sent to this script (Slurm's warning signal, a kill) go to mpirun, which forwards
# them to the ranks. A terminal's Ctrl-C or hang-up reaches mpirun itself (the whole process
# group gets it): this script only keeps waiting, to say how the job ended.
for sig in USR1 USR2 TERM; do trap "kill -s $sig $pid 2>/dev/null || true" "$sig"; done
trap : INT HUP
rc=0
while :; do
  wait "$pid" 2>/dev/null && rc=0 || rc=$?  # (bash's own notice of a killed mpirun: not needed)
  kill -0 "$pid" 2>/dev/null || break  # wait returned for a trap: keep waiting
done
# The watch ends when every writer of mpirun's stderr has closed it; a daemon left behind on
# a lost host may keep it open, so wait a moment at most.
for _ in $(seq 50); do
  kill -0 "$watcher" 2>/dev/null || break
  sleep 0.1
done
kill "$watcher" 2>/dev/null || true
[ -f "$state/ender" ] && kill "$(cat "$state/ender")" 2>/dev/null || true
explain_end "$rc"
