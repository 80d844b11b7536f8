"""A real HTTP/1.1 backend on raw sockets, one thread per connection, recording everything.

Behaviour is chosen per request by query parameters (the gateway forwards the target as is),
or per path with Backend.on(path, handler):

  (none)            200, JSON echo of the request (see Backend._echo)
  status=N          status code N (204/304 get no body)
  delay=S           sleep S seconds before answering
  download=N        N bytes of helpers.pattern_chunks(N, seed) (seed=K, default 0)
  chunked=1         response body in chunked encoding
  close=1           response without Content-Length / Transfer-Encoding, close after the body
  malformed=1       send a response head that is not HTTP
  reset=1           read the request, close without answering (FIN)
  rst=1             read the request, abort the connection (RST, SO_LINGER 0)
  partial=1         send half a response head, then close
  hdr=Name:Value    add a response header (repeatable)
  connclose=1       answer with "Connection: close" and close
  nodrain=1         answer without reading the request body (used for early responses)
"""
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import pattern_chunks  # noqa: E402


class Recorded:
    """One request as the backend saw it."""

    def __init__(self, conn_id, peer, method, target, version, headers, raw_head):
        self.conn_id = conn_id
        self.peer = peer
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value), in order, as received
        self.raw_head = raw_head
        self.path, _, self.query_string = target.partition("?")
        self.query = urllib.parse.parse_qs(self.query_string)
        self.body_len = 0
        self.body_sha256 = None
        self.body = b""  # kept only up to 1 MiB
        self.complete = False  # whole body received
        self.time = time.monotonic()

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return "<Recorded %s %s conn=%d len=%d>" % (self.method, self.target, self.conn_id, self.body_len)


class BadRequest(Exception):
    pass


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        d = self.sock.recv(256 * 1024)
        if not d:
            raise EOFError
        self.buf += d

    def until(self, marker, limit=1 << 20):
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out, self.buf = self.buf[: i + len(marker)], self.buf[i + len(marker):]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self.fill()

    def take(self, n):
        """Yields exactly n bytes in pieces."""
        while n:
            if not self.buf:
                self.fill()
            piece = self.buf[:n]
            self.buf = self.buf[len(piece):]
            n -= len(piece)
            yield piece


class Backend:
    def __init__(self, name="b", host="127.0.0.1", port=0, keep_body_limit=1 << 20):
        self.name = name
        self.host = host
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.keep_body_limit = keep_body_limit
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.requests = []
        self.connections = 0  # accepted connections
        self.raw_bytes = 0  # bytes received on all connections
        self.handlers = {}
        self.errors = []  # protocol errors seen from the gateway
        self._socks = set()
        self._stop = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True, name="backend-" + name)
        self.thread.start()

    @property
    def address(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    # -- control ------------------------------------------------------------------------------

    def on(self, path, handler):
        """handler(backend, conn_sock, reader, recorded) -> keep_alive(bool). The request body
        has NOT been read when the handler runs; call backend.read_body(reader, rec) for it."""
        self.handlers[path] = handler

    def reset(self):
        with self.lock:
            self.requests = []
            self.connections = 0
            self.raw_bytes = 0

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def wait_requests(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("backend %s: %d requests after %.1fs, wanted %d" % (self.name, len(self.requests), timeout, n))
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        self._stop = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    # -- server -------------------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stop:
            try:
                s, peer = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cid = self.connections
                self._socks.add(s)
            threading.Thread(target=self._serve, args=(s, peer, cid), daemon=True).start()

    def _serve(self, s, peer, cid):
        # The default handler sends head and body separately: without TCP_NODELAY the body
        # would wait for the peer's delayed ACK (~40 ms a request).
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        r = _Reader(s)
        try:
            while not self._stop:
                try:
                    head = r.until(b"\r\n\r\n", limit=1 << 20)
                except EOFError:
                    return
                rec = self._parse_head(cid, peer, head)
                with self.cond:
                    self.requests.append(rec)
                    self.raw_bytes += len(head)
                    self.cond.notify_all()
                handler = self.handlers.get(rec.path) or Backend._default
                keep = handler(self, s, r, rec)
                if not keep:
                    return
        except BadRequest as e:
            self.errors.append("conn %d: %s" % (cid, e))
        except (EOFError, ConnectionError, OSError):
            pass
        finally:
            with self.lock:
                self._socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def _parse_head(self, cid, peer, head):
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise BadRequest("bad request line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            if b":" not in ln:
                raise BadRequest("bad header line %r" % ln)
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        return Recorded(cid, peer, parts[0].decode(), parts[1].decode("latin-1"), parts[2].decode(), headers, head)

    def read_body(self, r, rec, s=None):
        """Reads the request body (Content-Length or chunked), hashing as it goes. Sends
        100 Continue first when the request asked for it and s is given."""
        if s is not None and (rec.header("expect") or "").lower() == "100-continue":
            s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        h = hashlib.sha256()

        def eat(piece):
            h.update(piece)
            rec.body_len += len(piece)
            if len(rec.body) < self.keep_body_limit:
                rec.body += piece[: self.keep_body_limit - len(rec.body)]

        te = rec.header_all("transfer-encoding")
        cl = rec.header_all("content-length")
        if te:
            if len(te) != 1 or te[0].lower() != "chunked" or cl:
                raise BadRequest("gateway forwarded TE %r CL %r" % (te, cl))
            while True:
                line = r.until(b"\r\n", limit=4096)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while r.until(b"\r\n", limit=65536) != b"\r\n":
                        pass
                    break
                for piece in r.take(size):
                    eat(piece)
                if b"".join(r.take(2)) != b"\r\n":
                    raise BadRequest("bad chunk end")
        elif cl:
            if len(set(cl)) != 1:
                raise BadRequest("gateway forwarded differing Content-Length %r" % cl)
            for piece in r.take(int(cl[0])):
                eat(piece)
        rec.body_sha256 = h.hexdigest()
        rec.complete = True
        with self.lock:
            self.raw_bytes += rec.body_len

    # -- responses ----------------------------------------------------------------------------

    @staticmethod
    def _q(rec, name, default=None):
        v = rec.query.get(name)
        return v[-1] if v else default

    def _echo(self, rec):
        return {
            "backend": self.name,
            "port": self.port,
            "method": rec.method,
            "target": rec.target,
            "path": rec.path,
            "version": rec.version,
            "headers": rec.headers,
            "body_len": rec.body_len,
            "body_sha256": rec.body_sha256,
            "body": rec.body.decode("latin-1") if rec.body_len <= 65536 else None,
            "conn_id": rec.conn_id,
            "peer": list(rec.peer[:2]),
        }

    @staticmethod
    def _default(self, s, r, rec):
        q = lambda n, d=None: Backend._q(rec, n, d)  # noqa: E731
        if q("rst"):
            if not q("nodrain"):
                self.read_body(r, rec)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if not q("nodrain"):
            self.read_body(r, rec, s)
        delay = float(q("delay", "0"))
        if delay:
            time.sleep(delay)
        if q("reset"):
            return False
        if q("partial"):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
            time.sleep(0.05)
            return False
        if q("malformed"):
            s.sendall(b"HTTP/1.1 2x0 Not A Status\r\nContent-Length: 0\r\n\r\n")
            return False
        status = int(q("status", "200"))
        extra = []
        for hv in rec.query.get("hdr", []):
            k, _, v = hv.partition(":")
            extra.append((k, v))
        closing = bool(q("close")) or bool(q("connclose")) or (rec.header("connection") or "").lower() == "close"
        no_body = rec.method == "HEAD" or status in (204, 304) or 100 <= status < 200

        if q("download") is not None:
            n = int(q("download"))
            seed = int(q("seed", "0"))
            body_iter = pattern_chunks(n, seed)
            length = n
            ctype = "application/octet-stream"
        else:
            data = json.dumps(self._echo(rec)).encode()
            body_iter = iter([data])
            length = len(data)
            ctype = "application/json"

        head = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Status"))]
        if status not in (204, 304):
            head.append("Content-Type: " + ctype)
        mode = "length"
        if status == 204 or (status == 304):
            mode = "none"
        elif q("close"):
            mode = "close"
        elif q("chunked"):
            mode = "chunked"
        if mode == "length":
            head.append("Content-Length: %d" % length)
        elif mode == "chunked":
            head.append("Transfer-Encoding: chunked")
        if status == 304:
            head.append('ETag: "abc"')
        head.append("X-Backend: " + self.name)
        head.append("X-Conn-Id: %d" % rec.conn_id)
        for k, v in extra:
            head.append("%s: %s" % (k, v))
        if closing:
            head.append("Connection: close")
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if not no_body and mode != "none":
            for piece in body_iter:
                if mode == "chunked":
                    s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    s.sendall(piece)
            if mode == "chunked":
                s.sendall(b"0\r\n\r\n")
        if closing:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        return True


_REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently",
    304: "Not Modified", 400: "Bad Request", 404: "Not Found", 418: "I'm a teapot",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}
