"""The retry policy (issue 4): each condition provoked for real by a backend that resets,
refuses, answers 503 or a listed code, stalls past per_try_timeout, answers garbage or a gRPC
error; retries go to another node; bodies are replayed up to body_buffer; the route timeout
bounds every try; metrics, access log and configuration errors."""
import hashlib
import re
import socket
import time

import pytest

import helpers
from backends.backend import Backend
from helpers import get, RawConn, free_port, proxy_service, validate

ROUTE = "services[0].routes[0].policies.retry"
FAST = {"base": "1ms", "max": "2ms"}


def with_query(**kw):
    """A backend handler behaving as if the request had these query parameters (see backend.py)."""
    def handler(b, s, r, rec):
        for k, v in kw.items():
            rec.query[k] = [str(v)]
        return Backend._default(b, s, r, rec)
    return handler


def first_n(n, **kw):
    """A handler that misbehaves as with_query(**kw) for the first n requests, then answers."""
    bad, seen = with_query(**kw), [0]

    def handler(b, s, r, rec):
        seen[0] += 1
        return bad(b, s, r, rec) if seen[0] <= n else Backend._default(b, s, r, rec)
    return handler


def retry_gateway(make_gateway, backends, retry, balance="round_robin", **policies):
    policies["retry"] = retry
    return make_gateway([proxy_service(backends, upstream={"balance": balance}, routes=[
        {"name": "r", "paths": ["/*"], "policies": policies}])])


def retries(g, reason=None):
    labels = {"service": "svc", "route": "r"}
    if reason:
        labels["reason"] = reason
    return g.metrics().sum("sluice_http_retries_total", **labels)


def log_for(g, path, n=1):
    """The last access log entry for path, once n of them are written."""
    entries = []

    def have():
        entries[:] = [e for e in g.log_lines() if e["path"] == path]
        return len(entries) >= n
    helpers.wait_until(have, what="%d log entries for %s" % (n, path))
    return entries[-1]


# ---------------------------------------------------------------------------------------------
# conditions


def test_5xx_goes_to_the_other_node(make_gateway, make_backend):
    bad, good = make_backend("bad"), make_backend("good")
    bad.on("/x", with_query(status=503))
    g = retry_gateway(make_gateway, [bad, good], {"on": ["5xx"], "backoff": FAST})
    for _ in range(10):
        r = get(g, "/x")
        assert r.status == 200 and r.header("x-backend") == "good", r
    n_bad = len(bad.snapshot())
    assert n_bad >= 4  # round robin starts half the requests on it
    assert retries(g, "status") == n_bad
    e = log_for(g, "/x", 10)
    assert e["status"] == 200 and e["upstream"] == good.address
    assert any(x.get("retries") == 1 for x in g.log_lines())


def test_gateway_error_is_502_503_504_only(make_gateway, make_backend):
    bad, good = make_backend("bad"), make_backend("good")
    bad.on("/500", with_query(status=500))
    bad.on("/504", with_query(status=504))
    g = retry_gateway(make_gateway, [bad], {"on": ["gateway-error"], "attempts": 2, "backoff": FAST})
    # one node: a 500 is not a gateway error and goes straight to the client
    r = get(g, "/500")
    assert r.status == 500 and len(bad.snapshot()) == 1
    # 504 is retried, here on the same node (the only one), until the attempts run out
    r = get(g, "/504")
    assert r.status == 504 and r.header("x-backend") == "bad"  # the last response itself
    assert len(bad.snapshot()) == 1 + 3
    e = log_for(g, "/504")
    assert e["retries"] == 2 and e["retry_stop"] == "attempts_exhausted" and e["upstream_status"] == 504
    assert retries(g, "status") == 2
    assert not good.snapshot()


@pytest.mark.parametrize("how", ["reset", "rst", "partial"])
def test_reset(make_gateway, make_backend, how):
    bad, good = make_backend("bad"), make_backend("good")
    bad.on("/x", with_query(**{how: 1}))
    g = retry_gateway(make_gateway, [bad, good], {"on": ["reset"], "backoff": FAST})
    for _ in range(6):
        r = get(g, "/x")
        assert r.status == 200 and r.header("x-backend") == "good", r
    assert len(bad.snapshot()) >= 2
    # "partial" sent part of a head: closed before the response head, a reset too
    assert retries(g, "reset") == len(bad.snapshot())


def test_reset_not_covered_by_connect_failure(make_gateway, make_backend):
    bad = make_backend("bad")
    bad.on("/x", with_query(reset=1))
    g = retry_gateway(make_gateway, [bad], {"on": ["connect-failure", "retriable-status-codes"],
                                            "status_codes": [503], "backoff": FAST})
    r = get(g, "/x")
    assert r.status == 502 and r.json()["error"] == "upstream_reset"
    assert len(bad.snapshot()) == 1 and retries(g) == 0


def test_connect_failure(make_gateway, make_backend):
    good = make_backend("good")
    dead = "127.0.0.1:%d" % free_port()  # nothing listens there
    g = retry_gateway(make_gateway, [dead, good], {"on": ["connect-failure"], "backoff": FAST})
    for _ in range(6):
        r = get(g, "/c")
        assert r.status == 200 and r.header("x-backend") == "good", r
    assert retries(g, "connect-failure") >= 2
    assert any(e.get("retries") == 1 and e["upstream"] == good.address for e in g.log_lines())


def test_connect_failure_attempts_run_out(make_gateway):
    dead = "127.0.0.1:%d" % free_port()
    g = retry_gateway(make_gateway, [dead], {"on": ["connect-failure"], "attempts": 3, "backoff": FAST})
    r = get(g, "/c")
    assert r.status == 502 and r.json()["error"] == "upstream_connect_failed"
    e = log_for(g, "/c")
    assert e["retries"] == 3 and e["retry_stop"] == "attempts_exhausted"
    assert retries(g, "connect-failure") == 3


def test_retriable_status_codes(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/conflict", first_n(2, status=409))
    b.on("/gone", with_query(status=410))
    g = retry_gateway(make_gateway, [b], {"on": ["retriable-status-codes"], "status_codes": [409],
                                          "attempts": 3, "backoff": FAST})
    r = get(g, "/conflict")
    assert r.status == 200 and len(b.snapshot()) == 3
    assert log_for(g, "/conflict")["retries"] == 2
    b.reset()
    assert get(g, "/gone").status == 410 and len(b.snapshot()) == 1


def test_5xx_not_covered_by_retriable_status_codes(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/x", with_query(status=409))
    g = retry_gateway(make_gateway, [b], {"on": ["5xx"], "backoff": FAST})
    assert get(g, "/x").status == 409 and len(b.snapshot()) == 1


def test_per_try_timeout(make_gateway, make_backend):
    slow, good = make_backend("slow"), make_backend("good")
    slow.on("/x", with_query(delay=3))
    g = retry_gateway(make_gateway, [slow, good], {"on": ["reset"], "per_try_timeout": "200ms", "backoff": FAST})
    for _ in range(4):
        r = get(g, "/x")
        assert r.status == 200 and r.header("x-backend") == "good", r
    assert retries(g, "timeout") == len(slow.snapshot()) >= 1


def test_per_try_timeout_without_a_condition_is_504(make_gateway, make_backend):
    slow = make_backend("slow")
    slow.on("/x", with_query(delay=3))
    g = retry_gateway(make_gateway, [slow], {"on": ["connect-failure"], "per_try_timeout": "200ms"})
    r = get(g, "/x")
    assert r.status == 504 and r.json()["error"] == "upstream_timeout"
    assert len(slow.snapshot()) == 1


def test_bad_response_is_a_5xx(make_gateway, make_backend):
    bad, good = make_backend("bad"), make_backend("good")
    bad.on("/x", with_query(malformed=1))
    g = retry_gateway(make_gateway, [bad, good], {"on": ["5xx"], "backoff": FAST})
    for _ in range(4):
        assert get(g, "/x").header("x-backend") == "good"
    assert retries(g, "bad-response") == len(bad.snapshot()) >= 1


@pytest.mark.parametrize("cond,code,retried", [
    ("unavailable", 14, True), ("internal", 13, True), ("cancelled", 1, True),
    ("deadline-exceeded", 4, True), ("resource-exhausted", 8, True), ("unavailable", 13, False),
])
def test_grpc_status(make_gateway, make_backend, cond, code, retried):
    b = make_backend("b")
    b.on("/pkg.Svc/Call", first_n(1, hdr="grpc-status:%d" % code))
    g = retry_gateway(make_gateway, [b], {"on": [cond], "backoff": FAST})
    r = get(g, "/pkg.Svc/Call", method="POST", body=b"\0\0\0\0\0",
            headers=[("Content-Type", "application/grpc")])
    assert r.status == 200
    assert (r.header("grpc-status") is None) == retried
    assert len(b.snapshot()) == (2 if retried else 1)


def test_refused_stream_does_not_fire_on_http1(make_gateway, make_backend):
    """REFUSED_STREAM is an HTTP/2 error: on HTTP/1.1 upstreams nothing matches it."""
    b = make_backend("b")
    b.on("/x", with_query(status=503))
    b.on("/y", with_query(reset=1))
    g = retry_gateway(make_gateway, [b], {"on": ["refused-stream"], "backoff": FAST})
    assert get(g, "/x").status == 503
    # POST: a GET on a reused connection that closes unanswered is sent again (not a retry)
    assert get(g, "/y", method="POST", body=b"x").status == 502
    assert len(b.snapshot()) == 2 and retries(g) == 0


# ---------------------------------------------------------------------------------------------
# what is sent again


def test_post_body_replayed(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/upload", first_n(1, status=503))
    g = retry_gateway(make_gateway, [b], {"on": ["5xx"], "backoff": FAST})
    body = helpers.pattern_bytes(40000, seed=3)
    r = get(g, "/upload", method="POST", body=body)
    assert r.status == 200, r
    reqs = b.snapshot()
    assert len(reqs) == 2
    for rec in reqs:
        assert rec.method == "POST" and rec.body_len == len(body) and rec.complete
        assert rec.body_sha256 == hashlib.sha256(body).hexdigest()
    assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_body_replayed(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/upload", first_n(1, rst=1))
    g = retry_gateway(make_gateway, [b], {"on": ["reset"], "backoff": FAST})
    parts = [b"a" * 1000, b"b" * 5000, b"c" * 7]
    with RawConn("127.0.0.1", g.port) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + helpers.chunked(parts))
        r = c.read_response()
    assert r.status == 200, r
    assert r.json()["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_body_larger_than_buffer_is_not_retried(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/upload", with_query(status=503))
    g = retry_gateway(make_gateway, [b], {"on": ["5xx"], "body_buffer": "16KiB", "backoff": FAST})
    body = helpers.pattern_bytes(200000, seed=1)
    r = get(g, "/upload", method="POST", body=body)
    assert r.status == 503 and len(b.snapshot()) == 1
    e = log_for(g, "/upload")
    assert e["retry_stop"] == "body_too_large" and e["retries"] == 0
    # a small body on the same route is retried
    b.reset()
    r = get(g, "/upload", method="POST", body=b"small")
    assert r.status == 503 and len(b.snapshot()) == 2


def test_body_buffer_raised(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/upload", first_n(1, status=502))
    g = retry_gateway(make_gateway, [b], {"on": ["gateway-error"], "body_buffer": "1MiB", "backoff": FAST})
    body = helpers.pattern_bytes(300000, seed=2)
    r = get(g, "/upload", method="POST", body=body)
    assert r.status == 200 and r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert len(b.snapshot()) == 2


# ---------------------------------------------------------------------------------------------
# bounds


def test_route_timeout_bounds_all_tries(make_gateway, make_backend):
    slow = make_backend("slow")
    slow.on("/x", with_query(delay=5))
    g = retry_gateway(make_gateway, [slow], {"on": ["reset"], "attempts": 10, "per_try_timeout": "300ms",
                                             "backoff": FAST}, timeout="1s")
    r = get(g, "/x")
    assert r.status == 504 and r.json()["error"] == "route_timeout", r
    e = log_for(g, "/x")
    assert 1 <= e["retries"] < 10
    assert len(slow.snapshot()) == e["retries"] + 1


def test_backoff_longer_than_the_route_timeout_stops(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/x", with_query(status=503))
    g = retry_gateway(make_gateway, [b], {"on": ["5xx"], "attempts": 10,
                                          "backoff": {"base": "5s", "max": "5s"}}, timeout="1s")
    # each back-off is drawn from [0, 5s]: tries continue while they fit in the second, and ten
    # of them fitting (the chance is about 1e-13) is all that would exhaust the attempts first
    r = get(g, "/x")
    assert r.status == 503, r
    e = log_for(g, "/x")
    assert e["retry_stop"] == "route_timeout" and e["error"] is None, e


def test_client_gone_during_backoff(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/x", with_query(status=503))
    g = retry_gateway(make_gateway, [b], {"on": ["5xx"], "attempts": 1, "backoff": {"base": "2s", "max": "2s"}})
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", g.port))
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        helpers.wait_until(lambda: len(b.snapshot()) >= 1)
        s.close()
        b.reset()
    time.sleep(2.5)  # the back-off timers of the closed exchanges fire, or were cancelled
    b.on("/x", with_query(status=200))
    assert get(g, "/x").status == 200
    g.check_alive()


def test_no_retry_policy_keeps_plain_behaviour(make_gateway, make_backend):
    b = make_backend("b")
    b.on("/x", with_query(status=503))
    g = make_gateway([proxy_service([b])])
    assert get(g, "/x").status == 503 and len(b.snapshot()) == 1
    e = log_for(g, "/x")
    assert "retries" not in e and "retry_stop" not in e


def test_retries_across_reload(make_gateway, make_backend):
    bad, good = make_backend("bad"), make_backend("good")
    bad.on("/x", with_query(status=503))
    g = retry_gateway(make_gateway, [bad, good], {"on": ["5xx"], "backoff": FAST})
    assert all(get(g, "/x").status == 200 for _ in range(4))
    # the policy removed by a reload: 503s reach the client again
    g.reload(services=[proxy_service([bad, good], upstream={"balance": "round_robin"},
                                     routes=[{"name": "r", "paths": ["/*"]}])])
    statuses = {get(g, "/x").status for _ in range(6)}
    assert statuses == {200, 503}


# ---------------------------------------------------------------------------------------------
# configuration


ERR_RE = helpers.ERR_RE


@pytest.mark.parametrize("retry,path,msg", [
    ("{attempts: 3}", ".on", r"is required"),
    ("{on: [5xx, oops]}", ".on[1]", r"unknown retry condition 'oops' \(expected one of: 5xx, gateway-error"),
    ("{on: [5xx], attempts: 11}", ".attempts", r"between 1 and 10"),
    ("{on: [retriable-status-codes]}", ".on", r"needs 'status_codes'"),
    ("{on: [5xx], status_codes: [409]}", ".status_codes", r"has no effect unless 'on' lists"),
    ("{on: [retriable-status-codes], status_codes: [1000]}", ".status_codes[0]", r"between 200 and 599"),
    ("{on: [5xx], per_try_timeout: soon}", ".per_try_timeout", r"invalid duration 'soon'"),
    ("{on: [5xx], backoff: {base: 100ms, max: 10ms}}", ".backoff", r"'max' must not be less than 'base'"),
    ("{on: [5xx], backoff: {bsae: 1ms}}", ".backoff.bsae", r"did you mean 'base'"),
    ("{on: [5xx], body_buffer: lots}", ".body_buffer", r"invalid size 'lots'"),
    ("{on: 5xx}", ".on", r"expected a list"),
])
def test_config_errors(sluice_bin, tmp_path, retry, path, msg):
    p = tmp_path / "bad.yaml"
    p.write_text("services:\n  - name: s\n    upstream: {nodes: [\"127.0.0.1:1\"]}\n    routes:\n"
                 "      - paths: [\"/*\"]\n        policies:\n          retry: %s\n" % retry)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, r.stderr
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    hit = [e for e in errs if e[2] == ROUTE + path and re.search(msg, e[3])]
    assert hit, errs
    assert hit[0][0] == 7  # the retry line


def test_full_example_validates(sluice_bin, tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text("services:\n  - name: s\n    upstream: {nodes: [\"127.0.0.1:1\"]}\n    routes:\n"
                 "      - paths: [\"/*\"]\n        policies:\n"
                 "          timeout: 5s\n"
                 "          retry: {attempts: 3, per_try_timeout: 2s,\n"
                 "                  on: [5xx, gateway-error, reset, connect-failure, refused-stream,\n"
                 "                       retriable-status-codes, cancelled, deadline-exceeded, internal,\n"
                 "                       resource-exhausted, unavailable],\n"
                 "                  status_codes: [409], backoff: {base: 10ms, max: 1s}, body_buffer: 1MiB}\n")
    r = validate(sluice_bin, p)
    assert r.returncode == 0, r.stderr
