"""Fixtures for the ClickHouse storage tests: built examples, real records, the 18.16 server.

The records are those of a real capture: `target/release/mailtls read` of
../shared/corpus/peers/mailpeers-2026.pcap (built with `cargo build --release -p
mailtls-sensor` when missing). The server is Debian's clickhouse-server started by
scripts/clickhouse-server.sh (tests/clickhouse/run.sh starts it; the fixture starts it too).
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "peers" / "mailpeers-2026.pcap"
SERVER_SH = ROOT / "scripts" / "clickhouse-server.sh"


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, text=True, capture_output=True, **kw)


@pytest.fixture(scope="session")
def examples():
    """Paths of the storage crate's example binaries (release build)."""
    run(["cargo", "build", "--release", "--quiet", "-p", "mailtls-storage", "--examples"])
    base = ROOT / "target" / "release" / "examples"
    return {name: base / name for name in ("schema", "rowbinary", "stream")}


@pytest.fixture(scope="session")
def jsonl(tmp_path_factory):
    """JSONL of the real capture, and its records."""
    binary = ROOT / "target" / "release" / "mailtls"
    if not binary.exists():
        run(["cargo", "build", "--release", "--quiet", "-p", "mailtls-sensor"])
    out = tmp_path_factory.mktemp("jsonl") / "mailpeers-2026.jsonl"
    run([str(binary), "read", str(CORPUS), "--jsonl", str(out), "--no-progress"])
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(records) > 100, "the capture has over 100 sessions"
    return out, records


@pytest.fixture(scope="session")
def server():
    """The local 18.16 server: dict of the env lines of `clickhouse-server.sh env`."""
    run(["bash", str(SERVER_SH), "start"])
    env = {}
    for line in run(["bash", str(SERVER_SH), "env"]).stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def ch_query(server, sql, fmt="TabSeparated"):
    """Runs SQL on the 18.16 server over HTTP (urllib) as the test user."""
    import urllib.request

    req = urllib.request.Request(
        server["MAILTLS_TEST_CLICKHOUSE_URL"] + "/?default_format=" + fmt,
        data=sql.encode(),
        headers={
            "X-ClickHouse-User": server["MAILTLS_TEST_CLICKHOUSE_USER"],
            "X-ClickHouse-Key": server["MAILTLS_TEST_CLICKHOUSE_PASSWORD"],
        },
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read().decode()


def stream_env(server):
    env = dict(os.environ)
    env["MAILTLS_CLICKHOUSE_USER"] = server["MAILTLS_TEST_CLICKHOUSE_USER"]
    env["MAILTLS_CLICKHOUSE_PASSWORD"] = server["MAILTLS_TEST_CLICKHOUSE_PASSWORD"]
    env["NO_COLOR"] = "1"
    env.setdefault("RUST_LOG", "info")
    return env
