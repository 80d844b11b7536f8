"""1 GiB through the proxy each way, hashed on both sides; with $SLUICE_RELEASE_BIN, peak RSS
of the gateway stays under 64 MiB, including while one side stops reading for a while
(backpressure instead of buffering)."""
import hashlib
import json
import socket
import time

from helpers import RawConn, build_request, pattern_chunks, pattern_sha256, proxy_service

GIB = 1 << 30
RSS_LIMIT_KIB = 64 * 1024


def big_upstream(backend):
    return proxy_service([backend], upstream={"timeouts": {"connect": "1s", "send": "60s", "read": "60s"}})


def upload(g, n, seed, chunked=False, pause_after=None):
    with RawConn("127.0.0.1", g.port, timeout=120) as c:
        if chunked:
            c.send(build_request("POST", "/big-up", headers=[("Transfer-Encoding", "chunked")]))
        else:
            c.send(build_request("POST", "/big-up", headers=[("Content-Length", str(n))]))
        sent = 0
        for piece in pattern_chunks(n, seed, chunk=256 * 1024 if n >= 256 * 1024 else 65536):
            if chunked:
                c.send(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                c.send(piece)
            sent += len(piece)
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    return r.json()


def download(g, n, seed, pause_at=None, pause_s=0):
    h = hashlib.sha256()
    count = [0]
    paused = [False]

    def sink(b):
        h.update(b)
        count[0] += len(b)
        if pause_at is not None and not paused[0] and count[0] >= pause_at:
            paused[0] = True
            time.sleep(pause_s)

    with RawConn("127.0.0.1", g.port, timeout=120) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        c.send(build_request("GET", "/big-down?download=%d&seed=%d" % (n, seed)))
        r = c.read_response(sink=sink)
    assert r.status == 200
    return count[0], h.hexdigest()


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def test_upload_1gib(make_gateway, backend):
    g = make_gateway([big_upstream(backend)])
    j = upload(g, GIB, seed=11)
    assert j["body_len"] == GIB
    assert j["body_sha256"] == pattern_sha256(GIB, 11)


def test_download_1gib(make_gateway, backend):
    g = make_gateway([big_upstream(backend)])
    n, digest = download(g, GIB, seed=12)
    assert n == GIB
    assert digest == pattern_sha256(GIB, 12)


def test_release_memory_bounded_1gib_each_way(make_gateway, backend, release_bin):
    g = make_gateway([big_upstream(backend)], binary=release_bin)
    hwm_start = vm_hwm_kib(g.proc.pid)

    # the upstream stops reading for 2 s after the first 8 MiB: the gateway must stop reading
    # from the client rather than buffer
    state = {"paused": False}

    def slow_reader(b, s, r, rec):
        if rec.header("content-length") is None:
            b.read_body(r, rec, s)
            body = json.dumps({"body_len": rec.body_len, "body_sha256": rec.body_sha256}).encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return True
        total = int(rec.header("content-length"))
        h = hashlib.sha256()
        have = 0
        while have < total:
            if not r.buf:
                r.fill()
            piece = r.buf[: total - have]
            r.buf = r.buf[len(piece):]
            h.update(piece)
            have += len(piece)
            if not state["paused"] and have >= 8 << 20:
                state["paused"] = True
                time.sleep(2)
        body = json.dumps({"body_len": have, "body_sha256": h.hexdigest()}).encode()
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    backend.on("/big-up", slow_reader)
    j = upload(g, GIB, seed=21)
    assert j["body_len"] == GIB and j["body_sha256"] == pattern_sha256(GIB, 21)
    assert state["paused"]

    j = upload(g, 256 << 20, seed=22, chunked=True)
    assert j["body_len"] == 256 << 20 and j["body_sha256"] == pattern_sha256(256 << 20, 22)

    # the client stops reading for 2 s after 8 MiB while the upstream writes as fast as it can
    n, digest = download(g, GIB, seed=23, pause_at=8 << 20, pause_s=2)
    assert n == GIB and digest == pattern_sha256(GIB, 23)

    hwm = vm_hwm_kib(g.proc.pid)
    print("gateway VmHWM: start %d KiB, end %d KiB" % (hwm_start, hwm))
    assert hwm < RSS_LIMIT_KIB, "peak RSS %d KiB (at start %d KiB) exceeds %d KiB" % (hwm, hwm_start, RSS_LIMIT_KIB)
    assert g.stop() == 0
