"""The websocket policy (issue 4): the handshake through the gateway, the tunnel after the 101
(bytes both ways, backpressure, half-close, idle timeout, reload and graceful stop), refusals
on routes without the policy, and the policy's configuration errors.

Clients: python3-websockets and hand-written frames on raw sockets. Upstreams: a websockets
server (backends/ws_backend.py, a subprocess) and the raw-socket Backend where the exact bytes
matter."""
import asyncio
import base64
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import websockets
import websockets.exceptions

import helpers
from helpers import RawConn, build_request, pattern_sha256, proxy_service, validate, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------------------------------------
# the websockets backend


class WsBackend:
    """backends/ws_backend.py in a subprocess."""

    def __init__(self, workdir):
        self.err_path = os.path.join(workdir, "ws_backend.stderr")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "backends", "ws_backend.py")],
                                     stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.close()
            raise AssertionError("ws_backend did not start: %r %s" % (line, open(self.err_path).read()))
        self.port = int(line.split()[1])
        self.address = "127.0.0.1:%d" % self.port

    def stats(self):
        r = requests.get("http://%s/stats" % self.address, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._err.close()


@pytest.fixture
def ws_backend(tmp_path):
    b = WsBackend(str(tmp_path))
    yield b
    b.close()


def ws_service(backend, websocket=True, name="svc", paths=("/*",), upstream=None, **policies):
    route = {"name": "ws", "paths": list(paths)}
    if websocket is not None:
        policies["websocket"] = websocket
    if policies:
        route["policies"] = policies
    return proxy_service([backend], name=name, routes=[route], upstream=upstream)


def url(g, path):
    return "ws://127.0.0.1:%d%s" % (g.port, path)


def connect(g, path, **kw):
    kw.setdefault("ping_interval", None)  # no pings unless a test wants traffic
    kw.setdefault("max_size", None)
    kw.setdefault("compression", None)  # the bytes on the wire are the bytes sent
    return websockets.connect(url(g, path), open_timeout=10, close_timeout=10, **kw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


# ---------------------------------------------------------------------------------------------
# raw frames and handshakes


def frame(payload, opcode=0x1, mask=True):
    """One final frame (text by default); masked as a client must."""
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([0x80 | opcode, m | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_frame(conn):
    """(opcode, payload) of the next frame on a RawConn."""
    b0, b1 = conn.read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(conn.read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(conn.read_exact(8), "big")
    key = conn.read_exact(4) if b1 & 0x80 else None
    data = conn.read_exact(n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake(path, key, headers=(), method="GET", body=None, version="1.1"):
    hs = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
          ("Sec-WebSocket-Version", "13")] + list(headers)
    data = build_request(method, path, headers=hs, body=body)
    if version != "1.1":
        data = data.replace(b"HTTP/1.1\r\n", ("HTTP/%s\r\n" % version).encode(), 1)
    return data


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def hval(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# ---------------------------------------------------------------------------------------------
# messages through the tunnel


def test_echo_and_handshake_headers(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])

    async def go():
        async with connect(g, "/echo?x=1", extra_headers={"X-Client": "c1"}) as ws:
            # the client checked Sec-WebSocket-Accept: the handshake went through unchanged
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary\xff")
            assert await ws.recv() == b"\x00\x01binary\xff"
            assert ws.response_headers.get("Upgrade").lower() == "websocket"
            assert "upgrade" in ws.response_headers.get("Connection").lower()
    run(go())
    hs = dict((k.lower(), v) for k, v in ws_backend.stats()["headers"][-1])
    assert hs["upgrade"].lower() == "websocket"
    assert hs["connection"].lower() == "upgrade"
    assert hs["sec-websocket-version"] == "13" and hs["sec-websocket-key"]
    assert hs["x-client"] == "c1" and hs["x-forwarded-for"] == "127.0.0.1"


def test_one_mib_message_each_way(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])
    text = "".join(chr(0x41 + i % 26) for i in range(1 << 20))
    blob = helpers.pattern_bytes(1 << 20, seed=3)

    async def go():
        async with connect(g, "/echo") as ws:
            await ws.send(blob)
            assert await ws.recv() == blob
            await ws.send(text)
            assert await ws.recv() == text
    run(go())
    st = ws_backend.stats()
    assert st["bytes"] == 2 << 20 and st["messages"] == 2


def test_thousand_small_messages(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])

    async def go():
        async with connect(g, "/echo") as ws:
            # all sent before any is read: they cross the gateway back to back
            for i in range(1000):
                await ws.send("m%d" % i)
            for i in range(1000):
                assert await ws.recv() == "m%d" % i
    run(go())
    assert ws_backend.stats()["messages"] == 1000


def test_close_initiated_by_client(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])

    async def go():
        async with connect(g, "/echo") as ws:
            await ws.send("x")
            await ws.recv()
            await ws.close(code=4000, reason="client bye")
            assert ws.close_code == 4000  # the server's answering close frame
    run(go())
    wait_until(lambda: 4000 in ws_backend.stats()["close_codes"], what="server saw close code 4000")
    e = g.wait_log(lambda e: e["path"] == "/echo" and e["status"] == 101)
    assert e["error"] is None, e


def test_close_initiated_by_server(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])

    async def go():
        async with connect(g, "/close?code=4001") as ws:
            await ws.send("please close")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as ei:
                await ws.recv()
            # a close frame came (4001 is not "OK" to websockets, only 1000 and 1001 are)
            assert ei.value.rcvd.code == 4001 and ei.value.rcvd.reason == "server bye"
    run(go())
    wait_until(lambda: 4001 in ws_backend.stats()["close_codes"], what="server saw its close echoed")


def test_frames_right_after_handshake(make_gateway, ws_backend):
    """Frames sent in the same packet as the handshake wait for the 101, then reach the server."""
    g = make_gateway([ws_service(ws_backend.address)])
    key = new_key()
    with RawConn("127.0.0.1", g.port) as c:
        c.send(handshake("/echo", key) + frame(b"early one") + frame(b"early two", opcode=0x2))
        _, status, _, headers, _ = c.read_head()
        assert status == 101
        assert hval(headers, "sec-websocket-accept") == [accept_of(key)]
        assert read_frame(c) == (0x1, b"early one")
        assert read_frame(c) == (0x2, b"early two")
        c.send(frame(b"later"))
        assert read_frame(c) == (0x1, b"later")


def test_server_greeting_right_after_101(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])

    async def go():
        async with connect(g, "/hello") as ws:
            assert await ws.recv() == "hello"
            await ws.send("after")
            assert await ws.recv() == "after"
    run(go())


def raw_upgrade_handler(backend, s, r, rec):
    """101 and a first frame in one write; then everything received until EOF is kept in
    rec.tunnel, and the answer to the EOF is a "bye" frame and a close."""
    key = rec.header("sec-websocket-key")
    s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Up: 1\r\n\r\n" % accept_of(key)).encode() +
              frame(b"greeting", mask=False))
    got = r.buf
    r.buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    rec.tunnel = got
    s.sendall(frame(b"bye", mask=False))
    return False


def test_same_read_bytes_half_close_and_fresh_connection(make_gateway, backend):
    """The upstream's first frame in the same write as its 101 arrives; the client's FIN reaches
    the upstream, whose answer and FIN come back; the tunnel used its own upstream connection,
    never reused afterwards."""
    backend.on("/raw", raw_upgrade_handler)
    g = make_gateway([ws_service(backend.address)])
    # a pooled connection to the backend exists already
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/plain").status == 200
        key = new_key()
        early = frame(b"from client")
        c.send(handshake("/raw", key) + early)
        _, status, reason, headers, _ = c.read_head()
        assert status == 101 and reason == "Switching Protocols"
        assert hval(headers, "x-up") == ["1"] and hval(headers, "upgrade") == ["websocket"]
        assert hval(headers, "connection") == ["Upgrade"]
        assert not hval(headers, "content-length") and not hval(headers, "transfer-encoding")
        assert read_frame(c) == (0x1, b"greeting")
        c.sock.shutdown(socket.SHUT_WR)
        assert read_frame(c) == (0x1, b"bye")
        assert c.read_to_close() == b""
    ws_rec = [q for q in backend.wait_requests(2) if q.path == "/raw"][0]
    wait_until(lambda: hasattr(ws_rec, "tunnel"), what="backend saw the client's EOF")
    assert ws_rec.tunnel == early
    assert ws_rec.header("upgrade") == "websocket" and ws_rec.header("connection") == "Upgrade"
    # later requests never travel on the tunnel's connection
    for _ in range(4):
        with RawConn("127.0.0.1", g.port) as c:
            assert c.request("GET", "/plain").status == 200
    recs = backend.wait_requests(6)
    assert [q.conn_id for q in recs].count(ws_rec.conn_id) == 1, recs
    e = g.wait_log(lambda e: e["path"] == "/raw")
    assert e["status"] == 101 and e["error"] is None, e


# ---------------------------------------------------------------------------------------------
# backpressure


def test_backpressure_server_floods_a_client_that_does_not_read(make_gateway, ws_backend):
    """The server sends 64 MiB to a client that reads nothing: the gateway stops reading the
    server (which then cannot send it all), and once the client reads, everything arrives intact."""
    total = 64 << 20
    g = make_gateway([ws_service(ws_backend.address, websocket={"idle_timeout": "5m"})])
    with RawConn("127.0.0.1", g.port, timeout=60) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.send(handshake("/flood?bytes=%d" % total, new_key()))
        assert c.read_head()[1] == 101
        c.send(frame(b"go"))
        # wait until the server is stuck: its count stops moving
        last = [-1, time.monotonic()]

        def stuck():
            sent = ws_backend.stats()["flood_sent"]
            if sent != last[0]:
                last[0], last[1] = sent, time.monotonic()
                return False
            return sent > 0 and time.monotonic() - last[1] >= 1.0
        wait_until(stuck, timeout=60, interval=0.1, what="the flooding server to block")
        assert last[0] < total // 2, "gateway buffered %d of %d bytes for a client that reads nothing" % (last[0], total)
        h = hashlib.sha256()
        got = 0
        while got < total:
            op, data = read_frame(c)
            assert op == 0x2
            h.update(data)
            got += len(data)
        assert got == total and h.hexdigest() == pattern_sha256(total)
        c.send(frame(b"done"))
        assert read_frame(c) == (0x1, b"done")


def test_backpressure_client_floods_a_server(make_gateway, backend):
    """A client sends 64 MiB to an upstream that reads nothing for a while: the gateway stops
    reading the client (whose writes block), and the upstream gets every byte in order."""
    total = 64 << 20
    state = {}

    def slow_reader(b, s, r, rec):
        key = rec.header("sec-websocket-key")
        s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n" % accept_of(key)).encode())
        state["ready"] = True
        wait_until(lambda: state.get("read"), timeout=60)
        h = hashlib.sha256(r.buf)
        got = len(r.buf)
        while got < total:
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            got += len(d)
        state["got"], state["sha"] = got, h.hexdigest()
        s.sendall(b"ok")
        return False

    backend.on("/slow", slow_reader)
    g = make_gateway([ws_service(backend.address, websocket={"idle_timeout": "5m"})])
    with RawConn("127.0.0.1", g.port, timeout=60) as c:
        c.send(handshake("/slow", new_key()))
        assert c.read_head()[1] == 101
        wait_until(lambda: state.get("ready"))
        c.sock.setblocking(False)
        sent = 0
        data = helpers.pattern_bytes(total, seed=5)
        stalled_at = None
        stall_since = None
        while sent < total:
            try:
                n = c.sock.send(data[sent:sent + (1 << 20)])
                sent += n
                stall_since = None
            except BlockingIOError:
                if stall_since is None:
                    stall_since = time.monotonic()
                elif time.monotonic() - stall_since >= 1.0:
                    stalled_at = sent
                    break
                time.sleep(0.01)
        assert stalled_at is not None and stalled_at < total, "the gateway took all %d bytes" % total
        state["read"] = True
        c.sock.setblocking(True)
        c.sock.settimeout(60)
        c.sock.sendall(data[sent:])
        assert c.read_exact(2) == b"ok"
    assert state["got"] == total and state["sha"] == pattern_sha256(total, seed=5)


# ---------------------------------------------------------------------------------------------
# timeouts


def test_idle_timeout_closes_the_tunnel(make_gateway, ws_backend):
    """No bytes either way for idle_timeout closes both sides; with `websocket: true` the
    upstream's read timeout is the idle timeout."""
    g = make_gateway([
        ws_service(ws_backend.address, name="explicit", paths=["/echo"], websocket={"idle_timeout": "1s"}),
        ws_service(ws_backend.address, name="default", paths=["/hello"],
                   upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "1s"}}),
    ])

    async def go(path):
        async with connect(g, path) as ws:
            if path == "/hello":
                assert await ws.recv() == "hello"
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 30)
    run(go("/echo"))
    run(go("/hello"))
    for path in ("/echo", "/hello"):
        e = g.wait_log(lambda e: e["path"] == path)
        assert e["status"] == 101 and e["error"] == "idle_timeout", e
    wait_until(lambda: ws_backend.stats()["close_codes"].count(1006) == 2, what="the server saw both tunnels end")


def test_traffic_keeps_the_tunnel_and_the_route_timeout_does_not_cut_it(make_gateway, ws_backend):
    """Messages more often than the idle timeout keep the tunnel open; the timeout policy bounds
    the handshake only."""
    g = make_gateway([ws_service(ws_backend.address, websocket={"idle_timeout": "3s"}, timeout="1s")])

    async def go():
        async with connect(g, "/echo") as ws:
            end = time.monotonic() + 7
            i = 0
            while time.monotonic() < end:
                await ws.send("tick %d" % i)
                assert await ws.recv() == "tick %d" % i
                i += 1
                await asyncio.sleep(0.2)
    run(go())
    e = g.wait_log(lambda e: e["path"] == "/echo")
    assert e["status"] == 101 and e["error"] is None and e["duration_ms"] > 7000, e


def never_answers(backend, s, r, rec):
    time.sleep(5)
    return False


@pytest.mark.parametrize("kind", ["read_timeout", "route_timeout"])
def test_handshake_bounded_by_route_timeouts(make_gateway, backend, kind):
    backend.on("/hang", never_answers)
    if kind == "read_timeout":
        svc = ws_service(backend.address, upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "1s"}})
        code = "upstream_timeout"
    else:
        svc = ws_service(backend.address, timeout="1s")
        code = "route_timeout"
    g = make_gateway([svc])
    with RawConn("127.0.0.1", g.port) as c:
        c.send(handshake("/hang", new_key()))
        r = c.read_response()
        assert r.status == 504 and r.json()["error"] == code, r
        assert c.is_closed()


# ---------------------------------------------------------------------------------------------
# refusals and other answers


def test_refused_without_the_policy(make_gateway, backend):
    g = make_gateway([ws_service(backend.address, websocket=None)])

    async def go():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
            async with connect(g, "/chat"):
                pass
        assert ei.value.status_code == 403
    run(go())
    with RawConn("127.0.0.1", g.port) as c:
        c.send(handshake("/chat", new_key()) + frame(b"never forwarded"))
        r = c.read_response()
        assert r.status == 403 and r.json() == {"error": "websocket_not_allowed", "status": 403}
        assert r.header("content-type") == "application/json"
        assert c.is_closed()
    # websocket: false is the same as no policy
    g2 = make_gateway([ws_service(backend.address, websocket=False)])
    with RawConn("127.0.0.1", g2.port) as c:
        c.send(handshake("/chat", new_key()))
        assert c.read_response().status == 403
    assert backend.snapshot() == [] and backend.connections == 0
    # plain requests on the same route go through
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/chat").status == 200
    e = g.wait_log(lambda e: e["status"] == 403)
    assert e["error"] == "websocket_not_allowed" and e["upstream"] is None, e


@pytest.mark.parametrize("case", ["post", "body", "chunked", "http10", "no_connection_upgrade"])
def test_bad_handshakes_get_400(make_gateway, backend, case):
    g = make_gateway([ws_service(backend.address)])
    key = new_key()
    if case == "post":
        data = handshake("/chat", key, method="POST")
    elif case == "body":
        data = handshake("/chat", key, body=b"hello")
    elif case == "chunked":
        data = handshake("/chat", key, headers=[("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n0\r\n\r\n"
    elif case == "http10":
        data = handshake("/chat", key, version="1.0")
    else:
        data = build_request("GET", "/chat", headers=[("Upgrade", "websocket"), ("Sec-WebSocket-Key", key),
                                                      ("Sec-WebSocket-Version", "13")])
    with RawConn("127.0.0.1", g.port) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 400 and r.json() == {"error": "bad_websocket_request", "status": 400}, r
    assert backend.snapshot() == []


def test_other_upgrades_are_proxied_as_plain_http(make_gateway, backend):
    g = make_gateway([ws_service(backend.address)])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/h2c", headers=[("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                                             ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        assert r.status == 200 and r.header("connection") == "close", r
        assert c.is_closed()
    rec = backend.wait_requests(1)[0]
    assert rec.header("upgrade") is None and rec.header("http2-settings") is None
    assert rec.header("connection") is None


def test_non_101_answer_is_relayed(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])
    with RawConn("127.0.0.1", g.port) as c:
        c.send(handshake("/reject", new_key()) + frame(b"dropped"))
        r = c.read_response()
        assert r.status == 418 and r.body == b"no websocket here\n", r
        assert r.header("x-backend") == "ws" and r.header("connection") == "close"
        assert c.is_closed()
    e = g.wait_log(lambda e: e["path"] == "/reject")
    assert e["status"] == 418 and e["upstream_status"] == 418 and e["error"] is None, e
    assert ws_backend.stats()["handshakes"] == {}


# ---------------------------------------------------------------------------------------------
# reload, graceful stop, logs and metrics


def test_tunnel_survives_reload(make_gateway, ws_backend, backend):
    svc = ws_service(ws_backend.address, websocket={"idle_timeout": "1m"})
    g = make_gateway([svc])

    async def go():
        async with connect(g, "/echo") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            # the new configuration drops the policy on that route: open tunnels carry on
            g.reload(services=[ws_service(ws_backend.address, websocket=None),
                               ws_service(backend.address, name="other", paths=["/other"])])
            for i in range(3):
                await ws.send("after %d" % i)
                assert await ws.recv() == "after %d" % i
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
                async with connect(g, "/echo"):
                    pass
            assert ei.value.status_code == 403
    run(go())
    e = g.wait_log(lambda e: e["path"] == "/echo" and e["status"] == 101)
    assert e["error"] is None, e


def test_graceful_stop_keeps_tunnels_until_the_grace_period(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address, websocket={"idle_timeout": "1m"})],
                     gateway={"shutdown_timeout": "2s"})

    async def go():
        async with connect(g, "/echo") as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            g.signal(signal.SIGTERM)
            # new connections are refused, this tunnel still works
            await asyncio.sleep(0.3)
            await ws.send("draining")
            assert await ws.recv() == "draining"
            with pytest.raises(websockets.exceptions.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 30)
    run(go())
    g.proc.wait(20)
    assert g.proc.returncode == 0
    e = g.wait_log(lambda e: e["path"] == "/echo")
    assert e["status"] == 101 and e["error"] == "shutdown", e


def test_access_log_and_metrics_count_101(make_gateway, ws_backend):
    g = make_gateway([ws_service(ws_backend.address)])
    before = g.metrics().get("sluice_http_requests_total", service="svc", route="ws", status="101") or 0

    async def go():
        async with connect(g, "/echo?log=1") as ws:
            await ws.send(b"u" * 100000)
            assert len(await ws.recv()) == 100000
            await ws.send(b"d" * 5)
            await ws.recv()
    run(go())
    e = g.wait_log(lambda e: e["path"] == "/echo?log=1")
    assert e["status"] == 101 and e["upstream_status"] == 101 and e["route"] == "ws", e
    assert e["upstream"] == ws_backend.address
    assert e["bytes_in"] > 100005 and e["bytes_out"] > 100005, e
    assert e["duration_ms"] >= e["upstream_ms"] >= 0, e
    wait_until(lambda: (g.metrics().get("sluice_http_requests_total", service="svc", route="ws", status="101") or 0)
               == before + 1, what="sluice_http_requests_total{status=101}")


def test_101_carries_the_rate_limit_headers_and_request_id(make_gateway, ws_backend):
    """A 101 is a counted response like any other (docs/policies.md: every response of a
    counted request carries X-RateLimit-*): the one response phase runs for it too."""
    g = make_gateway([ws_service(ws_backend.address,
                                 local_rate_limit={"requests": 3, "per": "minute", "burst": 5, "header": "ratelimit"})])

    async def go():
        async with connect(g, "/echo?rl=1") as ws:
            h = ws.response_headers
            assert h.get("X-RateLimit-Limit") == "8" and h.get("ratelimit") == "8", dict(h)
            assert h.get("X-RateLimit-Remaining") == "7", dict(h)
            assert int(h.get("X-RateLimit-Reset")) > 0, dict(h)
            assert h.get("X-Request-Id"), dict(h)
            await ws.send("hi")
            assert await ws.recv() == "hi"
    run(go())


# ---------------------------------------------------------------------------------------------
# configuration

ERR_RE = helpers.ERR_RE
POL = "services[0].routes[0].policies.websocket"


def config_text(policy, route_extra=""):
    return ("services:\n"
            "  - name: svc\n"
            "    upstream:\n"
            "      nodes: [{address: \"127.0.0.1:18082\"}]\n"
            "    routes:\n"
            "      - name: r\n"
            "        paths: [\"/x\"]\n" + route_extra +
            "        policies:\n"
            "          " + policy + "\n")


@pytest.mark.parametrize("policy,path,msg,col", [
    ("websocket: maybe", POL, r"^expected true, false or a map such as \{idle_timeout: 10m\}$", "maybe"),
    ("websocket:", POL, r"^expected true, false or a map", None),
    ("websocket: [idle_timeout]", POL, r"^expected true, false or a map", "["),
    ("websocket: {idle_timeout: 0s}", POL + ".idle_timeout", r"^must be between 1ms and 24h$", "0s"),
    ("websocket: {idle_timeout: 25h}", POL + ".idle_timeout", r"^must be between 1ms and 24h$", "25h"),
    ("websocket: {idle_timeout: soon}", POL + ".idle_timeout", r"^invalid duration 'soon'", "soon"),
    ("websocket: {idle_timout: 5s}", POL + ".idle_timout", r"^unknown key \(did you mean 'idle_timeout'\?\)$",
     "idle_timout"),
    ("websockets: true", "services[0].routes[0].policies.websockets",
     r"^unknown policy \(did you mean 'websocket'\?\); valid policies: [a-z_, ]+$", "websockets"),
])
def test_config_errors(sluice_bin, tmp_path, policy, path, msg, col):
    p = tmp_path / "bad.yaml"
    text = config_text(policy)
    p.write_text(text)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (r.stdout, r.stderr)
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    hit = [e for e in errs if e[2] == path and re.search(msg, e[3])]
    assert hit, errs
    line = text.splitlines().index("          " + policy) + 1
    assert hit[0][0] == line, (hit, text)
    if col:
        assert hit[0][1] == text.splitlines()[line - 1].index(col) + 1, (hit, text)


def test_config_error_websocket_on_direct_response(sluice_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    text = config_text("websocket: true", route_extra="        direct_response: {status: 200, body: hi}\n")
    p.write_text(text)
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert [e[2:] for e in errs] == [(POL, "a route that answers with direct_response has no upstream to open a "
                                            "tunnel to")], errs
    assert errs[0][:2] == (len(text.splitlines()), text.splitlines()[-1].index("true") + 1)


@pytest.mark.parametrize("policy", ["websocket: true", "websocket: false", "websocket: {}",
                                    "websocket: {idle_timeout: 10m}", "websocket:\n            idle_timeout: 1h"])
def test_valid_configs(sluice_bin, tmp_path, policy):
    p = tmp_path / "good.yaml"
    p.write_text(config_text(policy))
    r = validate(sluice_bin, p)
    assert r.returncode == 0, (r.stdout, r.stderr)
