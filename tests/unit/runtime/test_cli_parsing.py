import pytest

from dockyard.errdefs import InvalidArgument
from dockyard.runtime import cli
from dockyard.runtime.commands import exec_process, parse_duration, parse_size
from dockyard.runtime.signals import parse_signal
from dockyard.spec.runtime_defaults import default_spec


def test_global_flags_stop_at_the_verb():
    opts, rest = cli._parse(["--root", "/r", "--log=/l", "-debug", "create", "--bundle", "b", "id"],
                            cli._GLOBAL, stop_at_positional=True)
    assert opts == {"root": "/r", "log": "/l", "debug": True}
    assert rest == ["create", "--bundle", "b", "id"]


def test_verb_flags_anywhere_and_go_forms():
    opts, pos = cli._parse(["id", "-b", "x", "--preserve-fds=2", "--no-pivot=false"], cli._VERBS["create"],
                           stop_at_positional=False)
    assert opts == {"bundle": "x", "preserve-fds": 2, "no-pivot": False}
    assert pos == ["id"]


def test_exec_stops_at_command():
    opts, pos = cli._parse(["-t", "--env", "A=1", "-e", "B=2", "c1", "ls", "-l"], cli._VERBS["exec"],
                           stop_at_positional=True)
    assert opts == {"tty": True, "env": ["A=1", "B=2"]}
    assert pos == ["c1", "ls", "-l"]


@pytest.mark.parametrize("argv, msg", [(["--nope"], "not defined"), (["--bundle"], "needs an argument"),
                                       (["--preserve-fds", "x"], "invalid value")])
def test_bad_flags(argv, msg):
    with pytest.raises(InvalidArgument, match=msg):
        cli._parse(argv, cli._VERBS["create"], stop_at_positional=False)


def test_unknown_verb_exits_1(capsys):
    assert cli.main(["bogus"]) == 1
    assert "no such command" in capsys.readouterr().err


@pytest.mark.parametrize("text, num", [("9", 9), ("KILL", 9), ("SIGTERM", 15), ("hup", 1), ("RTMIN+2", 36),
                                       ("RTMAX-1", 63), ("SIGRTMIN", 34)])
def test_signals(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["0", "65", "SIGNOPE", "RTMIN+40", ""])
def test_bad_signals(text):
    with pytest.raises(InvalidArgument):
        parse_signal(text)


def test_sizes_and_durations():
    assert parse_size("100m") == 100 << 20
    assert parse_size("1G") == 1 << 30
    assert parse_size("512kb") == 512 << 10
    assert parse_size("-1") == -1
    assert parse_duration("5s") == 5
    assert parse_duration("1m30s") == 90
    assert parse_duration("100ms") == pytest.approx(0.1)
    with pytest.raises(InvalidArgument):
        parse_duration("5 parsecs")


def test_exec_process_from_flags():
    base = default_spec().process
    proc = exec_process(base, {"env": ["TERM=dumb", "X=1"], "cwd": "/tmp", "user": "1000:100",
                               "additional-gids": ["5"], "cap": ["CAP_SYS_ADMIN"], "tty": True},
                        ["ls", "-l"])
    assert proc.args == ("ls", "-l")
    assert "TERM=dumb" in proc.env and "X=1" in proc.env and not any(e == "TERM=xterm" for e in proc.env)
    assert (proc.user.uid, proc.user.gid, proc.user.additional_gids) == (1000, 100, (5,))
    assert "CAP_SYS_ADMIN" in proc.capabilities.bounding and proc.terminal
    with pytest.raises(InvalidArgument):
        exec_process(base, {}, [])
