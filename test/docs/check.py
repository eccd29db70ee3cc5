"""Keeps the docs and the binary in agreement, both ways: nothing documented that
does not exist, nothing that exists undocumented.

Metrics. The truth is what a running agent serves: build/lookout is started on a
config that enables every component that registers metrics (OTLP gRPC and HTTP
receivers, stream and datagram `lines` receivers, every exporter type, the disk
spool, memory_limit), sent one OTLP/HTTP request (the per-status request counter
appears with the first request), and its admin /metrics scraped. Checked: every
`lookout_*` name (and `process_*` metric name) anywhere in README.md and
docs/*.md exists; every family is in a table of docs/metrics.md, once, spelled
out, with the type and the label names the scrape shows; and every "lookout_..."
string literal in agent/ is a scraped family (a second net for families that the
kitchen-sink config would fail to bring up).

Config keys. The truth is the field tables of agent/config/*.c (`static const
struct field x_fields[] = {...}`), parsed here; how the tables nest is declared
below (NESTED, NAMED, LEAVES) and checked against the source, and the parser stops
at any row or table shape it does not know. The parse is proved against the
binary: `lookout --check-config` on a config setting each key path must not call
it unknown while a misspelt sibling beside it must be, and the keys of one
receiver or exporter type must be unknown to the others. The docs' truth is
docs/configuration.md's key tables (DOC_TABLES says which table documents which
section) plus dotted key references (`retry.max_elapsed_time`) anywhere in
README.md and docs/*.md.

CLI flags. `lookout --help` (and `lookout SUB --help` for each subcommand it
names) against the flag tables of docs/cli.md, and every flag on a lookout
command line in README.md and docs/*.md (code blocks and code spans where lookout
is the command, not an argument of another tool).

Last, self-checks: each comparison is run again on docs with a planted mistake,
and must fail.

One file, not three: the three comparisons share the docs' parse (tables, code
spans, name patterns), the runner and the self-checks, which plant mistakes
across all of them; split, each piece would repeat that machinery.

Output: `ok   NAME` / `FAIL NAME` (details indented), then
`docs: N passed, N failed`; exit status 1 on any failure.
Environment: LOOKOUT_BIN (default build/lookout).
"""

import concurrent.futures
import fnmatch
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LOOKOUT_BIN", os.path.join(REPO, "build", "lookout"))
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)

# Bounds on waits (seconds): deadlines, not assertions.
READY_TIMEOUT = 15.0
EXIT_TIMEOUT = 10.0
CLI_TIMEOUT = 10.0

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# ---------------------------------------------------------------- results

class Results:
    """Counts and prints checks as compose/check.sh does."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def report(self, name, problems):
        """One check: |problems| is a list of strings, empty when it passed."""
        if problems:
            self.failed += 1
            print("FAIL " + name)
            for p in problems:
                for line in str(p).splitlines():
                    print("     " + line)
        else:
            self.passed += 1
            print("ok   " + name)
        sys.stdout.flush()


class ParseError(Exception):
    """Something in the source or the docs has a shape this checker does not know."""


# ---------------------------------------------------------------- markdown

class Doc:
    """A markdown file: its lines, which are inside fenced code, the heading each
    line is under, and its tables."""

    def __init__(self, name, text):
        self.name = name
        self.lines = text.split("\n")
        self.in_code = []
        self.heading = []
        self.level = []
        fence = None
        heading, level = "", 0
        for line in self.lines:
            stripped = line.strip()
            if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
                fence = stripped[:3]
                self.in_code.append(True)
            elif fence is not None:
                if stripped.startswith(fence):
                    fence = None
                self.in_code.append(True)
            else:
                m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
                if m:
                    heading, level = m.group(2), len(m.group(1))
                self.in_code.append(False)
            self.heading.append(heading)
            self.level.append(level)

    def where(self, i):
        return "%s:%d" % (self.name, i + 1)

    def tables(self):
        """Yields Table for each markdown table outside code."""
        i, n = 0, len(self.lines)
        while i < n:
            if self.in_code[i] or not self.lines[i].lstrip().startswith("|"):
                i += 1
                continue
            start = i
            while i < n and not self.in_code[i] and self.lines[i].lstrip().startswith("|"):
                i += 1
            rows = [(k, split_row(self.lines[k])) for k in range(start, i)]
            if len(rows) < 2 or not all(re.fullmatch(r":?-+:?", c.strip())
                                        for c in rows[1][1]):
                continue
            yield Table(self, start, rows[0][1], rows[2:])

    def lead_in(self, start):
        """The paragraph just above line |start| (since a blank line, a heading or
        a table), as one string."""
        k = start - 1
        while k >= 0 and self.lines[k].strip() == "":
            k -= 1
        para = []
        while (k >= 0 and self.lines[k].strip() != "" and not self.lines[k].startswith("#")
               and not self.lines[k].lstrip().startswith("|")):
            para.append(self.lines[k].strip())
            k -= 1
        return " ".join(reversed(para))

    def code_texts(self):
        """Yields (line index, text) for every fenced code line and every code span
        outside fences."""
        for i, line in enumerate(self.lines):
            if self.in_code[i]:
                if not line.strip().startswith(("```", "~~~")):
                    yield i, line
            else:
                for m in re.finditer(r"(`+)(.+?)\1", line):
                    yield i, m.group(2).strip()


class Table:
    def __init__(self, doc, start, header, rows):
        self.doc = doc
        self.start = start
        self.header = [h.strip().lower() for h in header]
        self.rows = rows        # [(line index, [cells])]
        self.heading = doc.heading[start]
        self.lead_in = doc.lead_in(start)

    def col(self, name):
        return self.header.index(name) if name in self.header else None


def split_row(line):
    """Cells of a table row; `\\|` is a literal bar."""
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", s)]


def ticked(cell):
    """The code spans of a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def load_docs(root):
    """README.md and docs/*.md under |root|, by name."""
    docs = {}
    names = ["README.md"] + sorted(os.path.relpath(p, root)
                                   for p in glob.glob(os.path.join(root, "docs", "*.md")))
    for name in names:
        with open(os.path.join(root, name), encoding="utf-8") as f:
            docs[name] = f.read()
    return docs


def parse_docs(texts):
    return {name: Doc(name, text) for name, text in texts.items()}


# ---------------------------------------------------------------- ports

sys.path.insert(0, os.path.join(REPO, "test", "integration"))
from ports import free_ports  # noqa: E402


# ---------------------------------------------------------------- the running agent

KITCHEN_SINK = """\
log_level: warn
shutdown_timeout: 0s
memory_limit: 64MiB
admin: {{endpoint: "127.0.0.1:{admin}"}}
storage: {{path: "{dir}/spool.db"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
  lines: {{path: "{dir}/s.sock"}}
  lines/datagram: {{path: "{dir}/d.sock", socket_type: datagram}}
exporters:
  otlp: {{endpoint: "127.0.0.1:{closed}"}}
  otlphttp: {{endpoint: "http://127.0.0.1:{closed}"}}
  loki: {{endpoint: "http://127.0.0.1:{closed}/loki/api/v1/push"}}
  prometheus: {{endpoint: "127.0.0.1:{prom}"}}
  prometheusremotewrite: {{endpoint: "http://127.0.0.1:{closed}/api/v1/write"}}
pipelines:
  traces: {{receivers: [otlp], exporters: [otlp, otlphttp]}}
  metrics: {{receivers: [otlp], exporters: [prometheus, prometheusremotewrite, otlphttp]}}
  logs: {{receivers: [otlp, lines, lines/datagram], exporters: [loki, otlphttp]}}
"""


def http(method, url, body=None, headers=None, timeout=5.0):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run_kitchen_sink():
    """Starts the agent on KITCHEN_SINK, sends one OTLP/HTTP request, scrapes the
    admin /metrics and stops it. Returns the exposition text; raises
    RuntimeError saying why it could not."""
    for attempt in range(3):
        d = tempfile.mkdtemp(prefix="lookout-docs-")
        try:
            admin, grpc, http_port, prom, closed = free_ports(5)
            path = os.path.join(d, "lookout.yaml")
            with open(path, "w") as f:
                f.write(KITCHEN_SINK.format(dir=d, admin=admin, grpc=grpc, http=http_port,
                                            prom=prom, closed=closed))
            with open(os.path.join(d, "stderr.log"), "w+") as err:
                proc = subprocess.Popen([BIN, "-c", path], stdout=subprocess.DEVNULL,
                                        stderr=err, cwd=d)
                try:
                    text = scrape_when_ready(proc, admin, http_port)
                except RuntimeError as e:
                    stop(proc)
                    err.seek(0)
                    raise RuntimeError("%s; the agent's stderr:\n%s" % (e, err.read()[-3000:]))
                stop(proc)
                if text is not None:
                    return text
                err.seek(0)
                log = err.read()
            # Exit 3 with "address in use": another listener took a port meanwhile.
            if proc.returncode == 3 and "in use" in log.lower() and attempt < 2:
                continue
            raise RuntimeError("the agent did not start (exit %s):\n%s"
                               % (proc.returncode, log[-3000:]))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    raise RuntimeError("not reached")


def scrape_when_ready(proc, admin, http_port):
    """/metrics once /readyz says 200, after one OTLP/HTTP request; None when the
    agent exits first."""
    base = "http://127.0.0.1:%d" % admin
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            return None
        try:
            if http("GET", base + "/readyz")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("/readyz not 200 within %gs" % READY_TIMEOUT)
        time.sleep(0.05)
    # An empty ExportTraceServiceRequest is a valid one: 200, and the family
    # lookout_receiver_requests_total, registered with its first request, appears.
    status, _ = http("POST", "http://127.0.0.1:%d/v1/traces" % http_port, body=b"",
                     headers={"Content-Type": "application/x-protobuf"})
    if status != 200:
        raise RuntimeError("POST /v1/traces answered %d, not 200" % status)
    status, body = http("GET", base + "/metrics")
    if status != 200:
        raise RuntimeError("GET /metrics answered %d" % status)
    return body.decode("utf-8")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+")
_LABEL_NAME_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


class Scrape:
    """Families of an exposition: name -> type, and name -> label names seen."""

    def __init__(self, text):
        self.types = {}
        self.labels = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(None, 3)
                self.types[name] = kind.strip()
                self.labels.setdefault(name, set())
            elif line and not line.startswith("#"):
                m = _SAMPLE_RE.match(line)
                if not m:
                    raise ParseError("unreadable sample line: " + line)
                family = self.family_of(m.group(1))
                if family is None:
                    raise ParseError("sample without a # TYPE: " + line)
                names = set(_LABEL_NAME_RE.findall(m.group(2) or ""))
                if self.types[family] == "histogram":
                    names.discard("le")
                self.labels[family] |= names

    def family_of(self, sample):
        if sample in self.types:
            return sample
        for suffix in HISTOGRAM_SUFFIXES:
            base = sample[:-len(suffix)]
            if sample.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return None

    def item_words(self):
        """What ITEMS / <items> stand for in names: spans, metric_points, ..."""
        return sorted(m.group(1) for n in self.types
                      for m in [re.fullmatch(r"lookout_receiver_accepted_([a-z_]+)_total", n)] if m)


# ---------------------------------------------------------------- metric names in docs

# A name as prose writes it: lookout_ or process_ then name characters, `*` or `…`
# (any run), ITEMS or <items> (each item word), {a,b} (each of a and b; a brace
# group that ends the name is its labels instead).
_NAME_RE = re.compile(r"(?<![A-Za-z0-9_.\-/])((?:lookout|process)_"
                      r"(?:[a-z0-9_]|\*|…|ITEMS|<items>|\{[a-z0-9_,]+\}(?=[a-z0-9_]))*)")
# process_* names that are metrics; others (process_pid, the Loki metadata of
# the process.pid attribute) are not.
_PROCESS_METRIC_RE = re.compile(r"process_.*(_total|_seconds|_bytes|_fds|\*|…)$")


def expand_group(s):
    """A grep -E alternation with nesting, `a(b|c(d|e))f`, into its strings."""
    out, i = [""], 0
    while i < len(s):
        if s[i] == "(":
            depth, j = 0, i
            while j < len(s):
                depth += {"(": 1, ")": -1}.get(s[j], 0)
                if depth == 0:
                    break
                j += 1
            if depth != 0:
                raise ParseError("unbalanced ( in " + s)
            alts, depth, cur = [], 0, ""
            for ch in s[i + 1:j]:
                if ch == "|" and depth == 0:
                    alts.append(cur)
                    cur = ""
                    continue
                depth += {"(": 1, ")": -1}.get(ch, 0)
                cur += ch
            alts.append(cur)
            out = [o + a for o in out for alt in alts for a in expand_group(alt)]
            i = j + 1
        else:
            out = [o + s[i] for o in out]
            i += 1
    return out


def doc_name_refs(doc, item_words):
    """(line index, as written, [(name or glob, how)]) for every metric name in
    |doc|; how is "exact", "glob" or "prefix"."""
    refs = []
    for i, line in enumerate(doc.lines):
        for m in _NAME_RE.finditer(line):
            token = m.group(1)
            rest = line[m.end():]
            if token.startswith("process_") and not _PROCESS_METRIC_RE.match(token):
                continue
            if rest.startswith("(") and token.endswith("_"):
                # A regular expression, as in `grep -E 'lookout_(a|b)'`: prefixes.
                depth, j = 0, 0
                while j < len(rest):
                    depth += {"(": 1, ")": -1}.get(rest[j], 0)
                    if depth == 0:
                        break
                    j += 1
                group = rest[:j + 1]
                refs.append((i, token + group,
                             [(token + alt, "prefix") for alt in expand_group(group)]))
                continue
            refs.append((i, token, expand_name(token, item_words)))
    return refs


def expand_name(token, item_words):
    """[(name, how)] that |token| stands for: ITEMS and <items> become each item
    word, {a,b} each of a and b; with `*` or `…` left it is a glob, ending in `_`
    a prefix, else an exact name."""
    names, out = [token], []
    while names:
        n = names.pop()
        m = re.search(r"ITEMS|<items>|\{([a-z0-9_,]+)\}", n)
        if m:
            alts = m.group(1).split(",") if m.group(1) else item_words
            names += [n[:m.start()] + a + n[m.end():] for a in alts]
            continue
        n = n.replace("…", "*")
        out.append((n, "glob" if "*" in n else "prefix" if n.endswith("_") else "exact"))
    return sorted(out)


def name_exists(scrape, name, how):
    fams = scrape.types
    if how == "glob":
        return any(fnmatch.fnmatchcase(f, name) for f in fams)
    if how == "prefix":
        return any(f.startswith(name) for f in fams)
    return scrape.family_of(name) is not None


def check_doc_names(scrape, docs):
    problems = []
    for doc in docs.values():
        for i, written, names in doc_name_refs(doc, scrape.item_words()):
            missing = [n for n, how in names if not name_exists(scrape, n, how)]
            if missing:
                problems.append("%s: %s%s not served" % (
                    doc.where(i), written,
                    "" if missing == [written] else " (%s)" % ", ".join(missing)))
    return problems


def check_operations_names(scrape, doc):
    """Every served family is named, spelled out, in docs/operations.md: its
    "which one answers what" is meant to cover them all."""
    named = set()
    for _, _, names in doc_name_refs(doc, scrape.item_words()):
        named |= {n for n, how in names if how == "exact"}
    return ["%s is not named in %s" % (f, doc.name)
            for f in sorted(scrape.types) if f not in named]


# ---------------------------------------------------------------- docs/metrics.md tables

class MetricRow:
    def __init__(self, where, names, kind, labels):
        self.where = where
        self.names = names      # what the name cell holds, as written
        self.kind = kind        # the type cell
        self.labels = labels    # None (no labels column) or [[alternatives], ...]


def metrics_rows(doc):
    """MetricRow for each row of a table of docs/metrics.md whose first column is
    `metric`, and the problems of label cells that cannot be read."""
    rows, problems = [], []
    for t in doc.tables():
        if t.header[0] != "metric":
            continue
        kind_col, label_col = t.col("type"), t.col("labels")
        if kind_col is None:
            raise ParseError("%s: a metric table without a type column" % doc.where(t.start))
        for i, cells in t.rows:
            labels = None
            if label_col is not None:
                labels = []
                for part in re.split(r",\s*", cells[label_col]):
                    alts = ticked(part)
                    if alts:
                        labels.append(alts)
                    elif part.strip():
                        problems.append("%s: label cell part %r names no label (label "
                                        "names in backticks, alternatives joined by "
                                        "`or`, values in the meaning column)"
                                        % (doc.where(i), part))
            rows.append(MetricRow(doc.where(i), ticked(cells[0]), cells[kind_col].strip(),
                                  labels))
    return rows, problems


def check_metrics_tables(scrape, doc):
    """Returns {check name: problems} for the tables of docs/metrics.md."""
    rows, labels = metrics_rows(doc)
    spelled, documented, types, seen = [], [], [], {}
    for r in rows:
        for name in r.names:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                spelled.append("%s: %s: spell the name out in the table (patterns belong "
                               "in prose)" % (r.where, name))
                continue
            seen.setdefault(name, []).append(r.where)
            kind = scrape.types.get(name)
            if kind is None:
                continue        # reported by check_doc_names
            if r.kind != kind:
                types.append("%s: %s is documented as %r, served as %r"
                             % (r.where, name, r.kind, kind))
            if r.labels is not None:
                labels += label_problems(r, name, scrape.labels[name])
    for name in sorted(scrape.types):
        if name not in seen:
            documented.append("%s (%s) is served but in no table of %s"
                              % (name, scrape.types[name], doc.name))
    once = ["%s is in %d rows: %s" % (n, len(w), ", ".join(w))
            for n, w in sorted(seen.items()) if len(w) > 1]
    return {"every served family is in a docs/metrics.md table": documented,
            "docs/metrics.md tables spell names out, each once": spelled + once,
            "docs/metrics.md types match /metrics": types,
            "docs/metrics.md labels match /metrics": labels}


def label_problems(row, name, seen):
    """Every label served is documented; each documented group (one label, or
    alternatives joined by `or`) is served when the family has labelled series."""
    out = []
    documented = {l for alts in row.labels for l in alts}
    extra = sorted(seen - documented)
    if extra:
        out.append("%s: %s has labels %s that the table does not list"
                   % (row.where, name, ", ".join(extra)))
    if seen:
        for alts in row.labels:
            if not set(alts) & seen:
                out.append("%s: %s: documented label %s is not served (served: %s)"
                           % (row.where, name, " or ".join(alts), ", ".join(sorted(seen))))
    elif row.labels:
        out.append("%s: %s is served without labels; the table lists %s"
                   % (row.where, name, ", ".join(sorted(documented))))
    return out


# ---------------------------------------------------------------- metric names in agent/

# Literals in agent/ that are not families the kitchen sink serves, and why.
LITERALS_EXPLAINED = {
    # selfmetrics.h: the prefix the prometheus exporter reserves on the admin
    # /metrics (reason="reserved_name"), not a family.
    "lookout_": "the reserved prefix",
    # cli/status.c: the prefix of the families `lookout status` reads.
    "process_": "a prefix",
}


def source_metric_literals():
    """(file:line, literal) for every "lookout_..." / "process_..." C string."""
    out = []
    for path in sorted(glob.glob(os.path.join(REPO, "agent", "**", "*.[ch]"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                for m in re.finditer(r'"((?:lookout|process)_[^"]*)"', line):
                    out.append(("%s:%d" % (os.path.relpath(path, REPO), n), m.group(1)))
    return out


def check_source_literals(scrape, literals):
    problems = []
    for where, lit in literals:
        if lit in LITERALS_EXPLAINED:
            continue
        if "%" in lit:
            pattern = re.escape(lit).replace(re.escape("%s"), "[a-z0-9_]+")
            if not any(re.fullmatch(pattern, f) for f in scrape.types):
                problems.append("%s: \"%s\" matches no served family" % (where, lit))
        elif lit not in scrape.types:
            problems.append("%s: \"%s\" is not served by the kitchen-sink agent (enable "
                            "what registers it in KITCHEN_SINK, or say why in "
                            "LITERALS_EXPLAINED)" % (where, lit))
    return problems


# ---------------------------------------------------------------- the config schema

CONFIG_DIR = os.path.join(REPO, "agent", "config")

# How the field tables nest. The walk of table T hands the value of its key K to:
# NESTED[(T, K)]: the walk of one table;
# NAMED[(T, K)]: a mapping of names (TYPE or TYPE/SUFFIX) whose types are the
#   strings of the named C array, each walked with the table given for its type;
# LEAVES: nothing below: the code reads the value itself (a scalar, a list, or a
#   mapping of free names such as headers and labels).
# Every FT_NODE key must be in exactly one of them, and every table reached.
ROOT_TABLE = "root_fields"
NESTED = {
    ("root_fields", "admin"): "admin_fields",
    ("root_fields", "storage"): "storage_fields",
    ("receiver_fields", "protocols"): "protocols_fields",
    ("protocols_fields", "grpc"): "grpc_fields",
    ("protocols_fields", "http"): "http_fields",
    ("exporter_fields", "tls"): "tls_fields",
    ("exporter_fields", "retry"): "retry_fields",
    ("exporter_fields", "queue"): "queue_fields",
    ("exporter_fields", "batch"): "batch_fields",
    ("exporter_fields", "auth"): "auth_fields",
}
NAMED = {
    ("root_fields", "receivers"): ("receiver_types", {"otlp": "receiver_fields",
                                                      "lines": "lines_fields"}),
    ("root_fields", "exporters"): ("exporter_types", "exporter_fields"),
    ("root_fields", "pipelines"): ("signal_names", "pipeline_fields"),
}
LEAVES = {
    ("exporter_fields", "endpoint"), ("exporter_fields", "headers"),
    ("exporter_fields", "traces_endpoint"), ("exporter_fields", "metrics_endpoint"),
    ("exporter_fields", "logs_endpoint"), ("exporter_fields", "labels"),
    ("exporter_fields", "promote_resource_attributes"),
    ("lines_fields", "socket_type"), ("lines_fields", "mode"), ("lines_fields", "labels"),
    ("pipeline_fields", "receivers"), ("pipeline_fields", "exporters"),
}
# exporter_fields rows carry type bits in .flags (check_type_keys in
# config_exporters.c): a row with some is for those types only. EX_SENDS marks
# the keys of exporters that send, which a prometheus exporter (scraped) lacks,
# `endpoint` excepted (its own listener).
SENDS_FLAG = "EX_SENDS"
NOT_SENDING = ("prometheus", {"endpoint"})
OTHER_FLAGS = {"EP_UNIX", "STR_EMPTY_UNSET"}
# The row macros of config_impl.h this parser reads.
ROW_MACROS = {"F_NODE", "F_VAL", "F_INT", "F_DBL", "F_ENUM"}


class Row:
    def __init__(self, key, ftype, flags):
        self.key = key
        self.ftype = ftype
        self.flags = flags


def strip_comments(src):
    return re.sub(r'"(?:\\.|[^"\\])*"|/\*.*?\*/|//[^\n]*',
                  lambda m: m.group(0) if m.group(0).startswith('"') else " ", src, flags=re.S)


def split_top(s, sep=","):
    """|s| split at |sep| outside (), {} and strings."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(s):
        ch = s[i]
        if ch == '"':
            j = i + 1
            while s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur += s[i:j + 1]
            i = j + 1
            continue
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def parse_row(table, text):
    m = re.fullmatch(r'(F_[A-Z]+)\s*\((.*)\)', text, re.S)
    if m:
        macro, args = m.group(1), split_top(m.group(2))
        if macro not in ROW_MACROS:
            raise ParseError("%s: row macro %s is unknown to this parser" % (table, macro))
        key = re.fullmatch(r'"([a-z_0-9]+)"', args[0])
        if not key:
            raise ParseError("%s: row %s: the key is not a string literal" % (table, text))
        ftype = {"F_NODE": "FT_NODE", "F_DBL": "FT_DOUBLE", "F_ENUM": "FT_ENUM"}.get(macro)
        if ftype is None:
            ftype = args[1]
        return Row(key.group(1), ftype, set())
    m = re.fullmatch(r"\{(.*)\}", text, re.S)
    if m:
        fields = {}
        for part in split_top(m.group(1)):
            d = re.fullmatch(r"\.([a-z]+)\s*=\s*(.*)", part, re.S)
            if not d:
                raise ParseError("%s: row %s: %r is not a designated initializer"
                                 % (table, text, part))
            fields[d.group(1)] = d.group(2).strip()
        key = re.fullmatch(r'"([a-z_0-9]+)"', fields.get("key", ""))
        if not key or not re.fullmatch(r"FT_[A-Z0-9]+", fields.get("type", "")):
            raise ParseError("%s: row %s: no .key string or .type FT_ constant" % (table, text))
        flags = set()
        if "flags" in fields:
            flags = {f.strip() for f in fields["flags"].split("|")}
            if not all(re.fullmatch(r"[A-Z_]+", f) for f in flags):
                raise ParseError("%s: row %s: .flags is not an OR of constants" % (table, text))
        return Row(key.group(1), fields["type"], flags)
    raise ParseError("%s: row shape not understood: %s" % (table, text))


def string_array(src, name):
    m = re.search(r"static\s+const\s+char\s*\*\s*const\s+%s\s*\[[^\]]*\]\s*=\s*\{(.*?)\};"
                  % name, src, re.S)
    if not m:
        raise ParseError("string array %s not found" % name)
    items = split_top(m.group(1))
    if not items or items[-1] != "NULL":
        raise ParseError("%s: expected a NULL-terminated array of strings" % name)
    out = []
    for it in items[:-1]:
        s = re.fullmatch(r'"([a-z]+)"', it)
        if not s:
            raise ParseError("%s: %s is not a string literal" % (name, it))
        out.append(s.group(1))
    return out


class Schema:
    """The field tables of agent/config/*.c and the key paths they make.

    A path is a tuple of keys; a name under receivers/exporters/pipelines is
    written "<TYPE>" (e.g. ("exporters", "<loki>", "auth", "username"))."""

    def __init__(self, sources):
        self.tables = {}
        self.arrays = {}
        self.type_bits = {}
        src_all = ""
        for name, src in sorted(sources.items()):
            src = strip_comments(src)
            src_all += src
            self._tables(name, src)
        self.source = src_all
        for key in ("receiver_types", "exporter_types", "signal_names"):
            self.arrays[key] = string_array(src_all, key)
        for bit, tname in re.findall(r'\{\s*(EX_[A-Z]+)\s*,\s*"([a-z]+)"\s*\}', src_all):
            self.type_bits[bit] = tname
        if sorted(self.type_bits.values()) != sorted(self.arrays["exporter_types"]):
            raise ParseError("the exporter type bits (%s) do not name each of exporter_types "
                             "(%s)" % (self.type_bits, self.arrays["exporter_types"]))
        self._check_nesting()
        self.paths = {}     # path -> "leaf" | "node"
        self._reached = set()
        self._walk(ROOT_TABLE, (), None)
        unreached = sorted(set(self.tables) - self._reached)
        if unreached:
            raise ParseError("field tables not placed in NESTED or NAMED: "
                             + ", ".join(unreached))

    def _tables(self, fname, src):
        decls = re.findall(r"struct\s+field\s+\w+\s*\[", src)
        found = 0
        for m in re.finditer(r"static\s+const\s+struct\s+field\s+(\w+)\s*\[\s*\]\s*=\s*\{", src):
            body_start = m.end()
            depth, i = 1, body_start
            while depth:
                if src[i] == '"':
                    i += 1
                    while src[i] != '"':
                        i += 2 if src[i] == "\\" else 1
                depth += {"{": 1, "}": -1}.get(src[i], 0)
                i += 1
            name = m.group(1)
            if name in self.tables:
                raise ParseError("two field tables named %s" % name)
            self.tables[name] = [parse_row(name, r) for r in split_top(src[body_start:i - 1])]
            found += 1
        if found != len(decls):
            raise ParseError("%s declares %d field tables, %d of the form `static const "
                             "struct field NAME[] = {...}` this parser reads"
                             % (fname, len(decls), found))

    def row(self, table, key):
        for r in self.tables.get(table, []):
            if r.key == key:
                return r
        return None

    def _check_nesting(self):
        where = [("NESTED", k) for k in NESTED] + [("NAMED", k) for k in NAMED] + \
                [("LEAVES", k) for k in LEAVES]
        for what, (table, key) in where:
            r = self.row(table, key)
            if r is None or r.ftype != "FT_NODE":
                raise ParseError("%s names %s.%s, which is not an FT_NODE row of the source"
                                 % (what, table, key))
            # The code must read that key's value: a nested table through
            # SEEN(table, ..., "key"); a leaf at least by naming it again.
            if what != "LEAVES":
                if not re.search(r'SEEN\(\s*%s\s*,\s*\w+\s*,\s*"%s"\s*\)' % (table, key),
                                 self.source):
                    raise ParseError("%s names %s.%s, but no SEEN(%s, ..., \"%s\") in the "
                                     "source" % (what, table, key, table, key))
            elif self.source.count('"%s"' % key) < 2:
                raise ParseError("LEAVES names %s.%s, which no code reads" % (table, key))
        for child in NESTED.values():
            if not re.search(r"cfg_walk_map\([^;]*\b%s\b" % child, self.source):
                raise ParseError("NESTED names table %s, which no cfg_walk_map walks" % child)
        for table, rows in self.tables.items():
            for r in rows:
                if r.ftype == "FT_NODE":
                    n = sum((table, r.key) in d for d in (NESTED, NAMED, LEAVES))
                    if n != 1:
                        raise ParseError("FT_NODE key %s.%s is in %d of NESTED, NAMED and "
                                         "LEAVES (must be in one: declare how it nests)"
                                         % (table, r.key, n))
                for f in r.flags:
                    if f not in self.type_bits and f != SENDS_FLAG and f not in OTHER_FLAGS:
                        raise ParseError("%s.%s: flag %s unknown to this checker"
                                         % (table, r.key, f))

    def applies(self, row, etype):
        """Whether an exporter of type |etype| has the exporter_fields |row|."""
        only = {self.type_bits[f] for f in row.flags if f in self.type_bits}
        if only and etype not in only:
            return False
        if SENDS_FLAG in row.flags and etype == NOT_SENDING[0] and row.key not in NOT_SENDING[1]:
            return False
        return True

    def keys_of(self, table, ctype=None):
        """Rows of |table| that a component of type |ctype| has."""
        return [r for r in self.tables[table]
                if table != "exporter_fields" or self.applies(r, ctype)]

    def _walk(self, table, prefix, ctype):
        """Adds the paths under |prefix| walked with |table|; |ctype| is the type
        of the component they belong to (which exporter_fields rows apply)."""
        self._reached.add(table)
        for r in self.keys_of(table, ctype):
            path = prefix + (r.key,)
            if (table, r.key) in NESTED:
                self.paths[path] = "node"
                self._walk(NESTED[(table, r.key)], path, ctype)
            elif (table, r.key) in NAMED:
                self.paths[path] = "node"
                array, child = NAMED[(table, r.key)]
                for name in self.arrays[array]:
                    t = child if isinstance(child, str) else child.get(name)
                    if t is None:
                        raise ParseError("NAMED %s.%s: no table for type %s"
                                         % (table, r.key, name))
                    self._walk(t, path + ("<%s>" % name,), name)
            else:
                self.paths[path] = "leaf"


def load_schema():
    sources = {}
    for path in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.c"))):
        with open(path, encoding="utf-8") as f:
            sources[os.path.relpath(path, REPO)] = f.read()
    with open(os.path.join(CONFIG_DIR, "config_impl.h"), encoding="utf-8") as f:
        impl = strip_comments(f.read())
    macros = set(re.findall(r"#define\s+(F_[A-Z]+)\(", impl))
    if macros != ROW_MACROS:
        raise ParseError("config_impl.h defines row macros %s; this parser knows %s"
                         % (sorted(macros), sorted(ROW_MACROS)))
    return Schema(sources)


def real_name(comp):
    """"<loki>" -> "loki": the component name to write in a config."""
    return comp[1:-1] if comp.startswith("<") else comp


def nest(path, leaf):
    """{"a": {"b": leaf}} for path ("a", "b")."""
    obj = leaf
    for comp in reversed(path):
        obj = {real_name(comp): obj}
    return obj


def check_config(config, tmpdir, n):
    """What `lookout --check-config` prints for |config| (JSON, which is YAML)."""
    path = os.path.join(tmpdir, "c%d.yaml" % n)
    with open(path, "w") as f:
        json.dump(config, f)
    r = subprocess.run([BIN, "--check-config", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=CLI_TIMEOUT)
    return r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def unknown(out, key):
    return ("unknown key '%s'" % key) in out


def key_cases(schema):
    """Configs for --check-config: (config, path, key that must be known or None,
    key that must be unknown). First each key path with a misspelt sibling
    beside it (proving its table is walked there), then each key of one
    receiver or exporter type under the other types."""
    known = []
    for path, kind in sorted(schema.paths.items()):
        value = {} if kind == "node" else "x"
        parent, key = path[:-1], path[-1]
        known.append((nest(parent, {key: value, key + "x": value}), path, key, key + "x"))
    crossed = []
    union = {r.key for r in schema.tables["exporter_fields"]}
    for etype in schema.arrays["exporter_types"]:
        mine = {r.key for r in schema.keys_of("exporter_fields", etype)}
        for key in sorted(union - mine):
            path = ("exporters", "<%s>" % etype, key)
            crossed.append((nest(path[:-1], {key: "x"}), path, None, key))
    receiver_tables = NAMED[("root_fields", "receivers")][1]
    for rtype, table in receiver_tables.items():
        mine = {r.key for r in schema.tables[table]}
        for other in receiver_tables.values():
            for key in sorted({r.key for r in schema.tables[other]} - mine):
                path = ("receivers", "<%s>" % rtype, key)
                crossed.append((nest(path[:-1], {key: "x"}), path, None, key))
    return known, crossed


def run_key_cases(cases):
    """Problems of |cases| (from key_cases) with what --check-config says."""
    tmpdir = tempfile.mkdtemp(prefix="lookout-docs-cfg-")
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda a: check_config(a[1][0], tmpdir, a[0]),
                                 enumerate(cases)))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    problems = []
    for (config, path, good, bad), out in zip(cases, outs):
        dotted = ".".join(real_name(c) for c in path)
        if good and unknown(out, good):
            problems.append("%s: the parse says it is a key, the binary calls it unknown"
                            % dotted)
        if not unknown(out, bad):
            problems.append("%s: `%s` should be an unknown key there; --check-config said:"
                            "\n  %s" % (dotted, bad, "\n  ".join(out.strip().splitlines()[:4])))
    return problems


# ---------------------------------------------------------------- docs/configuration.md

# Which section each key table of docs/configuration.md documents: the table's
# heading (regex, full match), and a regex searched in the paragraph above it
# (None: any). The first entry that matches wins; a key table no entry matches
# is a failure (add it here). SUB(k): the table of sub-key k (tls, retry, ...)
# of every exporter type that documents k.
class SUB:
    def __init__(self, key):
        self.key = key


DOC_TABLES = [
    (r"Top level", None, [()]),
    (r"`admin`", None, [("admin",)]),
    (r"`storage`", None, [("storage",)]),
    (r"`receivers`", r"^`receivers\.<name>\.protocols\.grpc`",
     [("receivers", "<otlp>", "protocols", "grpc")]),
    (r"`receivers`", r"^`receivers\.<name>\.protocols\.http`",
     [("receivers", "<otlp>", "protocols", "http")]),
    (r"`lines` receivers", None, [("receivers", "<lines>")]),
    (r"`exporters`", r"`otlp` and `otlphttp` exporters take the keys of this table",
     [("exporters", "<otlp>"), ("exporters", "<otlphttp>")]),
    (r"`exporters`", r"^`tls`", SUB("tls")),
    (r"`exporters`", r"^`retry`", SUB("retry")),
    (r"`exporters`", r"^`queue`", SUB("queue")),
    (r"`exporters`", r"^`batch`", SUB("batch")),
    (r"`otlphttp` exporters", None, [("exporters", "<otlphttp>")]),
    (r"`loki` exporters", None, [("exporters", "<loki>")]),
    (r"`prometheus` exporters", None, [("exporters", "<prometheus>")]),
    (r"`prometheusremotewrite` exporters", None, [("exporters", "<prometheusremotewrite>")]),
    (r"`pipelines`", None, [("pipelines", "*")]),
]
# In the section of an exporter type, "common keys (`a`, `b`)", "the common ones
# (...)" and "the ... keys of `prometheus` (...)" list keys that type takes.
_COMMON_RE = re.compile(r"(?:common (?:keys|ones)|keys of `[a-z]+`)[^().]*\(([^)]*)\)")
_KEY_RE = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*")


def doc_config_paths(doc, schema):
    """{path: where} documented by docs/configuration.md, and the problems met."""
    problems, paths, used = [], {}, set()
    subs = []
    for t in doc.tables():
        if t.header[0] != "key":
            continue
        entry = None
        for n, (head, lead, scope) in enumerate(DOC_TABLES):
            if re.fullmatch(head, t.heading) and (lead is None or re.search(lead, t.lead_in)):
                entry = n
                break
        if entry is None:
            problems.append("%s: key table under \"%s\" is in no entry of DOC_TABLES "
                            "(test/docs/check.py): say which section it documents"
                            % (doc.where(t.start), t.heading))
            continue
        used.add(entry)
        for i, cells in t.rows:
            keys = ticked(cells[0])
            bad = [k for k in keys if not _KEY_RE.fullmatch(k)]
            if not keys or bad:
                problems.append("%s: key cell %r: expected key names in backticks"
                                % (doc.where(i), cells[0]))
                continue
            scope = DOC_TABLES[entry][2]
            for k in keys:
                if isinstance(scope, SUB):
                    subs.append((scope.key, tuple(k.split(".")), doc.where(i)))
                else:
                    for s in scope:
                        paths.setdefault(s + tuple(k.split(".")), doc.where(i))
    for n, (head, lead, _) in enumerate(DOC_TABLES):
        if n not in used:
            problems.append("DOC_TABLES entry (%s, %s) matches no key table of %s"
                            % (head, lead, doc.name))
    # Exporter sections: keys taken from the common tables, listed in prose.
    for etype in schema.arrays["exporter_types"]:
        text = section_text(doc, r"`%s` exporters" % etype)
        for m in _COMMON_RE.finditer(text):
            for k in ticked(m.group(1)):
                if _KEY_RE.fullmatch(k):
                    paths.setdefault(("exporters", "<%s>" % etype) + tuple(k.split(".")),
                                     "%s, `%s` exporters section" % (doc.name, etype))
    for sub, key, where in subs:
        for etype in schema.arrays["exporter_types"]:
            if ("exporters", "<%s>" % etype, sub) in paths:
                paths.setdefault(("exporters", "<%s>" % etype, sub) + key, where)
    return paths, problems


def section_text(doc, heading_re):
    """The text under the heading that fully matches |heading_re|, up to the next
    heading of the same or a higher level."""
    out, level = [], None
    for i, line in enumerate(doc.lines):
        if not doc.in_code[i] and re.match(r"^#{1,6}\s", line):
            if level is not None and doc.level[i] <= level:
                break
            if level is None and re.fullmatch(heading_re, doc.heading[i]):
                level = doc.level[i]
                continue
        if level is not None:
            out.append(line)
    return " ".join(l.strip() for l in out)


def path_matches(doc_path, schema_path):
    return len(doc_path) == len(schema_path) and all(
        d == s or (d == "*" and s.startswith("<")) for d, s in zip(doc_path, schema_path))


def show(path):
    return ".".join(path) if path else "(top level)"


def check_config_docs(schema, doc):
    """Problems both ways between the schema's key paths and the docs'."""
    paths, problems = doc_config_paths(doc, schema)
    not_in_schema = ["%s: `%s` is documented but not a key there" % (where, show(p))
                     for p, where in sorted(paths.items())
                     if not any(path_matches(p, s) for s in schema.paths)]
    prefixes = {d[:n] for d in paths for n in range(1, len(d) + 1)}
    undocumented = ["%s is a key of the schema but not in %s" % (show(s), doc.name)
                    for s in sorted(schema.paths)
                    if not any(path_matches(d, s) for d in prefixes)]
    return problems + not_in_schema, undocumented


# Backticked dotted key references in any doc: `storage.path`, `retry.enabled`,
# `exporters.otlp/jaeger.timeout`, `receivers.<name>.protocols.grpc`.
_DOTTED_RE = re.compile(r"`((?:admin|storage|receivers|exporters|pipelines|protocols|tls|"
                        r"retry|queue|batch|auth)\.[A-Za-z0-9_.<>/-]+?)(?=[`:= ])")
_FILE_SUFFIXES = (".c", ".h", ".md", ".py", ".sh", ".yaml", ".yml", ".json")


def suffix_matches(token, path):
    n = len(token)
    if n > len(path):
        return False
    for t, s in zip(token, path[len(path) - n:]):
        if s.startswith("<"):
            if not (t.startswith("<") or t.split("/")[0] == s[1:-1]):
                return False
        elif t != s:
            return False
    return True


def check_dotted_refs(schema, docs):
    problems = []
    for doc in docs.values():
        for i, line in enumerate(doc.lines):
            for m in _DOTTED_RE.finditer(line):
                token = m.group(1)
                if token.endswith(_FILE_SUFFIXES):
                    continue
                comps = tuple(token.split("."))
                if not any(suffix_matches(comps, p) for p in schema.paths):
                    problems.append("%s: `%s` is not a configuration key" % (doc.where(i), token))
    return problems


# ---------------------------------------------------------------- CLI

_FLAG_LINE_RE = re.compile(r"^\s{1,8}(-[A-Za-z0-9](?=[\s,])|--[a-z0-9][a-z0-9-]*)"
                           r"(?:,\s*(--[a-z0-9][a-z0-9-]*))?")


def run_help(args):
    r = subprocess.run([BIN] + args + ["--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=CLI_TIMEOUT)
    if r.returncode != 0:
        raise ParseError("`lookout %s` exited %d: %s" % (" ".join(args + ["--help"]),
                                                          r.returncode, r.stderr.decode()))
    return r.stdout.decode("utf-8", "replace")


def help_flags(text):
    flags = set()
    for line in text.splitlines():
        m = _FLAG_LINE_RE.match(line)
        if m:
            flags.update(f for f in m.groups() if f)
    return flags


def help_subcommands(text):
    """Subcommands --help names: in its usage lines (`usage: lookout top [...]`
    and the `lookout ...` lines under it) or in a "commands:" section
    (`  top   what it does`)."""
    subs, section = set(), None
    for line in text.splitlines():
        if re.match(r"^usage:", line, re.I):
            section = "usage"
        elif re.match(r"^\s*(sub)?commands:\s*$", line, re.I):
            section = "commands"
            continue
        elif not line.startswith(" ") or not line.strip():
            section = None
        if section == "usage":
            m = re.match(r"^(?:usage:)?\s*(?:or:\s*)?lookout\s+([a-z][a-z0-9-]*)(?=\s|$)", line,
                         re.I)
            if m:
                subs.add(m.group(1))
            elif not re.match(r"^(?:usage:)?\s*(?:or:\s*)?lookout(\s|$)", line, re.I):
                section = None
        elif section == "commands":
            m = re.match(r"^\s{2,}([a-z][a-z0-9-]*)(?:\s{2,}|$)", line)
            if m:
                subs.add(m.group(1))
    return subs


class Cli:
    """Flags of lookout and of each subcommand, from their --help."""

    def __init__(self):
        text = run_help([])
        self.flags = {"": help_flags(text)}
        for sub in sorted(help_subcommands(text)):
            self.flags[sub] = help_flags(run_help([sub]))
        if not self.flags[""]:
            raise ParseError("no flag lines in `lookout --help`:\n" + text)

    def all_flags(self):
        return set().union(*self.flags.values())


def cli_doc_tables(doc, subcommands):
    """{command: {flag: where}} from the tables of |doc| whose first column is
    `flag`; a table belongs to the subcommands its heading names (each of them,
    when it names several: "`lookout top` and `lookout status`"), else to lookout."""
    out = {}
    for t in doc.tables():
        if t.header[0] not in ("flag", "flags", "option"):
            continue
        words = set(re.findall(r"[a-z][a-z0-9-]*", t.heading.lower()))
        cmds = sorted(words & subcommands) or [""]
        for i, cells in t.rows:
            for tok in ticked(cells[0]):
                flag = tok.split()[0].split("=")[0]
                if not flag.startswith("-"):
                    raise ParseError("%s: flag cell %r: expected flags in backticks"
                                     % (doc.where(i), cells[0]))
                for cmd in cmds:
                    out.setdefault(cmd, {}).setdefault(flag, doc.where(i))
    return out


def check_cli_tables(cli, doc):
    documented = cli_doc_tables(doc, set(cli.flags) - {""})
    fake, missing = [], []
    for cmd, flags in sorted(documented.items()):
        for flag, where in sorted(flags.items()):
            if flag not in cli.flags.get(cmd, set()):
                fake.append("%s: %s is not in `lookout %s--help`"
                            % (where, flag, cmd + " " if cmd else ""))
    every = set().union(*map(set, documented.values())) if documented else set()
    for cmd, flags in sorted(cli.flags.items()):
        if cmd:
            # A subcommand without a table of its own is checked against them all.
            mine = set(documented[cmd]) if cmd in documented else every
        else:
            # `lookout --help` may list a subcommand's flags too: the table of
            # that subcommand documents them.
            mine = set(documented.get("", {})) | {
                f for sub, fl in cli.flags.items() if sub
                for f in fl if f in documented.get(sub, {})}
        for flag in sorted(flags - mine):
            missing.append("%s (`lookout %s--help`) is in no flag table of %s%s"
                           % (flag, cmd + " " if cmd else "", doc.name,
                              " for it" if cmd and cmd in documented else ""))
    return fake, missing


# lookout at command position: at the start of a code span or line (after a
# prompt, variable assignments, sudo or exec), after a shell operator, or as a
# systemd ExecStart=; any directory before it.
_CMD_RE = re.compile(r"(?:^\s*(?:\$\s+)?|&&\s*|\|\|\s*|;\s*|\|\s*|\$\(\s*|ExecStart=)"
                     r"(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:(?:sudo|exec)\s+)?"
                     r"(?:\S*/)?lookout(?=\s|$)")
_STOP = {"|", "||", "&&", ";", "#", ">", "2>", "<", "2>&1", "&", "\\"}


def doc_command_lines(doc):
    """(line index, subcommand or "", [flags]) for every lookout command line."""
    out = []
    for i, text in doc.code_texts():
        for m in _CMD_RE.finditer(text):
            # A command substitution in an argument, "$(brew --prefix)/etc/…",
            # is another command's: its flags are not lookout's.
            tokens = re.sub(r"\$\([^()]*\)", "X", text[m.end():]).split()
            sub, flags = "", []
            for n, tok in enumerate(tokens):
                if tok in _STOP or tok.startswith(("#", ">", "|", ";", "&", "2>")):
                    break
                tok = tok.strip("[]()")
                if tok.startswith("-") and len(tok) > 1 and tok != "--":
                    flags.append(tok.split("=")[0].rstrip(".,:"))
                elif n == 0 and re.fullmatch(r"[a-z][a-z0-9-]*", tok):
                    sub = tok
            out.append((i, sub, flags))
    return out


def check_cli_lines(cli, docs):
    problems = []
    for doc in docs.values():
        for i, sub, flags in doc_command_lines(doc):
            cmd = sub if sub in cli.flags else ""
            for flag in flags:
                if flag not in cli.flags[cmd]:
                    problems.append("%s: %s is not a flag of `lookout%s`"
                                    % (doc.where(i), flag, " " + cmd if cmd else ""))
    return problems


def check_man_page(cli):
    """Every flag of every --help is in the man page, docs/lookout.8 (groff
    writes a dash as \\-)."""
    with open(os.path.join(REPO, "docs", "lookout.8"), encoding="utf-8") as f:
        man = f.read().replace("\\-", "-")
    return ["%s (`lookout %s--help`) is not in docs/lookout.8" % (flag, cmd + " " if cmd else "")
            for cmd, flags in sorted(cli.flags.items()) for flag in sorted(flags)
            if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), man)]


# ---------------------------------------------------------------- running it all

def doc_checks(facts, texts):
    """{check name: problems} of every comparison of |texts| (the docs) with the
    facts gathered from the binary and the source."""
    docs = parse_docs(texts)
    out = {}
    scrape = facts.get("scrape")
    if scrape is not None:
        out["metric names in README.md and docs/*.md are served"] = \
            check_doc_names(scrape, docs)
        out.update(check_metrics_tables(scrape, docs["docs/metrics.md"]))
        out["every served family is named in docs/operations.md"] = \
            check_operations_names(scrape, docs["docs/operations.md"])
    schema = facts.get("schema")
    if schema is not None:
        fake, missing = check_config_docs(schema, docs["docs/configuration.md"])
        out["keys in docs/configuration.md exist in the schema"] = fake
        out["every schema key is in docs/configuration.md"] = missing
        out["dotted key references in README.md and docs/*.md exist"] = \
            check_dotted_refs(schema, docs)
    cli = facts.get("cli")
    if cli is not None:
        fake, missing = check_cli_tables(cli, docs["docs/cli.md"])
        out["flags in docs/cli.md tables exist in --help"] = fake
        out["every --help flag is in docs/cli.md"] = missing
        out["lookout command lines in README.md and docs/*.md use real flags"] = \
            check_cli_lines(cli, docs)
        out["every --help flag is in the man page"] = check_man_page(cli)
    return out


def replace_once(text, old, new):
    if old not in text:
        raise ParseError("self-check: %r not found to mutate" % old)
    return text.replace(old, new, 1)


def drop_line_with(text, needle):
    lines = text.split("\n")
    hits = [n for n, l in enumerate(lines) if needle in l]
    if not hits:
        raise ParseError("self-check: no line with %r to remove" % needle)
    del lines[hits[0]]
    return "\n".join(lines)


# (what, check that must fail, mutation of the docs' texts)
SELF_CHECKS = [
    ("a served family missing from docs/operations.md",
     "every served family is named in docs/operations.md",
     lambda t: dict(t, **{"docs/operations.md": t["docs/operations.md"].replace(
         "`lookout_spool_commits_total`", "the commits")})),
    ("a metric name in README.md that is not served",
     "metric names in README.md and docs/*.md are served",
     lambda t: dict(t, **{"README.md": t["README.md"] + "\n`lookout_bogus_total`\n"})),
    ("a served family missing from docs/metrics.md",
     "every served family is in a docs/metrics.md table",
     lambda t: dict(t, **{"docs/metrics.md": drop_line_with(
         t["docs/metrics.md"], "| `lookout_spool_commits_total` |")})),
    ("a wrong type in docs/metrics.md",
     "docs/metrics.md types match /metrics",
     lambda t: dict(t, **{"docs/metrics.md": replace_once(
         t["docs/metrics.md"], "| `lookout_spool_commits_total` | counter |",
         "| `lookout_spool_commits_total` | gauge |")})),
    ("an undocumented label",
     "docs/metrics.md labels match /metrics",
     lambda t: dict(t, **{"docs/metrics.md": replace_once(
         t["docs/metrics.md"], "| `lookout_exporter_retries_total` | counter | `exporter`, ",
         "| `lookout_exporter_retries_total` | counter | ")})),
    ("a documented label that is not served",
     "docs/metrics.md labels match /metrics",
     lambda t: dict(t, **{"docs/metrics.md": replace_once(
         t["docs/metrics.md"], "| `lookout_exporter_retries_total` | counter | `exporter`, ",
         "| `lookout_exporter_retries_total` | counter | `exporter`, `bogus`, ")})),
    ("a pattern in a docs/metrics.md table",
     "docs/metrics.md tables spell names out, each once",
     lambda t: dict(t, **{"docs/metrics.md": replace_once(
         t["docs/metrics.md"], "| `lookout_exporter_retries_total` |",
         "| `lookout_exporter_ITEMS_total` |")})),
    ("a key in docs/configuration.md the schema lacks",
     "keys in docs/configuration.md exist in the schema",
     lambda t: dict(t, **{"docs/configuration.md": replace_once(
         t["docs/configuration.md"], "| `ca_file` |", "| `ca_files` |")})),
    ("a schema key missing from docs/configuration.md",
     "every schema key is in docs/configuration.md",
     lambda t: dict(t, **{"docs/configuration.md": drop_line_with(
         t["docs/configuration.md"], "| `randomization_factor` |")})),
    ("a misspelt dotted key reference",
     "dotted key references in README.md and docs/*.md exist",
     lambda t: dict(t, **{"docs/reliability.md": t["docs/reliability.md"]
                          + "\n`retry.max_elapsed_tim`\n"})),
    ("a flag in docs/cli.md that --help lacks",
     "flags in docs/cli.md tables exist in --help",
     lambda t: dict(t, **{"docs/cli.md": replace_once(
         t["docs/cli.md"], "| `--check-config` |", "| `--check-configs` |")})),
    ("a --help flag missing from docs/cli.md",
     "every --help flag is in docs/cli.md",
     lambda t: dict(t, **{"docs/cli.md": drop_line_with(t["docs/cli.md"],
                                                        "| `--check-config` |")})),
    ("a lookout command line with a flag lookout lacks",
     "lookout command lines in README.md and docs/*.md use real flags",
     lambda t: dict(t, **{"README.md": t["README.md"]
                          + "\n```sh\nbuild/lookout --bogus -c x.yaml\n```\n"})),
]


def self_checks(facts, texts, baseline, results):
    """Each planted mistake must make its check report a problem that the docs
    as they are (|baseline|) do not have."""
    for what, check, mutate in SELF_CHECKS:
        try:
            got = doc_checks(facts, mutate(texts))
        except ParseError as e:
            results.report("self-check: %s is caught" % what, [str(e)])
            continue
        if check not in got:
            continue    # its facts could not be gathered; reported already
        new = set(got[check]) - set(baseline[check])
        results.report("self-check: %s is caught" % what,
                       [] if new else ["`%s` reported nothing new" % check])
    if "scrape" in facts:
        results.report("self-check: a metric literal in agent/ that is not served is caught",
                       [] if check_source_literals(facts["scrape"],
                                                   [("agent/x.c:1", "lookout_bogus_total")])
                       else ["check_source_literals took lookout_bogus_total"])
    if "schema" in facts:
        # A key the parse would wrongly claim, and a wrong type rule.
        cases = [(nest(("exporters", "<otlp>"), {"bogus_key": "x", "bogus_keyx": "x"}),
                  ("exporters", "<otlp>", "bogus_key"), "bogus_key", "bogus_keyx"),
                 (nest(("exporters", "<prometheus>"), {"endpoint": "x"}),
                  ("exporters", "<prometheus>", "endpoint"), None, "endpoint")]
        got = run_key_cases(cases)
        results.report("self-check: --check-config disproves a wrong parse",
                       [] if len(got) == 2 else ["expected 2 problems, got: %s" % got])
    results.report("self-check: the schema parse stops at what it does not know",
                   schema_parse_self_checks())


def schema_parse_self_checks():
    """The parser must refuse an unknown row macro, an FT_NODE key nobody said
    how to walk, and a field table of another form."""
    sources = {}
    for path in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.c"))):
        with open(path, encoding="utf-8") as f:
            sources[os.path.relpath(path, REPO)] = f.read()
    exp = "agent/config/config_exporters.c"
    mutations = [
        ("an unknown row macro", exp, 'F_NODE("queue"),', 'F_NEW("queue"),'),
        ("an FT_NODE in neither NESTED, NAMED nor LEAVES", exp,
         'F_NODE("queue"),', 'F_NODE("queue"), F_NODE("bogus"),'),
        ("a field table of another form", exp, "static const struct field tls_fields[] = {",
         "static struct field tls_fields[] = {"),
    ]
    problems = []
    for what, name, old, new in mutations:
        if old not in sources.get(name, ""):
            problems.append("%s: %r not found in %s to mutate" % (what, old, name))
            continue
        try:
            Schema(dict(sources, **{name: sources[name].replace(old, new, 1)}))
            problems.append("%s was parsed without complaint" % what)
        except ParseError:
            pass
    return problems


def gather(results):
    """Facts from the binary and the source, each reported; a fact that cannot
    be gathered is a failure and its comparisons are skipped."""
    facts = {}
    if not os.access(BIN, os.X_OK):
        results.report("%s is built" % BIN,
                       ["not found or not executable: run `make` first"])
        return facts
    try:
        scrape = Scrape(run_kitchen_sink())
        results.report("agent with every metrics component serves /metrics (%d families)"
                       % len(scrape.types), [] if scrape.item_words() else
                       ["no lookout_receiver_accepted_*_total families"])
        facts["scrape"] = scrape
        results.report("every lookout_/process_ literal in agent/ is a served family",
                       check_source_literals(scrape, source_metric_literals()))
    except (RuntimeError, ParseError, OSError) as e:
        results.report("agent with every metrics component serves /metrics", [str(e)])
    try:
        schema = load_schema()
        results.report("config schema parsed from agent/config/*.c (%d key paths)"
                       % len(schema.paths), [])
        known, crossed = key_cases(schema)
        results.report("--check-config knows every schema key and no misspelt one",
                       run_key_cases(known))
        results.report("--check-config refuses keys of other receiver/exporter types",
                       run_key_cases(crossed))
        facts["schema"] = schema
    except (ParseError, OSError, subprocess.SubprocessError) as e:
        results.report("config schema parsed from agent/config/*.c", [str(e)])
    try:
        cli = Cli()
        results.report("lookout --help parsed (%s)" % ", ".join(
            "%s: %d flags" % (c or "lookout", len(f)) for c, f in sorted(cli.flags.items())), [])
        facts["cli"] = cli
    except (ParseError, OSError, subprocess.SubprocessError) as e:
        results.report("lookout --help parsed", [str(e)])
    return facts


def main():
    results = Results()
    facts = gather(results)
    texts = load_docs(REPO)
    try:
        baseline = doc_checks(facts, texts)
        for name, problems in baseline.items():
            results.report(name, problems)
        self_checks(facts, texts, baseline, results)
    except ParseError as e:
        results.report("docs readable", [str(e)])
    print("docs: %d passed, %d failed" % (results.passed, results.failed))
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
