import time

import pytest

from dockyard.errdefs import InvalidArgument
from dockyard.engine import names
from dockyard.engine.container import Container, check_name, human_duration, now_rfc3339, parse_rfc3339
from dockyard.engine.containers import parse_signal
from dockyard.engine.restart import RestartPolicy
from dockyard.engine.listfilters import ListFilter


def matches(c, filters) -> bool:
    return ListFilter(filters).matches(c)


def make(**kw) -> Container:
    base = dict(id="a" * 64, name="web", image_id="sha256:" + "b" * 64, image_ref="busybox",
                config={"Labels": {"tier": "front"}}, host_config={})
    base.update(kw)
    return Container(**base)


@pytest.mark.parametrize("name", ["web", "/web", "a1", "my_app.v2-x"])
def test_valid_names(name):
    assert check_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "-x", "_x", "a b", "a/b", "", "é1"])
def test_invalid_names(name):
    with pytest.raises(InvalidArgument, match="Invalid container name"):
        check_name(name)


def test_generated_names_avoid_taken_ones():
    taken = set()
    for _ in range(50):
        n = names.generate(lambda x: x in taken)
        assert n not in taken and "_" in n
        taken.add(n)


@pytest.mark.parametrize("secs, text", [(0.5, "Less than a second"), (1, "1 second"), (5, "5 seconds"),
                                        (65, "About a minute"), (300, "5 minutes"), (3600, "About an hour"),
                                        (7200, "2 hours"), (3 * 86400, "3 days")])
def test_human_duration(secs, text):
    assert human_duration(secs) == text


def test_status_text_follows_state():
    c = make()
    assert c.status_text() == "Created"
    c.state.set_running(42)
    assert c.status_text().startswith("Up ")
    c.state.Paused = True
    assert c.status_text().endswith("(Paused)")
    c.state.set_exited(3)
    assert c.status_text().startswith("Exited (3) ")


def test_rfc3339_round_trip():
    t = now_rfc3339()
    assert abs(parse_rfc3339(t) - time.time()) < 2
    assert parse_rfc3339("0001-01-01T00:00:00Z") == 0


def test_record_round_trip():
    c = make()
    c.state.set_running(7)
    again = Container.from_record(c.to_record())
    assert again == c


@pytest.mark.parametrize("policy, code, count, stopped, want", [
    ({"Name": "no"}, 1, 0, False, False),
    ({"Name": "always"}, 0, 5, False, True),
    ({"Name": "always"}, 0, 0, True, False),
    ({"Name": "unless-stopped"}, 1, 0, False, True),
    ({"Name": "on-failure"}, 0, 0, False, False),
    ({"Name": "on-failure"}, 2, 0, False, True),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 2, 2, False, False),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, 2, 1, False, True),
])
def test_restart_policy(policy, code, count, stopped, want):
    assert RestartPolicy.parse(policy).should_restart(code, count, stopped) is want


@pytest.mark.parametrize("policy, auto_remove, msg", [
    ({"Name": "sometimes"}, False, "unknown policy"),
    ({"Name": "always", "MaximumRetryCount": 3}, False, "only be used with 'on-failure'"),
    ({"Name": "always"}, True, "cannot specify both --restart and --rm"),
])
def test_bad_restart_policies(policy, auto_remove, msg):
    with pytest.raises(InvalidArgument, match=msg):
        RestartPolicy.parse(policy, auto_remove)


def test_backoff_doubles_and_resets():
    d = RestartPolicy.next_delay(None, 0)
    assert d == 0.1
    d = RestartPolicy.next_delay(d, 1)
    assert d == 0.2
    assert RestartPolicy.next_delay(50, 1) == 60
    assert RestartPolicy.next_delay(d, 11) == 0.1


@pytest.mark.parametrize("value, num", [(None, 15), ("SIGKILL", 9), ("KILL", 9), ("9", 9), (1, 1),
                                        ("SIGALRM", 14), ("RTMIN+3", 37)])
def test_parse_signal(value, num):
    assert parse_signal(value) == num


def test_filters():
    c = make()
    c.state.set_running(9)
    c.state.set_exited(3)
    assert matches(c, {"status": ["exited"], "exited": ["3"], "label": ["tier=front"], "name": ["we"]})
    assert not matches(c, {"status": ["running"]})
    assert not matches(c, {"label": ["tier=back"]})
    with pytest.raises(InvalidArgument):
        matches(c, {"status": ["sleeping"]})
    with pytest.raises(InvalidArgument):
        matches(c, {"colour": ["red"]})


def test_network_volume_port_filters():
    c = make(config={"ExposedPorts": {"80/tcp": {}}},
             host_config={"NetworkMode": "none", "Binds": ["/srv:/data:ro"],
                          "PortBindings": {"443/tcp": [{"HostPort": "8443"}]}})
    assert matches(c, {"network": ["none"]}) and not matches(c, {"network": ["bridge"]})
    assert matches(c, {"volume": ["/data"]}) and matches(c, {"volume": ["/srv"]})
    assert not matches(c, {"volume": ["/other"]})
    assert matches(c, {"health": ["none"]}) and not matches(c, {"health": ["healthy"]})
    assert matches(make(), {"network": ["bridge"]})  # the default network mode
