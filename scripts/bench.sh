#!/usr/bin/env bash
# Benchmark of mailtls against the cost of just reading the capture (docs/BENCHMARK.md).
#
#   scripts/bench.sh [OPTIONS]         offline: generated captures (cached in /tmp/mailtls-bench),
#                                      floor / mailtls read / ndpiReader / tshark, RSS check
#   scripts/bench.sh live [OPTIONS]    live (root): tcpreplay --topspeed into a veth pair between
#                                      two namespaces made here, `mailtls capture` on the other end
#   scripts/bench.sh [live] --help     the options
#   --no-build                         use the binaries already in target/release
#
# Builds the release binary and the benchgen / pcap_floor examples first, then runs the Python
# (stdlib-only) helpers in scripts/bench/. Optional tools: `apt-get install -y libndpi-bin tshark`
# (offline), tcpreplay and iproute2 (live); GNU time (/usr/bin/time) for the peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=offline
if [[ ${1:-} == live ]]; then
    mode=live
    shift
fi
build=1
args=()
for a in "$@"; do
    case $a in
        --no-build) build=0 ;;
        -h | --help) build=0; args+=("$a") ;;
        *) args+=("$a") ;;
    esac
done
if ((build)); then
    echo "bench: building (cargo build --release; examples benchgen, pcap_floor)" >&2
    cargo build --release -q -p mailtls-sensor --bin mailtls
    cargo build --release -q -p mailtls-sensor --example benchgen --example pcap_floor
fi
exec python3 "scripts/bench/$mode.py" "${args[@]}"
