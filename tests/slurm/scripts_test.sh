#!/usr/bin/env bash
# The Slurm scripts' own logic, without a Slurm: slurm/submit.sh reads every Slurm time format
# (checked with --dry-run), and slurm/train.sbatch requeues only after progress, within its
# restart cap, forwards the configured stop signal, and outside Slurm never trips on unset
# variables. The trainer is stood in for by a script (SX_BIN) that answers `config --get` and
# whose `train` writes a checkpoint (or not) and exits like a stopped run; scontrol likewise.
# Usage: scripts_test.sh SOURCE_DIR          (CTest label "unit")
set -euo pipefail
source=$1
work=$(mktemp -d /tmp/sx-slurm-scripts.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "FAIL: $1: expected [$2], got [$3]"; failures=$((failures + 1)); fi
}

# The trainer and scontrol stood in for (submit.sh reads the configuration with `config --get`).
mkdir -p "$work/bin" "$work/run/checkpoints"
cat > "$work/bin/fake-trainer" <<'FAKE'
#!/usr/bin/env bash
# config --config C --get KEY [overrides]  |  train --config C [overrides] --resume auto
if [ "$1" = config ]; then
  if [ -n "${FAKE_CONFIG_ERROR:-}" ]; then echo "$FAKE_CONFIG_ERROR" >&2; exit 2; fi
  [ -z "${FAKE_ARGS_LOG:-}" ] || echo "$*" >>"$FAKE_ARGS_LOG"
  if [ -n "${FAKE_SIGNAL_BATCH:-}" ] && [ "$5" = dist.stop_signal ]; then
    # Slurm's warning while the batch shell reads its configuration.
    for _ in $(seq 100); do [ -s "$FAKE_RUN_DIR/batch.pid" ] && break; sleep 0.1; done
    kill -USR1 "$(cat "$FAKE_RUN_DIR/batch.pid")"
  fi
  case $5 in
    dist.stop_signal) echo "${FAKE_SIGNAL:-USR1}" ;;
    run.dir) echo "$FAKE_RUN_DIR" ;;
  esac
  exit 0
fi
[ "${OMPI_COMM_WORLD_RANK:-0}" = 0 ] || exit "${FAKE_RC:-75}"
[ -n "${FAKE_WRITE:-}" ] && touch "$FAKE_RUN_DIR/checkpoints/$FAKE_WRITE"
if [ -n "${FAKE_WAIT_SIGNAL:-}" ]; then   # a run that stops on its stop signal
  trap 'echo "got SIG$FAKE_WAIT_SIGNAL" >"$FAKE_RUN_DIR/signal"; exit 75' "$FAKE_WAIT_SIGNAL"
  touch "$FAKE_RUN_DIR/ready"
  for _ in $(seq 600); do sleep 0.1; done
  exit 1
fi
exit "${FAKE_RC:-75}"
FAKE
cat > "$work/bin/scontrol" <<'FAKE'
#!/usr/bin/env bash
echo "$*" >>"$FAKE_RUN_DIR/scontrol.calls"
FAKE
chmod +x "$work/bin/fake-trainer" "$work/bin/scontrol"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SX_CPU_RANKS=1
export SX_BIN=$work/bin/fake-trainer FAKE_RUN_DIR=$work/run SX_REPO=$source PATH=$work/bin:$PATH

# --- submit.sh: time formats -> run.max_duration = limit - 900 s
budget_for() {
  "$source/slurm/submit.sh" cfg.yaml --time "$1" --dry-run 2>&1 | grep -o 'run.max_duration=[0-9]*s' || true
}
check "M"        "run.max_duration=2700s"   "$(budget_for 60)"
check "M:S"      "run.max_duration=2730s"   "$(budget_for 60:30)"
check "H:M:S"    "run.max_duration=29700s"  "$(budget_for 08:30:00)"
check "D-H"      "run.max_duration=89100s"  "$(budget_for 1-01)"
check "D-H:M"    "run.max_duration=88200s"  "$(budget_for 1-00:45)"
check "D-H:M:S"  "run.max_duration=85500s"  "$(budget_for 1-00:00:00)"
check "30:00 is 30 minutes" "run.max_duration=900s" "$(budget_for 30:00)"
for bad in "" abc 1:2:3:4 1- -5 08:30:xx; do
  rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --time "$bad" --dry-run 2>&1) || rc=$?
  check "refuses --time '$bad' with exit 2" "2" "$rc"
  case $out in *"not a Slurm time limit"*) ;; *) check "message for '$bad'" "not a Slurm time limit" "$out" ;; esac
done
rc=0; "$source/slurm/submit.sh" cfg.yaml --time 10 --dry-run >/dev/null 2>&1 || rc=$?
check "refuses a limit too short to train" "2" "$rc"
# The inputs are checked before queueing (the program's --check-inputs), with the overrides.
: >"$work/config-args"
FAKE_ARGS_LOG=$work/config-args "$source/slurm/submit.sh" cfg.yaml --dry-run a.b=c >/dev/null
check "reads the configuration with --check-inputs and the overrides" "1" \
  "$(grep -c -- '--get dist.stop_signal --check-inputs a.b=c$' "$work/config-args")"
: >"$work/config-args"
FAKE_ARGS_LOG=$work/config-args "$source/slurm/submit.sh" cfg.yaml --no-input-check --dry-run a.b=c >/dev/null
check "--no-input-check: the configuration alone" "1" \
  "$(grep -c -- '--get dist.stop_signal a.b=c$' "$work/config-args")"
check "keeps overrides" "1" "$("$source/slurm/submit.sh" cfg.yaml --time 2:00:00 --dry-run a.b=c | grep -c 'a.b=c')"
# A run.max_duration of the user's came after the computed one and won over the time limit.
rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --time 2:00:00 --dry-run run.max_duration=5h 2>&1) || rc=$?
check "run.max_duration given: refused" "2:1" "$rc:$(grep -c 'comes from --time' <<<"$out")"
for spelled in " run.max_duration=5h" "run.max_duration =5h"; do
  rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --time 2:00:00 --dry-run "$spelled" 2>&1) || rc=$?
  check "run.max_duration given as '$spelled': refused" "2:1" "$rc:$(grep -c 'comes from --time' <<<"$out")"
done
rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --bogus --dry-run 2>&1) || rc=$?
check "an unknown option: refused with the usage" "2:1" "$rc:$(grep -c 'unknown option --bogus; usage:' <<<"$out")"
check "the job gets the configuration's full path" "1" \
  "$(cd "$work" && "$source/slurm/submit.sh" cfg.yaml --dry-run | grep -c -- " $work/cfg.yaml ")"
check "CPU nodes: ranks and CPUs per node" \
  "--nodes=2 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1" \
  "$("$source/slurm/submit.sh" cfg.yaml --nodes 2 --gpus-per-node 0 --ranks-per-node 2 --cpus-per-rank 1 --dry-run |
    grep -o -- '--nodes=.*--cpus-per-task=1')"
rc=0; "$source/slurm/submit.sh" cfg.yaml --gpus-per-node 0 --dry-run >/dev/null 2>&1 || rc=$?
check "refuses CPU nodes without --ranks-per-node" "2" "$rc"
rc=0; "$source/slurm/submit.sh" cfg.yaml --nodes two --dry-run >/dev/null 2>&1 || rc=$?
check "refuses --nodes that is not a number" "2" "$rc"
rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --nodes 0 --dry-run 2>&1) || rc=$?
check "refuses --nodes 0, naming it" "2:1" "$rc:$(grep -c -- '--nodes 0: expected 1 or more' <<<"$out")"
rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --ranks-per-node 0 --dry-run 2>&1) || rc=$?
check "refuses --ranks-per-node 0, naming it" "2:1" "$rc:$(grep -c -- '--ranks-per-node 0: expected 1 or more' <<<"$out")"
rc=0; out=$("$source/slurm/submit.sh" cfg.yaml --cpus-per-rank 0 --dry-run 2>&1) || rc=$?
check "refuses --cpus-per-rank 0, naming it" "2:1" "$rc:$(grep -c -- '--cpus-per-rank 0: expected 1 or more' <<<"$out")"
# The configuration is read before anything is queued: its mistakes showed only when the job
# started, after the queue's wait.
rc=0; out=$(FAKE_CONFIG_ERROR="siamese-xlmr: error: cfg.yaml:3: unknown key train.patiense" \
  "$source/slurm/submit.sh" cfg.yaml --dry-run 2>&1) || rc=$?
check "a configuration error: exit 2, its line, nothing submitted" "2:1:0" \
  "$rc:$(grep -c 'unknown key train.patiense' <<<"$out"):$(grep -c sbatch <<<"$out")"
rc=0; out=$(FAKE_SIGNAL=TERM "$source/slurm/submit.sh" cfg.yaml --dry-run 2>&1) || rc=$?
check "dist.stop_signal TERM: refused at submission" "2:1" \
  "$rc:$(grep -c 'dist.stop_signal: TERM cannot ask the ranks' <<<"$out")"

# --- train.sbatch with a stand-in trainer and scontrol
sbatch_run() { (cd "$work" && env "$@" bash "$source/slurm/train.sbatch" cfg.yaml >"$work/out" 2>&1); }

rc=0; sbatch_run -u SLURM_JOB_ID FAKE_WRITE=step-0000000010.h5 || rc=$?
check "outside Slurm: exit 75 passes through" "75" "$rc"
check "outside Slurm: no requeue" "0" "$(grep -c . "$work/run/scontrol.calls" 2>/dev/null || echo 0)"

rc=0; sbatch_run SLURM_JOB_ID=7 SLURM_RESTART_COUNT=0 FAKE_WRITE=step-0000000020.h5 || rc=$?
check "progress: requeued" "requeue 7" "$(cat "$work/run/scontrol.calls" 2>/dev/null)"
rm -f "$work/run/scontrol.calls"

rc=0; sbatch_run SLURM_JOB_ID=7 SLURM_RESTART_COUNT=1 || rc=$?
check "no new checkpoint: not requeued" "absent" "$([ -f "$work/run/scontrol.calls" ] && echo present || echo absent)"
check "no new checkpoint: job fails" "1" "$rc"
grep -q "without a new checkpoint" "$work/out" || check "no-progress message" "without a new checkpoint" "$(cat "$work/out")"

# The newest checkpoint written again under its own name (the start found it corrupt) is
# progress: it was compared by name only.
rc=0; sbatch_run SLURM_JOB_ID=7 SLURM_RESTART_COUNT=1 FAKE_WRITE=step-0000000020.h5 || rc=$?
check "the same step written again: requeued" "requeue 7" "$(cat "$work/run/scontrol.calls" 2>/dev/null)"
rm -f "$work/run/scontrol.calls"

rc=0; sbatch_run SLURM_JOB_ID=7 SLURM_RESTART_COUNT=3 SX_MAX_RESTARTS=3 FAKE_WRITE=step-0000000030.h5 || rc=$?
check "restart cap: not requeued" "absent" "$([ -f "$work/run/scontrol.calls" ] && echo present || echo absent)"
grep -q "SX_MAX_RESTARTS=3" "$work/out" || check "restart-cap message" "SX_MAX_RESTARTS=3" "$(cat "$work/out")"

# A cap that is no number made the test '[ 3 -ge abc ]' fail, and the job requeued without end.
rc=0; sbatch_run SLURM_JOB_ID=7 SLURM_RESTART_COUNT=50 SX_MAX_RESTARTS=abc FAKE_WRITE=step-0000000031.h5 || rc=$?
check "SX_MAX_RESTARTS abc: exit 2 naming it, no launch, no requeue" "2:1:absent" \
  "$rc:$(grep -c "SX_MAX_RESTARTS 'abc': expected a whole number" "$work/out"):$([ -f "$work/run/scontrol.calls" ] && echo present || echo absent)"
# Outside the checkout without SX_REPO: one line naming the folder and the variable.
rc=0; out=$(cd "$work" && env -u SX_REPO SLURM_SUBMIT_DIR="$work" bash "$source/slurm/train.sbatch" cfg.yaml 2>&1) || rc=$?
check "outside the checkout: exit 2, one line naming SX_REPO" "2:1" "$rc:$(grep -c "is not a siamese-xlmr checkout.*set SX_REPO" <<<"$out")"

rc=0; sbatch_run SLURM_JOB_ID=7 FAKE_RC=0 || rc=$?
check "a finished run exits 0 without requeue" "0:absent" "$rc:$([ -f "$work/run/scontrol.calls" ] && echo present || echo absent)"

# dist.stop_signal: TERM tore checkpoints (mpirun kills the ranks ~2 s after a SIGTERM).
rc=0; sbatch_run SLURM_JOB_ID=7 FAKE_SIGNAL=TERM || rc=$?
check "stop signal TERM: refused" "2" "$rc"
grep -q "dist.stop_signal: TERM cannot ask the ranks" "$work/out" || check "TERM message" "dist.stop_signal: TERM cannot ask the ranks" "$(cat "$work/out")"

# A warning before the launch killed the batch shell (its traps came after its first
# commands); now it is held and no rank starts.
rm -f "$work/run/batch.pid" "$work/run/ready"
(cd "$work" && exec env FAKE_SIGNAL_BATCH=1 FAKE_WAIT_SIGNAL=USR1 SLURM_JOB_ID=7 \
  bash "$source/slurm/train.sbatch" cfg.yaml >"$work/out" 2>&1) &
batch=$!
echo "$batch" >"$work/run/batch.pid"
rc=0; wait "$batch" || rc=$?
check "a warning before the launch: exit 1, no rank started" "1:absent" "$rc:$([ -f "$work/run/ready" ] && echo present || echo absent)"
grep -q "came before the launch: not starting the ranks" "$work/out" || check "early-warning message" "came before the launch" "$(cat "$work/out")"
rm -f "$work/run/batch.pid"

# The warning signal (USR1 from Slurm) reaches the ranks as the configured stop signal.
rm -f "$work/run/ready" "$work/run/signal"
(cd "$work" && exec env -u SLURM_JOB_ID FAKE_SIGNAL=USR2 FAKE_WAIT_SIGNAL=USR2 FAKE_WRITE=step-0000000040.h5 \
  bash "$source/slurm/train.sbatch" cfg.yaml >"$work/out" 2>&1) &
batch=$!
for _ in $(seq 300); do [ -f "$work/run/ready" ] && break; sleep 0.1; done
kill -USR1 "$batch"
rc=0; wait "$batch" || rc=$?
check "USR1 to the batch shell reaches the ranks as SIGUSR2" "got SIGUSR2" "$(cat "$work/run/signal" 2>/dev/null)"
check "and the run exits 75" "75" "$rc"

[ "$failures" -eq 0 ] && echo "slurm scripts: all checks passed" || { echo "slurm scripts: $failures failed"; exit 1; }
