#!/usr/bin/env bash
# The ClickHouse storage tests against real servers:
#   - starts Debian 12's clickhouse-server 18.16 (installed if missing) on 127.0.0.1 with a
#     fresh temporary data directory and free ports (scripts/clickhouse-server.sh);
#   - runs the storage crate's tests with MAILTLS_TEST_CLICKHOUSE_* set (storage/tests/);
#   - installs chdb (ClickHouse 26.x, in-process) into the Python venv and runs
#     tests/clickhouse/ (modern schema on chdb; outage and crash tests on 18.16; sink faults
#     in test_faults.py: repeated restarts, a throttled server, a full disk — the last mounts
#     a 2 MiB tmpfs, so it needs root and is skipped with the reason otherwise);
#   - stops the server.
# Extra arguments go to pytest. VENV overrides the venv (default .venv).
set -euo pipefail
cd "$(dirname "$0")/../.."

export MAILTLS_CLICKHOUSE_DIR="${MAILTLS_CLICKHOUSE_DIR:-$(mktemp -d /tmp/mailtls-clickhouse-test.XXXXXX)}"
trap 'bash scripts/clickhouse-server.sh destroy >/dev/null 2>&1 || true' EXIT
echo "== clickhouse-server (18.16) in $MAILTLS_CLICKHOUSE_DIR"
bash scripts/clickhouse-server.sh start --fresh
eval "$(bash scripts/clickhouse-server.sh env)"

echo "== cargo test -p mailtls-storage (real server: $MAILTLS_TEST_CLICKHOUSE_URL)"
cargo test --release --quiet -p mailtls-storage

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/clickhouse/requirements.txt
echo "== chdb: $("$VENV/bin/python" -c 'import chdb; print(chdb.query("SELECT version()", "TSVRaw"))' | tr -d '\n')"

echo "== pytest tests/clickhouse"
"$VENV/bin/python" -m pytest -q tests/clickhouse "$@"
