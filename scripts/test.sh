#!/usr/bin/env bash
# Every test: set up, lint, unit tests, release build, end-to-end tests on real captures
# (../shared/corpus and a fresh capture of real Postfix/OpenSSL/swaks peers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-tests

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --all-targets --release --quiet -- -D warnings
echo "== cargo test"
cargo test --release --quiet 2>&1 | tee /tmp/mailtls-cargo-test.log
echo "== end-to-end tests"
cargo build --release --quiet
.venv/bin/python -m pytest -q tests/e2e "$@"
echo "== ClickHouse tests (Debian's clickhouse-server 18.16 + chdb / ClickHouse 26.x)"
bash tests/clickhouse/run.sh
echo "== Grafana dashboards: every panel's SQL on chdb and 18.16 against independent numbers"
bash tests/dashboards/run.sh
