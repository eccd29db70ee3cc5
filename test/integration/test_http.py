"""End-to-end tests of the OTLP/HTTP receiver: HTTP client -> build/lookout -> sink.

The agent runs with an `otlp` receiver speaking gRPC and HTTP (max_request_body_size
1MiB, read_timeout 2s, max_header_bytes 16KiB) and pipelines for traces, metrics
and logs to one otlp/sink exporter (gRPC). Requests go over raw sockets, so that
keep-alive, pipelining, chunked bodies and misbehaving clients are under the
test's control.

Expected behaviour (OTLP/HTTP specification): POST /v1/traces|metrics|logs with
application/x-protobuf or application/json (OTLP/JSON: hex ids, lowerCamelCase
keys, 64-bit integers as strings, enums as integers, unknown fields ignored),
optionally gzip-compressed; 200 with an Export*ServiceResponse in the request's
content type; 400 with a google.rpc.Status in the request's content type for a
body that does not decode or validate; 200 with a partial_success when only some
items are bad (invalid UTF-8, an id of the wrong length), the others forwarded;
404, 405, 413, 415, 431 and 408 (or a closed connection) for the rest; and through
it all, other clients served.

Run all: sh test/integration/run.sh (from the repo root, after `make`).
Run one: /usr/bin/python3 test/integration/test_http.py HttpTest.test_a_protobuf_round_trip
"""

import base64
import copy
import gzip
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  (puts the generated *_pb2 modules on sys.path)
from helpers import (ALL_SIGNALS, LOGS, MAX_HTTP_BODY_BYTES, MAX_HTTP_HEADER_BYTES,  # noqa: E402
                     METRICS, SIGNALS, TRACES, break_id, break_utf8, count_items, drop_items,
                     item_at, item_path, items_by_key, item_tags, kv, next_id, retag_item,
                     seconds, splice_bad_utf8, wait_until)
import test_traces  # noqa: E402  (its AgentTestCase; module import keeps its tests out)

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, json_format  # noqa: E402
from google.protobuf import message_factory  # noqa: E402

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
HTTP_TIMEOUT = 5.0    # seconds for any one response
SLACK = 1.5           # seconds beyond read_timeout for a slow client to be cut off

REJECTED_FIELD = {TRACES: "rejected_spans", METRICS: "rejected_data_points",
                  LOGS: "rejected_log_records"}


# --- google.rpc.Status, built here: Debian has no googleapis-common-protos.

def _status_class():
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    f = descriptor_pb2.FileDescriptorProto(name="lookout_test/google_rpc_status.proto",
                                           package="google.rpc", syntax="proto3",
                                           dependency=["google/protobuf/any.proto"])
    m = f.message_type.add(name="Status")
    fd = descriptor_pb2.FieldDescriptorProto
    m.field.add(name="code", json_name="code", number=1, type=fd.TYPE_INT32,
                label=fd.LABEL_OPTIONAL)
    m.field.add(name="message", json_name="message", number=2, type=fd.TYPE_STRING,
                label=fd.LABEL_OPTIONAL)
    m.field.add(name="details", json_name="details", number=3, type=fd.TYPE_MESSAGE,
                type_name=".google.protobuf.Any", label=fd.LABEL_REPEATED)
    pool.Add(f)
    desc = pool.FindMessageTypeByName("google.rpc.Status")
    return pool, message_factory.MessageFactory(pool).GetPrototype(desc)


STATUS_POOL, Status = _status_class()


# --- OTLP/JSON

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json_dict(message):
    """|message| as OTLP/JSON: proto3 JSON with lowerCamelCase keys, 64-bit
    integers as strings, enums as integers, and trace/span ids as hex (not
    base64, unlike every other bytes field)."""
    d = json_format.MessageToDict(message, use_integers_for_enums=True)

    def fix(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in _ID_KEYS and isinstance(v, str):
                    o[k] = base64.b64decode(v).hex()
                else:
                    fix(v)
        elif isinstance(o, list):
            for v in o:
                fix(v)
    fix(d)
    return d


def otlp_json(message, ascii_only=True):
    """OTLP/JSON bytes; with ascii_only, non-ASCII text as \\u escapes (surrogate
    pairs beyond the BMP), otherwise as UTF-8."""
    return json.dumps(otlp_json_dict(message), ensure_ascii=ascii_only).encode("utf-8")


# --- raw HTTP/1.1

class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers   # {lower-case name: value}
        self.body = body

    @property
    def content_type(self):
        """Media type without parameters, lower case, or None."""
        v = self.headers.get("content-type")
        return v.split(";")[0].strip().lower() if v is not None else None

    def __repr__(self):
        return "<HTTP %d %s %r %r>" % (self.status, self.reason, self.headers, self.body[:200])


def build_request(method, path, body=b"", content_type=None, headers=None, chunks=None,
                  content_length=None):
    """Bytes of one HTTP/1.1 request. |chunks|: send the body chunked, in these
    pieces. |content_length|: a Content-Length other than len(body)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    if content_type:
        lines.append("Content-Type: " + content_type)
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    else:
        if method != "GET" or body:
            lines.append("Content-Length: %d" % (len(body) if content_length is None
                                                 else content_length))
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class HttpConn:
    """One TCP connection; requests written as given, responses read in order."""

    def __init__(self, port, timeout=HTTP_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def request(self, *args, **kwargs):
        self.send(build_request(*args, **kwargs))
        return self.read_response()

    def read_response(self):
        """Reads one response; raises ConnectionError on EOF before its end."""
        line = self.rfile.readline(65537)
        if not line:
            raise ConnectionError("connection closed before a response")
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ConnectionError("bad status line %r" % line)
        status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
        headers = {}
        while True:
            h = self.rfile.readline(65537)
            if not h:
                raise ConnectionError("connection closed in response headers")
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self._read_exact(size)
                self.rfile.readline(8)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = self.rfile.read()
        return Response(status, reason, headers, body)

    def _read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("connection closed in a response body")
        return data

    def peer_closed(self, timeout):
        """True if the peer closes (EOF or reset) within |timeout| without
        sending anything more."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except ConnectionError:
            return True

    def close(self):
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


class HttpTest(test_traces.AgentTestCase):
    """One agent per test with gRPC and HTTP protocols and pipelines for every
    signal; everything sent is remembered to check the sink and /metrics."""

    def setUp(self):
        self.valid = {s: [] for s in ALL_SIGNALS}   # requests answered 200
        self.rejected_tags = set()
        self.http_counts = {}                       # HTTP status -> requests
        self.turn = 0                               # rotates follow-up signal and type

    def start_http(self, **config):
        self.start(signals=ALL_SIGNALS, http=True, **config)
        self.port = self.agent.http_port
        self.read_timeout = seconds(self.agent.http_settings["read_timeout"])

    def conn(self):
        c = HttpConn(self.port)
        self.addCleanup(c.close)
        return c

    def count(self, status, n=1):
        self.http_counts[status] = self.http_counts.get(status, 0) + n

    # --- requests

    def body_of(self, signal, request, content_type, compress=False):
        # JSON: \u escapes when plain, raw UTF-8 when compressed (both must work).
        body = request.SerializeToString() if content_type.startswith(PROTOBUF) \
            else otlp_json(request, ascii_only=not compress)
        return gzip.compress(body) if compress else body

    def assert_export_response(self, signal, resp, content_type, what=""):
        """200 with an Export*ServiceResponse in |content_type| and nothing rejected."""
        self.assertEqual(resp.status, 200, "%s %s: %r\n%s" % (signal, what, resp,
                                                             self.agent.log_tail(8)))
        want_ct = content_type.split(";")[0].strip()
        self.assertEqual(resp.content_type, want_ct, "%s %s: response Content-Type" % (signal, what))
        cls = SIGNALS[signal].response_cls
        if want_ct == PROTOBUF:
            msg = cls.FromString(resp.body)
        else:
            msg = json_format.Parse(resp.body.decode("utf-8"), cls())
        if msg.HasField("partial_success"):
            self.assertEqual(getattr(msg.partial_success, REJECTED_FIELD[signal]), 0, str(msg))
        return msg

    def post_ok(self, signal, request, content_type=PROTOBUF, compress=False, conn=None,
                chunks=None, what=""):
        """POSTs |request| (fresh connection unless |conn|); asserts 200 with a
        clean response; remembers the request for the sink checks."""
        body = self.body_of(signal, request, content_type, compress)
        headers = {"Content-Encoding": "gzip"} if compress else None
        c = conn or HttpConn(self.port)
        try:
            if chunks is not None:
                step = max(1, len(body) // chunks)
                parts = [body[i:i + step] for i in range(0, len(body), step)]
                resp = c.request("POST", SIGNALS[signal].http_path, content_type=content_type,
                                 headers=headers, chunks=parts)
            else:
                resp = c.request("POST", SIGNALS[signal].http_path, body, content_type, headers)
        finally:
            if conn is None:
                c.close()
        self.assert_export_response(signal, resp, content_type, what)
        self.valid[signal].append(request)
        self.count(200)
        return resp

    def follow_up(self, what):
        """After a rejection: a valid request on a new connection is served."""
        self.turn += 1
        signal = ALL_SIGNALS[self.turn % 3]
        req = helpers.make_signal_request(signal, "after-%s" % next_id(4).hex(), 1, 1, 1)
        with self.subTest(follow_up_after=what):
            self.post_ok(signal, req, (PROTOBUF, JSON)[self.turn % 2], what="after " + what)

    def assert_status_body(self, resp, content_type, what):
        """A 4xx/5xx body that is a google.rpc.Status in the request's type."""
        self.assertEqual(resp.content_type, content_type, "%s: Content-Type of %r" % (what, resp))
        try:
            if content_type == PROTOBUF:
                st = Status.FromString(resp.body)
            else:
                st = json_format.Parse(resp.body.decode("utf-8"), Status(),
                                       descriptor_pool=STATUS_POOL)
        except Exception as e:  # DecodeError, ParseError, UnicodeDecodeError
            self.fail("%s: body is not a google.rpc.Status in %s: %s: %r"
                      % (what, content_type, e, resp.body[:300]))
        self.assertTrue(st.message, "%s: Status.message is empty: %r" % (what, resp.body[:300]))
        return st

    def expect(self, status, raw, what, tag=None, status_type=None):
        """Sends raw request bytes on a new connection (concurrently reading, so
        an early answer is seen); asserts |status| and, with |status_type|, a
        Status body in that type; then a follow-up on another connection."""
        with self.subTest(case=what):
            resp = self.send_raw(raw)
            self.assertIsInstance(resp, Response, "%s: no response (%s)\n%s"
                                  % (what, resp, self.agent.log_tail(8)))
            self.assertEqual(resp.status, status, "%s: %r" % (what, resp))
            if status_type:
                self.assert_status_body(resp, status_type, what)
        self.count(status)
        if tag:
            self.rejected_tags.add(tag)
        self.follow_up(what)

    def send_raw(self, raw):
        """Writes |raw| on a new connection from a thread while reading the
        response; returns the Response, or the exception reading failed with."""
        c = HttpConn(self.port)
        err = []

        def writer():
            try:
                c.send(raw)
            except OSError as e:   # the server answered early and closed: fine
                err.append(e)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            return c.read_response()
        except (OSError, ConnectionError) as e:
            return e
        finally:
            t.join(HTTP_TIMEOUT)
            c.close()

    # --- checks

    def assert_signal_delivered(self, signal, requests, timeout=helpers.DELIVERY_TIMEOUT):
        expected = {}
        for req in requests:
            expected.update(items_by_key(signal, req))
        want = sum(count_items(signal, r) for r in requests)

        def arrived(sink):
            keys = {helpers.item_key(signal, item) for _, _, item in sink.items(signal)}
            return keys >= set(expected) and sink.item_count(signal) >= want
        self.sink.wait_for(arrived, timeout)
        self.assertEqual(self.sink.item_count(signal), want, "%s items at the sink\n%s"
                         % (signal, self.agent.log_tail()))
        actual = items_by_key(signal, self.sink.items(signal))
        self.assertEqual(set(actual), set(expected), "%s item keys at the sink" % signal)
        for key, w in expected.items():
            self.assertEqual(actual[key], w, "%s item %r (resource, schema, scope, schema, "
                             "item) at the sink" % (signal, key))

    def http_status_metric(self, status):
        """Requests counted with http_status=|status| in whichever family the
        agent uses (lookout_receiver_requests_total or
        lookout_receiver_http_requests_total); None if no series."""
        m = self.agent.metrics()
        values = [m.value(fam, http_status=str(status)) for fam in
                  ("lookout_receiver_requests_total", "lookout_receiver_http_requests_total")]
        values = [v for v in values if v is not None]
        return sum(values) if values else None

    def assert_counters(self, at_least=()):
        for signal in ALL_SIGNALS:
            want = sum(count_items(signal, r) for r in self.valid[signal])
            with self.subTest(counter=signal):
                self.assert_metric_equals("lookout_receiver_accepted_%s_total"
                                          % SIGNALS[signal].items_word, want,
                                          receiver="otlp", transport="http")
        for status, n in sorted(self.http_counts.items()):
            with self.subTest(http_status=status):
                cmp = (lambda v, n=n: v >= n) if status in at_least else (lambda v, n=n: v == n)
                seen = [None]

                def check(status=status, cmp=cmp):
                    seen[0] = self.http_status_metric(status)
                    return seen[0] is not None and cmp(seen[0])
                if not wait_until(check, test_traces.METRIC_WAIT, 0.1):
                    self.fail("HTTP requests counted with http_status=%d: %r, sent %d\n%s"
                              % (status, seen[0], n, self.series_dump()))

    def series_dump(self):
        return "\n".join(line for line in self.agent.metrics().text.splitlines()
                         if line.startswith("lookout_receiver"))

    def assert_nothing_rejected_forwarded(self):
        for call in self.sink.calls():
            self.assertTrue(call.ok, "sink could not decode a %s request: %s"
                            % (call.signal, call.details))
            for tag in self.rejected_tags:
                self.assertNotIn(tag.encode(), call.raw, "bytes of rejected %s at the sink" % tag)
        for signal in ALL_SIGNALS:
            self.assertEqual(item_tags(signal, self.sink.items(signal)) & self.rejected_tags,
                             set(), "%s items of rejected requests at the sink" % signal)

    def assert_promtool(self):
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if not os.access(promtool, os.X_OK):
            self.fail("promtool not found (Debian: apt-get install prometheus)")
        status, body = self.agent.http_get("/metrics")
        self.assertEqual(status, 200)
        check = subprocess.run([promtool, "check", "metrics"], input=body,
                               capture_output=True, timeout=30)
        self.assertEqual(check.returncode, 0, "promtool check metrics:\n%s%s"
                         % (check.stdout.decode(), check.stderr.decode()))

    def finish(self, at_least=()):
        for signal in ALL_SIGNALS:
            self.assert_signal_delivered(signal, self.valid[signal])
        self.assert_nothing_rejected_forwarded()
        self.assert_counters(at_least)
        self.assert_promtool()
        self.assertTrue(self.agent.alive, "agent died\n" + self.agent.log_tail())
        self.stop_agent()

    # --- tests

    def test_a_protobuf_round_trip(self):
        self.start_http()
        for signal in ALL_SIGNALS:
            with self.subTest(signal=signal):
                self.post_ok(signal, helpers.make_signal_request(signal, "a-%s" % signal))
                self.post_ok(signal, helpers.make_signal_request(signal, "a-gz-%s" % signal),
                             compress=True, what="gzip")
                empty = self.conn().request("POST", SIGNALS[signal].http_path,
                                            b"", PROTOBUF)
                self.assert_export_response(signal, empty, PROTOBUF, "empty body")
                self.count(200)
        # Every metric kind, counted by data point.
        total_points = sum(count_items(METRICS, r) for r in self.valid[METRICS])
        for kind in helpers.METRIC_KINDS:
            req = helpers.make_metrics_request("a-%s" % kind, 1, 1, kinds=(kind,))
            self.post_ok(METRICS, req, what=kind)
            total_points += count_items(METRICS, req)
            with self.subTest(kind=kind):
                self.assert_metric_equals("lookout_receiver_accepted_metric_points_total",
                                          total_points, receiver="otlp", transport="http")
        self.finish()

    def test_b_json_round_trip(self):
        self.start_http()
        for signal in ALL_SIGNALS:
            with self.subTest(signal=signal):
                req = helpers.make_signal_request(signal, "b-%s" % signal)
                self.post_ok(signal, req, JSON)
                self.post_ok(signal, helpers.make_signal_request(signal, "b-gz-%s" % signal),
                             JSON, compress=True, what="gzip")
                self.post_ok(signal, helpers.make_signal_request(signal, "b-cs-%s" % signal, 1, 1),
                             JSON + "; charset=utf-8", what="charset parameter")
                empty = self.conn().request("POST", SIGNALS[signal].http_path, b"{}", JSON)
                self.assert_export_response(signal, empty, JSON, "{}")
                self.count(200)
        # The same data as protobuf and as JSON reach the sink identical: one
        # request sent twice, its ids changed in the protobuf copy only.
        for signal in ALL_SIGNALS:
            as_json = helpers.make_signal_request(signal, "b-same-%s" % signal, 1, 2, 2)
            as_pb = type(as_json)()
            as_pb.CopyFrom(as_json)
            for _, _, item in helpers.request_items(signal, as_pb):
                if signal == TRACES:
                    item.span_id = next_id(8)
                elif signal == METRICS:
                    item.name += ".pb"
                else:
                    for a in item.attributes:
                        if a.key == helpers.TEST_ITEM_KEY:
                            a.value.string_value += ".pb"
            self.post_ok(signal, as_json, JSON, what="same as protobuf")
            self.post_ok(signal, as_pb, PROTOBUF, what="same as JSON")
        # OTLP/JSON details: unknown fields are ignored, 64-bit integers may be
        # JSON numbers too, keys of attributes are free text.
        orig = helpers.make_signal_request(LOGS, "b-extra", 1, 1, 1)
        d = otlp_json_dict(orig)
        d["unknownTopLevel"] = {"x": [1, 2]}
        rec = d["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
        rec["futureField"] = "ignored"
        rec["observedTimeUnixNano"] = 1700000000000000005   # a number, not a string
        rec["attributes"].append({"key": "n", "value": {"intValue": 42}})
        resp = self.conn().request("POST", "/v1/logs", json.dumps(d).encode(), JSON)
        self.assert_export_response(LOGS, resp, JSON, "unknown fields, int64 as number")
        self.count(200)
        lr = orig.resource_logs[0].scope_logs[0].log_records[0]
        lr.observed_time_unix_nano = 1700000000000000005
        lr.attributes.append(kv("n", int_value=42))
        self.valid[LOGS].append(orig)
        self.finish()

    def test_c_keepalive_pipelining_chunked(self):
        self.start_http()
        c = self.conn()
        for i in range(6):   # one connection, one request after another
            signal = ALL_SIGNALS[i % 3]
            self.post_ok(signal, helpers.make_signal_request(signal, "c-ka-%d" % i, 1, 1, 2),
                         (PROTOBUF, JSON)[i % 2], conn=c, what="keep-alive #%d" % i)
        # Pipelining: three requests in one write, answered in order (told apart
        # by content type and status).
        t1 = helpers.make_signal_request(TRACES, "c-pipe-1", 1, 1, 2)
        l2 = helpers.make_signal_request(LOGS, "c-pipe-2", 1, 1, 2)
        m3 = helpers.make_signal_request(METRICS, "c-pipe-3", 1, 1)
        c.send(build_request("POST", "/v1/traces", t1.SerializeToString(), PROTOBUF)
               + build_request("POST", "/v1/logs", otlp_json(l2), JSON)
               + build_request("POST", "/v1/metrics", m3.SerializeToString(), PROTOBUF))
        self.assert_export_response(TRACES, c.read_response(), PROTOBUF, "pipelined #1")
        self.assert_export_response(LOGS, c.read_response(), JSON, "pipelined #2")
        self.assert_export_response(METRICS, c.read_response(), PROTOBUF, "pipelined #3")
        self.valid[TRACES].append(t1)
        self.valid[LOGS].append(l2)
        self.valid[METRICS].append(m3)
        self.count(200, 3)
        # Pipelined, the last one bad: the two before are still answered 200.
        t4 = helpers.make_signal_request(TRACES, "c-pipe-4", 1, 1, 1)
        bad = helpers.make_signal_request(LOGS, "c-pipe-bad", 1, 1, 1).SerializeToString()[:-2]
        self.rejected_tags.add("c-pipe-bad")
        c2 = self.conn()
        c2.send(build_request("POST", "/v1/traces", t4.SerializeToString(), PROTOBUF)
                + build_request("POST", "/v1/logs", bad, PROTOBUF))
        self.assert_export_response(TRACES, c2.read_response(), PROTOBUF, "pipelined good")
        r = c2.read_response()
        self.assertEqual(r.status, 400, "pipelined truncated protobuf: %r" % r)
        self.assert_status_body(r, PROTOBUF, "pipelined truncated protobuf")
        self.valid[TRACES].append(t4)
        self.count(200)
        self.count(400)
        # Chunked request bodies, plain and gzip, protobuf and JSON, on the
        # keep-alive connection.
        for i, signal in enumerate(ALL_SIGNALS):
            self.post_ok(signal, helpers.make_signal_request(signal, "c-ch-%s" % signal),
                         PROTOBUF, conn=c, chunks=7, what="chunked")
            self.post_ok(signal, helpers.make_signal_request(signal, "c-chgz-%s" % signal),
                         JSON, compress=True, conn=c, chunks=3, what="chunked gzip JSON")
        # The connection is still usable after all that.
        self.post_ok(LOGS, helpers.make_signal_request(LOGS, "c-last", 1, 1, 1), conn=c)
        self.finish()

    def test_d_bad_requests(self):
        self.start_http()
        good_trace = helpers.make_signal_request(TRACES, "d-src", 1, 1, 1)
        good_json = otlp_json_dict(good_trace)

        def post(path, body, ctype=PROTOBUF, headers=None, **kw):
            return build_request("POST", path, body, ctype, headers, **kw)

        def span_json(tag, **fields):
            d = otlp_json_dict(helpers.make_signal_request(TRACES, tag, 1, 1, 1))
            d["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(fields)
            return json.dumps(d).encode()

        # 400: the body does not decode or validate; a Status in the request's type.
        trunc = helpers.make_signal_request(METRICS, "d-trunc", 1, 1).SerializeToString()
        cases = [
            ("truncated protobuf", "/v1/metrics", trunc[:-5], PROTOBUF, "d-trunc"),
            ("garbage protobuf", "/v1/traces", b"\xff" * 40, PROTOBUF, None),
            ("bad JSON", "/v1/traces", json.dumps(good_json).encode()[:-7], JSON, None),
            ("not JSON at all", "/v1/logs", b"hello", JSON, None),
            ("JSON array at top level", "/v1/logs", b"[]", JSON, None),
            ('JSON "resourceSpans": 5', "/v1/traces", b'{"resourceSpans": 5}', JSON, None),
            ('JSON "spans": 5', "/v1/traces",
             b'{"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}', JSON, None),
            ('JSON "startTimeUnixNano": {}', "/v1/traces",
             span_json("d-json-time", startTimeUnixNano={}), JSON, "d-json-time"),
            ('JSON "name": 7', "/v1/traces", span_json("d-json-name", name=7), JSON,
             "d-json-name"),
            ("JSON traceId of 15 bytes", "/v1/traces",
             span_json("d-json-tid", traceId="01" * 15), JSON, "d-json-tid"),
            ("JSON traceId not hex", "/v1/traces",
             span_json("d-json-hex", traceId="zz" * 16), JSON, "d-json-hex"),
            ("JSON spanId of 7 bytes", "/v1/traces",
             span_json("d-json-sid", spanId="02" * 7), JSON, "d-json-sid"),
            ("JSON invalid UTF-8", "/v1/traces",
             span_json("d-json-utf8", name="PLCHLDR!").replace(b"PLCHLDR!", b"ab\xc3\x28cdef"),
             JSON, "d-json-utf8"),
            ("protobuf invalid UTF-8", "/v1/logs",
             self._bad_utf8_logs("d-pb-utf8"), PROTOBUF, "d-pb-utf8"),
            ("protobuf span_id of 7 bytes", "/v1/traces",
             self._short_span_id("d-pb-sid"), PROTOBUF, "d-pb-sid"),
            ("gzip body that is not gzip", "/v1/traces", b"\x1f\x8b\x08\x00garbage", PROTOBUF,
             None, {"Content-Encoding": "gzip"}),
        ]
        for case in cases:
            what, path, body, ctype, tag = case[:5]
            headers = case[5] if len(case) > 5 else None
            self.expect(400, post(path, body, ctype, headers), what, tag, status_type=ctype)

        # 415, 404, 405.
        tr = good_trace.SerializeToString()
        self.expect(415, post("/v1/traces", tr, "text/plain"), "text/plain")
        self.expect(415, post("/v1/traces", tr, None), "no Content-Type")
        for path in ("/v1/nope", "/v2/traces", "/", "/v1/traces/extra", "/v1/trace"):
            self.expect(404, post(path, tr), "unknown path " + path)
        get = self.send_raw(build_request("GET", "/v1/traces"))
        with self.subTest(case="GET /v1/traces"):
            self.assertIsInstance(get, Response, str(get))
            self.assertEqual(get.status, 405, repr(get))
            self.assertIn("POST", get.headers.get("allow", ""), "405 without Allow: POST")
        self.count(405)
        self.follow_up("GET")
        self.expect(405, build_request("PUT", "/v1/logs", tr, PROTOBUF), "PUT /v1/logs")

        # 413: body over 1 MiB, by Content-Length, chunked, and inflated.
        big = helpers.make_signal_request(LOGS, "d-big", 1, 1, 1)
        big.resource_logs[0].scope_logs[0].log_records[0].body.string_value = \
            "x" * (MAX_HTTP_BODY_BYTES + 1024)
        big_raw = big.SerializeToString()
        self.expect(413, post("/v1/logs", big_raw), "body over 1 MiB", "d-big")
        self.expect(413, post("/v1/logs", b"", chunks=[big_raw[i:i + 65536] for i in
                                                      range(0, len(big_raw), 65536)]),
                    "chunked body over 1 MiB")
        bomb = helpers.make_signal_request(TRACES, "d-bomb", 1, 1, 1)
        bomb.resource_spans[0].scope_spans[0].spans[0].attributes.append(
            kv("payload", bytes_value=bytes(16 << 20)))
        bomb_gz = gzip.compress(bomb.SerializeToString())
        self.assertLess(len(bomb_gz), 64 << 10)
        self.expect(413, post("/v1/traces", bomb_gz, headers={"Content-Encoding": "gzip"}),
                    "gzip bomb", "d-bomb")
        bomb_json = gzip.compress(otlp_json(bomb))
        self.expect(413, post("/v1/traces", bomb_json, JSON, {"Content-Encoding": "gzip"}),
                    "gzip bomb, JSON")
        # Just under the limit is fine.
        fits = helpers.make_signal_request(LOGS, "d-fits", 1, 1, 1)
        fits.resource_logs[0].scope_logs[0].log_records[0].body.string_value = \
            "y" * (MAX_HTTP_BODY_BYTES - 4096)
        self.assertLessEqual(fits.ByteSize(), MAX_HTTP_BODY_BYTES)
        self.post_ok(LOGS, fits, what="just under 1 MiB")

        # 431: header section over 16 KiB (one big header; many small ones).
        self.expect(431, post("/v1/traces", tr, headers={"X-Pad": "a" * (MAX_HTTP_HEADER_BYTES + 100)}),
                    "one header over 16 KiB")
        many = {"X-Pad-%03d" % i: "b" * 190 for i in range(95)}
        self.assertGreater(sum(len(k) + len(v) + 4 for k, v in many.items()), MAX_HTTP_HEADER_BYTES)
        self.expect(431, post("/v1/traces", tr, headers=many), "95 headers, 18 KiB in all")
        self.finish()

    def _bad_utf8_logs(self, tag):
        req = helpers.make_signal_request(LOGS, tag, 1, 1, 1)
        req.resource_logs[0].scope_logs[0].log_records[0].body.string_value = "PLCHLDR!"
        raw = req.SerializeToString()
        self.assertEqual(raw.count(b"PLCHLDR!"), 1)
        return raw.replace(b"PLCHLDR!", b"ab\xed\xa0\x80def")

    def _short_span_id(self, tag):
        req = helpers.make_signal_request(TRACES, tag, 1, 1, 1)
        req.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01" * 7
        return req.SerializeToString()

    def test_f_partial_success(self):
        # Protobuf bodies (plain and gzip) with bad items among good ones: 200
        # with a partial_success, the good items forwarded as sent.
        self.start_http()
        rejected = {s: 0 for s in ALL_SIGNALS}
        n = 0

        def post_partial(signal, raw, kept, want, starts, has, compress=False):
            headers = {"Content-Encoding": "gzip"} if compress else None
            body = gzip.compress(raw) if compress else raw
            resp = self.conn().request("POST", SIGNALS[signal].http_path, body, PROTOBUF,
                                       headers)
            self.assertEqual(resp.status, 200, "%s: %r\n%s" % (signal, resp,
                                                              self.agent.log_tail(8)))
            self.assertEqual(resp.content_type, PROTOBUF)
            msg = SIGNALS[signal].response_cls.FromString(resp.body)
            self.assertTrue(msg.HasField("partial_success"), "%s: %r" % (signal, msg))
            ps = msg.partial_success
            self.assertEqual(getattr(ps, REJECTED_FIELD[signal]), want, str(msg))
            self.assertTrue(ps.error_message.startswith(starts),
                            "error_message %r, want it to start with %r"
                            % (ps.error_message, starts))
            self.assertIn(has, ps.error_message)
            self.valid[signal].append(kept)
            self.count(200)
            rejected[signal] += want

        for signal in ALL_SIGNALS:
            with self.subTest(signal=signal, case="bad string and bad id"):
                req = helpers.make_signal_request(signal, "f-good%d" % n, 2, 2, 2)
                first_pos, second_pos = (0, 1, 0), (1, 1, 1)
                first = item_at(signal, req, *first_pos)
                second = item_at(signal, req, *second_pos)
                tag = "fbad%02d" % n
                retag_item(signal, first, tag)
                retag_item(signal, second, tag)
                self.rejected_tags.add(tag)
                field = break_utf8(signal, first)
                break_id(signal, second)
                kept = drop_items(signal, req, {first_pos, second_pos})
                post_partial(signal, splice_bad_utf8(req.SerializeToString(), n), kept,
                             count_items(signal, req) - count_items(signal, kept),
                             item_path(signal, *first_pos) + "." + field + ": ",
                             "invalid UTF-8", compress=(n % 2 == 1))
                n += 1
            with self.subTest(signal=signal, case="bad scope name"):
                req = helpers.make_signal_request(signal, "f-good%d" % n, 1, 3, 2)
                res_field, scope_field, item_field = helpers.ITEM_FIELDS[signal]
                sl = getattr(getattr(req, res_field)[0], scope_field)[1]
                tag = "fbad%02d" % n
                for it in getattr(sl, item_field):
                    retag_item(signal, it, tag)
                self.rejected_tags.add(tag)
                sl.scope.name = helpers.PLACEHOLDER.decode()
                kept = copy.deepcopy(req)
                del getattr(getattr(kept, res_field)[0], scope_field)[1]
                post_partial(signal, splice_bad_utf8(req.SerializeToString(), n), kept,
                             count_items(signal, req) - count_items(signal, kept),
                             "%s[0].%s[1].scope.name: " % (res_field, scope_field),
                             "invalid UTF-8")
                n += 1
            # Nothing good left: 400 as before, the items counted as rejected.
            with self.subTest(signal=signal, case="all bad"):
                tag = "fbad%02d" % n
                req = helpers.make_signal_request(signal, tag, 2, 1, 1)
                for rl in getattr(req, helpers.ITEM_FIELDS[signal][0]):
                    rl.resource.attributes.append(kv("bad", string_value="PLCHLDR!"))
                raw = splice_bad_utf8(req.SerializeToString(), n)
                self.expect(400, build_request("POST", SIGNALS[signal].http_path, raw, PROTOBUF),
                            "every item bad", tag, status_type=PROTOBUF)
                rejected[signal] += count_items(signal, req)
                n += 1
        for signal in ALL_SIGNALS:
            with self.subTest(counter="rejected " + signal):
                self.assert_metric_equals("lookout_receiver_rejected_%s_total"
                                          % SIGNALS[signal].items_word, rejected[signal],
                                          receiver="otlp", transport="http")
        self.finish()

    def test_e_slow_and_broken_clients(self):
        # Slow clients are cut off after read_timeout while a normal client,
        # in a thread of its own, keeps getting 200s.
        self.start_http()
        limit = self.read_timeout + SLACK
        stop = threading.Event()
        normal = []   # (start, end, status or exception, signal, request)

        def keep_sending():
            deadline = time.monotonic() + 20
            n = 0
            while not stop.is_set() and time.monotonic() < deadline:
                signal = ALL_SIGNALS[n % 3]
                req = helpers.make_signal_request(signal, "e-n%d-%s" % (n, next_id(4).hex()),
                                                  1, 1, 1)
                t0 = time.monotonic()
                try:
                    c = HttpConn(self.port, timeout=self.read_timeout)
                    try:
                        r = c.request("POST", SIGNALS[signal].http_path,
                                      req.SerializeToString(), PROTOBUF)
                        outcome = r.status
                    finally:
                        c.close()
                except (OSError, ConnectionError) as e:
                    outcome = e
                normal.append((t0, time.monotonic(), outcome, signal, req))
                n += 1
                stop.wait(0.05)

        slow = {}   # what -> (seconds until cut off, 408 | "closed" | None)

        def run_slow(what, fn):
            try:
                slow[what] = fn()
            except Exception as e:  # recorded, asserted below
                slow[what] = (None, e)

        worker = threading.Thread(target=keep_sending, daemon=True)
        worker.start()
        try:
            self.assertTrue(wait_until(lambda: normal, 5), "normal client never answered")
            started = time.monotonic()
            req = helpers.make_signal_request(TRACES, "e-slow-headers", 1, 1, 1)
            headers_slow = build_request("POST", "/v1/traces", req.SerializeToString(),
                                         PROTOBUF, {"X-Filler": "f" * 60})
            body_tag = "e-slow-body"
            body_req = helpers.make_signal_request(LOGS, body_tag, 1, 1, 1).SerializeToString()
            stalled = build_request("POST", "/v1/logs", body_req, PROTOBUF)
            stalled = stalled[:len(stalled) - len(body_req) // 2]   # half the body, then nothing
            self.rejected_tags.update(("e-slow-headers", body_tag))
            slowers = [
                threading.Thread(target=run_slow, daemon=True, args=(
                    "headers one byte per 100 ms", lambda: self._dribble(headers_slow, 0.1, limit + 3))),
                threading.Thread(target=run_slow, daemon=True, args=(
                    "body stalls halfway", lambda: self._stall(stalled, limit + 3))),
            ]
            for t in slowers:
                t.start()
            for t in slowers:
                t.join(limit + 6)
            finished = time.monotonic()
            # A truncated body: Content-Length larger than what is sent, then close.
            trunc_tag = "e-trunc"
            trunc_body = helpers.make_signal_request(METRICS, trunc_tag, 1, 1).SerializeToString()
            c = HttpConn(self.port)
            c.send(build_request("POST", "/v1/metrics", trunc_body[:50], PROTOBUF,
                                 content_length=len(trunc_body)))
            c.close()
            self.rejected_tags.add(trunc_tag)
            # ... and a connection that closes mid-headers.
            c = HttpConn(self.port)
            c.send(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Le")
            c.close()
            n = len(normal)
            self.assertTrue(wait_until(lambda: len(normal) >= n + 3, 5),
                            "normal client stalled after the broken clients")
        finally:
            stop.set()
            worker.join(10)
        self.assertFalse(worker.is_alive(), "normal client thread did not stop")

        for what, (elapsed, outcome) in sorted(slow.items()):
            with self.subTest(slow_client=what):
                self.assertIn(outcome, (408, "closed"), "%s: not cut off (%r)" % (what, outcome))
                self.assertLessEqual(elapsed, limit, "%s: cut off after %.2fs, read_timeout %.1fs"
                                     % (what, elapsed, self.read_timeout))
        n408 = sum(1 for _, o in slow.values() if o == 408)
        if n408:
            self.count(408, n408)
        during = [x for x in normal if x[0] >= started and x[1] <= finished]
        for t0, t1, outcome, signal, req in normal:
            self.assertEqual(outcome, 200, "normal client at +%.2fs (%s)" % (t0 - started, signal))
            self.valid[signal].append(req)
            self.count(200)
        self.assertGreaterEqual(len(during), 5, "normal requests served while the slow "
                                "clients were connected (%.1fs)" % (finished - started))
        latency = max(t1 - t0 for t0, t1, _, _, _ in normal)
        self.assertLess(latency, 1.0, "slowest normal request (s)")
        self.finish(at_least=(408,))

    def _dribble(self, data, interval, give_up):
        """Sends |data| one byte per |interval|; returns (seconds until the
        server answered 408 or closed, 408 | "closed" | other status), or
        (elapsed, None) if neither happened within |give_up|."""
        c = HttpConn(self.port)
        t0 = time.monotonic()
        try:
            for i in range(len(data)):
                if time.monotonic() - t0 > give_up:
                    return time.monotonic() - t0, None
                r, _, _ = select.select([c.sock], [], [], interval)
                if r:
                    return self._slow_outcome(c, t0)
                try:
                    c.send(data[i:i + 1])
                except OSError:
                    return time.monotonic() - t0, "closed"
            return time.monotonic() - t0, "sent it all"
        finally:
            c.close()

    def _stall(self, data, give_up):
        c = HttpConn(self.port)
        t0 = time.monotonic()
        try:
            c.send(data)
            r, _, _ = select.select([c.sock], [], [], give_up)
            if not r:
                return time.monotonic() - t0, None
            return self._slow_outcome(c, t0)
        finally:
            c.close()

    @staticmethod
    def _slow_outcome(c, t0):
        """The connection is readable: a response (its status) or "closed"."""
        elapsed = time.monotonic() - t0
        try:
            resp = c.read_response()
        except (OSError, ConnectionError):
            return elapsed, "closed"
        if resp.status == 408 and not c.peer_closed(2.0):
            return elapsed, "408 but the connection stayed open"
        return elapsed, resp.status


if __name__ == "__main__":
    unittest.main()
