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
# MySQL / MariaDB: the server speaks first; its greeting is a 3-byte length, sequence 0 and
# protocol version 10.
MYSQL_GREETING = {"expect_hex": "?? ?? ?? 00 0a"}
# The same, logged in as a user without a password or grants (sluice_health), then COM_QUIT:
# a HandshakeResponse41 (client flags LONG_PASSWORD | PROTOCOL_41 | SECURE_CONNECTION, 16 MiB
# packets, utf8, the user name, an empty auth response) and a COM_QUIT, sent at once.
MYSQL_LOGIN_QUIT = {
    "send_hex": "2f000001 01820000 00000001 21 " + "00" * 23 + " 736c756963655f6865616c746800 00 0100000001",
    "expect_hex": "?? ?? ?? 00 0a",
}
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


@pytest.fixture
def mariadb_server():
    """A MariaDB server of its own on loopback, with the user sluice_health (no password, no
    grants); yields its pid, its address and its error log's path."""
    exe = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if not os.path.exists(exe):
        pytest.fail("mariadb-server is not installed (scripts/install-deps installs it)", pytrace=False)
    d = tempfile.mkdtemp(prefix="sluice-mdb-")
    user = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("mysql")
        os.chown(d, pw.pw_uid, pw.pw_gid)
        user = ["--user=mysql"]
    data, sock, err = os.path.join(d, "data"), os.path.join(d, "sock"), os.path.join(d, "err.log")
    subprocess.run(["mariadb-install-db", "--datadir=" + data, "--auth-root-authentication-method=normal"] + user,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    port = free_port()
    p = subprocess.Popen([exe, "--no-defaults", "--datadir=" + data, "--socket=" + sock, "--port=%d" % port,
                          "--bind-address=127.0.0.1", "--log-error=" + err, "--skip-log-bin",
                          "--innodb-buffer-pool-size=16M", "--log-warnings=2"] + user,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def sql(q):
        return subprocess.run(["mariadb", "-S", sock, "-uroot", "-e", q], capture_output=True, text=True, timeout=20)

    try:
        wait_until(lambda: p.poll() is None and sql("SELECT 1").returncode == 0, timeout=60,
                   what="mariadbd to answer")
        r = sql("CREATE USER 'sluice_health'@'127.0.0.1'; CREATE USER 'sluice_health'@'localhost'")
        assert r.returncode == 0, r.stderr
        yield p.pid, "127.0.0.1:%d" % port, err
    finally:
        try:
            os.kill(p.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def aborted(err_log):
    with open(err_log, errors="replace") as f:
        return f.read().count("Aborted connection")


def checks_passed(g, service, node):
    return g.metrics().get("sluice_upstream_health_checks_total", service=service, node=node, result="success") or 0


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


def test_mysql_greeting_check(make_gateway, mariadb_server):
    pid, addr, _ = mariadb_server
    port = free_port()
    g = make_gateway([stream_service("db", [addr], [{"name": "r", "server_addr": "127.0.0.1", "server_port": port}],
                                     health_check=check(**MYSQL_GREETING))])
    freeze_and_thaw(g, "db", addr, pid)


def test_mysql_check_that_logs_in_and_quits_leaves_no_warning(make_gateway, mariadb_server):
    """A greeting-only check leaves an "Aborted connection" warning per check in the server's
    log; logging in as a user without grants and sending COM_QUIT leaves none."""
    _, addr, err = mariadb_server
    p1, p2 = free_port(), free_port()
    g = make_gateway([stream_service("quiet", [addr], [{"name": "q", "server_addr": "127.0.0.1", "server_port": p1}],
                                     health_check=check(**MYSQL_LOGIN_QUIT))])
    wait_until(lambda: checks_passed(g, "quiet", addr) >= 5, what="five checks")
    assert healthy(g, "quiet", addr) == 1
    assert aborted(err) == 0
    g.reload(services=[stream_service("noisy", [addr], [{"name": "n", "server_addr": "127.0.0.1", "server_port": p2}],
                                      health_check=check(**MYSQL_GREETING))])
    wait_until(lambda: checks_passed(g, "noisy", addr) >= 3, what="three greeting checks")
    wait_until(lambda: aborted(err) >= 2, what="the server's warnings about the greeting-only checks")
