"""Interop: the official OpenTelemetry JavaScript SDK -> build/lookout's prometheus
exporter -> admin /metrics.

emit_prom.mjs records every instrument kind of the SDK (Counter, UpDownCounter,
Histogram with unit "s" and with unit "ms", ObservableGauge, ObservableCounter,
ObservableUpDownCounter) with known values and attributes, on a Resource with
service.name, service.namespace, service.instance.id and one more attribute and a
meter with a name and a version, and exports them in two rounds with the SDK's OTLP
metric exporter to a lookout whose metrics pipeline ends in a `prometheus`
exporter. After each round the test scrapes /metrics and compares, for the run's
instance label, every family (name, # TYPE, # HELP) and every sample (name, the
whole label set, value) with what the OpenTelemetry "Prometheus and OpenMetrics
Compatibility" specification prescribes (written out below, not derived from the
SDK's output): names sanitised, unit words (s -> _seconds, ms -> _milliseconds,
By -> _bytes, {annotations} dropped, gauge of unit 1 -> _ratio), _total on
monotonic sums; labels = point attributes sanitised + job (namespace/name) +
instance + otel_scope_name/_version; the other resource attributes only on
target_info{job,instance,...} 1. With DELTA temporality the second round's points
must add up to the same cumulative values as with CUMULATIVE.

Combinations: each protocol (grpc, http/protobuf, http/json) x each temporality
preference (cumulative, delta); every run has its own service.instance.id, so
the runs' series are told apart by their instance label. One agent for the class.

Run all: sh test/interop/run.sh (from the repo root, after `make`); it runs this
class together with test_node_sdk.py's.
Run one: sh test/interop/run.sh NodeSdkPrometheusTest.test_prometheus_grpc_delta
Env: LOOKOUT_BIN, LOOKOUT_PYGEN (as in test/integration), INTEROP_NODE_DIR,
INTEROP_KEEP=1 keeps the temp dir (agent config and stderr).
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "test", "integration"))

import helpers  # noqa: E402

NODE_DIR = os.environ.get("INTEROP_NODE_DIR", os.path.join(REPO, "build", "interop-node"))
EMIT = os.path.join(HERE, "emit_prom.mjs")

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
TEMPORALITIES = ("cumulative", "delta")

ROUND_TIMEOUT = 20.0    # one round's export (emit_prom.mjs gives up after 30 s)
EXIT_TIMEOUT = 10.0     # emit_prom.mjs exiting after round 2
SCRAPE_TIMEOUT = 5.0    # a round's points showing on /metrics (batch timeout 200 ms)
SCRAPE_ACCEPT = "text/plain;version=0.0.4"

CONFIG = """\
log_level: debug
admin: {{endpoint: 127.0.0.1:{admin}}}
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:{grpc}}}, \
http: {{endpoint: 127.0.0.1:{http}}}}}}}}}
exporters: {{prometheus: {{}}}}
pipelines: {{metrics: {{receivers: [otlp], exporters: [prometheus]}}}}
"""


class PromAgent(helpers.Agent):
    """helpers.Agent (start, readiness, SIGTERM) on the config of the brief: the
    OTLP gRPC and HTTP receivers, the metrics pipeline to a prometheus exporter."""

    def __init__(self, workdir):   # noqa: super().__init__ writes its own config
        if not os.access(helpers.BIN, os.X_OK):
            raise AssertionError("%s not found or not executable: run `make` first" % helpers.BIN)
        self.grpc_port, self.http_port, self.admin_port = helpers.free_ports(3)
        self.sink_port = None
        self.settings = {"shutdown_timeout": "5s"}   # lookout's default; wait_exit only
        self.dir = workdir
        self.config_path = os.path.join(workdir, "lookout.yaml")
        with open(self.config_path, "w") as f:
            f.write(CONFIG.format(admin=self.admin_port, grpc=self.grpc_port,
                                  http=self.http_port))
        self.stderr_path = os.path.join(workdir, "stderr.log")
        self.stdout_path = os.path.join(workdir, "stdout.log")
        self.proc = None


# --- what the specification makes of emit_prom.mjs's instruments

SCOPE = {"otel_scope_name": "interop.shop", "otel_scope_version": "1.4.2"}
JOB = "shop/checkout"   # service.namespace "/" service.name

# Prometheus family -> (TYPE, HELP, the instrument it comes from).
FAMILIES = {
    "orders_total": ("counter", "Orders placed", "Counter orders {order}"),
    "checkout_payload_size_bytes_total":
        ("counter", "Payload bytes received", "Counter checkout.payload.size By"),
    "cart_items": ("gauge", "Items in carts", "UpDownCounter cart.items {item}"),
    "http_server_request_duration_seconds":
        ("histogram", "Duration of HTTP server requests",
         "Histogram http.server.request.duration s"),
    "checkout_duration_milliseconds":
        ("histogram", "Checkout duration", "Histogram checkout.duration ms"),
    "cpu_utilization_ratio": ("gauge", "CPU utilization", "ObservableGauge cpu.utilization 1"),
    "checkout_worker_time_seconds_total":
        ("counter", "Worker busy time", "ObservableCounter checkout.worker.time s"),
    "checkout_connections":
        ("gauge", "Open connections", "ObservableUpDownCounter checkout.connections {connection}"),
    "target_info": ("gauge", None, "the Resource"),   # HELP text not prescribed
}

INF = "+Inf"

# The temporality of each sum / histogram the SDK sends with each preference (the
# OTLP exporter specification's "Delta" preference keeps UpDownCounters cumulative):
# the delta runs must really send delta points.
SDK_TEMPORALITY = {
    "cumulative": {name: "cumulative" for name in (
        "orders", "checkout.payload.size", "cart.items", "http.server.request.duration",
        "checkout.duration", "checkout.worker.time", "checkout.connections")},
    "delta": {"orders": "delta", "checkout.payload.size": "delta",
              "cart.items": "cumulative", "http.server.request.duration": "delta",
              "checkout.duration": "delta", "checkout.worker.time": "delta",
              "checkout.connections": "cumulative"},
}


def histogram(family, labels, bounds, values):
    """The _bucket{le} / _sum / _count samples of explicit-bucket |bounds| holding
    |values|: [(name, labels, value)]; |bounds| [(bound, its le text)]."""
    out = []
    for le, text in list(bounds) + [(float("inf"), INF)]:
        out.append((family + "_bucket", dict(labels, le=text),
                    float(sum(1 for v in values if v <= le))))
    out.append((family + "_sum", labels, float(sum(values))))
    out.append((family + "_count", labels, float(len(values))))
    return out


def expected_samples(instance, rnd):
    """{(sample name, labels_key): value} for the run of |instance| after round
    |rnd| (1 or 2): every series of the run, target_info included. The values are
    cumulative whatever the temporality."""
    base = dict(SCOPE, job=JOB, instance=instance)

    def lab(**attrs):
        return dict(base, **attrs)
    GET, POST = "GET", "POST"
    r2 = rnd == 2
    samples = [
        # Counter: 3 then 4 on GET; 2 on POST in round 1 only.
        ("orders_total", lab(http_request_method=GET), 7.0 if r2 else 3.0),
        ("orders_total", lab(http_request_method=POST), 2.0),
        # Counter (double): 1.5 then 0.25.
        ("checkout_payload_size_bytes_total", lab(http_request_method=POST),
         1.75 if r2 else 1.5),
        # UpDownCounter: +10 then -4; -2 in round 1 only.
        ("cart_items", lab(cart_kind="standard"), 6.0 if r2 else 10.0),
        ("cart_items", lab(cart_kind="gift"), -2.0),
        # ObservableGauge: the last observation (attribute int 0/1 -> "0"/"1").
        ("cpu_utilization_ratio", lab(cpu_logical_number="0"), 0.375 if r2 else 0.25),
        ("cpu_utilization_ratio", lab(cpu_logical_number="1"), 0.625 if r2 else 0.5),
        # ObservableCounter: the running total observed.
        ("checkout_worker_time_seconds_total", lab(worker_id="w1"), 4.25 if r2 else 1.5),
        # ObservableUpDownCounter: the value observed.
        ("checkout_connections", lab(pool_name="db"), 5.0 if r2 else 8.0),
        # The other resource attributes, once per job/instance.
        ("target_info", {"job": JOB, "instance": instance,
                         "deployment_environment_name": "interop"}, 1.0),
    ]
    samples += histogram(
        "http_server_request_duration_seconds", lab(http_request_method=GET),
        [(0.1, "0.1"), (0.5, "0.5"), (1.0, "1")],
        [0.0625, 0.25] + ([0.75, 2.0] if r2 else []))
    samples += histogram(
        "checkout_duration_milliseconds", lab(http_request_method=POST),
        [(10.0, "10"), (50.0, "50"), (100.0, "100")],
        [5.0, 20.0] + ([70.0, 120.0] if r2 else []))
    out = {}
    for name, labels, value in samples:
        key = (name, labels_key(labels))
        assert key not in out, "expected series listed twice: %r" % (key,)
        out[key] = value
    return out


def labels_key(labels):
    return tuple(sorted(labels.items()))


def family_of(name):
    """The expected family a sample name belongs to (None: not one of ours)."""
    if name in FAMILIES:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and FAMILIES.get(base, ("",))[0] == "histogram":
            return base
    return None


# --- the text format, strictly

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)(?: -?\d+)?$" % _NAME)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_META_RE = re.compile(r"^# (HELP|TYPE) (%s)(?: (.*))?$" % _NAME)


class Scrape:
    """One /metrics body: help[name], types[name], the number of # HELP / # TYPE
    lines per name, and samples [(family of the # TYPE line above it, name,
    {label: value}, float, line)]. Lines that do not parse, and label names
    repeated in one sample, are listed in |problems|."""

    def __init__(self, text):
        self.text = text
        self.help, self.types = {}, {}
        self.meta_count = {}
        self.samples = []
        self.problems = []
        family = None
        for lineno, line in enumerate(text.split("\n"), 1):
            if line == "":
                continue
            if line.startswith("#"):
                m = _META_RE.match(line)
                if not m:
                    continue   # a plain comment
                kind, name, rest = m.groups()
                self.meta_count[(kind, name)] = self.meta_count.get((kind, name), 0) + 1
                if kind == "TYPE":
                    self.types[name] = rest
                    family = name
                else:
                    self.help[name] = (rest or "").replace("\\n", "\n").replace("\\\\", "\\")
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                self.problems.append("line %d does not parse: %r" % (lineno, line))
                continue
            name, labels_text, value = m.groups()
            labels, pos = {}, 0
            labels_text = labels_text or ""
            while pos < len(labels_text):
                lm = _LABEL_RE.match(labels_text, pos)
                if not lm:
                    self.problems.append("line %d: bad labels: %r" % (lineno, line))
                    break
                if lm.group(1) in labels:
                    self.problems.append("line %d: label %s repeated" % (lineno, lm.group(1)))
                labels[lm.group(1)] = re.sub(
                    r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), lm.group(2))
                pos = lm.end()
                if lm.group(3) == "" and pos != len(labels_text):
                    self.problems.append("line %d: bad labels: %r" % (lineno, line))
                    break
            try:
                v = float(value)
            except ValueError:
                self.problems.append("line %d: bad value: %r" % (lineno, line))
                continue
            self.samples.append((family, name, labels, v, line))


def fmt_labels(key):
    return "{%s}" % ",".join('%s="%s"' % kv for kv in key)


class NodeSdkPrometheusTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        node = shutil.which("node")
        if node is None:
            raise AssertionError("node not found on PATH")
        cls.node = node
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@opentelemetry")):
            raise AssertionError("%s/node_modules has no @opentelemetry packages: run "
                                 "test/interop/run.sh, which installs them" % NODE_DIR)
        cls.workdir = tempfile.mkdtemp(prefix="lookout-interop-prom-")
        try:
            cls.agent = PromAgent(cls.workdir)
            cls.agent.start()
            cls.agent.wait_ready()
        except BaseException:
            cls._teardown_quietly()
            raise

    @classmethod
    def _teardown_quietly(cls):
        agent = getattr(cls, "agent", None)
        if agent is not None:
            agent.kill()
        if os.environ.get("INTEROP_KEEP") != "1":
            shutil.rmtree(cls.workdir, True)
        else:
            sys.stderr.write("interop: kept %s\n" % cls.workdir)

    @classmethod
    def tearDownClass(cls):
        rc = cls.agent.stop(signal.SIGTERM)
        tail = cls.agent.log_tail()
        bad = cls.agent.non_json_stderr_lines()
        cls._teardown_quietly()
        if rc != 0:
            raise AssertionError("agent exit status after SIGTERM: %r (None: had to be "
                                 "killed)\n%s" % (rc, tail))
        if bad:
            raise AssertionError("agent stderr lines that are not JSON objects: %r" % bad[:5])

    # --- scraping

    def scrape(self):
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % self.agent.admin_port,
                                     headers={"Accept": SCRAPE_ACCEPT})
        with urllib.request.urlopen(req, timeout=2.0) as r:
            ctype = r.headers.get("Content-Type", "")
            body = r.read().decode("utf-8")
        self.assertRegex(ctype, r"^text/plain;\s*version=0\.0\.4(;|$)",
                         "/metrics Content-Type")
        return Scrape(body)

    @staticmethod
    def run_samples(scrape, instance):
        """{(name, labels key): [(family, value)]} of the samples labelled
        instance=|instance|."""
        out = {}
        for family, name, labels, value, _ in scrape.samples:
            if labels.get("instance") == instance:
                out.setdefault((name, labels_key(labels)), []).append((family, value))
        return out

    def problems(self, scrape, instance, rnd):
        """Every difference between |scrape| and the specification's series for
        the run of |instance| after round |rnd|, one line each."""
        out = list(scrape.problems)
        # Families: one # TYPE and one # HELP line each, the type and text as
        # prescribed.
        for fam, (ftype, fhelp, instrument) in FAMILIES.items():
            where = "%s (%s)" % (fam, instrument)
            n_type = scrape.meta_count.get(("TYPE", fam), 0)
            if n_type != 1:
                out.append("%s: %d '# TYPE %s' lines, want 1" % (where, n_type, fam))
            elif scrape.types[fam] != ftype:
                out.append("%s: TYPE %r, want %r" % (where, scrape.types[fam], ftype))
            n_help = scrape.meta_count.get(("HELP", fam), 0)
            if fhelp is not None:
                if n_help != 1:
                    out.append("%s: %d '# HELP %s' lines, want 1" % (where, n_help, fam))
                elif scrape.help[fam] != fhelp:
                    out.append("%s: HELP %r, want %r" % (where, scrape.help[fam], fhelp))
            elif n_help > 1:
                out.append("%s: %d '# HELP %s' lines, want at most 1" % (where, n_help, fam))
        # Samples of this run: exactly the expected label sets and values, each
        # once, each under its family's # TYPE line.
        want = expected_samples(instance, rnd)
        got = self.run_samples(scrape, instance)
        for key in sorted(set(want) | set(got)):
            name, labels = key
            fam = family_of(name)
            instrument = FAMILIES[fam][2] if fam else "?"
            where = "%s%s (%s)" % (name, fmt_labels(labels), instrument)
            if key not in got:
                out.append("missing: %s, want %r" % (where, want[key]))
                continue
            if key not in want:
                out.append("unexpected: %s = %r" % (where, [v for _, v in got[key]]))
                continue
            if len(got[key]) != 1:
                out.append("%s: %d samples, want 1" % (where, len(got[key])))
            under, value = got[key][0]
            if under != fam:
                out.append("%s: under '# TYPE %s', want '# TYPE %s'" % (where, under, fam))
            if value != want[key]:
                out.append("%s: value %r, want %r" % (where, value, want[key]))
        return out

    def check_round(self, instance, rnd):
        """Waits until /metrics shows round |rnd| of |instance| as prescribed (the
        points travel through the exporter's queue and batch first); fails with
        every difference of the last scrape if it does not within SCRAPE_TIMEOUT."""
        last = []

        def matches():
            last[:] = [self.problems(self.scrape(), instance, rnd)]
            return not last[0]
        if not helpers.wait_until(matches, SCRAPE_TIMEOUT):
            self.fail("%s after round %d: %d difference(s) from the specification:\n  %s\n%s"
                      % (instance, rnd, len(last[0]), "\n  ".join(last[0][:80]),
                         self.agent.log_tail(10)))

    # --- lookout's own counters of the prometheus exporter

    def exporter_counts(self):
        m = self.agent.metrics()
        sent = m.value("lookout_exporter_sent_metric_points_total", exporter="prometheus")
        failed = m.value("lookout_exporter_send_failed_metric_points_total",
                         exporter="prometheus")
        dropped = {l.get("reason", "?"): v for _, l, v in
                   m.find("lookout_dropped_items_total", exporter="prometheus")}
        return sent or 0, failed or 0, dropped

    # --- one run: emit_prom.mjs, two rounds

    def start_emitter(self, protocol, temporality, instance):
        if protocol == "grpc":
            endpoint = "http://127.0.0.1:%d" % self.agent.grpc_port
        else:
            endpoint = "http://127.0.0.1:%d/v1/metrics" % self.agent.http_port
        # No OTEL_* variable of the caller's environment may leak into the SDK.
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["INTEROP_NODE_DIR"] = NODE_DIR
        proc = subprocess.Popen([self.node, EMIT, protocol, endpoint, temporality, instance],
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)
        threading.Thread(target=pump, daemon=True).start()
        self.addCleanup(self.reap, proc)
        return proc, lines

    @staticmethod
    def reap(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def wait_round(self, proc, lines, rnd, what):
        deadline = time.monotonic() + ROUND_TIMEOUT
        line = None
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
        except queue.Empty:
            pass
        if line is None:
            proc.kill()
            self.fail("%s: emit_prom.mjs gave no round %d report within %.0fs (exit %r)\n"
                      "--- stderr\n%s\n%s" % (what, rnd, ROUND_TIMEOUT, proc.wait(),
                                              proc.stderr.read()[-4000:],
                                              self.agent.log_tail(10)))
        report = json.loads(line)
        self.assertEqual(report.get("round"), rnd, "%s: emit_prom.mjs report %r" % (what, line))
        if not report.get("ok"):
            self.fail("%s: round %d export failed: %s\n%s" % (what, rnd, report.get("error"),
                                                              self.agent.log_tail(10)))
        self.assertGreater(report["points"], 0, "%s: round %d exported no points" % (what, rnd))
        return report

    def round_trip(self, protocol, temporality):
        instance = "checkout-%s-%s" % (protocol.replace("/", "-"), temporality)
        what = "%s %s" % (protocol, temporality)
        sent_before, failed_before, dropped_before = self.exporter_counts()
        proc, lines = self.start_emitter(protocol, temporality, instance)

        r1 = self.wait_round(proc, lines, 1, what)
        self.assertEqual(r1.get("temporalities"), SDK_TEMPORALITY[temporality],
                         "%s: temporality of the points the SDK sent" % what)
        self.check_round(instance, 1)
        proc.stdin.write("next\n")
        proc.stdin.flush()
        r2 = self.wait_round(proc, lines, 2, what)
        self.assertEqual(r2.get("temporalities"), SDK_TEMPORALITY[temporality],
                         "%s: temporality of the points the SDK sent" % what)
        try:
            rc = proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        self.assertEqual(rc, 0, "%s: emit_prom.mjs exit status\n%s"
                         % (what, proc.stderr.read()[-4000:] if rc is not None else ""))
        self.check_round(instance, 2)

        # The exporter took every point the SDK sent, and dropped none (a delta
        # point taken for overlapping, a type conflict, ...).
        points = r1["points"] + r2["points"]

        def counted():
            now = self.exporter_counts()
            return now if now[0] - sent_before >= points else None
        helpers.wait_until(counted, SCRAPE_TIMEOUT)
        sent, failed, dropped = self.exporter_counts()
        grew = {r: v - dropped_before.get(r, 0) for r, v in dropped.items()
                if v != dropped_before.get(r, 0)}
        self.assertEqual(
            {"sent": sent - sent_before, "send_failed": failed - failed_before,
             "dropped by reason": grew},
            {"sent": points, "send_failed": 0, "dropped by reason": {}},
            "%s: lookout's counters of the prometheus exporter" % what)


def _add_tests():
    """test_prometheus_<protocol>_<temporality>: the 6 combinations."""
    for protocol in PROTOCOLS:
        for temporality in TEMPORALITIES:
            def test(self, protocol=protocol, temporality=temporality):
                self.round_trip(protocol, temporality)
            name = "test_prometheus_%s_%s" % (protocol.replace("/", "_"), temporality)
            test.__name__ = name
            test.__doc__ = ("metrics of every instrument kind over OTLP %s (%s) to the "
                            "prometheus exporter" % (protocol, temporality))
            setattr(NodeSdkPrometheusTest, name, test)


_add_tests()

if __name__ == "__main__":
    unittest.main()
