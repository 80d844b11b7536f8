"""SIGTERM/SIGINT: stop accepting, finish in-flight requests, exit 0 within shutdown_timeout."""
import signal
import socket
import threading
import time

import requests

from helpers import RawConn, proxy_service, wait_until


def refuses(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except (ConnectionRefusedError, socket.timeout, OSError):
        return True
    # accepted by a listener still in the kernel (or the signal not handled yet): not refused
    # unless it is closed unanswered
    try:
        s.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        d = s.recv(100)
        return d == b""
    except (ConnectionResetError, socket.timeout, OSError):
        return True
    finally:
        s.close()


def test_sigterm_drains_in_flight(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"shutdown_timeout": "10s"})
    results = {}

    def call(i):
        try:
            r = requests.post(g.url + "/inflight/%d?delay=2" % i, data=b"z" * 1000, timeout=20)
            results[i] = (r.status_code, r.json()["path"])
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)

    ts = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in ts:
        t.start()
    backend.wait_requests(3)
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    wait_until(lambda: refuses(g.port), timeout=1.5, what="listener closed after SIGTERM")
    for t in ts:
        t.join(20)
    assert results == {i: (200, "/inflight/%d" % i) for i in range(3)}
    g.proc.wait(15)
    assert g.proc.returncode == 0
    assert time.monotonic() - t0 < 10 + 2


def test_sigterm_with_idle_keepalive_connections_exits_promptly(make_gateway, backend):
    """Idle keep-alive connections are closed at shutdown, not waited on until the grace period."""
    g = make_gateway([proxy_service([backend])], gateway={"shutdown_timeout": "60s"})
    conns = [RawConn("127.0.0.1", g.port) for _ in range(3)]
    try:
        for c in conns:
            assert c.request("GET", "/idle").status == 200
        g.signal(signal.SIGTERM)
        g.proc.wait(20)  # well under the 60 s grace period
        assert g.proc.returncode == 0
        for c in conns:
            assert c.is_closed(5)
    finally:
        for c in conns:
            c.close()


def test_shutdown_timeout_bounds_the_drain(make_gateway, backend):
    g = make_gateway([proxy_service([backend], upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "60s"}})],
                     gateway={"shutdown_timeout": "1s"})
    t = threading.Thread(target=lambda: _swallow(lambda: requests.get(g.url + "/hang?delay=30", timeout=40)), daemon=True)
    t.start()
    backend.wait_requests(1)
    g.signal(signal.SIGTERM)
    g.proc.wait(15)  # would take ~30 s if the grace period were ignored
    assert g.proc.returncode is not None


def _swallow(f):
    try:
        f()
    except Exception:  # noqa: BLE001
        pass


def test_sigint_stops(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    assert requests.get(g.url + "/x", timeout=5).status_code == 200
    g.signal(signal.SIGINT)
    g.proc.wait(15)
    assert g.proc.returncode == 0


def test_access_log_flushed_on_exit(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    with RawConn("127.0.0.1", g.port) as c:
        for i in range(20):
            assert c.request("GET", "/flush/%d" % i).status == 200
    assert g.stop() == 0
    paths = [e["path"] for e in g.log_lines()]
    assert ["/flush/%d" % i for i in range(20)] == [p for p in paths if p.startswith("/flush/")]


def test_second_signal_forces_exit_and_status_answers_while_draining(make_gateway, backend):
    """While requests drain, /healthz still answers (503 draining); a second SIGTERM ends the drain at once."""
    g = make_gateway([proxy_service([backend], upstream={"timeouts": {"connect": "1s", "send": "5s", "read": "60s"}})],
                     gateway={"shutdown_timeout": "60s"})
    t = threading.Thread(target=lambda: _swallow(lambda: requests.get(g.url + "/hang?delay=30", timeout=40)), daemon=True)
    t.start()
    backend.wait_requests(1)
    g.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert g.proc.poll() is None  # draining the hanging request
    # the status listener answers while draining, and says so (once the signal is handled)
    wait_until(lambda: requests.get(g.status_url + "/healthz", timeout=5).status_code == 503, what="/healthz 503")
    assert requests.get(g.status_url + "/healthz", timeout=5).text == "draining\n"
    g.signal(signal.SIGTERM)
    g.proc.wait(15)  # not the 30 s the request would take, nor the 60 s grace period
    assert g.proc.returncode == 0
