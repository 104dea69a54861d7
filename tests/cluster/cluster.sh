#!/usr/bin/env bash
# A cluster of hosts on this machine: each host a network namespace with a hostname of its own
# (a UTS namespace), joined to a head node's bridge by a veth link; every host sees the
# machine's file system, as a cluster's nodes see their shared storage. Addresses come from
# 198.18.0.0/15 (reserved for benchmarking) and live only inside the cluster's namespaces:
# the machine's own network, its /etc/hosts and its other namespaces are left untouched
# (commands run in a host see the cluster's names through a private bind mount of /etc/hosts).
#
# Usage: cluster.sh COMMAND ...
#   check                       exit 0 if clusters can be made here, else 77 and one line why
#   up N [--owner PID]          makes hosts n1..nN and a head; prints the cluster's directory
#                               (DIR below). Everything is torn down when PID (default: the
#                               caller) exits, even if it is killed, unless `down` ran first.
#   down DIR                    tears down exactly what `up` made (its journal, DIR/made)
#   exec DIR HOST CMD [ARG...]  runs CMD inside HOST (n1, head, its full hostname or address)
#   rsh HOST CMD-STRING...      DIR from CLUSTER_DIR; what Open MPI's plm_rsh_agent calls
#                               (DIR/rsh-agent): runs the words as one shell command in HOST
#   host DIR HOST               the full hostname of HOST
#   pids DIR HOST               the pids of every process in HOST
#   crash DIR HOST              SIGKILL to every process in HOST (a node that dies)
#   partition DIR HOST / heal DIR HOST
#                               HOST's link down (all its packets dropped) / up again
#                               (heal returns once HOST reaches the head)
#   link DIR HOST RATE [DELAY]  HOST's link shaped both ways (tc): RATE like 100mbit, 1gbit,
#                               or "off"; DELAY like 2ms needs the kernel's netem qdisc
#   reap                        tears down clusters whose owner is gone (normally their
#                               guardian already did)
#
# In DIR: hosts (the cluster's /etc/hosts), hostfile (one "HOST slots=1" line per host), env
# (PREFIX, HOSTS, HEAD for `source`), rsh-agent, made (the journal), owner.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
subnet=198.18.0  # hosts .1 to .N, the head .254

die() { echo "cluster: $*" >&2; exit 1; }

# Why clusters cannot be made here ("" when they can).
why_not() {
  [ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)"; return; }
  local tool
  for tool in ip tc nsenter unshare mount umount tail setsid; do
    command -v "$tool" >/dev/null || { echo "needs $tool (iproute2, util-linux, coreutils)"; return; }
  done
  local probe=sxprobe$$
  if ! ip netns add "$probe" 2>/dev/null; then echo "cannot create a network namespace"; return; fi
  ip netns del "$probe"
}

start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

load() {  # load DIR: the cluster's variables
  DIR=$1
  [ -f "$DIR/env" ] || die "$DIR is not a cluster directory"
  # shellcheck disable=SC1091
  source "$DIR/env"
}

# The short name (n1, head) of HOST given as short or full name.
short_name() {
  local h=$1 s address
  for s in $HOSTS head; do
    address=$subnet.${s#n}
    [ "$s" = head ] && address=$subnet.254
    if [ "$h" = "$s" ] || [ "$h" = "$PREFIX-$s" ] || [ "$h" = "$address" ]; then echo "$s"; return; fi
  done
  echo "cluster: no host '$h' in cluster $PREFIX (hosts: $(echo "$HOSTS" | sed "s/\([^ ]*\)/$PREFIX-\1/g"))" >&2
  exit 255  # what ssh returns when it cannot reach a host
}

journal() { echo "$*" >>"$DIR/made"; }

make_host() {  # make_host SHORT ADDRESS: namespace, hostname, link to the head's bridge
  local s=$1 address=$2 ns=$PREFIX-$1
  journal netns "$ns"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  : >"$DIR/uts/$s"
  journal uts "$DIR/uts/$s"
  unshare --uts="$DIR/uts/$s" hostname "$PREFIX-$s"
  if [ "$s" = head ]; then
    ip -n "$ns" link add br0 type bridge
    ip -n "$ns" addr add "$address/24" dev br0
    ip -n "$ns" link set br0 up
    return
  fi
  ip -n "$PREFIX-head" link add "$s" type veth peer name eth0 netns "$ns"
  ip -n "$PREFIX-head" link set "$s" master br0 up
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
}

cmd_up() {
  local n=$1 owner=$PPID
  [ "${2:-}" = --owner ] && owner=$3
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up: N must be 1 to 200, got '$n'"
  local why
  why=$(why_not)
  [ -z "$why" ] || { echo "cluster: cannot run here: $why" >&2; exit 77; }
  cmd_reap
  umask 022
  while :; do
    PREFIX=sx$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    DIR=/tmp/sx-cluster-$PREFIX
    mkdir "$DIR" 2>/dev/null && break
  done
  mkdir "$DIR/uts"
  echo "$owner $(start_time "$owner")" >"$DIR/owner"
  HOSTS=$(seq -f 'n%g' 1 "$n" | tr '\n' ' ' | sed 's/ $//')
  printf 'PREFIX=%s\nHOSTS="%s"\nHEAD=%s\n' "$PREFIX" "$HOSTS" "$PREFIX-head" >"$DIR/env"
  # The guardian: tears the cluster down once the owner is gone, however it ended.
  setsid -f bash -c 'echo $$ >"$1/guardian"; tail --pid="$2" -f /dev/null; exec "$3" down "$1"' \
    guardian "$DIR" "$owner" "$self" </dev/null >/dev/null 2>&1
  trap 'echo "cluster: up failed; tearing down $DIR" >&2; cmd_down "$DIR"' ERR
  make_host head "$subnet.254"
  local i
  { cat /etc/hosts; echo "$subnet.254 $PREFIX-head"; } >"$DIR/hosts"
  for i in $(seq 1 "$n"); do
    make_host "n$i" "$subnet.$i"
    echo "$subnet.$i $PREFIX-n$i" >>"$DIR/hosts"
    echo "$PREFIX-n$i slots=1" >>"$DIR/hostfile"
  done
  printf '#!/bin/sh\nCLUSTER_DIR=%s exec %s rsh "$@"\n' "$DIR" "$self" >"$DIR/rsh-agent"
  chmod 755 "$DIR/rsh-agent"
  trap - ERR
  echo "$DIR"
}

# Kills every process in namespace NS and waits until none is left.
kill_all_in() {
  local ns=$1 pids i
  for i in $(seq 100); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    # a killed process leaves the namespace when its parent has reaped it
    [ "$i" -gt 1 ] && sleep 0.05
  done
  echo "cluster: processes $pids in $ns did not end" >&2
}

cmd_down() {
  DIR=$1
  [ -d "$DIR" ] || return 0
  exec 9>>"$DIR/lock"
  flock 9
  [ -f "$DIR/made" ] || { rm -rf "$DIR"; return 0; }
  local guardian
  guardian=$(cat "$DIR/guardian" 2>/dev/null || true)
  [ -n "$guardian" ] && [ "$guardian" != "$$" ] && kill "$guardian" 2>/dev/null || true
  local kind name
  # processes first (a namespace lives as long as a process in it), then the names, newest first
  while read -r kind name; do
    [ "$kind" = netns ] && kill_all_in "$name"
  done < <(tac "$DIR/made")
  while read -r kind name; do
    case $kind in
      netns) ip netns del "$name" 2>/dev/null || true ;;
      uts) umount "$name" 2>/dev/null || true ;;
    esac
  done < <(tac "$DIR/made")
  remove_mpi_leftovers "${DIR##*/sx-cluster-}"
  rm -rf "$DIR"
}

# What Open MPI's processes in the hosts of cluster PREFIX left on the shared file systems when
# they were killed (a crash, a rank cut off): session directories and shared-memory segments,
# named after the hosts (/tmp/ompi.PREFIX-n1.0, /dev/shm/vader_segment.PREFIX-n1.*).
remove_mpi_leftovers() {
  [[ $1 =~ ^sx[0-9a-f]{6}$ ]] || return 0
  rm -rf "${TMPDIR:-/tmp}/ompi.$1-"* /dev/shm/vader_segment."$1-"*
}

cmd_reap() {
  local d owner pid start
  for d in /tmp/sx-cluster-sx*; do
    [ -f "$d/owner" ] || continue
    read -r pid start <"$d/owner" || continue
    [ -n "$pid" ] && [ "$(start_time "$pid")" = "$start" ] && continue
    echo "cluster: tearing down $d, left by process $pid" >&2
    (cmd_down "$d")
  done
}

cmd_exec() {
  load "$1"
  local s
  s=$(short_name "$2") || exit 255
  shift 2
  exec nsenter --net="/run/netns/$PREFIX-$s" --uts="$DIR/uts/$s" -- \
    unshare --mount --propagation private -- \
    /bin/sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' "$PREFIX-$s" "$DIR/hosts" "$@"
}

cmd_link() {
  load "$1"
  local s rate=$3 delay=${4:-}
  s=$(short_name "$2") || exit 255
  local -a ends=("$PREFIX-$s eth0" "$PREFIX-head $s")
  local end ns dev
  for end in "${ends[@]}"; do
    read -r ns dev <<<"$end"
    tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null || true
    [ "$rate" = off ] && continue
    if [ -n "$delay" ]; then
      tc -n "$ns" qdisc add dev "$dev" root netem delay "$delay" rate "$rate" 2>/dev/null ||
        die "link: cannot add a delay (this kernel has no netem qdisc, CONFIG_NET_SCH_NETEM)"
    else
      # a token bucket of 1 ms at the rate (at least two 1500-byte frames), queueing up to
      # 100 ms: longer bursts would let whole small messages pass at the veth's own speed
      local bits
      bits=$(rate_bits "$rate") || die "link: rate '$rate' is not like 100mbit, 1gbit, 500kbit"
      local burst=$((bits / 8 / 1000))
      [ "$burst" -ge 3028 ] || burst=3028
      tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 100ms
    fi
  done
}

# Brings host S's link up again and returns once S reaches the head. The neighbour entries
# that failed while the link was down (S's own, and the others' for S) are forgotten first:
# left alone, the kernel answers connections over them with "No route to host" for seconds
# after the link is back, and Open MPI's daemons give up at once.
cmd_heal() {
  local s=$1 h i said
  ip -n "$PREFIX-head" link set "$s" up
  ip -n "$PREFIX-$s" neigh flush dev eth0
  for h in head $HOSTS; do
    [ "$h" = "$s" ] || ip -n "$PREFIX-$h" neigh flush to "$subnet.${s#n}"
  done
  for i in $(seq 100); do  # a refused connection: the head answered
    said=$(nsenter --net="/run/netns/$PREFIX-$s" timeout 1 bash -c \
      "exec 3<>/dev/tcp/$subnet.254/9" 2>&1) || true
    case $said in *refused*) return 0 ;; esac
    [ "$i" -lt 100 ] && sleep 0.1
  done
  die "heal: $PREFIX-$s does not reach the head (${said:-no answer}) after its link came back"
}

rate_bits() {  # 100mbit -> 100000000
  local r=$1
  [[ $r =~ ^([0-9]+)(kbit|mbit|gbit)$ ]] || return 1
  case ${BASH_REMATCH[2]} in
    kbit) echo $((BASH_REMATCH[1] * 1000)) ;;
    mbit) echo $((BASH_REMATCH[1] * 1000000)) ;;
    gbit) echo $((BASH_REMATCH[1] * 1000000000)) ;;
  esac
}

[ $# -ge 1 ] || { sed -n '2,/^set -eu/p' "$0" | sed '$d'; exit 2; }
command=$1
shift
case $command in
  check)
    why=$(why_not)
    [ -z "$why" ] || { echo "cluster: cannot run here: $why"; exit 77; } ;;
  up) [ $# -ge 1 ] || die "usage: up N [--owner PID]"; cmd_up "$@" ;;
  down) [ $# -eq 1 ] || die "usage: down DIR"; cmd_down "$1" ;;
  reap) cmd_reap ;;
  exec) [ $# -ge 3 ] || die "usage: exec DIR HOST CMD [ARG...]"; cmd_exec "$@" ;;
  rsh)
    [ -n "${CLUSTER_DIR:-}" ] || die "rsh: CLUSTER_DIR is not set"
    [ $# -ge 2 ] || die "usage: rsh HOST CMD-STRING..."
    host=$1
    shift
    cmd_exec "$CLUSTER_DIR" "$host" /bin/sh -c "$*" ;;
  host)
    load "$1"; s=$(short_name "$2") || exit 255; echo "$PREFIX-$s" ;;
  pids)
    load "$1"; s=$(short_name "$2") || exit 255; ip netns pids "$PREFIX-$s" ;;
  crash)
    load "$1"; s=$(short_name "$2") || exit 255; kill_all_in "$PREFIX-$s" ;;
  partition | heal)
    load "$1"; s=$(short_name "$2") || exit 255
    [ "$s" != head ] || die "$command: the head has no link of its own; name a host"
    if [ "$command" = partition ]; then ip -n "$PREFIX-head" link set "$s" down; else cmd_heal "$s"; fi ;;
  link) [ $# -ge 3 ] || die "usage: link DIR HOST RATE [DELAY]"; cmd_link "$@" ;;
  *) die "unknown command '$command' (check, up, down, exec, rsh, host, pids, crash, partition, heal, link, reap)" ;;
esac
