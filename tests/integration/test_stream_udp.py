"""UDP stream services end to end: a real DNS server (dnsmasq) behind a route, queried with dig,
many clients at once; a session per client with its own upstream socket, 65,507-byte datagrams
both ways, the idle timeout, max_sessions, matching on remote_addr, ip-restriction and
limit-conn, a refused node (ICMP port unreachable) taken out by passive checks, listeners that
follow reloads while running sessions carry on, metrics, and configuration errors."""
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import helpers
from helpers import validate, wait_until
from udp_backend import UdpBackend

MAX_DATAGRAM = 65507


def free_udp_port(host="127.0.0.1", tcp_too=False):
    """A UDP port that was free a moment ago and that this test session has not handed out;
    with tcp_too, free for TCP as well (dnsmasq listens on both)."""
    with helpers._port_lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM) if tcp_too else None
            try:
                s.bind((host, 0))
                port = s.getsockname()[1]
                if t:
                    t.bind((host, port))
            except OSError:
                continue
            finally:
                s.close()
                if t:
                    t.close()
            if port not in helpers._ports_given:
                helpers._ports_given.add(port)
                return port
    raise RuntimeError("no free UDP port")


def udp_service(name, nodes, routes, **upstream):
    up = {"scheme": "udp", "nodes": [{"address": n.address if hasattr(n, "address") else n} for n in nodes]}
    up.update(upstream)
    return {"name": name, "type": "stream", "upstream": up, "routes": routes}


def client(source="127.0.0.1", timeout=2.0):
    """A client socket of its own (one address and port: one session)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    return s


def ask(sock, port, data, host="127.0.0.1"):
    """Sends one datagram; returns the reply, or None when none came within the socket's timeout."""
    sock.sendto(data, (host, port))
    try:
        reply, peer = sock.recvfrom(65536)
    except socket.timeout:
        return None
    # the reply comes from the address and port the client sent to
    assert peer == (host, port), peer
    return reply


def ask_once(port, data, source="127.0.0.1", host="127.0.0.1", timeout=2.0):
    s = client(source, timeout)
    try:
        return ask(s, port, data, host)
    finally:
        s.close()


def refused(port, host="127.0.0.1"):
    """True when nothing takes datagrams on the port (ICMP port unreachable). False when the
    probe was answered, or dropped (read by a listener as it stopped): ask again."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.connect((host, port))
        s.send(b"anyone?")
        s.recv(100)
        return False
    except ConnectionRefusedError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


@pytest.fixture
def make_udp_backend():
    made = []

    def make(tag=b"", **kw):
        b = UdpBackend(tag, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def sessions(g, service, route, status):
    return g.metrics().get("sluice_stream_sessions_total", service=service, route=route, status=status)


def active(g, service, route):
    return g.metrics().get("sluice_stream_connections_active", service=service, route=route)


# ---------------------------------------------------------------------------------------------
# a real DNS server behind the gateway

NAMES = 40


@pytest.fixture
def dnsmasq(tmp_path):
    exe = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.access("/usr/sbin/dnsmasq", os.X_OK) else None)
    if not exe or not shutil.which("dig"):
        pytest.fail("dnsmasq or dig is not installed (scripts/install-deps installs dnsmasq-base and dnsutils)", pytrace=False)
    port = free_udp_port(tcp_too=True)
    # every name its own answer; anything else under example.test one shared answer
    records = ["--address=/n%d.example.test/10.77.0.%d" % (i, i + 1) for i in range(NAMES)]
    log = open(str(tmp_path / "dnsmasq.log"), "wb")
    # in the foreground, on loopback only, with no upstream servers and no hosts file: it answers
    # from the records given here; --user keeps it from switching to an account that may not exist
    p = subprocess.Popen([exe, "--no-daemon", "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces",
                          "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
                          "--user=" + getpass.getuser(), "--address=/example.test/10.1.2.3"] + records,
                         stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: p.poll() is not None or dig(port, "ready.example.test") == "10.1.2.3", timeout=15,
                   what="dnsmasq to answer")
        if p.poll() is not None:
            pytest.fail("dnsmasq exited: %s" % (tmp_path / "dnsmasq.log").read_text())
        yield "127.0.0.1:%d" % port
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def dig_args(port, name, tries=1, wait=2, source_port=None):
    """dig's command line; with source_port, it sends from that port (a client of its own)."""
    bind = ["-b", "127.0.0.1#%d" % source_port] if source_port else []
    return ["dig", "@127.0.0.1", "-p", str(port)] + bind + ["+short", "+tries=%d" % tries, "+time=%d" % wait, name, "A"]


def dig(port, name, **kw):
    r = subprocess.run(dig_args(port, name, **kw), capture_output=True, text=True, timeout=60)
    return r.stdout.strip()


def test_dnsmasq_behind_a_udp_route(make_gateway, dnsmasq):
    port = free_udp_port()
    g = make_gateway([udp_service("dns", [dnsmasq], [{"name": "dns", "server_addr": "127.0.0.1", "server_port": port,
                                                      "plugins": {"prometheus": {}}}],
                                  timeouts={"idle": "2s"})])
    assert dig(port, "www.example.test", tries=3, source_port=free_udp_port()) == "10.1.2.3"
    assert dig(port, "n7.example.test", tries=3, source_port=free_udp_port()) == "10.77.0.8"

    # many clients at once, each asking its own name from its own port: every one gets its own
    # answer
    procs = [subprocess.Popen(dig_args(port, "n%d.example.test" % i, tries=3, wait=3, source_port=free_udp_port()),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(NAMES)]
    answers = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        answers.append(out.decode().strip())
    assert answers == ["10.77.0.%d" % (i + 1) for i in range(NAMES)], answers

    # each dig is a client of its own: a session each, ended by the idle timeout
    assert g.metrics().get("sluice_stream_connections_total", service="dns", route="dns") == NAMES + 2
    wait_until(lambda: active(g, "dns", "dns") == 0, timeout=20, what="every session idle")
    m = g.metrics()
    assert m.get("sluice_stream_sessions_total", service="dns", route="dns", status=200) == NAMES + 2
    assert m.get("sluice_stream_received_bytes_total", service="dns", route="dns", side="client") == \
        m.get("sluice_stream_sent_bytes_total", service="dns", route="dns", side="upstream") > 0
    assert m.get("sluice_stream_received_bytes_total", service="dns", route="dns", side="upstream") == \
        m.get("sluice_stream_sent_bytes_total", service="dns", route="dns", side="client") > 0


# ---------------------------------------------------------------------------------------------
# sessions


def test_session_per_client_and_largest_datagrams(make_gateway, make_udp_backend):
    b = make_udp_backend()
    port = free_udp_port()
    g = make_gateway([udp_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port,
                                                  "plugins": {"prometheus": {}}}], timeouts={"idle": "3s"})])
    one, two = client(), client()
    try:
        assert ask(one, port, b"one-a") == b"one-a"
        assert ask(two, port, b"two-a") == b"two-a"
        assert ask(one, port, b"one-b") == b"one-b"
        # 65,507 bytes, the largest UDP payload over IPv4, both ways byte for byte
        big = bytes((i * 7 + 3) & 0xFF for i in range(MAX_DATAGRAM))
        assert ask(two, port, big) == big
        # two clients, two sessions: each with its own upstream socket
        assert len(b.peers()) == 2
        assert [p for p, n in b.received if n == MAX_DATAGRAM] == [b.peers()[1]]
        m = g.metrics()
        assert m.get("sluice_stream_connections_total", service="echo", route="e") == 2
        assert m.get("sluice_stream_connections_active", service="echo", route="e") == 2
    finally:
        one.close()
        two.close()
    wait_until(lambda: active(g, "echo", "e") == 0, what="both sessions idle")
    m = g.metrics()
    n = 5 + 5 + 5 + MAX_DATAGRAM
    for direction, side in (("received", "client"), ("sent", "upstream"), ("received", "upstream"),
                            ("sent", "client")):
        assert m.get("sluice_stream_%s_bytes_total" % direction, service="echo", route="e", side=side) == n
    assert m.get("sluice_stream_sessions_total", service="echo", route="e", status=200) == 2
    assert m.get("sluice_stream_session_duration_seconds_count", service="echo", route="e") == 2


def test_ipv6_clients(make_gateway, make_udp_backend):
    b = make_udp_backend(b"v6:")
    port = free_udp_port()
    make_gateway([udp_service("v6", [b], [{"name": "one", "server_addr": "::1", "server_port": port},
                                          {"name": "all", "server_addr": "::/0", "server_port": port}],
                              timeouts={"idle": "1s"})])
    c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    c.settimeout(2)
    try:
        c.bind(("::1", 0))
        c.sendto(b"over v6", ("::1", port))
        reply, peer = c.recvfrom(100)
        assert reply == b"v6:over v6"
        assert peer[:2] == ("::1", port)
    finally:
        c.close()
    # the IPv4 side of the port is not served (the wildcard socket is [::], IPv6 only)
    assert refused(port)


def test_idle_timeout_ends_a_session(make_gateway, make_udp_backend):
    b = make_udp_backend()
    port = free_udp_port()
    g = make_gateway([udp_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port,
                                                  "plugins": {"prometheus": {}}}], timeouts={"idle": "1500ms"})])
    c = client()
    try:
        t0 = time.monotonic()
        for i in range(5):  # traffic keeps the session alive past the idle timeout
            if i:
                time.sleep(0.5)
            assert ask(c, port, b"%d" % i) == b"%d" % i
        assert time.monotonic() - t0 >= 1.5
        assert len(b.peers()) == 1
        assert sessions(g, "echo", "e", 200) == 0
        # then, with nothing moving, the session ends
        wait_until(lambda: sessions(g, "echo", "e", 200) == 1, what="the idle session counted as a normal end")
        assert active(g, "echo", "e") == 0
        # the same client's next datagram opens a new session, on a new upstream socket
        assert ask(c, port, b"again") == b"again"
        assert len(b.peers()) == 2
        assert active(g, "echo", "e") == 1
    finally:
        c.close()


def test_max_sessions(make_gateway, make_udp_backend):
    b = make_udp_backend()
    port = free_udp_port()
    g = make_gateway([udp_service("capped", [b], [{"name": "c", "server_addr": "127.0.0.1", "server_port": port,
                                                    "plugins": {"prometheus": {}}}],
                                  max_sessions=2, timeouts={"idle": "2s"})])
    held = [client(), client()]
    late = [client(timeout=0.5) for _ in range(3)]
    try:
        for i, c in enumerate(held):
            assert ask(c, port, b"held%d" % i) == b"held%d" % i
        # the cap holds across both workers: new clients are dropped while two sessions are open
        for i, c in enumerate(late):
            for h in held:  # keep the held sessions busy, so they cannot end meanwhile
                assert ask(h, port, b"still") == b"still"
            assert ask(c, port, b"late%d" % i) is None
        assert b.count() == 2 + 2 * len(late)
        assert sessions(g, "capped", "c", 503) == len(late)
        assert active(g, "capped", "c") == 2
        # once the sessions end, places are free again
        wait_until(lambda: active(g, "capped", "c") == 0, what="the held sessions idle")
        late[0].settimeout(2)
        assert ask(late[0], port, b"now") == b"now"
    finally:
        for c in held + late:
            c.close()


def test_remote_addr_and_ip_restriction(make_gateway, make_udp_backend):
    a = make_udp_backend(b"A:")
    b = make_udp_backend(b"B:")
    shared, guarded = free_udp_port(), free_udp_port()
    g = make_gateway([
        udp_service("svc-a", [a], [
            {"name": "two", "server_addr": "127.0.0.1", "server_port": shared, "remote_addr": "127.0.0.2"},
            {"name": "white", "server_port": guarded,
             "plugins": {"ip-restriction": {"whitelist": ["127.0.0.2", "127.0.1.0/24"]}, "prometheus": {}}},
        ], timeouts={"idle": "1s"}),
        udp_service("svc-b", [b], [
            {"name": "three", "server_addr": "127.0.0.1", "server_port": shared, "remote_addr": "127.0.0.3/32",
             "plugins": {"prometheus": {}}},
        ], timeouts={"idle": "1s"}),
    ])
    # clients bound to different loopback addresses take different routes on one port
    assert ask_once(shared, b"x", source="127.0.0.2") == b"A:x"
    assert ask_once(shared, b"y", source="127.0.0.3") == b"B:y"
    # no route takes 127.0.0.4: its datagram is dropped, nothing reaches an upstream
    assert ask_once(shared, b"z", source="127.0.0.4", timeout=0.5) is None
    assert a.count() == 1 and b.count() == 1
    # ip-restriction: listed clients pass, others are refused before any upstream socket
    assert ask_once(guarded, b"w", source="127.0.0.2") == b"A:w"
    assert ask_once(guarded, b"w", source="127.0.1.9") == b"A:w"
    assert ask_once(guarded, b"no", source="127.0.0.3", timeout=0.5) is None
    assert a.count() == 3
    m = g.metrics()
    assert m.get("sluice_stream_sessions_total", service="svc-a", route="white", status=403) == 1
    assert m.get("sluice_stream_connections_total", service="svc-a", route="white") == 3
    assert m.get("sluice_stream_connections_total", service="svc-b", route="three") == 1
    # a wildcard listener answers from the address the client sent to
    assert ask_once(guarded, b"v", source="127.0.0.2", host="127.0.0.2") == b"A:v"


def test_limit_conn_admits_the_burst_and_refuses_beyond(make_gateway, make_udp_backend):
    b = make_udp_backend()
    port = free_udp_port()
    g = make_gateway([udp_service("lim", [b], [
        {"name": "l", "server_addr": "127.0.0.1", "server_port": port,
         "plugins": {"limit-conn": {"conn": 1, "burst": 1, "default_conn_delay": "100ms", "key": "remote_addr"},
                     "prometheus": {}}}], timeouts={"idle": "3s"})])
    held = [client("127.0.0.2"), client("127.0.0.2")]
    extra = client("127.0.0.2", timeout=0.5)
    other = client("127.0.0.3")
    try:
        # conn, then the burst: both pass (UDP sessions are never delayed)
        for c in held:
            assert ask(c, port, b"in") == b"in"
        # beyond the burst: dropped while they are open
        for h in held:
            assert ask(h, port, b"still") == b"still"
        assert ask(extra, port, b"out") is None
        # another client has its own count
        assert ask(other, port, b"other") == b"other"
        assert sessions(g, "lim", "l", 503) == 1
        assert b.count() == 5
        # once the sessions end, their places are free again
        wait_until(lambda: active(g, "lim", "l") == 0, what="sessions idle")
        extra.settimeout(2)
        assert ask(extra, port, b"now") == b"now"
    finally:
        for c in held + [extra, other]:
            c.close()


def test_refused_node_taken_out_by_passive_checks(make_gateway, make_udp_backend):
    b = make_udp_backend()
    dead = "127.0.0.1:%d" % free_udp_port()  # nothing listens: datagrams get ICMP port unreachable
    port = free_udp_port()
    g = make_gateway([udp_service("pc", [dead, b], [{"name": "pc", "server_addr": "127.0.0.1", "server_port": port,
                                                     "plugins": {"prometheus": {}}}],
                                  balance="round_robin", timeouts={"idle": "1s"},
                                  passive_check={"failures": 1, "cooldown": "1h"})])

    def dead_healthy():
        return g.metrics().get("sluice_upstream_node_healthy", service="pc", node=dead)

    assert dead_healthy() == 1
    # fresh clients until one drew the dead node: its refusal ends the session and marks the node
    for _ in range(10):
        ask_once(port, b"probe", timeout=0.5)
        if dead_healthy() == 0:
            break
    assert dead_healthy() == 0
    assert sessions(g, "pc", "pc", 502) == 1
    # later sessions all go to the healthy node
    before = b.count()
    for i in range(6):
        assert ask_once(port, b"%d" % i) == b"%d" % i
    assert b.count() == before + 6
    st = g.metrics().get("sluice_upstream_node_transitions_total", service="pc", node=dead, to="unhealthy")
    assert st == 1


def test_hash_on_client_address(make_gateway, make_udp_backend):
    backends = [make_udp_backend(b"%d:" % i) for i in range(3)]
    port = free_udp_port()
    make_gateway([udp_service("h", backends, [{"name": "h", "server_addr": "127.0.0.1", "server_port": port}],
                              balance="hash", hash={"on": "ip"}, timeouts={"idle": "1s"})])
    chosen = {}
    for src in ["127.0.0.%d" % i for i in range(2, 10)]:
        for _ in range(3):  # a new client port each time: a new session, the same node
            reply = ask_once(port, b"x", source=src)
            chosen.setdefault(src, set()).add(reply)
    assert all(len(v) == 1 for v in chosen.values()), chosen  # a client address sticks to its node
    assert len({next(iter(v)) for v in chosen.values()}) > 1, chosen  # addresses spread over nodes


# ---------------------------------------------------------------------------------------------
# reloads and shutdown


def test_reload_listeners_follow_and_sessions_carry_on(make_gateway, make_udp_backend):
    a = make_udp_backend(b"A:")
    b = make_udp_backend(b"B:")
    kept, removed, added = free_udp_port(), free_udp_port(), free_udp_port()

    def route(name, port):
        return {"name": name, "server_addr": "127.0.0.1", "server_port": port, "plugins": {"prometheus": {}}}

    # sessions must outlive the reload and the checks after it, then end while the test waits
    before = [udp_service("a", [a], [route("kept", kept), route("removed", removed)], timeouts={"idle": "8s"})]
    after = [udp_service("a", [a], [route("kept", kept)], timeouts={"idle": "8s"}),
             udp_service("b", [b], [route("added", added)], timeouts={"idle": "8s"})]
    g = make_gateway(before)
    assert refused(added)
    on_kept, on_removed = client(), client()
    try:
        assert ask(on_kept, kept, b"k1") == b"A:k1"
        assert ask(on_removed, removed, b"r1") == b"A:r1"
        peers = a.peers()

        g.reload(after)
        # the new route's port takes datagrams right after the reload, with no restart
        assert ask_once(added, b"new") == b"B:new"
        # the removed port takes no new client
        wait_until(lambda: refused(removed), what="the removed route's port to refuse new clients")
        # the session that started there carries on, with its own upstream socket
        assert ask(on_removed, removed, b"r2") == b"A:r2"
        # the unchanged port kept its engine and its session: same upstream socket as before
        assert ask(on_kept, kept, b"k2") == b"A:k2"
        assert a.peers() == peers
        assert sessions(g, "a", "removed", 200) == 0
        # until it goes idle; then the port is closed for it too
        wait_until(lambda: sessions(g, "a", "removed", 200) == 1, timeout=30, what="the carried session idle")
        on_removed.settimeout(0.5)
        on_removed.sendto(b"r3", ("127.0.0.1", removed))
        with pytest.raises((ConnectionRefusedError, socket.timeout)):
            on_removed.recvfrom(100)
        # a reload back opens the port again
        g.reload(before)
        assert ask_once(removed, b"back") == b"A:back"
    finally:
        on_kept.close()
        on_removed.close()


def test_shutdown_drains_udp_sessions(make_gateway, make_udp_backend):
    b = make_udp_backend()
    port = free_udp_port()
    g = make_gateway([udp_service("echo", [b], [{"name": "e", "server_addr": "127.0.0.1", "server_port": port}],
                                  timeouts={"idle": "1m"})], gateway={"shutdown_timeout": "5s"})
    c = client()
    try:
        assert ask(c, port, b"a") == b"a"
        g.signal(signal.SIGTERM)
        # the listener closes at once; the open session goes on during the grace period
        wait_until(lambda: refused(port), what="the listener closed")
        assert ask(c, port, b"b") == b"b"
        # at the end of the grace period it is ended, and the process exits
        g.proc.wait(15)
        assert g.proc.returncode == 0
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# configuration

ERR_RE = helpers.ERR_RE

BAD_UDP = """\
services:
  - name: dns
    type: stream
    upstream:
      scheme: udp
      nodes: [127.0.0.1:53]
      tries: 3
      health_check: {interval: 1s}
      proxy_protocol: {send: v2}
      max_sessions: 0
    routes:
      - server_port: 5353
        proxy_protocol: {accept: true}
"""

GOOD_UDP = """\
services:
  - name: dns
    type: stream
    upstream:
      scheme: udp
      balance: hash
      hash: {on: ip}
      nodes: [127.0.0.1:53, 127.0.0.2:53]
      timeouts: {idle: 5s}
      max_sessions: 50000
      passive_check: {failures: 2, cooldown: 30s}
    routes:
      - server_addr: 127.0.0.10
        server_port: 53
        remote_addr: 10.0.0.0/8
        plugins:
          ip-restriction: {blacklist: [10.9.9.9]}
          limit-conn: {conn: 10, burst: 5, default_conn_delay: 100ms, key: remote_addr}
          prometheus: {}
"""


def test_config(sluice_bin, tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text(GOOD_UDP)
    r = validate(sluice_bin, p)
    assert r.returncode == 0, r.stderr
    p = tmp_path / "bad.yaml"
    p.write_text(BAD_UDP)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (r.stdout, r.stderr)
    errs = {e[2]: e for e in helpers.parse_errors(p, r.stderr, ERR_RE)}
    assert errs["services[0].upstream.tries"][:2] == (7, 7), errs
    assert "a UDP session has no connect" in errs["services[0].upstream.tries"][3]
    assert errs["services[0].upstream.health_check"][:2] == (8, 7)
    assert "use passive_check" in errs["services[0].upstream.health_check"][3]
    assert errs["services[0].upstream.proxy_protocol"][:2] == (9, 7)
    assert errs["services[0].upstream.proxy_protocol"][3] == "only for tcp upstreams"
    assert errs["services[0].upstream.max_sessions"][:2] == (10, 21)
    assert errs["services[0].routes[0].proxy_protocol"][:2] == (13, 9)
    assert errs["services[0].routes[0].proxy_protocol"][3] == "only for tcp services"
    assert len(errs) == 5, errs
