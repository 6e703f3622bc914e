"""The provisioning files and dashboard JSON, without a database: structure, variables, and
the SQL rules that keep every query valid on both ClickHouse generations once the plugin has
expanded it (see dashboards/generate.py)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import grafana

ROOT = Path(__file__).resolve().parents[2]
DASH = ROOT / "dashboards"
FILES = sorted((DASH / "json").glob("*.json"))
PLUGIN = "grafana-clickhouse-datasource"


def load(path):
    return json.loads(path.read_text())


def targets():
    for f in FILES:
        for p in load(f)["panels"]:
            for t in p["targets"]:
                yield f.name, p, t


def variable_queries():
    for f in FILES:
        for v in load(f)["templating"]["list"]:
            if v["type"] == "query":
                yield f.name, v


def test_six_dashboards_generated_from_source():
    assert [f.name for f in FILES] == ["certificates.json", "overview.json", "sensor-health.json",
                                      "starttls.json", "tls-readiness.json", "weak-crypto.json"]
    r = subprocess.run([sys.executable, str(DASH / "generate.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_structure(path):
    d = load(path)
    assert d["uid"].startswith("mailtls-") and len(d["uid"]) <= 40
    assert "__inputs" not in d, "provisioned dashboards use the ${datasource} variable, not __inputs"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for p in d["panels"]:
        assert p["datasource"] == {"type": PLUGIN, "uid": "${datasource}"}, p["title"]
        assert p["title"] and p["description"], p["id"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": PLUGIN, "uid": "${datasource}"}
            assert t["editorType"] == "sql" and t["refId"]
            assert t["rawSql"].strip().upper().startswith(("SELECT", "WITH")), p["title"]
            # >= 4.0.0, else the plugin migrates the query as a v3 one
            assert tuple(map(int, t["pluginVersion"].split("."))) >= (4, 0, 3)
            if p["type"] == "timeseries":
                assert (t["queryType"], t["format"]) == ("timeseries", 0)
            else:
                assert (t["queryType"], t["format"]) == ("table", 1)
    uids = [load(f)["uid"] for f in FILES]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_variables(path):
    v = {x["name"]: x for x in load(path)["templating"]["list"]}
    assert v["datasource"]["type"] == "datasource" and v["datasource"]["query"] == PLUGIN
    assert v["database"]["type"] == "constant" and v["database"]["query"] == "mailtls"
    for name in ("sensor", "direction"):
        assert v[name]["multi"] and v[name]["includeAll"], name
        assert v[name]["current"]["value"] == ["$__all"]
        assert not v[name].get("allValue"), "All must stay $__all so $__conditionalAll sees it"
    assert v["sensor"]["type"] == "query" and v["sensor"]["datasource"]["uid"] == "${datasource}"
    assert v["sensor"]["refresh"] == 2, "sensors are reloaded when the time range changes"
    assert grafana.split_custom(v["direction"]["query"]) == ["inbound", "outbound", "internal", "external"]


def all_sql():
    for name, p, t in targets():
        yield f"{name}: {p['title']}", t["rawSql"]
    for name, v in variable_queries():
        yield f"{name}: variable {v['name']}", v["query"]


@pytest.mark.parametrize("label,sql", list(all_sql()), ids=lambda x: x if len(x) < 80 else None)
def test_sql_rules(label, sql):
    # 18.16 lacks toStartOfInterval and fromUnixTimestamp64Milli.
    for banned in ("$__timeInterval", "$__timeFilter_ms", "$__fromTime_ms", "$__toTime_ms", "toStartOfInterval",
                   "$__dateFilter", "$__dt(", "$__dateTimeFilter"):
        assert banned not in sql, banned
    assert not grafana.no_arg_macros_followed_by_paren(sql)
    # Macro arguments: a bare column (the plugin splits arguments on commas).
    for m in re.finditer(r"\$__(\w+)\(", sql):
        if m.group(1) == "conditionalAll":
            continue
        assert re.match(r"\$__\w+\(\w+\)", sql[m.start():]), sql[m.start():m.start() + 60]
    used = set(re.findall(r"\$__(\w+)", sql))
    assert used <= set(grafana.MACRO_NAMES) | {"conditionalAll"}, used
    assert "${database}." in sql
    # Every query is limited to the range and the selected sensors.
    assert "$__timeFilter(" in sql or "$__fromTime)" in sql
    if "variable" not in label:
        assert "$__conditionalAll(sensor IN (${sensor:singlequote}), $sensor)" in sql
    reads_sessions = re.search(r"\$\{database\}\.sessions(_hourly)?\b", sql)
    if reads_sessions and "variable" not in label:
        assert "$__conditionalAll(direction IN (${direction:singlequote}), $direction)" in sql
    if "${database}.sessions\n" in sql or "${database}.sessions " in sql:
        assert "toTypeName(ts_start) = 'Int64'" in sql, "raw sessions: the time column works on both generations"


def test_provisioning_files():
    yaml = pytest.importorskip("yaml")
    ds = yaml.safe_load((DASH / "provisioning" / "datasources" / "mailtls-clickhouse.yaml").read_text())
    assert ds["apiVersion"] == 1
    (d,) = ds["datasources"]
    assert d["type"] == PLUGIN and d["uid"]
    j = d["jsonData"]
    for k in ("host", "port", "protocol", "username", "defaultDatabase"):
        assert k in j, k
    assert re.fullmatch(r"\$\{MAILTLS_CLICKHOUSE_\w+\}", d["secureJsonData"]["password"])
    assert re.fullmatch(r"\$\{MAILTLS_CLICKHOUSE_\w+\}", j["username"])
    prov = yaml.safe_load((DASH / "provisioning" / "dashboards" / "mailtls.yaml").read_text())
    (p,) = prov["providers"]
    assert p["type"] == "file" and p["options"]["path"]


# --- The expander itself, on the plugin's own documented examples ------------------------

TR = grafana.TimeRange(1_700_000_000_123, 1_700_003_600_999, 30_000)


def test_time_macros():
    assert grafana.interpolate("WHERE $__timeFilter(ts)", TR) == \
        "WHERE ts >= toDateTime(1700000000) AND ts <= toDateTime(1700003600)"
    assert grafana.interpolate("$__timeFilter_ms(ts)", TR) == \
        "ts >= fromUnixTimestamp64Milli(1700000000123) AND ts <= fromUnixTimestamp64Milli(1700003600999)"
    assert grafana.interpolate("$__timeInterval(ts)", TR) == "toStartOfInterval(toDateTime(ts), INTERVAL 30 second)"
    assert grafana.interpolate("$__timeInterval_ms(ts)", TR) == \
        "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 30000 millisecond)"
    assert grafana.interpolate("$__dateFilter(d)", TR) == "d >= toDate('2023-11-14') AND d <= toDate('2023-11-14')"
    assert grafana.interpolate("x($__fromTime) y($__toTime) z($__interval_s)", TR) == \
        "x(toDateTime(1700000000)) y(toDateTime(1700003600)) z(30)"
    assert grafana.interpolate("$__interval_s)", grafana.TimeRange(0, 1, 200)) == "1)", "at least 1 s"


# grafana/clickhouse-datasource pkg/macros/macros_test.go, TestInterpolate (sqlds v4), verbatim.
PLUGIN_VECTORS = [
    ("select * from foo where $__timeFilter(cast(sth as timestamp))",
     "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= toDateTime(1447328726)"),
    ("select * from foo where $__timeFilter(cast(sth as timestamp) )",
     "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= toDateTime(1447328726)"),
    ("select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
     "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)"),
    ("select * from foo where $__timeFilter_ms(cast(sth as timestamp) )",
     "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)"),
    ("select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
     "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100"),
    ("select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
     "select * from foo where ( date >= toDateTime(1415792726) ) and ( date <= toDateTime(1447328726) ) limit 100"),
    ("select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 100",
     "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100"),
    ("select * from foo where ( date >= $__fromTime_ms ) and ( date <= $__toTime_ms ) limit 100",
     "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) ) and ( date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100"),
]


@pytest.mark.parametrize("sql,want", PLUGIN_VECTORS)
def test_plugin_own_test_vectors(sql, want):
    assert grafana.interpolate(sql, grafana.TimeRange(1415792726123, 1447328726456, 20000)) == want
    assert grafana.interpolate("$__dateTimeFilter(dateCol, timeCol)", grafana.TimeRange(1415792726371, 1447328726371, 0)) == (
        "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
        "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))")


def test_sdk_scanner_quirk_is_reproduced():
    # An argument-less macro followed by a '(' later in the query swallows it (the reason for
    # the "always followed by )" rule).
    assert grafana.interpolate("SELECT $__interval_s * 2, count(x) FROM t", TR) == "SELECT 30 FROM t"
    assert grafana.interpolate("SELECT ($__interval_s) * 2, count(x) FROM t", TR) == "SELECT (30) * 2, count(x) FROM t"
    # Arguments are split on every comma.
    with pytest.raises(grafana.MacroError):
        grafana.interpolate("$__timeFilter(toDateTime(ts, 'UTC'))", TR)


def test_conditional_all_plugin_vectors():
    """grafana/clickhouse-datasource src/data/CHDatasource.test.ts, 'Conditional All'."""
    raw = "select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal);"
    v = {"fieldVal": grafana.Variable("fieldVal", "$__all")}
    assert grafana.apply_conditional_all(raw, v) == "select stuff from table where 1=1;"
    v = {"fieldVal": grafana.Variable("fieldVal", "'val1', 'val2'")}
    assert grafana.apply_conditional_all(raw, v) == "select stuff from table where fieldVal in ($fieldVal);"
    raw = "select foo from table where $__conditionalAll(bar in ($bar), $bar) and $__conditionalAll(bar in ($bar2), $bar2);"
    v = {"bar": grafana.Variable("bar", "'val1', 'val2'"), "bar2": grafana.Variable("bar2", "$__all")}
    assert grafana.apply_conditional_all(raw, v) == "select foo from table where bar in ($bar) and 1=1;"


def test_conditional_all_and_variables():
    sensor = grafana.Variable("sensor", [grafana.ALL], options=["a", "b"], multi=True, include_all=True)
    sql = "WHERE $__conditionalAll(sensor IN (${sensor:singlequote}), $sensor) AND x"
    assert grafana.panel_sql(sql, [sensor], TR) == "WHERE 1=1 AND x"
    sensor.value = []
    assert grafana.panel_sql(sql, [sensor], TR) == "WHERE 1=1 AND x"
    sensor.value = ["a", "it's"]
    assert grafana.panel_sql(sql, [sensor], TR) == "WHERE sensor IN ('a','it\\'s') AND x"
    # Without a format the datasource's callback joins arrays unescaped.
    assert grafana.panel_sql("IN ($sensor)", [sensor], TR) == "IN ('a','it's')"
    # All without conditionalAll: every option.
    sensor.value = [grafana.ALL]
    assert grafana.panel_sql("IN (${sensor:singlequote})", [sensor], TR) == "IN ('a','b')"
    minimum = grafana.Variable("minimum", "771", text="TLS 1.2")
    assert grafana.panel_sql("< $minimum -- ${minimum:text}", [minimum], TR) == "< 771 -- TLS 1.2"


@pytest.mark.parametrize("label,sql", list(all_sql()), ids=lambda x: x if len(x) < 80 else None)
def test_expansion_does_not_depend_on_macro_order(label, sql):
    """Go iterates the macro map in random order; every order must give the same SQL."""
    variables = [grafana.Variable("database", "db"), grafana.Variable("minimum", "771"),
                 grafana.Variable("sensor", ["a", "b"], multi=True, include_all=True),
                 grafana.Variable("direction", [grafana.ALL], options=["inbound"], multi=True, include_all=True)]
    names = list(grafana.MACRO_NAMES)
    results = {grafana.panel_sql(sql, variables, TR, order=o)
               for o in (names, names[::-1], sorted(names), sorted(names, key=len))}
    assert len(results) == 1
    (out,) = results
    assert "$__" not in out and "${" not in out and "$sensor" not in out
