"""Issue 9: a retry or failover pick does not take a first try's turn. With round_robin or
weighted and one node that refuses connections, first tries keep the balancer's order (they
alternate at weights 1:1), so exactly the requests whose turn is the dead node are retried."""
import socket

import pytest

import helpers
from backends.stream_backend import StreamBackend
from helpers import RawConn, free_port, proxy_service

FAST = {"base": "1ms", "max": "2ms"}


def gateway(make_gateway, nodes, balance, retry=True):
    """nodes: (address, weight) pairs; one route with retry on connect failures, or none."""
    svc = proxy_service([a for a, _ in nodes], upstream={"balance": balance}, routes=[
        {"name": "r", "paths": ["/*"],
         "policies": {"retry": {"on": ["connect-failure"], "backoff": FAST}} if retry else {}}])
    for node, (_, w) in zip(svc["upstream"]["nodes"], nodes):
        node["weight"] = w
    return make_gateway([svc])


def run(g, n, path):
    """n sequential requests, each answered by a good backend; their access log entries."""
    for _ in range(n):
        with RawConn("127.0.0.1", g.port, timeout=15.0) as c:
            r = c.request("GET", path)
        assert r.status == 200 and r.header("x-backend") == "good", r  # every backend is "good"
    entries = []

    def have():
        entries[:] = [e for e in g.log_lines() if e["path"] == path]
        return len(entries) >= n
    helpers.wait_until(have, what="%d log entries for %s" % (n, path))
    assert len(entries) == n
    return entries


def retried(entries):
    return sum(1 for e in entries if e.get("retries", 0) == 1)


@pytest.mark.parametrize("balance", ["round_robin", "weighted"])
@pytest.mark.parametrize("dead_first", [True, False])
def test_first_tries_alternate_with_retries(make_gateway, make_backend, balance, dead_first):
    good = make_backend("good")
    dead = "127.0.0.1:%d" % free_port()  # nothing listens there
    nodes = [(dead, 1), (good.address, 1)] if dead_first else [(good.address, 1), (dead, 1)]
    g = gateway(make_gateway, nodes, balance)
    entries = run(g, 6, "/alt")
    assert retried(entries) == 3
    assert all(e.get("retries", 0) in (0, 1) and e["upstream"] == good.address for e in entries)
    # The next six alternate as well: the retries of the first six moved no turn.
    assert retried(run(g, 6, "/alt2")) == 3


@pytest.mark.parametrize("dead_first", [True, False])
def test_ewma_learns_from_a_refused_connection(make_gateway, make_backend, dead_first):
    """A node that refuses every connection is never measured by a response; its failed try
    counts as a very slow one, so after it has failed once ewma stops choosing it. The first
    one or two requests find it (a node never measured looks fast): exactly one is retried."""
    good = make_backend("good")
    dead = "127.0.0.1:%d" % free_port()
    nodes = [(dead, 1), (good.address, 1)] if dead_first else [(good.address, 1), (dead, 1)]
    g = gateway(make_gateway, nodes, "ewma")
    entries = run(g, 20, "/ewma")
    assert retried(entries) == 1, [(i, e.get("retries")) for i, e in enumerate(entries) if e.get("retries")]
    assert all(e.get("retries", 0) == 0 for e in entries[2:])


@pytest.mark.parametrize("dead_weight, good_weight, want", [(2, 1, 4), (1, 2, 2), (3, 1, 9)])
def test_weighted_shares_hold_with_retries(make_gateway, make_backend, dead_weight, good_weight, want):
    """Weights 2:1 with the heavy node dead: 4 of every 6 first tries are its turn, and only
    those are retried; with the light node dead, 2 of 6; 3:1, 9 of 12."""
    good = make_backend("good")
    dead = "127.0.0.1:%d" % free_port()
    g = gateway(make_gateway, [(dead, dead_weight), (good.address, good_weight)], "weighted")
    n = 12 if dead_weight == 3 else 6
    assert retried(run(g, n, "/w")) == want


@pytest.mark.parametrize("retry", [True, False])
def test_round_robin_three_nodes(make_gateway, make_backend, retry):
    """One dead node of three: a third of the first tries are its turn, and its turn passes to
    the node after it, whether a retry policy or the plain failover (every node gets one try
    when no retry policy covers connect failures) makes the second pick."""
    first, after = make_backend("good"), make_backend("good")
    dead = "127.0.0.1:%d" % free_port()
    g = gateway(make_gateway, [(first.address, 1), (dead, 1), (after.address, 1)], "round_robin", retry)
    entries = run(g, 9, "/three")
    assert len(first.snapshot()) == 3 and len(after.snapshot()) == 6
    assert retried(entries) == (3 if retry else 0)


def echo(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


def test_stream_failover_keeps_the_turn(make_gateway):
    """The TCP stream proxy fails over to another node on a connect failure with the same kind
    of pick: the dead node's turn passes to the node after it, the others keep theirs."""
    first, after = StreamBackend("echo"), StreamBackend("echo")
    try:
        dead = "127.0.0.1:%d" % free_port()
        port = free_port()
        g = make_gateway([{"name": "st", "type": "stream", "routes": [
            {"name": "r", "server_addr": "127.0.0.1", "server_port": port}],
            "upstream": {"scheme": "tcp", "balance": "round_robin", "tries": 2, "timeouts": {"connect": "1s"},
                         "nodes": [{"address": a} for a in (first.address, dead, after.address)]}}])
        for i in range(9):
            assert echo(port, b"s%d" % i) == b"s%d" % i
        assert first.count() == 3 and after.count() == 6
    finally:
        first.close()
        after.close()
