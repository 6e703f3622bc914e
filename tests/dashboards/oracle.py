"""Every dashboard panel's expected result, computed in Python from the session records
(the JSONL the sensor wrote) and the sensor_stats rows, without SQL.

`EXPECTED[(dashboard file, panel title)](ctx)` returns the rows (list of dicts, in the
panel's ORDER BY) the panel's query must return for the scenario in `ctx`.
"""
import collections
import datetime as dt

VERSIONS = {"SSLv2": 2, "SSLv3": 768, "TLSv1.0": 769, "TLSv1.1": 770, "TLSv1.2": 771, "TLSv1.3": 772}
NAMES = {v: k for k, v in VERSIONS.items()}
MIN_NAMES = {769: "TLSv1.0", 770: "TLSv1.1", 771: "TLSv1.2", 772: "TLSv1.3"}
MONTH = 2592000


def micros(text):
    """RFC 3339 with 6 fractional digits -> µs since the epoch."""
    d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(d.replace(tzinfo=dt.timezone.utc).timestamp()) * 1_000_000 + d.microsecond


def fmt_time(secs):
    return dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def trunc_div(a, b):
    q = abs(a) // b
    return q if a >= 0 else -q


class Rec:
    """A record with the derived values the SQL computes."""

    def __init__(self, r):
        self.r = r
        self.t = micros(r["ts_start"]) // 1_000_000
        self.hour = self.t - self.t % 3600
        self.offered = VERSIONS.get(r["tls_client_max_version"], 0)
        self.negotiated = VERSIONS.get(r["tls_version"], 0)
        self.reachable = self.negotiated if self.negotiated > 0 else self.offered
        self.server = r["server_ip"]
        self.client = r["client_ip"]
        na, nb = r["cert_not_after"], r["cert_not_before"]
        self.na = 0 if na is None else trunc_div(micros(na), 1_000_000)
        self.nb = 0 if nb is None else trunc_div(micros(nb), 1_000_000)

    def __getitem__(self, k):
        return self.r[k]


class Ctx:
    """A scenario: time range (seconds), interval, variable selections, data."""

    def __init__(self, records, stats, from_s, to_s, interval_s, sensors=None, directions=None,
                 minimum=771):
        self.all = [Rec(r) for r in records]
        self.stats_all = stats
        self.from_s, self.to_s, self.interval_s = from_s, to_s, max(interval_s, 1)
        self.sensors, self.directions = sensors, directions  # None = All
        self.minimum = minimum

    def sel(self, r):
        return ((self.sensors is None or r["sensor"] in self.sensors)
                and (self.directions is None or r["direction"] in self.directions))

    @property
    def rows(self):
        """Raw sessions in range: $__timeFilter(t) on the start second."""
        return [r for r in self.all if self.from_s <= r.t <= self.to_s and self.sel(r)]

    @property
    def hourly(self):
        """Rollup rows: every hour overlapping the range."""
        start = self.from_s - self.from_s % 3600
        return [r for r in self.all if start <= r.hour <= self.to_s and self.sel(r)]

    @property
    def stats(self):
        return [s for s in self.stats_all if self.from_s <= s["_ts"] <= self.to_s
                and (self.sensors is None or s["sensor"] in self.sensors)]

    @property
    def hour_step(self):
        return max(3600, (self.interval_s // 3600) * 3600)


def names(values, limit=5):
    return ", ".join(sorted({v for v in values if v != ""})[:limit])


def uniq_sorted(values):
    return ", ".join(sorted(set(values)))


def group(rows, key):
    out = collections.OrderedDict()
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def count(rows, pred=lambda r: True):
    return sum(1 for r in rows if pred(r))


def series_rows(rows, step, tkey, label, label_fn, value, value_fn):
    g = group(rows, lambda r: ((getattr(r, tkey) // step) * step, label_fn(r)))
    return [{"time": fmt_time(t), label: lab, value: value_fn(rs)} for (t, lab), rs in sorted(g.items())]


# --- Overview ----------------------------------------------------------------------------

def ov_totals(c):
    rs = c.hourly
    return [{"sessions_in_range": len(rs), "tls_established": count(rs, lambda r: r["tls_established"]),
             "plaintext": count(rs, lambda r: r["mode"] == "plaintext"),
             "tls_failed": count(rs, lambda r: r["outcome"] == "tls_failed"),
             "starttls_refused": count(rs, lambda r: r["outcome"] == "starttls_refused"),
             "auth_in_clear": count(rs, lambda r: r["auth_cleartext"])}]


def ov_mode_outcome_series(c):
    return series_rows(c.hourly, c.hour_step, "hour", "mode_outcome",
                       lambda r: f"{r['mode']} / {r['outcome']}", "sessions", len)


def ov_version_series(c):
    return series_rows([r for r in c.hourly if r["tls_version"]], c.hour_step, "hour", "tls_version",
                       lambda r: r["tls_version"], "sessions", len)


def share(rows, key, label, pred=lambda r: True):
    g = group([r for r in rows if pred(r)], key)
    return [{label: k, "sessions": len(v)} for k, v in sorted(g.items())]


def ov_cipher_share(c):
    return share(c.hourly, lambda r: r["tls_cipher_class"], "class", lambda r: r["tls_cipher_class"] != "")


def ov_direction(c):
    return share(c.hourly, lambda r: r["direction"], "direction")


def ov_mode_outcome_table(c):
    g = group(c.hourly, lambda r: (r["mode"], r["outcome"]))
    rows = [{"mode": m, "outcome": o, "sessions": len(v), "tls_established": count(v, lambda r: r["tls_established"])}
            for (m, o), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["mode"], x["outcome"]))


def ov_top_servers(c):
    g = group(c.rows, lambda r: (r.server, r["server_port"]))
    rows = [{"server": s, "port": p, "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "sessions": len(v), "tls_established": count(v, lambda r: r["tls_established"]),
             "best_negotiated": NAMES.get(max(r.negotiated for r in v), ""),
             "last_seen": fmt_time(max(r.t for r in v))} for (s, p), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["server"], x["port"]))[:20]


def ov_top_clients(c):
    g = group(c.rows, lambda r: r.client)
    rows = [{"client": k, "ehlo_names": names(r["ehlo_host"] for r in v), "sessions": len(v),
             "tls_established": count(v, lambda r: r["tls_established"]),
             "best_offered": NAMES.get(max(r.offered for r in v), ""),
             "auth_in_clear": count(v, lambda r: r["auth_cleartext"]),
             "last_seen": fmt_time(max(r.t for r in v))} for k, v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["client"]))[:20]


# --- Readiness ---------------------------------------------------------------------------

def rd_share(c):
    rs = [r for r in c.rows if r.reachable > 0]
    if not rs:
        return []
    out = []
    for m in (769, 770, 771, 772):
        failing = count(rs, lambda r: r.reachable < m)
        out.append({"minimum_version": MIN_NAMES[m], "sessions_failing": failing, "tls_sessions": len(rs),
                    "percent_failing": round(100 * failing / len(rs), 2)})
    return out


def rd_series(c):
    rs = [r for r in c.rows if 0 < r.reachable < c.minimum]
    return series_rows(rs, c.interval_s, "t", "direction", lambda r: r["direction"], "sessions", len)


def rd_clients(c):
    g = group([r for r in c.rows if r.offered > 0], lambda r: (r["direction"], r.client))
    rows = [{"direction": d, "client": k, "ehlo_names": names(r["ehlo_host"] for r in v),
             "sni": names(r["tls_sni"] for r in v), "best_offered": NAMES[max(r.offered for r in v)],
             "tls_sessions": len(v), "last_seen": fmt_time(max(r.t for r in v))}
            for (d, k), v in g.items() if max(r.offered for r in v) < c.minimum]
    return sorted(rows, key=lambda x: (-x["tls_sessions"], x["direction"], x["client"]))


def rd_servers(c):
    g = group([r for r in c.rows if r.negotiated > 0], lambda r: (r["direction"], r.server, r["server_port"]))
    rows = [{"direction": d, "server": s, "port": p, "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "sni": names(r["tls_sni"] for r in v), "best_negotiated": NAMES[max(r.negotiated for r in v)],
             "best_client_offered": NAMES.get(max(r.offered for r in v), ""),
             "tls_sessions": len(v), "last_seen": fmt_time(max(r.t for r in v))}
            for (d, s, p), v in g.items() if max(r.negotiated for r in v) < c.minimum]
    return sorted(rows, key=lambda x: (-x["tls_sessions"], x["direction"], x["server"], x["port"]))


# --- Weak crypto -------------------------------------------------------------------------

WEAK = ("weak", "insecure")


def wk_class_series(c):
    return series_rows([r for r in c.hourly if r["tls_cipher_class"]], c.hour_step, "hour", "class",
                       lambda r: r["tls_cipher_class"], "sessions", len)


def wk_top_suites(c):
    g = group([r for r in c.hourly if r["tls_cipher_class"] in WEAK], lambda r: (r["tls_cipher"], r["tls_cipher_class"]))
    rows = [{"cipher": k, "class": cl, "versions": uniq_sorted(r["tls_version"] for r in v), "sessions": len(v)}
            for (k, cl), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["cipher"]))[:20]


def wk_peers(c):
    g = group([r for r in c.rows if r["tls_cipher_class"] in WEAK],
              lambda r: (r["direction"], r.server, r["server_port"], r.client))
    rows = [{"direction": d, "server": s, "port": p, "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "client": cl, "ehlo_names": names(r["ehlo_host"] for r in v),
             "suites": uniq_sorted(r["tls_cipher"] for r in v),
             "worst_class": "insecure" if any(r["tls_cipher_class"] == "insecure" for r in v) else "weak",
             "sessions": len(v), "last_seen": fmt_time(max(r.t for r in v))}
            for (d, s, p, cl), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["direction"], x["server"], x["port"], x["client"]))[:100]


# --- STARTTLS ----------------------------------------------------------------------------

def clear_smtp(c):
    return [r for r in c.rows if r["mode"] in ("starttls", "plaintext")]


def st_funnel(c):
    rs = clear_smtp(c)
    return [{"smtp_sessions": len(rs), "offered": count(rs, lambda r: r["starttls_offered"] is True),
             "requested": count(rs, lambda r: r["starttls_requested"]),
             "accepted": count(rs, lambda r: r["starttls_reply"] == 220),
             "tls_established": count(rs, lambda r: r["mode"] == "starttls" and r["tls_established"])}]


def st_series(c):
    g = group(clear_smtp(c), lambda r: (r.t // c.interval_s) * c.interval_s)
    return [{"time": fmt_time(t), "offered": count(v, lambda r: r["starttls_offered"] is True),
             "requested": count(v, lambda r: r["starttls_requested"]),
             "accepted": count(v, lambda r: r["starttls_reply"] == 220)} for t, v in sorted(g.items())]


def refused(c):
    return [r for r in c.rows if r["outcome"] == "starttls_refused"]


def st_refusals(c):
    g = group(refused(c), lambda r: r["starttls_reply"])
    rows = [{"reply_code": k, "sessions": len(v), "servers": len({(r.server, r["server_port"]) for r in v}),
             "clients": len({r.client for r in v})} for k, v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["reply_code"]))


def st_refusing_servers(c):
    g = group(refused(c), lambda r: (r.server, r["server_port"]))
    rows = [{"server": s, "port": p, "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "reply_codes": uniq_sorted(str(r["starttls_reply"]) for r in v), "sessions": len(v),
             "last_seen": fmt_time(max(r.t for r in v))} for (s, p), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["server"], x["port"]))


PLAIN = {"plaintext_not_offered": "not offered", "plaintext_offered": "offered, not used"}


def st_plain_pie(c):
    return share(c.hourly, lambda r: PLAIN[r["outcome"]], "plaintext", lambda r: r["outcome"] in PLAIN)


def st_plain_servers(c):
    g = group([r for r in c.rows if r["outcome"] in PLAIN], lambda r: (r.server, r["server_port"]))
    rows = [{"server": s, "port": p, "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "not_offered": count(v, lambda r: r["outcome"] == "plaintext_not_offered"),
             "offered_not_used": count(v, lambda r: r["outcome"] == "plaintext_offered"),
             "last_seen": fmt_time(max(r.t for r in v))} for (s, p), v in g.items()]
    return sorted(rows, key=lambda x: (-(x["not_offered"] + x["offered_not_used"]), x["server"], x["port"]))


def st_auth(c):
    g = group([r for r in c.rows if r["auth_cleartext"]], lambda r: (r.client, r.server, r["server_port"]))
    rows = [{"client": cl, "ehlo_names": names(r["ehlo_host"] for r in v), "server": s, "port": p,
             "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "mechanisms": uniq_sorted(r["auth_cleartext_mech"] for r in v), "sessions": len(v),
             "last_seen": fmt_time(max(r.t for r in v))} for (cl, s, p), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["client"], x["server"], x["port"]))


def st_stripping(c):
    lo = c.from_s - MONTH
    first = {}
    for r in c.all:
        if (r["starttls_offered"] is True and lo <= r.t <= c.to_s
                and (c.sensors is None or r["sensor"] in c.sensors)):
            k = (r.server, r["server_port"])
            first[k] = min(first.get(k, r.t), r.t)
    out = []
    for r in c.rows:
        if r["starttls_offered"] is not False:
            continue
        mangled = any(cap.startswith("XXXX") for cap in r["smtp_capabilities"])
        fo = first.get((r.server, r["server_port"]), 0)
        if not (mangled or (fo > 0 and fo < r.t)):
            continue
        out.append({"time": fmt_time(r.t), "server": r.server, "port": r["server_port"],
                    "banner_host": r["smtp_banner_host"], "client": r.client, "ehlo_host": r["ehlo_host"],
                    "reason": "capability mangled" if mangled else "STARTTLS missing, offered before",
                    "first_offered_at": None if fo == 0 else fmt_time(fo),
                    "capabilities": " ".join(r["smtp_capabilities"]), "_t": r.t})
    out.sort(key=lambda x: (-x["_t"], x["server"], x["port"], x["client"]))
    for x in out:
        del x["_t"]
    return out[:200]


# --- Certificates ------------------------------------------------------------------------

def cert_rows(c):
    g = group([r for r in c.rows if r["cert_sha256"]], lambda r: r["cert_sha256"])
    out = []
    for sha, v in g.items():
        r0 = v[0]
        out.append({
            "cert_sha256": sha, "subject_cn": r0["cert_subject_cn"], "sans": ", ".join(r0["cert_sans"][:5]),
            "issuer": r0["cert_issuer"], "not_after_s": r0.na, "not_before_s": r0.nb,
            "key_alg": r0["cert_key_alg"], "key_bits": r0["cert_key_bits"],
            "self_signed": int(any(r["cert_self_signed"] for r in v)),
            "servers": ", ".join(sorted({f"{r.server}:{r['server_port']}" for r in v})[:5]),
            "sessions": len(v), "sessions_invalid": count(v, lambda r: (r["cert_not_after"] is not None and r.na < r.t) or r.nb > r.t),
            "last_seen_s": max(r.t for r in v),
        })
    return out


def clamp_time(s):
    return fmt_time(min(max(s, 0), 4294967295))


def expiring(c, x):
    return c.to_s <= x["not_after_s"] < c.to_s + MONTH


def weak_rsa(x):
    return x["key_alg"] == "RSA" and 0 < x["key_bits"] < 2048


def ct_summary(c):
    rows = cert_rows(c)
    return [{"certificates": len(rows), "expired_when_presented": count(rows, lambda x: x["sessions_invalid"] > 0),
             "expiring_within_30_days": count(rows, lambda x: expiring(c, x)),
             "self_signed": count(rows, lambda x: x["self_signed"] == 1),
             "rsa_below_2048": count(rows, weak_rsa)}]


def ct_tls13(c):
    return [{"tls13_sessions": count(c.rows, lambda r: r["tls_version"] == "TLSv1.3"),
             "sessions_with_certificate": count(c.rows, lambda r: r["cert_sha256"] != "")}]


def cert_table(c, pred, extra=None, order=None):
    rows = [x for x in cert_rows(c) if pred(x)]
    rows.sort(key=order or (lambda x: (-x["last_seen_s"], x["cert_sha256"])))
    out = []
    for x in rows[:100]:
        row = {"subject_cn": x["subject_cn"], "sans": x["sans"], "issuer": x["issuer"],
               "not_before": clamp_time(x["not_before_s"]), "not_after": clamp_time(x["not_after_s"])}
        if extra:
            row.update(extra(x))
        row.update({"public_key": f"{x['key_alg']} {x['key_bits']}", "servers": x["servers"],
                    "sessions": x["sessions"], "last_seen": fmt_time(x["last_seen_s"]),
                    "cert_sha256": x["cert_sha256"]})
        out.append(row)
    return out


def ct_expired(c):
    return cert_table(c, lambda x: x["sessions_invalid"] > 0, lambda x: {"sessions_invalid": x["sessions_invalid"]})


def ct_expiring(c):
    return cert_table(c, lambda x: expiring(c, x),
                      lambda x: {"days_left": round((x["not_after_s"] - c.to_s) / 86400, 1)},
                      order=lambda x: (x["not_after_s"], x["cert_sha256"]))


def ct_self_signed(c):
    return cert_table(c, lambda x: x["self_signed"] == 1)


def ct_rsa(c):
    return cert_table(c, weak_rsa)


def matches(host, r):
    h = host.lower()
    dot = host.find(".")
    for p in list(r["cert_sans"]) + [r["cert_subject_cn"]]:
        if p.lower() == h:
            return True
        if p[:2] == "*." and dot > 0 and p[1:].lower() == host[dot:].lower():
            return True
    return False


def sni_mismatch(r):
    return r["tls_sni"] != "" and not matches(r["tls_sni"], r)


def banner_mismatch(r):
    return r["smtp_banner_host"] != "" and not matches(r["smtp_banner_host"], r)


def ct_mismatch(c):
    rs = [r for r in c.rows if r["cert_sha256"] and (sni_mismatch(r) or banner_mismatch(r))]
    g = group(rs, lambda r: (r.server, r["server_port"], r["cert_sha256"]))
    rows = [{"server": s, "port": p, "banner_hosts": names(r["smtp_banner_host"] for r in v),
             "sni": names(r["tls_sni"] for r in v), "subject_cn": v[0]["cert_subject_cn"],
             "sans": ", ".join(v[0]["cert_sans"][:5]), "sni_mismatches": count(v, sni_mismatch),
             "banner_mismatches": count(v, banner_mismatch), "sessions": len(v),
             "last_seen": fmt_time(max(r.t for r in v)), "cert_sha256": sha}
            for (s, p, sha), v in g.items()]
    return sorted(rows, key=lambda x: (-x["sessions"], x["server"], x["port"], x["cert_sha256"]))[:100]


# --- Sensor health -----------------------------------------------------------------------

def stats_series(c, fields, agg, pred=lambda s: True):
    g = group([s for s in c.stats if pred(s)], lambda s: (s["_ts"] // c.interval_s) * c.interval_s)
    return [dict([("time", fmt_time(t))] + [(name, agg(name, col, v)) for name, col in fields])
            for t, v in sorted(g.items())]


def rate(packets, interval_ms):
    return None if interval_ms == 0 else packets * 1000 / interval_ms


def sh_pps(c):
    g = group(c.stats, lambda s: ((s["_ts"] // c.interval_s) * c.interval_s, s["sensor"]))
    return [{"time": fmt_time(t), "sensor": k,
             "packets_per_s": rate(sum(s["packets"] for s in v), sum(s["interval_ms"] for s in v))}
            for (t, k), v in sorted(g.items())]


SUM = lambda name, col, v: sum(s[col] for s in v)  # noqa: E731
MAX = lambda name, col, v: max(s[col] for s in v)  # noqa: E731


def sh_drops(c):
    return stats_series(c, [("kernel_drops", "kernel_drops"), ("interface_drops", "kernel_if_drops"),
                            ("sensor_drops", "own_drops"), ("rows_dropped", "rows_dropped")], SUM)


def sh_flows(c):
    return stats_series(c, [("active_flows", "active_flows"), ("worker_queue_depth", "worker_queue_depth"),
                            ("sink_queue_depth", "sink_queue_depth")], MAX)


def sh_sink(c):
    return stats_series(c, [("rows_written", "rows_written"), ("rows_spooled", "rows_spooled"),
                            ("batches_retried", "batches_retried"), ("spool_bytes", "spool_bytes")],
                        lambda name, col, v: MAX(name, col, v) if col == "spool_bytes" else SUM(name, col, v))


def sh_latency(c):
    return stats_series(c, [("p50", "insert_latency_p50_us"), ("p90", "insert_latency_p90_us"),
                            ("p99", "insert_latency_p99_us"), ("maximum", "insert_latency_max_us")], MAX,
                        pred=lambda s: s["insert_latency_max_us"] > 0)


def sh_newest(c):
    g = group(c.rows, lambda r: r["sensor"])
    return [{"sensor": k, "newest_session": fmt_time(max(r.t for r in v)),
             "seconds_before_range_end": c.to_s - max(r.t for r in v), "sessions": len(v)}
            for k, v in sorted(g.items())]


def sh_per_sensor(c):
    g = group(c.stats, lambda s: s["sensor"])
    out = []
    for k, v in sorted(g.items()):
        pps = rate(sum(s["packets"] for s in v), sum(s["interval_ms"] for s in v))
        out.append({
            "sensor": k, "reports": len(v), "last_report": fmt_time(max(s["_ts"] for s in v)),
            "packets": sum(s["packets"] for s in v), "bytes": sum(s["bytes"] for s in v),
            "packets_per_s": None if pps is None else round(pps, 1),
            "kernel_drops": sum(s["kernel_drops"] for s in v), "interface_drops": sum(s["kernel_if_drops"] for s in v),
            "sensor_drops": sum(s["own_drops"] for s in v), "parse_errors": sum(s["parse_errors"] for s in v),
            "records": sum(s["records"] for s in v), "rows_written": sum(s["rows_written"] for s in v),
            "rows_spooled": sum(s["rows_spooled"] for s in v), "rows_dropped": sum(s["rows_dropped"] for s in v),
            "batches_retried": sum(s["batches_retried"] for s in v),
            "max_spool_bytes": max(s["spool_bytes"] for s in v),
            "max_p99_us": max(s["insert_latency_p99_us"] for s in v),
        })
    return out


def sensor_variable(c):
    start = c.from_s - c.from_s % 3600
    sensors = {r["sensor"] for r in c.all if start <= r.hour <= c.to_s}
    sensors |= {s["sensor"] for s in c.stats_all if c.from_s <= s["_ts"] <= c.to_s}
    return [{"sensor": s} for s in sorted(sensors)]


EXPECTED = {
    ("overview.json", "Sessions in range"): ov_totals,
    ("overview.json", "Sessions over time by mode and outcome"): ov_mode_outcome_series,
    ("overview.json", "Negotiated TLS version share over time"): ov_version_series,
    ("overview.json", "Cipher class share"): ov_cipher_share,
    ("overview.json", "Direction split"): ov_direction,
    ("overview.json", "Sessions by mode and outcome"): ov_mode_outcome_table,
    ("overview.json", "Top servers"): ov_top_servers,
    ("overview.json", "Top clients"): ov_top_clients,
    ("tls-readiness.json", "Share of TLS sessions that would fail under each minimum version"): rd_share,
    ("tls-readiness.json", "TLS sessions below the ${minimum:text} minimum, by direction"): rd_series,
    ("tls-readiness.json", "Clients whose best offered version is below ${minimum:text}"): rd_clients,
    ("tls-readiness.json", "Servers whose best negotiated version is below ${minimum:text}"): rd_servers,
    ("weak-crypto.json", "Sessions by cipher class"): ov_cipher_share,
    ("weak-crypto.json", "Cipher class over time"): wk_class_series,
    ("weak-crypto.json", "Top weak and insecure suites"): wk_top_suites,
    ("weak-crypto.json", "Peers negotiating weak or insecure suites"): wk_peers,
    ("starttls.json", "STARTTLS: offered, requested, accepted"): st_funnel,
    ("starttls.json", "STARTTLS over time"): st_series,
    ("starttls.json", "STARTTLS refusals by reply code"): st_refusals,
    ("starttls.json", "Servers refusing STARTTLS"): st_refusing_servers,
    ("starttls.json", "Plaintext sessions: STARTTLS not offered vs offered but not used"): st_plain_pie,
    ("starttls.json", "Plaintext sessions by server"): st_plain_servers,
    ("starttls.json", "AUTH in clear"): st_auth,
    ("starttls.json", "STARTTLS stripping suspects"): st_stripping,
    ("certificates.json", "Certificates (TLS ≤ 1.2 sessions only)"): ct_summary,
    ("certificates.json", "TLS 1.3 sessions (certificate not visible)"): ct_tls13,
    ("certificates.json", "Expired or not yet valid when presented"): ct_expired,
    ("certificates.json", "Expiring within 30 days of the range end"): ct_expiring,
    ("certificates.json", "Self-signed certificates"): ct_self_signed,
    ("certificates.json", "Certificate name does not match the banner host or SNI"): ct_mismatch,
    ("certificates.json", "RSA keys below 2048 bits (TLS ≤ 1.2 sessions only)"): ct_rsa,
    ("sensor-health.json", "Packets per second"): sh_pps,
    ("sensor-health.json", "Drops"): sh_drops,
    ("sensor-health.json", "Flows and queues"): sh_flows,
    ("sensor-health.json", "Sink lag: rows written, spooled and spool size"): sh_sink,
    ("sensor-health.json", "Insert latency percentiles"): sh_latency,
    ("sensor-health.json", "Newest session per sensor"): sh_newest,
    ("sensor-health.json", "Per sensor"): sh_per_sensor,
}
