"""Every TCP connection and UDP session of a stream service gets an access log line when it ends,
whatever the route's plugins; connections no route takes are logged and counted too."""
import re
import socket
import time

from helpers import wait_until
from test_stream_tcp import make_stream_backend, roundtrip, stream_service  # noqa: F401 (fixture)
from test_stream_udp import ask, client, free_udp_port, make_udp_backend, udp_service  # noqa: F401 (fixture)
from helpers import free_port


def stream_lines(g, protocol):
    return [e for e in g.log_lines() if e.get("protocol") == protocol]


def test_a_tcp_session_is_logged(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port}])])
    assert roundtrip(port, b"ping\n") == b"ping\n"
    wait_until(lambda: stream_lines(g, "tcp"), what="the session's line")
    e = stream_lines(g, "tcp")[0]
    assert list(e) == ["time", "protocol", "client", "client_port", "server", "server_port", "route", "service",
                       "upstream", "status", "bytes_in", "bytes_out", "upstream_bytes_in", "upstream_bytes_out",
                       "duration_ms", "error"]
    assert (e["client"], e["server"], e["server_port"], e["route"], e["service"], e["upstream"]) == \
        ("127.0.0.1", "127.0.0.1", port, "e", "echo", b.address)
    assert (e["status"], e["error"]) == (200, None)
    assert (e["bytes_in"], e["bytes_out"], e["upstream_bytes_in"], e["upstream_bytes_out"]) == (5, 5, 5, 5)
    assert e["client_port"] > 0 and e["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"])


def test_refused_and_failed_tcp_sessions_are_logged(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_addr = "127.0.0.1:%d" % dead.getsockname()[1]
    dead.close()  # nothing listens there: connecting is refused
    p_deny, p_dead = free_port(), free_port()
    g = make_gateway([
        stream_service("deny", [b], [{"name": "d", "server_addr": "127.0.0.1", "server_port": p_deny,
                                      "plugins": {"ip-restriction": {"blacklist": ["127.0.0.1"]}}}]),
        stream_service("dead", [dead_addr], [{"name": "x", "server_addr": "127.0.0.1", "server_port": p_dead}]),
    ])
    roundtrip(p_deny, b"a")
    roundtrip(p_dead, b"b")
    wait_until(lambda: len(stream_lines(g, "tcp")) == 2, what="both lines")
    by_route = {e["route"]: e for e in stream_lines(g, "tcp")}
    assert (by_route["d"]["status"], by_route["d"]["error"], by_route["d"]["upstream"]) == (403, "access_denied", None)
    assert (by_route["x"]["status"], by_route["x"]["upstream"]) == (502, dead_addr)
    assert by_route["x"]["error"]


def test_a_tcp_connection_no_route_takes_is_logged_and_counted(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("only10", [b], [{"name": "r", "server_addr": "127.0.0.1", "server_port": port,
                                                      "remote_addr": "10.0.0.0/8"}])])
    assert g.metrics().get("sluice_stream_unrouted_total", protocol="tcp") == 0
    assert roundtrip(port, b"x") == b""
    wait_until(lambda: stream_lines(g, "tcp"), what="the refused connection's line")
    e = stream_lines(g, "tcp")[0]
    assert (e["route"], e["service"], e["upstream"], e["status"], e["error"]) == (None, None, None, 403, "no_route")
    assert e["server_port"] == port
    assert g.metrics().get("sluice_stream_unrouted_total", protocol="tcp") == 1


def test_udp_sessions_are_logged_and_unrouted_datagrams_counted(make_gateway, make_udp_backend):
    b = make_udp_backend()
    port, other = free_udp_port(), free_udp_port()
    g = make_gateway([udp_service("echo", [b], [
        {"name": "e", "server_addr": "127.0.0.1", "server_port": port},
        {"name": "far", "server_addr": "127.0.0.1", "server_port": other, "remote_addr": "10.0.0.0/8"},
    ], timeouts={"idle": "300ms"})])
    c = client()
    try:
        assert ask(c, port, b"hello") == b"hello"
        assert ask(c, other, b"nobody") is None
    finally:
        c.close()
    wait_until(lambda: len(stream_lines(g, "udp")) == 2, what="the session's and the refusal's lines")
    lines = {e["route"]: e for e in stream_lines(g, "udp")}
    s = lines["e"]
    assert (s["status"], s["service"], s["upstream"], s["error"]) == (200, "echo", b.address, "idle_timeout")
    assert (s["bytes_in"], s["bytes_out"], s["upstream_bytes_in"], s["upstream_bytes_out"]) == (5, 5, 5, 5)
    r = lines[None]
    assert (r["status"], r["error"], r["server_port"]) == (403, "no_route", other)
    assert g.metrics().get("sluice_stream_unrouted_total", protocol="udp") == 1


def test_combined_format_for_a_stream_session(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port}])],
                     gateway={"access_log": {"format": "combined"}})
    assert roundtrip(port, b"ping\n") == b"ping\n"
    deadline = time.monotonic() + 10
    line = ""
    while time.monotonic() < deadline and not line:
        with open(g.access_log) as f:
            line = f.read().strip()
        time.sleep(0.05)
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"CONNECT 127\.0\.0\.1:%d TCP" 200 5 "-" "-"' % port, line), line
