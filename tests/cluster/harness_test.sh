#!/usr/bin/env bash
# The cluster harness itself (cluster.sh): hosts with their own names that resolve each other,
# Open MPI across them through the rsh agent, a link shaped by tc, a partition and its
# healing, a crash, and a teardown that removes exactly what was made, also when the owner
# is killed; the machine's own network and /etc/hosts unchanged; skipped without root.
# Usage: harness_test.sh BINARY FIXTURES SOURCE_DIR   (CTest label "cluster")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
machine_links=$(ip -o link show | cut -d: -f2 | sort)
machine_hosts=$(md5sum </etc/hosts)
# shellcheck source=lib.sh
source "$here/lib.sh" "$1" "$2" "$3" cluster-harness

# Without root the tests skip, saying why in one line.
if id nobody >/dev/null 2>&1; then
  rc=0
  said=$(runuser -u nobody -- "$cluster" check 2>&1) || rc=$?
  [ "$rc" = 77 ] && [ "$(echo "$said" | grep -c .)" = 1 ] || fail "as nobody: exit $rc, said: $said"
  log "not root: $said"
fi

make_cluster 2
on() { "$cluster" exec "$cdir" "$@"; }
[ "$(on n1 hostname)" = "$h1" ] && [ "$(on n2 hostname)" = "$h2" ] && [ "$(on head hostname)" = "$HEAD" ] ||
  fail "hostnames"
[ "$(hostname)" != "$h1" ] || fail "the machine's hostname changed"
on n1 getent hosts "$h2" | grep -q '^198\.18\.0\.2 ' || fail "$h2 does not resolve on $h1"
! getent hosts "$h1" >/dev/null || fail "$h1 resolves on the machine itself"
for a in $(on n1 ip -o -4 addr show | awk '{print $4}') $(on head ip -o -4 addr show | awk '{print $4}'); do
  case $a in 127.* | 198.18.* | 198.19.*) ;; *) fail "address $a outside 198.18.0.0/15" ;; esac
done

# Open MPI from the head node onto both hosts through the rsh agent.
ranks=$(on head env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  OMPI_MCA_plm_rsh_agent="$cdir/rsh-agent" OMPI_MCA_plm_rsh_no_tree_spawn=1 \
  timeout 60 mpirun --hostfile "$cdir/hostfile" -np 2 hostname 2>/dev/null | sort | tr '\n' ' ')
[ "$ranks" = "$h1 $h2 " ] || fail "mpirun ran on '$ranks'"
log "mpirun through the rsh agent: $ranks"

# TCP from n1 to n2: SEND bytes; the seconds they took go to $work/took (a function called at
# the top level, so that its fail ends the test). The receiver listens first, for 60 s at most.
send() {
  on n2 "$python" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(60); print("ready", flush=True)
c, _ = s.accept(); c.settimeout(60); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    n += len(b)
print(n)' >"$work/received" &
  local receiver=$!
  wait_until 30 "the receiver" grep -q ready "$work/received"
  on n1 "$python" -c '
import socket, sys, time
s = socket.create_connection(("'"$h2"'", 5001), timeout=10)
t = time.monotonic(); s.sendall(b"x" * int(sys.argv[1])); s.shutdown(socket.SHUT_WR); s.recv(1)
print(f"{time.monotonic() - t:.3f}")' "$1" >"$work/took" ||
    { kill "$receiver" 2>/dev/null; fail "sending $1 bytes from n1 to n2 failed"; }
  wait "$receiver" || fail "the receiver on n2 failed"
  [ "$(tail -n 1 "$work/received")" = "$1" ] || fail "sent $1 bytes, received $(tail -n 1 "$work/received")"
}
"$cluster" link "$cdir" n1 10mbit
send 2000000
took=$(cat "$work/took")
# 2 MB at 10 Mbit/s take at least 1.6 s less the bucket's 32 KiB; a busy machine only adds time.
awk -v t="$took" 'BEGIN{exit !(t >= 1.5)}' || fail "2 MB crossed a 10 Mbit/s link in $took s"
"$cluster" link "$cdir" n1 off
send 2000000
log "link shaped: 2 MB at 10 Mbit/s took $took s; unshaped $(cat "$work/took") s"

# A partition drops everything; healing restores it.
connects() {  # connects SECONDS: whether n1 gets an answer from the head (a refusal counts)
  on n1 "$python" -c '
import socket, sys
try:
    socket.create_connection(("'"$HEAD"'", 9), timeout=float(sys.argv[1]))
except ConnectionRefusedError:
    sys.exit(0)   # refused: the head answered
except OSError:
    sys.exit(1)   # no answer
' "$1"
}
connects 5 || fail "n1 cannot reach the head"
"$cluster" partition "$cdir" n1
! connects 1 || fail "a partitioned host still reaches the head"
"$cluster" heal "$cdir" n1
connects 1 || fail "a healed host does not reach the head at once"
log "partition: no answer while cut off, answers as soon as healed"

# A crash ends every process of the host and nothing else.
processes_on() { [ "$("$cluster" pids "$cdir" "$1" | wc -l)" -ge "$2" ]; }
# (None of these sleeps holds the test's output: one left behind must not keep CTest waiting.)
"$cluster" exec "$cdir" n2 sleep 1000 </dev/null >/dev/null 2>&1 &
disown $!  # (no notice when the crash kills it)
"$cluster" exec "$cdir" n2 sleep 1000 </dev/null >/dev/null 2>&1 &
disown $!
sleep 1000 </dev/null >/dev/null 2>&1 &
bystander=$!
owner=""
before_teardown() { kill ${bystander:+"$bystander"} ${owner:+"$owner"} 2>/dev/null || true; }
wait_until 30 "two processes on n2" processes_on n2 2
"$cluster" crash "$cdir" n2
! processes_on n2 1 || fail "processes left on n2 after a crash"
kill -0 "$bystander" || fail "a crash of n2 killed a process of the machine"
kill "$bystander"
bystander=""  # (so that the clean-up signals no pid the system has given to another process)
wait 2>/dev/null || true
log "crash: every process of n2 ended, the machine's own untouched"

# Teardown removes exactly what was made.
made=$(cat "$cdir/made")
"$cluster" down "$cdir"
dir=$cdir
cdir=""
[ ! -e "$dir" ] || fail "$dir left behind"
! ip netns list | grep -q "^$PREFIX" || fail "namespaces left: $(ip netns list | grep "^$PREFIX")"
! grep -q "$dir" /proc/mounts || fail "mounts left"
log "teardown: removed $(echo "$made" | wc -l) made things"

# A killed owner: its guardian tears the cluster down.
bash -c "\"$cluster\" up 1 >\"$work/killed.dir\"; exec sleep 1000" </dev/null >/dev/null \
  2>"$work/owner.err" &
owner=$!
disown "$owner"
wait_until 30 "the owner's cluster" test -s "$work/killed.dir"
killed=$(cat "$work/killed.dir")
kill -KILL "$owner"
owner=""
wait_until 30 "the guardian to tear $killed down" test ! -e "$killed"
! ip netns list | grep -q "^$(basename "$killed" | sed 's/^sx-cluster-//')" || fail "namespaces left after the owner was killed"
log "owner killed: its cluster was torn down"

[ "$(ip -o link show | cut -d: -f2 | sort)" = "$machine_links" ] || fail "the machine's links changed"
[ "$(md5sum </etc/hosts)" = "$machine_hosts" ] || fail "/etc/hosts changed"
log "passed"
