#!/usr/bin/env bash
# Soak test of the live sensor (not part of the test suite): tcpreplay loops real sessions at
# top speed into a veth pair between two namespaces made here, `mailtls capture` listens on
# the other end for DURATION seconds (default 600); RSS is sampled every 10 s.
#   scripts/soak-live.sh [DURATION]     (root)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-600}
bin=target/release/mailtls
work=$(mktemp -d /tmp/mailtls-soak.XXXXXX)
a=soakA$$; b=soakB$$
cleanup() { ip netns del $a 2>/dev/null || true; ip netns del $b 2>/dev/null || true; kill "${rp:-}" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add $a; ip netns add $b
ip link add vA netns $a type veth peer name vB netns $b
ip -n $a link set vA up; ip -n $b link set vB up
for i in $(seq 0 19); do editcap -t $((i * 3600)) ../shared/corpus/peers/mailpeers-2026.pcap "$work/c$i.pcap"; done
mergecap -a -w "$work/replay.pcap" "$work"/c*.pcap; rm "$work"/c*.pcap
ip netns exec $b $bin capture -i vB --jsonl "$work/out.jsonl" --log-interval 60 --buffer-mb 64 2> "$work/err" &
sleep 2
pid=$(pgrep -f "capture -i vB --jsonl $work/out.jsonl" | head -1)
ip netns exec $a tcpreplay -i vA --topspeed --loop=0 --duration="$dur" "$work/replay.pcap" > "$work/replay.log" 2>&1 &
rp=$!
echo "t_s rss_kb"
for t in $(seq 10 10 "$dur"); do sleep 10; echo "$t $(awk '/VmRSS/ {print $2}' /proc/$pid/status)"; done
wait $rp || true
kill -TERM "$pid"; sleep 3
grep -E "Actual|Rated" "$work/replay.log" | head -3
grep -E "^(packets|kernel_drops|kernel_if_drops|records|flows_evicted|elapsed_seconds):" "$work/err"
echo "work dir: $work"
