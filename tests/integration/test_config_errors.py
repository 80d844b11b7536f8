"""`sluice validate` error output (FILE:LINE:COL: path: message, every error reported) and
reloads of bad files that must leave the running configuration serving."""
import re

import requests

import helpers
from helpers import validate, direct_route, direct_service

ERR_RE = helpers.ERR_RE


def parse_errors(path, stderr):
    return helpers.parse_errors(path, stderr, ERR_RE)


# Line numbers below are 1-based and matter: the test checks them.
BAD_YAML = """\
gateway:
  workers: 2
  http:
    listen: ["127.0.0.1:18080"]
    header_timeout: soon
  status:
    listen: 127.0.0.1:18081
services:
  - name: svc
    upstream:
      balance: round_robin
      nodes:
        - {address: 127.0.0.1:18082, weight: 1}
        - {address: 127.0.0.1:18083, weight: 0}
    routes:
      - name: r1
        paths: ["/api"]
  - name: other
    upstream:
      balance: sideways
      nodes: [{address: 127.0.0.1:18084}]
    routes:
      - name: r2
        paths: ["/other"]
"""


def test_every_error_with_file_line_col_and_path(sluice_bin, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(BAD_YAML)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "ok" not in r.stdout
    errs = parse_errors(p, r.stderr)
    by_path = {e[2]: e for e in errs}
    assert "gateway.http.header_timeout" in by_path, errs
    assert "services[0].upstream.nodes[1].weight" in by_path, errs
    assert "services[1].upstream.balance" in by_path, errs
    assert by_path["gateway.http.header_timeout"][0] == 5
    assert by_path["services[0].upstream.nodes[1].weight"][0] == 14
    assert by_path["services[1].upstream.balance"][0] == 20
    # columns point into the line (at the key or the value)
    line5 = BAD_YAML.splitlines()[4]
    assert by_path["gateway.http.header_timeout"][1] in (line5.index("header_timeout") + 1, line5.index("soon") + 1)
    line20 = BAD_YAML.splitlines()[19]
    assert by_path["services[1].upstream.balance"][1] in (line20.index("balance") + 1, line20.index("sideways") + 1)


def test_yaml_syntax_error_has_location(sluice_bin, tmp_path):
    p = tmp_path / "syntax.yaml"
    p.write_text("gateway:\n  workers: 2\nservices:\n  - name: [unclosed\n    routes: []\n")
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines, "no error printed"
    assert re.match(r"^%s:\d+:\d+: " % re.escape(str(p)), lines[0]), lines


def test_json_errors_have_locations(sluice_bin, tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("""{
  "gateway": {"workers": 1, "http": {"listen": ["127.0.0.1:18080"]}},
  "services": [
    {"name": "svc",
     "upstream": {"nodes": [{"address": "127.0.0.1:18082", "weight": 5000}]},
     "routes": [{"name": "r", "paths": ["/x"]}]}
  ]
}
""")
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = parse_errors(p, r.stderr)
    weight = [e for e in errs if e[2] == "services[0].upstream.nodes[0].weight"]
    assert weight and weight[0][0] == 5, errs


def test_address_without_port_is_an_error(sluice_bin, tmp_path):
    p = tmp_path / "addr.yaml"
    p.write_text("""\
gateway:
  http:
    listen: ["127.0.0.1"]
services:
  - name: svc
    upstream:
      nodes: [{address: 127.0.0.1:18082}]
    routes: [{name: r, paths: ["/x"]}]
""")
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = parse_errors(p, r.stderr)
    assert any(e[2] == "gateway.http.listen[0]" and e[0] == 3 for e in errs), errs


def test_bad_reload_keeps_serving(make_gateway):
    g = make_gateway([direct_service(routes=[direct_route("hello", ["/hello"], body="v1\n")])])
    r = requests.get(g.url + "/hello", timeout=5)
    assert (r.status_code, r.text) == (200, "v1\n")

    before_fail = g.metrics().get("sluice_config_reloads_total", result="failure") or 0
    # syntactically broken
    g.reload(raw="gateway: [\n  this is: not yaml\n", expect="failure")
    r = requests.get(g.url + "/hello", timeout=5)
    assert (r.status_code, r.text) == (200, "v1\n")

    # well-formed but invalid (weight 0): the error names the file, line and field
    cfg = g.config_dict([direct_service(routes=[direct_route("hello", ["/hello"], body="v2\n")]),
                         {"name": "svc", "upstream": {"nodes": [{"address": "127.0.0.1:1", "weight": 0}]},
                          "routes": [{"name": "r", "paths": ["/x"]}]}])
    from helpers import to_yaml
    g.reload(raw=to_yaml(cfg), expect="failure")
    r = requests.get(g.url + "/hello", timeout=5)
    assert (r.status_code, r.text) == (200, "v1\n"), "invalid config must not be applied even partly"
    assert re.search(re.escape(g.config_path) + r":\d+:\d+: services\[1\]\.upstream\.nodes\[0\]\.weight", g.stderr_text()), \
        g.stderr_text()[-2000:]
    m = g.metrics()
    assert m.get("sluice_config_reloads_total", result="failure") == before_fail + 2

    # and a good reload afterwards still works
    g.reload([direct_service(routes=[direct_route("hello", ["/hello"], body="v3\n")])])
    r = requests.get(g.url + "/hello", timeout=5)
    assert (r.status_code, r.text) == (200, "v3\n")
