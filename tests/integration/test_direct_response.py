"""Routes answered by the gateway itself (direct_response)."""
import pytest
import requests

from helpers import RawConn, direct_route, direct_service


@pytest.fixture
def gw_direct(make_gateway):
    return make_gateway([direct_service(routes=[
        direct_route("hello", ["/hello"]),
        direct_route("teapot", ["/tea", "/tea/*"], status=418, body='{"short": "stout"}',
                     headers={"Content-Type": "application/json", "X-Custom": "yes", "Cache-Control": "no-store"}),
        direct_route("empty", ["/empty"], status=204, body=None),
        direct_route("gone", ["/gone"], status=410, body="gone\n", methods=["GET", "HEAD"]),
    ])])


def test_hello(gw_direct):
    r = requests.get(gw_direct.url + "/hello", timeout=5)
    assert r.status_code == 200
    assert r.text == "hello\n"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Length"] == "6"


def test_status_headers_body_exact(gw_direct):
    with RawConn("127.0.0.1", gw_direct.port) as c:
        r = c.request("POST", "/tea/pot", body=b"ignored body")
    assert r.status == 418
    assert r.body == b'{"short": "stout"}'
    assert r.header("x-custom") == "yes"
    assert r.header("cache-control") == "no-store"
    assert r.header("content-type") == "application/json"
    assert r.header("content-length") == str(len(r.body))


def test_no_body_status(gw_direct):
    with RawConn("127.0.0.1", gw_direct.port) as c:
        r = c.request("GET", "/empty")
        assert r.status == 204
        assert r.header("content-length") is None and r.header("transfer-encoding") is None
        r = c.request("GET", "/hello")
        assert r.body == b"hello\n"


def test_head_gets_headers_only(gw_direct):
    with RawConn("127.0.0.1", gw_direct.port) as c:
        r = c.request("HEAD", "/gone")
        assert r.status == 410 and r.body == b""
        assert r.header("content-length") == "5"  # the length a GET gets
        r = c.request("GET", "/gone")
        assert r.status == 410 and r.body == b"gone\n"


def test_keepalive_and_pipelining_with_direct_responses(gw_direct):
    with RawConn("127.0.0.1", gw_direct.port) as c:
        c.send(b"".join(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(50)))
        for _ in range(50):
            r = c.read_response()
            assert r.status == 200 and r.body == b"hello\n"


def test_request_body_is_consumed(gw_direct):
    """A direct response to a request with a body must skip the body, not parse it as the next request."""
    inner = b"GET /tea HTTP/1.1\r\nHost: x\r\n\r\n"
    with RawConn("127.0.0.1", gw_direct.port) as c:
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(inner), inner))
        c.send(b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner))
        c.send(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().body == b"hello\n"
        assert c.read_response().body == b"hello\n"
        assert c.read_response().status == 410


def test_direct_response_logged(gw_direct):
    requests.get(gw_direct.url + "/tea/x", timeout=5)
    e = gw_direct.wait_log(lambda e: e["path"] == "/tea/x")
    assert e["status"] == 418
    assert e["route"] == "teapot" and e["service"] == "static"
    assert e["upstream"] is None and e["error"] is None
    assert e["method"] == "GET" and e["client"] == "127.0.0.1"
    assert e["bytes_out"] > len(b'{"short": "stout"}')
    for k in ("time", "client_port", "host", "bytes_in", "upstream_status", "duration_ms", "upstream_ms"):
        assert k in e, k
