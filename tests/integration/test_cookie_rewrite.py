"""cookie_rewrite: Domain, Path, Secure and SameSite of the upstream's Set-Cookie headers
rewritten by cookie name, everything else kept byte for byte; its configuration errors from
`sluice validate` (FILE:LINE:COL: path: message)."""
import re
import urllib.parse

import pytest
import requests

import helpers
from helpers import RawConn, build_request, proxy_service, validate

ERR_RE = helpers.ERR_RE
EXPIRES = "Expires=Wed, 21 Oct 2037 07:28:00 GMT"


def with_cookies(path, cookies, **query):
    """A target that makes the backend answer with these Set-Cookie values, in order."""
    q = [("hdr", "Set-Cookie:" + c) for c in cookies] + list(query.items())
    return path + "?" + urllib.parse.urlencode(q)


def set_cookies(g, target, headers=()):
    """The Set-Cookie values the client got, in order, exactly as sent (and the response)."""
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", target, headers=list(headers))
    assert r.status == 200, r
    return r.header_all("set-cookie"), r


def route(name, paths, **policies):
    return {"name": name, "paths": paths, "policies": policies}


RULES = [
    {"name": "session", "domain": "example.com", "path": "/", "secure": True, "samesite": "strict"},
    {"name": "pref", "secure": False},
    {"name": "lang", "samesite": "Lax"},
    {"name": "track", "domain": ".example.org", "path": "/t"},
]

# (what the upstream sends, what the client must get)
CASES = [
    ("session=abc123; Domain=internal.local; Path=/app; " + EXPIRES + "; HttpOnly; SameSite=Lax",
     "session=abc123; Domain=example.com; Path=/; " + EXPIRES + "; HttpOnly; SameSite=Strict; Secure"),
    ("pref=dark; Secure; Max-Age=60", "pref=dark; Max-Age=60"),
    ("lang=en", "lang=en; SameSite=Lax"),
    ("track=1; path=/x; Partitioned; secure", "track=1; Path=/t; Partitioned; secure; Domain=.example.org"),
    # attribute names in any case, duplicates folded into the first
    ("session=2;DOMAIN=a.local;  samesite=none; domain=b.local",
     "session=2;Domain=example.com;  SameSite=Strict; Path=/; Secure"),
    # untouched: another cookie, a name in another case, not a cookie at all
    ("other=1; Domain=internal.local; Path=/app; " + EXPIRES, None),
    ("Session=CASE; Path=/x", None),
    ("garbage; Domain=internal.local", None),
]


def test_each_attribute_and_untouched_cookies(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        route("rw", ["/rw/*"], cookie_rewrite=RULES),
        {"name": "plain", "paths": ["/plain/*"]},
    ])])
    sent = [c for c, _ in CASES]
    got, r = set_cookies(g, with_cookies("/rw/x", sent))
    assert got == [want or c for c, want in CASES], r.raw_head
    assert r.header("x-backend") == "b1"
    # the same cookies on a route without the policy pass as they came
    got, _ = set_cookies(g, with_cookies("/plain/x", sent))
    assert got == sent
    # and the upstream saw the client's Cookie header unchanged (the policy is response-only)
    set_cookies(g, with_cookies("/rw/y", ["lang=en"]), headers=[("Cookie", "session=abc; lang=en")])
    assert backend.snapshot()[-1].header_all("cookie") == ["session=abc; lang=en"]


def test_with_requests_and_keepalive(make_gateway, backend):
    """Through `requests` on one kept-alive connection, chunked and Content-Length responses."""
    g = make_gateway([proxy_service([backend], routes=[route("rw", ["/*"], cookie_rewrite=RULES)])])
    with requests.Session() as s:
        for i, extra in enumerate(({}, {"chunked": "1"}, {})):
            r = s.get(g.url + with_cookies("/k%d" % i, ["session=%d; Path=/a" % i, "x=%d" % i], **extra))
            assert r.status_code == 200
            assert r.raw.headers.getlist("Set-Cookie") == [
                "session=%d; Path=/; Domain=example.com; Secure; SameSite=Strict" % i, "x=%d" % i]
            assert r.json()["target"].startswith("/k%d?" % i)


def test_many_headers_and_long_values(make_gateway, backend):
    big = "v" * 16000
    cookies = ["session=%d; Path=/p%d; HttpOnly" % (i, i) for i in range(150)]
    cookies += ["session=%s; %s; Domain=x.local" % (big, EXPIRES), "pref=%s; Secure" % big]

    def handler(b, s, r, rec):
        b.read_body(r, rec)
        head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
        head += "".join("Set-Cookie: %s\r\n" % c for c in cookies)
        s.sendall((head + "\r\n").encode() + b"ok")
        return True

    backend.on("/many", handler)
    g = make_gateway([proxy_service([backend], routes=[route("rw", ["/*"], cookie_rewrite=RULES)])])
    with RawConn("127.0.0.1", g.port) as c:
        for _ in range(2):  # and again on the same connection
            r = c.request("GET", "/many")
            assert r.status == 200 and r.body == b"ok"
            got = r.header_all("set-cookie")
            assert len(got) == 152
            assert got[:150] == ["session=%d; Path=/; HttpOnly; Domain=example.com; Secure; SameSite=Strict" % i
                                 for i in range(150)]
            assert got[150] == "session=%s; %s; Domain=example.com; Path=/; Secure; SameSite=Strict" % (big, EXPIRES)
            assert got[151] == "pref=%s" % big


def test_with_response_headers(make_gateway, backend):
    """response_headers runs first: what it removes is gone, what it adds is sent as written."""
    g = make_gateway([proxy_service([backend], routes=[
        route("both", ["/both/*"], cookie_rewrite=RULES,
              response_headers={"set": {"X-Frame-Options": "DENY"}, "remove": ["X-Backend"],
                                "add": {"Set-Cookie": "session=cfg; Path=/cfg"}}),
        route("drop", ["/drop/*"], cookie_rewrite=RULES, response_headers={"remove": ["Set-Cookie"]}),
    ])])
    got, r = set_cookies(g, with_cookies("/both/x", ["session=up; Path=/up", "lang=fr"]))
    assert got == ["session=up; Path=/; Domain=example.com; Secure; SameSite=Strict", "lang=fr; SameSite=Lax",
                   "session=cfg; Path=/cfg"]
    assert r.header_all("x-frame-options") == ["DENY"]
    assert r.header("x-backend") is None
    got, r = set_cookies(g, with_cookies("/drop/x", ["session=up", "lang=fr"]))
    assert got == []


def test_sticky_cookie_of_the_gateway_untouched(make_gateway, make_backend):
    bs = [make_backend("a"), make_backend("b")]
    rules = [{"name": "sid", "domain": "example.com", "secure": True, "samesite": "None"}]
    g = make_gateway([proxy_service(bs, routes=[route("rw", ["/*"], cookie_rewrite=rules)],
                                    upstream={"balance": "cookie", "cookie": {"name": "sid", "ttl": "1h"}})])
    with RawConn("127.0.0.1", g.port) as c:
        c.send(build_request("GET", with_cookies("/s", ["sid=from-upstream; Path=/u"])))
        r = c.read_response()
    got = r.header_all("set-cookie")
    assert len(got) == 2, r
    # the upstream's own cookie of that name is rewritten...
    assert got[0] == "sid=from-upstream; Path=/u; Domain=example.com; Secure; SameSite=None"
    # ...the one the gateway issues for stickiness is not
    assert re.match(r"^sid=[^;]+; Path=/; Max-Age=3600; HttpOnly$", got[1]), got


def test_reload_changes_rules(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[route("rw", ["/*"], cookie_rewrite=RULES)])])
    got, _ = set_cookies(g, with_cookies("/a", ["pref=1; Secure", "new=1"]))
    assert got == ["pref=1", "new=1"]
    g.reload(services=[proxy_service([backend], routes=[
        route("rw", ["/*"], cookie_rewrite=[{"name": "new", "path": "/n"}])])])
    got, _ = set_cookies(g, with_cookies("/a", ["pref=1; Secure", "new=1"]))
    assert got == ["pref=1; Secure", "new=1; Path=/n"]
    # a bad rule is refused and the running rules stay
    g.reload(services=[proxy_service([backend], routes=[
        route("rw", ["/*"], cookie_rewrite=[{"name": "new", "samesite": "None"}])])], expect="failure")
    got, _ = set_cookies(g, with_cookies("/a", ["new=2"]))
    assert got == ["new=2; Path=/n"]


# ---------------------------------------------------------------------------------------------
# configuration errors

HEAD = """\
services:
  - name: svc
    upstream:
      nodes: [{address: "127.0.0.1:18082"}]
    routes:
      - name: r
        paths: ["/x"]
        policies:
          cookie_rewrite:
"""
FIRST = HEAD.count("\n") + 1  # line of the first rule
CR = "services[0].routes[0].policies.cookie_rewrite"

# (rules, indented under cookie_rewrite; error path under CR; message regex; line offset from FIRST; text the
# column points at)
CONFIG_ERRORS = [
    ("- {name: s, samesite: None}", "[0].samesite",
     r"^SameSite=None needs 'secure: true' in the same rule", 0, "None"),
    ("- name: s\n  secure: false\n  samesite: none", "[0].samesite", r"^SameSite=None needs 'secure: true'", 2, "none"),
    ("- {name: s, samesite: Loose}", "[0].samesite",
     r"^unknown value 'Loose' \(expected one of: Strict, Lax, None\)$", 0, "Loose"),
    ("- {name: s, secure: true}\n- domain: example.com\n  path: /", "[1].name", r"^is required$", 1, "domain"),
    ("- {name: a, secure: true}\n- {name: b, path: /}\n- {name: a, path: /}", "[2].name",
     r"^duplicate cookie name 'a' \(first at line %d\)$" % FIRST, 2, "a,"),
    ("- {name: s, path: app}", "[0].path", r"^must start with '/' and contain no ';' or control characters$", 0,
     "app"),
    ("- {name: s, path: \"/a;b\"}", "[0].path", r"^must start with '/'", 0, '"/a;b"'),
    ("- {name: s, path: \"/a\\tb\"}", "[0].path", r"^must start with '/'", 0, None),
    ("- {name: s, domain: \"example.com; Secure\"}", "[0].domain", r"^must be a domain name", 0, '"example.com;'),
    ("- {name: s, domain: \"a b.com\"}", "[0].domain", r"^must be a domain name", 0, None),
    ("- {name: \"se;ss\", secure: true}", "[0].name", r"^must be a cookie name token", 0, '"se;ss"'),
    ("- {name: s, secure: sometimes}", "[0].secure", r"^expected a boolean", 0, "sometimes"),
    ("- {name: s, secure: true, samesit: Lax}", "[0].samesit", r"^unknown key \(did you mean 'samesite'\?\)$", 0,
     "samesit"),
    ("- {name: s}", "[0]", r"^needs at least one of 'domain', 'path', 'secure', 'samesite'$", 0, "{name"),
    ("- session", "[0]", r"^expected a map with 'name'", 0, "session"),
    ("  {name: s, secure: true}", "", r"^expected a list, got a map$", 0, "{name"),
]


def rules_file(tmp_path, body, name="bad.yaml"):
    p = tmp_path / name
    text = HEAD + "".join("            " + ln + "\n" for ln in body.splitlines())
    p.write_text(text)
    return p, text


@pytest.mark.parametrize("body,path,msg,line_off,col_at", CONFIG_ERRORS,
                         ids=["%d-%s" % (i, c[1] or "list") for i, c in enumerate(CONFIG_ERRORS)])
def test_config_errors(sluice_bin, tmp_path, body, path, msg, line_off, col_at):
    p, text = rules_file(tmp_path, body)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (text, r.stdout, r.stderr)
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    hit = [e for e in errs if e[2] == CR + path and re.search(msg, e[3])]
    assert hit, "no error at %s matching %r in %r" % (CR + path, msg, errs)
    line, col = hit[0][0], hit[0][1]
    assert line == FIRST + line_off, (hit, text)
    if col_at is not None:
        assert text.splitlines()[line - 1].index(col_at) + 1 == col, (hit, text)


def test_config_errors_all_reported(sluice_bin, tmp_path):
    body = "\n".join([
        "- {name: a, samesite: None}",
        "- {name: b, path: nope}",
        "- {name: a, secure: true}",
        "- {domain: example.com}",
    ])
    p, _ = rules_file(tmp_path, body)
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    got = {(e[2], e[0]) for e in helpers.parse_errors(p, r.stderr, ERR_RE)}
    assert got == {(CR + "[0].samesite", FIRST), (CR + "[1].path", FIRST + 1), (CR + "[2].name", FIRST + 2),
                   (CR + "[3].name", FIRST + 3)}, got


def test_valid_rules_validate(sluice_bin, tmp_path):
    body = "\n".join([
        "- {name: session, domain: example.com, path: /, secure: true, samesite: Strict}",
        "- {name: __Host-id, secure: true, samesite: NONE}",
        "- {name: pref, secure: false}",
        "- {name: lang, domain: .example.org}",
    ])
    p, text = rules_file(tmp_path, body, name="good.yaml")
    r = validate(sluice_bin, p)
    assert r.returncode == 0, (text, r.stdout, r.stderr)
