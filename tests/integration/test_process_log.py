"""gateway.log: the level and format of sluice's own messages (stderr), applied at start and at
every reload."""
import json

from helpers import proxy_service, wait_until


def test_json_format_and_debug_level(make_gateway, backend):
    g = make_gateway([proxy_service([backend])], gateway={"log": {"format": "json", "level": "debug"}})
    wait_until(lambda: "started with" in g.stderr_text(), what="the start message")
    lines = [l for l in g.stderr_text().splitlines() if l.startswith("{")]
    assert lines, g.stderr_text()
    msgs = [json.loads(l) for l in lines]  # every line is one JSON object
    started = [m for m in msgs if "started with" in m["msg"]]
    assert started and started[0]["level"] == "info"
    assert all(set(m) == {"time", "level", "msg"} for m in msgs)
    assert all(m["time"].endswith("Z") for m in msgs)


def test_a_reload_applies_the_new_level(make_gateway, backend):
    g = make_gateway([proxy_service([backend])])
    wait_until(lambda: "started with" in g.stderr_text(), what="the start message")
    g.reload(gateway={"log": {"level": "warn"}})
    # "reloading" is written before the new configuration applies, "reload done" after it
    assert "reloading" in g.stderr_text()
    assert "reload done" not in g.stderr_text()
    g.reload(gateway={"log": {"level": "info", "format": "json"}})
    wait_until(lambda: '"msg":"reload done' in g.stderr_text(), what="the JSON reload message")
    text = g.stderr_text()
    assert text.count("reload done") == 1
