"""Go text/template syntax: lexing actions and building the parse tree, pure.

Owns the grammar the docker CLI's ``--format`` users write: text and ``{{ }}`` actions with trim
markers and comments; pipelines of commands; operands (fields, variables, literals, function
names, parenthesised pipelines with field chains); ``if``/``else if``/``with``/``range`` with
``else``, ``break`` and ``continue``. Executing the tree is template.py's job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """A parse or execution error, worded like Go's text/template."""


class Break(Exception):
    pass


class Continue(Exception):
    pass


# -- lexing -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<comment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w.]))
  | (?P<declare>:=)
  | (?P<field>(?:\.[A-Za-z_]\w*)+)
  | (?P<variable>\$\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<punct>[|()=,])
""", re.VERBOSE | re.DOTALL)


@dataclass
class Token:
    kind: str
    text: str
    pos: int


def lex_action(src: str, start: int) -> tuple[list[Token], int, bool]:
    """Tokens of one action from ``start`` (just past ``{{``); returns (tokens, end, trim_right)."""
    toks: list[Token] = []
    pos = start
    while True:
        if src.startswith(" -}}", pos) or src.startswith("\t-}}", pos) or \
                src.startswith("\n-}}", pos):
            return toks, pos + 4, True
        if src.startswith("}}", pos):
            return toks, pos + 2, False
        if pos >= len(src):
            raise TemplateError(f"template: :{line_of(src, start)}: unclosed action")
        m = _TOKEN.match(src, pos)
        if m is None:
            raise TemplateError(f"template: :{line_of(src, pos)}: unexpected {src[pos]!r} "
                                "in command")
        kind = m.lastgroup or ""
        if kind not in ("space", "comment"):
            # `)` directly followed by a field is a chain on the parenthesised value.
            toks.append(Token(kind, m.group(), pos))
        elif kind == "comment" and toks:
            raise TemplateError(f"template: :{line_of(src, pos)}: comment ends before closing "
                                "delimiter")
        pos = m.end()


def line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


# -- parse tree ---------------------------------------------------------------------------------

@dataclass
class Node:
    pos: int


@dataclass
class Text(Node):
    text: str


@dataclass
class Operand(Node):
    kind: str            # field, variable, dot, literal, ident, pipe
    value: Any = None    # field names, variable name, literal value, identifier, pipe
    chain: list[str] = field(default_factory=list)
    text: str = ""


@dataclass
class Command(Node):
    args: list[Operand]


@dataclass
class Pipe(Node):
    decl: list[str]
    assign: bool
    cmds: list[Command]
    text: str = ""


@dataclass
class Action(Node):
    pipe: Pipe


@dataclass
class Branch(Node):
    kind: str            # if, with, range
    pipe: Pipe
    body: list[Node]
    other: list[Node]


@dataclass
class Jump(Node):
    kind: str            # break, continue


class Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.items = self._split(src)
        self.i = 0

    def _split(self, src: str) -> list[tuple[str, Any, int]]:
        """Text and actions, with trim markers applied to the neighbouring text."""
        items: list[tuple[str, Any, int]] = []
        pos = 0
        trim_next = False
        while True:
            start = src.find("{{", pos)
            text = src[pos:] if start < 0 else src[pos:start]
            if trim_next:
                text = text.lstrip(" \t\r\n")
            if start < 0:
                if text:
                    items.append(("text", text, pos))
                return items
            body = start + 2
            if src.startswith("- ", body) or src.startswith("-\t", body) or \
                    src.startswith("-\n", body):
                text = text.rstrip(" \t\r\n")
                body += 1
            if text:
                items.append(("text", text, pos))
            toks, pos, trim_next = lex_action(src, body)
            if toks:
                items.append(("action", toks, body))

    def parse(self) -> list[Node]:
        nodes, end = self._list()
        if end is not None:
            where = line_of(self.src, end[1])
            raise TemplateError(f"template: :{where}: unexpected {{{{{end[0]}}}}}")
        return nodes

    def _list(self) -> tuple[list[Node], tuple[str, int, list[Token]] | None]:
        nodes: list[Node] = []
        while self.i < len(self.items):
            kind, value, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(Text(pos, value))
                continue
            head = value[0]
            if head.kind == "ident" and head.text in ("end", "else"):
                return nodes, (head.text, head.pos, value[1:])
            if head.kind == "ident" and head.text in ("if", "with", "range"):
                nodes.append(self._branch(head.text, value[1:], head.pos))
            elif head.kind == "ident" and head.text in ("break", "continue"):
                nodes.append(Jump(head.pos, head.text))
            elif head.kind == "ident" and head.text in ("define", "template", "block"):
                raise TemplateError(f"template: :{line_of(self.src, head.pos)}: "
                                    f"{{{{{head.text}}}}} is not supported")
            else:
                nodes.append(Action(head.pos, self._pipe(value, head.pos)))
        return nodes, None

    def _branch(self, kind: str, toks: list[Token], pos: int) -> Branch:
        pipe = self._pipe(toks, pos, allow_decl=True)
        body, end = self._list()
        if end is None:
            raise TemplateError(f"template: :{line_of(self.src, pos)}: unexpected EOF")
        other: list[Node] = []
        if end[0] == "else":
            rest = end[2]
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                # `else if` / `else with`: a nested branch that shares our {{end}}.
                other = [self._branch_chain(rest[0].text, rest[1:], rest[0].pos)]
            else:
                other, end2 = self._list()
                if end2 is None or end2[0] != "end":
                    raise TemplateError(f"template: :{line_of(self.src, pos)}: expected end; "
                                        f"found {end2[0] if end2 else 'EOF'}")
        return Branch(pos, kind, pipe, body, other)

    def _branch_chain(self, kind: str, toks: list[Token], pos: int) -> Branch:
        return self._branch(kind, toks, pos)

    def _pipe(self, toks: list[Token], pos: int, allow_decl: bool = True) -> Pipe:
        decl: list[str] = []
        assign = False
        i = 0
        # `$x :=`, `$x =`, `$i, $e :=`
        j = 0
        names = []
        while j < len(toks) and toks[j].kind == "variable" and "." not in toks[j].text:
            names.append(toks[j].text)
            j += 1
            if j < len(toks) and toks[j].text == ",":
                j += 1
                continue
            break
        if names and j < len(toks) and toks[j].kind in ("declare",) or \
                names and j < len(toks) and toks[j].text == "=" and len(names) == 1:
            decl, assign, i = names, toks[j].text == "=", j + 1
        text = self.src[toks[i].pos:toks[-1].pos + len(toks[-1].text)] if i < len(toks) else ""
        cmds: list[Command] = []
        cur: list[Operand] = []
        while i < len(toks):
            tok = toks[i]
            if tok.text == "|":
                if not cur:
                    raise TemplateError(f"template: :{line_of(self.src, tok.pos)}: missing command")
                cmds.append(Command(cur[0].pos, cur))
                cur = []
                i += 1
                continue
            operand, i = self._operand(toks, i)
            cur.append(operand)
        if not cur:
            raise TemplateError(f"template: :{line_of(self.src, pos)}: missing value for command")
        cmds.append(Command(cur[0].pos, cur))
        return Pipe(pos, decl, assign, cmds, text)

    def _operand(self, toks: list[Token], i: int) -> tuple[Operand, int]:
        tok = toks[i]
        kind, text, pos = tok.kind, tok.text, tok.pos
        if kind == "field":
            return Operand(pos, "field", text[1:].split("."), text=text), i + 1
        if kind == "variable":
            name, *chain = text.split(".")
            return Operand(pos, "variable", name, chain, text=text), i + 1
        if kind == "dot":
            return Operand(pos, "dot", text="."), i + 1
        if kind == "string":
            return Operand(pos, "literal", _go_unquote(text), text=text), i + 1
        if kind == "raw":
            return Operand(pos, "literal", text[1:-1], text=text), i + 1
        if kind == "char":
            return Operand(pos, "literal", ord(_go_unquote('"' + text[1:-1] + '"')),
                            text=text), i + 1
        if kind == "number":
            return Operand(pos, "literal", _number(text), text=text), i + 1
        if kind == "ident":
            if text in ("true", "false"):
                return Operand(pos, "literal", text == "true", text=text), i + 1
            if text == "nil":
                return Operand(pos, "literal", None, text=text), i + 1
            return Operand(pos, "ident", text, text=text), i + 1
        if text == "(":
            depth, j = 1, i + 1
            while j < len(toks) and depth:
                depth += {"(": 1, ")": -1}.get(toks[j].text, 0)
                j += 1
            if depth:
                raise TemplateError(f"template: :{line_of(self.src, pos)}: unclosed left paren")
            inner = self._pipe(toks[i + 1:j - 1], pos)
            chain: list[str] = []
            if j < len(toks) and toks[j].kind == "field" and toks[j].pos == toks[j - 1].pos + 1:
                chain = toks[j].text[1:].split(".")
                j += 1
            return Operand(pos, "pipe", inner, chain, text=f"({inner.text})"), j
        raise TemplateError(f"template: :{line_of(self.src, pos)}: unexpected {text!r} in operand")


def _go_unquote(text: str) -> str:
    try:
        return json.loads(text)
    except ValueError:
        return text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        return float(clean)
