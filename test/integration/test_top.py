"""`lookout status` and `lookout top` against a running agent (docs/cli.md).

An agent with an OTLP/gRPC receiver and a line socket, both feeding an OTLP sink,
gets known traffic; `lookout status` must report exactly it (and exit 0), and
tell an unreachable endpoint, a server that is not lookout, and an agent
draining after SIGTERM (/readyz 503) apart by exit code. `lookout top` runs in
tmux: at 80 columns, then resized to 50, no line may wrap; q, Ctrl-C and SIGTERM
must leave the terminal as they found it (stty settings, main screen, cursor).

Run: sh test/integration/run.sh test_top   (after `make`; tmux for the top tests)
"""

import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import BIN, YamlAgent, make_request, wait_until  # noqa: E402
import otlp_sink  # noqa: E402

# docs/cli.md, "lookout status".
EXIT_OK, EXIT_NOT_READY, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_CONFIG = 0, 1, 2, 3, 4

DELIVERY = 20.0      # traffic to reach the sink and the agent's counters
SCREEN_WAIT = 20.0   # a frame of top to show what is awaited
CLI_TIMEOUT = 30     # one `lookout status` run

SPANS_PER_REQUEST = 12   # make_request(resources=2, scopes=2, spans=3)
REQUESTS = 2
LINES = 5

CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:@GRPC_PORT@
  lines:
    path: @DIR@/lines.sock
exporters:
  otlp/sink:
    endpoint: 127.0.0.1:{sink_port}
    compression: none
    retry: {{initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0s}}
    batch: {{send_batch_size: 1000, timeout: 100ms}}
pipelines:
  traces:
    receivers: [otlp]
    exporters: [otlp/sink]
  logs:
    receivers: [otlp, lines]
    exporters: [otlp/sink]
"""


def status(*args, cwd=None, binary=BIN):
    """`lookout status ARGS` -> CompletedProcess (text)."""
    return subprocess.run([binary, "status"] + list(args), capture_output=True, text=True,
                          timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL, cwd=cwd)


def tables(text):
    """The tables of a status or top screen: {first column's header: [row dicts]}.
    Headers are split on runs of two spaces or more, rows on blanks (the names
    here have none)."""
    out = {}
    for block in re.split(r"\n\s*\n", text):
        lines = [l.rstrip() for l in block.strip("\n").splitlines() if l.strip()]
        if not lines:
            continue
        head = re.split(r"\s{2,}", lines[0].strip())
        if head[0] not in ("RECEIVER", "EXPORTER", "DROP REASON"):
            continue
        out[head[0]] = [dict(zip(head, l.split())) for l in lines[1:]]
    return out


def is_rate(text):
    return text == "0" or re.fullmatch(r"<?\d+(\.\d+)?[kMGTPE]?", text) is not None


class NotLookoutServer:
    """An HTTP server whose /metrics is not lookout's."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"some_other_exporter_metric 1\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class StatusBase(unittest.TestCase):

    def start_agent(self, sink_port, **kw):
        agent = YamlAgent(CONFIG.format(sink_port=sink_port), **kw)
        self.client = helpers.start_agent_for(self, agent)
        return agent

    def send_traffic(self, agent):
        for i in range(REQUESTS):
            self.client.export(make_request("top-%d" % i, resources=2, scopes=2, spans=3))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(os.path.join(agent.dir, "lines.sock"))
        s.sendall(b"".join(b'{"level":"info","msg":"line %d"}\n' % i for i in range(LINES)))
        s.close()

    def admin_url(self, agent):
        return "http://127.0.0.1:%d" % agent.admin_port


class StatusTest(StatusBase):

    def setUp(self):
        self.sink = otlp_sink.OtlpSink(port=helpers.free_ports(1)[0])
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.agent = self.start_agent(self.sink.port)
        self.send_traffic(self.agent)
        spans = SPANS_PER_REQUEST * REQUESTS
        self.assertEqual(self.sink.wait_for_items(otlp_sink.TRACES, spans, DELIVERY), spans)
        self.assertEqual(self.sink.wait_for_items(otlp_sink.LOGS, LINES, DELIVERY), LINES)
        # The agent counts a batch as sent once the sink's answer is back.
        self.assertTrue(wait_until(
            lambda: self.agent.metric("lookout_exporter_sent_spans_total") == spans and
            self.agent.metric("lookout_exporter_sent_log_records_total") == LINES, DELIVERY))

    def check_report(self, out, rates):
        self.assertIn("ready", out.split("\n")[0])
        t = tables(out)
        spans = str(SPANS_PER_REQUEST * REQUESTS)
        rec = {(r["RECEIVER"], r["SIGNAL"]): r for r in t["RECEIVER"]}
        self.assertEqual(set(rec), {("otlp", "traces"), ("otlp", "logs"), ("lines", "logs")})
        self.assertEqual(rec[("otlp", "traces")]["ACCEPTED"], spans)
        self.assertEqual(rec[("otlp", "traces")]["REFUSED"], "0")
        self.assertEqual(rec[("otlp", "traces")]["REJECTED"], "0")
        self.assertEqual(rec[("otlp", "logs")]["ACCEPTED"], "0")
        self.assertEqual(rec[("lines", "logs")]["ACCEPTED"], str(LINES))
        exp = {(r["EXPORTER"], r["SIGNAL"]): r for r in t["EXPORTER"]}
        self.assertEqual(set(exp), {("otlp/sink", "traces"), ("otlp/sink", "logs")})
        self.assertEqual(exp[("otlp/sink", "traces")]["SENT"], spans)
        self.assertEqual(exp[("otlp/sink", "logs")]["SENT"], str(LINES))
        self.assertEqual(exp[("otlp/sink", "traces")]["FAILED"], "0")
        self.assertEqual(exp[("otlp/sink", "traces")]["QUEUE"], "0%")
        for r in list(rec.values()) + list(exp.values()):
            col = "ACCEPTED/s" if "ACCEPTED/s" in r else "SENT/s"
            if rates:
                self.assertTrue(is_rate(r[col]), r)
            else:
                self.assertEqual(r[col], "-", r)
        self.assertNotIn("DROP REASON", t)
        self.assertIn("no items dropped", out)

    def test_status_reports_what_was_sent(self):
        r = status("--admin", self.admin_url(self.agent), "--interval", "300ms")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn("rates over", r.stdout)
        self.check_report(r.stdout, rates=True)
        self.assertNotIn("\x1b", r.stdout)
        # The endpoint taken from the configuration file, and one scrape only.
        r = status("-c", self.agent.config_path, "--interval", "0")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn("totals only", r.stdout)
        self.check_report(r.stdout, rates=False)
        self.assertIn("http://127.0.0.1:%d" % self.agent.admin_port, r.stdout)

    def test_endpoint_from_a_file_that_does_not_validate(self):
        """Only admin.endpoint is read: an edited file the agent would refuse, or
        one naming secrets only the service's environment sets, still says where
        the running agent is; an admin.endpoint that cannot be read is exit 4."""
        d = tempfile.mkdtemp(prefix="lk-cfg-")
        self.addCleanup(shutil.rmtree, d, True)
        env = dict(os.environ)
        env.pop("LOOKOUT_TEST_UNSET_TOKEN", None)
        env["LOOKOUT_TEST_ADMIN_PORT"] = str(self.agent.admin_port)
        edited = os.path.join(d, "edited.yaml")
        with open(edited, "w") as f:
            f.write("admin:\n  endpoint: 127.0.0.1:${LOOKOUT_TEST_ADMIN_PORT}\n"
                    "exporters:\n  otlp:\n    endpoint: ${LOOKOUT_TEST_UNSET_TOKEN}\n"
                    "no_such_key: 1\n")
        r = subprocess.run([BIN, "--check-config", "-c", edited], capture_output=True,
                           text=True, timeout=CLI_TIMEOUT, env=env)
        self.assertEqual(r.returncode, 1, r.stderr)   # the agent would refuse it
        r = subprocess.run([BIN, "status", "-c", edited, "--interval", "0"],
                           capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn("http://127.0.0.1:%d" % self.agent.admin_port, r.stdout)
        unset = os.path.join(d, "unset.yaml")
        with open(unset, "w") as f:
            f.write("admin:\n  endpoint: ${LOOKOUT_TEST_UNSET_TOKEN}\n")
        r = subprocess.run([BIN, "status", "-c", unset, "--interval", "0"],
                           capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env)
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn("LOOKOUT_TEST_UNSET_TOKEN", r.stderr)

    def test_default_config_of_an_installed_binary(self):
        """PREFIX/bin/lookout reads PREFIX/etc/lookout/lookout.yaml when -c is absent:
        status takes the admin endpoint from there, --check-config names it."""
        prefix = tempfile.mkdtemp(prefix="lk-prefix-")
        self.addCleanup(shutil.rmtree, prefix, True)
        os.makedirs(os.path.join(prefix, "bin"))
        os.makedirs(os.path.join(prefix, "etc", "lookout"))
        binary = os.path.join(prefix, "bin", "lookout")
        shutil.copy2(BIN, binary)
        installed = os.path.join(prefix, "etc", "lookout", "lookout.yaml")
        shutil.copy(self.agent.config_path, installed)
        empty = tempfile.mkdtemp(prefix="lk-cwd-")   # no config/lookout.yaml here
        self.addCleanup(shutil.rmtree, empty, True)

        r = status("--interval", "0", cwd=empty, binary=binary)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.check_report(r.stdout, rates=False)
        r = subprocess.run([binary, "--check-config"], capture_output=True, text=True,
                           timeout=CLI_TIMEOUT, cwd=empty)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "%s: configuration is valid" % os.path.realpath(installed))

        # Without it, the relative default: there is none in |empty|.
        os.unlink(installed)
        r = subprocess.run([binary, "--check-config"], capture_output=True, text=True,
                           timeout=CLI_TIMEOUT, cwd=empty)
        self.assertEqual(r.returncode, 1)
        self.assertIn("config/lookout.yaml", r.stderr)


class StatusExitCodesTest(StatusBase):

    def test_unreachable(self):
        port = helpers.free_ports(1)[0]
        r = status("--admin", "127.0.0.1:%d" % port, "--interval", "0")
        self.assertEqual(r.returncode, EXIT_UNREACHABLE, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("no lookout at http://127.0.0.1:%d" % port, r.stderr)

    def test_not_lookout(self):
        other = NotLookoutServer()
        self.addCleanup(other.close)
        r = status("--admin", "http://127.0.0.1:%d/" % other.port)
        self.assertEqual(r.returncode, EXIT_UNREACHABLE, r.stdout + r.stderr)
        self.assertIn("not a lookout", r.stderr)

    def test_usage_and_config(self):
        for args in (["--bogus"], ["extra"], ["--admin", "ftp://127.0.0.1:1"],
                     ["--interval", "soon"], ["--interval", "2h"]):
            r = status(*args)
            self.assertEqual(r.returncode, EXIT_USAGE, (args, r.stderr))
            self.assertTrue(r.stderr.strip(), args)
        d = tempfile.mkdtemp(prefix="lk-cfg-")
        self.addCleanup(shutil.rmtree, d, True)
        bad = os.path.join(d, "bad.yaml")
        with open(bad, "w") as f:
            f.write("admin:\n  endpoint: [\n")
        r = status("-c", bad)
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        self.assertIn("bad.yaml:", r.stderr)
        self.assertIn("--admin", r.stderr)
        r = status("-c", os.path.join(d, "missing.yaml"))
        self.assertEqual(r.returncode, EXIT_CONFIG, r.stderr)
        r = subprocess.run([BIN, "status", "--help"], capture_output=True, text=True,
                           timeout=CLI_TIMEOUT)
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: lookout status", r.stdout)
        r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=CLI_TIMEOUT)
        self.assertIn("lookout top", r.stdout)
        self.assertIn("lookout status", r.stdout)

    def test_not_ready_while_draining(self):
        """After SIGTERM the agent answers /readyz 503 while it drains into a
        backend that is down (until shutdown_timeout): status says so, exit 1."""
        dead = helpers.free_ports(1)[0]
        agent = self.start_agent(dead, shutdown_timeout="60s")
        self.send_traffic(agent)
        self.assertTrue(wait_until(
            lambda: agent.metric("lookout_receiver_accepted_log_records_total",
                                 receiver="lines") == LINES, DELIVERY))
        agent.send_signal(signal.SIGTERM)
        self.assertTrue(wait_until(lambda: agent.http_get("/readyz")[0] == 503, DELIVERY))
        r = status("--admin", self.admin_url(agent), "--interval", "200ms")
        self.assertEqual(r.returncode, EXIT_NOT_READY, r.stdout + r.stderr)
        self.assertIn("NOT READY", r.stdout)
        rec = {(x["RECEIVER"], x["SIGNAL"]): x for x in tables(r.stdout)["RECEIVER"]}
        self.assertEqual(rec[("otlp", "traces")]["ACCEPTED"], str(SPANS_PER_REQUEST * REQUESTS))
        agent.kill()


@unittest.skipUnless(shutil.which("tmux"), "tmux not installed (make deps)")
class TopTest(StatusBase):

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="lk-top-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)
        self.sock = os.path.join(self.tmpdir, "tmux.sock")
        self.addCleanup(self.tmux, "kill-server")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-f", "/dev/null", "-S", self.sock] + list(args),
                              capture_output=True, text=True, timeout=10)

    def start_top(self, admin, width=80, height=24):
        """top in a detached session; when it ends, the shell says how, and
        whether the terminal's settings are what they were."""
        script = ('before=$(stty -g); "%s" top --admin %s --interval 250ms; rc=$?; '
                  'after=$(stty -g); [ "$before" = "$after" ] && echo "tty restored" '
                  '|| echo "tty changed"; echo "top exited $rc"; exec sleep 600'
                  % (BIN, admin))
        r = self.tmux("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height),
                      "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stderr)

    def screen(self):
        """The pane's lines, wrapped ones joined (so a line that did not fit
        shows as longer than the pane)."""
        r = self.tmux("capture-pane", "-p", "-J", "-t", "top")
        return [l.rstrip() for l in r.stdout.splitlines()]

    def pane(self, fmt):
        return self.tmux("display-message", "-p", "-t", "top", fmt).stdout.strip()

    def wait_screen(self, pred, what):
        last = []

        def check():
            last[:] = self.screen()
            return pred(last)
        if not wait_until(check, SCREEN_WAIT, interval=0.1):
            self.fail("screen never showed %s:\n%s" % (what, "\n".join(last)))
        return last

    def assert_fits(self, lines, width):
        for l in lines:
            self.assertLessEqual(len(l), width, "line wider than %d: %r" % (width, l))

    def top_pid(self):
        """top's pid: the child of the pane's shell."""
        shell = int(self.pane("#{pane_pid}"))
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,comm="], capture_output=True,
                             text=True).stdout
        for line in out.splitlines():
            pid, ppid, comm = line.split(None, 2)
            if int(ppid) == shell and comm.strip() == "lookout":
                return int(pid)
        return None

    def assert_restored(self, lines):
        self.assertIn("tty restored", lines)
        self.assertIn("top exited 0", lines)
        self.assertEqual(self.pane("#{alternate_on}"), "0")
        self.assertEqual(self.pane("#{cursor_flag}"), "1")

    def test_top_fits_resizes_and_quits(self):
        sink = otlp_sink.OtlpSink(port=helpers.free_ports(1)[0])
        sink.start()
        self.addCleanup(sink.stop)
        agent = self.start_agent(sink.port)
        self.send_traffic(agent)
        spans = str(SPANS_PER_REQUEST * REQUESTS)
        self.start_top("127.0.0.1:%d" % agent.admin_port, width=80)

        def shows_counts(lines, width):
            t = tables("\n".join(lines))
            rec = {(r["RECEIVER"], r["SIGNAL"]): r for r in t.get("RECEIVER", [])}
            exp = {(r["EXPORTER"], r["SIGNAL"]): r for r in t.get("EXPORTER", [])}
            return (("otlp", "traces") in rec and rec[("otlp", "traces")]["ACCEPTED"] == spans and
                    rec.get(("lines", "logs"), {}).get("ACCEPTED") == str(LINES) and
                    exp.get(("otlp/sink", "traces"), {}).get("SENT") == spans and
                    is_rate(rec[("otlp", "traces")]["ACCEPTED/s"]) and
                    all(len(l) <= width for l in lines))

        lines = self.wait_screen(lambda l: shows_counts(l, 80), "the counts at 80 columns")
        self.assert_fits(lines, 80)
        self.assertIn("ready", " ".join(lines[:3]))
        self.assertTrue(any("REFUSED/s" in l and "CONNS" in l for l in lines), lines)

        self.assertEqual(self.tmux("resize-window", "-t", "top", "-x", "50", "-y", "24")
                         .returncode, 0)
        # At 50 columns the optional CONNS column has given way.
        lines = self.wait_screen(
            lambda l: shows_counts(l, 50) and not any("CONNS" in x for x in l),
            "the counts at 50 columns")
        self.assert_fits(lines, 50)

        self.tmux("send-keys", "-t", "top", "q")
        lines = self.wait_screen(lambda l: "top exited 0" in l, "top ending on q")
        self.assert_restored(lines)

    def test_top_waits_for_the_agent_and_ends_on_ctrl_c_and_sigterm(self):
        sink = otlp_sink.OtlpSink(port=helpers.free_ports(1)[0])
        sink.start()
        self.addCleanup(sink.stop)
        agent = YamlAgent(CONFIG.format(sink_port=sink.port))
        self.addCleanup(shutil.rmtree, agent.dir, True)
        self.start_top("127.0.0.1:%d" % agent.admin_port, width=60)
        # Nobody there yet: top says so and keeps trying.
        lines = self.wait_screen(lambda l: any("UNREACHABLE" in x for x in l), "unreachable")
        self.assert_fits(lines, 60)
        self.assertTrue(any("retrying" in x for x in lines), lines)
        agent.start()
        self.addCleanup(agent.kill)
        agent.wait_ready()
        lines = self.wait_screen(lambda l: "RECEIVER" in " ".join(l) and
                                 not any("UNREACHABLE" in x for x in l), "the agent")
        self.assert_fits(lines, 60)

        self.tmux("send-keys", "-t", "top", "C-c")
        lines = self.wait_screen(lambda l: "top exited 0" in l, "top ending on Ctrl-C")
        self.assert_restored(lines)

        # Again, ended by SIGTERM this time.
        self.tmux("kill-session", "-t", "top")
        self.start_top("127.0.0.1:%d" % agent.admin_port, width=60)
        self.wait_screen(lambda l: "RECEIVER" in " ".join(l), "the agent")
        pid = wait_until(self.top_pid, 5)
        self.assertIsNotNone(pid)
        os.kill(pid, signal.SIGTERM)
        lines = self.wait_screen(lambda l: "top exited 0" in l, "top ending on SIGTERM")
        self.assert_restored(lines)

    def test_top_refuses_a_pipe(self):
        r = subprocess.run([BIN, "top", "--admin", "127.0.0.1:1"], capture_output=True,
                           text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertEqual(r.stdout, "")
        self.assertIn("lookout status", r.stderr)


if __name__ == "__main__":
    unittest.main()
