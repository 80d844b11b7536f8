"""ip_access: allow and deny lists of addresses and CIDRs, by the TCP peer or by the client
found gateway.proxy_layers hops from the right of X-Forwarded-For. Refused requests get 403
and never reach the upstream."""
import json

from helpers import get, RawConn, proxy_service


def route(name, paths, ip_access):
    return {"name": name, "paths": paths, "policies": {"ip_access": ip_access}}


def test_allow_list_by_peer(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("a", ["/a"], {"allow": ["127.0.0.2", "10.0.0.0/8", "2001:db8::/32"], "source": "peer"})])])
    r = get(g, "/a", source="127.0.0.2")
    assert r.status == 200
    r = get(g, "/a", source="127.0.0.3")
    assert r.status == 403
    assert json.loads(r.body) == {"error": "ip_denied", "status": 403}
    # an X-Forwarded-For naming an allowed address does not help with source: peer
    r = get(g, "/a", source="127.0.0.3", headers=[("X-Forwarded-For", "10.1.1.1")])
    assert r.status == 403
    assert [x.path for x in backend.snapshot()] == ["/a"]  # only the allowed request got through
    e = g.wait_log(lambda e: e["status"] == 403)
    assert e["error"] == "ip_denied" and e["route"] == "a" and e["upstream"] is None


def test_deny_list_by_remote_with_one_proxy_layer(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("r", ["/r"], {"deny": ["192.168.1.0/24"]})])], gateway={"proxy_layers": 1})
    # Client -> proxy -> gateway: the proxy appended the client; that is the address checked.
    assert get(g, "/r", headers=[("X-Forwarded-For", "192.168.1.5")]).status == 403
    # A forged entry on the left is not the client: the rightmost one (added by the proxy) is.
    assert get(g, "/r", headers=[("X-Forwarded-For", "192.168.1.5, 8.8.8.8")]).status == 200
    # No X-Forwarded-For (fewer hops than proxy_layers): the peer is checked.
    assert get(g, "/r").status == 200
    assert len(backend.snapshot()) == 2


def test_remote_with_two_layers_and_peer_fallback(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("r", ["/r"], {"allow": ["203.0.113.0/24"]})])], gateway={"proxy_layers": 2})
    assert get(g, "/r", headers=[("X-Forwarded-For", "203.0.113.9, 10.0.0.1")]).status == 200
    assert get(g, "/r", headers=[("X-Forwarded-For", "10.0.0.1, 203.0.113.9")]).status == 403
    assert get(g, "/r", headers=[("X-Forwarded-For", "203.0.113.9")]).status == 403  # one hop: the peer
    assert get(g, "/r", headers=[("X-Forwarded-For", "garbage, 10.0.0.1")]).status == 403


def test_refused_request_with_body_never_reaches_upstream(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[route("a", ["/a"], {"deny": ["127.0.0.0/8"]})])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("POST", "/a", body=b"x" * 5000)
        assert r.status == 403
        assert c.request("GET", "/a").status == 403  # the connection stays usable
    assert backend.snapshot() == []


def test_large_list(make_gateway, backend):
    deny = ["10.%d.%d.0/24" % (i // 256, i % 256) for i in range(10000)]
    g = make_gateway([proxy_service([backend], routes=[route("a", ["/a"], {"deny": deny + ["127.0.0.9"]})])])
    assert get(g, "/a", source="127.0.0.9").status == 403
    assert get(g, "/a", source="127.0.0.8").status == 200
