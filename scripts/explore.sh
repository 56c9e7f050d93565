#!/usr/bin/env bash
# Random exploration of the seeded tests, round after round until the time
# is up or a test fails:
#   - every property test of tern-core (the codec's and the replay window's)
#     with a fresh seed per test and 16 times its default cases;
#   - the RocksDB-vs-MemStore equivalence tests with one fresh seed each.
# `cargo test` itself always runs these from fixed seeds; this is the opt-in
# search for new failures (TERN_EXPLORE=1).
#
#   scripts/explore.sh [minutes]        (default 10)
#
# A failing test prints its seed and the exact command that replays it; the
# script stops at the first failing round, shows those lines, and keeps that
# round's log. Exit status: 0 when every round passed, 1 otherwise.
#
# Environment:
#   PROPTEST_CASES=N   cases per property test per round (default 16x each
#                      test's own count)
#   EXPLORE_STORE=0    skip the store tests (they build the root crate and
#                      RocksDB)
set -euo pipefail

MINUTES="${1:-10}"
if ! [[ "$MINUTES" =~ ^[0-9]+$ ]] || [ "$MINUTES" -lt 1 ]; then
    echo "usage: $0 [minutes]" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
export TERN_EXPLORE=1

suites=("-p tern-core --lib --test codec_roundtrip")
if [ "${EXPLORE_STORE:-1}" != 0 ]; then
    suites+=("-p tern --test store_durability equivalence")
fi

echo "== building"
for s in "${suites[@]}"; do
    # shellcheck disable=SC2086 # the suite is a list of words
    cargo test --locked --no-run $s 2>&1 | tail -n 1
done

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/tern-explore.XXXXXX")"
start=$(date +%s)
deadline=$((start + MINUTES * 60))
round=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    round=$((round + 1))
    for s in "${suites[@]}"; do
        log="$LOGDIR/round-$round.log"
        t0=$(date +%s)
        # shellcheck disable=SC2086
        if ! cargo test --locked $s >>"$log" 2>&1; then
            echo "!! round $round failed ($s); seeds and replay commands:"
            grep -E 'proptest seed|equivalence failure with seed|^test .* FAILED|minimal failing input' "$log" || tail -n 40 "$log"
            echo "!! full log: $log"
            exit 1
        fi
        echo "round $round: $s: ok ($(($(date +%s) - t0)) s)"
        rm -f "$log"
    done
done
echo "explore: $round round(s) in $(($(date +%s) - start)) s, no failure"
rmdir "$LOGDIR" 2>/dev/null || true
