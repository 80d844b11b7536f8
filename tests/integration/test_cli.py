"""sluice command line: --help, version, validate, run with a bad file."""
import json
import os
import re
import shutil
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


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION_RE = re.compile(r"^sluice (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12})(-dirty)?\)$")


def git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=30)


def test_version_spellings_print_version_and_commit(sluice_bin):
    """`sluice version`, `--version` and `-v` print one line: the version and the commit of
    this checkout the binary was built from."""
    outs = []
    for arg in ("version", "--version", "-v"):
        r = run(sluice_bin, arg)
        assert r.returncode == 0, (arg, r.stderr)
        assert r.stderr == ""
        outs.append(r.stdout)
    assert outs[0] == outs[1] == outs[2], outs
    m = VERSION_RE.match(outs[0].rstrip("\n"))
    assert m, outs[0]
    cmake = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    assert re.search(r"project\(sluice VERSION %s " % re.escape(m.group(1)), cmake), m.group(1)
    # The tests run from the checkout the binary was built from: the commit is one of its commits.
    r = git("cat-file", "-t", m.group(2))
    assert r.stdout.strip() == "commit", (m.group(2), r.stderr)


def test_version_refuses_extra_arguments(sluice_bin):
    r = run(sluice_bin, "--version", "extra")
    assert r.returncode == 2
    assert "unexpected argument 'extra'" in r.stderr


def build_info(src, out):
    r = subprocess.run(["cmake", "-DSRC=%s" % src, "-DOUT=%s" % out, "-P",
                        os.path.join(ROOT, "cmake", "build_info.cmake")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return open(out).read()


def test_build_info_names_head_of_a_checkout(tmp_path):
    """The build step that records the commit: in a git checkout, HEAD (plus -dirty when a
    tracked file differs)."""
    head = git("rev-parse", "--short=12", "HEAD").stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
    text = build_info(ROOT, tmp_path / "info.h")
    assert '#define SL_BUILD_COMMIT "%s%s"\n' % (head, "-dirty" if dirty else "") in text, text


def test_build_info_unknown_without_git(tmp_path):
    """A source tree without .git (a release tarball), even one unpacked inside another
    repository, records "unknown"."""
    src = tmp_path / "sluice-0.1.0"
    src.mkdir()
    shutil.copy(os.path.join(ROOT, "CMakeLists.txt"), src / "CMakeLists.txt")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    text = build_info(src, tmp_path / "info.h")
    assert '#define SL_BUILD_COMMIT "unknown"\n' in text, text


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
