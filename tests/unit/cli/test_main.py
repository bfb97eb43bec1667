"""The command line's shell: global flags, dispatch, the daemon hook, errors and exit statuses."""

from __future__ import annotations

import sys
import types

import pytest

from dockyard.cli import main as cli_main
from dockyard.cli.client import CLIError, negotiate, resolve_host
from dockyard.cli.main import parse_globals, run_cli


def test_global_flags_stop_at_the_command():
    g, rest = parse_globals(["-H", "unix:///x.sock", "--config=/c", "-D", "ps", "-a", "-H"])
    assert g.hosts == ["unix:///x.sock"] and g.config == "/c" and g.debug
    assert rest == ["ps", "-a", "-H"]
    g, rest = parse_globals(["-Htcp://h:1", "--log-level", "debug", "images"])
    assert g.hosts == ["tcp://h:1"] and g.log_level == "debug" and rest == ["images"]


def test_unknown_global_flag():
    with pytest.raises(CLIError) as exc:
        parse_globals(["--bogus", "ps"])
    assert exc.value.status == 125 and "unknown flag: --bogus" in exc.value.message


def test_host_resolution_order():
    assert resolve_host(["unix:///a"], {"DOCKER_HOST": "unix:///b"}) == "unix:///a"
    assert resolve_host(None, {"DOCKER_HOST": "unix:///b"}) == "unix:///b"
    assert resolve_host(None, {}) == "unix:///run/dockyard/dockyard.sock"
    with pytest.raises(CLIError, match="Specify only one -H"):
        resolve_host(["unix:///a", "unix:///b"], {})


def test_api_version_negotiation():
    assert negotiate("1.41") == "1.41"
    assert negotiate("1.51") == "1.50"
    assert negotiate(None) == "1.24"


def test_version_flag(capsys):
    assert run_cli(["--version"]) == 0
    assert capsys.readouterr().out.startswith("Dockyard version 0.1.0")


def test_unknown_command(capsys):
    assert run_cli(["frobnicate"]) == 1
    assert "unknown command: dockyard frobnicate" in capsys.readouterr().err


def test_cannot_connect(tmp_path, capsys):
    sock = f"unix://{tmp_path}/none.sock"
    assert run_cli(["-H", sock, "ps"]) == 1
    assert capsys.readouterr().err == (f"Cannot connect to the Docker daemon at {sock}. "
                                       "Is the docker daemon running?\n")


def test_version_prints_client_part_without_a_daemon(tmp_path, capsys):
    assert run_cli(["-H", f"unix://{tmp_path}/none.sock", "version"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("Client: Dockyard\n Version:           0.1.0\n")
    assert "Cannot connect to the Docker daemon" in err


def test_flag_errors_exit_125_and_argument_counts_exit_1(capsys):
    assert run_cli(["ps", "--bogus"]) == 125
    assert capsys.readouterr().err.startswith("unknown flag: --bogus\n\nUsage:  dockyard ps")
    assert run_cli(["stop"]) == 1
    assert capsys.readouterr().err == (
        "dockyard: 'dockyard stop' requires at least 1 argument\n\n"
        "Usage:  dockyard stop [OPTIONS] CONTAINER [CONTAINER...]\n\n"
        "See 'dockyard stop --help' for more information\n")
    assert run_cli(["rename", "a"]) == 1
    assert "'dockyard rename' requires 2 arguments" in capsys.readouterr().err
    assert run_cli(["commit"]) == 1
    assert "requires at least 1 and at most 2 arguments" in capsys.readouterr().err
    assert run_cli(["ps", "x"]) == 1
    assert "'dockyard ps' accepts no arguments" in capsys.readouterr().err


def test_help_output(capsys):
    assert run_cli(["stop", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:  dockyard stop [OPTIONS] CONTAINER [CONTAINER...]" in out
    assert "-t, --timeout int" in out and "-s, --signal string" in out
    assert run_cli([]) == 0
    assert "Management Commands:" in capsys.readouterr().out


def test_daemon_is_dispatched_to_the_composition_root(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("dockyard.daemon")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "dockyard.daemon", fake)
    assert run_cli(["daemon", "--data-root", "/x"]) == 7
    assert seen == [["--data-root", "/x"]]
