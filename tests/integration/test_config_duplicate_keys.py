"""A key written twice in one map is an error wherever the map is (policies, plugins, header
maps, sections), in YAML and JSON: `sluice validate` reports it at the second key, and
`sluice run` refuses to start, rather than the last value silently winning."""
import subprocess

import pytest

import helpers
from helpers import validate

ERR_RE = helpers.ERR_RE

POLICY_TWICE = """\
services:
  - name: a
    upstream: {nodes: [127.0.0.1:1]}
    routes:
      - name: admin
        paths: [/admin/*]
        policies:
          ip_access: {deny: [0.0.0.0/0]}
          ip_access: {allow: [0.0.0.0/0]}
"""

PLUGIN_TWICE = """\
services:
  - name: s
    type: stream
    upstream: {scheme: tcp, nodes: [127.0.0.1:1]}
    routes:
      - server_port: 9999
        plugins:
          ip-restriction: {blacklist: [0.0.0.0/0]}
          ip-restriction: {whitelist: [0.0.0.0/0]}
"""

CASES = [
    ("policy.yaml", POLICY_TWICE, (9, 11, "services[0].routes[0].policies.ip_access", "duplicate key (first at line 8)")),
    ("plugin.yaml", PLUGIN_TWICE,
     (9, 11, "services[0].routes[0].plugins.ip-restriction", "duplicate key (first at line 8)")),
    ("policy.json",
     '{"services": [{"name": "a", "upstream": {"nodes": ["127.0.0.1:1"]},\n'
     ' "routes": [{"policies": {"timeout": "1s",\n'
     '                          "timeout": "30s"}}]}]}\n',
     (3, 27, "services[0].routes[0].policies.timeout", "duplicate key (first at line 2)")),
]


@pytest.mark.parametrize("name,text,want", CASES, ids=[c[0] for c in CASES])
def test_validate_reports_duplicate(sluice_bin, tmp_path, name, text, want):
    p = tmp_path / name
    p.write_text(text)
    r = validate(sluice_bin, p)
    assert r.returncode == 1, r.stdout
    assert helpers.parse_errors(p, r.stderr, ERR_RE) == [want]


@pytest.mark.parametrize("name,text,want", CASES, ids=[c[0] for c in CASES])
def test_run_refuses_duplicate(sluice_bin, tmp_path, name, text, want):
    p = tmp_path / name
    p.write_text(text)
    r = subprocess.run([sluice_bin, "run", "-c", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "%s:%d:%d: %s: %s" % ((str(p),) + want) in r.stderr, r.stderr
