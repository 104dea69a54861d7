#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step_ functions run through `gpu-check.sh --step NAME`
# GPU check in ONE device call (10 minutes at most), run ON the GPU machine (offline, nothing
# installable): builds against the machine's torch with CUDA into build-gpu/ only what the GPU
# checks need, then, each step under its own timeout and all within a deadline counted from the
# script's start:
#   1. machine      nvidia-smi, torch's version
#   2. build        siamese-xlmr and the test binaries labelled gpu (test_gpu, test_step_graphs,
#                   test_reducer) (everything with SX_GPU_CHECK_UNIT=1)
#   3. gpu tests    ctest -L gpu --timeout 150; fails if any of them skipped (nothing should on
#                   the GPU machine)
#   4. two ranks    tools/gpu_two_ranks.sh: 2 ranks on the one GPU through real NCCL
#   5. unit tests   ctest -L unit on the 2.x build, only with SX_GPU_CHECK_UNIT=1 (CI runs them)
#   6. extra        launch/gpu-check-extra.sh (trainings through launch/run.sh, bench train,
#                   export-hf), last: SX_GPU_CHECK_EXTRA=1 always, 0 never, default only if at
#                   least 150 s are left
# and prints a table of the steps (passed, failed, skipped, not reached; seconds).
#   SX_GPU_CHECK_DEADLINE   seconds from the start for everything (default 540)
# Prepare here first with launch/gpu-prepare.sh and carry .gpu-deps and .fixtures. Writes the log
# to $OUT/gpu-check.log (when $OUT is set; else /tmp) and exits non-zero on any failure.
set -uo pipefail
self=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$self")/.." || exit 1
bin=build-gpu/src/app/siamese-xlmr

# ---- the steps (each runs as `gpu-check.sh --step NAME` under timeout, in a child bash that
# inherits gpu-env.sh's variables and gpu_build)
step_machine() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader || true
  python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)'
}
step_build() {
  if [ "${SX_GPU_CHECK_UNIT:-0}" = 1 ]; then
    gpu_build || return 1
  else
    gpu_build siamese-xlmr test_gpu test_step_graphs test_reducer || return 1
  fi
  "$bin" version
}
step_gpu_tests() {
  local junit=$PWD/build-gpu/ctest-gpu.xml console=$PWD/build-gpu/ctest-gpu.out status=0
  rm -f "$junit"
  # The whole output of passed tests too: a gtest that skips inside an mpirun test passes.
  ctest --test-dir build-gpu -L gpu --timeout 150 --output-on-failure \
    --output-junit "$junit" --test-output-size-passed 1048576 2>&1 | tee "$console"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  grep -qE "tests? failed out of [1-9]" "$console" || { echo "GPU tests: none ran"; status=1; }
  # On the GPU machine no GPU test may skip (each skips with a reason where there is no CUDA).
  local skipped
  skipped=$(grep -E '\(Skipped\)|\*\*\*Skipped|\[  SKIPPED \]' "$console")
  if [ -f "$junit" ]; then
    skipped+=$(python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    out = "".join(e.text or "" for e in case.iter("system-out"))
    if case.get("status") in ("skipped", "notrun", "disabled") or "[  SKIPPED ]" in out:
        lines = [l for l in out.splitlines() if "SKIPPED" in l or "Skipped" in l]
        print(f"\n{case.get('name')}: {case.get('status')} {' | '.join(lines[:3])}")
PY
)
  fi
  if [ -n "$skipped" ]; then
    echo "GPU tests: FAILED: tests skipped on the GPU machine:"
    echo "$skipped"
    status=1
  fi
  return "$status"
}
step_two_ranks() {
  tools/gpu_two_ranks.sh "$bin"
}
step_unit_tests() {
  ctest --test-dir build-gpu -L unit --output-on-failure --parallel 8
}
step_extra() {
  launch/gpu-check-extra.sh
}
if [ "${1:-}" = --step ]; then
  "step_$2"
  exit
fi

# ---- the check
started=$SECONDS
deadline=${SX_GPU_CHECK_DEADLINE:-540}
names=() results=() seconds=()
status=0
record() {  # record NAME RESULT SECONDS
  names+=("$1") results+=("$2") seconds+=("$3")
}
# run_step NAME CAP: the step under timeout, at most CAP seconds and what is left before the
# deadline (10 s kept for the table); 0 when it passed.
run_step() {
  local name=$1 cap=$2 limit t0 rc
  limit=$((deadline - (SECONDS - started) - 10))
  ((limit > cap)) && limit=$cap
  if ((limit < 15)); then
    echo "=== $name: not run, out of time"
    record "$name" "not reached (out of time)" 0
    status=1
    return 1
  fi
  echo "=== $name (at most ${limit} s; $(date +%T), $((SECONDS - started)) s in)"
  t0=$SECONDS
  timeout -k 10 "$limit" "$self" --step "$name"
  rc=$?
  case $rc in
    0) record "$name" passed $((SECONDS - t0)) ;;
    124 | 137)
      # "the deadline" only where the deadline, not the step's own cap or an inner timeout,
      # cut it short.
      if ((limit < cap && SECONDS - t0 >= limit)); then
        record "$name" "failed (timed out at $limit s: the deadline)" $((SECONDS - t0))
      else
        record "$name" "failed (timed out at $limit s)" $((SECONDS - t0))
      fi ;;
    *) record "$name" "failed (exit $rc)" $((SECONDS - t0)) ;;
  esac
  ((rc == 0)) || status=1
  return $rc
}
summary() {
  echo
  echo "=== summary ($((SECONDS - started)) s of the $deadline s deadline)"
  printf '%-12s %-40s %8s\n' step result seconds
  local i
  for i in "${!names[@]}"; do
    printf '%-12s %-40s %8s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}"
  done
  if [ $status -eq 0 ]; then echo "GPU CHECK PASSED"; else echo "GPU CHECK FAILED"; fi
}
main() {
  echo "=== gpu-check ($(date +%T)): deadline $deadline s"
  # shellcheck source=launch/gpu-env.sh
  source launch/gpu-env.sh
  export torch_prefix deps_root fixtures
  export -f gpu_build
  run_step machine 60
  if run_step build 420; then
    run_step gpu_tests 300
    run_step two_ranks 300
    if [ "${SX_GPU_CHECK_UNIT:-0}" = 1 ]; then
      run_step unit_tests 300
    else
      record unit_tests "skipped (SX_GPU_CHECK_UNIT=1 runs it)" 0
    fi
    local extra=${SX_GPU_CHECK_EXTRA:-auto} left=$((deadline - (SECONDS - started)))
    if [ "$extra" = 1 ] || { [ "$extra" = auto ] && ((left >= 150)); }; then
      local before=$status
      run_step extra 300
      # Run only because time was left: stopped at the deadline, it fails nothing.
      if [ "$extra" = auto ] && [[ ${results[-1]} == *": the deadline)" ]]; then
        results[-1]="stopped at the deadline (not counted)"
        status=$before
      fi
    elif [ "$extra" = 0 ]; then
      record extra "skipped (SX_GPU_CHECK_EXTRA=0)" 0
    else
      record extra "skipped ($left s left, under 150)" 0
    fi
  else
    for name in gpu_tests two_ranks unit_tests extra; do
      record "$name" "not reached (no build)" 0
    done
  fi
  summary
  return "$status"
}

out=${OUT:-/tmp}
mkdir -p "$out"
# A pipe into tee that the script waits for (a process substitution could lose the last lines).
main 2>&1 | tee "$out/gpu-check.log"
exit "${PIPESTATUS[0]}"
