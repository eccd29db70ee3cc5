"""Free TCP ports for tests that start agents: shared by the integration tests
(helpers.py) and the docs check (test/docs/check.py). Standard library only."""

import os
import random
import socket
import time


def _ephemeral_low():
    """The lowest port the kernel hands out for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152     # IANA's range; macOS and the BSDs use it


_PORT_LOW = 12000
_PORT_HIGH = max(_PORT_LOW + 2000, min(_ephemeral_low(), 65536))
_ports_given = set()
_port_rng = random.Random(os.getpid() ^ int(time.time() * 1000))


def free_ports(n):
    """|n| distinct TCP ports on 127.0.0.1 that were free a moment ago.

    They are drawn at random below the kernel's ephemeral range: a port taken
    from bind(0) is in that range, and between our closing it and the agent
    binding it, any outgoing connection on the machine (a client to a sink,
    another test run) can be given it, which fails the agent with "address
    already in use". Below the range only listeners compete, and ours draw
    at random from 20,000 ports, never the same one twice in a process."""
    ports = []
    while len(ports) < n:
        port = _port_rng.randrange(_PORT_LOW, _PORT_HIGH)
        if port in _ports_given:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _ports_given.add(port)
        ports.append(port)
    return ports
