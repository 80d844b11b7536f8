"""Issue 9, the upstream edge: a response head is checked as strictly as a request head (bare CR
and LF, field bytes, folding, the status code), and bytes after a response that has no body
(HEAD, 204, 304, 1xx) are never taken for body or for the next response. Every case drives the
real binary against a scripted upstream."""
import time

import pytest

from helpers import RawConn, proxy_service

SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: 1\r\n\r\nSMUGGLED"


@pytest.fixture
def gb(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r1", "paths": ["/*"]}],
                                    upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "3s"}})])
    return g, backend


def scripted(backend, path, raw, keep=True, hold=0.0):
    """The upstream answers path with raw bytes, then keeps the connection (keep) after an
    optional pause, so that whatever the gateway makes of the extra bytes shows."""
    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(raw)
        if hold:
            time.sleep(hold)
        return keep
    backend.on(path, handler)


def assert_clean_followup(c, backend, first_conn):
    """The next request on the same client connection gets the backend's own answer, on an
    upstream connection other than the one that sent extra bytes."""
    r = c.request("GET", "/after")
    assert r.status == 200, r
    assert r.header("x-smuggled") is None and b"SMUGGLED" not in r.body
    assert r.json()["path"] == "/after"
    after = [q for q in backend.snapshot() if q.path == "/after"]
    assert len(after) == 1 and after[0].conn_id != first_conn


# ---------------------------------------------------------------------------------------------
# responses without a body: what follows the head is neither body nor the next response

@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("length", [None, 5, 8])
def test_bodiless_status_with_trailing_bytes(gb, status, length):
    g, backend = gb
    head = b"HTTP/1.1 %d X\r\n" % status
    if length is not None:
        head += b"Content-Length: %d\r\n" % length
    scripted(backend, "/nobody", head + b"\r\n" + SMUGGLED)
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/nobody")
        assert r.status == status and r.body == b""
        # RFC 9110 8.6: a 204 never carries Content-Length; a 304's is the representation's
        want = str(length) if status == 304 and length is not None else None
        assert r.header("content-length") == want, r
        first = [q for q in backend.snapshot() if q.path == "/nobody"][0]
        assert_clean_followup(c, backend, first.conn_id)


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_is_complete_at_its_head(gb, status):
    """A 304 that announces a length is complete when its head ends: the client is not kept
    waiting for a body the upstream never sends (it holds the connection open)."""
    g, backend = gb
    scripted(backend, "/cl", b"HTTP/1.1 %d X\r\nContent-Length: 1000\r\nETag: \"e\"\r\n\r\n" % status, hold=5)
    with RawConn("127.0.0.1", g.port, timeout=2.5) as c:
        r = c.request("GET", "/cl")
        assert r.status == status and r.body == b""
        assert r.header("etag") == '"e"'
    e = g.wait_log(lambda e: e["path"] == "/cl")
    assert e["status"] == status and e["error"] is None


def test_head_response_with_trailing_bytes(gb):
    g, backend = gb
    scripted(backend, "/head", b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + SMUGGLED)
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("HEAD", "/head")
        assert r.status == 200 and r.header("content-length") == "8"
        first = [q for q in backend.snapshot() if q.path == "/head"][0]
        assert_clean_followup(c, backend, first.conn_id)


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n",  # a 1xx never has a body
    b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n",
])
def test_interim_responses_then_final(gb, interim):
    g, backend = gb
    scripted(backend, "/interim", interim + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/interim")
        assert r.status == 200 and r.body == b"final"
        # the exchange ended cleanly: the upstream connection went back to the pool
        first = [q for q in backend.snapshot() if q.path == "/interim"][0]
        r = c.request("GET", "/again")
        assert r.status == 200 and r.json()["path"] == "/again"
        again = [q for q in backend.snapshot() if q.path == "/again"][0]
        assert again.conn_id == first.conn_id


# ---------------------------------------------------------------------------------------------
# a response head the gateway cannot trust is no response: 502, nothing of it forwarded

BAD_HEADS = {
    "status_600": b"HTTP/1.1 600 Six\r\nContent-Length: 2\r\n\r\nok",
    "status_099": b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok",
    "status_000": b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok",
    "status_1000": b"HTTP/1.1 1000 Big\r\nContent-Length: 2\r\n\r\nok",
    "status_two_digits": b"HTTP/1.1 20 Short\r\nContent-Length: 2\r\n\r\nok",
    "unasked_101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "cr_in_status_line": b"HTTP/1.1 200 O\rK\r\nContent-Length: 2\r\n\r\nok",
    "cr_in_field": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "cr_ending_field": b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 2\r\n\r\nok",
    "cr_as_head_end": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\rok",
    "lf_ending_field": b"HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 2\r\n\r\nok",
    "lf_head": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "nul_in_field": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "ctl_in_field": b"HTTP/1.1 200 OK\r\nX-A: a\x1bb\r\nContent-Length: 2\r\n\r\nok",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "space_before_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "te_not_chunked_last": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok",
    "bad_name": b"HTTP/1.1 200 OK\r\nX(A): a\r\nContent-Length: 2\r\n\r\nok",
    "cr_in_interim": b"HTTP/1.1 100 Cont\rinue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "bad_final_after_interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
}


@pytest.mark.parametrize("name", sorted(BAD_HEADS))
def test_untrustworthy_response_head_is_502(gb, name):
    g, backend = gb
    scripted(backend, "/bad", BAD_HEADS[name], keep=False, hold=0.2)
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/bad")
        assert r.status == 502, r
        assert r.json() == {"error": "upstream_bad_response", "status": 502}
        assert r.header("x-a") is None and r.header("upgrade") is None
        # the client connection is still good for the next request
        r = c.request("GET", "/next")
        assert r.status == 200 and r.json()["path"] == "/next"
    e = g.wait_log(lambda e: e["path"] == "/bad")
    assert e["status"] == 502 and e["error"] == "upstream_bad_response"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
BAD_BODIES = {
    "cr_in_chunk_size": b"5\rX\r\nhello\r\n0\r\n\r\n",
    "lf_chunk_size": b"5\nhello\r\n0\r\n\r\n",
    "junk_after_chunk": b"5\r\nhelloXX\r\n0\r\n\r\n",
    "lf_after_chunk": b"5\r\nhello\n0\r\n\r\n",
    "cr_in_trailer": b"5\r\nhello\r\n0\r\nT: a\rb\r\n\r\n",
    "lf_last_line": b"5\r\nhello\r\n0\r\n\n",
    "bad_size": b"5x\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_chunked_body_in_the_heads_read_is_502(gb, name):
    """The body's first bytes arrive with the head: they are checked before the head is
    forwarded, so the client gets the gateway's 502 and nothing of the upstream's answer."""
    g, backend = gb
    scripted(backend, "/chunks", CHUNKED_HEAD + BAD_BODIES[name], keep=False, hold=0.2)
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/chunks")
        assert r.status == 502 and r.json()["error"] == "upstream_bad_response"
        assert r.header("transfer-encoding") is None


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_chunked_body_after_the_head_is_cut(gb, name):
    """The head came alone, was good and went to the client; the body's framing is not: the
    client's connection is closed before a terminating chunk, so the response cannot look
    complete, and the upstream connection is not reused."""
    g, backend = gb

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(CHUNKED_HEAD)
        time.sleep(0.3)
        s.sendall(BAD_BODIES[name])
        time.sleep(2)
        return True

    backend.on("/chunks", handler)
    with RawConn("127.0.0.1", g.port, timeout=5) as c:
        c.send(b"GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n")
        _, status, _, headers, _ = c.read_head()
        assert status == 200
        rest = c.read_to_close()
        assert not rest.endswith(b"0\r\n\r\n"), rest
    e = g.wait_log(lambda e: e["path"] == "/chunks")
    assert e["error"] == "upstream_bad_response"
