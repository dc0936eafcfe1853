#!/usr/bin/env bash
# SIPp (Debian sip-tester) replays the Lync 2013 flow from tests/sipp/ against a node: one
# call on its own, then 20 calls at once over separate connections. SIPp checks every
# answer and every reply it extracts (see the scenario's ereg actions).
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
if ! command -v sipp >/dev/null; then
  echo "SKIPPED: sipp is missing (deploy/install-deps installs sip-tester)"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
dir=$(mktemp -d /tmp/pchat-sipp-XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
base=$(( 28000 + ($$ % 50) * 40 ))
cat > "$dir/node.conf" <<CONF
[node]
data_dir = $dir/data
[sip]
tcp_port = $base
tls_port = 0
[cluster]
listen = 127.0.0.1:$((base + 1))
[web]
port = $((base + 3))
[seed]
demo = yes
CONF
"$build/bin/pchatd" -c "$dir/node.conf" > "$dir/node.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "seed: demo" "$dir/node.log" && break; sleep 0.1; done
scenario=$(pwd)/tests/sipp/lync_signin_join_post.xml
run() {  # label calls rate transport
  local out rc
  out=$(cd "$dir" && timeout 60 sipp -sf "$scenario" -t "$4" -max_socket 1000 -m "$2" -r "$3" -l 20 \
        -s pchat -i 127.0.0.1 -p $((base + 2)) "127.0.0.1:$base" -trace_err -nostdin 2>&1)
  rc=$?
  local good
  good=$(echo "$out" | sed -n 's/^  Successful call *| *[0-9]* *| *\([0-9]*\).*/\1/p' | tail -1)
  if [ $rc -eq 0 ] && [ "${good:-0}" -eq "$2" ]; then
    ok "$1 ($good of $2 calls)"
  else
    bad "$1: exit $rc, ${good:-0} of $2 calls; $(tail -5 "$dir"/*errors.log 2>/dev/null | head -8)"
  fi
}
run "sign-in, getserverinfo, getassociations, chansrch, bjoin + pushed history, post and echo, BYE" 1 1 t1
# 20 calls over separate connections (up to 20 open at once, -l 20), started 100 ms apart:
# every call in Lobby also receives the others' posts, and the scenario can only expect its
# own messages, so the posts must not cross (under ASan a call takes longer than 50 ms).
run "the same flow, 20 calls on separate connections" 20 10 tn
kill $pid; wait $pid 2>/dev/null; pid=
echo "pchat-summary: $pass passed, $fail failed"
[ $fail -eq 0 ]
