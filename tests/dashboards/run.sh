#!/usr/bin/env bash
# The Grafana dashboard tests (tests/dashboards/):
#   - starts Debian 12's clickhouse-server 18.16 (installed if missing) on 127.0.0.1 with a
#     fresh temporary data directory and free ports (scripts/clickhouse-server.sh);
#   - makes sure the release binary and the storage crate's `rowbinary` example exist
#     (`cargo build --release`, a no-op when up to date);
#   - installs pytest, chdb (ClickHouse 26.x in-process) and PyYAML into the venv;
#   - runs pytest on tests/dashboards: every panel's SQL, expanded exactly as Grafana and
#     grafana-clickhouse-datasource v4 expand it, on chdb and on 18.16, compared with the
#     numbers computed in Python from the JSONL of the same captures;
#   - destroys the server.
# Extra arguments go to pytest. VENV overrides the venv (default .venv).
set -euo pipefail
cd "$(dirname "$0")/../.."

export MAILTLS_CLICKHOUSE_DIR="$(mktemp -d /tmp/mailtls-dashboards-clickhouse.XXXXXX)"
trap 'bash scripts/clickhouse-server.sh destroy >/dev/null 2>&1 || true' EXIT
echo "== clickhouse-server (18.16) in $MAILTLS_CLICKHOUSE_DIR"
bash scripts/clickhouse-server.sh start --fresh
eval "$(bash scripts/clickhouse-server.sh env)"

echo "== cargo build --release"
cargo build --release --quiet
cargo build --release --quiet -p mailtls-storage --example rowbinary

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/dashboards/requirements.txt
echo "== chdb: $("$VENV/bin/python" -c 'import chdb; print(chdb.query("SELECT version()", "TSVRaw"))' | tr -d '\n')"

echo "== pytest tests/dashboards"
"$VENV/bin/python" -m pytest -q tests/dashboards "$@"
