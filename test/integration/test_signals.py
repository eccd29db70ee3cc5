"""End-to-end tests of every signal over OTLP/gRPC: client -> build/lookout -> sink.

The agent runs with pipelines for traces, metrics and logs, all to one otlp/sink
exporter (gRPC) pointing at the in-process sink. For each signal's Export method:
valid requests (plain and gzip) arrive at the sink intact and are counted;
metrics of every kind are counted by data point; empty requests are accepted and
nothing is forwarded; malformed protobuf is refused with INVALID_ARGUMENT, and so
is a request whose items all hold invalid UTF-8 in a string field or an id of the
wrong length; oversized requests (plain and gzip bombs) with RESOURCE_EXHAUSTED,
while other connections keep being served and nothing of a refused request ever
reaches the sink. A request with such bad items among good ones is answered OK
with a partial_success (the rejected count and the first reason): the good items
reach the sink as sent, the bad ones (a span, a Metric with its data points, a log
record; everything under a bad resource or scope) never do.

Every item a test sends carries the attribute helpers.TEST_REQ_KEY = a tag unique
to its request, so the sink's data can be checked for items of refused requests.

Run all: sh test/integration/run.sh (from the repo root, after `make`).
Run one: /usr/bin/python3 test/integration/test_signals.py SignalsTest.test_a_round_trip
"""

import copy
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  (puts the generated *_pb2 modules on sys.path)
from helpers import (ALL_SIGNALS, BAD_UTF8, LOGS, MAX_RECV_BYTES, METRIC_KINDS, METRICS,  # noqa: E402
                     PLACEHOLDER, SIGNALS, TEST_ITEM_KEY, TEST_REQ_KEY, TRACES, AnyValue, Client,
                     CountingProxy, DELIVERY_TIMEOUT, break_id, break_utf8, count_items,
                     drop_items, item_at, item_path, items_by_key, item_tags, kv, next_id,
                     retag_item, set_req_tag, splice_bad_utf8, wait_until)
import test_traces  # noqa: E402  (its AgentTestCase; module import keeps its tests out)

import grpc  # noqa: E402

EXPORTER = test_traces.EXPORTER
ITEM_FIELDS = helpers.ITEM_FIELDS
OK = grpc.StatusCode.OK
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

# Export*PartialSuccess field counting the items the server refused.
REJECTED_FIELD = {TRACES: "rejected_spans", METRICS: "rejected_data_points",
                  LOGS: "rejected_log_records"}

# Longer than the agent's batch timeout (100 ms) plus an export round trip: what
# has not reached the sink by then was not forwarded.
QUIET_PERIOD = 0.8



def single_item_request(signal, tag):
    """One resource, one scope, one span / gauge metric of one point / log record,
    each with the bare fields a valid item needs and TEST_REQ_KEY = |tag|.
    Returns (request, resource, scope, item)."""
    req = SIGNALS[signal].request_cls()
    if signal == TRACES:
        rl = req.resource_spans.add()
        sl = rl.scope_spans.add()
        item = sl.spans.add()
        item.trace_id = next_id(16)
        item.span_id = next_id(8)
        item.name = "span-%s" % tag
        item.start_time_unix_nano = 1_700_000_000_000_000_000
        item.end_time_unix_nano = item.start_time_unix_nano + 1000
        item.attributes.append(kv(TEST_REQ_KEY, string_value=tag))
    elif signal == METRICS:
        rl = req.resource_metrics.add()
        sl = rl.scope_metrics.add()
        item = sl.metrics.add()
        item.name = "metric.%s" % tag
        dp = item.gauge.data_points.add()
        dp.time_unix_nano = 1_700_000_000_000_000_000
        dp.as_int = 7
        dp.attributes.append(kv(TEST_REQ_KEY, string_value=tag))
    else:
        rl = req.resource_logs.add()
        sl = rl.scope_logs.add()
        item = sl.log_records.add()
        item.time_unix_nano = 1_700_000_000_000_000_000
        item.body.string_value = "line %s" % tag
        item.attributes.extend([kv(TEST_REQ_KEY, string_value=tag),
                                kv(TEST_ITEM_KEY, string_value="item-%s" % tag)])
    rl.resource.attributes.extend([kv("service.name", string_value="single"),
                                   kv(TEST_REQ_KEY, string_value=tag)])
    sl.scope.name = "scope"
    return req, rl.resource, sl.scope, item


def _gauge_point(metric):
    return metric.gauge.data_points[0]


def _exemplar(metric):
    ex = _gauge_point(metric).exemplars.add()
    ex.as_double = 1.0
    ex.trace_id = next_id(16)
    ex.span_id = next_id(8)
    return ex


def _link(span):
    link = span.links.add()
    link.trace_id = next_id(16)
    link.span_id = next_id(8)
    return link


def _histogram_exemplar(metric):
    """Turns the single gauge metric into a histogram with one exemplar."""
    metric.ClearField("gauge")
    dp = metric.histogram.data_points.add()
    dp.count = 1
    dp.bucket_counts.extend([1])
    ex = dp.exemplars.add()
    ex.as_int = 3
    ex.trace_id = next_id(16)
    ex.span_id = next_id(8)
    return ex


P = PLACEHOLDER.decode()


# String fields that must hold valid UTF-8: (what, signal, mutate(resource,
# scope, item) putting PLACEHOLDER into that one field).
UTF8_CASES = [
    ("span name", TRACES, lambda r, s, i: setattr(i, "name", P)),
    ("span attribute key", TRACES, lambda r, s, i: i.attributes.append(kv(P, int_value=1))),
    ("span attribute value", TRACES,
     lambda r, s, i: i.attributes.append(kv("k", string_value=P))),
    ("resource attribute key", TRACES,
     lambda r, s, i: r.attributes.append(kv(P, bool_value=True))),
    ("resource attribute value", TRACES,
     lambda r, s, i: r.attributes.append(kv("k", string_value=P))),
    ("scope name", TRACES, lambda r, s, i: setattr(s, "name", P)),
    ("event name", TRACES, lambda r, s, i: setattr(i.events.add(), "name", P)),
    ("link trace_state", TRACES, lambda r, s, i: setattr(_link(i), "trace_state", P)),
    ("status message", TRACES, lambda r, s, i: setattr(i.status, "message", P)),
    ("metric name", METRICS, lambda r, s, i: setattr(i, "name", P)),
    ("metric description", METRICS, lambda r, s, i: setattr(i, "description", P)),
    ("metric unit", METRICS, lambda r, s, i: setattr(i, "unit", P)),
    ("data point attribute key", METRICS,
     lambda r, s, i: _gauge_point(i).attributes.append(kv(P, int_value=1))),
    ("data point array value", METRICS,
     lambda r, s, i: _gauge_point(i).attributes.append(kv("arr", array_value=helpers.common_pb2
                                                            .ArrayValue(values=[AnyValue(string_value=P)])))),
    ("resource attribute key", METRICS,
     lambda r, s, i: r.attributes.append(kv(P, int_value=1))),
    ("resource attribute value", METRICS,
     lambda r, s, i: r.attributes.append(kv("k", string_value=P))),
    ("exemplar attribute value", METRICS,
     lambda r, s, i: _exemplar(i).filtered_attributes.append(kv("k", string_value=P))),
    ("log body string_value", LOGS, lambda r, s, i: setattr(i.body, "string_value", P)),
    ("log body kvlist value", LOGS,
     lambda r, s, i: i.body.kvlist_value.values.append(kv("msg", string_value=P))),
    ("log severity_text", LOGS, lambda r, s, i: setattr(i, "severity_text", P)),
    ("log event_name", LOGS, lambda r, s, i: setattr(i, "event_name", P)),
    ("log attribute key", LOGS, lambda r, s, i: i.attributes.append(kv(P, int_value=1))),
    ("resource attribute key", LOGS,
     lambda r, s, i: r.attributes.append(kv(P, int_value=1))),
    ("resource attribute value", LOGS,
     lambda r, s, i: r.attributes.append(kv("k", string_value=P))),
]

# Ids of the wrong length: (what, signal, mutate(resource, scope, item)).
ID_CASES = [
    ("span trace_id of 15 bytes", TRACES, lambda r, s, i: setattr(i, "trace_id", b"\x01" * 15)),
    ("span trace_id of 17 bytes", TRACES, lambda r, s, i: setattr(i, "trace_id", b"\x01" * 17)),
    ("span span_id of 7 bytes", TRACES, lambda r, s, i: setattr(i, "span_id", b"\x02" * 7)),
    ("span span_id of 9 bytes", TRACES, lambda r, s, i: setattr(i, "span_id", b"\x02" * 9)),
    ("span parent_span_id of 7 bytes", TRACES,
     lambda r, s, i: setattr(i, "parent_span_id", b"\x03" * 7)),
    ("link trace_id of 15 bytes", TRACES,
     lambda r, s, i: setattr(_link(i), "trace_id", b"\x04" * 15)),
    ("link trace_id of 17 bytes", TRACES,
     lambda r, s, i: setattr(_link(i), "trace_id", b"\x04" * 17)),
    ("link span_id of 7 bytes", TRACES, lambda r, s, i: setattr(_link(i), "span_id", b"\x05" * 7)),
    ("gauge exemplar trace_id of 15 bytes", METRICS,
     lambda r, s, i: setattr(_exemplar(i), "trace_id", b"\x06" * 15)),
    ("gauge exemplar trace_id of 17 bytes", METRICS,
     lambda r, s, i: setattr(_exemplar(i), "trace_id", b"\x06" * 17)),
    ("gauge exemplar span_id of 7 bytes", METRICS,
     lambda r, s, i: setattr(_exemplar(i), "span_id", b"\x07" * 7)),
    ("histogram exemplar span_id of 7 bytes", METRICS,
     lambda r, s, i: setattr(_histogram_exemplar(i), "span_id", b"\x07" * 7)),
    ("log trace_id of 15 bytes", LOGS, lambda r, s, i: setattr(i, "trace_id", b"\x08" * 15)),
    ("log trace_id of 17 bytes", LOGS, lambda r, s, i: setattr(i, "trace_id", b"\x08" * 17)),
    ("log span_id of 7 bytes", LOGS, lambda r, s, i: setattr(i, "span_id", b"\x09" * 7)),
]


class SignalsTest(test_traces.AgentTestCase):
    """One agent per test with traces, metrics and logs pipelines. self.client
    (from AgentTestCase), self.good and self.bad are separate channels; good and
    bad have TCP connections of their own."""

    def setUp(self):
        self.valid = {s: [] for s in ALL_SIGNALS}   # requests answered OK
        self.rejected_tags = set()
        self.status_counts = {}                     # grpc status code -> requests

    def start_all(self, **config):
        self.start(signals=ALL_SIGNALS, **config)
        self.good = Client(self.agent.grpc_endpoint, own_connection=True)
        self.addCleanup(self.good.close)
        self.bad = Client(self.agent.grpc_endpoint, own_connection=True)
        self.addCleanup(self.bad.close)

    def count_status(self, code, n=1):
        self.status_counts[code.value[0]] = self.status_counts.get(code.value[0], 0) + n

    # --- sending

    def export_signal_ok(self, signal, request, client=None, compression=None):
        """Exports; asserts OK with a clean Export*ServiceResponse; remembers the
        request as one the sink must receive."""
        client = client or self.good
        try:
            resp = client.export_signal(signal, request, compression=compression)
        except grpc.RpcError as e:
            self.fail("%s export failed: %s %s\n%s"
                      % (signal, e.code(), e.details(), self.agent.log_tail()))
        self.assertIsInstance(resp, SIGNALS[signal].response_cls)
        if resp.HasField("partial_success"):
            self.assertEqual(getattr(resp.partial_success, REJECTED_FIELD[signal]), 0, str(resp))
        self.valid[signal].append(request)
        self.count_status(OK)
        return resp

    def follow_up(self, signal, what):
        """A valid request of |signal| from the good connection right after a
        rejection: it must be served."""
        req, _, _, _ = single_item_request(signal, "after-%s" % next_id(4).hex())
        with self.subTest(follow_up_after=what):
            self.export_signal_ok(signal, req)

    def assert_rejected(self, signal, payload, code, what, tag=None, compression=None):
        """Sends raw |payload| on the bad connection; asserts |code|, then that a
        valid request on another connection still works."""
        with self.subTest(signal=signal, case=what):
            got = self.bad.status_of(self.bad.call_raw, SIGNALS[signal].method, payload,
                                     compression=compression)
            self.assertEqual(got, code, "%s: %s\n%s" % (signal, what, self.agent.log_tail(8)))
        self.count_status(code)
        if tag is not None:
            self.rejected_tags.add(tag)
        self.follow_up(signal, what)

    # --- checking

    def assert_signal_delivered(self, signal, requests, timeout=DELIVERY_TIMEOUT):
        """Waits for the items of |requests| at the sink; asserts each arrived
        exactly once, equal, with its resource and scope, and nothing else."""
        expected = {}
        for req in requests:
            expected.update(items_by_key(signal, req))
        want = sum(count_items(signal, r) for r in requests)

        def arrived(sink):
            keys = {helpers.item_key(signal, item) for _, _, item in sink.items(signal)}
            return keys >= set(expected) and sink.item_count(signal) >= want
        self.sink.wait_for(arrived, timeout)
        got = self.sink.item_count(signal)
        self.assertEqual(got, want, "%s items (spans, points, records) at the sink after %.0fs\n%s"
                         % (signal, timeout, self.agent.log_tail()))
        actual = items_by_key(signal, self.sink.items(signal))   # raises on duplicates
        self.assertEqual(set(actual), set(expected), "%s item keys at the sink" % signal)
        for key, w in expected.items():
            h = actual[key]
            self.assertEqual(h[0], w[0], "%s %r: resource" % (signal, key))
            self.assertEqual(h[1], w[1], "%s %r: resource schema_url" % (signal, key))
            self.assertEqual(h[2], w[2], "%s %r: scope" % (signal, key))
            self.assertEqual(h[3], w[3], "%s %r: scope schema_url" % (signal, key))
            self.assertEqual(h[4], w[4], "%s %r: item" % (signal, key))

    def assert_nothing_rejected_forwarded(self):
        for call in self.sink.calls():
            self.assertTrue(call.ok, "sink got a %s request it could not decode or refused: %s"
                            % (call.signal, call.details))
            for tag in self.rejected_tags:
                self.assertNotIn(tag.encode(), call.raw,
                                 "bytes of rejected request %s reached the sink" % tag)
        for signal in ALL_SIGNALS:
            leaked = item_tags(signal, self.sink.items(signal)) & self.rejected_tags
            self.assertEqual(leaked, set(), "%s items of rejected requests at the sink" % signal)

    def assert_counters(self):
        """accepted_<items>_total{transport=grpc} per signal and requests_total
        per status equal what this test sent."""
        for signal in ALL_SIGNALS:
            want = sum(count_items(signal, r) for r in self.valid[signal])
            with self.subTest(counter=signal):
                self.assert_metric_equals("lookout_receiver_accepted_%s_total"
                                          % SIGNALS[signal].items_word, want,
                                          receiver="otlp", transport="grpc")
        for code, n in sorted(self.status_counts.items()):
            with self.subTest(grpc_status=code):
                self.assert_metric_equals("lookout_receiver_requests_total", n, receiver="otlp",
                                          transport="grpc", grpc_status=str(code))

    def finish(self):
        """Everything valid delivered, nothing rejected forwarded, counters
        right, agent alive, then a clean SIGTERM exit."""
        for signal in ALL_SIGNALS:
            self.assert_signal_delivered(signal, self.valid[signal])
        self.assert_nothing_rejected_forwarded()
        self.assert_counters()
        self.assertTrue(self.agent.alive, "agent died\n" + self.agent.log_tail())
        self.stop_agent()

    # --- tests

    def test_a_round_trip(self):
        self.start_all()
        for signal in ALL_SIGNALS:
            with self.subTest(signal=signal):
                for i in range(3):
                    self.export_signal_ok(signal, helpers.make_signal_request(
                        signal, "a-%s-%d" % (signal, i)))
                self.export_signal_ok(signal, helpers.make_signal_request(
                    signal, "a-%s-gzip" % signal), compression=grpc.Compression.Gzip)
                self.export_signal_ok(signal, helpers.make_signal_request(
                    signal, "a-%s-small" % signal, 1, 1, 1), client=self.client)
        for signal in ALL_SIGNALS:
            self.assert_signal_delivered(signal, self.valid[signal])
            want = sum(count_items(signal, r) for r in self.valid[signal])
            self.assert_metric_equals("lookout_exporter_sent_%s_total" % SIGNALS[signal].items_word,
                                      want, exporter=EXPORTER)
        for call in self.sink.accepted(None):
            self.assertEqual(call.header("x-test-header"), "hello", "exporter headers")
        self.finish()

    def test_b_metric_kinds_counted_by_data_point(self):
        # One request per metric kind, each with its own number of points: the
        # accepted counter must grow by exactly that many each time.
        self.start_all()
        total = 0
        for n, kind in enumerate(METRIC_KINDS, 1):
            req = helpers.make_metrics_request("b-%s" % kind, resources=1, scopes=1,
                                               kinds=(kind,), points={kind: n + 2})
            self.assertEqual(count_items(METRICS, req), n + 2)
            self.export_signal_ok(METRICS, req)
            total += n + 2
            with self.subTest(kind=kind):
                self.assert_metric_equals("lookout_receiver_accepted_metric_points_total", total,
                                          receiver="otlp", transport="grpc")
        # All kinds in one request: 2 resources x 2 scopes x (2+3+4+5+6) points.
        mixed = helpers.make_metrics_request("b-mixed")
        self.assertEqual(count_items(METRICS, mixed), 4 * sum(helpers.METRIC_POINTS.values()))
        self.export_signal_ok(METRICS, mixed)
        total += count_items(METRICS, mixed)
        self.assert_metric_equals("lookout_receiver_accepted_metric_points_total", total,
                                  receiver="otlp", transport="grpc")
        # A metric with no data kind set carries no points, and is still a valid
        # request. (Whether a request of zero points is forwarded is left open:
        # lookout today forwards nothing of it.)
        bare, _, _, metric = single_item_request(METRICS, "b-bare")
        metric.ClearField("gauge")
        self.assertEqual(count_items(METRICS, bare), 0)
        self.assertEqual(self.good.status_of(self.good.export_signal, METRICS, bare), OK)
        self.count_status(OK)
        self.finish()

    def test_c_empty_requests(self):
        self.start_all()
        for signal in ALL_SIGNALS:
            with self.subTest(signal=signal):
                resp = self.good.export_signal(signal, SIGNALS[signal].request_cls())
                self.assertIsInstance(resp, SIGNALS[signal].response_cls)
                self.assertFalse(resp.HasField("partial_success"), str(resp))
                self.count_status(OK)
                self.assertEqual(self.good.call_raw(SIGNALS[signal].method, b""), b"")
                self.count_status(OK)
        time.sleep(QUIET_PERIOD)
        self.assertEqual([(c.signal, c.raw) for c in self.sink.calls()], [],
                         "empty requests were forwarded")
        for signal in ALL_SIGNALS:
            self.assert_metric_equals("lookout_receiver_accepted_%s_total"
                                      % SIGNALS[signal].items_word, 0,
                                      receiver="otlp", transport="grpc")
            self.export_signal_ok(signal, helpers.make_signal_request(signal, "c-" + signal, 1, 1))
        self.finish()

    def test_d_malformed_rejected_while_others_served(self):
        self.start_all()
        # A third connection keeps exporting valid data all through the probing.
        stop = threading.Event()
        background = []   # (signal, request, status code)

        def keep_sending():
            client = Client(self.agent.grpc_endpoint, own_connection=True)
            try:
                deadline = time.monotonic() + 30
                n = 0
                while not stop.is_set() and time.monotonic() < deadline:
                    signal = ALL_SIGNALS[n % 3]
                    req, _, _, _ = single_item_request(signal, "bg-%d-%s" % (n, next_id(4).hex()))
                    code = client.status_of(client.export_signal, signal, req)
                    background.append((signal, req, code))
                    n += 1
                    stop.wait(0.002)
            finally:
                client.close()
        worker = threading.Thread(target=keep_sending, daemon=True)
        worker.start()
        try:
            self.assertTrue(wait_until(lambda: background, 10), "background client never answered")
            self._probe_malformed()
            # ... and after it: the background connection is still served.
            n = len(background)
            self.assertTrue(wait_until(lambda: len(background) >= n + 3, 10),
                            "background client stalled after the probing")
        finally:
            stop.set()
            worker.join(10)
        self.assertFalse(worker.is_alive(), "background client did not stop")
        for signal, req, code in background:
            self.assertEqual(code, OK, "background %s export during probing" % signal)
            self.valid[signal].append(req)
            self.count_status(OK)
        self.finish()

    def _probe_malformed(self):
        for signal in ALL_SIGNALS:
            tag = "d-trunc-%s" % signal
            good = helpers.make_signal_request(signal, tag, 1, 1, 2).SerializeToString()
            malformed = [
                ("truncated by 3 bytes", good[:-3], tag),
                ("truncated in the middle", good[:len(good) // 2], tag),
                ("bad wire type", b"\x0f\xff\xff", None),
                ("end-group wire type", b"\x0c", None),
                ("field number 0", b"\x02\x00", None),
                ("length past end", b"\x0a\xff\xff\xff\x7f\x01", None),
                ("varint of 11 bytes", b"\x08" + b"\xff" * 10 + b"\x01", None),
                ("garbage", b"\xff" * 32, None),
            ]
            for what, payload, t in malformed:
                self.assert_rejected(signal, payload, INVALID_ARGUMENT, "malformed: " + what, t)

        n = 0
        for what, signal, mutate in UTF8_CASES:
            tag = "d-utf8-%d" % n
            req, res, scope, item = single_item_request(signal, tag)
            mutate(res, scope, item)
            raw = req.SerializeToString()
            self.assertEqual(raw.count(PLACEHOLDER), 1, what)
            raw = raw.replace(PLACEHOLDER, BAD_UTF8[n % len(BAD_UTF8)])
            self.assert_rejected(signal, raw, INVALID_ARGUMENT, "invalid UTF-8: " + what, tag)
            n += 1

        for what, signal, mutate in ID_CASES:
            tag = "d-id-%d" % n
            req, res, scope, item = single_item_request(signal, tag)
            mutate(res, scope, item)
            self.assert_rejected(signal, req.SerializeToString(), INVALID_ARGUMENT,
                                 "wrong id length: " + what, tag)
            n += 1

        # The same, gzip-compressed on the wire.
        for signal in ALL_SIGNALS:
            tag = "d-gz-%s" % signal
            req, _, _, item = single_item_request(signal, tag)
            if signal == METRICS:
                item.description = PLACEHOLDER.decode()
            elif signal == TRACES:
                item.name = PLACEHOLDER.decode()
            else:
                item.severity_text = PLACEHOLDER.decode()
            raw = req.SerializeToString().replace(PLACEHOLDER, BAD_UTF8[0])
            self.assert_rejected(signal, raw, INVALID_ARGUMENT, "gzip, invalid UTF-8", tag,
                                 compression=grpc.Compression.Gzip)

    # --- partial success

    def export_partial(self, signal, raw, kept, rejected, message_starts, message_has,
                       compression=None):
        """Sends raw request bytes; asserts OK with a partial_success of |rejected|
        items and an error_message that starts with |message_starts| and contains
        |message_has|; remembers |kept| (the request without its bad items) for the
        sink checks."""
        try:
            body = self.bad.call_raw(SIGNALS[signal].method, raw, compression=compression)
        except grpc.RpcError as e:
            self.fail("%s partial export failed: %s %s\n%s"
                      % (signal, e.code(), e.details(), self.agent.log_tail(8)))
        resp = SIGNALS[signal].response_cls.FromString(body)
        self.assertTrue(resp.HasField("partial_success"), "%s: %r" % (signal, resp))
        ps = resp.partial_success
        self.assertEqual(getattr(ps, REJECTED_FIELD[signal]), rejected, str(resp))
        self.assertTrue(ps.error_message.startswith(message_starts),
                        "%s error_message %r, want it to start with %r"
                        % (signal, ps.error_message, message_starts))
        self.assertIn(message_has, ps.error_message)
        self.valid[signal].append(kept)
        self.count_status(OK)

    def test_f_partial_success(self):
        self.start_all()
        rejected = {s: 0 for s in ALL_SIGNALS}
        n = 0
        for signal in ALL_SIGNALS:
            # One bad item (invalid UTF-8) among others in 2 resources x 2 scopes.
            with self.subTest(signal=signal, case="one bad string"):
                req = helpers.make_signal_request(signal, "f-good%d" % n, 2, 2, 2)
                pos = (1, 0, 1)
                item = item_at(signal, req, *pos)
                bad_tag = "fbad%02d" % n
                retag_item(signal, item, bad_tag)
                self.rejected_tags.add(bad_tag)
                field = break_utf8(signal, item)
                kept = drop_items(signal, req, {pos})
                want = count_items(signal, req) - count_items(signal, kept)
                self.assertGreater(want, 0)
                self.export_partial(signal, splice_bad_utf8(req.SerializeToString(), n), kept,
                                    want, item_path(signal, *pos) + "." + field + ": ",
                                    "invalid UTF-8")
                rejected[signal] += want
                n += 1

            # Two bad items in one scope (an id, then a string), gzip on the wire:
            # both rejected, the first one named; the other scope stays whole.
            with self.subTest(signal=signal, case="two bad, gzip"):
                req = helpers.make_signal_request(signal, "f-good%d" % n, 1, 2, 3)
                first_pos, second_pos = (0, 1, 0), (0, 1, 1)
                first = item_at(signal, req, *first_pos)
                second = item_at(signal, req, *second_pos)
                bad_tag = "fbad%02d" % n
                retag_item(signal, first, bad_tag)
                retag_item(signal, second, bad_tag)
                self.rejected_tags.add(bad_tag)
                path, detail = break_id(signal, first)
                break_utf8(signal, second)
                kept = drop_items(signal, req, {first_pos, second_pos})
                want = count_items(signal, req) - count_items(signal, kept)
                self.export_partial(signal, splice_bad_utf8(req.SerializeToString(), n), kept,
                                    want, item_path(signal, *first_pos) + "." + path + ": ",
                                    detail, compression=grpc.Compression.Gzip)
                rejected[signal] += want
                n += 1

            # A bad resource attribute: everything under that resource goes.
            with self.subTest(signal=signal, case="bad resource"):
                req = helpers.make_signal_request(signal, "f-good%d" % n, 2, 1, 2)
                res_field, scope_field, item_field = ITEM_FIELDS[signal]
                rl = getattr(req, res_field)[0]
                bad_tag = "fbad%02d" % n
                set_req_tag(rl.resource.attributes, bad_tag)
                for sl in getattr(rl, scope_field):
                    for it in getattr(sl, item_field):
                        retag_item(signal, it, bad_tag)
                self.rejected_tags.add(bad_tag)
                rl.resource.attributes.append(kv("bad.attr", string_value=P))
                kept = copy.deepcopy(req)
                del getattr(kept, res_field)[0]
                want = count_items(signal, req) - count_items(signal, kept)
                self.assertGreater(want, 0)
                self.export_partial(signal, splice_bad_utf8(req.SerializeToString(), n), kept,
                                    want, "%s[0].resource.attributes[" % res_field,
                                    "invalid UTF-8")
                rejected[signal] += want
                n += 1

            # Every item bad: nothing accepted, so the request is refused whole.
            with self.subTest(signal=signal, case="all bad"):
                tag = "fbad%02d" % n
                req = helpers.make_signal_request(signal, tag, 1, 1, 2)
                for k, (_, _, it) in enumerate(helpers.request_items(signal, req)):
                    if k % 2 or (signal == METRICS and it.WhichOneof("data") == "summary"):
                        break_utf8(signal, it)   # (a summary has no exemplar)
                    else:
                        break_id(signal, it)
                self.assert_rejected(signal, splice_bad_utf8(req.SerializeToString(), n),
                                     INVALID_ARGUMENT, "every item bad", tag)
                rejected[signal] += count_items(signal, req)
                n += 1
        for signal in ALL_SIGNALS:
            with self.subTest(counter="rejected " + signal):
                self.assert_metric_equals("lookout_receiver_rejected_%s_total"
                                          % SIGNALS[signal].items_word, rejected[signal],
                                          receiver="otlp", transport="grpc")
        self.finish()

    def test_e_oversized_rejected(self):
        self.start_all(max_recv_msg_size="1MiB")
        proxy = CountingProxy(self.agent.grpc_port)
        self.addCleanup(proxy.close)
        bomb_client = Client("127.0.0.1:%d" % proxy.port, own_connection=True)
        self.addCleanup(bomb_client.close)
        for signal in ALL_SIGNALS:
            tag = "e-big-%s" % signal
            big = self._with_payload(signal, tag, AnyValue(string_value="x" * (MAX_RECV_BYTES + 4096)))
            self.assertGreater(big.ByteSize(), MAX_RECV_BYTES)
            self.assert_rejected(signal, big.SerializeToString(), RESOURCE_EXHAUSTED,
                                 "oversized, plain", tag)

            tag = "e-bomb-%s" % signal
            bomb = self._with_payload(signal, tag, AnyValue(bytes_value=bytes(16 << 20)))
            before = proxy.upstream_bytes
            with self.subTest(signal=signal, case="gzip bomb"):
                got = bomb_client.status_of(bomb_client.call_raw, SIGNALS[signal].method,
                                            bomb.SerializeToString(),
                                            compression=grpc.Compression.Gzip)
                self.assertEqual(got, RESOURCE_EXHAUSTED, self.agent.log_tail(8))
                self.assertLess(proxy.upstream_bytes - before, 256 << 10,
                                "the bomb was not sent compressed")
            self.count_status(RESOURCE_EXHAUSTED)
            self.rejected_tags.add(tag)
            self.follow_up(signal, "gzip bomb")

            fits = self._with_payload(signal, "e-fits-%s" % signal,
                                      AnyValue(string_value="y" * (MAX_RECV_BYTES // 2)))
            self.export_signal_ok(signal, fits)
        self.finish()

    @staticmethod
    def _with_payload(signal, tag, value):
        req, _, _, item = single_item_request(signal, tag)
        attrs = (item.gauge.data_points[0].attributes if signal == METRICS else item.attributes)
        attrs.append(helpers.KeyValue(key="payload", value=value))
        return req


if __name__ == "__main__":
    unittest.main()
