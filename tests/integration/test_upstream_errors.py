"""Gateway-made upstream errors: 502 connect failed / reset / bad response, 504 timeout, each
with its JSON body and access log code; upstream errors the backend itself sends pass through."""
import socket
import threading
import time

import pytest

from helpers import RawConn, free_port, proxy_service


def assert_json_error(r, status, code):
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    assert r.json() == {"error": code, "status": status}


@pytest.fixture
def gw_fast(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r1", "paths": ["/*"]}],
                                    upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "1s"}})])
    return g, backend


def check_log(g, path, status, code, upstream):
    e = g.wait_log(lambda e: e["path"] == path)
    assert e["status"] == status
    assert e["error"] == code
    assert e["service"] == "svc" and e["route"] == "r1"
    if upstream is not None:
        assert e["upstream"] == upstream
    return e


def test_connect_refused(make_gateway):
    dead = "127.0.0.1:%d" % free_port()
    g = make_gateway([proxy_service([dead], routes=[{"name": "r1", "paths": ["/*"]}])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/refused")
    assert_json_error(r, 502, "upstream_connect_failed")
    check_log(g, "/refused", 502, "upstream_connect_failed", dead)


@pytest.mark.parametrize("how", ["reset", "rst", "partial"])
def test_upstream_closes_before_response_head(gw_fast, how):
    g, backend = gw_fast
    path = "/%s?%s=1" % (how, how)
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", path)
    assert_json_error(r, 502, "upstream_reset")
    e = check_log(g, path, 502, "upstream_reset", backend.address)
    assert e["upstream_status"] is None
    assert len(backend.snapshot()) == 1


def test_malformed_upstream_response(gw_fast):
    g, backend = gw_fast
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/m?malformed=1")
    assert_json_error(r, 502, "upstream_bad_response")
    check_log(g, "/m?malformed=1", 502, "upstream_bad_response", backend.address)


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header Name: x\r\n\r\n",
])
def test_malformed_upstream_heads(gw_fast, garbage):
    g, backend = gw_fast

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(garbage)
        time.sleep(0.2)
        return False

    backend.on("/garbage", handler)
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/garbage")
    assert_json_error(r, 502, "upstream_bad_response")
    check_log(g, "/garbage", 502, "upstream_bad_response", backend.address)


def test_read_timeout_is_504(gw_fast):
    g, backend = gw_fast
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        r = c.request("GET", "/slow?delay=4")
    assert_json_error(r, 504, "upstream_timeout")
    e = check_log(g, "/slow?delay=4", 504, "upstream_timeout", backend.address)
    assert e["duration_ms"] >= 900, "gave up before timeouts.read (1s): %r" % e


def test_upstream_5xx_passes_through(gw_fast):
    g, backend = gw_fast
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/own502?status=502")
    assert r.status == 502
    assert r.header("x-backend") == "b1"
    assert r.json()["path"] == "/own502"
    e = check_log(g, "/own502?status=502", 502, None, backend.address)
    assert e["upstream_status"] == 502


def test_gateway_recovers_after_errors(gw_fast):
    """Broken upstream connections are not put back in the pool."""
    g, backend = gw_fast
    with RawConn("127.0.0.1", g.port) as c:
        for q in ("reset=1", "malformed=1", "rst=1", "partial=1"):
            r = c.request("GET", "/x?" + q)
            assert r.status == 502
            if c.is_closed(0.05):
                c.close()
                c = RawConn("127.0.0.1", g.port)
        for i in range(5):
            r = c.request("GET", "/ok%d" % i)
            assert r.status == 200, r
        c.close()


def test_upstream_closing_idle_keepalive_connection(make_gateway, backend):
    """The upstream closes idle pooled connections; the next request must not fail because the
    gateway picked a connection the upstream had already closed."""
    g = make_gateway([proxy_service([backend])])

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        body = b"ok"
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + body)
        # keep-alive was promised, but close the idle connection shortly after
        threading.Timer(0.2, lambda: _shut(s)).start()
        return True

    backend.on("/idle", handler)
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(4):
            r = c.request("GET", "/idle")
            assert r.status == 200, "request %d: %r" % (i, r)
            time.sleep(0.6)


def _shut(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def test_upstream_dies_mid_body(gw_fast):
    """The upstream sends a head promising 1 MB, then closes after a few bytes: the client must
    not get a response that looks complete (the connection is closed early)."""
    g, backend = gw_fast

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.1)
        return False

    backend.on("/trunc", handler)
    with RawConn("127.0.0.1", g.port) as c:
        c.send(b"GET /trunc HTTP/1.1\r\nHost: x\r\n\r\n")
        _, status, _, headers, _ = c.read_head()
        assert status == 200
        got = c.read_to_close()
        assert len(got) < 1000000
    e = g.wait_log(lambda e: e["path"] == "/trunc")
    assert e["upstream_status"] == 200
