"""End-to-end tests of the otlphttp exporter's compression: OTLP/gRPC traces ->
build/lookout -> otlphttp exporter -> an in-process OTLP/HTTP sink
(otlp_http_sink.py) that decompresses with independent code (the `zstd -d` CLI,
Python's gzip) and parses with classes built from the reference schemas.

Covered: compression: zstd (Content-Encoding: zstd, a zstd frame, every span
delivered once and intact) for a small body compressed on the loop and a large one
(>= 64 KiB) compressed on the thread pool, at zstd levels 1 and 19; gzip at level 1
(libdeflate where built with it) and 9 (zlib) read by Python's gzip; zstd refused
with file:line:column for the exporters that cannot send it.

Run all: sh test/integration/run.sh test_otlphttp (from the repo root, after `make`).
"""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import (DELIVERY_TIMEOUT, YamlAgent, make_request, run_agent_cli,  # noqa: E402
                     start_agent_for)
from otlp_http_sink import OtlpHttpSink  # noqa: E402

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b\x08"

RECEIVER = ("receivers:\n  otlp:\n    protocols:\n      grpc:\n"
            "        endpoint: 127.0.0.1:@GRPC_PORT@\n")


def exporter(name, sink, settings):
    return ("  %s:\n    endpoint: %s\n" % (name, sink.endpoint)
            + "".join("    %s: %s\n" % kv for kv in settings.items()))


def sent_span_names(requests):
    return sorted(sp.name for req in requests for rs in req.resource_spans
                  for ss in rs.scope_spans for sp in ss.spans)


def sink_span_names(sink):
    return sorted(sp.name for p in sink.posts() if p.request is not None
                  for rs in p.request.resource_spans for ss in rs.scope_spans for sp in ss.spans)


class OtlpHttpCompressionTest(unittest.TestCase):
    maxDiff = 4000

    def start(self, exporters):
        """Sinks and an agent whose traces pipeline fans out to one otlphttp
        exporter per entry of |exporters| ({name: settings}); returns the sinks
        by exporter name."""
        sinks = {}
        body = RECEIVER + "exporters:\n"
        for name, settings in exporters.items():
            sink = OtlpHttpSink().start()
            self.addCleanup(sink.stop)
            sinks[name] = sink
            body += exporter(name, sink, settings)
        body += ("pipelines:\n  traces:\n    receivers: [otlp]\n    exporters: [%s]\n"
                 % ", ".join(exporters))
        self.agent = YamlAgent(body)
        self.client = start_agent_for(self, self.agent)
        return sinks

    def export_small_then_large(self, sinks):
        """One small request (a body compressed on the loop), delivered, then a
        large one (>= 64 KiB: on the thread pool); returns what was sent."""
        small = make_request("small", resources=1, scopes=2, spans=3)
        large = make_request("large", resources=2, scopes=2, spans=120)
        self.assertGreater(large.ByteSize(), 64 * 1024)
        self.client.export(small)
        for name, sink in sinks.items():
            self.assertEqual(sink.wait_for_spans(6, DELIVERY_TIMEOUT), 6, name)
        self.client.export(large)
        for name, sink in sinks.items():
            self.assertEqual(sink.wait_for_spans(6 + 480, DELIVERY_TIMEOUT), 6 + 480, name)
        return [small, large]

    def assert_delivered(self, sink, sent, encoding, magic):
        posts = sink.posts()
        self.assertEqual([p.error for p in posts if p.error], [], "bodies the sink refused")
        self.assertGreaterEqual(len(posts), 2)
        for p in posts:
            self.assertEqual(p.path, "/v1/traces")
            self.assertEqual(p.encoding, encoding)
            self.assertEqual(p.headers.get("content-type"), "application/x-protobuf")
            self.assertTrue(p.raw.startswith(magic), p.raw[:8])
            self.assertLess(len(p.raw), len(p.body))
        self.assertTrue(any(len(p.body) >= 64 * 1024 for p in posts), "a large body")
        self.assertEqual(sink_span_names(sink), sent_span_names(sent))
        # Spans arrive as sent, byte for byte (the batch concatenates requests;
        # the sink's classes are not helpers', so compare encodings).
        got = {sp.span_id: sp for p in posts for rs in p.request.resource_spans
               for ss in rs.scope_spans for sp in ss.spans}
        for req in sent:
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for sp in ss.spans:
                        self.assertEqual(got[sp.span_id].SerializeToString(deterministic=True),
                                         sp.SerializeToString(deterministic=True), sp.name)

    def test_a_zstd(self):
        sinks = self.start({"otlphttp": {"compression": "zstd"},
                            "otlphttp/19": {"compression": "zstd", "compression_level": 19}})
        sent = self.export_small_then_large(sinks)
        for name, sink in sinks.items():
            with self.subTest(exporter=name):
                self.assert_delivered(sink, sent, "zstd", ZSTD_MAGIC)
                self.assertEqual(self.agent.metric("lookout_exporter_sent_spans_total",
                                                   exporter=name), 486)
        # Level 19 is no larger than level 1.
        size = {n: sum(len(p.raw) for p in s.posts()) for n, s in sinks.items()}
        self.assertLessEqual(size["otlphttp/19"], size["otlphttp"] * 1.02)

    def test_b_gzip_levels(self):
        # Level 1 is libdeflate's where the build has it, level 9 zlib's: both
        # standard gzip, read by Python's gzip module.
        sinks = self.start({"otlphttp/1": {"compression": "gzip", "compression_level": 1},
                            "otlphttp/9": {"compression": "gzip", "compression_level": 9}})
        sent = self.export_small_then_large(sinks)
        for name, sink in sinks.items():
            with self.subTest(exporter=name):
                self.assert_delivered(sink, sent, "gzip", GZIP_MAGIC)

    def test_c_zstd_refused_where_it_cannot_go(self):
        agent = YamlAgent(
            RECEIVER + "exporters:\n"
            "  otlp:\n    endpoint: 127.0.0.1:1\n    compression: zstd\n"
            "  loki:\n    format: json\n    compression: zstd\n"
            "  otlphttp:\n    endpoint: http://127.0.0.1:1\n    compression: gzip\n"
            "    compression_level: 12\n"
            "pipelines:\n  traces: {receivers: [otlp], exporters: [otlp, otlphttp]}\n"
            "  logs: {receivers: [otlp], exporters: [loki]}\n")
        self.addCleanup(shutil.rmtree, agent.dir, True)
        rc, err = agent.check_config()
        self.assertNotEqual(rc, 0, err)
        path = agent.config_path
        # YamlAgent writes 4 lines (log_level, shutdown_timeout, admin and its
        # endpoint) before RECEIVER's 5.
        for line in ("%s:13:18: exporters.otlp.compression: zstd is for otlphttp exporters "
                     "only; use gzip or none (OTLP/gRPC receivers take gzip)" % path,
                     "%s:16:18: exporters.loki.compression: zstd is for otlphttp exporters "
                     "only; use gzip or none (Loki takes gzip JSON or snappy protobuf)" % path,
                     "%s:20:24: exporters.otlphttp.compression_level: must be between 1 and 9 "
                     "for gzip, got 12 (zstd's are 1 to 19)" % path):
            self.assertIn(line, err)
        r = run_agent_cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertIn("zstd", r.stdout)


if __name__ == "__main__":
    unittest.main()
