"""A configuration with 100,000 routes validates and starts: the loader's duplicate checks
(route names, service names, header names) use a hash map, so the work grows with the file,
not with its square. No time is asserted; validate runs under helpers.validate's 30 s limit,
which the quadratic checks overran (120,000 routes took 70 s in a release build)."""
import helpers
from helpers import validate

ERR_RE = helpers.ERR_RE
N = 100000


def routes_yaml(n, dup_at=None):
    """A service with n routes r0..r(n-1), each on its own host and paths; route dup_at (when
    given) reuses the name r0. Returns (text, line of routes[dup_at])."""
    lines = ["gateway:", "  workers: 1", "services:", "  - name: svc",
             "    upstream: {nodes: [127.0.0.1:1]}", "    routes:"]
    dup_line = None
    for i in range(n):
        name = "r0" if i == dup_at else "r%d" % i
        if i == dup_at:
            dup_line = len(lines) + 1
        lines.append("      - {name: %s, hosts: [h%d.example.com], paths: [/p%d, /p%d/*], methods: [GET]}"
                     % (name, i % 100, i, i))
    return "\n".join(lines) + "\n", dup_line


def test_100k_routes_validate(sluice_bin, tmp_path):
    p = tmp_path / "routes.yaml"
    p.write_text(routes_yaml(N)[0])
    r = validate(sluice_bin, p)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "%s: ok" % p


def test_100k_routes_duplicate_name_found_at_the_end(sluice_bin, tmp_path):
    text, line = routes_yaml(N, dup_at=N - 1)
    p = tmp_path / "dup.yaml"
    p.write_text(text)
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert errs == [(line, 16, "services[0].routes[%d].name" % (N - 1), "duplicate route name 'r0' (also routes[0])")]


def test_many_services_duplicate_name(sluice_bin, tmp_path):
    n = 20000
    lines = ["services:"]
    for i in range(n):
        lines += ["  - name: s%d" % (i if i < n - 1 else 7),
                  "    routes: [{paths: [/s%d], direct_response: {status: 200}}]" % i]
    p = tmp_path / "svcs.yaml"
    p.write_text("\n".join(lines) + "\n")
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert errs == [(2 * n, 11, "services[%d].name" % (n - 1), "duplicate service name 's7' (also services[7])")]


def test_100k_routes_run_and_route(make_gateway, backend):
    routes = [{"name": "r%d" % i, "paths": ["/p%d" % i]} for i in range(N)]
    svc = helpers.proxy_service([backend], routes=routes)
    gw = make_gateway([svc])
    with helpers.RawConn("127.0.0.1", gw.port) as c:
        r = c.request("GET", "/p%d" % (N - 1))
    assert r.status == 200, r


def test_100k_stream_routes_on_one_port_validate(sluice_bin, tmp_path):
    """Stream routes sharing a port (told apart by remote_addr) are checked against each other
    for the PROXY protocol only when they disagree: 100,000 that agree stay linear."""
    n = N
    lines = ["services:", "  - name: s", "    type: stream", "    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}",
             "    routes:"]
    for i in range(n):
        lines.append("      - {server_port: 9101, remote_addr: 10.%d.%d.%d}" % (i >> 16, (i >> 8) & 255, i & 255))
    p = tmp_path / "stream.yaml"
    p.write_text("\n".join(lines) + "\n")
    r = validate(sluice_bin, p)
    assert r.returncode == 0, r.stderr[-2000:]
