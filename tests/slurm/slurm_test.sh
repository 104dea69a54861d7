#!/usr/bin/env bash
# A real Slurm (Debian's 22.05) on this machine: munged, slurmctld and slurmd started without
# systemd from a generated slurm.conf; slurm/train.sbatch submitted with sbatch; a preemption
# forced mid-run (the warning signal, then the requeue); the job must resume from its
# checkpoint and end with the same final parameters as an uninterrupted run.
# Usage: slurm_test.sh BINARY FIXTURES SOURCE_DIR      (root; CTest label "slurm")
set -euo pipefail
bin=$1 fixtures=$2 source=$3
test_name="slurm test"
# shellcheck source=../script_util.sh
source "$source/tests/script_util.sh"
# shellcheck source=slurm_lib.sh
source "$source/tests/slurm/slurm_lib.sh"
slurm_needs

work=$(mktemp -d /tmp/sx-slurm.XXXXXX)
token=sx-slurm-test-$$-$RANDOM
job=""
finish() {
  local rc=$?
  set +e
  trap '' TERM INT
  stop_slurm_test
  bystander_left_alone || { echo "$test_name: the clean-up ended a process it did not start"; rc=1; }
  rm -rf "$work" || rc=1
  exit "$rc"
}
trap finish EXIT
start_bystander
trap 'log "failed at line $LINENO"; dump' ERR
host=$(hostname -s)
mem=$(awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo)
write_slurm_conf "$host" "NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN"
start_munge
slurmctld -i
slurmd
wait_until 60 "the node to become idle" nodes_idle 1
log "slurm is up ($host idle)"

"$bin" data synth --out "$work/data" --rows 6000 --seed 9 >/dev/null
common=(run.threads=1 data.train_csv="$work/data/jigsaw-unintended-bias-train.csv"
  data.multilingual_csv="$work/data/validation.csv" data.test_csv="$work/data/test.csv"
  data.train_pairs=2000 data.val_pairs=64 tokenizer.model="$fixtures/tokenizer/sentencepiece.bpe.model"
  tokenizer.max_len=32 model.pretrained="$fixtures/hf-tiny-xlmr" train.pairs_per_rank=4
  train.steps_per_epoch=20 train.max_steps=160 export.before_training=false)
cat > "$work/config.yaml" <<CONF
run: {seed: 11}
CONF

# The uninterrupted reference, straight under mpirun.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SX_BIN=$bin SX_CPU_RANKS=2
env SX_TEST_TOKEN="$token" "$source/launch/run.sh" "$work/config.yaml" run.dir="$work/reference" \
  "${common[@]}" >"$work/reference.log" 2>&1 || { cat "$work/reference.log"; fail "reference run failed"; }

# The same run as a Slurm job, preempted mid-run.
job=$(cd "$source" && env SX_TEST_TOKEN="$token" SX_REPO="$source" sbatch --parsable --nodes=1 \
  --ntasks-per-node=2 --cpus-per-task=1 --time=30:00 --gpus-per-node=0 --output="$work/job.out" \
  slurm/train.sbatch "$work/config.yaml" run.dir="$work/slurm" "${common[@]}")
log "submitted job $job"
preempt_and_resume "$job" "$work/slurm" 30
same_final_params "$work/reference/checkpoints/step-0000000160.h5" "$work/slurm/checkpoints/step-0000000160.h5"
log "passed"
