#!/usr/bin/env python3
"""Writes the Grafana dashboards of mailtls (dashboards/json/*.json) from the SQL below.

    python3 dashboards/generate.py          # rewrite the JSON files
    python3 dashboards/generate.py --check  # exit 1 if a JSON file differs from this source

The JSON files are what Grafana imports; this script is their source, so that the few SQL
fragments every panel shares (time column, sensor/direction filters, version codes) are
written once. tests/dashboards/ checks that the JSON files equal this script's output.

Rules every query follows (tests/dashboards/ enforces them):

- One SQL text for both schema generations: ClickHouse >= 23.8 (`ts_start` is
  DateTime64(6, 'UTC'), IPs are IPv6, booleans Bool) and Debian's 18.16 (`ts_start` is Int64
  microseconds, IPs FixedString(16), booleans UInt8). The time column is the expression `T`
  below, which picks the right conversion from `toTypeName(ts_start)`; modern servers fold
  it to `toDateTime(ts_start, 'UTC')` and still prune partitions and use the primary key.
- No `$__timeInterval`: it expands to `toStartOfInterval`, which 18.16 lacks. Buckets are
  `intDiv(toUInt32(t), step) * step` with `step` from `$__interval_s`.
- No `*_ms` macros: they expand to `fromUnixTimestamp64Milli`, which 18.16 lacks.
- Macro arguments are bare column names (the plugin splits arguments on every comma), and
  the argument-less macros (`$__fromTime`, `$__toTime`, `$__interval_s`) are always
  followed directly by `)`: the plugin SDK's macro scanner otherwise takes the next
  parenthesised text in the query as their argument list.
- Sensor and direction filters use `$__conditionalAll(col IN (${var:singlequote}), $var)`:
  "All" (or nothing selected) becomes `1=1`.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "json"

PLUGIN = "grafana-clickhouse-datasource"
PLUGIN_VERSION = "4.3.2"
DS = {"type": PLUGIN, "uid": "${datasource}"}

# ---------------------------------------------------------------------------------------
# Shared SQL fragments

# ts_start as DateTime('UTC'), whatever the schema generation.
T = ("if(toTypeName(ts_start) = 'Int64', toDateTime(intDiv(toInt64(ts_start), 1000000), 'UTC'), "
     "toDateTime(ts_start, 'UTC'))")


def secs(col):
    """A Nullable timestamp column (cert_not_before/after) as Int64 seconds since the epoch."""
    return (f"if(toTypeName({col}) = 'Nullable(Int64)', intDiv(toInt64(assumeNotNull({col})), 1000000), "
            f"toInt64(assumeNotNull({col})))")


SENSOR = "$__conditionalAll(sensor IN (${sensor:singlequote}), $sensor)"
DIRECTION = "$__conditionalAll(direction IN (${direction:singlequote}), $direction)"
WHERE = f"$__timeFilter(t)\n  AND {SENSOR}\n  AND {DIRECTION}"
# The hourly rollup: every hour that overlaps the range, whole.
HOURLY_WHERE = f"hour >= toStartOfHour($__fromTime) AND hour <= ($__toTime)\n  AND {SENSOR}\n  AND {DIRECTION}"
STATS_WHERE = f"$__timeFilter(ts)\n  AND {SENSOR}"
WHERE_4 = WHERE.replace("\n  AND", "\n    AND")  # the same, indented for a subquery
WHERE_6 = WHERE.replace("\n  AND", "\n      AND")

SESSIONS = "${database}.sessions"
HOURLY = "${database}.sessions_hourly"
STATS = "${database}.sensor_stats"

VERSION_NAMES = "['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']"
VERSION_CODES = "[2, 768, 769, 770, 771, 772]"


def code(col):
    """Version name column -> code (0 when empty or unknown), as the inventories do."""
    return f"toUInt16(transform({col}, {VERSION_NAMES}, {VERSION_CODES}, 0))"


def name(expr):
    """Version code -> name ('' for 0)."""
    return f"transform(toUInt16({expr}), {VERSION_CODES}, {VERSION_NAMES}, '')"


def ip(col):
    """An address column as text, IPv4 without the ::ffff: prefix."""
    return f"replaceRegexpOne(IPv6NumToString({col}), '^::ffff:', '')"


def names(col, limit=5):
    """The distinct non-empty values of a string column, sorted, the first `limit`, comma-joined."""
    return f"arrayStringConcat(arraySlice(arraySort(groupUniqArrayIf({col}, {col} != '')), 1, {limit}), ', ')"


def cert_matches(host):
    """True when a certificate name (subjectAltNames and CN) matches `host`: equal, or a
    `*.suffix` wildcard covering exactly the first label (case-insensitive)."""
    return ("arrayExists(p -> lower(p) = lower(" + host + ") OR (substring(p, 1, 2) = '*.' AND position("
            + host + ", '.') > 1 AND lower(substring(p, 2)) = lower(substring(" + host + ", position("
            + host + ", '.')))), arrayPushBack(cert_sans, cert_subject_cn))")


RAW_STEP = "toUInt32($__interval_s) AS step"
HOUR_STEP = "greatest(3600, intDiv(toUInt32($__interval_s), 3600) * 3600) AS step"
BUCKET = "toDateTime(intDiv(toUInt32(t), step) * step, 'UTC') AS time"
HOUR_BUCKET = "toDateTime(intDiv(toUInt32(hour), step) * step, 'UTC') AS time"
STATS_BUCKET = "toDateTime(intDiv(toUInt32(ts), step) * step, 'UTC') AS time"

# ---------------------------------------------------------------------------------------
# Panels and dashboards


def table(title, sql, description, w=24, h=8, kind="table", options=None, field_config=None):
    return {"title": title, "sql": sql.strip(), "description": description, "w": w, "h": h,
            "type": kind, "format": "table", "options": options, "fieldConfig": field_config}


def series(title, sql, description, w=12, h=8, unit="short", stacking=None, options=None):
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "auto",
              "spanNulls": False}
    if stacking:
        custom.update({"stacking": {"mode": stacking, "group": "A"}, "fillOpacity": 60})
    return {"title": title, "sql": sql.strip(), "description": description, "w": w, "h": h,
            "type": "timeseries", "format": "time_series", "options": options,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []}}


def stat(title, sql, description, w=24, h=4, unit="short"):
    return table(title, sql, description, w=w, h=h, kind="stat",
                 options={"reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
                          "colorMode": "value", "graphMode": "none", "textMode": "value_and_name",
                          "orientation": "auto", "justifyMode": "auto"},
                 field_config={"defaults": {"unit": unit}, "overrides": []})


def pie(title, sql, description, w=8, h=8):
    return table(title, sql, description, w=w, h=h, kind="piechart",
                 options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"], "fields": ""},
                          "pieType": "donut", "displayLabels": ["name", "percent"],
                          "legend": {"displayMode": "table", "placement": "right",
                                     "values": ["value", "percent"]}},
                 field_config={"defaults": {"unit": "short"}, "overrides": []})


def bars(title, sql, description, w=12, h=8, unit="short"):
    return table(title, sql, description, w=w, h=h, kind="bargauge",
                 options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"], "fields": ""},
                          "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True},
                 field_config={"defaults": {"unit": unit, "min": 0}, "overrides": []})


# --- Overview ----------------------------------------------------------------------------

OVERVIEW = [
    stat("Sessions in range", f"""
SELECT
  sum(sessions) AS sessions_in_range,
  sum(sessions_tls) AS tls_established,
  sumIf(sessions, mode = 'plaintext') AS plaintext,
  sumIf(sessions, outcome = 'tls_failed') AS tls_failed,
  sumIf(sessions, outcome = 'starttls_refused') AS starttls_refused,
  sum(sessions_auth_cleartext) AS auth_in_clear
FROM {HOURLY}
WHERE {HOURLY_WHERE}
""", "How much mail traffic the sensors saw, and how much of it was protected. From the hourly "
         "rollup: whole hours overlapping the range are counted."),
    series("Sessions over time by mode and outcome", f"""
WITH {HOUR_STEP}
SELECT
  {HOUR_BUCKET},
  concat(mode, ' / ', outcome) AS mode_outcome,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
GROUP BY time, mode_outcome
ORDER BY time, mode_outcome
""", "Sessions per interval (at least one hour: hourly rollup), one series per mode / outcome "
         "(starttls, implicit_tls, plaintext, unknown / tls, tls_failed, starttls_refused, "
         "plaintext_offered, plaintext_not_offered, incomplete).", stacking="normal"),
    series("Negotiated TLS version share over time", f"""
WITH {HOUR_STEP}
SELECT
  {HOUR_BUCKET},
  tls_version,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
  AND tls_version != ''
GROUP BY time, tls_version
ORDER BY time, tls_version
""", "Which TLS version the servers chose (sessions with a ServerHello), stacked to 100 %.",
           stacking="percent"),
    pie("Cipher class share", f"""
SELECT
  tls_cipher_class AS class,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
  AND tls_cipher_class != ''
GROUP BY class
ORDER BY class
""", "Negotiated cipher suites by ciphersuite.info class: recommended, secure, weak, insecure."),
    pie("Direction split", f"""
SELECT
  direction,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
GROUP BY direction
ORDER BY direction
""", "Sessions by direction (from the sensor's --local-net): inbound, outbound, internal, external."),
    table("Sessions by mode and outcome", f"""
SELECT
  mode,
  outcome,
  sum(sessions) AS sessions,
  sum(sessions_tls) AS tls_established
FROM {HOURLY}
WHERE {HOURLY_WHERE}
GROUP BY mode, outcome
ORDER BY sessions DESC, mode, outcome
""", "The same counts as a table.", w=8),
    table("Top servers", f"""
WITH {T} AS t
SELECT
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  count() AS sessions,
  countIf(toUInt8(tls_established) = 1) AS tls_established,
  {name(f"max({code('tls_version')})")} AS best_negotiated,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
GROUP BY server, port
ORDER BY sessions DESC, server, port
LIMIT 20
""", "The 20 servers (address and port) with the most sessions.", w=12, h=9),
    table("Top clients", f"""
WITH {T} AS t
SELECT
  {ip('client_ip')} AS client,
  {names('ehlo_host')} AS ehlo_names,
  count() AS sessions,
  countIf(toUInt8(tls_established) = 1) AS tls_established,
  {name(f"max({code('tls_client_max_version')})")} AS best_offered,
  countIf(toUInt8(auth_cleartext) = 1) AS auth_in_clear,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
GROUP BY client
ORDER BY sessions DESC, client
LIMIT 20
""", "The 20 clients with the most sessions, the names they gave in EHLO/HELO and the best "
         "TLS version they offered.", w=12, h=9),
]

# --- TLS minimum readiness ---------------------------------------------------------------

READINESS = [
    table("Share of TLS sessions that would fail under each minimum version", f"""
WITH
  {T} AS t,
  {code('tls_client_max_version')} AS offered,
  {code('tls_version')} AS negotiated,
  if(negotiated > 0, negotiated, offered) AS reachable
SELECT
  {name('minimum')} AS minimum_version,
  countIf(reachable < minimum) AS sessions_failing,
  count() AS tls_sessions,
  round(100 * countIf(reachable < minimum) / count(), 2) AS percent_failing
FROM {SESSIONS}
ARRAY JOIN [769, 770, 771, 772] AS minimum
WHERE {WHERE}
  AND reachable > 0
GROUP BY minimum
ORDER BY minimum
""", "For a minimum of TLS 1.0, 1.1, 1.2 and 1.3: the sessions whose reachable version is below it. "
         "The reachable version is the negotiated one when the server answered, else the best "
         "version the client offered. Only sessions with a ClientHello or ServerHello count.",
          w=12, h=7),
    series("TLS sessions below the ${minimum:text} minimum, by direction", f"""
WITH
  {T} AS t,
  {RAW_STEP},
  {code('tls_client_max_version')} AS offered,
  {code('tls_version')} AS negotiated,
  if(negotiated > 0, negotiated, offered) AS reachable
SELECT
  {BUCKET},
  direction,
  count() AS sessions
FROM {SESSIONS}
WHERE {WHERE}
  AND reachable > 0
  AND reachable < $minimum
GROUP BY time, direction
ORDER BY time, direction
""", "Sessions that would fail under the selected minimum (variable `minimum`) per interval.",
           w=12, h=7),
    table("Clients whose best offered version is below ${minimum:text}", f"""
WITH
  {T} AS t,
  {code('tls_client_max_version')} AS offered
SELECT
  direction,
  {ip('client_ip')} AS client,
  {names('ehlo_host')} AS ehlo_names,
  {names('tls_sni')} AS sni,
  {name('max(offered)')} AS best_offered,
  count() AS tls_sessions,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
  AND offered > 0
GROUP BY direction, client
HAVING max(offered) < $minimum
ORDER BY tls_sessions DESC, direction, client
""", "Clients (per direction) that never offered the selected minimum version in any "
         "ClientHello in the range: they break when servers require it. tls_sessions counts their "
         "sessions with a ClientHello.", h=9),
    table("Servers whose best negotiated version is below ${minimum:text}", f"""
WITH
  {T} AS t,
  {code('tls_version')} AS negotiated,
  {code('tls_client_max_version')} AS offered
SELECT
  direction,
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  {names('tls_sni')} AS sni,
  {name('max(negotiated)')} AS best_negotiated,
  {name('max(offered)')} AS best_client_offered,
  count() AS tls_sessions,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
  AND negotiated > 0
GROUP BY direction, server, port
HAVING max(negotiated) < $minimum
ORDER BY tls_sessions DESC, direction, server, port
""", "Servers (per direction) that never chose the selected minimum version: they break when "
         "clients require it. When best_client_offered is also below the minimum, the server was "
         "only seen with old clients and may support more.", h=9),
]

# --- Weak crypto -------------------------------------------------------------------------

WEAK = [
    bars("Sessions by cipher class", f"""
SELECT
  tls_cipher_class AS class,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
  AND tls_cipher_class != ''
GROUP BY class
ORDER BY class
""", "Negotiated suites by ciphersuite.info class (insecure: broken, e.g. RC4, NULL, EXPORT; "
         "weak: no forward secrecy or CBC/SHA1; secure; recommended)."),
    series("Cipher class over time", f"""
WITH {HOUR_STEP}
SELECT
  {HOUR_BUCKET},
  tls_cipher_class AS class,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
  AND tls_cipher_class != ''
GROUP BY time, class
ORDER BY time, class
""", "Sessions per interval (at least one hour) by cipher class.", stacking="normal"),
    table("Top weak and insecure suites", f"""
SELECT
  tls_cipher AS cipher,
  tls_cipher_class AS class,
  arrayStringConcat(arraySort(groupUniqArray(tls_version)), ', ') AS versions,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
  AND tls_cipher_class IN ('weak', 'insecure')
GROUP BY cipher, class
ORDER BY sessions DESC, cipher
LIMIT 20
""", "The 20 most used weak or insecure suites, with the TLS versions they were negotiated in."),
    table("Peers negotiating weak or insecure suites", f"""
WITH {T} AS t
SELECT
  direction,
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  {ip('client_ip')} AS client,
  {names('ehlo_host')} AS ehlo_names,
  arrayStringConcat(arraySort(groupUniqArray(tls_cipher)), ', ') AS suites,
  if(has(groupUniqArray(tls_cipher_class), 'insecure'), 'insecure', 'weak') AS worst_class,
  count() AS sessions,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
  AND tls_cipher_class IN ('weak', 'insecure')
GROUP BY direction, server, port, client
ORDER BY sessions DESC, direction, server, port, client
LIMIT 100
""", "Which server/client pairs agreed on a weak or insecure suite, and which suites.", h=10),
]

# --- STARTTLS health ---------------------------------------------------------------------

STARTTLS = [
    bars("STARTTLS: offered, requested, accepted", f"""
WITH {T} AS t
SELECT
  count() AS smtp_sessions,
  countIf(ifNull(toUInt8(starttls_offered), 2) = 1) AS offered,
  countIf(toUInt8(starttls_requested) = 1) AS requested,
  countIf(starttls_reply = 220) AS accepted,
  countIf(mode = 'starttls' AND toUInt8(tls_established) = 1) AS tls_established
FROM {SESSIONS}
WHERE {WHERE}
  AND mode IN ('starttls', 'plaintext')
""", "Sessions with an SMTP dialogue in clear (ports 25/587): how many EHLO replies offered "
         "STARTTLS, how many clients asked for it, how many got 220, how many completed TLS."),
    series("STARTTLS over time", f"""
WITH
  {T} AS t,
  {RAW_STEP}
SELECT
  {BUCKET},
  countIf(ifNull(toUInt8(starttls_offered), 2) = 1) AS offered,
  countIf(toUInt8(starttls_requested) = 1) AS requested,
  countIf(starttls_reply = 220) AS accepted
FROM {SESSIONS}
WHERE {WHERE}
  AND mode IN ('starttls', 'plaintext')
GROUP BY time
ORDER BY time
""", "Offered, requested and accepted STARTTLS per interval."),
    table("STARTTLS refusals by reply code", f"""
WITH {T} AS t
SELECT
  starttls_reply AS reply_code,
  count() AS sessions,
  uniqExact(server_ip, server_port) AS servers,
  uniqExact(client_ip) AS clients
FROM {SESSIONS}
WHERE {WHERE}
  AND outcome = 'starttls_refused'
GROUP BY reply_code
ORDER BY sessions DESC, reply_code
""", "The client asked for STARTTLS and the server answered something else than 220 "
         "(0: no reply seen).", w=8),
    table("Servers refusing STARTTLS", f"""
WITH {T} AS t
SELECT
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  arrayStringConcat(arraySort(groupUniqArray(toString(starttls_reply))), ', ') AS reply_codes,
  count() AS sessions,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
  AND outcome = 'starttls_refused'
GROUP BY server, port
ORDER BY sessions DESC, server, port
""", "Servers that answered STARTTLS with something else than 220.", w=16),
    pie("Plaintext sessions: STARTTLS not offered vs offered but not used", f"""
SELECT
  transform(outcome, ['plaintext_not_offered', 'plaintext_offered'], ['not offered', 'offered, not used'], outcome) AS plaintext,
  sum(sessions) AS sessions
FROM {HOURLY}
WHERE {HOURLY_WHERE}
  AND outcome IN ('plaintext_not_offered', 'plaintext_offered')
GROUP BY plaintext
ORDER BY plaintext
""", "Sessions that carried SMTP in clear: the server did not offer STARTTLS (or it was "
         "stripped), or it did and the client did not use it. Hourly rollup."),
    table("Plaintext sessions by server", f"""
WITH {T} AS t
SELECT
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  countIf(outcome = 'plaintext_not_offered') AS not_offered,
  countIf(outcome = 'plaintext_offered') AS offered_not_used,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
  AND outcome IN ('plaintext_not_offered', 'plaintext_offered')
GROUP BY server, port
ORDER BY not_offered + offered_not_used DESC, server, port
""", "Per server: plaintext sessions without a STARTTLS offer, and with an offer the client "
         "ignored.", w=16),
    table("AUTH in clear", f"""
WITH {T} AS t
SELECT
  {ip('client_ip')} AS client,
  {names('ehlo_host')} AS ehlo_names,
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  arrayStringConcat(arraySort(groupUniqArray(auth_cleartext_mech)), ', ') AS mechanisms,
  count() AS sessions,
  max(t) AS last_seen
FROM {SESSIONS}
WHERE {WHERE}
  AND toUInt8(auth_cleartext) = 1
GROUP BY client, server, port
ORDER BY sessions DESC, client, server, port
""", "Clients that started SMTP AUTH before TLS: their credentials crossed the network in clear "
         "(the sensor keeps only the mechanism name)."),
    table("STARTTLS stripping suspects", f"""
SELECT
  time,
  {ip('server_ip')} AS server,
  server_port AS port,
  smtp_banner_host AS banner_host,
  {ip('client_ip')} AS client,
  ehlo_host,
  if(mangled, 'capability mangled', 'STARTTLS missing, offered before') AS reason,
  if(first_offered = 0, NULL, toDateTime(first_offered, 'UTC')) AS first_offered_at,
  arrayStringConcat(smtp_capabilities, ' ') AS capabilities
FROM
(
  SELECT
    {T} AS t,
    t AS time,
    toUInt32(t) AS ts,
    server_ip, server_port, client_ip, smtp_banner_host, ehlo_host, smtp_capabilities,
    arrayExists(c -> match(c, '^XXXX'), smtp_capabilities) AS mangled
  FROM {SESSIONS}
  WHERE {WHERE_4}
    AND ifNull(toUInt8(starttls_offered), 2) = 0
) AS s
ANY LEFT JOIN
(
  SELECT
    server_ip,
    server_port,
    min(toUInt32({T})) AS first_offered
  FROM {SESSIONS}
  WHERE toUInt32({T}) >= toUInt32($__fromTime) - 2592000
    AND toUInt32({T}) <= toUInt32($__toTime)
    AND {SENSOR}
    AND ifNull(toUInt8(starttls_offered), 2) = 1
  GROUP BY server_ip, server_port
) AS h USING (server_ip, server_port)
WHERE mangled OR (first_offered > 0 AND first_offered < ts)
ORDER BY time DESC, server, port, client
LIMIT 200
""", "Sessions whose EHLO reply did not offer STARTTLS although the same server (address and "
         "port) offered it in an earlier session (looking back 30 days before the range), or whose "
         "capability list has a keyword overwritten with X (e.g. XXXXXXXA, a middlebox blanking "
         "STARTTLS).", h=10),
]

# --- Certificates ------------------------------------------------------------------------

CERT_NOTE = (" Certificates are visible in TLS 1.0-1.2 handshakes only: TLS 1.3 encrypts them, so "
             "TLS 1.3 sessions never appear here.")

# One row per certificate (SHA-256) presented in the range, with its flags.
CERT_ROWS = f"""
  SELECT
    cert_sha256,
    any(cert_subject_cn) AS subject_cn,
    arrayStringConcat(arraySlice(any(cert_sans), 1, 5), ', ') AS sans,
    any(cert_issuer) AS issuer,
    any(na) AS not_after_s,
    any(nb) AS not_before_s,
    any(cert_key_alg) AS key_alg,
    any(cert_key_bits) AS key_bits,
    max(toUInt8(cert_self_signed)) AS self_signed,
    arrayStringConcat(arraySlice(arraySort(groupUniqArray(concat({ip('server_ip')}, ':', toString(server_port)))), 1, 5), ', ') AS servers,
    count() AS sessions,
    countIf((has_not_after AND na < toUInt32(t)) OR nb > toUInt32(t)) AS sessions_invalid,
    max(t) AS last_seen
  FROM
  (
    SELECT
      cert_sha256, cert_subject_cn, cert_sans, cert_issuer, cert_key_alg, cert_key_bits,
      cert_self_signed, server_ip, server_port,
      isNotNull(cert_not_after) AS has_not_after,
      {T} AS t,
      {secs('cert_not_after')} AS na,
      {secs('cert_not_before')} AS nb
    FROM {SESSIONS}
    WHERE {WHERE_6}
      AND cert_sha256 != ''
  )
  GROUP BY cert_sha256
"""


def cert_table(title, condition, description, extra_cols="", order="last_seen DESC, cert_sha256"):
    return table(title, f"""
SELECT
  subject_cn,
  sans,
  issuer,
  toDateTime(least(greatest(not_before_s, 0), 4294967295), 'UTC') AS not_before,
  toDateTime(least(greatest(not_after_s, 0), 4294967295), 'UTC') AS not_after,{extra_cols}
  concat(key_alg, ' ', toString(key_bits)) AS public_key,
  servers,
  sessions,
  last_seen,
  cert_sha256
FROM
({CERT_ROWS})
WHERE {condition}
ORDER BY {order}
LIMIT 100
""", description + CERT_NOTE, h=8)


EXPIRING = "not_after_s >= toUInt32($__toTime) AND not_after_s < toUInt32($__toTime) + 2592000"
MISMATCH_SESSION = (f"(tls_sni != '' AND NOT {cert_matches('tls_sni')}) OR "
                    f"(smtp_banner_host != '' AND NOT {cert_matches('smtp_banner_host')})")

CERTIFICATES = [
    stat("Certificates (TLS ≤ 1.2 sessions only)", f"""
SELECT
  count() AS certificates,
  countIf(sessions_invalid > 0) AS expired_when_presented,
  countIf({EXPIRING}) AS expiring_within_30_days,
  countIf(self_signed = 1) AS self_signed,
  countIf(key_alg = 'RSA' AND key_bits > 0 AND key_bits < 2048) AS rsa_below_2048
FROM
({CERT_ROWS})
""", "Distinct leaf certificates presented in the range, and how many are expired (or not yet "
         "valid) when presented, expire within 30 days after the range end, are self-signed, or "
         "have an RSA key below 2048 bits." + CERT_NOTE, w=16),
    stat("TLS 1.3 sessions (certificate not visible)", f"""
WITH {T} AS t
SELECT
  countIf(tls_version = 'TLSv1.3') AS tls13_sessions,
  countIf(cert_sha256 != '') AS sessions_with_certificate
FROM {SESSIONS}
WHERE {WHERE}
""", "How much of the traffic the certificate panels cannot see.", w=8),
    cert_table("Expired or not yet valid when presented", "sessions_invalid > 0",
               "Certificates presented at least once after their notAfter (or before their "
               "notBefore).", extra_cols="\n  sessions_invalid,"),
    cert_table("Expiring within 30 days of the range end", EXPIRING,
               "Certificates presented in the range that are still valid at its end and expire "
               "within 30 days after it (days_left: days from the range end to notAfter).",
               extra_cols="\n  round((not_after_s - toInt64(toUInt32($__toTime))) / 86400, 1) AS days_left,",
               order="not_after_s, cert_sha256"),
    cert_table("Self-signed certificates", "self_signed = 1",
               "Certificates whose issuer equals their subject."),
    table("Certificate name does not match the banner host or SNI", f"""
WITH {T} AS t
SELECT
  {ip('server_ip')} AS server,
  server_port AS port,
  {names('smtp_banner_host')} AS banner_hosts,
  {names('tls_sni')} AS sni,
  any(cert_subject_cn) AS subject_cn,
  arrayStringConcat(arraySlice(any(cert_sans), 1, 5), ', ') AS sans,
  countIf(tls_sni != '' AND NOT {cert_matches('tls_sni')}) AS sni_mismatches,
  countIf(smtp_banner_host != '' AND NOT {cert_matches('smtp_banner_host')}) AS banner_mismatches,
  count() AS sessions,
  max(t) AS last_seen,
  cert_sha256
FROM {SESSIONS}
WHERE {WHERE}
  AND cert_sha256 != ''
  AND ({MISMATCH_SESSION})
GROUP BY server, port, cert_sha256
ORDER BY sessions DESC, server, port, cert_sha256
LIMIT 100
""", "Sessions whose certificate names (subjectAltNames and CN; `*.` wildcards cover one label) "
         "match neither the SNI the client asked for nor the host name in the server's 220 "
         "banner." + CERT_NOTE, h=8),
    cert_table("RSA keys below 2048 bits (TLS ≤ 1.2 sessions only)",
               "key_alg = 'RSA' AND key_bits > 0 AND key_bits < 2048",
               "Certificates with an RSA key shorter than 2048 bits."),
]

# --- Sensor health -----------------------------------------------------------------------

SENSOR_HEALTH = [
    series("Packets per second", f"""
WITH {RAW_STEP}
SELECT
  {STATS_BUCKET},
  sensor,
  sum(packets) * 1000 / nullIf(sum(interval_ms), 0) AS packets_per_s
FROM {STATS}
WHERE {STATS_WHERE}
GROUP BY time, sensor
ORDER BY time, sensor
""", "Packets read per second per sensor (sum of packets over the summed report intervals; "
         "empty for a report without an interval).", unit="pps"),
    series("Drops", f"""
WITH {RAW_STEP}
SELECT
  {STATS_BUCKET},
  sum(kernel_drops) AS kernel_drops,
  sum(kernel_if_drops) AS interface_drops,
  sum(own_drops) AS sensor_drops,
  sum(rows_dropped) AS rows_dropped
FROM {STATS}
WHERE {STATS_WHERE}
GROUP BY time
ORDER BY time
""", "Packets dropped by the kernel, the interface and the sensor itself (full queues, flow "
         "limits), and session rows the sink dropped (spool full)."),
    series("Flows and queues", f"""
WITH {RAW_STEP}
SELECT
  {STATS_BUCKET},
  max(active_flows) AS active_flows,
  max(worker_queue_depth) AS worker_queue_depth,
  max(sink_queue_depth) AS sink_queue_depth
FROM {STATS}
WHERE {STATS_WHERE}
GROUP BY time
ORDER BY time
""", "Flows in the flow tables and the deepest queues (gauges, maximum per interval)."),
    series("Sink lag: rows written, spooled and spool size", f"""
WITH {RAW_STEP}
SELECT
  {STATS_BUCKET},
  sum(rows_written) AS rows_written,
  sum(rows_spooled) AS rows_spooled,
  sum(batches_retried) AS batches_retried,
  max(spool_bytes) AS spool_bytes
FROM {STATS}
WHERE {STATS_WHERE}
GROUP BY time
ORDER BY time
""", "What the ClickHouse sink inserted, what it had to put in the spool (ClickHouse slow or "
         "down) and the spool's size: a growing spool is rows not yet in ClickHouse."),
    series("Insert latency percentiles", f"""
WITH {RAW_STEP}
SELECT
  {STATS_BUCKET},
  max(insert_latency_p50_us) AS p50,
  max(insert_latency_p90_us) AS p90,
  max(insert_latency_p99_us) AS p99,
  max(insert_latency_max_us) AS maximum
FROM {STATS}
WHERE {STATS_WHERE}
  AND insert_latency_max_us > 0
GROUP BY time
ORDER BY time
""", "INSERT latency of the sink (µs, hdrhistogram per report; the worst report of each interval).",
           unit="µs"),
    table("Newest session per sensor", f"""
WITH {T} AS t
SELECT
  sensor,
  max(t) AS newest_session,
  toUInt32($__toTime) - toUInt32(max(t)) AS seconds_before_range_end,
  count() AS sessions
FROM {SESSIONS}
WHERE {WHERE}
GROUP BY sensor
ORDER BY sensor
""", "How far behind the range end the newest stored session is: with the range ending now, a "
         "large value means the sensor or its sink is stalled.", w=12, h=6),
    table("Per sensor", f"""
SELECT
  sensor,
  count() AS reports,
  max(ts) AS last_report,
  sum(packets) AS packets,
  sum(bytes) AS bytes,
  round(packets * 1000 / nullIf(sum(interval_ms), 0), 1) AS packets_per_s,
  sum(kernel_drops) AS kernel_drops,
  sum(kernel_if_drops) AS interface_drops,
  sum(own_drops) AS sensor_drops,
  sum(parse_errors) AS parse_errors,
  sum(records) AS records,
  sum(rows_written) AS rows_written,
  sum(rows_spooled) AS rows_spooled,
  sum(rows_dropped) AS rows_dropped,
  sum(batches_retried) AS batches_retried,
  max(spool_bytes) AS max_spool_bytes,
  max(insert_latency_p99_us) AS max_p99_us
FROM {STATS}
WHERE {STATS_WHERE}
GROUP BY sensor
ORDER BY sensor
""", "Totals per sensor over the range (counters are per-report deltas, so sums are totals).",
          w=12, h=6),
]

# ---------------------------------------------------------------------------------------

SENSOR_VAR_SQL = (
    "SELECT DISTINCT sensor FROM (\n"
    "  SELECT sensor FROM ${database}.sessions_hourly WHERE hour >= toStartOfHour($__fromTime) AND hour <= ($__toTime)\n"
    "  UNION ALL\n"
    "  SELECT sensor FROM ${database}.sensor_stats WHERE $__timeFilter(ts)\n"
    ") ORDER BY sensor"
)


def variables(extra=()):
    out = [
        {"type": "datasource", "name": "datasource", "label": "Data source", "query": PLUGIN,
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
        {"type": "constant", "name": "database", "label": "ClickHouse database", "query": "mailtls",
         "current": {"text": "mailtls", "value": "mailtls"}, "hide": 2, "options": [],
         "description": "The sensor's --clickhouse-database (edit the dashboard to change it)."},
        {"type": "query", "name": "sensor", "label": "Sensor", "datasource": DS,
         "definition": SENSOR_VAR_SQL, "query": SENSOR_VAR_SQL, "refresh": 2, "sort": 1,
         "multi": True, "includeAll": True,
         "current": {"text": ["All"], "value": ["$__all"]}, "options": [], "regex": "", "hide": 0},
        {"type": "custom", "name": "direction", "label": "Direction",
         "query": "inbound,outbound,internal,external", "multi": True, "includeAll": True,
         "current": {"text": ["All"], "value": ["$__all"]}, "hide": 0,
         "options": [{"text": "All", "value": "$__all", "selected": True}] + [
             {"text": d, "value": d, "selected": False}
             for d in ("inbound", "outbound", "internal", "external")]},
    ]
    out.extend(extra)
    return out


MINIMUM_VAR = {
    "type": "custom", "name": "minimum", "label": "Minimum version",
    "query": "TLS 1.2 : 771,TLS 1.3 : 772", "multi": False, "includeAll": False,
    "current": {"text": "TLS 1.2", "value": "771"}, "hide": 0,
    "options": [{"text": "TLS 1.2", "value": "771", "selected": True},
                {"text": "TLS 1.3", "value": "772", "selected": False}],
}

DASHBOARDS = [
    ("overview", "mailtls-overview", "mailtls: overview",
     "Mail sessions by mode and outcome, TLS versions, cipher classes, directions, top peers.",
     OVERVIEW, (), "now-24h"),
    ("tls-readiness", "mailtls-tls-readiness", "mailtls: TLS minimum readiness",
     "Who breaks if a minimum TLS version is enforced.", READINESS, (MINIMUM_VAR,), "now-7d"),
    ("weak-crypto", "mailtls-weak-crypto", "mailtls: weak crypto",
     "Weak and insecure cipher suites and the peers using them.", WEAK, (), "now-7d"),
    ("starttls", "mailtls-starttls", "mailtls: STARTTLS health",
     "STARTTLS offered, requested, accepted; refusals; plaintext; AUTH in clear; stripping.",
     STARTTLS, (), "now-24h"),
    ("certificates", "mailtls-certificates", "mailtls: certificates",
     "Server certificates seen in TLS ≤ 1.2 handshakes: validity, self-signed, names, key sizes.",
     CERTIFICATES, (), "now-7d"),
    ("sensor-health", "mailtls-sensor-health", "mailtls: sensor health",
     "Capture rate, drops, flows, queues, ClickHouse sink lag and insert latency.",
     SENSOR_HEALTH, (), "now-6h"),
]


def layout(panels):
    x = y = row_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        if x + p["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        target = {
            "refId": "A",
            "datasource": DS,
            "editorType": "sql",
            "pluginVersion": PLUGIN_VERSION,
            "queryType": "timeseries" if p["format"] == "time_series" else "table",
            "format": 0 if p["format"] == "time_series" else 1,
            "rawSql": p["sql"],
        }
        panel = {
            "id": i,
            "type": p["type"],
            "title": p["title"],
            "description": p["description"],
            "datasource": DS,
            "gridPos": {"x": x, "y": y, "w": p["w"], "h": p["h"]},
            "targets": [target],
        }
        if p["fieldConfig"]:
            panel["fieldConfig"] = p["fieldConfig"]
        else:
            panel["fieldConfig"] = {"defaults": {}, "overrides": []}
        if p["options"]:
            panel["options"] = p["options"]
        elif p["type"] == "table":
            panel["options"] = {"showHeader": True, "cellHeight": "sm",
                                "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
        out.append(panel)
        x += p["w"]
        row_h = max(row_h, p["h"])
    return out


def dashboard(uid, title, description, panels, extra_vars, time_from):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mailtls", "smtp", "tls"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "timezone": "utc",
        "refresh": "",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["mailtls"], "asDropdown": True, "title": "mailtls",
                   "includeVars": True, "keepTime": True}],
        "templating": {"list": variables(extra_vars)},
        "panels": layout(panels),
    }


def render():
    """{file name: JSON text} for every dashboard."""
    out = {}
    for slug, uid, title, description, panels, extra, time_from in DASHBOARDS:
        doc = dashboard(uid, title, description, panels, extra, time_from)
        out[f"{slug}.json"] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv):
    files = render()
    if "--check" in argv:
        stale = [n for n, text in files.items()
                 if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"dashboards out of date: {stale} extra: {extra}; run dashboards/generate.py")
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for n, text in files.items():
        (OUT / n).write_text(text)
    print(f"wrote {len(files)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
