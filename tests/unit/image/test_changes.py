"""Docker's --change instructions (image/changes.py), against what dockerd does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.errdefs import InvalidArgument
from dockyard.image.changes import (expand_word, parse_changes, parse_go_duration, parse_port_spec,
                                    parse_signal, split_words)

# `docker import --change ... - t` against dockerd 20.10.24, then `docker image inspect`: the
# Config with empty fields left out, or the daemon's error (without "Error response from
# daemon: "). STOPSIGNAL is left out: 20.10 refuses it, we accept it (see test below).
DOCKERD_CHANGES = [
    (['CMD echo hi "there"'], {'Cmd': ['/bin/sh', '-c', 'echo hi "there"']}),
    (['CMD ["a","b"]'], {'Cmd': ['a', 'b']}),
    (['ENTRYPOINT /bin/x -y'], {'Entrypoint': ['/bin/sh', '-c', '/bin/x -y']}),
    (['ENTRYPOINT ["e"]', 'CMD ["c"]'], {'Cmd': ['c'], 'Entrypoint': ['e']}),
    (['CMD ["c"]', 'ENTRYPOINT ["e"]'], {'Cmd': ['c'], 'Entrypoint': ['e']}),
    (['ENV A=1 B="two words" C=x\\ y', 'ENV D $A-$B', 'ENV E=${A:-z}${Q:-dflt}'], {'Env': ['A=1', 'B=two words', 'C=x y', 'D=1-two words', 'E=1dflt']}),
    (['EXPOSE 80 53/udp 8000-8002/tcp'], {'ExposedPorts': {'53/udp': {}, '80/tcp': {}, '8000/tcp': {}, '8001/tcp': {}, '8002/tcp': {}}}),
    (['LABEL a=b "c d"="e f" x=\'$A\''], {'Labels': {'a': 'b', 'c d': 'e f', 'x': '$A'}}),
    (['ONBUILD run echo hi'], {'OnBuild': ['run echo hi']}),
    (['USER nobody:nogroup'], {'User': 'nobody:nogroup'}),
    (['VOLUME /data /logs'], {'Volumes': {'/data': {}, '/logs': {}}}),
    (['VOLUME ["/a", "/b"]'], {'Volumes': {'/a': {}, '/b': {}}}),
    (['WORKDIR /a', 'WORKDIR b', 'WORKDIR ../c'], {'WorkingDir': '/a/c'}),
    (['ENV W=/w', 'WORKDIR $W/x', 'USER $W'], {'User': '/w', 'Env': ['W=/w'], 'WorkingDir': '/w/x'}),
    (['CMD'], {'Cmd': ['/bin/sh', '-c']}),
    (['FROM x'], 'from is not a valid change command'),
    (['RUN echo'], 'run is not a valid change command'),
    (['ENV'], 'ENV requires at least one argument'),
    (['ENV A'], 'ENV must have two arguments'),
    (['EXPOSE abc'], 'Invalid containerPort: abc'),
    (['CMD [not json'], {'Cmd': ['/bin/sh', '-c', '[not json']}),
    (['HEALTHCHECK CMD true'], {'Healthcheck': {'Test': ['CMD-SHELL', 'true']}}),
    (['ONBUILD ONBUILD x'], "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    (['cmd ["lower"]'], {'Cmd': ['lower']}),
    (['CMD ["a", \n "b"]'], '"b"] is not a valid change command'),
    (['ENV A=1\nENV B=2'], {'Env': ['A=1', 'B=2']}),
    (['# comment', 'USER x'], {'User': 'x'}),
    (['MAINTAINER me'], 'maintainer is not a valid change command'),
    (['SHELL ["/bin/bash","-c"]', 'CMD x'], 'shell is not a valid change command'),
    (['LABEL a'], 'LABEL must have two arguments'),
    (['EXPOSE 70000'], 'Invalid containerPort: 70000'),
    (['EXPOSE 80/sctp'], {'ExposedPorts': {'80/sctp': {}}}),
    (['ENV A=1 B'], 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
    (['CMD [1, 2]'], 'when using JSON array syntax, arrays must be comprised of strings only'),
    (['VOLUME []'], 'VOLUME requires at least one argument'),
    (['WORKDIR'], 'WORKDIR requires exactly one argument'),
    (['USER'], 'USER requires exactly one argument'),
    (['CMD  '], {'Cmd': ['/bin/sh', '-c']}),
    (['ENTRYPOINT []'], {}),
    (['CMD []'], {}),
    (['ENV A="x\\"y" B=\'q r\''], {'Env': ['A=x"y', 'B=q r']}),
    (['ONBUILD ENV A=$B'], {'OnBuild': ['ENV A=$B']}),
    (['LABEL "k"="v\\nw"'], {'Labels': {'k': 'v\\nw'}}),
    (['ENV A=1', 'ENV A=2'], {'Env': ['A=2']}),
    (['EXPOSE 80/TCP'], {'ExposedPorts': {'80/tcp': {}}}),
    (['ENTRYPOINT'], {}),
    (['ENTRYPOINT  '], {}),
    (['HEALTHCHECK NONE'], {'Healthcheck': {'Test': ['NONE']}}),
    (['HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD ["curl","-f","x"]'], {'Healthcheck': {'Test': ['CMD', 'curl', '-f', 'x'], 'Interval': 30000000000, 'Timeout': 90000000000, 'Retries': 3}}),
    (['HEALTHCHECK --start-period=1.5s CMD curl -f x || exit 1'], {'Healthcheck': {'Test': ['CMD-SHELL', 'curl -f x || exit 1'], 'StartPeriod': 1500000000}}),
    (['HEALTHCHECK CMD'], 'Missing command after HEALTHCHECK CMD'),
    (['HEALTHCHECK FOO x'], 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    (['HEALTHCHECK NONE x'], 'HEALTHCHECK NONE takes no arguments'),
    (['HEALTHCHECK --interval=0s CMD x'], 'Interval "interval" cannot be less than 1ms'),
    (['HEALTHCHECK --interval=10us CMD x'], 'Interval "interval" cannot be less than 1ms'),
    (['HEALTHCHECK --retries=0 CMD x'], '--retries must be at least 1 (not 0)'),
    (['HEALTHCHECK --bogus=1 CMD x'], 'Unknown flag: bogus'),
    (['HEALTHCHECK --interval=abc CMD x'], 'time: invalid duration "abc"'),
    (['HEALTHCHECK --retries=x CMD x'], 'strconv.ParseInt: parsing "x": invalid syntax'),
    (['HEALTHCHECK'], 'HEALTHCHECK requires at least one argument'),
    (['EXPOSE 127.0.0.1:80:8080/udp'], {'ExposedPorts': {'8080/udp': {}}}),
    (['EXPOSE 80/foo'], 'Invalid proto: foo'),
    (['EXPOSE 90-80'], 'Invalid containerPort: 90-80'),
    (['EXPOSE'], 'EXPOSE requires at least one argument'),
    (['EXPOSE 0'], {'ExposedPorts': {'0/tcp': {}}}),
    (['ENV A=1 B=$A'], {'Env': ['A=1', 'B=']}),
    (['ENV P="80 443"', 'EXPOSE $P'], {'ExposedPorts': {'443/tcp': {}, '80/tcp': {}}, 'Env': ['P=80 443']}),
    (['ENV V=/v', 'VOLUME $V "/x y"'], 'failed to process "\\"/x": unexpected end of statement while looking for matching double-quote'),
    (['ENV V=/v', 'VOLUME ["$V"]'], {'Env': ['V=/v'], 'Volumes': {'/v': {}}}),
    (['ENV A=1', 'LABEL l=$A "m"="${A:+set}" n=${B:-unset}'], {'Env': ['A=1'], 'Labels': {'l': '1', 'm': 'set', 'n': 'unset'}}),
    (['ENV A=1 \\', 'B=2'], {'Env': ['A=1', 'B=2']}),
    (['ONBUILD FROM x'], "FROM isn't allowed as an ONBUILD trigger"),
    (['ONBUILD'], 'ONBUILD requires at least one argument'),
    (['ENV A=\'it\'"s"'], {'Env': ['A=its']}),
    (['ENV A=a\\$b'], {'Env': ['A=a$b']}),
    (['ENV A="${X'], 'failed to process "\\"${X": missing \':\' in substitution'),
    (['ENV A=${}'], 'failed to process "${}": syntax error: bad substitution'),
    (['ENV A=${X:?err}'], 'failed to process "${X:?err}": X: err'),
    (['ENV A=$1x'], {'Env': ['A=x']}),
    (['WORKDIR /a/../b/'], {'WorkingDir': '/a/../b/'}),
    (['WORKDIR a'], {'WorkingDir': '/a'}),
    (['ENV =x'], 'ENV names can not be blank'),
    (['LABEL =x'], 'LABEL names can not be blank'),
    (['USER a b'], {'User': 'a b'}),
    (['ENV A "quoted value"'], {'Env': ['A=quoted value']}),
    (['CMD [ "a" ]'], {'Cmd': ['a']}),
    (['CMD ["a"] x'], {'Cmd': ['a']}),
    (['VOLUME [""]'], 'VOLUME specified can not be an empty string'),
    (['VOLUME ""'], 'VOLUME specified can not be an empty string'),
    (['ENV A= B=2'], {'Env': ['A=', 'B=2']}),
    (['LABEL a="x y" \\', '  b=c'], {'Labels': {'a': 'x y', 'b': 'c'}}),
    (['ENV A=1', 'CMD echo $A'], {'Env': ['A=1'], 'Cmd': ['/bin/sh', '-c', 'echo $A']}),
    (['ENTRYPOINT ["x"]', 'CMD y'], {'Cmd': ['/bin/sh', '-c', 'y'], 'Entrypoint': ['x']}),
    (['ENV A=b\tC=d'], {'Env': ['A=b', 'C=d']}),
]


def _non_empty(config: dict) -> dict:
    return {k: v for k, v in config.items() if v not in (None, "", False, [], {})}


@pytest.mark.parametrize("changes,expected", DOCKERD_CHANGES, ids=lambda v: repr(v)[:40])
def test_changes_as_dockerd_applies_them(changes, expected):
    if isinstance(expected, str):
        with pytest.raises(InvalidArgument) as info:
            parse_changes(changes)
        assert str(info.value) == expected
    else:
        assert _non_empty(parse_changes(changes)) == expected


@pytest.mark.parametrize("change,expected", [
    ("STOPSIGNAL SIGKILL", "SIGKILL"), ("STOPSIGNAL 9", "9"), ("STOPSIGNAL term", "term"),
    ("STOPSIGNAL SIGRTMIN+3", "SIGRTMIN+3"),
])
def test_stopsignal_is_accepted_and_validated(change, expected):
    assert parse_changes([change]) == {"StopSignal": expected}


@pytest.mark.parametrize("value", ["FOO", "0", "65", "SIG", ""])
def test_bad_signals(value):
    with pytest.raises(InvalidArgument):
        parse_signal(value)


def test_changes_apply_on_a_base_config_without_changing_it():
    base = {"Env": ["A=1"], "Cmd": ["old"], "WorkingDir": "/srv"}
    out = parse_changes(["ENV B=$A", "WORKDIR app", "ENTRYPOINT [\"e\"]"], base)
    assert out == {"Env": ["A=1", "B=1"], "WorkingDir": "/srv/app", "Entrypoint": ["e"]}
    assert base == {"Env": ["A=1"], "Cmd": ["old"], "WorkingDir": "/srv"}


def test_changes_keep_dockers_key_order():
    out = parse_changes(["LABEL a=b", "CMD x", "USER u", "ENV A=1"])
    assert list(out) == ["User", "Env", "Cmd", "Labels"]


@pytest.mark.parametrize("rest,words", [
    ('a "b c" d', ["a", '"b c"', "d"]), ("a\\ b c", ["a\\ b", "c"]), ("'x y'=z", ["'x y'=z"]),
    ('""', ['""']), ("  ", []), ("a\\", ["a"]), ('"unterminated', ['"unterminated']),
])
def test_split_words(rest, words):
    assert split_words(rest) == words


@pytest.mark.parametrize("word,value", [
    ("$A", "1"), ("${A}", "1"), ("${B:-d}", "d"), ("${A:+s}", "s"), ("${B:+s}", ""), ("'$A'", "$A"),
    ('"$A"', "1"), ('"\\$A"', "$A"), ("\\$A", "$A"), ("$", "$"), ("a$-b", "a$-b"), ('"x\\ny"', "x\\ny"),
])
def test_expand_word(word, value):
    assert expand_word(word, {"A": "1"}) == value


@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9), ("300ms", 3 * 10**8),
    ("2us", 2000), ("1µs", 1000), (".5s", 5 * 10**8), ("-1s", -(10**9)),
])
def test_go_durations(text, ns):
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1.s.", "."])
def test_bad_go_durations(text):
    with pytest.raises(InvalidArgument, match="time: invalid duration"):
        parse_go_duration(text)


def test_port_specs():
    assert parse_port_spec("8000-8002/UDP") == ["8000/udp", "8001/udp", "8002/udp"]
    assert parse_port_spec("1.2.3.4:80:8080") == ["8080/tcp"]
    with pytest.raises(InvalidArgument, match="No port specified"):
        parse_port_spec("80:")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("CMDENVLABELXPOSRKIGTWHU$:{}[]\"'\\= -#\n\tab01/")),
                        max_size=40), max_size=4))
def test_change_parser_never_fails_otherwise(changes):
    try:
        out = parse_changes(changes)
    except InvalidArgument:
        return
    json.dumps(out)  # always a JSON-able config
