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
    return helpers.raw_exchange("127.0.0.1", port, b"GET /through HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


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
# one process per address

def test_second_instance_on_the_http_port_does_not_start(make_gateway):
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="first")])]
    first = make_gateway(svc)
    addr = "127.0.0.1:%d" % first.port
    err = refused_start(make_gateway, svc, gateway={"http": {"listen": [addr]}})
    assert addr in err and "address already in use" in err.lower(), err
    # the first one keeps all of its traffic
    for _ in range(20):
        assert requests.get(first.url + "/a", timeout=5).text == "first"


def test_second_instance_on_a_second_http_listen_address_does_not_start(make_gateway):
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="first")])]
    extra = helpers.free_port()
    first = make_gateway(svc, listen_extra=["127.0.0.1:%d" % extra])
    other = helpers.free_port()
    addr = "127.0.0.1:%d" % extra
    err = refused_start(make_gateway, svc, gateway={"http": {"listen": ["127.0.0.1:%d" % other, addr]}})
    assert addr in err, err
    for _ in range(10):
        assert requests.get("http://%s/a" % addr, timeout=5).text == "first"
    # nothing of the refused instance was left listening
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:%d/a" % other, timeout=5)


def test_second_instance_on_the_status_port_does_not_start(make_gateway):
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="first")])]
    first = make_gateway(svc)
    addr = "127.0.0.1:%d" % first.status_port
    err = refused_start(make_gateway, svc, gateway={"status": {"listen": addr}})
    assert addr in err, err
    assert requests.get(first.status_url + "/healthz", timeout=5).status_code == 200


def test_second_instance_on_a_tcp_stream_port_does_not_start(make_gateway, backend):
    port = helpers.free_port()
    first = make_gateway([tcp_stream("t", backend.address, port)])
    assert b" 200 " in http_via_stream(port)
    err = refused_start(make_gateway, [tcp_stream("t", backend.address, port)])
    assert "127.0.0.1:%d" % port in err and "address already in use" in err.lower(), err
    n = len(backend.snapshot())
    for _ in range(10):
        assert b" 200 " in http_via_stream(port)
    assert len(backend.snapshot()) == n + 10
    first.check_alive()


def test_second_instance_on_a_udp_stream_port_does_not_start(make_gateway, udp_backend):
    port = free_udp_port()
    first = make_gateway([udp_stream("u", udp_backend.address, port)])
    assert udp_ask(port) == b"echo:ping"
    err = refused_start(make_gateway, [udp_stream("u", udp_backend.address, port)])
    assert "127.0.0.1:%d" % port in err and "address already in use" in err.lower(), err
    # every new client still reaches the first gateway (a second one in the SO_REUSEPORT group
    # would take some of them and answer nothing)
    for i in range(20):
        assert udp_ask(port, b"n%d" % i) == b"echo:n%d" % i
    first.check_alive()


def test_reload_onto_a_port_another_instance_serves_is_refused(make_gateway):
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="A")])]
    other = make_gateway([direct_service(routes=[direct_route("a", ["/a"], body="other")])])
    g = make_gateway(svc)
    taken = "127.0.0.1:%d" % other.port
    g.reload(gateway={"http": {"listen": ["127.0.0.1:%d" % g.port, taken]}}, expect="failure")
    assert taken in g.stderr_text()
    for _ in range(10):
        assert requests.get(other.url + "/a", timeout=5).text == "other"
    assert requests.get(g.url + "/a", timeout=5).text == "A"


def test_reloads_keep_their_own_ports(make_gateway, backend, udp_backend):
    """The process's own listeners are not "another instance": reloads that keep, add, drop and
    take back addresses still work."""
    tport, uport, extra = helpers.free_port(), free_udp_port(), helpers.free_port()
    web = direct_service(routes=[direct_route("a", ["/a"], body="A")])
    g = make_gateway([web, tcp_stream("t", backend.address, tport), udp_stream("u", udp_backend.address, uport)])
    g.reload([web, tcp_stream("t", backend.address, tport), udp_stream("u", udp_backend.address, uport)],
             gateway={"http": {"listen": ["127.0.0.1:%d" % g.port, "127.0.0.1:%d" % extra]}})
    assert requests.get("http://127.0.0.1:%d/a" % extra, timeout=5).text == "A"
    g.reload([web], gateway={"http": {"listen": ["127.0.0.1:%d" % g.port]}})
    g.reload([web, tcp_stream("t", backend.address, tport), udp_stream("u", udp_backend.address, uport)],
             gateway={"http": {"listen": ["127.0.0.1:%d" % g.port, "127.0.0.1:%d" % extra]}})
    assert requests.get("http://127.0.0.1:%d/a" % extra, timeout=5).text == "A"
    assert b" 200 " in http_via_stream(tport)
    assert udp_ask(uport) == b"echo:ping"
    assert (g.metrics().get("sluice_config_reloads_total", result="failure") or 0) == 0


# ---------------------------------------------------------------------------------------------
# a generation that cannot be built whole is refused

def test_stream_plugin_that_cannot_start_refuses_the_start(make_gateway, backend):
    port = helpers.free_port()
    err = refused_start(make_gateway, [tcp_stream("t", backend.address, port,
                                                  plugins={"syslog": {"host": UNRESOLVABLE, "port": 514}})])
    assert "syslog" in err and UNRESOLVABLE in err, err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_stream_plugin_that_cannot_start_refuses_the_reload(make_gateway, backend):
    port = helpers.free_port()
    ok = [tcp_stream("t", backend.address, port, plugins={"ip-restriction": {"whitelist": ["127.0.0.1"]}})]
    g = make_gateway(ok)
    assert b" 200 " in http_via_stream(port)
    # the new generation would lose its ip-restriction to nobody, and log to a syslog that
    # does not resolve: it is not published at all
    g.reload([tcp_stream("t", backend.address, port, plugins={"syslog": {"host": UNRESOLVABLE, "port": 514}})],
             expect="failure")
    assert "reload failed" in g.stderr_text()
    assert b" 200 " in http_via_stream(port)
    g.reload(ok)
    assert b" 200 " in http_via_stream(port)


def test_access_log_that_cannot_be_opened_refuses_the_start(make_gateway, tmp_path):
    path = str(tmp_path / "no-such-dir" / "access.log")
    err = refused_start(make_gateway, [direct_service(routes=[direct_route("a", ["/a"])])],
                        gateway={"access_log": {"path": path}})
    assert path in err, err


def test_access_log_that_cannot_be_opened_refuses_the_reload(make_gateway, tmp_path):
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="A")])]
    g = make_gateway(svc)
    path = str(tmp_path / "no-such-dir" / "access.log")
    g.reload([direct_service(routes=[direct_route("a", ["/a"], body="B")])],
             gateway={"access_log": {"path": path}}, expect="failure")
    assert path in g.stderr_text()
    r = requests.get(g.url + "/a", timeout=5)
    assert r.text == "A"
    # and the running generation still logs where it did
    g.wait_log(lambda e: e.get("path") == "/a")


def test_access_log_under_a_file_refuses_the_start(make_gateway, tmp_path):
    """A parent that is a file, not a directory: the open fails for root as well."""
    (tmp_path / "plain-file").write_text("x")
    path = str(tmp_path / "plain-file" / "access.log")
    err = refused_start(make_gateway, [direct_service(routes=[direct_route("a", ["/a"])])],
                        gateway={"access_log": {"path": path}})
    assert path in err, err


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
