"""Limits (414, 431, 408) and malformed or ambiguous requests (400): the client gets the JSON
error, the connection is closed where the contract says so, and the upstream receives nothing."""
import socket
import time

import pytest

from backend import Backend
from helpers import RawConn, build_request, proxy_service, wait_until


@pytest.fixture(scope="module")
def env(make_module_gateway):
    b = Backend("bad")
    g = make_module_gateway([proxy_service([b])], gateway={
        "http": {"max_uri_bytes": 1024, "max_header_bytes": 4096, "max_headers": 20, "header_timeout": "1s"},
    })
    yield g, b
    b.close()


@pytest.fixture
def gb(env):
    g, b = env
    g.check_alive()
    b.reset()
    yield g, b
    g.check_alive()


def assert_json_error(r, status, code):
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    assert r.json() == {"error": code, "status": status}, r.body


def send_and_expect(g, data, status, code, closed=True):
    with RawConn("127.0.0.1", g.port, timeout=10) as c:
        c.send(data)
        r = c.read_response()
        assert_json_error(r, status, code)
        if closed:
            assert c.is_closed(5), "connection not closed after %d" % status
        return r


def assert_backend_untouched(b, settle=0.3):
    time.sleep(settle)  # a request the gateway wrongly forwarded would have arrived by now
    assert b.snapshot() == [], "upstream received %r" % b.snapshot()


def assert_no_complete_request(b, settle=0.3):
    time.sleep(settle)
    done = [r for r in b.snapshot() if r.complete]
    assert done == [], "upstream received complete request(s) %r" % done


# ---------------------------------------------------------------- 414


def test_uri_too_long(gb):
    g, b = gb
    send_and_expect(g, build_request("GET", "/" + "a" * 2000), 414, "uri_too_long", closed=False)
    assert_backend_untouched(b)
    e = g.wait_log(lambda e: e["status"] == 414)
    assert e["error"] == "uri_too_long"


def test_uri_under_limit_is_fine(gb):
    g, b = gb
    path = "/" + "a" * 900
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", path)
    assert r.status == 200 and r.json()["path"] == path


# ---------------------------------------------------------------- 431


def test_one_huge_header(gb):
    g, b = gb
    send_and_expect(g, build_request("GET", "/h", headers=[("X-Big", "v" * 6000)]), 431, "headers_too_large",
                    closed=False)
    assert_backend_untouched(b)


def test_many_headers_over_byte_limit(gb):
    g, b = gb
    hs = [("X-H%d" % i, "v" * 300) for i in range(15)]  # 15 headers (under the count), ~4.7 KB
    send_and_expect(g, build_request("GET", "/h", headers=hs), 431, "headers_too_large", closed=False)
    assert_backend_untouched(b)


def test_too_many_headers(gb):
    g, b = gb
    hs = [("X-H%d" % i, "1") for i in range(30)]  # small, but more than max_headers
    send_and_expect(g, build_request("GET", "/h", headers=hs), 431, "headers_too_large", closed=False)
    assert_backend_untouched(b)


def test_headers_under_limits_are_fine(gb):
    g, b = gb
    hs = [("X-H%d" % i, "v" * 100) for i in range(12)]
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/ok", headers=hs)
    assert r.status == 200
    assert len(b.snapshot()) == 1


# ---------------------------------------------------------------- 408


def test_header_timeout_partial_head(gb):
    g, b = gb
    with RawConn("127.0.0.1", g.port, timeout=10) as c:
        c.send(b"GET /slow HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n")
        r = c.read_response()
        assert_json_error(r, 408, "header_timeout")
        assert c.is_closed(5)
    assert_backend_untouched(b)
    e = g.wait_log(lambda e: e.get("error") == "header_timeout")
    assert e["status"] == 408


def test_header_timeout_is_not_reset_by_dribbling(gb):
    """A client sending one byte at a time never finishes its head: the timeout is for the whole
    head, not per byte (slowloris)."""
    g, b = gb
    data = b"GET /dribble HTTP/1.1\r\nHost: example.com\r\n" + b"X-Pad: " + b"p" * 200
    deadline = time.monotonic() + 8
    with RawConn("127.0.0.1", g.port, timeout=10) as c:
        got = b""
        c.sock.settimeout(0.1)
        for i in range(len(data)):
            if time.monotonic() > deadline or b"\r\n\r\n" in got:
                break
            try:
                c.sock.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                d = c.sock.recv(65536)
                got += d
                if not d:
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                break
        c.sock.settimeout(3)
        try:
            while b"\r\n\r\n" not in got:
                d = c.sock.recv(65536)
                if not d:
                    break
                got += d
        except (socket.timeout, ConnectionResetError):
            pass
        assert got.startswith(b"HTTP/1.1 408"), got
    assert_backend_untouched(b)


def test_keepalive_connection_idle_between_requests_is_not_408_mid_request(gb):
    """After a complete exchange, a new request sent within header_timeout is served."""
    g, b = gb
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/one").status == 200
        time.sleep(0.5)
        assert c.request("GET", "/two").status == 200


# ---------------------------------------------------------------- 400 in the head

SMUGGLING = {
    "cl_and_te": b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "te_and_cl": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                 b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "two_differing_cl": b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_list_differing": b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "cl_not_a_number": b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nhello",
    "cl_negative": b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello",
    "cl_hex": b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
    "te_gzip_chunked": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_chunked_identity": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te_xchunked": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te_identity": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nhello",
    "te_chunked_twice": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_split_headers": b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "nul_in_header_name": b"GET /s HTTP/1.1\r\nHost: x\r\nX-Fo\x00o: 1\r\n\r\n",
    "cr_in_header_name": b"GET /s HTTP/1.1\r\nHost: x\r\nX-Fo\ro: 1\r\n\r\n",
    "space_in_header_name": b"GET /s HTTP/1.1\r\nHost: x\r\nX Foo: 1\r\n\r\n",
    "space_before_colon": b"GET /s HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    "bare_lf_header": b"GET /s HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B: 2\r\n\r\n",
    "bare_lf_request_line": b"GET /s HTTP/1.1\nHost: x\r\n\r\n",
    "bare_lf_end_of_head": b"GET /s HTTP/1.1\r\nHost: x\n\n",
    "obs_fold_space": b"GET /s HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\n\r\n",
    "obs_fold_tab": b"GET /s HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tcontinued\r\n\r\n",
    "empty_header_name": b"GET /s HTTP/1.1\r\nHost: x\r\n: value\r\n\r\n",
    "no_colon": b"GET /s HTTP/1.1\r\nHost: x\r\nX-No-Colon\r\n\r\n",
    "garbage_request_line": b"HELLO\r\n\r\n",
    "bad_version": b"GET /s HTTP/1.x\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_malformed_head_is_400_and_closed(gb, case):
    g, b = gb
    send_and_expect(g, SMUGGLING[case], 400, "bad_request", closed=True)
    assert_backend_untouched(b)


def test_bad_request_logged(gb):
    g, b = gb
    send_and_expect(g, SMUGGLING["cl_and_te"], 400, "bad_request")
    e = g.wait_log(lambda e: e.get("error") == "bad_request")
    assert e["status"] == 400 and e["upstream"] is None


def test_smuggling_after_a_good_request_on_keepalive(gb):
    """A good request, then a smuggling attempt on the same connection: the first is answered,
    the second is refused and only the first ever reaches the upstream."""
    g, b = gb
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/good").status == 200
        c.send(SMUGGLING["te_and_cl"])
        assert_json_error(c.read_response(), 400, "bad_request")
        assert c.is_closed(5)
    time.sleep(0.3)
    assert [r.path for r in b.snapshot()] == ["/good"]


# ---------------------------------------------------------------- 400 in a chunked body

BAD_CHUNKS = {
    "non_hex_size": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative_size": b"-5\r\nhello\r\n0\r\n\r\n",
    "overflow_size": b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "missing_crlf_after_data": b"5\r\nhelloXX0\r\n\r\n",
    "empty_size": b"\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CHUNKS))
def test_invalid_chunked_body_is_400_and_closed(gb, case):
    g, b = gb
    data = b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + BAD_CHUNKS[case]
    send_and_expect(g, data, 400, "bad_request", closed=True)
    # the head may already have been streamed to the upstream, but never a complete request
    assert_no_complete_request(b)


# ---------------------------------------------------------------- RFC 9112 §3.2: Host


def test_http11_without_host_is_400(gb):
    g, b = gb
    send_and_expect(g, b"GET /nohost HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, "bad_request")
    assert_backend_untouched(b)


def test_two_host_headers_is_400(gb):
    g, b = gb
    send_and_expect(g, b"GET /twohost HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", 400, "bad_request")
    assert_backend_untouched(b)


def test_gateway_survives_all_of_it(gb):
    """After every case above the gateway still answers normally."""
    g, b = gb
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("POST", "/fine", body=b"12345")
    assert r.status == 200 and r.json()["body"] == "12345"
    wait_until(lambda: len(b.snapshot()) == 1)
