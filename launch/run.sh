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
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SX_BIN:-$root/build/src/app/siamese-xlmr}
[ $# -ge 1 ] || { echo "usage: launch/run.sh CONFIG [key=value ...] [--resume auto|PATH]" >&2; exit 2; }
config=$1
shift
[ -x "$bin" ] || { echo "launch/run.sh: $bin not built; run launch/build.sh" >&2; exit 2; }

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

args=(-q --map-by "slot:PE=$per_rank" --bind-to core)
[ "$per_rank" -eq 1 ] && [ "$per_node" -gt "$cores" ] && args=(-q --oversubscribe --bind-to none)
if [ -n "${SX_HOSTFILE:-}" ]; then
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
# exec: mpirun replaces this shell, so signals sent to it (SIGUSR1 from Slurm) reach it and it
# forwards them to the ranks.
exec mpirun "${args[@]}" "$bin" train --config "$config" "$@"
