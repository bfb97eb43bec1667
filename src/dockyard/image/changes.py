"""Docker's ``--change`` instructions (`docker import`, `docker commit`): parsed and applied to a
container config. Pure.

The instructions are the Dockerfile subset moby's BuildFromConfig accepts (CMD, ENTRYPOINT, ENV,
EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME, WORKDIR) plus STOPSIGNAL, which dockerd 20.10
refuses but an image config carries. The lines are joined and read as one Dockerfile, as moby
does: ``\\`` at the end of a line continues it, a line starting with ``#`` is a comment. Words
are split, unquoted and ``$VAR``-expanded as buildkit's parser (parser/line_parsers.go) and shell
lexer (shell/lex.go) do, expanding in the instructions Docker expands in (ENV, LABEL, EXPOSE,
VOLUME, USER, WORKDIR, STOPSIGNAL) from the config's Env as it was before the instruction.
Errors are InvalidArgument with Docker's messages, which clients show verbatim. The cases in
tests/unit/image/test_changes.py were captured from dockerd 20.10.24.

The Dockerfile parser of build/ needs the same word rules; if it lands below image/ (spec/), this
module should use it instead of its own lexer.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Callable, Iterable

from dockyard.errdefs import InvalidArgument

DEFAULT_SHELL = ("/bin/sh", "-c")
# Docker's container.Config field order: the order its JSON has.
_CONFIG_ORDER = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                 "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
                 "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
                 "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell")
_SIGNALS = {"ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8,
            "HUP": 1, "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29,
            "PROF": 27, "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31,
            "TERM": 15, "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10,
            "USR2": 12, "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25}


# -- words: buildkit's parser and shell lexer ----------------------------------------------------

def split_words(rest: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (buildkit parser.parseWords)."""
    words: list[str] = []
    word, quote, blank_ok, in_word, i = "", "", False, False, 0
    while i < len(rest):
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote != "'":
                if i + 1 == len(rest):
                    quote, i = "", i + 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
        elif ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
        else:
            if ch in "'\"":
                quote, blank_ok = ch, True
            if ch == "\\":
                if i + 1 == len(rest):
                    i += 1
                    continue
                word += ch
                i += 1
                ch = rest[i]
            word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


class _Lexer:
    """One word with quotes removed and ``$VAR``/``${VAR}``/``${VAR:-x}``/``${VAR:+x}``
    expanded from ``env`` (buildkit shell.ProcessWord)."""

    def __init__(self, text: str, env: dict[str, str]) -> None:
        self.text, self.pos, self.env = text, 0, env

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def word(self, stop: str = "") -> str:
        out = []
        while (ch := self.peek()) != "":
            if stop and ch == stop:
                self.next()
                return "".join(out)
            if ch == "'":
                out.append(self._single())
            elif ch == '"':
                out.append(self._double())
            elif ch == "$":
                out.append(self._dollar())
            else:
                ch = self.next()
                if ch == "\\":
                    ch = self.next()
                    if ch == "":
                        break
                out.append(ch)
        if stop:
            raise InvalidArgument(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def _single(self) -> str:
        self.next()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching single-quote")
        value, self.pos = self.text[self.pos:end], end + 1
        return value

    def _double(self) -> str:
        self.next()
        out = []
        while True:
            ch = self.peek()
            if ch == "":
                raise InvalidArgument("unexpected end of statement while looking for matching "
                                      "double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = self.next()
            if ch == "\\" and self.peek() in ('"', "$", "\\"):
                ch = self.next()
            elif ch == "\\" and self.peek() == "":
                continue
            out.append(ch)

    def _name(self) -> str:
        m = re.compile(r"[0-9]+|[A-Za-z0-9_]*").match(self.text, self.pos)
        self.pos = m.end()
        return m.group()

    def _dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if self.peek() in ("", "{", "}", ":"):
            raise InvalidArgument("syntax error: missing '}'" if self.peek() == ""
                                  else "syntax error: bad substitution")
        name = self._name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == ":":
            modifier = self.next()
            word = self.word("}")
            value = self.env.get(name, "")
            if modifier == "+":
                return word if value else value
            if modifier == "-":
                return value or word
            if modifier == "?":
                if not value:
                    raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
                return value
            raise InvalidArgument(f"unsupported modifier ({modifier}) in substitution")
        raise InvalidArgument("missing ':' in substitution")


def go_quote(text: str) -> str:
    """Go's ``%q`` for the strings of Docker's messages."""
    return json.dumps(text, ensure_ascii=False)


def expand_word(word: str, env: dict[str, str]) -> str:
    """``word`` with quotes and escapes removed and variables expanded from ``env``."""
    try:
        return _Lexer(word, env).word()
    except InvalidArgument as exc:
        raise InvalidArgument(f"failed to process {go_quote(word)}: {exc}") from None


# -- changes ------------------------------------------------------------------------------------

_INSTRUCTION = re.compile(r"(\S+)\s*(.*)", re.S)


def _lines(changes: Iterable[str]) -> list[tuple[str, str]]:
    """(keyword, rest) per instruction of the changes read as one Dockerfile: blank lines and
    ``#`` comments skipped, a trailing ``\\`` joins the next line (buildkit's parser)."""
    texts, pending = [], None
    for line in "\n".join(changes).split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # inside a continued instruction too: buildkit drops those lines
        if stripped.endswith("\\"):
            pending = (pending or "") + line.rstrip()[:-1]
            continue
        texts.append((pending or "") + line)
        pending = None
    if pending is not None and pending.strip():
        texts.append(pending)
    matches = (_INSTRUCTION.match(t.strip()) for t in texts)
    return [(m.group(1), m.group(2).strip()) for m in matches]


def _json_args(rest: str) -> list[str] | None:
    """A JSON array of strings (the exec form), or None if ``rest`` is not one."""
    if not rest.startswith("["):
        return None
    try:  # a json.Decoder reads the first value: anything after the array is ignored
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise InvalidArgument("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _env_map(cfg: dict) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in cfg.get("Env") or [])


def _name_values(rest: str, keyword: str) -> list[tuple[str, str]]:
    """``K=V ...``, or the old form ``K V`` (buildkit parseNameVal)."""
    words = split_words(rest)
    if not words:
        raise InvalidArgument(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{keyword} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(f"Syntax error - can't find = in {go_quote(word)}. "
                                  "Must be of the form: name=value")
        key, _, value = word.partition("=")
        pairs.append((key, value))
    return pairs


def _shell_form(rest: str, cfg: dict) -> list[str]:
    args = _json_args(rest)
    if args is not None:
        return args
    return [*(cfg.get("Shell") or DEFAULT_SHELL), *([rest] if rest else [])]


def _one(rest: str, keyword: str, cfg: dict) -> str:
    if not rest:
        raise InvalidArgument(f"{keyword} requires exactly one argument")
    return expand_word(rest, _env_map(cfg))


def _cmd(cfg: dict, rest: str, state: dict) -> None:
    cfg["Cmd"] = _shell_form(rest, cfg)
    state["cmd_set"] = True


def _entrypoint(cfg: dict, rest: str, state: dict) -> None:
    # an empty ENTRYPOINT clears it (buildkit: emptyAsNil), it does not run a bare shell
    cfg["Entrypoint"] = _shell_form(rest, cfg) if rest else []
    if not state.get("cmd_set"):
        cfg.pop("Cmd", None)  # an ENTRYPOINT resets a CMD this build did not set


def _env(cfg: dict, rest: str, state: dict) -> None:
    env = _env_map(cfg)  # every word sees the variables as they were before the instruction
    current = list(cfg.get("Env") or [])
    for key, value in _name_values(rest, "ENV"):
        key, value = expand_word(key, env), expand_word(value, env)
        if not key:
            raise InvalidArgument("ENV names can not be blank")
        entry = f"{key}={value}"
        for i, existing in enumerate(current):
            if existing.partition("=")[0] == key:
                current[i] = entry
                break
        else:
            current.append(entry)
    cfg["Env"] = current


def _label(cfg: dict, rest: str, state: dict) -> None:
    env = _env_map(cfg)
    labels = dict(cfg.get("Labels") or {})
    for key, value in _name_values(rest, "LABEL"):
        key = expand_word(key, env)
        if not key:
            raise InvalidArgument("LABEL names can not be blank")
        labels[key] = expand_word(value, env)
    cfg["Labels"] = labels


def parse_port_spec(spec: str) -> list[str]:
    """The ``<port>/<proto>`` keys an EXPOSE word stands for (go-connections nat.ParsePortSpec;
    only the container part of ``[ip:][host:]port[/proto]`` counts)."""
    container = spec.split(":")[-1]
    port, _, proto = container.partition("/")
    proto = proto or "tcp"
    if not port:
        raise InvalidArgument(f"No port specified: {spec}<empty>")
    m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", port)
    start, end = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (-1, -1)
    if not m or end > 65535 or start > end:
        raise InvalidArgument(f"Invalid containerPort: {port}")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"Invalid proto: {proto}")
    return [f"{p}/{proto.lower()}" for p in range(start, end + 1)]


def _expose(cfg: dict, rest: str, state: dict) -> None:
    words = rest.split()
    if not words:
        raise InvalidArgument("EXPOSE requires at least one argument")
    env = _env_map(cfg)
    ports = dict(cfg.get("ExposedPorts") or {})
    for word in words:
        for spec in expand_word(word, env).split():  # ProcessWords: split after expanding
            for key in parse_port_spec(spec):
                ports[key] = {}
    cfg["ExposedPorts"] = ports


def _volume(cfg: dict, rest: str, state: dict) -> None:
    args = _json_args(rest)
    words = args if args is not None else rest.split()
    if not words:
        raise InvalidArgument("VOLUME requires at least one argument")
    env = _env_map(cfg)
    volumes = dict(cfg.get("Volumes") or {})
    for word in words:
        path = expand_word(word, env)
        if not path.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[path] = {}
    cfg["Volumes"] = volumes


def _user(cfg: dict, rest: str, state: dict) -> None:
    cfg["User"] = _one(rest, "USER", cfg)


def _workdir(cfg: dict, rest: str, state: dict) -> None:
    requested = _one(rest, "WORKDIR", cfg)
    if not requested.startswith("/"):  # moby normalizeWorkdir: only a relative one is cleaned
        requested = posixpath.normpath(posixpath.join("/", cfg.get("WorkingDir") or "", requested))
    cfg["WorkingDir"] = requested


def parse_signal(value: str) -> str:
    """A stop signal as Docker's signal.ParseSignal accepts it: a number, or a name with or
    without ``SIG``; returned as given."""
    if value.isdigit():
        if not 0 < int(value) <= 64:
            raise InvalidArgument(f"Invalid signal: {value}")
        return value
    name = value.upper().removeprefix("SIG")
    if name not in _SIGNALS and not re.fullmatch(r"RTM(IN|AX)([+-][0-9]+)?", name):
        raise InvalidArgument(f"Invalid signal: {value}")
    return value


def _stopsignal(cfg: dict, rest: str, state: dict) -> None:
    cfg["StopSignal"] = parse_signal(_one(rest, "STOPSIGNAL", cfg))


def _onbuild(cfg: dict, rest: str, state: dict) -> None:
    if not rest:
        raise InvalidArgument("ONBUILD requires at least one argument")
    trigger = rest.split(None, 1)[0].upper()
    if trigger == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
    cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), rest]


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
             "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (``1m30s``, ``1.5h``, ``300ms``)."""
    rest, sign, total = text, 1, 0
    if rest[:1] in "+-" and rest:
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise InvalidArgument(f"time: invalid duration {json.dumps(text)}")
    pos = 0
    while pos < len(rest):
        m = _GO_DURATION.match(rest, pos)
        if m is None or m.group(1) in ("", "."):
            raise InvalidArgument(f"time: invalid duration {json.dumps(text)}")
        whole, _, frac = m.group(1).partition(".")
        unit = _GO_UNITS[m.group(2)]
        total += int(whole or 0) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = m.end()
    return sign * total


def _healthcheck(cfg: dict, rest: str, state: dict) -> None:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.strip()
        name, eq, value = word[2:].partition("=")
        if name not in ("interval", "timeout", "start-period", "start-interval", "retries"):
            raise InvalidArgument(f"Unknown flag: {name}")
        flags[name] = value if eq else ""
    kind, _, command = rest.partition(" ")
    kind, command = kind.upper(), command.strip()
    if not kind:
        raise InvalidArgument("HEALTHCHECK requires at least one argument")
    if kind == "NONE":
        if command:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        cfg["Healthcheck"] = {"Test": ["NONE"]}
        return
    if kind != "CMD":
        raise InvalidArgument(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    args = _json_args(command)
    test = ["CMD", *args] if args is not None else (["CMD-SHELL", command] if command else [])
    if len(test) < 2:
        raise InvalidArgument("Missing command after HEALTHCHECK CMD")
    health: dict[str, object] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
        if flags.get(flag):
            ns = parse_go_duration(flags[flag])
            if ns < 1_000_000:
                raise InvalidArgument(f'Interval "{flag}" cannot be less than 1ms')
            health[key] = ns
    if flags.get("retries"):
        if not re.fullmatch(r"[+-]?[0-9]+", flags["retries"]):
            raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(flags['retries'])}: "
                                  "invalid syntax")
        retries = int(flags["retries"])
        if retries < 1:
            raise InvalidArgument(f"--retries must be at least 1 (not {retries})")
        health["Retries"] = retries
    cfg["Healthcheck"] = health


_HANDLERS: dict[str, Callable[[dict, str, dict], None]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "expose": _expose,
    "healthcheck": _healthcheck, "label": _label, "onbuild": _onbuild, "stopsignal": _stopsignal,
    "user": _user, "volume": _volume, "workdir": _workdir,
}


def parse_changes(changes: Iterable[str], config: dict | None = None) -> dict:
    """``config`` (a container config in Docker's JSON keys; default empty) with Docker's
    ``--change`` instructions applied, as a new dict. Pure; InvalidArgument with Docker's
    message for anything Docker refuses."""
    if isinstance(changes, str):
        changes = [changes]
    cfg = copy.deepcopy(config) if config else {}
    state: dict[str, bool] = {}
    for keyword, rest in _lines(changes):
        handler = _HANDLERS.get(keyword.lower())
        if handler is None:
            raise InvalidArgument(f"{keyword.lower()} is not a valid change command")
        handler(cfg, rest, state)
    return {k: cfg[k] for k in sorted(cfg, key=lambda k: (_order(k), k))}


def _order(key: str) -> int:
    return _CONFIG_ORDER.index(key) if key in _CONFIG_ORDER else len(_CONFIG_ORDER)
