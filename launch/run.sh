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
# are forwarded to it, and its stderr passes through a watch that notes how the job ends. A
# Ctrl-C (SIGINT) asks the ranks to checkpoint and stop (dist.stop_signal, exit 75); a second
# one ends the job without waiting (SIGTERM). Run from a terminal, mpirun gets a session of its
# own, so that the terminal's Ctrl-C reaches this script alone: Open MPI passes a Ctrl-C on to
# the ranks as SIGTERM and kills them a second later, too soon for a checkpoint. When a
# rank has ended the job, or a SIGTERM was passed on, but mpirun cannot finish (a host it
# cannot reach any more), the script ends mpirun SX_ABORT_GRACE seconds (default 5) later.
# Across hosts, Open MPI must start its daemon on every host within SX_START_TIMEOUT seconds
# (default 120, 0: no limit), and it declares a host lost once the link to its daemon has been
# dead for dist.collective_timeout + 8 s (TCP keepalive), also after the ranks have finished.
# The exit code is the program's (0, 1, 2, 4, 75; README); Open MPI's own codes for a lost host
# or a killed rank become 1, hostfile mistakes and daemons that did not start 2, a stop that
# rank 0 reported after its checkpoint 75 (mpirun exits 1 after a SIGTERM, or lost a host
# since), and a job rank 0 finished (its job time line) 0 (the same), each with one line
# saying what happened; a SIGTERM passed on without either report (the ranks killed while
# writing) stays 1, with a line saying so.
set -euo pipefail
# The whole script is one compound command (down to the closing brace at its end), which bash
# reads before running any of it: a checkout updated while a job runs (git pull) would
# otherwise feed the running script the new file's bytes at the old offsets.
{
# A stop signal before mpirun starts (Slurm's warning while this script reads the configuration)
# killed the script, as the signal's default action does: it is held here, and no rank starts.
pending=""
for sig in USR1 USR2 TERM; do trap "pending=$sig" "$sig"; done
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SX_BIN:-$root/build/src/app/siamese-xlmr}
[ $# -ge 1 ] || { echo "usage: launch/run.sh CONFIG [key=value ...] [--resume auto|PATH]" >&2; exit 2; }
config=$1
shift
[ -x "$bin" ] || { echo "launch/run.sh: $bin not built; run launch/build.sh" >&2; exit 2; }

# number NAME MIN DEFAULT: the value of the environment knob NAME (DEFAULT when unset or
# empty), a whole number >= MIN; anything else ends the script with one line and exit 2.
number() {
  local name=$1 min=$2 value=${!1:-$3}
  if ! [[ $value =~ ^[0-9]{1,9}$ ]] || [ $((10#$value)) -lt "$min" ]; then
    local want="a whole number >= $min"
    [ "$min" = 1 ] && want="a positive integer"
    echo "launch/run.sh: $name is '$value'; expected $want" >&2
    exit 2
  fi
  echo $((10#$value))
}
grace=$(number SX_ABORT_GRACE 0 5)
# After a SIGTERM passed on, mpirun gets at least 5 s: Open MPI kills the ranks 1 s after it, and
# a mpirun ended sooner could leave ranks on this host running.
term_grace=$(( grace > 5 ? grace : 5 ))
start_timeout=$(number SX_START_TIMEOUT 0 120)
cpu_ranks=$(number SX_CPU_RANKS 1 2)

# CUDA_VISIBLE_DEVICES, when set, is what CUDA sees: its device ids or GPU-/MIG- UUIDs up to the
# first entry that is neither (CUDA stops there), so "", "-1" or "NoDevFiles" (Slurm without
# GPUs) mean no GPU.
visible_gpus() {
  local n=0 entry
  local IFS=,
  for entry in $1; do
    entry=${entry//[[:space:]]/}
    [[ $entry =~ ^([0-9]+|(GPU|MIG)-[[:alnum:]/-]+)$ ]] || break
    n=$((n + 1))
  done
  echo "$n"
}
gpus=0
if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
  gpus=$(visible_gpus "$CUDA_VISIBLE_DEVICES")
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if [ -n "${SX_RANKS_PER_NODE:-}" ]; then
  per_node=$(number SX_RANKS_PER_NODE 1 1)
  per_node_why="SX_RANKS_PER_NODE"
elif [ "$gpus" -gt 0 ]; then
  per_node=$gpus
  per_node_why="one per GPU visible here"
else
  per_node=$cpu_ranks
  per_node_why="SX_CPU_RANKS, no GPU here"
fi
# The cores this process may run on (nproc alone would answer OMP_NUM_THREADS).
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
per_rank=$(( cores / per_node )); [ "$per_rank" -ge 1 ] || per_rank=1

# The addresses a host name (or a literal address) resolves to, one a line, sorted.
addresses_of() {
  getent ahosts "$1" 2>/dev/null | awk '{print $1}' | sed 's/^::ffff://' | sort -u
}

# Every host of the hostfile must resolve before anything starts: a typo fails here, in one
# line, instead of in Open MPI's daemon start-up. (getent ahosts: names and literal addresses;
# `getent hosts` would want a reverse DNS entry for an address.)
check_hostfile() {
  local file=$1 line=0 host rest address slots
  # A host listed twice, by name or by another name or address of it: Open MPI's multi-line
  # error, or two daemons of one host (-np counted it twice; the ranks crashed in MPI).
  local -A first_line=() first_by_address=()
  local expected="expected one 'nodename slots=N' line per node"
  [ -r "$file" ] || { echo "launch/run.sh: SX_HOSTFILE $file cannot be read" >&2; exit 2; }
  if grep -q $'\r' "$file"; then  # Open MPI: a parse error, then "an internal error"
    line=$(grep -n $'\r' "$file" | head -n 1 | cut -d: -f1)
    echo "launch/run.sh: $file:$line: a carriage return (Windows line ends); $expected, with Unix line ends (dos2unix $file)" >&2
    exit 2
  fi
  while read -r host rest || [ -n "$host" ]; do
    line=$((line + 1))
    case $host in '' | '#'*) continue ;; esac
    [ -z "${first_line[$host]:-}" ] || {
      echo "launch/run.sh: $file:$line: host '$host' is listed again (first on line ${first_line[$host]}); $expected" >&2
      exit 2
    }
    first_line[$host]=$line
    getent ahosts "$host" >/dev/null || {
      echo "launch/run.sh: $file:$line: host '$host' does not resolve (getent ahosts); $expected" >&2
      exit 2
    }
    for address in $(addresses_of "$host"); do
      [ -z "${first_by_address[$address]:-}" ] || {
        echo "launch/run.sh: $file:$line: host '$host' is line ${first_by_address[$address]}'s host again (both are $address); $expected" >&2
        exit 2
      }
    done
    for address in $(addresses_of "$host"); do first_by_address[$address]=$line; done
    # Fewer slots than ranks per node: Open MPI's "not enough slots" page (unless the ranks
    # oversubscribe, which ignores slots).
    slots=$(sed -n 's/^\(.*[[:space:]]\)\{0,1\}slots=\([0-9]*\).*/\2/p' <<<"${rest%%#*}")
    if [ -n "$slots" ] && [ "$slots" -lt "$per_node" ] && [ "$oversubscribe" = 0 ]; then
      echo "launch/run.sh: $file:$line: host '$host' has slots=$slots, fewer than the $per_node ranks per node ($per_node_why); give it slots=$per_node or more, or set SX_RANKS_PER_NODE" >&2
      exit 2
    fi
  done <"$file"
  grep -q '^[[:space:]]*[^#[:space:]]' "$file" ||
    { echo "launch/run.sh: SX_HOSTFILE $file names no host; expected one 'nodename slots=N' line per node" >&2; exit 2; }
}

# config_value KEY DEFAULT ARGS...: KEY of this job's configuration (the file and the
# key=value arguments among ARGS), or DEFAULT when it cannot be read (the program itself will
# say why).
config_value() {
  local key=$1 default=$2 arg skip=0 overrides=()
  shift 2
  for arg in "$@"; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case $arg in
      --resume) skip=1 ;;
      -*) ;;
      *=*) overrides+=("$arg") ;;
    esac
  done
  "$bin" config --config "$config" --get "$key" ${overrides[@]+"${overrides[@]}"} 2>/dev/null ||
    echo "$default"
}

# dist.collective_timeout of this job in whole seconds (600, the default, when unreadable).
collective_timeout() {
  local value
  value=$(config_value dist.collective_timeout 600 "$@")
  [[ $value =~ ^[0-9]+(\.[0-9]+)?$ ]] || value=600
  awk -v t="$value" 'BEGIN { s = int(t); if (s < t) s++; print s }'
}

# Whether this script runs in the foreground of its terminal, where a Ctrl-C reaches its whole
# process group (/proc/PID/stat: its group, terminal and the terminal's foreground group).
in_terminal_foreground() {
  local stat fields
  stat=$(cat "/proc/$$/stat" 2>/dev/null) || return 1
  read -r -a fields <<<"${stat##*) }"
  [ "${fields[4]:-0}" != 0 ] && [ "${fields[2]:-}" = "${fields[5]:-}" ]
}

# Microseconds of the wall clock (bash 5's EPOCHREALTIME, else date).
# shellcheck disable=SC2317  # (run from a trap)
now_us() {
  if [ -n "${EPOCHREALTIME:-}" ]; then echo "${EPOCHREALTIME/[.,]/}"; else echo $(($(date +%s%N) / 1000)); fi
}

# A Ctrl-C (SIGINT): the first asks the ranks to checkpoint and stop with dist.stop_signal
# (USR1 or USR2, which mpirun forwards; USR1 for TERM, which mpirun follows with a kill a second
# later); one a second or more later ends the job at once (within the second: the same Ctrl-C
# sent to the script and to its process group, as timeout(1) does).
first_interrupt=""
# shellcheck disable=SC2317  # (run from a trap)
on_interrupt() {
  local now
  now=$(now_us)
  if [ -n "$first_interrupt" ]; then
    if [ $((now - first_interrupt)) -lt 1000000 ]; then
      echo "launch/run.sh: Ctrl-C again within a second: taken for the same one (press it again to end the job at once)" >&2 || true
      return 0
    fi
    if [ -f "$state/requeue" ]; then  # rank 0 has said "checkpoint written, exiting with 75"
      echo "launch/run.sh: Ctrl-C again: the checkpoint is already written and the ranks are ending; ending mpirun now (SIGTERM)" >&2 || true
    elif [ -f "$state/finished" ]; then  # rank 0's job time line: every file written
      echo "launch/run.sh: Ctrl-C again: the job has finished (every file written) and the ranks are ending; ending mpirun now (SIGTERM)" >&2 || true
    else
      echo "launch/run.sh: Ctrl-C again: ending the job without waiting for the checkpoint (SIGTERM to mpirun)" >&2 || true
    fi
    forward TERM
    return 0
  fi
  first_interrupt=$now
  local sig
  sig=$(config_value dist.stop_signal USR1 "${train_args[@]+"${train_args[@]}"}")
  case $sig in USR1 | USR2) ;; *) sig=USR1 ;; esac
  echo "launch/run.sh: Ctrl-C: the ranks checkpoint at the next step boundary and stop (SIG$sig); Ctrl-C again ends the job without waiting" >&2 || true
  forward "$sig"
}

# forward SIG: passes SIG on to mpirun, noting a SIGTERM that reached it (explain_end says what
# it costs); before mpirun has started, SIG is held for it (pending).
# shellcheck disable=SC2317  # (run from traps)
forward() {
  if [ -z "$pid" ]; then pending=$1 && return 0; fi
  kill -s "$1" "$pid" 2>/dev/null || return 0
  [ "$1" = TERM ] || return 0
  : >"$state/terminated"
  # Open MPI kills the ranks a second after a SIGTERM and ends; with a host it cannot reach it
  # waits for that host's daemon ("Abort is in progress") until the link returns.
  [ -f "$state/term_ender" ] && return 0
  end_mpirun_after "$term_grace" ended_after_term </dev/null >/dev/null 2>&1 &
  echo $! >"$state/term_ender"
}

# No -q: Open MPI's messages pass through watch_stderr below, which needs them.
args=(--map-by "slot:PE=$per_rank" --bind-to core)
oversubscribe=0
if [ "$per_rank" -eq 1 ] && [ "$per_node" -gt "$cores" ]; then
  args=(--oversubscribe --bind-to none)
  oversubscribe=1
fi
remote=0 dead_after=""  # whether Open MPI starts daemons on other hosts
if [ -n "${SX_HOSTFILE:-}" ]; then
  check_hostfile "$SX_HOSTFILE"
  nodes=$(grep -cv '^\s*\(#\|$\)' "$SX_HOSTFILE")
  args+=(--hostfile "$SX_HOSTFILE" -np $(( nodes * per_node )) --npernode "$per_node")
  remote=1
elif [ -n "${SLURM_JOB_ID:-}" ] && [ -n "${SLURM_NTASKS:-}" ]; then
  args+=(-np "$SLURM_NTASKS")   # nodes and slots come from the Slurm allocation
  remote=1
else
  args+=(-np "$per_node")
fi
# A host cut off from mpirun while nothing is sent to it (the ranks have finished, or wait in a
# collective) breaks no connection: Open MPI would wait for its daemon until the link returns.
# TCP keepalive on Open MPI's own connections, a probe after 1 s idle and the link declared dead
# after dist.collective_timeout + 8 s of unanswered probes, ends that wait with Open MPI's "lost
# contact" message; the ranks' own deadline (the timeout + 2 s) still speaks first mid-run. A
# keepalive set in the environment (OMPI_MCA_oob_tcp_keepalive_*) is kept.
if [ "$remote" = 1 ] && [ -z "${OMPI_MCA_oob_tcp_keepalive_time:-}" ]; then
  dead_after=$(( $(collective_timeout "$@") + 8 ))
  interval=$(( (dead_after + 99) / 100 ))  # Linux allows at most 127 probes
  args+=(--mca oob_tcp_keepalive_time 1 --mca oob_tcp_keepalive_intvl "$interval"
         --mca oob_tcp_keepalive_probes $(( (dead_after + interval - 1) / interval )))
fi
for v in PATH LD_LIBRARY_PATH $(compgen -e | grep -E '^(NCCL_|OMP_|SX_|CUDA_|TORCH_)' || true); do
  [ -n "${!v+set}" ] && args+=(-x "$v")   # mpirun warns about unset ones
done
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$per_rank}

# Open MPI keeps its session files in TMPDIR: a full one made mpirun hang for ever with two
# ranks (one aborted in MPI_Init, the other left a zombie), a missing one failed in fifty lines.
tmp=${TMPDIR:-/tmp}
if [ ! -d "$tmp" ] || [ ! -w "$tmp" ]; then
  echo "launch/run.sh: TMPDIR=$tmp is not a writable directory: Open MPI keeps its session files there; point TMPDIR at one or unset it" >&2
  exit 2
fi
free_kib=$(df -Pk "$tmp" 2>/dev/null | awk 'NR == 2 {print $4}')
if [[ ${free_kib:-} =~ ^[0-9]+$ ]] && [ "$free_kib" -lt 32768 ]; then
  echo "launch/run.sh: TMPDIR=$tmp has $((free_kib / 1024)) MiB free: Open MPI keeps its session files there and hangs when it fills up; free 32 MiB or more there, or point TMPDIR elsewhere" >&2
  exit 2
fi
state=$(mktemp -d "$tmp/sx-run.XXXXXX")
trap 'rm -rf "$state"' EXIT
mkfifo "$state/stderr"

# Copies mpirun's stderr through, noting in $state what the end of the job must explain. The
# layout rank 0 logs ("layout: 4 ranks on 2 hosts: n1 ranks 0, 1; n2 ranks 2, 3") is kept.
# Open MPI's messages come in blocks between lines of dashes: the blocks this script sums up
# in one line at the end (a lost host, a rank killed by a signal) or that repeat what a rank
# already said (MPI_Abort, a rank's non-zero exit) are held back; any other block passes. The
# first sign that the job is ending starts the deadline for mpirun to finish.
watch_stderr() {
  # A Ctrl-C is the script's to handle (on_interrupt); a reader of the output that has gone
  # (`| tee` ended by the same Ctrl-C) must not end the watch: mpirun writes to it, and what
  # it notes decides the exit code.
  trap '' INT QUIT PIPE
  set +e
  local line rest block="" in_block=0
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ ^-{60,}$ ]]; then
      if [ "$in_block" -eq 0 ]; then in_block=1 block=""; continue; fi
      in_block=0
      sum_up "$block" || printf '%s\n%s%s\n' "$line" "$block" "$line" >&2
      continue
    fi
    if [ "$in_block" -eq 1 ]; then block+=$line$'\n'; continue; fi
    case $line in  # Open MPI's count of messages it held back; its own slip after an abort
      *" more process"*"sent help message"* | *"orte_base_help_aggregate"*) continue ;;
      *"ORTE_ERROR_LOG: Data unpack would read past end of buffer in file "*"show_help.c"*) continue ;;
    esac
    # Noted before it is shown: whoever reacts to the line finds what it says noted.
    # A line from a rank ("[2024-05-01 10:00:00.000] [0/4] [info] ..."): the job has started.
    [ -f "$state/started" ] || [[ ! $line =~ ^\[[0-9-]+\ [0-9:.]+\]\ \[[0-9]+/[0-9]+\] ]] ||
      : >"$state/started"
    case $line in
      *"] layout: "*" ranks on "*) rest=${line#*layout: } && echo "${rest#*: }" >"$state/layout" ;;
      *"Ending the job."*) job_ending ;;
      *"exiting with 75 so the job can be requeued"*) : >"$state/requeue"; job_done ;;
      *"] job time "*" s: set-up "*) : >"$state/finished"; job_done ;;  # rank 0's last line
    esac
    printf '%s\n' "$line" >&2
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

# Rank 0 has said its last line: the ranks are past their last collective. Open MPI's keepalive
# ends the wait for a host cut off since (dist.collective_timeout + 8 s); should mpirun still
# run SX_ABORT_GRACE seconds after that (it was sending to that host), the script ends it.
job_done() {
  [ "$remote" = 1 ] && [ -n "$dead_after" ] || return 0
  [ -f "$state/done" ] && return 0
  : >"$state/done"
  end_mpirun_after $((dead_after + grace)) ended_after_done </dev/null >/dev/null 2>&1 &
  echo $! >"$state/finisher"
}

# Ends mpirun if it is still running SECONDS after the job began to end, noting it in
# $state/FLAG (default ended_by_us). SIGKILL: mpirun stuck
# in an abort answers SIGTERM by crashing in its own clean-up (Open MPI 4.1); its daemons end
# their ranks when they lose it.
end_mpirun_after() {
  trap '' INT QUIT  # a Ctrl-C is the script's to handle (on_interrupt)
  # Ended early (the job ended first), it ends its sleep too, which would outlive the script
  # (the trap is set before the sleep starts: a TERM in between finds no sleep to end).
  local nap=""
  trap '[ -z "$nap" ] || kill "$nap" 2>/dev/null; exit 0' TERM
  sleep "$1" &
  nap=$!
  wait "$nap"
  local pid
  pid=$(cat "$state/pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  : >"$state/${2:-ended_by_us}"
  kill -KILL "$pid" 2>/dev/null || true
}

# Ends mpirun when no rank has said a word SX_START_TIMEOUT seconds after it started and some
# host's daemon has no connection to mpirun: Open MPI starts the ranks once the daemon of every
# host has called back, and waits for ever for one that cannot (a firewall, an unroutable
# interface), even when its launcher (ssh) worked. (Ranks that log nothing at start-up, with
# run.log_level above info, are told from a stuck start by those connections; when the hosts
# or the connections cannot be listed, nothing is ended.)
watch_start() {
  trap '' INT QUIT  # a Ctrl-C is the script's to handle (on_interrupt)
  local end=$((SECONDS + start_timeout + 1)) pid  # SECONDS counts whole seconds: (T, T + 1]
  pid=$(cat "$state/pid")
  while [ "$SECONDS" -lt "$end" ]; do
    [ -f "$state/started" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  [ -f "$state/started" ] && return 0
  local silent
  silent=$(silent_hosts) && [ -n "$silent" ] || return 0
  echo "$silent" >"$state/start_timeout"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# The hosts of the job (the hostfile, or Slurm's node list) whose daemon has no connection to
# mpirun (ss), this host left out; fails when that cannot be told.
job_hosts() {
  if [ -n "${SX_HOSTFILE:-}" ]; then
    grep -v '^[[:space:]]*\(#\|$\)' "$SX_HOSTFILE" | awk '{print $1}'
  elif [ -n "${SLURM_JOB_NODELIST:-}" ] && command -v scontrol >/dev/null; then
    scontrol show hostnames "$SLURM_JOB_NODELIST"
  else
    return 1
  fi
}
silent_hosts() {
  command -v ss >/dev/null || return 1
  local hosts pid peers host addresses here silent=()
  hosts=$(job_hosts) || return 1
  pid=$(cat "$state/pid")
  peers=$(ss -Htnp state established 2>/dev/null | grep "pid=$pid," | awk '{print $4}' |
    sed 's/:[0-9]*$//; s/^\[//; s/\]$//; s/^::ffff://' | sort -u)
  here=" $(hostname) $(hostname -s 2>/dev/null) $(hostname -f 2>/dev/null) localhost $(hostname -I 2>/dev/null) "
  for host in $hosts; do
    case $here in *" $host "*) continue ;; esac
    addresses=$(addresses_of "$host")
    case " ${addresses//$'\n'/ } " in *" 127."* | *" ::1 "*) continue ;; esac
    comm -12 <(echo "$addresses") <(echo "$peers") | grep -q . || silent+=("$host")
  done
  local IFS=' '
  echo "${silent[*]}"
}

# The ranks a host ran, from the layout line ("" if unknown). The layout names hosts as they
# call themselves; a hostfile may name them by address (Open MPI then does too): the names
# whose addresses include it match.
ranks_on() {
  local host=$1 part name wanted
  [ -f "$state/layout" ] || return 0
  local IFS=';'
  for part in $(cat "$state/layout"); do
    part=${part# }
    [ "${part%% *}" = "$host" ] && { echo "${part#* }"; return 0; }
  done
  wanted=$(addresses_of "$host")  # (looked up only when no name matches)
  [ -n "$wanted" ] || return 0
  for part in $(cat "$state/layout"); do
    part=${part# }
    name=${part%% *}
    comm -12 <(echo "$wanted") <(addresses_of "$name") | grep -q . && { echo "${part#* }"; return 0; }
  done
  return 0
}


# The script's exit code for mpirun's `rc`, and one line when Open MPI's code needs one.
explain_end() {
  local rc=$1 code=1
  case $rc in 0 | 1 | 2 | 4 | 75) code=$rc ;; esac
  local lost=""  # "lost host n2 (ranks 2, 3)"
  if [ -f "$state/lost_host" ]; then
    local host ranks
    host=$(cat "$state/lost_host")
    ranks=$(ranks_on "$host")
    lost="lost host $host${ranks:+ ($ranks)}"
  fi
  # What ended mpirun after rank 0 had said its last line (a checkpoint for a requeue, or the
  # job done): that line decides the code, this one says why mpirun's differs.
  local after=""
  if [ -n "$lost" ]; then
    after="Open MPI then lost contact with a host it could no longer reach ($lost)"
  elif [ -f "$state/ended_after_done" ]; then
    after="mpirun had not ended $((dead_after + grace)) s after it (a host it cannot reach?), so this script ended it"
  elif [ -f "$state/ended_after_term" ]; then
    after="mpirun had not ended $term_grace s after a SIGTERM passed on to it (a host it cannot reach?), so this script ended it"
  fi
  if [ -f "$state/start_timeout" ]; then
    local hosts
    hosts=$(cat "$state/start_timeout")
    echo "launch/run.sh: Open MPI could not start on every host within $start_timeout s (SX_START_TIMEOUT): $hosts did not call back (check that each host reaches this one: firewall, OMPI_MCA_oob_tcp_if_include); exit 2" >&2
    code=2
  elif [ -f "$state/requeue" ] && [ "$rc" != 75 ] && [ -n "$after" ]; then
    echo "launch/run.sh: rank 0 wrote the checkpoint and said it exits with 75; $after; exit 75 (resume with --resume auto)" >&2
    code=75
  elif [ -f "$state/requeue" ] && [ "$rc" != 75 ]; then
    echo "launch/run.sh: rank 0 wrote the checkpoint and the ranks stopped with 75, but mpirun exited with $rc (Open MPI's code after a SIGTERM or Ctrl-C); exit 75 (resume with --resume auto)" >&2
    code=75
  elif [ -f "$state/finished" ] && [ "$rc" != 0 ] && [ "$rc" != 75 ] && [ -n "$after" ]; then
    echo "launch/run.sh: rank 0 had finished the job (its job time line above: every file written); $after; exit 0" >&2
    code=0
  elif [ -f "$state/terminated" ] && [ -f "$state/finished" ] && [ "$rc" != 0 ] && [ "$rc" != 75 ]; then
    # Rank 0 logs its job time after the final export, on the way to exit 0: nothing was lost.
    echo "launch/run.sh: mpirun exited with $rc after a SIGTERM passed on to it, but rank 0 had finished the job (its job time line above: every file written); exit 0" >&2
    code=0
  elif [ -n "$lost" ] && [ ! -f "$state/requeue" ] && [ ! -f "$state/finished" ]; then
    echo "launch/run.sh: $lost: Open MPI lost contact with its daemon there (host down or cut off) and ended the job; exit 1" >&2
    code=1
  elif [ -f "$state/ended_after_term" ]; then
    echo "launch/run.sh: mpirun had not ended $term_grace s after a SIGTERM passed on to it (a host it cannot reach? Open MPI waits for its daemon there), so this script ended it: a checkpoint or features file the ranks were writing may be incomplete or missing; resume with --resume auto; exit 1" >&2
    code=1
  elif [ -f "$state/terminated" ] && [ ! -f "$state/requeue" ] && [ "$rc" != 0 ] && [ "$rc" != 75 ]; then
    echo "launch/run.sh: mpirun exited with $rc after a SIGTERM passed on to it (Open MPI kills the ranks a second later): a checkpoint or features file they were writing is incomplete or missing; resume with --resume auto; exit $code" >&2
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

if [ -n "$pending" ]; then
  echo "launch/run.sh: SIG$pending came before the ranks started: nothing to checkpoint, not starting them; exit 1" >&2
  exit 1
fi
watch_stderr <"$state/stderr" &
watcher=$!
train_args=("$@")
# Signals sent to this script (Slurm's warning signal, a kill) go to mpirun, which forwards
# them to the ranks (held until it has started); a Ctrl-C asks for a stop (on_interrupt).
# Detached from the terminal, mpirun no longer gets its hang-up or Ctrl-\ (SIGQUIT): they are
# passed on as SIGHUP and SIGTERM. Ctrl-Z stops this script alone (and the watch of mpirun's
# output, whose writes then wait): training goes on, and `fg` resumes the script. The script
# keeps waiting, to say how the job ended.
pid=""
for sig in USR1 USR2 TERM; do trap "forward $sig" "$sig"; done
trap on_interrupt INT
# From a terminal, mpirun runs in a session of its own (see the top: the terminal's Ctrl-C is
# this script's). It keeps its pid ($!): a background child of a script leads no process
# group, so setsid execs in place, and so does the shell that starts a watch ending mpirun
# (SIGTERM) should this script die without passing a signal on (SIGKILL), since the terminal
# would no longer end it. The watch is nobody's child and holds none of mpirun's output.
detach=()
if in_terminal_foreground && command -v setsid >/dev/null; then
  # shellcheck disable=SC2016  # expanded by the inner shell
  detach=(setsid bash -c '( (while kill -0 $$; do kill -0 "$0" || { kill -TERM $$; exit; }
    sleep 1; done) </dev/null >/dev/null 2>&1 & ); exec "$@"' "$$")
fi
${detach[@]+"${detach[@]}"} mpirun "${args[@]}" "$bin" train --config "$config" "$@" 2>"$state/stderr" &
pid=$!
echo "$pid" >"$state/pid"
starter=""
if [ "$remote" = 1 ] && [ "$start_timeout" -gt 0 ]; then
  watch_start </dev/null >/dev/null 2>&1 &
  starter=$!
fi
trap '' PIPE  # (now that mpirun has started:) an output whose reader has gone fails, not kills
if [ ${#detach[@]} -gt 0 ]; then
  trap 'kill -s HUP $pid 2>/dev/null || true' HUP
  trap 'forward TERM' QUIT
else
  trap : HUP
fi
[ -z "$pending" ] || forward "$pending"  # came during the launch
rc=0
while :; do
  wait "$pid" 2>/dev/null && rc=0 || rc=$?  # (bash's own notice of a killed mpirun: not needed)
  kill -0 "$pid" 2>/dev/null && continue  # wait returned for a trap: keep waiting
  # Ended. A trap that cut the wait short (128 + its signal) as mpirun ended left mpirun's own
  # status to collect; a wait that had collected it finds no such child (127).
  if [ "$rc" -gt 128 ]; then
    again=0
    wait "$pid" 2>/dev/null || again=$?
    [ "$again" = 127 ] || rc=$again
  fi
  break
done
# The watch ends when every writer of mpirun's stderr has closed it; a daemon left behind on
# a lost host may keep it open, so wait a moment at most.
for _ in $(seq 50); do
  kill -0 "$watcher" 2>/dev/null || break
  sleep 0.1
done
kill "$watcher" 2>/dev/null || true
[ -f "$state/ender" ] && kill "$(cat "$state/ender")" 2>/dev/null || true
[ -z "$starter" ] || kill "$starter" 2>/dev/null || true
[ -f "$state/finisher" ] && kill "$(cat "$state/finisher")" 2>/dev/null || true
[ -f "$state/term_ender" ] && kill "$(cat "$state/term_ender")" 2>/dev/null || true
set +e  # its lines may find no reader: the code is what matters
explain_end "$rc"
exit
}
