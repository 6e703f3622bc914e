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
# Licences, duplicate crates, sources (deny.toml); RustSec advisories when reachable.
bash scripts/deny.sh
echo "== cargo test"
cargo test --release --quiet 2>&1 | tee /tmp/mailtls-cargo-test.log
echo "== end-to-end tests"
cargo build --release --quiet
# The report's ClickHouse-input test needs the server; installed here, before the ClickHouse
# tests below would install it, so that a fresh machine runs that test instead of skipping it.
bash scripts/clickhouse-server.sh install
.venv/bin/python -m pytest -q tests/e2e "$@"
echo "== ClickHouse tests (Debian's clickhouse-server 18.16 + chdb / ClickHouse 26.x)"
bash tests/clickhouse/run.sh
echo "== Grafana dashboards: every panel's SQL on chdb and 18.16 against independent numbers"
bash tests/dashboards/run.sh
# Each of the 7 fuzz targets briefly (a crash or a build failure fails CI). The fuzz build
# from scratch is most of this step's time: without AddressSanitizer it is about 40 % shorter
# (panics, overflow checks and debug assertions stay on; campaigns can use ASan), and seeds
# come from the peers capture only (FUZZ_CI_SECS, FUZZ_SANITIZER, FUZZ_SEEDS override).
echo "== fuzzing: every target for ${FUZZ_CI_SECS:-10} s"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" FUZZ_SEEDS="${FUZZ_SEEDS:-quick}" \
  bash scripts/fuzz.sh ci "${FUZZ_CI_SECS:-10}"
