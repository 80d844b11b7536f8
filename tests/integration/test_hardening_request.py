"""Issue 9, the request edge: framing refused before anything goes upstream, one path and one
host for routing, policies and the upstream, headers with underscores, CONNECT, slow bodies,
and the trailer that used to free the balancer's key. Every case drives the real binary."""
import socket
import time

import pytest

from helpers import RawConn, ConnectionClosed, direct_route, proxy_service, wait_until


def answer(g, data, timeout=10.0):
    """Sends raw bytes, returns (status, everything the gateway sent until it closed)."""
    with RawConn("127.0.0.1", g.port, timeout=timeout) as c:
        c.send(data)
        out = c.read_to_close()
    assert out.startswith(b"HTTP/1.1 "), out[:200]
    return int(out[9:12]), out


@pytest.fixture
def gb(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    return g, backend


# ---------------------------------------------------------------------------------------------
# framing: every bare CR, every bare LF, nothing upstream

BAD_FRAMING = {
    "cr_in_header_block": b"GET /a HTTP/1.1\r\nHost: x\r\n\rXGET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n",
    "cr_in_request_line": b"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n",
    "cr_after_request_line": b"GET /a HTTP/1.1\rHost: x\r\n\r\n",
    "cr_in_header_value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "cr_ending_header_line": b"GET /a HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
    "cr_as_head_end": b"GET /a HTTP/1.1\r\nHost: x\r\n\r\r",
    "lf_ending_header_line": b"GET /a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "lf_ending_head": b"GET /a HTTP/1.1\r\nHost: x\r\n\n",
    "nul_in_value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "ctl_in_value": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "space_before_colon": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n",
    "obs_fold": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "cr_in_chunk_size": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\rX\r\nhello\r\n0\r\n\r\n",
    "lf_chunk_size": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
    "cr_in_chunk_ext": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\rc\r\nhello\r\n0\r\n\r\n",
    "bare_cr_after_chunk_data": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n",
    "bare_lf_after_chunk_data": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
    "junk_after_chunk_data": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
    "cr_in_trailer": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: a\rb\r\n\r\n",
    "lf_last_line": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n",
    "lf_after_last_chunk": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n",
    "cr_last_line": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\rX",
    "bad_trailer_name": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT(x): a\r\n\r\n",
    "te_trailing_tab": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te_http10": b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "target_tab": b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
    "target_brace": b"GET /a{b} HTTP/1.1\r\nHost: x\r\n\r\n",
    "target_quote": b"GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n",
    "target_8bit": b"GET /a\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "query_bad_escape": b"GET /a?x=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    "query_pipe": b"GET /a?x=a|b HTTP/1.1\r\nHost: x\r\n\r\n",
    "target_relative": b"GET a HTTP/1.1\r\nHost: x\r\n\r\n",
    "path_bad_escape": b"GET /a%4 HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMING))
def test_bad_framing_is_refused_before_upstream(gb, name):
    g, b = gb
    # A pooled connection exists first: a head written to it early would show up there.
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/warm").status == 200
    status, out = answer(g, BAD_FRAMING[name])
    assert status == 400, out
    assert b"Connection: close" in out
    time.sleep(0.2)
    assert [r.target for r in b.snapshot()] == ["/warm"], name


def test_pipelined_smuggle_with_bare_cr_reaches_no_backend(gb):
    g, b = gb
    status, out = answer(g, BAD_FRAMING["cr_in_header_block"])
    assert status == 400 and out.count(b"HTTP/1.1 ") == 1
    assert b.snapshot() == []


def test_good_chunked_with_extensions_and_trailers_passes(gb):
    g, b = gb
    with RawConn("127.0.0.1", g.port) as c:
        c.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=val\r\nhello\r\n6;x\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.json()["body"] == "hello world"


# ---------------------------------------------------------------------------------------------
# CONNECT

def test_connect_gets_405_and_closes(gb):
    g, b = gb
    status, out = answer(g, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\nSSH-2.0-x\r\n")
    assert status == 405
    assert b"\r\nAllow: " in out and b"CONNECT" not in out.split(b"\r\nAllow: ")[1].split(b"\r\n")[0]
    assert b"Connection: close" in out
    assert b.snapshot() == []


# ---------------------------------------------------------------------------------------------
# headers with underscores

UNDERSCORE = (b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n"
              b"Content_Length: 0\r\nX_Api_Key: k\r\nX-Ok: 1\r\n\r\nhello")


def test_underscore_headers_dropped_by_default(gb):
    g, b = gb
    with RawConn("127.0.0.1", g.port) as c:
        c.send(UNDERSCORE)
        r = c.read_response()
        assert r.status == 200
    rec = b.snapshot()[-1]
    names = [k.lower() for k, _ in rec.headers]
    assert "x-ok" in names
    assert not [n for n in names if "_" in n]
    assert rec.body == b"hello"


def test_underscore_headers_rejected(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"headers_with_underscores": "reject"}})
    status, _ = answer(g, UNDERSCORE)
    assert status == 400
    assert backend.snapshot() == []


def test_underscore_headers_allowed(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"headers_with_underscores": "allow"}})
    with RawConn("127.0.0.1", g.port) as c:
        c.send(UNDERSCORE)
        assert c.read_response().status == 200
    rec = backend.snapshot()[-1]
    assert rec.header("X_Api_Key") == "k"


def test_underscore_dropped_header_is_not_a_hash_key(make_gateway, make_backend):
    """A dropped field is gone for the balancer too: hashing on "X_Key" finds nothing."""
    bs = [make_backend(), make_backend()]
    g = make_gateway([proxy_service(bs, upstream={"balance": "hash", "hash": {"on": "header", "key": "X_Key"}})])
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/h", headers=[("X_Key", "a")]).status == 200


# ---------------------------------------------------------------------------------------------
# one path and one host

@pytest.fixture
def guarded(make_gateway, backend):
    deny = {"ip_access": {"deny": ["0.0.0.0/0"]}}
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "admin", "paths": ["/admin/*"], "policies": deny},
        {"name": "internal", "hosts": ["admin.internal"], "paths": ["/*"], "policies": deny},
        {"name": "open", "paths": ["/*"]},
    ])])
    return g, backend


@pytest.mark.parametrize("target", [
    "/%61dmin/secret.txt", "//admin/secret.txt", "/./admin/secret.txt", "/x/../admin/secret.txt",
    "/%2e/admin/secret.txt", "/x/%2E%2e/admin/secret.txt", "/ad%6Din/secret.txt", "/%61%64%6d%69%6e/secret.txt",
    "///admin//secret.txt", "/admin/./secret.txt", "/admin/x/../secret.txt",
])
def test_path_variants_are_judged_as_the_resource(guarded, target):
    g, b = guarded
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", target)
        assert r.status == 403, (target, r)
    assert b.snapshot() == []


@pytest.mark.parametrize("target", ["/a/..%2fadmin/secret.txt", "/admin%2fsecret.txt", "/%5cadmin/x",
                                    "/admin%00.txt", "/a/..%5Cadmin/x", "/../admin/secret.txt"])
def test_encoded_separators_and_escapes_above_root_are_refused(guarded, target):
    g, b = guarded
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", target)
        assert r.status == 400, (target, r)
    assert b.snapshot() == []


def test_normalised_path_is_what_the_upstream_gets(guarded):
    g, b = guarded
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/%7ejoe//docs/./a/../b%2a?q=%2e%2E&x=//")
        assert r.status == 200
    assert b.snapshot()[-1].target == "/~joe/docs/b%2A?q=%2e%2E&x=//"


@pytest.mark.parametrize("host", ["admin.internal.", "ADMIN.internal", "Admin.Internal:8080", "admin.internal:"])
def test_host_variants_route_to_the_host(guarded, host):
    g, b = guarded
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/x", host=host)
        assert r.status == 403, (host, r)
    assert b.snapshot() == []


@pytest.mark.parametrize("host", ["x:1@admin.internal", "admin.internal:99999", "admin.internal:8a", "a b",
                                  "admin/internal", "a,admin.internal", "admin..internal", "[::1", ""])
def test_invalid_hosts_are_refused(guarded, host):
    g, b = guarded
    status, _ = answer(g, ("GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode())
    assert status == 400, host
    assert b.snapshot() == []


@pytest.mark.parametrize("value", [b"admin.internal ", b"admin.internal\t", b"admin.internal \t "])
def test_host_with_trailing_whitespace_is_refused(guarded, value):
    """A Host value holds no whitespace (RFC 3986 3.2.2): refused, never routed elsewhere."""
    g, b = guarded
    status, _ = answer(g, b"GET /x HTTP/1.1\r\nHost: " + value + b"\r\n\r\n")
    assert status == 400
    assert b.snapshot() == []


def test_absolute_form_authority_is_validated_and_routed(guarded):
    g, b = guarded
    status, _ = answer(g, b"GET http://ADMIN.internal./x HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
    assert status == 403
    status, _ = answer(g, b"GET http://x@admin.internal/x HTTP/1.1\r\nHost: other\r\n\r\n")
    assert status == 400
    status, _ = answer(g, b"GET http://ok/x HTTP/1.1\r\nHost: bad host\r\n\r\n")
    assert status == 400
    assert b.snapshot() == []


def test_escaped_slashes_kept_when_configured(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"path_with_escaped_slashes": "keep"}})
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/a/..%2fb%5c").status == 200
        assert c.request("GET", "/a%00").status == 400
    assert backend.snapshot()[-1].target == "/a/..%2Fb%5C"


def test_slashes_kept_when_merge_is_off(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"merge_slashes": False}})
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "//a///b").status == 200
    assert backend.snapshot()[-1].target == "//a///b"


# ---------------------------------------------------------------------------------------------
# slow bodies

def test_body_timeout_answers_408(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"body_timeout": "1s"}})
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        c.send(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        out = c.read_to_close()
    assert out.startswith(b"HTTP/1.1 408 "), out
    e = g.wait_log(lambda e: e.get("status") == 408)
    assert e["error"] == "body_timeout"
    # The upstream side is let go: the backend saw the connection end without a full body.
    wait_until(lambda: b"ab" == backend.snapshot()[-1].body if backend.snapshot() else False, what="partial body")


def test_trickled_body_within_body_timeout_completes(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"body_timeout": "3s", "header_timeout": "1s"}})
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        c.send(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        for ch in b"abc":
            time.sleep(1.3)  # longer than header_timeout: the body is bounded by body_timeout
            c.send(bytes([ch]))
        r = c.read_response()
    assert r.status == 200 and r.json()["body"] == "abc"


# ---------------------------------------------------------------------------------------------
# the balancer key outlives a large trailer

def test_hash_key_survives_large_trailer_and_retry(make_gateway, backend):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    svc = proxy_service([backend], upstream={"balance": "hash", "hash": {"on": "header", "key": "X-H"}})
    svc["upstream"]["nodes"].append({"address": "127.0.0.1:%d" % dead_port})
    svc["routes"][0]["policies"] = {"retry": {"attempts": 2, "on": ["connect-failure"]}}
    g = make_gateway([svc], gateway={"http": {"max_header_bytes": 65536}})
    for i in range(8):
        with RawConn("127.0.0.1", g.port) as c:
            c.send(("POST / HTTP/1.1\r\nHost: x\r\nX-H: key-%d\r\nTransfer-Encoding: chunked\r\n\r\n" % i).encode()
                   + b"5\r\nhello\r\n0\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            r = c.read_response()
            assert r.status == 200, r
            assert r.json()["body"] == "hello"


def test_trailers_beyond_the_head_limit_are_431(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"http": {"max_header_bytes": 4096}})
    status, _ = answer(g, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: "
                       + b"a" * 8000 + b"\r\n\r\n")
    assert status == 431
