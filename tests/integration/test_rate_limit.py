"""local_rate_limit: a token bucket per route (or per client key) of capacity requests + burst,
refilled by `requests` each `per`, counted exactly across worker threads. Refused requests get
the configured status before anything goes upstream; every counted response carries
X-RateLimit-Limit/-Remaining/-Reset and the configured header, a refusal also Retry-After.
Bucket state survives a reload that keeps the route's limit settings."""
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import helpers
from helpers import get, RawConn, direct_route, direct_service, proxy_service, validate

ERR_RE = helpers.ERR_RE
POLICY = "services[0].routes[0].policies.local_rate_limit"


def limited(name="limited", paths=("/*",), **rl):
    return {"name": name, "paths": list(paths), "policies": {"local_rate_limit": rl}}


def counters(r):
    """(X-RateLimit-Limit, -Remaining, -Reset) as integers, each header exactly once."""
    out = []
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        v = r.header_all(name)
        assert len(v) == 1, (name, r.headers)
        out.append(int(v[0]))
    return tuple(out)


def assert_refused(r, status=429):
    assert r.status == status, r
    assert r.header("content-type") == "application/json", r.headers
    assert json.loads(r.body) == {"error": "rate_limited", "status": status}
    retry = r.header_all("Retry-After")
    assert len(retry) == 1 and int(retry[0]) >= 1, r.headers
    return int(retry[0])


# ---------------------------------------------------------------------------------------------
# the product example


def test_product_example(make_gateway, backend):
    """requests: 3, per: minute, burst: 5 admits 8 at once; the 9th is refused."""
    g = make_gateway([proxy_service([backend], routes=[
        limited(requests=3, per="minute", burst=5, status=429, header="ratelimit")])])
    with RawConn("127.0.0.1", g.port) as c:
        for k in range(1, 9):
            r = c.request("GET", "/x/%d" % k)
            assert r.status == 200, r
            assert r.header_all("ratelimit") == ["8"]
            assert r.header_all("Retry-After") == []
            limit, remaining, reset = counters(r)
            assert (limit, remaining) == (8, 8 - k)
            # A token comes back every 20 s: full again 20 s per token taken, rounded up (the
            # first request is counted against a full bucket, so its 20 is exact).
            assert (reset == 20) if k == 1 else (20 * k - 1 <= reset <= 20 * k), (k, reset)
        r = c.request("GET", "/x/9")
        retry = assert_refused(r)
        assert r.header_all("ratelimit") == ["8"]
        limit, remaining, reset = counters(r)
        assert (limit, remaining) == (8, 0)
        assert 19 <= retry <= 20 and 159 <= reset <= 160, r.headers
        # the connection stays usable, and a refusal takes no token
        assert c.request("GET", "/x/10").status == 429
    assert [x.path for x in backend.snapshot()] == ["/x/%d" % k for k in range(1, 9)]
    e = g.wait_log(lambda e: e["path"] == "/x/9")
    assert e["status"] == 429 and e["error"] == "rate_limited" and e["route"] == "limited" and e["upstream"] is None
    m = g.metrics()
    assert m.get("sluice_http_requests_total", service="svc", route="limited", status=429) == 2


def test_exact_across_two_workers(make_gateway, backend):
    """200 requests on their own connections from 16 threads: the kernel spreads connections
    over both workers (SO_REUSEPORT), and exactly the capacity gets through."""
    g = make_gateway([proxy_service([backend], routes=[limited(requests=10, per="hour", burst=40)])],
                     gateway={"workers": 2})

    def one(i):
        with RawConn("127.0.0.1", g.port) as c:
            r = c.request("GET", "/p/%d" % i, headers=[("Connection", "close")])
            return r.status, counters(r)[1]

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, range(200)))
    statuses = [s for s, _ in results]
    assert statuses.count(200) == 50 and statuses.count(429) == 150, statuses
    # each admitted request saw a different number of tokens left: 49 down to 0
    assert sorted(rem for s, rem in results if s == 200) == list(range(50))
    assert len(backend.snapshot()) == 50


def test_refill_per_second(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[limited(requests=2, per="second")])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/x")
        assert r.status == 200 and counters(r)[:2] == (2, 1)
        # Go on until a refusal: with a token every 500 ms, it comes within a few requests.
        for _ in range(50):
            r = c.request("GET", "/x")
            if r.status != 200:
                break
            last_ok = r
        retry = assert_refused(r)
        assert retry == 1 and counters(r)[:2] == (2, 0), r.headers
        # After Retry-After seconds a token is there.
        time.sleep(retry + 0.05)
        r = c.request("GET", "/x")
        assert r.status == 200, r
        # After X-RateLimit-Reset seconds the bucket is full: this request leaves one token.
        time.sleep(counters(r)[2] + 0.05)
        r = c.request("GET", "/x")
        assert r.status == 200 and counters(r)[:2] == (2, 1), r.headers
        assert last_ok.status == 200


def test_key_ip(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[limited(requests=2, per="hour", key="ip")])])
    assert counters(get(g, "/x", source="127.0.0.2"))[1] == 1
    assert counters(get(g, "/x", source="127.0.0.2"))[1] == 0
    assert_refused(get(g, "/x", source="127.0.0.2"))
    # another client address has its own bucket
    r = get(g, "/x", source="127.0.0.3")
    assert r.status == 200 and counters(r)[1] == 1
    assert_refused(get(g, "/x", source="127.0.0.2"))
    assert len(backend.snapshot()) == 3


def test_key_ip_behind_a_proxy(make_gateway, backend):
    """With gateway.proxy_layers: 1 the client is the address the proxy appended."""
    g = make_gateway([proxy_service([backend], routes=[limited(requests=1, per="hour", key="ip")])],
                     gateway={"proxy_layers": 1})
    assert get(g, "/x", headers=[("X-Forwarded-For", "203.0.113.7")]).status == 200
    assert_refused(get(g, "/x", headers=[("X-Forwarded-For", "203.0.113.7")]))
    assert_refused(get(g, "/x", headers=[("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]))  # forged left entry
    assert get(g, "/x", headers=[("X-Forwarded-For", "203.0.113.8")]).status == 200


def test_key_header(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[limited(requests=1, per="hour", key="header X-Api-Key")])])

    def key(v):
        return get(g, "/x", headers=[("X-Api-Key", v)] if v is not None else [])

    assert key("alice").status == 200
    assert_refused(key("alice"))
    assert key("bob").status == 200
    assert get(g, "/x", headers=[("x-api-key", "carol")]).status == 200  # header names are case-insensitive
    # requests without the header (or with an empty one) share one bucket
    assert key(None).status == 200
    assert_refused(key(None))
    assert_refused(key(""))
    assert_refused(key("alice"))
    assert len(backend.snapshot()) == 4


def test_max_keys_evicts_least_recently_used(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        limited(requests=1, per="hour", key="header X-Api-Key", max_keys=2)])])

    def key(v):
        return get(g, "/x", headers=[("X-Api-Key", v)])

    assert key("a").status == 200
    assert key("b").status == 200
    assert_refused(key("a"))  # a is now the most recently used
    assert key("c").status == 200  # a third key: b, the least recently used, is forgotten
    assert_refused(key("a"))
    assert_refused(key("c"))
    assert key("b").status == 200  # a full bucket again (and a is forgotten now)
    assert key("a").status == 200
    assert len(backend.snapshot()) == 5


def test_reload_keeps_state_unless_the_limit_changes(make_gateway, backend):
    def services(route_name="limited", requests=2, status=429, extra=()):
        return [proxy_service([backend], routes=[
            limited(route_name, ["/x"], requests=requests, per="hour", status=status)] + list(extra))]

    g = make_gateway(services())
    assert get(g, "/x").status == 200
    assert get(g, "/x").status == 200
    assert_refused(get(g, "/x"))
    # Same route, same limit: the count survives a reload, even one that changes the refusal
    # status and adds a route.
    g.reload(services(status=503, extra=[{"name": "other", "paths": ["/other"]}]))
    assert_refused(get(g, "/x"), status=503)
    assert get(g, "/other").status == 200
    # A changed limit starts a fresh bucket.
    g.reload(services(requests=3))
    r = get(g, "/x")
    assert r.status == 200 and counters(r)[:2] == (3, 2), r.headers
    # So does another route name.
    g.reload(services(route_name="renamed", requests=3))
    r = get(g, "/x")
    assert r.status == 200 and counters(r)[:2] == (3, 2), r.headers
    # Dropping the policy drops the headers.
    g.reload([proxy_service([backend], routes=[{"name": "renamed", "paths": ["/x"]}])])
    r = get(g, "/x")
    assert r.status == 200 and r.header("X-RateLimit-Limit") is None


def test_custom_status_without_header(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[limited(requests=1, per="minute", status=503)])])
    r = get(g, "/x")
    assert r.status == 200 and r.header("ratelimit") is None and counters(r) == (1, 0, 60)
    r = get(g, "/x")
    assert_refused(r, status=503)
    assert counters(r)[:2] == (1, 0)


def test_refused_body_direct_response_and_upstream_counters(make_gateway, backend):
    g = make_gateway([
        proxy_service([backend], routes=[limited("p", ["/p"], requests=1, per="hour", burst=1, header="ratelimit")]),
        direct_service(routes=[dict(direct_route("d", ["/d"], body="hi\n"),
                                    policies={"local_rate_limit": {"requests": 1, "per": "hour"}})]),
    ])
    # The upstream's own counters and the configured header are replaced by the gateway's.
    r = get(g, "/p?hdr=X-RateLimit-Limit:999&hdr=ratelimit:1&hdr=X-RateLimit-Remaining:5")
    assert r.status == 200
    assert r.header_all("ratelimit") == ["2"] and counters(r)[:2] == (2, 1), r.headers
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("POST", "/p", body=b"x" * 5000).status == 200
        r = c.request("POST", "/p", body=b"y" * 5000)
        assert_refused(r)
        assert c.request("GET", "/p").status == 429  # the body was read and dropped
    assert [x.method for x in backend.snapshot()] == ["GET", "POST"]
    # Direct responses are counted too, and carry the headers.
    r = get(g, "/d")
    assert r.status == 200 and r.body == b"hi\n" and counters(r) == (1, 0, 3600)
    assert_refused(get(g, "/d"))


# ---------------------------------------------------------------------------------------------
# configuration errors

HEAD = """\
gateway:
  workers: 1
  http:
    listen: ["127.0.0.1:18080"]
services:
  - name: svc
    upstream:
      nodes: [{address: "127.0.0.1:18082"}]
    routes:
      - name: r
        paths: ["/x"]
        policies:
          local_rate_limit:
"""
LINE = HEAD.count("\n") + 1  # the first line under local_rate_limit

CONFIG_ERRORS = [
    # (lines under local_rate_limit, field under local_rate_limit ("" for itself), message regex,
    #  line offset from LINE, text the column points at)
    ("per: minute", ".requests", r"^is required$", 0, "per"),  # at the map
    ("requests: 3", ".per", r"^is required$", 0, "requests"),
    ("requests: 0\nper: minute", ".requests", r"must be between 1 and 1000000", 0, "0"),
    ("requests: many\nper: minute", ".requests", r"expected an integer, got 'many'", 0, "many"),
    ("requests: 3\nper: fortnight", ".per", r"unknown value 'fortnight' \(expected one of: second, minute, hour\)",
     1, "fortnight"),
    ("requests: 3\nper: minute\nburst: -1", ".burst", r"must be between 0 and 1000000", 2, "-1"),
    ("requests: 3\nper: minute\nstatus: 200", ".status", r"must be between 400 and 599", 2, "200"),
    ("requests: 3\nper: minute\nstatus: 600", ".status", r"must be between 400 and 599", 2, "600"),
    ("requests: 3\nper: minute\nheader: \"rate limit\"", ".header", r"invalid header name 'rate limit'", 2,
     "\"rate limit\""),
    ("requests: 3\nper: minute\nheader: X-RateLimit-Limit", ".header", r"is written by the gateway", 2,
     "X-RateLimit-Limit"),
    ("requests: 3\nper: minute\nheader: Connection", ".header", r"is written by the gateway", 2, "Connection"),
    ("requests: 3\nper: minute\nkey: cookie", ".key", r"expected 'ip' or 'header NAME'", 2, "cookie"),
    ("requests: 3\nper: minute\nkey: header", ".key", r"expected 'ip' or 'header NAME'", 2, "header"),
    ("requests: 3\nper: minute\nkey: \"header X:Y\"", ".key", r"invalid header name 'X:Y'", 2, "\"header X:Y\""),
    ("requests: 3\nper: minute\nmax_keys: 100", ".max_keys", r"only applies with 'key'", 2, "max_keys"),
    ("requests: 3\nper: minute\nkey: ip\nmax_keys: 0", ".max_keys", r"must be between 1 and 1000000", 3, "0"),
    ("requests: 3\nper: minute\nbrust: 5", ".brust", r"unknown key \(did you mean 'burst'\?\)", 2, "brust"),
    ("[3, minute]", "", r"expected a map", -1, "[3, minute]"),
]


def config_file(tmp_path, body):
    p = tmp_path / "rl.yaml"
    if body.startswith("["):
        text = HEAD.rstrip("\n") + " " + body + "\n"
    else:
        text = HEAD + "".join("            " + ln + "\n" for ln in body.splitlines())
    p.write_text(text)
    return p, text


@pytest.mark.parametrize("body,field,msg,line_off,col_at", CONFIG_ERRORS,
                         ids=["%d%s" % (i, c[1]) for i, c in enumerate(CONFIG_ERRORS)])
def test_config_errors(sluice_bin, tmp_path, body, field, msg, line_off, col_at):
    p, text = config_file(tmp_path, body)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (text, r.stdout, r.stderr)
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    hit = [e for e in errs if e[2] == POLICY + field and re.search(msg, e[3])]
    assert hit, "no error at %s matching %r in %r" % (POLICY + field, msg, errs)
    line, col = hit[0][0], hit[0][1]
    assert line == LINE + line_off, (hit, text)
    assert text.splitlines()[line - 1][col - 1:].startswith(col_at), (hit, text)


def test_every_error_reported(sluice_bin, tmp_path):
    p, text = config_file(tmp_path, "requests: 0\nper: week\nstatus: 99\nkey: nope")
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    got = {e[2] for e in helpers.parse_errors(p, r.stderr, ERR_RE)}
    assert {POLICY + f for f in (".requests", ".per", ".status", ".key")} <= got, r.stderr


def test_valid_configuration(sluice_bin, tmp_path):
    p, text = config_file(tmp_path, "requests: 3\nper: minute\nburst: 5\nstatus: 429\nheader: ratelimit\n"
                                    "key: \"header X-Api-Key\"\nmax_keys: 500")
    r = validate(sluice_bin, p)
    assert r.returncode == 0, (text, r.stderr)
