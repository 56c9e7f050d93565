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
# round's log. Exit status: 0 when every round passed, 1 otherwise. The test
# binaries are built once and then run directly, so cargo's build lock is
# free for other work while it explores.
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
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export TERN_EXPLORE=1

# Each suite: cargo test arguments, then (after |) the test name filter.
suites=("-p tern-core --lib --test codec_roundtrip|")
if [ "${EXPLORE_STORE:-1}" != 0 ]; then
    suites+=("-p tern --test store_durability|equivalence")
fi

# Test binaries, one per line: "package-dir<TAB>executable<TAB>filter".
runs=()
echo "== building"
for s in "${suites[@]}"; do
    args="${s%%|*}"
    filter="${s#*|}"
    # shellcheck disable=SC2086 # the arguments are a list of words
    json="$(cargo test --locked --no-run --message-format=json $args)"
    while IFS=$'\t' read -r manifest exe; do
        runs+=("$(dirname "$manifest")"$'\t'"$exe"$'\t'"$filter")
    done < <(printf '%s\n' "$json" |
        grep -E '"profile":\{[^}]*"test":true' | grep '"executable":"/' |
        sed -E 's/.*"manifest_path":"([^"]*)".*"executable":"([^"]*)".*/\1\t\2/')
done
if [ "${#runs[@]}" -eq 0 ]; then
    echo "no test binaries found" >&2
    exit 1
fi
for r in "${runs[@]}"; do
    echo "   $(echo "$r" | cut -f2) $(echo "$r" | cut -f3)"
done

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/tern-explore.XXXXXX")"
start=$(date +%s)
deadline=$((start + MINUTES * 60))
round=0
while [ "$(date +%s)" -lt "$deadline" ]; do
    round=$((round + 1))
    t0=$(date +%s)
    log="$LOGDIR/round-$round.log"
    for r in "${runs[@]}"; do
        IFS=$'\t' read -r dir exe filter <<<"$r"
        # shellcheck disable=SC2086 # an empty filter is no argument
        if ! (cd "$dir" && "$exe" $filter) >>"$log" 2>&1; then
            echo "!! round $round failed in $(basename "$exe"); seeds and replay commands:"
            grep -E 'proptest seed|equivalence failure with seed|^test .* FAILED|minimal failing input|panicked at' "$log" ||
                tail -n 40 "$log"
            echo "!! full log: $log"
            exit 1
        fi
    done
    echo "round $round: ok in $(($(date +%s) - t0)) s"
    rm -f "$log"
done
echo "explore: $round round(s) in $(($(date +%s) - start)) s, no failure"
rmdir "$LOGDIR" 2>/dev/null || true
