#!/usr/bin/env bash
# Real-client interop (issue 4): Debian's pidgin-sipe, driven headless through libpurple by
# tests/interop/purple_interop.c, signs two accounts in to two nodes of a local pool, lists
# rooms, joins, sees history, posts and receives (own echo exactly once), leaves: over TCP,
# over TLS, and against a node with Digest authentication. Each of its PASS/FAIL lines
# counts as one test.
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
bin="$build/tests/interop/purple_interop"
if [ ! -x "$bin" ] || [ ! -e /usr/lib/purple-2/libsipe.so ]; then
  echo "SKIPPED: the interop client or the SIPE plugin is missing (deploy/install-deps installs"
  echo "pidgin-sipe and libpurple-dev; make builds $bin)"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
export PCHAT_RUN_DIR=$(mktemp -d /tmp/pchat-interop-XXXXXX)
export PCHAT_PORT_OFFSET=$(( 21500 + ($$ % 40) * 30 ))  # below the ephemeral port range
export PCHAT_BUILD=$build
trap 'deploy/pool stop >/dev/null 2>&1; rm -rf "$PCHAT_RUN_DIR"' EXIT
if ! deploy/pool start > "$PCHAT_RUN_DIR/start.log" 2>&1; then
  echo "FAILED: pool start: $(tail -3 "$PCHAT_RUN_DIR/start.log")"
  echo "pchat-summary: 0 passed, 1 failed"
  exit 1
fi
p1=$((5060 + PCHAT_PORT_OFFSET)) p2=$((5070 + PCHAT_PORT_OFFSET))
marker="before-interop-$$"
printf 'join Lobby\npost Lobby %s\nquit\n' "$marker" |
  "$build/bin/pchat" -s "127.0.0.1:$p1" -u carol@example.test > /dev/null
pass=0 fail=0
run_client() {  # label args… : one run of the client, its PASS/FAIL lines counted
  local label=$1 out p f
  shift
  echo "== $label"
  # libpurple's own assertion warnings (a part notice for a conversation the client just
  # closed) are not results.
  out=$(timeout 120 "$bin" "$@" 2>&1 | grep -v -e "CRITICAL" -e '^$')
  echo "$out"
  p=$(echo "$out" | grep -c "^PASS:")
  f=$(echo "$out" | grep -c "^FAIL:")
  echo "$out" | grep -q "^RESULT: PASS" || [ "$f" -gt 0 ] || f=1
  pass=$((pass + p)) fail=$((fail + f))
}
run_client "a pool without authentication, A and B on different nodes" \
  "127.0.0.1:$p1" "127.0.0.1:$p2" alice@example.test bob@example.test any-password Lobby "$marker"
run_client "the same over TLS (the pool CA's certificates, accepted at the prompt)" \
  "127.0.0.1:$((p1 + 1))" "127.0.0.1:$((p2 + 1))" alice@example.test bob@example.test \
  any-password Lobby "$marker" tls
deploy/pool stop > /dev/null

# SIPE's Digest over 407 (XCCOS.md §2.2: it answers with uri="(null)").
d=$PCHAT_RUN_DIR/digest
mkdir -p "$d"
dp=$((5090 + PCHAT_PORT_OFFSET))
cat > "$d/node.conf" <<CONF
[node]
data_dir = $d/data
[sip]
tcp_port = $dp
tls_port = 0
[cluster]
listen = 127.0.0.1:$((7690 + PCHAT_PORT_OFFSET))
[web]
port = $((8095 + PCHAT_PORT_OFFSET))
[auth]
mode = digest
[seed]
demo = yes
CONF
"$build/bin/pchatd" -c "$d/node.conf" > "$d/log" 2>&1 &
dpid=$!
trap 'kill -9 $dpid 2>/dev/null; deploy/pool stop >/dev/null 2>&1; rm -rf "$PCHAT_RUN_DIR"' EXIT
for _ in $(seq 1 100); do grep -q "seed: demo" "$d/log" && break; sleep 0.1; done
for u in alice bob; do
  "$build/bin/pchatctl" -S "$d/data/admin.sock" user passwd "$u@example.test" --password s3cret-pass >/dev/null
done
printf 'join Lobby\npost Lobby %s\nquit\n' "$marker" |
  "$build/bin/pchat" -s "127.0.0.1:$dp" -u alice@example.test -p s3cret-pass > /dev/null
run_client "one node with Digest authentication" \
  "127.0.0.1:$dp" "127.0.0.1:$dp" alice@example.test bob@example.test s3cret-pass Lobby "$marker"
if grep -q 'authenticated (Digest, username "alice@example.test", uri "(null)"' "$d/log"; then
  echo "ok: SIPE answered the 407 with uri=\"(null)\" and was let in"
  pass=$((pass + 1))
else
  echo "FAILED: no Digest sign-in by SIPE in the node's log"
  fail=$((fail + 1))
fi
kill $dpid; wait $dpid 2>/dev/null
echo "pchat-summary: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
