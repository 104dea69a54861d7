#!/usr/bin/env bash
# The network model of docs/performance.md ("Communication") measured: `bench train` on 2 hosts
# x 1 rank (tests/cluster/cluster.sh: network namespaces on this machine, links shaped by tc),
# the tiny fixture model on the CPU, fp32 and bf16 on the wire, at each link rate; and the same
# step on 1 rank alone (no all-reduce). Prints one table: measured step and exposed all-reduce
# against the model's prediction for that rate and that step time (tools/network_model.py).
# Usage: tools/bench_network.sh [BUILD_DIR] [RATES] [STEPS] [REPEATS]   (root; take the CPU lock)
#   RATES: tc rates, default "100mbit 1gbit 10gbit off" (off: the veth link unshaped); each
#   sweep over them REPEATS (3) times, interleaved, and the table takes medians: the machine
#   is shared, and a slow spell then touches every setting alike.
# SX_BENCH_PAIRS (4 pairs per rank), SX_BENCH_MAX_LEN (64), SX_BENCH_MODEL (the tiny fixture).
# Results (JSON per setting and repeat) land in .bench/network/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
rates=${2:-100mbit 1gbit 10gbit off}
steps=${3:-60}
repeats=${4:-3}
bin=$root/$build/src/app/siamese-xlmr
model=${SX_BENCH_MODEL:-$root/../shared/fixtures/hf-tiny-xlmr/config.json}
pairs=${SX_BENCH_PAIRS:-4}
max_len=${SX_BENCH_MAX_LEN:-64}
cluster=$root/tests/cluster/cluster.sh
out=$root/.bench/network
mkdir -p "$out"
rm -f "$out"/*.json

cdir=$("$cluster" up 2 --owner $$)
trap '"$cluster" down "$cdir"' EXIT
# shellcheck disable=SC1091
source "$cdir/env"
hosts=$cdir/hostfile   # one slot on each of the 2 hosts
# --bind-to none below: the hosts share this machine's cores, and Open MPI binds the first rank
# of every host to core 0, where two ranks busy-polling for each other's messages take turns
# at the scheduler's tick (8 ms round trips instead of 30 us).
bench=(bench train --model "$model" --pairs "$pairs" --warmup 5 --steps "$steps"
  --max-len "$max_len" run.threads=1)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1

for k in $(seq 1 "$repeats"); do
  echo "sweep $k of $repeats: 1 rank alone (no all-reduce), then 2 hosts x 1 rank at $rates" >&2
  "$cluster" exec "$cdir" n1 "$bin" "${bench[@]}" --json "$out/one-rank-$k.json" >/dev/null
  for rate in $rates; do
    for host in n1 n2; do "$cluster" link "$cdir" "$host" "$rate"; done
    for wire in fp32 bf16; do
      "$cluster" exec "$cdir" head env OMPI_MCA_plm_rsh_agent="$cdir/rsh-agent" \
        OMPI_MCA_plm_rsh_no_tree_spawn=1 mpirun -q --bind-to none --hostfile "$hosts" -np 2 -x OMP_NUM_THREADS \
        "$bin" "${bench[@]}" dist.grad_dtype="$wire" --json "$out/$rate-$wire-$k.json" >/dev/null
    done
  done
done
python3 "$root/tools/network_model.py" "$model" "$out" $rates
