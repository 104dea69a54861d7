#!/usr/bin/env bash
# Submits slurm/train.sbatch with the time limit and run.max_duration kept in step: training
# stops by itself 15 minutes before the limit (time-based stopping, then export), and the
# warning signal 10 minutes before it is the safety net.
# Usage: slurm/submit.sh CONFIG [--time T] [--nodes N] [--gpus-per-node G] [--ranks-per-node R]
#                          [--cpus-per-rank C] [--no-input-check] [--dry-run] [key=value ...]
#   T in any of Slurm's formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (default 08:30:00).
#   R ranks (tasks) per node, default G (one per GPU; G 0 needs R: CPU nodes); C CPUs per rank,
#   default train.sbatch's 8. --dry-run prints the sbatch command instead of running it.
#   The configuration is read first (also with --dry-run), by build/src/app/siamese-xlmr or
#   SX_BIN, from the checkout's root as the job reads it: relative paths inside it (run.dir,
#   data files, the tokenizer and model) are the checkout's, where the job runs, and the input
#   files it names must exist (--no-input-check: inputs only the compute nodes see, such as
#   node-local staging, are not looked for here).
set -euo pipefail
usage="usage: slurm/submit.sh CONFIG [--time T] [--nodes N] [--gpus-per-node G] [--ranks-per-node R] [--cpus-per-rank C] [--no-input-check] [--dry-run] [key=value ...]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
# CONFIG and SX_BIN as the caller gave them, before the cd below (the job gets CONFIG's full path).
config=$(realpath -m -- "$1")
shift
[ -z "${SX_BIN:-}" ] || SX_BIN=$(realpath -m -- "$SX_BIN")
cd "$(dirname "$0")/.."
time=08:30:00 nodes=1 gpus=8 ranks="" cpus="" dry_run=0 check_inputs=(--check-inputs)
overrides=()
while [ $# -gt 0 ]; do
  case $1 in
    --time | --nodes | --gpus-per-node | --ranks-per-node | --cpus-per-rank)
      [ $# -ge 2 ] || { echo "submit: $1 needs a value" >&2; exit 2; } ;;&
    --nodes | --gpus-per-node | --ranks-per-node | --cpus-per-rank)
      [[ $2 =~ ^[0-9]+$ ]] || { echo "submit: $1 '$2' is not a number" >&2; exit 2; } ;;&
    --time) time=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    --ranks-per-node) ranks=$2; shift 2 ;;
    --cpus-per-rank) cpus=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --no-input-check) check_inputs=(); shift ;;
    --*) echo "submit: unknown option $1; $usage" >&2; exit 2 ;;
    *=*)
      key=${1%%=*}
      if [ "${key//[[:space:]]/}" = run.max_duration ]; then  # (the program trims the key)
        # It came last and won: training then overran the time limit.
        echo "submit: $1: run.max_duration comes from --time (the limit less 900 s); give --time instead" >&2
        exit 2
      fi
      overrides+=("$1"); shift ;;
    *) overrides+=("$1"); shift ;;
  esac
done

# Seconds in a Slurm time limit: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (sbatch(1), --time).
slurm_seconds() {
  local t=$1 days=0 rest
  local num='[0-9]+'
  if [[ $t =~ ^($num)-(.*)$ ]]; then
    days=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
    if [[ $rest =~ ^($num)$ ]]; then echo $((10#$days * 86400 + 10#${BASH_REMATCH[1]} * 3600))
    elif [[ $rest =~ ^($num):($num)$ ]]; then
      echo $((10#$days * 86400 + 10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60))
    elif [[ $rest =~ ^($num):($num):($num)$ ]]; then
      echo $((10#$days * 86400 + 10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60 + 10#${BASH_REMATCH[3]}))
    else return 1; fi
  elif [[ $t =~ ^($num)$ ]]; then echo $((10#${BASH_REMATCH[1]} * 60))
  elif [[ $t =~ ^($num):($num)$ ]]; then echo $((10#${BASH_REMATCH[1]} * 60 + 10#${BASH_REMATCH[2]}))
  elif [[ $t =~ ^($num):($num):($num)$ ]]; then
    echo $((10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60 + 10#${BASH_REMATCH[3]}))
  else return 1; fi
}

limit=$(slurm_seconds "$time") || {
  echo "submit: --time '$time' is not a Slurm time limit (expected M, M:S, H:M:S, D-H, D-H:M or D-H:M:S)" >&2
  exit 2
}
budget=$(( limit - 900 ))
[ "$budget" -gt 300 ] || { echo "submit: --time $time ($limit s) leaves no time to train (at least 1201 s needed: training stops 900 s before the limit)" >&2; exit 2; }
[ "$nodes" -ge 1 ] || { echo "submit: --nodes $nodes: expected 1 or more" >&2; exit 2; }
[ -z "$ranks" ] || [ "$ranks" -ge 1 ] || { echo "submit: --ranks-per-node $ranks: expected 1 or more" >&2; exit 2; }
[ -z "$cpus" ] || [ "$cpus" -ge 1 ] || { echo "submit: --cpus-per-rank $cpus: expected 1 or more" >&2; exit 2; }
ranks=${ranks:-$gpus}
[ "$ranks" -ge 1 ] || { echo "submit: --gpus-per-node 0 needs --ranks-per-node (ranks on each CPU node)" >&2; exit 2; }
# The configuration as the job will read it (from this directory, as sbatch runs the job): a
# missing file (the configuration or an input it names), an unknown key or a bad value is said
# here, in the program's one line, not when the job starts after its wait in the queue; so is
# the stop signal train.sbatch refuses.
bin=${SX_BIN:-build/src/app/siamese-xlmr}
[ -x "$bin" ] || { echo "submit: $bin is not built (launch/build.sh): the job runs it" >&2; exit 2; }
stop_signal=$("$bin" config --config "$config" --get dist.stop_signal ${check_inputs[@]+"${check_inputs[@]}"} \
  ${overrides[@]+"${overrides[@]}"}) || exit 2
if [ "$stop_signal" = TERM ]; then
  echo "submit: dist.stop_signal: TERM cannot ask the ranks for a checkpoint through mpirun (it kills them a second later); use USR1 or USR2" >&2
  exit 2
fi
cmd=(sbatch --time="$time" --nodes="$nodes" --ntasks-per-node="$ranks" --gpus-per-node="$gpus")
[ -n "$cpus" ] && cmd+=(--cpus-per-task="$cpus")
cmd+=(slurm/train.sbatch "$config" run.max_duration="${budget}s" ${overrides[@]+"${overrides[@]}"})
if [ "$dry_run" -eq 1 ]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
exec "${cmd[@]}"
