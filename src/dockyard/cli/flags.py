"""argparse shaped like the docker CLI's cobra/pflag commands.

Owns: a parser whose errors read like docker's ("unknown flag: --x", "flag needs an argument",
``invalid argument "10x" for "-m, --memory" flag: ...``, "'docker stop' requires at least 1
argument") with docker's exit status (125 for flag errors, 1 for argument counts), values checked
at flag time by typed converters, Go-style ``--bool=false``, and help text in docker's layout.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Callable, NoReturn, Sequence

from dockyard.cli.client import CLIError

PROG = "dockyard"
FLAG_ERROR_STATUS = 125
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _plural(n: int) -> str:
    return "argument" if n == 1 else "arguments"


class FlagValueError(Exception):
    """A flag's value failed its converter; carries pflag's message."""


def flag_label(option_strings: Sequence[str]) -> str:
    """pflag's name of a flag in messages: "-m, --memory" or "--cpus"."""
    short = [o for o in option_strings if not o.startswith("--")]
    long = [o for o in option_strings if o.startswith("--")]
    return ", ".join(short[:1] + long[:1])


def typed(convert: Callable[[str], Any], label: str) -> Callable[[str], Any]:
    """An argparse ``type`` that reports failures in pflag's words."""

    def run(value: str) -> Any:
        try:
            return convert(value)
        except (ValueError, OverflowError) as exc:
            raise FlagValueError(f'invalid argument "{value}" for "{label}" flag: {exc}') from None

    run.__name__ = getattr(convert, "__name__", "value")
    return run


def go_int(value: str) -> int:
    """strconv.ParseInt(value, 0, 64) as pflag's int flags use it."""
    if not re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO]?[0-7_]*|0[bB][01_]+|[1-9][\d_]*|0)",
                        value):
        raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    return int(value.replace("_", ""), 0)


class DockerParser(argparse.ArgumentParser):
    """An ArgumentParser for one docker-like command."""

    def __init__(self, command: str, usage: str, description: str = "", *,
                 min_args: int = 0, max_args: int | None = None,
                 aliases: Sequence[str] = ()) -> None:
        super().__init__(prog=f"{PROG} {command}", add_help=False, allow_abbrev=False)
        self.command = command
        self.usage_line = f"{PROG} {command} {usage}".rstrip()
        self.description_text = description
        self.min_args = min_args
        self.max_args = max_args
        self.aliases = list(aliases)
        self.bool_flags: set[str] = set()
        self.value_flags: set[str] = set()
        self.add_argument("--help", action="store_true", help="Print usage")

    # -- building ------------------------------------------------------------------------

    def flag(self, *names: str, kind: str = "bool", convert: Callable[[str], Any] | None = None,
             help: str = "", metavar: str | None = None, **kwargs: Any) -> argparse.Action:
        """Add a pflag-like flag: bool, string, int, list (repeatable) or a converted value."""
        label = flag_label(names)
        if kind == "bool":
            self.bool_flags.update(names)
            kwargs.setdefault("default", False)
            return self.add_argument(*names, action=_GoBool, nargs=0, help=help, **kwargs)
        self.value_flags.update(names)
        if kind == "int":
            convert = convert or go_int
            metavar = metavar or "int"
        if convert is not None:
            kwargs["type"] = typed(convert, label)
        if kind == "list":
            kwargs.setdefault("default", [])
            return self.add_argument(*names, action="append", help=help,
                                     metavar=metavar or "list", **kwargs)
        return self.add_argument(*names, help=help, metavar=metavar or "string", **kwargs)

    # -- parsing -------------------------------------------------------------------------

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        args = self._go_bools(list(argv))
        try:
            ns = self.parse_args(args)
        except FlagValueError as exc:
            self._flag_error(str(exc))
        if ns.help:
            sys.stdout.write(self.help_text())
            raise CLIError("", 0)
        positionals = [getattr(ns, a.dest) for a in self._actions if not a.option_strings]
        count = sum(len(p) if isinstance(p, list) else int(p is not None) for p in positionals)
        self.check_count(count)
        return ns

    def check_count(self, count: int) -> None:
        """cobra's argument validators (cli.RequiresMinArgs, ExactArgs, ...), all status 1."""
        lo, hi = self.min_args, self.max_args
        if lo <= count and (hi is None or count <= hi):
            return
        if hi == 0:
            self._args_error("accepts no arguments", "Run")
        if hi is None:
            self._args_error(f"requires at least {lo} {_plural(lo)}", "See")
        if lo == hi:
            self._args_error(f"requires {lo} {_plural(lo)}", "Run")
        if lo == 0:
            self._args_error(f"requires at most {hi} {_plural(hi)}", "Run")
        self._args_error(f"requires at least {lo} and at most {hi} {_plural(hi)}", "Run")

    def _go_bools(self, args: list[str]) -> list[str]:
        """``--rm=false`` drops the flag and ``--rm=true`` keeps it (pflag bool syntax)."""
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--" or (not arg.startswith("-") and not _value_of_previous(self, args, i)):
                return out + args[i:]
            name, eq, value = arg.partition("=")
            if eq and name in self.bool_flags:
                if value in _TRUE:
                    out.append(name)
                    continue
                if value in _FALSE:
                    out.append("--x-go-false-" + self._dest(name))
                    continue
                self._flag_error(f'invalid argument "{value}" for "{self._label(name)}" flag: '
                                 f'strconv.ParseBool: parsing "{value}": invalid syntax')
            out.append(arg)
        return out

    def _dest(self, name: str) -> str:
        return self._option_string_actions[name].dest

    def _label(self, name: str) -> str:
        return flag_label(self._option_string_actions[name].option_strings)

    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (\S+)", message)
        if match:
            bad = match[1]
            if bad.startswith("--x-go-false-"):
                raise CLIError("internal flag error")
            if bad.startswith("--"):
                self._flag_error(f"unknown flag: {bad.split('=')[0]}")
            if bad.startswith("-") and len(bad) > 1:
                letter = next((c for c in bad[1:] if f"-{c}" not in self._option_string_actions),
                              bad[1])
                self._flag_error(f"unknown shorthand flag: '{letter}' in {bad}")
            self.check_count(10 ** 6)
        match = re.match(r"argument (\S+): expected one argument", message)
        if match:
            names = match[1].split("/")
            long = next((n for n in names if n.startswith("--")), None)
            short = next((n for n in names if not n.startswith("--")), None)
            if short is not None and long is not None:
                self._flag_error(f"flag needs an argument: '{short[1:]}' in {short}")
            self._flag_error(f"flag needs an argument: {long or names[0]}")
        if "the following arguments are required" in message:
            self.check_count(-1)
        self._flag_error(message)

    def _flag_error(self, message: str) -> NoReturn:
        raise CLIError(f"{message}\n\nUsage:  {self.usage_line}\n\n"
                       f"Run '{PROG} {self.command} --help' for more information",
                       FLAG_ERROR_STATUS)

    def _args_error(self, what: str, verb: str, status: int = 1) -> NoReturn:  # noqa: D401
        raise CLIError(f"{PROG}: '{PROG} {self.command}' {what}\n\nUsage:  {self.usage_line}\n\n"
                       f"{verb} '{PROG} {self.command} --help' for more information", status)

    # -- help ----------------------------------------------------------------------------

    def help_text(self) -> str:
        lines = [f"\nUsage:  {self.usage_line}\n"]
        if self.description_text:
            lines.append(f"{self.description_text}\n")
        if self.aliases:
            lines.append("Aliases:\n  " + ", ".join(self.aliases) + "\n")
        rows = []
        for action in self._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            if action.dest == "help" or action.option_strings[0].startswith("--x-go-false-"):
                continue
            short = next((o for o in action.option_strings if not o.startswith("--")), None)
            long = next((o for o in action.option_strings if o.startswith("--")), "")
            head = f"{short}, {long}" if short else f"    {long}"
            if action.nargs != 0:
                head += f" {action.metavar or 'string'}"
            rows.append((head, action.help or ""))
        if rows:
            width = max(len(h) for h, _ in rows)
            lines.append("Options:")
            lines += [f"  {h.ljust(width)}   {t}".rstrip() for h, t in rows]
        return "\n".join(lines) + "\n"

    def format_help(self) -> str:
        return self.help_text()


class _GoBool(argparse.Action):
    """A bool flag; ``--x-go-false-<dest>`` (from ``--flag=false``) sets it back to False."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("nargs", None)
        super().__init__(option_strings + [f"--x-go-false-{dest}"], dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith("--x-go-false-"))


def _value_of_previous(parser: DockerParser, args: list[str], i: int) -> bool:
    """Is args[i] the value of the flag before it (``--name x``)?"""
    if i == 0:
        return False
    prev = args[i - 1]
    if prev in parser.value_flags:
        return True
    if prev.startswith("-") and not prev.startswith("--") and len(prev) > 2:
        # a short cluster like -it or -dp: the last letter may take the value
        return f"-{prev[-1]}" in parser.value_flags and all(
            f"-{c}" in parser.bool_flags for c in prev[1:-1])
    return False
