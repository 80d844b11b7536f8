"""sluice command line: --help, version, validate, run with a bad file."""
import json
import re
import subprocess

from helpers import free_port, to_yaml


def run(bin_, *args, timeout=30):
    return subprocess.run([bin_, *args], capture_output=True, text=True, timeout=timeout)


GOOD = {
    "gateway": {
        "workers": 1,
        "http": {"listen": ["127.0.0.1:18080"]},
        "status": {"listen": "127.0.0.1:18081"},
    },
    "services": [
        {"name": "svc", "upstream": {"nodes": [{"address": "127.0.0.1:18082"}]},
         "routes": [{"name": "r1", "paths": ["/api", "/api/*"]}]},
        {"name": "static", "routes": [{"name": "hello", "paths": ["/hello"],
                                       "direct_response": {"status": 200, "body": "hello\n"}}]},
    ],
}


def test_help_exits_zero_and_lists_commands(sluice_bin):
    r = run(sluice_bin, "--help")
    assert r.returncode == 0, r.stderr
    for word in ("run", "validate", "version"):
        assert word in r.stdout, r.stdout


def test_version(sluice_bin):
    r = run(sluice_bin, "version")
    assert r.returncode == 0, r.stderr
    assert re.match(r"^sluice \d+\.\d+\.\d+", r.stdout.strip()), r.stdout


def test_unknown_command_fails(sluice_bin):
    r = run(sluice_bin, "frobnicate")
    assert r.returncode != 0
    assert r.stderr.strip(), "an unknown command should say something on stderr"


def test_validate_good_yaml(sluice_bin, tmp_path):
    p = tmp_path / "good.yaml"
    p.write_text(to_yaml(GOOD))
    r = run(sluice_bin, "validate", str(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: ok" % p, r.stdout
    assert r.stderr.strip() == "", r.stderr


def test_validate_good_json(sluice_bin, tmp_path):
    p = tmp_path / "good.json"
    p.write_text(json.dumps(GOOD, indent=2))
    r = run(sluice_bin, "validate", str(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: ok" % p, r.stdout


def test_validate_handwritten_yaml_from_contract(sluice_bin, tmp_path):
    """The example in the issue, flow style and all."""
    p = tmp_path / "contract.yaml"
    p.write_text("""\
gateway:
  workers: 2
  shutdown_timeout: 5s
  http:
    listen: ["127.0.0.1:19080"]
    max_header_bytes: 32768
    max_headers: 100
    max_uri_bytes: 8192
    header_timeout: 10s
    keepalive_timeout: 60s
  status:
    listen: 127.0.0.1:19091
  access_log: {path: %s, format: json}
services:
  - name: svc
    upstream:
      balance: round_robin
      nodes: [{address: 127.0.0.1:19081, weight: 1}, {address: localhost:19082, weight: 2}]
      timeouts: {connect: 1s, send: 5s, read: 2s}
      keepalive: {max_idle: 64, idle_timeout: 60s}
    routes:
      - name: r1
        hosts: ["api.example.com", "*.example.org"]
        paths: ["/api", "/api/*"]
        methods: [GET, POST]
  - name: static
    routes:
      - name: hello
        paths: ["/hello"]
        direct_response: {status: 200, headers: {Content-Type: text/plain}, body: "hello\\n"}
""" % (tmp_path / "access.log"))
    r = run(sluice_bin, "validate", str(p))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s: ok" % p


def test_validate_missing_file(sluice_bin, tmp_path):
    p = tmp_path / "nope.yaml"
    r = run(sluice_bin, "validate", str(p))
    assert r.returncode == 1
    assert str(p) in r.stderr, r.stderr
    assert "ok" not in r.stdout


def test_run_with_invalid_config_exits_nonzero(sluice_bin, tmp_path):
    cfg = json.loads(json.dumps(GOOD))
    port = free_port()
    cfg["gateway"]["http"]["listen"] = ["127.0.0.1:%d" % port]
    cfg["services"][0]["upstream"]["nodes"][0]["weight"] = 0
    p = tmp_path / "bad.yaml"
    p.write_text(to_yaml(cfg))
    r = run(sluice_bin, "run", "-c", str(p), timeout=30)
    assert r.returncode != 0
    assert "services[0].upstream.nodes[0].weight" in r.stderr, r.stderr


def test_run_with_missing_file_exits_nonzero(sluice_bin, tmp_path):
    r = run(sluice_bin, "run", "-c", str(tmp_path / "missing.yaml"), timeout=30)
    assert r.returncode != 0
    assert "missing.yaml" in r.stderr
