"""Configuration reload (SIGHUP, POST /-/reload) against real sinks.

Expected behaviour (docs/configuration.md "Reload"): an invalid file changes
nothing (POST answers 400 with file:line:col errors; the reload metrics say
failure); a valid one applies only the difference: unchanged receivers keep
their connections, exporters whose settings changed are replaced without
losing what was queued, added and removed exporters start and drain; a
listener that cannot be bound rolls the whole reload back.

The load test: traces over gRPC and log lines on the socket flow without a
pause while 50 SIGHUPs alternate valid changes (batch sizes, exporter headers,
Loki labels, an exporter added and removed) and invalid files; afterwards
every acknowledged span and every written line reached its sink exactly once,
the writer saw no error, the agent's open file count is back where it was,
and the reload counters tell the truth.

Run: sh test/integration/run.sh test_reload
"""

import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import YamlAgent, free_ports, make_request, spans_by_id, wait_until  # noqa: E402
from loki_sink import LokiSink  # noqa: E402
from otlp_sink import OtlpSink  # noqa: E402

DELIVERY = 30.0

BODY = """\
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:@GRPC_PORT@", max_recv_msg_size: {max_recv}}}
  lines:
    path: @DIR@/lines.sock
exporters:
  otlp/sink:
    endpoint: 127.0.0.1:{main_port}
    compression: none
    headers: {{x-reload-gen: "{gen}"}}
    batch: {{send_batch_size: {batch}, timeout: 50ms}}
    retry: {{initial_interval: 50ms, max_interval: 200ms}}
{extra}  loki:
    endpoint: http://127.0.0.1:{loki_port}/loki/api/v1/push
    labels: [{labels}]
    batch: {{timeout: 50ms}}
    retry: {{initial_interval: 50ms, max_interval: 200ms}}
pipelines:
  traces: {{receivers: [otlp], exporters: [{trace_exporters}]}}
  logs: {{receivers: [lines], exporters: [loki]}}
"""

EXTRA = """  otlp/second:
    endpoint: 127.0.0.1:{sink2_port}
    compression: none
    batch: {{timeout: 50ms}}
"""


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


class ReloadTest(unittest.TestCase):

    def setUp(self):
        self.sink = OtlpSink()
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.sink2 = OtlpSink()
        self.sink2.start()
        self.addCleanup(self.sink2.stop)
        self.sink3 = OtlpSink()
        self.sink3.start()
        self.addCleanup(self.sink3.stop)
        self.loki = LokiSink()
        self.loki.start()
        self.addCleanup(self.loki.stop)
        self.agent = None

    def body(self, gen=0, batch=1000, labels="service_name, host", extra=False,
             max_recv="1MiB", moved=False):
        """|moved|: otlp/sink sends to the third sink instead of the first."""
        main_port = self.sink3.port if moved else self.sink.port
        return BODY.format(main_port=main_port, loki_port=self.loki.port, gen=gen,
                           batch=batch, labels=labels, max_recv=max_recv,
                           extra=EXTRA.format(sink2_port=self.sink2.port) if extra else "",
                           trace_exporters="otlp/sink, otlp/second" if extra else "otlp/sink")

    def start_agent(self, body):
        self.agent = YamlAgent(body, log_level="info")
        self.client = helpers.start_agent_for(self, self.agent)

    def write_config(self, text):
        """Replaces the config file the way editors do (write aside, rename)."""
        path = self.agent.config_path
        text = (self.agent.config_text.split("receivers:")[0] +
                text.replace("@GRPC_PORT@", str(self.agent.grpc_port))
                    .replace("@HTTP_PORT@", str(self.agent.http_port))
                    .replace("@DIR@", self.agent.dir))
        with open(path + ".new", "w") as f:
            f.write(text)
        os.replace(path + ".new", path)

    def post_reload(self):
        url = "http://127.0.0.1:%d/-/reload" % self.agent.admin_port
        req = urllib.request.Request(url, data=b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def reloads(self, result):
        return self.agent.metric("lookout_config_reloads_total", result=result) or 0

    def test_invalid_file_changes_nothing(self):
        self.start_agent(self.body())
        self.write_config(self.body().replace("send_batch_size: 1000", "send_batch_size: -3")
                          + "bogus_key: 1\n")
        status, text = self.post_reload()
        self.assertEqual(status, 400, text)
        self.assertRegex(text, r"lookout\.yaml:\d+:\d+: ")
        self.assertIn("bogus_key", text)
        self.assertEqual(self.agent.metric("lookout_config_last_reload_successful"), 0)
        self.assertEqual(self.reloads("failure"), 1)
        self.assertEqual(self.reloads("success"), 0)
        # Still serving on the old configuration.
        resp = self.client.export(make_request("after-bad-reload", resources=1, scopes=1, spans=2))
        self.assertFalse(resp.HasField("partial_success") and
                         resp.partial_success.rejected_spans)
        self.assertTrue(self.sink.wait_for_spans(2, DELIVERY) >= 2)
        # A good file then reloads; the gauge says so.
        self.write_config(self.body(gen=1))
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        self.assertEqual(self.agent.metric("lookout_config_last_reload_successful"), 1)
        self.assertEqual(self.reloads("success"), 1)
        self.assertGreater(self.agent.metric(
            "lookout_config_last_reload_success_timestamp_seconds"), 0)

    def test_shutdown_under_load_delivers_what_was_acknowledged(self):
        self.start_agent(self.body())
        stop = threading.Event()
        acked = {}

        def send():
            i = 0
            while not stop.is_set():
                req = make_request("term-%d" % i, resources=1, scopes=1, spans=10)
                try:
                    self.client.export(req, timeout=5)
                    acked.update(spans_by_id(req))
                except Exception:  # refused or cut once shutdown began
                    pass
                i += 1
        t = threading.Thread(target=send)
        t.start()
        time.sleep(1.0)
        self.agent.send_signal(signal.SIGTERM)
        rc = self.agent.wait_exit()
        stop.set()
        t.join(10)
        self.assertEqual(rc, 0, self.agent.log_tail())
        self.assertGreater(len(acked), 0)
        got = spans_by_id(self.sink.items("traces"))
        self.assertEqual(set(acked) - set(got), set(), "acknowledged spans lost")

    def send_line(self, path, text):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as w:
            w.connect(path)
            w.sendall(('{"msg":"%s"}\n' % text).encode())

    def test_lines_receiver_changes_and_moves(self):
        self.start_agent(self.body())
        old = os.path.join(self.agent.dir, "lines.sock")
        self.send_line(old, "before")
        self.assertTrue(self.loki.wait_for_entries(1, DELIVERY) >= 1)
        # Another key on the same path: it closes and starts again there.
        self.write_config(self.body().replace("path: @DIR@/lines.sock",
                                              "path: @DIR@/lines.sock\n    max_line_bytes: 4096"))
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        self.assertTrue(wait_until(lambda: os.path.exists(old), 5.0))
        self.assertTrue(wait_until(lambda: self._can_connect(old), 5.0))
        self.send_line(old, "same-path")
        self.assertTrue(self.loki.wait_for_entries(2, DELIVERY) >= 2, self.agent.log_tail())
        # Another path: the new socket first, then the old one goes.
        self.write_config(self.body().replace("path: @DIR@/lines.sock", "path: @DIR@/moved.sock"))
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        new = os.path.join(self.agent.dir, "moved.sock")
        self.send_line(new, "moved")
        self.assertTrue(self.loki.wait_for_entries(3, DELIVERY) >= 3, self.agent.log_tail())
        self.assertTrue(wait_until(lambda: not os.path.exists(old), 5.0))
        lines = {e.line for p in self.loki.pushes() for st in p.streams for e in st.entries}
        self.assertTrue({'{"msg":"before"}', '{"msg":"same-path"}', '{"msg":"moved"}'} <= lines,
                        lines)

    def test_lines_keep_their_content_across_forms(self):
        """Lines go to an all-Loki pipeline as Loki entries and as OTLP logs
        otherwise: reloads between the two, with lines waiting in the queue or
        held by the receiver, change what they are carried as, not what
        arrives."""
        from otlp_sink import LOGS
        slow = self.body().replace("batch: {timeout: 50ms}\n    retry: {initial_interval: 50ms,"
                                   " max_interval: 200ms}\npipelines:",
                                   "batch: {timeout: 3s}\n    retry: {initial_interval: 50ms,"
                                   " max_interval: 200ms}\npipelines:")
        self.assertNotEqual(slow, self.body())
        self.start_agent(slow)
        sock = os.path.join(self.agent.dir, "lines.sock")

        def write(tag, n):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as w:
                w.connect(sock)
                w.sendall("".join('{"level":"warn","msg":"%s-%d","trace_id":'
                                  '"4bf92f3577b34da6a3ce929d0e0e4736"}\n' % (tag, i)
                                  for i in range(n)).encode())

        def loki_lines():
            return [(st.labels, e) for p in self.loki.pushes() for st in p.streams
                    for e in st.entries]

        # 1. Entries wait in the Loki queue (3 s batches) when a reload makes
        #    `level` a label: the replaced exporter turns them back into OTLP.
        write("queued", 50)
        self.assertTrue(wait_until(lambda: (self.agent.metric(
            "lookout_receiver_accepted_log_records_total", receiver="lines") or 0) >= 50, 10.0),
            self.agent.log_tail())
        self.write_config(self.body(labels="service_name, host, level"))
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        self.assertGreaterEqual(self.loki.wait_for_entries(50, DELIVERY), 50, self.agent.log_tail())
        # 2. An OTLP exporter joins the logs pipeline: lines go as OTLP to both.
        both = self.body().replace("exporters: [loki]", "exporters: [loki, otlp/logs]").replace(
            "pipelines:", "  otlp/logs:\n    endpoint: 127.0.0.1:%d\n    compression: none\n"
            "    batch: {timeout: 50ms}\npipelines:" % self.sink2.port)
        self.write_config(both)
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        write("both", 40)
        self.assertGreaterEqual(self.loki.wait_for_entries(90, DELIVERY), 90, self.agent.log_tail())
        self.assertGreaterEqual(self.sink2.wait_for_items(LOGS, 40, DELIVERY), 40)
        # 3. Back to Loki alone: entries again.
        self.write_config(self.body())
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        write("after", 30)
        self.assertGreaterEqual(self.loki.wait_for_entries(120, DELIVERY), 120,
                                self.agent.log_tail())

        got = loki_lines()
        msgs = sorted(json.loads(e.line)["msg"] for _, e in got)
        want = sorted(["queued-%d" % i for i in range(50)] + ["both-%d" % i for i in range(40)]
                      + ["after-%d" % i for i in range(30)])
        self.assertEqual(msgs, want)
        for labels, e in got:
            md = e.md
            self.assertEqual(md.get("trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736", e)
            msg = json.loads(e.line)["msg"]
            if msg.startswith("queued"):
                self.assertEqual(labels.get("level"), "warn")
                self.assertNotIn("level", md)
            else:
                self.assertNotIn("level", labels)
                self.assertEqual(md.get("level"), "warn")
            self.assertEqual(md.get("process_pid"), str(os.getpid()), md)
        otlp = self.sink2.items(LOGS)
        self.assertEqual(sorted(json.loads(rec.body.string_value)["msg"] for _, _, rec in otlp),
                         ["both-%d" % i for i in sorted(range(40), key=str)])
        for _, _, rec in otlp:
            self.assertEqual(rec.trace_id.hex(), "4bf92f3577b34da6a3ce929d0e0e4736")
            self.assertEqual(rec.severity_text, "warn")

    @staticmethod
    def _can_connect(path):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as w:
                w.connect(path)
            return True
        except OSError:
            return False

    def test_removed_exporter_drains_then_drops(self):
        self.start_agent(self.body(extra=True).replace("shutdown_timeout", "shutdown_timeout"))
        # The second sink goes down: what otlp/second holds cannot leave.
        self.sink2.stop()
        self.client.export(make_request("held", resources=1, scopes=1, spans=5))
        self.assertTrue(self.sink.wait_for_spans(5, DELIVERY) >= 5)
        self.write_config(self.body())  # otlp/second removed
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        # After shutdown_timeout (5 s) its 5 spans are dropped as "reload".
        def dropped():
            return self.agent.metric("lookout_dropped_items_total", signal="traces",
                                     exporter="otlp/second", reason="reload") or 0
        self.assertTrue(wait_until(lambda: dropped() == 5, 15.0),
                        "dropped: %r\n%s" % (dropped(), self.agent.log_tail()))
        # otlp/sink kept running and gets what comes next.
        self.client.export(make_request("after", resources=1, scopes=1, spans=2))
        self.assertTrue(self.sink.wait_for_spans(7, DELIVERY) >= 7)

    def test_prometheus_series_survive_a_reload(self):
        body = """\
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:@GRPC_PORT@"}
exporters:
  prometheus: {}
  otlp/sink:
    endpoint: 127.0.0.1:%d
    compression: none
    headers: {x-reload-gen: "%s"}
pipelines:
  metrics: {receivers: [otlp], exporters: [prometheus]}
  traces: {receivers: [otlp], exporters: [otlp/sink]}
"""
        self.start_agent(body % (self.sink.port, "0"))
        req = helpers.make_metrics_request("survive", resources=1, scopes=1)
        self.client.export_signal(helpers.METRICS, req)
        def series():
            return self.agent.metric("lookout_prometheus_series", exporter="prometheus") or 0
        self.assertTrue(wait_until(lambda: series() > 0, DELIVERY))
        before = series()
        _, text_before = self.agent.http_get("/metrics")
        self.write_config(body % (self.sink.port, "1"))  # only otlp/sink changes
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        self.assertEqual(series(), before)
        _, text_after = self.agent.http_get("/metrics")
        app = lambda t: sorted(l for l in t.decode().splitlines()
                               if l and not l.startswith(("#", "lookout_", "process_")))
        self.assertTrue(app(text_before))
        self.assertEqual(app(text_after), app(text_before))

    def test_watch_config_picks_up_an_edit(self):
        self.start_agent("watch_config: true\n" + self.body())
        self.client.export(make_request("before-edit", resources=1, scopes=1, spans=1))
        self.assertTrue(self.sink.wait_for_spans(1, DELIVERY) >= 1)
        # (write_config keeps the top of the file, watch_config included.) The
        # header the exporter sends changes.
        self.write_config(self.body(gen=7))
        self.assertTrue(wait_until(lambda: self.reloads("success") >= 1, 10.0),
                        self.agent.log_tail())
        self.client.export(make_request("after-edit", resources=1, scopes=1, spans=1))
        self.assertTrue(self.sink.wait_for_spans(2, DELIVERY) >= 2)
        self.assertEqual(self.sink.calls()[-1].header("x-reload-gen"), "7")

    def test_socket_of_a_running_agent_is_not_taken(self):
        self.start_agent(self.body())
        second = YamlAgent(self.body().replace("@DIR@", self.agent.dir), log_level="info")
        self.addCleanup(shutil.rmtree, second.dir, True)
        second.start()
        self.addCleanup(second.kill)
        self.assertEqual(second.wait_exit(), 3, second.log_tail())
        self.assertIn("served by a running process", second.stderr_text())
        # The first one still has its socket.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as w:
            w.connect(os.path.join(self.agent.dir, "lines.sock"))
            w.sendall(b'{"msg":"still mine"}\n')
        self.assertTrue(self.loki.wait_for_entries(1, DELIVERY) >= 1)
        # SIGTERM removes the socket file.
        self.assertEqual(self.agent.stop(signal.SIGTERM), 0)
        self.assertFalse(os.path.exists(os.path.join(self.agent.dir, "lines.sock")))

    def test_unbindable_listener_rolls_back(self):
        self.start_agent(self.body())
        # Another process holds the port the new file asks for.
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        taken = holder.getsockname()[1]
        self.write_config(self.body(gen=1).replace('"127.0.0.1:@GRPC_PORT@"',
                                                   '"127.0.0.1:%d"' % taken))
        status, text = self.post_reload()
        self.assertEqual(status, 500, text)
        self.assertEqual(self.reloads("failure"), 1)
        # The old listener and the old exporter settings are in force.
        self.client.export(make_request("after-rollback", resources=1, scopes=1, spans=3))
        self.assertTrue(self.sink.wait_for_spans(3, DELIVERY) >= 3)
        gens = {c.header("x-reload-gen") for c in self.sink.calls()}
        self.assertEqual(gens, {"0"})
        # A free new port: the listener moves; the old port is closed.
        new_port = free_ports(1)[0]
        self.write_config(self.body(gen=2).replace('"127.0.0.1:@GRPC_PORT@"',
                                                   '"127.0.0.1:%d"' % new_port))
        status, text = self.post_reload()
        self.assertEqual(status, 200, text)
        moved = helpers.Client("127.0.0.1:%d" % new_port)
        self.addCleanup(moved.close)
        moved.export(make_request("moved", resources=1, scopes=1, spans=4))
        self.assertTrue(self.sink.wait_for_spans(7, DELIVERY) >= 7)
        self.assertTrue(wait_until(lambda: not self._port_open(self.agent.grpc_port), 5.0))

    @staticmethod
    def _port_open(port):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def test_reload_under_load_loses_nothing(self):
        self.start_agent(self.body())
        pid = self.agent.proc.pid
        # Warm up, so that the connections that stay (this client's, the
        # exporters' to their sinks) are counted before as after.
        warm = make_request("warm-up", resources=1, scopes=1, spans=1)
        self.client.export(warm)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as w:
            w.connect(os.path.join(self.agent.dir, "lines.sock"))
            w.sendall(b'{"msg":"warm-up"}\n')
        self.assertTrue(self.sink.wait_for_spans(1, DELIVERY) >= 1)
        self.assertTrue(self.loki.wait_for_entries(1, DELIVERY) >= 1)
        sent_warm = spans_by_id(warm)
        time.sleep(0.3)
        fds_before = fd_count(pid)
        stop = threading.Event()
        sent_spans = dict(sent_warm)
        errors = []
        lines_written = []

        def send_traces():
            i = 0
            while not stop.is_set():
                req = make_request("load-%d" % i, resources=1, scopes=1, spans=20)
                try:
                    self.client.export(req, timeout=10)
                    sent_spans.update(spans_by_id(req))
                except Exception as e:  # a refusal is retried by a real client
                    errors.append(("traces", repr(e)))
                i += 1
                time.sleep(0.005)

        def write_lines():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(os.path.join(self.agent.dir, "lines.sock"))
            i = 0
            try:
                while not stop.is_set():
                    line = '{"level":"info","msg":"reload-line-%d"}\n' % i
                    s.sendall(line.encode())
                    lines_written.append("reload-line-%d" % i)
                    i += 1
                    if i % 20 == 0:
                        time.sleep(0.01)
            except OSError as e:
                errors.append(("lines", repr(e)))
            finally:
                s.close()

        threads = [threading.Thread(target=send_traces), threading.Thread(target=write_lines)]
        for t in threads:
            t.start()
        valid = invalid = 0
        try:
            for n in range(50):
                if n % 2 == 1:
                    self.write_config(self.body(gen=n).replace("exporters:", "exporters: [", 1))
                    invalid += 1
                else:
                    self.write_config(self.body(
                        gen=n, batch=200 + 37 * n,
                        labels="service_name, host" if n % 4 == 0 else "service_name",
                        extra=n % 8 in (2, 4), moved=n % 12 in (6, 8)))
                    valid += 1
                self.agent.send_signal(signal.SIGHUP)
                # A reload is applied 50 ms after its signal; give each its turn.
                time.sleep(0.15)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(errors, [], "clients saw errors")
        self.assertTrue(wait_until(lambda: self.reloads("success") + self.reloads("failure")
                                   >= 50, 10.0))
        self.assertEqual((self.reloads("success"), self.reloads("failure")), (valid, invalid))

        # Every acknowledged span exactly once at otlp/sink's endpoints, the
        # first and (while the endpoint was moved) the third sink (spans_by_id
        # raises on a span seen twice).
        def at_main():
            return self.sink.span_count() + self.sink3.span_count()
        self.assertTrue(wait_until(lambda: at_main() >= len(sent_spans), DELIVERY),
                        "spans at the sinks: %d of %d\n%s"
                        % (at_main(), len(sent_spans), self.agent.log_tail()))
        time.sleep(0.5)
        self.assertGreater(self.sink3.span_count(), 0, "the moved endpoint got nothing")
        got = spans_by_id(self.sink.items("traces") + self.sink3.items("traces"))
        self.assertEqual(set(got), set(sent_spans))
        # Every line written exactly once at Loki.
        want = len(lines_written)
        self.assertGreaterEqual(self.loki.wait_for_entries(want, DELIVERY), want,
                                self.agent.log_tail())
        time.sleep(0.5)
        seen = {}
        for p in self.loki.pushes():
            for s in p.streams:
                for e in s.entries:
                    seen[e.line] = seen.get(e.line, 0) + 1
        delivered = [ln for ln in seen if "reload-line-" in ln]
        dup = [ln for ln, c in seen.items() if c > 1]
        self.assertEqual(dup, [], "lines delivered twice")
        self.assertEqual(len(delivered), want, "lines delivered")
        dropped = self.agent.metrics().find("lookout_dropped_items_total")
        self.assertEqual([d for d in dropped if d[2]], [], "drops")
        # Open files back where they were (the second exporter's connections and
        # the retired queues' timers closed).
        self.assertTrue(wait_until(lambda: fd_count(pid) == fds_before, 10.0),
                        "fds %s, were %s" % (fd_count(pid), fds_before))
        self.load_report = (len(sent_spans), len(got), want, len(delivered), fds_before,
                            fd_count(pid))
        print("\nreload under load: spans sent %d delivered %d, lines written %d delivered "
              "%d, duplicates 0, lost 0, fds %s -> %s" % self.load_report, file=sys.stderr)
        rc = self.agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, self.agent.log_tail())


if __name__ == "__main__":
    unittest.main()
