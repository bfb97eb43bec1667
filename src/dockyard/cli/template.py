"""A Go text/template interpreter: the subset the docker CLI's ``--format`` users write.

Supports actions with pipelines (``|``), fields and chains (``.A.B``, ``$v.A``, ``(pipe).A``),
variables (``$x :=``, ``$x =``, ``range $i, $e :=``), ``if``/``else if``/``with``/``range``
(with ``else``, ``break``, ``continue``), trim markers (``{{-``/``-}}``), comments, string/raw/
number/char/bool/nil literals, Go's builtins (and, or, not, len, index, slice, print, printf,
println, eq, ne, lt, le, gt, ge) and the docker CLI's functions (json, split, join, title, lower,
upper, pad, truncate). Values print the way Go's fmt prints the decoded JSON docker inspects
(``map[k:v]``, ``[a b]``, ``<nil>``). Errors read like Go's ("template: :1:2: executing ...").

Objects other than dicts/lists are template contexts: their public methods with capitalised
names are the fields (``.Names`` calls ``obj.Names()``), ``go_type`` names them in errors and
``to_json()`` gives ``{{json .}}``. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Callable

from dockyard.cli.tmplfuncs import (BUILTINS, HEADER_FUNCS, NO_VALUE, format_value, go_float,
                                    go_json, truthy, type_name)
from dockyard.cli.tmplparse import (Action, Branch, Break, Command, Continue, Jump, Node,
                                    Operand, Parser, Pipe, TemplateError, Text, line_of)

__all__ = ["BUILTINS", "HEADER_FUNCS", "NO_VALUE", "Template", "TemplateError", "format_value",
           "go_float", "go_json", "parse", "truthy"]


# -- execution ----------------------------------------------------------------------------------

class Template:
    """A parsed template; ``execute(data)`` returns the text."""

    def __init__(self, src: str, funcs: dict[str, Callable[..., Any]] | None = None,
                 missingkey: str = "default", name: str = "") -> None:
        self.src = src
        self.name = name
        self.funcs = dict(BUILTINS)
        self.funcs.update(funcs or {})
        self.missingkey = missingkey  # "default" (<no value>), "error", or "nil"
        self.nodes = Parser(src).parse()
        self._check_funcs(self.nodes)

    def _check_funcs(self, nodes: list[Node]) -> None:
        for node in nodes:
            pipes: list[Pipe] = []
            if isinstance(node, Action):
                pipes = [node.pipe]
            elif isinstance(node, Branch):
                pipes = [node.pipe]
                self._check_funcs(node.body)
                self._check_funcs(node.other)
            for pipe in pipes:
                self._check_pipe(pipe)

    def _check_pipe(self, pipe: Pipe) -> None:
        for cmd in pipe.cmds:
            for arg in cmd.args:
                if arg.kind == "ident" and arg.value not in self.funcs and \
                        arg.value not in ("and", "or"):
                    raise TemplateError(f'template: {self.name}:{line_of(self.src, arg.pos)}: '
                                        f'function "{arg.value}" not defined')
                if arg.kind == "pipe":
                    self._check_pipe(arg.value)

    def execute(self, data: Any, funcs: dict[str, Callable[..., Any]] | None = None) -> str:
        out: list[str] = []
        state = _State(self, data, dict(self.funcs, **(funcs or {})), out)
        state.walk(self.nodes, data)
        return "".join(out)

    def execute_partial(self, data: Any, funcs: dict[str, Callable[..., Any]] | None = None
                        ) -> str:
        """What Go's Execute wrote before an error stopped it (docker ignores header errors)."""
        out: list[str] = []
        state = _State(self, data, dict(self.funcs, **(funcs or {})), out)
        try:
            state.walk(self.nodes, data)
        except (TemplateError, Break, Continue):
            pass
        return "".join(out)


class _State:
    def __init__(self, tmpl: Template, root: Any, funcs: dict[str, Callable[..., Any]],
                 out: list[str]) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.out = out
        self.vars: list[tuple[str, Any]] = [("$", root)]

    def error(self, node: Node, text: str, msg: str) -> TemplateError:
        src = self.tmpl.src
        line = line_of(src, node.pos)
        col = node.pos - (src.rfind("\n", 0, node.pos) + 1)
        name = self.tmpl.name
        return TemplateError(f'template: {name}:{line}:{col}: executing "{name}" at <{text}>: '
                             f"{msg}")

    def walk(self, nodes: list[Node], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(format_value(value))
            elif isinstance(node, Branch):
                self.branch(node, dot)
            elif isinstance(node, Jump):
                raise Break() if node.kind == "break" else Continue()

    def branch(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(node, dot)
                return
            value = self.pipe(node.pipe, dot, declare_range=False)
            if truthy(value):
                self.walk(node.body, value if node.kind == "with" else dot)
            else:
                self.walk(node.other, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: Branch, dot: Any) -> None:
        pipe = node.pipe
        value = self.pipe(Pipe(pipe.pos, [], False, pipe.cmds, pipe.text), dot)
        if isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: str(kv[0]))
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            items = []
        else:
            raise self.error(node, pipe.text, f"range can't iterate over {format_value(value)}")
        if not items:
            self.walk(node.other, dot)
            return
        mark = len(self.vars)
        for key, elem in items:
            del self.vars[mark:]
            if len(pipe.decl) == 1:
                self.vars.append((pipe.decl[0], elem))
            elif len(pipe.decl) == 2:
                self.vars += [(pipe.decl[0], key), (pipe.decl[1], elem)]
            try:
                self.walk(node.body, elem)
            except Break:
                break
            except Continue:
                continue

    def pipe(self, pipe: Pipe, dot: Any, declare_range: bool = False) -> Any:
        value: Any = NO_VALUE
        final: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, final)
            final = value
        for name in pipe.decl:
            if pipe.assign:
                for i in range(len(self.vars) - 1, -1, -1):
                    if self.vars[i][0] == name:
                        self.vars[i] = (name, value)
                        break
                else:
                    raise self.error(pipe, pipe.text, f"undefined variable: {name}")
            else:
                self.vars.append((name, value))
        return value

    def command(self, cmd: Command, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        args = cmd.args[1:]
        if first.kind == "field":
            return self.chain(first, dot, first.value, args, final, dot)
        if first.kind == "variable":
            value = self.variable(first)
            if first.chain:
                return self.chain(first, value, first.chain, args, final, dot)
            self.no_args(first, args, final)
            return value
        if first.kind == "pipe":
            value = self.pipe(first.value, dot)
            if first.chain:
                return self.chain(first, value, first.chain, args, final, dot)
            self.no_args(first, args, final)
            return value
        if first.kind == "ident":
            return self.call(first, args, final, dot)
        self.no_args(first, args, final)
        return dot if first.kind == "dot" else first.value

    def no_args(self, node: Operand, args: list[Operand], final: Any) -> None:
        if args or final is not _MISSING:
            raise self.error(node, node.text, f"can't give argument to non-function {node.text}")

    def variable(self, node: Operand) -> Any:
        for name, value in reversed(self.vars):
            if name == node.value:
                return value
        raise self.error(node, node.text, f"undefined variable: {node.value}")

    def call(self, node: Operand, args: list[Operand], final: Any, dot: Any) -> Any:
        name = node.value
        if name in ("and", "or"):
            values = [self.arg(a, dot) for a in args]
            if final is not _MISSING:
                values.append(final)
            result: Any = NO_VALUE
            for result in values:
                if truthy(result) != (name == "and"):
                    return result
            return result
        fn = self.funcs.get(name)
        if fn is None:
            raise self.error(node, node.text, f'function "{name}" not defined')
        values = [self.arg(a, dot) for a in args]
        if final is not _MISSING:
            values.append(final)
        try:
            return fn(*values)
        except TemplateError as exc:
            raise self.error(node, node.text, str(exc)) from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise self.error(node, node.text, f"error calling {name}: {exc}") from None

    def arg(self, node: Operand, dot: Any) -> Any:
        if node.kind == "ident":
            return self.call(node, [], _MISSING, dot)
        return self.command(Command(node.pos, [node]), dot, _MISSING)

    def chain(self, node: Operand, receiver: Any, names: list[str], args: list[Operand],
              final: Any, dot: Any) -> Any:
        for i, name in enumerate(names):
            last = i == len(names) - 1
            call_args = ([self.arg(a, dot) for a in args] + ([] if final is _MISSING else [final])
                         if last else [])
            receiver = self.field(node, receiver, name, call_args, last and (args or final
                                                                              is not _MISSING))
        return receiver

    def field(self, node: Operand, receiver: Any, name: str, args: list[Any],
              has_args: Any) -> Any:
        if isinstance(receiver, dict):
            if has_args:
                raise self.error(node, node.text, f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.tmpl.missingkey == "error":
                raise self.error(node, node.text, f'map has no entry for key "{name}"')
            return None if self.tmpl.missingkey == "nil" else NO_VALUE
        if receiver is None or receiver is NO_VALUE:
            raise self.error(node, node.text, f"nil pointer evaluating interface {{}}.{name}")
        member = getattr(receiver, name, None) if name[:1].isupper() else None
        if member is None or isinstance(receiver, (str, int, float, bool, list, tuple)):
            raise self.error(node, node.text,
                             f"can't evaluate field {name} in type {type_name(receiver)}")
        if callable(member):
            try:
                return member(*args)
            except TypeError as exc:
                raise self.error(node, node.text, f"wrong number of args for {name}: {exc}") \
                    from None
        if has_args:
            raise self.error(node, node.text, f"{name} is not a method but has arguments")
        return member


_MISSING = object()


def parse(src: str, funcs: dict[str, Callable[..., Any]] | None = None,
          missingkey: str = "default") -> Template:
    return Template(src, funcs, missingkey)
