"""One duration grammar for every duration of the file, through `sluice validate`: compound
units largest first (1h30m, 1m30s), decimals (1.5s), a bare number of seconds (30, 0.1), the
same in gateway, upstream, policy and stream plugin fields; negative, overflowing,
sub-millisecond and malformed values refused."""
import pytest

import helpers
from helpers import to_yaml, validate

ERR_RE = helpers.ERR_RE


def config(value):
    """A file with value written in one duration field of each kind; returns (dict, paths)."""
    cfg = {
        "gateway": {"shutdown_timeout": value, "http": {"header_timeout": value}},
        "services": [
            {"name": "a", "upstream": {"nodes": ["127.0.0.1:1"], "timeouts": {"connect": value},
                                       "health_check": {"interval": "1h", "timeout": value}},
             "routes": [{"name": "r", "policies": {"retry": {"on": ["5xx"], "per_try_timeout": value}}}]},
            {"name": "s", "type": "stream", "upstream": {"scheme": "tcp", "nodes": ["127.0.0.1:1"]},
             "routes": [{"server_port": 9999,
                         "plugins": {"limit-conn": {"conn": 1, "burst": 1, "default_conn_delay": value}}}]},
        ],
    }
    paths = ["gateway.shutdown_timeout", "gateway.http.header_timeout", "services[0].upstream.timeouts.connect",
             "services[0].upstream.health_check.timeout", "services[0].routes[0].policies.retry.per_try_timeout",
             "services[1].routes[0].plugins.limit-conn.default_conn_delay"]
    return cfg, paths


@pytest.mark.parametrize("value", ["1m30s", "1.5s", "250ms", "1m0.5s", "0.1", "30", "1s500ms", "0.5m"])
def test_accepted_everywhere(sluice_bin, tmp_path, value):
    p = tmp_path / "gw.yaml"
    p.write_text(to_yaml(config(value)[0]))
    r = validate(sluice_bin, p)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("value,msg", [
    ("-1s", "invalid duration '-1s' (must not be negative)"),
    ("0.5ms", "invalid duration '0.5ms' (the smallest step is 1ms)"),
    ("1s1m", "invalid duration '1s1m' (expected e.g. 500ms, 10s, 1m30s, 1.5h)"),
    ("1m 30s", "invalid duration '1m 30s' (expected e.g. 500ms, 10s, 1m30s, 1.5h)"),
    ("1d", "invalid duration '1d' (expected e.g. 500ms, 10s, 1m30s, 1.5h)"),
])
def test_refused_everywhere(sluice_bin, tmp_path, value, msg):
    cfg, paths = config(value)
    p = tmp_path / "gw.yaml"
    p.write_text(to_yaml(cfg))
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert sorted((e[2], e[3]) for e in errs) == sorted((path, msg) for path in paths)


def test_overflow_is_out_of_range(sluice_bin, tmp_path):
    p = tmp_path / "gw.yaml"
    p.write_text(to_yaml({"gateway": {"shutdown_timeout": "99999999999999999999999h"}}))
    r = validate(sluice_bin, p)
    assert r.returncode == 1
    errs = helpers.parse_errors(p, r.stderr, ERR_RE)
    assert [(e[2], e[3]) for e in errs] == [("gateway.shutdown_timeout", "must be between 0ms and 1h")]
