"""Regression tests for the code review findings (commit "Fix review findings: ...").

One test per finding, named after the behaviour that must hold. Each one drives the real
binary over loopback with real sockets; the slow-reader tests shrink the client's receive
buffer so that the gateway's writes really block."""
import hashlib
import socket
import threading
import time

import pytest

from backend import Backend
from helpers import (RawConn, build_request, dechunk, direct_route, direct_service, pattern_sha256,
                     proxy_service, wait_until)

BIG = 3_000_000  # a response larger than what loopback socket buffers absorb with a 4 KiB receive buffer


# ---------------------------------------------------------------------------------------------
# helpers


class SmallBufConn(RawConn):
    """A RawConn whose receive buffer is set (before connect) to a few KiB, so the TCP window
    stays small and the gateway's writes block when the client does not read."""

    def __init__(self, port, rcvbuf=4096, timeout=10.0, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self.timeout = timeout


def read_hashed(conn, method="GET", pause_every=0, pause=0.0):
    """Reads one response, hashing its body (optionally sleeping every few pieces: a slow
    reader). Returns (response, body_len, sha256 hex)."""
    h = hashlib.sha256()
    state = {"n": 0, "len": 0}

    def sink(piece):
        h.update(piece)
        state["len"] += len(piece)
        state["n"] += 1
        if pause_every and state["n"] % pause_every == 0:
            time.sleep(pause)

    r = conn.read_response(method, sink=sink)
    return r, state["len"], h.hexdigest()


def read_framed(conn):
    """Reads one response and insists it is framed (Content-Length or chunked): an unframed
    response on a keep-alive connection cannot be told apart from the next one."""
    version, status, reason, headers, head = conn.read_head()
    names = {k.lower(): v for k, v in headers}
    if "transfer-encoding" in names:
        assert names["transfer-encoding"].lower() == "chunked", headers
        raw = conn.read_until(b"0\r\n\r\n")
        body, complete = dechunk(raw)
        assert complete, raw
    else:
        assert "content-length" in names, "response is not framed: %r" % head
        body = conn.read_exact(int(names["content-length"]))
    return status, headers, body


def connections_active(g):
    return g.metrics().get("sluice_http_connections_active") or 0


def drain_for(s, seconds):
    """Backend side: reads and drops whatever arrives for a bounded time."""
    s.settimeout(0.1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if not s.recv(256 * 1024):
                return
        except socket.timeout:
            continue
        except OSError:
            return


def send_in_thread(sock, data):
    """sendall in a background thread (the peer may stop reading for a while); errors are
    kept, not raised."""
    out = {"error": None}

    def run():
        try:
            sock.sendall(data)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


# ---------------------------------------------------------------------------------------------
# 1. slow reader on a keep-alive connection


def test_slow_reader_keepalive_gets_whole_response_and_connection_survives(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])])
    with SmallBufConn(g.port) as c:
        c.send(build_request("GET", "/big?download=%d" % BIG))
        time.sleep(0.7)  # the gateway's writes block while nothing is read
        r, n, sha = read_hashed(c, pause_every=8, pause=0.01)
        assert r.status == 200, r
        assert n == BIG
        assert sha == pattern_sha256(BIG)
        # The same connection serves another request.
        r2 = c.request("GET", "/after")
        assert r2.status == 200, r2
        assert r2.json()["path"] == "/after"
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 2. a flood of pipelined requests to a local route, responses unread for a while

N_ROUTES = 10


def _pipelined_body(i):
    return "route-%d:" % i + "x" * (900 + i)


def test_pipelined_local_requests_unread_are_all_answered_in_order(make_gateway):
    routes = [direct_route("p%d" % i, ["/p%d" % i], body=_pipelined_body(i)) for i in range(N_ROUTES)]
    g = make_gateway([direct_service(routes=routes)])
    n = 5000
    data = b"".join(build_request("GET", "/p%d" % (i % N_ROUTES)) for i in range(n))
    with SmallBufConn(g.port, timeout=15.0) as c:
        t, out = send_in_thread(c.sock, data)
        time.sleep(1.0)  # responses (~5 MB) pile up unread
        for i in range(n):
            r = c.read_response()
            assert r.status == 200, (i, r)
            assert r.body == _pipelined_body(i % N_ROUTES).encode(), "response %d out of order or damaged: %r" % (i, r.body[:40])
        t.join(10)
        assert not t.is_alive() and out["error"] is None, out
        # Nothing more than the 5000 answers, and the connection still works.
        r = c.request("GET", "/p3")
        assert r.status == 200 and r.body == _pipelined_body(3).encode()
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 3. Connection: close to a client that never reads


def test_closing_connection_to_client_that_never_reads_is_dropped(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])])
    c = SmallBufConn(g.port)
    try:
        c.send(build_request("GET", "/big?download=%d" % BIG, headers=[("Connection", "close")]))
        backend.wait_requests(1)
        assert connections_active(g) >= 1
        # 5 s without progress ends it; allow plenty of slack, but not forever.
        wait_until(lambda: connections_active(g) == 0, timeout=15.0, interval=0.2,
                   what="the gateway to drop a closing connection whose client reads nothing")
        # The client sees the end of the connection (FIN or reset) after what was buffered.
        c.sock.settimeout(5.0)
        got = 0
        try:
            while True:
                d = c.sock.recv(1 << 20)
                if not d:
                    break
                got += len(d)
        except ConnectionResetError:
            pass
        assert got < BIG  # it really was cut off, not delivered
    finally:
        c.close()
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 4. lingering close: the client sends more bytes after a Connection: close request


def test_lingering_close_delivers_whole_response_despite_extra_client_bytes(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])])
    with SmallBufConn(g.port, timeout=15.0) as c:
        data = build_request("GET", "/big?download=%d" % BIG, headers=[("Connection", "close")]) + b"X" * 200_000
        t, out = send_in_thread(c.sock, data)
        time.sleep(1.0)
        r, n, sha = read_hashed(c)
        assert r.status == 200, r
        assert n == BIG, "response truncated at %d of %d bytes" % (n, BIG)
        assert sha == pattern_sha256(BIG)
        assert c.is_closed(timeout=10.0)
        t.join(10)
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 5. half-close after the request


@pytest.mark.parametrize("pause", [0.0, 0.5])
def test_half_closed_client_gets_whole_response(make_gateway, backend, pause):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])])
    with SmallBufConn(g.port, timeout=15.0) as c:
        c.send(build_request("GET", "/big?download=%d" % BIG))
        if pause:
            time.sleep(pause)  # the response is on its way and blocked
        c.sock.shutdown(socket.SHUT_WR)
        r, n, sha = read_hashed(c)
        assert r.status == 200, r
        assert n == BIG, "response truncated at %d of %d bytes" % (n, BIG)
        assert sha == pattern_sha256(BIG)
        assert c.is_closed(timeout=10.0)
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 6. the upstream stops reading a request body for longer than header_timeout


def test_upload_paused_by_upstream_longer_than_header_timeout_completes(make_gateway, backend):
    n = 16 * 1024 * 1024

    def handler(b, s, r, rec):
        time.sleep(2.0)  # not reading: the gateway's writes to us block, it stops reading the client
        b.read_body(r, rec)
        body = b'{"body_len": %d}' % rec.body_len
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    backend.on("/up", handler)
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}],
                                    upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "5s"}})],
                     gateway={"http": {"header_timeout": "1s"}})
    with RawConn("127.0.0.1", g.port, timeout=15.0) as c:
        c.send(build_request("POST", "/up", headers=[("Content-Length", str(n))]))
        chunk = b"u" * 65536
        for _ in range(n // len(chunk)):
            c.send(chunk)
        r = c.read_response("POST")
        assert r.status == 200, r
        assert r.json() == {"body_len": n}
    rec = backend.snapshot()[-1]
    assert rec.complete and rec.body_len == n
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 7. the upstream answers before the request body is complete


def test_early_upstream_answer_reaches_uploading_client(make_gateway, backend):
    n = 50 * 1024 * 1024

    def handler(b, s, r, rec):
        time.sleep(0.5)  # the upload is under way, the gateway's writes to us block
        s.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!")
        drain_for(s, 1.0)
        return False

    backend.on("/up", handler)
    # A long header_timeout: a stalled upload must not be rescued by the client timeout.
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])],
                     gateway={"http": {"header_timeout": "60s"}})
    c = RawConn("127.0.0.1", g.port, timeout=10.0)
    out = {"sent": 0, "error": None}
    try:
        c.send(build_request("POST", "/up", headers=[("Content-Length", str(n))]))

        def upload():
            chunk = b"u" * 65536
            try:
                while out["sent"] < n:
                    c.sock.sendall(chunk)
                    out["sent"] += len(chunk)
            except OSError as e:  # socket.timeout included: the gateway stopped reading
                out["error"] = e

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        r = c.read_response("POST")
        assert r.status == 413, r
        assert r.body == b"big!"
        # The rest of the upload is read (and dropped) or refused, never left hanging.
        t.join(15)
        assert not t.is_alive()
        assert not isinstance(out["error"], socket.timeout), \
            "upload stalled after %d of %d bytes once the upstream had answered" % (out["sent"], n)
    finally:
        c.close()
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 8. a pipelined local POST with a body behind a slow proxied GET


def test_pipelined_local_post_behind_slow_proxied_get(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "slow", "paths": ["/slow"]},
        direct_route("local", ["/local"], body="local-answer"),
    ])])
    body = b"b" * 300_000
    with RawConn("127.0.0.1", g.port, timeout=10.0) as c:
        c.send(build_request("GET", "/slow?delay=0.5") + build_request("POST", "/local", body=body))
        r1 = c.read_response()
        assert r1.status == 200, r1
        assert r1.json()["path"] == "/slow"
        r2 = c.read_response("POST")
        assert r2.status == 200, r2
        assert r2.body == b"local-answer"
        # And the connection goes on.
        r3 = c.request("GET", "/local")
        assert r3.status == 200 and r3.body == b"local-answer"
    assert [x.path for x in backend.snapshot()] == ["/slow"]
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 9. Expect: 100-continue to a request answered by the gateway itself


@pytest.mark.parametrize("path,status,body", [("/local", 200, b"local-answer"), ("/nowhere", 404, None)])
def test_expect_continue_to_local_answer_is_answered_at_once_and_closed(make_gateway, path, status, body):
    g = make_gateway([direct_service(routes=[direct_route("local", ["/local"], body="local-answer")])])
    with RawConn("127.0.0.1", g.port, timeout=5.0) as c:
        # Only the head: a client waiting for 100 Continue sends no body yet.
        c.send(build_request("POST", path, headers=[("Content-Length", "100000"), ("Expect", "100-continue")]))
        r = c.read_response("POST", skip_interim=False)
        assert r.status == status, r
        if body is not None:
            assert r.body == body
        assert c.is_closed(timeout=5.0)
        assert c.buf == b""  # nothing after the final response, no late 100 Continue
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 10. absolute-form targets


def test_absolute_form_authority_replaces_host(make_gateway, make_backend):
    public, admin = make_backend("public"), make_backend("admin")
    g = make_gateway([
        proxy_service([public], name="public", routes=[{"name": "pub", "hosts": ["public.example"], "paths": ["/*"]}]),
        proxy_service([admin], name="admin", routes=[{"name": "adm", "hosts": ["admin.internal", "h"], "paths": ["/*"]}]),
    ])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "http://public.example/x", host="admin.internal")
        assert r.status == 200, r
        assert r.header("x-backend") == "public"
    rec = public.wait_requests(1)[0]
    assert rec.target == "/x"
    assert rec.header_all("host") == ["public.example"]
    assert rec.header_all("x-forwarded-host") == ["public.example"]
    assert admin.snapshot() == []

    # A userinfo authority is refused.
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "http://u@h/x", host="h")
        assert r.status == 400, r
    assert admin.snapshot() == [] and len(public.snapshot()) == 1
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 11. dot segments


@pytest.mark.parametrize("path,route", [("/api/../admin", "admin"), ("/api/%2e%2e/admin", "admin"),
                                        ("/api/%2e./admin", "admin"), ("/api/x/../../admin", "admin"),
                                        ("/api/./x", "api"), ("/api/%2E/x", "api"), ("/api/x/..", "api")])
def test_dot_segments_are_resolved_before_routing(make_gateway, backend, path, route):
    """Dot segments (also percent-encoded) are resolved before routing (RFC 3986 5.2.4): the
    route that judges the request is the one for the resource the upstream would serve."""
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "api", "paths": ["/api/*"]},
        direct_route("admin", ["/admin"], body="admin-only"),
    ])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", path)
        assert r.status == 200, r
        if route == "admin":
            assert r.body == b"admin-only"
        else:
            assert r.json()["path"].startswith("/api/") and ".." not in r.json()["path"], r.body
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/api/../../admin").status == 400  # above the root
    # And paths that merely contain dots are fine.
    for ok in ("/api/..x", "/api/x.y"):
        with RawConn("127.0.0.1", g.port) as c:
            r = c.request("GET", ok)
            assert r.status == 200, (ok, r)
            assert r.json()["path"] == ok
    assert [x.path for x in backend.snapshot()][-2:] == ["/api/..x", "/api/x.y"]
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 12. only idempotent requests are replayed on a fresh connection


def test_post_not_replayed_when_pooled_connection_dies_get_is(make_gateway, backend):
    flaky_calls = []

    def dies_after_reading(b, s, r, rec):
        b.read_body(r, rec)
        time.sleep(0.3)  # "processed it", then the connection dies without an answer
        return False

    def flaky(b, s, r, rec):
        flaky_calls.append(rec.conn_id)
        if len(flaky_calls) == 1:
            return dies_after_reading(b, s, r, rec)
        return Backend._default(b, s, r, rec)

    backend.on("/charge", dies_after_reading)
    backend.on("/flaky", flaky)
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])],
                     gateway={"workers": 1})

    def warm(c):
        r = c.request("GET", "/warm")
        assert r.status == 200, r
        return r.json()["conn_id"]

    # POST: the upstream got it once, so the client gets 502.
    with RawConn("127.0.0.1", g.port) as c:
        pooled = warm(c)
        r = c.request("POST", "/charge", body=b"amount=100")
    assert r.status == 502, r
    charges = [x for x in backend.snapshot() if x.path == "/charge"]
    assert charges[0].conn_id == pooled  # it went out on the pooled connection
    time.sleep(0.5)  # a (wrong) replay would have arrived by now
    charges = [x for x in backend.snapshot() if x.path == "/charge"]
    assert len(charges) == 1, "POST sent %d times: %r" % (len(charges), charges)

    # GET: replayed once on a new connection, and the client never notices.
    with RawConn("127.0.0.1", g.port) as c:
        pooled = warm(c)
        r = c.request("GET", "/flaky")
        assert r.status == 200, r
    assert len(flaky_calls) == 2, flaky_calls
    assert flaky_calls[0] == pooled and flaky_calls[1] != pooled
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 13. a pooled connection takes the timeouts of the service using it


def test_pooled_connection_uses_timeouts_of_current_service(make_gateway, backend):
    g = make_gateway([
        proxy_service([backend], name="fast", routes=[{"name": "fast", "paths": ["/fast/*"]}],
                      upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "300ms"}}),
        proxy_service([backend], name="slow", routes=[{"name": "slow", "paths": ["/slow/*"]}],
                      upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "5s"}}),
    ], gateway={"workers": 1})
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/fast/a")
        assert r.status == 200, r
        first_conn = r.json()["conn_id"]
        r = c.request("GET", "/slow/b?delay=1.5")
        assert r.status == 200, r
        assert r.json()["conn_id"] == first_conn  # the pooled connection was reused
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 14. Connection cannot strip the response framing


def test_connection_header_naming_content_length_keeps_framing(make_gateway, backend):
    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello")
        return True

    backend.on("/cc", handler)
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])])
    with RawConn("127.0.0.1", g.port, timeout=5.0) as c:
        c.send(build_request("GET", "/cc"))
        status, headers, body = read_framed(c)
        assert status == 200
        assert body == b"hello"
        r = c.request("GET", "/next")
        assert r.status == 200, r
        assert r.json()["path"] == "/next"
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 15. HTTP/1.0 without Host


def test_http10_request_without_host_is_forwarded_with_host(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "r", "paths": ["/*"]}])])
    with RawConn("127.0.0.1", g.port) as c:
        c.send(b"GET /old HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
    rec = backend.wait_requests(1)[0]
    assert rec.header_all("host") == [backend.address]
    g.check_alive()


# ---------------------------------------------------------------------------------------------
# 16. a reload that shortens keepalive_timeout


def test_reload_lowering_keepalive_timeout_applies_to_new_connections(make_gateway):
    svc = [direct_service(routes=[direct_route("local", ["/*"])])]
    g = make_gateway(svc, gateway={"workers": 1, "http": {"keepalive_timeout": "30s"}})
    old = RawConn("127.0.0.1", g.port)
    try:
        # An idle connection with the old, long timeout stays queued ahead of the new ones.
        assert old.request("GET", "/before").status == 200
        g.reload(gateway={"workers": 1, "http": {"keepalive_timeout": "1s"}})
        with RawConn("127.0.0.1", g.port) as c:
            assert c.request("GET", "/after").status == 200
            assert c.is_closed(timeout=6.0), "idle keep-alive connection not closed after the 1s keepalive_timeout"
        assert not old.is_closed(timeout=0.2)  # the old one keeps its 30s
    finally:
        old.close()
    g.check_alive()
