#!/usr/bin/env bash
# A real Slurm (Debian's 22.05) on this machine: munged, slurmctld and slurmd started without
# systemd from a generated slurm.conf; slurm/train.sbatch submitted with sbatch; a preemption
# forced mid-run (the warning signal, then the requeue); the job must resume from its
# checkpoint and end with the same final parameters as an uninterrupted run.
# Usage: slurm_test.sh BINARY FIXTURES SOURCE_DIR      (root; CTest label "slurm")
set -euo pipefail
bin=$1 fixtures=$2 source=$3
[ "$(id -u)" -eq 0 ] || { echo "slurm test: skipped, needs root to run the daemons"; exit 77; }
for tool in slurmctld slurmd sbatch munged; do
  command -v $tool >/dev/null || { echo "slurm test: $tool missing (launch/install-deps.sh installs it)"; exit 1; }
done

work=$(mktemp -d /tmp/sx-slurm.XXXXXX)
chmod 755 "$work"  # munged runs as user munge
host=$(hostname -s)
export SLURM_CONF=$work/slurm.conf
cleanup() {
  [ -f "$work/slurmctld.pid" ] && kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true
  [ -f "$work/slurmd.pid" ] && kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true
  [ -f "$work/munged.pid" ] && kill "$(cat "$work/munged.pid")" 2>/dev/null || true
  pkill -f "siamese-xlmr train" 2>/dev/null || true
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "slurm test: $*"; }
dump() {
  scontrol show job "${job:-0}" 2>/dev/null | head -25 || true
  sinfo 2>/dev/null || true
  for f in job.out slurmctld.log slurmd.log; do [ -f "$work/$f" ] && { echo "--- $f"; tail -25 "$work/$f"; }; done
}
fail() { log "$*"; dump; exit 1; }
trap 'log "failed at line $LINENO"; dump' ERR

mkdir -p "$work/state" "$work/spool" "$work/munge" "$work/data"
mem=$(awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo)
cat > "$SLURM_CONF" <<CONF
ClusterName=sxtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

# munge: its own key (no /etc changes), socket and pid in the work directory.
chown munge: "$work/munge" 2>/dev/null || true
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chown munge: "$work/munge/munge.key"; chmod 400 "$work/munge/munge.key"
runuser -u munge -- /usr/sbin/munged --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
  --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" --seed-file="$work/munge/seed" --force
cp "$work/munge/munged.pid" "$work/munged.pid"
# Slurm's munge plugin reads the socket path from AuthInfo.
# cred_expire: how long a requeued job waits before it starts again (default 120 s). Forcing an
# earlier start raced with the old instance's revoked credential ("Job credential revoked",
# then "already killed, do not launch batch job"), so the test lets Slurm start it, soon.
sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$work/munge/munge.socket,cred_expire=10|" "$SLURM_CONF"
sed -i "s|^CredType=cred/munge|CredType=cred/munge|" "$SLURM_CONF"
slurmctld -i
slurmd
for i in $(seq 60); do
  state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
  [ "$state" = "idle" ] && break
  sleep 1
done
[ "$state" = "idle" ] || { log "node never became idle (state '$state')"; tail -20 "$work/slurmctld.log" "$work/slurmd.log"; exit 1; }
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
"$source/launch/run.sh" "$work/config.yaml" run.dir="$work/reference" "${common[@]}" >"$work/reference.log" 2>&1 \
  || { log "reference run failed"; cat "$work/reference.log"; exit 1; }

# The same run as a Slurm job, preempted mid-run.
job=$(cd "$source" && SX_REPO=$source sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=30:00 \
  --gpus-per-node=0 --output="$work/job.out" slurm/train.sbatch "$work/config.yaml" run.dir="$work/slurm" "${common[@]}")
log "submitted job $job"
for i in $(seq 240); do
  steps=$(grep -c '"type":"step"' "$work/slurm/metrics.jsonl" 2>/dev/null || true)
  [ "${steps:-0}" -ge 30 ] && break
  sleep 0.5
done
[ "${steps:-0}" -ge 30 ] || fail "job never trained"
log "preempting job $job after $steps steps (warning signal to the batch shell)"
scancel --signal=USR1 --batch "$job"
# The script requeues itself; Slurm starts the job again once cred_expire (10 s) has passed.
for i in $(seq 120); do
  grep -q "requeueing" "$work/job.out" 2>/dev/null && break
  sleep 0.5
done
grep -q "requeueing" "$work/job.out" || fail "job did not requeue"
# Wait for the second start in the job log (squeue can briefly not list a job while it is
# requeued, so the log, not squeue, says when it restarted).
for i in $(seq 360); do
  grep -q '^=== job .* start 1 ' "$work/job.out" 2>/dev/null && break
  sleep 0.5
done
grep -q '^=== job .* start 1 ' "$work/job.out" || fail "the job did not start again after the requeue"
# ... and for the restarted run's own exit line.
for i in $(seq 600); do
  awk '/^=== job .* start 1 /{s=1} s && /^=== .* exit /{f=1} END{exit !f}' "$work/job.out" && break
  sleep 0.5
done
cat "$work/job.out" | grep '^===' || true
starts=$(grep -c '^=== job .* start' "$work/job.out" || true)
[ "$starts" -ge 2 ] || fail "expected a second start after the requeue"
grep -q "resumed from" "$work/slurm/log/rank-0.log" || { log "the requeued job did not resume"; exit 1; }
awk '/^=== job .* start 1 /{s=1} s && /^=== .* exit 0$/{f=1} END{exit !f}' "$work/job.out" \
  || fail "the resumed job did not finish cleanly"

python=/usr/bin/python3; [ -x $python ] || python=python3
$python - "$work/reference/checkpoints/step-0000000160.h5" "$work/slurm/checkpoints/step-0000000160.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = sorted(a["params"])
assert names == sorted(b["params"]), "different parameter sets"
diff = [n for n in names if not np.array_equal(a["params"][n][()], b["params"][n][()])]
assert not diff, f"parameters differ: {diff[:3]}"
assert np.array_equal(a["optimizer/m"][()], b["optimizer/m"][()]) and np.array_equal(a["optimizer/v"][()], b["optimizer/v"][()])
print(f"slurm test: final parameters bitwise equal to the uninterrupted run ({len(names)} tensors)")
PY
log "passed"
