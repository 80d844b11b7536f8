"""A threaded raw TCP backend for stream (layer 4) tests. One mode per instance:

- echo:   sends back every byte it reads; on EOF, shuts down its write half once all is sent.
- sink:   reads until EOF, hashing, then writes "<bytes> <sha256>\\n" and closes.
- source: writes `source_bytes` bytes of the test pattern (seed `source_seed`), shuts down its
          write half, then reads until EOF (counted in `received`).
- greet:  writes `greeting`, shuts down its write half at once, then reads until EOF and keeps
          what it read (the client's direction must keep working after ours ended).
- reset:  reads once, then closes with a TCP reset.
- proxy:  reads a PROXY protocol header (v1 or v2, parsed here by read_proxy_header and kept in
          `proxy`), then echoes every byte after it, as echo does.

Every accepted connection is recorded (peer address, bytes read). `slow_after` / `slow_for`
make the reader stop for a while after that many bytes (backpressure tests)."""
import hashlib
import socket
import struct
import threading
import time

from helpers import pattern_chunks

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def read_proxy_header(s, buf=b""):
    """Reads one PROXY protocol header (HAProxy's proxy-protocol.txt) from socket s; returns
    (info, bytes read after it). info: version, then for v1 family (TCP4, TCP6, UNKNOWN) and for
    v2 command (PROXY, LOCAL), family (TCP4, TCP6, or the byte in hex) and length; src, dst,
    sport and dport when the header carries addresses. Raises ValueError on anything else."""
    def more():
        d = s.recv(65536)
        if not d:
            raise ValueError("closed inside the PROXY header after %r" % buf)
        return d

    while len(buf) < 16 and not (buf.startswith(b"PROXY ") and b"\r\n" in buf):
        buf += more()
    if buf.startswith(b"PROXY "):
        while b"\r\n" not in buf:
            if len(buf) > 107:
                raise ValueError("v1 line too long: %r" % buf)
            buf += more()
        line, rest = buf.split(b"\r\n", 1)
        parts = line.decode("ascii").split(" ")
        if parts[1] == "UNKNOWN":
            return {"version": 1, "family": "UNKNOWN"}, rest
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ValueError("bad v1 line %r" % line)
        return {"version": 1, "family": parts[1], "src": parts[2], "dst": parts[3], "sport": int(parts[4]),
                "dport": int(parts[5])}, rest
    if not buf.startswith(V2_SIGNATURE):
        raise ValueError("no PROXY header: %r" % buf[:32])
    ver_cmd, fam, length = buf[12], buf[13], struct.unpack("!H", buf[14:16])[0]
    while len(buf) < 16 + length:
        buf += more()
    body, rest = buf[16:16 + length], buf[16 + length:]
    if ver_cmd >> 4 != 2 or ver_cmd & 0xF not in (0, 1):
        raise ValueError("bad v2 version/command %#x" % ver_cmd)
    info = {"version": 2, "command": "PROXY" if ver_cmd & 0xF else "LOCAL", "length": length}
    if fam == 0x11 and length >= 12:
        info.update(family="TCP4", src=socket.inet_ntop(socket.AF_INET, body[0:4]),
                    dst=socket.inet_ntop(socket.AF_INET, body[4:8]))
        info["sport"], info["dport"] = struct.unpack("!HH", body[8:12])
    elif fam == 0x21 and length >= 36:
        info.update(family="TCP6", src=socket.inet_ntop(socket.AF_INET6, body[0:16]),
                    dst=socket.inet_ntop(socket.AF_INET6, body[16:32]))
        info["sport"], info["dport"] = struct.unpack("!HH", body[32:36])
    else:
        info["family"] = "%#04x" % fam
    return info, rest


class StreamBackend:
    def __init__(self, mode="echo", host="127.0.0.1", port=0, source_bytes=0, source_seed=0, greeting=b"hello\n",
                 slow_after=None, slow_for=0.0):
        self.mode = mode
        self.source_bytes = source_bytes
        self.source_seed = source_seed
        self.greeting = greeting
        self.slow_after = slow_after
        self.slow_for = slow_for
        self.lock = threading.Lock()
        self.conns = []  # dicts: peer, received (bytes count), data (greet mode), done
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.host, self.port = self.sock.getsockname()[:2]
        self.address = "%s:%d" % (self.host, self.port)
        self.closed = False
        self.open_socks = set()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self):
        """Stops listening and resets every open connection."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            socks = list(self.open_socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def count(self):
        with self.lock:
            return len(self.conns)

    def snapshot(self):
        with self.lock:
            return [dict(c) for c in self.conns]

    # -- serving ------------------------------------------------------------------------------

    def _accept(self):
        while not self.closed:
            try:
                s, peer = self.sock.accept()
            except OSError:
                return
            rec = {"peer": peer, "received": 0, "data": b"", "done": False, "sha256": None, "proxy": None}
            with self.lock:
                self.conns.append(rec)
                self.open_socks.add(s)
            threading.Thread(target=self._serve, args=(s, rec), daemon=True).start()

    def _read(self, s, rec, keep=False, digest=None):
        slowed = False
        while True:
            try:
                d = s.recv(262144)
            except OSError:
                return False
            if not d:
                return True
            with self.lock:
                rec["received"] += len(d)
                if keep:
                    rec["data"] += d
            if digest is not None:
                digest.update(d)
            if self.mode in ("echo", "proxy"):
                try:
                    s.sendall(d)
                except OSError:
                    return False
            if self.slow_after is not None and not slowed and rec["received"] >= self.slow_after:
                slowed = True
                time.sleep(self.slow_for)

    def _serve(self, s, rec):
        try:
            if self.mode == "echo":
                if self._read(s, rec):
                    s.shutdown(socket.SHUT_WR)
            elif self.mode == "sink":
                h = hashlib.sha256()
                if self._read(s, rec, digest=h):
                    rec["sha256"] = h.hexdigest()
                    s.sendall(b"%d %s\n" % (rec["received"], h.hexdigest().encode()))
            elif self.mode == "source":
                for piece in pattern_chunks(self.source_bytes, self.source_seed, chunk=65536):
                    s.sendall(piece)
                s.shutdown(socket.SHUT_WR)
                self._read(s, rec)
            elif self.mode == "greet":
                s.sendall(self.greeting)
                s.shutdown(socket.SHUT_WR)
                self._read(s, rec, keep=True)
            elif self.mode == "proxy":
                try:
                    info, rest = read_proxy_header(s)
                except ValueError as e:
                    info, rest = {"error": str(e)}, None
                with self.lock:
                    rec["proxy"] = info
                if rest is not None:
                    if rest:
                        with self.lock:
                            rec["received"] += len(rest)
                        s.sendall(rest)
                    if self._read(s, rec):
                        s.shutdown(socket.SHUT_WR)
            elif self.mode == "reset":
                d = s.recv(65536)
                with self.lock:
                    rec["received"] += len(d)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        finally:
            with self.lock:
                rec["done"] = True
                self.open_socks.discard(s)
            s.close()
