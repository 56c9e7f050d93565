#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each in turn for a while.
#
#   scripts/fuzz.sh [seconds-per-target]        (default 30)
#
# Exits non-zero if any target crashes (panic, failed invariant, timeout or
# out-of-memory) and prints the path of the crash artifact and how to
# reproduce it. See docs/fuzzing.md.
#
# Environment:
#   FUZZ_TARGETS           space-separated targets to run (default: all)
#   FUZZ_SANITIZER         address (default) | none | ...  (cargo fuzz -s)
#   FUZZ_RSS_LIMIT_MB      libFuzzer -rss_limit_mb (default 2048)
#   FUZZ_TIMEOUT           seconds one input may take before it counts as a
#                          hang (default 25)
set -euo pipefail

SECS="${1:-30}"
CARGO_FUZZ_VERSION="0.13.2"
RSS_LIMIT_MB="${FUZZ_RSS_LIMIT_MB:-2048}"
TIMEOUT="${FUZZ_TIMEOUT:-25}"
SANITIZER="${FUZZ_SANITIZER:-address}"
# cargo fuzz passes -Z flags to rustc/cargo; this lets a stable toolchain take them.
export RUSTC_BOOTSTRAP=1

if ! [[ "$SECS" =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ]; then
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

TARGETS="${FUZZ_TARGETS:-$(cargo fuzz list)}"
if [ -z "$TARGETS" ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

echo "== building fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build -s "$SANITIZER"

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/tern-fuzz.XXXXXX")"
failed=()
summary=()
for t in $TARGETS; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    dirs=("$corpus")
    [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
    # The spec's test vectors as raw datagrams, and the dictionary made from
    # them, for the targets that read datagram bytes.
    extra=()
    case "$t" in
        decode_packet|sealed_input) dirs+=("fuzz/seeds/datagrams"); extra+=("-dict=fuzz/tern.dict") ;;
        broker_sessions) extra+=("-dict=fuzz/tern.dict") ;;
    esac
    log="$LOGDIR/$t.log"
    echo "== $t: ${SECS}s (corpus: ${dirs[*]})"
    set +e
    cargo fuzz run -s "$SANITIZER" "$t" "${dirs[@]}" -- \
        "${extra[@]}" \
        -max_total_time="$SECS" \
        -rss_limit_mb="$RSS_LIMIT_MB" \
        -timeout="$TIMEOUT" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || true
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)"
    if [ "$rc" -ne 0 ]; then
        echo "!! $t FAILED (exit $rc); last lines of its log:"
        tail -n 60 "$log"
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n1 | sed 's/^Test unit written to //' || true)"
        if [ -n "$artifact" ]; then
            echo "!! crash artifact: $artifact"
            echo "!! reproduce:      RUSTC_BOOTSTRAP=1 cargo fuzz run $t $artifact"
            echo "!! input (hex):    $(od -An -tx1 -v "$artifact" | tr -d ' \n' | head -c 4096)"
        fi
        failed+=("$t")
        summary+=("$t: FAILED${artifact:+ ($artifact)}")
    else
        summary+=("$t: ok ${done_line}")
    fi
done

echo "== summary (logs in $LOGDIR)"
printf '   %s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing: no crash in $(echo $TARGETS | wc -w) target(s), ${SECS}s each"
