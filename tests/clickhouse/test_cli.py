"""`mailtls read --clickhouse` and `mailtls schema`: the real binary against the real Debian 12
clickhouse-server 18.16 (started by run.sh / the `server` fixture) and chdb (ClickHouse 26.x).

- round trip: the rows the CLI inserts equal its own JSONL field by field, one row per
  record, `records:` counter included; sensor_stats gets rows;
- outage: the server is killed while the CLI is inserting a large capture (64 time-shifted
  copies of the peers capture) and started again: every session arrives exactly once;
- server down at start with a spool: exit 0, rows in the spool; the next run (another
  capture) replays them first: both captures' sessions, once each;
- kill -9 of the CLI mid-run (server down, batches in the spool), then the same capture again
  with `--clickhouse-skip-existing after-crash`: every session once;
- start-up errors (wrong password, unknown database without schema creation, server down
  without a spool): exit 1, one `mailtls: ...` line naming the problem;
- `mailtls schema`: the modern DDL runs on chdb, the legacy DDL on 18.16 (plain, with a TTL,
  in cluster mode), and creates the same tables the sink creates;
- SIGTERM mid-run: exit 0, every record emitted is in ClickHouse and in the counters.

Expectations come from the JSONL and the capture (never from constants about its content).
The runs on the large capture use 100-row batches: many small INSERTs make ClickHouse the
bottleneck, so the reading is held back by the sink's backpressure and a run lasts seconds.
The server-down-at-start run waits out the sink's 30 s close timeout (the CLI has no flag
for it).
"""
import collections
import ipaddress
import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import (
    CORPUS, PANIC_MARKERS, SLOW_BATCH_ROWS, ch_json, ch_query, cli_env, counters, creds, fresh_db,
    free_port_url, jsonl_lines, read_cmd, rows_now, scalar, server_ctl, session_count,
    shift_seconds, shifted_copy, started, us, wait_for)

# ---------------------------------------------------------------------------- 1. round trip

def typed_equal(column_type, got, want):
    """Compares a value fetched from 18.16 (legacy schema) with the JSONL's, by column type."""
    if column_type == "FixedString(16)":  # IPv6 bytes; IPv4 as ::ffff:a.b.c.d
        got = ipaddress.IPv6Address(got)
        w = ipaddress.ip_address(want)
        return got == w if w.version == 6 else got.ipv4_mapped == w
    if column_type in ("Int64", "Nullable(Int64)") and (want is None or isinstance(want, str)):
        return got == (None if want is None else us(want))  # timestamps, µs since epoch
    if isinstance(want, bool) or (column_type == "Nullable(UInt8)" and want is None):
        return got == (None if want is None else int(want))  # Bool as UInt8, null kept
    return got == want  # integers, strings (enums are strings), arrays


def test_round_trip_rows_equal_the_jsonl(mailtls, server, jsonl, tmp_path):
    _, fixture_records = jsonl
    db = fresh_db(server, "rt")
    out = tmp_path / "out.jsonl"
    cred_file = tmp_path / "creds"
    cred_file.write_text(f"user = {server['MAILTLS_TEST_CLICKHOUSE_USER']}\n"
                         f"password = {server['MAILTLS_TEST_CLICKHOUSE_PASSWORD']}\n")
    cred_file.chmod(0o600)
    p = subprocess.run(
        [mailtls, "read", str(CORPUS), "--jsonl", str(out), "--no-progress",
         "--clickhouse", server["MAILTLS_TEST_CLICKHOUSE_URL"],
         "--clickhouse-credentials", str(cred_file), "--clickhouse-database", db],
        env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert not any(m in p.stderr for m in PANIC_MARKERS), p.stderr
    records = jsonl_lines(out)
    c = counters(p.stdout)
    assert c["records"] == len(records) > 0
    assert sorted(map(json.dumps, records)) == sorted(map(json.dumps, fixture_records)), \
        "the ClickHouse sink does not change the JSONL"
    assert c["clickhouse_rows_dropped"] == c["clickhouse_rows_rejected"] == 0
    assert c["clickhouse_rows_spooled"] == 0

    types = dict(line.split("\t") for line in ch_query(
        server, f"SELECT name, type FROM system.columns WHERE database = '{db}' "
                f"AND table = 'sessions'").splitlines())
    assert set(types) == set(records[0]) | {"session_id", "batch_id"}, \
        "one column per record field, plus session_id and batch_id"
    select = ", ".join(f"IPv6NumToString({c}) AS {c}" if t == "FixedString(16)" else c
                       for c, t in types.items())
    rows = ch_json(server, f"SELECT {select} FROM {db}.sessions")
    assert len(rows) == len(records)
    assert len({r["session_id"] for r in rows}) == len(rows)
    assert all(r["batch_id"] for r in rows)

    want = {}
    for r in records:
        want[(us(r["ts_start"]), ipaddress.ip_address(r["client_ip"]), r["client_port"],
              ipaddress.ip_address(r["server_ip"]), r["server_port"])] = r
    assert len(want) == len(records), "the JSONL's keys are unique"

    def v4(s):
        a = ipaddress.IPv6Address(s)
        return a.ipv4_mapped or a

    compared = collections.Counter()
    for row in rows:
        rec = want.pop((row["ts_start"], v4(row["client_ip"]), row["client_port"],
                        v4(row["server_ip"]), row["server_port"]))
        for field, value in rec.items():
            assert typed_equal(types[field], row[field], value), (field, row[field], value)
            compared[field] += 1
    assert not want, "every record has its row"
    assert set(compared) == set(records[0]) and set(compared.values()) == {len(records)}

    stats = ch_json(server, f"SELECT count() AS n, sum(packets) AS packets "
                            f"FROM {db}.sensor_stats")[0]
    assert stats["n"] >= 1
    assert stats["packets"] == c["packets"], "sensor_stats counts every packet read"
    # Every inserted row is a session or a sensor_stats row.
    assert c["clickhouse_rows_written"] == len(records) + stats["n"]


def test_report_over_https_equals_the_jsonl_report(mailtls, server, jsonl, tmp_path):
    """`mailtls report --clickhouse https://...` with the test CA: the same report as from the
    JSONL of the same sessions (written through https as well); without the CA, one error
    line naming the certificate problem and exit 1."""
    https, ca = server["MAILTLS_TEST_CLICKHOUSE_HTTPS_URL"], server["MAILTLS_TEST_CLICKHOUSE_CA_FILE"]
    db = fresh_db(server, "rpt_https")
    out = tmp_path / "out.jsonl"
    p = subprocess.run(read_cmd(mailtls, server, [CORPUS], db, "--jsonl", out,
                                "--clickhouse-ca-file", ca, url=https),
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    n = len(jsonl_lines(out))
    assert counters(p.stdout)["records"] == n > 100

    def report(*source):
        r = subprocess.run([mailtls, "report", *map(str, source), "--min-version", "TLSv1.2"],
                           env=cli_env(), capture_output=True, text=True, timeout=120)
        return r

    from_ch = report("--clickhouse", https, "--clickhouse-ca-file", ca, *creds(server),
                     "--clickhouse-database", db)
    from_jsonl = report(out)
    assert from_ch.returncode == from_jsonl.returncode == 0, from_ch.stderr + from_jsonl.stderr
    assert f"{n} sessions" in from_ch.stdout.splitlines()[0]

    def body(text):
        # All but the lines naming the source ("<url> db.sessions: N records" / "<file>: ...").
        return [line for line in text.splitlines() if not line.endswith(f": {n} records")]

    assert body(from_ch.stdout) == body(from_jsonl.stdout)
    no_ca = report("--clickhouse", https, *creds(server), "--clickhouse-database", db)
    assert no_ca.returncode == 1
    assert "certificate" in no_ca.stderr and no_ca.stderr.count("\n") == 1, no_ca.stderr
    assert server["MAILTLS_TEST_CLICKHOUSE_PASSWORD"] not in no_ca.stderr + from_ch.stdout


def test_sensor_stats_count_every_record(mailtls, server, tmp_path):
    db = fresh_db(server, "stats")
    p = subprocess.run(read_cmd(mailtls, server, [CORPUS], db, "--jsonl", "-"),
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    c = counters(p.stderr)
    assert scalar(server, f"SELECT sum(records) FROM {db}.sensor_stats") == c["records"]


# ---------------------------------------------------------------------------- 2. outage

def test_server_killed_and_restarted_mid_run(mailtls, server, big_capture, tmp_path):
    capture, n = big_capture
    db = fresh_db(server, "outage")
    cmd = read_cmd(mailtls, server, [capture], db, "--jsonl", "-",
                   "--clickhouse-spool", tmp_path / "spool",
                   "--clickhouse-batch-rows", SLOW_BATCH_ROWS)
    with started(cmd, tmp_path / "out.jsonl") as proc:
        wait_for("first rows in ClickHouse", lambda: rows_now(server, db) > 0, 30, proc)
        server_ctl("kill")
        assert proc.poll() is None, "the run ended before the server was killed"
        time.sleep(2)
        server_ctl("start")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert not any(m in err for m in PANIC_MARKERS), err
    c = counters(err)
    assert c["records"] == n == len(jsonl_lines(tmp_path / "out.jsonl"))
    assert c["clickhouse_rows_spooled"] > 0, "batches went to the spool during the outage"
    assert c["clickhouse_batches_replayed"] > 0
    assert c["clickhouse_rows_dropped"] == c["clickhouse_rows_rejected"] == 0
    assert c["clickhouse_spool_rows_pending"] == 0
    assert session_count(server, db) == (n, n, n)


@pytest.fixture(scope="module")
def down_at_start(mailtls, server, jsonl, tmp_path_factory):
    """First run with the server stopped (spool configured), then, server back, a second run
    on another capture (the peers capture shifted in time) with the same spool."""
    _, records = jsonl
    d = tmp_path_factory.mktemp("down")
    db = fresh_db(server, "down")
    spool = d / "spool"
    server_ctl("stop")
    try:
        first = subprocess.run(
            read_cmd(mailtls, server, [CORPUS], db, "--jsonl", "-", "--clickhouse-spool", spool),
            env=cli_env(), capture_output=True, text=True, timeout=120)
        segments = sorted(p.stat().st_size for p in spool.glob("*.seg"))
    finally:
        server_ctl("start")
    later = shifted_copy(CORPUS, shift_seconds(records), d / "later.pcap")
    second = subprocess.run(
        read_cmd(mailtls, server, [later], db, "--jsonl", "-", "--clickhouse-spool", spool),
        env=cli_env(), capture_output=True, text=True, timeout=120)
    return db, first, segments, second


def test_server_down_at_start_spools_and_the_next_run_replays(server, down_at_start):
    db, first, segments, second = down_at_start
    assert first.returncode == 0, first.stderr
    assert not any(m in first.stderr for m in PANIC_MARKERS), first.stderr
    c1 = counters(first.stderr)
    n1 = c1["records"]
    assert n1 == len(first.stdout.splitlines()) > 0
    assert c1["clickhouse_rows_written"] == 0
    # Every session (and the sensor_stats rows) waits in the spool for the next run.
    assert c1["clickhouse_spool_rows_pending"] == c1["clickhouse_rows_spooled"] > n1
    assert c1["clickhouse_rows_dropped"] == 0
    assert segments and segments[-1] > 0

    assert second.returncode == 0, second.stderr
    c2 = counters(second.stderr)
    n2 = c2["records"]
    assert c2["clickhouse_batches_replayed"] >= 1
    assert c2["clickhouse_spool_rows_pending"] == 0
    assert c2["clickhouse_rows_dropped"] == 0
    assert session_count(server, db) == (n1 + n2,) * 3
    first_keys = {(us(r["ts_start"]), r["client_port"])
                  for r in map(json.loads, first.stdout.splitlines())}
    stored = {(int(t), int(p)) for t, p in (line.split("\t") for line in ch_query(
        server, f"SELECT ts_start, client_port FROM {db}.sessions").splitlines())}
    assert first_keys <= stored, "the spooled sessions of the first run are in ClickHouse"


def test_spooling_at_start_is_announced(down_at_start):
    _, first, _, _ = down_at_start
    assert "unreachable" in first.stderr.lower() and "spool" in first.stderr.lower(), \
        first.stderr


# ---------------------------------------------------------------------------- 3. kill -9

def test_kill_9_mid_run_then_the_same_capture_after_crash(mailtls, server, big_capture,
                                                          tmp_path):
    capture, n = big_capture
    db = fresh_db(server, "crash")
    spool = tmp_path / "spool"
    cmd = read_cmd(mailtls, server, [capture], db, "--jsonl", "-", "--clickhouse-spool", spool,
                   "--clickhouse-batch-rows", SLOW_BATCH_ROWS)
    with started(cmd, tmp_path / "first.jsonl") as proc:
        wait_for("first rows in ClickHouse", lambda: rows_now(server, db) > 0, 30, proc)
        server_ctl("kill")
        wait_for("a spooled batch", lambda: any(p.stat().st_size > 0 for p in spool.glob("*.seg")),
                 30, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    # `started` has started the server again.
    before = session_count(server, db)[0]
    assert 0 < before < n, "the first run stopped half-way"
    assert (spool / "LOCK").read_text().strip() != "clean"

    second = subprocess.run(
        read_cmd(mailtls, server, [capture], db, "--jsonl", "-", "--clickhouse-spool", spool,
                 "--clickhouse-skip-existing", "after-crash"),
        env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    c = counters(second.stderr)
    assert c["records"] == n
    assert c["clickhouse_batches_replayed"] > 0, "the crashed run's spool was replayed"
    assert c["clickhouse_rows_skipped_existing"] >= before
    assert c["clickhouse_rows_dropped"] == c["clickhouse_spool_rows_pending"] == 0
    assert session_count(server, db) == (n, n, n)
    assert (spool / "LOCK").read_text().strip() == "clean"


# ---------------------------------------------------------------------------- 4. errors

def assert_one_error_line(p, *needles):
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailtls: "), p.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not any(m in p.stderr for m in PANIC_MARKERS)
    assert p.stdout == "", "nothing was read"


def test_wrong_password(mailtls, server):
    secret = f"not-the-password-{uuid.uuid4().hex[:8]}"
    user = server["MAILTLS_TEST_CLICKHOUSE_USER"]
    p = subprocess.run([mailtls, "read", str(CORPUS), "--jsonl", "-", "--clickhouse",
                        server["MAILTLS_TEST_CLICKHOUSE_URL"], "--clickhouse-user", user,
                        "--clickhouse-password", secret],
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert_one_error_line(p, f"refused user `{user}`", "Wrong password")
    assert secret not in p.stderr


def test_unknown_database_without_schema_creation(mailtls, server):
    db = fresh_db(server, "nope")
    p = subprocess.run(read_cmd(mailtls, server, [CORPUS], db, "--jsonl", "-",
                                "--clickhouse-no-create-schema"),
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert_one_error_line(p, f"database `{db}` does not exist")
    assert scalar(server, f"SELECT count() FROM system.databases WHERE name = '{db}'") == 0


def test_server_down_without_spool(mailtls, server):
    url = free_port_url()
    p = subprocess.run(read_cmd(mailtls, server, [CORPUS], "mailtls", "--jsonl", "-", url=url),
                       env=cli_env(), capture_output=True, text=True, timeout=60)
    assert_one_error_line(p, url, "unreachable")


# ---------------------------------------------------------------------------- 5. schema

def schema_statements(mailtls, *args):
    out = subprocess.run([mailtls, "schema", *args], check=True, capture_output=True,
                         text=True).stdout
    return [s.strip().removesuffix(";") for s in out.split(";\n\n") if s.strip()]


EXPECTED_ENGINES = {
    "schema_version": "MergeTree", "sessions": "MergeTree",
    "sessions_hourly": "SummingMergeTree", "sessions_hourly_mv": "MaterializedView",
    "server_inventory": "AggregatingMergeTree", "server_inventory_mv": "MaterializedView",
    "servers": "View", "client_inventory": "AggregatingMergeTree",
    "client_inventory_mv": "MaterializedView", "clients": "View", "sensor_stats": "MergeTree",
}


@pytest.mark.parametrize("ttl", [[], ["--clickhouse-ttl-days", "30"]], ids=["plain", "ttl30"])
def test_modern_schema_runs_on_chdb(mailtls, jsonl, tmp_path, ttl):
    chdb_session = pytest.importorskip("chdb.session")
    _, records = jsonl
    db = "cli_modern"
    statements = schema_statements(mailtls, "--server", "modern", "--clickhouse-database", db,
                                   *ttl)
    assert len(statements) > 5
    assert any("TTL" in s for s in statements) == bool(ttl)
    s = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        assert str(s.query("SELECT version()", "TSVRaw")).startswith("26.")
        for st in statements:
            s.query(st)
        for st in statements:  # the sink runs them again at every start: idempotent
            if not st.startswith("INSERT"):
                s.query(st)
        engines = dict(line.split("\t") for line in str(s.query(
            f"SELECT name, engine FROM system.tables WHERE database = '{db}'", "TSVRaw"
        )).strip().splitlines())
        assert engines == EXPECTED_ENGINES
        columns = str(s.query(f"SELECT name FROM system.columns WHERE database = '{db}' "
                              f"AND table = 'sessions'", "TSVRaw")).split()
        assert set(columns) == set(records[0]) | {"session_id", "batch_id"}
        create = str(s.query(f"SELECT create_table_query FROM system.tables "
                             f"WHERE database = '{db}' AND name = 'sessions'", "TSVRaw"))
        assert ("toIntervalDay(30)" in create) == bool(ttl), create
        assert str(s.query(f"SELECT count() FROM {db}.schema_version", "TSVRaw")).strip() == "1"
    finally:
        s.close()


LEGACY_VARIANTS = {
    "plain": [],
    "ttl30": ["--clickhouse-ttl-days", "30"],
    # Local tables plus Distributed ones over the test server's one-shard cluster.
    "cluster": ["--clickhouse-cluster", "CLUSTER", "--clickhouse-no-on-cluster"],
}


@pytest.mark.parametrize("variant", list(LEGACY_VARIANTS))
def test_legacy_schema_runs_on_18_16(mailtls, server, jsonl, variant):
    _, records = jsonl
    args = [server["MAILTLS_TEST_CLICKHOUSE_CLUSTER"] if a == "CLUSTER" else a
            for a in LEGACY_VARIANTS[variant]]
    db = fresh_db(server, "legacy")
    statements = schema_statements(mailtls, "--server", "legacy", "--clickhouse-database", db,
                                   *args)
    assert not any("TTL" in s for s in statements), "18.16 has no TTL"
    for st in statements:
        ch_query(server, st)
    for st in statements:  # the sink runs them again at every start: idempotent
        if not st.startswith("INSERT"):
            ch_query(server, st)
    engines = dict(line.split("\t") for line in ch_query(
        server, f"SELECT name, engine FROM system.tables WHERE database = '{db}'").splitlines())
    want = dict(EXPECTED_ENGINES)
    if variant == "cluster":
        for name, engine in EXPECTED_ENGINES.items():
            if engine.endswith("MergeTree"):
                want[name + "_local"], want[name] = engine, "Distributed"
    assert engines == want
    assert scalar(server, f"SELECT count() FROM {db}.schema_version") == 1

    # The printed DDL is what the sink itself creates: same tables, same columns and types;
    # and the sink inserts through it (in cluster mode: through the Distributed tables).
    sink_db = fresh_db(server, "sinkddl")
    p = subprocess.run(read_cmd(mailtls, server, [CORPUS], sink_db, "--jsonl", "-", *args),
                       env=cli_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    n = counters(p.stderr)["records"]
    assert session_count(server, sink_db) == (n, n, n) == (len(records),) * 3

    def layout(d):
        return ch_query(server, f"SELECT table, name, type FROM system.columns "
                                f"WHERE database = '{d}' ORDER BY table, name")

    assert layout(db) == layout(sink_db)
    names = {line.split("\t")[1] for line in layout(db).splitlines()
             if line.startswith("sessions\t")}
    assert names == set(records[0]) | {"session_id", "batch_id"}


# ---------------------------------------------------------------------------- 6. SIGTERM

def test_sigterm_mid_run_flushes_everything(mailtls, server, big_capture, tmp_path):
    capture, n = big_capture
    db = fresh_db(server, "term")
    out = tmp_path / "out.jsonl"
    cmd = read_cmd(mailtls, server, [capture], db, "--jsonl", "-",
                   "--clickhouse-spool", tmp_path / "spool",
                   "--clickhouse-batch-rows", SLOW_BATCH_ROWS)
    with started(cmd, out) as proc:
        wait_for("first rows in ClickHouse", lambda: rows_now(server, db) > 0, 30, proc)
        assert proc.poll() is None, "the run ended before SIGTERM"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "interrupted" in err
    assert not any(m in err for m in PANIC_MARKERS), err
    c = counters(err)
    records = c["records"]
    assert 0 < records < n, "SIGTERM stopped the reading early"
    assert len(jsonl_lines(out)) == records
    assert c["clickhouse_rows_dropped"] == c["clickhouse_rows_rejected"] == 0
    assert c["clickhouse_spool_rows_pending"] == 0
    assert session_count(server, db) == (records,) * 3
    stats_rows = scalar(server, f"SELECT count() FROM {db}.sensor_stats")
    assert stats_rows >= 1
    # Written (spool replays included) plus still spooled = sessions emitted + stats rows.
    assert c["clickhouse_rows_written"] + c["clickhouse_spool_rows_pending"] \
        == records + stats_rows


def test_spool_cap_reached_drops_loudly_and_accounts_for_every_row(mailtls, server, big_capture,
                                                                   tmp_path):
    """Server down, spool capped small: rows are dropped only past the cap, logged as an error,
    and rows spooled + dropped = rows emitted (sessions + sensor_stats rows)."""
    capture, n = big_capture
    db = fresh_db(server, "cap")
    spool = tmp_path / "spool"
    server_ctl("stop")
    try:
        p = subprocess.run(
            read_cmd(mailtls, server, [capture], db, "--jsonl", "-", "--clickhouse-spool", spool,
                     "--clickhouse-spool-max-bytes", str(1 << 20), "--clickhouse-batch-rows", "500"),
            env=cli_env(), capture_output=True, text=True, timeout=300)
    finally:
        server_ctl("start")
    assert p.returncode == 0, p.stderr[-3000:]
    assert not any(m in p.stderr for m in PANIC_MARKERS), p.stderr[-3000:]
    c = counters(p.stderr)
    assert c["records"] == n == len(p.stdout.splitlines())
    assert c["clickhouse_rows_written"] == 0
    assert c["clickhouse_rows_dropped"] > 0, "the cap was reached"
    assert "DROPPED" in p.stderr, "drops are logged loudly"
    spooled_bytes = sum(f.stat().st_size for f in spool.glob("*.seg"))
    assert spooled_bytes <= (1 << 20) + 64 * 1024, f"spool holds {spooled_bytes} bytes"
    stats_rows = c["clickhouse_rows_spooled"] + c["clickhouse_rows_dropped"] - n
    assert stats_rows >= 1, "sensor_stats rows are part of the accounting"
    assert c["clickhouse_spool_rows_pending"] + c["clickhouse_rows_dropped"] == n + stats_rows
