"""
Offline checks of the Grafana part of the compose stack, one per subcommand, for
compose/check.sh: the provisioned data sources, their links to each other, and the
dashboards and every PromQL query in them. Each subcommand prints what is wrong
and exits 1, or exits 0 silently.

    python3 check_grafana.py COMMAND      (COMMAND: see CHECKS at the end)

Metric names are checked against what lookout exports (the tables of
docs/metrics.md, each name also found in agent/'s sources) and against the
OpenTelemetry semantic conventions' HTTP metrics as lookout's prometheus
exporter names them (SEMCONV below).
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROVISIONING = os.path.join(HERE, "grafana", "provisioning")
DASHBOARDS = os.path.join(HERE, "grafana", "dashboards")

# Prometheus adds these to every scraped series; lookout sets them on app series
# from service.name / service.instance.id (honor_labels keeps them).
TARGET_LABELS = {"job", "instance"}


# --- what the stack provisions


def datasource_files():
    return sorted(glob.glob(os.path.join(PROVISIONING, "datasources", "*.yml")))


def datasources():
    """[(file, datasource dict)] of every provisioned data source."""
    out = []
    for f in datasource_files():
        with open(f) as fh:
            for ds in yaml.safe_load(fh).get("datasources") or []:
                out.append((os.path.relpath(f, HERE), ds))
    return out


def unescape(v):
    """A provisioned string as Grafana reads it: $$ is a $ (it expands $VAR and
    ${VAR} from the environment in provisioning files)."""
    return v.replace("$$", "$") if isinstance(v, str) else v


def datasource(uid):
    for _, ds in datasources():
        if ds.get("uid") == uid:
            return ds
    raise KeyError("no data source with uid %r" % uid)


def dashboards():
    """[(file, dashboard dict)] of compose/grafana/dashboards/*.json."""
    out = []
    for f in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json"))):
        with open(f) as fh:
            out.append((os.path.relpath(f, HERE), json.load(fh)))
    return out


def panels(dash):
    """Every panel, those inside collapsed rows too."""
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []):
            yield q


# --- PromQL queries and the metric names in them


def promql_queries():
    """[(where, expr)] of every PromQL expression a dashboard or a data-source
    link runs: panel targets, query variables (the series selector inside
    label_values(...)), and the Jaeger data source's trace-to-metrics queries."""
    out = []
    for f, dash in dashboards():
        for p in panels(dash):
            for t in p.get("targets", []):
                if "expr" in t:
                    out.append(("%s: panel %r %s" % (f, p.get("title"), t.get("refId")), t["expr"]))
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            m = re.match(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", q)
            where = "%s: variable %r" % (f, v.get("name"))
            if m:
                out.append((where, m.group(1)))
            elif q.startswith("query_result("):
                out.append((where, q[len("query_result("):-1]))
            else:
                out.append((where, q))
    for f, ds in datasources():
        for i, q in enumerate((ds.get("jsonData") or {}).get("tracesToMetrics", {}).get("queries", [])):
            out.append(("%s: tracesToMetrics query %r" % (f, q.get("name", i)),
                        unescape(q.get("query", ""))))
    return out


AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
               "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def skip_string(s, i):
    """The index after the string literal that starts at s[i]."""
    q = s[i]
    i += 1
    while i < len(s) and s[i] != q:
        i += 2 if s[i] == "\\" and q != "`" else 1
    if i >= len(s):
        raise ValueError("unterminated string in %r" % s)
    return i + 1


def closing(s, i, open_, close):
    """The index of the bracket that closes the one at s[i], strings skipped."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = skip_string(s, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced %r in %r" % (open_, s))


def unquoted(s):
    """|s| with its string literals removed."""
    out, i = [], 0
    while i < len(s):
        if s[i] in "\"'`":
            i = skip_string(s, i)
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def scan(expr):
    """The metric names of a PromQL expression (Grafana variables in it allowed):
    returns ([(metric, [labels matched in its selector])], [grouping labels],
    [problems]). Function and aggregation names, keywords, numbers, durations,
    strings, ranges, variables and the labels of by/without/on/ignoring are not
    metric names."""
    metrics, grouping, problems = [], [], []
    last = None  # the metric a following {selector} belongs to
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "\"'`":
            i = skip_string(expr, i)
            last = None
        elif c == "$":  # Grafana variable: ${name...} or $name
            if expr.startswith("${", i):
                i = closing(expr, i + 1, "{", "}") + 1
            else:
                m = re.compile(r"\$[A-Za-z0-9_]*").match(expr, i)
                i = m.end()
            last = None
        elif c == "[":  # range or subquery: durations and variables only
            i = closing(expr, i, "[", "]") + 1
            last = None
        elif c == "{":
            j = closing(expr, i, "{", "}")
            labels = MATCHER.findall(unquoted(expr[i + 1:j]))
            if last is None:
                problems.append("a selector without a metric name: %s" % expr[i:j + 1])
            else:
                last[1].extend(labels)
            i = j + 1
            last = None
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.compile(r"[0-9A-Za-z_.]+").match(expr, i)  # 0.95, 1e3, 5m, 0x1f
            i = m.end()
            last = None
        elif IDENT.match(expr, i):
            m = IDENT.match(expr, i)
            word, i = m.group(0), m.end()
            k = i
            while k < n and expr[k].isspace():
                k += 1
            nxt = IDENT.match(expr, k)
            if word in GROUPING:
                if k < n and expr[k] == "(":
                    j = closing(expr, k, "(", ")")
                    grouping.extend(IDENT.findall(expr[k + 1:j]))
                    i = j + 1
            elif k < n and expr[k] == "(":
                pass  # a function or an aggregation
            elif word in AGGREGATORS and nxt and nxt.group(0) in ("by", "without"):
                pass  # sum by (...) (...)
            elif word.lower() in KEYWORDS:
                pass
            else:
                last = [word, []]
                metrics.append(last)
                continue
            last = None
        else:
            i += 1
            last = None
    return [(m, labels) for m, labels in metrics], grouping, problems


# --- the metric names allowed, and their labels


def split_row(line):
    cells = line.strip().replace("\\|", "\x00").strip("|").split("|")
    return [c.replace("\x00", "|").strip() for c in cells]


ITEM_WORDS = ("spans", "metric_points", "log_records")


def add_histogram(out, base, labels):
    out[base + "_bucket"] = labels | {"le"}
    out[base + "_sum"] = set(labels)
    out[base + "_count"] = set(labels)


def documented_metrics():
    """{name: labels} from the tables of docs/metrics.md: every `lookout_*` or
    `process_*` name in a table's first column, its labels the backquoted words
    of the row's labels column (or of its type column in tables without one);
    ITEMS expanded, histograms as their _bucket, _sum and _count series."""
    out = {}
    header = None
    with open(os.path.join(ROOT, "docs", "metrics.md")) as fh:
        for line in fh:
            if not line.startswith("|"):
                header = None
                continue
            cells = split_row(line)
            if header is None:
                header = [c.lower() for c in cells]
                continue
            if not cells or set(cells[0]) <= set("-: "):
                continue
            names = re.findall(r"`((?:lookout|process)_[A-Za-z0-9_]+)`", cells[0])
            if not names or "type" not in header:
                continue
            col = header.index("labels") if "labels" in header else header.index("type")
            labels = set(re.findall(r"`([a-z_][a-z0-9_]*)`", cells[col] if col < len(cells) else ""))
            kind = cells[header.index("type")]
            for name in names:
                expanded = ([name.replace("ITEMS", w) for w in ITEM_WORDS]
                            if "ITEMS" in name else [name])
                for e in expanded:
                    if kind.startswith("histogram"):
                        add_histogram(out, e, labels)
                    else:
                        out[e] = set(labels)
    return out


def code_metric_patterns():
    """Regexes of the metric names agent/'s C sources register: string literals
    that start with lookout_ or process_, %s standing for a word."""
    pats = []
    for f in glob.glob(os.path.join(ROOT, "agent", "**", "*.c"), recursive=True):
        with open(f, errors="replace") as fh:
            for lit in re.findall(r'"((?:lookout|process)_[A-Za-z0-9_%]+)"', fh.read()):
                pats.append(re.compile(re.escape(lit).replace("%s", "[a-z_]+") + "$"))
    return pats


def in_code(name, pats):
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return any(p.match(name) or p.match(base) for p in pats)


# The OpenTelemetry semantic conventions' HTTP metrics, named as lookout's
# prometheus exporter names them (agent/exporters/prom_translate.c: '.' -> '_',
# the unit's word, histograms as _bucket/_sum/_count; attribute keys the same
# way). Every app series also has otel_scope_name and otel_scope_version.
HTTP_SERVER_LABELS = {"http_request_method", "http_response_status_code", "http_route",
                      "url_scheme", "network_protocol_name", "network_protocol_version",
                      "server_address", "server_port", "error_type"}
HTTP_CLIENT_LABELS = {"http_request_method", "http_response_status_code", "url_scheme",
                      "network_protocol_name", "network_protocol_version",
                      "server_address", "server_port", "error_type"}
APP_LABELS = {"otel_scope_name", "otel_scope_version"}
SEMCONV = {}
# http.server.request.duration (s, histogram)
add_histogram(SEMCONV, "http_server_request_duration_seconds", HTTP_SERVER_LABELS | APP_LABELS)
# http.server.request.body.size, http.server.response.body.size (By, histograms)
add_histogram(SEMCONV, "http_server_request_body_size_bytes", HTTP_SERVER_LABELS | APP_LABELS)
add_histogram(SEMCONV, "http_server_response_body_size_bytes", HTTP_SERVER_LABELS | APP_LABELS)
# http.server.active_requests ({request}, up-down counter: a gauge, no unit word)
SEMCONV["http_server_active_requests"] = {"http_request_method", "url_scheme", "server_address",
                                          "server_port"} | APP_LABELS
# http.client.request.duration (s, histogram)
add_histogram(SEMCONV, "http_client_request_duration_seconds", HTTP_CLIENT_LABELS | APP_LABELS)


def allowed_metrics():
    out = dict(SEMCONV)
    out.update(documented_metrics())
    return out


# --- the checks


def fail(problems):
    for p in problems:
        print(p)
    return 1 if problems else 0


def check_json():
    """Every dashboard file is a JSON object with a uid, a title and panels."""
    problems = []
    files = sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))
    if not files:
        problems.append("no dashboards in grafana/dashboards/")
    for f in files:
        try:
            with open(f) as fh:
                d = json.load(fh)
        except ValueError as e:
            problems.append("%s: %s" % (os.path.relpath(f, HERE), e))
            continue
        for key in ("uid", "title", "panels"):
            if not d.get(key):
                problems.append("%s: no %s" % (os.path.relpath(f, HERE), key))
    return fail(problems)


def check_uids():
    """Dashboard uids and titles are unique, and so are data source uids."""
    problems = []
    for what, items in (("dashboard uid", [(f, d.get("uid")) for f, d in dashboards()]),
                        ("dashboard title", [(f, d.get("title")) for f, d in dashboards()]),
                        ("data source uid", [(f, ds.get("uid")) for f, ds in datasources()])):
        seen = {}
        for f, v in items:
            if v in seen:
                problems.append("%s %r in %s and %s" % (what, v, seen[v], f))
            seen[v] = f
    return fail(problems)


def uid_refs(node, where):
    """[(where, uid)] of every datasourceUid / datasource.uid under |node|."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasourceUid":
                out.append((where, v))
            elif k == "datasource" and isinstance(v, dict) and "uid" in v:
                out.append((where, v["uid"]))
            else:
                out.extend(uid_refs(v, where))
    elif isinstance(node, list):
        for v in node:
            out.extend(uid_refs(v, where))
    return out


def check_refs():
    """Every data source uid a link, panel, target or variable names is
    provisioned; the three are prometheus, loki and jaeger."""
    uids = {ds.get("uid"): ds.get("type") for _, ds in datasources()}
    problems = []
    want = {"prometheus": "prometheus", "loki": "loki", "jaeger": "jaeger"}
    for uid, typ in want.items():
        if uids.get(uid) != typ:
            problems.append("no %s data source with uid %r" % (typ, uid))
    refs = []
    for f, ds in datasources():
        refs.extend(uid_refs(ds.get("jsonData") or {}, "%s: %s" % (f, ds.get("name"))))
    for f, d in dashboards():
        refs.extend(uid_refs(d, f))
    for where, uid in refs:
        if uid not in uids:
            problems.append("%s: data source uid %r is not provisioned" % (where, uid))
    if not refs:
        problems.append("no data source references found")
    return fail(problems)


def check_escapes():
    """Every `$` in a provisioning file is written `$$`: Grafana expands $VAR and
    ${VAR} there from the environment, which would empty ${__value.raw},
    $__tags and the like."""
    problems = []
    for f in sorted(glob.glob(os.path.join(PROVISIONING, "*", "*.yml"))):
        with open(f) as fh:
            for n, line in enumerate(fh, 1):
                code = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
                if "$" in code.replace("$$", ""):
                    problems.append("%s:%d: unescaped $: %s" % (os.path.relpath(f, HERE), n, line.strip()))
    return fail(problems)


def check_promql_names():
    """Every metric a PromQL query names is one lookout exports (docs/metrics.md,
    found in agent/ too) or an HTTP metric of the semantic conventions, and every
    label it matches or groups by is one of those metrics'."""
    allowed = allowed_metrics()
    pats = code_metric_patterns()
    problems = []
    queries = promql_queries()
    if not queries:
        problems.append("no PromQL queries found")
    for where, expr in queries:
        try:
            metrics, grouping, probs = scan(expr)
        except ValueError as e:
            problems.append("%s: %s" % (where, e))
            continue
        problems.extend("%s: %s" % (where, p) for p in probs)
        if not metrics:
            problems.append("%s: no metric in %r" % (where, expr))
        known = set(TARGET_LABELS)
        for m, labels in metrics:
            if m not in allowed:
                problems.append("%s: %s is not a metric lookout exports nor a semantic-conventions one" % (where, m))
                continue
            if m not in SEMCONV and not in_code(m, pats):
                problems.append("%s: %s is in docs/metrics.md but not in agent/'s sources" % (where, m))
            ok = allowed[m] | TARGET_LABELS
            known |= ok
            for label in labels:
                if label not in ok:
                    problems.append("%s: %s has no label %s" % (where, m, label))
        for label in grouping:
            if label not in known:
                problems.append("%s: no metric of the query has the label %s it groups by" % (where, label))
    return fail(problems)


def substitute(expr, tags):
    """|expr| with Grafana's variables replaced by values PromQL parses."""
    def value(m):
        name = m.group(1) or m.group(2)
        if name in ("__rate_interval", "__interval", "__range"):
            return "1m"
        return tags if name == "__tags" else "x"
    return re.sub(r"\$\{([^}]*)\}|\$(\w+)", value, expr)


def check_promql_parses():
    """Every PromQL query parses (promtool check rules on them as recording
    rules), with the variables Grafana replaces set; the trace-to-metrics queries
    both with $__tags empty (a span without those tags) and not."""
    exprs = []
    for where, expr in promql_queries():
        for tags in ("", 'http_route="/x", instance="y"'):
            exprs.append((where, substitute(expr, tags)))
    rules = {"groups": [{"name": "grafana", "rules": [
        {"record": "q_%d" % i, "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(rules, fh)
        path = fh.name
    try:
        r = subprocess.run(["promtool", "check", "rules", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
    except OSError as e:
        os.unlink(path)
        return fail(["promtool: %s (make deps installs it)" % e])
    os.unlink(path)
    if r.returncode == 0:
        return 0
    problems = [r.stdout.strip()]
    for i in sorted({int(x) for x in re.findall(r"q_(\d+)", r.stdout)}):
        problems.append("q_%d is %s: %s" % (i, exprs[i][0], exprs[i][1]))
    return fail(problems)


def check_loki_links():
    """Loki: the trace_id structured metadata (a label to Grafana) links to the
    trace in Jaeger, and so does a trace id in the line's text."""
    problems = []
    fields = [{k: unescape(v) for k, v in f.items()}
              for f in (datasource("loki").get("jsonData") or {}).get("derivedFields") or []]
    names = [f.get("name") for f in fields]
    if len(set(names)) != len(names):
        # Grafana merges derived fields of one name and reads only the first's matcher.
        problems.append("derived fields share a name: %s" % names)
    label = [f for f in fields if f.get("matcherType") == "label"]
    regex = [f for f in fields if f.get("matcherType", "regex") == "regex"]
    # Grafana tests the matcher against label names with an unanchored search.
    metadata = ["trace_id", "span_id", "level", "service_name", "parent_trace_id"]
    for f in label:
        hits = [n for n in metadata if re.search(f.get("matcherRegex", ""), n)]
        if hits != ["trace_id"]:
            problems.append("label derived field %r matches labels %s, want only trace_id" % (f.get("name"), hits))
    if not label:
        problems.append("no derived field of matcherType label for the trace_id structured metadata")
    trace = "0af7651916cd43dd8448eb211c80319c"
    lines = ['{"level":"info","trace_id":"%s","msg":"hi"}' % trace,  # zerolog, lookout's JSON fallback
             '{"traceId": "%s"}' % trace,
             'level=info msg=hi trace_id=%s span_id=b7ad6b7169203331' % trace]  # logfmt fallback
    for f in regex:
        try:
            r = re.compile(f.get("matcherRegex", ""))
        except re.error as e:
            problems.append("derived field %r: %s" % (f.get("name"), e))
            continue
        for line in lines:
            m = r.search(line)
            if not m or m.group(1) != trace:
                problems.append("derived field %r does not find the trace id in %s" % (f.get("name"), line))
        if r.search('{"span_id":"%s"}' % trace):
            problems.append("derived field %r takes a span_id for a trace id" % f.get("name"))
    for f in fields:
        if f.get("datasourceUid") != "jaeger" or f.get("url") != "${__value.raw}":
            problems.append("derived field %r: want datasourceUid jaeger and url ${__value.raw}" % f.get("name"))
    return fail(problems)


def check_jaeger_links():
    """Jaeger: a span links to its trace's logs in Loki, by lookout's
    service_name stream label and the trace_id structured metadata, and to the
    RED metrics of http.server.request.duration in Prometheus."""
    problems = []
    jd = datasource("jaeger").get("jsonData") or {}
    logs = jd.get("tracesToLogsV2") or {}
    q = unescape(logs.get("query", ""))
    if logs.get("datasourceUid") != "loki" or not logs.get("customQuery"):
        problems.append("tracesToLogsV2: want datasourceUid loki and a custom query")
    if not re.match(r'\{service_name\s*(=~|=)\s*"[^"]+"\}', q):
        problems.append("tracesToLogsV2 query %r does not select on the service_name stream label" % q)
    if not re.search(r'\|\s*trace_id\s*=\s*"\$\{__(trace|span)\.traceId\}"', q):
        problems.append("tracesToLogsV2 query %r does not filter on the trace_id structured metadata" % q)
    # Jaeger leaves service.name out of a span's tags: a variable reading it
    # would be empty, and Grafana hides a link with an empty variable.
    if "service.name" in q:
        problems.append("tracesToLogsV2 query %r reads service.name, which Jaeger spans lack" % q)
    metrics = jd.get("tracesToMetrics") or {}
    if metrics.get("datasourceUid") != "prometheus" or not metrics.get("queries"):
        problems.append("tracesToMetrics: want datasourceUid prometheus and queries")
    for t in metrics.get("tags") or []:
        if t.get("key") == "service.name":
            problems.append("tracesToMetrics maps service.name, which Jaeger spans lack")
    texts = " ".join(x.get("query", "") for x in metrics.get("queries") or [])
    for want in ("_count", "_bucket", 'http_response_status_code=~"5..'):
        if want not in texts:
            problems.append("tracesToMetrics queries lack %s (rate, errors, duration)" % want)
    return fail(problems)


def check_exemplars():
    """Prometheus links exemplars by the label lookout's exposition writes
    (trace_id, agent/exporters/prom_store.c) to Jaeger, and the RED dashboard's
    latency panel asks for exemplars."""
    problems = []
    dests = (datasource("prometheus").get("jsonData") or {}).get("exemplarTraceIdDestinations") or []
    with open(os.path.join(ROOT, "agent", "exporters", "prom_store.c")) as fh:
        written = set(re.findall(r'"(\w+)=\\""', fh.read()))
    if not any(d.get("name") in written and d.get("datasourceUid") == "jaeger" for d in dests):
        problems.append("no exemplarTraceIdDestinations entry for a label lookout writes (%s) to jaeger: %s"
                        % (sorted(written), dests))
    latency = [p for _, d in dashboards() for p in panels(d)
               if any("http_server_request_duration_seconds_bucket" in t.get("expr", "") and t.get("exemplar")
                      for t in p.get("targets", []))]
    if not latency:
        problems.append("no dashboard panel shows exemplars of http_server_request_duration_seconds_bucket")
    return fail(problems)


def check_mounted():
    """The dashboards provider reads a directory that docker-compose.yml
    mounts from grafana/dashboards/."""
    problems = []
    with open(os.path.join(HERE, "docker-compose.yml")) as fh:
        vols = yaml.safe_load(fh)["services"]["grafana"].get("volumes", [])
    mounts = {}
    for v in vols:
        if isinstance(v, dict):
            mounts[v.get("target")] = v.get("source")
        else:
            parts = str(v).split(":")
            if len(parts) >= 2:
                mounts[parts[1]] = parts[0]
    providers = []
    for f in sorted(glob.glob(os.path.join(PROVISIONING, "dashboards", "*.yml"))):
        with open(f) as fh:
            providers.extend((yaml.safe_load(fh) or {}).get("providers") or [])
    if not providers:
        problems.append("no dashboard provider in grafana/provisioning/dashboards/")
    for p in providers:
        path = (p.get("options") or {}).get("path", "")
        src = None
        for target, source in mounts.items():
            if path == target or path.startswith(target.rstrip("/") + "/"):
                src = source + path[len(target):]
        if src is None:
            problems.append("provider %r reads %s, which no grafana volume mounts" % (p.get("name"), path))
        elif not src.startswith((".", "/")):
            problems.append("provider %r reads %s, in the named volume %s" % (p.get("name"), path, src))
        elif os.path.realpath(os.path.join(HERE, src)) != os.path.realpath(DASHBOARDS):
            problems.append("provider %r reads %s, mounted from %s, not grafana/dashboards" % (p.get("name"), path, src))
    return fail(problems)


CHECKS = {
    "dashboards-json": check_json,
    "uids": check_uids,
    "datasource-refs": check_refs,
    "escapes": check_escapes,
    "promql-names": check_promql_names,
    "promql-parses": check_promql_parses,
    "loki-links": check_loki_links,
    "jaeger-links": check_jaeger_links,
    "exemplars": check_exemplars,
    "dashboards-mounted": check_mounted,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CHECKS:
        sys.exit("usage: check_grafana.py {%s}" % "|".join(CHECKS))
    try:
        sys.exit(CHECKS[sys.argv[1]]())
    except (OSError, ValueError, KeyError, yaml.YAMLError) as e:
        print("%s: %s" % (type(e).__name__, e))
        sys.exit(1)
