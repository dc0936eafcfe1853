#!/usr/bin/env bash
# A few seconds of pchat-bench against a small 3-node pool (tests/bench/pool): posts must be
# acknowledged and delivered to every member in one order, the JSON must parse, and a
# missing room must be reported as such. `make bench` is the real benchmark.
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
export PCHAT_BUILD=$build
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
dir=$(mktemp -d /tmp/pchat-bench-smoke-XXXXXX)
base=$(( 32000 + ($$ % 30) * 25 ))  # below the ephemeral port range
trap 'tests/bench/pool stop "$dir/pool" >/dev/null 2>&1; rm -rf "$dir"' EXIT
finish() { echo "pchat-summary: $pass passed, $fail failed"; [ $fail -eq 0 ]; exit; }

if tests/bench/pool start "$dir/pool" 3 "$base" > "$dir/start.log" 2>&1 &&
   tests/bench/pool rooms "$dir/pool" smoke 2 >> "$dir/start.log" 2>&1; then
  ok "a 3-node bench pool starts and takes rooms"
else
  bad "bench pool: $(tail -3 "$dir/start.log")"; finish
fi
servers=$(tests/bench/pool servers "$dir/pool")

# check FILE EXPR…: each Python expression over the JSON document `r` must hold.
check() {
  local file=$1; shift
  python3 - "$file" "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = [e for e in sys.argv[2:] if not eval(e, {"r": r})]
for e in bad:
    print("  does not hold:", e)
sys.exit(1 if bad else 0)
PY
}

# The closed loop runs as two processes (--procs 2), which must add up to the same checks.
for mode in open closed; do
  json="$dir/$mode.json"
  procs=1; [ $mode = closed ] && procs=2
  "$build/bin/pchat-bench" --servers "$servers" --run-dir "$dir/pool" --users 20 --rooms 2 --procs $procs \
    --room-prefix smoke --user-prefix smoke$mode --mode $mode --rate 5 --window 2 \
    --duration 3 --warmup 1 --history 5 --label smoke-$mode --json "$json" > "$dir/$mode.out" 2>&1
  rc=$?
  sed 's/^/  /' "$dir/$mode.out" | grep -v '^\s*\[' 
  if [ $rc -eq 0 ]; then ok "$mode loop: pchat-bench exits 0"; else bad "$mode loop: pchat-bench exit $rc"; fi
  if check "$json" 'r["sessions"]["signed_in"] == 20' 'r["sessions"]["joined"] == 20' \
       'r["sessions"]["join_latency"]["count"] == 20' 'r["sessions"]["history_latency"]["count"] == 20'; then
    ok "$mode loop: JSON parses; 20 sessions signed in, joined and fetched history"
  else
    bad "$mode loop: sessions in $json"
  fi
  if check "$json" 'r["posts"]["acked"] > 0' 'r["posts"]["acked"] == r["posts"]["sent"]' \
       'r["posts"]["busy_503"] == 0 and r["posts"]["errors"] == 0' \
       'r["deliveries"]["count"] == r["deliveries"]["expected"] > 0' \
       'r["deliveries"]["seq_gaps"] == 0 and r["deliveries"]["seq_dups"] == 0' \
       'r["deliveries"]["latency"]["p99_ms"] > 0' 'r["nodes"][0]["cpu_pct"] is not None'; then
    ok "$mode loop: every post acknowledged and delivered to all 10 members in order"
  else
    bad "$mode loop: posts/deliveries in $json"
  fi
done

out=$("$build/bin/pchat-bench" --servers "$servers" --users 2 --rooms 1 --room-prefix nosuch \
      --duration 1 --warmup 0.5 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "room 'nosuch-1' not found"; then
  ok "a missing room is reported by name"
else
  bad "missing room: exit $rc: $(echo "$out" | tail -2)"
fi
finish
