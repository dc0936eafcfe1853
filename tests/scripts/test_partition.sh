#!/usr/bin/env bash
# A 3-host pool in network namespaces (deploy/netns-pool): cut the owner of Lobby off the
# majority. The minority side must stop acknowledging posts (no split brain), the majority
# elects a new owner and goes on; after healing, every node serves one identical history
# holding every acknowledged post exactly once, which tests/checker proves over logs this
# script writes in its format. Skipped (and says so) without root or network namespaces.
set -u
cd "$(dirname "$0")/../.."
top=$(pwd)
build=${PCHAT_BUILD:-build}
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
finish() { echo "pchat-summary: $pass passed, $fail failed"; [ $fail -eq 0 ]; exit $?; }
if [ "$(id -u)" -ne 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIPPED: the partition test needs root and 'ip netns'"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
export PCHAT_NETNS_PREFIX="pcp$$"
pool=deploy/netns-pool
work=$(mktemp -d /tmp/pchat-partition-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  $pool down >/dev/null 2>&1
  [ -n "${PCHAT_TEST_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
$pool up 3 >/dev/null || { bad "deploy/netns-pool up 3"; finish; }

peers="1=10.77.0.1:7600,2=10.77.0.2:7600,3=10.77.0.3:7600"
for i in 1 2 3; do
  mkdir -p "$work/n$i"
  cat > "$work/n$i/pchatd.conf" <<CONF
[node]
id = $i
name = n$i
data_dir = $work/n$i/data
admin_socket = $work/n$i/admin.sock
[sip]
listen = 10.77.0.$i
tcp_port = 5060
[cluster]
listen = 10.77.0.$i:7600
peers = $peers
shards = 2
election_timeout_ms = 1000
heartbeat_ms = 100
[seed]
demo = yes
CONF
  $pool exec $i "$build/bin/pchatd" -c "$work/n$i/pchatd.conf" > "$work/n$i/pchatd.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 1 300); do grep -q "seed: demo" "$work/n$i/pchatd.log" && break; sleep 0.1; done
done
if grep -q "seed: demo" "$work"/n{1,2,3}/pchatd.log; then ok "3-host pool is up"; else
  bad "pool did not come up"; tail -5 "$work"/n*/pchatd.log; finish; fi

owner=0
for _ in $(seq 1 100); do
  owner=$("$build/bin/pchatctl" -S "$work/n1/admin.sock" --json room get Lobby |
          sed -n 's/.*"owner": *\([0-9]*\).*/\1/p' | head -1)
  [ "${owner:-0}" -ge 1 ] 2>/dev/null && break
  sleep 0.1
done
[ "${owner:-0}" -ge 1 ] || { bad "no owner known for Lobby"; finish; }
others=()
for i in 1 2 3; do [ "$i" -ne "$owner" ] && others+=("$i"); done
echo "  Lobby is owned by node $owner; isolating it"

# One client log per poster, in pchat-check's format (see pchat-check --help).
n=0
post() {  # host node log user text : posts through node from inside host's namespace
  local host=$1 node=$2 log=$3 user=$4 text=$5 out
  n=$((n + 1))
  printf 'S\tLobby\t%d\t%s\n' "$n" "$text" >> "$log"
  out=$(printf 'join Lobby\npost Lobby %s\nquit\n' "$text" |
        timeout 15 $pool exec "$host" "$build/bin/pchat" -s "10.77.0.$node:5060" -u "$user" 2>&1)
  if echo "$out" | grep -q "posted ok"; then printf 'A\t%d\n' "$n" >> "$log"; return 0; fi
  if echo "$out" | grep -qE "post: (403|404|503)"; then printf 'F\t%d\n' "$n" >> "$log"; return 1; fi
  printf 'U\t%d\n' "$n" >> "$log"
  return 2
}
for who in alice bob carol; do printf 'C\t%s\tsip:%s@example.test\n' "$who" "$who" > "$work/$who.log"; done

for k in 1 2 3; do post "$k" "$k" "$work/alice.log" alice@example.test "before-$k"; done

$pool isolate "$owner" >/dev/null
# The minority: its node cannot commit anything, so it must not say "posted ok".
if post "$owner" "$owner" "$work/bob.log" bob@example.test "minority-1"; then
  bad "the isolated owner acknowledged a post (split brain)"
else
  ok "the isolated owner does not acknowledge posts"
fi
# The majority: a new owner is elected and posting goes on.
acked=0
start=$(date +%s%N)
for k in $(seq 1 10); do
  node=${others[$((k % 2))]}
  for try in 1 2 3 4 5; do
    post "$node" "$node" "$work/carol.log" carol@example.test "majority-$k-$try" && { acked=$((acked + 1)); break; }
    sleep 0.5
  done
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$acked" -eq 10 ]; then ok "the majority side acknowledged 10 of 10 posts (${ms} ms)"; else
  bad "the majority side acknowledged only $acked of 10 posts"; fi

$pool heal >/dev/null
# Each node serves again once its peer links are back (reconnect backoff up to 2 s).
for k in 1 2 3; do
  for try in 1 2 3 4 5; do
    post "$k" "$k" "$work/alice.log" alice@example.test "after-$k-$try" && break
    sleep 0.5
  done
done

# Convergence: every node's history (through a client on that node) is the same.
dumps=()
for i in 1 2 3; do
  d="$work/history-n$i.log"
  printf 'N\tn%d\n' "$i" > "$d"
  for _ in $(seq 1 50); do
    if printf 'history Lobby 500\nquit\n' |
         timeout 15 $pool exec "$i" "$build/bin/pchat" -s "10.77.0.$i:5060" -u alice@example.test \
         > "$work/raw-n$i" 2>&1 && grep -q "after-3-" "$work/raw-n$i"; then break; fi
    sleep 0.2
  done
  # "history Lobby #SEQ TIME AUTHOR: TEXT" -> H line
  sed -n 's/^history Lobby #\([0-9]*\) [^ ]* \(sip:[^:]*@[^:]*\): \(.*\)$/H\tLobby\t\1\t\2\t\3/p' \
    "$work/raw-n$i" >> "$d"
  dumps+=("$d")
done
if cmp -s <(cut -f2- "${dumps[0]}" | tail -n +2) <(cut -f2- "${dumps[1]}" | tail -n +2) &&
   cmp -s <(cut -f2- "${dumps[0]}" | tail -n +2) <(cut -f2- "${dumps[2]}" | tail -n +2); then
  ok "all three nodes serve the same history after healing ($(($(wc -l < "${dumps[0]}") - 1)) messages)"
else
  bad "histories differ after healing"
fi
if "$build/bin/pchat-check" "$work"/{alice,bob,carol}.log "${dumps[@]}"; then
  ok "checker: no acknowledged post lost, none duplicated, one order"
else
  bad "checker found a violation (logs kept in $work)"; PCHAT_TEST_KEEP=1
fi
finish
