"""Every panel's SQL, expanded as Grafana and the plugin expand it, run on ClickHouse 26.x
(chdb, modern schema) and on Debian's 18.16 (legacy schema), against the records of real
captures; the result equals what oracle.py computes from the JSONL in Python.

Scenarios vary the time range (all data / one minute of the peers capture), the interval,
the sensor and direction selections (All, several values, one value) and the `minimum`
variable, so every path of $__conditionalAll and the time macros runs.
"""
import calendar
import json
import math
import time
from pathlib import Path

import pytest

import grafana
import oracle
from conftest import DB, SYNTHETIC_STATS

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "dashboards" / "json").glob("*.json"))
NOW = int(time.time())
FAR = max(NOW + 86400, calendar.timegm((2027, 1, 1, 0, 0, 0)))
WIDE_FROM = calendar.timegm((1999, 1, 1, 0, 0, 0))
MINUTE_FROM = calendar.timegm((2026, 11, 22, 21, 45, 30))
MINUTE_TO = calendar.timegm((2026, 11, 22, 21, 46, 0))

SCENARIOS = {
    # name: (from, to, interval s, sensors, directions, minimum)
    "all": (WIDE_FROM, FAR, 86400, None, None, 771),
    "some": (WIDE_FROM, FAR, 3600, ["mx-a", "lab"], ["inbound", "internal", "external"], 772),
    "one": (WIDE_FROM, FAR, 2592000, ["mx-b"], None, 772),
    "minute": (MINUTE_FROM, MINUTE_TO, 10, None, ["outbound", "inbound"], 771),
}

# Columns rounded by the SQL: compared to this absolute tolerance.
ROUNDED = {"percent_failing": 0.011, "days_left": 0.11, "packets_per_s": 1e-6}


def panels():
    for f in FILES:
        d = json.loads(f.read_text())
        for p in d["panels"]:
            yield f.name, d, p


PANELS = list(panels())


def variables(dashboard, scenario, backend):
    frm, to, interval, sensors, directions, minimum = SCENARIOS[scenario]
    models = {v["name"]: v for v in dashboard["templating"]["list"]}
    out = [grafana.Variable.from_model(models["database"], value=DB)]
    out.append(grafana.Variable.from_model(models["sensor"], value=sensors or [grafana.ALL],
                                           options=sorted({r["sensor"] for r in backend.records})))
    out.append(grafana.Variable.from_model(models["direction"], value=directions or [grafana.ALL]))
    if "minimum" in models:
        text = {"771": "TLS 1.2", "772": "TLS 1.3"}[str(minimum)]
        out.append(grafana.Variable("minimum", str(minimum), text=text))
    return out


def time_range(scenario):
    frm, to, interval = SCENARIOS[scenario][:3]
    return grafana.TimeRange(frm * 1000, to * 1000 + 999, interval * 1000)


def stats_rows(backend):
    _, rows = backend.query(f"SELECT *, toUInt32(ts) AS _ts FROM {DB}.sensor_stats")
    return rows


def ctx(backend, scenario):
    frm, to, interval, sensors, directions, minimum = SCENARIOS[scenario]
    return oracle.Ctx(backend.records, stats_rows(backend), frm, to, interval, sensors, directions, minimum)


def same(got, want, key=""):
    if isinstance(want, float) or isinstance(got, float):
        if want is None or got is None:
            return got is want
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=ROUNDED.get(key, 1e-9))
    return got == want


def compare(label, names, got, want):
    assert want is not None
    if want:
        assert names == list(want[0]), f"{label}: columns {names} != {list(want[0])}"
    assert len(got) == len(want), f"{label}: {len(got)} rows, expected {len(want)}\n got {got}\nwant {want}"
    for i, (g, w) in enumerate(zip(got, want)):
        for k in w:
            assert same(g[k], w[k], k), f"{label}: row {i} column {k}: {g[k]!r} != {w[k]!r}\n got {g}\nwant {w}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("file,dashboard,panel", PANELS,
                         ids=[f"{f}:{p['id']}" for f, _, p in PANELS])
def test_panel(backend, file, dashboard, panel, scenario):
    expected = oracle.EXPECTED[(file, panel["title"])]
    (target,) = panel["targets"]
    sql = grafana.panel_sql(target["rawSql"], variables(dashboard, scenario, backend), time_range(scenario))
    names, rows = backend.query(sql)
    want = expected(ctx(backend, scenario))
    compare(f"{backend.name} {scenario} {file} '{panel['title']}'", names, rows, want)


def test_every_panel_has_an_oracle():
    assert {(f, p["title"]) for f, _, p in PANELS} == set(oracle.EXPECTED)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sensor_variable(backend, scenario):
    d = json.loads((ROOT / "dashboards" / "json" / "overview.json").read_text())
    model = next(v for v in d["templating"]["list"] if v["name"] == "sensor")
    sql = grafana.panel_sql(model["query"], variables(d, scenario, backend), time_range(scenario))
    names, rows = backend.query(sql)
    assert names == ["sensor"]
    assert rows == oracle.sensor_variable(ctx(backend, scenario))


# --- What the data holds: the panels find what the captures are known to contain --------

def run_panel(backend, file, title, scenario="all"):
    f, d, p = next(x for x in PANELS if x[0] == file and x[2]["title"] == title)
    sql = grafana.panel_sql(p["targets"][0]["rawSql"], variables(d, scenario, backend), time_range(scenario))
    return backend.query(sql)[1]


def test_known_facts_of_the_captures(backend):
    """Spot checks with numbers known from the captures themselves (tshark, the manifest,
    SOURCES.md), independent of both the SQL and the oracle."""
    totals = run_panel(backend, "overview.json", "Sessions in range")[0]
    assert totals["sessions_in_range"] == 120 + 7 + 9
    refusals = run_panel(backend, "starttls.json", "STARTTLS refusals by reply code")
    assert refusals[0] == {"reply_code": 502, "sessions": 13, "servers": 1, "clients": refusals[0]["clients"]}
    auth = run_panel(backend, "starttls.json", "AUTH in clear")
    assert sorted((a["server"], a["port"], a["mechanisms"]) for a in auth) == [
        ("193.252.22.84", 587, "LOGIN"), ("74.53.140.153", 25, "LOGIN")]
    weak = run_panel(backend, "weak-crypto.json", "Top weak and insecure suites")
    assert ("TLS_RSA_WITH_RC4_128_SHA", "insecure") in {(w["cipher"], w["class"]) for w in weak}
    clients = run_panel(backend, "tls-readiness.json", "Clients whose best offered version is below ${minimum:text}")
    assert "10.0.0.1" in {c["client"] for c in clients}, "the Google MX session offered TLS 1.0 only"
    selfsigned = run_panel(backend, "certificates.json", "Self-signed certificates")
    assert {"jw-vm08-int-dns", "mx.example.test"} <= {c["subject_cn"] for c in selfsigned}
    mismatch = run_panel(backend, "certificates.json", "Certificate name does not match the banner host or SNI")
    assert "dovecot.weberlab.de" in {m["sni"] for m in mismatch}
    strip = run_panel(backend, "starttls.json", "STARTTLS stripping suspects")
    assert sorted(s["reason"] for s in strip) == ["STARTTLS missing, offered before", "capability mangled"]
    rsa = run_panel(backend, "certificates.json", "RSA keys below 2048 bits (TLS ≤ 1.2 sessions only)")
    assert [r["public_key"] for r in rsa] == ["RSA 1024"]


def test_server_run_wrote_the_same_records_and_its_stats(server_backend, data):
    assert server_backend.same_jsonl == {"peers": True, "public": True}, \
        "mailtls read --clickhouse and --jsonl alone give the same records"
    rows = [r for r in stats_rows(server_backend) if r["batch_id"] != "synthetic-stats"]
    assert {r["sensor"] for r in rows} == {"mx-a", "mx-b"}, "each mailtls read wrote its sensor_stats"
    assert sum(r["records"] for r in rows if r["sensor"] == "mx-a") > 0
    assert len([r for r in stats_rows(server_backend) if r["batch_id"] == "synthetic-stats"]) == len(SYNTHETIC_STATS)


def test_backends_are_both_generations(backend):
    """The two backends hold the two schema generations, so both branches of the time
    expression (and of the certificate time expressions) run."""
    _, rows = backend.query(f"SELECT name, type FROM system.columns WHERE database = '{DB}' "
                            "AND table = 'sessions' AND name IN ('ts_start', 'server_ip', 'cert_not_after')")
    types = {r["name"]: r["type"] for r in rows}
    if backend.name.startswith("chdb"):
        assert backend.version.startswith("26.")
        assert types == {"ts_start": "DateTime64(6, 'UTC')", "server_ip": "IPv6",
                         "cert_not_after": "Nullable(DateTime64(6, 'UTC'))"}
    else:
        assert backend.version.startswith("18.16")
        assert types == {"ts_start": "Int64", "server_ip": "FixedString(16)", "cert_not_after": "Nullable(Int64)"}


@pytest.mark.parametrize("scenario", ["all", "minute"])
@pytest.mark.parametrize("file,dashboard,panel", PANELS, ids=[f"{f}:{p['id']}" for f, _, p in PANELS])
def test_modern_server_prunes_by_time(chdb_backend, file, dashboard, panel, scenario):
    """On ClickHouse >= 23.8 the generation-neutral time expression still selects parts by
    partition and primary key (the query fails if either index is unused)."""
    sql = grafana.panel_sql(panel["targets"][0]["rawSql"], variables(dashboard, scenario, chdb_backend),
                            time_range(scenario))
    chdb_backend.query(sql + "\nSETTINGS force_index_by_date = 1, force_primary_key = 1")
