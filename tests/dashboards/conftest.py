"""Fixtures for the dashboard tests: real captures turned into records, the same records in
ClickHouse 26.x (chdb, modern schema) and in Debian's 18.16 server (legacy schema).

Records:
- `mx-a`: ../shared/corpus/peers/mailpeers-2026.pcap (real Postfix/OpenSSL/swaks peers, 120
  sessions, 2026-11-22), read with --local-net so every direction occurs;
- `mx-b`: five public captures (nDPI smtp-starttls with an RC4 suite and a self-signed
  certificate, nDPI emotet with AUTH LOGIN in clear on 587, Zeek smtp, nDPI smtp and smtps),
  dated 1999-2022;
- `lab`: a few records derived from the peers capture (documented in `synthetic_records`)
  for what no real capture here shows: STARTTLS stripped after being offered, a capability
  overwritten with XXXXXXXA, an expired 1024-bit RSA certificate.
- sensor_stats: the rows `mailtls read --clickhouse` writes (18.16 only) plus hand-made
  rows (`SYNTHETIC_STATS`) with drops, spool and latency values.

Loading: chdb gets the sink's own RowBinary batches (`storage` example `rowbinary`, the
encoder the sink uses) with insert_deduplication_token, like tests/clickhouse/test_chdb.py;
18.16 gets the captures through `mailtls read CAPTURE --clickhouse URL` and the `lab`
records as the same RowBinary bytes over HTTP.
"""
import copy
import datetime as dt
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "corpus"
MAILTLS = ROOT / "target" / "release" / "mailtls"
ROWBINARY = ROOT / "target" / "release" / "examples" / "rowbinary"
DB = "mailtls_dash"

PEERS = [SHARED / "peers" / "mailpeers-2026.pcap"]
PEERS_ARGS = ["--sensor", "mx-a", "--local-net", "127.0.0.1/32", "--local-net", "127.0.0.2/32",
              "--local-net", "127.0.1.8/29"]
PUBLIC = [SHARED / "public" / p for p in ("ndpi/smtp-starttls.pcap", "ndpi/emotet.pcap",
                                          "zeek/smtp.pcap", "ndpi/smtp.pcap", "ndpi/smtps.pcapng")]
PUBLIC_ARGS = ["--sensor", "mx-b", "--local-net", "10.0.0.0/8", "--local-net", "192.168.0.0/16"]

STATS_COLUMNS = ["ts", "sensor", "interval_ms", "packets", "bytes", "kernel_drops", "kernel_if_drops",
                 "own_drops", "active_flows", "worker_queue_depth", "sink_queue_depth", "parse_errors",
                 "records", "rows_written", "rows_spooled", "rows_dropped", "batches_retried",
                 "spool_bytes", "insert_latency_p50_us", "insert_latency_p90_us",
                 "insert_latency_p99_us", "insert_latency_max_us", "batch_id"]


def _synthetic_stats():
    rows = []
    base = dt.datetime(2026, 11, 22, 21, 45, 10, tzinfo=dt.timezone.utc)
    for i in range(9):
        ts = base + dt.timedelta(seconds=10 * i)
        latency = (0, 0, 0, 0) if i == 2 else (1000 + i, 2000 + i, 3000 + 10 * i, 5000 + 10 * i)
        rows.append({
            "ts": ts.strftime("%Y-%m-%d %H:%M:%S"), "sensor": "mx-a", "interval_ms": 10000,
            "packets": 1000 + 37 * i, "bytes": 150000 + 4096 * i, "kernel_drops": i % 3,
            "kernel_if_drops": 2 if i == 4 else 0, "own_drops": 5 if i == 6 else 0,
            "active_flows": 10 + i, "worker_queue_depth": 1 + i % 2, "sink_queue_depth": i % 4,
            "parse_errors": i % 2, "records": 10 + i, "rows_written": 10 + i,
            "rows_spooled": 7 if i == 5 else 0, "rows_dropped": 3 if i == 7 else 0,
            "batches_retried": 1 if i == 5 else 0, "spool_bytes": 4096 if i == 5 else 0,
            "insert_latency_p50_us": latency[0], "insert_latency_p90_us": latency[1],
            "insert_latency_p99_us": latency[2], "insert_latency_max_us": latency[3],
            "batch_id": "synthetic-stats",
        })
    for i in range(3):
        ts = base + dt.timedelta(seconds=25 + 20 * i)
        rows.append({
            "ts": ts.strftime("%Y-%m-%d %H:%M:%S"), "sensor": "lab", "interval_ms": 0 if i == 0 else 20000,
            "packets": 500 * (i + 1), "bytes": 60000 * (i + 1), "kernel_drops": 0, "kernel_if_drops": 0,
            "own_drops": 0, "active_flows": 3, "worker_queue_depth": 0, "sink_queue_depth": 0,
            "parse_errors": 0, "records": 2, "rows_written": 2, "rows_spooled": 0, "rows_dropped": 0,
            "batches_retried": 0, "spool_bytes": 0, "insert_latency_p50_us": 800,
            "insert_latency_p90_us": 900, "insert_latency_p99_us": 990 + i, "insert_latency_max_us": 1200,
            "batch_id": "synthetic-stats",
        })
    return rows


SYNTHETIC_STATS = _synthetic_stats()


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, text=True,
                          capture_output=True, **kw)


def load_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def binaries():
    if not MAILTLS.exists():
        run(["cargo", "build", "--release", "--quiet"])
    if not ROWBINARY.exists():
        run(["cargo", "build", "--release", "--quiet", "-p", "mailtls-storage", "--example", "rowbinary"])
    return {"mailtls": MAILTLS, "rowbinary": ROWBINARY}


def synthetic_records(peers):
    """The `lab` records, derived from real ones of the peers capture (server 127.0.0.1:25):

    - the first six sessions unchanged (STARTTLS offered: the server's history);
    - the seventh with STARTTLS removed from the EHLO reply (stripped after being offered);
    - the eighth with STARTTLS overwritten by XXXXXXXA (a middlebox blanking it);
    - the first TLS <= 1.2 session with a certificate, given another certificate: RSA 1024
      bits, expired a day before the session, issued for legacy.example.test.
    Stripped sessions continue in clear (mode plaintext, outcome plaintext_not_offered) and
    lose their TLS fields."""
    srv = sorted((r for r in peers if r["server_ip"] == "127.0.0.1" and r["server_port"] == 25),
                 key=lambda r: r["ts_start"])
    out = [copy.deepcopy(r) for r in srv[:8]]
    tls_fields = {k: v for k, v in json.loads(json.dumps(out[0])).items()
                  if k.startswith(("tls_", "ja3", "ja4", "cert_"))}
    empty = {}
    for k, v in tls_fields.items():
        empty[k] = None if k in ("cert_not_before", "cert_not_after") else (
            [] if isinstance(v, list) else ("" if isinstance(v, str) else (False if isinstance(v, bool) else 0)))
    for r, caps in ((out[6], lambda c: [x for x in c if x != "STARTTLS"]),
                    (out[7], lambda c: ["XXXXXXXA" if x == "STARTTLS" else x for x in c])):
        r.update(empty)
        r["smtp_capabilities"] = caps(r["smtp_capabilities"] or ["PIPELINING", "STARTTLS", "8BITMIME"])
        r.update({"starttls_offered": False, "starttls_requested": False, "starttls_reply": 0,
                  "mode": "plaintext", "outcome": "plaintext_not_offered"})
    for r in out:
        r["sensor"] = "lab"
    weak = copy.deepcopy(next(r for r in sorted(peers, key=lambda r: r["ts_start"])
                              if r["cert_sha256"] and r["tls_version"] in ("TLSv1.0", "TLSv1.1", "TLSv1.2")))
    start = dt.datetime.fromisoformat(weak["ts_start"].replace("Z", "+00:00"))
    weak.update({
        "sensor": "lab",
        "cert_key_bits": 1024,
        "cert_sha256": "00" * 31 + "01",
        "cert_subject_cn": "legacy.example.test",
        "cert_sans": ["legacy.example.test"],
        "cert_self_signed": False,
        "cert_not_before": (start - dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "cert_not_after": (start - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    })
    out.append(weak)
    return out


@pytest.fixture(scope="session")
def data(binaries, tmp_path_factory):
    """JSONL files and records: {'peers': [...], 'public': [...], 'lab': [...], 'paths': {...}}."""
    d = tmp_path_factory.mktemp("jsonl")
    paths = {"peers": d / "peers.jsonl", "public": d / "public.jsonl", "lab": d / "lab.jsonl"}
    run([binaries["mailtls"], "read", *PEERS, *PEERS_ARGS, "--jsonl", paths["peers"], "--no-progress"])
    run([binaries["mailtls"], "read", *PUBLIC, *PUBLIC_ARGS, "--jsonl", paths["public"], "--no-progress"])
    peers, public = load_jsonl(paths["peers"]), load_jsonl(paths["public"])
    assert len(peers) == 120 and len(public) == 7, (len(peers), len(public))
    lab = synthetic_records(peers)
    paths["lab"].write_text("".join(json.dumps(r) + "\n" for r in lab))
    return {"peers": peers, "public": public, "lab": lab, "paths": paths}


def rowbinary(binaries, jsonl, out, batch_rows=50):
    """The sink's RowBinary batches for a JSONL file: [(batch id, bytes)], and the column list."""
    subprocess.run([str(binaries["rowbinary"]), str(jsonl), str(out), str(batch_rows)], check=True,
                   capture_output=True)
    manifest = json.loads(Path(f"{out}.json").read_text())
    blob = Path(out).read_bytes()
    return manifest["columns"], [(b["id"], blob[b["offset"]:b["offset"] + b["len"]])
                                 for b in manifest["batches"]]


def ddl_statements(binaries, generation):
    out = run([binaries["mailtls"], "schema", "--server", generation, "--clickhouse-database", DB]).stdout
    return [s.strip() for s in out.split(";\n") if s.strip()]


def stats_values(rows):
    def lit(v):
        return "'" + v.replace("'", "\\'") + "'" if isinstance(v, str) else str(v)
    return ", ".join("(" + ", ".join(lit(r[c]) for c in STATS_COLUMNS) + ")" for r in rows)


class Backend:
    """Runs SQL and returns (column names, rows as dicts with Python values)."""

    name = ""

    def raw(self, sql, fmt):
        raise NotImplementedError

    def query(self, sql):
        doc = json.loads(self.raw(sql, "JSON"))
        names = [m["name"] for m in doc["meta"]]
        types = {m["name"]: m["type"] for m in doc["meta"]}
        return names, [{k: convert(v, types[k]) for k, v in row.items()} for row in doc["data"]]


def convert(value, type_name):
    if value is None:
        return None
    base = type_name
    while base.startswith(("Nullable(", "LowCardinality(")):
        base = base[base.index("(") + 1:-1]
    if base.startswith(("UInt", "Int")):
        return int(value)
    if base.startswith("Float"):
        return float(value)
    return value


class Chdb(Backend):
    name = "chdb-26"

    def __init__(self, path):
        from chdb import session as chdb_session
        self.s = chdb_session.Session(str(path))

    def raw(self, sql, fmt):
        return str(self.s.query(sql, fmt))

    def execute(self, sql):
        self.s.query(sql)


class Server(Backend):
    name = "clickhouse-18.16"

    def __init__(self, url, user, password):
        self.url, self.user, self.password = url, user, password

    def raw(self, sql, fmt, body=None, params=None):
        q = {"default_format": fmt}
        q.update(params or {})
        req = urllib.request.Request(
            self.url + "/?" + urllib.parse.urlencode(q), data=(body if body is not None else sql.encode()),
            headers={"X-ClickHouse-User": self.user, "X-ClickHouse-Key": self.password})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{e.code}: {e.read().decode()[:2000]}\nSQL: {sql[:3000]}") from None

    def execute(self, sql, body=None):
        if body is None:
            self.raw(sql, "TabSeparated")
        else:
            self.raw(sql, "TabSeparated", body=body, params={"query": sql})


@pytest.fixture(scope="session")
def chdb_backend(binaries, data, tmp_path_factory):
    pytest.importorskip("chdb")
    ch = Chdb(tmp_path_factory.mktemp("chdb"))
    version = ch.raw("SELECT version()", "TSVRaw").strip()
    assert version.startswith("26."), version
    for st in ddl_statements(binaries, "modern"):
        ch.execute(st)
    work = tmp_path_factory.mktemp("rb")
    for key in ("peers", "public", "lab"):
        columns, batches = rowbinary(binaries, data["paths"][key], work / f"{key}.bin")
        for batch_id, blob in batches:
            f = work / f"{batch_id}.bin"
            f.write_bytes(blob)
            ch.execute(f"INSERT INTO {DB}.sessions ({columns}) FROM INFILE '{f}' "
                       f"SETTINGS insert_deduplication_token = '{batch_id}', "
                       f"deduplicate_blocks_in_dependent_materialized_views = 1 FORMAT RowBinary")
    ch.execute(f"INSERT INTO {DB}.sensor_stats ({', '.join(STATS_COLUMNS)}) VALUES {stats_values(SYNTHETIC_STATS)}")
    ch.records = data["peers"] + data["public"] + data["lab"]
    ch.version = version
    return ch


@pytest.fixture(scope="session")
def server_backend(binaries, data, tmp_path_factory):
    url = os.environ.get("MAILTLS_TEST_CLICKHOUSE_URL")
    if not url:
        pytest.skip("no ClickHouse server: run tests/dashboards/run.sh (starts Debian's 18.16)")
    user = os.environ.get("MAILTLS_TEST_CLICKHOUSE_USER", "default")
    password = os.environ.get("MAILTLS_TEST_CLICKHOUSE_PASSWORD", "")
    srv = Server(url, user, password)
    version = srv.raw("SELECT version()", "TSVRaw").strip()
    srv.raw(f"DROP DATABASE IF EXISTS {DB}", "TSV")
    env = dict(os.environ, MAILTLS_CLICKHOUSE_USER=user, MAILTLS_CLICKHOUSE_PASSWORD=password, NO_COLOR="1")
    d = tmp_path_factory.mktemp("server-jsonl")
    got = {}
    for key, captures, args in (("peers", PEERS, PEERS_ARGS), ("public", PUBLIC, PUBLIC_ARGS)):
        out = d / f"{key}.jsonl"
        run([binaries["mailtls"], "read", *captures, *args, "--jsonl", out, "--no-progress",
             "--clickhouse", url, "--clickhouse-database", DB, "--stats-interval", "1"], env=env)
        got[key] = load_jsonl(out)
    columns, batches = rowbinary(binaries, data["paths"]["lab"], d / "lab.bin")
    for _, blob in batches:
        srv.execute(f"INSERT INTO {DB}.sessions ({columns}) FORMAT RowBinary", body=blob)
    srv.execute(f"INSERT INTO {DB}.sensor_stats ({', '.join(STATS_COLUMNS)}) VALUES {stats_values(SYNTHETIC_STATS)}")
    # The JSONL the server-loading runs wrote is the oracle for this backend.
    srv.records = got["peers"] + got["public"] + data["lab"]
    srv.version = version
    srv.same_jsonl = {k: sorted(map(json.dumps, got[k])) == sorted(map(json.dumps, data[k]))
                      for k in ("peers", "public")}
    deadline = time.time() + 10
    while time.time() < deadline:  # the materialized views are synchronous; this is a guard
        n = int(srv.raw(f"SELECT sum(sessions) FROM {DB}.sessions_hourly", "TSV").strip() or 0)
        if n == len(srv.records):
            break
        time.sleep(0.2)
    return srv


@pytest.fixture(scope="session", params=["chdb", "server"])
def backend(request):
    return request.getfixturevalue(f"{request.param}_backend")
