"""request_id: every request carries an id, kept from the client when well formed or made by the
gateway, passed upstream, returned to the client and written to the access log."""
import re

from helpers import RawConn, get, proxy_service

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def one_request(backend):
    reqs = backend.wait_requests(1)
    assert len(reqs) == 1
    return reqs[0]


def test_made_passed_returned_logged_by_default(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    r = get(g, "/id")
    assert r.status == 200
    rid = r.header("x-request-id")
    assert rid and UUID4.fullmatch(rid), rid
    assert one_request(backend).header_all("x-request-id") == [rid]
    assert g.wait_log(lambda e: e["path"] == "/id")["request_id"] == rid


def test_every_id_is_new(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    ids = set()
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(300):
            ids.add(c.request("GET", "/u/%d" % i).header("x-request-id"))
    assert len(ids) == 300 and all(UUID4.fullmatch(i) for i in ids)


def test_a_clients_well_formed_id_is_kept(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    for i, rid in enumerate(["abc-123", "0af7651916cd43dd8448eb211c80319c", "dGVzdA==", "trace:1/span@2_x.y~z+w"]):
        backend.reset()
        r = get(g, "/k/%d" % i, headers=[("X-Request-Id", rid)])
        assert r.header("x-request-id") == rid
        assert one_request(backend).header_all("x-request-id") == [rid]
        assert g.wait_log(lambda e, i=i: e["path"] == "/k/%d" % i)["request_id"] == rid


def test_a_bad_incoming_id_is_replaced(make_gateway, backend):
    """What could break a header, a log line or a downstream parser is not passed on."""
    g = make_gateway([proxy_service([backend])])
    for i, rid in enumerate(["a b", 'q"uote', "semi;colon", "x" * 129, "", "comma,list", "caf\xe9"]):
        backend.reset()
        with RawConn("127.0.0.1", g.port) as c:
            c.send(("GET /bad/%d HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: %s\r\n\r\n" % (i, rid)).encode("latin-1"))
            r = c.read_response("GET")
        assert r.status == 200
        made = r.header("x-request-id")
        assert UUID4.fullmatch(made), (rid, made)
        assert one_request(backend).header_all("x-request-id") == [made]


def test_only_one_id_goes_upstream(make_gateway, backend):
    """Two incoming headers: the first (well formed) is the id, and the upstream sees only it."""
    g = make_gateway([proxy_service([backend])])
    r = get(g, "/two", headers=[("X-Request-Id", "first-1"), ("x-request-id", "second-2")])
    assert r.header("x-request-id") == "first-1"
    assert one_request(backend).header_all("x-request-id") == ["first-1"]


def test_the_upstreams_own_id_header_is_not_returned(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/echo?hdr=X-Request-Id:from-upstream")
    ours = one_request(backend).header("x-request-id")
    assert r.header_all("x-request-id") == [ours]


def test_replace_format_hex_and_header_name(make_gateway, backend):
    g = make_gateway([proxy_service([backend])],
                     gateway={"request_id": {"header": "X-Trace-Id", "format": "hex", "incoming": "replace"}})
    r = get(g, "/h", headers=[("X-Trace-Id", "client-chosen")])
    rid = r.header("x-trace-id")
    assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    rec = one_request(backend)
    assert rec.header_all("x-trace-id") == [rid]
    assert r.header("x-request-id") is None


def test_route_override_and_local_answers(make_gateway, backend):
    routes = [{"name": "quiet", "paths": ["/quiet/*"], "request_id": False},
              {"name": "own", "paths": ["/own/*"], "request_id": {"header": "X-Own-Id", "format": "hex"}},
              {"name": "rest", "paths": ["/api/*"]}]
    g = make_gateway([proxy_service([backend], routes=routes)])
    r = get(g, "/quiet/a", headers=[("X-Request-Id", "passes-as-any-header")])
    assert r.header("x-request-id") is None
    # off: the gateway neither writes the header nor owns it, so the client's goes through as sent
    assert one_request(backend).header_all("x-request-id") == ["passes-as-any-header"]
    assert g.wait_log(lambda e: e["path"] == "/quiet/a")["request_id"] is None
    backend.reset()
    r = get(g, "/own/a")
    assert re.fullmatch(r"[0-9a-f]{32}", r.header("x-own-id")) and r.header("x-request-id") is None
    # an answer the gateway makes itself carries the gateway-wide id too
    r = get(g, "/nowhere")
    assert r.status == 404
    rid = r.header("x-request-id")
    assert UUID4.fullmatch(rid)
    assert g.wait_log(lambda e: e["path"] == "/nowhere")["request_id"] == rid
