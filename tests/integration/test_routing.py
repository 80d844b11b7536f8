"""Router: host (exact, *.suffix, none), path (exact, prefix, longest prefix), methods, 404."""
import pytest
import requests

from helpers import RawConn, direct_route, direct_service, proxy_service


def dr(name, paths, hosts=None, methods=None):
    r = direct_route(name, paths, body=name)
    if hosts:
        r["hosts"] = hosts
    if methods:
        r["methods"] = methods
    return r


@pytest.fixture
def routed(make_gateway, backend):
    routes = [
        dr("nohost-prefix", ["/api/*"]),
        dr("wild-prefix", ["/api/*"], hosts=["*.example.com"]),
        dr("exact-host-prefix", ["/api/*"], hosts=["api.example.com"]),
        dr("nohost-exact", ["/api/users"]),
        dr("nohost-v2", ["/api/v2/*"]),
        dr("post-only", ["/m"], methods=["POST", "PUT"]),
        dr("get-only", ["/g"], methods=["GET"]),
        dr("org", ["/org/*"], hosts=["*.example.org", "exact.example.net"]),
        dr("root-exact", ["/"]),
    ]
    g = make_gateway([
        direct_service(routes=routes),
        proxy_service([backend], name="svc", routes=[{"name": "proxied", "paths": ["/p", "/p/*"]}]),
    ])
    return g, backend


def get(g, path, host="example.net", method="GET"):
    return requests.request(method, g.url + path, headers={"Host": host}, timeout=10)


def assert_no_route(r):
    assert r.status_code == 404, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    assert r.json() == {"error": "no_route", "status": 404}


@pytest.mark.parametrize("host,path,want", [
    ("api.example.com", "/api/x", "exact-host-prefix"),
    ("API.Example.COM", "/api/x", "exact-host-prefix"),
    ("api.example.com:8080", "/api/x", "exact-host-prefix"),
    ("www.example.com", "/api/x", "wild-prefix"),
    ("a.b.example.com", "/api/x", "wild-prefix"),
    ("example.com", "/api/x", "nohost-prefix"),        # *.example.com needs a label before it
    ("notexample.com", "/api/x", "nohost-prefix"),
    ("other.test", "/api/x/y/z", "nohost-prefix"),
    ("other.test", "/api/users", "nohost-exact"),      # exact path over prefix
    ("other.test", "/api/users?page=2", "nohost-exact"),  # query is not part of the path
    ("other.test", "/api/users/7", "nohost-prefix"),
    ("other.test", "/api/v2/things", "nohost-v2"),     # longer prefix over shorter
    ("other.test", "/api/v2x", "nohost-prefix"),
    ("www.example.org", "/org/a", "org"),
    ("exact.example.net", "/org/a", "org"),
    ("other.test", "/", "root-exact"),
])
def test_most_specific_route_wins(routed, host, path, want):
    g, _ = routed
    r = get(g, path, host)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.text == want


def test_exact_host_route_beats_no_host_exact_path(routed):
    """Host specificity is decided before path specificity."""
    g, _ = routed
    assert get(g, "/api/users", "api.example.com").text == "exact-host-prefix"
    assert get(g, "/api/users", "zzz.example.com").text == "wild-prefix"


@pytest.mark.parametrize("host,path", [
    ("other.test", "/apiary"),          # prefix /api/* must not match /apiary
    ("other.test", "/nothing"),
    ("example.org", "/org/a"),          # *.example.org does not cover example.org
    ("x.example.net", "/org/a"),
    ("other.test", "/p2"),
])
def test_no_route_is_404_json(routed, host, path):
    g, backend = routed
    assert_no_route(get(g, path, host))
    assert backend.snapshot() == []


def test_methods_filter(routed):
    g, _ = routed
    assert get(g, "/m", method="POST").text == "post-only"
    assert get(g, "/m", method="PUT").text == "post-only"
    assert_no_route(get(g, "/m", method="GET"))
    assert_no_route(get(g, "/m", method="DELETE"))
    assert get(g, "/g").text == "get-only"
    assert_no_route(get(g, "/g", method="POST"))


def test_proxied_route_and_no_route_in_access_log(routed):
    g, backend = routed
    r = get(g, "/p/abc?q=1")
    assert r.status_code == 200
    assert r.json()["target"] == "/p/abc?q=1"
    r = get(g, "/p")
    assert r.status_code == 200
    assert [x.target for x in backend.snapshot()] == ["/p/abc?q=1", "/p"]
    assert_no_route(get(g, "/zzz"))
    e = g.wait_log(lambda e: e["path"] == "/zzz")
    assert e["status"] == 404 and e["error"] == "no_route" and e["route"] is None
    e = g.wait_log(lambda e: e["path"] == "/p/abc?q=1" or e["path"] == "/p/abc")
    assert e["route"] == "proxied" and e["service"] == "svc" and e["status"] == 200
    assert e["upstream"] == backend.address and e["upstream_status"] == 200
    assert e["error"] is None


def test_keepalive_connection_routes_each_request(routed):
    """One client connection, different hosts and paths: each request is routed on its own."""
    g, _ = routed
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/api/x", host="api.example.com").body == b"exact-host-prefix"
        assert c.request("GET", "/api/x", host="w.example.com").body == b"wild-prefix"
        r = c.request("GET", "/nope", host="w.example.com")
        assert r.status == 404
        assert c.request("GET", "/api/users", host="x.test").body == b"nohost-exact"


def test_many_routes(make_gateway):
    """Two thousand routes load and each one still answers for itself."""
    routes = [dr("r%d" % i, ["/svc%d" % i, "/svc%d/*" % i]) for i in range(2000)]
    g = make_gateway([direct_service(routes=routes)])
    for i in (0, 1, 999, 1000, 1999):
        assert get(g, "/svc%d/x" % i).text == "r%d" % i
        assert get(g, "/svc%d" % i).text == "r%d" % i
    assert_no_route(get(g, "/svc2000"))
