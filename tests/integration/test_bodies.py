"""Request and response bodies: Content-Length, chunked, close-delimited, streaming,
100-continue, HEAD/204/304, keep-alive and pipelining."""
import hashlib
import json
import os
import threading

import requests

from helpers import RawConn, build_request, chunked, dechunk, pattern_bytes, pattern_chunks, pattern_sha256


def test_post_content_length_body(gw_one):
    g, backend = gw_one
    body = pattern_bytes(3 * 1024 * 1024 + 17, seed=5)
    r = requests.post(g.url + "/up", data=body, timeout=30)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["body_len"] == len(body)
    assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert j["method"] == "POST"


def test_empty_bodies(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("POST", "/e", headers=[("Content-Length", "0")])
        assert r.status == 200 and r.json()["body_len"] == 0
        r = c.request("PUT", "/e", body=b"")
        assert r.status == 200 and r.json()["body_len"] == 0
        r = c.request("GET", "/e")
        assert r.status == 200 and r.json()["body_len"] == 0


def test_chunked_request_body(gw_one):
    g, backend = gw_one
    parts = [os.urandom(n) for n in (1, 10, 4096, 70000, 3, 1 << 20)]
    data = b"".join(parts)
    with RawConn("127.0.0.1", g.port) as c:
        head = build_request("POST", "/chunked-up", headers=[("Transfer-Encoding", "chunked")])
        # chunk extensions are legal and must not end up in the body
        enc = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        c.send(head + enc)
        r = c.read_response()
        assert r.status == 200
        j = r.json()
        assert j["body_len"] == len(data) and j["body_sha256"] == hashlib.sha256(data).hexdigest()
        # the connection is still good afterwards
        r = c.request("GET", "/after")
        assert r.status == 200 and r.json()["path"] == "/after"


def test_chunked_request_with_trailer(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("POST", "/trailer", headers=[("Transfer-Encoding", "chunked")]) +
               b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1234\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert r.json()["body"] == "hello world"
        assert c.request("GET", "/next").status == 200


def test_chunked_response(gw_one):
    g, backend = gw_one
    n = 5 * 1024 * 1024 + 3
    r = requests.get(g.url + "/dl?download=%d&chunked=1&seed=2" % n, timeout=60)
    assert r.status_code == 200
    assert len(r.content) == n
    assert hashlib.sha256(r.content).hexdigest() == pattern_sha256(n, 2)


def test_content_length_response(gw_one):
    g, backend = gw_one
    n = 4 * 1024 * 1024 + 1
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("GET", "/dl?download=%d&seed=4" % n))
        r = c.read_response()
        assert r.status == 200
        assert r.header("content-length") == str(n)
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n, 4)
        assert c.request("GET", "/again").status == 200


def test_close_delimited_response(gw_one):
    """An upstream response without length ends at close; the client (HTTP/1.1) gets all of it
    chunked, on a connection that stays open for the next request."""
    g, backend = gw_one
    n = 2 * 1024 * 1024 + 11
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("GET", "/dl?download=%d&close=1&seed=6" % n))
        r = c.read_response()
        assert r.status == 200
        assert len(r.body) == n
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n, 6)
        assert r.header("transfer-encoding") == "chunked" and r.header("content-length") is None
        assert c.request("GET", "/again").status == 200


def test_response_streams_before_upstream_finishes(gw_one):
    """The first part of a response reaches the client while the upstream still holds the rest."""
    g, backend = gw_one
    release = threading.Event()

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        release.wait(15)
        s.sendall(b"4\r\nlast\r\n0\r\n\r\n")
        return True

    backend.on("/stream", handler)
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        c.send(build_request("GET", "/stream"))
        _, status, _, headers, _ = c.read_head()
        assert status == 200
        assert [v.lower() for k, v in headers if k.lower() == "transfer-encoding"] == ["chunked"], headers
        try:
            while b"first" not in dechunk(c.buf)[0]:
                c._fill()
        finally:
            release.set()
        # and the rest follows once the upstream sends it
        while not dechunk(c.buf)[1]:
            c._fill()
    assert dechunk(c.buf) == (b"firstlast", True)


def test_request_body_streams_before_client_finishes(gw_one):
    """The upstream sees the start of a request body before the client has sent all of it."""
    g, backend = gw_one
    first = pattern_bytes(256 * 1024, seed=8)
    got_first = threading.Event()

    def handler(b, s, r, rec):
        need = len(first)
        have = 0
        h = hashlib.sha256()
        total = int(rec.header("content-length"))
        while have < total:
            if not r.buf:
                r.fill()
            piece = r.buf[: total - have]
            r.buf = r.buf[len(piece):]
            h.update(piece)
            have += len(piece)
            if have >= need:
                got_first.set()
        body = json.dumps({"len": have, "sha": h.hexdigest()}).encode()
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    backend.on("/slow-up", handler)
    with RawConn("127.0.0.1", g.port, timeout=20) as c:
        c.send(build_request("POST", "/slow-up", headers=[("Content-Length", str(2 * len(first)))]) + first)
        assert got_first.wait(15), "upstream did not receive the first half before the second was sent"
        c.send(first)
        r = c.read_response()
    assert r.status == 200
    j = r.json()
    assert j["len"] == 2 * len(first)
    assert j["sha"] == hashlib.sha256(first + first).hexdigest()


def test_expect_100_continue(gw_one):
    g, backend = gw_one
    body = b"x" * 100000
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("POST", "/expect", headers=[("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
        version, status, reason, headers, head = c.read_head()
        assert status == 100, head
        c.send(body)
        r = c.read_response()
        assert r.status == 200
        j = r.json()
        assert j["body_len"] == len(body)
        assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
        # one more request on the same connection
        assert c.request("GET", "/after-expect").status == 200


def test_expect_100_continue_with_curl(gw_one, tmp_path):
    import subprocess
    g, backend = gw_one
    f = tmp_path / "up.bin"
    data = pattern_bytes(2 * 1024 * 1024, seed=9)
    f.write_bytes(data)
    out = subprocess.run(["curl", "-sS", "-v", "--max-time", "30", "-H", "Expect: 100-continue",
                          "--data-binary", "@%s" % f, g.url + "/curl-expect"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HTTP/1.1 100" in out.stderr, out.stderr
    j = json.loads(out.stdout)
    assert j["body_len"] == len(data) and j["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_head_has_no_body(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("HEAD", "/dl?download=12345"))
        r = c.read_response("HEAD")
        assert r.status == 200
        assert r.header("content-length") == "12345"  # the length a GET would have
        # if any body byte leaked, the next response would not parse
        r = c.request("GET", "/after-head")
        assert r.status == 200 and r.json()["path"] == "/after-head"
    assert [x.method for x in backend.snapshot()] == ["HEAD", "GET"]


def test_204_and_304_have_no_body(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/nc?status=204")
        assert r.status == 204
        assert r.header("transfer-encoding") is None
        assert r.header("content-length") is None  # RFC 9110 8.6: never on a 204
        r = c.request("GET", "/nm?status=304", headers=[("If-None-Match", '"abc"')])
        assert r.status == 304
        assert r.header("etag") == '"abc"'
        assert r.header("transfer-encoding") is None
        c.send(build_request("GET", "/final"))
        r = c.read_response()
        assert r.status == 200 and r.json()["path"] == "/final"
    rec = backend.snapshot()
    assert values_of(rec[1], "if-none-match") == ['"abc"']


def values_of(rec, name):
    return rec.header_all(name)


def test_keepalive_many_requests_one_connection(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(30):
            r = c.request("GET", "/k/%d" % i)
            assert r.status == 200 and r.json()["path"] == "/k/%d" % i
    assert len(backend.snapshot()) == 30
    g.wait_log(lambda e: e["path"] == "/k/29")
    ports = {x["client_port"] for x in g.log_lines() if x["path"].startswith("/k/")}
    assert len(ports) == 1, "all requests came over one client connection: %r" % ports


def test_pipelined_requests_answered_in_order(gw_one):
    g, backend = gw_one
    reqs = [
        build_request("GET", "/pipe/0?delay=0.5"),
        build_request("POST", "/pipe/1", body=b"one"),
        build_request("HEAD", "/pipe/2"),
        build_request("GET", "/pipe/3?download=70000&chunked=1"),
        build_request("PUT", "/pipe/4", headers=[("Transfer-Encoding", "chunked")]) + chunked([b"ab", b"cd"]),
        build_request("GET", "/pipe/5?status=204"),
        build_request("GET", "/pipe/6"),
    ]
    with RawConn("127.0.0.1", g.port, timeout=20) as c:
        c.send(b"".join(reqs))
        r0 = c.read_response()
        r1 = c.read_response()
        r2 = c.read_response("HEAD")
        r3 = c.read_response()
        r4 = c.read_response()
        r5 = c.read_response()
        r6 = c.read_response()
    assert r0.json()["path"] == "/pipe/0"
    assert r1.json()["path"] == "/pipe/1" and r1.json()["body"] == "one"
    assert r2.status == 200 and r2.body == b""
    assert len(r3.body) == 70000 and hashlib.sha256(r3.body).hexdigest() == pattern_sha256(70000)
    assert r4.json()["path"] == "/pipe/4" and r4.json()["body"] == "abcd"
    assert r5.status == 204
    assert r6.json()["path"] == "/pipe/6"


def test_upload_in_small_pieces(gw_one):
    """A body that dribbles in one byte-range at a time, with chunk boundaries split across writes."""
    g, backend = gw_one
    data = pattern_bytes(200000, seed=3)
    enc = chunked([data[i:i + 7777] for i in range(0, len(data), 7777)])
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("POST", "/dribble", headers=[("Transfer-Encoding", "chunked")]))
        for i in range(0, len(enc), 4093):
            c.send(enc[i:i + 4093])
        r = c.read_response()
    assert r.status == 200
    assert r.json()["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_requests_library_session(gw_one):
    """An ordinary client library with a pooled session."""
    g, backend = gw_one
    with requests.Session() as s:
        for i in range(10):
            r = s.post(g.url + "/s", data=pattern_chunks(100000, seed=i, chunk=8192), timeout=30)
            assert r.status_code == 200
            assert r.json()["body_sha256"] == pattern_sha256(100000, i)
