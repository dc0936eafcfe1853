#!/usr/bin/env bash
# A short chaos run (tests/chaos/run, the long one is make chaos): a 3-host pool in network
# namespaces under load while a seeded nemesis partitions, kills, pauses and degrades it;
# no acknowledged post may be lost or duplicated, no order broken, no compliance event
# missing, no node may crash, and every room must accept posts again after the heal.
# About 1.5 minutes (1 under ASan). Skipped (and says so) without root or network namespaces.
# PCHAT_CHAOS_DURATION (seconds of faults, default 60) and PCHAT_CHAOS_SEED override.
set -u
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ] || ! ip netns list >/dev/null 2>&1; then
  echo "SKIPPED: the chaos run needs root and 'ip netns'"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
if ! command -v jq >/dev/null; then
  echo "SKIPPED: the chaos run needs jq (deploy/install-deps installs it)"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
# Under ASan every node is slower: the same faults, a lighter load, half as long (the whole
# of make test must stay well under 15 minutes; make chaos is the long run).
rate=20 duration=60
case ${PCHAT_BUILD:-build} in *asan*) rate=10 duration=30 ;; esac
tests/chaos/run --duration "${PCHAT_CHAOS_DURATION:-$duration}" --rate "$rate" \
  ${PCHAT_CHAOS_SEED:+--seed "$PCHAT_CHAOS_SEED"}
rc=$?
case $rc in
  0) echo "ok: chaos run: no violation"; echo "pchat-summary: 1 passed, 0 failed" ;;
  1) echo "FAILED: chaos run found a violation (see above)"; echo "pchat-summary: 0 passed, 1 failed" ;;
  *) echo "FAILED: chaos run could not be carried out (exit $rc)"; echo "pchat-summary: 0 passed, 1 failed" ;;
esac
[ $rc -eq 0 ]
