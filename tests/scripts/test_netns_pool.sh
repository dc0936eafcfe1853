#!/usr/bin/env bash
# deploy/netns-pool builds hosts that reach each other, and isolating one cuts it off both
# ways until healed. Skipped (and says so) without root or network namespaces.
set -u
cd "$(dirname "$0")/../.."
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
export PCHAT_NETNS_PREFIX="pct$$"
pool=deploy/netns-pool
if [ "$(id -u)" -ne 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIPPED: network-namespace pool tests need root and 'ip netns'"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
trap '$pool down >/dev/null 2>&1' EXIT
reach() {  # from to
  $pool exec "$1" bash -c "exec 3<>/dev/tcp/10.77.0.$2/$3" 2>/dev/null
}
$pool up 3 >/dev/null || { bad "up 3"; echo "pchat-summary: $pass passed, $((fail)) failed"; exit 1; }
# A listener on every host, reached over TCP from the others.
for i in 1 2 3; do
  $pool exec $i python3 -c "
import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 7600)); s.listen(50)
s.settimeout(0.2)
end=time.time()+30
while time.time()<end:
    try: c,_=s.accept(); c.close()
    except OSError: pass
" &
done
sleep 0.5
if reach 1 2 7600 && reach 2 3 7600 && reach 3 1 7600; then ok "hosts reach each other"; else bad "hosts do not reach each other"; fi
$pool isolate 1 >/dev/null
if ! timeout 2 bash -c "$(declare -f reach); pool=$pool; reach 1 2 7600" && ! timeout 2 bash -c "$(declare -f reach); pool=$pool; reach 3 1 7600"; then
  ok "an isolated host is cut off both ways"
else
  bad "isolated host still reachable"
fi
if reach 2 3 7600; then ok "the majority side still talks"; else bad "majority side cut off"; fi
$pool heal >/dev/null
if reach 1 2 7600 && reach 3 1 7600; then ok "healing reconnects"; else bad "heal did not reconnect"; fi
if ! $pool netem 2 delay 100ms >/dev/null 2>&1; then
  echo "SKIPPED: netem: this kernel has no sch_netem qdisc (tc says the kind is unknown)"
else
  start=$(date +%s%N)
  reach 1 2 7600
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  if [ "$ms" -ge 90 ]; then ok "netem delays traffic (${ms} ms connect)"; else bad "netem delay not applied (${ms} ms)"; fi
fi
kill $(jobs -p) 2>/dev/null
wait 2>/dev/null
echo "pchat-summary: $pass passed, $fail failed"
[ $fail -eq 0 ]
