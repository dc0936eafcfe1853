#!/usr/bin/env bash
# Fuzzing in the suite: builds the libFuzzer targets (clang, build-fuzz/), replays the seed
# corpora and saved regressions, then runs each target briefly. `make fuzz FUZZ_TIME=…`
# is the long run. Runs once per suite run (not per build: it has its own build).
set -u
cd "$(dirname "$0")/../.."
if [ "${PCHAT_BUILD:-build}" != build ]; then
  echo "SKIPPED: the fuzz targets have their own build; they run with the plain build's suites"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
if ! command -v clang >/dev/null; then
  echo "SKIPPED: clang is missing (deploy/install-deps installs it)"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi
echo "building the fuzz targets (build-fuzz/, clang with libFuzzer)…"
if ! make --no-print-directory fuzz-build > build-fuzz.log 2>&1; then
  tail -20 build-fuzz.log
  echo "FAILED: make fuzz-build"
  echo "pchat-summary: 0 passed, 1 failed"
  exit 1
fi
rm -f build-fuzz.log
echo "replaying the seeds and regressions:"
tests/fuzz/run --replay
rc1=$?
echo "fuzzing each target for ${PCHAT_FUZZ_SECONDS:-5} s:"
tests/fuzz/run "${PCHAT_FUZZ_SECONDS:-5}"
rc2=$?
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]
