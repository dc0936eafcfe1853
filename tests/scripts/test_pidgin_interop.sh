#!/usr/bin/env bash
# Real-client interop (issue 4): Debian's pidgin-sipe, driven headless through libpurple by
# tests/interop/purple_interop.c, signs two accounts in to two nodes of a local pool, lists
# rooms, joins, sees history, posts and receives (own echo exactly once), leaves. Each of
# its PASS/FAIL lines counts as one test.
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
out=$(timeout 120 "$bin" "127.0.0.1:$p1" "127.0.0.1:$p2" alice@example.test bob@example.test \
      any-password Lobby "$marker" 2>&1 | grep -v -e "GLib-CRITICAL" -e '^$')
echo "$out"
pass=$(echo "$out" | grep -c "^PASS:")
fail=$(echo "$out" | grep -c "^FAIL:")
echo "$out" | grep -q "^RESULT: PASS" || [ "$fail" -gt 0 ] || fail=1
echo "pchat-summary: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
