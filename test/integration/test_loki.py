"""End-to-end tests of the Loki exporter: lines and OTLP logs -> build/lookout ->
in-process Loki sinks (loki_sink.py, decoders independent of lookout's C code).

Covered: retries on 429 (Retry-After) and 500 without loss (acceptance 2); 400
answers with Loki's "total ignored: N out of M" counted as dropped by reason and
never retried, the rest counted as sent; other 4xx dropped whole; the OTLP log
record -> Loki entry mapping (labels, hint attributes, defaults, escaping, label
cap, timestamps, non-string bodies, structured metadata and its order); JSON and
gzip bodies against protobuf; tenant, basic, bearer and custom headers; structured
metadata against a sink that validates it as Loki does: `auto` falls back when Loki
refuses it (every line arrives once, level and ids in the line, logged once, counted),
`off` never sends it, `on` drops the refused batch as a bad_request, and Loki's two
limits are kept (pairs cut and counted, every push accepted).

Run all: sh test/integration/run.sh test_loki (from the repo root, after `make`).
Run one: /usr/bin/python3 test/integration/test_loki.py LokiTest.test_otlp_logs_mapping
"""

import base64
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import LOGS, AnyValue, Client, kv  # noqa: E402
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
import test_lines  # noqa: E402  (its LogsCase; module import keeps its tests out)
from test_lines import (DELIVERY, HOST, NS, QUIET, SPAN_A, T0, TRACE_A,  # noqa: E402
                        config_body, connect, lines_receiver, loki_exporter, write_stream)

KeyValue = common_pb2.KeyValue
# A time in the past (2023-11-14T22:13:20Z), so that "now" sorts after it.
TP = 1_700_000_000 * NS
OTLP_RECEIVER = ("  otlp:\n    protocols:\n      grpc:\n"
                 "        endpoint: 127.0.0.1:@GRPC_PORT@\n")


def arr(*values):
    return AnyValue(array_value=common_pb2.ArrayValue(values=list(values)))


def kvl(**values):
    return AnyValue(kvlist_value=common_pb2.KeyValueList(
        values=[common_pb2.KeyValue(key=k, value=v) for k, v in values.items()]))


def s_(v):
    return AnyValue(string_value=v)


def i_(v):
    return AnyValue(int_value=v)


def d_(v):
    return AnyValue(double_value=v)


def b_(v):
    return AnyValue(bool_value=v)


def loki_400(reason, stream, ignored, total, entries=None):
    """A Loki-like 400 body: one "entry ... ignored" line per refused entry (at
    most |entries|), then the per-stream total."""
    out = ""
    for _ in range(min(ignored, entries if entries is not None else ignored)):
        out += ("entry with timestamp 2026-11-25 10:00:00.123456789 +0000 UTC ignored, "
                "reason: '%s' for stream: %s,\n" % (reason, stream))
    out += "user 'fake', total ignored: %d out of %d for stream: %s" % (ignored, total, stream)
    return out


class LokiTest(test_lines.LogsCase):

    def dropped(self, **labels):
        return self.agent.metric("lookout_dropped_items_total", exporter="loki", **labels) or 0

    def sent(self):
        return self.agent.metric("lookout_exporter_sent_log_records_total", exporter="loki") or 0

    def retries(self):
        return self.agent.metric("lookout_exporter_retries_total", exporter="loki") or 0

    def test_acceptance_retry_429_then_500(self):
        """ACCEPTANCE 2: the sink answers 429 (Retry-After: 1), then 500 for a few
        seconds: nothing is lost, nothing arrives twice, retries are counted."""
        self.start_sinks()
        self.start_agent(config_body(lines_receiver(), loki_exporter("loki", self.sink),
                                     ["lines"], ["loki"]))
        self.sink.fail_next(2, 429, "Ingestion rate limit exceeded\n", {"Retry-After": "1"})
        self.sink.fail_for(3.0, 500, "rpc error: code = Unavailable\n")
        n_per, writers = 3000, 2
        errors = []

        def writer(w):
            try:
                with connect(self.sock()) as s:
                    for i in range(0, n_per, 100):
                        s.sendall("".join('{"level":"info","service":"retry-%d","seq":%d}\n'
                                          % (w, j) for j in range(i, i + 100)).encode())
                        time.sleep(0.01)
            except OSError as e:
                errors.append(e)
        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.wait_entries(n_per * writers, timeout=40)
        time.sleep(QUIET)
        self.assert_sink_clean()
        statuses = [p.status for p in self.sink.pushes()]
        self.assertEqual(statuses[:2], [429, 429], "the first pushes met the 429s")
        self.assertIn(500, statuses, "pushes met the 500 window")
        self.assertEqual(self.sink.entry_count(), n_per * writers, "entries delivered")
        found = self.by_line()
        for w in range(writers):
            seqs = [json.loads(e.line)["seq"] for labels, e in self.sink.entries()
                    if labels["service_name"] == "retry-%d" % w]
            self.assertEqual(seqs, list(range(n_per)), "retry-%d: every line once, in order" % w)
        for line, got in found.items():
            self.assertEqual(len(got), 1, "line %r delivered %d times" % (line, len(got)))
        self.assertGreaterEqual(self.retries(), 3, "lookout_exporter_retries_total")
        self.assertEqual(self.agent.metric("lookout_exporter_retries_total", exporter="loki",
                                           signal="logs") or 0, self.retries())
        self.assertEqual(self.sent(), n_per * writers, "sent records counted")
        self.assert_no_drops()
        self.stop_agent()

    def _push_and_settle(self, lines, before_pushes):
        """Writes |lines| in one write; waits for the push they cause and a quiet
        period; returns the pushes made since |before_pushes|."""
        write_stream(self.sock(), "".join(line + "\n" for line in lines).encode())
        self.assertTrue(self.sink.wait_for(lambda s: len(s.pushes()) > before_pushes, DELIVERY),
                        "no push for %r\n%s" % (lines, self.agent.log_tail()))
        time.sleep(QUIET * 1.5)
        return self.sink.pushes()[before_pushes:]

    def test_400_refusals_counted_not_retried(self):
        """A 400 is never retried: 'total ignored: N out of M' (summed over streams)
        counts N as dropped with the reason its words give and the rest as sent;
        without it the whole batch is a bad_request; a 401 drops the batch whole."""
        self.start_sinks()
        self.start_agent(config_body(lines_receiver(), loki_exporter("loki", self.sink),
                                     ["lines"], ["loki"]))
        stream = '{host="%s", service_name="api", source="lines"}' % HOST
        steps = [
            # (lines, status, body, reason, dropped, sent)
            (["old %d" % i for i in range(5)], 400,
             loki_400("entry too far behind, entry timestamp is: 2026-11-25T10:00:00Z, oldest "
                      "acceptable timestamp is: 2026-11-25T11:00:00Z", stream, 2, 5),
             "too_old", 2, 3),
            (["bad %d" % i for i in range(3)], 400,
             "error at least one label pair is required per stream\n", "bad_request", 3, 0),
            (['{"service":"s1","msg":"ooo %d"}' % i for i in range(2)]
             + ['{"service":"s2","msg":"ooo %d"}' % i for i in range(2)], 400,
             loki_400("entry out of order", '{service_name="s1"}', 1, 2) + "\n"
             + loki_400("entry out of order", '{service_name="s2"}', 2, 2),
             "out_of_order", 3, 1),
            (["new %d" % i for i in range(4)], 400,
             loki_400("entry for stream '%s' has timestamp too new: 2027-01-01T00:00:00Z" % stream,
                      stream, 4, 4), "too_new", 4, 0),
        ]
        pushes = 0
        sent = 0
        for lines, status, body, reason, dropped, sent_more in steps:
            self.sink.fail_next(1, status, body)
            new = self._push_and_settle(lines, pushes)
            pushes += len(new)
            self.assertEqual(len(new), 1, "pushes for %r (a 400 must not be retried): %r"
                             % (lines, [p.status for p in new]))
            self.assertEqual(new[0].status, status)
            self.assertEqual(sorted(e.line for _, e in new[0].entries()), sorted(lines),
                             "one push held the whole batch")
            self.assertEqual(self.dropped(reason=reason), dropped,
                             "lookout_dropped_items_total{reason=%r} after %r\n%s"
                             % (reason, body[:200], self.agent.metrics().text[-3000:]))
            sent += sent_more
            self.assertEqual(self.sent(), sent, "sent records after %s" % reason)
        self.assertEqual(self.retries(), 0, "retries after 400s")
        # Any other 4xx: permanent, the whole batch dropped, not retried.
        before_total = self.dropped()
        self.sink.fail_next(1, 401, "no org id\n")
        new = self._push_and_settle(["unauth %d" % i for i in range(2)], pushes)
        pushes += len(new)
        self.assertEqual([p.status for p in new], [401], "a 401 is not retried")
        self.assertEqual(self.dropped() - before_total, 2, "401: the whole batch dropped")
        self.assertEqual(self.sent(), sent)
        # And the exporter still delivers afterwards.
        new = self._push_and_settle(["fine after refusals"], pushes)
        self.assertEqual([p.status for p in new], [204])
        self.assertEqual([e.line for _, e in new[0].entries()], ["fine after refusals"])
        self.assertEqual(self.sent(), sent + 1)
        self.assertEqual(self.retries(), 0)
        self.assert_sink_clean()
        self.stop_agent()

    def test_otlp_logs_mapping(self):
        """OTLP logs over gRPC -> Loki: labels from resource, hints and defaults;
        escaping and the 15-label cap; time, observed time and now; every body
        type; level from number or text; ids; metadata and its order; streams in
        order of first appearance, entries sorted by time, stably."""
        self.start_sinks()
        self.start_agent(config_body(OTLP_RECEIVER, loki_exporter("loki", self.sink),
                                     ["otlp"], ["loki"]))
        T = TP
        req = logs_service_pb2.ExportLogsServiceRequest()
        # Resource 1: every well-known attribute, hints, extra attributes.
        rl = req.resource_logs.add()
        rl.resource.attributes.extend([
            kv("service.name", string_value="otlp-api"),
            kv("service.namespace", string_value="shop"),
            kv("deployment.environment", string_value="staging"),
            kv("host.name", string_value="otlp-host"),
            kv("k8s.pod.name", string_value="pod-7"),
            kv("1st.attr", string_value="one"),
            kv("cloud.region", string_value="eu-west-1"),
            kv("process.pid", int_value=4242),
            kv("loki.resource.labels", string_value="k8s.pod.name,1st.attr"),
        ])
        sl = rl.scope_logs.add()
        sl.scope.name = "my.lib"
        sl.scope.version = "1.0"
        recs = []

        def rec(body=None, time_ns=0, observed=0, sev=0, sev_text="", attrs=(), trace=b"",
                span=b""):
            lr = sl.log_records.add()
            if body is not None:
                lr.body.CopyFrom(body)
            lr.time_unix_nano = time_ns
            lr.observed_time_unix_nano = observed
            lr.severity_number = sev
            lr.severity_text = sev_text
            lr.attributes.extend(attrs)
            lr.trace_id = trace
            lr.span_id = span
            recs.append(lr)
            return lr
        # Stream A (user_id label from the record hint).
        rec(s_("hello otlp"), T + 1, T + 2, 9, "INFO",
            [kv("http.method", string_value="GET"), kv("retries", int_value=3),
             kv("ratio", double_value=0.1), kv("ok", bool_value=True),
             kv("raw", bytes_value=b"\x00\x01\xfe"),
             KeyValue(key="tags", value=arr(s_("a"), i_(1), b_(True))),
             KeyValue(key="obj", value=kvl(k=s_("v"), n=i_(2))),
             kv("user.id", string_value="u1"),
             kv("loki.attribute.labels", string_value="user.id"),
             kv("neg", int_value=-7)],
            bytes.fromhex(TRACE_A), bytes.fromhex(SPAN_A))
        # Stream B: no hint on the record.
        rec(kvl(a=i_(1), b=s_("x"), c=arr(b_(True), d_(2.5))), 0, T + 3, 17, "ERROR")
        rec(i_(42), T + 4, 0, 0, "warning", trace=b"\x00" * 16, span=b"\x00" * 8)
        rec(d_(2.5), T + 5, 0, 0, "custom-lvl")
        rec(b_(True), T + 6)
        rec(AnyValue(bytes_value=b"\x00\x01\x02"), T + 7)
        rec(arr(s_("x"), i_(1)), T + 8)
        before = time.time_ns()
        rec(None, 0, 0, 13, "")                 # no body, no time at all: now
        rec(s_("earliest"), T + 0, T + 99, 5, "DEBUG")
        rec(s_("same ts as 42"), T + 4, 0, 1, "TRACE")
        # Resource 2: nothing known: defaults.
        rl2 = req.resource_logs.add()
        rl2.resource.attributes.append(kv("team", string_value="blue"))
        lr = rl2.scope_logs.add().log_records.add()
        lr.body.string_value = "defaults"
        lr.time_unix_nano = T + 9
        lr.severity_number = 9
        # Resource 3: escaping, lookout.source, deployment.environment.name.
        rl3 = req.resource_logs.add()
        rl3.resource.attributes.extend([
            kv("service.name", string_value='we"ird\\name\nx'),
            kv("lookout.source", string_value="custom-src"),
            kv("deployment.environment.name", string_value="prod"),
            kv("host.name", string_value="h3"),
        ])
        lr = rl3.scope_logs.add().log_records.add()
        lr.body.string_value = "escaped"
        lr.time_unix_nano = T + 10
        # Resource 4: 20 hinted labels: at most 15 labels in all.
        rl4 = req.resource_logs.add()
        rl4.resource.attributes.extend([kv("service.name", string_value="many")]
                                       + [kv("lbl.%02d" % i, string_value="v%d" % i)
                                          for i in range(20)]
                                       + [kv("loki.resource.labels", string_value=",".join(
                                           "lbl.%02d" % i for i in range(20)))])
        lr = rl4.scope_logs.add().log_records.add()
        lr.body.string_value = "capped"
        lr.time_unix_nano = T + 11

        client = Client(self.agent.grpc_endpoint)
        self.addCleanup(client.close)
        client.export_signal(LOGS, req)
        self.wait_entries(13)
        after = time.time_ns()
        time.sleep(QUIET)
        self.assert_sink_clean()
        self.assertEqual(len(self.sink.accepted()), 1, "one request, one batch, one push")
        push = self.sink.accepted()[0]
        streams = push.streams
        self.assertEqual(push.entry_count(), 13)

        base_a = {"service_name": "otlp-api", "service_namespace": "shop",
                  "deployment_environment": "staging", "host": "otlp-host", "source": "otlp",
                  "k8s_pod_name": "pod-7", "_1st_attr": "one"}
        res_md = [("cloud_region", "eu-west-1"), ("process_pid", "4242")]
        scope_md = [("scope_name", "my.lib")]
        # Bodies: ("s", line) is the line as is; ("j", value): the line is JSON of value.
        want_streams = [
            (dict(base_a, user_id="u1"), [
                (T + 1, ("s", "hello otlp"),
                 [("level", "info"), ("trace_id", TRACE_A), ("span_id", SPAN_A),
                  ("http_method", "GET"), ("retries", "3"), ("ratio", "0.1"), ("ok", "true"),
                  ("raw", base64.b64encode(b"\x00\x01\xfe").decode()),
                  ("tags", ["a", 1, True]), ("obj", {"k": "v", "n": 2}), ("neg", "-7")]
                 + res_md + scope_md)]),
            (base_a, [
                (T + 0, ("s", "earliest"), [("level", "debug")] + res_md + scope_md),
                (T + 3, ("j", {"a": 1, "b": "x", "c": [True, 2.5]}),
                 [("level", "error")] + res_md + scope_md),
                (T + 4, ("j", 42), [("level", "warn")] + res_md + scope_md),
                (T + 4, ("s", "same ts as 42"), [("level", "trace")] + res_md + scope_md),
                (T + 5, ("j", 2.5), [("level", "custom-lvl")] + res_md + scope_md),
                (T + 6, ("j", True), res_md + scope_md),
                # A bytes body is its base64 text, unquoted (as the OpenTelemetry
                # Collector writes it), not a JSON string.
                (T + 7, ("s", base64.b64encode(b"\x00\x01\x02").decode()), res_md + scope_md),
                (T + 8, ("j", ["x", 1]), res_md + scope_md),
                (None, ("s", ""), [("level", "warn")] + res_md + scope_md),
            ]),
            ({"service_name": "unknown_service", "host": HOST, "source": "otlp"},
             [(T + 9, ("s", "defaults"), [("level", "info"), ("team", "blue")])]),
            ({"service_name": 'we"ird\\name\nx', "source": "custom-src",
              "deployment_environment": "prod", "host": "h3"},
             [(T + 10, ("s", "escaped"), [])]),
        ]
        self.assertEqual(len(streams), 5, "streams: %r" % streams)
        for i, (want_labels, want_entries) in enumerate(want_streams):
            s = streams[i]
            self.assertEqual(s.labels, want_labels, "labels of stream %d (in order of first "
                                                    "appearance)" % i)
            self.assertEqual(len(s.entries), len(want_entries),
                             "entries of stream %d: %r" % (i, s.entries))
            for j, (ts, (kind, body), md) in enumerate(want_entries):
                e = s.entries[j]
                what = "stream %d entry %d (%r)" % (i, j, e.line[:60])
                if ts is None:
                    self.assertTrue(before <= e.ts <= after, "%s: 'now' timestamp %d not in "
                                    "[%d, %d]" % (what, e.ts, before, after))
                else:
                    self.assertEqual(e.ts, ts, "timestamp of " + what)
                if kind == "s":
                    self.assertEqual(e.line, body, "line of " + what)
                else:
                    got = not_json = object()
                    try:
                        got = json.loads(e.line)
                    except ValueError:
                        pass
                    if got is not_json:
                        self.fail("line of %s is not JSON (a non-string body must be written "
                                  "as JSON): %r, want JSON of %r" % (what, e.line, body))
                    self.assertEqual(got, body, "non-string body as JSON in " + what)
                    self.assertIs(type(got), type(body), "JSON type of the body in " + what)
                self.assertEqual([n for n, _ in e.metadata], [n for n, _ in md],
                                 "metadata names, in order, of " + what)
                for (n, v), (_, got) in zip(md, e.metadata):
                    if isinstance(v, str):
                        self.assertEqual(got, v, "metadata %s of %s" % (n, what))
                    else:
                        self.assertEqual(json.loads(got), v, "metadata %s (JSON) of %s"
                                         % (n, what))
        capped = streams[4]
        self.assertEqual([e.line for e in capped.entries], ["capped"])
        self.assertLessEqual(len(capped.labels), 15, "labels of a stream are capped at 15")
        for k, v in capped.labels.items():
            if k.startswith("lbl_"):
                self.assertEqual(v, "v%d" % int(k[4:]), "value of label %s" % k)
        self.stop_agent()

    # --- structured metadata: a Loki that refuses it, Loki's limits

    MD_LOG = "loki does not accept structured metadata"

    def md_metric(self, name, **labels):
        return self.agent.metric("lookout_exporter_structured_metadata_" + name,
                                 exporter="loki", **labels) or 0

    def md_lines(self):
        """Lines written to the socket (Loki-entries form with protobuf bodies) and the
        line each must arrive as without structured metadata."""
        return [
            ('{"level":"info","msg":"all three","trace_id":"%s","span_id":"%s"}'
             % (TRACE_A, SPAN_A),) * 2,
            ('{"lvl":"WARN","msg":"json lvl","traceID":"%s"}' % TRACE_A,
             '{"lvl":"WARN","msg":"json lvl","traceID":"%s","level":"warn","trace_id":"%s"}'
             % (TRACE_A, TRACE_A)),
            ('level=error msg="logfmt line" trace_id=%s' % TRACE_A,) * 2,
            ('lvl=debug msg="x y" span_id=%s' % SPAN_A,
             'lvl=debug msg="x y" span_id=%s level=debug' % SPAN_A),
            ("plain text line",) * 2,
        ]

    def md_request(self):
        """OTLP log records (the OTLP form) and the lines they must arrive as without
        structured metadata; the last record has no metadata at all."""
        req = logs_service_pb2.ExportLogsServiceRequest()
        rl = req.resource_logs.add()
        rl.resource.attributes.append(kv("service.name", string_value="md-otlp"))
        sl = rl.scope_logs.add()
        want = []

        def rec(body, sev, trace=b"", span=b"", scope_attr=True):
            lr = sl.log_records.add()
            lr.body.CopyFrom(body)
            lr.time_unix_nano = TP + len(want)
            lr.severity_number = sev
            lr.trace_id = trace
            lr.span_id = span
            return lr
        lr = rec(s_("otlp text"), 9, bytes.fromhex(TRACE_A), bytes.fromhex(SPAN_A))
        lr.attributes.append(kv("user.id", string_value="u1"))
        want.append("otlp text level=info trace_id=%s span_id=%s" % (TRACE_A, SPAN_A))
        rec(kvl(k=s_("v")), 17)
        want.append('{"k":"v","level":"error"}')
        rec(s_('{"msg":"otlp json"}'), 13, bytes.fromhex(TRACE_A))
        want.append('{"msg":"otlp json","level":"warn","trace_id":"%s"}' % TRACE_A)
        rec(s_("bare"), 0)
        want.append("bare")
        return req, want

    def _md_agent(self, extra, fmt="protobuf"):
        self.start_sinks()
        exporter = loki_exporter("loki", self.sink, extra=("format: %s\n" % fmt) + extra)
        self.start_agent(config_body(lines_receiver() + OTLP_RECEIVER, exporter,
                                     ["lines", "otlp"], ["loki"]))
        client = Client(self.agent.grpc_endpoint)
        self.addCleanup(client.close)
        return client

    def _write_lines(self, lines):
        write_stream(self.sock(), "".join(line + "\n" for line in lines).encode())

    def _check_no_md_delivery(self, want_lines):
        """Every wanted line arrived exactly once, none with structured metadata."""
        self.wait_entries(len(want_lines))
        time.sleep(QUIET)
        self.assert_sink_clean()
        found = self.by_line()
        self.assertEqual(sorted(found), sorted(want_lines), "lines delivered")
        for line in want_lines:
            labels, e = self.one(found, line)
            self.assertEqual(e.metadata, [], "metadata of %r" % line)
        for p in self.sink.pushes():
            if p.status == 204:
                self.assertEqual([e for _, e in p.entries() if e.metadata], [],
                                 "entries with metadata in a push after the fallback")

    def _refused_auto(self, fmt, otlp_first):
        """structured_metadata: auto (the default) against a Loki that refuses it."""
        client = self._md_agent("", fmt)
        self.sink.refuse_structured_metadata()
        req, otlp_want = self.md_request()
        lines = self.md_lines()
        if otlp_first:
            client.export_signal(LOGS, req)
            self.wait_entries(1)   # the record without metadata, stored from the 400
        else:
            self._write_lines([w for w, _ in lines])
            self.wait_entries(len(lines))
        self.sink.wait_for_pushes(2, DELIVERY)
        self.assertEqual([p.status for p in self.sink.pushes()][:2], [400, 204],
                         "the refused push, then the same batch without metadata")
        refused = self.sink.pushes()[0]
        self.assertIn("includes structured metadata, but this feature is disallowed",
                      refused.answer)
        if otlp_first:
            self._write_lines([w for w, _ in lines])
        else:
            client.export_signal(LOGS, req)
        self._check_no_md_delivery([g for _, g in lines] + otlp_want)
        statuses = [p.status for p in self.sink.pushes()]
        self.assertEqual(statuses.count(400), 1, "one refusal, then never again: %r" % statuses)
        self.assertEqual(self.agent.stderr_text().count(self.MD_LOG), 1,
                         "the fallback is logged once\n" + self.agent.log_tail())
        self.assertEqual(self.md_metric("enabled"), 0)
        self.assertEqual(self.md_metric("resent_batches_total"), 1)
        self.assert_no_drops()
        self.assertEqual(self.sent(), len(lines) + len(otlp_want), "sent, each once")
        self.assertEqual(self.retries(), 0, "a re-send is not a retry")
        self.assertEqual(sum(p.duplicates for p in self.sink.pushes()),
                         1 if otlp_first else 0,
                         "the record without metadata, stored from the refused push, "
                         "came again unchanged (Loki drops it as a duplicate)")
        self.stop_agent()

    def test_md_refused_auto_protobuf(self):
        """auto, protobuf: lines (Loki-entries form) meet the refusal and are sent again
        at once without metadata, level/ids in the line; OTLP records after it go
        without metadata from the start; logged once, gauge 0, one re-sent batch."""
        self._refused_auto("protobuf", otlp_first=False)

    def test_md_refused_auto_json(self):
        """auto, JSON bodies: OTLP records meet the refusal first (the one without
        metadata is stored by Loki and its repeat dropped as a duplicate), then lines
        (OTLP form) go without metadata."""
        self._refused_auto("json", otlp_first=True)

    def test_md_off_never_sent(self):
        """off: no push carries structured metadata, lines are rewritten, nothing is
        refused (the sink would accept metadata)."""
        client = self._md_agent("structured_metadata: off\n")
        req, otlp_want = self.md_request()
        lines = self.md_lines()
        self._write_lines([w for w, _ in lines])
        client.export_signal(LOGS, req)
        self._check_no_md_delivery([g for _, g in lines] + otlp_want)
        self.assertEqual({p.status for p in self.sink.pushes()}, {204})
        self.assertEqual(self.md_metric("enabled"), 0)
        self.assertEqual(self.md_metric("resent_batches_total"), 0)
        self.assertNotIn(self.MD_LOG, self.agent.stderr_text())
        self.assert_no_drops()
        self.stop_agent()

    def test_md_on_refusal_is_bad_request(self):
        """on: a refusal drops the batch as a bad_request, as before; not re-sent."""
        self._md_agent("structured_metadata: on\n")
        self.sink.refuse_structured_metadata()
        lines = ["on %d" % i for i in range(3)]
        new = self._push_and_settle(lines, 0)
        self.assertEqual([p.status for p in new], [400], "refused once, not re-sent")
        self.assertTrue(all(e.metadata for _, e in new[0].entries()))
        self.assertEqual(self.dropped(reason="bad_request"), 3)
        self.assertEqual(self.sent(), 0)
        self.assertEqual(self.md_metric("enabled"), 1)
        self.assertEqual(self.md_metric("resent_batches_total"), 0)
        self.assertNotIn(self.MD_LOG, self.agent.stderr_text())
        self.stop_agent()

    def _md_limits(self, fmt, max_entries, max_bytes, extra):
        client = self._md_agent(extra, fmt)
        self.sink.enforce_structured_metadata_limits(max_entries, max_bytes)
        return client

    def test_md_limits_small(self):
        """Small limits, protobuf: lines (entries form: level, trace_id, span_id and 3
        peer keys each) and OTLP records are cut to them, counted by reason; the sink,
        enforcing the same limits as Loki does, accepts every push."""
        client = self._md_limits("protobuf", 4, 120,
                                 "structured_metadata_max_entries: 4\n"
                                 "structured_metadata_max_bytes: 120\n")
        lines = ['{"level":"info","msg":"cut %d","trace_id":"%s","span_id":"%s"}'
                 % (i, TRACE_A, SPAN_A) for i in range(5)]
        self._write_lines(lines)
        req = logs_service_pb2.ExportLogsServiceRequest()
        lr = req.resource_logs.add().scope_logs.add().log_records.add()
        lr.body.string_value = "big attribute"
        lr.time_unix_nano = TP
        lr.severity_number = 9
        lr.attributes.extend([kv("big", string_value="x" * 200), kv("small", string_value="s")])
        client.export_signal(LOGS, req)
        self.wait_entries(len(lines) + 1)
        time.sleep(QUIET)
        self.assert_sink_clean()
        self.assertEqual({p.status for p in self.sink.pushes()}, {204}, "every push accepted")
        found = self.by_line()
        for line in lines:
            _, e = self.one(found, line)
            self.assertEqual([n for n, _ in e.metadata],
                             ["level", "trace_id", "span_id", "process_pid"])
        _, e = self.one(found, "big attribute")
        self.assertEqual(e.metadata, [("level", "info"), ("small", "s")])
        self.assertEqual(self.md_metric("cut_total", reason="entries"), 2 * len(lines))
        self.assertEqual(self.md_metric("cut_total", reason="size"), 1)
        self.assertEqual(self.md_metric("enabled"), 1)
        self.assert_no_drops()
        self.stop_agent()

    def test_md_limits_loki_defaults_json(self):
        """Loki's defaults (128 pairs, 64 KiB), JSON bodies: 140 attributes and one of
        70000 bytes are cut, the sink enforcing Loki's defaults accepts every push."""
        client = self._md_limits("json", 128, 64 * 1024, "")
        req = logs_service_pb2.ExportLogsServiceRequest()
        sl = req.resource_logs.add().scope_logs.add()
        many = sl.log_records.add()
        many.body.string_value = "many"
        many.time_unix_nano = TP
        many.attributes.extend([kv("a%03d" % i, string_value="v") for i in range(140)])
        big = sl.log_records.add()
        big.body.string_value = "big"
        big.time_unix_nano = TP + 1
        big.attributes.extend([kv("big", string_value="x" * 70000),
                               kv("fits", string_value="y" * 65000)])
        client.export_signal(LOGS, req)
        self.wait_entries(2)
        time.sleep(QUIET)
        self.assert_sink_clean()
        self.assertEqual({p.status for p in self.sink.pushes()}, {204})
        found = self.by_line()
        _, e = self.one(found, "many")
        self.assertEqual([n for n, _ in e.metadata], ["a%03d" % i for i in range(128)])
        _, e = self.one(found, "big")
        self.assertEqual([n for n, _ in e.metadata], ["fits"])
        self.assertEqual(self.md_metric("cut_total", reason="entries"), 12)
        self.assertEqual(self.md_metric("cut_total", reason="size"), 1)
        self.assert_no_drops()
        self.stop_agent()

    def test_json_and_gzip_bodies(self):
        """format: json (plain and gzip) carries what the protobuf body carries;
        a configured labels list with the special label `level`."""
        sinks = self.start_sinks(4)
        exporters = (loki_exporter("loki", sinks[0])
                     + loki_exporter("loki/json", sinks[1], "format: json")
                     + loki_exporter("loki/gz", sinks[2], "format: json\ncompression: gzip")
                     + loki_exporter("loki/lvl", sinks[3], "labels: [service_name, level]"))
        self.start_agent(config_body(lines_receiver() + OTLP_RECEIVER, exporters,
                                     ["lines", "otlp"],
                                     ["loki", "loki/json", "loki/gz", "loki/lvl"]))
        lines = [c["line"] for c in test_lines.FORMAT_CASES]
        lines.append('{"msg":"quote \\" backslash \\\\ tab \\t unicode \\u00e9 \u4e16"}')
        write_stream(self.sock(), "".join(line + "\n" for line in lines).encode())
        req = logs_service_pb2.ExportLogsServiceRequest()
        rl = req.resource_logs.add()
        rl.resource.attributes.append(kv("service.name", string_value="bare"))
        lr = rl.scope_logs.add().log_records.add()
        lr.body.string_value = "no metadata at all"
        lr.time_unix_nano = T0 * NS + 5
        client = Client(self.agent.grpc_endpoint)
        self.addCleanup(client.close)
        client.export_signal(LOGS, req)
        total = len(lines) + 1
        for sink in sinks:
            self.wait_entries(total, sink=sink)
        time.sleep(QUIET)
        self.assert_sink_clean()

        def content(sink):
            return sorted((sorted(labels.items()), e.ts, e.line, e.metadata)
                          for labels, e in sink.entries())
        pb = content(sinks[0])
        self.assertEqual(len(pb), total)
        self.assertEqual(sorted(e[2] for e in pb), sorted(lines + ["no metadata at all"]))
        for sink, name in ((sinks[1], "json"), (sinks[2], "json+gzip")):
            self.assertEqual(content(sink), pb, "%s entries equal the protobuf ones" % name)
        for p in sinks[0].pushes():
            self.assertEqual(p.format, "protobuf")
        for p in sinks[1].pushes():
            self.assertEqual(p.header("content-type").split(";")[0], "application/json")
            self.assertIn(p.header("content-encoding") or "identity", ("identity",),
                          "plain JSON body")
            json.loads(p.raw)   # plain, no compression
        for p in sinks[2].pushes():
            self.assertEqual(p.header("content-type").split(";")[0], "application/json")
            self.assertEqual(p.header("content-encoding"), "gzip")
            self.assertEqual(p.raw[:2], b"\x1f\x8b", "gzip magic")
        # labels: [service_name, level]: no host, no source; level when there is one.
        found = self.by_line(sinks[3])
        cases = [(c["line"], c["service"], c.get("level")) for c in test_lines.FORMAT_CASES]
        cases += [(lines[-1], None, None), ("no metadata at all", "bare", None)]
        for line, service, level in cases:
            labels, e = self.one(found, line)
            want = {"service_name": service or test_lines.MY_NAME}
            if level is not None:
                want["level"] = level
            self.assertEqual(labels, want, "labels of %r with labels: [service_name, level]"
                             % line)
        self.stop_agent()

    def test_tenant_auth_and_headers(self):
        """tenant_id -> X-Scope-OrgID; auth -> Basic; bearer_token -> Bearer;
        headers as configured."""
        sinks = self.start_sinks(2)
        exporters = (loki_exporter("loki", sinks[0],
                                   'tenant_id: tenant-a\n'
                                   'auth: {username: "user", password: "p@ss:w0rd"}\n'
                                   'headers: {X-Custom-Header: custom-value}')
                     + loki_exporter("loki/bearer", sinks[1], "bearer_token: tok-123"))
        self.start_agent(config_body(lines_receiver(), exporters, ["lines"],
                                     ["loki", "loki/bearer"]))
        write_stream(self.sock(), b"auth line\n")
        for sink in sinks:
            self.wait_entries(1, sink=sink)
        self.assert_sink_clean()
        p = sinks[0].accepted()[0]
        self.assertEqual(p.header("x-scope-orgid"), "tenant-a")
        self.assertEqual(p.header("authorization"),
                         "Basic " + base64.b64encode("user:p@ss:w0rd".encode()).decode())
        self.assertEqual(p.header("x-custom-header"), "custom-value")
        q = sinks[1].accepted()[0]
        self.assertEqual(q.header("authorization"), "Bearer tok-123")
        self.assertIsNone(q.header("x-scope-orgid"), "no tenant configured")
        self.assertIsNone(q.header("x-custom-header"))
        for sink in sinks:
            self.assertEqual([e.line for _, e in sink.entries()], ["auth line"])
        self.stop_agent()


if __name__ == "__main__":
    unittest.main()
