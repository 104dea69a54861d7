#!/usr/bin/env bash
# Runs one MPI rank of a job that puts several ranks on ONE GPU through real NCCL, for tests
# (issue #22): NCCL refuses two ranks on one device of one host, so each rank gets its own
# NCCL_HOSTID; NCCL then sees separate hosts and joins them over its socket transport on the
# loopback interface. NVIDIA does not support this for production; public projects use it for
# one-GPU data-parallel tests. Usage: mpirun -np 2 launch/nccl-one-gpu.sh PROGRAM [ARGS...]
set -euo pipefail
rank=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-${SLURM_PROCID:-0}}}
export NCCL_HOSTID="sx-one-gpu-rank-$rank"
export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-lo}
export NCCL_IB_DISABLE=1
# The fake hosts are one machine: no multi-node NVLink (NCCL 2.27+ may try it across "hosts").
export NCCL_MNNVL_ENABLE=0
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
exec "$@"
