"""The stream syslog plugin end to end: one RFC 5424 message per finished session, received by a
real UDP listener and a real TCP listener (octet-counting frames, RFC 6587) in the test and
parsed field by field; sluice_syslog_messages_total; a collector that is down (sessions still
work, drops counted); the sender closed when its generation goes, and flushed at exit."""
import datetime
import re
import socket
import threading
import time

from helpers import free_port, wait_until
from test_stream_proxy_protocol import connect, pp_roundtrip, send_all_then_read, v1, v2
from test_stream_tcp import make_stream_backend, stream_service  # noqa: F401 (fixture)

HEADER_RE = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
PARAM_RE = re.compile(r' ([^ ="\]]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"')
LOCAL0 = 16
INFO, NOTICE, WARNING = 6, 5, 4


def parse_syslog(msg):
    """An RFC 5424 message -> dict: pri, timestamp (aware datetime), hostname, app, procid,
    msgid, sd ({id: {name: value}}), msg. Fails on anything that does not follow the grammar."""
    text = msg.decode("utf-8")
    m = HEADER_RE.match(text)
    assert m, text
    out = {"pri": int(m.group(1)), "hostname": m.group(3), "app": m.group(4), "procid": m.group(5),
           "msgid": m.group(6), "sd": {}}
    out["timestamp"] = datetime.datetime.strptime(m.group(2), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m.group(2)), m.group(2)
    rest = text[m.end():]
    if rest.startswith("-"):
        rest = rest[1:]
    while rest.startswith("["):
        sd_id = re.match(r"\[([^ =\]\"]{1,32})", rest)
        assert sd_id, rest
        pos = sd_id.end()
        params = {}
        while True:
            p = PARAM_RE.match(rest, pos)
            if not p:
                break
            params[p.group(1)] = re.sub(r'\\(["\\\]])', r"\1", p.group(2))
            pos = p.end()
        assert rest[pos] == "]", rest[pos:]
        out["sd"][sd_id.group(1)] = params
        rest = rest[pos + 1:]
    assert rest == "" or rest.startswith(" "), rest
    out["msg"] = rest[1:]
    return out


class UdpCollector:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]

    def receive(self, n):
        return [self.sock.recv(65536) for _ in range(n)]

    def close(self):
        self.sock.close()


class TcpCollector:
    """Accepts connections and splits what they send into octet-counted frames."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.messages = []
        self.bad = []  # what did not start with a frame length
        self.conns = []  # dicts: closed, leftover (bytes of an unfinished frame at close)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            rec = {"closed": False, "leftover": b""}
            with self.lock:
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(s, rec), daemon=True).start()

    def _serve(self, s, rec):
        buf = b""
        while True:
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            buf += d
            while True:
                m = re.match(rb"([1-9][0-9]*) ", buf)
                if not m:
                    if len(buf) >= 12 or not re.fullmatch(rb"[0-9]*", buf):
                        with self.lock:
                            self.bad.append(buf[:40])
                        buf = b""
                    break
                n = int(m.group(1))
                if len(buf) < m.end() + n:
                    break
                with self.lock:
                    self.messages.append(buf[m.end():m.end() + n])
                buf = buf[m.end() + n:]
        with self.lock:
            rec["closed"] = True
            rec["leftover"] = buf
        s.close()

    def wait(self, n, timeout=15):
        wait_until(lambda: len(self.messages) >= n, timeout=timeout, what="%d syslog frames" % n)
        with self.lock:
            assert not self.bad, self.bad
            return list(self.messages)

    def close(self):
        self.closed = True
        self.sock.close()


def syslog_count(g, dest, result):
    return g.metrics().get("sluice_syslog_messages_total", destination=dest, result=result) or 0


def check_header(p, g, severity, t0, t1):
    assert p["pri"] == LOCAL0 * 8 + severity, p
    # The time stamp is when the message was made, in milliseconds: within the test's own window.
    assert t0 - datetime.timedelta(seconds=1) <= p["timestamp"] <= t1 + datetime.timedelta(seconds=1), p
    assert p["hostname"] == socket.gethostname()[:255], p
    assert p["app"] == "sluice"
    assert p["procid"] == str(g.proc.pid)
    assert p["msgid"] == "session"
    assert list(p["sd"]) == ["session@32473"], p


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def test_udp_collector_gets_every_field(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    col = UdpCollector()
    port = free_port()
    try:
        g = make_gateway([stream_service("db", [b], [
            {"name": "logged", "server_addr": "127.0.0.1", "server_port": port,
             "plugins": {"ip-restriction": {"blacklist": ["127.0.0.3"]},
                         "syslog": {"host": "127.0.0.1", "port": col.port, "flush_timeout": "100ms"}}}])])
        t0 = now()
        s = connect(port, source="127.0.0.2")
        cport = s.getsockname()[1]
        assert send_all_then_read(s, b"hello") == b"hello"
        s.close()
        s = connect(port, source="127.0.0.3")
        refused_port = s.getsockname()[1]
        assert send_all_then_read(s, b"x") == b""
        s.close()
        msgs = sorted((parse_syslog(m) for m in col.receive(2)), key=lambda p: p["sd"]["session@32473"]["status"])
        t1 = now()
        ok, refused = msgs
        check_header(ok, g, INFO, t0, t1)
        sd = ok["sd"]["session@32473"]
        duration = float(sd.pop("duration"))
        assert 0 <= duration <= (t1 - t0).total_seconds() + 0.001
        assert sd == {"service": "db", "route": "logged", "client_addr": "127.0.0.2", "client_port": str(cport),
                      "server_addr": "127.0.0.1", "server_port": str(port), "upstream": b.address,
                      "bytes_from_client": "5", "bytes_to_client": "5", "bytes_from_upstream": "5",
                      "bytes_to_upstream": "5", "status": "200"}
        assert ok["msg"] == "127.0.0.2:%d -> 127.0.0.1:%d -> %s: 200" % (cport, port, b.address)

        check_header(refused, g, NOTICE, t0, t1)
        sd = refused["sd"]["session@32473"]
        sd.pop("duration")
        assert sd == {"service": "db", "route": "logged", "client_addr": "127.0.0.3",
                      "client_port": str(refused_port), "server_addr": "127.0.0.1", "server_port": str(port),
                      "upstream": "", "bytes_from_client": "0", "bytes_to_client": "0", "bytes_from_upstream": "0",
                      "bytes_to_upstream": "0", "status": "403", "error": "access_denied"}
        assert refused["msg"] == "127.0.0.3:%d -> 127.0.0.1:%d -> -: 403 access_denied" % (refused_port, port)
        assert b.count() == 1
        dest = "127.0.0.1:%d/udp" % col.port
        wait_until(lambda: syslog_count(g, dest, "sent") == 2, what="2 messages counted as sent")
        assert syslog_count(g, dest, "dropped") == 0
    finally:
        col.close()


def test_tcp_collector_with_proxy_protocol(make_gateway, make_stream_backend):
    """Octet-counted frames over TCP, in batches; the client is the one the PROXY protocol header
    names, the load balancer in front is proxy_addr; a broken header is logged as 400."""
    b = make_stream_backend("echo")
    col = TcpCollector()
    port = free_port()
    try:
        g = make_gateway([stream_service("db", [b], [
            {"name": "lb", "server_addr": "127.0.0.1", "server_port": port, "proxy_protocol": {"accept": True},
             "plugins": {"syslog": {"host": "127.0.0.1", "port": col.port, "sock_type": "tcp",
                                    "batch_max_size": 4, "flush_timeout": "200ms"}}}])])
        t0 = now()
        sent = {}
        for i in range(1, 7):
            hdr = (v1 if i % 2 else v2)("10.0.0.%d" % i, "192.0.2.1", 40000 + i, 3306)
            data = b"q" * (i * 10)
            s = connect(port)
            real_port = s.getsockname()[1]
            assert send_all_then_read(s, hdr + data) == data
            s.close()
            sent["10.0.0.%d" % i] = (len(hdr), len(data), real_port)
        garbage = b"NOT A PROXY HEADER\r\n"
        assert pp_roundtrip(port, garbage) == b""
        frames = col.wait(7)
        t1 = now()
        assert len(frames) == 7
        by_client = {}
        for f in frames:
            p = parse_syslog(f)
            sd = p["sd"]["session@32473"]
            by_client[sd["client_addr"]] = (p, sd)
        for client, (hlen, dlen, real_port) in sent.items():
            p, sd = by_client[client]
            check_header(p, g, INFO, t0, t1)
            assert sd["client_port"] == str(40000 + int(client.rsplit(".", 1)[1]))
            assert (sd["proxy_addr"], sd["proxy_port"]) == ("127.0.0.1", str(real_port))
            # Routes match the address the connection really arrived on, which is logged.
            assert (sd["server_addr"], sd["server_port"]) == ("127.0.0.1", str(port))
            assert sd["upstream"] == b.address
            # The header is bytes the client sent; the upstream got the rest.
            assert sd["bytes_from_client"] == str(hlen + dlen)
            assert sd["bytes_to_upstream"] == sd["bytes_from_upstream"] == sd["bytes_to_client"] == str(dlen)
            assert sd["status"] == "200" and "error" not in sd
        p, sd = by_client["127.0.0.1"]
        check_header(p, g, NOTICE, t0, t1)
        assert (sd["status"], sd["error"], sd["upstream"]) == ("400", "proxy_protocol_invalid", "")
        assert sd["bytes_from_client"] == str(len(garbage)) and "proxy_addr" not in sd
        assert b.count() == 6
        # Batched: 7 messages over one connection.
        assert len(col.conns) == 1
        dest = "127.0.0.1:%d/tcp" % col.port
        wait_until(lambda: syslog_count(g, dest, "sent") == 7, what="7 messages counted as sent")
    finally:
        col.close()


def test_collector_down_drops_and_counts(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    dead = free_port()  # nothing listens there: every connect is refused
    port = free_port()
    g = make_gateway([stream_service("db", [b], [
        {"name": "r", "server_addr": "127.0.0.1", "server_port": port,
         "plugins": {"prometheus": {},
                     "syslog": {"host": "127.0.0.1", "port": dead, "sock_type": "tcp", "batch_max_size": 1,
                                "max_pending": 3}}}])])
    n = 20
    for i in range(n):
        assert pp_roundtrip(port, b"still works %d" % i) == b"still works %d" % i
    dest = "127.0.0.1:%d/tcp" % dead
    # At most max_pending wait for the collector; every other message is dropped and counted.
    wait_until(lambda: syslog_count(g, dest, "dropped") >= n - 3, what="drops counted")
    m = g.metrics()
    assert m.get("sluice_syslog_messages_total", destination=dest, result="sent") == 0
    assert m.get("sluice_stream_sessions_total", service="db", route="r", status=200) == n
    assert b.count() == n


def test_sender_closes_with_its_generation(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    col = TcpCollector()
    port = free_port()
    try:
        route = {"name": "r", "server_addr": "127.0.0.1", "server_port": port,
                 "plugins": {"syslog": {"host": "127.0.0.1", "port": col.port, "sock_type": "tcp",
                                        "batch_max_size": 1}}}
        g = make_gateway([stream_service("db", [b], [route])])
        assert pp_roundtrip(port, b"one") == b"one"
        col.wait(1)
        # A reload that keeps the destination keeps its sender and connection.
        g.reload([stream_service("db", [b], [dict(route, name="renamed")])])
        assert pp_roundtrip(port, b"two") == b"two"
        frames = col.wait(2)
        assert parse_syslog(frames[1])["sd"]["session@32473"]["route"] == "renamed"
        assert len(col.conns) == 1 and not col.conns[0]["closed"]
        # Without the plugin, the last generation using the destination goes and so does the sender.
        g.reload([stream_service("db", [b], [dict(route, plugins={})])])
        wait_until(lambda: col.conns[0]["closed"], what="the sender to close its connection")
        assert pp_roundtrip(port, b"three") == b"three"
        time.sleep(0.3)
        assert len(col.messages) == 2 and len(col.conns) == 1
        assert col.conns[0]["leftover"] == b""
        assert syslog_count(g, "127.0.0.1:%d/tcp" % col.port, "sent") == 2
    finally:
        col.close()


def test_queued_messages_leave_at_exit(make_gateway, make_stream_backend):
    b = make_stream_backend("echo")
    col = TcpCollector()
    port = free_port()
    try:
        # Batches of 100 or an hour: nothing leaves before the gateway stops.
        g = make_gateway([stream_service("db", [b], [
            {"name": "r", "server_addr": "127.0.0.1", "server_port": port,
             "plugins": {"syslog": {"host": "127.0.0.1", "port": col.port, "sock_type": "tcp",
                                    "flush_timeout": "1h"}}}])])
        for i in range(3):
            assert pp_roundtrip(port, b"x" * (i + 1)) == b"x" * (i + 1)
        assert g.stop() == 0
        frames = col.wait(3)
        assert sorted(parse_syslog(f)["sd"]["session@32473"]["bytes_from_client"] for f in frames) == ["1", "2", "3"]
    finally:
        col.close()
