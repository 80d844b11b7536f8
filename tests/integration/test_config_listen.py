"""Listen addresses: `sluice validate` and `sluice run` read them with one function
(sl_config_listen_addr), so they agree. `localhost:PORT` is the IPv4 loopback, as nginx takes
it, for gateway.http.listen and gateway.status.listen; any other host name is refused by both
commands with an error saying to write an IP address. Stream routes listen on server_addr,
which takes IP addresses only."""
import subprocess

import pytest

import helpers
from helpers import direct_route, direct_service, free_port, to_yaml, validate

ERR_RE = helpers.ERR_RE
SERVICES = [direct_service(routes=[direct_route("hello", ["/hello"], body="hello\n")])]


def get_hello(port):
    with helpers.RawConn("127.0.0.1", port) as c:
        return c.request("GET", "/hello")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST"])
def test_localhost_http_listen_validates_and_serves_on_loopback(make_gateway, host):
    gw = make_gateway(SERVICES, start=False)
    gw.gateway_overrides = {"http": {"listen": ["%s:%d" % (host, gw.port)]}}
    gw.write_config()
    r = validate(gw.binary, gw.config_path)
    assert r.returncode == 0, r.stderr
    gw.start()
    resp = get_hello(gw.port)
    assert (resp.status, resp.body) == (200, b"hello\n")


def test_localhost_status_listen_validates_and_serves(make_gateway):
    gw = make_gateway(SERVICES, start=False)
    gw.gateway_overrides = {"status": {"listen": "localhost:%d" % gw.status_port}}
    gw.write_config()
    assert validate(gw.binary, gw.config_path).returncode == 0
    gw.start()  # waits for GET http://127.0.0.1:STATUS/healthz
    assert get_hello(gw.port).status == 200


HOSTNAME_CASES = [
    ("http", lambda p: {"http": {"listen": ["gw.example.com:%d" % p]}}, "gateway.http.listen[0]", "gw.example.com"),
    ("http-scalar", lambda p: {"http": {"listen": "ip6-localhost:%d" % p}}, "gateway.http.listen", "ip6-localhost"),
    ("status", lambda p: {"status": {"listen": "localhost.localdomain:%d" % p}}, "gateway.status.listen",
     "localhost.localdomain"),
]


@pytest.mark.parametrize("case", HOSTNAME_CASES, ids=[c[0] for c in HOSTNAME_CASES])
def test_other_host_names_refused_by_validate_and_run(sluice_bin, tmp_path, case):
    _, gateway, path, host = case
    port = free_port()
    cfg = {"gateway": dict({"workers": 1, "http": {"listen": ["127.0.0.1:%d" % free_port()]},
                            "status": {"listen": "127.0.0.1:%d" % free_port()}}, **gateway(port)),
           "services": SERVICES}
    p = tmp_path / "gw.yaml"
    p.write_text(to_yaml(cfg))
    msg = ("cannot listen on '%s:%d': a listen address takes an IP address or localhost, not a host name "
           "(e.g. 0.0.0.0:%d, [::]:%d, 127.0.0.1:%d)" % (host, port, port, port, port))
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert [(e[2], e[3]) for e in errs] == [(path, msg)]
    run = subprocess.run([sluice_bin, "run", "-c", str(p)], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "%s: %s" % (path, msg) in run.stderr, run.stderr


def test_stream_server_addr_is_an_ip_for_validate_and_run(sluice_bin, tmp_path):
    cfg = {"gateway": {"workers": 1, "http": {"listen": ["127.0.0.1:%d" % free_port()]},
                       "status": {"listen": "127.0.0.1:%d" % free_port()}},
           "services": [{"name": "s", "type": "stream", "upstream": {"scheme": "tcp", "nodes": ["127.0.0.1:1"]},
                         "routes": [{"server_addr": "localhost", "server_port": free_port()}]}]}
    p = tmp_path / "gw.yaml"
    p.write_text(to_yaml(cfg))
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert [e[2] for e in errs] == ["services[0].routes[0].server_addr"], errs
    run = subprocess.run([sluice_bin, "run", "-c", str(p)], capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "services[0].routes[0].server_addr: expected an IPv4 or IPv6 address" in run.stderr
