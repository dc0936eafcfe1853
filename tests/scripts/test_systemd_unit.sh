#!/usr/bin/env bash
# deploy/pchatd@.service: systemd accepts every line of it, and its sandbox keeps the
# exposure `systemd-analyze security` computes at or below 2.0 ("OK"); the sandbox must
# still leave the node what it needs (its own directories, its sockets, no capabilities).
# systemd is not PID 1 here, so both checks run offline on the unit file.
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
dir=$(mktemp -d /tmp/pchat-unit-XXXXXX)
trap 'rm -rf "$dir"' EXIT
unit=$dir/pchatd@.service
# verify wants ExecStart's binary to exist: point it at this build's.
sed "s|/usr/local/bin/pchatd|$PWD/$build/bin/pchatd|g" deploy/pchatd@.service > "$unit"

out=$(systemd-analyze verify "$unit" 2>&1)
if [ $? -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: no complaint"
else bad "systemd-analyze verify: $out"; fi

report=$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1)
rc=$?
score=$(echo "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ $rc -eq 0 ] && [ -n "$score" ]; then ok "exposure $score (at most 2.0)"
else bad "exposure ${score:-unknown} above 2.0 (or no score):"; echo "$report" | grep -E "✗|Overall" | sed 's/^/  /'; fi

# What the node needs must survive the hardening.
need() { grep -qx "$1" deploy/pchatd@.service && ok "unit has $1" || bad "unit lacks $1"; }
need "User=pchat"
need "StateDirectory=pchat"
need "RuntimeDirectory=pchat"
need "CapabilityBoundingSet="
need "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
# A unit without the sandbox must fail the same check, or the check proves nothing.
grep -v -e '^Protect' -e '^Private' -e '^Restrict' -e '^SystemCall' "$unit" > "$dir/bare@.service"
if ! systemd-analyze security --offline=true --threshold=20 "$dir/bare@.service" >/dev/null 2>&1; then
  ok "the same unit without its sandbox lines is refused"
else bad "the exposure check passes a unit without sandbox"; fi
echo "pchat-summary: $pass passed, $fail failed"
[ $fail -eq 0 ]
