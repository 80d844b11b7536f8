"""A threaded raw TCP backend for stream (layer 4) tests. One mode per instance:

- echo:   sends back every byte it reads; on EOF, shuts down its write half once all is sent.
- sink:   reads until EOF, hashing, then writes "<bytes> <sha256>\\n" and closes.
- source: writes `source_bytes` bytes of the test pattern (seed `source_seed`), shuts down its
          write half, then reads until EOF (counted in `received`).
- greet:  writes `greeting`, shuts down its write half at once, then reads until EOF and keeps
          what it read (the client's direction must keep working after ours ended).
- reset:  reads once, then closes with a TCP reset.

Every accepted connection is recorded (peer address, bytes read). `slow_after` / `slow_for`
make the reader stop for a while after that many bytes (backpressure tests)."""
import hashlib
import socket
import struct
import threading
import time

from helpers import pattern_chunks


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
            rec = {"peer": peer, "received": 0, "data": b"", "done": False, "sha256": None}
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
            if self.mode == "echo":
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
