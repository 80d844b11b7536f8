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


def test_a_reload_says_what_changed(make_gateway, backend):
    from helpers import free_port
    svc_a = proxy_service([backend], name="a", routes=[{"name": "r1", "paths": ["/one/*"]},
                                                       {"name": "r2", "paths": ["/two/*"]},
                                                       {"name": "same", "paths": ["/same/*"]}])
    gone = proxy_service([backend], name="gone")
    g = make_gateway([svc_a, gone])
    wait_until(lambda: "started with" in g.stderr_text(), what="the start message")
    extra = free_port()
    svc_a2 = proxy_service([backend], name="a", routes=[{"name": "r1", "paths": ["/uno/*"]},
                                                        {"name": "same", "paths": ["/same/*"]},
                                                        {"name": "r3", "paths": ["/three/*"]}])
    g.reload(services=[svc_a2, proxy_service([backend], name="b")],
             gateway={"http": {"listen": ["127.0.0.1:%d" % g.port, "127.0.0.1:%d" % extra]}})
    wait_until(lambda: "reload done" in g.stderr_text(), what="the reload message")
    text = g.stderr_text()
    for want in ["reload: listening on 127.0.0.1:%d (http)" % extra, "reload: route a/r1 changed",
                 "reload: route a/r2 removed", "reload: route a/r3 added", "reload: service b added (1 route)",
                 "reload: service gone removed"]:
        assert want in text, (want, text)
    assert "a/same" not in text and "service a changed" not in text
    # the same file again: nothing changed
    g.reload(services=[svc_a2, proxy_service([backend], name="b")],
             gateway={"http": {"listen": ["127.0.0.1:%d" % g.port, "127.0.0.1:%d" % extra]}})
    wait_until(lambda: g.stderr_text().count("reload done") == 2, what="the second reload")
    assert "reload: no listener, service or route changed" in g.stderr_text()
    g.reload(services=[svc_a2, proxy_service([backend], name="b")])
    wait_until(lambda: g.stderr_text().count("reload done") == 3, what="the third reload")
    assert "reload: no longer listening on 127.0.0.1:%d (http)" % extra in g.stderr_text()
