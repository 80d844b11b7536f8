"""Shared helpers for the sluice integration tests: ports, a tiny YAML emitter, the
deterministic data pattern, raw HTTP/1.1 client connections and response parsing.

Everything here is real: real sockets on loopback, no mocks."""
import hashlib
import json
import re
import socket
import subprocess
import threading
import time

# ---------------------------------------------------------------------------------------------
# ports

_port_lock = threading.Lock()
_ports_given = set()


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago and that this test session has not handed out."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _port_lock:
        for _ in range(200):
            s = socket.socket(fam, socket.SOCK_STREAM)
            try:
                s.bind((host, 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port")


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; returns it. Raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last value %r)" % (timeout, what, last))
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# YAML emitter (block style; strings double-quoted, which YAML reads like JSON strings)

_plain_ok = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def to_yaml(obj, indent=0):
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            key = k if _plain_ok.match(str(k)) else json.dumps(str(k))
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, key, to_yaml(v, indent + 1)))
            elif isinstance(v, dict):
                out.append("%s%s: {}\n" % (pad, key))
            elif isinstance(v, list):
                out.append("%s%s: []\n" % (pad, key))
            else:
                out.append("%s%s: %s\n" % (pad, key, _scalar(v)))
        return "".join(out)
    if isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                body = to_yaml(v, indent + 1)
                # "- " followed by the first line of the nested block
                first, _, rest = body.partition("\n")
                out.append("%s- %s\n%s" % (pad, first.lstrip(), rest))
            else:
                out.append("%s- %s\n" % (pad, _scalar(v) if not isinstance(v, (dict, list)) else ("{}" if isinstance(v, dict) else "[]")))
        return "".join(out)
    return pad + _scalar(obj) + "\n"


# ---------------------------------------------------------------------------------------------
# deterministic data: block i (64 KiB) is a fixed pseudo-random block with i and the seed
# written into its first 16 bytes, so dropped, duplicated or reordered blocks change the hash.

BLOCK = 64 * 1024
_base_blocks = {}


def _base_block(seed):
    b = _base_blocks.get(seed)
    if b is None:
        parts = []
        h = hashlib.sha256(("sluice-pattern-%d" % seed).encode()).digest()
        while sum(len(p) for p in parts) < BLOCK:
            h = hashlib.sha256(h).digest()
            parts.append(h * 64)  # 2 KiB per round keeps generation cheap
        b = b"".join(parts)[:BLOCK]
        _base_blocks[seed] = b
    return b


def pattern_chunks(n, seed=0, chunk=BLOCK):
    """Yields n bytes of the pattern in pieces of at most `chunk` bytes (chunk divides BLOCK)."""
    base = _base_block(seed)
    i = 0
    sent = 0
    while sent < n:
        block = (i.to_bytes(8, "big") + seed.to_bytes(8, "big")) + base[16:]
        i += 1
        for off in range(0, BLOCK, chunk):
            piece = block[off:off + chunk]
            if sent + len(piece) > n:
                piece = piece[: n - sent]
            sent += len(piece)
            yield piece
            if sent >= n:
                return


def pattern_bytes(n, seed=0):
    return b"".join(pattern_chunks(n, seed))


_hash_cache = {}


def pattern_sha256(n, seed=0):
    key = (n, seed)
    if key not in _hash_cache:
        h = hashlib.sha256()
        for c in pattern_chunks(n, seed):
            h.update(c)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


# ---------------------------------------------------------------------------------------------
# raw client connections


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %s %s %r body=%r>" % (self.status, self.reason, self.headers, self.body[:200])


class ConnectionClosed(Exception):
    pass


class RawConn:
    """A client TCP connection speaking hand-written HTTP/1.1."""

    def __init__(self, host, port, timeout=10.0, source=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            raise ConnectionClosed("connection closed by peer (buffered %r)" % self.buf[:200])
        self.buf += d

    def read_until(self, marker, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("no %r within %d bytes" % (marker, limit))
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self):
        while True:
            try:
                self._fill()
            except ConnectionClosed:
                out, self.buf = self.buf, b""
                return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        return m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1"), headers, head

    def read_response(self, method="GET", sink=None, skip_interim=True):
        """Reads one response. 1xx responses are skipped (unless skip_interim is False).
        With sink (a callable), the body is passed to it in pieces and Response.body is b""."""
        while True:
            version, status, reason, headers, head = self.read_head()
            if 100 <= status < 200 and skip_interim and status != 101:
                continue
            break
        hmap = {}
        for k, v in headers:
            hmap.setdefault(k.lower(), []).append(v)
        body_parts = []

        def emit(b):
            if sink:
                sink(b)
            else:
                body_parts.append(b)

        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif "transfer-encoding" in hmap:
            assert hmap["transfer-encoding"][-1].lower() == "chunked", hmap
            while True:
                line = self.read_until(b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n") != b"\r\n":
                        pass
                    break
                remaining = size
                while remaining:
                    if not self.buf:
                        self._fill()
                    piece = self.buf[:remaining]
                    self.buf = self.buf[len(piece):]
                    remaining -= len(piece)
                    emit(piece)
                assert self.read_exact(2) == b"\r\n"
        elif "content-length" in hmap:
            n = int(hmap["content-length"][0])
            while n:
                if not self.buf:
                    self._fill()
                piece = self.buf[:n]
                self.buf = self.buf[len(piece):]
                n -= len(piece)
                emit(piece)
        else:
            while True:
                if self.buf:
                    emit(self.buf)
                    self.buf = b""
                try:
                    self._fill()
                except ConnectionClosed:
                    break
        return Response(version, status, reason, headers, b"".join(body_parts), head)

    def request(self, method, target, host="example.com", headers=(), body=None):
        self.send(build_request(method, target, host, headers, body))
        return self.read_response(method)

    def is_closed(self, timeout=5.0):
        """True when the peer closes (or resets) the connection within timeout with no more data."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
                return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(self.timeout)


def build_request(method, target, host="example.com", headers=(), body=None):
    lines = ["%s %s HTTP/1.1" % (method, target)]
    if host is not None:
        lines.append("Host: %s" % host)
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def chunked(parts):
    out = b""
    for p in parts:
        out += b"%x\r\n%s\r\n" % (len(p), p)
    return out + b"0\r\n\r\n"


def raw_exchange(host, port, data, timeout=10.0):
    """Sends data and reads until the peer closes or timeout; returns what was read."""
    with RawConn(host, port, timeout=timeout) as c:
        c.send(data)
        try:
            return c.read_to_close()
        except socket.timeout:
            return c.buf


# ---------------------------------------------------------------------------------------------
# config pieces


def proxy_service(backends, name="svc", routes=None, upstream=None):
    """A proxied service over the given backends, routing everything by default."""
    up = {
        "balance": "round_robin",
        "nodes": [{"address": b.address if hasattr(b, "address") else b, "weight": 1} for b in backends],
        "timeouts": {"connect": "1s", "send": "5s", "read": "5s"},
    }
    if upstream:
        up.update(upstream)
    return {"name": name, "upstream": up, "routes": routes or [{"name": "all", "paths": ["/*"]}]}


def direct_service(name="static", routes=None):
    """A service made of direct_response routes (see direct_route)."""
    return {"name": name, "routes": routes}


def direct_route(name, paths, status=200, body="hello\n", headers=None, **extra):
    d = {"status": status, "headers": headers or {"Content-Type": "text/plain"}}
    if body is not None:
        d["body"] = body
    r = {"name": name, "paths": paths, "direct_response": d}
    r.update(extra)
    return r


def dechunk(data):
    """Decodes a chunked body; returns (body, complete) where complete means the last chunk
    and the final CRLF were present."""
    out = b""
    pos = 0
    while True:
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            return out, False
        size = int(data[pos:nl].split(b";")[0].strip(), 16)
        pos = nl + 2
        if size == 0:
            return out, data.find(b"\r\n", pos) >= 0
        if len(data) < pos + size + 2:
            return out + data[pos:pos + size], False
        out += data[pos:pos + size]
        pos += size + 2


def validate(bin_, path):
    """Runs `sluice validate PATH`; returns the CompletedProcess."""
    return subprocess.run([bin_, "validate", str(path)], capture_output=True, text=True, timeout=30)


# One loader error line: FILE:LINE:COL: field.path: message
ERR_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>[^:]+): (?P<msg>.+)$")


def get(g, target, method="GET", host="example.com", headers=(), body=None, source=None, timeout=10.0):
    """One request on a fresh connection to gateway g (from source when given)."""
    with RawConn("127.0.0.1", g.port, timeout=timeout, source=source) as c:
        return c.request(method, target, host=host, headers=list(headers), body=body)


def parse_errors(path, stderr, err_re=ERR_RE):
    """Each stderr line as (line, col, field path, message); every line must match err_re
    (FILE:LINE:COL: path: message) and name path."""
    errs = []
    for line in stderr.strip().splitlines():
        m = err_re.match(line)
        assert m, "error line not in FILE:LINE:COL: path: message form: %r" % line
        assert m.group("file") == str(path), line
        errs.append((int(m.group("line")), int(m.group("col")), m.group("path"), m.group("msg")))
    return errs
