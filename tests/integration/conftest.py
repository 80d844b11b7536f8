"""Fixtures for the sluice integration tests.

Tests start the real binary ($SLUICE_BIN, e.g. build-asan/sluice) against real Python backends
(backends/backend.py) and talk to it with real clients (raw sockets, requests, curl), all on
loopback. $SLUICE_RELEASE_BIN (a non-sanitized build) is used by the memory-bound tests only.
"""
import json
import os
import re
import signal as sigmod
import subprocess
import sys
import time

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "backends"))

from backend import Backend  # noqa: E402
from helpers import free_port, proxy_service, to_yaml, wait_until  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


def _find_bin():
    b = os.environ.get("SLUICE_BIN")
    if b:
        return os.path.abspath(b)
    for cand in ("build-asan/sluice", "build/sluice"):
        p = os.path.join(REPO, cand)
        if os.access(p, os.X_OK):
            return p
    return None


SLUICE_BIN = _find_bin()
SLUICE_RELEASE_BIN = os.environ.get("SLUICE_RELEASE_BIN")


def pytest_report_header(config):
    return "sluice binary: %s; release binary: %s" % (SLUICE_BIN, SLUICE_RELEASE_BIN or "(unset)")


@pytest.fixture(scope="session")
def sluice_bin():
    if not SLUICE_BIN or not os.access(SLUICE_BIN, os.X_OK):
        pytest.fail("set SLUICE_BIN to the sluice binary (e.g. build-asan/sluice); none found", pytrace=False)
    return SLUICE_BIN


@pytest.fixture(scope="session")
def release_bin():
    if not SLUICE_RELEASE_BIN:
        pytest.fail("set SLUICE_RELEASE_BIN to a non-sanitized sluice (build/sluice): memory bounds are measured on it", pytrace=False)
    if not os.access(SLUICE_RELEASE_BIN, os.X_OK):
        pytest.fail("SLUICE_RELEASE_BIN=%s is not executable" % SLUICE_RELEASE_BIN, pytrace=False)
    return os.path.abspath(SLUICE_RELEASE_BIN)


def sanitizer_env():
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    extra = "abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0"
    env["ASAN_OPTIONS"] = (asan + ":" + extra) if asan else extra
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        i = text.find(m)
        if i >= 0:
            return text[max(0, i - 200): i + 4000]
    return None


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$', line)
        if not m:
            raise AssertionError("unparseable metrics line %r" % line)
        labels = {}
        if m.group(2):
            for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2)):
                labels[lm.group(1)] = lm.group(2).encode().decode("unicode_escape")
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


class Metrics:
    def __init__(self, text):
        self.text = text
        self.samples = parse_metrics(text)

    def get(self, name, **labels):
        """Value of the series with exactly these labels (None when absent)."""
        return self.samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))

    def sum(self, name, **labels):
        """Sum over every series of `name` whose labels include these."""
        want = {(k, str(v)) for k, v in labels.items()}
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def series(self, name):
        return [(dict(ls), v) for (n, ls), v in self.samples.items() if n == name]


class Gateway:
    """A running sluice process with its own config file, ports, logs."""

    def __init__(self, binary, workdir, services, gateway=None, name="gw", listen_extra=(), env=None):
        self.binary = binary
        self.dir = workdir
        self.name = name
        self.port = free_port()
        self.status_port = free_port()
        self.access_log = os.path.join(workdir, name + "-access.log")
        self.config_path = os.path.join(workdir, name + ".yaml")
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.listen_extra = list(listen_extra)
        self.gateway_overrides = gateway or {}
        self.services = services
        self.env = env
        self.proc = None
        self.exit_code = None
        self._log_pos = 0
        self._log_lines = []
        self.write_config(services)

    # -- config -------------------------------------------------------------------------------

    def config_dict(self, services, gateway=None):
        g = {
            "workers": 2,
            "shutdown_timeout": "5s",
            "http": {"listen": ["127.0.0.1:%d" % self.port] + self.listen_extra},
            "status": {"listen": "127.0.0.1:%d" % self.status_port},
            # Lines handed to the writer as they are made, so that a test can read the line of
            # the request it just sent; test_access_log.py covers buffering (the default 1s).
            "access_log": {"path": self.access_log, "format": "json", "flush": "0s"},
        }
        for k, v in (gateway if gateway is not None else self.gateway_overrides).items():
            if isinstance(v, dict) and isinstance(g.get(k), dict):
                g[k] = dict(g[k], **v)
            else:
                g[k] = v
        return {"gateway": g, "services": services}

    def write_config(self, services=None, raw=None, gateway=None):
        text = raw if raw is not None else to_yaml(self.config_dict(services if services is not None else self.services, gateway))
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        return text

    # -- process ------------------------------------------------------------------------------

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def status_url(self):
        return "http://127.0.0.1:%d" % self.status_port

    def start(self, wait=True, timeout=30.0, stdout=None):
        """stdout: where sluice's stdout goes instead of the .stdout file (a pipe's fd, say)."""
        self._out = open(self.stdout_path, "wb") if stdout is None else stdout
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([self.binary, "run", "-c", self.config_path], stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=self.env or sanitizer_env(), cwd=self.dir)
        if wait:
            self.wait_ready(timeout)
        return self

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def fail(self, msg):
        pytest.fail("%s\n--- sluice stderr (tail) ---\n%s" % (msg, self.stderr_text()[-6000:]), pytrace=False)

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            self.fail("sluice exited unexpectedly with code %s" % self.proc.returncode)

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                r = requests.get(self.status_url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return
                last = "status %d" % r.status_code
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        self.fail("sluice not ready after %.0fs (GET /healthz: %s)" % (timeout, last))

    def signal(self, sig):
        self.check_alive()
        self.proc.send_signal(sig)

    def stop(self, sig=sigmod.SIGTERM, timeout=20.0):
        """Stops the gateway; returns its exit code. Fails the test if it does not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_files()
                self.fail("sluice did not exit within %.0fs of signal %d" % (timeout, sig))
        self.exit_code = self.proc.returncode
        self._close_files()
        return self.exit_code

    def _close_files(self):
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f and not f.closed:
                f.close()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    # -- reload -------------------------------------------------------------------------------

    def reload(self, services=None, raw=None, gateway=None, expect="success", timeout=15.0):
        """Rewrites the config file, sends SIGHUP and waits for sluice_config_reloads_total
        {result=expect} to go up by one."""
        before = self.metrics().get("sluice_config_reloads_total", result=expect) or 0
        if services is not None:
            self.services = services
        self.write_config(services, raw, gateway)
        self.signal(sigmod.SIGHUP)
        wait_until(lambda: (self.check_alive() or True) and
                   (self.metrics().get("sluice_config_reloads_total", result=expect) or 0) >= before + 1,
                   timeout=timeout, what="sluice_config_reloads_total{result=%s} > %s" % (expect, before))

    # -- observability ------------------------------------------------------------------------

    def metrics_text(self):
        r = requests.get(self.status_url + "/metrics", timeout=5)
        assert r.status_code == 200, r.text
        return r.text

    def metrics(self):
        return Metrics(self.metrics_text())

    def log_lines(self):
        """Every access log line written so far, parsed."""
        try:
            with open(self.access_log, "rb") as f:
                f.seek(self._log_pos)
                data = f.read()
        except FileNotFoundError:
            return list(self._log_lines)
        nl = data.rfind(b"\n")
        if nl >= 0:
            for line in data[: nl + 1].splitlines():
                if line.strip():
                    try:
                        self._log_lines.append(json.loads(line))
                    except ValueError:
                        raise AssertionError("access log line is not JSON: %r" % line)
            self._log_pos += nl + 1
        return list(self._log_lines)

    def wait_log(self, pred, timeout=10.0, what="access log entry"):
        """Waits for an access log entry matching pred; returns it."""
        def find():
            for e in self.log_lines():
                if pred(e):
                    return e
            return None
        try:
            return wait_until(find, timeout=timeout, what=what)
        except AssertionError:
            raise AssertionError("no %s; log has: %s" % (what, json.dumps(self.log_lines()[-10:], indent=1)))


@pytest.fixture
def backend():
    """One backend on 127.0.0.1."""
    b = Backend("b1")
    yield b
    b.close()


@pytest.fixture
def make_backend():
    made = []

    def make(name=None, host="127.0.0.1"):
        b = Backend(name or "b%d" % (len(made) + 1), host=host)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def _check_gateways(made):
    """Stops the gateways and returns a list of problems (sanitizer reports, hangs, crashes)."""
    problems = []
    for g in made:
        if g.proc is None:
            continue
        try:
            if g.proc.poll() is None:
                g.proc.send_signal(sigmod.SIGTERM)
                try:
                    g.proc.wait(20)
                except subprocess.TimeoutExpired:
                    g.proc.kill()
                    g.proc.wait()
                    problems.append("%s: did not exit within 20s of SIGTERM at teardown" % g.name)
        finally:
            g._close_files()
        err = g.stderr_text()
        rep = sanitizer_report(err)
        if rep:
            problems.append("%s: sanitizer report in stderr:\n%s" % (g.name, rep))
        elif g.proc.returncode not in (0, -sigmod.SIGKILL) and g.exit_code is None:
            problems.append("%s: exited with code %s\n%s" % (g.name, g.proc.returncode, err[-3000:]))
    return problems


class _Factory:
    def __init__(self, binary, workdir, prefix="gw"):
        self.binary = binary
        self.workdir = workdir
        self.prefix = prefix
        self.made = []

    def __call__(self, services, gateway=None, start=True, binary=None, **kw):
        g = Gateway(binary or self.binary, self.workdir, services, gateway, name="%s%d" % (self.prefix, len(self.made)), **kw)
        self.made.append(g)
        if start:
            g.start()
        return g


@pytest.fixture
def make_gateway(sluice_bin, tmp_path):
    """make_gateway(services, gateway=None, start=True, binary=None, listen_extra=()) -> Gateway.
    On teardown: stops every gateway; fails the test on sanitizer reports, hangs or crashes."""
    f = _Factory(sluice_bin, str(tmp_path))
    yield f
    problems = _check_gateways(f.made)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def make_module_gateway(sluice_bin, tmp_path_factory):
    """Like make_gateway, but the gateways live for the whole module (tests reset backends)."""
    f = _Factory(sluice_bin, str(tmp_path_factory.mktemp("gw")), prefix="mgw")
    yield f
    problems = _check_gateways(f.made)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def gw_one(make_gateway, backend):
    """A gateway proxying every path to one backend; yields (gateway, backend)."""
    g = make_gateway([proxy_service([backend], routes=[{"name": "r1", "paths": ["/*"]}])])
    return g, backend
