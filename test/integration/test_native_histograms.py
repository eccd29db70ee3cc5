"""End-to-end test of the protobuf exposition: a REAL Prometheus (Debian's 2.42)
with --enable-feature=native-histograms asks lookout's admin /metrics for
delimited io.prometheus.client.MetricFamily messages; OTLP exponential
histograms arrive there as native histograms, whose count, sum and bucket
counts are read back with PromQL (histogram_count, histogram_sum,
histogram_fraction); classic histograms, counters and lookout's own metrics
are scraped through the same format.

OpenTelemetry's scale is Prometheus' schema (bucket boundaries base^i with
base = 2^2^-scale); scales above 8 are downscaled to 8.

Run: sh test/integration/run.sh test_native_histograms
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402,F401  (puts the generated *_pb2 modules on sys.path)
from helpers import YamlAgent, wait_until  # noqa: E402
import test_prometheus as tp  # noqa: E402

SEEN_TIMEOUT = 20.0

AGENT_BODY = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:@HTTP_PORT@
exporters:
  prometheus: {}
pipelines:
  metrics:
    receivers: [otlp]
    exporters: [prometheus]
"""

PROM_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: lookout
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class NativePrometheus(tp.Prometheus):
    """Prometheus with native histograms on, scraping one admin port."""

    def __init__(self, port):
        super().__init__(port, port)
        with open(self.config_path, "w") as f:
            f.write(PROM_CONFIG.format(port=port))

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = tp.subprocess.Popen(
                [tp.PROMETHEUS, "--config.file=" + self.config_path,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port,
                 "--enable-feature=native-histograms",
                 "--log.level=warn"],
                stdin=tp.subprocess.DEVNULL, stdout=log, stderr=log)
        return self


class NativeHistogramTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(tp.PROMETHEUS, os.X_OK):
            raise AssertionError("%s not found (make deps)" % tp.PROMETHEUS)
        cls.agent = cls.prom = None
        try:
            cls.agent = YamlAgent(AGENT_BODY).start()
            cls.agent.wait_ready()
            cls.prom = NativePrometheus(cls.agent.admin_port).start()
        except BaseException:
            cls._teardown()
            raise
        cls.t0 = time.time_ns() - 3600 * tp.SEC

    @classmethod
    def _teardown(cls):
        if cls.prom is not None:
            cls.prom.stop()
        if cls.agent is not None:
            try:
                cls.agent.stop()
            finally:
                cls.agent.kill()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    post = tp.PrometheusTest.post

    def value(self, promql):
        try:
            return self.prom.scalar(promql)
        except (AssertionError, ValueError, OSError):
            return None

    def wait_value(self, promql, want, what):
        last = [None]

        def match():
            last[0] = self.value(promql)
            return last[0] is not None and abs(last[0] - want) < 1e-9
        if not wait_until(match, SEEN_TIMEOUT, interval=0.2):
            self.fail("%s: %s is %r, want %r\n%s" % (what, promql, last[0], want,
                                                     self.prom.log_tail()))

    def test_exponential_histograms_are_native(self):
        now = time.time_ns()
        req, sm = tp.metrics_request("native-app")
        # scale 0: OTel bucket i is (2^i, 2^(i+1)]; buckets 5..7 = (32,64], (64,128], (128,256]
        tp.add_exp_histogram(sm, "payload.size", "By", "Payload sizes.", tp.CUMULATIVE,
                             self.t0, now, scale=0, zero_count=1,
                             positive=(5, [1, 2, 1]), negative=None, hsum=300.0)
        # scale 10 (finer than schema 8): downscaled, counts kept
        tp.add_exp_histogram(sm, "fine", "s", "Fine.", tp.CUMULATIVE, self.t0, now,
                             scale=10, zero_count=0, positive=(1000, [1, 1, 1, 1]),
                             negative=None, hsum=4.0)
        # a classic histogram and a counter go through the same exposition
        tp.add_histogram(sm, "req.duration", "s", "Latency.", tp.CUMULATIVE, [0.1, 1.0],
                         [1, 2, 1], 2.5, self.t0, now)
        tp.add_sum(sm, "orders", "{order}", "Orders.", True, tp.CUMULATIVE,
                   [(7, self.t0, now)])
        self.post(req)

        sel = '{job="native-app"}'
        self.wait_value("histogram_count(payload_size_bytes%s)" % sel, 5.0, "native count")
        self.wait_value("histogram_sum(payload_size_bytes%s)" % sel, 300.0, "native sum")
        # the zero bucket and the (32,64] bucket lie at or below 64
        self.wait_value("histogram_fraction(0, 64, payload_size_bytes%s)" % sel, 2 / 5,
                        "fraction <= 64")
        self.wait_value("histogram_fraction(0, 256, payload_size_bytes%s)" % sel, 1.0,
                        "fraction <= 256")
        self.wait_value("histogram_count(fine_seconds%s)" % sel, 4.0, "downscaled count")
        # (from protobuf Prometheus writes le as OpenMetrics floats: "1.0")
        self.wait_value('req_duration_seconds_bucket{job="native-app",le=~"1|1\\\\.0"}', 3.0,
                        "classic bucket")
        self.wait_value("req_duration_seconds_count%s" % sel, 4.0, "classic count")
        self.wait_value("orders_total%s" % sel, 7.0, "counter")
        # lookout's own metrics came through the protobuf exposition too
        self.wait_value('lookout_exporter_sent_metric_points_total{exporter="prometheus"}', 4.0,
                        "self-metrics")
        # and Prometheus did negotiate protobuf: a classic histogram scraped as text
        # would not have a native form, the exponential one has nothing else
        self.assertIsNone(self.value('payload_size_bytes_bucket{job="native-app",le="+Inf"}'))


if __name__ == "__main__":
    unittest.main()
