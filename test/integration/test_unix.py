"""OTLP/gRPC over a Unix socket, configured beside the TCP listener, as SDKs
use it with `unix:///path` endpoints."""
import os
import shutil
import stat
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402
from helpers import Agent, Client, make_request  # noqa: E402
import otlp_sink  # noqa: E402
import test_traces  # noqa: E402


class UnixSocketTest(test_traces.AgentTestCase):

    def setUp(self):
        self.sink = otlp_sink.OtlpSink(port=helpers.free_ports(1)[0])
        self.sink.start()
        self.addCleanup(self.sink.stop)
        # sun_path is short (104 bytes on macOS): keep the directory short too.
        self.sockdir = tempfile.mkdtemp(prefix="lk-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.sockdir, True)
        self.sock = os.path.join(self.sockdir, "otlp.sock")
        self.agent = Agent(self.sink.port)
        self.addCleanup(shutil.rmtree, self.agent.dir, True)
        with open(self.agent.config_path) as f:
            text = f.read()
        # A second receiver on the socket, in the same pipeline as the TCP one.
        text = text.replace("exporters:\n", "  otlp/unix:\n    protocols:\n      grpc:\n"
                            "        endpoint: unix://%s\n" % self.sock + "exporters:\n", 1)
        text = text.replace("receivers: [otlp]", "receivers: [otlp, otlp/unix]")
        with open(self.agent.config_path, "w") as f:
            f.write(text)
        self.agent.start()
        self.addCleanup(self.agent.kill)
        self.agent.wait_ready()

    def test_export_over_unix_socket_and_tcp(self):
        self.assertTrue(stat.S_ISSOCK(os.stat(self.sock).st_mode), "no socket at %s" % self.sock)
        unix = Client("unix://" + self.sock)
        self.addCleanup(unix.close)
        tcp = Client(self.agent.grpc_endpoint)
        self.addCleanup(tcp.close)
        over_unix = make_request("unix", resources=1, scopes=1, spans=4)
        over_tcp = make_request("tcp", resources=1, scopes=1, spans=3)
        unix.export(over_unix)
        tcp.export(over_tcp)
        self.client = tcp
        self.assert_delivered([over_unix, over_tcp])
        m = self.agent.metrics()
        self.assertEqual(m.value("lookout_receiver_accepted_spans_total",
                                 receiver="otlp/unix", transport="grpc"), 4)
        self.assertEqual(m.value("lookout_receiver_accepted_spans_total",
                                 receiver="otlp", transport="grpc"), 3)
        self.stop_agent()
        self.assertFalse(os.path.exists(self.sock), "socket file left behind after exit")


if __name__ == "__main__":
    unittest.main()
