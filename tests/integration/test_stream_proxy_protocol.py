"""The PROXY protocol on TCP stream routes, end to end with hand-built headers.

Accept (a route's `proxy_protocol: {accept: true}`): a client sends a v1 or v2 header first; the
client it names is the one remote_addr, ip-restriction, limit-conn and hash balancing see; a
LOCAL or UNKNOWN header keeps the real peer; a malformed or missing header closes the
connection with outcome 400 before any upstream connection; the bytes after the header reach
the upstream intact.

Send (an upstream's `proxy_protocol: {send: v1|v2}`): every upstream connection starts with the
header naming the client (real or learned) and the address it connected to; a raw backend
parses it (stream_backend.read_proxy_header), for IPv4 and IPv6 clients."""
import hashlib
import socket
import struct

import pytest

from helpers import free_port, pattern_bytes, pattern_sha256
from stream_backend import V2_SIGNATURE
from test_stream_tcp import make_stream_backend, read_all, settled, stream_service  # noqa: F401 (fixture)


def v1(src, dst, sport, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src, dst, sport, dport, tlvs=b""):
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
    else:
        fam, af = 0x11, socket.AF_INET
    body = socket.inet_pton(af, src) + socket.inet_pton(af, dst) + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


V2_LOCAL = V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])
V1_UNKNOWN = b"PROXY UNKNOWN\r\n"


def connect(port, host="127.0.0.1", source=None, timeout=10.0):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def send_all_then_read(s, data):
    """Sends data, half-closes, returns everything read until the close (b"" when the gateway
    closed or reset the connection without answering)."""
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # closed by the gateway already
    return read_all(s)


def pp_roundtrip(port, data, host="127.0.0.1", source=None):
    s = connect(port, host, source)
    try:
        return send_all_then_read(s, data)
    finally:
        s.close()


def sessions(g, service, route, status):
    return g.metrics().get("sluice_stream_sessions_total", service=service, route=route, status=status) or 0


def test_accept_learns_the_client(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("db", [b], [
        {"name": "lb", "server_addr": "127.0.0.1", "server_port": port, "remote_addr": "10.0.0.0/8",
         "proxy_protocol": {"accept": True},
         "plugins": {"prometheus": {}, "ip-restriction": {"blacklist": ["10.9.0.0/16"]}}}])])
    # The real peer (127.0.0.1) is no client of the route: the learned ones (in 10.0.0.0/8) are.
    assert pp_roundtrip(port, v1("10.1.2.3", "192.0.2.1", 40001, 3306) + b"select 1;\n") == b"select 1;\n"
    assert pp_roundtrip(port, v2("10.1.2.4", "192.0.2.1", 40002, 3306) + b"select 2;\n") == b"select 2;\n"
    # ip-restriction refuses a learned client in its blacklist, before any upstream connection.
    assert pp_roundtrip(port, v1("10.9.1.1", "192.0.2.1", 40003, 3306) + b"select 3;\n") == b""
    # No route takes a learned client outside remote_addr: closed, not counted on the route.
    assert pp_roundtrip(port, v2("192.168.1.1", "192.0.2.1", 40004, 3306) + b"select 4;\n") == b""
    assert b.count() == 2
    assert [c["received"] for c in b.snapshot()] == [10, 10]  # the header never reached the upstream
    m = g.metrics()
    settled(g, "sluice_stream_sessions_total", 2, service="db", route="lb", status=200)
    settled(g, "sluice_stream_sessions_total", 1, service="db", route="lb", status=403)
    assert m.get("sluice_stream_connections_total", service="db", route="lb") == 3


def test_bytes_after_the_header_arrive_intact(make_gateway, make_stream_backend):
    sink = make_stream_backend("sink")
    port = free_port()
    make_gateway([stream_service("bulk", [sink], [
        {"name": "pp", "server_addr": "127.0.0.1", "server_port": port, "proxy_protocol": {"accept": True}}])])
    n = 1 << 20
    data = pattern_bytes(n, seed=5)
    want = b"%d %s\n" % (n, pattern_sha256(n, 5).encode())
    # The header and a MiB after it in the same writes.
    assert pp_roundtrip(port, v1("10.0.0.1", "10.0.0.2", 1000, 2000) + data) == want
    # v2 with TLVs (an authority and padding) the gateway skips: the length says where data starts.
    hdr = v2("10.0.0.1", "10.0.0.2", 1000, 2000, tlvs=tlv(0x02, b"db.example.com") + tlv(0x04, b"\0" * 7))
    assert pp_roundtrip(port, hdr + data) == want
    # A header dribbled a byte per write, its last byte in one write with the first data.
    for hdr in (v1("10.0.0.1", "10.0.0.2", 1000, 2000), v2("10.0.0.1", "10.0.0.2", 1000, 2000)):
        s = connect(port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(hdr) - 1):
            s.sendall(hdr[i:i + 1])
        assert send_all_then_read(s, hdr[-1:] + data) == want
        s.close()
    assert sink.count() == 4
    assert all(c["sha256"] == pattern_sha256(n, 5) for c in sink.snapshot())


def test_malformed_or_missing_header_is_closed_without_upstream(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    g = make_gateway([stream_service("db", [b], [
        {"name": "pp", "server_addr": "127.0.0.1", "server_port": port,
         "proxy_protocol": {"accept": True, "timeout": "500ms"}, "plugins": {"prometheus": {}}}])])
    bad = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                          # no header at all
        b"PROXY TCP4 10.1.2.300 10.0.0.2 1000 2000\r\nhello",          # not an IPv4 address
        b"PROXY TCP4 10.1.2.3 10.0.0.2 1000 2000\nhello",              # LF without CR
        b"PROXY TCP4 " + b"1" * 120,                                   # no CRLF within 107 bytes
        V2_SIGNATURE + bytes([0x31, 0x11, 0, 12]) + b"\0" * 12 + b"hello",  # version 3
        V2_SIGNATURE + bytes([0x21, 0x11, 0, 4]) + b"\0" * 4 + b"hello",    # too short for INET
    ]
    for data in bad:
        assert pp_roundtrip(port, data) == b"", data
    # A header cut short by the client's FIN.
    assert pp_roundtrip(port, b"PROXY TCP4 10.1.2.3 10.0") == b""
    # Nothing at all: closed once proxy_protocol.timeout has passed.
    s = connect(port)
    assert read_all(s) == b""
    s.close()
    assert b.count() == 0
    m = g.metrics()
    assert m.get("sluice_stream_sessions_total", service="db", route="pp", status=400) == len(bad) + 2
    assert m.get("sluice_stream_connections_total", service="db", route="pp") == len(bad) + 2
    assert m.get("sluice_stream_connections_active", service="db", route="pp") == 0
    assert m.sum("sluice_stream_sent_bytes_total", service="db", route="pp", side="upstream") == 0


def test_local_and_unknown_headers_keep_the_real_peer(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    port = free_port()
    make_gateway([stream_service("db", [b], [
        {"name": "pp", "server_addr": "127.0.0.1", "server_port": port, "remote_addr": "127.0.0.2",
         "proxy_protocol": {"accept": True}}])])
    assert pp_roundtrip(port, V2_LOCAL + b"ping\n", source="127.0.0.2") == b"ping\n"
    assert pp_roundtrip(port, V1_UNKNOWN + b"pong\n", source="127.0.0.2") == b"pong\n"
    # The real peer decides: 127.0.0.3 is no client of the route.
    assert pp_roundtrip(port, V2_LOCAL + b"ping\n", source="127.0.0.3") == b""
    assert b.count() == 2


def test_limit_conn_and_hash_see_the_learned_client(make_gateway, make_stream_backend):
    echo = make_stream_backend("echo")
    a = make_stream_backend("greet", greeting=b"A\n")
    c = make_stream_backend("greet", greeting=b"C\n")
    p_limit, p_hash = free_port(), free_port()
    g = make_gateway([
        stream_service("lim", [echo], [
            {"name": "l", "server_addr": "127.0.0.1", "server_port": p_limit, "proxy_protocol": {"accept": True},
             "plugins": {"prometheus": {},
                         "limit-conn": {"conn": 1, "burst": 0, "default_conn_delay": "10ms", "key": "remote_addr"}}}]),
        stream_service("hash", [a, c], [
            {"name": "h", "server_addr": "127.0.0.1", "server_port": p_hash, "proxy_protocol": {"accept": True}}],
            balance="hash", hash={"on": "ip"}),
    ])
    # One session of 10.5.0.1 is open ...
    held = connect(p_limit)
    held.sendall(v1("10.5.0.1", "10.0.0.2", 1000, 2000) + b"held\n")
    assert held.recv(5) == b"held\n"
    # ... another learned client from the same real peer has its own count ...
    assert pp_roundtrip(p_limit, v1("10.5.0.2", "10.0.0.2", 1001, 2000) + b"free\n") == b"free\n"
    # ... and a second session of 10.5.0.1 is over the limit.
    assert pp_roundtrip(p_limit, v2("10.5.0.1", "10.0.0.2", 1002, 2000) + b"over\n") == b""
    held.close()
    assert sessions(g, "lim", "l", 503) == 1

    # Hashing on the learned client: each client sticks to one node, and the clients spread
    # over both although every connection comes from 127.0.0.1.
    def node_of(client):
        return pp_roundtrip(p_hash, v1(client, "10.0.0.2", 1000, 2000))

    seen = {}
    for i in range(1, 17):
        client = "10.7.0.%d" % i
        first = node_of(client)
        assert first in (b"A\n", b"C\n")
        assert node_of(client) == first and node_of(client) == first
        seen[client] = first
    assert set(seen.values()) == {b"A\n", b"C\n"}, seen


def test_send_v1_and_v2(make_gateway, make_stream_backend):
    """Each upstream connection starts with the header naming the client and the address it
    connected to: the real ones for a direct client (IPv4 and IPv6), the header's for a client
    learned from a PROXY protocol header in front."""
    backends, services, ports = {}, [], {}
    for version in ("v1", "v2"):
        be = backends[version] = make_stream_backend("proxy")
        p4, p6, pl = free_port(), free_port("::1"), free_port()
        ports[version] = (p4, p6, pl)
        services.append(stream_service("send-" + version, [be], [
            {"name": "v4", "server_addr": "127.0.0.1", "server_port": p4},
            {"name": "v6", "server_addr": "::1", "server_port": p6},
            {"name": "learned", "server_addr": "127.0.0.1", "server_port": pl, "proxy_protocol": {"accept": True}},
        ], proxy_protocol={"send": version}))
    make_gateway(services)

    for version in ("v1", "v2"):
        be = backends[version]
        p4, p6, pl = ports[version]
        want_version = 1 if version == "v1" else 2
        expected = []

        s = connect(p4, source="127.0.0.2")
        cport = s.getsockname()[1]
        assert send_all_then_read(s, b"four\n") == b"four\n"
        s.close()
        expected.append(("TCP4", "127.0.0.2", "127.0.0.1", cport, p4))

        s = connect(p6, host="::1", source="::1")
        cport = s.getsockname()[1]
        assert send_all_then_read(s, b"six\n") == b"six\n"
        s.close()
        expected.append(("TCP6", "::1", "::1", cport, p6))

        assert pp_roundtrip(pl, v2("10.1.2.3", "192.0.2.1", 40001, 443) + b"learned\n") == b"learned\n"
        expected.append(("TCP4", "10.1.2.3", "192.0.2.1", 40001, 443))
        assert pp_roundtrip(pl, v1("2001:db8::7", "2001:db8::1", 5555, 443) + b"learned6\n") == b"learned6\n"
        expected.append(("TCP6", "2001:db8::7", "2001:db8::1", 5555, 443))

        got = [c["proxy"] for c in be.snapshot()]
        assert len(got) == len(expected)
        for info, (fam, src, dst, sport, dport) in zip(got, expected):
            assert "error" not in info, info
            assert info["version"] == want_version, info
            if want_version == 2:
                assert info["command"] == "PROXY", info
            assert (info["family"], info["src"], info["dst"], info["sport"], info["dport"]) == \
                (fam, src, dst, sport, dport), info
        # The client's bytes came after the header, whole.
        assert [c["received"] for c in be.snapshot()] == [5, 4, 8, 9]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_before_the_first_client_byte(make_gateway, make_stream_backend, version):
    """A client that speaks first, before the upstream connection exists: its bytes still follow
    the header (they wait in the socket until the session is connected)."""
    be = make_stream_backend("proxy")
    port = free_port()
    make_gateway([stream_service("first", [be], [{"name": "f", "server_addr": "127.0.0.1", "server_port": port}],
                                 proxy_protocol={"send": version})])
    data = pattern_bytes(100000, seed=9)
    s = connect(port)
    reply = send_all_then_read(s, data)
    s.close()
    assert hashlib.sha256(reply).hexdigest() == hashlib.sha256(data).hexdigest()
    info = be.snapshot()[0]["proxy"]
    assert info["src"] == "127.0.0.1" and info["dport"] == port, info
