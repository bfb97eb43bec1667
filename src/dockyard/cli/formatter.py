"""The docker CLI's output formatting: table/json/raw/custom ``--format`` over list contexts.

Owns the rendering pipeline of docker/cli ``cli/command/formatter`` (a Go template per item, a
header rendered from the same template, Go's tabwriter with minwidth 10 and padding 3) and the
per-item contexts of ``ps`` and ``images``: what each field prints, truncation, humanized times,
port lists. Values come from the Engine API's JSON as dicts; nothing here talks to a daemon.
"""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any, Callable, Iterable

from dockyard.cli import template as gotmpl
from dockyard.cli.reference import ReferenceError, familiar_name, parse_reference, \
    split_reference
from dockyard.cli.tabwriter import display_width, tabwrite
from dockyard.cli.units import go_time_string, human_duration, human_size, \
    human_size_with_precision

TABLE = "table"
RAW = "raw"
JSON = "json"
QUIET_FORMAT = "{{.ID}}"


class FormatError(Exception):
    """A --format template that does not parse or execute (the docker CLI exits 1)."""


# -- small helpers shared by the contexts ------------------------------------------------------

def truncate_id(ident: str) -> str:
    """stringid.TruncateID: drop an algorithm prefix, keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def ellipsis(text: str, max_width: int) -> str:
    """formatter.Ellipsis: cut to ``max_width`` display cells, the last one being "…"."""
    if max_width <= 0:
        return ""
    if not text:
        return text
    if max_width == 1:
        return text[0]
    if display_width(text) <= max_width:
        return text
    width = 0
    for i, ch in enumerate(text):
        width += display_width(ch)
        if width > max_width - 1:
            return text[:i] + "…"
    return text


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip_key(ip: str) -> tuple[int, int]:
    if not ip:
        return (0, 0)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (3, 0)
    return (1 if addr.version == 4 else 2, int(addr))


def displayable_ports(ports: Iterable[dict]) -> str:
    """formatter.DisplayablePorts: "0.0.0.0:80->80/tcp, 9000-9001/udp"."""
    ordered = sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), _ip_key(p.get("IP", "")),
                                                 p.get("PublicPort", 0), p.get("Type", "")))
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for port in ordered:
        current = int(port.get("PrivatePort", 0))
        kind = port.get("Type", "")
        key = kind
        ip = port.get("IP", "")
        if ip:
            public = int(port.get("PublicPort", 0))
            if public != current:
                mappings.append(f"{_join_host_port(ip, str(public))}->{current}/{kind}")
                continue
            key = ip + "/" + kind
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
            order.append(key)
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(_form_group(key, *group))
            groups[key] = [current, current]
    result += [_form_group(key, *groups[key]) for key in order]
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, kind = key.rpartition("/") if "/" in key else ("", "", key)
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{_join_host_port(ip, group)}->{group}"
    return f"{group}/{kind}"


def since(unix_seconds: int | float, now: float | None = None) -> str:
    """"5 seconds ago" for a Unix timestamp."""
    now = time.time() if now is None else now
    return human_duration(now - unix_seconds) + " ago"


# -- the rendering pipeline ------------------------------------------------------------------------

class Context:
    """A template context: capitalised methods are the fields; headers map field -> title."""

    go_type = "*formatter.Context"
    headers: dict[str, str] = {}

    def to_json(self) -> dict[str, Any]:
        """formatter.MarshalJSON: every exported zero-argument method, keys sorted."""
        out = {}
        for name in sorted(dir(type(self))):
            if not name[:1].isupper() or name in ("FullHeader",):
                continue
            member = getattr(self, name)
            if callable(member) and _arity(member) == 0:
                value = member()
                out[name] = value.to_json() if hasattr(value, "to_json") else value
        return out


def _arity(fn: Callable[..., Any]) -> int:
    code = getattr(fn, "__code__", None)
    return 0 if code is None else code.co_argcount - 1


def prepare_format(fmt: str) -> str:
    """Context.preFormat: strip "table", expand "json", unescape \\t and \\n."""
    final = fmt
    if fmt.startswith(TABLE):
        final = fmt[len(TABLE):]
    elif fmt == JSON:
        final = "{{json .}}"
    final = final.strip(" ")
    return final.replace("\\t", "\t").replace("\\n", "\n")


def parse_format(fmt: str, extra: dict[str, Callable[..., Any]] | None = None) -> gotmpl.Template:
    try:
        return gotmpl.Template(prepare_format(fmt), extra)
    except gotmpl.TemplateError as exc:
        raise FormatError(f"template parsing error: {exc}") from None


def render(fmt: str, items: Iterable[Any], headers: dict[str, str]) -> str:
    """Context.Write: each item through the template, plus a header and alignment for tables."""
    tmpl = parse_format(fmt)
    rows = []
    for item in items:
        try:
            rows.append(tmpl.execute(item) + "\n")
        except gotmpl.TemplateError as exc:
            raise FormatError(f"template parsing error: {exc}") from None
    body = "".join(rows)
    if not fmt.startswith(TABLE):
        return body
    header = header_line(tmpl, headers)
    return tabwrite(header + "\n" + body)


def header_line(tmpl: gotmpl.Template, headers: dict[str, str]) -> str:
    """The header: the template run on the field -> title map with the header functions."""
    return tmpl.execute_partial(headers, gotmpl.HEADER_FUNCS)


# -- containers (docker ps) --------------------------------------------------------------------

CONTAINER_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
                   "\t{{.Ports}}\t{{.Names}}")
CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
    "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
    "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
}


def container_format(source: str, quiet: bool, size: bool) -> str:
    """formatter.NewContainerFormat."""
    if source in (TABLE, ""):
        if quiet:
            return QUIET_FORMAT
        return CONTAINER_TABLE + ("\t{{.Size}}" if size else "")
    if source == RAW:
        if quiet:
            return "container_id: {{.ID}}"
        fmt = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\n"
               "created_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\n"
               "status: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\n"
               "ports: {{- pad .Ports 1 0}}\n")
        return fmt + ("size: {{.Size}}\\n" if size else "")
    return QUIET_FORMAT if quiet else source


class Platform:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def __str__(self) -> str:
        parts = [self.spec.get("os", ""), self.spec.get("architecture", "")]
        if self.spec.get("variant"):
            parts.append(self.spec["variant"])
        return "/".join(parts)

    def to_json(self) -> dict[str, Any]:
        return self.spec


class ContainerContext(Context):
    go_type = "*formatter.ContainerContext"
    headers = CONTAINER_HEADERS

    def __init__(self, c: dict[str, Any] | None = None, trunc: bool = True,
                 now: float | None = None) -> None:
        self.c = c or {}
        self.trunc = trunc
        self.now = now
        self.fields_used: set[str] = set()

    def ID(self) -> str:
        ident = self.c.get("Id", "")
        return truncate_id(ident) if self.trunc else ident

    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            return next((n for n in names if "/" not in n), "")
        return ",".join(names)

    def Image(self) -> str:
        image = self.c.get("Image", "")
        if not image:
            return "<no image>"
        if not self.trunc:
            return image
        if truncate_id(self.c.get("ImageID", "")) == truncate_id(image):
            return truncate_id(image)
        try:
            ref = parse_reference(image)
        except ReferenceError:
            return image
        return familiar_name(ref.name) + (":" + ref.tag if ref.tag else "")

    def Command(self) -> str:
        command = self.c.get("Command", "")
        if self.trunc:
            command = ellipsis(command, 20)
        return json.dumps(command, ensure_ascii=False)

    def CreatedAt(self) -> str:
        return go_time_string(int(self.c.get("Created", 0)))

    def RunningFor(self) -> str:
        return since(self.c.get("Created", 0), self.now)

    def Platform(self) -> Platform | None:
        desc = self.c.get("ImageManifestDescriptor") or {}
        return Platform(desc["platform"]) if desc.get("platform") else None

    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    def State(self) -> str:
        return self.c.get("State", "")

    def Status(self) -> str:
        return self.c.get("Status", "")

    def Size(self) -> str:
        self.fields_used.add("Size")
        srw = human_size_with_precision(self.c.get("SizeRw", 0) or 0, 3)
        root = self.c.get("SizeRootFs", 0) or 0
        if root > 0:
            return f"{srw} (virtual {human_size_with_precision(root, 3)})"
        return srw

    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:
        nets = (self.c.get("NetworkSettings") or {}).get("Networks") or {}
        return ",".join(nets)


# -- images (docker images) ----------------------------------------------------------------------

IMAGE_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}"
               "{{else}}N/A{{end}}\t{{.Size}}")
IMAGE_TABLE_DIGEST = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}"
                      "{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
    "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


def image_format(source: str, quiet: bool, digest: bool) -> str:
    """formatter.NewImageFormat."""
    if source == TABLE:
        return QUIET_FORMAT if quiet else IMAGE_TABLE_DIGEST if digest else IMAGE_TABLE
    if source == RAW:
        if quiet:
            return "image_id: {{.ID}}"
        return ("repository: {{ .Repository }}\ntag: {{.Tag}}\n"
                + ("digest: {{.Digest}}\n" if digest else "")
                + "image_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
    if source.startswith(TABLE) and digest and "{{.Digest}}" not in source:
        return source + "\t{{.Digest}}"
    return source


class ImageContext(Context):
    go_type = "*formatter.imageContext"
    headers = IMAGE_HEADERS

    def __init__(self, i: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool = True,
                 now: float | None = None) -> None:
        self.i, self.repo, self.tag, self.digest = i, repo, tag, digest
        self.trunc = trunc
        self.now = now

    def ID(self) -> str:
        ident = self.i.get("Id", "")
        return truncate_id(ident) if self.trunc else ident

    def Repository(self) -> str:
        return self.repo

    def Tag(self) -> str:
        return self.tag

    def Digest(self) -> str:
        return self.digest

    def CreatedSince(self) -> str:
        created = self.i.get("Created", 0)
        # Go's time.Unix(0, 0).IsZero() is false: only year 1 is zero.
        return since(created, self.now) if created > -62135596800 else ""

    def CreatedAt(self) -> str:
        return go_time_string(int(self.i.get("Created", 0)))

    def Size(self) -> str:
        return human_size_with_precision(self.i.get("Size", 0), 3)

    def Containers(self) -> str:
        count = self.i.get("Containers", -1)
        return "N/A" if count == -1 else str(count)

    def VirtualSize(self) -> str:
        return human_size(self.i.get("Size", 0))

    def SharedSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared == -1 else human_size(shared)

    def UniqueSize(self) -> str:
        size, shared = self.i.get("Size", -1), self.i.get("SharedSize", -1)
        return "N/A" if size == -1 or shared == -1 else human_size(size - shared)


def is_dangling(img: dict[str, Any]) -> bool:
    tags, digests = img.get("RepoTags") or [], img.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def image_rows(images: Iterable[dict[str, Any]], fmt: str, digest: bool, trunc: bool,
               now: float | None = None) -> list[ImageContext]:
    """formatter.imageFormat: one row per repository:tag (and digest, when shown)."""
    need_digest = digest or "{{.Digest}}" in fmt
    rows: list[ImageContext] = []
    for img in images:
        if is_dangling(img):
            rows.append(ImageContext(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            name, tag, _ = split_reference(ref)
            if tag and name != "<none>":
                repo_tags.setdefault(familiar_name(name), []).append(tag)
        for ref in img.get("RepoDigests") or []:
            name, _, dgst = split_reference(ref)
            if dgst and name != "<none>":
                repo_digests.setdefault(familiar_name(name), []).append(dgst)
        for repo, tags in repo_tags.items():
            digests = repo_digests.pop(repo, [])
            if not need_digest:
                digests = []
            for tag in tags:
                for dgst in digests or ["<none>"]:
                    rows.append(ImageContext(img, repo, tag, dgst, trunc, now))
        for repo, digests in repo_digests.items():
            if digest:
                rows += [ImageContext(img, repo, "<none>", d, trunc, now) for d in digests]
            else:
                rows.append(ImageContext(img, repo, "<none>", "", trunc, now))
    return rows
