"""Every HTTP policy on one route at once (issue 4): each still does its part, in the documented
order (ip_access, local_rate_limit, path_rewrite, request_headers, proxy (timeout, retry,
websocket), response_headers, cookie_rewrite)."""
import base64
import hashlib

from backends.backend import Backend
from helpers import RawConn, proxy_service, to_yaml, validate, wait_until

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FAST = {"base": "1ms", "max": "2ms"}


def route():
    return {"name": "api", "paths": ["/api/*"], "policies": {
        "ip_access": {"allow": ["127.0.0.1/32"], "source": "peer"},
        "local_rate_limit": {"requests": 20, "per": "minute", "burst": 0, "header": "ratelimit"},
        "path_rewrite": {"prefix": "/api", "replace": "/v1"},
        "request_headers": {"set": {"X-Env": "prod"}, "remove": ["X-Debug"]},
        "timeout": "2s",
        "retry": {"attempts": 1, "on": ["5xx"], "backoff": FAST},
        "websocket": True,
        "response_headers": {"set": {"X-Frame-Options": "DENY"}, "remove": ["X-Conn-Id"]},
        "cookie_rewrite": [{"name": "session", "domain": "example.com", "path": "/", "secure": True,
                            "samesite": "Strict"}],
    }}


def fail_first(b, s, r, rec, seen=[0]):
    """503 for the first request, then the echo with a cookie to rewrite."""
    seen[0] += 1
    rec.query["status"] = ["503" if seen[0] == 1 else "200"]
    rec.query["hdr"] = ["Set-Cookie:session=abc; Domain=app.internal; Path=/app; HttpOnly"]
    return Backend._default(b, s, r, rec)


def ws_upstream(b, s, r, rec):
    """Accepts the WebSocket handshake, then echoes raw bytes (the tunnel does not read frames)."""
    accept = base64.b64encode(hashlib.sha1(rec.header("sec-websocket-key").encode() + GUID).digest())
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    data = r.buf
    r.buf = b""
    while True:
        if data:
            s.sendall(data)
        data = s.recv(65536)
        if not data:
            return False


def test_every_policy_on_one_route(make_gateway, backend):
    backend.on("/v1/users", fail_first)
    backend.on("/v1/ws", ws_upstream)
    g = make_gateway([proxy_service([backend], routes=[route()])])

    # proxied: rewritten path, request headers, a retry after the 503, response headers, cookie
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/api/users?x=1", headers=[("X-Debug", "1")])
    assert r.status == 200, r
    seen = backend.snapshot()
    assert [x.target for x in seen] == ["/v1/users?x=1"] * 2
    assert all(x.header("x-env") == "prod" and x.header("x-debug") is None for x in seen)
    assert r.header("x-frame-options") == "DENY" and r.header("x-conn-id") is None
    assert r.header("set-cookie") == "session=abc; Domain=example.com; Path=/; HttpOnly; Secure; SameSite=Strict"
    assert r.header("ratelimit") == "20" and r.header("x-ratelimit-remaining") == "19"
    e = g.wait_log(lambda e: e["path"] == "/api/users?x=1")
    assert e["retries"] == 1 and e["status"] == 200

    # ip_access comes first: a refused client takes no token and reaches nothing
    with RawConn("127.0.0.1", g.port, source="127.0.0.2") as c:
        r = c.request("GET", "/api/users")
    assert r.status == 403 and r.json()["error"] == "ip_denied"
    assert len(backend.snapshot()) == 2

    # the route timeout (2s) ends a slow request before the upstream read timeout (5s)
    with RawConn("127.0.0.1", g.port, timeout=10) as c:
        r = c.request("GET", "/api/slow?delay=4")
    assert r.status == 504 and r.json()["error"] == "route_timeout"
    assert r.header("x-ratelimit-remaining") == "18"

    # websocket: the handshake goes through (not 403), and the tunnel carries bytes both ways
    with RawConn("127.0.0.1", g.port) as c:
        c.send(b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        _, status, _, headers, _ = c.read_head()
        assert status == 101
        c.send(b"hello through every policy")
        assert c.read_exact(26) == b"hello through every policy"
    assert backend.snapshot()[-1].target == "/v1/ws"

    # local_rate_limit: 20 a minute, 3 taken (the refused client took none); the rest, then 429
    codes = []
    for _ in range(18):
        with RawConn("127.0.0.1", g.port) as c:
            codes.append(c.request("GET", "/api/other").status)
    assert codes[:17] == [200] * 17 and codes[17] == 429
    wait_until(lambda: any(x.get("error") == "rate_limited" for x in g.log_lines()))


def test_every_policy_validates_together(sluice_bin, tmp_path):
    p = tmp_path / "all.yaml"
    p.write_text(to_yaml({"services": [proxy_service(["127.0.0.1:1"], routes=[route()])]}))
    r = validate(sluice_bin, p)
    assert r.returncode == 0, r.stderr
