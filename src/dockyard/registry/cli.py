"""`dockyard registry serve|gc`: our registry server as a command (reached by name from cli/,
as `dockyard daemon` is, so that the client never imports it)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys

from dockyard.registry.auth import BasicAuth, Htpasswd, TokenAuth
from dockyard.registry.server import make_registry_server
from dockyard.registry.storage import RegistryStorage

log = logging.getLogger("dockyard.registry")


def argument_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard registry")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the OCI distribution API")
    serve.add_argument("--root", required=True, help="storage directory")
    serve.add_argument("--addr", default="127.0.0.1:5000", help="HOST:PORT (default %(default)s)")
    serve.add_argument("--htpasswd", help="htpasswd file (bcrypt or {SHA} entries)")
    serve.add_argument("--auth", choices=("none", "basic", "token"), default=None,
                       help="basic: htpasswd Basic auth; token: Bearer tokens from this "
                            "server's /token (needs --htpasswd unless --anonymous-pull)")
    serve.add_argument("--token-realm", help="the token realm URL (default http(s)://ADDR/token)")
    serve.add_argument("--anonymous-pull", action="store_true",
                       help="token auth: anyone may pull")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", help="the certificate's key")
    serve.add_argument("--rate-limit", type=int, metavar="BYTES",
                       help="serve each blob at most this many bytes a second (a slow link)")
    serve.add_argument("-l", "--log-level", default="info")
    gc = sub.add_parser("gc", help="delete blobs no manifest references (server stopped)")
    gc.add_argument("--root", required=True)
    gc.add_argument("--dry-run", action="store_true")
    return p


def _auth(ns: argparse.Namespace, scheme: str):
    mode = ns.auth or ("basic" if ns.htpasswd else "none")
    htpasswd = Htpasswd(ns.htpasswd) if ns.htpasswd else None
    if mode == "basic":
        if htpasswd is None:
            raise SystemExit("dockyard registry: --auth basic needs --htpasswd")
        return BasicAuth(htpasswd)
    if mode == "token":
        realm = ns.token_realm or f"{scheme}://{ns.addr}/token"
        return TokenAuth(htpasswd, realm, anonymous_pull=ns.anonymous_pull)
    return None


async def serve(ns: argparse.Namespace) -> None:
    host, _, port = ns.addr.rpartition(":")
    context = None
    if ns.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ns.tls_cert, ns.tls_key)
    storage = RegistryStorage(ns.root)
    purged = storage.purge_uploads()
    if purged:
        log.info("purged %d stale uploads", len(purged))
    auth = _auth(ns, "https" if context else "http")
    server, _ = make_registry_server(storage, [(host.strip("[]") or "0.0.0.0", int(port))],
                                     auth=auth, ssl_context=context,
                                     rate_limit=ns.rate_limit)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with server:
        log.info("registry listening on %s", ns.addr)
        print(f"listening on {ns.addr}", file=sys.stderr, flush=True)
        await stopping.wait()
        server.close()


@contextlib.asynccontextmanager
async def daemon_registry(root: str, addr: str):
    """The registry server run by the daemon (--registry-listen), no auth, until the block
    ends."""
    host, _, port = addr.rpartition(":")
    storage = RegistryStorage(root)
    storage.purge_uploads()
    server, _ = make_registry_server(storage, [(host.strip("[]") or "0.0.0.0", int(port))])
    async with server:
        log.info("registry listening on %s", addr)
        yield server


def main(argv: list[str] | None = None) -> int:
    ns = argument_parser().parse_args(argv)
    if ns.command == "gc":
        storage = RegistryStorage(ns.root)
        removed = storage.gc(dry_run=ns.dry_run)
        for digest in removed:
            print(f"{'would delete' if ns.dry_run else 'deleted'} {digest}")
        return 0
    logging.basicConfig(level=getattr(logging, ns.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dockyard.http.server import run

    run(serve(ns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
