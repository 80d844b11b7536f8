"""Round robin (plain and weighted), upstream keep-alive pool reuse, hostname nodes."""
import requests

from helpers import RawConn, proxy_service


def sequence(g, n, path="/rr"):
    """Backend names for n requests sent one after another on one client connection."""
    out = []
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(n):
            r = c.request("GET", "%s/%d" % (path, i))
            assert r.status == 200, r
            out.append(r.json()["backend"])
    return out


def test_round_robin_equal_weights(make_gateway, make_backend):
    bs = [make_backend(n) for n in ("a", "b", "c")]
    g = make_gateway([proxy_service(bs)])
    seq = sequence(g, 30)
    for i in range(0, 30, 3):
        assert sorted(seq[i:i + 3]) == ["a", "b", "c"], seq
    assert [len(b.snapshot()) for b in bs] == [10, 10, 10]


def test_weighted_round_robin_is_smooth(make_gateway, make_backend):
    b1, b2 = make_backend("w1"), make_backend("w2")
    svc = proxy_service([b1, b2], upstream={"balance": "weighted"})
    svc["upstream"]["nodes"][1]["weight"] = 2
    g = make_gateway([svc])
    seq = sequence(g, 30)
    assert seq.count("w1") == 10 and seq.count("w2") == 20, seq
    # smooth: every prefix stays within one request of the ideal 1:2 share
    for k in range(1, 31):
        assert abs(seq[:k].count("w1") - k / 3) <= 1, (k, seq)
    # and never three of the same in a row (w2 w2 w2 would be "bursty" weighting)
    for i in range(28):
        assert len(set(seq[i:i + 3])) == 2, seq


def test_weights_over_many_requests(make_gateway, make_backend):
    bs = [make_backend("x"), make_backend("y"), make_backend("z")]
    svc = proxy_service(bs, upstream={"balance": "weighted"})
    for node, w in zip(svc["upstream"]["nodes"], (1, 3, 6)):
        node["weight"] = w
    g = make_gateway([svc])
    seq = sequence(g, 100)
    assert (seq.count("x"), seq.count("y"), seq.count("z")) == (10, 30, 60), seq
    for i in range(0, 100, 10):
        window = seq[i:i + 10]
        assert (window.count("x"), window.count("y"), window.count("z")) == (1, 3, 6), (i, seq)


def test_upstream_connection_reused(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(10):
            r = c.request("GET", "/pool/%d" % i)
            assert r.status == 200
    reqs = backend.snapshot()
    assert len(reqs) == 10
    assert {r.conn_id for r in reqs} == {reqs[0].conn_id}, [r.conn_id for r in reqs]
    assert backend.connections == 1


def test_upstream_connection_reused_across_client_connections(make_gateway, backend):
    """Separate client connections: at most one upstream connection per worker (2 workers)."""
    g = make_gateway([proxy_service([backend])])
    for i in range(12):
        r = requests.get(g.url + "/sep/%d" % i, headers={"Connection": "close"}, timeout=5)
        assert r.status_code == 200
    assert len(backend.snapshot()) == 12
    assert backend.connections <= 2, backend.connections


def test_pool_disabled(make_gateway, backend):
    g = make_gateway([proxy_service([backend], upstream={"keepalive": {"max_idle": 0, "idle_timeout": "60s"}})])
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(4):
            assert c.request("GET", "/nopool/%d" % i).status == 200
    assert len({r.conn_id for r in backend.snapshot()}) == 4


def test_post_bodies_on_pooled_connection(make_gateway, backend):
    """Bodies of different framing on one reused upstream connection stay correctly delimited."""
    g = make_gateway([proxy_service([backend])])
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("POST", "/p1", body=b"a" * 1000)
        assert r.json()["body_len"] == 1000
        c.send(b"POST /p2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert c.read_response().json()["body"] == "abc"
        r = c.request("GET", "/p3?download=5000&chunked=1")
        assert len(r.body) == 5000
        r = c.request("GET", "/p4")
        assert r.json()["path"] == "/p4"
    assert backend.connections == 1


def test_hostname_node(make_gateway, make_backend):
    b1 = make_backend("named")
    g = make_gateway([proxy_service(["localhost:%d" % b1.port])])
    for i in range(3):
        r = requests.get(g.url + "/named", timeout=5)
        assert r.status_code == 200 and r.json()["backend"] == "named"
    e = g.wait_log(lambda e: e["path"] == "/named")
    assert e["upstream"] in ("localhost:%d" % b1.port, "127.0.0.1:%d" % b1.port)


def test_mixed_ip_and_hostname_nodes_weighted(make_gateway, make_backend):
    b1, b2 = make_backend("ip"), make_backend("name")
    svc = proxy_service([b1.address, "localhost:%d" % b2.port], upstream={"balance": "weighted"})
    svc["upstream"]["nodes"][1]["weight"] = 2
    g = make_gateway([svc])
    seq = sequence(g, 12)
    assert seq.count("ip") == 4 and seq.count("name") == 8, seq
