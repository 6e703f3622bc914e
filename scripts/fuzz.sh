#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer). The fuzz crate is fuzz/ (not a workspace member).
#
#   scripts/fuzz.sh seeds               build the seed corpora fuzz/corpus/TARGET from
#                                       ../shared/corpus (tshark, editcap) and fuzz/regressions
#   scripts/fuzz.sh ci [SECS]           every target for SECS seconds (default 25); fails
#                                       (exit 1) when any target crashes or does not build
#   scripts/fuzz.sh campaign N [T...]   every target (or the ones named) for N executions;
#                                       logs in fuzz/logs/campaign/, summary on stdout
#   scripts/fuzz.sh run T [ARGS...]     one target, extra libFuzzer arguments passed through
#   scripts/fuzz.sh repro T FILE        run one input through target T (e.g. a crash artifact)
#   scripts/fuzz.sh list                the targets
#
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's -Z flags.
# FUZZ_SANITIZER=address|none (default address; each has its own build directory),
# FUZZ_SEEDS=full|quick: seeds from every capture of ../shared/corpus (default; about 1.5 min)
#   or only from its peers capture (about 3 s; what CI uses), plus fuzz/regressions either way,
# FUZZ_DEBUGINFO=0 builds without debug info (CI: faster builds; backtraces lose line numbers),
# FUZZ_MAX_TIME=SECS caps each target of `campaign` in time as well,
# FUZZ_STRICT=1 also checks the known findings not fixed yet (fuzz/CAMPAIGN.md).
# A crash leaves its input in fuzz/artifacts/TARGET/ and makes the command fail.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FUZZ="$ROOT/fuzz"
SHARED_CORPUS="${SHARED_CORPUS:-$ROOT/../shared/corpus}"
TARGETS=(smtp tls certificate reassembly decode flow pipeline)
SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
# libFuzzer prints its own report; a Rust backtrace on top is useful for panics.
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

# Per-target libFuzzer options: input size cap, dictionary.
opts_for() {
    local dict="-dict=$FUZZ/dict/mail.dict"
    case "$1" in
        smtp | tls) echo "-max_len=65536 $dict" ;;
        certificate) echo "-max_len=16384" ;;
        decode) echo "-max_len=4096" ;;
        reassembly) echo "-max_len=8192" ;;
        flow) echo "-max_len=16384 $dict" ;;
        pipeline) echo "-max_len=65536 -timeout=30 $dict" ;;
    esac
}

need_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        # A prebuilt, pinned cargo-fuzz (PyPI wheel, ~3 s), else cargo install --locked (~1 min).
        echo "== installing cargo-fuzz"
        PATH="$(bash "$ROOT/scripts/cargo-tool.sh" cargo-fuzz):$PATH"
        export PATH
    fi
}

# Separate build directories, so that switching sanitizers does not rebuild everything.
BUILD_DIR="$FUZZ/target/$SANITIZER"
if [ "${FUZZ_DEBUGINFO:-1}" = 0 ]; then
    export CARGO_PROFILE_RELEASE_DEBUG=0
    BUILD_DIR="$BUILD_DIR-nodebuginfo"
fi
FUZZ_BUILD=(-s "$SANITIZER" --target-dir "$BUILD_DIR")

build() {
    need_cargo_fuzz
    echo "== cargo fuzz build (sanitizer: $SANITIZER)"
    (cd "$FUZZ" && cargo fuzz build "${FUZZ_BUILD[@]}" "$@")
}

seeds() {
    mkdir -p "$FUZZ/corpus"
    for t in "${TARGETS[@]}"; do
        mkdir -p "$FUZZ/corpus/$t"
        # Inputs that once crashed a target stay in its corpus.
        if [ -d "$FUZZ/regressions/$t" ]; then
            cp -n "$FUZZ/regressions/$t"/* "$FUZZ/corpus/$t/" 2>/dev/null || true
        fi
    done
    if ! command -v tshark >/dev/null || ! command -v editcap >/dev/null; then
        echo "seeds: tshark/editcap not installed (apt-get install tshark): regression inputs only" >&2
        return 0
    fi
    if [ ! -d "$SHARED_CORPUS" ]; then
        echo "seeds: $SHARED_CORPUS not found: regression inputs only" >&2
        return 0
    fi
    local from="$SHARED_CORPUS"
    if [ "${FUZZ_SEEDS:-full}" = quick ] && [ -d "$SHARED_CORPUS/peers" ]; then
        from="$SHARED_CORPUS/peers"
    fi
    echo "== seeds from $from"
    python3 "$FUZZ/seeds.py" "$from" "$FUZZ/corpus" "$ROOT/parsers/src/tls/testdata"
}

# run_target TARGET LIBFUZZER_ARGS...
run_target() {
    local t=$1
    shift
    mkdir -p "$FUZZ/corpus/$t" "$FUZZ/artifacts/$t"
    # shellcheck disable=SC2046
    (cd "$FUZZ" && cargo fuzz run "${FUZZ_BUILD[@]}" "$t" "corpus/$t" -- \
        $(opts_for "$t") -artifact_prefix="artifacts/$t/" -print_final_stats=1 "$@")
}

# Seeds every corpus when one of them is empty or missing: looking at one target's corpus only
# left a target added later (or a worktree that had only fuzzed some targets) without seeds.
# Existing corpora only gain the seed files they lack.
seeded() {
    local t
    for t in "${TARGETS[@]}"; do
        if [ -z "$(ls -A "$FUZZ/corpus/$t" 2>/dev/null)" ]; then
            seeds
            return
        fi
    done
}

summary() {
    # One line per log: executions, exec/s, coverage (cov = edges, ft = features), corpus.
    local t log
    printf '%-12s %12s %8s %7s %8s %8s %s\n' target executions exec/s cov ft corpus result
    for t in "$@"; do
        log="$LOGS/$t.log"
        [ -f "$log" ] || continue
        local runs eps cov ft corp res
        # `|| true`: a target that crashed while loading its corpus printed no coverage line,
        # and a failing grep must not end the script (set -e) before it reports the crash.
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
        eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
        ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
        corp=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | awk '{print $2}' || true)
        if grep -q -E '^(==[0-9]+== ?ERROR|SUMMARY: libFuzzer)|panicked at' "$log"; then
            res=CRASH
        else
            res=ok
        fi
        printf '%-12s %12s %8s %7s %8s %8s %s\n' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" \
            "${ft:-?}" "${corp:-?}" "$res"
    done
}

cmd=${1:-help}
shift || true
LOGS="$FUZZ/logs/$cmd"
case "$cmd" in
    seeds)
        seeds
        ;;
    list)
        printf '%s\n' "${TARGETS[@]}"
        ;;
    ci)
        secs=${1:-25}
        seeded
        build
        mkdir -p "$LOGS"
        failed=()
        for t in "${TARGETS[@]}"; do
            echo "== fuzz $t for ${secs}s"
            if ! run_target "$t" -max_total_time="$secs" >"$LOGS/$t.log" 2>&1; then
                failed+=("$t")
                tail -60 "$LOGS/$t.log"
            fi
        done
        summary "${TARGETS[@]}"
        if [ ${#failed[@]} -gt 0 ]; then
            echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
            exit 1
        fi
        ;;
    campaign)
        runs=${1:?usage: scripts/fuzz.sh campaign N [TARGET...]}
        shift
        list=("$@")
        [ ${#list[@]} -gt 0 ] || list=("${TARGETS[@]}")
        seeded
        build
        mkdir -p "$LOGS"
        echo "campaign: $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) runs=$runs sanitizer=$SANITIZER max_time=${FUZZ_MAX_TIME:-none} strict=${FUZZ_STRICT:-0}"
        failed=()
        for t in "${list[@]}"; do
            echo "== fuzz $t for $runs executions"
            limit=()
            [ -z "${FUZZ_MAX_TIME:-}" ] || limit=(-max_total_time="$FUZZ_MAX_TIME")
            if ! run_target "$t" -runs="$runs" "${limit[@]}" >"$LOGS/$t.log" 2>&1; then
                failed+=("$t")
            fi
        done
        summary "${list[@]}"
        if [ ${#failed[@]} -gt 0 ]; then
            echo "fuzz: crashes in: ${failed[*]} (logs in fuzz/logs/campaign/, inputs in fuzz/artifacts/)" >&2
            exit 1
        fi
        ;;
    run)
        t=${1:?usage: scripts/fuzz.sh run TARGET [LIBFUZZER_ARGS...]}
        shift
        seeded
        need_cargo_fuzz
        run_target "$t" "$@"
        ;;
    repro)
        t=${1:?usage: scripts/fuzz.sh repro TARGET FILE}
        file=$(realpath "${2:?usage: scripts/fuzz.sh repro TARGET FILE}")
        need_cargo_fuzz
        (cd "$FUZZ" && cargo fuzz run "${FUZZ_BUILD[@]}" "$t" "$file")
        ;;
    *)
        sed -n '2,21p' "$0"
        ;;
esac
