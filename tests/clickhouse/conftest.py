"""Fixtures for the ClickHouse storage tests: built examples, real records, the 18.16 server.

The records are those of a real capture: `target/release/mailtls read` of
../shared/corpus/peers/mailpeers-2026.pcap (built with `cargo build --release -p
mailtls-sensor` when missing). The server is Debian's clickhouse-server started by
scripts/clickhouse-server.sh (tests/clickhouse/run.sh starts it; the fixture starts it too).
"""
import datetime
import json
import math
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
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


# ---------------------------------------------------------------------------- CLI helpers
# Shared by test_cli.py and test_faults.py: the release binary, its counters, the large
# capture (time-shifted copies of the peers capture).

BINARY = ROOT / "target" / "release" / "mailtls"
COPIES = 64  # time-shifted copies of the peers capture in the large capture
SLOW_BATCH_ROWS = "100"  # many small INSERTs: the runs on the large capture last seconds
KEY_FIELDS = ("ts_start", "client_ip", "client_port", "server_ip", "server_port")
PANIC_MARKERS = ("panicked", "RUST_BACKTRACE", "stack backtrace")


# ---------------------------------------------------------------------------- helpers

@pytest.fixture(scope="session")
def mailtls():
    if not BINARY.exists():
        run(["cargo", "build", "--release"])
    return str(BINARY)


def cli_env():
    """The environment without ClickHouse credentials: the tests pass them explicitly."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MAILTLS_CLICKHOUSE_USER", None)
    env.pop("MAILTLS_CLICKHOUSE_PASSWORD", None)
    return env


def creds(server):
    return ["--clickhouse-user", server["MAILTLS_TEST_CLICKHOUSE_USER"],
            "--clickhouse-password", server["MAILTLS_TEST_CLICKHOUSE_PASSWORD"]]


def read_cmd(mailtls, server, captures, db, *extra, url=None):
    return [mailtls, "read", *map(str, captures), "--no-progress",
            "--clickhouse", url or server["MAILTLS_TEST_CLICKHOUSE_URL"],
            *creds(server), "--clickhouse-database", db, *map(str, extra)]


def fresh_db(server, name):
    db = f"cli_{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    ch_query(server, f"DROP DATABASE IF EXISTS {db}")
    return db


def ch_json(server, sql):
    """Rows of `sql` on 18.16 as dicts (JSONEachRow, 64-bit integers unquoted)."""
    params = urllib.parse.urlencode({"default_format": "JSONEachRow",
                                     "output_format_json_quote_64bit_integers": "0"})
    req = urllib.request.Request(
        server["MAILTLS_TEST_CLICKHOUSE_URL"] + "/?" + params, data=sql.encode(),
        headers={"X-ClickHouse-User": server["MAILTLS_TEST_CLICKHOUSE_USER"],
                 "X-ClickHouse-Key": server["MAILTLS_TEST_CLICKHOUSE_PASSWORD"]})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


def scalar(server, sql):
    return int(ch_query(server, sql).strip())


def session_count(server, db):
    """count(), distinct session ids, distinct (addresses, ports, ts_start) of db.sessions."""
    out = ch_query(server, f"SELECT count(), uniqExact(session_id), "
                           f"uniqExact(client_ip, client_port, server_ip, server_port, ts_start) "
                           f"FROM {db}.sessions").split()
    return tuple(int(x) for x in out)


def rows_now(server, db):
    """Rows in db.sessions now; 0 while the schema does not exist yet."""
    try:
        return scalar(server, f"SELECT count() FROM {db}.sessions")
    except Exception:  # noqa: BLE001 - database not created yet, or server restarting
        return 0


def counters(text):
    """The `name: value` counter lines (report or stderr) as a dict of ints."""
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\s*([a-z0-9_]+): (\d+)\s*$", text, re.MULTILINE)}


def server_ctl(*args):
    run(["bash", str(SERVER_SH), *args])


def wait_for(what, cond, timeout, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"mailtls exited (code {proc.returncode}) before: {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {what}")


@contextmanager
def started(cmd, stdout_path):
    """Starts `cmd` with stdout to a file and stderr piped; kills it (by pid) if a test fails."""
    with open(stdout_path, "w") as out:
        proc = subprocess.Popen(cmd, env=cli_env(), stdout=out, stderr=subprocess.PIPE,
                                text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            server_ctl("start")


def jsonl_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def key(r):
    return tuple(r[f] for f in KEY_FIELDS)


def us(ts):
    """RFC 3339 (`...Z`) to µs since the epoch (the legacy schema's Int64)."""
    dt = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) \
        // datetime.timedelta(microseconds=1)


def free_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def shifted_copy(src, seconds, dst):
    subprocess.run(["editcap", "-t", str(seconds), str(src), str(dst)], check=True,
                   capture_output=True)
    return dst


def shift_seconds(records):
    """A time shift that puts a copy of the capture after the original's last packet plus
    the idle timeout (300 s), so no flow of one copy continues into the next."""
    span = (max(us(r["ts_end"]) for r in records) - min(us(r["ts_start"]) for r in records)) / 1e6
    return int(math.ceil(span)) + 360


@pytest.fixture(scope="session")
def big_capture(mailtls, jsonl, tmp_path_factory):
    """COPIES time-shifted copies of the peers capture, appended (editcap -t, mergecap -a),
    and its session count: COPIES times the records of one copy, checked by a plain run."""
    _, records = jsonl
    d = tmp_path_factory.mktemp("big")
    step = shift_seconds(records)
    cur, n = d / "x1.pcap", 1
    cur.write_bytes(CORPUS.read_bytes())
    while n < COPIES:
        later = shifted_copy(cur, n * step, d / "later.pcap")
        nxt = d / f"x{2 * n}.pcapng"
        subprocess.run(["mergecap", "-a", "-w", str(nxt), str(cur), str(later)], check=True,
                       capture_output=True)
        later.unlink()
        if n > 1:
            cur.unlink()
        cur, n = nxt, 2 * n
    plain = subprocess.run([mailtls, "read", str(cur), "--jsonl", "-", "--no-progress"],
                           env=cli_env(), capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    recs = [json.loads(line) for line in plain.stdout.splitlines()]
    sessions = COPIES * len(records)
    assert len(recs) == counters(plain.stderr)["records"] == sessions
    assert len({key(r) for r in recs}) == sessions, "every session of every copy is distinct"
    return cur, sessions
