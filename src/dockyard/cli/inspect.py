"""``inspect`` (and ``container inspect``/``image inspect``): raw objects, or a --format template.

Without a format the objects print as one JSON array indented by four spaces, the way docker
28 prints them (no HTML escaping: ``>`` stays ``>``).
With a format each object runs through the template; a key missing from the JSON reads as nil
(docker renders typed structs, where an absent optional field is a nil pointer).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from dockyard.cli import template as gotmpl
from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx, api_errors, describe
from dockyard.cli.flags import PROG, DockerParser

_TYPES = ("config", "container", "image", "network", "node", "plugin", "secret", "service",
          "task", "volume")


def go_json_indent(values: list[Any]) -> str:
    """Go's JSON indented by four spaces, without HTML escaping (docker 28 prints ``>&``)."""
    text = json.dumps(values, indent=4, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _getters(ctx: Ctx, size: bool) -> dict[str, Callable[[str], Any]]:
    api = ctx.api

    def container(name: str) -> Any:
        if size:
            return ctx.daemon.json("GET", f"/containers/{name}/json", params={"size": 1})
        return api.inspect_container(name)

    return {"container": container, "image": api.inspect_image,
            "network": api.inspect_network, "volume": api.inspect_volume}


def inspect_objects(ctx: Ctx, names: list[str], fmt: str, kind: str = "",
                    size: bool = False) -> int:
    """inspect.Inspect: print what was found, then every error; exit 1 if any."""
    import docker.errors

    tmpl = None
    if fmt:
        if fmt == "json":
            fmt = "{{json .}}"
        try:
            tmpl = gotmpl.Template(fmt.replace("\\t", "\t").replace("\\n", "\n"),
                                   missingkey="nil")
        except gotmpl.TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}") from None
    getters = _getters(ctx, size)
    found: list[Any] = []
    errors: list[str] = []
    rendered: list[str] = []
    for name in names:
        kinds = [kind] if kind else ["container", "image", "network", "volume"]
        obj = None
        for k in kinds:
            try:
                obj = getters[k](name)
                break
            except docker.errors.NotFound as exc:
                if kind:
                    errors.append(describe(exc))
            except api_errors() as exc:
                errors.append(describe(exc))
                break
        else:
            if not kind:
                errors.append(f"Error: No such object: {name}")
            continue
        if obj is None:
            continue
        if tmpl is None:
            found.append(obj)
            continue
        try:
            rendered.append(tmpl.execute(obj) + "\n")
        except gotmpl.TemplateError as exc:
            errors.append(f"template parsing error: {exc}")
    if tmpl is None:
        ctx.out.write(go_json_indent(found) + "\n")
    else:
        ctx.out.write("".join(rendered) or "\n")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def cmd_inspect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("inspect", "[OPTIONS] NAME|ID [NAME|ID...]",
                     "Return low-level information on Docker objects", min_args=1)
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-s", "--size", help="Display total file sizes if the type is container")
    p.flag("--type", kind="str", default="", help="Only inspect objects of the given type")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    if ns.type and ns.type not in _TYPES:
        raise CLIError(f'unknown type: "{ns.type}": must be one of '
                       + ", ".join(f'"{t}"' for t in _TYPES))
    if ns.type and ns.type not in ("container", "image", "network", "volume"):
        raise CLIError(f'{PROG} does not support inspecting objects of type "{ns.type}"')
    return inspect_objects(ctx, ns.names, ns.format, ns.type, ns.size)


def cmd_container_inspect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("container inspect", "[OPTIONS] CONTAINER [CONTAINER...]",
                     "Display detailed information on one or more containers", min_args=1)
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-s", "--size", help="Display total file sizes")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    return inspect_objects(ctx, ns.names, ns.format, "container", ns.size)


def cmd_image_inspect(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("image inspect", "[OPTIONS] IMAGE [IMAGE...]",
                     "Display detailed information on one or more images", min_args=1)
    p.flag("-f", "--format", kind="str", default="", help="Format output using a custom template")
    p.add_argument("names", nargs="*")
    ns = p.parse(argv)
    return inspect_objects(ctx, ns.names, ns.format, "image")
