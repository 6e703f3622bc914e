"""What Grafana and grafana-clickhouse-datasource v4.x do to a panel's SQL before ClickHouse
sees it, reproduced step by step so the tests run the exact text the plugin would send.

A panel query goes through three stages:

1. Frontend, `Datasource.applyTemplateVariables` (grafana/clickhouse-datasource,
   src/data/CHDatasource.ts, v4.x): `applyConditionalAll` replaces every
   `$__conditionalAll(cond, $var)` by `1=1` when the variable's current value is All or
   empty, else by `cond` (`getMacroArgs` splits the arguments on top-level commas; the
   replacement is JavaScript's `String.prototype.replace` with a string pattern).
2. Frontend, `getTemplateSrv().replace(sql, scopedVars, this.format)` (Grafana's
   TemplateSrv / scenes interpolation): `$var`, `${var}`, `${var:format}`, `[[var]]`; the
   datasource's `format` callback renders arrays as `'a','b'` and strings unchanged; an
   explicit `:format` wins (formats from Grafana's formatRegistry: `singlequote` escapes `'`
   with a backslash). "All" becomes the variable's `allValue` (inserted raw) or the list of
   every option.
3. Backend, `sqlutil.Interpolate` (grafana/grafana-plugin-sdk-go, data/sqlutil/macros.go,
   used by sqlds v3/v4) with the plugin's macro table (grafana/clickhouse-datasource,
   pkg/macros/macros.go, v4.0.3 and later): each macro name is found with `\\$__name\\b`,
   its argument list by scanning to the matching `)` (`getMacroMatches`: a `)` met before any
   `(` ends the macro without arguments; otherwise the first `(` after the name, wherever it
   is, opens the argument list), arguments are split on every comma and trimmed, and every
   occurrence of the matched text is replaced (`strings.ReplaceAll`). The macro table is a Go
   map, iterated in random order: `interpolate` accepts an explicit order so the tests can
   check that the result does not depend on it.

Expansions (seconds are Unix seconds, truncated):
    $__timeFilter(c)      c >= toDateTime(FROM) AND c <= toDateTime(TO)
    $__timeFilter_ms(c)   c >= fromUnixTimestamp64Milli(FROM_MS) AND c <= fromUnixTimestamp64Milli(TO_MS)
    $__dateFilter(c)      c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')
    $__dateTimeFilter(d, t) / $__dt(d, t)   (d >= toDate(..) AND d <= toDate(..)) AND (t >= toDateTime(..) AND t <= toDateTime(..))
    $__timeInterval(c)    toStartOfInterval(toDateTime(c), INTERVAL N second)      N = max(interval_s, 1)
    $__timeInterval_ms(c) toStartOfInterval(toDateTime64(c, 3), INTERVAL N millisecond)
    $__interval_s         N
    $__fromTime / $__toTime        toDateTime(FROM) / toDateTime(TO)
    $__fromTime_ms / $__toTime_ms  fromUnixTimestamp64Milli(FROM_MS) / (TO_MS)
plus the SDK defaults the plugin does not override ($__timeFrom, $__timeTo, $__timeGroup,
$__table, $__column).

Source versions read (GitHub commits): grafana/clickhouse-datasource pkg/macros/macros.go
4304e52e (sqlds/v4) and 005050e2 (sqlds/v3), whose expansions are identical, with
pkg/macros/macros_test.go 897b9dc2 (its TestInterpolate vectors are in the tests);
src/data/CHDatasource.ts 00dd66be; grafana/grafana-plugin-sdk-go data/sqlutil/macros.go
2d1ff1e5; Grafana's formatRegistry (scenes) for `singlequote`.
"""
import datetime as _dt
import re

ALL = "$__all"


# ---------------------------------------------------------------------------------------
# Variables


class Variable:
    """A dashboard variable as Grafana holds it at query time."""

    def __init__(self, name, value, text=None, options=(), multi=False, include_all=False,
                 all_value=None):
        self.name = name
        self.value = value            # str, or list of str for multi-value variables
        self.text = text if text is not None else value
        self.options = list(options)  # option values, without the All option
        self.multi = multi
        self.include_all = include_all
        self.all_value = all_value

    @classmethod
    def from_model(cls, model, value=None, options=None):
        """Builds the variable from its dashboard JSON model; `value` overrides the saved
        current value ("All" may be given as ALL or [ALL]); `options` gives a query
        variable's options (what its query returned)."""
        if options is None:
            options = [o["value"] for o in model.get("options", []) if o.get("value") != ALL]
            if not options and model["type"] == "custom":
                options = [parse_custom_option(o)[1] for o in split_custom(model["query"])]
            if not options and model["type"] == "constant":
                options = [model["query"]]
        text = None
        if value is None:
            if model["type"] == "constant":
                value = model["query"]
            else:
                value = model.get("current", {}).get("value")
                text = model.get("current", {}).get("text")
        if model["type"] == "custom" and text is None and not isinstance(value, list):
            text = dict((v, t) for t, v in map(parse_custom_option, split_custom(model["query"]))).get(value)
        if model.get("multi") and not isinstance(value, list):
            value = [value]
        return cls(model["name"], value, text=text, options=options, multi=bool(model.get("multi")),
                   include_all=bool(model.get("includeAll")), all_value=model.get("allValue") or None)


def split_custom(query):
    """Grafana's custom variable query: comma-separated options (`\\,` escapes a comma)."""
    parts = re.split(r"(?<!\\),", query)
    return [p.replace("\\,", ",").strip() for p in parts if p.strip()]


def parse_custom_option(text):
    """`label : value` (spaces around the colon) or a bare value: (text, value)."""
    m = re.match(r"^\s*(.+?)\s+:\s+(.+?)\s*$", text)
    if m:
        return m.group(1), m.group(2)
    return text, text


def is_all(value):
    return value == ALL or (isinstance(value, list) and len(value) > 0 and value[0] == ALL)


# ---------------------------------------------------------------------------------------
# Stage 1: $__conditionalAll (CHDatasource.applyConditionalAll / getMacroArgs)


def _js_to_string(value):
    if isinstance(value, list):
        return ",".join(_js_to_string(v) for v in value)
    return str(value)


def _js_replace_first(s, pattern, replacement):
    """JavaScript `s.replace(pattern, replacement)` with a string pattern: the first
    occurrence, with the replacement's `$` patterns (GetSubstitution, no captures)."""
    pos = s.find(pattern)
    if pos < 0:
        return s
    out = []
    i = 0
    while i < len(replacement):
        c = replacement[i]
        if c == "$" and i + 1 < len(replacement):
            n = replacement[i + 1]
            if n == "$":
                out.append("$")
                i += 2
                continue
            if n == "&":
                out.append(pattern)
                i += 2
                continue
            if n == "`":
                out.append(s[:pos])
                i += 2
                continue
            if n == "'":
                out.append(s[pos + len(pattern):])
                i += 2
                continue
        out.append(c)
        i += 1
    return s[:pos] + "".join(out) + s[pos + len(pattern):]


def get_macro_args(query, args_index):
    """CHDatasource.getMacroArgs: arguments of the macro whose `(` is at args_index."""
    args = []
    bracket = 0
    last_end = 1
    sub = query[args_index:]
    for m in re.finditer(r"\(|\)|,", sub):
        node = m.group(0)
        last_index = m.end()
        if node == "(":
            bracket += 1
        elif node == ")":
            bracket -= 1
        if node == "," and bracket == 1:
            args.append(sub[last_end:last_index - 1])
            last_end = last_index
        if bracket == 0:
            args.append(sub[last_end:last_index - 1])
            return args
    return []


_VAR_IN_PARAM = re.compile(r"(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+")


def apply_conditional_all(raw, variables):
    if not raw:
        return raw
    macro = "$__conditionalAll("
    idx = raw.rfind(macro)
    while idx != -1:
        params = get_macro_args(raw, idx + len(macro) - 1)
        if len(params) != 2:
            return raw
        m = _VAR_IN_PARAM.search(params[1].strip())
        phrase = params[0]
        if m:
            var = variables.get(m.group(0))
            if var is not None:
                value = _js_to_string(var.value)
                if value == "" or value == ALL:
                    phrase = "1=1"
        raw = _js_replace_first(raw, f"{macro}{params[0]},{params[1]})", phrase)
        idx = raw.rfind(macro)
    return raw


# ---------------------------------------------------------------------------------------
# Stage 2: template variables (TemplateSrv.replace with the datasource's format callback)

_TEMPLATE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def datasource_format(value):
    """CHDatasource.format: arrays -> 'a','b' (no escaping), anything else unchanged."""
    if isinstance(value, list):
        return "'" + "','".join(str(v) for v in value) + "'"
    return value


def _format(value, fmt, text):
    if callable(fmt):
        return fmt(value)
    fmt_id = (fmt or "glob").split(":")[0]
    if fmt_id == "singlequote":
        if isinstance(value, list):
            return ",".join("'" + str(v).replace("'", "\\'") + "'" for v in value)
        return "'" + str(value).replace("'", "\\'") + "'"
    if fmt_id == "sqlstring":
        if isinstance(value, list):
            return ",".join("'" + str(v).replace("'", "''") + "'" for v in value)
        return "'" + str(value).replace("'", "''") + "'"
    if fmt_id == "raw":
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)
    if fmt_id == "csv":
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)
    if fmt_id == "text":
        t = text if text is not None else value
        return " + ".join(map(str, t)) if isinstance(t, list) else str(t)
    if fmt_id == "doublequote":
        if isinstance(value, list):
            return ",".join('"' + str(v).replace('"', '\\"') + '"' for v in value)
        return '"' + str(value).replace('"', '\\"') + '"'
    # glob (Grafana's default when no format applies)
    if isinstance(value, list):
        return "{" + ",".join(map(str, value)) + "}" if len(value) > 1 else str(value[0])
    return str(value)


def template_replace(target, variables, scoped=None, fmt=datasource_format):
    scoped = scoped or {}

    def sub(m):
        var1, var2, fmt2, var3, field_path, fmt3 = m.groups()
        name = var1 or var2 or var3
        f = fmt2 or fmt3 or fmt
        if name in scoped:
            value = scoped[name]
            return str(_format(value, f, value))
        var = variables.get(name)
        if var is None:
            return m.group(0)
        value, text = var.value, var.text
        if is_all(value):
            if var.all_value:
                value = var.all_value
                if f not in ("text", "percentencode"):
                    return template_replace(value, variables, scoped, fmt=None)
            else:
                value = list(var.options)
            text = "All"
        return str(_format(value, f, text))

    return _TEMPLATE.sub(sub, target)


# ---------------------------------------------------------------------------------------
# Stage 3: backend macros (sqlutil.Interpolate + pkg/macros/macros.go)


class MacroError(Exception):
    pass


class TimeRange:
    def __init__(self, from_ms, to_ms, interval_ms):
        self.from_ms = int(from_ms)
        self.to_ms = int(to_ms)
        self.interval_ms = int(interval_ms)

    @property
    def from_s(self):
        return self.from_ms // 1000

    @property
    def to_s(self):
        return self.to_ms // 1000


def _date(ms):
    return _dt.datetime.fromtimestamp(ms // 1000, _dt.timezone.utc).strftime("%Y-%m-%d")


def _rfc3339(ms):
    return _dt.datetime.fromtimestamp(ms // 1000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _args(n, args, name):
    if len(args) != n:
        raise MacroError(f"$__{name}: unexpected number of arguments: expected {n}, received {len(args)}")


def _macro_table(tr):
    dt = lambda ms: f"toDateTime({ms // 1000})"  # noqa: E731
    dt64 = lambda ms: f"fromUnixTimestamp64Milli({ms})"  # noqa: E731

    def time_filter(a):
        _args(1, a, "timeFilter")
        return f"{a[0]} >= {dt(tr.from_ms)} AND {a[0]} <= {dt(tr.to_ms)}"

    def time_filter_ms(a):
        _args(1, a, "timeFilter_ms")
        return f"{a[0]} >= {dt64(tr.from_ms)} AND {a[0]} <= {dt64(tr.to_ms)}"

    def date_filter(a):
        _args(1, a, "dateFilter")
        return f"{a[0]} >= toDate('{_date(tr.from_ms)}') AND {a[0]} <= toDate('{_date(tr.to_ms)}')"

    def date_time_filter(a):
        _args(2, a, "dateTimeFilter")
        d = f"({a[0]} >= toDate('{_date(tr.from_ms)}') AND {a[0]} <= toDate('{_date(tr.to_ms)}'))"
        t = f"({a[1]} >= {dt(tr.from_ms)} AND {a[1]} <= {dt(tr.to_ms)})"
        return f"{d} AND {t}"

    def seconds():
        return int(max(tr.interval_ms / 1000.0, 1))

    def time_interval(a):
        _args(1, a, "timeInterval")
        return f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {seconds()} second)"

    def time_interval_ms(a):
        _args(1, a, "timeInterval_ms")
        return f"toStartOfInterval(toDateTime64({a[0]}, 3), INTERVAL {int(max(tr.interval_ms, 1))} millisecond)"

    def sdk_time_from(a):
        _args(1, a, "timeFrom")
        return f"{a[0]} >= '{_rfc3339(tr.from_ms)}'"

    def sdk_time_to(a):
        _args(1, a, "timeTo")
        return f"{a[0]} <= '{_rfc3339(tr.to_ms)}'"

    def sdk_time_group(a):
        if len(a) != 2:
            raise MacroError("$__timeGroup: unexpected number of arguments")
        parts = {"minute": ["minute", "hour", "day", "month", "year"], "hour": ["hour", "day", "month", "year"],
                 "day": ["day", "month", "year"], "month": ["month", "year"], "year": ["year"]}.get(a[1], [])
        return ",".join(f"datepart({p}, {a[0]})" for p in parts)

    return {
        "fromTime": lambda a: dt(tr.from_ms),
        "toTime": lambda a: dt(tr.to_ms),
        "fromTime_ms": lambda a: dt64(tr.from_ms),
        "toTime_ms": lambda a: dt64(tr.to_ms),
        "timeFilter": time_filter,
        "timeFilter_ms": time_filter_ms,
        "dateFilter": date_filter,
        "dateTimeFilter": date_time_filter,
        "dt": date_time_filter,
        "timeInterval": time_interval,
        "timeInterval_ms": time_interval_ms,
        "interval_s": lambda a: str(seconds()),
        # sqlutil.DefaultMacros the plugin does not define
        "timeFrom": sdk_time_from,
        "timeTo": sdk_time_to,
        "timeGroup": sdk_time_group,
        "table": lambda a: "",
        "column": lambda a: "",
    }


MACRO_NAMES = list(_macro_table(TimeRange(0, 0, 0)))


def get_macro_matches(sql, name):
    """sqlutil.getMacroMatches, on UTF-8 bytes as Go does: [(matched text, args text)]."""
    data = sql.encode()
    out = []
    for m in re.finditer(rb"\$__" + re.escape(name.encode()) + rb"\b", data, re.ASCII):
        macro_end = 0
        arg_start = 0
        force_break = False
        start = m.start()
        rest = data[start:]
        depth = 0
        for idx, b in enumerate(rest):
            if (depth == 0 and macro_end > 0) or force_break:
                break
            if b == 0x28:  # (
                depth += 1
                if arg_start == 0:
                    arg_start = idx + 1
            elif b == 0x29:  # )
                if depth == 0:
                    macro_end = 0
                    force_break = True
                    continue
                depth -= 1
                macro_end = idx + 1
        if macro_end == 0:
            macro_end = m.end() - start
        text = rest[:macro_end]
        args = rest[arg_start:macro_end - 1] if arg_start > 0 else b""
        out.append((text.decode(), args.decode(), arg_start > 0))
    return out


def interpolate(sql, tr, order=None):
    """sqlutil.Interpolate with the plugin's macros; `order` = macro names in map order."""
    table = _macro_table(tr)
    for name in order or MACRO_NAMES:
        for text, args, _ in get_macro_matches(sql, name):
            # Go: strings.Split(match[1], ",") then TrimSpace; "" splits to [""].
            arg_list = [a.strip() for a in args.split(",")]
            sql = sql.replace(text, table[name](arg_list))
    return sql


# ---------------------------------------------------------------------------------------
# The whole path


def panel_sql(raw, variables, tr, order=None):
    """The SQL ClickHouse receives for a panel target's rawSql."""
    variables = {v.name: v for v in variables} if not isinstance(variables, dict) else variables
    scoped = {"__interval": f"{max(tr.interval_ms // 1000, 1)}s", "__interval_ms": str(tr.interval_ms)}
    sql = apply_conditional_all(raw, variables)
    sql = template_replace(sql, variables, scoped)
    return interpolate(sql, tr, order)


def no_arg_macros_followed_by_paren(raw):
    """The argument-less macros that are not directly followed by `)` (the SDK scanner would
    take the next parenthesised text as their arguments)."""
    bad = []
    for name in ("fromTime", "toTime", "fromTime_ms", "toTime_ms", "interval_s"):
        for m in re.finditer(r"\$__" + name + r"\b", raw):
            if raw[m.end():m.end() + 1] != ")":
                bad.append(raw[m.start():m.end() + 20])
    return bad
