# Shared by the cluster tests (sourced): a cluster of hosts made by cluster.sh and torn down
# however the test ends, a tiny training set-up on it, and waits on conditions.
# After `source lib.sh BINARY FIXTURES SOURCE_DIR NAME`: $bin, $fixtures, $source, $work (a
# scratch directory under /tmp, removed at the end), log/fail/wait_until (script_util.sh) and
# the functions below. A machine where
# clusters cannot be made skips the test (exit 77, one line saying why).
bin=$1 fixtures=$2 source=$3 test_name=$4
cluster=$source/tests/cluster/cluster.sh
# shellcheck source=../script_util.sh
source "$source/tests/script_util.sh"

if ! why=$("$cluster" check); then
  echo "$test_name: skipped, ${why#cluster: }"
  exit 77
fi
work=$(mktemp -d "/tmp/sx-$test_name.XXXXXX")
cdir=""
# Runs to its end whatever fails in it (set +e), and a second TERM or INT (a user's, a
# launcher's) does not cut it short.
on_exit() {
  local rc=$?
  set +e
  trap '' TERM INT
  if declare -F before_teardown >/dev/null; then (before_teardown) || rc=1; fi
  if [ -n "$cdir" ]; then
    "$cluster" down "$cdir" || rc=1
    # nothing of the cluster's left: its directory, Open MPI's files named after its hosts
    local left="" pattern
    for pattern in "$cdir" "${TMPDIR:-/tmp}/ompi.$PREFIX-*" "/dev/shm/*$PREFIX-*"; do
      left+=$(compgen -G "$pattern" | tr '\n' ' ' || true)
    done
    [ -z "$left" ] || { log "FAILED: left behind after the teardown: $left"; rc=1; }
  fi
  # SX_KEEP_WORK=failed keeps the scratch directory of a failed test, =all every one
  case ${SX_KEEP_WORK:-}:$rc in
    all:* | failed:[1-9]*) log "kept $work" ;;
    *) rm -rf "$work" || rc=1 ;;
  esac
  exit "$rc"
}
# (No TERM trap: bash runs the EXIT trap at once on a TERM, where a trap would wait for the
# command in the foreground, a launch of minutes.)
trap on_exit EXIT

# What helps when a test fails (script_util.sh's fail calls it): the launcher's last lines.
dump() {
  [ -f "$work/out" ] && { echo "--- launch/run.sh's output (last 30 lines)"; tail -n 30 "$work/out"; }
  [ -n "$cdir" ] || return 0
  local host pid
  for host in head $HOSTS; do
    echo "--- processes on $host"
    for pid in $("$cluster" pids "$cdir" "$host"); do
      echo "$pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-150)"
    done
  done
}

# make_cluster N: hosts n1..nN; $cdir, $PREFIX, host names as h1, h2, ... ($PREFIX-n1, ...).
make_cluster() {
  cdir=$("$cluster" up "$1" --owner $$)
  # shellcheck disable=SC1091
  source "$cdir/env"
  local i
  for i in $(seq 1 "$1"); do eval "h$i=$PREFIX-n$i"; done
}

# hostfile NAME HOST:SLOTS ...: writes $work/NAME.hosts and prints its path
hostfile() {
  local file=$work/$1.hosts spec
  shift
  : >"$file"
  for spec in "$@"; do echo "${spec%:*} slots=${spec##*:}" >>"$file"; done
  echo "$file"
}

# The tiny training job (script_util.sh's tiny_job): data and a config in $work.
make_job() { tiny_job "$bin" "$fixtures" "$work" 6000; }

# launch HOSTFILE RANKS_PER_HOST [train args...]: launch/run.sh on the head node, as an operator
# runs it; blocks; its exit code is returned, its output in $work/out.
launch() {
  local hosts=$1 per_host=$2
  shift 2
  "$cluster" exec "$cdir" head env OMPI_MCA_plm_rsh_agent="$cdir/rsh-agent" \
    OMPI_MCA_plm_rsh_no_tree_spawn=1 SX_HOSTFILE="$hosts" SX_RANKS_PER_NODE="$per_host" \
    SX_BIN="$bin" timeout -k 5 "${SX_LAUNCH_LIMIT:-300}" \
    "$source/launch/run.sh" "$work/config.yaml" "$@" >"$work/out" 2>&1
}

# launch_bg ...: launch in the background; its pid in $launched, its code in $work/rc when done.
# $work/out is emptied before it returns: a wait on the new run's output must not find the last
# run's lines there before the background launch has opened the file (cluster.faults' afterwork
# scenario cut host 2 before its run had started when it found the slow scenario's export line).
launch_bg() {
  rm -f "$work/rc"
  : >"$work/out"
  (launch "$@" && echo 0 >"$work/rc" || echo $? >"$work/rc") &
  launched=$!
}

# rank_pid RUN_DIR RANK: the pid rank RANK logged at start-up.
rank_pid() {
  sed -n 's/.* pid \([0-9]*\) on .*/\1/p' "$1/log/rank-$2.log" 2>/dev/null | tail -n 1
}

# python with h5py and numpy (Debian's)
python=/usr/bin/python3
[ -x "$python" ] || python=python3
