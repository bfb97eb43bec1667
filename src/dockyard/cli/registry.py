"""Registry commands: pull, push, login, logout, through the daemon as the docker CLI does
(``dockyard registry serve|gc``, our registry server, is handed over by name in main.py).

Credentials live in the docker CLI's config.json (``$DOCKER_CONFIG`` or ``~/.docker``):
``auths.<server>.auth`` is base64 of ``user:password``; with ``credsStore`` or
``credHelpers.<server>`` they go to ``docker-credential-<helper>`` instead (its
get/store/erase protocol), exactly as the docker CLI reads and writes them, so either client
sees the other's logins. Pull and push send them as X-Registry-Auth.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dockyard.cli.client import CLIError
from dockyard.cli.command import Ctx
from dockyard.cli.flags import PROG, DockerParser
from dockyard.cli.progress import Bars, display_json_messages, json_messages
from dockyard.cli.reference import ReferenceError, familiar_string, parse_reference

INDEX_SERVER = "https://index.docker.io/v1/"


# -- credentials (the docker CLI's config.json) -----------------------------------------------

def server_key(domain: str) -> str:
    return INDEX_SERVER if domain in ("docker.io", "index.docker.io", "registry-1.docker.io") \
        else domain


def _helper(config: dict, server: str) -> str | None:
    return (config.get("credHelpers") or {}).get(server) or config.get("credsStore") or None


def _run_helper(helper: str, action: str, data: str) -> str:
    try:
        proc = subprocess.run([f"docker-credential-{helper}", action], input=data.encode(),
                              capture_output=True, timeout=60)
    except FileNotFoundError:
        raise CLIError(f"error getting credentials - err: exec: \"docker-credential-{helper}\":"
                       " executable file not found in $PATH") from None
    if proc.returncode != 0:
        text = (proc.stdout or proc.stderr).decode(errors="replace").strip()
        if action == "get" and "credentials not found" in text:
            return ""
        raise CLIError(f"error {action} credentials - {text}")
    return proc.stdout.decode()


def _config_path(ctx: Ctx) -> Path:
    return ctx.config.path


def _load(ctx: Ctx) -> dict:
    try:
        data = json.loads(_config_path(ctx).read_text())
    except (OSError, ValueError):
        data = {}
    return data if isinstance(data, dict) else {}


def _save(ctx: Ctx, data: dict) -> None:
    """Write config.json as the docker CLI does: 0600, through a temp file and a rename."""
    path = _config_path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent="\t")
    os.rename(tmp, path)


def get_credentials(ctx: Ctx, server: str) -> dict[str, str]:
    config = _load(ctx)
    helper = _helper(config, server)
    if helper:
        out = _run_helper(helper, "get", server)
        if not out:
            return {}
        doc = json.loads(out)
        if doc.get("Username") == "<token>":
            return {"identitytoken": doc.get("Secret", ""), "serveraddress": server}
        return {"username": doc.get("Username", ""), "password": doc.get("Secret", ""),
                "serveraddress": server}
    entry = (config.get("auths") or {}).get(server) or {}
    out: dict[str, str] = {"serveraddress": server}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        out.update(username=user, password=password)
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out if len(out) > 1 else {}


def store_credentials(ctx: Ctx, server: str, user: str, password: str, token: str) -> None:
    config = _load(ctx)
    helper = _helper(config, server)
    if helper:
        secret = {"ServerURL": server, "Username": "<token>" if token else user,
                  "Secret": token or password}
        _run_helper(helper, "store", json.dumps(secret))
        config.setdefault("auths", {})[server] = {}
    else:
        entry: dict[str, str] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        if token:
            entry = {"auth": base64.b64encode(f"{user}:".encode()).decode(),
                     "identitytoken": token}
        config.setdefault("auths", {})[server] = entry
    _save(ctx, config)


def erase_credentials(ctx: Ctx, server: str) -> bool:
    config = _load(ctx)
    helper = _helper(config, server)
    found = server in (config.get("auths") or {})
    if helper:
        _run_helper(helper, "erase", server)
    if found:
        del config["auths"][server]
        _save(ctx, config)
    return found or bool(helper)


def registry_auth_header(creds: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(creds).encode()).decode()


# -- pull / push -----------------------------------------------------------------------------

def _auth_headers(ctx: Ctx, domain: str) -> dict[str, str]:
    creds = get_credentials(ctx, server_key(domain))
    return {"X-Registry-Auth": registry_auth_header(creds)} if creds else {}


def _stream(ctx: Ctx, path: str, params: dict[str, Any], headers: dict[str, str],
            quiet: bool, aux=None, out=None) -> None:
    """POST ``path`` and show its JSON progress messages (on ``out``, default stdout) as the
    docker CLI does; an error message in the stream is raised."""
    resp = ctx.daemon.request("POST", path, params=params, headers=headers, stream=True)
    messages = json_messages(resp.iter_content(chunk_size=None))
    if quiet:
        for msg in messages:
            if msg.get("error") or msg.get("errorDetail"):
                raise CLIError((msg.get("errorDetail") or {}).get("message") or msg["error"])
        return
    with Bars() as bars:
        display_json_messages(messages, out or ctx.out, bars, aux)


def pull_for_run(ctx: Ctx, name: str, tag: str, platform: str | None, quiet: bool) -> None:
    """The pull of `run`/`create` for a missing image: with the stored credentials, its
    progress on stderr (stdout stays for the container's ID or output)."""
    params: dict[str, Any] = {"fromImage": name, "tag": tag}
    if platform:
        params["platform"] = platform
    try:
        domain = parse_reference(name).domain
    except ReferenceError:
        domain = ""
    _stream(ctx, "/images/create", params, _auth_headers(ctx, domain) if domain else {}, quiet,
            out=ctx.err)


def cmd_pull(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("pull", "[OPTIONS] NAME[:TAG|@DIGEST]",
                     "Download an image from a registry", min_args=1, max_args=1,
                     aliases=[f"{PROG} image pull", f"{PROG} pull"])
    p.flag("-a", "--all-tags", help="Download all tagged images in the repository")
    p.flag("--platform", kind="str", default="", help="Set platform if server is "
                                                      "multi-platform capable")
    p.flag("-q", "--quiet", help="Suppress verbose output")
    p.add_argument("name")
    ns = p.parse(argv)
    try:
        ref = parse_reference(ns.name)
    except ReferenceError as exc:
        raise CLIError(str(exc)) from None
    if ns.all_tags and (ref.tag or ref.digest):
        raise CLIError("tag can't be used with --all-tags/-a")
    tag = ref.digest or ref.tag or ("" if ns.all_tags else "latest")
    if not ref.tag and not ref.digest and not ns.all_tags and not ns.quiet:
        ctx.print("Using default tag: latest")
    params = {"fromImage": ref.name, "tag": tag}
    if ns.platform:
        params["platform"] = ns.platform
    _stream(ctx, "/images/create", params, _auth_headers(ctx, ref.domain), ns.quiet)
    if ns.quiet:
        ctx.print(familiar_string(f"{ref.name}:{tag}" if ":" not in tag else f"{ref.name}@{tag}"))
    elif tag:  # the docker CLI ends with the fully qualified reference it pulled
        ctx.print(f"{ref.name}{'@' if ':' in tag else ':'}{tag}")
    return 0


def cmd_push(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry",
                     min_args=1, max_args=1, aliases=[f"{PROG} image push", f"{PROG} push"])
    p.flag("-a", "--all-tags", help="Push all tags of an image to the repository")
    p.flag("-q", "--quiet", help="Suppress verbose output")
    p.add_argument("name")
    ns = p.parse(argv)
    try:
        ref = parse_reference(ns.name)
    except ReferenceError as exc:
        raise CLIError(str(exc)) from None
    if ns.all_tags and ref.tag:
        raise CLIError("tag can't be used with --all-tags/-a")
    tag = ref.tag or ("" if ns.all_tags else "latest")
    if not ref.tag and not ns.all_tags and not ns.quiet:
        ctx.print("Using default tag: latest")
    _stream(ctx, f"/images/{ref.name}/push", {"tag": tag}, _auth_headers(ctx, ref.domain),
            ns.quiet)
    if ns.quiet:
        ctx.print(familiar_string(f"{ref.name}:{tag}" if tag else ref.name))
    return 0


# -- login / logout -------------------------------------------------------------------------------

def cmd_login(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("login", "[OPTIONS] [SERVER]", "Authenticate to a registry",
                     max_args=1, aliases=[f"{PROG} login"])
    p.flag("-u", "--username", kind="str", default="", help="Username")
    p.flag("-p", "--password", kind="str", default="", help="Password or Personal Access Token")
    p.flag("--password-stdin", help="Take the Password or Personal Access Token from stdin")
    p.add_argument("server", nargs="?", default="")
    ns = p.parse(argv)
    server = ns.server.removeprefix("https://").removeprefix("http://").rstrip("/") \
        if ns.server else INDEX_SERVER
    if server in ("docker.io", "index.docker.io/v1", "registry-1.docker.io"):
        server = INDEX_SERVER
    password = ns.password
    if ns.password_stdin:
        if ns.password:
            raise CLIError("--password and --password-stdin are mutually exclusive")
        if not ns.username:
            raise CLIError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    user = ns.username
    if not user or not password:
        stored = get_credentials(ctx, server)
        if not user and stored.get("username") and password == "" and stored.get("password"):
            user, password = stored["username"], stored["password"]
        if not user:
            if not ctx.stdin_is_tty():
                raise CLIError("Error: Cannot perform an interactive login from a non TTY device")
            user = input("Username: ").strip()
        if not password:
            password = getpass.getpass("Password: ")
    if ns.password:
        ctx.eprint("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    body = {"username": user, "password": password, "serveraddress": server}
    result = ctx.daemon.json("POST", "/auth", json=body) or {}
    token = result.get("IdentityToken") or ""
    store_credentials(ctx, server, user, "" if token else password, token)
    ctx.print(result.get("Status") or "Login Succeeded")
    return 0


def cmd_logout(ctx: Ctx, argv: list[str]) -> int:
    p = DockerParser("logout", "[SERVER]", "Log out from a registry", max_args=1,
                     aliases=[f"{PROG} logout"])
    p.add_argument("server", nargs="?", default="")
    ns = p.parse(argv)
    server = ns.server.removeprefix("https://").removeprefix("http://").rstrip("/") \
        if ns.server else INDEX_SERVER
    if server in ("docker.io", "index.docker.io/v1"):
        server = INDEX_SERVER
    if erase_credentials(ctx, server):
        ctx.print(f"Removing login credentials for {server}")
    else:
        ctx.print(f"Not logged in to {server}")
    return 0
