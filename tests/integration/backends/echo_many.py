"""An echo server for many connections at once, in a process of its own (its own descriptor
limit): one epoll loop, every byte read is written back. Prints its port on the first line of
stdout, then serves until killed. Usage: echo_many.py [HOST]"""
import resource
import selectors
import socket
import sys


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1", 0))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    sys.stdout.write("%d\n" % lsock.getsockname()[1])
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is lsock:
                while True:
                    try:
                        c, _ = lsock.accept()
                    except (BlockingIOError, OSError):
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                continue
            try:
                d = s.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(s)
                s.close()
                continue
            try:
                s.sendall(d)  # a few bytes at a time in the test: the socket always takes them
            except OSError:
                sel.unregister(s)
                s.close()


if __name__ == "__main__":
    main()
