"""End-to-end tests of large compressed requests, which the receivers inflate on
libuv's thread pool (LK_INFLATE_OFFLOOP_BYTES, 64 KiB compressed, and more)
while the loop serves everything else.

The agent runs with an `otlp` receiver speaking gRPC and HTTP and a traces
pipeline to one otlp/sink exporter. Large gzip requests over gRPC (several
streams on one HTTP/2 connection, and connections of their own) and over HTTP
(pipelined on one keep-alive connection) go in interleaved with small
uncompressed ones; every span must reach the sink exactly once. Clients that
hang up (or cancel the call) right after sending a large body, and a SIGTERM
while bodies are being inflated, must leave the agent serving, then exiting
cleanly (status 0: under ASan, no leak either).

Run all: sh test/integration/run.sh test_inflate (from the repo root, after `make`).
"""

import base64
import gzip
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  (puts the generated *_pb2 modules on sys.path)
from helpers import (AnyValue, Client, ExportTraceServiceRequest, kv,  # noqa: E402
                     next_id, single_span_request, spans_by_id, wait_until)
import test_traces  # noqa: E402  (its AgentTestCase; module import keeps its tests out)
from test_http import HttpConn, PROTOBUF, build_request  # noqa: E402

import grpc  # noqa: E402

OFFLOOP_BYTES = 64 * 1024   # LK_INFLATE_OFFLOOP_BYTES in agent/core/inflate_pool.h
TRACES_PATH = "/v1/traces"


def big_request(tag, spans=4, payload_bytes=30 * 1024):
    """A trace request whose spans carry base64 of random bytes: it gzips to
    more than OFFLOOP_BYTES (asserted), so the agent inflates it off the loop."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", string_value="inflate"))
    scope = rs.scope_spans.add()
    for i in range(spans):
        sp = scope.spans.add()
        sp.trace_id = next_id(16)
        sp.span_id = next_id(8)
        sp.name = "%s-%d" % (tag, i)
        sp.start_time_unix_nano = 1_700_000_000_000_000_000
        sp.end_time_unix_nano = sp.start_time_unix_nano + 1000
        payload = base64.b64encode(os.urandom(payload_bytes)).decode("ascii")
        sp.attributes.append(kv("payload", string_value=payload))
    assert len(gzip.compress(req.SerializeToString())) >= OFFLOOP_BYTES
    return req


def small_request(tag):
    return single_span_request(tag, AnyValue(string_value="small"))


class InflateTest(test_traces.AgentTestCase):

    def start_both(self, **config):
        self.start(http={"max_request_body_size": "4MiB"}, max_recv_msg_size="4MiB", **config)
        self.http_port = self.agent.http_port

    def grpc_ok(self, client, req, compress):
        try:
            client.export(req, compression=grpc.Compression.Gzip if compress else None)
        except grpc.RpcError as e:
            raise AssertionError("export failed: %s %s\n%s"
                                 % (e.code(), e.details(), self.agent.log_tail()))

    def test_a_large_gzip_requests_interleaved_with_small_ones(self):
        self.start_both()
        sent = []            # every request answered OK / 200
        lock = threading.Lock()
        errors = []

        def record(req):
            with lock:
                sent.append(req)

        def guarded(fn):
            def run():
                try:
                    fn()
                except Exception as e:  # reported after join
                    errors.append(e)
            return run

        shared = Client(self.agent.grpc_endpoint)   # streams on one HTTP/2 connection
        self.addCleanup(shared.close)

        def grpc_big(n, tag, client):
            for i in range(n):
                req = big_request("%s-%d" % (tag, i))
                self.grpc_ok(client, req, True)
                record(req)

        def grpc_big_own(tag):
            client = Client(self.agent.grpc_endpoint, own_connection=True)
            try:
                grpc_big(5, tag, client)
            finally:
                client.close()

        def grpc_small():
            for i in range(40):
                req = small_request("grpc-small-%d" % i)
                self.grpc_ok(shared, req, False)
                record(req)

        def http_pipelined(tag):
            # Large gzip, small plain, large gzip, small plain, ... in one
            # write: the answers must come back in the same order.
            conn = HttpConn(self.http_port, timeout=20)
            try:
                for round_ in range(3):
                    reqs, raw = [], b""
                    for i in range(4):
                        if i % 2 == 0:
                            req = big_request("%s-%d-%d" % (tag, round_, i))
                            raw += build_request("POST", TRACES_PATH,
                                                 gzip.compress(req.SerializeToString()),
                                                 PROTOBUF, {"Content-Encoding": "gzip"})
                        else:
                            req = small_request("%s-small-%d-%d" % (tag, round_, i))
                            raw += build_request("POST", TRACES_PATH, req.SerializeToString(),
                                                 PROTOBUF)
                        reqs.append(req)
                    conn.send(raw)
                    for req in reqs:
                        resp = conn.read_response()
                        if resp.status != 200:
                            raise AssertionError("HTTP %r" % resp)
                        record(req)
            finally:
                conn.close()

        def http_small():
            for i in range(20):
                req = small_request("http-small-%d" % i)
                conn = HttpConn(self.http_port)
                try:
                    resp = conn.request("POST", TRACES_PATH, req.SerializeToString(), PROTOBUF)
                finally:
                    conn.close()
                if resp.status != 200:
                    raise AssertionError("HTTP %r" % resp)
                record(req)

        threads = [threading.Thread(target=guarded(f)) for f in (
            lambda: grpc_big(5, "grpc-shared-a", shared),
            lambda: grpc_big(5, "grpc-shared-b", shared),
            lambda: grpc_big_own("grpc-own-a"),
            lambda: grpc_big_own("grpc-own-b"),
            grpc_small,
            lambda: http_pipelined("http-a"),
            lambda: http_pipelined("http-b"),
            http_small,
        )]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
        self.assertEqual(errors, [])
        self.assertEqual(len(sent), 4 * 5 * 1 + 40 + 2 * 3 * 4 + 20)
        self.assert_delivered(sent, timeout=30)
        total = sum(len(spans_by_id(r)) for r in sent)
        self.assert_metric_equals("lookout_receiver_accepted_spans_total", total,
                                  receiver="otlp")
        self.stop_agent()

    def test_b_clients_that_hang_up_mid_inflate(self):
        self.start_both()
        for round_ in range(3):
            big = [big_request("gone-%d-%d" % (round_, i), spans=8, payload_bytes=60 * 1024)
                   for i in range(6)]
            # gRPC: the call cancelled (RST_STREAM) or the channel closed (the
            # connection) right after the body went out.
            for i, req in enumerate(big):
                client = Client(self.agent.grpc_endpoint, own_connection=True)
                fut = client._export.future(req, timeout=10,
                                            compression=grpc.Compression.Gzip,
                                            wait_for_ready=True)
                time.sleep(random.uniform(0, 0.02))
                if i % 2 == 0:
                    fut.cancel()
                client.close()
            # HTTP: the body, then the socket closed at once.
            for req in big:
                req = big_request("gone-http-%d" % round_, spans=8, payload_bytes=60 * 1024)
                s = socket.create_connection(("127.0.0.1", self.http_port), timeout=5)
                s.sendall(build_request("POST", TRACES_PATH,
                                        gzip.compress(req.SerializeToString()), PROTOBUF,
                                        {"Content-Encoding": "gzip"}))
                s.close()
            # Still serving, both ways.
            self.grpc_ok(self.client, small_request("after-%d" % round_), False)
            req = small_request("after-http-%d" % round_)
            conn = HttpConn(self.http_port)
            self.addCleanup(conn.close)
            resp = conn.request("POST", TRACES_PATH, req.SerializeToString(), PROTOBUF)
            self.assertEqual(resp.status, 200, repr(resp))
            self.assertTrue(self.agent.alive, self.agent.log_tail())
        # Nothing arrives twice (spans_by_id raises on a duplicate id); the
        # small ones arrive.
        want = {"after-%d" % r for r in range(3)} | {"after-http-%d" % r for r in range(3)}

        def names():
            return {v[4].name for v in spans_by_id(self.sink.spans()).values()}
        wait_until(lambda: want <= names(), 10)
        self.assertLessEqual(want, names())
        self.stop_agent()

    def test_c_sigterm_while_inflating(self):
        self.start_both()
        futures = []
        clients = []
        for i in range(8):
            client = Client(self.agent.grpc_endpoint, own_connection=True)
            clients.append(client)
            req = big_request("term-%d" % i, spans=8, payload_bytes=60 * 1024)
            futures.append(client._export.future(req, timeout=10,
                                                 compression=grpc.Compression.Gzip,
                                                 wait_for_ready=True))
        socks = []
        for i in range(6):
            req = big_request("term-http-%d" % i, spans=8, payload_bytes=60 * 1024)
            s = socket.create_connection(("127.0.0.1", self.http_port), timeout=5)
            s.sendall(build_request("POST", TRACES_PATH, gzip.compress(req.SerializeToString()),
                                    PROTOBUF, {"Content-Encoding": "gzip"}))
            socks.append(s)
        time.sleep(0.05)
        self.stop_agent()   # exit status 0 within shutdown_timeout, JSON logs
        for f in futures:
            try:
                f.result(timeout=10)
            except grpc.RpcError:
                pass        # answered, or cut: either is fine
        for c in clients:
            c.close()
        for s in socks:
            s.close()


if __name__ == "__main__":
    sys.exit(helpers.main(sys.argv[1:] or ["test_inflate"]))
