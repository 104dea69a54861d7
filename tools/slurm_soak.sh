#!/usr/bin/env bash
# The real-Slurm preempt/requeue/resume test N times in a row (default 10) on busy cores
# (tools/soak.sh); with "cluster", the multi-node one on 2 hosts in network namespaces.
# Usage: tools/slurm_soak.sh [runs] [build-dir] [cluster]   (after the build; root)
set -euo pipefail
test='^slurm\.preempt_requeue_resume$'
[ "${3:-}" = cluster ] && test='^cluster\.slurm$'
exec "$(dirname "$0")/soak.sh" "${1:-10}" "${2:-build}" -R "$test"
