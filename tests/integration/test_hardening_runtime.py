"""Issue 9, the runtime's promises: one process per address (a second sluice on a port a running
one serves does not start, HTTP, status, TCP and UDP stream ports alike), a generation that
cannot be built whole is refused (at start-up: exit non-zero; on reload: the running one keeps
serving), and /healthz says `draining` from the first SIGTERM on."""
import signal
import socket
import subprocess
import threading

import pytest
import requests

import helpers
from helpers import direct_route, direct_service, proxy_service
from udp_backend import UdpBackend

UNRESOLVABLE = "no-such-host.invalid"  # RFC 6761: never resolves


def free_udp_port():
    with helpers._port_lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in helpers._ports_given:
                helpers._ports_given.add(port)
                return port
    raise RuntimeError("no free UDP port")


def tcp_stream(name, node, port, plugins=None):
    route = {"name": name, "server_addr": "127.0.0.1", "server_port": port}
    if plugins:
        route["plugins"] = plugins
    return {"name": name, "type": "stream",
            "upstream": {"scheme": "tcp", "nodes": [{"address": node}], "timeouts": {"connect": "1s"}},
            "routes": [route]}


def udp_stream(name, node, port):
    return {"name": name, "type": "stream", "upstream": {"scheme": "udp", "nodes": [{"address": node}]},
            "routes": [{"name": name, "server_addr": "127.0.0.1", "server_port": port}]}


def refused_start(make_gateway, services, gateway=None):
    """Starts a gateway that must not start; returns its stderr."""
    g = make_gateway(services, gateway=gateway, start=False)
    g.start(wait=False)
    try:
        code = g.proc.wait(30)
    except subprocess.TimeoutExpired:
        g.kill()
        pytest.fail("sluice started although it must not:\n" + g.stderr_text()[-3000:])
    g.exit_code = code
    g._close_files()
    assert code != 0, g.stderr_text()
    return g.stderr_text()


def http_via_stream(port):
    """An HTTP request through a TCP stream port to the HTTP backend behind it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


def udp_ask(port, data=b"ping"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        for _ in range(5):
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recvfrom(65536)[0]
            except socket.timeout:
                continue
        return None
    finally:
        s.close()


@pytest.fixture
def udp_backend():
    b = UdpBackend(b"echo:")
    yield b
    b.close()


# ---------------------------------------------------------------------------------------------
# /healthz while draining

def test_healthz_says_draining_after_sigterm(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "p", "paths": ["/*"]}])])
    r = requests.get(g.status_url + "/healthz", timeout=5)
    assert (r.status_code, r.text) == (200, "ok\n")
    out = {}

    def slow():
        out["r"] = requests.get(g.url + "/slow?delay=3", timeout=20)

    t = threading.Thread(target=slow)
    t.start()
    backend.wait_requests(1)
    g.signal(signal.SIGTERM)
    # the slow request keeps the drain open; the status listener answers meanwhile
    helpers.wait_until(lambda: requests.get(g.status_url + "/healthz", timeout=5).status_code == 503,
                       what="/healthz 503")
    r = requests.get(g.status_url + "/healthz", timeout=5)
    assert (r.status_code, r.reason, r.text) == (503, "Service Unavailable", "draining\n")
    assert t.is_alive()
    t.join(20)
    assert out["r"].status_code == 200
    g.exit_code = g.proc.wait(20)  # the drain ends by itself: no second signal
    assert g.exit_code == 0
