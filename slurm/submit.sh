#!/usr/bin/env bash
# Submits slurm/train.sbatch with the time limit and run.max_duration kept in step: training
# stops by itself 15 minutes before the limit (time-based stopping, then export), and the
# warning signal 10 minutes before it is the safety net.
# Usage: slurm/submit.sh CONFIG [--time HH:MM:SS] [--nodes N] [--gpus-per-node G] [key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: slurm/submit.sh CONFIG [--time HH:MM:SS] [--nodes N] [--gpus-per-node G] [key=value ...]" >&2; exit 2; }
config=$1
shift
time=08:30:00 nodes=1 gpus=8
overrides=()
while [ $# -gt 0 ]; do
  case $1 in
    --time) time=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    *) overrides+=("$1"); shift ;;
  esac
done
IFS=: read -r h m s <<<"$time"
limit=$(( 10#$h * 3600 + 10#$m * 60 + 10#${s:-0} ))
budget=$(( limit - 900 ))
[ "$budget" -gt 300 ] || { echo "submit: --time $time leaves no time to train" >&2; exit 2; }
exec sbatch --time="$time" --nodes="$nodes" --ntasks-per-node="$gpus" --gpus-per-node="$gpus" \
  slurm/train.sbatch "$config" run.max_duration="${budget}s" "${overrides[@]}"
