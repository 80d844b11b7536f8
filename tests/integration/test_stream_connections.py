"""Resident memory of the gateway while about 10,000 TCP connections are open at once through
one stream route (the issue's claim), measured on the release build ($SLUICE_RELEASE_BIN, as in
test_large_transfer.py: the sanitizers' bookkeeping would dominate).

Descriptor budget: the limit here is 20000 (soft and hard) per process, and each proxied
connection costs the gateway two descriptors (client side and upstream side), so 10,000 of them
need 20,000 plus the gateway's own (listeners, loops, the status socket...). The test therefore
opens as many as fit under the gateway's limit: min(10000, (limit - its descriptors at start -
50) // 2), about 9,960 here. The clients live in the test process and the backend in a process
of its own (backends/echo_many.py), so neither shares the gateway's budget. The count and the
per-connection resident memory are printed (pytest -s)."""
import os
import resource
import socket
import subprocess
import sys

from helpers import free_port, wait_until
from test_stream_tcp import stream_service

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 10000
# Resident memory per open connection the gateway may take: its session (two sockets, timers,
# the pipe) is about 1.5 KiB; the rest is allocator slack.
PER_CONN_LIMIT = 8 * 1024


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_release_memory_with_10000_connections(make_gateway, release_bin):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backend = subprocess.Popen([sys.executable, os.path.join(HERE, "backends", "echo_many.py")],
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    clients = []
    try:
        bport = int(backend.stdout.readline())
        port = free_port()
        g = make_gateway([stream_service("many", ["127.0.0.1:%d" % bport], [
            {"name": "r", "server_addr": "127.0.0.1", "server_port": port, "plugins": {"prometheus": {}}}],
            timeouts={"connect": "5s", "idle": "10m"})], binary=release_bin)
        pid = g.proc.pid
        with open("/proc/%d/limits" % pid) as f:
            limit = int(next(ln for ln in f if ln.startswith("Max open files")).split()[3])
        n = min(TARGET, (limit - open_fds(pid) - 50) // 2, (hard - 100))
        assert n >= 5000, "descriptor limit %d leaves room for %d connections only" % (limit, n)

        def open_one():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(("127.0.0.1", port))
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            return s

        # Warm up (worker arenas, first sessions), then measure from there.
        for _ in range(200):
            open_one().close()
        wait_until(lambda: (g.metrics().get("sluice_stream_connections_active", service="many", route="r") or 0) == 0,
                   what="the warm-up sessions to end")
        before = vm_rss_kib(pid)
        for _ in range(n):
            clients.append(open_one())
        m = g.metrics()
        assert m.get("sluice_stream_connections_active", service="many", route="r") == n
        assert open_fds(pid) >= 2 * n
        after = vm_rss_kib(pid)
        per_conn = (after - before) * 1024 / n
        print("\n%d connections open: gateway VmRSS %d KiB before, %d KiB with them open: %.0f bytes each"
              % (n, before, after, per_conn))
        assert per_conn < PER_CONN_LIMIT, "%.0f bytes per connection" % per_conn
        # Every one of them still carries bytes both ways.
        for s in clients[::97]:
            s.sendall(b"y")
            assert s.recv(1) == b"y"
    finally:
        for s in clients:
            s.close()
        backend.kill()
        backend.wait()
        backend.stdout.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_until(lambda: (g.metrics().get("sluice_stream_connections_active", service="many", route="r") or 0) == 0,
               timeout=60, what="every session to end")
