"""Per-route HTTP policies (issue 4): path_rewrite, request_headers, response_headers and
timeout, end to end against real backends, their configuration errors from `sluice validate`
(FILE:LINE:COL: path: message) and their replacement on SIGHUP."""
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import helpers
from helpers import get, validate, RawConn, proxy_service, to_yaml

# the path may hold a header name with a space in it (an "invalid header name" error), never a ':'
ERR_RE = helpers.ERR_RE
ROUTE = "services[0].routes[0].policies"


# ---------------------------------------------------------------------------------------------
# helpers (local to this file)


def upstream_target(g, target, **kw):
    """The request target the backend saw for target (from its JSON echo)."""
    r = get(g, target, **kw)
    assert r.status == 200, r
    return r.json()["target"]


def vals(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def last_request(backend, n):
    return backend.wait_requests(n)[n - 1]


# The error code of a route timeout (the timeout policy), as opposed to upstream_timeout.
ROUTE_TIMEOUT_CODES = ("route_timeout",)


def assert_route_timeout(r):
    assert r.status == 504, r
    assert (r.header("content-type") or "").startswith("application/json"), r.headers
    body = r.json()
    assert body["status"] == 504 and set(body) == {"error", "status"}, body
    assert body["error"] in ROUTE_TIMEOUT_CODES, body


def route(name, paths, **policies):
    return {"name": name, "paths": paths, "policies": policies}


def parse_errors(path, stderr):
    return helpers.parse_errors(path, stderr, ERR_RE)


# ---------------------------------------------------------------------------------------------
# 1, 2. path_rewrite


def test_path_rewrite_prefix(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("users", ["/users", "/users/*", "/other"], path_rewrite={"prefix": "/users", "replace": "/v1/users"}),
        route("old", ["/old", "/old/*"], path_rewrite={"prefix": "/old", "replace": "/"}),
    ])])
    assert upstream_target(g, "/users") == "/v1/users"
    assert upstream_target(g, "/users/7?x=1") == "/v1/users/7?x=1"
    assert upstream_target(g, "/users/7/orders?x=1&y=a%20b") == "/v1/users/7/orders?x=1&y=a%20b"
    # percent-encoding in the path is forwarded as the client sent it
    assert upstream_target(g, "/users/a%3fb%20c") == "/v1/users/a%3Fb%20c"
    # a path on the same route but not under the prefix goes unchanged, query included
    assert upstream_target(g, "/other") == "/other"
    assert upstream_target(g, "/other?users=1") == "/other?users=1"
    # replace "/": no "//" in the result
    assert upstream_target(g, "/old/x?q=1") == "/x?q=1"
    assert upstream_target(g, "/old") == "/"
    # the access log keeps the client's path
    e = g.wait_log(lambda e: e["path"] == "/users/7?x=1")
    assert e["status"] == 200 and e["route"] == "users"


def test_path_rewrite_regex(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("api", ["/api/*"], path_rewrite={"regex": r"^/api/(\w+)/(\d+)$", "replace": "/v2/$2/$1"}),
        route("all", ["/v/*"], path_rewrite={"regex": "^/v/(.*)$", "replace": "/version/$1"}),
    ])])
    assert upstream_target(g, "/api/user/42") == "/v2/42/user"
    assert upstream_target(g, "/api/user/42?x=1&y=2") == "/v2/42/user?x=1&y=2"
    # not matching (second segment not digits, or one segment only): unchanged
    assert upstream_target(g, "/api/user/abc?x=1") == "/api/user/abc?x=1"
    assert upstream_target(g, "/api/user") == "/api/user"
    # the query string is not part of the subject: a "$" anchor matches before the "?"
    assert upstream_target(g, "/v/a/b?c=/v/d") == "/version/a/b?c=/v/d"


def test_path_rewrite_long_replacement_short_path(make_gateway, backend):
    """A short path with a 1500-byte replacement is still rewritten (regex and prefix forms)."""
    g = make_gateway([proxy_service([backend], routes=[
        route("big", ["/big/*"], path_rewrite={"regex": "^/big/(.*)$", "replace": "/" + "r" * 1500 + "/$1"}),
        route("pre", ["/pre/*"], path_rewrite={"prefix": "/pre", "replace": "/" + "p" * 1500}),
    ])])
    assert upstream_target(g, "/big/a?q=1") == "/" + "r" * 1500 + "/a?q=1"
    assert upstream_target(g, "/pre/a?q=1") == "/" + "p" * 1500 + "/a?q=1"


def test_path_rewrite_result_five_times_the_path(make_gateway, backend):
    """"$1" five times over a 2000-byte path (a 5x expansion, ~10 KB) is still rewritten."""
    g = make_gateway([proxy_service([backend], routes=[
        route("x5", ["/x5/*"], path_rewrite={"regex": "^/x5/(.*)$", "replace": "/$1$1$1$1$1"}),
    ])])
    seg = "s" * 2000
    assert upstream_target(g, "/x5/" + seg + "?q=1") == "/" + seg * 5 + "?q=1"


# ---------------------------------------------------------------------------------------------
# 3. request_headers


def test_request_headers_set_add_remove(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("r", ["/*"], request_headers={
            "set": {"X-Env": "prod", "Host": "upstream.internal", "X-Forwarded-Proto": "https", "X-Real-IP": "10.9.9.9"},
            "add": {"X-Tag": "a"},
            "remove": ["X-Debug"],
        }),
    ])])
    # client sends a differently-cased X-Env, its own X-Tag, X-Debug and a spoofed X-Forwarded-Proto
    r = get(g, "/h?x=1", host="client.example:8080", headers=[
        ("x-env", "dev"), ("X-Tag", "client"), ("X-Debug", "1"), ("x-debug", "2"), ("X-Keep", "k"),
        ("X-Forwarded-Proto", "gopher")])
    assert r.status == 200, r
    rec = last_request(backend, 1)
    assert vals(rec.headers, "x-env") == ["prod"], rec.headers
    assert vals(rec.headers, "x-tag") == ["client", "a"], rec.headers
    assert vals(rec.headers, "x-debug") == [], rec.headers
    assert vals(rec.headers, "x-keep") == ["k"]
    assert vals(rec.headers, "host") == ["upstream.internal"], rec.headers
    assert vals(rec.headers, "x-forwarded-proto") == ["https"], rec.headers
    assert vals(rec.headers, "x-real-ip") == ["10.9.9.9"], rec.headers
    # the gateway's own headers not named by the policy are still there
    assert vals(rec.headers, "x-forwarded-for") == ["127.0.0.1"]
    assert vals(rec.headers, "x-forwarded-host") == ["client.example:8080"]
    assert rec.target == "/h?x=1"

    # absent on the client side: set adds, add adds
    r = get(g, "/h2")
    assert r.status == 200
    rec = last_request(backend, 2)
    assert vals(rec.headers, "x-env") == ["prod"]
    assert vals(rec.headers, "x-tag") == ["a"]
    assert vals(rec.headers, "host") == ["upstream.internal"]

    # absolute-form target and HTTP/1.0 without Host: still exactly the set Host
    with RawConn("127.0.0.1", g.port) as c:
        c.send("GET http://abs.example/abs HTTP/1.1\r\nHost: abs.example\r\n\r\n")
        assert c.read_response().status == 200
    rec = last_request(backend, 3)
    assert rec.path == "/abs"
    assert vals(rec.headers, "host") == ["upstream.internal"], rec.headers
    with RawConn("127.0.0.1", g.port) as c:
        c.send("GET /ten HTTP/1.0\r\n\r\n")
        assert c.read_response().status == 200
    rec = last_request(backend, 4)
    assert vals(rec.headers, "host") == ["upstream.internal"], rec.headers


def test_request_headers_with_body_and_keepalive(make_gateway, backend):
    """Edited heads keep the framing right: a body after them arrives whole, and a second
    request on the same client connection gets the same edits."""
    g = make_gateway([proxy_service([backend], routes=[
        route("r", ["/*"], request_headers={"set": {"X-Env": "prod"}, "add": {"X-Tag": "a"}, "remove": ["X-Debug"]}),
    ])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("POST", "/post", headers=[("X-Debug", "1")], body=b"hello world")
        assert r.status == 200 and r.json()["body"] == "hello world"
        r = c.request("POST", "/post2", headers=[("Transfer-Encoding", "chunked"), ("X-Env", "dev")],
                      body=b"5\r\nhello\r\n0\r\n\r\n")
        assert r.status == 200 and r.json()["body"] == "hello"
    recs = backend.wait_requests(2)
    for rec in recs:
        assert vals(rec.headers, "x-env") == ["prod"]
        assert vals(rec.headers, "x-tag") == ["a"]
        assert vals(rec.headers, "x-debug") == []
        assert rec.complete


def test_request_headers_remove_host_still_sends_host(sluice_bin, make_gateway, backend, tmp_path):
    """HTTP/1.1 requires a Host header: `remove: [Host]` must be refused by the loader, or the
    upstream must still get one."""
    services = [proxy_service([backend], routes=[route("r", ["/*"], request_headers={"remove": ["Host"]})])]
    p = tmp_path / "rmhost.yaml"
    p.write_text(to_yaml({"gateway": {"http": {"listen": ["127.0.0.1:18080"]}}, "services": services}))
    if validate(sluice_bin, p).returncode == 1:
        return
    g = make_gateway(services)
    assert get(g, "/h").status == 200
    rec = last_request(backend, 1)
    assert len(vals(rec.headers, "host")) == 1, rec.headers


# ---------------------------------------------------------------------------------------------
# 4. response_headers


def _send_headers_handler(extra):
    def handler(b, s, r, rec):
        b.read_body(r, rec)
        body = b"payload"
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)
        head += "".join("%s: %s\r\n" % kv for kv in extra) + "\r\n"
        s.sendall(head.encode("latin-1") + body)
        return True
    return handler


def test_response_headers_set_remove(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("r", ["/*"], response_headers={"set": {"X-Frame-Options": "DENY", "X-Added": "yes"},
                                             "add": {"X-Via": "sluice"}, "remove": ["Server"]}),
    ])])
    backend.on("/hdrs", _send_headers_handler([
        ("Server", "pyback/1.0"), ("X-Frame-Options", "SAMEORIGIN"), ("x-frame-options", "ALLOW-FROM x"),
        ("server", "again"), ("X-Via", "origin"), ("X-Other", "o")]))
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/hdrs")
        assert r.status == 200 and r.body == b"payload"
        assert r.header_all("x-frame-options") == ["DENY"], r.headers
        assert r.header_all("server") == [], r.headers
        assert r.header_all("x-added") == ["yes"]
        assert r.header_all("x-via") == ["origin", "sluice"]
        assert r.header_all("x-other") == ["o"]
        assert r.header_all("content-length") == ["7"]
        # the default echo response: headers absent upstream are added; keep-alive still works
        r = c.request("GET", "/echo?chunked=1")
        assert r.status == 200 and r.json()["path"] == "/echo"
        assert r.header_all("x-frame-options") == ["DENY"]
        assert r.header_all("x-added") == ["yes"]
        assert r.header_all("x-via") == ["sluice"]
        assert r.header("x-backend") == "b1"
        r = c.request("HEAD", "/echo")
        assert r.status == 200 and r.header_all("x-frame-options") == ["DENY"]


# ---------------------------------------------------------------------------------------------
# 5. timeout


@pytest.fixture
def gw_timeout(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("t1", ["/t1/*"], timeout=1),
        route("t500", ["/t500/*"], timeout="500ms"),
        route("t50", ["/t50/*"], timeout="50ms"),
        route("none", ["/none/*"]),
    ], upstream={"timeouts": {"connect": "1s", "send": "10s", "read": "10s"}})])
    return g, backend


def test_timeout_policy_504(gw_timeout):
    g, backend = gw_timeout
    for path, lower_ms in (("/t1/slow?delay=3", 900), ("/t500/slow?delay=3", 450)):
        t0 = time.monotonic()
        r = get(g, path, timeout=15)
        elapsed = time.monotonic() - t0
        assert_route_timeout(r)
        assert elapsed < 2.8, "route timeout did not fire before the 3s backend answered (%.2fs)" % elapsed
        e = g.wait_log(lambda e, p=path: e["path"] == p)
        assert e["status"] == 504 and e["error"] in ROUTE_TIMEOUT_CODES, e
        assert e["duration_ms"] >= lower_ms, "gave up before the route timeout: %r" % e
    # fast requests on the same routes are fine, and do not get the late answers of the slow ones
    for path in ("/t1/fast", "/t500/fast", "/t1/fast2?x=1"):
        r = get(g, path)
        assert r.status == 200 and r.json()["target"] == path, r


def test_timeout_policy_keepalive_client_connection(gw_timeout):
    """After a route timeout the client connection carries on (the upstream's is the one
    closed); requests after it, on it and on new connections, get their own answers."""
    g, backend = gw_timeout
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        r = c.request("GET", "/t500/slow?delay=2")
        assert_route_timeout(r)
        assert r.header("connection") is None, r
        r = c.request("GET", "/t500/next")
        assert r.status == 200 and r.json()["target"] == "/t500/next"
    for i in range(4):
        r = get(g, "/t500/again%d" % i)
        assert r.status == 200 and r.json()["target"] == "/t500/again%d" % i


def test_route_timeout_is_always_labelled_route_timeout(gw_timeout):
    """Every request cut by the route timeout says route_timeout, in the body and in the log.
    (96 requests, 4 at a time, on a 50ms route timeout, so that the intermittent mislabelling
    shows reliably.)"""
    g, backend = gw_timeout
    paths = ["/t50/many%d?delay=1" % i for i in range(96)]

    def one(path):
        with RawConn("127.0.0.1", g.port, timeout=15) as c:
            r = c.request("GET", path)
        assert r.status == 504, r
        return r.json()["error"]

    with ThreadPoolExecutor(4) as ex:
        codes = list(ex.map(one, paths))
    bad = [(p, c) for p, c in zip(paths, codes) if c != "route_timeout"]
    assert not bad, "%d of %d route timeouts mislabelled: %r" % (len(bad), len(paths), bad[:5])
    logged = [g.wait_log(lambda e, p=p: e["path"] == p)["error"] for p in paths]
    assert logged == ["route_timeout"] * len(paths), logged


def test_no_timeout_policy_uses_upstream_read_timeout(gw_timeout):
    g, backend = gw_timeout
    r = get(g, "/none/slowish?delay=1.2", timeout=15)
    assert r.status == 200 and r.json()["path"] == "/none/slowish"


def test_timeout_policy_slow_request_body(gw_timeout):
    """The route timeout covers the whole request: a client that stops sending its body
    half-way gets the 504 route_timeout when the timeout passes."""
    g, backend = gw_timeout
    t0 = time.monotonic()
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        c.send("POST /t1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        r = c.read_response()
    elapsed = time.monotonic() - t0
    assert_route_timeout(r)
    assert elapsed < 2.8, elapsed
    e = g.wait_log(lambda e: e["path"] == "/t1/upload")
    assert e["error"] in ROUTE_TIMEOUT_CODES, e


def test_timeout_policy_after_response_started(gw_timeout):
    """Past the route timeout with the response head already sent: the connection is cut
    (no 504 can be sent any more) and the access log says route_timeout."""
    g, backend = gw_timeout

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(3)
        try:
            s.sendall(b"world")
        except OSError:
            pass
        return False

    backend.on("/t1/partial", handler)
    t0 = time.monotonic()
    with RawConn("127.0.0.1", g.port, timeout=15) as c:
        c.send("GET /t1/partial HTTP/1.1\r\nHost: x\r\n\r\n")
        version, status, reason, headers, head = c.read_head()
        assert status == 200
        data = c.read_to_close()
    elapsed = time.monotonic() - t0
    assert data == b"hello", data
    assert elapsed < 2.8, "connection not cut at the route timeout (%.2fs)" % elapsed
    e = g.wait_log(lambda e: e["path"] == "/t1/partial")
    assert e["error"] in ROUTE_TIMEOUT_CODES, e


# ---------------------------------------------------------------------------------------------
# 6. all four policies on one route


def test_all_policies_on_one_route(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("users", ["/users", "/users/*"],
              path_rewrite={"prefix": "/users", "replace": "/v1/users"},
              timeout="1s",
              request_headers={"set": {"X-Env": "prod"}, "add": {"X-Tag": "blue"}, "remove": ["X-Debug"]},
              response_headers={"set": {"X-Frame-Options": "DENY"}, "remove": ["X-Backend"]}),
    ], upstream={"timeouts": {"connect": "1s", "send": "10s", "read": "10s"}})])
    r = get(g, "/users/7?x=1", headers=[("X-Env", "dev"), ("X-Debug", "on"), ("X-Tag", "red")])
    assert r.status == 200, r
    assert r.json()["target"] == "/v1/users/7?x=1"
    assert r.header_all("x-frame-options") == ["DENY"]
    assert r.header_all("x-backend") == [], r.headers
    rec = last_request(backend, 1)
    assert vals(rec.headers, "x-env") == ["prod"]
    assert vals(rec.headers, "x-tag") == ["red", "blue"]
    assert vals(rec.headers, "x-debug") == []

    t0 = time.monotonic()
    r = get(g, "/users/slow?delay=3", timeout=15)
    assert_route_timeout(r)
    assert time.monotonic() - t0 < 2.8
    rec = last_request(backend, 2)
    assert rec.target == "/v1/users/slow?delay=3"
    e = g.wait_log(lambda e: e["path"] == "/users/slow?delay=3")
    assert e["error"] in ROUTE_TIMEOUT_CODES and e["route"] == "users"


# ---------------------------------------------------------------------------------------------
# 7. configuration errors

HEAD_LINES = """\
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
"""
FIRST = HEAD_LINES.count("\n") + 1  # line number of the first policy line


def policies_file(tmp_path, body, name="bad.yaml"):
    """Writes a config whose route policies are `body` (already indented 10 spaces per line)."""
    p = tmp_path / name
    text = HEAD_LINES + "".join("          " + ln + "\n" for ln in body.splitlines())
    p.write_text(text)
    return p, text


def check_error(sluice_bin, tmp_path, body, path, msg_re, line=None, col_of=None):
    p, text = policies_file(tmp_path, body)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (body, r.stdout, r.stderr)
    errs = parse_errors(p, r.stderr)
    hit = [e for e in errs if e[2] == path and re.search(msg_re, e[3])]
    assert hit, "no error at %s matching %r in %r" % (path, msg_re, errs)
    if line is not None:
        assert hit[0][0] == line, (hit, text)
    if col_of is not None:
        ln = text.splitlines()[hit[0][0] - 1]
        cols = [ln.index(s) + 1 for s in col_of if s in ln]
        assert hit[0][1] in cols, (hit, ln, col_of)
    return errs


CONFIG_ERRORS = [
    # (policies body, error path under ROUTE, message regex, line offset from FIRST or None, column anchors)
    ("path_rewrite: {replace: /v1}", ".path_rewrite", r"exactly one of 'prefix' and 'regex'", 0, None),
    ("path_rewrite: {prefix: /a, regex: \"^/a\", replace: /v1}", ".path_rewrite",
     r"exactly one of 'prefix' and 'regex'", 0, None),
    ("path_rewrite:\n  prefix: /a\n  replace: v1/a", ".path_rewrite.replace", r"must start with '/'", 2,
     ("replace", "v1/a")),
    ("path_rewrite:\n  regex: \"^/(a\"\n  replace: /v1", ".path_rewrite.regex",
     r"invalid regular expression at offset 4\b", 1, ("regex", '"^/(a"')),
    ("path_rewrite: {regex: \"[z-a]\", replace: /v1}", ".path_rewrite.regex",
     r"invalid regular expression at offset \d+", 0, None),
    ("timeout: 0", ".timeout", r"whole seconds", 0, ("timeout", "0")),
    ("timeout: -1", ".timeout", r"whole seconds", 0, ("timeout", "-1")),
    ("timeout: abc", ".timeout", r"whole seconds", 0, ("timeout", "abc")),
    ("timeout: 0s", ".timeout", r"whole seconds", 0, None),
    ("request_headers:\n  set: {\"Bad Name\": x}", ".request_headers.set.Bad Name", r"invalid header name", 1,
     ('"Bad Name"', "Bad Name")),
    ("request_headers: {add: {\"X(y)\": x}}", ".request_headers.add.X(y)", r"invalid header name", 0, None),
    ("response_headers: {remove: [\"Bad:Name\"]}", ".response_headers.remove[0]", r"invalid header name", 0, None),
    ("request_headers: {set: {Content-Length: \"5\"}}", ".request_headers.set.Content-Length",
     r"set by the gateway", 0, ("Content-Length",)),
    ("response_headers: {set: {content-length: \"5\"}}", ".response_headers.set.content-length",
     r"set by the gateway", 0, None),
    ("request_headers: {set: {X-A: \"a\\r\\nX-B: b\"}}", ".request_headers.set.X-A", r"line breaks", 0, None),
    ("path_rewrit: {prefix: /a, replace: /b}", ".path_rewrit", r"^unknown policy \(did you mean 'path_rewrite'\?\); valid policies: [a-z_, ]+$",
     0, ("path_rewrit",)),
    ("timeuot: 5s", ".timeuot", r"^unknown policy \(did you mean 'timeout'\?\); valid policies: [a-z_, ]+$", 0, ("timeuot",)),
    ("request_header: {}", ".request_header", r"^unknown policy \(did you mean 'request_headers'\?\); valid policies: [a-z_, ]+$", 0, None),
]
for _h in ("Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"):
    CONFIG_ERRORS.append(("request_headers: {set: {%s: x}}" % _h, ".request_headers.set." + _h, r".", 0, (_h,)))
    CONFIG_ERRORS.append(("response_headers: {add: {%s: x}}" % _h, ".response_headers.add." + _h, r".", 0, (_h,)))
    CONFIG_ERRORS.append(("request_headers: {remove: [%s]}" % _h, ".request_headers.remove[0]", r".", 0, (_h,)))


@pytest.mark.parametrize("body,path,msg,line_off,col_of", CONFIG_ERRORS,
                         ids=["%d-%s" % (i, c[1].lstrip(".")) for i, c in enumerate(CONFIG_ERRORS)])
def test_policy_config_errors(sluice_bin, tmp_path, body, path, msg, line_off, col_of):
    check_error(sluice_bin, tmp_path, body, ROUTE + path, msg,
                line=None if line_off is None else FIRST + line_off, col_of=col_of)


def test_policy_config_errors_all_reported(sluice_bin, tmp_path):
    body = "\n".join([
        "path_rewrite: {prefix: /a, replace: nope}",
        "timeout: abc",
        "request_headers: {set: {Connection: x}}",
        "retry: {attempts: 3}",
        "colour: red",
    ])
    p, _ = policies_file(tmp_path, body)
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = parse_errors(p, r.stderr)
    got = {(e[2], e[0]) for e in errs}
    for sub, off in ((".path_rewrite.replace", 0), (".timeout", 1), (".request_headers.set.Connection", 2),
                     (".retry.on", 3), (".colour", 4)):
        assert (ROUTE + sub, FIRST + off) in got, errs


def test_valid_policies_validate(sluice_bin, tmp_path):
    body = "\n".join([
        "path_rewrite: {regex: \"^/api/(\\\\w+)/(\\\\d+)$\", replace: \"/v2/$2/$1\"}",
        "timeout: 5",
        "request_headers: {set: {X-Env: prod, Host: up.internal}, add: {X-Tag: a}, remove: [X-Debug]}",
        "response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}",
    ])
    p, text = policies_file(tmp_path, body, name="good.yaml")
    r = validate(sluice_bin, p)
    assert r.returncode == 0, (text, r.stdout, r.stderr)


# ---------------------------------------------------------------------------------------------
# 8. reload


def test_reload_changes_path_rewrite(make_gateway, backend):
    def services(replace, **more):
        pol = {"path_rewrite": {"prefix": "/users", "replace": replace}} if replace else {}
        pol.update(more)
        return [proxy_service([backend], routes=[{"name": "users", "paths": ["/users", "/users/*"], "policies": pol}])]

    g = make_gateway(services("/v1/users"))
    with RawConn("127.0.0.1", g.port) as keep:  # a client connection opened before the reloads
        assert keep.request("GET", "/users/7?x=1").json()["target"] == "/v1/users/7?x=1"
        g.reload(services("/v2/users"))
        assert upstream_target(g, "/users/7?x=1") == "/v2/users/7?x=1"
        assert keep.request("GET", "/users/8").json()["target"] == "/v2/users/8"

        # an invalid regex in a reload is refused; the running rule stays
        bad = services(None, path_rewrite={"regex": "^/users(", "replace": "/v3"})
        g.reload(bad, expect="failure")
        assert upstream_target(g, "/users/9") == "/v2/users/9"
        assert re.search(re.escape(g.config_path) + r":\d+:\d+: services\[0\]\.routes\[0\]\.policies\.path_rewrite\.regex: "
                         r"invalid regular expression at offset \d+", g.stderr_text()), g.stderr_text()[-2000:]

        # policies added and dropped by reloads
        g.reload(services("/v2/users", request_headers={"set": {"X-Gen": "3"}}))
        assert upstream_target(g, "/users") == "/v2/users"
        assert vals(backend.snapshot()[-1].headers, "x-gen") == ["3"]
        g.reload(services(None))
        assert keep.request("GET", "/users/10").json()["target"] == "/users/10"
        assert vals(backend.snapshot()[-1].headers, "x-gen") == []
