"""Image commands: images, rmi, tag, save, load, import, history, image prune.

Transfers (save, load, import) stream through the SDK's session without holding archives in
memory and show a rich progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, BinaryIO

from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx, api_errors, describe
from dockyard.cli.container import confirm, filters_param, parse_filters, validate_filter
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.formatter import (IMAGE_HEADERS, FormatError, ellipsis, image_format,
                                    image_rows, render, since, truncate_id)
from dockyard.cli.progress import (Bars, CountingReader, display_json_messages, file_size,
                                   json_messages)
from dockyard.cli.reference import ReferenceError, familiar_name, parse_reference
from dockyard.cli.units import human_size, human_size_with_precision


def _aliases(name: str, *extra: str) -> list[str]:
    return [f"{PROG} image {name}", *(f"{PROG} {e}" for e in extra)]


# -- images ---------------------------------------------------------------------------------------

def cmd_images(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", max_args=1,
                     aliases=[f"{PROG} image ls", f"{PROG} image list", f"{PROG} images"])
    p.flag("-a", "--all", help="Show all images (default hides intermediate images)")
    p.flag("--digests", help="Show digests")
    p.flag("-f", "--filter", kind="list", convert=validate_filter, metavar="filter",
           help="Filter output based on conditions provided")
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only show image IDs")
    p.add_argument("repository", nargs="?")
    ns = p.parse(argv)
    filters = parse_filters(ns.filter)
    if ns.repository:
        filters.setdefault("reference", {})[ns.repository] = True
    params: dict[str, Any] = {"all": int(ns.all), **filters_param(filters)}
    images = ctx.daemon.json("GET", "/images/json", params=params) or []
    source = ns.format or ("" if ns.quiet else ctx.config.images_format) or "table"
    fmt = image_format(source, ns.quiet, ns.digests)
    rows = image_rows(images, fmt, ns.digests, trunc=not ns.no_trunc)
    try:
        ctx.out.write(render(fmt, rows, IMAGE_HEADERS))
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    return 0


# -- rmi / tag ------------------------------------------------------------------------------------

def cmd_rmi(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images",
                     min_args=1, aliases=[f"{PROG} image rm", f"{PROG} image remove",
                                          f"{PROG} rmi"])
    p.flag("-f", "--force", help="Force removal of the image")
    p.flag("--no-prune", help="Do not delete untagged parents")
    p.add_argument("images", nargs="*")
    ns = p.parse(argv)
    errors = []
    for image in ns.images:
        try:
            deleted = ctx.api.remove_image(image, force=ns.force, noprune=ns.no_prune)
        except api_errors() as exc:
            errors.append(describe(exc))
            continue
        for item in deleted or []:
            if item.get("Deleted"):
                ctx.print(f"Deleted: {item['Deleted']}")
            else:
                ctx.print(f"Untagged: {item.get('Untagged', '')}")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def cmd_tag(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                     "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", min_args=2,
                     max_args=2, aliases=_aliases("tag", "tag"))
    p.add_argument("refs", nargs="*")
    source, target = p.parse(argv).refs
    try:
        ref = parse_reference(target)
    except ReferenceError as exc:
        raise CLIError(f'Error parsing reference: "{target}" is not a valid repository/tag: '
                       f"{exc}") from None
    if ref.digest:
        raise CLIError("refusing to create a tag with a digest reference")
    ctx.api.tag(source, ref.name, ref.tag or "latest")
    return 0


# -- save / load / import -----------------------------------------------------------------------

def _check_output_path(path: str) -> None:
    """command.ValidateOutputPath: the directory must exist; an existing target must be a file."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        raise CLIError(f"failed to save image: invalid output path: stat "
                       f"{os.path.dirname(path) or '.'}: no such file or directory")
    if not os.path.isdir(directory):
        raise CLIError(f"failed to save image: invalid output path: "
                       f"{os.path.dirname(path)!r} must be a directory")
    if os.path.isdir(path):
        raise CLIError(f"failed to save image: invalid output path: {path!r} must be a file")


def cmd_save(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("save", "[OPTIONS] IMAGE [IMAGE...]",
                     "Save one or more images to a tar archive (streamed to STDOUT by default)",
                     min_args=1, aliases=_aliases("save", "save"))
    p.flag("-o", "--output", kind="str", default="", help="Write to a file, instead of STDOUT")
    p.flag("--platform", kind="list", help="Save only the given platform(s)")
    p.add_argument("images", nargs="*")
    ns = p.parse(argv)
    if not ns.output and ctx.stdout_is_tty():
        raise CLIError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if ns.output:
        _check_output_path(ns.output)
    params: dict[str, Any] = {"names": list(ns.images)}
    if ns.platform:
        params["platform"] = list(ns.platform)
    resp = ctx.daemon.request("GET", "/images/get", params=params, stream=True)
    with Bars() as bars:
        advance = bars.task("save", "Saving", None)
        if not ns.output:
            ctx.out.flush()
            out = sys.stdout.buffer
            for chunk in resp.iter_content(chunk_size=256 * 1024):
                out.write(chunk)
                advance(len(chunk))
            out.flush()
            return 0
        _write_atomically(ns.output, resp, advance)
    return 0


def _write_atomically(path: str, resp: Any, advance: Any) -> None:
    """command.CopyToFile: a temp file next to the target, renamed into place when complete."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".docker_temp_", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in resp.iter_content(chunk_size=256 * 1024):
                f.write(chunk)
                advance(len(chunk))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _open_input(ctx: Ctx, path: str, what: str) -> tuple[BinaryIO, bool]:
    if path and path != "-":
        try:
            return open(path, "rb"), True
        except OSError as exc:
            raise CLIError(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
    if ctx.stdin_is_tty():
        raise CLIError(f"requested {what} from stdin, but stdin is empty")
    return sys.stdin.buffer, False


def cmd_load(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("load", "[OPTIONS]", "Load an image from a tar archive or STDIN",
                     max_args=0, aliases=_aliases("load", "load"))
    p.flag("-i", "--input", kind="str", default="",
           help="Read from tar archive file, instead of STDIN")
    p.flag("--platform", kind="list", help="Load only the given platform(s)")
    p.flag("-q", "--quiet", help="Suppress the load output")
    ns = p.parse(argv)
    src, close = _open_input(ctx, ns.input, "load")
    # docker asks for the quiet form unless it can draw progress on a terminal
    quiet = ns.quiet or not ctx.stdout_is_tty()
    params: dict[str, Any] = {"quiet": "1" if quiet else "0"}
    if ns.platform:
        params["platform"] = list(ns.platform)
    try:
        resp = _upload(ctx, "/images/load", params, src, "Loading", not ns.quiet)
    finally:
        if close:
            src.close()
    with Bars(None if not ns.quiet else False) as bars:
        display_json_messages(json_messages(resp.iter_content(chunk_size=None)), ctx.out, bars)
    return 0


def _upload(ctx: Ctx, path: str, params: dict[str, Any], src: BinaryIO, label: str,
            show: bool) -> Any:
    """POST a tar stream with a bar for the bytes sent; returns once the daemon answers."""
    size = file_size(src)
    with Bars(None if show else False) as bars:
        body = CountingReader(src, bars.task("upload", label, size), size)
        return ctx.daemon.request("POST", path, params=params, data=body,
                                  headers={"Content-Type": "application/x-tar"}, stream=True)


def cmd_import(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                     "Import the contents from a tarball to create a filesystem image",
                     min_args=1, max_args=2, aliases=_aliases("import", "import"))
    p.flag("-c", "--change", kind="list", help="Apply Dockerfile instruction to the created image")
    p.flag("-m", "--message", kind="str", default="", help="Set commit message for imported image")
    p.flag("--platform", kind="str", default="", help="Set platform if server is multi-platform "
                                                      "capable")
    p.add_argument("args", nargs="*")
    ns = p.parse(argv)
    source, *rest = ns.args
    if "://" in source and source.split("://")[0] in ("http", "https", "git", "ftp"):
        raise CLIError(f"{PROG} import does not support URLs ({source}): download the archive "
                       "and import the file, or pipe it in with -")
    params: dict[str, Any] = {"fromSrc": "-"}
    if rest and rest[0]:
        try:
            ref = parse_reference(rest[0])
        except ReferenceError as exc:
            raise CLIError(str(exc)) from None
        params["repo"] = familiar_name(ref.name)
        if ref.tag:
            params["tag"] = ref.tag
    if ns.message:
        params["message"] = ns.message
    if ns.change:
        params["changes"] = list(ns.change)
    if ns.platform:
        params["platform"] = ns.platform
    src, close = _open_input(ctx, source, "import")
    try:
        resp = _upload(ctx, "/images/create", params, src, "Importing", True)
    finally:
        if close:
            src.close()
    with Bars() as bars:
        display_json_messages(json_messages(resp.iter_content(chunk_size=None)), ctx.out, bars)
    return 0


# -- history / prune ------------------------------------------------------------------------------

def cmd_history(ctx: Ctx, argv: list[str]) -> int:
    from dockyard.cli.formatter import Context

    p = DockerParser("history", "[OPTIONS] IMAGE", "Show the history of an image", min_args=1,
                     max_args=1, aliases=_aliases("history", "history"))
    p.flag("--format", kind="str", default="", help="Format output using a custom template")
    p.flag("-H", "--human", default=True, help="Print sizes and dates in human readable format")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only show image IDs")
    p.add_argument("image", nargs="?")
    ns = p.parse(argv)
    history = ctx.api.history(ns.image)
    trunc = not ns.no_trunc

    class HistoryContext(Context):
        go_type = "*formatter.historyContext"

        def __init__(self, h: dict[str, Any]) -> None:
            self.h = h

        def ID(self) -> str:
            ident = self.h.get("Id", "")
            if ident.startswith("<"):
                return ident
            return truncate_id(ident) if trunc else ident

        def CreatedSince(self) -> str:
            return since(self.h.get("Created", 0)) if ns.human else \
                __import__("datetime").datetime.fromtimestamp(
                    self.h.get("Created", 0)).astimezone().isoformat()

        def CreatedAt(self) -> str:
            from dockyard.cli.units import go_time_string
            return go_time_string(int(self.h.get("Created", 0)))

        def CreatedBy(self) -> str:
            created = " ".join(self.h.get("CreatedBy", "").replace("\t", " ").split(" "))
            return ellipsis(created, 45) if trunc else created

        def Size(self) -> str:
            size = self.h.get("Size", 0)
            return human_size_with_precision(size, 3) if ns.human else str(size)

        def Comment(self) -> str:
            return self.h.get("Comment", "")

    fmt = ns.format or "table"
    if fmt == "table":
        fmt = ("{{.ID}}" if ns.quiet else "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}"
               "\t{{.Size}}\t{{.Comment}}")
    headers = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
               "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
    try:
        ctx.out.write(render(fmt, [HistoryContext(h) for h in history], headers))
    except FormatError as exc:
        raise CLIError(str(exc)) from None
    return 0


def prune_images(ctx: Ctx, all_images: bool, filters: dict[str, Any]) -> tuple[int, str]:
    if all_images:
        filters = dict(filters, dangling={"false": True})
    report = ctx.daemon.json("POST", "/images/prune", params=filters_param(filters)) or {}
    lines = []
    for item in report.get("ImagesDeleted") or []:
        if item.get("Untagged"):
            lines.append(f"untagged: {item['Untagged']}\n")
        else:
            lines.append(f"deleted: {item.get('Deleted', '')}\n")
    output = "Deleted Images:\n" + "".join(lines) if lines else ""
    return int(report.get("SpaceReclaimed") or 0), output


def cmd_image_prune(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("image prune", "[OPTIONS]", "Remove unused images", max_args=0)
    p.flag("-a", "--all", help="Remove all unused images, not just dangling ones")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.flag("--filter", kind="list", convert=validate_filter, metavar="filter",
           help='Provide filter values (e.g. "until=<timestamp>")')
    ns = p.parse(argv)
    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if ns.all else "WARNING! This will remove all dangling "
                                                     "images.")
    if not ns.force and not confirm(ctx, warning + "\nAre you sure you want to continue?"):
        return 0
    reclaimed, output = prune_images(ctx, ns.all, parse_filters(ns.filter))
    if output:
        ctx.print(output)
    ctx.print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0
