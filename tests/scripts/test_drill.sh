#!/usr/bin/env bash
# The operator's failover drill on a real local pool (deploy/pool): `pchatctl drill
# kill-owner` kills, then pauses, the owner of Lobby under a probe client; posting must
# resume and the history must hold every acknowledged probe post exactly once.
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
export PCHAT_RUN_DIR=$(mktemp -d /tmp/pchat-drill-XXXXXX)
export PCHAT_PORT_OFFSET=$(( 20000 + ($$ % 40) * 30 ))  # below the ephemeral port range
export PCHAT_BUILD=$build
trap 'deploy/pool stop >/dev/null 2>&1; rm -rf "$PCHAT_RUN_DIR"' EXIT
ctl() { "$build/bin/pchatctl" -S "$PCHAT_RUN_DIR/n1/admin.sock" "$@"; }

if deploy/pool start > "$PCHAT_RUN_DIR/start.log" 2>&1; then ok "a 3-node pool starts"; else
  bad "pool start: $(tail -3 "$PCHAT_RUN_DIR/start.log")"; echo "pchat-summary: $pass passed, $fail failed"; exit 1; fi
out=$(ctl drill kill-owner Lobby 2>&1); rc=$?
echo "$out" | sed 's/^/  /'
if [ $rc -eq 0 ] && echo "$out" | grep -q "posting resumed" && echo "$out" | grep -q "0 acknowledged posts lost, 0 duplicated: OK"; then
  ok "drill kill-owner: posting resumed, nothing lost"
else
  bad "drill kill-owner (exit $rc)"
fi
deploy/pool start > "$PCHAT_RUN_DIR/restart.log" 2>&1 || bad "the killed node did not restart"
out=$(ctl drill kill-owner Lobby --stop 2 2>&1); rc=$?
echo "$out" | sed 's/^/  /'
if [ $rc -eq 0 ] && echo "$out" | grep -q "SIGCONT" && echo "$out" | grep -q "lost, 0 duplicated: OK"; then
  ok "drill kill-owner --stop: the paused owner is replaced, nothing lost"
else
  bad "drill kill-owner --stop (exit $rc)"
fi
out=$(ctl drill kill-owner NoSuchRoom 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -qi "no such room\|not found\|no known owner"; then
  ok "a drill on an unknown room says so"
else
  bad "unknown room: exit $rc: $out"
fi
echo "pchat-summary: $pass passed, $fail failed"
[ $fail -eq 0 ]
