"""SIGHUP reloads: new routes and upstreams take effect, in-flight requests finish on the old
generation, and reloads under steady keep-alive traffic lose no request."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from helpers import RawConn, direct_route, direct_service, proxy_service


def test_reload_adds_and_removes_routes(make_gateway, backend):
    g = make_gateway([direct_service(routes=[direct_route("a", ["/a"], body="A")])])
    assert requests.get(g.url + "/a", timeout=5).text == "A"
    assert requests.get(g.url + "/b", timeout=5).status_code == 404

    g.reload([direct_service(routes=[direct_route("b", ["/b"], body="B")]),
              proxy_service([backend], routes=[{"name": "p", "paths": ["/p/*"]}])])
    assert requests.get(g.url + "/b", timeout=5).text == "B"
    assert requests.get(g.url + "/a", timeout=5).status_code == 404
    r = requests.get(g.url + "/p/x", timeout=5)
    assert r.status_code == 200 and r.json()["path"] == "/p/x"


def test_reload_switches_upstream(make_gateway, make_backend):
    b1, b2 = make_backend("one"), make_backend("two")
    g = make_gateway([proxy_service([b1])])
    assert requests.get(g.url + "/w", timeout=5).json()["backend"] == "one"
    g.reload([proxy_service([b2])])
    # also on a client connection that was opened before the reload
    for _ in range(3):
        assert requests.get(g.url + "/w", timeout=5).json()["backend"] == "two"
    n1 = len(b1.snapshot())
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(g.url + "/w", timeout=5).json()["backend"] == "two"
    assert len(b1.snapshot()) == n1


def test_keepalive_client_sees_new_config(make_gateway):
    g = make_gateway([direct_service(routes=[direct_route("v", ["/v"], body="1")])])
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/v").body == b"1"
        g.reload([direct_service(routes=[direct_route("v", ["/v"], body="2")])])
        assert c.request("GET", "/v").body == b"2"


def test_in_flight_request_survives_route_removal(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[{"name": "slow", "paths": ["/slow"]}])])
    out = {}

    def call():
        out["r"] = requests.get(g.url + "/slow?delay=1.5", timeout=20)

    t = threading.Thread(target=call)
    t.start()
    backend.wait_requests(1)
    g.reload([direct_service(routes=[direct_route("other", ["/other"])])])
    t.join(20)
    assert out["r"].status_code == 200 and out["r"].json()["path"] == "/slow"
    assert requests.get(g.url + "/slow", timeout=5).status_code == 404


def test_reloads_under_load_lose_nothing(make_gateway, make_backend):
    b1, b2 = make_backend("one"), make_backend("two")
    configs = [
        [proxy_service([b1, b2], routes=[{"name": "api", "paths": ["/api/*"]}]),
         direct_service(routes=[direct_route("hello", ["/hello"], body="x")])],
        [proxy_service([b2, b1], routes=[{"name": "api", "paths": ["/api", "/api/*"]}],
                       upstream={"balance": "round_robin"}),
         direct_service(routes=[direct_route("hello", ["/hello"], body="x"), direct_route("extra", ["/extra"])])],
    ]
    g = make_gateway(configs[0])
    stop = threading.Event()
    errors = []
    counts = [0] * 4

    def client(i):
        with requests.Session() as s:
            n = 0
            while not stop.is_set():
                path = "/hello" if n % 3 == 2 else "/api/%d/%d" % (i, n)
                try:
                    if n % 5 == 4:
                        r = s.post(g.url + path, data=b"y" * 5000, timeout=10)
                    else:
                        r = s.get(g.url + path, timeout=10)
                    if r.status_code != 200:
                        errors.append((path, r.status_code, r.text[:200]))
                    elif path == "/hello" and r.text != "x":
                        errors.append((path, r.text))
                except requests.RequestException as e:
                    errors.append((path, repr(e)))
                n += 1
                counts[i] += 1

    with ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(client, i) for i in range(4)]
        time.sleep(0.5)
        for k in range(5):
            g.reload(configs[(k + 1) % 2])
            time.sleep(0.4)
        stop.set()
        for f in futs:
            f.result()
    assert sum(counts) > 20, counts  # traffic actually flowed during the reloads
    assert errors == [], errors[:10]
    g.check_alive()


def _refused(port):
    import socket
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def test_reload_opens_and_closes_listeners(make_gateway):
    """Listen addresses follow the configuration: a new one serves at once, a removed one stops
    accepting, and a connection accepted on it before the reload is still served."""
    from helpers import free_port, wait_until
    extra = free_port()
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="A")])]
    g = make_gateway(svc)
    assert _refused(extra)
    base = ["127.0.0.1:%d" % g.port]
    g.reload(svc, gateway={"http": {"listen": base + ["127.0.0.1:%d" % extra]}})
    assert requests.get("http://127.0.0.1:%d/a" % extra, timeout=5).text == "A"
    with RawConn("127.0.0.1", extra) as c:
        assert c.request("GET", "/a").body == b"A"
        g.reload(svc, gateway={"http": {"listen": base}})
        # each worker closes its socket on its next loop turn
        wait_until(lambda: _refused(extra), timeout=5, what="removed listener closed")
        assert c.request("GET", "/a").body == b"A"  # accepted before the reload: carries on
    assert requests.get(g.url + "/a", timeout=5).text == "A"


def test_reload_with_unbindable_listener_keeps_running_config(make_gateway):
    import socket
    svc = [direct_service(routes=[direct_route("a", ["/a"], body="A")])]
    g = make_gateway(svc)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))  # held by another program, without SO_REUSEPORT
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        g.reload([direct_service(routes=[direct_route("a", ["/a"], body="B")])],
                 gateway={"http": {"listen": ["127.0.0.1:%d" % g.port, "127.0.0.1:%d" % taken]}},
                 expect="failure")
        assert "cannot listen on 127.0.0.1:%d" % taken in g.stderr_text()
        assert requests.get(g.url + "/a", timeout=5).text == "A"
    finally:
        holder.close()
