"""TCP stream services end to end: a real redis-server behind a route (redis-cli, redis-benchmark),
matching on server_addr / server_port / remote_addr, full-duplex proxying (half-close both
ways, large transfers, backpressure with bounded memory, idle timeout, failover to the next
node), listeners that follow reloads, the ip-restriction, limit-conn and prometheus plugins,
TCP health checks, and configuration errors."""
import hashlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

import helpers
from helpers import free_port, pattern_chunks, pattern_sha256, validate, wait_until
from stream_backend import StreamBackend

GIB = 1 << 30
RSS_LIMIT_KIB = 64 * 1024



def settled(g, name, want, **labels):
    """Waits for a session counter: a session is counted when the gateway has seen it end,
    which can be just after the client saw its last byte."""
    wait_until(lambda: (g.metrics().get(name, **labels) or 0) == want, what="%s%r == %d" % (name, labels, want))

def stream_service(name, nodes, routes, **upstream):
    up = {"scheme": "tcp", "nodes": [{"address": n.address if hasattr(n, "address") else n} for n in nodes],
          "timeouts": {"connect": "1s"}}
    up.update(upstream)
    return {"name": name, "type": "stream", "upstream": up, "routes": routes}


def connect(port, host="127.0.0.1", source=None, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def read_all(s):
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return out
        if not d:
            return out
        out += d


def roundtrip(port, data=b"ping\n", host="127.0.0.1", source=None):
    """Connects, sends data, half-closes and returns everything read until the close. A
    connection the gateway closes at once may be reset (our bytes were unread): b""."""
    s = connect(port, host, source)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except socket.timeout:
            raise
        except OSError:
            pass  # closed by the gateway already: read what came before
        return read_all(s)
    finally:
        s.close()


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise AssertionError("closed after %d of %d bytes" % (len(out), n))
        out += d
    return out


def closed_at_once(port, host="127.0.0.1", source=None):
    """True when the gateway closes a new connection without sending anything."""
    s = connect(port, host, source)
    try:
        return read_all(s) == b""
    finally:
        s.close()


@pytest.fixture
def make_stream_backend():
    made = []

    def make(mode="echo", **kw):
        b = StreamBackend(mode, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def dead_address():
    """An address where nothing listens: connecting is refused."""
    return "127.0.0.1:%d" % free_port()


# ---------------------------------------------------------------------------------------------
# a real redis-server behind the gateway


@pytest.fixture
def redis_server(tmp_path):
    exe = shutil.which("redis-server")
    if not exe:
        pytest.fail("redis-server is not installed (scripts/install-deps installs it)", pytrace=False)
    port = free_port()
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", str(tmp_path), "--loglevel", "warning"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def ready():
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "PING"], capture_output=True, text=True,
                           timeout=10)
        return r.stdout.strip() == "PONG"

    try:
        wait_until(ready, timeout=15, what="redis-server to answer PING")
        yield "127.0.0.1:%d" % port
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_redis_cli_and_benchmark(make_gateway, redis_server):
    port = free_port()
    g = make_gateway([stream_service("redis", [redis_server],
                                     [{"name": "redis", "server_addr": "127.0.0.1", "server_port": port,
                                       "plugins": {"prometheus": {}}}])])

    def cli(*args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + list(args), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert cli("PING") == "PONG"
    assert cli("SET", "sluice:key", "through the gateway") == "OK"
    assert cli("GET", "sluice:key") == "through the gateway"
    assert cli("INCRBY", "sluice:n", "41") == "41"
    # the value is really in redis: read it back directly, not through the gateway
    host, rport = redis_server.split(":")
    r = subprocess.run(["redis-cli", "-h", host, "-p", rport, "GET", "sluice:n"], capture_output=True, text=True,
                       timeout=30)
    assert r.stdout.strip() == "41"

    r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", "2000", "-c", "8", "-t",
                        "ping,set,get", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.replace("\r", "\n").splitlines() if "requests per second" in ln]
    assert len(lines) >= 4, r.stdout  # PING_INLINE, PING_MBULK, SET, GET
    assert cli("DBSIZE") != "0"

    # redis-cli has exited, but its FIN reaches the gateway's loop in its own time: wait for the session to end
    wait_until(lambda: g.metrics().get("sluice_stream_connections_active", service="redis", route="redis") == 0,
               what="the last session to close")
    m = g.metrics()
    assert m.get("sluice_stream_sessions_total", service="redis", route="redis", status=502) == 0
    assert m.get("sluice_stream_sessions_total", service="redis", route="redis", status=200) >= 5


# ---------------------------------------------------------------------------------------------
# matching


def test_product_example_server_addr(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("mysql", [b], [{"name": "mysql-route", "server_addr": "127.0.0.10",
                                                      "server_port": port}])])
    assert roundtrip(port, b"select 1;\n", host="127.0.0.10") == b"select 1;\n"
    with pytest.raises(ConnectionRefusedError):
        connect(port, host="127.0.0.11")
    assert b.count() == 1
    g.check_alive()


def test_routes_share_a_port_by_server_addr(make_gateway, make_stream_backend):
    a = make_stream_backend("greet", greeting=b"A\n")
    b = make_stream_backend("greet", greeting=b"B\n")
    c = make_stream_backend("greet", greeting=b"C\n")
    port, port2 = free_port(), free_port()
    make_gateway([
        stream_service("a", [a], [{"name": "ten", "server_addr": "127.0.0.10", "server_port": port}]),
        stream_service("b", [b], [{"name": "eleven", "server_addr": "127.0.0.11", "server_port": port}]),
        # one route on one address and one on a whole range share the range's wildcard socket:
        # the address the client connected to picks the route, the first match winning
        stream_service("c", [c], [{"name": "twenty", "server_addr": "127.0.0.20", "server_port": port2},
                                  {"name": "loopback", "server_addr": "127.0.0.0/8", "server_port": port2}]),
        stream_service("a2", [a], [{"name": "also-twenty", "server_addr": "127.0.0.20", "server_port": port2}]),
    ])
    assert roundtrip(port, host="127.0.0.10") == b"A\n"
    assert roundtrip(port, host="127.0.0.11") == b"B\n"
    with pytest.raises(ConnectionRefusedError):
        connect(port, host="127.0.0.12")
    assert roundtrip(port2, host="127.0.0.20") == b"C\n"
    assert roundtrip(port2, host="127.0.0.21") == b"C\n"
    assert a.count() == 1 and b.count() == 1 and c.count() == 2


def test_routes_share_a_port_by_remote_addr(make_gateway, make_stream_backend):
    a = make_stream_backend("greet", greeting=b"A\n")
    b = make_stream_backend("greet", greeting=b"B\n")
    port = free_port()
    g = make_gateway([stream_service("svc", [a], [
        {"name": "two", "server_addr": "127.0.0.1", "server_port": port, "remote_addr": "127.0.0.2",
         "plugins": {"prometheus": {}}},
    ]), stream_service("svc-b", [b], [
        {"name": "three", "server_addr": "127.0.0.1", "server_port": port, "remote_addr": "127.0.0.3/32"},
    ])])
    assert roundtrip(port, source="127.0.0.2") == b"A\n"
    assert roundtrip(port, source="127.0.0.3") == b"B\n"
    # no route takes 127.0.0.4: closed at once, nothing reaches an upstream
    assert closed_at_once(port, source="127.0.0.4")
    assert a.count() == 1 and b.count() == 1
    assert [c["peer"][0] for c in a.snapshot()] == ["127.0.0.1"]  # the gateway's own connection
    m = g.metrics()
    assert m.get("sluice_stream_connections_total", service="svc", route="two") == 1


# ---------------------------------------------------------------------------------------------
# proxying


def test_half_close_client_first(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    make_gateway([stream_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port}])])
    s = connect(port)
    s.sendall(b"first ")
    assert recv_exact(s, 6) == b"first "
    s.sendall(b"and last")
    s.shutdown(socket.SHUT_WR)  # our FIN reaches the backend, which then ends its side too
    assert read_all(s) == b"and last"
    s.close()
    wait_until(lambda: b.snapshot()[0]["done"], what="the backend to see the end")
    assert b.snapshot()[0]["received"] == 14


def test_half_close_upstream_first(make_gateway, make_stream_backend):
    b = make_stream_backend("greet", greeting=b"greetings, then FIN\n")
    port = free_port()
    make_gateway([stream_service("greet", [b], [{"name": "g", "server_addr": "127.0.0.1", "server_port": port}])])
    s = connect(port)
    assert read_all(s) == b"greetings, then FIN\n"  # the upstream's FIN reached us
    # our direction still works after the other one ended
    s.sendall(b"still talking")
    time.sleep(0.2)
    s.sendall(b", done")
    s.shutdown(socket.SHUT_WR)
    wait_until(lambda: b.snapshot()[0]["done"], what="the backend to read our FIN")
    assert b.snapshot()[0]["data"] == b"still talking, done"
    assert read_all(s) == b""
    s.close()


def upload(port, n, seed):
    """Sends n pattern bytes to a sink backend through the gateway; returns its "<n> <sha>" answer."""
    s = connect(port, timeout=120)
    try:
        for piece in pattern_chunks(n, seed, chunk=262144 if n >= 262144 else 65536):
            s.sendall(piece)
        s.shutdown(socket.SHUT_WR)
        return read_all(s).decode().split()
    finally:
        s.close()


def download(port, pause_at=None, pause_s=0):
    """Reads everything a source backend sends; returns (bytes, sha256)."""
    s = connect(port, timeout=120)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    h = hashlib.sha256()
    n = 0
    paused = False
    try:
        s.shutdown(socket.SHUT_WR)
        while True:
            d = s.recv(262144)
            if not d:
                break
            h.update(d)
            n += len(d)
            if pause_at is not None and not paused and n >= pause_at:
                paused = True
                time.sleep(pause_s)
        return n, h.hexdigest()
    finally:
        s.close()


def test_large_transfer_each_way(make_gateway, make_stream_backend):
    n = 256 << 20
    sink = make_stream_backend("sink")
    source = make_stream_backend("source", source_bytes=n, source_seed=32)
    up_port, down_port = free_port(), free_port()
    g = make_gateway([
        stream_service("sink", [sink], [{"name": "up", "server_addr": "127.0.0.1", "server_port": up_port,
                                         "plugins": {"prometheus": {}}}]),
        stream_service("source", [source], [{"name": "down", "server_addr": "127.0.0.1", "server_port": down_port,
                                             "plugins": {"prometheus": {}}}]),
    ])
    assert upload(up_port, n, 31) == [str(n), pattern_sha256(n, 31)]
    assert download(down_port) == (n, pattern_sha256(n, 32))
    m = g.metrics()

    def got(route, direction, side):
        return m.get("sluice_stream_%s_bytes_total" % direction, service=route[0], route=route[1], side=side)

    assert got(("sink", "up"), "received", "client") == n
    assert got(("sink", "up"), "sent", "upstream") == n
    assert got(("source", "down"), "received", "upstream") == n
    assert got(("source", "down"), "sent", "client") == n


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def test_release_memory_bounded_with_slow_readers(make_gateway, make_stream_backend, release_bin):
    """1 GiB each way, with the reader on the far side stopping for 2 s after 8 MiB: the gateway
    stops reading the fast side instead of buffering, so its peak RSS stays bounded."""
    sink = make_stream_backend("sink", slow_after=8 << 20, slow_for=2.0)
    source = make_stream_backend("source", source_bytes=GIB, source_seed=42)
    up_port, down_port = free_port(), free_port()
    g = make_gateway([
        stream_service("sink", [sink], [{"name": "up", "server_addr": "127.0.0.1", "server_port": up_port}]),
        stream_service("source", [source], [{"name": "down", "server_addr": "127.0.0.1", "server_port": down_port}]),
    ], binary=release_bin)
    hwm_start = vm_hwm_kib(g.proc.pid)
    assert upload(up_port, GIB, 41) == [str(GIB), pattern_sha256(GIB, 41)]
    assert download(down_port, pause_at=8 << 20, pause_s=2) == (GIB, pattern_sha256(GIB, 42))
    hwm = vm_hwm_kib(g.proc.pid)
    print("gateway VmHWM: start %d KiB, end %d KiB" % (hwm_start, hwm))
    assert hwm < RSS_LIMIT_KIB, "peak RSS %d KiB (at start %d KiB) exceeds %d KiB" % (hwm, hwm_start, RSS_LIMIT_KIB)
    assert g.stop() == 0


def test_idle_timeout(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port,
                                                    "plugins": {"prometheus": {}}}],
                                     timeouts={"connect": "1s", "idle": "1500ms"})])
    s = connect(port)
    # traffic every 0.5s for 3s, twice the idle timeout: a timer that traffic did not restart
    # would end the session inside this loop
    for i in range(7):
        if i:
            time.sleep(0.5)
        sent = time.monotonic()
        s.sendall(b"x")
        assert recv_exact(s, 1) == b"x"
    assert read_all(s) == b""  # then, with nothing moving, the gateway closes it
    # not at once: idle is counted from the last byte moved (a wide margin below 1.5s, since
    # the gateway's clock and ours start at slightly different moments)
    assert time.monotonic() - sent >= 1.0
    s.close()
    wait_until(lambda: g.metrics().get("sluice_stream_sessions_total", service="echo", route="e", status=200) == 1,
               what="the idle session counted as closed normally")


def test_connect_failure_moves_to_the_next_node(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    dead = dead_address()
    port, port1 = free_port(), free_port()
    g = make_gateway([
        stream_service("two", [dead, b], [{"name": "tries2", "server_addr": "127.0.0.1", "server_port": port,
                                           "plugins": {"prometheus": {}}}], balance="round_robin"),
        stream_service("one", [dead, b], [{"name": "tries1", "server_addr": "127.0.0.1", "server_port": port1,
                                           "plugins": {"prometheus": {}}}], balance="round_robin", tries=1),
    ])
    # every session reaches the live node, though round robin offers the dead one first each time
    for i in range(6):
        assert roundtrip(port, b"n%d" % i) == b"n%d" % i
    assert b.count() == 6
    # with one try, the sessions that drew the dead node fail (closed with no data) and count as 502
    results = [roundtrip(port1, b"m") for _ in range(6)]
    assert results.count(b"m") == 3 and results.count(b"") == 3, results
    m = g.metrics()
    settled(g, "sluice_stream_sessions_total", 6, service="two", route="tries2", status=200)
    settled(g, "sluice_stream_sessions_total", 3, service="one", route="tries1", status=502)
    settled(g, "sluice_stream_sessions_total", 3, service="one", route="tries1", status=200)
def test_connect_timeout_moves_to_the_next_node(make_gateway, make_stream_backend):
    # a listener whose accept queue is full drops new SYNs: connecting to it times out
    full = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(full.getsockname())
            fillers.append(c)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.5)
        with pytest.raises(socket.timeout):
            probe.connect(full.getsockname())
        probe.close()

        b = make_stream_backend("echo")
        port = free_port()
        g = make_gateway([stream_service("t", ["127.0.0.1:%d" % full.getsockname()[1], b],
                                         [{"name": "t", "server_addr": "127.0.0.1", "server_port": port,
                                           "plugins": {"prometheus": {}}}],
                                         balance="round_robin", timeouts={"connect": "300ms"})])
        t0 = time.monotonic()
        assert roundtrip(port, b"late but there") == b"late but there"
        assert time.monotonic() - t0 >= 0.3  # the first node's connect timed out first
        assert b.count() == 1
        # the session ends (and is counted) once the gateway has seen both sides close
        wait_until(lambda: g.metrics().get("sluice_stream_sessions_total", service="t", route="t", status=200) == 1,
                   what="the session counted")
    finally:
        for c in fillers:
            c.close()
        full.close()


def test_hash_on_client_address(make_gateway, make_stream_backend):
    backends = [make_stream_backend("echo") for _ in range(3)]
    port = free_port()
    make_gateway([stream_service("h", backends, [{"name": "h", "server_addr": "127.0.0.1", "server_port": port}],
                                 balance="hash", hash={"on": "ip"})])
    chosen = {}
    for client in ["127.0.0.%d" % i for i in range(2, 10)]:
        for _ in range(3):
            before = [b.count() for b in backends]
            assert roundtrip(port, b"x", source=client) == b"x"
            after = [b.count() for b in backends]
            node = [i for i in range(3) if after[i] != before[i]]
            assert len(node) == 1
            chosen.setdefault(client, set()).add(node[0])
    assert all(len(v) == 1 for v in chosen.values()), chosen  # a client sticks to its node
    assert len({next(iter(v)) for v in chosen.values()}) > 1, chosen  # clients spread over nodes


# ---------------------------------------------------------------------------------------------
# reloads


def test_reload_listeners_follow_and_sessions_survive(make_gateway, make_stream_backend):
    a = make_stream_backend("echo")
    b = make_stream_backend("greet", greeting=b"new route\n")
    p1, p2 = free_port(), free_port()
    g = make_gateway([stream_service("a", [a], [{"name": "old", "server_addr": "127.0.0.1", "server_port": p1}])])
    with pytest.raises(ConnectionRefusedError):
        connect(p2)
    s = connect(p1)
    s.sendall(b"before ")
    assert recv_exact(s, 7) == b"before "

    g.reload([stream_service("b", [b], [{"name": "new", "server_addr": "127.0.0.1", "server_port": p2}])])
    # the new port accepts right after the reload, with no restart
    assert roundtrip(p2) == b"new route\n"
    # the removed one is closed for new connections
    wait_until(lambda: _refused(p1), what="the removed route's port to refuse connections")
    # the session that started before the reload carries on with its generation
    s.sendall(b"after")
    assert recv_exact(s, 5) == b"after"
    s.shutdown(socket.SHUT_WR)
    assert read_all(s) == b""
    s.close()
    assert a.snapshot()[0]["received"] == 12


def _refused(port):
    try:
        c = connect(port, timeout=2)
    except ConnectionRefusedError:
        return True
    c.close()
    return False


def test_reload_changing_a_service_type_is_rejected(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    svc = stream_service("db", [b], [{"name": "db", "server_addr": "127.0.0.1", "server_port": port}])
    g = make_gateway([svc])
    assert roundtrip(port, b"1") == b"1"
    http_db = {"name": "db", "upstream": {"nodes": [{"address": b.address}]}, "routes": [{"paths": ["/*"]}]}
    g.reload([http_db], expect="failure")
    err = g.stderr_text()
    assert re.search(r"services\[0\]\.type: service 'db' is stream in the running configuration and cannot "
                     r"become http", err), err[-2000:]
    # the running configuration stays
    assert roundtrip(port, b"2") == b"2"
    g.reload([svc])
    assert roundtrip(port, b"3") == b"3"


# ---------------------------------------------------------------------------------------------
# plugins


def test_ip_restriction(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    pw, pb = free_port(), free_port()
    g = make_gateway([stream_service("svc", [b], [
        {"name": "white", "server_addr": "127.0.0.1", "server_port": pw,
         "plugins": {"ip-restriction": {"whitelist": ["127.0.0.2", "127.0.1.0/24"]}, "prometheus": {}}},
        {"name": "black", "server_addr": "127.0.0.1", "server_port": pb,
         "plugins": {"ip-restriction": {"blacklist": ["127.0.0.2"]}, "prometheus": {}}},
    ])])
    assert roundtrip(pw, b"w", source="127.0.0.2") == b"w"
    assert roundtrip(pw, b"w", source="127.0.1.7") == b"w"
    assert roundtrip(pb, b"b", source="127.0.0.3") == b"b"
    before = b.count()
    # refused clients are closed before any upstream connection is made
    assert closed_at_once(pw, source="127.0.0.3")
    assert closed_at_once(pb, source="127.0.0.2")
    assert b.count() == before == 3
    m = g.metrics()
    settled(g, "sluice_stream_sessions_total", 1, service="svc", route="white", status=403)
    settled(g, "sluice_stream_sessions_total", 1, service="svc", route="black", status=403)
    settled(g, "sluice_stream_sessions_total", 2, service="svc", route="white", status=200)
def test_limit_conn_at_inside_and_beyond_the_burst(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    delay = 1.0
    g = make_gateway([stream_service("svc", [b], [
        {"name": "lim", "server_addr": "127.0.0.1", "server_port": port,
         "plugins": {"limit-conn": {"conn": 2, "burst": 2, "default_conn_delay": "1s", "key": "remote_addr"},
                     "prometheus": {}}},
    ])])

    def open_session(source="127.0.0.2"):
        s = connect(port, source=source, timeout=15)
        s.sendall(b"?")
        return s

    # up to conn: through at once
    held = [open_session() for _ in range(2)]
    for s in held:
        assert recv_exact(s, 1) == b"?"
    # inside the burst: through after default_conn_delay
    t0 = time.monotonic()
    delayed = [open_session() for _ in range(2)]
    wait_until(lambda: b.count() >= 2 and g.metrics().get("sluice_stream_connections_active", service="svc",
                                                            route="lim") == 4,
               what="four sessions counted")
    # beyond the burst: closed, nothing reaches the upstream
    assert closed_at_once(port, source="127.0.0.2")
    assert closed_at_once(port, source="127.0.0.2")
    # another client has its own count
    other = open_session(source="127.0.0.3")
    assert recv_exact(other, 1) == b"?"
    other.close()
    for s in delayed:
        assert recv_exact(s, 1) == b"?"
    assert time.monotonic() - t0 >= delay  # they were held back at least default_conn_delay
    assert b.count() == 5
    m = g.metrics()
    settled(g, "sluice_stream_sessions_total", 2, service="svc", route="lim", status=503)
    # once sessions end, their places are free again
    for s in held + delayed:
        s.close()
    wait_until(lambda: g.metrics().get("sluice_stream_connections_active", service="svc", route="lim") == 0,
               what="sessions closed")
    again = [open_session() for _ in range(2)]
    for s in again:
        assert recv_exact(s, 1) == b"?"
        s.close()
    assert b.count() == 7


def test_limit_conn_by_server_addr_across_workers(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("svc", [b], [
        {"name": "lim", "server_addr": "127.0.0.0/8", "server_port": port,
         "plugins": {"limit-conn": {"conn": 3, "burst": 0, "default_conn_delay": 0.1, "key": "server_addr"},
                     "prometheus": {}}},
    ])], gateway={"workers": 2})
    # many clients, one server address: exactly conn sessions pass, whichever worker took them
    held = []
    for i in range(8):
        s = connect(port, host="127.0.0.30", source="127.0.0.%d" % (40 + i))
        held.append(s)
    answers = []
    for s in held:
        try:
            s.sendall(b"?")
            answers.append(s.recv(1))
        except (BrokenPipeError, ConnectionResetError):
            answers.append(b"")
    assert answers.count(b"?") == 3 and answers.count(b"") == 5, answers
    # another server address counts on its own
    assert roundtrip(port, b"!", host="127.0.0.31") == b"!"
    for s in held:
        s.close()
    m = g.metrics()
    settled(g, "sluice_stream_sessions_total", 5, service="svc", route="lim", status=503)
def test_metrics(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("svc", [b, dead_address()], [
        {"name": "m", "server_addr": "127.0.0.1", "server_port": port, "remote_addr": "127.0.0.0/8",
         "plugins": {"prometheus": {}, "ip-restriction": {"blacklist": ["127.0.0.9"]}}},
        {"name": "quiet", "server_addr": "127.0.0.1", "server_port": port},
    ], balance="round_robin", tries=1)])
    s = connect(port)
    s.sendall(b"12345")
    assert recv_exact(s, 5) == b"12345"
    m = g.metrics()
    assert m.get("sluice_stream_connections_total", service="svc", route="m") == 1
    assert m.get("sluice_stream_connections_active", service="svc", route="m") == 1
    s.sendall(b"678")
    s.shutdown(socket.SHUT_WR)
    assert read_all(s) == b"678"
    s.close()
    assert closed_at_once(port, source="127.0.0.9")  # 403
    assert closed_at_once(port)                       # the dead node: 502
    wait_until(lambda: g.metrics().get("sluice_stream_connections_active", service="svc", route="m") == 0,
               what="no session open")
    m = g.metrics()
    assert m.get("sluice_stream_connections_total", service="svc", route="m") == 3
    for direction, side in (("received", "client"), ("sent", "upstream"), ("received", "upstream"),
                            ("sent", "client")):
        assert m.get("sluice_stream_%s_bytes_total" % direction, service="svc", route="m", side=side) == 8
    assert m.get("sluice_stream_session_duration_seconds_count", service="svc", route="m") == 3
    assert m.get("sluice_stream_session_duration_seconds_bucket", service="svc", route="m", le="+Inf") == 3
    assert m.get("sluice_stream_session_duration_seconds_sum", service="svc", route="m") > 0
    statuses = {int(ls["status"]): v for ls, v in m.series("sluice_stream_sessions_total") if ls["route"] == "m"}
    assert statuses == {200: 1, 400: 0, 403: 1, 500: 0, 502: 1, 503: 0}
    # routes without the plugin have no series; the upstream's nodes have theirs
    assert not [ls for ls, _ in m.series("sluice_stream_connections_total") if ls["route"] == "quiet"]
    assert m.get("sluice_upstream_node_healthy", service="svc", node=b.address) == 1


def test_resets_count_by_side(make_gateway, make_stream_backend):
    echo = make_stream_backend("echo")
    rst = make_stream_backend("reset")
    pe, pr = free_port(), free_port()
    g = make_gateway([
        stream_service("echo", [echo], [{"name": "e", "server_addr": "127.0.0.1", "server_port": pe,
                                         "plugins": {"prometheus": {}}}]),
        stream_service("rst", [rst], [{"name": "r", "server_addr": "127.0.0.1", "server_port": pr,
                                       "plugins": {"prometheus": {}}}]),
    ])
    # the client resets its connection: a client problem
    s = connect(pe)
    s.sendall(b"abc")
    assert recv_exact(s, 3) == b"abc"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    # the upstream resets: the client's connection ends, and the gateway counts a 502
    s = connect(pr)
    s.sendall(b"abc")
    assert read_all(s) == b""
    s.close()
    wait_until(lambda: g.metrics().get("sluice_stream_sessions_total", service="echo", route="e", status=400) == 1,
               what="the client reset counted as 400")
    wait_until(lambda: g.metrics().get("sluice_stream_sessions_total", service="rst", route="r", status=502) == 1,
               what="the upstream reset counted as 502")
    assert echo.snapshot()[0]["done"]


def test_shutdown_drains_sessions(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port}])],
                     gateway={"shutdown_timeout": "1s"})
    done = connect(port)
    done.sendall(b"a")
    assert recv_exact(done, 1) == b"a"
    stuck = connect(port)
    stuck.sendall(b"b")
    assert recv_exact(stuck, 1) == b"b"
    g.signal(signal.SIGTERM)
    # listeners close at once; open sessions go on during the grace period
    wait_until(lambda: _refused(port), what="the listener closed")
    done.sendall(b"c")
    assert recv_exact(done, 1) == b"c"
    done.shutdown(socket.SHUT_WR)
    assert read_all(done) == b""
    # the one still open at the end of the grace period is closed, and the process exits
    assert read_all(stuck) == b""
    g.proc.wait(15)
    assert g.proc.returncode == 0


def test_health_checks_take_a_node_out_and_back(make_gateway, make_stream_backend):
    a = make_stream_backend("echo")
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("hc", [a, b], [{"name": "hc", "server_addr": "127.0.0.1", "server_port": port}],
                                     balance="round_robin", tries=1,
                                     health_check={"interval": "500ms", "timeout": "500ms", "healthy_threshold": 1,
                                                   "unhealthy_threshold": 1})])

    def healthy(node):
        return g.metrics().get("sluice_upstream_node_healthy", service="hc", node=node.address)

    wait_until(lambda: healthy(a) == 1 and healthy(b) == 1, what="both nodes healthy")
    b_port = b.port
    b.close()
    wait_until(lambda: healthy(b) == 0, what="the killed node marked unhealthy")
    def sessions(node):
        # connections that carried bytes: the health checks connect too, but send nothing
        return sum(1 for c in node.snapshot() if c["received"])

    # with one try and the dead node out of rotation, every session reaches the live one
    before = sessions(a)
    for i in range(6):
        assert roundtrip(port, b"%d" % i) == b"%d" % i
    assert sessions(a) == before + 6
    # the node comes back on the same port and takes traffic again
    b2 = make_stream_backend("echo", port=b_port)
    wait_until(lambda: healthy(b) == 1, what="the node back to healthy")
    for i in range(6):
        assert roundtrip(port, b"%d" % i) == b"%d" % i
    assert sessions(b2) >= 2


def test_health_check_send_expect_with_redis(make_gateway, redis_server):
    """A TCP check with a payload: PING must be answered +PONG."""
    port = free_port()
    g = make_gateway([stream_service("redis", [redis_server, dead_address()],
                                     [{"name": "r", "server_addr": "127.0.0.1", "server_port": port}],
                                     health_check={"interval": "500ms", "timeout": "500ms", "send": "PING\r\n",
                                                   "expect": "+PONG", "healthy_threshold": 1,
                                                   "unhealthy_threshold": 1})])
    dead = g.services[0]["upstream"]["nodes"][1]["address"]
    wait_until(lambda: g.metrics().get("sluice_upstream_node_healthy", service="redis", node=dead) == 0,
               what="the dead node marked unhealthy")
    wait_until(lambda: g.metrics().get("sluice_upstream_health_checks_total", service="redis", node=redis_server,
                                       result="success") >= 2, what="redis answering the checks")
    assert g.metrics().get("sluice_upstream_node_healthy", service="redis", node=redis_server) == 1
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "PING"], capture_output=True, text=True,
                       timeout=30)
    assert r.stdout.strip() == "PONG"


# ---------------------------------------------------------------------------------------------
# configuration errors

ERR_RE = helpers.ERR_RE

BAD_STREAM = """\
services:
  - name: db
    type: stream
    upstream:
      scheme: tcp
      keepalive: {max_idle: 4}
      nodes: [127.0.0.1:6379]
    routes:
      - name: r1
        server_addr: 127.0.0.300
        server_port: 6380
        paths: ["/x"]
        plugins:
          limit_conn: {conn: 1, burst: 0, default_conn_delay: 1s}
  - name: web
    upstream: {scheme: udp, nodes: [127.0.0.1:53]}
    routes:
      - server_port: 53
"""


def test_config_errors_with_file_line_col(sluice_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD_STREAM)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (r.stdout, r.stderr)
    errs = {e[2]: e for e in helpers.parse_errors(p, r.stderr, ERR_RE)}
    assert errs["services[0].upstream.keepalive"][:2] == (6, 7), errs
    assert "only for http services" in errs["services[0].upstream.keepalive"][3]
    assert errs["services[0].routes[0].server_addr"][:2] == (10, 22)
    assert errs["services[0].routes[0].paths"][:2] == (12, 9)
    assert errs["services[0].routes[0].plugins.limit_conn"][:2] == (14, 11)
    assert "did you mean 'limit-conn'?" in errs["services[0].routes[0].plugins.limit_conn"][3]
    assert errs["services[1].upstream.scheme"][3] == "'udp' is for stream services (type: stream)"
    assert errs["services[1].routes[0].server_port"][3] == "only valid on stream routes"
    assert len(errs) == 6, errs
