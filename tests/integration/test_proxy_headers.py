"""What the gateway adds, removes and passes through on the way to the upstream and back."""
import json

from helpers import RawConn, free_port, proxy_service

HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"]


def names(headers):
    return [k.lower() for k, _ in headers]


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_forwarded_headers_added(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/h", host="api.example.com:8443")
    assert r.status == 200
    rec = backend.wait_requests(1)[0]
    assert values(rec.headers, "x-forwarded-for") == ["127.0.0.1"]
    assert values(rec.headers, "x-forwarded-proto") == ["http"]
    assert values(rec.headers, "x-forwarded-host") == ["api.example.com:8443"]
    assert values(rec.headers, "x-real-ip") == ["127.0.0.1"]
    assert values(rec.headers, "host") == ["api.example.com:8443"], "Host must pass through unchanged"


def test_forwarded_for_appends_to_existing_list(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port, source="127.0.0.2") as c:
        r = c.request("GET", "/h", headers=[("X-Forwarded-For", "10.1.2.3, 192.0.2.7")])
    assert r.status == 200
    rec = backend.wait_requests(1)[0]
    xff = ", ".join(values(rec.headers, "x-forwarded-for"))
    assert [x.strip() for x in xff.split(",")] == ["10.1.2.3", "192.0.2.7", "127.0.0.2"]
    assert values(rec.headers, "x-real-ip") == ["127.0.0.2"]


def test_client_cannot_spoof_real_ip(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port, source="127.0.0.3") as c:
        assert c.request("GET", "/h", headers=[("X-Real-IP", "6.6.6.6")]).status == 200
    rec = backend.wait_requests(1)[0]
    assert values(rec.headers, "x-real-ip") == ["127.0.0.3"]


def test_ipv6_client(make_gateway, backend):
    p6 = free_port("::1")
    g = make_gateway([proxy_service([backend])], listen_extra=["[::1]:%d" % p6])
    with RawConn("::1", p6) as c:
        client_port = c.sock.getsockname()[1]
        r = c.request("GET", "/six", host="[::1]:%d" % p6)
    assert r.status == 200
    rec = backend.wait_requests(1)[0]
    assert values(rec.headers, "x-real-ip") == ["::1"]
    assert values(rec.headers, "x-forwarded-for") == ["::1"]
    assert values(rec.headers, "host") == ["[::1]:%d" % p6]
    e = g.wait_log(lambda e: e["path"] == "/six")
    assert e["client"] == "::1" and e["client_port"] == client_port


def test_ipv6_upstream(make_gateway, make_backend):
    b6 = make_backend("v6", host="::1")
    g = make_gateway([proxy_service([b6])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/to6")
    assert r.status == 200 and r.json()["backend"] == "v6"


def test_request_hop_by_hop_headers_removed(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/hop", headers=[
            ("Connection", "keep-alive, X-Custom-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("X-Custom-Hop", "secret"),
            ("X-End-To-End", "kept"),
            ("Authorization", "Bearer abc"),
        ])
    assert r.status == 200
    rec = backend.wait_requests(1)[0]
    got = names(rec.headers)
    for h in ["keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "x-custom-hop"]:
        assert h not in got, "%s forwarded: %r" % (h, rec.headers)
    # a Connection header toward the upstream may exist, but only for the gateway's own hop
    for v in values(rec.headers, "connection"):
        assert "x-custom-hop" not in v.lower()
    assert values(rec.headers, "x-end-to-end") == ["kept"]
    assert values(rec.headers, "authorization") == ["Bearer abc"]


def test_connection_close_from_client_not_forwarded_as_token_list(gw_one):
    """Connection: close ends the client connection after the response."""
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/bye", headers=[("Connection", "close")])
        assert r.status == 200
        assert c.is_closed(5), "gateway kept the connection open after Connection: close"


def test_response_hop_by_hop_headers_removed(gw_one):
    g, backend = gw_one
    q = "&".join("hdr=" + h for h in [
        "Keep-Alive:timeout=99", "Connection:X-Resp-Hop", "X-Resp-Hop:1", "Proxy-Connection:keep-alive",
        "Trailer:X-Sum", "X-Kept:yes",
    ])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/resp?" + q)
        assert r.status == 200
        got = names(r.headers)
        for h in ["keep-alive", "proxy-connection", "trailer", "x-resp-hop"]:
            assert h not in got, "%s forwarded to client: %r" % (h, r.headers)
        for v in r.header_all("connection"):
            assert "x-resp-hop" not in v.lower()
        assert r.header("x-kept") == "yes"
        assert r.header("x-backend") == "b1"


def test_upstream_connection_close_does_not_close_client(gw_one):
    """The upstream closing its connection is its own hop: the client connection stays usable."""
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/a?connclose=1")
        assert r.status == 200
        assert "close" not in (r.header("connection") or "").lower()
        r = c.request("GET", "/b")
        assert r.status == 200
    assert [x.path for x in backend.wait_requests(2)] == ["/a", "/b"]


def test_repeated_headers_and_target_pass_through(gw_one):
    g, backend = gw_one
    # The path is normalised (%7E is "~", escapes upper-cased), the query passes as sent.
    target = "/p/a%3fb/%7Euser?x=%20y&x=2&empty=&utf=%C3%A9"
    forwarded = "/p/a%3Fb/~user?x=%20y&x=2&empty=&utf=%C3%A9"
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", target, headers=[("X-Multi", "one"), ("X-Multi", "two"), ("X-Odd", "a,b;c=\"d\"")])
        assert r.status == 200
    rec = backend.wait_requests(1)[0]
    assert rec.target == forwarded
    multi = values(rec.headers, "x-multi")
    assert multi == ["one", "two"], multi  # forwarded as separate fields, in order, never merged
    assert values(rec.headers, "x-odd") == ['a,b;c="d"']


def test_multiple_set_cookie_kept_separate(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/c?hdr=Set-Cookie:a%3D1%3B%20Path%3D%2F&hdr=Set-Cookie:b%3D2%2C%20x")
    assert r.status == 200
    assert r.header_all("set-cookie") == ["a=1; Path=/", "b=2, x"]


def test_upstream_sees_http11(gw_one):
    g, backend = gw_one
    with RawConn("127.0.0.1", g.port) as c:
        c.send(b"GET /ten HTTP/1.0\r\nHost: old.example\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert c.is_closed(5), "HTTP/1.0 request without keep-alive must end with close"
    rec = backend.wait_requests(1)[0]
    assert rec.version == "HTTP/1.1"
    assert json.loads(r.body)["path"] == "/ten"
