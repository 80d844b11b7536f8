"""A threaded UDP echo backend for stream (layer 4) tests: every datagram it reads goes back to
its sender, prefixed with `tag` (so a test can tell nodes apart). Every datagram is recorded
with its sender's address, so a test sees which gateway socket (one per session) it came from."""
import select
import socket
import threading


class UdpBackend:
    def __init__(self, tag=b"", host="127.0.0.1", port=0):
        self.tag = tag
        self.lock = threading.Lock()
        self.received = []  # (peer, length)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.address = "%s:%d" % (self.host, self.port)
        self._stop_r, self._stop_w = socket.socketpair()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                continue
            with self.lock:
                self.received.append((peer, len(data)))
            try:
                self.sock.sendto(self.tag + data, peer)
            except OSError:
                pass  # the gateway's session socket is gone: nothing to answer

    def count(self):
        with self.lock:
            return len(self.received)

    def peers(self):
        """The distinct gateway addresses datagrams came from, in order of first appearance."""
        with self.lock:
            out = []
            for peer, _ in self.received:
                if peer not in out:
                    out.append(peer)
            return out

    def close(self):
        self._stop_w.send(b"x")
        self.thread.join(10)
        self.sock.close()
        self._stop_r.close()
        self._stop_w.close()
