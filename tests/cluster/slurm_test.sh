#!/usr/bin/env bash
# Multi-node Slurm on a cluster of 2 hosts: slurmctld on the head node, a slurmd in each host
# (NodeName = the host's name). slurm/submit.sh --nodes 2 runs the job on both hosts (mpirun in
# the allocation starts its daemons through Slurm); the warning signal before the time limit
# gives checkpoint, requeue and resume across the 2 nodes, and the job ends with the same
# parameters as an uninterrupted run on the same 2 hosts x 2 ranks.
# Usage: slurm_test.sh BINARY FIXTURES SOURCE_DIR   (CTest label "cluster")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh" "$1" "$2" "$3" cluster-slurm
# shellcheck source=../slurm/slurm_lib.sh
source "$source/tests/slurm/slurm_lib.sh"
slurm_needs
steps=150 preempt_at=10

token=sx-cluster-slurm-$$-$RANDOM
job=""
before_teardown() {
  stop_slurm_test
  bystander_left_alone || fail "the clean-up ended a process it did not start"
}
start_bystander
make_cluster 2
make_job
slurm_at=("$cluster" exec "$cdir" head)
write_slurm_conf "$HEAD" "NodeName=$h1,$h2 CPUs=$(nproc) RealMemory=1000 State=UNKNOWN"
start_munge
"$cluster" exec "$cdir" head slurmctld -i
"$cluster" exec "$cdir" n1 slurmd -N "$h1"
"$cluster" exec "$cdir" n2 slurmd -N "$h2"
wait_until 60 "both nodes to become idle" nodes_idle 2
log "slurm is up: slurmctld on $HEAD, slurmd on $h1 and $h2"

# The uninterrupted reference: the same 2 hosts x 2 ranks through a hostfile.
two=$(hostfile two "$h1:2" "$h2:2")
launch "$two" 2 run.dir="$work/reference" train.max_steps=$steps ||
  { cat "$work/out"; fail "the reference run failed"; }

# The job, through slurm/submit.sh (the time limit leaves training its 900 s budget).
submitted=$(slurm env SX_TEST_TOKEN="$token" SX_REPO="$source" SX_BIN="$bin" \
  SBATCH_OUTPUT="$work/job.out" "$source/slurm/submit.sh" "$work/config.yaml" --time 30:00 \
  --nodes 2 --gpus-per-node 0 --ranks-per-node 2 --cpus-per-rank 1 run.dir="$work/slurm" \
  train.max_steps=$steps)
job=${submitted##* }
[[ $job =~ ^[0-9]+$ ]] || fail "sbatch said: $submitted"
log "submitted job $job"
preempt_and_resume "$job" "$work/slurm" "$preempt_at"

grep -q "layout: 4 ranks on 2 hosts: $h1 ranks 0, 1; $h2 ranks 2, 3" "$work/job.out" ||
  fail "the job did not run 2 ranks on each host"
[ "$(grep -c "layout: 4 ranks on 2 hosts" "$work/job.out")" = 2 ] ||
  fail "both starts of the job should span the 2 hosts"
final=checkpoints/step-$(printf %010d $steps).h5
same_final_params "$work/reference/$final" "$work/slurm/$final"
log "passed"
