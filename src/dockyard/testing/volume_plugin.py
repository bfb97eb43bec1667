"""A Docker volume plugin for tests: its own process, serving the protocol on a unix socket.

Each volume is a directory ``<root>/volumes/<name>``; Mount answers that directory (counting
mounts per caller ID, as plugins must), Unmount lets go. Every call is appended to
``<root>/calls.jsonl`` as ``{"method", "args"}`` so tests can see what the engine asked.
``--misbehave METHOD=garbage`` answers that method with bytes that are not JSON,
``METHOD=error`` with an ``Err``, ``METHOD=die`` by exiting the process mid-request.

    python -m dockyard.testing.volume_plugin --socket /run/docker/plugins/x.sock --root /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Plugin:
    def __init__(self, root: str, misbehave: dict[str, str]):
        self.root = root
        self.misbehave = misbehave
        self.mounts: dict[str, set[str]] = {}
        self.created: dict[str, str] = {}
        self.lock = threading.Lock()
        os.makedirs(os.path.join(root, "volumes"), exist_ok=True)
        self.log = open(os.path.join(root, "calls.jsonl"), "a", buffering=1)

    def close(self) -> None:
        self.log.close()

    def path(self, name: str) -> str:
        return os.path.join(self.root, "volumes", name)

    def handle(self, method: str, args: dict) -> dict:
        with self.lock:
            self.log.write(json.dumps({"method": method, "args": args}) + "\n")
        name = args.get("Name", "")
        if method == "Plugin.Activate":
            return {"Implements": ["VolumeDriver"]}
        if method == "VolumeDriver.Capabilities":
            return {"Capabilities": {"Scope": "local"}}
        if method == "VolumeDriver.Create":
            if "/" in name or not name:
                return {"Err": f"bad name {name!r}"}
            os.makedirs(self.path(name), exist_ok=True)
            with open(os.path.join(self.path(name), ".opts.json"), "w") as f:
                json.dump(args.get("Opts") or {}, f)
            self.created.setdefault(name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            return {"Err": ""}
        if method == "VolumeDriver.Remove":
            if self.mounts.get(name):
                return {"Err": f"volume {name} is mounted"}
            import shutil

            shutil.rmtree(self.path(name), ignore_errors=True)
            return {"Err": ""}
        if method == "VolumeDriver.Mount":
            if not os.path.isdir(self.path(name)):
                return {"Err": f"no such volume: {name}"}
            self.mounts.setdefault(name, set()).add(args.get("ID", ""))
            return {"Mountpoint": self.path(name), "Err": ""}
        if method == "VolumeDriver.Unmount":
            self.mounts.get(name, set()).discard(args.get("ID", ""))
            return {"Err": ""}
        if method == "VolumeDriver.Path":
            return {"Mountpoint": self.path(name) if self.mounts.get(name) else "", "Err": ""}
        if method == "VolumeDriver.Get":
            if not os.path.isdir(self.path(name)):
                return {"Err": "no such volume"}
            return {"Volume": {"Name": name, "Mountpoint": self.path(name),
                               "CreatedAt": self.created.get(name, ""),
                               "Status": {"mounts": len(self.mounts.get(name, ()))}},
                    "Err": ""}
        if method == "VolumeDriver.List":
            names = sorted(os.listdir(os.path.join(self.root, "volumes")))
            return {"Volumes": [{"Name": n, "Mountpoint": self.path(n)} for n in names],
                    "Err": ""}
        return None  # type: ignore[return-value]


def _handler(plugin: Plugin):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def address_string(self) -> str:
            return "unix"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            method = self.path.lstrip("/")
            try:
                args = json.loads(raw) if raw.strip() else {}
            except ValueError:
                args = {}
            how = plugin.misbehave.get(method)
            if how == "die":
                os._exit(3)
            if how == "garbage":
                self._send(200, b"\x00this is not json{")
                return
            if how == "error":
                self._send(200, json.dumps({"Err": f"{method} refused by the test"}).encode())
                return
            answer = plugin.handle(method, args)
            if answer is None:
                self._send(404, b"404 page not found\n", "text/plain")
                return
            self._send(200, json.dumps(answer).encode())

        def _send(self, status: int, body: bytes,
                  ctype: str = "application/vnd.docker.plugins.v1.2+json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="volume_plugin")
    p.add_argument("--socket", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--misbehave", action="append", default=[], metavar="METHOD=HOW")
    ns = p.parse_args(argv)
    misbehave = dict(m.split("=", 1) for m in ns.misbehave)
    plugin = Plugin(ns.root, misbehave)
    os.makedirs(os.path.dirname(ns.socket), exist_ok=True)
    try:
        os.unlink(ns.socket)
    except FileNotFoundError:
        pass
    server = _Server(ns.socket, _handler(plugin))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        plugin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
