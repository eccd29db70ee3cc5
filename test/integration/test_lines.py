"""End-to-end tests of the line receiver: processes write log lines to a Unix
socket -> build/lookout (receiver `lines`, exporter `loki`) -> an in-process Loki
sink (loki_sink.py) that decodes the snappy protobuf push bodies with its own code.

Each test starts its own sink(s) and agent (YAML written here, socket files in the
agent's temp dir), writes lines as zerolog, zap, slog, logrus, bunyan, logfmt and
plain programs do, and checks every entry at the sink: line, stream labels,
timestamp and structured metadata, against /tmp/brief/logs_spec.md.

Run all: sh test/integration/run.sh test_lines (from the repo root, after `make`).
Run one: /usr/bin/python3 test/integration/test_lines.py LinesTest.test_formats
"""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import YamlAgent, process_name, wait_until  # noqa: E402
import loki_sink  # noqa: E402
from loki_sink import LokiSink, render_labels  # noqa: E402

HOST = socket.gethostname()
# Generous bounds for "eventually": the suite runs on 2-core machines.
DELIVERY = 20.0
METRIC_WAIT = 5.0
# Longer than a batch timeout (100 ms) plus a push round trip and a retry
# backoff: what has not reached the sink by then was not sent.
QUIET = 1.0
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
# Metadata names the receiver's resource attributes become (process.pid,
# process.user.id, process.executable.name).
PEER_KEYS = ("process_pid", "process_user_id", "process_executable_name")

T0 = 1795600800   # 2026-11-25T10:00:00Z, from `date -u -d 2026-11-25T10:00:00Z +%s`
NS = 1_000_000_000
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_A = "00f067aa0ba902b7"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
SPAN_B = "b7ad6b7169203331"


# --- configuration pieces

def indent(text, n):
    pad = " " * n
    return "".join(pad + line + "\n" for line in text.splitlines() if line.strip())


def lines_receiver(name="lines", sock="lines.sock", extra=""):
    """A receivers: entry for a line receiver on @DIR@/|sock|."""
    return "  %s:\n    path: @DIR@/%s\n" % (name, sock) + indent(extra, 4)


def loki_exporter(name, sink, extra="", batch="{send_batch_size: 1000, timeout: 100ms}"):
    """An exporters: entry for a Loki exporter pushing to |sink|, retrying quickly."""
    return ("  %s:\n    endpoint: %s\n"
            "    retry: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}\n"
            "    batch: %s\n" % (name, sink.url, batch)) + indent(extra, 4)


def config_body(receivers, exporters, pipe_receivers, pipe_exporters):
    return ("receivers:\n%sexporters:\n%spipelines:\n  logs:\n    receivers: [%s]\n"
            "    exporters: [%s]\n" % (receivers, exporters, ", ".join(pipe_receivers),
                                      ", ".join(pipe_exporters)))


# --- writers

def connect(path, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    s.settimeout(30)
    if kind == socket.SOCK_STREAM:
        s.connect(path)
    return s


def write_stream(path, data):
    """Connects to |path|, writes |data|, closes."""
    with connect(path) as s:
        s.sendall(data)


MY_NAME = process_name(os.getpid())


class LogsCase(unittest.TestCase):
    """Sinks and an agent per test; cleanups stop whatever is left running."""

    maxDiff = 8000

    def start_sinks(self, n=1):
        sinks = []
        for _ in range(n):
            sink = LokiSink()
            sink.start()
            self.addCleanup(sink.stop)
            sinks.append(sink)
        self.sinks = sinks
        self.sink = sinks[0]
        return sinks

    def start_agent(self, body, before_start=None, **kwargs):
        """Starts build/lookout on |body| (see YamlAgent); before_start(agent) runs
        once its temp dir exists."""
        self.agent = YamlAgent(body, **kwargs)
        self.addCleanup(shutil.rmtree, self.agent.dir, True)
        if before_start is not None:
            before_start(self.agent)
        self.agent.start()
        self.addCleanup(self.agent.kill)
        self.agent.wait_ready()
        return self.agent

    def sock(self, name="lines.sock"):
        return os.path.join(self.agent.dir, name)

    def stop_agent(self):
        """SIGTERM; asserts a clean exit and JSON-lines stderr."""
        rc = self.agent.stop(signal.SIGTERM)
        self.assertEqual(rc, 0, "agent exit status after SIGTERM (None: had to be killed)\n"
                         + self.agent.log_tail())
        self.assertEqual(self.agent.non_json_stderr_lines(), [],
                         "stderr lines that are not JSON objects")

    # --- sink checks

    def assert_sink_clean(self, sinks=None):
        """No push any sink could not decode; protobuf label strings rendered as the
        spec says (sorted, ', ', escaped); no 'parsed' or 'hash' sent."""
        for sink in sinks or self.sinks:
            self.assertEqual([e for _, e in sink.errors()], [], "pushes the sink could not decode")
            for p in sink.pushes():
                self.assertEqual(p.path, loki_sink.PUSH_PATH)
                for s in p.streams:
                    if s.labels_text is not None:
                        self.assertEqual(s.labels_text, render_labels(s.labels),
                                         "label string as rendered by the exporter")
                    self.assertEqual(s.hash, 0, "StreamAdapter.hash is not for clients")
                    self.assertLessEqual(len(s.labels), 15, "labels per stream")
                    for e in s.entries:
                        self.assertEqual(e.parsed, [], "EntryAdapter.parsed is not for clients")

    def wait_entries(self, count, sink=None, timeout=DELIVERY):
        sink = sink or self.sink
        got = sink.wait_for_entries(count, timeout)
        self.assertGreaterEqual(got, count, "entries at the sink after %.0fs (errors %r)\n%s"
                                % (timeout, sink.errors()[:3], self.agent.log_tail()))
        return got

    def by_line(self, sink=None):
        """{line: [(labels, Entry)]} of the delivered entries."""
        out = {}
        for labels, e in (sink or self.sink).entries():
            out.setdefault(e.line, []).append((labels, e))
        return out

    def one(self, found, line):
        """The single delivery of |line| in by_line() output |found|."""
        got = found.get(line, [])
        self.assertEqual(len(got), 1, "deliveries of line %r (of %d distinct lines)"
                         % (line[:120], len(found)))
        return got[0]

    def check_entry(self, labels, entry, line, want_labels, level=None, trace=None, span=None,
                    ts=None, window=None, ts_tolerance=0, peer_pid=None, peer_name=None):
        """One entry of a line read by the line receiver: line, labels (exact),
        timestamp (|ts| +- |ts_tolerance| ns, or inside |window|), metadata: level,
        trace_id, span_id first (when expected), then exactly the peer keys."""
        what = "entry of %r" % line[:80]
        self.assertEqual(entry.line, line, what)
        self.assertEqual(labels, want_labels, "stream labels of " + what)
        if ts is not None:
            self.assertLessEqual(abs(entry.ts - ts), ts_tolerance,
                                 "timestamp of %s: %d, want %d" % (what, entry.ts, ts))
        if window is not None:
            self.assertTrue(window[0] <= entry.ts <= window[1],
                            "timestamp of %s (no time in the line): %d not within the "
                            "receive window %r" % (what, entry.ts, window))
        names = [n for n, _ in entry.metadata]
        self.assertEqual(len(names), len(set(names)), "metadata names unique in " + what)
        lead = []
        if level is not None:
            lead.append(("level", level))
        if trace is not None:
            lead.append(("trace_id", trace))
        if span is not None:
            lead.append(("span_id", span))
        self.assertEqual(entry.metadata[:len(lead)], lead,
                         "leading metadata (level, trace_id, span_id) of " + what)
        rest = dict(entry.metadata[len(lead):])
        self.assertEqual(set(rest), set(PEER_KEYS),
                         "metadata after level/trace_id/span_id of %s: %r" % (what, entry.metadata))
        if peer_pid is not None:
            self.assertEqual(rest["process_pid"], str(peer_pid), "process_pid of " + what)
        self.assertEqual(rest["process_user_id"], str(os.getuid()), "process_user_id of " + what)
        self.assertEqual(rest["process_executable_name"], peer_name or MY_NAME,
                         "process_executable_name of " + what)

    def assert_no_drops(self):
        m = self.agent.metrics()
        dropped = m.find("lookout_dropped_items_total")
        self.assertEqual([s for s in dropped if s[2] != 0], [], "items dropped")


# Lines as each library writes them; the stream labels besides host/source/static,
# and what the entry must hold.
FORMAT_CASES = [
    # zerolog, default RFC 3339 time with nanoseconds
    dict(line='{"level":"info","service":"api-zerolog","trace_id":"%s","span_id":"%s",'
              '"time":"2026-11-25T10:00:00.123456789Z","message":"zerolog hello"}'
              % (TRACE_A, SPAN_A),
         service="api-zerolog", level="info", trace=TRACE_A, span=SPAN_A, ts=T0 * NS + 123456789),
    # zerolog with zerolog.TimeFieldFormat = zerolog.TimeFormatUnixMs
    dict(line='{"level":"debug","time":1795600800123,"message":"zerolog unix ms"}',
         service=None, level="debug", ts=T0 * NS + 123_000_000),
    # zap production encoder: float seconds (this one exact in binary)
    dict(line='{"level":"warn","ts":1795600801.25,"caller":"main.go:12","msg":"zap slow",'
              '"traceID":"%s","spanID":"%s","service":"api-zap"}' % (TRACE_B, SPAN_B),
         service="api-zap", level="warn", trace=TRACE_B, span=SPAN_B,
         ts=(T0 + 1) * NS + 250_000_000),
    # zap: float seconds with 7 decimals, as zap writes them; a double holds them
    # to ~0.24 us, so allow 1 us either way
    dict(line='{"level":"error","ts":1795600802.1234567,"caller":"svc/x.go:7","msg":"zap precise",'
              '"service":"api-zap"}',
         service="api-zap", level="error", ts=(T0 + 2) * NS + 123_456_700, tol=1000),
    # slog JSONHandler: offset time, upper-case level, service.name
    dict(line='{"time":"2026-11-25T11:00:03.5+01:00","level":"WARN","msg":"slog x",'
              '"service.name":"api-slog"}',
         service="api-slog", level="warn", ts=(T0 + 3) * NS + 500_000_000),
    # slog level with an offset (INFO+2 is still in the info band)
    dict(line='{"time":"2026-11-25T10:00:04Z","level":"INFO+2","msg":"slog offset",'
              '"service.name":"api-slog"}',
         service="api-slog", level="info", ts=(T0 + 4) * NS),
    # logrus JSONFormatter
    dict(line='{"level":"error","msg":"logrus boom","time":"2026-11-25T12:00:05+02:00",'
              '"service_name":"api-logrus"}',
         service="api-logrus", level="error", ts=(T0 + 5) * NS),
    # bunyan: numeric level, name is the service (with "v")
    dict(line='{"name":"myapp","hostname":"h","pid":1,"level":50,"msg":"bunyan hi",'
              '"time":"2026-11-25T10:00:06.789Z","v":0}',
         service="myapp", level="error", ts=(T0 + 6) * NS + 789_000_000),
    dict(line='{"name":"myapp","hostname":"h","pid":1,"level":30,"msg":"bunyan info",'
              '"time":"2026-11-25T10:00:06.790Z","v":0}',
         service="myapp", level="info", ts=(T0 + 6) * NS + 790_000_000),
    # logfmt (go-kit, logrus TextFormatter)
    dict(line='time=2026-11-25T10:00:07Z level=info msg="logfmt hello world" service=api-logfmt '
              'trace_id=%s span_id=%s' % (TRACE_A, SPAN_A),
         service="api-logfmt", level="info", trace=TRACE_A, span=SPAN_A, ts=(T0 + 7) * NS),
    dict(line='level=warning msg=no-time service=api-logfmt',
         service="api-logfmt", level="warn", ts=None),
    # zerolog trace level
    dict(line='{"level":"trace","message":"tr","time":"2026-11-25T10:00:08Z"}',
         service=None, level="trace", ts=(T0 + 8) * NS),
    # JSON with neither level nor time
    dict(line='{"msg":"bare json","service":"api-bare"}', service="api-bare", ts=None),
    # plain text
    dict(line='plain text line, nothing to parse here', service=None, ts=None),
    dict(line='  {not json at all', service=None, ts=None),
]


class LinesTest(LogsCase):

    def test_formats_labels_and_modes(self):
        """Every library's line arrives once with its line, labels, level, ids and
        time; a second socket with service_name, a mode and no static labels."""
        self.start_sinks()
        receivers = (lines_receiver(extra="labels: {team: core, app_tier: web}")
                     + lines_receiver("lines/b", "b.sock",
                                      'mode: "0640"\nservice_name: svc-b'))
        self.start_agent(config_body(receivers, loki_exporter("loki", self.sink),
                                     ["lines", "lines/b"], ["loki"]))
        path, path_b = self.sock(), self.sock("b.sock")
        for p, mode in ((path, 0o600), (path_b, 0o640)):
            st = os.stat(p)
            self.assertTrue(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % p)
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, "mode of %s" % p)

        before = time.time_ns()
        write_stream(path, "".join(c["line"] + "\n" for c in FORMAT_CASES).encode())
        b_lines = ["b raw line", '{"level":"error","service":"b-own","msg":"b json"}']
        write_stream(path_b, "".join(b + "\n" for b in b_lines).encode())
        self.wait_entries(len(FORMAT_CASES) + len(b_lines))
        after = time.time_ns()
        time.sleep(QUIET)
        self.assert_sink_clean()
        found = self.by_line()
        self.assertEqual(sum(len(v) for v in found.values()), len(FORMAT_CASES) + len(b_lines),
                         "entries delivered")
        for c in FORMAT_CASES:
            labels, e = self.one(found, c["line"])
            want = {"host": HOST, "source": "lines", "service_name": c["service"] or MY_NAME,
                    "team": "core", "app_tier": "web"}
            self.check_entry(labels, e, c["line"], want, level=c.get("level"),
                             trace=c.get("trace"), span=c.get("span"), ts=c["ts"],
                             ts_tolerance=c.get("tol", 0),
                             window=None if c["ts"] is not None else (before, after),
                             peer_pid=os.getpid())
        for line, service, level in ((b_lines[0], "svc-b", None), (b_lines[1], "b-own", "error")):
            labels, e = self.one(found, line)
            self.check_entry(labels, e, line, {"host": HOST, "source": "lines/b",
                                               "service_name": service},
                             level=level, window=(before, after), peer_pid=os.getpid())
        for p in self.sink.accepted():
            self.assertEqual(p.format, "protobuf", "default body format")
            self.assertEqual(p.header("content-type"), "application/x-protobuf")
        self.stop_agent()
        self.assertFalse(os.path.exists(path), "socket file left behind after exit")

    def test_framing_truncation_and_bad_utf8(self):
        """\\r\\n, a partial last line at EOF, a client leaving mid-line beside one
        that keeps writing, a line over max_line_bytes, invalid UTF-8, NUL."""
        self.start_sinks()
        self.start_agent(config_body(lines_receiver(extra="max_line_bytes: 1KiB"),
                                     loki_exporter("loki", self.sink), ["lines"], ["loki"]))
        path = self.sock()
        write_stream(path, b"crlf one\r\ncrlf two\r\n")
        keeper = connect(path)
        self.addCleanup(keeper.close)
        keeper.sendall(b"keeper 1\nkeeper 2 first half")
        leaver = connect(path)
        leaver.sendall(b"leaver 1\nleaver partial, no newline")
        leaver.close()
        # The leaver's partial line is out before the keeper finishes its own.
        self.wait_entries(5)
        keeper.sendall(b" + second half\n")
        long_line = b"".join(b"%09d|" % i for i in range(600))   # 6000 bytes
        edge_line = b"E" * 1024
        bad = b"bad \xff utf8 \xc3( end \x80 and \xed\xa0\x80 surrogate"
        keeper.sendall(long_line + b"\n" + b"after long\n" + edge_line + b"\n" + bad + b"\n"
                       + b"nul\x00byte\n" + b"last line at EOF")
        keeper.close()
        expected = ["crlf one", "crlf two", "keeper 1", "leaver 1", "leaver partial, no newline",
                    "keeper 2 first half + second half", long_line[:1024].decode(), "after long",
                    edge_line.decode(), bad.decode("utf-8", "replace"), "nul\x00byte",
                    "last line at EOF"]
        self.wait_entries(len(expected))
        time.sleep(QUIET)
        self.assert_sink_clean()
        found = self.by_line()
        self.assertEqual(sorted(found), sorted(expected), "lines delivered")
        for line in expected:
            labels, e = self.one(found, line)
            self.assertEqual(labels, {"host": HOST, "source": "lines", "service_name": MY_NAME})
        self.assertIn("\ufffd", bad.decode("utf-8", "replace"))
        self.assertEqual(self.agent.metric("lookout_receiver_truncated_lines_total",
                                           receiver="lines"), 1,
                         "truncated lines counted (the 6000-byte one only)")
        self.assertTrue(self.agent.alive)
        # Still serving after all that.
        write_stream(path, b"still alive\n")
        self.wait_entries(len(expected) + 1)
        self.one(self.by_line(), "still alive")
        self.stop_agent()

    def test_datagram_socket(self):
        """socket_type: datagram: one line per datagram (a trailing newline is not
        part of the line)."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(sock="d.sock", extra="socket_type: datagram\nservice_name: dgram-svc\n"
                                               "labels: {kind: dgram}"),
            loki_exporter("loki", self.sink), ["lines"], ["loki"]))
        path = self.sock("d.sock")
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, "default mode")
        before = time.time_ns()
        datagrams = [b"dgram one", b"dgram two\n",
                     b'{"level":"warn","msg":"dgram json","time":"2026-11-25T10:00:09Z"}',
                     b"level=error msg=dgram-logfmt service=dg-own\n"]
        with connect(path, socket.SOCK_DGRAM) as s:
            for d in datagrams:
                s.sendto(d, path)
        self.wait_entries(len(datagrams))
        after = time.time_ns()
        time.sleep(QUIET)
        self.assert_sink_clean()
        found = self.by_line()
        self.assertEqual(len(self.sink.entries()), len(datagrams), "entries: one per datagram")
        base = {"host": HOST, "source": "lines", "kind": "dgram"}
        for line, service, level, ts in (
                ("dgram one", "dgram-svc", None, None),
                ("dgram two", "dgram-svc", None, None),
                (datagrams[2].decode(), "dgram-svc", "warn", (T0 + 9) * NS),
                ("level=error msg=dgram-logfmt service=dg-own", "dg-own", "error", None)):
            labels, e = self.one(found, line)
            self.assertEqual(labels, dict(base, service_name=service), "labels of %r" % line)
            self.assertEqual(e.md.get("level"), level, "level of %r" % line)
            if ts is None:
                self.assertTrue(before <= e.ts <= after, "timestamp of %r in the receive window"
                                % line)
            else:
                self.assertEqual(e.ts, ts, "timestamp of %r" % line)
        self.stop_agent()

    def test_datagram_block_and_exact_max_line(self):
        """Datagrams under overflow: block with a tiny queue while the sink fails:
        the receiver stops reading the socket, senders wait, and every datagram
        arrives once when the sink recovers. A datagram of exactly max_line_bytes
        (with its newline or CRLF) is not counted as truncated."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(sock="d.sock", extra="socket_type: datagram\nmax_line_bytes: 256"),
            loki_exporter("loki", self.sink, "queue: {queue_size: 200}",
                          batch="{send_batch_size: 100, timeout: 50ms}"),
            ["lines"], ["loki"]))
        path = self.sock("d.sock")
        self.sink.fail_for(2.0, 500, "internal server error\n")
        n = 3000
        exact = [b"e" * 256 + b"\n", b"f" * 256 + b"\r\n"]
        with connect(path, socket.SOCK_DGRAM) as s:
            for i in range(n):
                s.sendto(b"dgram block %04d" % i, path)  # blocks while the agent waits
            for d in exact:
                s.sendto(d, path)
        self.wait_entries(n + 2, timeout=60)
        time.sleep(QUIET)
        found = self.by_line()
        self.assertEqual(len(self.sink.entries()), n + 2)
        for i in range(n):
            self.one(found, "dgram block %04d" % i)
        self.one(found, "e" * 256)
        self.one(found, "f" * 256)
        self.assertEqual(self.agent.metric("lookout_receiver_truncated_lines_total",
                                           receiver="lines"), 0)
        self.assertGreater(self.agent.metric("lookout_receiver_paused_total",
                                             receiver="lines") or 0, 0, "never paused")
        self.assert_no_drops()
        self.stop_agent()

    def test_format_setting_and_stale_socket(self):
        """format: raw / json / logfmt read lines only that way; a stale socket
        file left at the path is replaced."""
        self.start_sinks()
        receivers = (lines_receiver("lines/raw", "raw.sock", "format: raw")
                     + lines_receiver("lines/json", "json.sock", "format: json")
                     + lines_receiver("lines/logfmt", "logfmt.sock", "format: logfmt"))

        def stale(agent):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(os.path.join(agent.dir, "raw.sock"))
            s.close()   # the file stays: a stale socket of a dead process
        self.start_agent(config_body(receivers, loki_exporter("loki", self.sink),
                                     ["lines/raw", "lines/json", "lines/logfmt"], ["loki"]),
                         before_start=stale)
        zl = ('{"level":"error","service":"fmt-json","time":"2026-11-25T10:00:10Z",'
              '"trace_id":"%s","msg":"zl"}' % TRACE_A)
        lf = "time=2026-11-25T10:00:11Z level=warn service=fmt-lf msg=lf"
        odd = "[INFO] starting up level=info service=fmt-lf2"
        before = time.time_ns()
        write_stream(self.sock("raw.sock"), ("%s\n%s\n" % (zl, lf)).encode())
        write_stream(self.sock("json.sock"), ("%s\n%s\n" % (zl.replace("zl", "zl2"), lf + "2"))
                     .encode())
        write_stream(self.sock("logfmt.sock"), ("%s\n" % odd).encode())
        self.wait_entries(5)
        after = time.time_ns()
        time.sleep(QUIET)
        self.assert_sink_clean()
        self.assertEqual(len(self.sink.entries()), 5)
        found = self.by_line()
        window = (before, after)
        for line, source, service, level, trace, ts in (
                (zl, "lines/raw", MY_NAME, None, None, None),
                (lf, "lines/raw", MY_NAME, None, None, None),
                (zl.replace("zl", "zl2"), "lines/json", "fmt-json", "error", TRACE_A,
                 (T0 + 10) * NS),
                (lf + "2", "lines/json", MY_NAME, None, None, None),
                (odd, "lines/logfmt", "fmt-lf2", "info", None, None)):
            labels, e = self.one(found, line)
            self.check_entry(labels, e, line, {"host": HOST, "source": source,
                                               "service_name": service},
                             level=level, trace=trace, ts=ts,
                             window=window if ts is None else None, peer_pid=os.getpid())
        self.stop_agent()

    def test_processes_peer_attribution(self):
        """Four processes write at once on their own connections: every line once,
        each attributed to its writer (process_pid, process_executable_name, and
        the process name as service_name)."""
        self.start_sinks()
        self.start_agent(config_body(lines_receiver(), loki_exporter("loki", self.sink),
                                     ["lines"], ["loki"]))
        path = self.sock()
        per_proc = 400
        script = ("import socket, sys\n"
                  "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                  "s.connect(sys.argv[1])\n"
                  "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
                  "sys.stdin.readline()\n"
                  "n = int(sys.argv[3])\n"
                  "for i in range(0, n, 50):\n"
                  "    s.sendall(''.join('writer %s line %d\\n' % (sys.argv[2], j)\n"
                  "                      for j in range(i, min(i + 50, n))).encode())\n"
                  "s.close()\n")
        procs = []
        for k in range(4):
            p = subprocess.Popen([sys.executable, "-c", script, path, str(k), str(per_proc)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.addCleanup(p.kill)
            procs.append(p)
        names = {}
        for k, p in enumerate(procs):
            self.assertEqual(p.stdout.readline().strip(), "ready")
            names[k] = process_name(p.pid)
        for p in procs:   # all at once
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            self.assertEqual(p.wait(30), 0)
        self.wait_entries(4 * per_proc)
        time.sleep(QUIET)
        self.assert_sink_clean()
        found = self.by_line()
        self.assertEqual(len(self.sink.entries()), 4 * per_proc, "entries delivered")
        for k, p in enumerate(procs):
            for j in range(per_proc):
                line = "writer %d line %d" % (k, j)
                labels, e = self.one(found, line)
                if j in (0, per_proc - 1) or j % 97 == 0:
                    self.check_entry(labels, e, line, {"host": HOST, "source": "lines",
                                                       "service_name": names[k]},
                                     peer_pid=p.pid, peer_name=names[k])
                else:
                    self.assertEqual(e.md.get("process_pid"), str(p.pid), line)
        self.stop_agent()

    def test_backpressure_block(self):
        """overflow: block with a tiny exporter queue while the sink answers 500:
        the writer blocks, then every line arrives once and nothing is dropped."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(extra="overflow: block"),
            loki_exporter("loki", self.sink, "queue: {queue_size: 500}",
                          batch="{send_batch_size: 250, timeout: 50ms}"),
            ["lines"], ["loki"]))
        self.sink.fail_for(4.0, 500, "internal server error\n")
        n = 20000
        pad = "x" * 80
        done = threading.Event()
        errors = []

        def writer():
            try:
                with connect(self.sock()) as s:
                    for i in range(0, n, 500):
                        s.sendall("".join("block line %05d %s\n" % (j, pad)
                                          for j in range(i, i + 500)).encode())
            except OSError as e:
                errors.append(e)
            done.set()
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        # While the sink fails, 2 MB of lines cannot all fit in 500 queued
        # records plus the socket buffers: the writer must be blocked.
        self.assertTrue(self.sink.wait_for(lambda s: len(s.rejected()) >= 2, DELIVERY),
                        "sink saw no failing pushes\n" + self.agent.log_tail())
        time.sleep(1.0)
        self.assertEqual(self.sink.accepted(), [], "a push accepted inside the failure window")
        self.assertFalse(done.is_set(), "writer finished 2 MB while the sink was failing: "
                         "the receiver did not block")
        self.wait_entries(n, timeout=60)
        self.assertTrue(done.wait(10))
        self.assertEqual(errors, [])
        time.sleep(QUIET)
        self.assert_sink_clean()
        found = self.by_line()
        self.assertEqual(len(self.sink.entries()), n, "entries delivered")
        for j in range(n):
            self.one(found, "block line %05d %s" % (j, pad))
        self.assertGreater(self.agent.metric("lookout_exporter_retries_total", exporter="loki")
                           or 0, 0, "retries counted")
        self.assert_no_drops()
        self.stop_agent()

    def test_backpressure_drop(self):
        """overflow: drop with a tiny exporter queue while the sink answers 500:
        the writer never blocks, and every line is either delivered once or
        counted as dropped (reason pipeline_full), never both, never lost."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(extra="overflow: drop"),
            loki_exporter("loki", self.sink, "queue: {queue_size: 500}",
                          batch="{send_batch_size: 250, timeout: 50ms}"),
            ["lines"], ["loki"]))
        self.sink.fail_for(3.0, 500, "internal server error\n")
        n = 20000
        pad = "x" * 80
        with connect(self.sock()) as s:
            for i in range(0, n, 500):
                s.sendall("".join("drop line %05d %s\n" % (j, pad)
                                  for j in range(i, i + 500)).encode())
        # The writer was never held back: the agent must have read it all,
        # accepting some lines and dropping the rest.
        def accounted():
            acc = self.agent.metric("lookout_receiver_accepted_log_records_total",
                                    receiver="lines") or 0
            drop = self.agent.metric("lookout_dropped_items_total", reason="pipeline_full",
                                     receiver="lines") or 0
            return acc + drop == n
        self.assertTrue(wait_until(accounted, DELIVERY),
                        "accepted + dropped != lines written\n" + self.agent.log_tail())
        dropped = self.agent.metric("lookout_dropped_items_total", reason="pipeline_full",
                                    receiver="lines")
        self.assertGreater(dropped, 0, "a 500-record queue held 20000 lines")
        accepted = n - dropped
        self.wait_entries(accepted, timeout=60)
        time.sleep(QUIET)
        self.assertEqual(len(self.sink.entries()), accepted, "delivered = accepted")
        found = self.by_line()
        self.assertEqual(len(found), accepted, "no line delivered twice")
        self.stop_agent()

    def test_reads_larger_than_the_queue(self):
        """One read can hold more lines than a small queue's whole capacity (a
        16 KiB read of "a\n" is 8192 lines; queue_size 1000): the receiver cuts
        its items to fit, so everything still arrives and nothing stalls."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(),
            loki_exporter("loki", self.sink, "queue: {queue_size: 1000}",
                          batch="{send_batch_size: 500, timeout: 50ms}"),
            ["lines"], ["loki"]))
        n = 20000
        with connect(self.sock()) as s:
            s.sendall(b"".join(b"%05d\n" % i for i in range(n)))
        self.wait_entries(n, timeout=30)
        time.sleep(QUIET)
        found = self.by_line()
        self.assertEqual(len(self.sink.entries()), n)
        for i in range(n):
            self.one(found, "%05d" % i)
        self.assert_no_drops()
        self.stop_agent()

    def test_queue_of_a_few_kib(self):
        """A logs queue of 2 KiB (max_bytes) and a socket with long static
        labels: items are cut small enough to fit, none is dropped."""
        self.start_sinks()
        labels = ", ".join('l%d: "%s"' % (i, "v" * 50) for i in range(8))
        self.start_agent(config_body(
            lines_receiver(extra="labels: {%s}" % labels),
            loki_exporter("loki", self.sink, "queue: {max_bytes: 2KiB}",
                          batch="{send_batch_size: 100, send_batch_max_bytes: 1KiB, "
                                "timeout: 50ms}"),
            ["lines"], ["loki"]))
        n = 100
        with connect(self.sock()) as s:
            s.sendall(b"".join(b"small queue line %03d %s\n" % (i, b"z" * 20)
                               for i in range(n)))
        self.wait_entries(n, timeout=30)
        found = self.by_line()
        for i in range(n):
            self.one(found, "small queue line %03d %s" % (i, "z" * 20))
        self.assert_no_drops()
        self.stop_agent()

    def test_sigterm_while_blocked_loses_nothing(self):
        """Writers blocked by a failing backend, then SIGTERM: every line they
        managed to write (read or still in the socket buffers) is delivered
        during the shutdown drain once the backend recovers."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(),
            loki_exporter("loki", self.sink, "queue: {queue_size: 500}",
                          batch="{send_batch_size: 250, timeout: 50ms}"),
            ["lines"], ["loki"]), shutdown_timeout="20s")
        self.sink.fail_for(3.0, 503, "unavailable\n")
        written = []
        socks = []
        for i in range(6):
            s = connect(self.sock())
            s.setblocking(False)
            socks.append(s)
            j = 0
            try:
                while j < 2000:
                    line = b"term c%d %04d %s\n" % (i, j, b"q" * 60)
                    sent = s.send(line)
                    if sent < len(line):
                        # A partial line is the writer's to finish: finish it
                        # blocking, so that every line counted is whole.
                        s.setblocking(True)
                        s.sendall(line[sent:])
                        s.setblocking(False)
                    written.append(line[:-1].decode())
                    j += 1
            except BlockingIOError:
                pass
        time.sleep(1.0)
        self.assertGreater(self.agent.metric("lookout_receiver_paused_total",
                                             receiver="lines") or 0, 0, "no writer was paused")
        self.stop_agent()
        for s in socks:
            s.close()
        found = self.by_line()
        for line in written:
            self.one(found, line)
        self.assertEqual(len(self.sink.entries()), len(written))

    def test_acceptance_100k_lines_8_clients(self):
        """ACCEPTANCE 1: 100,000 lines by 8 concurrent clients (own service each,
        sequence numbers) arrive exactly once, in order within each stream."""
        self.start_sinks()
        self.start_agent(config_body(
            lines_receiver(),
            loki_exporter("loki", self.sink, batch="{send_batch_size: 5000, timeout: 200ms}"),
            ["lines"], ["loki"]))
        clients, per_client, chunk = 8, 12500, 625
        fmt = ('{"level":"info","service":"acc-%d","seq":%d,'
               '"msg":"acceptance line %d of client %d"}\n')
        errors = []

        def client(c):
            try:
                with connect(self.sock()) as s:
                    for i in range(0, per_client, chunk):
                        s.sendall("".join(fmt % (c, j, j, c)
                                          for j in range(i, i + chunk)).encode())
            except OSError as e:
                errors.append(e)
        threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        total = clients * per_client
        self.wait_entries(total, timeout=60)
        time.sleep(QUIET)
        self.assert_sink_clean()
        self.assertEqual(self.sink.entry_count(), total, "entries delivered (duplicates?)")
        streams = {}
        for labels, e in self.sink.entries():
            streams.setdefault(labels["service_name"], []).append((labels, e))
        self.assertEqual(sorted(streams), sorted("acc-%d" % c for c in range(clients)))
        for c in range(clients):
            got = streams["acc-%d" % c]
            self.assertEqual(len(got), per_client, "entries of acc-%d" % c)
            want_labels = {"host": HOST, "source": "lines", "service_name": "acc-%d" % c}
            prev_ts = 0
            for j, (labels, e) in enumerate(got):
                if labels != want_labels:
                    self.assertEqual(labels, want_labels)
                if e.line != (fmt % (c, j, j, c))[:-1]:
                    self.fail("acc-%d entry %d is %r: out of order, lost or duplicated"
                              % (c, j, e.line))
                if e.ts < prev_ts:
                    self.fail("acc-%d entry %d: timestamp %d before the previous %d"
                              % (c, j, e.ts, prev_ts))
                prev_ts = e.ts
        self.assert_no_drops()
        self.stop_agent()


if __name__ == "__main__":
    unittest.main()
