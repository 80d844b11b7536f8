"""cors: preflights answered by the gateway without reaching the upstream, CORS headers on the
actual responses (proxied, direct and the gateway's own refusals) for allowed origins only, the
upstream's own CORS headers replaced, and the configuration's errors."""
import pytest

import helpers
from helpers import direct_route, get, proxy_service, validate
from test_websocket import WsBackend, handshake, new_key

ERR_RE = helpers.ERR_RE

CORS = {
    "allow_origins": ["https://app.example.com", "https://*.example.org", "http://localhost:3000"],
    "allow_methods": ["GET", "POST", "PUT", "DELETE"],
    "allow_headers": ["Content-Type", "X-Api-Key"],
    "expose_headers": ["X-Request-Id", "X-Total"],
    "allow_credentials": True,
    "max_age": "10m",
}

ACA = "access-control-allow-"


def cors_headers(r):
    """The response's Access-Control-* headers, names lower-cased, in order."""
    return [(k.lower(), v) for k, v in r.headers if k.lower().startswith("access-control-")]


def preflight(g, origin, method="PUT", req_headers=None, target="/api/items"):
    h = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if req_headers is not None:
        h.append(("Access-Control-Request-Headers", req_headers))
    return get(g, target, method="OPTIONS", headers=h)


@pytest.fixture
def cors_gw(make_gateway, backend):
    return make_gateway([proxy_service([backend], routes=[
        {"name": "api", "paths": ["/api/*"], "policies": {"cors": CORS}},
        {"name": "plain", "paths": ["/*"]},
    ])])


def test_preflight_answered_by_the_gateway(cors_gw, backend):
    for origin in ("https://app.example.com", "https://a.example.org", "https://b.c.example.org",
                   "http://localhost:3000", "HTTPS://APP.EXAMPLE.COM"):
        r = preflight(cors_gw, origin, req_headers="content-type, x-api-key")
        assert r.status == 204, r
        assert r.body == b""
        assert cors_headers(r) == [
            (ACA + "origin", origin),
            (ACA + "credentials", "true"),
            (ACA + "methods", "GET, POST, PUT, DELETE"),
            (ACA + "headers", "Content-Type, X-Api-Key"),
            ("access-control-max-age", "600"),
        ], r
        assert r.header("vary") == "Origin"
    # none of them reached the upstream
    assert backend.snapshot() == []


def test_origin_not_allowed_gets_no_cors_headers(cors_gw, backend):
    refused = [
        "https://evil.example.com",        # another host
        "http://app.example.com",          # another scheme
        "https://app.example.com:8443",    # another port
        "https://example.org",             # the wildcard needs a label before the domain
        "https://a.example.org.evil.net",  # a suffix is not the domain
        "https://aexample.org",            # nor is a longer label
        "http://localhost:3001",
        "null",                            # sandboxed documents: never allowed
        "https://app.example.com, https://evil.example.com",
        "",
    ]
    for origin in refused:
        r = preflight(cors_gw, origin)
        # still the gateway's to answer (the route's CORS is the gateway's), but without a grant
        assert r.status == 204, (origin, r)
        assert cors_headers(r) == [], (origin, r)
        r = get(cors_gw, "/api/items", headers=[("Origin", origin)])
        assert r.status == 200
        assert cors_headers(r) == [], (origin, r)
        assert r.header("vary") == "Origin"
    # the actual requests went through, the preflights did not
    assert [rec.method for rec in backend.snapshot()] == ["GET"] * len(refused)


def test_two_origin_headers_are_not_an_origin(cors_gw):
    r = get(cors_gw, "/api/items", headers=[("Origin", "https://app.example.com"),
                                            ("Origin", "https://app.example.com")])
    assert cors_headers(r) == []


def test_actual_response_gets_the_headers(cors_gw, backend):
    r = get(cors_gw, "/api/items", method="POST", body=b"{}",
            headers=[("Origin", "https://app.example.com"), ("Content-Type", "application/json")])
    assert r.status == 200
    assert cors_headers(r) == [
        (ACA + "origin", "https://app.example.com"),
        (ACA + "credentials", "true"),
        ("access-control-expose-headers", "X-Request-Id, X-Total"),
    ]
    assert r.header("vary") == "Origin"
    # the upstream saw the request, Origin included
    assert backend.snapshot()[-1].header("origin") == "https://app.example.com"


def test_upstream_cors_headers_are_replaced(cors_gw):
    """The route's CORS is the gateway's: what the upstream says about it never reaches the client,
    and its Vary is kept with Origin added."""
    q = "&".join("hdr=" + h for h in (
        "Access-Control-Allow-Origin:*", "Access-Control-Allow-Credentials:true",
        "Access-Control-Expose-Headers:X-Secret", "access-control-allow-methods:PATCH",
        "Vary:Accept-Encoding"))
    r = get(cors_gw, "/api/items?" + q, headers=[("Origin", "https://x.example.org")])
    assert cors_headers(r) == [
        (ACA + "origin", "https://x.example.org"),
        (ACA + "credentials", "true"),
        ("access-control-expose-headers", "X-Request-Id, X-Total"),
    ], r
    assert r.header_all("vary") == ["Accept-Encoding", "Origin"]
    r = get(cors_gw, "/api/items?" + q, headers=[("Origin", "https://evil.example.com")])
    assert cors_headers(r) == []
    # a route without the policy passes the upstream's headers as they came
    r = get(cors_gw, "/other?" + q, headers=[("Origin", "https://evil.example.com")])
    assert (ACA + "origin", "*") in cors_headers(r)
    assert r.header_all("vary") == ["Accept-Encoding"]


def test_options_without_preflight_headers_is_proxied(cors_gw, backend):
    """An OPTIONS that is not a preflight (no Access-Control-Request-Method) is the upstream's."""
    r = get(cors_gw, "/api/items", method="OPTIONS", headers=[("Origin", "https://app.example.com")])
    assert r.status == 200
    assert backend.snapshot()[-1].method == "OPTIONS"
    assert (ACA + "origin", "https://app.example.com") in cors_headers(r)


def test_any_origin_and_requested_headers(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "pub", "paths": ["/*"], "policies": {"cors": {"allow_origins": ["*"], "allow_headers": ["*"]}}}])])
    r = preflight(g, "https://anyone.test", method="POST", req_headers="X-One,x-two , Content-Type")
    assert r.status == 204
    # "*" origins: the literal "*", which no cache needs to vary on; default methods; the
    # requested headers granted as asked (they are checked to be a list of tokens)
    assert cors_headers(r) == [
        (ACA + "origin", "*"),
        (ACA + "methods", "GET, HEAD, POST"),
        (ACA + "headers", "X-One,x-two , Content-Type"),
    ]
    assert r.header("vary") == "Access-Control-Request-Headers"
    r = preflight(g, "https://anyone.test", req_headers="X-One, bad header, (x)")
    assert r.status == 204
    assert (ACA + "headers") not in dict(cors_headers(r))
    r = get(g, "/x", headers=[("Origin", "https://anyone.test")])
    assert cors_headers(r) == [(ACA + "origin", "*")]
    assert r.header("vary") is None
    # "null" is not "any origin"
    r = get(g, "/x", headers=[("Origin", "null")])
    assert cors_headers(r) == []
    assert backend.snapshot()[-1].method == "GET"


def test_gateway_responses_carry_the_headers(make_gateway, backend):
    """A browser can read the gateway's own answers on a CORS route: a rate-limit refusal, a
    gateway error and a direct response carry the headers too."""
    dead = helpers.free_port()
    cors = {"allow_origins": ["https://app.example.com"]}
    g = make_gateway([
        proxy_service([backend], routes=[
            {"name": "limited", "paths": ["/limited"],
             "policies": {"cors": cors, "local_rate_limit": {"requests": 1, "per": "hour"}}}]),
        proxy_service(["127.0.0.1:%d" % dead], name="dead", routes=[
            {"name": "down", "paths": ["/down"], "policies": {"cors": cors}}]),
        {"name": "static", "routes": [direct_route("hello", ["/hello"], policies={"cors": cors})]},
    ])
    origin = [("Origin", "https://app.example.com")]
    want = [(ACA + "origin", "https://app.example.com")]
    assert get(g, "/limited", headers=origin).status == 200
    r = get(g, "/limited", headers=origin)
    assert r.status == 429
    assert cors_headers(r) == want
    # the preflight is answered before the rate limit and takes no token from it
    assert preflight(g, "https://app.example.com", target="/limited").status == 204
    r = get(g, "/down", headers=origin)
    assert r.status == 502
    assert cors_headers(r) == want
    r = get(g, "/hello", headers=origin)
    assert r.status == 200 and r.body == b"hello\n"
    assert cors_headers(r) == want
    r = preflight(g, "https://app.example.com", method="GET", target="/hello")
    assert r.status == 204 and r.body == b""


@pytest.fixture
def ws_backend(tmp_path):
    b = WsBackend(str(tmp_path))
    yield b
    b.close()


def test_websocket_handshake_gets_the_headers(make_gateway, ws_backend):
    """A 101 runs the response phase like any other response."""
    g = make_gateway([proxy_service([ws_backend.address], routes=[
        {"name": "ws", "paths": ["/*"],
         "policies": {"websocket": True, "cors": {"allow_origins": ["https://app.example.com"]}}}])])
    with helpers.RawConn("127.0.0.1", g.port) as c:
        c.send(handshake("/echo", new_key(), headers=[("Origin", "https://app.example.com")]))
        _, status, _, headers, _ = c.read_head()
    assert status == 101
    assert [(k.lower(), v) for k, v in headers if k.lower().startswith("access-control-")] == \
        [(ACA + "origin", "https://app.example.com")]


BAD = [
    ({}, "allow_origins", "is required"),
    ({"allow_origins": []}, "allow_origins", "must not be empty"),
    ({"allow_origins": ["app.example.com"]}, "allow_origins[0]",
     "an origin is SCHEME://HOST[:PORT] (https://app.example.com, https://*.example.com) or \"*\""),
    ({"allow_origins": ["https://app.example.com/"]}, "allow_origins[0]",
     "an origin is SCHEME://HOST[:PORT] (https://app.example.com, https://*.example.com) or \"*\""),
    ({"allow_origins": ["https://a.*.example.com"]}, "allow_origins[0]",
     "an origin is SCHEME://HOST[:PORT] (https://app.example.com, https://*.example.com) or \"*\""),
    ({"allow_origins": ["null"]}, "allow_origins[0]",
     "the \"null\" origin cannot be allowed: every sandboxed document and local file sends it"),
    ({"allow_origins": ["*"], "allow_credentials": True}, "allow_credentials",
     "cannot be true with allow_origins \"*\": browsers refuse credentials with a wildcard origin, and "
     "granting them to every origin would let any site act as the user"),
    ({"allow_origins": ["*"], "allow_methods": ["GET", "BAD METHOD"]}, "allow_methods[1]", "must be a token"),
    ({"allow_origins": ["*"], "allow_headers": ["X-A", "X:B"]}, "allow_headers[1]", "must be a token or \"*\""),
    ({"allow_origins": ["*"], "expose_headers": [""]}, "expose_headers[0]", "must be a token"),
    ({"allow_origins": ["*"], "max_age": "25h"}, "max_age", "must be between 0ms and 24h"),
    ({"allow_origins": ["*"], "allowed_origins": ["*"]}, "allowed_origins",
     "unknown key (did you mean 'allow_origins'?)"),
]


@pytest.mark.parametrize("cors,field,msg", BAD)
def test_configuration_errors(sluice_bin, tmp_path, cors, field, msg):
    p = tmp_path / "cors.yaml"
    p.write_text(helpers.to_yaml({"services": [proxy_service(["127.0.0.1:1"], routes=[
        {"name": "r", "paths": ["/*"], "policies": {"cors": cors}}])]}))
    r = validate(sluice_bin, p)
    assert r.returncode != 0
    errs = helpers.parse_errors(p, r.stderr)
    assert [(e[2], e[3]) for e in errs] == [("services[0].routes[0].policies.cors." + field, msg)], r.stderr


# ---------------------------------------------------------------------------------------------
# a real browser

PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
async function attempt(url, init) {
  try {
    const r = await fetch(url, init);
    return {ok: true, status: r.status, total: r.headers.get('X-Total'), backend: r.headers.get('X-Backend'),
            body: await r.text()};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}
(async () => {
  const gw = 'http://127.0.0.1:%(port)d';
  const res = {};
  res.put = await attempt(gw + '/api/items?hdr=X-Total:7', {method: 'PUT', headers: {'X-Api-Key': 'k1',
                          'Content-Type': 'application/json'}, body: '{"n": 1}', credentials: 'include'});
  res.other = await attempt(gw + '/other/items', {method: 'PUT', headers: {'X-Api-Key': 'k1'}});
  res.simple_other = await attempt(gw + '/other/items');
  res.denied_header = await attempt(gw + '/api/items', {method: 'PUT', headers: {'X-Not-Allowed': '1'}});
  document.getElementById('out').textContent = JSON.stringify(res);
})();
</script></body></html>
"""


def test_chromium_cross_origin_fetch(make_gateway, backend, tmp_path):
    """Chromium on one origin calls the gateway on another: the preflight the browser makes is
    answered by the gateway, the browser lets the page read the response and exactly the exposed
    headers; a route allowing another origin, and a header the route does not allow, are blocked
    by the browser itself."""
    import json
    import re
    import subprocess
    import sys

    site_port = helpers.free_port()
    site = "http://127.0.0.1:%d" % site_port
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "api", "paths": ["/api/*"], "policies": {"cors": dict(CORS, allow_origins=[site])}},
        {"name": "other", "paths": ["/other/*"], "policies": {"cors": {"allow_origins": ["https://elsewhere.test"]}}},
    ])])
    (tmp_path / "page.html").write_text(PAGE % {"port": g.port})
    srv = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(site_port),
                            "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        helpers.wait_until(lambda: _listening(site_port), what="the page's server")
        r = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--user-data-dir=" + str(tmp_path / "profile"), "--virtual-time-budget=20000",
                            "--dump-dom", site + "/page.html"], capture_output=True, text=True, timeout=120)
    finally:
        srv.terminate()
        srv.wait()
    m = re.search(r'<pre id="out">(.*?)</pre>', r.stdout, re.S)
    assert m, r.stdout + r.stderr
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert res["put"]["ok"] and res["put"]["status"] == 200, res
    assert res["put"]["total"] == "7"      # exposed
    assert res["put"]["backend"] is None   # sent by the backend, not exposed: hidden by the browser
    assert '"method": "PUT"' in res["put"]["body"]
    for k in ("other", "simple_other", "denied_header"):
        assert not res[k]["ok"] and "Failed to fetch" in res[k]["error"], (k, res)
    seen = [(rec.method, rec.path) for rec in backend.snapshot()]
    # preflights stayed at the gateway; the simple GET to the other route reached the upstream
    # (a browser sends simple requests without asking, and hides the answer)
    assert ("OPTIONS", "/api/items") not in seen and ("OPTIONS", "/other/items") not in seen
    assert seen.count(("PUT", "/api/items")) == 1
    assert ("GET", "/other/items") in seen
    assert ("PUT", "/other/items") not in seen


def _listening(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
