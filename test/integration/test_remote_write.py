"""End-to-end tests of the prometheusremotewrite exporter: OTLP metrics ->
build/lookout -> remote write 1.0 -> a fault-injecting HTTP proxy -> a REAL
Prometheus (Debian's 2.42, --web.enable-remote-write-receiver); the values and
labels are read back from Prometheus' HTTP API.

Expected behaviour: the same names, labels and delta accumulation as the
prometheus exporter (shared translation); every request carries
Content-Encoding: snappy, Content-Type: application/x-protobuf,
X-Prometheus-Remote-Write-Version: 0.1.0 and the configured tenant and auth;
a 500 or 429 phase (Retry-After honoured) loses nothing and adds no delta twice
(the retried body is the one first encoded); a 400 drops that request, counted
in lookout_dropped_items_total{reason="http_400"}.

Run: sh test/integration/run.sh test_remote_write
"""

import base64
import http.server
import os
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402,F401  (puts the generated *_pb2 modules on sys.path)
from helpers import YamlAgent, free_ports, kv, wait_until  # noqa: E402
import test_prometheus as tp  # noqa: E402  (request builders, the Prometheus runner)

EXPORTER = "prometheusremotewrite"
SEEN_TIMEOUT = 20.0

AGENT_BODY = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:@HTTP_PORT@
exporters:
  prometheusremotewrite:
    endpoint: http://127.0.0.1:{proxy_port}/api/v1/write
    tenant_id: team-a
    auth: {{username: lookout, password: "s3cret"}}
    headers: {{X-Test: yes}}
    timeout: 5s
    retry: {{initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 2m}}
    batch: {{timeout: 50ms}}
pipelines:
  metrics:
    receivers: [otlp]
    exporters: [prometheusremotewrite]
"""


class FaultProxy:
    """Forwards POSTs to Prometheus' /api/v1/write unless told to answer
    |status| for the next |count| requests itself. Records every request's
    headers and each answer's status."""

    def __init__(self, upstream_port):
        self.upstream = "http://127.0.0.1:%d/api/v1/write" % upstream_port
        self.lock = threading.Lock()
        self.faults = []      # [(status, headers)] answered before forwarding resumes
        self.requests = []    # [(headers dict, status answered)]
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with proxy.lock:
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault is not None:
                    status, extra = fault
                    data = b"injected fault\n"
                else:
                    req = urllib.request.Request(proxy.upstream, data=body, method="POST")
                    for k in ("content-type", "content-encoding",
                              "x-prometheus-remote-write-version"):
                        if k in headers:
                            req.add_header(k, headers[k])
                    try:
                        with urllib.request.urlopen(req, timeout=5) as r:
                            status, data = r.status, r.read()
                    except urllib.error.HTTPError as e:
                        status, data = e.code, e.read()
                    extra = {}
                with proxy.lock:
                    proxy.requests.append((headers, status))
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def inject(self, status, count, headers=None):
        with self.lock:
            self.faults.extend([(status, headers or {})] * count)

    def pending_faults(self):
        with self.lock:
            return len(self.faults)

    def statuses(self):
        with self.lock:
            return [s for _, s in self.requests]


class ReceiverPrometheus(tp.Prometheus):
    """A Prometheus that scrapes nothing and takes remote write."""

    def __init__(self):
        self.port = free_ports(1)[0]
        self.dir = tp.tempfile.mkdtemp(prefix="lk-prw-", dir="/tmp")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            f.write("global:\n  evaluation_interval: 1s\nscrape_configs: []\n")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = tp.subprocess.Popen(
                [tp.PROMETHEUS, "--config.file=" + self.config_path,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--web.enable-remote-write-receiver",
                 "--log.level=warn"],
                stdin=tp.subprocess.DEVNULL, stdout=log, stderr=log)
        ok = wait_until(lambda: self.get("/-/ready")[0] == 200, 20.0, interval=0.2)
        if not ok:
            raise AssertionError("prometheus not ready\n" + self.log_tail())
        return self


class RemoteWriteTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(tp.PROMETHEUS, os.X_OK):
            raise AssertionError("%s not found (make deps)" % tp.PROMETHEUS)
        cls.prom = cls.proxy = cls.agent = None
        try:
            cls.prom = ReceiverPrometheus().start()
            cls.proxy = FaultProxy(cls.prom.port).start()
            cls.agent = YamlAgent(AGENT_BODY.format(proxy_port=cls.proxy.port)).start()
            cls.agent.wait_ready()
        except BaseException:
            cls._teardown()
            raise
        cls.t0 = time.time_ns() - 3600 * tp.SEC

    @classmethod
    def _teardown(cls):
        if cls.agent is not None:
            try:
                cls.agent.stop()
            finally:
                cls.agent.kill()
        if cls.proxy is not None:
            cls.proxy.stop()
        if cls.prom is not None:
            cls.prom.stop()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def setUp(self):
        self.assertTrue(self.agent.alive, "agent died\n" + self.agent.log_tail())

    post = tp.PrometheusTest.post

    def value(self, promql):
        try:
            return self.prom.scalar(promql)
        except AssertionError:
            return None

    def wait_value(self, promql, want, what):
        last = [None]

        def match():
            last[0] = self.value(promql)
            return last[0] == want
        if not wait_until(match, SEEN_TIMEOUT, interval=0.2):
            self.fail("%s: %s is %r, want %r; proxy saw %r\n%s"
                      % (what, promql, last[0], want, self.proxy.statuses()[-20:],
                         self.agent.log_tail(15)))

    def dropped(self, reason):
        return self.agent.metric("lookout_dropped_items_total", signal="metrics",
                                 exporter=EXPORTER, reason=reason) or 0

    def test_a_values_labels_and_headers(self):
        """Gauge, cumulative and delta counters, up-down counter, delta
        histogram, summary: stored with the names and labels of the
        specification; the headers remote write requires."""
        now = time.time_ns()
        req, sm = tp.metrics_request("rw-app", namespace="shop", instance="i-9",
                                     extra_resource=[kv("host.name", string_value="mac")])
        tp.add_gauge(sm, "queue.depth", "1", "Depth.", 0.5, now, [kv("q", string_value="a")])
        tp.add_sum(sm, "orders", "{order}", "Orders.", True, tp.CUMULATIVE,
                   [(5, self.t0, now)])
        tp.add_sum(sm, "hits", "", "Hits.", True, tp.DELTA, [(2, now - tp.SEC, now)])
        tp.add_sum(sm, "inflight", "", "In flight.", False, tp.CUMULATIVE,
                   [(-3, self.t0, now)])
        tp.add_histogram(sm, "req.duration", "s", "Latency.", tp.DELTA, [0.1, 1.0], [1, 2, 1],
                         2.5, now - tp.SEC, now)
        tp.add_summary(sm, "rpc.latency", "ms", "RPC.", [(0.5, 4.0), (0.99, 9.0)], 30.0, 5,
                       self.t0, now)
        self.post(req)
        sel = '{job="shop/rw-app",instance="i-9",otel_scope_name="lookout.test",' \
              'otel_scope_version="1.2.3"'
        self.wait_value('queue_depth_ratio%s,q="a"}' % sel, 0.5, "gauge")
        self.wait_value("orders_total%s}" % sel, 5.0, "cumulative counter")
        self.wait_value("hits_total%s}" % sel, 2.0, "delta counter")
        self.wait_value("inflight%s}" % sel, -3.0, "up-down counter")
        self.wait_value('req_duration_seconds_bucket%s,le="0.1"}' % sel, 1.0, "bucket 0.1")
        self.wait_value('req_duration_seconds_bucket%s,le="1"}' % sel, 3.0, "bucket 1")
        self.wait_value('req_duration_seconds_bucket%s,le="+Inf"}' % sel, 4.0, "bucket +Inf")
        self.wait_value("req_duration_seconds_sum%s}" % sel, 2.5, "histogram sum")
        self.wait_value("req_duration_seconds_count%s}" % sel, 4.0, "histogram count")
        self.wait_value('rpc_latency_milliseconds%s,quantile="0.99"}' % sel, 9.0, "quantile")
        self.wait_value('target_info{job="shop/rw-app",instance="i-9",host_name="mac"}', 1.0,
                        "target_info")

        headers = [h for h, _ in self.proxy.requests]
        self.assertTrue(headers)
        auth = "Basic " + base64.b64encode(b"lookout:s3cret").decode()
        for h in headers:
            self.assertEqual(h.get("content-encoding"), "snappy")
            self.assertEqual(h.get("content-type"), "application/x-protobuf")
            self.assertEqual(h.get("x-prometheus-remote-write-version"), "0.1.0")
            self.assertEqual(h.get("x-scope-orgid"), "team-a")
            self.assertEqual(h.get("authorization"), auth)
            self.assertEqual(h.get("x-test"), "yes")

    def test_b_failures_lose_nothing_and_add_nothing_twice(self):
        """500s then 429s (Retry-After: 1) while delta points keep coming: once
        the receiver is back, the cumulative value is exactly the sum sent."""
        before_retries = self.agent.metric("lookout_exporter_retries_total",
                                           signal="metrics", exporter=EXPORTER) or 0
        self.proxy.inject(500, 4)
        self.proxy.inject(429, 2, {"Retry-After": "1"})
        total = 0
        base = time.time_ns() - 60 * tp.SEC
        for i in range(10):
            req, sm = tp.metrics_request("rw-faults")
            tp.add_sum(sm, "jobs.done", "", "Jobs.", True, tp.DELTA,
                       [(i + 1, base + i * tp.SEC, base + (i + 1) * tp.SEC)])
            total += i + 1
            self.post(req)
            time.sleep(0.1)
        self.wait_value('jobs_done_total{job="rw-faults"}', float(total), "after the faults")
        self.assertEqual(self.proxy.pending_faults(), 0)
        statuses = self.proxy.statuses()
        self.assertGreaterEqual(statuses.count(500), 4)
        self.assertGreaterEqual(statuses.count(429), 2)
        self.assertEqual(self.dropped("http_500") + self.dropped("http_429"), 0)
        retries = self.agent.metric("lookout_exporter_retries_total", signal="metrics",
                                    exporter=EXPORTER) or 0
        self.assertGreaterEqual(retries - before_retries, 6)
        # The value never went past the total on the way (no delta added twice).
        rng = self.prom.api("query", query='max_over_time(jobs_done_total{job="rw-faults"}[5m])')
        self.assertEqual(float(rng["result"][0]["value"][1]), float(total))
        self.assertEqual(self.agent.metric("lookout_exporter_send_failed_points_total",
                                           exporter=EXPORTER) or 0, 0)

    def test_c_bad_request_is_dropped_and_counted(self):
        before = self.dropped("http_400")
        self.proxy.inject(400, 1)
        req, sm = tp.metrics_request("rw-refused")
        tp.add_gauge(sm, "temp", "Cel", "T.", 21.0, time.time_ns())
        self.post(req)
        self.assertTrue(wait_until(lambda: self.dropped("http_400") == before + 1, 10.0),
                        "dropped{reason=http_400}: %r" % self.dropped("http_400"))
        # The next request goes through.
        req, sm = tp.metrics_request("rw-refused")
        tp.add_gauge(sm, "temp", "Cel", "T.", 22.0, time.time_ns())
        self.post(req)
        self.wait_value('temp_celsius{job="rw-refused"}', 22.0, "after the 400")


if __name__ == "__main__":
    unittest.main()
