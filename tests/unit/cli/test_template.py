"""The Go text/template interpreter behind --format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.cli.template import Template, TemplateError, format_value, go_float

DATA = {
    "Id": "abc", "State": {"Status": "running", "Pid": 42, "Running": True, "Health": None},
    "Config": {"Cmd": ["sleep", "300"], "Labels": {"b": "2", "a": "<1>"}, "Entrypoint": None},
    "Mounts": [{"Source": "/a"}, {"Source": "/b"}], "Empty": [], "N": 3,
}


def run(src: str, data=DATA, **kw) -> str:
    return Template(src, **kw).execute(data)


@pytest.mark.parametrize("src, out", [
    ("{{.State.Status}}", "running"),
    ("{{.State.Pid}} {{.State.Running}}", "42 true"),
    ("{{.Config.Cmd}}", "[sleep 300]"),
    ("{{.Config.Labels}}", "map[a:<1> b:2]"),
    ("{{json .Config.Labels}}", '{"b":"2","a":"<1>"}'),
    ("{{.Config.Entrypoint}}", "<nil>"),
    ("{{.Missing}}", "<no value>"),
    ("{{range .Mounts}}{{.Source}};{{end}}", "/a;/b;"),
    ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}", "0=/a 1=/b "),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{range .Mounts}}{{if eq .Source \"/b\"}}{{break}}{{end}}{{.Source}}{{end}}", "/a"),
    ("{{range .Mounts}}{{if eq .Source \"/a\"}}{{continue}}{{end}}{{.Source}}{{end}}", "/b"),
    ("{{if .State.Health}}h{{else if .State.Running}}r{{else}}n{{end}}", "r"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Empty}}x{{else}}empty{{end}}", "empty"),
    ("{{$s := .State.Status}}{{$s}}-{{$s}}", "running-running"),
    ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
    ("{{index .Config.Labels \"b\"}} {{index .Config.Cmd 1}}", "2 300"),
    ("{{len .Mounts}} {{len .Id}}", "2 3"),
    ("{{upper .Id}} {{lower \"ABC\"}} {{title \"hello world\"}}", "ABC abc Hello World"),
    ("{{join .Config.Cmd \",\"}} {{split \"a:b\" \":\"}}", "sleep,300 [a b]"),
    ("{{pad .Id 2 1}}|{{pad \"\" 1 1}}|", "  abc ||"),
    ("{{truncate .Id 2}} {{truncate .Id 10}}", "ab abc"),
    ("{{printf \"%s:%d:%5.1f:%q\" .Id .N 2.25 \"x\"}}", 'abc:3:  2.2:"x"'),
    ("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3"),
    ("{{println .Id}}", "abc\n"),
    ("{{.Id | printf \"<%s>\"}}", "<abc>"),
    ("{{(index .Mounts 1).Source}}", "/b"),
    ("{{and .Id .N}} {{or .Empty .Id}} {{not .Empty}}", "3 abc true"),
    ("{{if and (gt .N 2) (lt .N 4) (ne .Id \"x\") (le 1 1) (ge 2 1)}}yes{{end}}", "yes"),
    ("{{eq .N 1 2 3}}", "true"),
    ("a  {{- .Id -}}  b", "aabcb"),
    ("{{/* a comment */}}x", "x"),
    ("{{`raw\\n`}} {{'a'}} {{0x10}} {{-3}} {{1.5}} {{true}} {{nil}}", "raw\\n 97 16 -3 1.5 true <nil>"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{slice .Id 1}} {{slice .Id 0 2}}", "bc ab"),
    ("{{$}}", "map[Config:map[Cmd:[sleep 300] Entrypoint:<nil> Labels:map[a:<1> b:2]] Empty:[] "
            "Id:abc Mounts:[map[Source:/a] map[Source:/b]] N:3 State:map[Health:<nil> Pid:42 "
            "Running:true Status:running]]"),
])
def test_templates(src, out):
    assert run(src) == out


def test_missingkey_modes():
    assert run("{{.Nope}}", missingkey="nil") == "<nil>"
    with pytest.raises(TemplateError, match=r'map has no entry for key "Nope"'):
        run("{{.Nope}}", missingkey="error")


class Ctx:
    go_type = "*formatter.ContainerContext"

    def Names(self):
        return "web"

    def Label(self, name):
        return {"a": "1"}.get(name, "")

    def to_json(self):
        return {"Names": "web", "X": "<y>"}


def test_context_methods_and_json():
    assert Template('{{.Names}} {{.Label "a"}}').execute(Ctx()) == "web 1"
    assert Template("{{json .}}").execute(Ctx()) == '{"Names":"web","X":"\\u003cy\\u003e"}'


@pytest.mark.parametrize("src, message", [
    ("{{.Foo}}", 'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo in type '
                 "*formatter.ContainerContext"),
    ("x\n {{.Names.Bad}}", "template: :2:3: executing"),
])
def test_execution_errors_read_like_go(src, message):
    with pytest.raises(TemplateError) as exc:
        Template(src).execute(Ctx())
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize("src, message", [
    ("{{.Foo", "unclosed action"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{if .X}}", "unexpected EOF"),
    ("{{nosuchfunc .}}", 'function "nosuchfunc" not defined'),
    ("{{(.X}}", "unclosed left paren"),
])
def test_parse_errors(src, message):
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace("{", r"\{")):
        Template(src)


def test_nil_field_access_is_an_error():
    with pytest.raises(TemplateError, match="nil pointer evaluating"):
        run("{{.State.Health.Status}}")


@pytest.mark.parametrize("value, text", [
    (67108864.0, "6.7108864e+07"), (1.5, "1.5"), (100000.0, "100000"), (1e6, "1e+06"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (0.0, "0"),
])
def test_floats_print_like_go(value, text):
    assert go_float(value) == text
    assert format_value(value) == text


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40))
def test_plain_text_passes_through(text):
    assert Template(text).execute({}) == text
