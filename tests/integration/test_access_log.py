"""The access log: lines gathered per worker and handed over by size or age, nothing lost on
drain, reopen or exit, a blocked output that never stalls traffic, and both formats."""
import json
import os
import re
import signal

from helpers import RawConn, proxy_service, wait_until


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return [l for l in f.read().split(b"\n") if l]
    except FileNotFoundError:
        return []


def paths_in(*files):
    return [json.loads(l)["path"] for f in files for l in read_lines(f)]


def send(g, paths, headers=()):
    with RawConn("127.0.0.1", g.port) as c:
        for p in paths:
            assert c.request("GET", p, headers=headers).status == 200


def test_lines_wait_in_the_worker_until_their_flush_age(make_gateway, backend):
    """flush: 60s: nothing is written while the lines are young; the stop writes them all."""
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {"flush": "60s"}})
    send(g, ["/young/%d" % i for i in range(30)])
    assert read_lines(g.access_log) == []
    assert g.stop() == 0
    assert sorted(paths_in(g.access_log)) == sorted("/young/%d" % i for i in range(30))


def test_lines_leave_by_age_without_more_traffic(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {"flush": "200ms"}})
    send(g, ["/aged"])
    wait_until(lambda: "/aged" in paths_in(g.access_log), what="the line written after its flush age")


def test_full_buffer_leaves_before_its_age(make_gateway, backend):
    """buffer: 4KiB with flush 60s: a worker hands its lines over each time 4 KiB gather."""
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {"flush": "60s", "buffer": "4KiB"}})
    n = 200  # about 70 KiB of lines
    send(g, ["/full/%d" % i for i in range(n)], headers=[("X-Pad", "p" * 100)])
    # All but what fits in the workers' buffers goes out long before the 60 s age (a line is
    # over 300 bytes here). The writer thread writes the handed-over buffers in its own time:
    # wait for them rather than count at the first one.
    want = n - 2 * (4096 // 300 + 1)
    wait_until(lambda: len(read_lines(g.access_log)) >= want, timeout=20, what="full buffers written")
    assert g.stop() == 0
    assert sorted(paths_in(g.access_log)) == sorted("/full/%d" % i for i in range(n))


def test_reopen_loses_nothing(make_gateway, backend):
    """SIGUSR1 after a rename: every line is in the old file or the new one, exactly once."""
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {"flush": "60s"}})
    send(g, ["/before/%d" % i for i in range(25)])
    rotated = g.access_log + ".1"
    os.rename(g.access_log, rotated)
    g.signal(signal.SIGUSR1)
    wait_until(lambda: "access log reopened" in g.stderr_text(), what="the reopen")
    send(g, ["/after/%d" % i for i in range(25)])
    assert g.stop() == 0
    want = ["/before/%d" % i for i in range(25)] + ["/after/%d" % i for i in range(25)]
    got = paths_in(rotated, g.access_log)
    assert sorted(got) == sorted(want)
    # nothing made after the reopen went to the renamed file
    assert not [p for p in paths_in(rotated) if p.startswith("/after/")]


def test_reload_that_moves_the_log_keeps_the_old_lines(make_gateway, backend, tmp_path):
    """A reload to a new path: lines made before it end in the old file, later ones in the new."""
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {"flush": "60s"}})
    old = g.access_log
    send(g, ["/old/%d" % i for i in range(10)])
    new = str(tmp_path / "moved.log")
    g.reload(gateway={"access_log": {"path": new, "flush": "60s"}})
    send(g, ["/new/%d" % i for i in range(10)])
    assert g.stop() == 0
    assert sorted(paths_in(old)) == sorted("/old/%d" % i for i in range(10))
    assert sorted(paths_in(new)) == sorted("/new/%d" % i for i in range(10))


def test_blocked_stdout_never_stalls_traffic(make_gateway, backend):
    """stdout is a pipe nobody reads: requests are still answered, lines past the bound are
    dropped and counted, and the stop does not hang on the pipe."""
    g = make_gateway([proxy_service([backend])], start=False,
                     gateway={"access_log": {"path": "stdout", "flush": "0s", "buffer": "4KiB",
                                             "fields": ["path", "request_header.x-pad"]}})
    r, w = os.pipe()
    try:
        g.start(stdout=os.fdopen(w, "wb"))
        # Each line is about 2 KiB: far more than the pipe (64 KiB) and the queue (256 KiB).
        send(g, ["/blocked/%d" % i for i in range(600)], headers=[("X-Pad", "b" * 2000)])
        dropped = g.metrics().sum("sluice_access_log_dropped_total")
        assert dropped > 0
        assert g.stop() == 0
        assert "access log: not written out within 5 s" in g.stderr_text()
    finally:
        os.close(r)


def test_combined_format(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {"format": "combined"}})
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/c?q=1", headers=[("User-Agent", 'agent "7"'), ("Referer", "http://r/")]).status == 200
        assert c.request("GET", "/d").status == 200
    assert g.stop() == 0
    lines = [l.decode() for l in read_lines(g.access_log)]
    stamp = r"\[\d\d/[A-Z][a-z][a-z]/\d{4}:\d\d:\d\d:\d\d \+0000\]"
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "GET /c\?q=1 HTTP/1\.1" 200 \d+ "http://r/" "agent \\x227\\x22"' % stamp,
                        lines[0]), lines[0]
    assert re.fullmatch(r'127\.0\.0\.1 - - %s "GET /d HTTP/1\.1" 200 \d+ "-" "-"' % stamp, lines[1]), lines[1]


def test_upstream_connect_time(make_gateway, backend):
    """upstream_connect_ms: the connect of a new upstream connection, 0 on a pooled one, null
    where nothing was connected."""
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "p", "paths": ["/p/*"]},
        {"name": "d", "paths": ["/d"], "direct_response": {"status": 200, "body": "x"}}])],
        gateway={"workers": 1, "access_log": {"fields": ["path", "upstream_connect_ms"]}})
    send(g, ["/p/1", "/p/2", "/d"])
    first = g.wait_log(lambda e: e["path"] == "/p/1")
    second = g.wait_log(lambda e: e["path"] == "/p/2")
    direct = g.wait_log(lambda e: e["path"] == "/d")
    assert isinstance(first["upstream_connect_ms"], float) and first["upstream_connect_ms"] >= 0
    assert second["upstream_connect_ms"] == 0.0  # the pooled connection of the first
    assert direct["upstream_connect_ms"] is None
    assert backend.connections == 1


def test_chosen_fields(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"access_log": {
        "fields": ["time", "path", "status", "protocol", "user_agent", "referer", "request_header.X-Tenant",
                   "request_header.x-absent", "duration_ms"]}})
    send(g, ["/f"], headers=[("User-Agent", "ua/1"), ("x-tenant", "acme")])
    e = g.wait_log(lambda e: e.get("path") == "/f")
    assert list(e) == ["time", "path", "status", "protocol", "user_agent", "referer", "request_header.X-Tenant",
                       "request_header.x-absent", "duration_ms"]
    assert (e["status"], e["protocol"], e["user_agent"], e["referer"]) == (200, "HTTP/1.1", "ua/1", None)
    assert e["request_header.X-Tenant"] == "acme" and e["request_header.x-absent"] is None


def test_response_header_fields(make_gateway, backend):
    """response_header.NAME: the upstream response's header (kept past the response), null when
    it had none or the gateway answered itself."""
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "p", "paths": ["/p/*"]},
        {"name": "d", "paths": ["/d"], "direct_response": {"status": 200, "body": "x"}}])],
        gateway={"access_log": {"fields": ["path", "response_header.X-Up", "response_header.content-type",
                                           "response_header.x-none"]}})
    send(g, ["/p/1?hdr=X-Up:%22v%22", "/p/2", "/d"])
    one = g.wait_log(lambda e: e["path"].startswith("/p/1"))
    two = g.wait_log(lambda e: e["path"] == "/p/2")
    direct = g.wait_log(lambda e: e["path"] == "/d")
    assert one["response_header.X-Up"] == '"v"' and one["response_header.x-none"] is None
    assert one["response_header.content-type"] == two["response_header.content-type"] == "application/json"
    assert two["response_header.X-Up"] is None  # nothing left over from the request before
    assert direct["response_header.content-type"] is None


def test_route_tags(make_gateway, backend):
    g = make_gateway([proxy_service([backend], routes=[
        {"name": "t", "paths": ["/t/*"], "tags": ["team-a", "tier 1"]},
        {"name": "u", "paths": ["/u/*"]}])],
        gateway={"access_log": {"fields": ["path", "route", "tags"]}})
    send(g, ["/t/1", "/u/1"])
    with RawConn("127.0.0.1", g.port) as c:
        assert c.request("GET", "/none").status == 404
    assert g.wait_log(lambda e: e["path"] == "/t/1")["tags"] == ["team-a", "tier 1"]
    assert g.wait_log(lambda e: e["path"] == "/u/1")["tags"] == []
    assert g.wait_log(lambda e: e["path"] == "/none")["tags"] is None
