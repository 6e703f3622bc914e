#!/usr/bin/env bash
# Benchmark (not a test): rows per second into the local ClickHouse 18.16 through the sink,
# and the writer's CPU per row. The records of the real capture are sent REPEAT times
# (default 5000 = 600 000 rows; every pass shifts timestamps by 1 ms so each row is a
# distinct session) with the default batching (10 000 rows / 1 s) and a spool.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEAT="${1:-5000}"
export MAILTLS_CLICKHOUSE_DIR="${MAILTLS_CLICKHOUSE_DIR:-$(mktemp -d /tmp/mailtls-clickhouse-bench.XXXXXX)}"
trap 'bash scripts/clickhouse-server.sh destroy >/dev/null 2>&1 || true' EXIT
bash scripts/clickhouse-server.sh start --fresh >/dev/null
eval "$(bash scripts/clickhouse-server.sh env)"
cargo build --release --quiet -p mailtls-storage --examples
[ -x target/release/mailtls ] || cargo build --release --quiet -p mailtls-sensor
work=$(mktemp -d)
target/release/mailtls read ../shared/corpus/peers/mailpeers-2026.pcap --jsonl "$work/peers.jsonl" --no-progress >/dev/null
MAILTLS_CLICKHOUSE_USER=$MAILTLS_TEST_CLICKHOUSE_USER MAILTLS_CLICKHOUSE_PASSWORD=$MAILTLS_TEST_CLICKHOUSE_PASSWORD \
RUST_LOG=warn target/release/examples/stream --url "$MAILTLS_TEST_CLICKHOUSE_URL" --jsonl "$work/peers.jsonl" \
  --database bench --spool "$work/spool" --repeat "$REPEAT" --chunk 1000 \
  | grep -E 'rows_written|rows_spooled|rows_dropped|elapsed|rows_per_second|cpu_us_per_row'
curl -s "$MAILTLS_TEST_CLICKHOUSE_URL/" --data-binary "SELECT 'rows in sessions', count(), 'rollup sum', (SELECT sum(sessions) FROM bench.sessions_hourly) FROM bench.sessions"
rm -rf "$work"
