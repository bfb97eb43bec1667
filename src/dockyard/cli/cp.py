"""``dockyard cp``: copy between a container and the local filesystem (docker cp's rules).

Owns the client half of docker cp (docker/cli cli/command/container/cp.go and moby's
pkg/archive copy.go): which side is the container (``NAME:PATH``), what the destination is
(HEAD archive for a container path, lstat for a local one, a symlink followed), and
PrepareArchiveCopy's renaming of the archive's first path element so that the copy lands where
cp(1) would put it. Local extraction refuses names that climb out of the destination
(tarfile's "tar" filter).
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import tarfile
import threading
from typing import Any, Iterator

from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx, api_errors, describe
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.units import human_size

GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27


def split_arg(arg: str) -> tuple[str, str]:
    """("container", "path"), or ("", local path) (splitCpArg)."""
    if arg.startswith("/") or arg.startswith("."):
        return "", arg
    name, sep, path = arg.partition(":")
    if not sep:
        return "", arg
    return name, path


def _split_dir_entry(path: str) -> tuple[str, str]:
    """archive.SplitPathDirEntry."""
    cleaned = posixpath.normpath(path)
    if path.endswith("/.") or path == ".":
        cleaned += "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned)


def plan_copy(src_path: str, src_is_dir: bool, rebase: str, dst_path: str, dst_exists: bool,
              dst_is_dir: bool) -> tuple[str, tuple[str, str] | None]:
    """archive.PrepareArchiveCopy: (directory to extract into, (old, new) first element
    rename or None)."""
    dst_dir, dst_base = _split_dir_entry(dst_path)
    src_base = rebase or _split_dir_entry(src_path)[1]
    if dst_exists and dst_is_dir:
        return dst_path, ((src_base, rebase) if rebase and rebase != src_base else None)
    if dst_exists and src_is_dir:
        raise CLIError("cannot copy a directory to a file")
    if not dst_exists and not src_is_dir and dst_path.endswith(("/", "/.")):
        raise CLIError("destination directory does not exist")
    return dst_dir, (_split_dir_entry(src_path)[1], dst_base)


def rebase_name(name: str, rename: tuple[str, str] | None) -> str:
    """archive.RebaseArchiveEntries for one name."""
    if rename is None:
        return name
    old, new = rename
    first, sep, rest = name.partition("/")
    if first != old:
        return name
    return posixpath.join(new, rest) if rest else (new + ("/" if sep else ""))


def _stat_container(ctx: Ctx, container: str, path: str) -> dict | None:
    """The X-Docker-Container-Path-Stat of ``path``, or None if it does not exist."""
    import docker.errors

    try:
        resp = ctx.daemon.request("HEAD", f"/containers/{container}/archive",
                                  params={"path": path})
    except docker.errors.NotFound as exc:
        if "No such container" in describe(exc):
            raise CLIError(describe(exc)) from None
        return None
    return json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))


def cmd_cp(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\t"
                     f"{PROG} cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                     "Copy files/folders between a container and the local filesystem",
                     min_args=2, max_args=2, aliases=[f"{PROG} container cp", f"{PROG} cp"])
    p.flag("-a", "--archive", help="Archive mode (copy all uid/gid information)")
    p.flag("-L", "--follow-link", help="Always follow symbol link in SRC_PATH")
    p.flag("-q", "--quiet", help="Suppress progress output during copy")
    p.add_argument("src", nargs="?")
    p.add_argument("dst", nargs="?")
    ns = p.parse(argv)
    src_c, src_path = split_arg(ns.src)
    dst_c, dst_path = split_arg(ns.dst)
    if src_c and dst_c:
        raise CLIError("copying between containers is not supported")
    if not src_c and not dst_c:
        raise CLIError("must specify at least one container source")
    if not (src_path if src_c else dst_path):
        raise CLIError("filepath cannot be empty")
    try:
        if src_c:
            size = _from_container(ctx, src_c, src_path, dst_path, ns.follow_link)
            where = dst_path
        else:
            size = _to_container(ctx, src_path, dst_c, dst_path, ns.archive, ns.follow_link)
            where = f"{dst_c}:{dst_path}"
    except api_errors() as exc:
        raise CLIError(describe(exc)) from None
    if not ns.quiet and dst_path != "-" and src_path != "-" and os.isatty(ctx.err.fileno()):
        ctx.eprint(f"Successfully copied {human_size(size)} to {where}")
    return 0


# -- container -> local -----------------------------------------------------------------------------

def _from_container(ctx: Ctx, container: str, path: str, dst: str, follow: bool) -> int:
    rebase = ""
    if follow:
        st = _stat_container(ctx, container, path)
        if st and st["mode"] & GO_MODE_SYMLINK and st.get("linkTarget"):
            rebase, path = posixpath.basename(path.rstrip("/")), st["linkTarget"]
    resp = ctx.daemon.request("GET", f"/containers/{container}/archive", params={"path": path},
                              stream=True)
    stat = json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))
    if dst == "-":
        ctx.out.flush()
        n = 0
        for chunk in resp.iter_content(chunk_size=1 << 16):
            n += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(ctx.out.fileno(), view):]
        return n
    exists = os.path.exists(dst)
    target, rename = plan_copy(path, bool(stat["mode"] & GO_MODE_DIR), rebase, dst, exists,
                               os.path.isdir(dst))
    if not os.path.isdir(target):
        raise CLIError(f"lstat {target}: no such file or directory")
    counter = _Counting(resp.raw)
    with tarfile.open(fileobj=counter, mode="r|") as tar:
        tar.extractall(target, members=_rebased(tar, rename), filter="tar")
    return counter.count


class _Counting:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data


def _rebased(tar: tarfile.TarFile, rename: tuple[str, str] | None) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        member.name = rebase_name(member.name, rename)
        if member.islnk():
            member.linkname = rebase_name(member.linkname, rename)
        yield member


# -- local -> container -----------------------------------------------------------------------------

def _to_container(ctx: Ctx, src: str, container: str, dst: str, archive: bool,
                  follow: bool) -> int:
    params = {"noOverwriteDirNonDir": "true"}
    if archive:
        params["copyUIDGID"] = "true"
    st = _stat_container(ctx, container, dst)
    if st is not None and st["mode"] & GO_MODE_SYMLINK:
        link = st["linkTarget"]
        dst = link if link.startswith("/") else posixpath.join(posixpath.dirname(dst), link)
        st = _stat_container(ctx, container, dst)
    if src == "-":
        if st is None or not st["mode"] & GO_MODE_DIR:
            raise CLIError(f'destination "{container}:{dst}" must be a directory')
        body: Any = iter(lambda: os.read(0, 1 << 16), b"")
        target = dst
    else:
        if not os.path.lexists(src):
            raise CLIError(f"lstat {os.path.abspath(src)}: no such file or directory")
        if follow:
            src = os.path.realpath(src)
        target, rename = plan_copy(src, os.path.isdir(src) and not os.path.islink(src), "", dst,
                                   st is not None, bool(st and st["mode"] & GO_MODE_DIR))
        body = _tar_chunks(src, rename)
    counted = _CountingIter(body)
    ctx.daemon.request("PUT", f"/containers/{container}/archive",
                       params={**params, "path": target}, data=counted)
    return counted.count


class _CountingIter:
    def __init__(self, it) -> None:
        self.it = iter(it)
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        data = next(self.it)
        self.count += len(data)
        return data


def _tar_chunks(src: str, rename: tuple[str, str] | None) -> Iterator[bytes]:
    """archive.TarResource of ``src``, entries renamed, written by a thread into a pipe."""
    r, w = os.pipe()
    base = _split_dir_entry(src)[1]

    def write() -> None:
        try:
            with os.fdopen(w, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                         format=tarfile.PAX_FORMAT) as tar:
                tar.add(src, arcname=rebase_name(base, rename),
                        filter=lambda ti: _anonymous(ti))
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=write, name="cp-tar", daemon=True)
    thread.start()
    with os.fdopen(r, "rb") as f:
        while chunk := f.read(1 << 16):
            yield chunk
    thread.join()


def _anonymous(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.uname = ti.gname = ""  # as Go's FileInfoHeader: numeric ids only
    return ti
