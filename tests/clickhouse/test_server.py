"""The sink against the real Debian 12 clickhouse-server 18.16, through the library's
`stream` example (a writer that sends a JSONL file slowly through ClickhouseHandle):

- outage: the server is killed in the middle of a run and started again; the final row
  count equals the session count, without duplicates, in the raw table and the rollups;
- crash: the writer is killed with SIGKILL while the server is down (batches in the spool,
  others lost in memory); a second run over the same records replays the spool and adds
  only the missing sessions: the count equals the session count, without duplicates;
- start-up: wrong password, unknown database (schema creation off) and server down
  without a spool exit 1 with one line on stderr; server down with a spool exits 0 with
  the rows in the spool.
"""
import os
import signal
import subprocess
import time

from conftest import SERVER_SH, ch_query, run, stream_env


def fresh_db(server, name):
    db = f"py_{name}_{os.getpid()}"
    ch_query(server, f"DROP DATABASE IF EXISTS {db}")
    return db


def counts(server, db):
    raw = ch_query(server, f"SELECT count(), uniqExact(session_id) FROM {db}.sessions").split()
    hourly = ch_query(server, f"SELECT sum(sessions) FROM {db}.sessions_hourly").strip()
    servers = ch_query(server, f"SELECT sum(sessions) FROM {db}.servers").strip()
    return int(raw[0]), int(raw[1]), int(hourly), int(servers)


def start_stream(examples, server, path, db, spool, *extra):
    cmd = [str(examples["stream"]), "--url", server["MAILTLS_TEST_CLICKHOUSE_URL"],
           "--jsonl", str(path), "--database", db, "--spool", str(spool), *extra]
    return subprocess.Popen(cmd, env=stream_env(server), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_sent(proc, at_least, timeout=30):
    """Reads `sent: N` lines until N >= at_least."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("sent: ") and int(line.split()[1]) >= at_least:
            return
        if not line and proc.poll() is not None:
            raise AssertionError("writer exited early: " + proc.stderr.read())
    raise AssertionError("writer too slow")


def server_ctl(*args):
    run(["bash", str(SERVER_SH), *args])


def report(out):
    return dict(
        (k, int(v)) for k, _, v in (l.partition(": ") for l in out.splitlines())
        if k.startswith("clickhouse_") and v.strip().isdigit()
    )


def test_outage_mid_run(examples, server, jsonl, tmp_path):
    path, records = jsonl
    db = fresh_db(server, "outage")
    proc = start_stream(examples, server, path, db, tmp_path / "spool",
                        "--rate", "12", "--chunk", "4", "--batch-ms", "250")
    try:
        wait_sent(proc, 24)
        server_ctl("kill")
        time.sleep(3)
        server_ctl("start")
        out, err = proc.communicate(timeout=120)
    finally:
        server_ctl("start")
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    r = report(out)
    assert r["clickhouse_rows_spooled"] > 0, out
    assert r["clickhouse_batches_replayed"] > 0, out
    assert r["clickhouse_rows_dropped"] == 0
    assert r["clickhouse_spool_rows_pending"] == 0
    n = len(records)
    assert counts(server, db) == (n, n, n, n)
    assert "ClickHouse insert failed; will retry" in err
    assert "accepting inserts again" in err


def test_kill_9_of_the_writer_then_a_second_run(examples, server, jsonl, tmp_path):
    path, records = jsonl
    db = fresh_db(server, "crash")
    spool = tmp_path / "spool"
    proc = start_stream(examples, server, path, db, spool,
                        "--rate", "12", "--chunk", "4", "--batch-ms", "250")
    try:
        wait_sent(proc, 24)
        server_ctl("kill")
        wait_sent(proc, 48)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        server_ctl("start")
        if proc.poll() is None:
            proc.kill()
    assert any(spool.glob("*.seg")), "batches were spooled before the crash"
    n = len(records)
    assert counts(server, db)[0] < n, "the first run did not finish"
    second = subprocess.run(
        [str(examples["stream"]), "--url", server["MAILTLS_TEST_CLICKHOUSE_URL"], "--jsonl",
         str(path), "--database", db, "--spool", str(spool), "--chunk", "10"],
        env=stream_env(server), capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "previous run did not close the spool" in second.stderr
    r = report(second.stdout)
    assert r["clickhouse_batches_replayed"] > 0
    assert r["clickhouse_rows_skipped_existing"] > 0
    assert counts(server, db) == (n, n, n, n)


def test_start_up_errors(examples, server, jsonl, tmp_path):
    path, _ = jsonl
    url = server["MAILTLS_TEST_CLICKHOUSE_URL"]
    base = [str(examples["stream"]), "--jsonl", str(path)]
    env = stream_env(server)

    wrong = subprocess.run(base + ["--url", url, "--password", "wrong"], env=env,
                           capture_output=True, text=True)
    assert wrong.returncode == 1
    line = wrong.stderr.strip().splitlines()[-1]
    assert "refused user `mailtls`" in line and "Wrong password" in line, line

    unknown = subprocess.run(base + ["--url", url, "--database", "py_nope", "--no-create-schema"],
                             env=env, capture_output=True, text=True)
    assert unknown.returncode == 1
    assert "database `py_nope` does not exist" in unknown.stderr.strip().splitlines()[-1]

    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = f"http://127.0.0.1:{port}"
    nospool = subprocess.run(base + ["--url", down], env=env, capture_output=True, text=True)
    assert nospool.returncode == 1
    assert "unreachable" in nospool.stderr.strip().splitlines()[-1]

    spooled = subprocess.run(base + ["--url", down, "--spool", str(tmp_path / "s"),
                                     "--close-timeout-s", "1"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert spooled.returncode == 0, spooled.stderr
    r = report(spooled.stdout)
    assert r["clickhouse_rows_written"] == 0
    assert r["clickhouse_spool_rows_pending"] == r["clickhouse_rows_spooled"] > 0
    assert "unreachable at start: spooling" in spooled.stderr
