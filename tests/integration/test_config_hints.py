"""`sluice validate` hints for common mistakes, and errors in file order: a node written as a
URL is told the scheme goes in upstream.scheme (not an IPv6 hint); an unknown policy, stream
plugin or balancer lists the valid names."""
import helpers
from helpers import validate

ERR_RE = helpers.ERR_RE
POLICIES = ("ip_access, cors, local_rate_limit, path_rewrite, request_headers, timeout, retry, websocket, "
            "response_headers, cookie_rewrite")

# Line numbers matter: the test checks them, and that the errors come out in this order even
# though the checks find them in another (duplicate keys first, route names after the routes).
TEXT = """\
services:
  - name: a
    upstream:
      balance: roundrobin
      nodes: ["http://127.0.0.1:8080", {address: "https://10.0.0.1:8443/v1"}]
    routes:
      - name: r
        policies: {rate_limit: {requests: 1, per: second}, retrys: {on: [5xx]}}
      - name: r
  - name: s
    type: stream
    upstream: {scheme: tcp, nodes: ["tcp://127.0.0.1:3306"]}
    routes:
      - server_port: 9999
        plugins: {limit_conn: {}, ratelimit: {}}
        plugins: {}
"""


def test_hints_and_order(sluice_bin, tmp_path):
    p = tmp_path / "gw.yaml"
    p.write_text(TEXT)
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    got = [(e[0], e[2], e[3]) for e in helpers.parse_errors(p, r.stderr, ERR_RE)]
    scheme = "the scheme does not belong in the address (write '%s' and set upstream.scheme)"
    assert got == [
        (4, "services[0].upstream.balance", "unknown value 'roundrobin' (expected one of: random, round_robin, "
                                            "weighted, cookie, hash, least_conn, ewma)"),
        (5, "services[0].upstream.nodes[0]", "invalid address 'http://127.0.0.1:8080': " + scheme % "127.0.0.1:8080"),
        (5, "services[0].upstream.nodes[1].address",
         "invalid address 'https://10.0.0.1:8443/v1': " + scheme % "10.0.0.1:8443"),
        (8, "services[0].routes[0].policies.rate_limit", "unknown policy; valid policies: " + POLICIES),
        (8, "services[0].routes[0].policies.retrys", "unknown policy (did you mean 'retry'?); valid policies: "
                                                     + POLICIES),
        (9, "services[0].routes[1].name", "duplicate route name 'r' (also routes[0])"),
        (12, "services[1].upstream.nodes[0]", "invalid address 'tcp://127.0.0.1:3306': " + scheme % "127.0.0.1:3306"),
        (15, "services[1].routes[0].plugins.limit_conn",
         "unknown plugin (did you mean 'limit-conn'?); valid plugins: ip-restriction, limit-conn, prometheus, syslog"),
        (15, "services[1].routes[0].plugins.ratelimit",
         "unknown plugin; valid plugins: ip-restriction, limit-conn, prometheus, syslog"),
        (16, "services[1].routes[0].plugins", "duplicate key (first at line 15)"),
    ], got
