"""The modern schema and the sink's RowBinary on a ClickHouse 26.x engine (chdb, in-process).

- the DDL that `mailtls schema` prints for modern servers (plain, with TTL) runs, twice;
- the exact RowBinary batches the sink sends for a real capture's records are ingested with
  `INSERT ... FROM INFILE ... FORMAT RowBinary`, row by row equal to the JSONL;
- the rollup and the peer inventories give the counts computed here from the JSONL;
- a batch sent again with the same insert_deduplication_token is not counted twice, in the
  raw table nor in the rollups.
"""
import collections
import json
import subprocess

import pytest

chdb = pytest.importorskip("chdb")
from chdb import session as chdb_session  # noqa: E402

VERSIONS = {"SSLv2": 2, "SSLv3": 768, "TLSv1.0": 769, "TLSv1.1": 770, "TLSv1.2": 771, "TLSv1.3": 772}


@pytest.fixture(scope="module")
def ch(tmp_path_factory):
    s = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    yield s
    s.close()


def q(ch, sql, fmt="TSVRaw"):
    # Only the newlines: a strip() of all whitespace would eat the tab before an empty last
    # column of the last row (a server on 465 has no clear-text banner host).
    return str(ch.query(sql, fmt)).strip("\n")


def ddl(examples, *args):
    out = subprocess.run([str(examples["schema"]), "modern", *args], check=True,
                         capture_output=True, text=True).stdout
    return [s.strip() for s in out.split("\n;\n") if s.strip()]


def apply(ch, statements):
    for st in statements:
        ch.query(st)


def test_engine_is_clickhouse_26(ch):
    assert q(ch, "SELECT version()").startswith("26."), q(ch, "SELECT version()")


@pytest.mark.parametrize("args", [[], ["--ttl-days", "30", "--rollup-ttl-days", "400"]])
def test_modern_ddl_runs_and_is_idempotent(ch, examples, args):
    db = "ddl_ttl" if args else "ddl_plain"
    statements = ddl(examples, "--database", db, *args)
    apply(ch, statements)
    apply(ch, [s for s in statements if not s.startswith("INSERT")])
    tables = q(ch, f"SELECT name, engine FROM system.tables WHERE database = '{db}' ORDER BY name")
    engines = dict(line.split("\t") for line in tables.splitlines())
    assert engines["sessions"] == "MergeTree"
    assert engines["sessions_hourly"] == "SummingMergeTree"
    assert engines["server_inventory"] == "AggregatingMergeTree"
    assert engines["client_inventory"] == "AggregatingMergeTree"
    assert engines["servers"] == engines["clients"] == "View"
    assert engines["sessions_hourly_mv"] == "MaterializedView"
    assert engines["sensor_stats"] == "MergeTree"
    assert q(ch, f"SELECT max(version) FROM {db}.schema_version") == "1"
    types = dict(line.split("\t") for line in q(
        ch, f"SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'sessions'"
    ).splitlines())
    assert types["ts_start"] == "DateTime64(6, 'UTC')"
    assert types["client_ip"] == "IPv6"
    assert types["tls_cipher"] == "LowCardinality(String)"
    assert types["starttls_offered"] == "Nullable(Bool)"
    create = q(ch, f"SELECT create_table_query FROM system.tables WHERE database = '{db}' AND name = 'sessions'")
    if args:
        assert "TTL" in create and "toIntervalDay(30)" in create
    assert "non_replicated_deduplication_window = 1000" in create


@pytest.fixture(scope="module")
def loaded(ch, examples, jsonl, tmp_path_factory):
    """The capture's records, encoded by the sink's batcher (batches of 50), ingested batch by
    batch with their deduplication tokens."""
    path, records = jsonl
    out = tmp_path_factory.mktemp("rb") / "batches.bin"
    subprocess.run([str(examples["rowbinary"]), str(path), str(out), "50"], check=True,
                   capture_output=True)
    manifest = json.loads(out.with_name("batches.bin.json").read_text())
    data = out.read_bytes()
    db = "rt"
    apply(ch, ddl(examples, "--database", db))
    files = []
    for b in manifest["batches"]:
        f = out.with_name(f"{b['id']}.bin")
        f.write_bytes(data[b["offset"]:b["offset"] + b["len"]])
        files.append((b, f))
        ch.query(
            f"INSERT INTO {db}.sessions ({manifest['columns']}) FROM INFILE '{f}' "
            f"SETTINGS insert_deduplication_token = '{b['id']}', "
            f"deduplicate_blocks_in_dependent_materialized_views = 1 FORMAT RowBinary"
        )
    return db, records, manifest, files


def test_rowbinary_rows_equal_the_jsonl(ch, loaded):
    db, records, manifest, _ = loaded
    assert len(manifest["batches"]) == -(-len(records) // 50)
    rows = [json.loads(line) for line in str(ch.query(
        f"SELECT * EXCEPT (session_id, batch_id) FROM {db}.sessions "
        "SETTINGS output_format_json_quote_64bit_integers = 0", "JSONEachRow")).splitlines()]
    assert len(rows) == len(records)

    def norm_ts(v):
        return None if v is None else v.replace(" ", "T") + "Z"

    def norm_ip(v):
        return v.removeprefix("::ffff:") if v.startswith("::ffff:") and "." in v else v

    key = lambda r: (r["ts_start"], r["client_port"], r["client_ip"])  # noqa: E731
    got = sorted(rows, key=lambda r: (norm_ts(r["ts_start"]), r["client_port"], norm_ip(r["client_ip"])))
    want = sorted(records, key=key)
    for g, w in zip(got, want):
        for field, value in w.items():
            v = g[field]
            if field in ("ts_start", "ts_end", "cert_not_before", "cert_not_after"):
                v = norm_ts(v)
            elif field in ("client_ip", "server_ip"):
                v = norm_ip(v)
            assert v == value, (field, v, value)


def test_rollups_match_counts_from_the_jsonl(ch, loaded):
    db, records, _, _ = loaded
    for dim in ("sensor", "direction", "mode", "outcome", "tls_version", "tls_cipher", "tls_cipher_class"):
        want = collections.Counter(r[dim] for r in records)
        got = {}
        for line in q(ch, f"SELECT {dim}, sum(sessions) FROM {db}.sessions_hourly GROUP BY {dim}").splitlines():
            k, _, n = line.rpartition("\t")
            got[k] = int(n)
        assert got == dict(want), dim
    hours = collections.Counter(r["ts_start"][:13] for r in records)
    got = dict(
        (k.replace(" ", "T")[:13], int(n))
        for k, n in (l.split("\t") for l in q(ch, f"SELECT hour, sum(sessions) FROM {db}.sessions_hourly GROUP BY hour").splitlines())
    )
    assert got == dict(hours)
    est = sum(1 for r in records if r["tls_established"])
    assert q(ch, f"SELECT sum(sessions_tls) FROM {db}.sessions_hourly") == str(est)


def test_peer_inventory_matches_the_jsonl(ch, loaded):
    db, records, _, _ = loaded
    per_server = collections.defaultdict(list)
    for r in records:
        per_server[(r["server_ip"], r["server_port"])].append(r)
    rows = q(ch, f"SELECT server, server_port, sessions, best_negotiated_code, best_offered_code, "
                 f"starttls_offered_sessions, starttls_missing_sessions, sessions_starttls_refused, "
                 f"toUnixTimestamp(first_seen), banner_host FROM {db}.servers").splitlines()
    assert len(rows) == len(per_server)
    for line in rows:
        ip, port, n, best_neg, best_off, st_yes, st_no, refused, first, banner = line.split("\t")
        rs = per_server[(ip, int(port))]
        assert int(n) == len(rs)
        assert int(best_neg) == max(VERSIONS.get(r["tls_version"], 0) for r in rs)
        assert int(best_off) == max(VERSIONS.get(r["tls_client_max_version"], 0) for r in rs)
        assert int(st_yes) == sum(1 for r in rs if r["starttls_offered"] is True)
        assert int(st_no) == sum(1 for r in rs if r["starttls_offered"] is False)
        assert int(refused) == sum(1 for r in rs if r["outcome"] == "starttls_refused")
        assert banner in {r["smtp_banner_host"] for r in rs}
    per_client = collections.Counter(r["client_ip"] for r in records)
    got = dict((ip, int(n)) for ip, n in (l.split("\t") for l in q(
        ch, f"SELECT client, sessions FROM {db}.clients").splitlines()))
    assert got == dict(per_client)
    requested = sum(1 for r in records if r["starttls_requested"])
    assert q(ch, f"SELECT sum(starttls_requested_sessions) FROM {db}.clients") == str(requested)


def test_a_resent_batch_is_deduplicated_everywhere(ch, loaded):
    db, records, manifest, files = loaded
    before = (q(ch, f"SELECT count() FROM {db}.sessions"),
              q(ch, f"SELECT sum(sessions) FROM {db}.sessions_hourly"),
              q(ch, f"SELECT sum(sessions) FROM {db}.servers"))
    assert before == (str(len(records)),) * 3
    b, f = files[1]
    ch.query(
        f"INSERT INTO {db}.sessions ({manifest['columns']}) FROM INFILE '{f}' "
        f"SETTINGS insert_deduplication_token = '{b['id']}', "
        f"deduplicate_blocks_in_dependent_materialized_views = 1 FORMAT RowBinary"
    )
    after = (q(ch, f"SELECT count() FROM {db}.sessions"),
             q(ch, f"SELECT sum(sessions) FROM {db}.sessions_hourly"),
             q(ch, f"SELECT sum(sessions) FROM {db}.servers"))
    assert after == before
    # A different token is a different batch: it is counted (control).
    ch.query(
        f"INSERT INTO {db}.sessions ({manifest['columns']}) FROM INFILE '{f}' "
        f"SETTINGS insert_deduplication_token = 'control-{b['id']}' FORMAT RowBinary"
    )
    assert q(ch, f"SELECT count() FROM {db}.sessions") == str(len(records) + b["rows"])
