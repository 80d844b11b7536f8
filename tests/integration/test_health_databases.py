"""TCP health checks that speak the database's protocol (send_hex / expect_hex), against real
servers: a frozen server (SIGSTOP) still completes TCP handshakes in the kernel, so only a check
that waits for the server's own answer takes it out."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest

from helpers import free_port, wait_until
from test_stream_tcp import redis_server, stream_service  # noqa: F401 (fixture)

PG_BIN = "/usr/lib/postgresql/15/bin"

# PostgreSQL's SSLRequest (length 8, code 80877103): the server answers one byte, N (or S when
# it has TLS), before any authentication, so the check never appears in its log as a failed login.
PG_CHECK = {"send_hex": "00000008 04d2162f", "expect_hex": "4e"}
# Redis: PING, answered +PONG.
REDIS_CHECK = {"send_hex": "50 49 4e 47 0d 0a", "expect_hex": "2b 50 4f 4e 47"}


@pytest.fixture
def postgres_server():
    """A PostgreSQL 15 cluster of its own on loopback (run as the postgres user when root);
    yields the postmaster's pid and its address."""
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        pytest.fail("PostgreSQL 15 is not installed (scripts/install-deps installs postgresql)", pytrace=False)
    as_user = []
    d = tempfile.mkdtemp(prefix="sluice-pg-")
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(d, "data")
    subprocess.run(as_user + [PG_BIN + "/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    port = free_port()
    p = subprocess.Popen(as_user + [PG_BIN + "/postgres", "-D", data, "-p", str(port), "-k", d, "-c",
                                    "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def ready():
        return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True,
                              timeout=10).returncode == 0

    try:
        wait_until(ready, timeout=30, what="postgres to accept connections")
        with open(os.path.join(data, "postmaster.pid")) as f:
            postmaster = int(f.readline())  # p may be runuser's pid
        yield postmaster, "127.0.0.1:%d" % port
    finally:
        try:  # the postmaster itself: a signal to runuser need not reach it
            with open(os.path.join(data, "postmaster.pid")) as f:
                pm = int(f.readline())
            os.kill(pm, signal.SIGCONT)
            os.kill(pm, signal.SIGTERM)
        except (OSError, ValueError):
            pass
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def healthy(g, service, node):
    return g.metrics().get("sluice_upstream_node_healthy", service=service, node=node)


def freeze_and_thaw(g, service, node, pid):
    wait_until(lambda: healthy(g, service, node) == 1, what="the node healthy")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: healthy(g, service, node) == 0, timeout=15, what="the frozen server marked unhealthy")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: healthy(g, service, node) == 1, timeout=15, what="the thawed server healthy again")


def check(**proto):
    return dict({"interval": "300ms", "timeout": "300ms", "healthy_threshold": 1, "unhealthy_threshold": 1}, **proto)


def test_postgres_ssl_request_check(make_gateway, postgres_server):
    pid, addr = postgres_server
    port = free_port()
    g = make_gateway([stream_service("pg", [addr], [{"name": "r", "server_addr": "127.0.0.1", "server_port": port}],
                                     health_check=check(**PG_CHECK))])
    freeze_and_thaw(g, "pg", addr, pid)
    # and the route works: psql through the gateway
    r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-Atc", "select 40+2"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "42", r.stderr


def test_redis_ping_check_in_hex(make_gateway, redis_server):  # noqa: F811
    port = free_port()
    g = make_gateway([stream_service("redis", [redis_server], [{"name": "r", "server_addr": "127.0.0.1",
                                                                "server_port": port}],
                                     health_check=check(**REDIS_CHECK))])
    pid = int(subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", redis_server.rsplit(":", 1)[1], "info", "server"],
                             capture_output=True, text=True, timeout=10).stdout.split("process_id:")[1].split()[0])
    freeze_and_thaw(g, "redis", redis_server, pid)


def test_any_byte_wildcard_and_a_wrong_reply(make_gateway, postgres_server):
    """expect_hex "??" matches any byte; a reply that differs anywhere else fails the check."""
    _, addr = postgres_server
    good, bad = free_port(), free_port()
    g = make_gateway([
        stream_service("any", [addr], [{"name": "a", "server_addr": "127.0.0.1", "server_port": good}],
                       health_check=check(send_hex=PG_CHECK["send_hex"], expect_hex="??")),
        stream_service("wrong", [addr], [{"name": "w", "server_addr": "127.0.0.1", "server_port": bad}],
                       health_check=check(send_hex=PG_CHECK["send_hex"], expect_hex="53")),  # S: TLS is not on
    ])
    wait_until(lambda: healthy(g, "any", addr) == 1 and healthy(g, "wrong", addr) == 0,
               what="the wildcard check passing and the wrong one failing")
