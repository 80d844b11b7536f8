"""Prometheus metrics on the status listener."""
import re
import time

import requests

from helpers import RawConn, proxy_service, wait_until


def test_healthz(gw_one):
    g, _ = gw_one
    r = requests.get(g.status_url + "/healthz", timeout=5)
    assert r.status_code == 200


def test_exposition_format(gw_one):
    g, _ = gw_one
    requests.get(g.url + "/x", timeout=5)
    r = requests.get(g.status_url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert re.search(r"^# TYPE sluice_http_requests_total counter$", text, re.M), text
    assert re.search(r"^# TYPE sluice_upstream_latency_seconds histogram$", text, re.M), text
    assert re.search(r"^# TYPE sluice_http_connections_active gauge$", text, re.M), text
    assert re.search(r"^# TYPE sluice_config_reloads_total counter$", text, re.M), text


def test_request_counts_by_status(gw_one):
    g, backend = gw_one
    m0 = g.metrics()
    base200 = m0.get("sluice_http_requests_total", service="svc", route="r1", status="200") or 0
    base404 = m0.get("sluice_http_requests_total", service="svc", route="r1", status="404") or 0
    with RawConn("127.0.0.1", g.port) as c:
        for _ in range(7):
            assert c.request("GET", "/ok").status == 200
        for _ in range(3):
            assert c.request("GET", "/nf?status=404").status == 404

    def counts():
        m = g.metrics()
        return (m.get("sluice_http_requests_total", service="svc", route="r1", status="200"),
                m.get("sluice_http_requests_total", service="svc", route="r1", status="404"))
    wait_until(lambda: counts() == (base200 + 7, base404 + 3), timeout=5, what="request counters")


def test_upstream_latency_histogram(gw_one):
    g, backend = gw_one
    for _ in range(4):
        assert requests.get(g.url + "/lat?delay=0.2", timeout=10).status_code == 200
    m = g.metrics()
    count = m.get("sluice_upstream_latency_seconds_count", service="svc")
    total = m.get("sluice_upstream_latency_seconds_sum", service="svc")
    inf = m.get("sluice_upstream_latency_seconds_bucket", service="svc", le="+Inf")
    assert count == 4, m.series("sluice_upstream_latency_seconds_count")
    assert inf == 4
    assert total >= 0.8 - 0.05  # each took at least 0.2 s
    buckets = sorted(((float(ls["le"]), v) for ls, v in m.series("sluice_upstream_latency_seconds_bucket")
                      if ls.get("service") == "svc"), key=lambda x: x[0])
    values = [v for _, v in buckets]
    assert values == sorted(values), "buckets must be cumulative: %r" % buckets
    for le, v in buckets:
        if le < 0.19:
            assert v == 0, "an observation below 0.2 s: %r" % buckets


def test_direct_and_no_route_counted(make_gateway):
    from helpers import direct_route, direct_service
    g = make_gateway([direct_service(routes=[direct_route("hello", ["/hello"])])])
    for _ in range(3):
        requests.get(g.url + "/hello", timeout=5)
    wait_until(lambda: g.metrics().get("sluice_http_requests_total", service="static", route="hello", status="200") == 3,
               timeout=5, what="direct response counter")


def test_connections_active_gauge(gw_one):
    g, _ = gw_one

    def active():
        return g.metrics().sum("sluice_http_connections_active")

    base = active()
    conns = [RawConn("127.0.0.1", g.port) for _ in range(3)]
    try:
        for c in conns:
            assert c.request("GET", "/hold").status == 200
        wait_until(lambda: active() == base + 3, timeout=5, what="gauge +3 (base %s)" % base)
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: active() == base, timeout=5, what="gauge back to %s" % base)


def test_reload_counters(gw_one):
    g, backend = gw_one
    m = g.metrics()
    s0 = m.get("sluice_config_reloads_total", result="success") or 0
    f0 = m.get("sluice_config_reloads_total", result="failure") or 0
    g.reload([proxy_service([backend], routes=[{"name": "r1", "paths": ["/*"]}])])
    g.reload(raw="services: [\n", expect="failure")
    time.sleep(0.2)
    m = g.metrics()
    assert m.get("sluice_config_reloads_total", result="success") == s0 + 1
    assert m.get("sluice_config_reloads_total", result="failure") == f0 + 1
