#!/usr/bin/env bash
# Before/after comparison of mailtls binaries on one capture, interleaved (A B A B ...) so
# that a change of load on the machine hits every binary alike (docs/BENCHMARK.md):
#
#   scripts/bench/ab.sh FILE RUNS BIN_A BIN_B [...] [-- EXTRA mailtls read ARGS]
#
# Without `--`, each binary writes `--jsonl -` (to /dev/null); with `--` the arguments after
# it replace that, so a bare `--` measures the terminal summary (`mailtls read FILE`).
#
# e.g. git worktree add /tmp/old 4f9cb11 && (cd /tmp/old && cargo build --release) &&
#      scripts/bench/ab.sh /tmp/mailtls-bench/mail-200MB-*.pcap 15 \
#          /tmp/old/target/release/mailtls target/release/mailtls -- --jsonl -
# Prints per binary the best and median wall time, CPU time (user + sys) and cores busy.
# Needs GNU time (/usr/bin/time).
set -euo pipefail
file=$1 runs=$2
shift 2
bins=()
while [[ $# -gt 0 && $1 != -- ]]; do bins+=("$1"); shift; done
extra=(--jsonl -)
if [[ ${1:-} == -- ]]; then
    shift
    extra=("$@")
fi
for _ in $(seq "$runs"); do
    for b in "${bins[@]}"; do
        /usr/bin/time -f "$b %e %U %S" "$b" read "$file" --no-progress ${extra[@]+"${extra[@]}"} 2>&1 >/dev/null | tail -1
    done
done | python3 -c '
import collections, statistics, sys
d = collections.defaultdict(list)
for line in sys.stdin:
    b, e, u, s = line.split()
    d[b].append((float(e), float(u) + float(s)))
for b, v in d.items():
    wall = sorted(x[0] for x in v); cpu = sorted(x[1] for x in v)
    busy = [x[1] / x[0] for x in v if x[0] > 0]
    cores = statistics.median(busy) if busy else 0.0
    print(f"{b}: wall best {wall[0]:.3f} median {statistics.median(wall):.3f} s; "
          f"CPU best {cpu[0]:.2f} median {statistics.median(cpu):.2f} s; cores busy {cores:.2f}")
'
