"""Upstream health: active checks (HTTP), passive checks, panic mode and on_all_unhealthy:
reject, backup nodes, health kept across reloads, /status/upstreams, health metrics and the
validation of health_check / passive_check.

Intervals are short (200ms) so that detection takes about a second; every wait has a generous
safety timeout and no test asserts how fast something happened."""
import re
import subprocess

import requests

from backend import Backend
from helpers import RawConn, free_port, proxy_service, wait_until

HC = {"path": "/hc", "interval": "200ms", "timeout": "150ms", "healthy_threshold": 2, "unhealthy_threshold": 2}


def health_answers(b, status):
    """Makes backend b answer its health path /hc with status (changeable later)."""
    b.hc_status = status

    def handler(backend, s, r, rec):
        backend.read_body(r, rec)
        st = backend.hc_status
        s.sendall(("HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % st).encode())
        return False

    b.on("/hc", handler)


def upstreams(g):
    r = requests.get(g.status_url + "/status/upstreams", timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()["upstreams"]


def node_status(g, address, service="svc"):
    for u in upstreams(g):
        if u["service"] == service:
            for n in u["nodes"]:
                if n["address"] == address:
                    return n
    raise AssertionError("no node %s in service %s: %r" % (address, service, upstreams(g)))


def wait_health(g, address, healthy, timeout=15.0, service="svc"):
    wait_until(lambda: node_status(g, address, service)["healthy"] is healthy, timeout=timeout,
               what="node %s healthy=%s" % (address, healthy))


def traffic(g, n, path="/t"):
    """Backend names (or statuses for non-200 answers) for n requests on one client connection."""
    out = []
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(n):
            r = c.request("GET", "%s/%d" % (path, i))
            out.append(r.json()["backend"] if r.status == 200 else r.status)
    return out


def proxied(b):
    """Requests b got that were not health checks."""
    return [r for r in b.snapshot() if r.path != "/hc"]


def test_stopped_backend_marked_down_then_back(make_gateway, make_backend):
    a, b = make_backend("a"), make_backend("b")
    health_answers(a, 200)
    health_answers(b, 200)
    g = make_gateway([proxy_service([a, b], upstream={"health_check": HC})])
    wait_until(lambda: node_status(g, b.address)["checks"]["success"] >= 2, timeout=10, what="checks of b")
    assert sorted(set(traffic(g, 4))) == ["a", "b"]

    port = b.port
    b.close()
    wait_health(g, b.address, False)
    st = node_status(g, b.address)
    assert st["last_error"] and st["checks"]["failure"] >= 2, st
    b.reset()
    assert traffic(g, 10) == ["a"] * 10
    assert proxied(b) == []
    assert "upstream svc node %s: healthy -> unhealthy" % b.address in g.stderr_text()

    b2 = Backend("b", port=port)
    try:
        health_answers(b2, 200)
        wait_health(g, b.address, True)
        seq = traffic(g, 6)
        assert sorted(set(seq)) == ["a", "b"], seq
        assert "upstream svc node %s: unhealthy -> healthy" % b.address in g.stderr_text()
    finally:
        b2.close()


def test_health_request_shape(make_gateway, backend):
    health_answers(backend, 200)
    hc = dict(HC, host="health.internal", method="HEAD", headers={"X-Check": "yes"})
    g = make_gateway([proxy_service([backend], upstream={"health_check": hc})])
    recs = wait_until(lambda: [r for r in backend.snapshot() if r.path == "/hc"], timeout=10, what="a health check")
    r = recs[0]
    assert r.method == "HEAD" and r.version == "HTTP/1.1"
    assert r.header("host") == "health.internal"
    assert r.header("x-check") == "yes"
    assert r.header("connection").lower() == "close"
    g.check_alive()


def test_default_host_is_node_address(make_gateway, backend):
    health_answers(backend, 200)
    make_gateway([proxy_service([backend], upstream={"health_check": HC})])
    recs = wait_until(lambda: [r for r in backend.snapshot() if r.path == "/hc"], timeout=10, what="a health check")
    assert recs[0].header("host") == backend.address
    assert recs[0].method == "GET"


def test_500_marks_down_and_expected_statuses(make_gateway, make_backend):
    a, b, c = make_backend("a"), make_backend("b"), make_backend("c")
    health_answers(a, 200)
    health_answers(b, 500)
    health_answers(c, 418)
    svc1 = proxy_service([a, b], name="svc", upstream={"health_check": HC})
    svc2 = proxy_service([c], name="teapot", routes=[{"name": "tp", "paths": ["/tea/*"]}],
                         upstream={"health_check": dict(HC, expected_statuses=[418, "200-299"])})
    svc3 = proxy_service([c], name="strict", routes=[{"name": "st", "paths": ["/strict/*"]}],
                         upstream={"health_check": HC})
    g = make_gateway([svc1, svc2, svc3])
    wait_health(g, b.address, False)
    assert node_status(g, b.address)["last_error"] == "status 500"
    assert traffic(g, 6) == ["a"] * 6
    # 418 is expected for "teapot", not for "strict" (default 200-399)
    wait_health(g, c.address, False, service="strict")
    assert node_status(g, c.address, "strict")["last_error"] == "status 418"
    t = node_status(g, c.address, "teapot")
    assert t["healthy"] is True and t["checks"]["failure"] == 0 and t["checks"]["success"] >= 1, t
    # the backend recovers
    b.hc_status = 204
    wait_health(g, b.address, True)


def test_passive_checks_without_active(make_gateway, make_backend):
    a = make_backend("a")
    port = free_port()
    dead = "127.0.0.1:%d" % port  # nothing listens here
    svc = proxy_service([a, dead], upstream={"passive_check": {"failures": 2, "cooldown": "1s"}})
    g = make_gateway([svc])
    seen = traffic(g, 8)
    assert seen.count("a") >= 4, seen
    wait_health(g, dead, False, timeout=5)
    assert "upstream svc node %s: healthy -> unhealthy (passive" % dead in g.stderr_text()
    assert node_status(g, dead)["last_error"] == "passive: connect failure"
    assert node_status(g, dead)["last_check"] is None
    assert traffic(g, 6) == ["a"] * 6
    m = g.metrics()
    assert m.get("sluice_upstream_node_transitions_total", service="svc", node=dead, to="unhealthy") == 1
    assert m.get("sluice_upstream_node_healthy", service="svc", node=dead) == 0

    # the node comes up; after the cooldown it gets a trial request and is healthy again
    b = Backend("late", port=port)
    try:
        def back():
            traffic(g, 2)
            return node_status(g, dead)["healthy"]
        wait_until(back, timeout=15, interval=0.2, what="node back after the cooldown")
        assert proxied(b), "the revived node got no request"
        assert g.metrics().get("sluice_upstream_node_transitions_total", service="svc", node=dead, to="healthy") == 1
    finally:
        b.close()


def test_passive_failed_status(make_gateway, make_backend):
    a, b = make_backend("a"), make_backend("b")
    svc = proxy_service([a, b], upstream={"passive_check": {"failures": 3, "statuses": [502, "520-529"],
                                                            "cooldown": "1h"}})
    g = make_gateway([svc])
    # 500 is not a failure here; 502 is
    with RawConn("127.0.0.1", g.port) as c:
        for _ in range(8):
            assert c.request("GET", "/x?status=500").status == 500
        assert node_status(g, a.address)["healthy"] and node_status(g, b.address)["healthy"]
        for _ in range(6):
            assert c.request("GET", "/x?status=502").status == 502
    assert not node_status(g, a.address)["healthy"] and not node_status(g, b.address)["healthy"]
    assert node_status(g, a.address)["last_error"] == "passive: failure status"
    # an OK resets the count: two failures, a success, two failures leave the node up
    c2 = make_backend("c")
    g.reload([proxy_service([c2], upstream={"passive_check": {"failures": 3, "statuses": [502]}})])
    with RawConn("127.0.0.1", g.port) as c:
        for st in (502, 502, 200, 502, 502):
            assert c.request("GET", "/y?status=%d" % st).status == st
    assert node_status(g, c2.address)["healthy"] is True


def test_panic_mode_all_down_still_serves(make_gateway, make_backend):
    a, b = make_backend("a"), make_backend("b")
    health_answers(a, 500)
    health_answers(b, 500)
    g = make_gateway([proxy_service([a, b], upstream={"health_check": HC})])
    wait_health(g, a.address, False)
    wait_health(g, b.address, False)
    assert sorted(set(traffic(g, 6))) == ["a", "b"]


def test_reject_when_all_unhealthy(make_gateway, make_backend):
    a, b = make_backend("a"), make_backend("b")
    health_answers(a, 500)
    health_answers(b, 200)
    g = make_gateway([proxy_service([a, b], upstream={"health_check": HC, "on_all_unhealthy": "reject"})])
    wait_health(g, a.address, False)
    assert traffic(g, 4) == ["b"] * 4
    b.hc_status = 503
    wait_health(g, b.address, False)
    a.reset()
    b.reset()
    with RawConn("127.0.0.1", g.port) as c:
        r = c.request("GET", "/rejected")
        assert r.status == 503
        assert r.json()["error"] == "no_healthy_upstream"
    assert proxied(a) == [] and proxied(b) == []


def test_backup_node_only_while_primaries_down(make_gateway, make_backend):
    a, b, backup = make_backend("a"), make_backend("b"), make_backend("backup")
    for x in (a, b, backup):
        health_answers(x, 200)
    svc = proxy_service([a, b, backup], upstream={"health_check": HC})
    svc["upstream"]["nodes"][2]["priority"] = -1
    g = make_gateway([svc])
    assert sorted(set(traffic(g, 8))) == ["a", "b"]
    a.hc_status = 500
    wait_health(g, a.address, False)
    assert traffic(g, 4) == ["b"] * 4
    b.hc_status = 500
    wait_health(g, b.address, False)
    assert traffic(g, 4) == ["backup"] * 4
    a.hc_status = 200
    wait_health(g, a.address, True)
    assert traffic(g, 4) == ["a"] * 4
    st = node_status(g, backup.address)
    assert st["priority"] == -1 and st["weight"] == 1


def test_health_kept_across_reload(make_gateway, make_backend):
    a, b, c = make_backend("a"), make_backend("b"), make_backend("c")
    for x in (a, b, c):
        health_answers(x, 200)
    b.hc_status = 500
    slow = dict(HC, healthy_threshold=50)  # b cannot come back during the test by checks alone
    g = make_gateway([proxy_service([a, b], upstream={"health_check": slow})])
    wait_health(g, b.address, False)
    m0 = g.metrics()
    b.hc_status = 200

    # same nodes, a new route and a new node: b stays down, c is checked
    svc = proxy_service([a, b, c], routes=[{"name": "all", "paths": ["/*"]}, {"name": "x", "paths": ["/x"]}],
                        upstream={"health_check": slow})
    g.reload([svc])
    assert node_status(g, b.address)["healthy"] is False
    wait_until(lambda: node_status(g, c.address)["checks"]["success"] >= 1, timeout=10, what="checks of c")
    assert set(traffic(g, 6)) == {"a", "c"}
    m1 = g.metrics()
    lbl = dict(service="svc", node=b.address, to="unhealthy")
    assert m1.get("sluice_upstream_node_transitions_total", **lbl) == m0.get("sluice_upstream_node_transitions_total", **lbl) == 1

    # a faster threshold applies to the running checker; b comes back
    g.reload([proxy_service([a, b, c], upstream={"health_check": HC})])
    wait_health(g, b.address, True)

    # health checks removed: the checkers stop
    g.reload([proxy_service([a, b], upstream={})])
    n0 = len([r for r in a.snapshot() if r.path == "/hc"])
    u = upstreams(g)[0]
    assert [n["address"] for n in u["nodes"]] == [a.address, b.address]
    import time
    time.sleep(1.0)  # five intervals of the old configuration
    assert len([r for r in a.snapshot() if r.path == "/hc"]) <= n0 + 1


def test_status_and_metrics(make_gateway, make_backend):
    a, b = make_backend("a"), make_backend("b")
    health_answers(a, 200)
    health_answers(b, 500)
    g = make_gateway([proxy_service([a, b], upstream={"health_check": HC})])
    wait_health(g, b.address, False)
    wait_until(lambda: node_status(g, a.address)["checks"]["success"] >= 2, timeout=10, what="checks of a")
    u = upstreams(g)
    assert len(u) == 1 and u[0]["service"] == "svc" and u[0]["balance"] == "round_robin"
    na, nb = u[0]["nodes"]
    assert set(na) == {"address", "weight", "priority", "healthy", "active_requests", "last_check", "last_error",
                       "checks"}
    assert na["address"] == a.address and na["healthy"] is True and na["last_error"] is None
    assert na["weight"] == 1 and na["priority"] == 0 and na["active_requests"] == 0
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", na["last_check"]), na
    assert nb["healthy"] is False and nb["last_error"] == "status 500" and nb["checks"]["failure"] >= 2

    m = g.metrics()
    assert m.get("sluice_upstream_node_healthy", service="svc", node=a.address) == 1
    assert m.get("sluice_upstream_node_healthy", service="svc", node=b.address) == 0
    assert m.get("sluice_upstream_health_checks_total", service="svc", node=a.address, result="success") >= 2
    assert m.get("sluice_upstream_health_checks_total", service="svc", node=b.address, result="failure") >= 2
    assert m.get("sluice_upstream_node_transitions_total", service="svc", node=b.address, to="unhealthy") == 1
    assert "# TYPE sluice_upstream_node_healthy gauge" in m.text
    assert "# TYPE sluice_upstream_health_checks_total counter" in m.text


def test_status_without_checks(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    n = upstreams(g)[0]["nodes"][0]
    assert n["healthy"] is True and n["last_check"] is None and n["last_error"] is None
    assert n["checks"] == {"success": 0, "failure": 0}


# ---- validation ---------------------------------------------------------------------------

from helpers import ERR_RE

BAD = """\
services:
  - name: svc
    upstream:
      nodes: [127.0.0.1:18082]
      health_check:
        path: healthz
        healthy_threshold: 0
        unhealthy_threshold: -1
        expected_statuses: [200, "300-200", "abc", 700]
        send: "PING"
        expect: "+PONG"
        interval: 1s
        timeout: 2s
      passive_check: {failures: 0, statuses: ["5xx"], cooldown: soon}
      on_all_unhealthy: explode
    routes:
      - paths: ["/*"]
"""


def test_bad_health_config(sluice_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    r = subprocess.run([sluice_bin, "validate", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)
    errs = {}
    for line in r.stderr.strip().splitlines():
        m = ERR_RE.match(line)
        assert m, line
        assert m.group("file") == str(p)
        errs.setdefault(m.group("path"), []).append((int(m.group("line")), int(m.group("col")), m.group("msg")))
    hc = "services[0].upstream.health_check."
    assert errs[hc + "path"] == [(6, 15, "must start with '/'")]
    assert errs[hc + "healthy_threshold"][0][:2] == (7, 28) and "between 1 and" in errs[hc + "healthy_threshold"][0][2]
    assert errs[hc + "unhealthy_threshold"][0][0] == 8
    assert errs[hc + "expected_statuses[1]"][0][0] == 9 and "300-200" in errs[hc + "expected_statuses[1]"][0][2]
    assert hc + "expected_statuses[2]" in errs and hc + "expected_statuses[3]" in errs
    assert hc + "expected_statuses[0]" not in errs
    assert errs[hc + "send"][0][:2] == (10, 9) and "stream" in errs[hc + "send"][0][2]
    assert errs[hc + "expect"][0][0] == 11
    assert errs[hc + "timeout"][0][0] == 13 and "interval" in errs[hc + "timeout"][0][2]
    pc = "services[0].upstream.passive_check."
    assert pc + "failures" in errs and pc + "statuses[0]" in errs and pc + "cooldown" in errs
    assert "services[0].upstream.on_all_unhealthy" in errs
    assert "panic, reject" in errs["services[0].upstream.on_all_unhealthy"][0][2]


def test_good_health_config_validates(sluice_bin, tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text("""\
services:
  - name: svc
    upstream:
      nodes: [{address: 127.0.0.1:18082, priority: 0}, {address: 127.0.0.1:18083, priority: -1}]
      health_check: {path: /healthz, host: svc.internal, method: HEAD, headers: {X-A: b},
                     expected_statuses: [200, "300-399"], interval: 5s, timeout: 1s,
                     healthy_threshold: 1, unhealthy_threshold: 1}
      passive_check: {failures: 5, statuses: [500, "502-504"], cooldown: 30s}
      on_all_unhealthy: reject
    routes:
      - paths: ["/*"]
""")
    r = subprocess.run([sluice_bin, "validate", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
