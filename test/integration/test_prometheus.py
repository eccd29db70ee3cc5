"""End-to-end tests of the prometheus exporter: OTLP metrics (OTLP/HTTP protobuf
and OTLP/gRPC) -> build/lookout -> admin /metrics -> a REAL Prometheus (the
Debian /usr/bin/prometheus, 2.42) scraping it every second with honor_labels:
true; the values and labels are read back from Prometheus' HTTP API.

Expected behaviour (OpenTelemetry "Prometheus and OpenMetrics Compatibility"
specification): names sanitised, unit suffixes (_seconds, _bytes, _ratio for a
gauge of unit 1, {annotations} dropped), _total on monotonic sums; labels are the
point attributes (sanitised), job = service.namespace/service.name (or
service.name), instance = service.instance.id (absent: Prometheus' own target
instance, as honor_labels keeps it), otel_scope_name, otel_scope_version; the
other resource attributes only on one target_info{job,instance,...} 1 per
resource. Monotonic sums are counters, non-monotonic sums gauges; delta sums and
histograms (exponential ones too) accumulate into cumulative series; a delta
point that starts before the series' last point ended is dropped and counted in
lookout_dropped_items_total{reason="out_of_order"}; a cumulative point with a
later start time restarts its series. Summaries: {quantile=...}, _sum, _count.
Exponential histograms: classic buckets (OTel bucket index i of base 2^2^-scale
covers (base^i, base^(i+1)] on the positive side, [-base^(i+1), -base^i) on the
negative side). Series not updated for metric_expiration disappear.

One Prometheus and two agents for the class: "main" (metric_expiration 5m) and
"expiry" (metric_expiration 1s), each a scrape job of their own. Every test uses
series of its own (its own service.name, so its own job label).

Run all: sh test/integration/run.sh test_prometheus (from the repo root, after `make`).
Run one: /usr/bin/python3 test/integration/test_prometheus.py PrometheusTest.test_gauge
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  (puts the generated *_pb2 modules on sys.path)
from helpers import METRICS, Client, YamlAgent, free_ports, kv, wait_until  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: E402
from opentelemetry.proto.metrics.v1 import metrics_pb2  # noqa: E402

PROMETHEUS = os.environ.get("LOOKOUT_PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("LOOKOUT_PROMTOOL", "/usr/bin/promtool")
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA            # 1
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE  # 2
PROTOBUF = "application/x-protobuf"

PROM_READY_TIMEOUT = 20.0   # Prometheus up and its first scrape of both agents
SEEN_TIMEOUT = 20.0         # a value sent reaching Prometheus (scrape every 1 s)
HTTP_TIMEOUT = 5.0
SEC = 1_000_000_000         # ns

AGENT_BODY = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:@GRPC_PORT@
      http:
        endpoint: 127.0.0.1:@HTTP_PORT@
exporters:
  prometheus:{endpoint}
    metric_expiration: {expiration}
    max_series: 100000
    add_metric_suffixes: true
    promote_resource_attributes: []
pipelines:
  metrics:
    receivers: [otlp]
    exporters: [prometheus]
"""

PROM_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lookout
    honor_labels: true
    scrape_interval: 1s
    scrape_timeout: 1s
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{main_port}"]
  - job_name: lookout-expiry
    honor_labels: true
    scrape_interval: 1s
    scrape_timeout: 1s
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{expiry_port}"]
"""

INF = float("inf")


# --- OTLP request building

def metrics_request(service, namespace=None, instance=None, extra_resource=(),
                    scope=("lookout.test", "1.2.3")):
    """An ExportMetricsServiceRequest with one resource (service.name =
    |service|, optional namespace and instance id, |extra_resource| KeyValues)
    and one scope; returns (request, ScopeMetrics) to add metrics to."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", string_value=service))
    if namespace is not None:
        rm.resource.attributes.append(kv("service.namespace", string_value=namespace))
    if instance is not None:
        rm.resource.attributes.append(kv("service.instance.id", string_value=instance))
    rm.resource.attributes.extend(extra_resource)
    sm = rm.scope_metrics.add()
    if scope is not None:
        sm.scope.name, sm.scope.version = scope
    return req, sm


def new_metric(sm, name, unit, description):
    m = sm.metrics.add()
    m.name = name
    m.unit = unit
    m.description = description
    return m


def number_point(data, value, start, end, attrs=()):
    dp = data.data_points.add()
    dp.start_time_unix_nano = start
    dp.time_unix_nano = end
    if isinstance(value, int):
        dp.as_int = value
    else:
        dp.as_double = value
    dp.attributes.extend(attrs)
    return dp


def add_sum(sm, name, unit, description, monotonic, temporality, points, attrs=()):
    """A Sum with one point per (value, start, end) of |points|."""
    m = new_metric(sm, name, unit, description)
    m.sum.is_monotonic = monotonic
    m.sum.aggregation_temporality = temporality
    for value, start, end in points:
        number_point(m.sum, value, start, end, attrs)
    return m


def add_gauge(sm, name, unit, description, value, end, attrs=()):
    m = new_metric(sm, name, unit, description)
    number_point(m.gauge, value, 0, end, attrs)
    return m


def add_histogram(sm, name, unit, description, temporality, bounds, counts, hsum, start, end,
                  attrs=()):
    m = new_metric(sm, name, unit, description)
    m.histogram.aggregation_temporality = temporality
    dp = m.histogram.data_points.add()
    dp.start_time_unix_nano = start
    dp.time_unix_nano = end
    dp.explicit_bounds.extend(bounds)
    dp.bucket_counts.extend(counts)
    dp.count = sum(counts)
    dp.sum = hsum
    dp.attributes.extend(attrs)
    return m


def add_exp_histogram(sm, name, unit, description, temporality, start, end, scale, zero_count,
                      positive, negative, hsum, attrs=()):
    """|positive|, |negative|: (offset, [counts]) or None."""
    m = new_metric(sm, name, unit, description)
    m.exponential_histogram.aggregation_temporality = temporality
    dp = m.exponential_histogram.data_points.add()
    dp.start_time_unix_nano = start
    dp.time_unix_nano = end
    dp.scale = scale
    dp.zero_count = zero_count
    total = zero_count
    for buckets, spec in ((dp.positive, positive), (dp.negative, negative)):
        if spec is not None:
            buckets.offset = spec[0]
            buckets.bucket_counts.extend(spec[1])
            total += sum(spec[1])
    dp.count = total
    dp.sum = hsum
    dp.attributes.extend(attrs)
    return m


def add_summary(sm, name, unit, description, quantiles, ssum, count, start, end, attrs=()):
    m = new_metric(sm, name, unit, description)
    dp = m.summary.data_points.add()
    dp.start_time_unix_nano = start
    dp.time_unix_nano = end
    dp.count = count
    dp.sum = ssum
    for q, v in quantiles:
        qv = dp.quantile_values.add()
        qv.quantile = q
        qv.value = v
    dp.attributes.extend(attrs)
    return m


# --- a real Prometheus

class Prometheus:
    """/usr/bin/prometheus on 127.0.0.1:<free port>, its TSDB and config in a
    temp dir, scraping the given admin ports."""

    def __init__(self, main_port, expiry_port):
        self.port = free_ports(1)[0]
        self.dir = tempfile.mkdtemp(prefix="lk-prom-", dir="/tmp")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            f.write(PROM_CONFIG.format(main_port=main_port, expiry_port=expiry_port))
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + self.config_path,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--enable-feature=exemplar-storage",
                 "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        return "--- prometheus log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def get(self, path, timeout=HTTP_TIMEOUT):
        """(status, body bytes) of GET |path|."""
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api(self, path, **params):
        """The "data" of a successful /api/v1 answer."""
        status, body = self.get("/api/v1/%s?%s" % (path, urllib.parse.urlencode(params)))
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError("prometheus %s %r: %d %s" % (path, params, status, body[:500]))
        return doc["data"]

    def query(self, promql):
        """Instant vector result as a sorted list of ({label: value}, float)."""
        data = self.api("query", query=promql)
        if data["resultType"] != "vector":
            raise AssertionError("%s: result type %s" % (promql, data["resultType"]))
        out = [(r["metric"], float(r["value"][1])) for r in data["result"]]
        return sorted(out, key=lambda s: sorted(s[0].items()))

    def scalar(self, promql):
        """The value of a one-series instant query, or None when empty."""
        res = self.query(promql)
        if len(res) > 1:
            raise AssertionError("%s: %d series, want 1: %r" % (promql, len(res), res))
        return res[0][1] if res else None


def canon(samples):
    """[(labels, value)] as a sorted list of (sorted label tuples, value), so
    that two results compare (and diff) independent of order."""
    return sorted((tuple(sorted(labels.items())), value) for labels, value in samples)


# --- the tests

class PrometheusTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        for tool in (PROMETHEUS, PROMTOOL):
            if not os.access(tool, os.X_OK):
                raise AssertionError("%s not found (Debian: apt-get install prometheus; "
                                     "make deps)" % tool)
        cls.agent = cls.expiry_agent = cls.prom = cls.client = None
        try:
            cls.agent = YamlAgent(AGENT_BODY.format(expiration="5m", endpoint="")).start()
            # The expiry agent serves its series on a listener of its own
            # (exporter endpoint), which is what Prometheus scrapes there.
            cls.expiry_port = free_ports(1)[0]
            cls.expiry_agent = YamlAgent(AGENT_BODY.format(
                expiration="1s",
                endpoint="\n    endpoint: 127.0.0.1:%d" % cls.expiry_port)).start()
            cls.agent.wait_ready()
            cls.expiry_agent.wait_ready()
            cls.prom = Prometheus(cls.agent.admin_port, cls.expiry_port).start()
            cls.client = Client(cls.agent.grpc_endpoint)
            cls._wait_targets_up()
        except BaseException:
            cls._teardown()
            raise
        cls.t0 = time.time_ns() - 3600 * SEC   # start times well in the past

    @classmethod
    def _wait_targets_up(cls):
        def up():
            if cls.prom.proc.poll() is not None:
                raise AssertionError("prometheus exited with %d\n%s"
                                     % (cls.prom.proc.returncode, cls.prom.log_tail()))
            res = cls.prom.query("up")
            return {s[0].get("job"): s[1] for s in res} == {"lookout": 1.0,
                                                            "lookout-expiry": 1.0}
        if not wait_until(up, PROM_READY_TIMEOUT, interval=0.2):
            raise AssertionError("prometheus did not scrape both agents within %.0fs: %r\n%s"
                                 % (PROM_READY_TIMEOUT, cls.prom.query("up"),
                                    cls.prom.log_tail()))

    @classmethod
    def _teardown(cls):
        if cls.client is not None:
            cls.client.close()
        if cls.prom is not None:
            cls.prom.stop()
        for a in (cls.agent, cls.expiry_agent):
            if a is not None:
                try:
                    a.stop()
                finally:
                    a.kill()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def setUp(self):
        self.assertTrue(self.agent.alive, "agent died\n" + self.agent.log_tail())

    # --- sending

    def post(self, req, agent=None):
        """POSTs |req| as OTLP/HTTP protobuf; asserts 200 and nothing rejected."""
        agent = agent or self.agent
        url = "http://127.0.0.1:%d/v1/metrics" % agent.http_port
        r = urllib.request.Request(url, data=req.SerializeToString(), method="POST",
                                   headers={"Content-Type": PROTOBUF})
        try:
            with urllib.request.urlopen(r, timeout=HTTP_TIMEOUT) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        self.assertEqual(status, 200, "POST /v1/metrics: %r\n%s" % (body[:300], agent.log_tail(8)))
        msg = metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
        self.assertEqual(msg.partial_success.rejected_data_points, 0, str(msg))

    def grpc_send(self, req):
        resp = self.client.export_signal(METRICS, req)
        self.assertEqual(resp.partial_success.rejected_data_points, 0, str(resp))

    # --- reading back

    def exposition(self, name_part):
        """Lookout's /metrics lines that mention |name_part| (for messages)."""
        status, body = self.agent.http_get("/metrics")
        lines = [line for line in body.decode("utf-8", "replace").splitlines()
                 if name_part in line]
        return "--- lookout /metrics lines with %r ---\n%s" % (name_part, "\n".join(lines))

    def wait_series(self, promql, expected, what, diag=None):
        """Polls Prometheus until |promql| returns exactly |expected| ([(labels,
        value)]); on timeout fails with the last result against it."""
        want = canon(expected)
        last = [None]

        def match():
            last[0] = canon(self.prom.query(promql))
            return last[0] == want
        if not wait_until(match, SEEN_TIMEOUT, interval=0.2):
            self.assertEqual(last[0], want, "%s: Prometheus query %s\n%s"
                             % (what, promql, self.exposition(diag or promql.split("{")[0])))

    def wait_value(self, promql, value, what, diag=None):
        """Polls until the one-series |promql| is |value|."""
        last = [None]

        def match():
            last[0] = self.prom.scalar(promql)
            return last[0] == value
        if not wait_until(match, SEEN_TIMEOUT, interval=0.2):
            self.assertEqual(last[0], value, "%s: Prometheus query %s\n%s"
                             % (what, promql, self.exposition(diag or promql.split("{")[0])))

    def wait_metadata(self, family, mtype, help_text):
        """Prometheus' metadata of |family| (from lookout's # TYPE / # HELP)."""
        last = [None]

        def match():
            last[0] = self.prom.api("metadata", metric=family).get(family)
            return bool(last[0]) and (last[0][0]["type"], last[0][0]["help"]) == (mtype, help_text)
        if not wait_until(match, SEEN_TIMEOUT, interval=0.2):
            self.assertEqual(last[0] and [(e["type"], e["help"]) for e in last[0]],
                             [(mtype, help_text)], "metadata of %s\n%s"
                             % (family, self.exposition(family)))

    def dropped(self, reason):
        return self.agent.metric("lookout_dropped_items_total", signal="metrics",
                                 exporter="prometheus", reason=reason) or 0

    @staticmethod
    def labels(job, instance, **extra):
        """The full label set of an app series: job, instance, scope, |extra|."""
        out = {"job": job, "instance": instance, "otel_scope_name": "lookout.test",
               "otel_scope_version": "1.2.3"}
        out.update(extra)
        return out

    def hist_expect(self, family, labels, buckets, hsum, count):
        """Expected series of a classic histogram: {le: cumulative count}."""
        out = []
        for le, v in buckets.items():
            out.append((dict(labels, __name__=family + "_bucket", le=le), float(v)))
        if hsum is not None:  # None: no _sum series expected
            out.append((dict(labels, __name__=family + "_sum"), float(hsum)))
        out.append((dict(labels, __name__=family + "_count"), float(count)))
        return out

    def wait_histogram(self, family, job, labels, buckets, hsum, count, what):
        """Waits for the histogram |family| of |job| to be exactly |buckets|
        ({le float: cumulative count}, +Inf included), |hsum| and |count|. le
        values are compared as numbers (their spelling is the exporter's)."""
        query = '{__name__=~"%s_(bucket|sum|count)",job="%s"}' % (family, job)
        want = canon(self.hist_expect(family, labels, {float(k): v for k, v in buckets.items()},
                                      hsum, count))
        last = [None]

        def normalise(samples):
            out = []
            for lab, v in samples:
                lab = dict(lab)
                if "le" in lab:
                    lab["le"] = float(lab["le"])
                out.append((lab, v))
            return canon(out)

        def match():
            last[0] = normalise(self.prom.query(query))
            return last[0] == want
        if not wait_until(match, SEEN_TIMEOUT, interval=0.2):
            self.assertEqual(last[0], want, "%s: Prometheus query %s\n%s"
                             % (what, query, self.exposition(family)))

    # --- tests

    def test_gauge(self):
        """Gauges over HTTP and gRPC: cpu.utilization (unit 1) -> *_ratio, with
        the sanitised point attribute; job = namespace/name, instance = id; only
        job/instance/scope/point labels (host.name is on target_info only)."""
        t = self.t0
        req, sm = metrics_request("gauge-svc", namespace="ns1", instance="gauge-1",
                                  extra_resource=[kv("host.name", string_value="h1")])
        add_gauge(sm, "cpu.utilization", "1", "CPU utilization.", 0.625, t,
                  [kv("cpu.state", string_value="idle")])
        self.post(req)
        req, sm = metrics_request("gauge-svc", namespace="ns1", instance="gauge-1",
                                  extra_resource=[kv("host.name", string_value="h1")])
        add_gauge(sm, "cpu.utilization", "1", "CPU utilization.", 0.25, t + SEC,
                  [kv("cpu.state", string_value="user")])
        self.grpc_send(req)
        base = self.labels("ns1/gauge-svc", "gauge-1", __name__="cpu_utilization_ratio")
        self.wait_series('cpu_utilization_ratio{job="ns1/gauge-svc"}',
                         [(dict(base, cpu_state="idle"), 0.625),
                          (dict(base, cpu_state="user"), 0.25)], "gauge")
        self.wait_metadata("cpu_utilization_ratio", "gauge", "CPU utilization.")

    def test_cumulative_counter(self):
        """A cumulative monotonic sum: orders {order} -> orders_total, a counter,
        the latest cumulative value (10 then 25 -> 25)."""
        t = self.t0
        for value, end in ((10, t + SEC), (25, t + 2 * SEC)):
            req, sm = metrics_request("counter-svc", instance="counter-1")
            add_sum(sm, "orders", "{order}", "Orders placed.", True, CUMULATIVE,
                    [(value, t, end)], [kv("order.kind", string_value="web")])
            self.post(req)
        self.wait_series('{__name__=~"orders.*",job="counter-svc"}',
                         [(self.labels("counter-svc", "counter-1", __name__="orders_total",
                                       order_kind="web"), 25.0)], "cumulative counter", "orders")
        # Prometheus asks for OpenMetrics, where a counter family is named
        # without the _total of its samples: its metadata is under "orders".
        self.wait_metadata("orders", "counter", "Orders placed.")

    def test_delta_counter_accumulates(self):
        """A delta monotonic sum sent 3 times (HTTP, gRPC, HTTP) with contiguous
        start/end times: 3 + 4 + 5 = 12 in Prometheus."""
        t = self.t0
        for i, value in enumerate((3, 4, 5)):
            req, sm = metrics_request("delta-svc", instance="delta-1")
            add_sum(sm, "http.requests", "{request}", "Requests served.", True, DELTA,
                    [(value, t + i * SEC, t + (i + 1) * SEC)],
                    [kv("http.request.method", string_value="GET")])
            if i == 1:
                self.grpc_send(req)
            else:
                self.post(req)
        self.wait_series('http_requests_total{job="delta-svc"}',
                         [(self.labels("delta-svc", "delta-1", __name__="http_requests_total",
                                       http_request_method="GET"), 12.0)],
                         "delta counter 3+4+5")

    def test_delta_replay_dropped(self):
        """Delta points that overlap what the series already took (a replay of
        an earlier point, one starting before the last end) are dropped, never
        added, and counted as out_of_order; the next contiguous one still adds."""
        t = self.t0
        name = "jobs.done"
        query = 'jobs_done_total{job="replay-svc"}'

        def send(points, marker=None):
            req, sm = metrics_request("replay-svc", instance="replay-1")
            add_sum(sm, name, "{job}", "Jobs done.", True, DELTA, points)
            if marker is not None:
                add_gauge(sm, "replay.marker", "", "Marker after the replayed points.",
                          marker, t)
            self.post(req)

        send([(3, t, t + SEC), (4, t + SEC, t + 2 * SEC)])
        self.wait_value(query, 7.0, "deltas 3+4")
        before = self.dropped("out_of_order")
        # the first point again, and one that starts inside the second's interval
        send([(3, t, t + SEC), (100, t + SEC + SEC // 2, t + 3 * SEC)], marker=1)
        self.wait_value('replay_marker{job="replay-svc"}', 1.0, "marker after the replay")
        self.assertEqual(self.prom.scalar(query), 7.0,
                         "replayed delta points were added\n" + self.exposition("jobs_done"))
        self.assertTrue(wait_until(lambda: self.dropped("out_of_order") == before + 2, 5.0),
                        "lookout_dropped_items_total{reason=out_of_order}: %r, want %r"
                        % (self.dropped("out_of_order"), before + 2))
        send([(5, t + 2 * SEC, t + 3 * SEC)])
        self.wait_value(query, 12.0, "a contiguous delta after the drops")

    def test_up_down_counter(self):
        """A cumulative non-monotonic sum is a gauge (no _total), negative values
        included: 10 then -4 -> -4."""
        t = self.t0
        for value, end in ((10, t + SEC), (-4, t + 2 * SEC)):
            req, sm = metrics_request("updown-svc", instance="updown-1")
            add_sum(sm, "queue.size", "{item}", "Items queued.", False, CUMULATIVE,
                    [(value, t, end)])
            self.post(req)
        self.wait_series('{__name__=~"queue_size.*",job="updown-svc"}',
                         [(self.labels("updown-svc", "updown-1", __name__="queue_size"), -4.0)],
                         "up-down counter", "queue_size")
        self.wait_metadata("queue_size", "gauge", "Items queued.")

    def test_cumulative_histogram(self):
        """http.server.request.duration (s), cumulative: *_seconds_bucket with the
        le bounds and cumulative counts, _sum, _count; http.request.method ->
        http_request_method."""
        t = self.t0
        req, sm = metrics_request("hist-svc", namespace="shop", instance="hist-1")
        add_histogram(sm, "http.server.request.duration", "s", "Duration of HTTP requests.",
                      CUMULATIVE, [0.1, 0.5, 1.0], [2, 3, 4, 1], 7.25, t, t + SEC,
                      [kv("http.request.method", string_value="POST")])
        self.post(req)
        labels = self.labels("shop/hist-svc", "hist-1", http_request_method="POST")
        self.wait_histogram("http_server_request_duration_seconds", "shop/hist-svc", labels,
                            {0.1: 2, 0.5: 5, 1.0: 9, INF: 10}, 7.25, 10, "cumulative histogram")
        self.wait_metadata("http_server_request_duration_seconds", "histogram",
                           "Duration of HTTP requests.")

    def test_exemplars_reach_prometheus(self):
        """Exemplars of a histogram's points (trace_id, span_id) reach Prometheus
        through the OpenMetrics scrape, on the bucket their value falls in; a
        counter's newest exemplar too."""
        t = self.t0
        trace = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
        span = bytes.fromhex("00f067aa0ba902b7")
        req, sm = metrics_request("ex-svc", instance="ex-1")
        m = add_histogram(sm, "checkout.duration", "s", "Checkout time.", CUMULATIVE,
                          [0.1, 0.5, 1.0], [1, 1, 0, 0], 0.35, t, t + SEC)
        ex = m.histogram.data_points[0].exemplars.add()
        ex.as_double = 0.3
        ex.time_unix_nano = time.time_ns()  # exemplars are recent, unlike t0
        ex.trace_id = trace
        ex.span_id = span
        c = add_sum(sm, "checkouts", "", "Checkouts.", True, CUMULATIVE, [(2, t, t + SEC)])
        cx = c.sum.data_points[0].exemplars.add()
        cx.as_int = 1
        cx.time_unix_nano = time.time_ns()
        cx.trace_id = trace
        cx.span_id = span
        self.post(req)
        want_ids = {"trace_id": trace.hex(), "span_id": span.hex()}
        found = {}

        def match():
            now = time.time()
            for q in ('checkout_duration_seconds_bucket{job="ex-svc"}',
                      'checkouts_total{job="ex-svc"}'):
                data = self.prom.api("query_exemplars", query=q, start=str(now - 600),
                                     end=str(now + 60))
                for series in data:
                    for e in series.get("exemplars", []):
                        found[(series["seriesLabels"].get("__name__"),
                               series["seriesLabels"].get("le"))] = (e["labels"],
                                                                     float(e["value"]))
            return len(found) >= 2
        if not wait_until(match, SEEN_TIMEOUT, interval=0.3):
            self.fail("exemplars in Prometheus: %r\n%s" % (found, self.exposition("checkout")))
        self.assertEqual(found.get(("checkout_duration_seconds_bucket", "0.5")),
                         (want_ids, 0.3), found)
        self.assertEqual(found.get(("checkouts_total", None)), (want_ids, 1.0), found)

    def test_delta_histogram_accumulates(self):
        """A delta histogram sent twice (contiguous): bucket counts, sum and count
        added: [1,2,0] + [2,0,1] over bounds [1,5]."""
        t = self.t0
        for i, (counts, hsum) in enumerate((([1, 2, 0], 7.0), ([2, 0, 1], 12.5))):
            req, sm = metrics_request("dhist-svc", instance="dhist-1")
            add_histogram(sm, "payload.size", "By", "Payload sizes.", DELTA, [1.0, 5.0],
                          counts, hsum, t + i * SEC, t + (i + 1) * SEC)
            self.post(req)
        self.wait_histogram("payload_size_bytes", "dhist-svc", self.labels("dhist-svc", "dhist-1"),
                            {1.0: 3, 5.0: 5, INF: 6}, 19.5, 6, "delta histogram sent twice")

    def test_summary(self):
        """A summary: {quantile="..."} series plus _sum and _count."""
        t = self.t0
        req, sm = metrics_request("summary-svc", instance="summary-1")
        add_summary(sm, "rpc.duration", "s", "RPC durations.",
                    [(0.5, 0.25), (0.9, 1.5), (0.99, 3.75)], 60.5, 100, t, t + SEC)
        self.post(req)
        base = self.labels("summary-svc", "summary-1")
        fam = "rpc_duration_seconds"
        self.wait_series('{__name__=~"%s.*",job="summary-svc"}' % fam,
                         [(dict(base, __name__=fam, quantile="0.5"), 0.25),
                          (dict(base, __name__=fam, quantile="0.9"), 1.5),
                          (dict(base, __name__=fam, quantile="0.99"), 3.75),
                          (dict(base, __name__=fam + "_sum"), 60.5),
                          (dict(base, __name__=fam + "_count"), 100.0)], "summary", fam)
        self.wait_metadata(fam, "summary", "RPC durations.")

    def test_exponential_histogram(self):
        """A cumulative exponential histogram (scale 0: base 2) as classic
        buckets: negative index 1 [-4,-2) -> le=-2, zero bucket -> le=0,
        positive indices -1,0,1 -> le=1,2,4; +Inf bucket = _count = 12. It has
        negative observations, so the OpenMetrics scrape carries no _sum (the
        format forbids it then); the text format does."""
        t = self.t0
        req, sm = metrics_request("exp-svc", instance="exp-1")
        add_exp_histogram(sm, "db.latency", "s", "Database latency.", CUMULATIVE, t, t + SEC,
                          scale=0, zero_count=2, positive=(-1, [1, 2, 3]), negative=(1, [4]),
                          hsum=5.5)
        self.post(req)
        job = 'job="exp-svc"'
        self.wait_value('db_latency_seconds_count{%s}' % job, 12.0, "exp histogram _count")
        self.assertIsNone(self.prom.scalar('db_latency_seconds_sum{%s}' % job), "_sum")
        self.assertIn('db_latency_seconds_sum{instance="exp-1",job="exp-svc",'
                      'otel_scope_name="lookout.test",otel_scope_version="1.2.3"} 5.5',
                      self.exposition("db_latency_seconds_sum"))
        self.assertEqual(self.prom.scalar('db_latency_seconds_bucket{%s,le="+Inf"}' % job), 12.0,
                         "+Inf bucket = count")
        self.wait_histogram("db_latency_seconds", "exp-svc", self.labels("exp-svc", "exp-1"),
                            {-2.0: 4, 0.0: 6, 1.0: 7, 2.0: 9, 4.0: 12, INF: 12}, None, 12,
                            "exponential histogram as classic buckets")

    def test_exponential_histogram_delta_accumulates(self):
        """A delta exponential histogram sent twice whose populated buckets
        differ (as an SDK's do from one interval to the next): the second adds
        to the first. First (scale 0): (1,2]x1, (2,4]x1; second: zero bucket x1,
        (2,4]x2, (4,8]x2. Cumulative: le=0:1, le=2:2, le=4:5, le=8:7, count 7."""
        t = self.t0
        sends = (dict(zero_count=0, positive=(0, [1, 1]), hsum=4.5),
                 dict(zero_count=1, positive=(1, [2, 2]), hsum=18.0))
        for i, spec in enumerate(sends):
            req, sm = metrics_request("dexp-svc", instance="dexp-1")
            add_exp_histogram(sm, "queue.wait", "s", "Queue wait.", DELTA, t + i * SEC,
                              t + (i + 1) * SEC, scale=0, negative=None, **spec)
            self.post(req)
        # count 2 + 5 = 7, sum 22.5; cumulative buckets over every bound seen
        self.wait_value('queue_wait_seconds_count{job="dexp-svc"}', 7.0,
                        "delta exponential histogram _count after 2 + 5")
        self.assertEqual(self.prom.scalar('queue_wait_seconds_sum{job="dexp-svc"}'), 22.5, "_sum")
        self.assertEqual(self.prom.scalar('queue_wait_seconds_bucket{job="dexp-svc",le="+Inf"}'),
                         7.0, "+Inf bucket = count")
        got = {float(lab["le"]): v for lab, v in
               self.prom.query('queue_wait_seconds_bucket{job="dexp-svc"}')}
        for le, want in ((0.0, 1.0), (2.0, 2.0), (4.0, 5.0), (8.0, 7.0)):
            self.assertEqual(got.get(le), want, "bucket le=%g of %r" % (le, got))

    def test_target_info_and_job_instance(self):
        """target_info{job,instance,<other resource attributes>} 1, one per
        resource; without service.namespace job is service.name; without
        service.instance.id the app series keep Prometheus' target instance
        (honor_labels); the resource attributes are on no other series."""
        t = self.t0
        req, sm = metrics_request("ti-svc", namespace="team", instance="ti-1",
                                  extra_resource=[kv("host.name", string_value="node-7"),
                                                  kv("deployment.environment",
                                                     string_value="staging"),
                                                  kv("process.pid", int_value=4242)])
        add_gauge(sm, "ti.value", "", "A value.", 1.5, t)
        self.post(req)
        req, sm = metrics_request("bare-svc", scope=None)
        add_gauge(sm, "bare.value", "", "A value of a resource with a name only.", 2.5, t)
        self.post(req)
        self.wait_series('target_info{job="team/ti-svc"}',
                         [({"__name__": "target_info", "job": "team/ti-svc", "instance": "ti-1",
                            "host_name": "node-7", "deployment_environment": "staging",
                            "process_pid": "4242"}, 1.0)], "target_info")
        self.wait_series('ti_value{job="team/ti-svc"}',
                         [(self.labels("team/ti-svc", "ti-1", __name__="ti_value"), 1.5)],
                         "series of a resource with target_info")
        target = "127.0.0.1:%d" % self.agent.admin_port
        self.wait_series('bare_value{job="bare-svc"}',
                         [({"__name__": "bare_value", "job": "bare-svc", "instance": target},
                           2.5)], "job = service.name, instance = the scrape target", "bare")
        self.assertEqual(self.prom.query('target_info{job="bare-svc"}'), [],
                         "no target_info for a resource with nothing but service.name")

    def test_app_restart(self):
        """A cumulative counter at 100, then the same series with a later
        start_time (the app restarted) at 5: Prometheus sees 5 and one reset."""
        t = self.t0
        query = 'restarts_demo_total{job="restart-svc"}'
        req, sm = metrics_request("restart-svc", instance="restart-1")
        add_sum(sm, "restarts.demo", "", "Counter across a restart.", True, CUMULATIVE,
                [(100, t, t + 10 * SEC)])
        self.post(req)
        self.wait_value(query, 100.0, "counter before the restart")
        req, sm = metrics_request("restart-svc", instance="restart-1")
        add_sum(sm, "restarts.demo", "", "Counter across a restart.", True, CUMULATIVE,
                [(5, t + 20 * SEC, t + 21 * SEC)])
        self.post(req)
        self.wait_value(query, 5.0, "counter after the restart")
        self.wait_value('resets(%s[5m])' % query, 1.0, "resets() over the restart")
        self.assertEqual(self.prom.scalar('max_over_time(%s[5m])' % query), 100.0)

    # Names lookout's own metrics hold on the admin /metrics, in the forms the
    # app metrics below take: process_cpu_seconds_total (a counter named as the
    # Prometheus Go client's process collector names it, bridged to OTel),
    # process_open_fds, process_resident_memory_bytes (from OTel's name and
    # unit), process_cpu_seconds (a histogram: OpenMetrics' name of the
    # counter), and lookout_* (lookout's namespace, registered or not).
    RESERVED = ("process_cpu_seconds_total", "process_open_fds",
                "process_resident_memory_bytes", "process_cpu_seconds", "lookout_custom")

    def reserved_request(self, service, end, histogram=True):
        req, sm = metrics_request(service, instance=service + "-1")
        add_sum(sm, "process_cpu_seconds_total", "", "App CPU.", True, CUMULATIVE,
                [(1.5, self.t0, end)])
        add_gauge(sm, "process_open_fds", "", "App fds.", 7.0, end)
        add_gauge(sm, "process.resident.memory", "By", "App RSS.", 1e6, end)
        if histogram:
            add_histogram(sm, "process.cpu", "s", "App CPU histogram.", CUMULATIVE, [0.5],
                          [1, 1], 1.0, self.t0, end)
        add_gauge(sm, "lookout.custom", "", "In lookout's namespace.", 3.0, end)
        add_gauge(sm, "reserved.neighbour", "By", "Kept.", 5.0, end)
        return req

    def test_lookout_names_reserved(self):
        """On the admin /metrics, app metrics named like lookout's own are
        dropped, counted (reason reserved_name) and logged once per name: each
        family appears once, in the text format and in OpenMetrics, promtool
        accepts the body and Prometheus keeps scraping it; the rest of the
        request is kept. An exporter serving on an endpoint of its own (no
        self-metrics there) takes the same names."""
        for i in (1, 2):
            self.post(self.reserved_request("reserved-svc", self.t0 + i * SEC))
        self.assertTrue(wait_until(lambda: self.agent.metric(
            "lookout_dropped_items_total", reason="reserved_name") == 10, 10.0),
            "reserved_name drops: %r\n%s" % (
                self.agent.metric("lookout_dropped_items_total", reason="reserved_name"),
                self.agent.log_tail(10)))
        self.assertEqual(self.agent.metric("lookout_dropped_items_total", reason="reserved_name",
                                           signal="metrics", exporter="prometheus"), 10)
        self.wait_value('reserved_neighbour_bytes{job="reserved-svc"}', 5.0,
                        "the metric beside the reserved ones")

        status, body = self.agent.http_get("/metrics")
        self.assertEqual(status, 200)
        text = body.decode()
        for name in ("process_cpu_seconds_total", "process_open_fds",
                     "process_resident_memory_bytes"):
            self.assertEqual(text.count("# TYPE %s " % name), 1, name)
            self.assertEqual(text.count("# HELP %s " % name), 1, name)
        self.assertNotIn("# TYPE process_cpu_seconds ", text)
        self.assertNotIn("lookout_custom", text)
        for line in text.splitlines():
            if 'job="reserved-svc"' in line:
                self.assertTrue(line.startswith("reserved_neighbour_bytes{"), line)
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                               timeout=30)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s%s"
                         % (check.stdout.decode(), check.stderr.decode()))

        url = "http://127.0.0.1:%d/metrics" % self.agent.admin_port
        r = urllib.request.Request(url, headers={
            "Accept": "application/openmetrics-text;version=1.0.0"})
        with urllib.request.urlopen(r, timeout=HTTP_TIMEOUT) as resp:
            om = resp.read().decode()
        self.assertTrue(om.endswith("# EOF\n"), om[-200:])
        for family in ("process_cpu_seconds", "process_open_fds",
                       "process_resident_memory_bytes"):
            self.assertEqual(om.count("# TYPE %s " % family), 1, family)

        logged = []
        for line in self.agent.stderr_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg", "").startswith("metric points dropped: the name is lookout's own"):
                self.assertEqual(rec.get("exporter"), "prometheus", rec)
                logged.append(rec.get("metric"))
        self.assertEqual(sorted(logged), sorted(self.RESERVED), "each name logged once")

        # The "expiry" agent's exporter has an endpoint of its own. Its series
        # expire after 1s, so each look comes right after a fresh request.
        own = "http://127.0.0.1:%d/metrics" % self.expiry_port
        last = [""]

        def taken():
            self.post(self.reserved_request("own-endpoint-svc", time.time_ns(), histogram=False),
                      agent=self.expiry_agent)
            with urllib.request.urlopen(own, timeout=HTTP_TIMEOUT) as resp:
                last[0] = resp.read().decode()
            return all('%s{instance="own-endpoint-svc-1",job="own-endpoint-svc"' % name
                       in last[0] for name in ("process_cpu_seconds_total", "process_open_fds",
                                               "process_resident_memory_bytes",
                                               "lookout_custom"))
        self.assertTrue(wait_until(taken, 10.0, interval=0.2),
                        "own endpoint:\n%s" % last[0])
        self.assertIn(self.expiry_agent.metric("lookout_dropped_items_total",
                                               reason="reserved_name"), (None, 0.0))

        # Leave that listener as found (test_series_expire reads it): 1s expiry.
        def gone():
            with urllib.request.urlopen(own, timeout=HTTP_TIMEOUT) as resp:
                return "own-endpoint-svc" not in resp.read().decode()
        self.assertTrue(wait_until(gone, 10.0, interval=0.2), "own endpoint series not expired")

    def test_series_expire(self):
        """Agent "expiry" (metric_expiration 1s, its exporter on an endpoint of
        its own): a gauge reaches Prometheus, is
        not updated, disappears from that /metrics (counted in
        lookout_prometheus_series_expired_total) and so goes stale in
        Prometheus; the target stays up."""
        req, sm = metrics_request("expiry-svc", instance="expiry-1")
        add_gauge(sm, "short.lived", "", "Expires.", 42.0, self.t0)
        self.post(req, agent=self.expiry_agent)
        self.wait_series('short_lived{job="expiry-svc"}',
                         [(self.labels("expiry-svc", "expiry-1", __name__="short_lived"), 42.0)],
                         "before expiry")
        own = "http://127.0.0.1:%d/metrics" % self.expiry_port

        def own_metrics():
            with urllib.request.urlopen(own, timeout=HTTP_TIMEOUT) as r:
                return r.read().decode()
        # Prometheus scrapes this agent only on the exporter's own endpoint, so
        # the series above came from there (it may have expired by now: 1s).
        # That listener carries nothing of lookout's own metrics, which stay on
        # the admin /metrics.
        self.assertNotIn("lookout_", own_metrics())
        self.assertIn("lookout_prometheus_series", self.expiry_agent.http_get("/metrics")[1].decode())
        self.assertTrue(wait_until(lambda: "short_lived" not in own_metrics(), 10.0),
                        "series still on /metrics after metric_expiration 1s")
        self.assertGreaterEqual(self.expiry_agent.metric(
            "lookout_prometheus_series_expired_total") or 0, 1)
        self.wait_series('short_lived{job="expiry-svc"}', [], "stale after expiry")
        self.assertEqual(self.prom.scalar('up{job="lookout-expiry"}'), 1.0)

    def test_z_scrape_health_and_promtool(self):
        """After everything above (tests run in name order): Prometheus scraped
        lookout without errors, duplicates or out-of-order samples; lookout's own
        metrics arrived under the scrape job; `promtool check metrics` passes on
        lookout's /metrics body (every app metric sent here has a description
        and a base unit)."""
        t = self.t0
        req, sm = metrics_request("lint-svc", instance="lint-1",
                                  extra_resource=[kv("host.name", string_value="lint-host")])
        add_gauge(sm, "lint.temperature", "Cel", "A temperature.", 21.5, t)
        add_sum(sm, "lint.bytes", "By", "Bytes sent.", True, CUMULATIVE, [(2048, t, t + SEC)])
        add_histogram(sm, "lint.duration", "s", "Durations.", CUMULATIVE, [0.5], [1, 1], 1.0,
                      t, t + SEC)
        add_summary(sm, "lint.latency", "s", "Latencies.", [(0.5, 0.1)], 0.2, 2, t, t + SEC)
        add_exp_histogram(sm, "lint.exp", "s", "Exponential.", CUMULATIVE, t, t + SEC, scale=1,
                          zero_count=0, positive=(0, [1, 1]), negative=None, hsum=3.0)
        self.post(req)
        self.wait_value('lint_bytes_total{job="lint-svc"}', 2048.0, "lint counter")

        targets = self.prom.api("targets", state="active")["activeTargets"]
        main = [tg for tg in targets if tg["scrapePool"] == "lookout"]
        self.assertEqual(len(main), 1, targets)
        self.assertEqual((main[0]["health"], main[0]["lastError"]), ("up", ""), main[0])
        # lookout's own metrics keep the scrape job and target instance
        self.assertIsNotNone(self.prom.scalar(
            'lookout_prometheus_series{job="lookout",instance="127.0.0.1:%d"}'
            % self.agent.admin_port), "lookout self-metrics in Prometheus")
        status, body = self.prom.get("/metrics")
        self.assertEqual(status, 200)
        pm = helpers.Metrics(body.decode("utf-8"))
        for name in ("prometheus_target_scrapes_sample_duplicate_timestamp_total",
                     "prometheus_target_scrapes_sample_out_of_order_total",
                     "prometheus_target_scrapes_sample_out_of_bounds_total",
                     "prometheus_target_scrapes_exceeded_sample_limit_total"):
            self.assertEqual(pm.value(name), 0.0, "Prometheus %s" % name)

        status, body = self.agent.http_get("/metrics")
        self.assertEqual(status, 200)
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                               timeout=30)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s%s"
                         % (check.stdout.decode(), check.stderr.decode()))


if __name__ == "__main__":
    unittest.main()
