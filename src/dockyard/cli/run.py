"""``run``, ``create`` and ``start``: create (pulling if missing), attach, start, wait.

The order is the docker CLI's: create; attach (hijacked, before start, so no output is lost);
register the wait (``next-exit``, or ``removed`` with --rm: the daemon removes the container, as
docker's AutoRemove does) before start; start; resize a TTY; stream until the output ends; exit
with the container's status. A daemon error exits 125, a missing command 127, a command that
cannot be executed 126 (docker's runStartContainerErr).
"""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any

from dockyard.cli.client import CLIError, version_tuple
from dockyard.cli.command import Ctx, api_errors, describe
from dockyard.cli.containeropts import (ContainerSpec, OptionsError, add_container_flags,
                                        parse_container_options)
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.reference import familiar_string, split_reference
from dockyard.cli.streams import ResizeMonitor, SignalProxy, Streamer, terminal_size

RUN_USAGE = "[OPTIONS] IMAGE [COMMAND] [ARG...]"


def container_parser(command: str, description: str, run: bool) -> DockerParser:
    p = DockerParser(command, RUN_USAGE, description, min_args=1,
                     aliases=[f"{PROG} container {command}", f"{PROG} {command}"])
    if run:
        p.flag("-d", "--detach", help="Run container in background and print container ID")
        p.flag("--detach-keys", kind="str", default="",
               help="Override the key sequence for detaching a container")
        p.flag("--sig-proxy", default=True, help="Proxy received signals to the process")
    p.flag("--name", kind="str", default="", help="Assign a name to the container")
    add_container_flags(p)
    p.add_argument("image", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def _usage_error(command: str, message: str) -> CLIError:
    return CLIError(f"{PROG}: {message}\n\nRun '{PROG} {command} --help' for more information",
                    125)


def start_error_status(message: str) -> int:
    """runStartContainerErr: 127 for a missing command, 126 for one that cannot run, else 125."""
    if any(s in message for s in ("executable file not found", "no such file or directory",
                                  "system cannot find the file specified")):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def _spec(ctx: Ctx, command: str, ns: argparse.Namespace) -> ContainerSpec:
    console = (0, 0)
    if ns.tty and ctx.stdout_is_tty():
        console = terminal_size(ctx.out.fileno())
    try:
        return parse_container_options(ns, ns.image, ns.args, console_size=console)
    except OptionsError as exc:
        raise _usage_error(command, str(exc)) from None


def pull_image(ctx: Ctx, image: str, platform: str | None, quiet: bool) -> None:
    """Pull ``image`` showing docker's progress lines on stderr (stdout stays for the ID)."""
    from dockyard.cli.registry import pull_for_run

    name, tag, digest = split_reference(image)
    pull_for_run(ctx, name, digest or tag or "latest", platform, quiet)


def _post_create(ctx: Ctx, spec: ContainerSpec) -> dict[str, Any]:
    """POST /containers/create with the body exactly as built (the SDK would drop nulls)."""
    params = {}
    if spec.name:
        params["name"] = spec.name
    if spec.platform:
        params["platform"] = spec.platform
    return ctx.daemon.json("POST", "/containers/create", params=params, json=spec.body())


def create_container(ctx: Ctx, spec: ContainerSpec, pull: str = "missing",
                     quiet: bool = False) -> str:
    """ContainerCreate, pulling the image first (always) or on a missing image (missing)."""
    import docker.errors

    image = spec.config["Image"]
    ref = image if split_reference(image)[1] or "@" in image else image + ":latest"
    cidfile = spec.host_config.get("ContainerIDFile")
    if cidfile and os.path.exists(cidfile):
        raise CLIError(f"container ID file found, make sure the other container isn't running "
                       f"or delete {cidfile}")
    if pull == "always":
        pull_image(ctx, image, spec.platform, quiet)
    try:
        resp = _post_create(ctx, spec)
    except docker.errors.ImageNotFound:
        if pull != "missing":
            raise
        if not quiet:
            ctx.eprint(f"Unable to find image '{familiar_string(ref)}' locally")
            ctx.err.flush()
        pull_image(ctx, image, spec.platform, quiet)
        resp = _post_create(ctx, spec)
    for warning in resp.get("Warnings") or []:
        ctx.eprint(f"WARNING: {warning}")
    cid = resp["Id"]
    if cidfile:
        with open(cidfile, "x") as f:
            f.write(cid)
    return cid


class Waiter:
    """POST /containers/{id}/wait in a thread; ``registered`` is set once the daemon answered.

    dockerd writes the response header once the wait is registered, so starting after that
    cannot miss the exit. A daemon that holds the header back until the exit costs each
    foreground run the 5 seconds the caller waits for ``registered``.
    """

    def __init__(self, ctx: Ctx, cid: str, condition: str) -> None:
        self.ctx, self.cid, self.condition = ctx, cid, condition
        self.registered = threading.Event()
        self.status: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="wait", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            resp = self.ctx.daemon.request("POST", f"/containers/{self.cid}/wait",
                                           params={"condition": self.condition}, stream=True)
            self.registered.set()
            result = resp.json()
            error = (result.get("Error") or {}).get("Message") if result else None
            if error:
                self.ctx.eprint(f"Error waiting for container: {error}")
                self.status = 125
            else:
                self.status = int(result.get("StatusCode", 0))
        except BaseException as exc:  # reported by result(); the thread must not die loudly
            self.error = exc
        finally:
            self.registered.set()

    def result(self, timeout: float | None = None) -> int:
        self.thread.join(timeout)
        if self.error is not None:
            self.ctx.eprint(f"error waiting for container: {describe(self.error)}")
            return 125
        return 125 if self.status is None else self.status


def attach_stream(ctx: Ctx, cid: str, *, stdin: bool, stdout: bool, stderr: bool,
                  detach_keys: str) -> Any:
    params: dict[str, Any] = {"stream": 1, "stdin": int(stdin), "stdout": int(stdout),
                              "stderr": int(stderr)}
    if detach_keys:
        params["detachKeys"] = detach_keys
    return ctx.api.attach_socket(cid, params=params)


def cmd_run(ctx: Ctx, argv: list[str]) -> int:
    ns = container_parser("run", "Create and run a new container from an image",
                          True).parse(argv)
    if ns.pull not in ("always", "missing", "never"):
        raise _usage_error("run", f'invalid pull option: \'{ns.pull}\': must be one of '
                                  f'"always", "missing" or "never"')
    spec = _spec(ctx, "run", ns)
    config = spec.config
    if ns.detach:
        if ns.attach:
            raise CLIError("Conflicting options: -a and -d")
        config.update(AttachStdin=False, AttachStdout=False, AttachStderr=False, StdinOnce=False)
    elif config["AttachStdin"] and config["Tty"] and not ctx.stdin_is_tty():
        raise CLIError("the input device is not a TTY")
    try:
        cid = create_container(ctx, spec, ns.pull, ns.quiet)
    except api_errors() as exc:
        raise _usage_error("run", describe(exc)) from None
    return _run_attached(ctx, cid, config, spec.host_config, ns)


def _start(ctx: Ctx, cid: str, sock: Any, waiter: Waiter | None) -> None:
    """Start; on failure report docker's way and exit 125, 126 or 127."""
    try:
        ctx.api.start(cid)
    except api_errors() as exc:
        if sock is not None:
            sock.close()
        message = describe(exc)
        if waiter is not None and waiter.condition == "removed":
            waiter.result(10)
        raise CLIError(f"{PROG}: {message}\n\nRun '{PROG} run --help' for more information",
                       start_error_status(message)) from None


def _run_attached(ctx: Ctx, cid: str, config: dict[str, Any], host_config: dict[str, Any],
                  ns: argparse.Namespace) -> int:
    attach = config["AttachStdin"] or config["AttachStdout"] or config["AttachStderr"]
    if not attach:
        _start(ctx, cid, None, None)
        ctx.print(cid)
        return 0
    detach_keys = ns.detach_keys or ctx.config.detach_keys
    sock = attach_stream(ctx, cid, stdin=config["AttachStdin"], stdout=config["AttachStdout"],
                         stderr=config["AttachStderr"], detach_keys=detach_keys)
    auto_remove = bool(host_config.get("AutoRemove"))
    removed_ok = version_tuple(ctx.daemon.api_version) >= (1, 30)
    waiter = Waiter(ctx, cid, "removed" if auto_remove and removed_ok else "next-exit")
    waiter.registered.wait(5)
    proxy = SignalProxy(lambda sig: ctx.api.kill(cid, sig)) if ns.sig_proxy else None
    if proxy is not None:
        proxy.__enter__()
    try:
        _start(ctx, cid, sock, waiter)
        detached = _stream(ctx, cid, sock, tty=config["Tty"], stdin=config["AttachStdin"],
                           detach_keys=detach_keys)
        return 0 if detached else waiter.result()
    finally:
        if proxy is not None:
            proxy.__exit__()


def _stream(ctx: Ctx, cid: str, sock: Any, *, tty: bool, stdin: bool, detach_keys: str) -> bool:
    """Copy the attached streams (resizing a TTY as our window changes); True if detached."""
    resize = None
    if tty and ctx.stdout_is_tty():
        resize = ResizeMonitor(lambda h, w: ctx.api.resize(cid, h, w), ctx.out.fileno())
        resize.__enter__()
    try:
        ctx.out.flush()
        ctx.err.flush()
        return Streamer(sock, tty=tty, stdin=stdin, detach_keys=detach_keys,
                        stdout_fd=ctx.out.fileno(), stderr_fd=ctx.err.fileno()).run()
    finally:
        if resize is not None:
            resize.__exit__()


def cmd_create(ctx: Ctx, argv: list[str]) -> int:
    ns = container_parser("create", "Create a new container", False).parse(argv)
    if ns.pull not in ("always", "missing", "never"):
        raise _usage_error("create", f"invalid pull option: '{ns.pull}': must be one of "
                                     '"always", "missing" or "never"')
    spec = _spec(ctx, "create", ns)
    cid = create_container(ctx, spec, ns.pull, ns.quiet)
    ctx.print(cid)
    return 0


def cmd_start(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("start", "[OPTIONS] CONTAINER [CONTAINER...]",
                     "Start one or more stopped containers", min_args=1,
                     aliases=[f"{PROG} container start", f"{PROG} start"])
    p.flag("-a", "--attach", help="Attach STDOUT/STDERR and forward signals")
    p.flag("--detach-keys", kind="str", default="",
           help="Override the key sequence for detaching a container")
    p.flag("-i", "--interactive", help="Attach container's STDIN")
    p.add_argument("containers", nargs="*")
    ns = p.parse(argv)
    if ns.attach or ns.interactive:
        if len(ns.containers) > 1:
            raise CLIError("you cannot start and attach multiple containers at once")
        return _start_attached(ctx, ns.containers[0], ns)
    failed = []
    for name in ns.containers:
        try:
            ctx.api.start(name)
        except api_errors() as exc:
            ctx.eprint(describe(exc))
            failed.append(name)
            continue
        ctx.print(name)
    if failed:
        raise CLIError(f"Error: failed to start containers: {', '.join(failed)}")
    return 0


def _start_attached(ctx: Ctx, name: str, ns: argparse.Namespace) -> int:
    info = ctx.api.inspect_container(name)
    config, cid = info["Config"], info["Id"]
    stdin = bool(ns.interactive and config.get("OpenStdin"))
    if stdin and config.get("Tty") and not ctx.stdin_is_tty():
        raise CLIError("the input device is not a TTY")
    detach_keys = ns.detach_keys or ctx.config.detach_keys
    sock = attach_stream(ctx, cid, stdin=stdin, stdout=True, stderr=True,
                         detach_keys=detach_keys)
    auto_remove = bool(info["HostConfig"].get("AutoRemove"))
    waiter = Waiter(ctx, cid, "removed" if auto_remove else "next-exit")
    waiter.registered.wait(5)
    with SignalProxy(lambda sig: ctx.api.kill(cid, sig)):
        try:
            ctx.api.start(cid)
        except api_errors() as exc:
            sock.close()
            raise CLIError(describe(exc)) from None
        detached = _stream(ctx, cid, sock, tty=bool(config.get("Tty")), stdin=stdin,
                           detach_keys=detach_keys)
    if detached:
        return 0
    status = waiter.result()
    if status != 0:
        raise CLIError("", status)
    return 0

